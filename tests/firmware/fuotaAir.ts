/**
 * The air of the FUOTA session tests: a FuotaRadio port that stands in for the network server
 * (edge/drivers/lorawan; the real driver, its UDP forwarder and TX_ACKs are covered by the lead's
 * end-to-end test), over H4's simulated nodes (edge/sim/lorawan SimNode) in this process. Frames
 * are real LoRaWAN frames, built as the driver builds them (downlink/data.ts) and heard by each
 * node through its own stack (MIC, counters, keys, class C window, loss); the duty cycle is
 * charged to the driver's own ledger (region/dutyCycle.ts), which a test reads back.
 *
 *   enqueueApp    a class C unicast on RX2 (869.525 MHz, `rx2Dr`): too long for it → failed, as the
 *                 driver refuses; no budget → sent once the ledger has it
 *   sendMulticast the frame to every node on its frequency and data rate; `txError(n)` injects a
 *                 forwarder's TX_ACK error for the n-th frame (air time refunded, not transmitted)
 *   uplinks       a node asks for an uplink (onUplinkWanted); it is built, decrypted with the node's
 *                 AppSKey and handed to the onAppUplink listeners of its FPort; a TS003 AppTimeReq
 *                 is answered first, by the driver's own clockSyncServer, as the driver does
 *   drop          a test's filter of unicast downlinks that never reach their node (a fade)
 */
import type { Clock, Timer } from '../../edge/clock.js';
import type { AppUplink, MulticastOutcome, RadioFacts } from '../../edge/drivers/lorawan/api.js';
import { answerClockSync } from '../../edge/drivers/lorawan/app/clockSyncServer.js';
import { FPORT_CLOCK_SYNC } from '../../edge/drivers/lorawan/app/types.js';
import { buildDataDownlink } from '../../edge/drivers/lorawan/downlink/data.js';
import { airtime } from '../../edge/drivers/lorawan/downlink/scheduler.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { DUTY_CYCLE_WINDOW_MS, DutyCycleLedger } from '../../edge/drivers/lorawan/region/dutyCycle.js';
import { dataRate, datrString, EU868_RX2_FREQ_MHZ, maxPayload, subBandOf } from '../../edge/drivers/lorawan/region/eu868.js';
import { unixToGpsMs } from '../../edge/drivers/lorawan/mac/types.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { StreetboxError } from '../../edge/errors.js';
import type { FuotaEventDetail } from '../../edge/store/eventKinds.js';
import type { StoredEvent } from '../../edge/store/types.js';
import type { FuotaRadio } from '../../edge/firmware/methods/fuota/types.js';
import { SimNode, type SimNodeConfig, type SimNodeOptions } from '../../edge/sim/lorawan/node.js';

const GATEWAY = 'aa555a0000000001';

/** A `fuota.*` event's detail as the tests read it: the plan's figures, a node's step fields. */
export interface FuotaDetail extends FuotaEventDetail {
  fragments: number;
  parity: number;
  fragSize: number;
  airtimeMs: number;
  sessionTimeoutMs: number;
  fragmentation: number;
  nodes: number;
  from: number;
  code: string;
  micOk: boolean;
}

/** The `fuota.session` or `fuota.node` events of `events` (both kinds: null; a step, a device), oldest first. */
export function fuotaEvents(events: readonly StoredEvent[], kind: 'fuota.session' | 'fuota.node' | null, step?: string, device?: string): { device: string | null; detail: FuotaDetail }[] {
  return events
    .filter((e) => (kind === null ? e.kind === 'fuota.session' || e.kind === 'fuota.node' : e.kind === kind))
    .map((e) => ({ device: e.device, detail: e.detail as FuotaDetail }))
    .filter((e) => (step === undefined || e.detail.step === step) && (device === undefined || e.device === device));
}

export interface AirNode {
  cfg: SimNodeConfig;
  opts?: SimNodeOptions;
}

export interface SimAir {
  radio: FuotaRadio;
  node(id: string): SimNode;
  readonly nodes: SimNode[];
  /** the multicast FCnts sent (TX_ACK errors included), in order */
  readonly multicastFCnts: number[];
  /** when each multicast frame went on the air (the radio clock's monotonic ms) */
  readonly multicastAt: number[];
  /** multicast frames transmitted, and refused by an injected TX_ACK error */
  readonly counts: { multicast: number; txErrors: number; unicast: number; unicastTooLong: number };
  /** each unicast downlink transmitted: "<device> <label>" */
  readonly unicastLabels: string[];
  readonly ledger: DutyCycleLedger;
  /** the most air time the ledger held on 869.525 MHz (g3) over any hour, ms */
  readonly peakUsedMs: number;
  /** injects a TX_ACK error for the n-th multicast frame (1-based), null for none */
  txError: (n: number) => string | null;
  /** unicast downlinks (by device and label) lost on their way: true drops it (the outcome still says sent) */
  drop: (device: string, label: string) => boolean;
  /** multicast frames a node misses (its n-th, 1-based, of those transmitted): a loss of the multicast alone */
  dropMulticast: (device: string, n: number) => boolean;
  /** stands for a driver that is not running: sendMulticast throws E_COMPONENT while true */
  driverStopped: boolean;
  /** hears each unicast downlink as it is transmitted */
  onUnicast: (device: string, label: string) => void;
  /** an uplink on `fPort` as if `device` sent it (a late answer of before): the listeners hear it at once */
  uplinkAs(device: string, fPort: number, payload: Buffer): void;
  stop(): void;
}

