/**
 * MAC commands on both roads (LoRaWAN 1.0.3 §5), per device, with its state in the store
 * (mac/state.ts):
 *
 * Uplink (`onUplink`, after the frame is accepted): the commands of FOpts or of an FPort 0
 * payload (both in one frame is invalid, §4.3.1.6: `mac_both`); a decode error keeps the commands
 * before it (`mac_malformed`). The node's requests (LinkCheckReq, DeviceTimeReq) are recorded in
 * the uplink's MacReplies, which travel with that uplink to its own downlink (`prepare` fills in
 * the answers once the copies are known); its answers are matched to the device's pending requests
 * by CID, in order, and applied (mac/apply.ts) or refused (a NACK); an answer nothing asked for is
 * `mac_unsolicited`. A request still unanswered after MAX_MAC_ATTEMPTS downlinks has failed. A
 * DevStatusReq is queued every devStatusInterval.
 *
 * Downlink (`plan`, then `sent` or `missed`): what the next frame to the device carries
 * (mac/plan.ts) — the uplink's answers, then the pending requests that may go: one in flight per
 * CID (a request already sent is never replaced; a newer one waits behind it), none whose sticky
 * answer the node still repeats, none past MAX_MAC_ATTEMPTS (it fails at the next uplink, which may
 * still bring its answer). A frame that could not go counts as an attempt too: a device that
 * cannot be reached does not keep a request forever.
 *
 * ADR (`afterWindow`, ChirpStack's default algorithm in mac/adr.ts): the best SNR of each uplink
 * with the ADR bit enters the history (written with the next change of the state, or every
 * SNR_WRITE_EVERY uplinks); a decision is one LinkADRReq for the default channels and those the
 * node ACKed, pending at most: it waits while one is in flight and never replaces an operator's
 * (requestMac). Applied when the node ACKs it; a NACK or no answer clears the history, so ADR asks
 * again only after a new full history.
 *
 * Bad input is counted under its reason and reported as lorawan.mac.rejected at most once a
 * minute per device; a caller's outcome (requestMac) never rejects.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { every, type Clock } from '../../../clock.js';
import type { Config } from '../../../config/schema.js';
import type { Logger } from '../../../log.js';
import type { Ingest } from '../../../store/api.js';
import type { MacOutcome } from '../api.js';
import type { DeviceEntry, DeviceIndex } from '../devices.js';
import type { RxWindowSettings } from '../downlink/scheduler.js';
import type { LorawanEvents } from '../events.js';
import type { LorawanMetrics } from '../metrics.js';
import { decodeBattery, devStatusReadings } from '../readings.js';
import { dataRate } from '../region/eu868.js';
import type { Heard } from '../uplink/dedup.js';
import { adrDecide, EU868_MAX_TX_POWER_INDEX, EU868_TX_POWER_DBM_OF, eu868TxPowerDbmOrNull, REQUIRED_SNR_DB } from './adr.js';
import { ANSWER_OF, applyAnswer } from './apply.js';
import { decodeMacUplink } from './commands.js';
import { planMacFrame, type MacPlan, type MacRoom } from './plan.js';
import { MAX_MAC_ATTEMPTS, type MacOrigin, type MacRequest, type MacState, type MacStateStore, type PendingMac } from './state.js';
import { unixToGpsMs, type MacDownlink, type MacUplink, type MacUplinkCid } from './types.js';

export type AdrSettings = NonNullable<Config['lorawan']>['adr'];

export interface MacSettings {
  adr: AdrSettings;
  /** ms between two DevStatusReq to a device; 0 never */
  devStatusIntervalMs: number;
}

export interface MacDeps {
  state: MacStateStore;
  devices: DeviceIndex;
  metrics: LorawanMetrics;
  events: LorawanEvents;
  ingest: Ingest;
  /** the driver's clock: attempts, intervals, the GPS time of receptions */
  clock: Clock;
  /** ctx.clock: the timestamps of readings */
  wallClock: Clock;
  log: Logger;
  settings: MacSettings;
}

