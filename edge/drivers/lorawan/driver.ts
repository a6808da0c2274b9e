/**
 * The LoRaWAN network-server component: wires the Semtech UDP backend, uplink handlers
 * (data, join), the downlink sender and the session store; turns accepted frames into
 * readings (ctx.ingest) and outcomes into events (ctx.store). Rejected frames are counted
 * by reason and never stored.
 */
import { randomUUID } from 'node:crypto';
import type { GatewayContext } from '../../component.js';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { COMMAND_FPORT, decodeStatus, STATUS_FPORT, type StreetlightStatus } from '../../profiles/loraStreetlight.js';
import type { Severity } from '../../store/types.js';
import { parseCommand } from './downlink/command.js';
import { DownlinkQueue } from './downlink/queue.js';
import { buildJoinAccept } from './downlink/join.js';
import { DownlinkSender } from './downlink/sender.js';
import type { UplinkContext } from './downlink/scheduler.js';
import { FrameError, LoraError } from './errors.js';
import type { DownlinkCommand, LorawanDriver, LorawanDriverOptions, LorawanStatus } from './api.js';
import { LorawanMetrics, type LorawanMetricsSnapshot } from './metrics.js';
import { drIndex, parseDatr } from './region/eu868.js';
import type { GatewayBackend, UplinkRx } from './semtech/backend.js';
import type { Stat } from './semtech/packet.js';
import { ForwarderTable } from './semtech/forwarders.js';
import { UdpGatewayBackend } from './semtech/udp.js';
import { gatewayReadings, radioReadings, statusReadings } from './readings.js';
import { AirtimeTable } from './storage/airtime.js';
import { lorawanDatabase } from './storage/db.js';
import { DUTY_CYCLE_WINDOW_MS, DutyCycleLedger } from './region/dutyCycle.js';
import { SessionStore, type Session } from './storage/sessions.js';
import { decodeDataUplink, mType, MTYPE_JOIN_REQUEST, parsePhy, type DataUplink } from './uplink/data.js';
import { Deduplicator, type RxMeta } from './uplink/dedup.js';
import { handleJoinRequest, joinRequestFields } from './uplink/join.js';

interface DeviceEntry {
  id: string;
  devEui: string;
  class: 'A' | 'C';
  activation: 'abp' | 'otaa';
  joinEui: string | null;
  appKey: Buffer | null;
  lastUplink: number | null;
  gateway: string | null;
  rssi: number | null;
  snr: number | null;
  dr: number | null;
}

interface Accepted {
  device: DeviceEntry;
  dr: number | null;
  ts: number;
  /** the class A answer, held until the window closes when several forwarders may have heard the frame */
  answer?: (best: UplinkContext) => void;
}

export class LorawanNetworkServer implements LorawanDriver {
  readonly name = 'lorawan';
  private readonly ctx: GatewayContext;
  private readonly opts: LorawanDriverOptions;
  private readonly log: Logger;
  private readonly m = new LorawanMetrics();
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly ids = new Map<string, DeviceEntry>();
  private backend: GatewayBackend | null = null;
  /** the forwarders served (null: a backend of its own was plugged in) */
  private table: ForwarderTable | null = null;
  private sessions: SessionStore | null = null;
  private sender: DownlinkSender | null = null;
  private dedup: Deduplicator<Accepted> | null = null;
  private readonly queue = new DownlinkQueue();
  private sweep: ReturnType<typeof setInterval> | null = null;
  private running = false;

  constructor(ctx: GatewayContext, opts: LorawanDriverOptions = {}) {
    this.ctx = ctx;
    this.opts = opts;
    this.log = ctx.log.child({ module: 'lorawan' });
  }