/** An ABP class C streetlight node `lamp-<i>` with keys of its own and a GenAppKey. */
export function airNode(i: number, opts: SimNodeOptions = {}): AirNode {
  const hex = (byte: number, n: number) => Buffer.alloc(n, byte).toString('hex');
  return {
    cfg: {
      id: `lamp-${i}`,
      devEui: `70b3d5499a0000${i.toString(16).padStart(2, '0')}`,
      activation: 'abp',
      class: 'C',
      devAddr: `260b00${i.toString(16).padStart(2, '0')}`,
      nwkSKey: hex(0x10 + i, 16),
      appSKey: hex(0x20 + i, 16),
      genAppKey: hex(0x30 + i, 16),
    },
    opts,
  };
}

export function simAir(o: { clock: Clock; nodes: AirNode[]; rx2Dr?: number }): SimAir {
  const { clock } = o;
  const rx2Dr = o.rx2Dr ?? 0;
  const nodes = o.nodes.map((n, i) => new SimNode(n.cfg, { seed: 1000 + i, ...n.opts, clock, rx2Dr }));
  const byId = new Map(nodes.map((n) => [n.cfg.id, n]));
  const listeners = new Map<number, Set<(u: AppUplink) => void>>();
  const fCntDown = new Map<string, number>();
  const timers = new Set<Timer>();
  const ledger = new DutyCycleLedger();
  let stopped = false;
  let peakUsedMs = 0;
  let multicastFrames = 0;
  let downlinkId = 0;

  const later = (ms: number, fn: () => void): void => {
    if (stopped) return;
    const t = clock.setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, ms);
    t.unref?.();
    timers.add(t);
  };

  const charge = (freqMHz: number, airtimeMs: number): void => {
    ledger.record(GATEWAY, freqMHz, airtimeMs, clock.monotonic());
    peakUsedMs = Math.max(peakUsedMs, ledger.usedMs(GATEWAY, freqMHz, clock.monotonic()));
  };

  // a node's uplink: built by its own stack, read as the server reads it
  const uplink = (node: SimNode): void => {
    if (node.silent) return;
    const phy = node.nextUplink();
    const p = loraPacket.fromWire(phy);
    const fPort = p.getFPort();
    if (fPort === null || fPort === 0) return;
    const fCnt = node.fCntUp - 1;
    const payload = loraPacket.decrypt(p, Buffer.from(node.cfg.appSKey!, 'hex'), Buffer.from(node.cfg.nwkSKey!, 'hex'), fCntMsb(fCnt));
    const u: AppUplink = { device: node.cfg.id, devEui: node.cfg.devEui, fPort, payload, fCnt, receivedAt: clock.now(), gpsMs: 0, snr: 7, rssi: -72, dr: 5 };
    // TS003: the driver answers AppTimeReq itself, before the listeners hear the uplink (uplink/app.ts)
    if (fPort === FPORT_CLOCK_SYNC) {
      const reply = answerClockSync(payload, unixToGpsMs(clock.now()));
      if (reply.answer) air.radio.enqueueApp(node.cfg.id, { fPort, payload: reply.answer, label: 'AppTimeAns' });
    }
    deliver(u);
  };
  const deliver = (u: AppUplink): void => {
    for (const l of listeners.get(u.fPort) ?? []) l(u);
  };
  for (const n of nodes) n.onUplinkWanted = (ms) => later(ms, () => uplink(n));

  const radioFacts: RadioFacts = {
    maxPayload,
    downlinkAirtimeMs: airtime,
    dutyCycleAt: (hz) => subBandOf(hz / 1e6)?.dutyCycle ?? null,
    usedMs: (hz) => ledger.usedMs(GATEWAY, hz / 1e6, clock.monotonic()),
    budgetMs: (hz) => (subBandOf(hz / 1e6)?.dutyCycle ?? 0) * DUTY_CYCLE_WINDOW_MS,
  };

  const air: SimAir = {
    nodes,
    node(id) {
      const n = byId.get(id);
      if (!n) throw new Error(`no node ${id}`);
      return n;
    },
    multicastFCnts: [],
    multicastAt: [],
    counts: { multicast: 0, txErrors: 0, unicast: 0, unicastTooLong: 0 },
    unicastLabels: [],
    ledger,
    get peakUsedMs() {
      return peakUsedMs;
    },
    txError: () => null,
    drop: () => false,
    dropMulticast: () => false,
    driverStopped: false,
    onUnicast: () => undefined,
    uplinkAs(device, fPort, payload) {
      const n = air.node(device);
      deliver({ device, devEui: n.cfg.devEui, fPort, payload, fCnt: 0, receivedAt: clock.now(), gpsMs: 0, snr: 7, rssi: -72, dr: 5 });
    },
    stop() {
      stopped = true;
      for (const t of timers) clock.clearTimeout(t);
      timers.clear();
      for (const n of nodes) n.stop();
    },
    radio: {
      clock,
      radio: radioFacts,
      genAppKey: (device) => {
        const key = byId.get(device)?.cfg.genAppKey;
        return key ? Buffer.from(key, 'hex') : null;
      },
      deviceId: (ref) => (byId.has(ref) ? ref : null),
      // what the session reads of the network server's status: each node's class and data rate
      status: () => ({
        port: 0,
        forwarders: [],
        devices: nodes.map((n) => ({
          ...{ id: n.cfg.id, devEui: n.cfg.devEui, devAddr: n.devAddr, class: n.cfg.class ?? 'A', activation: n.cfg.activation },
          ...{ lastUplink: null, fCntUp: null, fCntDown: null, rssi: null, snr: null, dr: n.radio.dr, gateway: null, queued: 0 },
          ...{ txPower: null, battery: null, externalPower: null, margin: null, adr: false },
        })),
      }),
      onAppUplink(fPort, listener) {
        const set = listeners.get(fPort) ?? new Set();
        set.add(listener);
        listeners.set(fPort, set);
        return () => set.delete(listener);
      },
      enqueueApp(device, dl) {
        const node = byId.get(device);
        if (!node) throw new StreetboxError('E_NOT_FOUND', `no device "${device}"`);
        const id = `dl-${++downlinkId}`;
        if (dl.payload.length > maxPayload(rx2Dr)) {
          air.counts.unicastTooLong++;
          return { id, outcome: Promise.resolve({ id, device, status: 'failed' as const, reason: 'too_long' }) };
        }
        const n = fCntDown.get(device) ?? 0;
        fCntDown.set(device, n + 1);
        const phy = buildDataDownlink({
          devAddr: node.cfg.devAddr!,
          nwkSKey: Buffer.from(node.cfg.nwkSKey!, 'hex'),
          appSKey: Buffer.from(node.cfg.appSKey!, 'hex'),
          fCntDown: n,
          confirmed: false,
          ack: false,
          fPending: false,
          fPort: dl.fPort,
          payload: dl.payload,
        });
        const ms = airtime(phy.length, rx2Dr);
        const v = ledger.check(GATEWAY, EU868_RX2_FREQ_MHZ, ms, clock.monotonic());
        const wait = v.ok ? 0 : Math.max(0, v.band === null ? 0 : v.retryAt - clock.monotonic());
        const outcome = new Promise<{ id: string; device: string; status: 'sent' }>((resolve) =>
          later(wait, () => {
            charge(EU868_RX2_FREQ_MHZ, ms);
            air.counts.unicast++;
            air.unicastLabels.push(`${device} ${dl.label}`);
            if (!air.drop(device, dl.label)) node.hear(phy, { freq: EU868_RX2_FREQ_MHZ, datr: datrString(dataRate(rx2Dr)) });
            air.onUnicast(device, dl.label);
            resolve({ id, device, status: 'sent' });
          }),
        );
        return { id, outcome };
      },
      sendMulticast(session, fPort, payload): Promise<MulticastOutcome> {
        if (air.driverStopped) throw new StreetboxError('E_COMPONENT', 'the LoRaWAN driver is not running');
        // as a forwarder would start it: now
        const at = clock.monotonic();
        const fCnt = session.fCnt;
        const phy = buildDataDownlink({ devAddr: session.mcAddr, nwkSKey: session.mcNwkSKey, appSKey: session.mcAppSKey, fCntDown: fCnt, confirmed: false, ack: false, fPending: false, fPort, payload });
        const freqMHz = session.frequency / 1e6;
        const airtimeMs = airtime(phy.length, session.dr);
        const v = ledger.check(GATEWAY, freqMHz, airtimeMs, clock.monotonic());
        if (!v.ok) return Promise.resolve(v.reason === 'duty_cycle' ? { status: 'dutyCycle', retryAt: v.retryAt, usedMs: v.usedMs, budgetMs: v.budgetMs } : { status: 'noForwarder' });
        session.fCnt = fCnt + 1;
        air.multicastFCnts.push(fCnt);
        const error = air.txError(++multicastFrames);
        if (error !== null) {
          air.counts.txErrors++;
          return Promise.resolve({ status: 'txError', error, airtimeMs, gateway: GATEWAY, fCnt });
        }
        charge(freqMHz, airtimeMs);
        air.counts.multicast++;
        air.multicastAt.push(at);
        for (const n of nodes) if (!air.dropMulticast(n.cfg.id, air.counts.multicast)) n.hear(phy, { freq: freqMHz, datr: datrString(dataRate(session.dr)) });
        return Promise.resolve({ status: 'sent', airtimeMs, gateway: GATEWAY, fCnt });
      },
    },
  };
  return air;
}