/** What an accepted data uplink carries for the MAC layer. */
export interface MacUplinkFrame {
  fOpts: Buffer;
  fPort: number | null;
  /** the decrypted FRMPayload (FPort 0: MAC commands) */
  payload: Buffer;
  /** FCtrl.ADRACKReq: the node asks for a downlink (§4.3.1.1) */
  adrAckReq: boolean;
  /** wall ms on the driver's clock of the reception (DeviceTimeAns) */
  receivedAt: number;
}

/** The MAC figures of a device for status(). */
export interface MacStatus {
  /** dBm, once the node ACKed a LinkADRReq */
  txPower: number | null;
  /** % (null: never reported, external power or unknown) */
  battery: number | null;
  externalPower: boolean | null;
  /** dB, from its last DevStatusAns */
  margin: number | null;
  adr: boolean;
}

/** The node's own requests of one uplink, answered in the downlink of that uplink (and no other). */
export interface MacReplies {
  linkCheck: boolean;
  deviceTimeGpsMs: number | null;
  /** the node needs a downlink now (ADRACKReq, a sticky answer) */
  required: boolean;
  /** the answers, once `prepare` knows the copies */
  cmds: MacDownlink[];
}

/** a device's bad MAC input is reported at most this often (each one is counted) */
const REJECTED_EVENT_INTERVAL_MS = 60_000;
/** a request a silent device never had the chance to answer fails after this long */
export const MAC_REQUEST_TTL_MS = 24 * 3_600_000;
const SWEEP_MS = 60_000;
/** the ADR history of a device is written at least every this many of its uplinks (losing fewer only delays ADR) */
export const SNR_WRITE_EVERY = 10;
/** RP002 §2.4.2: the three default EU868 channels, with ChMaskCntl 0 */
const DEFAULT_CH_MASK = 0x0007;
/** §5.5, §5.8: the node repeats these answers in every uplink until it receives a class A downlink */
const STICKY: ReadonlySet<MacUplinkCid> = new Set(['RXParamSetupAns', 'RXTimingSetupAns']);
const REQUEST_OF = new Map(Object.entries(ANSWER_OF).map(([req, ans]) => [ans, req as MacRequest['cid']]));

export class MacHandler {
  private readonly d: MacDeps;
  /** sticky answers matched, by device, while the node repeats them (§5.5, §5.8) */
  private readonly sticky = new Map<string, Set<MacUplinkCid>>();
  /** requestMac callers by request id */
  private readonly callers = new Map<string, (o: MacOutcome) => void>();
  /** when each device's bad input was last reported (monotonic ms) */
  private readonly rejectedAt = new Map<string, number>();
  /** uplinks whose SNR entered a device's history since it was last written */
  private readonly unsavedSnr = new Map<string, number>();
  private stopSweep: (() => void) | null = null;

  constructor(deps: MacDeps) {
    this.d = deps;
  }

  /** Sweeps requests past MAC_REQUEST_TTL_MS every minute (on the driver's clock). */
  start(): void {
    this.stopSweep ??= every(this.d.clock, SWEEP_MS, () => this.expire());
  }

  /** The callers' outcomes end (failed, stopped); the pending requests and the ADR histories stay stored and resume after a restart. */
  stop(): void {
    this.stopSweep?.();
    this.stopSweep = null;
    for (const settle of this.callers.values()) settle({ status: 'failed', reason: 'stopped' });
    this.callers.clear();
    for (const devEui of this.unsavedSnr.keys()) this.d.state.touch(this.d.state.get(devEui));
    this.unsavedSnr.clear();
    this.d.state.flush();
  }

  // ------------------------------------------------------------------ uplink

