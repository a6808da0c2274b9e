/**
 * The road of an uplink, top to bottom (as ChirpStack's uplink/data.rs and uplink/join.rs):
 * receive (CRC, length, parse) → claim (a copy of a frame being handled: counted, done) →
 * decode (session, FCnt, MIC) → commit the counter → open the de-duplication window → store
 * the status → MAC commands (mac/handler.ts) → application ports (uplink/app.ts) → answer in
 * RX1/RX2 → store the radio readings → ADR. One function per frame kind (dataUplink,
 * joinRequest), each step in order, ending in `answer`, the one step that awaits the window
 * where the answer needs it.
 *
 * With one forwarder the answer goes at once. With several, the window collects the copies
 * first (RX1 is 1 s after the uplink, the window at most 500 ms) and the best forwarder that
 * can transmit answers. Either way the radio readings and ADR wait for the window: the best
 * RSSI/SNR of all copies.
 *
 * Two clocks: the driver's (`clock`, scaled by simulate.radioTimeScale) times the radio — the
 * window, the GPS time of a reception; the gateway's (`wallClock`) stamps readings and lastUplink.
 */
import { wallOf, type Clock } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import { decodeStatus, STATUS_FPORT, type StreetlightStatus } from '../../../profiles/loraStreetlight.js';
import type { Ingest } from '../../../store/api.js';
import type { DeviceEntry, DeviceIndex } from '../devices.js';
import { buildJoinAccept } from '../downlink/join.js';
import type { DownlinkSender } from '../downlink/sender.js';
import { LoraError } from '../errors.js';
import type { LorawanEvents } from '../events.js';
import type { MacHandler, MacReplies } from '../mac/handler.js';
import type { LorawanMetrics } from '../metrics.js';
import { radioReadings, statusReadings } from '../readings.js';
import { drIndex, parseDatr } from '../region/eu868.js';
import type { GatewayBackend, UplinkRx } from '../semtech/backend.js';
import type { ForwarderTable } from '../semtech/forwarders.js';
import type { Session, SessionStore } from '../storage/sessions.js';
import type { AppUplinkRouter } from './app.js';
import { decodeDataUplink, type DataUplink } from './data.js';
import type { DedupWindow, Deduplicator, Heard, RxMeta } from './dedup.js';
import { handleJoinRequest } from './join.js';
import { receiveFrame, type ReceivedFrame } from './receive.js';

export interface JoinSettings {
  netId: string;
  rx1DrOffset: number;
  rx2Dr: number;
  rx1Delay: number;
}

/** What an accepted frame is answered with. */
type Answer =
  | { kind: 'data'; session: Session; confirmed: boolean; ack: boolean; adr: boolean; status: StreetlightStatus | null; replies: MacReplies }
  | { kind: 'join'; joinAccept: Buffer; devAddr: string; devNonce: number };

export interface UplinkDeps {
  devices: DeviceIndex;
  sessions: SessionStore;
  dedup: Deduplicator;
  sender: DownlinkSender;
  backend: GatewayBackend;
  /** the forwarders served, vouched for by a valid frame (null: a backend of its own was plugged in) */
  table: ForwarderTable | null;
  join: JoinSettings;
  ingest: Ingest;
  metrics: LorawanMetrics;
  mac: MacHandler;
  apps: AppUplinkRouter;
  /** the driver's clock: the radio's timing */
  clock: Clock;
  /** the gateway's clock (ctx.clock): timestamps of readings and lastUplink */
  wallClock: Clock;
  log: Logger;
  events: LorawanEvents;
}

export class UplinkHandler {
  private readonly d: UplinkDeps;
  /** chains still running (waiting for their window), and who waits for the last to end */
  private running = 0;
  private drained: (() => void) | null = null;
  private stopped = false;

  constructor(deps: UplinkDeps) {
    this.d = deps;
  }

  /** The backend's uplink handler: runs the chain of one rxpk; a rejected frame is counted by reason, never thrown. */
  readonly receive = (rx: UplinkRx): void => {
    if (this.stopped) return;
    this.d.metrics.frames++;
    try {
      const chain = this.handle(rx);
      if (!chain) return;
      this.running++;
      void chain.then(this.ended);
    } catch (err) {
      this.reject(err, rx.gatewayEui);
    }
  };

  private readonly ended = (): void => {
    if (--this.running === 0) this.drained?.();
  };

