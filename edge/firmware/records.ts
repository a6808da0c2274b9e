/**
 * The records of firmware orchestration (issue 17, DESIGN.md "Fleet operations"), as data: the
 * manifest central or a technician sends, the deployment and job rows the store journals, the
 * reports a door gets back and the events carry. No imports, so the bus, the event kinds and the
 * error codes can name them. The parts and the road: types.ts.
 */

/** a deployment's id: a topic level, the same rule as a configuration change's id */
export const DEPLOYMENT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** the largest manifest envelope a gateway takes, from any door */
export const MAX_MANIFEST_BYTES = 256 * 1024;

/** The first line of every signed manifest message (manifest.ts signedManifestMessage). */
export const MANIFEST_SIGNATURE_TAG = 'streetbox-deploy-v1';

// ---------------------------------------------------------------------------------------
// The manifest (JSON; zod schema in manifest.ts)

/** Where the artifact comes from. */
export type ArtifactSource =
  /** an HTTP(S) URL of central (http:// only to loopback, for tests and a local mirror) */
  | { url: string }
  /** chunks over MQTT: central publishes `streetbox/<gw>/down/artifacts/<sha256>/<index>` (QoS 1), each `chunkBytes` long but the last */
  | { mqtt: { chunkBytes: number } }
  /** already in the gateway's artifact store (a technician's `streetbox deploy --artifact FILE` puts it there) */
  | { local: true };

export interface ArtifactRef {
  /** the firmware's name, for humans: `slc-2ch` */
  name: string;
  /** the version in words: `2.4.1` (the gateway's own: its package version) */
  version: string;
  /** what the device's version point reads once it runs this image (devices only; the gateway compares `version`) */
  versionCode?: number;
  /** bytes */
  size: number;
  /** lowercase hex */
  sha256: string;
  source: ArtifactSource;
}

/** What to update: the union of the lists; at least one entry. */
export interface DeploymentTargets {
  devices?: string[];
  groups?: string[];
  /** every device with this profile */
  profiles?: string[];
  /** every device of this kind (`lighting`, `traffic`, `other`) */
  kinds?: string[];
  /** the gateway itself (its releases, selfUpdate.ts); not with device targets */
  gateway?: boolean;
}

/** A time window in the gateway's timezone: `from` to `to` (HH:MM; past midnight when `to` < `from`), on the days listed (default all). */
export interface TimeWindow {
  from: string;
  to: string;
  days?: ('mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun')[];
}

export interface Wave {
  /** how many jobs: a count, or a share of all targets (`"25%"`); the last wave takes what is left */
  size: number | string;
  /** the share of the wave's jobs that must end confirmed for the next wave to start (default 1) */
  successThreshold?: number;
  /** the share of the wave's jobs that may end failed before the deployment halts (default 0: the first failure halts) */
  errorThreshold?: number;
}

export interface DeploymentPolicy {
  /** default: one wave of everything */
  waves?: Wave[];
  /** maintenance windows (any one of them): a job starts only inside one; default: any time (city safety still gates) */
  windows?: TimeWindow[];
  /** jobs transferring at once per bus (default 1) */
  maxPerBus?: number;
  /** jobs under way at once per group (default 1); lights are also capped by firmware.lights.maxGroupShare */
  maxPerGroup?: number;
  /** ms UTC: jobs not started by then end failed (E_FW_EXPIRED); default: accepted + firmware.deploymentTtl */
  deadline?: number;
}

export interface Manifest {
  /** the deployment's id (DEPLOYMENT_ID_RE) */
  id: string;
  /** the gateway it is for (the signature covers it: a manifest is not replayed on another gateway) */
  gateway: string;
  artifact: ArtifactRef;
  targets: DeploymentTargets;
  policy?: DeploymentPolicy;
  /** free text for the record */
  description?: string;
}

/** What the doors carry: the manifest as its exact JSON text, and an ed25519 signature (base64) over signedManifestMessage(text). */
export interface ManifestEnvelope {
  manifest: string;
  signature: string;
}

// ---------------------------------------------------------------------------------------
// Deployments and jobs (journal.ts)

export type DeploymentSource = 'central' | 'technician';

/**
 * `ending`: halted or cancelled (its `code` says which) while a device is still being activated or a
 * transfer stopping: nothing new starts, and it ends once those jobs have.
 */
export const DEPLOYMENT_STATUSES = ['running', 'paused', 'ending', 'completed', 'halted', 'cancelled', 'rejected'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];
export const FINAL_DEPLOYMENT_STATUSES: readonly DeploymentStatus[] = ['completed', 'halted', 'cancelled', 'rejected'];