  /**
   * An accepted data uplink: its answers applied, unanswered requests failed, DevStatusReq when
   * due. Returns the node's own requests of this uplink, for its downlink (`prepare`, `plan`).
   */
  onUplink(device: DeviceEntry, f: MacUplinkFrame): MacReplies {
    const state = this.d.state.get(device.devEui);
    const replies: MacReplies = { linkCheck: false, deviceTimeGpsMs: null, required: f.adrAckReq, cmds: [] };
    // a sticky answer is known only while the node repeats it: a frame without it ends it
    const repeated = this.sticky.get(device.devEui);
    this.sticky.delete(device.devEui);
    for (const cmd of this.commandsOf(device, f)) {
      if (cmd.cid === 'LinkCheckReq') replies.linkCheck = true;
      else if (cmd.cid === 'DeviceTimeReq') replies.deviceTimeGpsMs = unixToGpsMs(f.receivedAt);
      else if (STICKY.has(cmd.cid)) {
        // §5.5, §5.8: the node repeats it until a class A downlink reaches it: one goes now
        replies.required = true;
        if (this.answered(device, state, cmd, repeated?.has(cmd.cid) === true)) this.stickyOf(device.devEui).add(cmd.cid);
      } else this.answered(device, state, cmd, false);
    }
    for (const p of state.pending.filter((x) => x.attempts >= MAX_MAC_ATTEMPTS)) this.end(device.id, state, p, p.missed === p.attempts ? 'not_sent' : 'no_answer');
    this.askStatus(state);
    return replies;
  }

  /** FOpts or an FPort 0 payload, decoded up to the first byte that does not decode. */
  private commandsOf(device: DeviceEntry, f: MacUplinkFrame): MacUplink[] {
    const port0 = f.fPort === 0 && f.payload.length > 0;
    if (f.fOpts.length > 0 && port0) {
      this.reject(device, 'mac_both', 'frame', 'MAC commands both in FOpts and on FPort 0 (LoRaWAN 1.0.3 §4.3.1.6): all ignored');
      return [];
    }
    const bytes = port0 ? f.payload : f.fOpts;
    if (bytes.length === 0) return [];
    const decoded = decodeMacUplink(bytes);
    if (decoded.error !== null) this.reject(device, 'mac_malformed', 'frame', decoded.error);
    return decoded.commands;
  }

  /**
   * The node's answer, matched to the pending request of its CID that went on the air (one is in
   * flight per CID); false when none did (an answer nothing asked for, or a sticky answer
   * `repeated` since it was matched).
   */
  private answered(device: DeviceEntry, state: MacState, answer: MacUplink, repeated: boolean): boolean {
    const cid = REQUEST_OF.get(answer.cid);
    const pending = state.pending.find((p) => p.request.cid === cid && p.attempts > (p.missed ?? 0));
    if (!pending) {
      if (repeated) return true;
      this.reject(device, 'mac_unsolicited', answer.cid, `${answer.cid} answers no pending request`);
      return false;
    }
    state.pending.splice(state.pending.indexOf(pending), 1);
    const before = { dr: state.dr ?? device.dr, txPower: state.txPower ?? 0 };
    const applied = applyAnswer(state, pending.request, answer);
    const command = pending.request.cid;
    if (!applied.ok) {
      // ADR asks again only after a new full history
      if (command === 'LinkADRReq') state.snrHistory = [];
      this.d.state.touch(state);
      this.d.metrics.mac(command, 'refused');
      this.d.events.emit({ device: device.id, kind: 'lorawan.mac.refused', severity: 'warning', detail: { command, reason: applied.reason, attempts: pending.attempts, origin: pending.origin } });
      this.settle(pending, { status: 'refused', answer, reason: applied.reason });
      return true;
    }
    if (pending.request.cid === 'LinkADRReq') this.adrApplied(device, state, pending, before);
    if (answer.cid === 'DevStatusAns') this.statusReported(device, state, answer);
    this.d.state.touch(state);
    this.d.metrics.mac(command, 'answered');
    this.d.events.emit({ device: device.id, kind: 'lorawan.mac.answered', severity: 'info', detail: { command, attempts: pending.attempts, origin: pending.origin } });
    this.settle(pending, { status: 'answered', answer });
    return true;
  }

