/**
 * Sends downlinks and follows them to the end (ChirpStack's downlink/{data,tx_ack}):
 * commands from the queue in the RX windows after an uplink (class A) or at once (class C),
 * ACKs for confirmed uplinks, join accepts; TX_ACK errors become events and fall back to
 * RX2; duty cycle and time on air are accounted before anything is sent.
 *
 * Each command's outcome settles its caller's promise once: `verified` (ACK, or the node's
 * report), `sent` (an unconfirmed command the forwarder transmitted: TX_ACK without error),
 * `failed` (no ACK after MAX_ATTEMPTS, not applied, duty cycle, driver stopped) or `expired`.
 * The lorawan.downlink.* events tell observers the same story, step by step.
 */
import type { Clock, Timer } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import { statusConfirms, type StreetlightStatus } from '../../../profiles/loraStreetlight.js';
import type { QueuedDownlink } from '../api.js';
import { StreetboxError } from '../../../errors.js';
import type { DeviceIndex } from '../devices.js';
import { DutyCycleError, LoraError, TxError } from '../errors.js';
import type { LorawanEvents } from '../events.js';
import type { LorawanMetrics } from '../metrics.js';
import { DutyCycleLedger } from '../region/dutyCycle.js';
import type { GatewayBackend } from '../semtech/backend.js';
import type { Session, SessionStore } from '../storage/sessions.js';
import { buildDataDownlink } from './data.js';
import { MAX_ATTEMPTS, queueItem, type DownlinkQueue, type NewQueueItem, type QueueItem } from './queue.js';
import { planClassA, planClassC, type RxWindowSettings, type TxPlan, type UplinkContext } from './scheduler.js';

export interface SenderDeps {
  backend: GatewayBackend;
  sessions: SessionStore;
  queue: DownlinkQueue;
  metrics: LorawanMetrics;
  clock: Clock;
  log: Logger;
  settings: RxWindowSettings;
  /** each device's class, and the forwarder that last answered it (uplink/handler.ts keeps it) */
  devices: DeviceIndex;
  events: LorawanEvents;
  /** class C: how long to wait for the ACK of a confirmed downlink before sending it again */
  classCAckTimeoutMs: number;
  /** the duty-cycle ledger (default: one in memory) */
  ledger?: DutyCycleLedger;
}

interface PendingTx {
  at: number;
  plan: TxPlan;
  fallback: TxPlan[];
  device: string | null;
  item: QueueItem | null;
}

/** TX_ACKs come within a second; older entries are dropped (bounded memory). */
const PENDING_TX_TTL_MS = 30_000;

/** how often expired commands are swept from the queue (an uplink sweeps too) */
export const EXPIRY_SWEEP_MS = 1_000;

export class DownlinkSender {
  readonly ledger: DutyCycleLedger;
  private readonly d: SenderDeps;
  private readonly pending = new Map<string, PendingTx>();
  private sweep: Timer | null = null;

  constructor(deps: SenderDeps) {
    this.d = deps;
    this.ledger = deps.ledger ?? new DutyCycleLedger();
  }

  /** Starts sweeping expired commands every EXPIRY_SWEEP_MS (on the injected clock). */
  start(): void {
    if (this.sweep) return;
    const tick = (): void => {
      this.expire();
      this.sweep = this.d.clock.setTimeout(tick, EXPIRY_SWEEP_MS);
      this.sweep.unref?.();
    };
    this.sweep = this.d.clock.setTimeout(tick, EXPIRY_SWEEP_MS);
    this.sweep.unref?.();
  }

  // ------------------------------------------------------------------ commands

  /**
   * Queues a command; class C goes out at once. Throws E_INVALID_COMMAND when the device's
   * queue is full. The outcome promise never rejects.
   */
  enqueue(init: NewQueueItem): QueuedDownlink {
    const { item, outcome } = queueItem(init);
    if (!this.d.queue.push(item)) throw new StreetboxError('E_INVALID_COMMAND', `the downlink queue of ${item.device} is full`);
    if (this.classOf(item.devEui) === 'C' && this.d.queue.head(item.devEui) === item) this.sendClassC(item);
    return { id: item.id, outcome };
  }

