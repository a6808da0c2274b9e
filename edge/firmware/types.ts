/**
 * Firmware orchestration (issue 17, DESIGN.md "Fleet operations"): the contracts between the parts.
 * A deployment comes through one of three doors (central on `streetbox/<gw>/down/deployments`, a
 * technician's `POST /api/v1/deployments` or `streetbox deploy <manifest>`) and goes one road
 * (engine.ts):
 *
 *   parse + verify the signed manifest (manifest.ts) → resolve the targets (each device's profile
 *   must declare an update method) → journal the deployment and one job per device (journal.ts,
 *   module `firmware` in the store) → fetch the artifact into the data directory within its quota,
 *   checking size and sha256 (artifacts.ts) → per wave, per device, when the city-safety gates let
 *   it (gates.ts: lights by day or in their window and never more than a share of a group; traffic
 *   controllers only with allowCommands, in their window, with no program request; maintenance
 *   windows; a technician's override holds a device) and the concurrency caps allow (per bus, per
 *   group): transfer block by block through the bus scheduler's bulk share (methods/modbus.ts), each
 *   acknowledged block journaled (a LoRaWAN node: its wave's FUOTA session, methods/fuota, a
 *   multicast that takes no light out of service, its reboot gated and capped) → activate (size,
 *   checksum, commit: the device reboots) → verify
 *   (after the reboot the version point reads the new version and the functional probe passes,
 *   probe.ts) → `confirmed`; else `failed` (a light is driven back to its wanted level).
 *   A wave whose failures pass its errorThreshold halts the deployment; every stage has a timeout.
 *
 * After a SIGKILL or a power cut the engine resumes every job from its journaled stage: a
 * transfer from its last acknowledged block. Statuses only move forward; every step is an event
 * (`firmware.*`) and a report on `streetbox/<gw>/up/deployments/<id>` (a store outbox until delivered).
 * The gateway itself is one more target (selfUpdate.ts): releases side by side, a `current` link,
 * a launcher that switches back when the new release does not report healthy in time.
 */
import type { Role } from '../control/roles.js';
import type { MetricSample } from '../metrics.js';
import type { DeploymentReport, DeploymentSource, JobRecord } from './records.js';

export * from './records.js';

// ---------------------------------------------------------------------------------------
// Device update methods: a Modbus controller's, block by block (methods/modbus.ts). A LoRaWAN
// node's (methods/fuota) goes its own road: its job joins the FUOTA session of its wave (one
// multicast for all its nodes), which calls back the stages the job journals.

/** One Modbus transaction to the device: request PDU in, response PDU out (an exception response is returned, not thrown). */
export type FirmwareTransact = (pdu: Buffer) => Promise<Buffer>;

/** What a Modbus update method talks through (ModbusDriver.firmwareIo). */
export interface FirmwareIo {
  /** bulk priority: after commands and due polls, within the bus's `transferShare` of line time; retries as the bus's */
  bulk: FirmwareTransact;
  /** command priority (enter, size, checksum, commit, version reads) */
  command: FirmwareTransact;
}

/**
 * One device's update by one method, over one image. The engine calls prepare once per
 * (re)start of the transferring stage, sendBlock for each block from the journaled count on,
 * then activate once; readVersion before and after. Every method throws FirmwareError with the
 * code of what went wrong (E_FW_TRANSFER, E_FW_EXCEPTION, E_FW_VERIFY).
 */