export const JOB_STAGES = ['pending', 'fetching', 'transferring', 'activating', 'verifying', 'confirmed', 'failed', 'rolledBack', 'cancelled'] as const;
export type JobStage = (typeof JOB_STAGES)[number];
export const FINAL_JOB_STAGES: readonly JobStage[] = ['confirmed', 'failed', 'rolledBack', 'cancelled'];

/** Why a deployment or a job was refused or failed. */
export type FirmwareCode =
  | 'E_FW_INVALID' // the manifest does not parse or validate (errors name the field)
  | 'E_FW_SIGNATURE' // unsigned, malformed or no configured key verifies it
  | 'E_FW_GATEWAY' // the manifest names another gateway
  | 'E_FW_DUPLICATE' // a deployment with this id exists (the original's report is re-published)
  | 'E_FW_TARGET' // a target that does not exist, or whose profile declares no update method
  | 'E_FW_FORBIDDEN' // the principal's role may not (traffic controllers need command.traffic)
  | 'E_FW_ARTIFACT' // the artifact's size or sha256 differs, or it could not be fetched
  | 'E_FW_QUOTA' // the artifact does not fit in firmware.artifacts.maxBytes
  | 'E_FW_TRANSFER' // the device stopped answering or refused a block past the retries
  | 'E_FW_EXCEPTION' // the device answered with Modbus exceptions past the retries
  | 'E_FW_VERIFY' // after its reboot the device reads another version (a device that lies), or its checksum differs
  | 'E_FW_PROBE' // the functional probe failed
  | 'E_FW_TIMEOUT' // a stage took longer than its timeout
  | 'E_FW_EXPIRED' // the job could not start before the deployment's deadline
  | 'E_FW_HALTED' // its wave's errors passed the threshold: the jobs not started are cancelled
  | 'E_FW_CANCELLED' // cancelled by central or a technician
  | 'E_FW_ROLLED_BACK' // the gateway's new release was not healthy: the previous one runs again
  | 'E_FW_INTERRUPTED'; // a stage that cannot resume (activating without the device's answer) after a crash

/** A deployment row. */
export interface DeploymentRecord {
  id: string;
  source: DeploymentSource;
  principal: string;
  /** the principal's role (what it may update) */
  role: string;
  /** the manifest text as received (the signature covers it) */
  manifest: string;
  artifact: ArtifactRef;
  status: DeploymentStatus;
  /** why halted, cancelled or rejected */
  reason: string | null;
  code: FirmwareCode | null;
  /** the wave running now, 0-based */
  wave: number;
  acceptedAt: number;
  deadline: number;
  endedAt: number | null;
}

/** A job row: one device (or the gateway) of one deployment. */
export interface JobRecord {
  deployment: string;
  /** a device id, or the gateway's id for a self-update */
  device: string;
  /** `fileRecord`, `registerBlock`, `fuota`, `gateway` */
  method: string;
  /** the wave it belongs to, 0-based */
  wave: number;
  stage: JobStage;
  /** blocks the device acknowledged (the transfer resumes from here); FUOTA: fragments of the block the node holds, by its last status */
  blocksAcked: number;
  blocksTotal: number;
  /** bytes acknowledged (blocksAcked × block bytes, at most the size) */
  bytesAcked: number;
  /** what the version point read before the update, and after it */
  versionBefore: number | string | null;
  versionAfter: number | string | null;
  /** why it waits (`night: lights update by day from 08:12`, `window`, `program request active`, `override by technician`, `bus busy`), null when not waiting */
  waiting: string | null;
  code: FirmwareCode | null;
  reason: string | null;
  /** retries spent in the current stage */
  attempts: number;
  /** ms UTC: when the current stage began (its timeout counts from here) */
  stageAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** What `up/deployments/<id>` carries, the API returns and `streetbox deployments <id>` shows. */
export interface DeploymentReport {
  id: string;
  gateway: string;
  status: DeploymentStatus;
  code: FirmwareCode | null;
  reason: string | null;
  artifact: { name: string; version: string; size: number; sha256: string };
  wave: number;
  waves: number;
  counts: Record<JobStage, number>;
  jobs: {
    device: string;
    stage: JobStage;
    wave: number;
    bytesAcked: number;
    bytes: number;
    waiting: string | null;
    code: FirmwareCode | null;
    reason: string | null;
    versionBefore: number | string | null;
    versionAfter: number | string | null;
  }[];
  at: number;
}

/** The detail of `firmware.*` events. */
export interface FirmwareEventDetail {
  deployment: string;
  principal: string;
  device?: string;
  stage?: JobStage;
  status?: DeploymentStatus;
  code?: FirmwareCode;
  reason?: string;
  bytesAcked?: number;
  version?: number | string | null;
}