  private finish(item: QueueItem, kind: 'lorawan.downlink.verified' | 'lorawan.downlink.failed', detail: { reason?: string; code?: string; via?: 'ack' | 'report'; error?: string }): void {
    if (item.timer) this.d.clock.clearTimeout(item.timer);
    item.timer = null;
    this.d.queue.remove(item);
    this.d.events.emit({ device: item.device, kind, severity: kind === 'lorawan.downlink.failed' ? 'warning' : 'info', detail: { id: item.id, action: item.command.action, attempts: item.attempts, ...detail } });
    if (kind === 'lorawan.downlink.verified') item.settle({ status: 'verified' });
    else item.settle({ status: 'failed', reason: detail.reason ?? 'failed', ...(detail.code !== undefined ? { code: detail.code } : {}) });
  }

  /** Ends every expired command: expired. */
  expire(): void {
    for (const item of this.d.queue.expire(this.d.clock.now())) {
      if (item.timer) this.d.clock.clearTimeout(item.timer);
      item.timer = null;
      this.d.events.emit({ device: item.device, kind: 'lorawan.downlink.failed', severity: 'warning', detail: { id: item.id, action: item.command.action, attempts: item.attempts, reason: 'expired' } });
      item.settle({ status: 'expired', reason: 'expired' });
    }
  }

  /**
   * After an accepted uplink: settle the command in flight (the node's ACK, or its status
   * showing the commanded state), then answer in RX1/RX2 with the next command and/or an ACK.
   */
  onUplink(session: Session, up: UplinkContext, confirmedUp: boolean, ackBit: boolean, status: StreetlightStatus | null): void {
    this.expire();
    const devEui = session.devEui;
    let head = this.d.queue.head(devEui);
    if (head && head.state === 'sent') {
      if (head.confirmed ? ackBit : status !== null && statusConfirms(head.command, status)) {
        this.finish(head, 'lorawan.downlink.verified', { via: head.confirmed ? 'ack' : 'report' });
        head = this.d.queue.head(devEui);
      } else if (head.confirmed || status !== null) {
        // Missed: the node did not ACK, or its status does not show the command.
        if (head.attempts >= MAX_ATTEMPTS) {
          this.finish(head, 'lorawan.downlink.failed', { reason: head.confirmed ? 'no_ack' : 'not_applied' });
          head = this.d.queue.head(devEui);
        } else head.state = 'queued';
      }
    }
    const item = head?.state === 'queued' ? head : null;
    if (item && this.classOf(devEui) === 'C' && !confirmedUp) {
      this.sendClassC(item);
      return;
    }
    if (!item && !confirmedUp) return;
    const phy = this.frame(session, item, confirmedUp);
    let plans: TxPlan[];
    try {
      plans = planClassA(phy.bytes, up, false, this.d.settings, this.ledger, this.d.clock.monotonic(), this.d.clock.monotonic());
    } catch (err) {
      this.notSent(err, item, devEui);
      return;
    }
    this.commit(session, phy.fCntDown);
    if (this.transmit(plans, item?.device ?? null, item) && item) this.markSent(item, plans[0]!, phy.fCntDown);
  }

