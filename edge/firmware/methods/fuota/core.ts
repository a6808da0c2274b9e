/**
 * What a FUOTA session's steps share (session.ts holds it; setup.ts and nodeSteps.ts are its steps):
 * the session's journaled record and nodes, its requests and timers on the radio clock, and the
 * few ways a step changes them, each journaled before the next frame goes.
 */
import { encodeFirmwareDown, FPORT_FIRMWARE } from '../../../drivers/lorawan/app/index.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { FirmwareError } from '../../errors.js';
import type { FirmwareCode } from '../../records.js';
import type { FuotaJournal, NodePatch, NodeRecord, SessionPatch, SessionRecord } from './journal.js';
import type { FailureKind, FuotaEvents, FuotaMetrics } from './metrics.js';
import type { FragmentSource } from './multicast.js';
import type { SubBandPacers } from './pacer.js';
import type { NodeRequests, RadioTimers } from './requests.js';
import type { FuotaMember, FuotaRadio, FuotaSettings } from './types.js';

export interface SessionDeps {
  radio: FuotaRadio;
  journal: FuotaJournal;
  settings: FuotaSettings;
  metrics: FuotaMetrics;
  events: FuotaEvents;
  log: Logger;
  /** the loss observed of a node's groups (the mean of their members observed), null when none */
  groupLoss(device: string): number | null;
  /** members whose node implements another TS004 version than the session's: a session of their own */
  handOver(members: FuotaMember[]): void;
  /** the sub-bands the gateway's FUOTA frames share (every session's) */
  pacers: SubBandPacers;
  /** the nodes of every session whose reboot waits for a gate or a cap */
  rebootWaits: RebootWaits;
  /** another session's deadline (radio clock), null when it is not running here */
  deadlineOf(session: string): number | null;
}

/**
 * Nodes whose reboot waits for a gate or a cap, each until its gate's retry (the day begins) or a
 * poll, and all woken when a reboot ends anywhere (a cap may have room): no node asks the gates
 * every few seconds.
 */
export class RebootWaits {
  private readonly wakers = new Set<() => void>();

  sleep(timers: RadioTimers, ms: number): Promise<void> {
    return timers.sleepOrWake(ms, this.wakers);
  }

  wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

export type Severity = 'info' | 'warning';

export interface SessionCore {
  readonly id: string;
  readonly deps: SessionDeps;
  /** the session's record as journaled (changed through patch) */
  readonly s: Readonly<SessionRecord>;
  readonly requests: NodeRequests;
  readonly timers: RadioTimers;
  readonly log: Logger;
  readonly image: Buffer;
  /** the manifest's versionCode: what each node reports once it runs the image */
  readonly versionCode: number;
  /** every member left: no step goes further, and nothing fails for it */
  readonly stopped: boolean;
  /** v2: what each node's FragDataBlockReceivedReq said of the block's MIC */
  readonly blockMic: ReadonlyMap<string, boolean>;
  /** FragSessionSetupReq sends per node in this process (a replay after one of our own is our own) */
  readonly fragSetupSends: Map<string, number>;
  node(device: string): NodeRecord | undefined;
  /** nodes not at an end */
  open(): NodeRecord[];
  /** the node's job runner, null while it is away */
  member(device: string): FuotaMember | null;
  /** the image's fragments, uncoded and parity */
  fragments(): FragmentSource;
  patch(p: SessionPatch): void;
  setNode(device: string, p: NodePatch): void;
  /** the node fails with its code and reason (the kind its metric counts, the version it reported when it did) */
  fail(device: string, code: FirmwareCode, reason: string, o?: { kind?: FailureKind; versionAfter?: number }): void;
  /** the node did not answer `what` within answerTimeout: E_FW_TIMEOUT */
  silent(device: string, what: string): void;
  /** the node leaves this session for another (its member, if its runner is here) */
  release(device: string, reason: string): FuotaMember | null;
  emit(step: string, extra?: Record<string, unknown>, severity?: Severity): void;
  emitNode(device: string, step: string, extra?: Record<string, unknown>, severity?: Severity): void;
}

/** A TS006 request on FPort 203. */
export function firmwareReq(cmd: Parameters<typeof encodeFirmwareDown>[0][number], label: string): { fPort: number; payload: Buffer; label: string } {
  return { fPort: FPORT_FIRMWARE, payload: encodeFirmwareDown([cmd]), label };
}

export function seconds(ms: number): number {
  return Math.round(ms / 1000);
}

/** Runs `step` for each node at once; a step that throws fails its node alone, with the error's code and message. */
export async function eachNode(c: SessionCore, devices: readonly string[], step: (device: string) => Promise<unknown>): Promise<void> {
  await Promise.all(
    devices.map((d) =>
      step(d).catch((err: unknown) => {
        c.log.error({ err, device: d }, 'fuota: a node step failed');
        c.fail(d, errorCode(err), errorMessage(err));
      }),
    ),
  );
}

/** An error's firmware code: its own when it has one, else E_FW_TRANSFER. */
export function errorCode(err: unknown): FirmwareCode {
  return err instanceof FirmwareError && err.code.startsWith('E_FW_') ? (err.code as FirmwareCode) : 'E_FW_TRANSFER';
}
