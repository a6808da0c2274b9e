/**
 * Sends downlinks and follows them to the end (ChirpStack's downlink/{data,tx_ack}): what is
 * queued for a device (streetlight commands, application messages) in the RX windows after an
 * uplink (class A) or at once (class C), with the device's pending MAC commands in FOpts or on
 * FPort 0 (mac/handler.ts plans them), ACKs for confirmed uplinks, join accepts, and single
 * immediate frames awaiting their TX_ACK (multicast). TX_ACK errors become events and fall back
 * to RX2; duty cycle and time on air are accounted before anything is sent.
 *
 * Each queued item's outcome settles its caller's promise once: `verified` (ACK, or the node's
 * report of a command), `sent` (an unconfirmed item the forwarder transmitted: TX_ACK without
 * error), `failed` (no ACK after MAX_ATTEMPTS, not applied, duty cycle, too long for the data
 * rate, driver stopped) or `expired`. The lorawan.downlink.* events tell observers the same
 * story, step by step.
 */
import { every, type Clock, type Timer } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import { statusConfirms, type StreetlightStatus } from '../../../profiles/loraStreetlight.js';
import type { QueuedDownlink } from '../api.js';
import { StreetboxError } from '../../../errors.js';
import type { DownlinkEventDetail } from '../../../store/eventKinds.js';
import type { DeviceIndex } from '../devices.js';
import { DutyCycleError, LoraError, TxError } from '../errors.js';
import type { LorawanEvents } from '../events.js';
import type { MacReplies } from '../mac/handler.js';
import type { MacPlan, MacRoom } from '../mac/plan.js';
import type { LorawanMetrics } from '../metrics.js';
import { DutyCycleLedger } from '../region/dutyCycle.js';
import { drIndex, maxPayload, parseDatr, rx1DataRate } from '../region/eu868.js';
import type { GatewayBackend } from '../semtech/backend.js';
import type { Session, SessionStore } from '../storage/sessions.js';
import { buildDataDownlink } from './data.js';
import { MAX_ATTEMPTS, queueItem, type DownlinkQueue, type NewQueueItem, type QueueItem } from './queue.js';
import { planClassA, planClassC, type RxWindowSettings, type TxPlan, type UplinkContext } from './scheduler.js';

/** The MAC side of downlinks (mac/handler.ts): what a frame carries, what became of it, what the device's RX windows are. */
export interface MacDownlinks {
  /** `replies`: the answers of the uplink this frame follows; null for a frame of its own (class C) */
  plan(devEui: string, room: MacRoom, replies: MacReplies | null): MacPlan;
  sent(devEui: string, plan: MacPlan): void;
  /** the planned frame did not go */
  missed(devEui: string, plan: MacPlan): void;
  rxSettings(devEui: string, defaults: RxWindowSettings): RxWindowSettings;
}

export interface SenderDeps {
  backend: GatewayBackend;
  sessions: SessionStore;
  queue: DownlinkQueue;
  metrics: LorawanMetrics;
  /** the driver's clock (RX windows, expiry, ledger) */
  clock: Clock;
  log: Logger;
  /** the network's RX settings; a device's own once it ACKed them (mac.rxSettings) */
  settings: RxWindowSettings;
  mac: MacDownlinks;
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
  /** a frame whose sender awaits its TX_ACK (multicast) */
  onAck?: (r: TxAckResult) => void;
}

/** A data frame to a device and what it carries. */
interface Frame {
  bytes: Buffer;
  fCntDown: number;
  mac: MacPlan;
}

/** TX_ACKs come within a second; older entries are dropped (bounded memory). */
const PENDING_TX_TTL_MS = 30_000;

/** how often expired commands are swept from the queue (an uplink sweeps too) */
export const EXPIRY_SWEEP_MS = 1_000;

/** a device's downlink that cannot go (delayed, missed) is reported at most this often per item (each one is counted) */
const NOT_SENT_EVENT_INTERVAL_MS = 60_000;

