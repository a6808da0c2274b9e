/**
 * The LoRaWAN network-server component. start() builds the running parts in one go — the
 * devices, the session and MAC-state stores, the events sink, the Semtech UDP backend, the MAC
 * handler, the downlink and multicast senders and the uplink handler — wires each through its
 * constructor and starts the backend with its handlers: uplinks go straight to
 * UplinkHandler.receive (receive → claim → decode → store → MAC → application ports → answer),
 * TX_ACKs straight to DownlinkSender.onTxAck, stats to gateway readings. The roads are listed in
 * README.md. The control plane queues commands here (enqueueDownlink), FUOTA its application
 * messages (enqueueApp, onAppUplink, sendMulticast), anyone MAC requests (requestMac); each
 * awaits its outcome. The API reads status() and metrics().
 *
 * The radio runs on the driver's clock (`opts.clock`, scaled by simulate.radioTimeScale in
 * components.ts): RX windows, de-duplication, the duty-cycle ledger, expiry, MAC intervals,
 * multicast. Readings and events are stamped with the gateway's clock (ctx.clock).
 */
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { wallOf, type Clock } from '../../clock.js';
import type { GatewayContext } from '../../component.js';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { COMMAND_FPORT } from '../../profiles/loraStreetlight.js';
import type {
  AppDownlink,
  AppUplink,
  DownlinkCommand,
  LorawanDriver,
  LorawanDriverOptions,
  LorawanStatus,
  MacOutcome,
  MulticastOutcome,
  MulticastSession,
  QueuedDownlink,
  RadioFacts,
} from './api.js';
import { DeviceIndex, loadAbpSessions, type DeviceEntry } from './devices.js';
import { appQueueItem } from './downlink/app.js';
import { parseCommand } from './downlink/command.js';
import { MulticastSender } from './downlink/multicast.js';
import { DownlinkQueue } from './downlink/queue.js';
import { airtime } from './downlink/scheduler.js';
import { DownlinkSender } from './downlink/sender.js';
import { StoreEvents } from './events.js';
import { MacHandler } from './mac/handler.js';
import { MAC_REQUEST_CIDS, MacStateStore, type MacRequest } from './mac/state.js';
import type { MacDownlink } from './mac/types.js';
import { macRequestError } from './mac/validate.js';
import { LorawanMetrics, type LorawanMetricsSnapshot } from './metrics.js';
import { gatewayReadings } from './readings.js';
import { DUTY_CYCLE_WINDOW_MS, DutyCycleLedger } from './region/dutyCycle.js';
import { maxPayload, subBandOf } from './region/eu868.js';
import type { GatewayBackend } from './semtech/backend.js';
import { ForwarderTable } from './semtech/forwarders.js';
import type { Stat } from './semtech/packet.js';
import { UdpGatewayBackend } from './semtech/udp.js';
import { AirtimeTable } from './storage/airtime.js';
import { lorawanDatabase } from './storage/db.js';
import { SessionStore } from './storage/sessions.js';
import { AppUplinkRouter } from './uplink/app.js';
import { Deduplicator } from './uplink/dedup.js';
import { UplinkHandler } from './uplink/handler.js';

type LorawanConfig = NonNullable<GatewayContext['config']['lorawan']>;

/** a multicast frame without TX_ACK within this long was sent (a v1 forwarder sends none) */
const MULTICAST_ACK_TIMEOUT_MS = 5_000;

/** What start() builds; kept after stop() so that status() still shows the last state. */
interface Running {
  devices: DeviceIndex;
  sessions: SessionStore;
  backend: GatewayBackend;
  queue: DownlinkQueue;
  sender: DownlinkSender;
  mac: MacHandler;
  multicast: MulticastSender;
  uplinks: UplinkHandler;
}

export class LorawanNetworkServer implements LorawanDriver {
  readonly name = 'lorawan';
  readonly clock: Clock;
  private readonly ctx: GatewayContext;
  private readonly opts: LorawanDriverOptions;
  private readonly log: Logger;
  private readonly m = new LorawanMetrics();
  /** listeners of application ports, kept across start/stop; what TS003 answers goes through the running sender */
  private readonly apps: AppUplinkRouter;
  private run: Running | null = null;
  private running = false;

  constructor(ctx: GatewayContext, opts: LorawanDriverOptions = {}) {
    this.ctx = ctx;
    this.opts = opts;
    this.clock = opts.clock ?? ctx.clock;
    this.log = ctx.log.child({ module: 'lorawan' });
    this.apps = new AppUplinkRouter({ enqueue: (item) => this.started().sender.enqueue(item), metrics: this.m, log: this.log });
  }