  private adrApplied(device: DeviceEntry, state: MacState, p: PendingMac, before: { dr: number | null; txPower: number }): void {
    const history = state.snrHistory;
    state.snrHistory = [];
    // DataRate 15 keeps the node's: the data rate it was heard at
    const dr = state.dr ?? before.dr ?? 0;
    this.d.events.emit({
      device: device.id,
      kind: 'lorawan.adr.changed',
      severity: 'info',
      detail: {
        fromDr: before.dr ?? dr,
        toDr: dr,
        // both indexes are EU868's: requests are checked (mac/validate.ts), 15 keeps the index (mac/apply.ts)
        fromTxPower: EU868_TX_POWER_DBM_OF(before.txPower),
        toTxPower: EU868_TX_POWER_DBM_OF(state.txPower ?? 0),
        nbTrans: state.nbTrans,
        // a LinkADRReq of requestMac was not ADR's decision: the best SNR of the history (0 without one) and the floor of its DR
        snrMax: p.adr?.snrMax ?? (history.length > 0 ? Math.max(...history) : 0),
        requiredSnr: p.adr?.requiredSnr ?? REQUIRED_SNR_DB[dataRate(dr).sf] ?? 0,
      },
    });
  }

  /** DevStatusAns (§5.6): battery and margin as readings, on the gateway's wall clock. */
  private statusReported(device: DeviceEntry, state: MacState, answer: Extract<MacUplink, { cid: 'DevStatusAns' }>): void {
    state.statusAt = this.d.clock.now();
    try {
      this.d.ingest.pushMany(devStatusReadings(device.id, answer.battery, answer.margin, this.d.wallClock.now()));
    } catch (err) {
      this.d.log.error({ err, device: device.id }, 'could not push the DevStatus readings');
    }
  }

  /** Ends a pending request without an answer: out of the state (a LinkADRReq clears ADR's history, as a NACK does), then failed. */
  private end(deviceId: string, state: MacState, p: PendingMac, reason: string): void {
    const i = state.pending.indexOf(p);
    if (i >= 0) state.pending.splice(i, 1);
    if (p.request.cid === 'LinkADRReq') state.snrHistory = [];
    this.d.state.touch(state);
    this.failed(deviceId, p, reason);
  }

  /** A request failed: counted, an event, its caller told. */
  private failed(deviceId: string, p: PendingMac, reason: string): void {
    this.d.metrics.mac(p.request.cid, 'failed');
    this.d.events.emit({ device: deviceId, kind: 'lorawan.mac.failed', severity: 'warning', detail: { command: p.request.cid, reason, attempts: p.attempts, origin: p.origin } });
    this.settle(p, { status: 'failed', reason });
  }

  /** Requests older than MAC_REQUEST_TTL_MS (their device fell silent): failed, expired. */
  expire(): void {
    const now = this.d.clock.now();
    for (const state of this.d.state.all()) {
      for (const p of state.pending.filter((x) => now - x.createdAt >= MAC_REQUEST_TTL_MS)) {
        this.end(this.d.devices.byDevEui(state.devEui)?.id ?? state.devEui, state, p, 'expired');
      }
    }
  }

  private askStatus(state: MacState): void {
    const interval = this.d.settings.devStatusIntervalMs;
    const now = this.d.clock.now();
    if (interval <= 0 || now - state.statusAskedAt < interval) return;
    if (state.pending.some((p) => p.request.cid === 'DevStatusReq')) return;
    state.statusAskedAt = now;
    this.enqueue(state, { cid: 'DevStatusReq' }, 'devStatus');
  }

  /** Bad MAC input: counted every time, reported once a minute per device at most. */
  private reject(device: DeviceEntry, reason: 'mac_both' | 'mac_malformed' | 'mac_unsolicited', command: string, error: string): void {
    this.d.metrics.reject(reason);
    const now = this.d.clock.monotonic();
    const last = this.rejectedAt.get(device.devEui);
    if (last !== undefined && now - last < REJECTED_EVENT_INTERVAL_MS) return;
    this.rejectedAt.set(device.devEui, now);
    this.d.events.emit({ device: device.id, kind: 'lorawan.mac.rejected', severity: 'warning', detail: { command, reason, error } });
  }

  /**
   * Once the frame's copies are known (before its downlink): the answers to the node's requests —
   * LinkCheckAns (§5.2: margin above the demodulation floor of the uplink's data rate, the
   * forwarders that heard it) and DeviceTimeAns (§5.9: the GPS time of the reception).
   */
  prepare(r: MacReplies, heard: Heard, dr: number | null): void {
    if (r.linkCheck) {
      const floor = dr === null ? undefined : REQUIRED_SNR_DB[dataRate(dr).sf];
      const margin = floor === undefined ? 0 : clamp(Math.round(heard.best.snr - floor), 0, 254);
      r.cmds.push({ cid: 'LinkCheckAns', margin, gwCnt: clamp(heard.copies.length, 1, 255) });
    }
    if (r.deviceTimeGpsMs !== null) r.cmds.push({ cid: 'DeviceTimeAns', gpsMs: r.deviceTimeGpsMs });
  }

