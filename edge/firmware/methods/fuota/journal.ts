/**
 * The FUOTA sessions in the gateway's store (issue 18 Deliver 5): module `fuota` of the store's
 * migrations, beside the firmware journal's jobs. A session (one per deployment, wave and turn) is a
 * row of `fuota_sessions`, each of its nodes a row of `fuota_nodes`; each change is one SQLite
 * transaction, written before the next frame goes out, so that after a SIGKILL the coordinator
 * reloads the session where it was: its step, plan, McAddr and McKey, the next multicast FCnt (a
 * counter is reserved before its frame is sent: never reused), the fragments sent and the next one,
 * the highest fragment number used (repairs are numbered after it), and each node's step.
 *
 * `fuota_loss` keeps the fraction of fragments each node missed in its last session: the planner
 * sizes the next session's parity from it (per device, else the mean of its groups' members).
 * `fuota_counters` keeps the TS004 v2 SessionCnt each node took last (a node refuses one not above
 * its own last: the counter is per node).
 *
 * The McKey is a secret: it is stored as the LoRaWAN session keys are (the store's own file), never
 * logged or put in an event, and wiped when the session ends.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { FragVersion } from '../../../drivers/lorawan/app/index.js';
import { additive, type Migration } from '../../../store/migrations.js';
import { moduleDatabase, statementCache } from '../../../store/modules.js';
import { parseJson } from '../../journalTables.js';
import type { FirmwareCode } from '../../records.js';
import type { FuotaPlan } from './planner.js';

export const FUOTA_MODULE = 'fuota';

export const FUOTA_MIGRATIONS: readonly Migration[] = [
  // 1: sessions, their nodes, the loss each node showed (a new module: additive)
  additive(`CREATE TABLE fuota_sessions (
     id           TEXT PRIMARY KEY,
     deployment   TEXT NOT NULL,
     wave         INTEGER NOT NULL,
     turn         INTEGER NOT NULL,
     step         TEXT NOT NULL,
     frag_version INTEGER,
     plan         TEXT,
     mc_addr      TEXT NOT NULL,
     mc_key       TEXT NOT NULL,
     mc_fcnt      INTEGER NOT NULL,
     session_cnt  INTEGER NOT NULL,
     next_frag    INTEGER NOT NULL DEFAULT 1,
     resend       TEXT NOT NULL DEFAULT '[]',
     sent         INTEGER NOT NULL DEFAULT 0,
     highest_n    INTEGER NOT NULL DEFAULT 0,
     session_time INTEGER,
     window_end   INTEGER,
     deadline     INTEGER,
     started_at   INTEGER NOT NULL,
     ended_at     INTEGER
   ) WITHOUT ROWID;
   CREATE INDEX fuota_sessions_deployment ON fuota_sessions (deployment, wave, turn);
   CREATE TABLE fuota_nodes (
     session        TEXT NOT NULL,
     device         TEXT NOT NULL,
     step           TEXT NOT NULL,
     version_before INTEGER,
     frag_version   INTEGER,
     received       INTEGER,
     missing        INTEGER,
     repairs        INTEGER NOT NULL DEFAULT 0,
     rounds         INTEGER NOT NULL DEFAULT 0,
     reboot_at      INTEGER,
     code           TEXT,
     reason         TEXT,
     PRIMARY KEY (session, device)
   ) WITHOUT ROWID;
   CREATE TABLE fuota_loss (
     device   TEXT PRIMARY KEY,
     loss     REAL NOT NULL,
     sent     INTEGER NOT NULL,
     received INTEGER NOT NULL,
     at       INTEGER NOT NULL
   ) WITHOUT ROWID;`),
  // 2: per node, the window it took, its TS004 v2 SessionCnt, whether its reboot request was acknowledged;
  // the SessionCnt each node took last (fuota_sessions.session_cnt is no longer written: 0)
  additive(`ALTER TABLE fuota_nodes ADD COLUMN session_time INTEGER;
   ALTER TABLE fuota_nodes ADD COLUMN session_cnt INTEGER;
   ALTER TABLE fuota_nodes ADD COLUMN reboot_acked INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE fuota_counters (
     device      TEXT PRIMARY KEY,
     session_cnt INTEGER NOT NULL
   ) WITHOUT ROWID;`),
];

/**
 * Where a session is. setup: unicast requests (versions, package, group, fragmentation, class C);
 * multicast: the fragments; nodes: each node on its own (status and repair, reboot when the gates
 * and caps let it, its version after); ended.
 */
