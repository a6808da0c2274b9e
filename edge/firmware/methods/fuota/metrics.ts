/**
 * FUOTA's counters (/metrics) and events (`fuota.session`, `fuota.node`): one place both the
 * coordinator and its sessions count into. No key ever reaches an event: the detail is built here
 * from plain figures.
 */
import type { GatewayContext } from '../../../component.js';
import type { Logger } from '../../../log.js';
import type { MetricSample } from '../../../metrics.js';
import type { FirmwareCode } from '../../records.js';

export type NodeEnd = 'confirmed' | 'current' | 'failed';

/**
 * Why a node failed, as the `reason` label of streetbox_fuota_nodes_total (a fixed set: the
 * label's values stay bounded whatever the reason text says).
 */
export const FAILURE_KINDS = ['memory', 'silence', 'mic', 'clock', 'tx_error', 'verify', 'refused', 'repair', 'deadline', 'cancelled', 'other'] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/** Why a frame was held before it went (the driver's ledger, no forwarder, the driver not running, the reserve left to other downlinks). */
export type HoldReason = 'dutyCycle' | 'noForwarder' | 'driverStopped' | 'reserve';

export class FuotaMetrics {
  sessions = 0;
  fragments = 0;
  repairRounds = 0;
  repairFragments = 0;
  readonly txErrors = new Map<string, number>();
  readonly held = new Map<HoldReason, number>();
  readonly nodes = new Map<string, number>();
  /** uplinks on a FUOTA port that did not decode */
  undecoded = 0;

  txError(error: string): void {
    this.txErrors.set(error, (this.txErrors.get(error) ?? 0) + 1);
  }

  hold(why: HoldReason): void {
    this.held.set(why, (this.held.get(why) ?? 0) + 1);
  }

  node(end: NodeEnd, failure?: { code: FirmwareCode; kind: FailureKind }): void {
    const key = end === 'failed' ? `failed\0${failure?.code ?? 'E_FW_TRANSFER'}\0${failure?.kind ?? 'other'}` : end;
    this.nodes.set(key, (this.nodes.get(key) ?? 0) + 1);
  }

  samples(): MetricSample[] {
    const out: MetricSample[] = [
      { name: 'streetbox_fuota_sessions_total', help: 'FUOTA sessions started since start', type: 'counter', value: this.sessions },
      { name: 'streetbox_fuota_fragments_total', help: 'FUOTA fragments multicast (TX_ACK without error) since start', type: 'counter', value: this.fragments },
      { name: 'streetbox_fuota_repair_rounds_total', help: 'FUOTA unicast repair rounds since start', type: 'counter', value: this.repairRounds },
      { name: 'streetbox_fuota_repair_fragments_total', help: 'FUOTA parity fragments sent by unicast repair since start', type: 'counter', value: this.repairFragments },
      { name: 'streetbox_fuota_undecoded_uplinks_total', help: 'Uplinks on FPort 200–203 of a FUOTA session that did not decode', type: 'counter', value: this.undecoded },
    ];
    for (const [error, value] of this.txErrors) {
      out.push({ name: 'streetbox_fuota_tx_errors_total', help: 'FUOTA multicast fragments the forwarder refused (TX_ACK error), sent again', type: 'counter', labels: { error }, value });
    }
    for (const [why, value] of this.held) {
      out.push({
        name: 'streetbox_fuota_fragments_held_total',
        help: 'FUOTA frames held back: no duty-cycle budget, no forwarder, the driver not running, the reserve left to other downlinks',
        type: 'counter',
        labels: { reason: why },
        value,
      });
    }
    for (const [key, value] of this.nodes) {
      const [outcome, code, reason] = key.split('\0');
      out.push({ name: 'streetbox_fuota_nodes_total', help: 'FUOTA nodes by outcome (failed: by code and reason) since start', type: 'counter', labels: { outcome: outcome!, ...(code ? { code } : {}), ...(reason ? { reason } : {}) }, value });
    }
    return out;
  }
}

/** Writes `fuota.session` and `fuota.node` events to the store (a store error is logged, never thrown). */
export class FuotaEvents {
  constructor(
    private readonly ctx: Pick<GatewayContext, 'store'>,
    private readonly log: Logger,
  ) {}

  session(deployment: string, session: string, step: string, extra: Record<string, unknown> = {}, severity: 'info' | 'warning' = 'info'): void {
    this.write({ kind: 'fuota.session', severity, device: null, detail: { deployment, session, step, ...extra } });
  }

  node(deployment: string, session: string, device: string, step: string, extra: Record<string, unknown> = {}, severity: 'info' | 'warning' = 'info'): void {
    this.write({ kind: 'fuota.node', severity, device, detail: { deployment, session, step, device, ...extra } });
  }

  private write(e: { kind: 'fuota.session' | 'fuota.node'; severity: 'info' | 'warning'; device: string | null; detail: { deployment: string; session: string; step: string; [k: string]: unknown } }): void {
    try {
      this.ctx.store.appendEvent(e);
    } catch (err) {
      this.log.error({ err, kind: e.kind, step: e.detail.step }, 'fuota: event not recorded');
    }
  }
}