  private cfg(): LorawanConfig {
    const c = this.ctx.config.lorawan;
    if (!c) throw new StreetboxError('E_CONFIG', 'no "lorawan" section in the configuration');
    return c;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const cfg = this.cfg();
    const { bus } = this.ctx;
    const clock = this.clock;
    const log = this.log;
    const events = new StoreEvents(this.ctx.store, this.ctx.clock, log);

    const devices = new DeviceIndex(cfg.devices, this.ctx.config.devices);
    // after a restart a node is known as last heard at once, not "never" beside its old values
    devices.recall((id) => this.ctx.store.latest(id));
    const db = lorawanDatabase(this.ctx.store, log);
    const sessions = new SessionStore(db, () => this.ctx.clock.now(), (err) => log.error({ err }, 'lorawan: writing frame counters failed; retrying'));
    sessions.load();
    loadAbpSessions(sessions, cfg.devices);
    const macState = this.loadMacState(db, devices);
    // The duty-cycle ledger's journal in the store; without one (a database error) the duty cycle is kept in memory.
    const journal = AirtimeTable.open(db, clock, (err) => log.error({ err }, 'lorawan: the air-time journal failed; the duty cycle is kept in memory'));
    const table = this.opts.backend ? null : this.forwarderTable(cfg);
    const backend =
      this.opts.backend ??
      new UdpGatewayBackend({
        host: cfg.bind,
        port: cfg.port,
        clock,
        log,
        ...(table ? { forwarders: table } : {}),
        ...(this.opts.forwarderTimeoutMs !== undefined ? { forwarderTimeoutMs: this.opts.forwarderTimeoutMs } : {}),
      });
    const queue = new DownlinkQueue();
    const mac = new MacHandler({
      state: macState,
      devices,
      metrics: this.m,
      events,
      ingest: this.ctx.ingest,
      clock,
      wallClock: this.ctx.clock,
      log,
      settings: { adr: cfg.adr, devStatusIntervalMs: cfg.devStatusInterval },
    });
    const sender = new DownlinkSender({
      backend,
      sessions,
      queue,
      metrics: this.m,
      clock,
      log,
      settings: { rx1Delay: cfg.rx1Delay, rx1DrOffset: cfg.rx1DrOffset, rx2Dr: cfg.rx2Dr, leadMs: this.opts.leadMs ?? 50 },
      mac,
      devices,
      events,
      classCAckTimeoutMs: this.opts.classCAckTimeoutMs ?? 5_000,
      ledger: new DutyCycleLedger(DUTY_CYCLE_WINDOW_MS, journal),
    });
    const multicast = new MulticastSender({ sender, backend, devices, metrics: this.m, clock, ackTimeoutMs: MULTICAST_ACK_TIMEOUT_MS });
    const uplinks = new UplinkHandler({
      devices,
      sessions,
      dedup: new Deduplicator(clock, cfg.dedupWindow),
      sender,
      backend,
      table,
      join: { netId: cfg.netId, rx1DrOffset: cfg.rx1DrOffset, rx2Dr: cfg.rx2Dr, rx1Delay: cfg.rx1Delay },
      ingest: this.ctx.ingest,
      metrics: this.m,
      mac,
      apps: this.apps,
      clock,
      wallClock: this.ctx.clock,
      log,
      events,
    });

    await backend.start({
      datagram: () => this.m.datagrams++,
      uplink: uplinks.receive,
      stat: (eui, stat) => this.onStat(table, eui, stat),
      txAck: sender.onTxAck,
      rejected: (reason, err) => {
        this.m.reject(reason);
        if (reason === 'handler_error') log.error({ err }, 'lorawan handler failed');
      },
    });
    sender.start();
    mac.start();
    // A jump of the wall clock (NTP) moves this process's air-time rows with it (storage/airtime.ts),
    // by as much as it moved the driver's clock: k times the jump under simulate.radioTimeScale k
    if (journal) {
      const rate = this.radioRate();
      bus.on(this, 'event', (e) => {
        if (e.kind === 'clock.jumped') journal.shift(e.detail.deltaMs * rate);
      });
    }
    this.run = { devices, sessions, backend, queue, sender, mac, multicast, uplinks };
    this.running = true;
    log.info({ port: backend.port(), devices: devices.size }, 'lorawan network server started');
  }