/** What transmitAwaitingAck resolves with: the forwarder's TX_ACK (its error, null for none), or why none came. */
export type TxAckResult = { acked: true; error: string | null } | { acked: false; why: 'timeout' | 'stopped' };

export class DownlinkSender {
  readonly ledger: DutyCycleLedger;
  private readonly d: SenderDeps;
  private readonly pending = new Map<string, PendingTx>();
  /** the last delayed / missed event of each device: which item, when (monotonic ms) */
  private readonly notSentAt = new Map<string, { id: string | null; at: number }>();
  private stopSweep: (() => void) | null = null;

  constructor(deps: SenderDeps) {
    this.d = deps;
    this.ledger = deps.ledger ?? new DutyCycleLedger();
  }

  /** Starts sweeping expired commands every EXPIRY_SWEEP_MS (on the injected clock). */
  start(): void {
    this.stopSweep ??= every(this.d.clock, EXPIRY_SWEEP_MS, () => this.expire());
  }

  // ------------------------------------------------------------------ queued items

  /**
   * Queues a command or an application message; class C goes out at once. Throws
   * E_INVALID_COMMAND when the device's queue is full. The outcome promise never rejects.
   */
  enqueue(init: NewQueueItem): QueuedDownlink {
    const { item, outcome } = queueItem(init);
    if (!this.d.queue.push(item)) throw new StreetboxError('E_INVALID_COMMAND', `the downlink queue of ${item.device} is full`);
    if (this.classOf(item.devEui) === 'C' && this.d.queue.head(item.devEui) === item) this.sendClassC(item);
    return { id: item.id, outcome };
  }

  private finish(item: QueueItem, kind: 'lorawan.downlink.verified' | 'lorawan.downlink.failed', detail: { reason?: string; code?: string; via?: 'ack' | 'report'; error?: string }): void {
    this.dequeue(item);
    this.d.events.emit({ device: item.device, kind, severity: kind === 'lorawan.downlink.failed' ? 'warning' : 'info', detail: { id: item.id, action: item.label, attempts: item.attempts, ...detail } });
    if (kind === 'lorawan.downlink.verified') item.settle({ status: 'verified' });
    else item.settle({ status: 'failed', reason: detail.reason ?? 'failed', ...(detail.code !== undefined ? { code: detail.code } : {}) });
  }

  /** An unconfirmed application message the forwarder transmitted (or that a later uplink followed): sent, done. */
  private delivered(item: QueueItem): void {
    this.dequeue(item);
    item.settle({ status: 'sent' });
  }

  private dequeue(item: QueueItem): void {
    if (item.timer) this.d.clock.clearTimeout(item.timer);
    item.timer = null;
    this.d.queue.remove(item);
  }

  /** Ends every expired command: expired. */
  expire(): void {
    for (const item of this.d.queue.expire(this.d.clock.now())) {
      if (item.timer) this.d.clock.clearTimeout(item.timer);
      item.timer = null;
      this.d.events.emit({ device: item.device, kind: 'lorawan.downlink.failed', severity: 'warning', detail: { id: item.id, action: item.label, attempts: item.attempts, reason: 'expired' } });
      item.settle({ status: 'expired', reason: 'expired' });
    }
  }