export interface DeviceUpdater {
  readonly method: string;
  /** bytes per block (the last one is padded with 0xFF to a full block on the wire) */
  readonly blockBytes: number;
  /** blocks of the image */
  readonly blocks: number;
  /** Makes the device ready for blocks (enters its bootloader). Idempotent: a device already in it keeps what it acknowledged. */
  prepare(): Promise<void>;
  /** Writes block `index` (0-based) and checks it where the method reads back (FC 20 for file records). Resolves when the device acknowledged it. */
  sendBlock(index: number): Promise<void>;
  /** All blocks acknowledged: writes the size, compares the device's CRC-32 with the image's (E_FW_VERIFY when they differ). Repeatable. */
  checkImage(): Promise<void>;
  /** Writes the commit: the device reboots. Sent once: an answer lost on the way is not a failure (the version after the reboot decides). */
  commit(): Promise<void>;
  /** checkImage() then commit() */
  activate(): Promise<void>;
  /**
   * A job that ends before its commit (failed, cancelled) takes the device out of its bootloader:
   * the profile's `abort` write, when it declares one (the device drops what it received and runs
   * its old firmware as before). Resolves false when the profile declares none.
   */
  abort(): Promise<boolean>;
  /** The version point, or null when the device does not answer (rebooting). */
  readVersion(): Promise<number | null>;
}

// ---------------------------------------------------------------------------------------
// City safety (gates.ts)

/** Whether a job may start (or go on to its next stage that takes the device out of service) now. */
export type GateVerdict = { ok: true } | { ok: false; waiting: string; /** ms UTC when it may be worth asking again; undefined: ask at the next tick */ retryAt?: number };

// ---------------------------------------------------------------------------------------
// The service the doors use (engine.ts implements it)

export interface DeploymentRequest {
  source: DeploymentSource;
  /** the API token's name, 'upstream' (central), the CLI's token */
  principal: string;
  /** the principal's role: traffic controllers need command.traffic, the gateway itself admin */
  role: Role;
  /** the envelope as received: JSON text or bytes of `{ "manifest": "<json text>", "signature": "<base64>" }` */
  envelope: string | Buffer;
  /** a technician's local artifact (`streetbox deploy --artifact FILE`, `POST /api/v1/artifacts`): stored before the manifest is checked */
  artifact?: Buffer;
}

export interface DeploymentSubmitted {
  id: string;
  /** accepted (status running) or rejected with the code and reason */
  first: DeploymentReport;
  /** settles when the deployment ends (completed, halted, cancelled, rejected) */
  outcome: Promise<DeploymentReport>;
}

export type DeploymentAction = 'pause' | 'resume' | 'cancel';

export interface FirmwareService {
  /** Never throws for bad input: a refusal is a `rejected` report (recorded, with its code and reason). */
  submit(req: DeploymentRequest): DeploymentSubmitted;
  /** central's `down/deployments` message as received: an envelope, or `{ action, id }` to pause/resume/cancel */
  submitCentral(payload: Buffer): void;
  /** chunk `index` of an artifact sent over MQTT (`down/artifacts/<sha256>/<index>`); unknown or finished artifacts are ignored (counted) */
  artifactChunk(sha256: string, index: number, data: Buffer): void;
  /** pause: no new job starts (a transfer under way stops after its block, resumable); resume; cancel: jobs not past transferring end cancelled */
  control(id: string, action: DeploymentAction, principal: string): { ok: true; report: DeploymentReport } | { ok: false; code: 'E_NOT_FOUND' | 'E_FW_FINAL'; reason: string };
  report(id: string): DeploymentReport | undefined;
  list(q?: { limit?: number }): DeploymentReport[];
  jobs(id: string): JobRecord[];
  /**
   * A technician's artifact (`POST /api/v1/artifacts`, `streetbox deploy --artifact FILE`) into the
   * gateway's artifact store, named by its sha256 (lowercase hex); a manifest with source `{ local: true }`
   * then finds it. Throws FirmwareError E_FW_QUOTA when it does not fit in firmware.artifacts.maxBytes.
   */
  storeArtifact(data: Buffer): { sha256: string; size: number };
  /** reports not yet delivered on `up/deployments/<id>`, oldest first (the sync publishes and marks them) */
  outbox(): DeploymentOutbox;
  metrics(): MetricSample[];
}

export interface DeploymentOutbox {
  pending(limit: number): { seq: number; topicId: string; report: DeploymentReport }[];
  delivered(seq: number): void;
}