  private cfg() {
    const c = this.ctx.config.lorawan;
    if (!c) throw new StreetboxError('E_CONFIG', 'no "lorawan" section in the configuration');
    return c;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const cfg = this.cfg();
    const clock = this.ctx.clock;
    this.indexDevices();
    const db = lorawanDatabase(this.ctx.store, this.log);
    const sessions = new SessionStore(db, () => clock.now());
    sessions.flushError = (err) => this.log.error({ err }, 'lorawan: writing frame counters failed; retrying');
    sessions.load();
    this.loadAbpSessions(sessions);
    const backend =
      this.opts.backend ??
      new UdpGatewayBackend({
        host: cfg.bind,
        port: cfg.port,
        clock,
        log: this.log,
        forwarders: this.forwarderTable(),
        ...(this.opts.forwarderTimeoutMs !== undefined ? { forwarderTimeoutMs: this.opts.forwarderTimeoutMs } : {}),
      });
    const sender = new DownlinkSender({
      backend,
      sessions,
      queue: this.queue,
      metrics: this.m,
      clock,
      log: this.log,
      settings: { rx1Delay: cfg.rx1Delay, rx1DrOffset: cfg.rx1DrOffset, rx2Dr: cfg.rx2Dr, leadMs: this.opts.leadMs ?? 50 },
      emit: (device, kind, severity, detail) => this.event(device, kind, severity, detail),
      classCAckTimeoutMs: this.opts.classCAckTimeoutMs ?? 5_000,
      gatewayFor: (devEui) => {
        const gw = this.devices.get(devEui)?.gateway ?? null;
        if (gw !== null && backend.canSend(gw)) return gw;
        return backend.forwarders().find((f) => backend.canSend(f.gatewayEui))?.gatewayEui ?? null;
      },
      classOf: (devEui) => this.devices.get(devEui)?.class ?? 'A',
      ledger: new DutyCycleLedger(DUTY_CYCLE_WINDOW_MS, this.airtimeJournal(db)),
    });
    this.dedup = new Deduplicator<Accepted>(clock, cfg.dedupWindow, (a, best, copies, heard) => this.windowClosed(a, best, copies, heard));
    backend.setHandlers({
      datagram: () => this.m.datagrams++,
      uplink: (rx) => this.onUplink(rx),
      stat: (eui, stat) => this.onStat(eui, stat),
      txAck: (eui, token, error) => sender.onTxAck(eui, token, error),
      rejected: (reason, err) => {
        this.m.reject(reason);
        if (reason === 'handler_error') this.log.error({ err }, 'lorawan handler failed');
      },
    });
    await backend.start();
    this.backend = backend;
    this.sessions = sessions;
    this.sender = sender;
    this.sweep = setInterval(() => sender.expire(), 1_000);
    this.sweep.unref();
    this.running = true;
    this.log.info({ port: backend.port(), devices: this.devices.size }, 'lorawan network server started');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    // Open windows first, while the forwarders can still be reached: their answers (a Join
    // Accept for a session already stored) go out now rather than never.
    this.dedup?.flush();
    this.running = false;
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    this.ctx.bus.off(this);
    await this.backend?.stop();
    this.sender?.stop();
    this.sessions?.flush();
    this.backend = null;
  }

  port(): number {
    return this.backend?.port() ?? 0;
  }

  /** lorawan.forwarders, or without a list a bounded set of slots that silence frees. */
  private forwarderTable(): ForwarderTable {
    const table = (this.table = new ForwarderTable({
      allowed: this.cfg().forwarders,
      ...(this.opts.maxForwarders !== undefined ? { max: this.opts.maxForwarders } : {}),
      ...(this.opts.forwarderIdleMs !== undefined ? { idleMs: this.opts.forwarderIdleMs } : {}),
    }));
    if (!table.configured) {
      this.log.info({ max: table.max, maxPending: table.maxPending, idleMs: table.idleMs }, 'no lorawan.forwarders: serving any packet forwarder in a bounded table; a forwarder\'s stat is stored once it relays a valid frame');
    }
    return table;
  }

  private indexDevices(): void {
    const cfg = this.cfg();
    const idByEui = new Map<string, string>();
    for (const d of this.ctx.config.devices) if (d.devEui) idByEui.set(d.devEui.toLowerCase(), d.id);
    this.devices.clear();
    this.ids.clear();
    for (const k of cfg.devices) {
      const devEui = k.devEui.toLowerCase();
      const entry: DeviceEntry = {
        id: idByEui.get(devEui) ?? devEui,
        devEui,
        class: k.class,
        activation: k.activation,
        joinEui: k.joinEui?.toLowerCase() ?? null,
        appKey: k.appKey ? Buffer.from(k.appKey, 'hex') : null,
        lastUplink: null,
        gateway: null,
        rssi: null,
        snr: null,
        dr: null,
      };
      this.devices.set(devEui, entry);
      this.ids.set(entry.id, entry);
    }
  }

