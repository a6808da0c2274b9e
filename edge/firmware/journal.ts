/**
 * The firmware journal in the gateway's store (issue 17): module `firmware` of the store's
 * migrations. A deployment is a row of `firmware_deployments`, its jobs (one per device) rows of
 * `firmware_jobs`, both written in one transaction; the latest report of each deployment for
 * `up/deployments/<id>` is a row of `firmware_outbox` until the sync has delivered it.
 *
 * What the engine resumes from after a SIGKILL or a power cut is what this journal holds: each
 * write is one SQLite transaction (the store runs WAL), so it is on disk when the call returns.
 * Statuses and stages only move forward: a deployment ends once (completed, halted, cancelled;
 * rejected when it is recorded), running ↔ paused being the one way back and forth; a job's stage
 * moves in JOB_STAGES order and never leaves a final one; its acknowledged blocks never go back.
 *
 * Bounded: refusals are rows too (status rejected; an id may repeat there, since a duplicate's
 * own refusal is recorded under the id it duplicates), the newest MAX_REJECTED of them kept, the
 * manifest text only for the newest MAX_REJECTED_TEXT (a script sending broken manifests must not
 * fill the disk); the outbox keeps one report per deployment, and refusals' reports beyond
 * MAX_OUTBOX waiting for delivery are dropped, oldest first.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import { moduleDatabase, statementCache } from '../store/modules.js';
import { FirmwareError } from './errors.js';
import { FIRMWARE_MIGRATIONS, FIRMWARE_MODULE, JOB_COLUMNS, parseJson, toDeployment, toJob, type DeploymentRow, type JobRow } from './journalTables.js';
import {
  FINAL_DEPLOYMENT_STATUSES,
  FINAL_JOB_STAGES,
  JOB_STAGES,
  type DeploymentOutbox,
  type DeploymentRecord,
  type DeploymentReport,
  type DeploymentStatus,
  type FirmwareCode,
  type JobRecord,
  type JobStage,
} from './types.js';

export { FIRMWARE_MIGRATIONS, FIRMWARE_MODULE };

/** Rejected deployments kept; older refusals are deleted (the log counts them). */
export const MAX_REJECTED = 500;
/** Rejected deployments that keep their manifest text (up to MAX_MANIFEST_BYTES each); older ones keep ''. */
export const MAX_REJECTED_TEXT = 50;
/** Reports waiting for delivery beyond which refusals' reports are dropped, oldest first. */
export const MAX_OUTBOX = 1000;
/** Rows a list returns at most. */
export const MAX_LIST = 1000;

/** What a job's stage change may set beside the stage. */
export type AdvancePatch = Partial<Pick<JobRecord, 'code' | 'reason' | 'versionBefore' | 'versionAfter' | 'blocksTotal' | 'waiting'>>;
export interface JobPatch {
  waiting?: string | null;
  attempts?: number;
  versionBefore?: number | string | null;
  code?: FirmwareCode | null;
  reason?: string | null;
}
export interface StatusPatch {
  reason?: string | null;
  code?: FirmwareCode | null;
  endedAt?: number;
}
export interface PendingDeploymentReport {
  seq: number;
  topicId: string;
  report: DeploymentReport;
}

const FINAL_STATUSES_SQL = FINAL_DEPLOYMENT_STATUSES.map((s) => `'${s}'`).join(', ');
const FINAL_STAGES_SQL = FINAL_JOB_STAGES.map((s) => `'${s}'`).join(', ');
/** the deployment an id names: the accepted one, else its newest refusal */
const DEPLOYMENT_BY_ID = "SELECT * FROM firmware_deployments WHERE id = ? ORDER BY (status = 'rejected'), n DESC LIMIT 1";