  /**
   * After an accepted uplink: settle the item in flight (the node's ACK, its status showing the
   * commanded state, an application message already on the air), then answer in RX1/RX2 with the
   * next item, an ACK and/or the device's MAC commands.
   */
  onUplink(session: Session, up: UplinkContext, confirmedUp: boolean, ackBit: boolean, status: StreetlightStatus | null, replies: MacReplies | null): void {
    this.expire();
    const devEui = session.devEui;
    const head = this.settleInFlight(devEui, ackBit, status);
    const item = head?.state === 'queued' ? head : null;
    if (item && this.classOf(devEui) === 'C' && !confirmedUp) {
      this.sendClassC(item, replies);
      return;
    }
    const settings = this.d.mac.rxSettings(devEui, this.d.settings);
    let mac: MacPlan | null = null;
    let phy: Frame;
    let plans: TxPlan[];
    try {
      mac = this.d.mac.plan(devEui, { payloadBytes: item ? item.payload.length : null, maxPayload: classAMaxPayload(up, settings) }, replies);
      // nothing queued, no ACK owed and no MAC command waiting: no answer
      if (!item && !confirmedUp && !mac.required && mac.ids.length === 0) return;
      phy = this.frame(session, item, confirmedUp, mac);
      plans = planClassA(phy.bytes, up, false, settings, this.ledger, this.d.clock.monotonic(), this.d.clock.monotonic());
    } catch (err) {
      if (mac) this.d.mac.missed(devEui, mac);
      this.notSent(err, item, devEui);
      return;
    }
    this.commit(session, phy.fCntDown);
    if (!this.transmit(plans, item?.device ?? null, item)) {
      this.d.mac.missed(devEui, phy.mac);
      return;
    }
    this.d.mac.sent(devEui, phy.mac);
    if (item) this.markSent(item, plans[0]!, phy.fCntDown);
  }

  /** The head in flight, settled by this uplink; returns the head now. */
  private settleInFlight(devEui: string, ackBit: boolean, status: StreetlightStatus | null): QueueItem | undefined {
    const head = this.d.queue.head(devEui);
    if (!head || head.state !== 'sent') return head;
    if (head.confirmed ? ackBit : head.command !== null && status !== null && statusConfirms(head.command, status)) {
      this.finish(head, 'lorawan.downlink.verified', { via: head.confirmed ? 'ack' : 'report' });
    } else if (!head.confirmed && head.command === null) {
      // an unconfirmed application message whose TX_ACK never came (a v1 forwarder): it went out
      this.delivered(head);
    } else if (head.confirmed || status !== null) {
      // Missed: the node did not ACK, or its status does not show the command.
      if (head.attempts >= MAX_ATTEMPTS) this.finish(head, 'lorawan.downlink.failed', { reason: head.confirmed ? 'no_ack' : 'not_applied' });
      else head.state = 'queued';
    }
    return this.d.queue.head(devEui);
  }