  /** ABP sessions come from devices.yaml; a stored session with the same address and keys keeps its counters. */
  private loadAbpSessions(sessions: SessionStore): void {
    for (const k of this.cfg().devices) {
      if (k.activation !== 'abp' || !k.devAddr || !k.nwkSKey || !k.appSKey) continue;
      const devEui = k.devEui.toLowerCase();
      const s: Session = {
        devEui,
        devAddr: k.devAddr.toLowerCase(),
        nwkSKey: Buffer.from(k.nwkSKey, 'hex'),
        appSKey: Buffer.from(k.appSKey, 'hex'),
        activation: 'abp',
        fCntUp: null,
        nFCntDown: 0,
      };
      const old = sessions.get(devEui);
      if (old && old.devAddr === s.devAddr && old.nwkSKey.equals(s.nwkSKey) && old.appSKey.equals(s.appSKey)) continue;
      sessions.put(s);
    }
  }

  private event(device: string | null, kind: string, severity: Severity, detail: Record<string, unknown>): void {
    try {
      this.ctx.store.appendEvent({ ts: this.ctx.clock.now(), device, kind, severity, detail });
    } catch (err) {
      this.log.error({ err, kind }, 'could not store a lorawan event');
    }
  }

  private reject(err: unknown, gatewayEui: string): void {
    if (err instanceof LoraError) {
      this.m.reject(err.reason);
      this.log.debug({ code: err.code, reason: err.reason, gatewayEui, msg: err.message }, 'lorawan frame rejected');
    } else {
      this.m.reject('internal');
      this.log.error({ err, gatewayEui }, 'lorawan uplink handler failed');
    }
  }

  // ------------------------------------------------------------------ uplinks

  private onUplink(rx: UplinkRx): void {
    this.m.frames++;
    try {
      this.handleUplink(rx);
    } catch (err) {
      this.reject(err, rx.gatewayEui);
    }
  }

  private handleUplink(rx: UplinkRx): void {
    const { rxpk } = rx;
    // PROTOCOL.TXT §4: stat 1 = CRC ok, −1 = CRC bad, 0 = no CRC (LoRaWAN uplinks always carry one).
    if (rxpk.stat !== 1) throw new FrameError('crc', `rxpk with stat ${rxpk.stat}`);
    if (rxpk.modu !== 'LORA' || typeof rxpk.datr !== 'string') throw new FrameError('not_lora', 'rxpk is not LoRa modulated');
    const phy = Buffer.from(rxpk.data, 'base64');
    // LoRaWAN 1.0.3 §4: the shortest frame is a 12-byte data frame; the longest EU868 one is 255 bytes.
    if (phy.length < 12) throw new FrameError('frame_too_short', `PHYPayload of ${phy.length} bytes`);
    if (phy.length > 255) throw new FrameError('frame_too_long', `PHYPayload of ${phy.length} bytes`);
    const packet = parsePhy(phy);
    const up: UplinkContext = { gatewayEui: rx.gatewayEui, tmst: rxpk.tmst, freq: rxpk.freq, datr: rxpk.datr, receivedAt: rx.receivedAt };
    const meta: RxMeta = { gatewayEui: rx.gatewayEui, rssi: rxpk.rssi, snr: rxpk.lsnr ?? 0, up };
    const dedup = this.dedup!;

    if (mType(packet) === MTYPE_JOIN_REQUEST) {
      const { devEui, devNonce } = joinRequestFields(packet);
      const key = `join:${devEui}:${devNonce}`;
      if (dedup.merge(key, phy, meta)) {
        this.m.duplicates++;
        return;
      }
      this.join(packet, phy, up, meta, key);
      return;
    }

    if (!packet.DevAddr || !packet.FCnt) throw new FrameError('malformed_frame', 'data frame without FHDR');
    const key = Deduplicator.key(packet.DevAddr.toString('hex'), packet.FCnt.readUInt16BE(0));
    if (dedup.merge(key, phy, meta)) {
      this.m.duplicates++;
      return;
    }
    const sessions = this.sessions!;
    const dec = decodeDataUplink(packet, (addr) => {
      const s = sessions.byDevAddr(addr);
      return s && this.devices.has(s.devEui) ? s : undefined;
    });
    // Accepted: commit the counter before anything else can fail.
    dec.session.fCntUp = dec.fCnt;
    sessions.touch(dec.session);
    this.m.uplinks++;
    const device = this.devices.get(dec.session.devEui)!;
    const now = this.ctx.clock.now();
    const parsed = parseDatr(rxpk.datr);
    const dr = parsed ? drIndex(parsed) : null;
    device.lastUplink = now;
    device.gateway = rx.gatewayEui;
    // a frame with a valid MIC of a configured device: its forwarder is a real one
    this.table?.vouch(rx.gatewayEui);
    const status = this.applicationPayload(device, dec, now);
    const answer = (best: UplinkContext): void => this.sender!.onUplink(dec.session, best, dec.confirmed, dec.ack, status);
    this.accept(key, phy, meta, { device, dr, ts: now }, answer);
  }