  /** Each configured device's MAC state from the store; what it leaves out is logged, a request that cannot go counted. */
  private loadMacState(db: BetterSqlite3.Database, devices: DeviceIndex): MacStateStore {
    const log = this.log;
    const macState = new MacStateStore({
      db,
      now: () => this.clock.now(),
      wallNow: () => this.ctx.clock.now(),
      onError: (err) => log.error({ err }, 'lorawan: writing the MAC state failed; retrying'),
    });
    const { unreadable, dropped, removed } = macState.load(new Set(devices.all().map((d) => d.devEui)));
    if (unreadable.length > 0) log.warn({ devices: unreadable }, 'lorawan: stored MAC state unreadable; these devices start from their defaults');
    if (removed.length > 0) log.info({ devices: removed }, 'lorawan: MAC state of devices no longer configured deleted');
    for (const d of dropped) {
      this.m.reject('mac_stored_invalid');
      log.warn(d, 'lorawan: a stored MAC request cannot go to an EU868 node; dropped');
    }
    return macState;
  }

  async stop(): Promise<void> {
    const run = this.run;
    if (!this.running || !run) return;
    this.running = false;
    // Open windows first, while the forwarders can still be reached: their answers go out now rather than never.
    await run.uplinks.stop();
    this.ctx.bus.off(this);
    await run.backend.stop();
    run.sender.stop();
    try {
      run.mac.stop();
    } catch (err) {
      this.log.error({ err }, 'lorawan: the MAC state could not be written on stop');
    }
    run.sessions.flush();
  }

  port(): number {
    return this.run?.backend.port() ?? 0;
  }

  /** lorawan.forwarders, or without a list a bounded set of slots that silence frees. */
  private forwarderTable(cfg: LorawanConfig): ForwarderTable {
    const table = new ForwarderTable({
      allowed: cfg.forwarders,
      ...(this.opts.maxForwarders !== undefined ? { max: this.opts.maxForwarders } : {}),
      ...(this.opts.forwarderIdleMs !== undefined ? { idleMs: this.opts.forwarderIdleMs } : {}),
    });
    if (!table.configured) {
      this.log.info({ max: table.max, maxPending: table.maxPending, idleMs: table.idleMs }, 'no lorawan.forwarders: serving any packet forwarder in a bounded table; a forwarder\'s stat is stored once it relays a valid frame');
    }
    return table;
  }

  /** Only a trusted forwarder's stat is stored (forwarders.ts): forged EUIs leave no gw-<EUI> device behind. */
  private onStat(table: ForwarderTable | null, gatewayEui: string, stat: Stat): void {
    if (table && !table.trusted(gatewayEui)) return;
    const rows = gatewayReadings(gatewayEui, stat, this.ctx.clock.now());
    if (rows.length > 0) this.ctx.ingest.pushMany(rows);
  }

  // ------------------------------------------------------------------ control plane

  private started(): Running {
    const run = this.run;
    if (!this.running || !run) throw new StreetboxError('E_COMPONENT', 'the LoRaWAN driver is not running');
    return run;
  }

  private device(run: Running, ref: string): DeviceEntry {
    const device = run.devices.byRef(ref);
    if (!device) throw new StreetboxError('E_NOT_FOUND', `no LoRaWAN device "${ref}"`);
    return device;
  }

  enqueueDownlink(deviceRef: string, command: DownlinkCommand): QueuedDownlink {
    const run = this.started();
    const device = this.device(run, deviceRef);
    const { cmd, payload } = parseCommand(command);
    const queued = run.sender.enqueue({
      id: randomUUID(),
      device: device.id,
      devEui: device.devEui,
      label: cmd.action,
      command: cmd,
      fPort: COMMAND_FPORT,
      payload,
      confirmed: command.confirmed ?? false,
      expiresAt: command.expiresAt === undefined ? null : this.onRadioClock(command.expiresAt),
    });
    this.log.debug({ device: device.id, id: queued.id, action: cmd.action }, 'downlink queued');
    return queued;
  }

  /**
   * A command's expiry, given on the gateway's clock (the control plane's), as the same instant on
   * the queue's, the radio's. Under a scaled radio clock (simulate.radioTimeScale k) the radio's
   * wall time runs years ahead of the gateway's: the instant as given would have passed before the
   * command was queued. The time left to it, k times as many radio ms, does not.
   */
  private onRadioClock(gatewayMs: number): number {
    return this.clock === this.ctx.clock ? gatewayMs : this.clock.now() + (gatewayMs - this.ctx.clock.now()) * this.radioRate();
  }

  /** ms of the driver's clock per ms of the gateway's (k under simulate.radioTimeScale k) */
  private radioRate(): number {
    return (this.clock.rate ?? 1) / (this.ctx.clock.rate ?? 1);
  }

