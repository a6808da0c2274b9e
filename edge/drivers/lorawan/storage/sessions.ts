/**
 * Device sessions (DevAddr, session keys, frame counters) and used DevNonces, in SQLite.
 * Counter updates are coalesced: the uplinks of COUNTER_FLUSH_MS are written in one
 * transaction (and everything on stop), so a restart keeps them; a crash loses at most the
 * counters of that window, too short for a replay to matter.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { CoalescedWrites } from './coalesce.js';

export const COUNTER_FLUSH_MS = 20;

export interface Session {
  devEui: string;
  /** 8 hex digits, lower case */
  devAddr: string;
  nwkSKey: Buffer;
  appSKey: Buffer;
  activation: 'abp' | 'otaa';
  /** last accepted 32-bit FCntUp; null before the first uplink */
  fCntUp: number | null;
  /** next 32-bit FCntDown */
  nFCntDown: number;
}

interface Row {
  dev_eui: string;
  dev_addr: string;
  nwk_s_key: string;
  app_s_key: string;
  activation: string;
  f_cnt_up: number | null;
  n_f_cnt_down: number;
}

export class SessionStore {
  private readonly db: BetterSqlite3.Database;
  private readonly byEui = new Map<string, Session>();
  private readonly byAddr = new Map<string, Session>();
  private readonly counters: CoalescedWrites<Session>;
  private readonly upsertStmt: BetterSqlite3.Statement;
  private readonly nonceInsert: BetterSqlite3.Statement;
  private readonly nonceExists: BetterSqlite3.Statement;
  private readonly now: () => number;

  /** `flushError`: called with the error when writing counters fails (the driver logs it); they are written again later */
  constructor(db: BetterSqlite3.Database, now: () => number, flushError: (err: unknown) => void = () => {}) {
    this.db = db;
    this.now = now;
    this.upsertStmt = db.prepare(
      `INSERT INTO lorawan_session (dev_eui, dev_addr, nwk_s_key, app_s_key, activation, f_cnt_up, n_f_cnt_down, updated_at)
       VALUES (@devEui, @devAddr, @nwkSKey, @appSKey, @activation, @fCntUp, @nFCntDown, @ts)
       ON CONFLICT (dev_eui) DO UPDATE SET dev_addr = excluded.dev_addr, nwk_s_key = excluded.nwk_s_key,
         app_s_key = excluded.app_s_key, activation = excluded.activation, f_cnt_up = excluded.f_cnt_up,
         n_f_cnt_down = excluded.n_f_cnt_down, updated_at = excluded.updated_at`,
    );
    const countersStmt = db.prepare('UPDATE lorawan_session SET f_cnt_up = ?, n_f_cnt_down = ?, updated_at = ? WHERE dev_eui = ?');
    this.counters = new CoalescedWrites<Session>({
      db,
      write: (s) => countersStmt.run(s.fCntUp, s.nFCntDown, this.now(), s.devEui),
      delayMs: COUNTER_FLUSH_MS,
      retryMs: COUNTER_FLUSH_MS * 50,
      onError: flushError,
    });
    this.nonceInsert = db.prepare('INSERT OR IGNORE INTO lorawan_dev_nonce (dev_eui, dev_nonce, ts) VALUES (?, ?, ?)');
    this.nonceExists = db.prepare('SELECT 1 FROM lorawan_dev_nonce WHERE dev_eui = ? AND dev_nonce = ?');
  }

  /** Loads every stored session into memory. */
  load(): void {
    const rows = this.db.prepare('SELECT * FROM lorawan_session').all() as Row[];
    for (const r of rows) {
      this.index({
        devEui: r.dev_eui,
        devAddr: r.dev_addr,
        nwkSKey: Buffer.from(r.nwk_s_key, 'hex'),
        appSKey: Buffer.from(r.app_s_key, 'hex'),
        activation: r.activation === 'otaa' ? 'otaa' : 'abp',
        fCntUp: r.f_cnt_up,
        nFCntDown: r.n_f_cnt_down,
      });
    }
  }

  private index(s: Session): void {
    const old = this.byEui.get(s.devEui);
    if (old) {
      this.byAddr.delete(old.devAddr);
      this.counters.forget(old);
    }
    this.byEui.set(s.devEui, s);
    this.byAddr.set(s.devAddr, s);
  }

  get(devEui: string): Session | undefined {
    return this.byEui.get(devEui);
  }

  byDevAddr(devAddr: string): Session | undefined {
    return this.byAddr.get(devAddr);
  }

  all(): Session[] {
    return [...this.byEui.values()];
  }

  /** Stores a new session (join accept, or ABP from the config), replacing the device's old one. */
  put(s: Session): void {
    this.index(s);
    this.upsertStmt.run({
      devEui: s.devEui,
      devAddr: s.devAddr,
      nwkSKey: s.nwkSKey.toString('hex'),
      appSKey: s.appSKey.toString('hex'),
      activation: s.activation,
      fCntUp: s.fCntUp,
      nFCntDown: s.nFCntDown,
      ts: this.now(),
    });
  }

  /** The session's counters changed; written within COUNTER_FLUSH_MS. */
  touch(s: Session): void {
    this.counters.touch(s);
  }

  /** Writes the counters that changed now (on stop); throws when the database does. */
  flush(): void {
    this.counters.flush();
  }

  /** LoRaWAN 1.0.3 §6.2.4: a DevNonce already used by this device is refused. */
  devNonceUsed(devEui: string, devNonce: number): boolean {
    return this.nonceExists.get(devEui, devNonce) !== undefined;
  }

  rememberDevNonce(devEui: string, devNonce: number): void {
    this.nonceInsert.run(devEui, devNonce, this.now());
  }

  devAddrInUse(devAddr: string): boolean {
    return this.byAddr.has(devAddr);
  }
}