  /** The ledger's journal in the store; without one (a database error) the duty cycle is kept in memory. */
  private airtimeJournal(db: Parameters<typeof AirtimeTable.open>[0]): AirtimeTable | null {
    const report = (err: unknown): void => this.log.error({ err }, 'lorawan: the air-time journal failed; the duty cycle is kept in memory');
    const journal = AirtimeTable.open(db, this.ctx.clock, report);
    this.ctx.bus.off(this);
    if (journal) {
      this.ctx.bus.on(this, 'event', (e) => {
        const delta = (e.detail as { deltaMs?: unknown }).deltaMs;
        if (e.kind === 'clock.jumped' && typeof delta === 'number') journal.shift(delta);
      });
    }
    return journal;
  }

  /**
   * Opens the de-duplication window of an accepted frame and answers it. When another forwarder
   * may hear the same frame, the answer waits for the window (RX1 is 1 s away, the window at most
   * 500 ms) and goes out through the best forwarder that can transmit (windowClosed), as
   * ChirpStack does; with one forwarder it goes at once.
   */
  private accept(key: string, phy: Buffer, meta: RxMeta, accepted: Accepted, answer: (up: UplinkContext) => void): void {
    if ((this.backend?.forwarders().length ?? 0) > 1) {
      this.dedup!.open(key, phy, meta, { ...accepted, answer });
      return;
    }
    this.dedup!.open(key, phy, meta, accepted);
    answer(meta.up);
  }

  private applicationPayload(device: DeviceEntry, dec: DataUplink, ts: number): StreetlightStatus | null {
    if (dec.fPort !== STATUS_FPORT || dec.payload.length === 0) return null;
    let status: StreetlightStatus;
    try {
      status = decodeStatus(dec.payload);
    } catch (err) {
      // The frame is authentic (MIC ok) but the application payload is not a status: counted, not stored.
      this.m.reject('codec');
      this.log.warn({ device: device.id, err: err instanceof Error ? err.message : String(err) }, 'status payload does not decode');
      return null;
    }
    this.ctx.ingest.pushMany(statusReadings(device.id, status, ts));
    return status;
  }

  /** When the de-duplication window closes: the held answer, the best RSSI/SNR of all forwarders, and the DR. */
  private windowClosed(a: Accepted, best: RxMeta, copies: number, heard: readonly RxMeta[]): void {
    // The answer goes through the best forwarder that can transmit (it sent PULL_DATA lately).
    const backend = this.backend;
    const via = backend ? (heard.find((m) => backend.canSend(m.gatewayEui)) ?? best) : best;
    a.device.gateway = via.gatewayEui;
    if (a.answer && this.running) {
      try {
        a.answer(via.up);
      } catch (err) {
        this.reject(err, via.gatewayEui);
      }
    }
    a.device.rssi = best.rssi;
    a.device.snr = best.snr;
    a.device.dr = a.dr;
    try {
      this.ctx.ingest.pushMany(radioReadings(a.device.id, a.ts, best, a.dr, copies));
    } catch (err) {
      this.log.error({ err }, 'could not push radio readings');
    }
  }