  enqueueApp(deviceRef: string, downlink: AppDownlink): QueuedDownlink {
    const run = this.started();
    const device = this.device(run, deviceRef);
    const queued = run.sender.enqueue(appQueueItem(device, downlink));
    this.log.debug({ device: device.id, id: queued.id, fPort: downlink.fPort, label: downlink.label }, 'application downlink queued');
    return queued;
  }

  onAppUplink(fPort: number, listener: (u: AppUplink) => void): () => void {
    return this.apps.on(fPort, listener);
  }

  sendMulticast(session: MulticastSession, fPort: number, payload: Buffer): Promise<MulticastOutcome> {
    return this.started().multicast.send(session, fPort, payload);
  }

  requestMac(deviceRef: string, request: MacDownlink): { outcome: Promise<MacOutcome> } {
    const run = this.started();
    const device = this.device(run, deviceRef);
    if (!(MAC_REQUEST_CIDS as readonly string[]).includes(request.cid)) {
      throw new StreetboxError('E_INVALID_COMMAND', `${request.cid} is not a request the network sends (one of ${MAC_REQUEST_CIDS.join(', ')})`);
    }
    const error = macRequestError(request);
    if (error !== null) throw new StreetboxError('E_INVALID_COMMAND', error);
    this.log.debug({ device: device.id, command: request.cid }, 'MAC request queued');
    return { outcome: run.mac.request(device.devEui, request as MacRequest) };
  }

  /** The devices: the running index, or (before start) the configuration's. */
  private devices(): DeviceIndex {
    return this.run?.devices ?? new DeviceIndex(this.cfg().devices, this.ctx.config.devices);
  }

  genAppKey(deviceRef: string): Buffer | null {
    const d = this.devices().byRef(deviceRef);
    if (!d) return null;
    // TS005 §3.3 (LoRaWAN 1.0.x): the multicast keys derive from the GenAppKey, a key of its own;
    // the AppKey is not it (a node would derive another McKey and hear nothing)
    return d.genAppKey;
  }

  deviceId(ref: string): string | null {
    return this.devices().byRef(ref)?.id ?? null;
  }

  /** EU868 data rates and the duty-cycle ledger, as the FUOTA planner reads them. */
  readonly radio: RadioFacts = {
    maxPayload: (dr) => maxPayload(dr),
    downlinkAirtimeMs: (phyBytes, dr) => airtime(phyBytes, dr),
    dutyCycleAt: (frequencyHz) => subBandOf(frequencyHz / 1e6)?.dutyCycle ?? null,
    usedMs: (frequencyHz, gatewayEui) => {
      const ledger = this.run?.sender.ledger;
      if (!ledger) return 0;
      const now = this.clock.monotonic();
      const gateways = gatewayEui === undefined ? ledger.gateways() : [gatewayEui];
      return Math.max(0, ...gateways.map((g) => ledger.usedMs(g, frequencyHz / 1e6, now)));
    },
    budgetMs: (frequencyHz) => (subBandOf(frequencyHz / 1e6)?.dutyCycle ?? 0) * DUTY_CYCLE_WINDOW_MS,
  };

  status(): LorawanStatus {
    const run = this.run;
    const backend = run?.backend;
    // forwarder times are the backend's, on the driver's clock
    const monoToWall = (m: number | null) => (m === null ? null : Math.round(wallOf(this.clock, m)));
    const forwarders = (backend?.forwarders() ?? []).map((f) => ({
      gatewayEui: f.gatewayEui,
      name: f.name ?? null,
      address: f.address === null ? null : `${f.address}:${f.port}`,
      online: backend?.canSend(f.gatewayEui) ?? false,
      lastSeen: monoToWall(f.lastPullAt === null ? f.lastPushAt : f.lastPushAt === null ? f.lastPullAt : Math.max(f.lastPullAt, f.lastPushAt)),
      lastPull: monoToWall(f.lastPullAt),
    }));
    const devices = (run?.devices.all() ?? []).map((d) => {
      const s = run?.sessions.get(d.devEui);
      const mac = run?.mac.status(d);
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
        queued: run?.queue.size(d.devEui) ?? 0,
        txPower: mac?.txPower ?? null,
        battery: mac?.battery ?? null,
        externalPower: mac?.externalPower ?? null,
        margin: mac?.margin ?? null,
        adr: mac?.adr ?? false,
      };
    });
    return { port: this.port(), forwarders, devices };
  }

  metrics(): LorawanMetricsSnapshot {
    return this.m.snapshot();
  }
}
