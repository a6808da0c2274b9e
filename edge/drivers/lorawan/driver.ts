/**
 * The LoRaWAN network-server component. start() builds the running parts in one go — the
 * devices, the session store, the events sink, the Semtech UDP backend, the downlink sender
 * and the uplink handler — wires each through its constructor and starts the backend with its
 * handlers: uplinks go straight to UplinkHandler.receive (receive → claim → decode → store →
 * answer), TX_ACKs straight to DownlinkSender.onTxAck, stats to gateway readings. The roads
 * are listed in README.md. The control plane queues downlinks here (enqueueDownlink) and
 * awaits their outcome; the API reads status() and metrics().
 */
import { randomUUID } from 'node:crypto';
import type { GatewayContext } from '../../component.js';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { COMMAND_FPORT } from '../../profiles/loraStreetlight.js';
import type { DownlinkCommand, LorawanDriver, LorawanDriverOptions, LorawanStatus, QueuedDownlink } from './api.js';
import { DeviceIndex, loadAbpSessions } from './devices.js';
import { parseCommand } from './downlink/command.js';
import { DownlinkQueue } from './downlink/queue.js';
import { DownlinkSender } from './downlink/sender.js';
import { StoreEvents } from './events.js';
import { LorawanMetrics, type LorawanMetricsSnapshot } from './metrics.js';
import { gatewayReadings } from './readings.js';
import { DUTY_CYCLE_WINDOW_MS, DutyCycleLedger } from './region/dutyCycle.js';
import type { GatewayBackend } from './semtech/backend.js';
import { ForwarderTable } from './semtech/forwarders.js';
import type { Stat } from './semtech/packet.js';
import { UdpGatewayBackend } from './semtech/udp.js';
import { AirtimeTable } from './storage/airtime.js';
import { lorawanDatabase } from './storage/db.js';
import { SessionStore } from './storage/sessions.js';
import { Deduplicator } from './uplink/dedup.js';
import { UplinkHandler } from './uplink/handler.js';

type LorawanConfig = NonNullable<GatewayContext['config']['lorawan']>;

/** What start() builds; kept after stop() so that status() still shows the last state. */
interface Running {
  devices: DeviceIndex;
  sessions: SessionStore;
  backend: GatewayBackend;
  queue: DownlinkQueue;
  sender: DownlinkSender;
  uplinks: UplinkHandler;
}

export class LorawanNetworkServer implements LorawanDriver {
  readonly name = 'lorawan';
  private readonly ctx: GatewayContext;
  private readonly opts: LorawanDriverOptions;
  private readonly log: Logger;
  private readonly m = new LorawanMetrics();
  private run: Running | null = null;
  private running = false;

  constructor(ctx: GatewayContext, opts: LorawanDriverOptions = {}) {
    this.ctx = ctx;
    this.opts = opts;
    this.log = ctx.log.child({ module: 'lorawan' });
  }

  private cfg(): LorawanConfig {
    const c = this.ctx.config.lorawan;
    if (!c) throw new StreetboxError('E_CONFIG', 'no "lorawan" section in the configuration');
    return c;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const cfg = this.cfg();
    const { clock, bus } = this.ctx;
    const log = this.log;
    const events = new StoreEvents(this.ctx.store, clock, log);

    const devices = new DeviceIndex(cfg.devices, this.ctx.config.devices);
    const db = lorawanDatabase(this.ctx.store, log);
    const sessions = new SessionStore(db, () => clock.now(), (err) => log.error({ err }, 'lorawan: writing frame counters failed; retrying'));
    sessions.load();
    loadAbpSessions(sessions, cfg.devices);
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
    const sender = new DownlinkSender({
      backend,
      sessions,
      queue,
      metrics: this.m,
      clock,
      log,
      settings: { rx1Delay: cfg.rx1Delay, rx1DrOffset: cfg.rx1DrOffset, rx2Dr: cfg.rx2Dr, leadMs: this.opts.leadMs ?? 50 },
      devices,
      events,
      classCAckTimeoutMs: this.opts.classCAckTimeoutMs ?? 5_000,
      ledger: new DutyCycleLedger(DUTY_CYCLE_WINDOW_MS, journal),
    });
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
      clock,
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
    // A jump of the wall clock (NTP) moves this process's air-time rows with it (storage/airtime.ts).
    if (journal) {
      bus.on(this, 'event', (e) => {
        if (e.kind === 'clock.jumped') journal.shift(e.detail.deltaMs);
      });
    }
    this.run = { devices, sessions, backend, queue, sender, uplinks };
    this.running = true;
    log.info({ port: backend.port(), devices: devices.size }, 'lorawan network server started');
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

  enqueueDownlink(deviceRef: string, command: DownlinkCommand): QueuedDownlink {
    const run = this.run;
    if (!this.running || !run) throw new StreetboxError('E_COMPONENT', 'the LoRaWAN driver is not running');
    const device = run.devices.byRef(deviceRef);
    if (!device) throw new StreetboxError('E_NOT_FOUND', `no LoRaWAN device "${deviceRef}"`);
    const { cmd, payload } = parseCommand(command);
    const queued = run.sender.enqueue({
      id: randomUUID(),
      device: device.id,
      devEui: device.devEui,
      command: cmd,
      fPort: COMMAND_FPORT,
      payload,
      confirmed: command.confirmed ?? false,
      expiresAt: command.expiresAt ?? null,
    });
    this.log.debug({ device: device.id, id: queued.id, action: cmd.action }, 'downlink queued');
    return queued;
  }

  status(): LorawanStatus {
    const run = this.run;
    const backend = run?.backend;
    const monoToWall = (m: number | null) => (m === null ? null : Math.round(this.ctx.clock.now() - (this.ctx.clock.monotonic() - m)));
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
      };
    });
    return { port: this.port(), forwarders, devices };
  }

  metrics(): LorawanMetricsSnapshot {
    return this.m.snapshot();
  }
}
