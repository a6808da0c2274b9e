/**
 * Broker logins: the users of `broker.users`, each with a role. Plain `password` values are
 * hashed once at start (scrypt, edge/control/passwords.ts), so only hashes are kept here;
 * `passwordHash` values are used as they are. Verification runs on libuv's thread pool (async
 * scrypt), at most MAX_CONCURRENT at a time, so a burst of bad logins cannot starve the
 * gateway's own crypto or memory; past MAX_QUEUED waiting, a login is refused at once.
 *
 * The table can be replaced while the broker runs (`update`, a config change of broker.users,
 * issue 16): a user declared as before keeps its entry (the same object; a plain password is
 * checked against its old hash, never kept), so `holds(login)` tells whether a connection's
 * login still stands under the new table.
 */
import type { Config } from '../config/schema.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../control/passwords.js';
import type { Principal, Role } from '../control/roles.js';
import { BrokerError } from './errors.js';

export interface BrokerUser {
  username: string;
  passwordHash: string;
  role: Role;
}

/** What a connection logged in as: the user's entry, or null for an anonymous viewer. */
export interface Login {
  entry: BrokerUser | null;
}

export type LoginResult =
  | { ok: true; principal: Principal; login: Login }
  | { ok: false; reason: 'anonymous' | 'credentials' | 'busy' };

/** The usernames a replacement of the table added, removed, or changed (password, passwordHash or role). */
export interface UsersChange {
  added: string[];
  removed: string[];
  changed: string[];
}

type DeclaredUser = Config['broker']['users'][number];

const MAX_CONCURRENT = 2;
const MAX_QUEUED = 64;

export class BrokerUsers {
  private users = new Map<string, BrokerUser>();
  /** how each user was declared (a plain password or a hash; the plain one is never kept), next to its entry */
  private declared = new Map<string, { plain: boolean; entry: BrokerUser }>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private allowAnonymous: boolean) {}

  /** Hashes plain passwords (in parallel) and replaces the table. Throws E_CONFIG for a malformed hash. */
  async load(users: Config['broker']['users']): Promise<UsersChange> {
    return this.update(users, this.allowAnonymous);
  }

  /**
   * Replaces the table and allowAnonymous at once, after every new password is hashed (until
   * then the old table answers). Throws E_CONFIG for a malformed hash, the table unchanged.
   */
  async update(users: Config['broker']['users'], allowAnonymous: boolean): Promise<UsersChange> {
    const next = await Promise.all(
      users.map(async (u) => {
        const before = this.declared.get(u.username);
        const entry = before && (await declaredAsBefore(before, u)) ? before.entry : await entryOf(u);
        return { username: u.username, plain: u.passwordHash === undefined, entry };
      }),
    );
    const change: UsersChange = { added: [], removed: [], changed: [] };
    const names = new Set(next.map((n) => n.username));
    for (const { username, entry } of next) {
      const before = this.declared.get(username);
      if (!before) change.added.push(username);
      else if (before.entry !== entry) change.changed.push(username);
    }
    for (const name of this.declared.keys()) if (!names.has(name)) change.removed.push(name);
    this.declared = new Map(next.map((n) => [n.username, { plain: n.plain, entry: n.entry }]));
    this.users = new Map(next.map((n) => [n.username, n.entry]));
    this.allowAnonymous = allowAnonymous;
    return change;
  }

  /** Whether a login still stands under the table now: its user is declared as it was, or anonymous is still allowed. */
  holds(login: Login): boolean {
    if (login.entry === null) return this.allowAnonymous;
    return this.users.get(login.entry.username) === login.entry;
  }

  get size(): number {
    return this.users.size;
  }

  /**
   * Checks a CONNECT's credentials. No username: anonymous, allowed as a viewer only when the
   * config says so. A username without a password, an unknown user or a wrong password cost
   * the same scrypt work and give the same answer.
   */
  async login(username: string | undefined, password: Buffer | undefined): Promise<LoginResult> {
    if (username === undefined || username === '') {
      if (password !== undefined && password.length > 0) return { ok: false, reason: 'credentials' };
      return this.allowAnonymous ? { ok: true, principal: { role: 'viewer', principal: 'anonymous' }, login: { entry: null } } : { ok: false, reason: 'anonymous' };
    }
    if (this.running >= MAX_CONCURRENT && this.waiting.length >= MAX_QUEUED) return { ok: false, reason: 'busy' };
    await this.acquire();
    try {
      const user = this.users.get(username);
      const ok = await verifyPassword(password?.toString('utf8') ?? '', user?.passwordHash);
      if (!ok || user === undefined || password === undefined) return { ok: false, reason: 'credentials' };
      return { ok: true, principal: { role: user.role, principal: user.username }, login: { entry: user } };
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < MAX_CONCURRENT) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

/** A user's entry: its passwordHash as given, or its plain password hashed now. */
async function entryOf(u: DeclaredUser): Promise<BrokerUser> {
  if (u.passwordHash !== undefined) {
    if (!isPasswordHash(u.passwordHash)) throw new BrokerError('E_CONFIG', `broker.users: the passwordHash of user "${u.username}" is not a scrypt hash made by \`streetbox hash-password\``);
    return { username: u.username, passwordHash: u.passwordHash, role: u.role };
  }
  if (u.password === undefined) throw new BrokerError('E_CONFIG', `broker.users: user "${u.username}" has neither password nor passwordHash`);
  return { username: u.username, passwordHash: await hashPassword(u.password), role: u.role };
}

/**
 * Declared as before (same role, the same passwordHash, or the same plain password as before:
 * checked against its hash, since the plain one is not kept): a connection that logged in
 * under the old declaration may stay.
 */
async function declaredAsBefore(before: { plain: boolean; entry: BrokerUser }, u: DeclaredUser): Promise<boolean> {
  if (before.entry.role !== u.role) return false;
  if (u.passwordHash !== undefined) return !before.plain && before.entry.passwordHash === u.passwordHash;
  return before.plain && u.password !== undefined && (await verifyPassword(u.password, before.entry.passwordHash));
}
