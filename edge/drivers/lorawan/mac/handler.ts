/**
 * MAC commands on both roads (LoRaWAN 1.0.3 §5), per device, with its state in the store
 * (mac/state.ts):
 *
 * Uplink (`onUplink`, after the frame is accepted): the commands of FOpts or of an FPort 0
 * payload (both in one frame is invalid, §4.3.1.6: `mac_both`); a decode error keeps the commands
 * before it (`mac_malformed`). The node's requests (LinkCheckReq, DeviceTimeReq) are answered in
 * the downlink of this uplink (`prepare` once the copies are known); its answers are matched to
 * the device's pending requests by CID, in order, and applied (mac/apply.ts) or refused (a NACK);
 * an answer nothing asked for is `mac_unsolicited`. A request still unanswered after
 * MAX_MAC_ATTEMPTS downlinks has failed. A DevStatusReq is queued every devStatusInterval.
 *
 * Downlink (`plan`, `sent`): what the next frame to the device carries — the answers first, then
 * every pending request — in FOpts (never past 15 bytes, nor past the data rate's payload with an
 * application payload) or, with no application payload and more than FOpts holds, as an FPort 0
 * payload within the data rate's N. What does not fit waits for the next downlink.
 *
 * ADR (`afterWindow`, ChirpStack's default algorithm in mac/adr.ts): the best SNR of each uplink
 * with the ADR bit enters the history; a decision is one LinkADRReq pending at most (a newer one
 * replaces it). Applied when the node ACKs it; a NACK clears the history, so ADR asks again only
 * after a new full history.
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
import { batteryPercent, devStatusReadings } from '../readings.js';
import { dataRate } from '../region/eu868.js';
import type { Heard } from '../uplink/dedup.js';
import { adrDecide, EU868_MAX_TX_POWER_INDEX, EU868_TX_POWER_DBM_OF, REQUIRED_SNR_DB } from './adr.js';
import { ANSWER_OF, applyAnswer } from './apply.js';
import { decodeMacUplink, encodeMacDownlink, fitFOpts } from './commands.js';
import { MAX_MAC_ATTEMPTS, type MacOrigin, type MacRequest, type MacState, type MacStateStore, type PendingMac } from './state.js';
import { FOPTS_MAX, unixToGpsMs, type MacDownlink, type MacUplink, type MacUplinkCid } from './types.js';

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

/** The MAC part of a downlink; downlink/sender.ts builds the frame around it. */
export interface MacPlan {
  /** encoded commands for FOpts (≤ 15 bytes; empty for none) */
  fOpts: Buffer;
  /** encoded commands as an FPort 0 payload, or null */
  port0: Buffer | null;
  /** the pending requests the frame carries (`sent` once it is transmitted) */
  ids: string[];
  /** requests still waiting after this frame (FPending) */
  waiting: boolean;
  /** the node needs a downlink now (a request of its own, ADRACKReq, a sticky answer): sent even without commands */
  required: boolean;
}

/** What a frame has room for: the application payload it carries (null: none) and its data rate's N. */
export interface MacRoom {
  payloadBytes: number | null;
  maxPayload: number;
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

/** the node's own requests of one uplink, answered in its downlink */
interface Replies {
  linkCheck: boolean;
  deviceTimeGpsMs: number | null;
  required: boolean;
  cmds: MacDownlink[];
}

/** a device's bad MAC input is reported at most this often (each one is counted) */
const REJECTED_EVENT_INTERVAL_MS = 60_000;
/** a request a silent device never had the chance to answer fails after this long */
export const MAC_REQUEST_TTL_MS = 24 * 3_600_000;
const SWEEP_MS = 60_000;
/** RP002 §2.4.2: the three default EU868 channels, with ChMaskCntl 0 */
const DEFAULT_CH_MASK = 0x0007;
/** §5.5, §5.8: the node repeats these answers in every uplink until it receives a class A downlink */
const STICKY: ReadonlySet<MacUplinkCid> = new Set(['RXParamSetupAns', 'RXTimingSetupAns']);
const EMPTY = Buffer.alloc(0);
const REQUEST_OF = new Map(Object.entries(ANSWER_OF).map(([req, ans]) => [ans, req as MacRequest['cid']]));

export class MacHandler {
  private readonly d: MacDeps;
  private readonly replies = new Map<string, Replies>();
  /** sticky answers matched, by device, while the node repeats them (§5.5, §5.8) */
  private readonly sticky = new Map<string, Set<MacUplinkCid>>();
  /** requestMac callers by request id */
  private readonly callers = new Map<string, (o: MacOutcome) => void>();
  /** when each device's bad input was last reported (monotonic ms) */
  private readonly rejectedAt = new Map<string, number>();
  private stopSweep: (() => void) | null = null;

