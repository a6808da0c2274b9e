/**
 * The firmware journal's tables (module `firmware` of the store's migrations) and how their rows
 * read as records (journal.ts writes and queries them). Migrations are append-only; each one
 * declared additive stays readable by the release before it (store/migrations.ts).
 */
import { additive, type Migration } from '../store/migrations.js';
import type { ArtifactRef, DeploymentRecord, DeploymentSource, DeploymentStatus, FirmwareCode, JobRecord, JobStage } from './records.js';

export const FIRMWARE_MODULE = 'firmware';

export const FIRMWARE_MIGRATIONS: readonly Migration[] = [
  // 1: deployments, their jobs, the reports for central (a new module: additive, a release without it never opens them)
  additive(`CREATE TABLE firmware_deployments (
     n           INTEGER PRIMARY KEY AUTOINCREMENT,
     id          TEXT NOT NULL,
     source      TEXT NOT NULL,
     principal   TEXT NOT NULL,
     role        TEXT NOT NULL,
     manifest    TEXT NOT NULL,
     artifact    TEXT NOT NULL,
     status      TEXT NOT NULL,
     reason      TEXT,
     code        TEXT,
     wave        INTEGER NOT NULL DEFAULT 0,
     accepted_at INTEGER NOT NULL,
     deadline    INTEGER NOT NULL,
     ended_at    INTEGER
   );
   CREATE UNIQUE INDEX firmware_deployments_id ON firmware_deployments (id) WHERE status <> 'rejected';
   CREATE INDEX firmware_deployments_status ON firmware_deployments (status, n);
   CREATE TABLE firmware_jobs (
     deployment     TEXT NOT NULL,
     device         TEXT NOT NULL,
     ord            INTEGER NOT NULL,
     method         TEXT NOT NULL,
     wave           INTEGER NOT NULL,
     stage          TEXT NOT NULL,
     blocks_acked   INTEGER NOT NULL DEFAULT 0,
     blocks_total   INTEGER NOT NULL DEFAULT 0,
     bytes_acked    INTEGER NOT NULL DEFAULT 0,
     version_before,
     version_after,
     waiting        TEXT,
     code           TEXT,
     reason         TEXT,
     attempts       INTEGER NOT NULL DEFAULT 0,
     stage_at       INTEGER NOT NULL,
     started_at     INTEGER,
     ended_at       INTEGER,
     PRIMARY KEY (deployment, device)
   ) WITHOUT ROWID;
   CREATE INDEX firmware_jobs_stage ON firmware_jobs (stage, deployment);
   CREATE TABLE firmware_outbox (
     seq      INTEGER PRIMARY KEY AUTOINCREMENT,
     topic_id TEXT NOT NULL UNIQUE,
     status   TEXT NOT NULL,
     report   TEXT NOT NULL
   );`),
];

export interface DeploymentRow {
  n: number;
  id: string;
  source: string;
  principal: string;
  role: string;
  manifest: string;
  artifact: string;
  status: string;
  reason: string | null;
  code: string | null;
  wave: number;
  accepted_at: number;
  deadline: number;
  ended_at: number | null;
}

export interface JobRow {
  deployment: string;
  device: string;
  method: string;
  wave: number;
  stage: string;
  blocks_acked: number;
  blocks_total: number;
  bytes_acked: number;
  version_before: number | string | null;
  version_after: number | string | null;
  waiting: string | null;
  code: string | null;
  reason: string | null;
  attempts: number;
  stage_at: number;
  started_at: number | null;
  ended_at: number | null;
}

/** a job's columns, the jobs table called `j` */
export const JOB_COLUMNS =
  'j.deployment, j.device, j.method, j.wave, j.stage, j.blocks_acked, j.blocks_total, j.bytes_acked, j.version_before, j.version_after, j.waiting, j.code, j.reason, j.attempts, j.stage_at, j.started_at, j.ended_at';

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function toDeployment(r: DeploymentRow): DeploymentRecord {
  return {
    id: r.id,
    source: r.source as DeploymentSource,
    principal: r.principal,
    role: r.role,
    manifest: r.manifest,
    artifact: parseJson(r.artifact) as ArtifactRef,
    status: r.status as DeploymentStatus,
    reason: r.reason,
    code: r.code as FirmwareCode | null,
    wave: r.wave,
    acceptedAt: r.accepted_at,
    deadline: r.deadline,
    endedAt: r.ended_at,
  };
}

export function toJob(r: JobRow): JobRecord {
  return {
    deployment: r.deployment,
    device: r.device,
    method: r.method,
    wave: r.wave,
    stage: r.stage as JobStage,
    blocksAcked: r.blocks_acked,
    blocksTotal: r.blocks_total,
    bytesAcked: r.bytes_acked,
    versionBefore: r.version_before,
    versionAfter: r.version_after,
    waiting: r.waiting,
    code: r.code as FirmwareCode | null,
    reason: r.reason,
    attempts: r.attempts,
    stageAt: r.stage_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}