export class FirmwareJournal {
  private readonly stmt: (sql: string) => BetterSqlite3.Statement;
  /** refusals deleted past MAX_REJECTED since the gateway started */
  private rejectedDropped = 0;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly log: Logger,
  ) {
    this.stmt = statementCache(db);
  }

  /** The journal in the gateway's store, its tables migrated; null for a store without module tables. */
  static open(store: unknown, log: Logger): FirmwareJournal | null {
    const db = moduleDatabase(store, FIRMWARE_MODULE, FIRMWARE_MIGRATIONS);
    return db === null ? null : new FirmwareJournal(db, log);
  }

  // ───────────────────────────── deployments ─────────────────────────────

  /** An accepted deployment and its jobs, in one transaction. Throws E_FW_DUPLICATE for an id recorded (not rejected) before. */
  addDeployment(d: DeploymentRecord, jobs: JobRecord[]): void {
    if (d.status === 'rejected') throw new StreetboxError('E_STORE', `deployment ${d.id}: a refusal is recorded with reject()`);
    const stray = jobs.find((j) => j.deployment !== d.id);
    if (stray !== undefined) throw new StreetboxError('E_STORE', `job ${stray.deployment}/${stray.device} is not of deployment ${d.id}`);
    try {
      this.db.transaction(() => {
        this.insertDeployment(d);
        const insert = this.stmt(
          `INSERT INTO firmware_jobs (deployment, device, ord, method, wave, stage, blocks_acked, blocks_total, bytes_acked, version_before, version_after,
             waiting, code, reason, attempts, stage_at, started_at, ended_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        for (const [ord, j] of jobs.entries()) {
          insert.run(j.deployment, j.device, ord, j.method, j.wave, j.stage, j.blocksAcked, j.blocksTotal, j.bytesAcked, j.versionBefore, j.versionAfter,
            j.waiting, j.code, j.reason, j.attempts, j.stageAt, j.startedAt, j.endedAt);
        }
      })();
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new FirmwareError('E_FW_DUPLICATE', `a deployment with id "${d.id}" is recorded already`, { cause: err });
      }
      throw err;
    }
  }

  /** A refused deployment (status rejected, ended). The newest MAX_REJECTED are kept. */
  reject(d: DeploymentRecord): void {
    this.db.transaction(() => {
      this.insertDeployment({ ...d, status: 'rejected', endedAt: d.endedAt ?? d.acceptedAt });
      const dropped = this.stmt(
        `DELETE FROM firmware_deployments WHERE status = 'rejected' AND n < (
           SELECT n FROM firmware_deployments WHERE status = 'rejected' ORDER BY n DESC LIMIT 1 OFFSET ${MAX_REJECTED - 1})`,
      ).run().changes;
      this.stmt(
        `UPDATE firmware_deployments SET manifest = '' WHERE status = 'rejected' AND manifest <> '' AND n < (
           SELECT n FROM firmware_deployments WHERE status = 'rejected' ORDER BY n DESC LIMIT 1 OFFSET ${MAX_REJECTED_TEXT - 1})`,
      ).run();
      if (dropped > 0) {
        this.rejectedDropped += dropped;
        this.log.warn({ dropped, droppedSinceStart: this.rejectedDropped, kept: MAX_REJECTED }, 'firmware: oldest refused deployments deleted');
      }
    })();
  }

  /** The deployment `id` names: the accepted one, else its newest refusal. */
  deployment(id: string): DeploymentRecord | undefined {
    const row = this.stmt(DEPLOYMENT_BY_ID).get(id) as DeploymentRow | undefined;
    return row === undefined ? undefined : toDeployment(row);
  }

  /** Newest first; `active`: not ended (running, paused, ending). */
  deployments(q: { limit: number; active?: boolean }): DeploymentRecord[] {
    const limit = Math.max(0, Math.min(MAX_LIST, Math.floor(Number.isFinite(q.limit) ? q.limit : 0)));
    const where = q.active === true ? `WHERE status NOT IN (${FINAL_STATUSES_SQL})` : '';
    const rows = this.stmt(`SELECT * FROM firmware_deployments ${where} ORDER BY n DESC LIMIT ?`).all(limit) as DeploymentRow[];
    return rows.map(toDeployment);
  }

  /**
   * Moves a deployment to `status`: running ↔ paused, or to a final status (completed, halted,
   * cancelled; ended at patch.endedAt, else now). A final one never moves, and rejected is only
   * recorded by reject(): both throw E_FW_FINAL. Moving to running clears the reason and code
   * unless the patch sets them; otherwise a field the patch leaves out is kept.
   */
  setStatus(id: string, status: DeploymentStatus, patch: StatusPatch = {}): DeploymentRecord {
    return this.db.transaction((): DeploymentRecord => {
      const row = this.deploymentRow(id);
      if (isFinalStatus(row.status)) throw new FirmwareError('E_FW_FINAL', `deployment ${id} has ended (${row.status}): it cannot become ${status}`);
      if (status === 'rejected') throw new FirmwareError('E_FW_FINAL', `deployment ${id} was accepted: it cannot become rejected`);
      if (row.status === 'ending' && !isFinalStatus(status)) throw new FirmwareError('E_FW_FINAL', `deployment ${id} is ending: it can only end`);
      const final = isFinalStatus(status);
      const clear = status === 'running';
      this.stmt(
        `UPDATE firmware_deployments SET status = ?,
           reason = CASE WHEN ? THEN ? WHEN ? THEN NULL ELSE reason END,
           code = CASE WHEN ? THEN ? WHEN ? THEN NULL ELSE code END,
           ended_at = CASE WHEN ? THEN ? ELSE ended_at END
         WHERE n = ?`,
      ).run(
        status,
        flag(patch.reason), patch.reason ?? null, flag(clear),
        flag(patch.code), patch.code ?? null, flag(clear),
        flag(final), final ? (patch.endedAt ?? Date.now()) : null,
        row.n,
      );
      return toDeployment(this.stmt('SELECT * FROM firmware_deployments WHERE n = ?').get(row.n) as DeploymentRow);
    })();
  }

  /** The wave running now; waves only move forward (a smaller value is ignored). Throws E_FW_FINAL for an ended deployment. */
  setWave(id: string, wave: number): void {
    const row = this.deploymentRow(id);
    if (isFinalStatus(row.status)) throw new FirmwareError('E_FW_FINAL', `deployment ${id} has ended (${row.status}): its wave does not move`);
    this.stmt('UPDATE firmware_deployments SET wave = ? WHERE n = ? AND wave < ?').run(wave, row.n, wave);
  }

  // ───────────────────────────── jobs ─────────────────────────────

  /** A deployment's jobs, by wave, then in the order addDeployment was given them. */
  jobs(deployment: string): JobRecord[] {
    const rows = this.stmt(`SELECT ${JOB_COLUMNS} FROM firmware_jobs j WHERE j.deployment = ? ORDER BY j.wave, j.ord`).all(deployment) as JobRow[];
    return rows.map(toJob);
  }

  job(deployment: string, device: string): JobRecord | undefined {
    const row = this.jobRow(deployment, device);
    return row === undefined ? undefined : toJob(row);
  }

  /** Jobs not ended, of deployments not ended (what a restart resumes): oldest deployment first, then by wave and order. */
  activeJobs(): JobRecord[] {
    const rows = this.stmt(
      `SELECT ${JOB_COLUMNS} FROM firmware_jobs j JOIN firmware_deployments d ON d.id = j.deployment AND d.status NOT IN (${FINAL_STATUSES_SQL})
       WHERE j.stage NOT IN (${FINAL_STAGES_SQL}) ORDER BY d.n, j.wave, j.ord`,
    ).all() as JobRow[];
    return rows.map(toJob);
  }

  /**
   * Moves a job to `stage` at `at`, forward in JOB_STAGES order (the same stage again restarts it:
   * its timeout and attempts count anew); a final stage never moves. Anything else throws
   * E_FW_FINAL. Sets stageAt, attempts = 0, startedAt on the first working stage (fetching …
   * verifying), endedAt on a final stage; `waiting` is cleared unless the patch sets it; other
   * fields the patch leaves out are kept.
   */
  advance(deployment: string, device: string, stage: JobStage, patch: AdvancePatch = {}, at: number = Date.now()): JobRecord {
    return this.db.transaction((): JobRecord => {
      const row = this.jobRow(deployment, device);
      if (row === undefined) throw new FirmwareError('E_NOT_FOUND', `no job for ${device} in deployment ${deployment}`);
      const from = row.stage as JobStage;
      if (isFinalStage(from)) throw new FirmwareError('E_FW_FINAL', `job ${deployment}/${device} has ended (${from}): it cannot move to ${stage}`);
      if (JOB_STAGES.indexOf(stage) < JOB_STAGES.indexOf(from)) {
        throw new FirmwareError('E_FW_FINAL', `job ${deployment}/${device} cannot go back from ${from} to ${stage} (stages only move forward)`);
      }
      const final = isFinalStage(stage);
      const working = !final && stage !== 'pending';
      this.stmt(
        `UPDATE firmware_jobs SET stage = ?, stage_at = ?, attempts = 0,
           started_at = CASE WHEN ? THEN coalesce(started_at, ?) ELSE started_at END,
           ended_at = CASE WHEN ? THEN ? ELSE ended_at END,
           waiting = ?,
           code = CASE WHEN ? THEN ? ELSE code END,
           reason = CASE WHEN ? THEN ? ELSE reason END,
           version_before = CASE WHEN ? THEN ? ELSE version_before END,
           version_after = CASE WHEN ? THEN ? ELSE version_after END,
           blocks_total = CASE WHEN ? THEN ? ELSE blocks_total END
         WHERE deployment = ? AND device = ?`,
      ).run(
        stage, at,
        flag(working), at,
        flag(final), at,
        patch.waiting ?? null,
        flag(patch.code), patch.code ?? null,
        flag(patch.reason), patch.reason ?? null,
        flag(patch.versionBefore), patch.versionBefore ?? null,
        flag(patch.versionAfter), patch.versionAfter ?? null,
        flag(patch.blocksTotal), patch.blocksTotal ?? 0,
        deployment, device,
      );
      return toJob(this.jobRow(deployment, device)!);
    })();
  }

  /**
   * Blocks (and bytes) the device acknowledged: one UPDATE, committed when this returns. Never
   * backwards (a count not above the journaled one is ignored), never on an ended job; an
   * unknown job is ignored too (this is the transfer's hot path).
   */
  progress(deployment: string, device: string, blocksAcked: number, bytesAcked: number): void {
    this.stmt(`UPDATE firmware_jobs SET blocks_acked = ?, bytes_acked = ? WHERE deployment = ? AND device = ? AND blocks_acked < ? AND stage NOT IN (${FINAL_STAGES_SQL})`).run(
      blocksAcked,
      bytesAcked,
      deployment,
      device,
      blocksAcked,
    );
  }

  /**
   * The one backward move of progress: the device lost what it had acknowledged (its checksum
   * differs after a power cut of the controller), so the image goes again from block 0. The stage
   * stays; `reason` records why.
   */
  restartTransfer(deployment: string, device: string, reason: string): void {
    this.stmt(`UPDATE firmware_jobs SET blocks_acked = 0, bytes_acked = 0, reason = ? WHERE deployment = ? AND device = ? AND stage NOT IN (${FINAL_STAGES_SQL})`).run(reason, deployment, device);
  }

  /** Sets what the patch names (a field left out is kept), the stage unchanged. Throws E_NOT_FOUND for an unknown job. */
  patchJob(deployment: string, device: string, patch: JobPatch): void {
    const changes = this.stmt(
      `UPDATE firmware_jobs SET
         waiting = CASE WHEN ? THEN ? ELSE waiting END,
         attempts = CASE WHEN ? THEN ? ELSE attempts END,
         version_before = CASE WHEN ? THEN ? ELSE version_before END,
         code = CASE WHEN ? THEN ? ELSE code END,
         reason = CASE WHEN ? THEN ? ELSE reason END
       WHERE deployment = ? AND device = ?`,
    ).run(
      flag(patch.waiting), patch.waiting ?? null,
      flag(patch.attempts), patch.attempts ?? 0,
      flag(patch.versionBefore), patch.versionBefore ?? null,
      flag(patch.code), patch.code ?? null,
      flag(patch.reason), patch.reason ?? null,
      deployment, device,
    ).changes;
    if (changes === 0) throw new FirmwareError('E_NOT_FOUND', `no job for ${device} in deployment ${deployment}`);
  }

  // ───────────────────────────── the outbox ─────────────────────────────

  /** The latest report of a deployment for `up/deployments/<id>`: replaces the one waiting, under a new seq. */
  queueReport(report: DeploymentReport): void {
    this.db.transaction(() => {
      this.stmt('DELETE FROM firmware_outbox WHERE topic_id = ?').run(report.id);
      this.stmt('INSERT INTO firmware_outbox (topic_id, status, report) VALUES (?, ?, ?)').run(report.id, report.status, JSON.stringify(report));
      const waiting = this.stmt('SELECT count(*) FROM firmware_outbox').pluck().get() as number;
      if (waiting > MAX_OUTBOX) {
        const dropped = this.stmt(
          "DELETE FROM firmware_outbox WHERE seq IN (SELECT seq FROM firmware_outbox WHERE status = 'rejected' ORDER BY seq LIMIT ?)",
        ).run(waiting - MAX_OUTBOX).changes;
        if (dropped > 0) this.log.warn({ dropped, kept: MAX_OUTBOX }, 'firmware: undelivered reports of refused deployments dropped');
      }
    })();
  }

  /** Reports not delivered yet, oldest first. A row that is not JSON any more is dropped (said in the log). */
  pendingReports(limit: number): PendingDeploymentReport[] {
    const n = Math.max(0, Math.min(MAX_LIST, Math.floor(Number.isFinite(limit) ? limit : 0)));
    const rows = this.stmt('SELECT seq, topic_id, report FROM firmware_outbox ORDER BY seq LIMIT ?').all(n) as { seq: number; topic_id: string; report: string }[];
    const out: PendingDeploymentReport[] = [];
    for (const r of rows) {
      const report = parseJson(r.report);
      if (typeof report === 'object' && report !== null) {
        out.push({ seq: r.seq, topicId: r.topic_id, report: report as DeploymentReport });
      } else {
        this.log.error({ seq: r.seq, deployment: r.topic_id }, 'firmware: a queued deployment report is not JSON; dropped');
        this.stmt('DELETE FROM firmware_outbox WHERE seq = ?').run(r.seq);
      }
    }
    return out;
  }

  /** Report `seq` reached central's broker (a newer report of the deployment, under another seq, stays). */
  reportDelivered(seq: number): void {
    this.stmt('DELETE FROM firmware_outbox WHERE seq = ?').run(seq);
  }

  /** The outbox as the sync sees it (types.ts DeploymentOutbox). */
  outbox(): DeploymentOutbox {
    return { pending: (limit) => this.pendingReports(limit), delivered: (seq) => this.reportDelivered(seq) };
  }

  // ───────────────────────────── inside ─────────────────────────────

  private insertDeployment(d: DeploymentRecord): void {
    this.stmt(
      `INSERT INTO firmware_deployments (id, source, principal, role, manifest, artifact, status, reason, code, wave, accepted_at, deadline, ended_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(d.id, d.source, d.principal, d.role, d.manifest, JSON.stringify(d.artifact), d.status, d.reason, d.code, d.wave, d.acceptedAt, d.deadline, d.endedAt);
  }

  private deploymentRow(id: string): DeploymentRow {
    const row = this.stmt(DEPLOYMENT_BY_ID).get(id) as DeploymentRow | undefined;
    if (row === undefined) throw new FirmwareError('E_NOT_FOUND', `no deployment "${id}"`);
    return row;
  }

  private jobRow(deployment: string, device: string): JobRow | undefined {
    return this.stmt(`SELECT ${JOB_COLUMNS} FROM firmware_jobs j WHERE j.deployment = ? AND j.device = ?`).get(deployment, device) as JobRow | undefined;
  }
}

/** 1 when a patch sets the field (null included), 0 when it leaves it out: SQLite has no booleans. */
function flag(v: unknown): number {
  return v === undefined || v === false ? 0 : 1;
}

function isFinalStatus(s: string): boolean {
  return (FINAL_DEPLOYMENT_STATUSES as readonly string[]).includes(s);
}

function isFinalStage(s: string): boolean {
  return (FINAL_JOB_STAGES as readonly string[]).includes(s);
}