  // ------------------------------------------------------------------ downlink

  /** The MAC part of the next frame to the device: `replies` (the answers of the uplink it follows, if any), then the requests that may go. */
  plan(devEui: string, room: MacRoom, replies: MacReplies | null): MacPlan {
    return planMacFrame(replies?.cmds ?? [], this.sendable(devEui), room, replies?.required ?? false);
  }

  /**
   * The pending requests a frame may carry: the first of each CID (§5: answers are matched by CID,
   * in order, so one is in flight per CID), unless it had its MAX_MAC_ATTEMPTS downlinks (it fails
   * at the next uplink) or the node still repeats the sticky answer of an older one (§5.5, §5.8:
   * that repeat would be taken for the answer to this one).
   */
  private sendable(devEui: string): PendingMac[] {
    const pending = this.d.state.get(devEui).pending;
    if (pending.length === 0) return pending;
    const repeating = this.sticky.get(devEui);
    const first = new Set<string>();
    return pending.filter((p) => {
      if (first.has(p.request.cid)) return false;
      first.add(p.request.cid);
      return p.attempts < MAX_MAC_ATTEMPTS && repeating?.has(ANSWER_OF[p.request.cid]) !== true;
    });
  }

  /** A frame went (handed to a forwarder): an attempt for each request it carried, its answers counted. */
  sent(devEui: string, plan: MacPlan): void {
    for (const cid of plan.replied) this.d.metrics.mac(cid, 'answered');
    this.attempted(devEui, plan.ids, false);
  }

  /** A frame planned to carry `plan` could not go (no forwarder, duty cycle, too late): an attempt all the same. */
  missed(devEui: string, plan: MacPlan): void {
    this.attempted(devEui, plan.ids, true);
  }

  private attempted(devEui: string, ids: readonly string[], missed: boolean): void {
    if (ids.length === 0) return;
    const state = this.d.state.get(devEui);
    for (const p of state.pending) {
      if (!ids.includes(p.id)) continue;
      p.attempts++;
      if (missed) p.missed = (p.missed ?? 0) + 1;
      else this.d.metrics.mac(p.request.cid, 'sent');
    }
    this.d.state.touch(state);
  }

  /** The RX settings of the device: what it ACKed (RXParamSetupAns, RXTimingSetupAns), else the network's. */
  rxSettings(devEui: string, defaults: RxWindowSettings): RxWindowSettings {
    const s = this.d.state.get(devEui);
    return {
      ...defaults,
      rx1Delay: s.rx1Delay ?? defaults.rx1Delay,
      rx1DrOffset: s.rx1DrOffset ?? defaults.rx1DrOffset,
      rx2Dr: s.rx2Dr ?? defaults.rx2Dr,
      ...(s.rx2Frequency !== null ? { rx2FreqMHz: s.rx2Frequency / 1e6 } : {}),
    };
  }

  // ------------------------------------------------------------------ requests

  /** Queues a request (see `enqueue`). Returns its outcome. */
  request(devEui: string, request: MacRequest): Promise<MacOutcome> {
    const id = this.enqueue(this.d.state.get(devEui), request, 'api');
    return new Promise((resolve) => this.callers.set(id, resolve));
  }

  /**
   * Queues a request behind the device's others. One of the same CID not sent yet is replaced (its
   * caller: failed, replaced); one already sent never is — its answer may be on its way — and the
   * new one waits behind it.
   */
  private enqueue(state: MacState, request: MacRequest, origin: MacOrigin, adr?: PendingMac['adr']): string {
    const unsent = state.pending.find((p) => p.request.cid === request.cid && p.attempts === 0);
    const p: PendingMac = { id: randomUUID(), request, attempts: 0, createdAt: this.d.clock.now(), origin, ...(adr ? { adr } : {}) };
    if (unsent) {
      state.pending[state.pending.indexOf(unsent)] = p;
      this.settle(unsent, { status: 'failed', reason: 'replaced' });
    } else state.pending.push(p);
    this.d.state.touch(state);
    return p.id;
  }