export const SESSION_STEPS = ['setup', 'multicast', 'nodes', 'ended'] as const;
export type SessionStep = (typeof SESSION_STEPS)[number];

/**
 * Where a node is. joined → versioned (DevVersionAns, PackageVersionAns) → grouped (McGroupSetupAns) →
 * fragSetup (FragSessionSetupReq sent: a re-send may meet a replay of its own counter) → ready
 * (FragSessionSetupAns, McClassCSessionAns) → received (the block whole) → rebooting (activating;
 * rebootAcked once DevRebootCountdownAns came) → verifying → done | failed; `current` when it
 * already runs the version; `moved` when it implements another TS004 version than the session's
 * nodes (a session of its own takes it).
 */
export const NODE_STEPS = ['joined', 'versioned', 'grouped', 'fragSetup', 'ready', 'received', 'rebooting', 'verifying', 'done', 'current', 'failed', 'moved'] as const;
export type NodeStep = (typeof NODE_STEPS)[number];
export const FINAL_NODE_STEPS: readonly NodeStep[] = ['done', 'current', 'failed', 'moved'];

export interface SessionRecord {
  id: string;
  deployment: string;
  wave: number;
  /** 0 for the wave's first session; a node that joined too late gets the next turn */
  turn: number;
  step: SessionStep;
  fragVersion: FragVersion | null;
  plan: FuotaPlan | null;
  mcAddr: string;
  /** empty once the session ended (wiped) */
  mcKey: Buffer;
  /** the next multicast FCnt not yet reserved */
  mcFCnt: number;
  /** the next fragment of the multicast sequence (1..M + parity) */
  nextFrag: number;
  /** fragments a TX_ACK error sent back, in the order they go again */
  resend: number[];
  /** multicast frames sent (TX_ACK without error) */
  sent: number;
  /** the highest fragment number the multicast sent: each node's repair parity is numbered after it */
  highestN: number;
  /** GPS s the class C window opens, and the GPS ms it closes */
  sessionTime: number | null;
  windowEnd: number | null;
  /** ms on the radio clock's wall time: the session's bound, from its plan */
  deadline: number | null;
  startedAt: number;
  endedAt: number | null;
}

export interface NodeRecord {
  session: string;
  device: string;
  step: NodeStep;
  versionBefore: number | null;
  /** the TS004 version the node implements (PackageVersionAns) */
  fragVersion: number | null;
  /** its last FragSessionStatusAns */
  received: number | null;
  missing: number | null;
  /** repair fragments sent to it, and the rounds */
  repairs: number;
  rounds: number;
  /** ms (radio clock) the node reboots at */
  rebootAt: number | null;
  /** the node answered DevRebootCountdownReq (or, countdown 0, the request went): else it is sent again on resume */
  rebootAcked: boolean;
  /** GPS s of the class C window the node took (McClassCSessionAns): a node on another window is given the session's */
  sessionTime: number | null;
  /** TS004 v2 SessionCnt of the node's FragSessionSetupReq */
  sessionCnt: number | null;
  code: FirmwareCode | null;
  reason: string | null;
}

export type SessionPatch = Partial<Omit<SessionRecord, 'id' | 'deployment' | 'wave' | 'turn' | 'mcAddr' | 'mcKey' | 'startedAt'>>;
export type NodePatch = Partial<Omit<NodeRecord, 'session' | 'device'>>;

interface SessionRow {
  id: string;
  deployment: string;
  wave: number;
  turn: number;
  step: string;
  frag_version: number | null;
  plan: string | null;
  mc_addr: string;
  mc_key: string;
  mc_fcnt: number;
  next_frag: number;
  resend: string;
  sent: number;
  highest_n: number;
  session_time: number | null;
  window_end: number | null;
  deadline: number | null;
  started_at: number;
  ended_at: number | null;
}