  constructor(deps: MacDeps) {
    this.d = deps;
  }

  /** Sweeps requests past MAC_REQUEST_TTL_MS every minute (on the driver's clock). */
  start(): void {
    this.stopSweep ??= every(this.d.clock, SWEEP_MS, () => this.expire());
  }

  /** The callers' outcomes end (failed, stopped); the pending requests stay stored and resume after a restart. */
  stop(): void {
    this.stopSweep?.();
    this.stopSweep = null;
    for (const settle of this.callers.values()) settle({ status: 'failed', reason: 'stopped' });
    this.callers.clear();
    this.d.state.flush();
  }

  // ------------------------------------------------------------------ uplink

  /** An accepted data uplink: the node's requests recorded, its answers applied, unanswered requests failed, DevStatusReq when due. */
  onUplink(device: DeviceEntry, f: MacUplinkFrame): void {
    const state = this.d.state.get(device.devEui);
    const replies: Replies = { linkCheck: false, deviceTimeGpsMs: null, required: f.adrAckReq, cmds: [] };
    this.replies.set(device.devEui, replies);
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
    for (const p of state.pending.filter((x) => x.attempts >= MAX_MAC_ATTEMPTS)) this.end(device.id, state, p, 'no_answer');
    this.askStatus(state);
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
   * The node's answer, matched to the oldest pending request of its CID that was sent; false when
   * none was (an answer nothing asked for, or a sticky answer `repeated` since it was matched).
   */
  private answered(device: DeviceEntry, state: MacState, answer: MacUplink, repeated: boolean): boolean {
    const cid = REQUEST_OF.get(answer.cid);
    const pending = state.pending.find((p) => p.request.cid === cid && p.attempts > 0);
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
    const dr = state.dr ?? 0;
    this.d.events.emit({
      device: device.id,
      kind: 'lorawan.adr.changed',
      severity: 'info',
      detail: {
        fromDr: before.dr ?? dr,
        toDr: dr,
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

  /** Ends a pending request without an answer: failed (counted, an event), its caller told. */
  private end(deviceId: string, state: MacState, p: PendingMac, reason: string): void {
    const i = state.pending.indexOf(p);
    if (i >= 0) state.pending.splice(i, 1);
    this.d.state.touch(state);
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
  prepare(devEui: string, heard: Heard, dr: number | null): void {
    const r = this.replies.get(devEui);
    if (!r) return;
    if (r.linkCheck) {
      const floor = dr === null ? undefined : REQUIRED_SNR_DB[dataRate(dr).sf];
      const margin = floor === undefined ? 0 : clamp(Math.round(heard.best.snr - floor), 0, 254);
      r.cmds.push({ cid: 'LinkCheckAns', margin, gwCnt: clamp(heard.copies.length, 1, 255) });
      this.d.metrics.mac('LinkCheckReq', 'answered');
    }
    if (r.deviceTimeGpsMs !== null) {
      r.cmds.push({ cid: 'DeviceTimeAns', gpsMs: r.deviceTimeGpsMs });
      this.d.metrics.mac('DeviceTimeReq', 'answered');
    }
    if (r.cmds.length > 0) r.required = true;
  }

  // ------------------------------------------------------------------ downlink

  /** The MAC part of the next frame to the device (the answers of this uplink are taken, sent or not). */
  plan(devEui: string, room: MacRoom): MacPlan {
    const replies = this.replies.get(devEui);
    this.replies.delete(devEui);
    const state = this.d.state.get(devEui);
    const queued: { cmd: MacDownlink; id: string | null }[] = [
      ...(replies?.cmds ?? []).map((cmd) => ({ cmd, id: null })),
      ...state.pending.map((p) => ({ cmd: p.request as MacDownlink, id: p.id })),
    ];
    const required = replies?.required ?? false;
    if (queued.length === 0) return { fOpts: EMPTY, port0: null, ids: [], waiting: false, required };
    const cmds = queued.map((q) => q.cmd);
    // §4.3.1.6: FOpts holds 15 bytes; without an application payload, more go on FPort 0 (within N)
    const port0 = room.payloadBytes === null && encodeMacDownlink(cmds).length > FOPTS_MAX;
    const budget = port0 ? room.maxPayload : clamp(room.maxPayload - (room.payloadBytes ?? 0), 0, FOPTS_MAX);
    const { fit } = fitFOpts(cmds, budget);
    const carried = inOrder(queued, fit);
    const bytes = fit.length > 0 ? encodeMacDownlink(fit) : EMPTY;
    return {
      fOpts: port0 ? EMPTY : bytes,
      port0: port0 && bytes.length > 0 ? bytes : null,
      ids: carried.flatMap((q) => (q.id === null ? [] : [q.id])),
      waiting: queued.some((q) => q.id !== null && !carried.includes(q)),
      required,
    };
  }

  /** A frame went to the device (handed to a forwarder) carrying the requests `ids`: each counts an attempt. */
  sent(devEui: string, ids: readonly string[]): void {
    if (ids.length === 0) return;
    const state = this.d.state.get(devEui);
    for (const p of state.pending) {
      if (!ids.includes(p.id)) continue;
      p.attempts++;
      this.d.metrics.mac(p.request.cid, 'sent');
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

  /** Queues a request; a pending one of the same CID is replaced (its caller: failed, replaced). Returns its outcome. */
  request(devEui: string, request: MacRequest): Promise<MacOutcome> {
    const id = this.enqueue(this.d.state.get(devEui), request, 'api');
    return new Promise((resolve) => this.callers.set(id, resolve));
  }

  private enqueue(state: MacState, request: MacRequest, origin: MacOrigin, adr?: PendingMac['adr']): string {
    const old = state.pending.find((p) => p.request.cid === request.cid);
    const p: PendingMac = { id: randomUUID(), request, attempts: 0, createdAt: this.d.clock.now(), origin, ...(adr ? { adr } : {}) };
    if (old) {
      state.pending[state.pending.indexOf(old)] = p;
      this.settle(old, { status: 'failed', reason: 'replaced' });
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
   * ADR decides (LinkADRReq for the default channels, at most one pending).
   */
  afterWindow(device: DeviceEntry, heard: Heard, dr: number | null, adrBit: boolean): void {
    const adr = this.d.settings.adr;
    if (!adrBit || !(device.adr ?? adr.enabled) || dr === null || dr > 5) return;
    const state = this.d.state.get(device.devEui);
    state.snrHistory = [...state.snrHistory, heard.best.snr].slice(-adr.historySize);
    this.d.state.touch(state);
    const decision = adrDecide({
      dr,
      txPowerIndex: state.txPower ?? 0,
      nbTrans: state.nbTrans,
      maxDr: adr.maxDr,
      minDr: adr.minDr,
      maxTxPowerIndex: EU868_MAX_TX_POWER_INDEX,
      snrHistory: state.snrHistory,
      margin: adr.margin,
      historySize: adr.historySize,
    });
    if (!decision) return;
    const request: MacRequest = { cid: 'LinkADRReq', dataRate: decision.dr, txPower: decision.txPowerIndex, chMask: DEFAULT_CH_MASK, chMaskCntl: 0, nbTrans: decision.nbTrans };
    if (state.pending.some((p) => isDeepStrictEqual(p.request, request))) return;
    this.enqueue(state, request, 'adr', { snrMax: decision.snrMax, requiredSnr: decision.requiredSnr });
  }

  /** A new session (OTAA join): the node starts from its defaults; its pending requests end (failed, rejoined). */
  onJoin(device: DeviceEntry): void {
    const old = this.d.state.reset(device.devEui);
    for (const p of old.pending) this.end(device.id, old, p, 'rejoined');
    this.replies.delete(device.devEui);
    this.sticky.delete(device.devEui);
  }

  /** The TX power the node runs at (dBm), once it ACKed a LinkADRReq. */
  txPowerDbm(devEui: string): number | null {
    const p = this.d.state.get(devEui).txPower;
    return p === null ? null : EU868_TX_POWER_DBM_OF(p);
  }

  status(device: DeviceEntry): MacStatus {
    const s = this.d.state.get(device.devEui);
    const battery = s.battery === null || s.battery === 0 || s.battery === 255 ? null : batteryPercent(s.battery);
    return {
      txPower: this.txPowerDbm(device.devEui),
      battery,
      externalPower: s.battery === null || s.battery === 255 ? null : s.battery === 0,
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

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

/** The entries of `queued` whose commands `fit` took, matched in order (fitFOpts keeps the order it was given). */
function inOrder<T extends { cmd: MacDownlink }>(queued: T[], fit: readonly MacDownlink[]): T[] {
  const out: T[] = [];
  let j = 0;
  for (const q of queued) {
    if (j < fit.length && isDeepStrictEqual(q.cmd, fit[j])) {
      out.push(q);
      j++;
    }
  }
  return out;
}