  /** Class C: send the head of the queue now on RX2, or later when the duty cycle allows. */
  sendClassC(item: QueueItem): void {
    if (item.timer) this.d.clock.clearTimeout(item.timer);
    item.timer = null;
    if (this.d.queue.head(item.devEui) !== item || item.state !== 'queued') return;
    const session = this.d.sessions.get(item.devEui);
    const gateway = this.gatewayFor(item.devEui);
    if (!session || gateway === null) {
      this.d.events.emit({ device: item.device, kind: 'lorawan.downlink.delayed', severity: 'warning', detail: { id: item.id, reason: session ? 'no_forwarder' : 'not_joined' } });
      this.retryLater(item, 5_000);
      return;
    }
    const phy = this.frame(session, item, false);
    const r = planClassC(phy.bytes, gateway, this.d.settings, this.ledger, this.d.clock.monotonic());
    if ('retryAt' in r) {
      const waitMs = r.retryAt - this.d.clock.monotonic();
      this.d.metrics.reject('duty_cycle');
      if (item.expiresAt !== null && this.d.clock.now() + waitMs > item.expiresAt) {
        this.finish(item, 'lorawan.downlink.failed', { reason: 'duty_cycle', code: r.error.code, error: r.error.message });
      } else {
        this.d.events.emit({ device: item.device, kind: 'lorawan.downlink.delayed', severity: 'warning', detail: { id: item.id, reason: 'duty_cycle', code: r.error.code, error: r.error.message, delayMs: Math.ceil(waitMs) } });
        this.retryLater(item, waitMs);
      }
      return;
    }
    this.commit(session, phy.fCntDown);
    if (!this.transmit([r.plan], item.device, item)) {
      this.retryLater(item, 5_000);
      return;
    }
    this.markSent(item, r.plan, phy.fCntDown);
    // LoRaWAN 1.0.3 §17.2: a class C confirmed downlink is ACKed by the node's next uplink.
    if (item.confirmed) {
      item.timer = this.d.clock.setTimeout(() => {
        item.timer = null;
        if (item.state !== 'sent' || this.d.queue.head(item.devEui) !== item) return;
        if (item.attempts >= MAX_ATTEMPTS) this.finish(item, 'lorawan.downlink.failed', { reason: 'no_ack' });
        else {
          item.state = 'queued';
          this.sendClassC(item);
        }
      }, this.d.classCAckTimeoutMs);
      item.timer.unref?.();
    }
  }

  private retryLater(item: QueueItem, ms: number): void {
    if (!Number.isFinite(ms)) {
      this.finish(item, 'lorawan.downlink.failed', { reason: 'duty_cycle', error: 'the downlink is longer than the whole duty-cycle budget' });
      return;
    }
    item.timer = this.d.clock.setTimeout(() => this.sendClassC(item), Math.max(10, ms));
    item.timer.unref?.();
  }

  private frame(session: Session, item: QueueItem | null, ack: boolean): { bytes: Buffer; fCntDown: number } {
    const fCntDown = session.nFCntDown;
    const bytes = buildDataDownlink({
      devAddr: session.devAddr,
      nwkSKey: session.nwkSKey,
      appSKey: session.appSKey,
      fCntDown,
      confirmed: item?.confirmed ?? false,
      ack,
      fPending: this.d.queue.size(session.devEui) > 1,
      fPort: item ? item.fPort : null,
      payload: item ? item.payload : Buffer.alloc(0),
    });
    return { bytes, fCntDown };
  }

  private commit(session: Session, fCntDown: number): void {
    session.nFCntDown = fCntDown + 1;
    this.d.sessions.touch(session);
  }

  private markSent(item: QueueItem, plan: TxPlan, fCntDown: number): void {
    item.state = 'sent';
    item.attempts++;
    this.d.events.emit({
      device: item.device,
      kind: 'lorawan.downlink.sent',
      severity: 'info',
      detail: {
        id: item.id,
        action: item.command.action,
        attempt: item.attempts,
        confirmed: item.confirmed,
        window: plan.window,
        gateway: plan.gatewayEui,
        fCntDown,
        airtimeMs: Math.round(plan.airtimeMs * 10) / 10,
      },
    });
  }

  private notSent(err: unknown, item: QueueItem | null, devEui: string): void {
    const reason = err instanceof LoraError ? err.reason : 'internal';
    this.d.metrics.reject(reason);
    const device = item?.device ?? devEui;
    if (err instanceof DutyCycleError) {
      // Class A: the command stays queued for the next uplink's RX windows.
      this.d.events.emit({ device, kind: 'lorawan.downlink.delayed', severity: 'warning', detail: { id: item?.id ?? null, reason: 'duty_cycle', code: err.code, error: err.message } });
    } else if (err instanceof TxError) {
      this.d.events.emit({ device, kind: 'lorawan.downlink.missed', severity: 'warning', detail: { id: item?.id ?? null, reason: err.reason, code: err.code, error: err.message } });
    } else {
      this.d.log.error({ err, devEui }, 'downlink failed');
    }
  }