  /**
   * Class C: send the head of the queue now on RX2, or later when the duty cycle allows; `replies`:
   * the answers of the uplink it follows, when it is that uplink's downlink.
   */
  sendClassC(item: QueueItem, replies: MacReplies | null = null): void {
    if (item.timer) this.d.clock.clearTimeout(item.timer);
    item.timer = null;
    if (this.d.queue.head(item.devEui) !== item || item.state !== 'queued') return;
    const session = this.d.sessions.get(item.devEui);
    const gateway = this.gatewayFor(item.devEui);
    if (!session || gateway === null) {
      this.d.metrics.reject(session ? 'no_forwarder' : 'not_joined');
      this.notGoing(item.device, 'lorawan.downlink.delayed', { id: item.id, reason: session ? 'no_forwarder' : 'not_joined' });
      this.retryLater(item, 5_000);
      return;
    }
    const settings = this.d.mac.rxSettings(item.devEui, this.d.settings);
    let mac: MacPlan | null = null;
    let phy: Frame;
    let r: ReturnType<typeof planClassC>;
    try {
      mac = this.d.mac.plan(item.devEui, { payloadBytes: item.payload.length, maxPayload: maxPayload(settings.rx2Dr) }, replies);
      phy = this.frame(session, item, false, mac);
      r = planClassC(phy.bytes, gateway, settings, this.ledger, this.d.clock.monotonic());
    } catch (err) {
      if (mac) this.d.mac.missed(item.devEui, mac);
      this.notSent(err, item, item.devEui);
      return;
    }
    if ('retryAt' in r) {
      this.d.mac.missed(item.devEui, phy.mac);
      const waitMs = r.retryAt - this.d.clock.monotonic();
      this.d.metrics.reject('duty_cycle');
      if (item.expiresAt !== null && this.d.clock.now() + waitMs > item.expiresAt) {
        this.finish(item, 'lorawan.downlink.failed', { reason: 'duty_cycle', code: r.error.code, error: r.error.message });
      } else {
        this.notGoing(item.device, 'lorawan.downlink.delayed', { id: item.id, reason: 'duty_cycle', code: r.error.code, error: r.error.message, delayMs: Math.ceil(waitMs) });
        this.retryLater(item, waitMs);
      }
      return;
    }
    this.commit(session, phy.fCntDown);
    if (!this.transmit([r.plan], item.device, item)) {
      this.d.mac.missed(item.devEui, phy.mac);
      this.retryLater(item, 5_000);
      return;
    }
    this.d.mac.sent(item.devEui, phy.mac);
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

  /** The frame to the device: the item (or the MAC commands on FPort 0), FOpts, the ACK bit, FPending. */
  private frame(session: Session, item: QueueItem | null, ack: boolean, mac: MacPlan): Frame {
    const fCntDown = session.nFCntDown;
    const bytes = buildDataDownlink({
      devAddr: session.devAddr,
      nwkSKey: session.nwkSKey,
      appSKey: session.appSKey,
      fCntDown,
      confirmed: item?.confirmed ?? false,
      ack,
      // LoRaWAN 1.0.3 §4.3.1.4: more is waiting for the device after this frame
      fPending: this.d.queue.waiting(session.devEui, item) > 0 || mac.waiting,
      fPort: item ? item.fPort : mac.port0 ? 0 : null,
      payload: item ? item.payload : (mac.port0 ?? Buffer.alloc(0)),
      fOpts: mac.fOpts,
    });
    return { bytes, fCntDown, mac };
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
        action: item.label,
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
    if (err instanceof TxError && err.reason === 'too_long' && item) {
      // longer than the data rate carries: it never will fit
      this.finish(item, 'lorawan.downlink.failed', { reason: 'too_long', code: err.code, error: err.message });
    } else if (err instanceof DutyCycleError) {
      // Class A: the command stays queued for the next uplink's RX windows.
      this.notGoing(device, 'lorawan.downlink.delayed', { id: item?.id ?? null, reason: 'duty_cycle', code: err.code, error: err.message });
    } else if (err instanceof TxError) {
      this.notGoing(device, 'lorawan.downlink.missed', { id: item?.id ?? null, reason: err.reason, code: err.code, error: err.message });
    } else {
      this.d.log.error({ err, devEui }, 'downlink failed');
    }
  }

  /**
   * A downlink that cannot go now: an event, at most once a minute for the same item of a device
   * (or the same answer without an item) — a device heard while no forwarder can transmit would
   * otherwise write one per uplink. Each is counted by its reason all the same.
   */
  private notGoing(device: string, kind: 'lorawan.downlink.delayed' | 'lorawan.downlink.missed', detail: DownlinkEventDetail): void {
    const now = this.d.clock.monotonic();
    const last = this.notSentAt.get(device);
    if (last && last.id === detail.id && now - last.at < NOT_SENT_EVENT_INTERVAL_MS) return;
    this.notSentAt.set(device, { id: detail.id, at: now });
    this.d.events.emit({ device, kind, severity: 'warning', detail });
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

  /** Sends the first plan; remembers the rest for a TX_ACK error. False (reported) when the forwarder cannot be reached. */
  private transmit(plans: TxPlan[], device: string | null, item: QueueItem | null): boolean {
    const [plan, ...fallback] = plans;
    if (!plan) return false;
    try {
      this.hand(plan, { fallback, device, item });
      return true;
    } catch (err) {
      this.notSent(err, item, device ?? '');
      return false;
    }
  }

  /**
   * One frame now (multicast: its plan is `immediate`), awaiting the forwarder's TX_ACK: resolves
   * with it, or without one when none came within ackTimeoutMs (a v1 forwarder sends none) or the
   * sender stopped. A TX_ACK error later than ackTimeoutMs still refunds the air time (onTxAck;
   * the entry stays for PENDING_TX_TTL_MS). Throws TxError at once when the forwarder cannot be reached.
   */
  transmitAwaitingAck(plan: TxPlan, ackTimeoutMs: number): Promise<TxAckResult> {
    let settle: (r: TxAckResult) => void = () => {};
    const acked = new Promise<TxAckResult>((resolve) => (settle = resolve));
    let timer: Timer | null = null;
    this.hand(plan, {
      fallback: [],
      device: null,
      item: null,
      onAck: (r) => {
        if (timer) this.d.clock.clearTimeout(timer);
        settle(r);
      },
    });
    timer = this.d.clock.setTimeout(() => settle({ acked: false, why: 'timeout' }), ackTimeoutMs);
    timer.unref?.();
    return acked;
  }

  /** Hands a plan to its forwarder, charges the ledger, remembers it for the TX_ACK. Throws TxError. */
  private hand(plan: TxPlan, tx: Omit<PendingTx, 'at' | 'plan'>): void {
    const token = this.d.backend.send(plan.gatewayEui, plan.txpk);
    const at = this.d.clock.monotonic();
    this.ledger.record(plan.gatewayEui, plan.freq, plan.airtimeMs, at);
    this.d.metrics.downlinks++;
    this.prune(at);
    this.pending.set(`${plan.gatewayEui}:${token}`, { at, plan, ...tx });
  }

  private prune(now: number): void {
    for (const [k, p] of this.pending) {
      if (now - p.at < PENDING_TX_TTL_MS && this.pending.size < 10_000) break;
      this.pending.delete(k);
    }
  }

  /** The backend's TX_ACK handler (PROTOCOL.TXT §5.5). An error is an event, its air time refunded; RX1 falls back to RX2 when there is one. */
  readonly onTxAck = (gatewayEui: string, token: number, error: string): void => {
    const key = `${gatewayEui}:${token}`;
    const p = this.pending.get(key);
    if (!p) {
      this.d.metrics.reject('unknown_tx_ack');
      return;
    }
    this.pending.delete(key);
    if (error === 'NONE' || error === '') {
      p.onAck?.({ acked: true, error: null });
      // An unconfirmed item on the air is as far as the network can know (a command's report may still verify it).
      if (p.item && !p.item.confirmed) this.transmitted(p.item);
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
    p.onAck?.({ acked: true, error });
    if (next && this.transmit([next, ...p.fallback.slice(1)], p.device, p.item)) return;
    if (p.item && p.item.state === 'sent') {
      // Not on the air: the item goes out again (next uplink, or now for class C).
      p.item.attempts = Math.max(0, p.item.attempts - 1);
      p.item.state = 'queued';
      if (this.classOf(p.item.devEui) === 'C') this.sendClassC(p.item);
    }
  };

  /** An unconfirmed item the forwarder transmitted: sent; an application message leaves the queue (class C: the next goes now). */
  private transmitted(item: QueueItem): void {
    item.settle({ status: 'sent' });
    if (item.command !== null || this.d.queue.head(item.devEui) !== item) return;
    this.delivered(item);
    const next = this.d.queue.head(item.devEui);
    if (next && this.classOf(next.devEui) === 'C') this.sendClassC(next);
  }

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

  /** Clears every timer (on stop); the items still queued end: failed, the driver stopped. */
  stop(): void {
    this.stopSweep?.();
    this.stopSweep = null;
    for (const item of this.d.queue.clear()) {
      if (item.timer) this.d.clock.clearTimeout(item.timer);
      item.timer = null;
      item.settle({ status: 'failed', reason: 'stopped', code: 'E_INTERRUPTED' });
    }
    for (const p of this.pending.values()) p.onAck?.({ acked: false, why: 'stopped' });
    this.pending.clear();
    this.notSentAt.clear();
  }
}

/** The payload a class A answer may carry: the smaller N of its RX1 and RX2 data rates (either may send it). */
function classAMaxPayload(up: UplinkContext, s: RxWindowSettings): number {
  const parsed = parseDatr(up.datr);
  const upDr = parsed ? drIndex(parsed) : null;
  const rx2 = maxPayload(s.rx2Dr);
  return upDr === null ? rx2 : Math.min(maxPayload(rx1DataRate(upDr, s.rx1DrOffset)), rx2);
}