  /**
   * On stop, while the forwarders can still be reached: the open windows close now, so their
   * answers (a Join Accept for a session already stored) go out rather than never; then the
   * chains end, and frames that come later are dropped.
   */
  async stop(): Promise<void> {
    this.d.dedup.flush();
    if (this.running > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.stopped = true;
  }

  /** receive → claim → the chain of its kind; null for a copy merged into an open window. */
  private handle(rx: UplinkRx): Promise<void> | null {
    const frame = receiveFrame(rx);
    // claim: a copy of a frame whose window is open is merged into it; the first gets its window, opened once accepted
    const claim = this.d.dedup.claim(frame.key, frame.phy, frame.meta);
    if (claim.copy) {
      this.d.metrics.duplicates++;
      return null;
    }
    return frame.join ? this.joinRequest(frame, claim.window) : this.dataUplink(frame, claim.window);
  }

  /** A data uplink (LoRaWAN 1.0.3 §4), the first copy heard. */
  private dataUplink(frame: ReceivedFrame, window: DedupWindow): Promise<void> {
    const { sessions, devices } = this.d;
    // decode: the session by DevAddr, the 32-bit FCnt, the MIC, the FRMPayload (uplink/data.ts)
    const dec = decodeDataUplink(frame.packet, (addr) => {
      const s = sessions.byDevAddr(addr);
      return s && devices.byDevEui(s.devEui) ? s : undefined;
    });
    // FCnt: accepted, the counter is committed before anything else can fail
    dec.session.fCntUp = dec.fCnt;
    sessions.touch(dec.session);
    // accepted: the window opens, copies from other forwarders are merged into it from now on
    const heard = window.open();
    this.d.metrics.uplinks++;
    const now = this.d.wallClock.now();
    const device = this.heardFrom(dec.session.devEui, frame.meta, now);
    // store
    const status = this.storeStatus(device, dec, now);
    // MAC commands: answers applied, what is due queued; the node's own requests travel with this uplink to its answer (mac/handler.ts)
    const dr = drOf(frame.meta.up.datr);
    const receivedAt = this.receivedAt(frame.meta);
    const replies = this.d.mac.onUplink(device, { fOpts: dec.fOpts, fPort: dec.fPort, payload: dec.payload, adrAckReq: dec.adrAckReq, receivedAt });
    // application ports: listeners, TS003 answered (uplink/app.ts); what they queue goes in this uplink's answer (class C: at once)
    this.d.apps.route(device, dec, frame.meta, dr, receivedAt);
    // answer: the command in flight settles, the next one (and/or an ACK, MAC commands) goes in RX1/RX2
    const answer: Answer = { kind: 'data', session: dec.session, confirmed: dec.confirmed, ack: dec.ack, adr: dec.adr, status, replies };
    return this.answer(device, frame.meta, heard, answer, dr, now);
  }

  /** The reception as wall ms on the driver's clock (its monotonic arrival moved onto its wall time). */
  private receivedAt(meta: RxMeta): number {
    return wallOf(this.d.clock, meta.up.receivedAt);
  }

  /** A Join Request (LoRaWAN 1.0.3 §6.2), the first copy heard: a new session and its Join Accept. */
  private joinRequest(frame: ReceivedFrame, window: DedupWindow): Promise<void> {
    const { sessions, devices, join } = this.d;
    // decode: the device's keys, the MIC, an unused DevNonce; the session keys and a DevAddr (uplink/join.ts)
    const result = handleJoinRequest(frame.packet, (devEui) => devices.otaaKeys(devEui), sessions, join.netId);
    // store
    sessions.put(result.session);
    // accepted: the window opens, copies from other forwarders are merged into it from now on
    const heard = window.open();
    this.d.metrics.joins++;
    const now = this.d.wallClock.now();
    const device = this.heardFrom(result.session.devEui, frame.meta, now);
    // a new session: the node starts from its MAC defaults
    this.d.mac.onJoin(device);
    // answer: the Join Accept in JOIN_ACCEPT_DELAY1/2
    const joinAccept = buildJoinAccept(
      { appNonce: result.appNonce, netId: result.netId, devAddr: result.session.devAddr, rx1DrOffset: join.rx1DrOffset, rx2Dr: join.rx2Dr, rx1Delay: join.rx1Delay },
      result.keys.appKey,
    );
    return this.answer(device, frame.meta, heard, { kind: 'join', joinAccept, devAddr: result.session.devAddr, devNonce: result.devNonce }, null, now);
  }

  /**
   * The last steps, which may wait for the de-duplication window: the answer — at once with one
   * forwarder; with several, after the window, through the best forwarder that can transmit —
   * then the radio readings of all copies and ADR. Holds only what these steps need while it waits.
   */
  private async answer(device: DeviceEntry, first: RxMeta, heard: Promise<Heard>, answer: Answer, dr: number | null, ts: number): Promise<void> {
    try {
      // with one forwarder, the first copy is the only one
      const known: Heard = this.severalForwarders() ? await heard : { best: first, copies: [first] };
      const via = this.answerer(known);
      device.gateway = via.gatewayEui;
      if (!this.stopped) this.send(device, answer, via, known, dr);
      const all = await heard;
      this.storeRadio(device, all, dr, ts);
      if (answer.kind === 'data') this.d.mac.afterWindow(device, all, dr, answer.adr);
    } catch (err) {
      this.reject(err, first.gatewayEui);
    }
  }

  private send(device: DeviceEntry, answer: Answer, via: RxMeta, heard: Heard, dr: number | null): void {
    if (answer.kind === 'data') {
      // the answers to the node's MAC requests (LinkCheckAns needs the copies), then RX1/RX2 (downlink/sender.ts)
      this.d.mac.prepare(answer.replies, heard, dr);
      this.d.sender.onUplink(answer.session, via.up, answer.confirmed, answer.ack, answer.status, answer.replies);
      return;
    }
    const sent = this.d.sender.sendJoinAccept(answer.joinAccept, via.up, device.id);
    this.d.events.emit({
      device: device.id,
      kind: 'lorawan.joined',
      severity: 'info',
      detail: { devEui: device.devEui, devAddr: answer.devAddr, devNonce: answer.devNonce, joinAcceptSent: sent, gateway: via.gatewayEui },
    });
  }

  /** An authentic frame of a configured device: the device was heard, and its forwarder is a real one. */
  private heardFrom(devEui: string, meta: RxMeta, now: number): DeviceEntry {
    const device = this.d.devices.byDevEui(devEui);
    // decodeDataUplink / handleJoinRequest accept configured devices only
    if (!device) throw new Error(`LoRaWAN device ${devEui} accepted but not configured`);
    device.lastUplink = now;
    device.gateway = meta.gatewayEui;
    this.d.table?.vouch(meta.gatewayEui);
    return device;
  }

  private storeStatus(device: DeviceEntry, dec: DataUplink, ts: number): StreetlightStatus | null {
    if (dec.fPort !== STATUS_FPORT || dec.payload.length === 0) return null;
    let status: StreetlightStatus;
    try {
      status = decodeStatus(dec.payload);
    } catch (err) {
      // The frame is authentic (MIC ok) but the application payload is not a status: counted, not stored.
      this.d.metrics.reject('codec');
      this.d.log.warn({ device: device.id, err: err instanceof Error ? err.message : String(err) }, 'status payload does not decode');
      return null;
    }
    this.d.ingest.pushMany(statusReadings(device.id, status, ts));
    return status;
  }

  /** When the window has closed: the best forwarder that can transmit answers next time; the best RSSI/SNR of all copies. */
  private storeRadio(device: DeviceEntry, heard: Heard, dr: number | null, ts: number): void {
    device.gateway = this.answerer(heard).gatewayEui;
    device.rssi = heard.best.rssi;
    device.snr = heard.best.snr;
    device.dr = dr;
    try {
      this.d.ingest.pushMany(radioReadings(device.id, ts, heard.best, dr, heard.copies.length, this.d.mac.txPowerDbm(device.devEui)));
    } catch (err) {
      this.d.log.error({ err }, 'could not push radio readings');
    }
  }

  private severalForwarders(): boolean {
    return this.d.backend.forwarders().length > 1;
  }

  /** The copy whose forwarder answers: the best heard that can transmit (it sent PULL_DATA lately). */
  private answerer(heard: Heard): RxMeta {
    return heard.copies.find((m) => this.d.backend.canSend(m.gatewayEui)) ?? heard.best;
  }

  private reject(err: unknown, gatewayEui: string): void {
    if (err instanceof LoraError) {
      this.d.metrics.reject(err.reason);
      this.d.log.debug({ code: err.code, reason: err.reason, gatewayEui, msg: err.message }, 'lorawan frame rejected');
    } else {
      this.d.metrics.reject('internal');
      this.d.log.error({ err, gatewayEui }, 'lorawan uplink handler failed');
    }
  }
}

function drOf(datr: string): number | null {
  const parsed = parseDatr(datr);
  return parsed ? drIndex(parsed) : null;
}