  /** Hands a join accept to the forwarder for the join's RX1/RX2. */
  sendJoinAccept(phy: Buffer, up: UplinkContext, device: string): boolean {
    let plans: TxPlan[];
    try {
      plans = planClassA(phy, up, true, this.d.settings, this.ledger, this.d.clock.monotonic(), this.d.clock.monotonic());
    } catch (err) {
      this.notSent(err, null, device);
      return false;
    }
    return this.transmit(plans, device, null);
  }

  /** Sends the first plan; accounts its air time; remembers the rest for a TX_ACK error. */
  private transmit(plans: TxPlan[], device: string | null, item: QueueItem | null): boolean {
    const [plan, ...fallback] = plans;
    if (!plan) return false;
    let token: number;
    try {
      token = this.d.backend.send(plan.gatewayEui, plan.txpk);
    } catch (err) {
      this.notSent(err, item, device ?? '');
      return false;
    }
    const at = this.d.clock.monotonic();
    this.ledger.record(plan.gatewayEui, plan.freq, plan.airtimeMs, at);
    this.d.metrics.downlinks++;
    this.prune(at);
    this.pending.set(`${plan.gatewayEui}:${token}`, { at, plan, fallback, device, item });
    return true;
  }

  private prune(now: number): void {
    for (const [k, p] of this.pending) {
      if (now - p.at < PENDING_TX_TTL_MS && this.pending.size < 10_000) break;
      this.pending.delete(k);
    }
  }

  /** The backend's TX_ACK handler (PROTOCOL.TXT §5.5). An error is an event; RX1 falls back to RX2 when there is one. */
  readonly onTxAck = (gatewayEui: string, token: number, error: string): void => {
    const key = `${gatewayEui}:${token}`;
    const p = this.pending.get(key);
    if (!p) {
      this.d.metrics.reject('unknown_tx_ack');
      return;
    }
    this.pending.delete(key);
    if (error === 'NONE' || error === '') {
      // An unconfirmed command on the air is as far as the network can know (its report may still verify it).
      if (p.item && !p.item.confirmed) p.item.settle({ status: 'sent' });
      return;
    }
    this.d.metrics.txAckErrors++;
    this.ledger.refund(p.plan.gatewayEui, p.plan.freq, p.plan.airtimeMs, p.at);
    const next = p.fallback[0];
    this.d.events.emit({
      device: p.device,
      kind: 'lorawan.tx_ack.error',
      severity: 'warning',
      detail: { gateway: gatewayEui, error, window: p.plan.window, id: p.item?.id ?? null, fallback: next ? next.window : null },
    });
    if (next && this.transmit([next, ...p.fallback.slice(1)], p.device, p.item)) return;
    if (p.item && p.item.state === 'sent') {
      // Not on the air: the command goes out again (next uplink, or now for class C).
      p.item.attempts = Math.max(0, p.item.attempts - 1);
      p.item.state = 'queued';
      if (this.classOf(p.item.devEui) === 'C') this.sendClassC(p.item);
    }
  };

  private classOf(devEui: string): 'A' | 'C' {
    return this.d.devices.byDevEui(devEui)?.class ?? 'A';
  }

  /** Which forwarder can reach a device now: the last that answered it if its keepalives come, else any that can transmit. */
  private gatewayFor(devEui: string): string | null {
    const { backend } = this.d;
    const gw = this.d.devices.byDevEui(devEui)?.gateway ?? null;
    if (gw !== null && backend.canSend(gw)) return gw;
    return backend.forwarders().find((f) => backend.canSend(f.gatewayEui))?.gatewayEui ?? null;
  }

  /** Clears every timer (on stop); the commands still queued end: failed, the driver stopped. */
  stop(): void {
    if (this.sweep) this.d.clock.clearTimeout(this.sweep);
    this.sweep = null;
    for (const item of this.d.queue.clear()) {
      if (item.timer) this.d.clock.clearTimeout(item.timer);
      item.timer = null;
      item.settle({ status: 'failed', reason: 'stopped', code: 'E_INTERRUPTED' });
    }
    this.pending.clear();
  }
}
