/**
 * The contracts of FUOTA as the firmware engine's third transfer method (issue 18 Deliver 4): the
 * narrow port of the LoRaWAN driver a session talks through, what a job runner gives the session
 * it joins (its node), and what it gets back.
 *
 *   job runner ──join──▶ coordinator ──▶ session (one per deployment, wave and turn)
 *        ◀── stage changes (activating, verifying) and the node's outcome ──┘
 *
 * The session speaks TS005 (FPort 200), TS004 (FPort 201) and TS006 (FPort 203) to its nodes by
 * unicast (enqueueApp, answers through onAppUplink) and sends the fragments by multicast
 * (sendMulticast), paced by its plan (planner.ts) and journaled (journal.ts).
 */
import type { LorawanDriver } from '../../../drivers/lorawan/api.js';
import type { FirmwareCode } from '../../records.js';

/** What FUOTA needs of the LoRaWAN driver: in tests, a port over simulated nodes stands in for the network server. sendMulticast throws E_COMPONENT while the driver is not running. */
export type FuotaRadio = Pick<LorawanDriver, 'enqueueApp' | 'onAppUplink' | 'sendMulticast' | 'genAppKey' | 'deviceId' | 'clock' | 'radio' | 'status'>;

/** How a node's job ends in its session. */
export type NodeOutcome =
  | { stage: 'confirmed'; versionAfter: number; reason: string }
  | { stage: 'failed'; code: FirmwareCode; reason: string; versionAfter?: number };

/**
 * A verdict of the gates and caps on a node's reboot (the engine's mayProceed for a fuota job);
 * `retryInMs` (the gateway's time): when a closed gate opens (the day begins), undefined when not known.
 */
export type RebootVerdict = { ok: true } | { ok: false; waiting: string; retryInMs?: number };

/**
 * A node as its job runner gives it to the session: the session calls back each step the runner
 * journals, and never advances a node whose member left (a stopped or paused runner).
 */
export interface FuotaMember {
  device: string;
  /** the version the image brings (the manifest's versionCode) */
  versionCode: number;
  /** the version the node reported before the update */
  versionBefore(version: number): void;
  /** fragments the node holds of the M of the block (its last status): the job's progress */
  progress(fragments: number, of: number, bytes: number): void;
  /** the node's reboot was asked (activating) and it is being verified (verifying): journaled before the next frame */
  advanced(stage: 'activating' | 'verifying'): void;
  /** the gates (lights by day, windows, holds) and the caps on a reboot, asked before each DevRebootCountdownReq */
  mayReboot(): RebootVerdict;
  /** why the node's reboot waits (null: it no longer does) */
  waiting(reason: string | null): void;
}

/** What the session needs of the configuration (lorawan.fuota, lorawan.rx2Dr, firmware.timeouts.verify). */
export interface FuotaSettings {
  dr: number;
  frequency: number;
  fragmentation: 'auto' | 1 | 2;
  minRedundancy: number;
  answerTimeoutMs: number;
  rebootDelayMs: number;
  mcGroupId: number;
  /** the slowest data rate of the session's unicast repair road (a class C node's RX2, a class A node's RX1 or RX2): it caps the fragment size */
  repairDr: number;
  /** how long a node may take to answer DevVersionReq after its reboot */
  verifyTimeoutMs: number;
  /** how long a session gathers its nodes after the first joined (radio clock) */
  gatherMs: number;
  /** the radio clock runs this many times faster than the gateway's (simulate.radioTimeScale): radio ms / it = gateway ms */
  radioTimeScale: number;
}