interface NodeRow {
  session: string;
  device: string;
  step: string;
  version_before: number | null;
  frag_version: number | null;
  received: number | null;
  missing: number | null;
  repairs: number;
  rounds: number;
  reboot_at: number | null;
  reboot_acked: number;
  session_time: number | null;
  session_cnt: number | null;
  code: string | null;
  reason: string | null;
}

const SESSION_COLUMNS: Record<keyof SessionPatch, string> = {
  step: 'step',
  fragVersion: 'frag_version',
  plan: 'plan',
  mcFCnt: 'mc_fcnt',
  nextFrag: 'next_frag',
  resend: 'resend',
  sent: 'sent',
  highestN: 'highest_n',
  sessionTime: 'session_time',
  windowEnd: 'window_end',
  deadline: 'deadline',
  endedAt: 'ended_at',
};

const NODE_COLUMNS: Record<keyof NodePatch, string> = {
  step: 'step',
  versionBefore: 'version_before',
  fragVersion: 'frag_version',
  received: 'received',
  missing: 'missing',
  repairs: 'repairs',
  rounds: 'rounds',
  rebootAt: 'reboot_at',
  rebootAcked: 'reboot_acked',
  sessionTime: 'session_time',
  sessionCnt: 'session_cnt',
  code: 'code',
  reason: 'reason',
};

export class FuotaJournal {
  private readonly stmt: (sql: string) => BetterSqlite3.Statement;

  private constructor(private readonly db: BetterSqlite3.Database) {
    this.stmt = statementCache(db);
  }

  /** The journal in the gateway's store, its tables migrated; null for a store without module tables. */
  static open(store: unknown): FuotaJournal | null {
    const db = moduleDatabase(store, FUOTA_MODULE, FUOTA_MIGRATIONS);
    return db === null ? null : new FuotaJournal(db);
  }