  private settle(p: PendingMac, outcome: MacOutcome): void {
    const settle = this.callers.get(p.id);
    this.callers.delete(p.id);
    settle?.(outcome);
  }

  // ------------------------------------------------------------------ ADR and sessions

  /**
   * After the window closed: the best SNR of an uplink with the ADR bit enters the history, and
   * ADR decides — unless a LinkADRReq is in flight (its answer first) or an operator's waits.
   */
  afterWindow(device: DeviceEntry, heard: Heard, dr: number | null, adrBit: boolean): void {
    const adr = this.d.settings.adr;
    if (!adrBit || !(device.adr ?? adr.enabled) || dr === null || dr > 5) return;
    const state = this.d.state.get(device.devEui);
    const history = state.snrHistory;
    history.push(heard.best.snr);
    if (history.length > adr.historySize) history.splice(0, history.length - adr.historySize);
    this.snrAdded(state);
    if (state.pending.some((p) => p.request.cid === 'LinkADRReq' && (p.attempts > 0 || p.origin !== 'adr'))) return;
    const decision = adrDecide({
      dr,
      txPowerIndex: state.txPower ?? 0,
      nbTrans: state.nbTrans,
      maxDr: adr.maxDr,
      minDr: adr.minDr,
      maxTxPowerIndex: EU868_MAX_TX_POWER_INDEX,
      snrHistory: history,
      margin: adr.margin,
      historySize: adr.historySize,
    });
    if (!decision) return;
    const request: MacRequest = { cid: 'LinkADRReq', dataRate: decision.dr, txPower: decision.txPowerIndex, chMask: channelMask(state), chMaskCntl: 0, nbTrans: decision.nbTrans };
    if (state.pending.some((p) => isDeepStrictEqual(p.request, request))) return;
    this.enqueue(state, request, 'adr', { snrMax: decision.snrMax, requiredSnr: decision.requiredSnr });
  }

  /** The ADR history changed: written every SNR_WRITE_EVERY uplinks (any other change of the state writes it too). */
  private snrAdded(state: MacState): void {
    const n = (this.unsavedSnr.get(state.devEui) ?? 0) + 1;
    if (n < SNR_WRITE_EVERY) {
      this.unsavedSnr.set(state.devEui, n);
      return;
    }
    this.unsavedSnr.delete(state.devEui);
    this.d.state.touch(state);
  }

  /**
   * A new session (OTAA join): the node starts from its defaults; its pending requests end
   * (failed, rejoined) — reported only: the old state is no longer written.
   */
  onJoin(device: DeviceEntry): void {
    const old = this.d.state.reset(device.devEui);
    for (const p of old.pending) this.failed(device.id, p, 'rejoined');
    this.sticky.delete(device.devEui);
    this.unsavedSnr.delete(device.devEui);
  }

  /** The TX power the node runs at (dBm), once it ACKed a LinkADRReq. */
  txPowerDbm(devEui: string): number | null {
    return eu868TxPowerDbmOrNull(this.d.state.get(devEui).txPower);
  }

  status(device: DeviceEntry): MacStatus {
    const s = this.d.state.get(device.devEui);
    return {
      txPower: this.txPowerDbm(device.devEui),
      ...decodeBattery(s.battery),
      margin: s.margin,
      adr: device.adr ?? this.d.settings.adr.enabled,
    };
  }

  private stickyOf(devEui: string): Set<MacUplinkCid> {
    let set = this.sticky.get(devEui);
    if (!set) this.sticky.set(devEui, (set = new Set()));
    return set;
  }
}

/** RP002 §2.4.2, §2.4.5: ChMask (ChMaskCntl 0) with the default channels and those the node ACKed (NewChannelReq). */
function channelMask(state: MacState): number {
  let mask = DEFAULT_CH_MASK;
  for (const c of state.channels) mask |= 1 << c.chIndex;
  return mask;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}