  private join(packet: ReturnType<typeof parsePhy>, phy: Buffer, up: UplinkContext, meta: RxMeta, key: string): void {
    const cfg = this.cfg();
    const sessions = this.sessions!;
    const result = handleJoinRequest(
      packet,
      (devEui) => {
        const d = this.devices.get(devEui);
        return d && d.activation === 'otaa' && d.appKey && d.joinEui ? { devEui, joinEui: d.joinEui, appKey: d.appKey } : undefined;
      },
      sessions,
      cfg.netId,
    );
    const device = this.devices.get(result.session.devEui)!;
    sessions.put(result.session);
    this.m.joins++;
    device.gateway = up.gatewayEui;
    this.table?.vouch(up.gatewayEui); // a Join Request with a valid MIC
    device.lastUplink = this.ctx.clock.now();
    const accept = buildJoinAccept(
      { appNonce: result.appNonce, netId: result.netId, devAddr: result.session.devAddr, rx1DrOffset: cfg.rx1DrOffset, rx2Dr: cfg.rx2Dr, rx1Delay: cfg.rx1Delay },
      device.appKey!,
    );
    const joined = { devEui: device.devEui, devAddr: result.session.devAddr, devNonce: result.devNonce };
    const answer = (best: UplinkContext): void => {
      const sent = this.sender!.sendJoinAccept(accept, best, device.id);
      this.event(device.id, 'lorawan.joined', 'info', { ...joined, joinAcceptSent: sent, gateway: best.gatewayEui });
    };
    this.accept(key, phy, meta, { device, dr: null, ts: device.lastUplink }, answer);
  }

  /** Only a trusted forwarder's stat is stored (forwarders.ts): forged EUIs leave no gw-<EUI> device behind. */
  private onStat(gatewayEui: string, stat: Stat): void {
    if (this.table && !this.table.trusted(gatewayEui)) return;
    const rows = gatewayReadings(gatewayEui, stat, this.ctx.clock.now());
    if (rows.length > 0) this.ctx.ingest.pushMany(rows);
  }

  // ------------------------------------------------------------------ control plane

  enqueueDownlink(deviceRef: string, command: DownlinkCommand): { id: string } {
    if (!this.running || !this.sender) throw new StreetboxError('E_COMPONENT', 'the LoRaWAN driver is not running');
    const device = this.ids.get(deviceRef) ?? this.devices.get(deviceRef.toLowerCase());
    if (!device) throw new StreetboxError('E_NOT_FOUND', `no LoRaWAN device "${deviceRef}"`);
    const { cmd, payload } = parseCommand(command);
    const id = randomUUID();
    const item = {
      id,
      device: device.id,
      devEui: device.devEui,
      command: cmd,
      fPort: COMMAND_FPORT,
      payload,
      confirmed: command.confirmed ?? false,
      expiresAt: command.expiresAt ?? null,
      attempts: 0,
      state: 'queued' as const,
      timer: null,
    };
    if (!this.queue.push(item)) throw new StreetboxError('E_INVALID_COMMAND', `the downlink queue of ${device.id} is full`);
    this.log.debug({ device: device.id, id, action: cmd.action }, 'downlink queued');
    if (device.class === 'C' && this.queue.head(device.devEui) === item) this.sender.sendClassC(item);
    return { id };
  }

  status(): LorawanStatus {
    const backend = this.backend;
    const monoToWall = (m: number | null) => (m === null ? null : Math.round(this.ctx.clock.now() - (this.ctx.clock.monotonic() - m)));
    const forwarders = (backend?.forwarders() ?? []).map((f) => ({
      gatewayEui: f.gatewayEui,
      name: f.name ?? null,
      address: f.address === null ? null : `${f.address}:${f.port}`,
      online: backend?.canSend(f.gatewayEui) ?? false,
      lastSeen: monoToWall(f.lastPullAt === null ? f.lastPushAt : f.lastPushAt === null ? f.lastPullAt : Math.max(f.lastPullAt, f.lastPushAt)),
      lastPull: monoToWall(f.lastPullAt),
    }));
    const devices = [...this.devices.values()].map((d) => {
      const s = this.sessions?.get(d.devEui);
      return {
        id: d.id,
        devEui: d.devEui,
        devAddr: s?.devAddr ?? null,
        class: d.class,
        activation: d.activation,
        lastUplink: d.lastUplink,
        fCntUp: s?.fCntUp ?? null,
        fCntDown: s ? s.nFCntDown : null,
        rssi: d.rssi,
        snr: d.snr,
        dr: d.dr,
        gateway: d.gateway,
        queued: this.queue.size(d.devEui),
      };
    });
    return { port: this.port(), forwarders, devices };
  }

  metrics(): LorawanMetricsSnapshot {
    return this.m.snapshot();
  }
}