  /** A new session and its nodes, in one transaction. */
  addSession(s: SessionRecord, devices: readonly string[]): void {
    this.db.transaction(() => {
      this.stmt(
        `INSERT INTO fuota_sessions (id, deployment, wave, turn, step, frag_version, plan, mc_addr, mc_key, mc_fcnt, session_cnt, next_frag, resend, sent, highest_n,
           session_time, window_end, deadline, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(s.id, s.deployment, s.wave, s.turn, s.step, s.fragVersion, s.plan === null ? null : JSON.stringify(s.plan), s.mcAddr, s.mcKey.toString('hex'), s.mcFCnt, 0,
        s.nextFrag, JSON.stringify(s.resend), s.sent, s.highestN, s.sessionTime, s.windowEnd, s.deadline, s.startedAt, s.endedAt);
      for (const d of devices) this.addNode(s.id, d);
    })();
  }

  /** A node that joins a session still gathering. */
  addNode(session: string, device: string): void {
    this.stmt("INSERT OR IGNORE INTO fuota_nodes (session, device, step) VALUES (?, ?, 'joined')").run(session, device);
  }

  /** Sets what the patch names; committed when this returns. */
  patchSession(id: string, patch: SessionPatch): void {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof SessionPatch, unknown][];
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${SESSION_COLUMNS[k]} = ?`).join(', ');
    const values = entries.map(([k, v]) => (k === 'plan' ? (v === null ? null : JSON.stringify(v)) : k === 'resend' ? JSON.stringify(v) : v));
    this.stmt(`UPDATE fuota_sessions SET ${sets} WHERE id = ?`).run(...values, id);
  }

  patchNode(session: string, device: string, patch: NodePatch): void {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof NodePatch, unknown][];
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${NODE_COLUMNS[k]} = ?`).join(', ');
    this.stmt(`UPDATE fuota_nodes SET ${sets} WHERE session = ? AND device = ?`).run(...entries.map(([k, v]) => (k === 'rebootAcked' ? Number(v) : v)), session, device);
  }

  /** The session ends: its step, when, and its McKey wiped (no frame is ever sent with it again). */
  endSession(id: string, at: number): void {
    this.stmt("UPDATE fuota_sessions SET step = 'ended', ended_at = ?, mc_key = '' WHERE id = ?").run(at, id);
  }

  session(id: string): SessionRecord | undefined {
    const row = this.stmt('SELECT * FROM fuota_sessions WHERE id = ?').get(id) as SessionRow | undefined;
    return row === undefined ? undefined : toSession(row);
  }

  /** The sessions of a deployment's wave not ended, oldest turn first. */
  openSessions(deployment: string, wave: number): SessionRecord[] {
    const rows = this.stmt("SELECT * FROM fuota_sessions WHERE deployment = ? AND wave = ? AND step <> 'ended' ORDER BY turn").all(deployment, wave) as SessionRow[];
    return rows.map(toSession);
  }

  /** The turns a wave has had (the next session's turn). */
  turns(deployment: string, wave: number): number {
    return (this.stmt('SELECT count(*) FROM fuota_sessions WHERE deployment = ? AND wave = ?').pluck().get(deployment, wave) as number) ?? 0;
  }

  nodes(session: string): NodeRecord[] {
    const rows = this.stmt('SELECT * FROM fuota_nodes WHERE session = ? ORDER BY device').all(session) as NodeRow[];
    return rows.map(toNode);
  }

  /** The TS004 v2 SessionCnt a node took last, null when none (TS004 v2 §3.3: it refuses one not above it). */
  lastSessionCnt(device: string): number | null {
    return (this.stmt('SELECT session_cnt FROM fuota_counters WHERE device = ?').pluck().get(device) as number | undefined) ?? null;
  }

  /** Records the SessionCnt a node is sent, before it goes (a counter refused as a replay is never sent again). */
  useSessionCnt(device: string, sessionCnt: number): void {
    this.stmt('INSERT OR REPLACE INTO fuota_counters (device, session_cnt) VALUES (?, ?)').run(device, sessionCnt);
  }

  /** The loss a node showed in its last session. */
  recordLoss(device: string, sent: number, received: number, at: number): void {
    const loss = sent > 0 ? Math.max(0, Math.min(1, 1 - received / sent)) : 0;
    this.stmt('INSERT OR REPLACE INTO fuota_loss (device, loss, sent, received, at) VALUES (?, ?, ?, ?, ?)').run(device, loss, sent, received, at);
  }

  /** The losses observed of these devices (absent: nothing observed), in one query. */
  losses(devices: readonly string[]): Map<string, number> {
    if (devices.length === 0) return new Map();
    const rows = this.stmt('SELECT device, loss FROM fuota_loss WHERE device IN (SELECT value FROM json_each(?))').all(JSON.stringify(devices)) as { device: string; loss: number }[];
    return new Map(rows.map((r) => [r.device, r.loss]));
  }
}

/** A JSON list of fragment numbers; anything else (a row not JSON any more) reads as none. */
function parseList(text: string): number[] {
  const v = parseJson(text);
  return Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : [];
}

function toSession(r: SessionRow): SessionRecord {
  return {
    id: r.id,
    deployment: r.deployment,
    wave: r.wave,
    turn: r.turn,
    step: r.step as SessionStep,
    fragVersion: r.frag_version === 1 || r.frag_version === 2 ? r.frag_version : null,
    plan: r.plan === null ? null : ((parseJson(r.plan) as FuotaPlan | undefined) ?? null),
    mcAddr: r.mc_addr,
    mcKey: Buffer.from(r.mc_key, 'hex'),
    mcFCnt: r.mc_fcnt,
    nextFrag: r.next_frag,
    resend: parseList(r.resend),
    sent: r.sent,
    highestN: r.highest_n,
    sessionTime: r.session_time,
    windowEnd: r.window_end,
    deadline: r.deadline,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}

function toNode(r: NodeRow): NodeRecord {
  return {
    session: r.session,
    device: r.device,
    step: r.step as NodeStep,
    versionBefore: r.version_before,
    fragVersion: r.frag_version,
    received: r.received,
    missing: r.missing,
    repairs: r.repairs,
    rounds: r.rounds,
    rebootAt: r.reboot_at,
    rebootAcked: r.reboot_acked === 1,
    sessionTime: r.session_time,
    sessionCnt: r.session_cnt,
    code: r.code as FirmwareCode | null,
    reason: r.reason,
  };
}
