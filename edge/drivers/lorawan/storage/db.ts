/**
 * The LoRaWAN tables live in the gateway's store (store.sqlite), created through
 * store.migrate('lorawan', LORAWAN_MIGRATIONS) so they are versioned like the store's own.
 */
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from '../../../log.js';
import type { Migration } from '../../../store/migrations.js';
import { moduleDatabase } from '../../../store/modules.js';

export const LORAWAN_MODULE = 'lorawan';

/** Append-only: never edit or reorder a migration that has shipped. */
export const LORAWAN_MIGRATIONS: readonly Migration[] = [
  // 1: sessions (LoRaWAN 1.0.3 §6.1.6 context) and used DevNonces (§6.2.4)
  `
  CREATE TABLE lorawan_session (
    dev_eui      TEXT PRIMARY KEY,
    dev_addr     TEXT NOT NULL,
    nwk_s_key    TEXT NOT NULL,
    app_s_key    TEXT NOT NULL,
    activation   TEXT NOT NULL,
    -- last accepted 32-bit uplink counter; NULL before the first uplink of the session
    f_cnt_up     INTEGER,
    -- next downlink counter
    n_f_cnt_down INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
  );
  CREATE INDEX lorawan_session_dev_addr ON lorawan_session (dev_addr);
  CREATE TABLE lorawan_dev_nonce (
    dev_eui   TEXT NOT NULL,
    dev_nonce INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    PRIMARY KEY (dev_eui, dev_nonce)
  ) WITHOUT ROWID;
  `,
  // 2: the duty-cycle ledger's transmissions of the last hour (wall-clock ms), kept across restarts
  `
  CREATE TABLE lorawan_airtime (
    gateway    TEXT NOT NULL,
    band       TEXT NOT NULL,
    at         INTEGER NOT NULL,
    airtime_ms REAL NOT NULL
  );
  CREATE INDEX lorawan_airtime_at ON lorawan_airtime (at);
  `,
  // 3: each device's MAC state (LoRaWAN 1.0.3 §5, mac/state.ts): what it runs at, its RX settings, the
  // ADR history, its last DevStatus and the MAC requests still pending, as one JSON document per device
  `
  CREATE TABLE lorawan_mac_state (
    dev_eui    TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
];

/**
 * The store's database with the LoRaWAN tables migrated. A store without module tables
 * (a test double) gets an in-memory database: sessions then do not survive a restart.
 */
export function lorawanDatabase(store: unknown, log: Logger): BetterSqlite3.Database {
  const tables = moduleDatabase(store, LORAWAN_MODULE, LORAWAN_MIGRATIONS);
  if (tables !== null) return tables;
  log.warn('store has no module tables: LoRaWAN sessions are kept in memory only');
  const db = new Database(':memory:');
  for (const m of LORAWAN_MIGRATIONS) {
    if (typeof m === 'string') db.exec(m);
    else m(db);
  }
  return db;
}
