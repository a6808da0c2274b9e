/**
 * Broker logins: the users of `broker.users`, each with a role. Plain `password` values are
 * hashed once at start (scrypt, edge/control/passwords.ts), so only hashes are kept here;
 * `passwordHash` values are used as they are. Verification runs on libuv's thread pool (async
 * scrypt), at most MAX_CONCURRENT at a time, so a burst of bad logins cannot starve the
 * gateway's own crypto or memory; past MAX_QUEUED waiting, a login is refused at once.
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

export type LoginResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'anonymous' | 'credentials' | 'busy' };

const MAX_CONCURRENT = 2;
const MAX_QUEUED = 64;

export class BrokerUsers {
  private users = new Map<string, BrokerUser>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly allowAnonymous: boolean) {}

  /** Hashes plain passwords (in parallel) and replaces the table. Throws E_CONFIG for a malformed hash. */
  async load(users: Config['broker']['users']): Promise<void> {
    const entries = await Promise.all(
      users.map(async (u): Promise<BrokerUser> => {
        if (u.passwordHash !== undefined) {
          if (!isPasswordHash(u.passwordHash)) throw new BrokerError('E_CONFIG', `broker.users: the passwordHash of user "${u.username}" is not a scrypt hash made by \`streetbox hash-password\``);
          return { username: u.username, passwordHash: u.passwordHash, role: u.role };
        }
        if (u.password === undefined) throw new BrokerError('E_CONFIG', `broker.users: user "${u.username}" has neither password nor passwordHash`);
        return { username: u.username, passwordHash: await hashPassword(u.password), role: u.role };
      }),
    );
    this.users = new Map(entries.map((e) => [e.username, e]));
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
      return this.allowAnonymous ? { ok: true, principal: { role: 'viewer', principal: 'anonymous' } } : { ok: false, reason: 'anonymous' };
    }
    if (this.running >= MAX_CONCURRENT && this.waiting.length >= MAX_QUEUED) return { ok: false, reason: 'busy' };
    await this.acquire();
    try {
      const user = this.users.get(username);
      const ok = await verifyPassword(password?.toString('utf8') ?? '', user?.passwordHash);
      if (!ok || user === undefined || password === undefined) return { ok: false, reason: 'credentials' };
      return { ok: true, principal: { role: user.role, principal: user.username } };
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
