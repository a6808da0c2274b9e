/**
 * Store-and-forward upstream (DESIGN.md "Upstream"): the store's merged stream of readings and
 * events goes out in seq order as QoS 1 batches on `streetbox/<gw>/up/{readings,events}`, at
 * most `inFlight` unacknowledged; the `upstream` consumer cursor moves only over the contiguous
 * prefix of batches the broker acknowledged (PUBACK). On every connection the latest state of
 * each device goes first (retained), then the backlog from the cursor, oldest first. The store's
 * bus wakes the sync after each commit: no polling. A readings batch that could still grow waits
 * up to `sync.linger` for more (cloud-sync/linger.ts) on one timer; events go at once.
 * Central's doors in the same session: commands (commands.ts), configuration (configDoor.ts) and
 * firmware deployments (deploymentDoor.ts); with `sync.homeAssistant`, Home Assistant discovery
 * and its commands (homeAssistant.ts), with each device's retained state (at most one per device
 * per `linger`) and availability as they change.
 * start() reads the `sync` section again, so a configuration change restarts it with stop/start.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { IConnackPacket, MqttClient } from 'mqtt';
import type { Component, GatewayContext } from '../edge/component.js';
import { errorMessage } from '../edge/errors.js';
import type { Logger } from '../edge/log.js';
import type { Timer } from '../edge/clock.js';
import type { ConfigService } from '../edge/reconfig/types.js';
import type { FirmwareService } from '../edge/firmware/types.js';
import { DeviceFeed } from '../edge/broker/publisher.js';
import { moduleDatabase } from '../edge/store/modules.js';
import { Batcher } from './batcher.js';
import { CentralCommands, type CommandHandler } from './commands.js';
import { CentralConfigDoor } from './configDoor.js';
import { CentralDeploymentDoor } from './deploymentDoor.js';
import { DailyBytes, SYNC_MIGRATIONS, SYNC_MODULE, type UpstreamBytes } from './dailyBytes.js';
import { SyncError, classifyError, pubackError } from './errors.js';
import { HomeAssistantDoor } from './homeAssistant.js';
import { Linger } from './linger.js';
import { UpstreamLink, type SyncConfig } from './link.js';
import { encodePayload } from './payload.js';
import { gatewayTopics, type GatewayTopics } from './topics.js';
import { AckWindow, type InFlightBatch } from './window.js';

export const UPSTREAM_CONSUMER = 'upstream';

/** bytesToday, bytesPerDay (the last 31 days), bytesPerMonthEstimate: cloud-sync/dailyBytes.ts */
export interface SyncStatus extends UpstreamBytes {
  connected: boolean;
  lastError: string | null;
  /** everything up to this seq is acknowledged by the broker */
  ackedSeq: number;
  /** seqs committed but not yet acknowledged */
  lagSeq: number;
  /** age of the oldest unacknowledged item, ms (0 when nothing lags) */
  lagMs: number;
  /** batches published and not yet acknowledged */
  inFlight: number;
  sentBatches: number;
  /** payload bytes published (batches only) */
  sentBytes: number;
  /** batches published again after a reconnect or an ack timeout (duplicates upstream) */
  resent: number;
  lastConnectedAt: number | null;
}

export interface SyncComponent extends Component {
  status(): SyncStatus;
}

export interface SyncOptions {
  /** the control pipeline's entry for commands from central (edge/control/central.ts); without it they are all rejected */
  onCommand?: CommandHandler;
  /**
   * The configuration service (edge/reconfig): with it, changes from central on `down/config` are
   * handed to it and its stage reports go upstream on `up/config/<id>` (cloud-sync/configDoor.ts)
   */
  config?: ConfigService;
  /**
   * The firmware service (edge/firmware): with it, deployments from central on `down/deployments`
   * and artifact chunks on `down/artifacts/<sha256>/<index>` are handed to it, and its reports go
   * upstream on `up/deployments/<id>` (cloud-sync/deploymentDoor.ts)
   */
  firmware?: FirmwareService;
  /** uniform [0, 1) for the backoff jitter (tests) */
  random?: () => number;
}

/** The `sync` section, or undefined when the sync is off. */
function syncConfigOf(ctx: GatewayContext): SyncConfig | undefined {
  return ctx.config.sync?.enabled === false ? undefined : ctx.config.sync;
}

export function createSyncComponent(ctx: GatewayContext, opts: SyncOptions = {}): SyncComponent {
  return new UpstreamSync(ctx, opts);
}

class UpstreamSync implements SyncComponent {
  readonly name = 'sync';
  private readonly log: Logger;
  /** read again at every start: a configuration change restarts the sync with a new `sync` section */
  private cfg: SyncConfig | undefined;
  private readonly gateway: string;
  private readonly topics: GatewayTopics;
  private readonly commands: CentralCommands;
  private readonly configDoor: CentralConfigDoor | undefined;
  private readonly deploymentDoor: CentralDeploymentDoor | undefined;
  private readonly homeAssistant: HomeAssistantDoor;
  /** each device's retained state and availability upstream */
  private feed: DeviceFeed | undefined;
  private link: UpstreamLink | undefined;
  private window = new AckWindow(0);
  private batcher: Batcher | undefined;
  private client: MqttClient | undefined;
  private started = false;
  private pumping = false;
  private repump = false;
  private wakeScheduled = false;
  private ackTimer: Timer | undefined;
  private linger = new Linger(0);
  /** wakes the drain when a lingering batch is due; at most one, for the earliest due time */
  private lingerTimer: Timer | undefined;
  private lingerDueAt = Infinity;
  /** an event was committed since the linger timer was armed: the waiting batch is closed */
  private eventWhileLingering = false;
  private lastSeq = 0;
  /** the highest seq published by this process: a batch starting at or below it is a resend */
  private highestSent = 0;
  private sentBatches = 0;
  private sentBytes = 0;
  private resent = 0;
  private daily: DailyBytes | undefined;
  private readonly random: (() => number) | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    opts: SyncOptions,
  ) {
    this.log = ctx.log.child({ module: 'sync' });
    this.cfg = syncConfigOf(ctx);
    this.gateway = ctx.config.gateway.id;
    this.topics = gatewayTopics(this.gateway);
    this.commands = new CentralCommands({ store: ctx.store, topics: this.topics, log: this.log, clock: ctx.clock, handler: opts.onCommand });
    this.configDoor = opts.config ? new CentralConfigDoor({ service: opts.config, topics: this.topics, log: this.log }) : undefined;
    this.deploymentDoor = opts.firmware ? new CentralDeploymentDoor({ service: opts.firmware, gateway: this.gateway, topics: this.topics, log: this.log }) : undefined;
    this.homeAssistant = new HomeAssistantDoor({ gateway: this.gateway, topics: this.topics, commands: this.commands, clock: ctx.clock, log: this.log });
    this.random = opts.random;
  }

  async start(): Promise<void> {
    if (this.started) return;
    const cfg = (this.cfg = syncConfigOf(this.ctx));
    if (!cfg) {
      this.log.info('upstream sync not configured');
      return;
    }
    this.started = true;
    const { store, bus } = this.ctx;
    const consumer = store.registerConsumer(UPSTREAM_CONSUMER);
    this.window = new AckWindow(consumer.ackedSeq);
    this.highestSent = consumer.ackedSeq;
    this.lastSeq = store.stats().lastSeq;
    this.linger = new Linger(cfg.linger);
    // what the buffer holds at start is seen now: a backlog from before a restart goes in full batches, its tail after linger
    if (this.lastSeq > consumer.ackedSeq) this.linger.seen(this.lastSeq, this.ctx.clock.monotonic());
    this.daily = new DailyBytes({ db: this.bytesDatabase(), zone: this.ctx.config.gateway.timezone, clock: this.ctx.clock, log: this.log });
    this.daily.load();
    this.batcher = new Batcher({ store, gateway: this.gateway, batchSize: cfg.batchSize, batchBytes: cfg.batchBytes });
    bus.on(this, 'readings', (rs) => {
      const last = rs[rs.length - 1];
      if (!last) return;
      if (last.seq > this.lastSeq) this.lastSeq = last.seq;
      this.linger.seen(last.seq, this.ctx.clock.monotonic());
      this.wake();
    });
    bus.on(this, 'event', (e) => {
      if (e.seq > this.lastSeq) this.lastSeq = e.seq;
      this.eventWhileLingering = true;
      this.linger.seen(e.seq, this.ctx.clock.monotonic());
      this.wake();
    });
    // a report added inside the manager's work: published after it, from the outbox
    if (this.configDoor) bus.on(this, 'configReport', () => setImmediate(() => this.configDoor?.wake()));
    if (this.deploymentDoor) bus.on(this, 'deploymentReport', () => setImmediate(() => this.deploymentDoor?.wake()));
    this.homeAssistant.want(this.ctx.config);
    // a configuration change that adds or removes devices: the discovery follows
    bus.on(this, 'configReport', (r) => {
      if (r.stage !== 'applied' && r.stage !== 'rolledBack') return;
      try {
        this.homeAssistant.want(this.ctx.config);
        this.homeAssistant.changed(this.client);
      } catch (err) {
        this.log.error({ err }, 'Home Assistant discovery after a configuration change failed');
      }
    });
    this.feed = new DeviceFeed({
      bus,
      store,
      clock: this.ctx.clock,
      topics: { state: (d) => this.topics.deviceState(d), availability: (d) => this.topics.deviceAvailability(d) },
      publish: (topic, payload, retain) => this.client?.publish(topic, payload, { qos: 1, retain }),
      source: 'readings',
      coalesceMs: cfg.linger,
    });
    // for Home Assistant the state and availability as they change; without it the state goes at each connection only
    if (this.homeAssistant.enabled) this.feed.start();
    const { default: mqtt } = await import('mqtt');
    if (!this.started) return; // stopped while mqtt.js was loading
    this.link = new UpstreamLink({
      connect: (url, options) => mqtt.connect(url, options),
      gateway: this.gateway,
      config: cfg,
      configDir: this.ctx.configDir,
      statusTopic: this.topics.status,
      log: this.log,
      clock: this.ctx.clock,
      ...(this.random ? { random: this.random } : {}),
      onUp: (client, connack) => this.onUp(client, connack),
      onDown: () => this.onDown(),
    });
    this.log.info({ url: cfg.url, ackedSeq: consumer.ackedSeq, lastSeq: this.lastSeq }, 'upstream sync starting');
    this.link.start();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.ctx.bus.off(this);
    this.feed?.stop();
    this.feed = undefined;
    await this.link?.stop();
    this.link = undefined;
    this.clearAckTimer();
    // what lingers stays in the buffer: the cursor has not passed it, it goes after the next start
    this.clearLingerTimer();
    try {
      this.daily?.save();
    } catch (err) {
      this.log.warn({ err }, 'saving the upstream bytes per day failed');
    }
    this.daily?.stop();
  }

  status(): SyncStatus {
    const acked = this.window.ackedSeq;
    const lagSeq = Math.max(0, this.lastSeq - acked);
    let lagMs = 0;
    if (lagSeq > 0 && this.started) {
      try {
        const r = this.ctx.store.readings({ after: acked, limit: 1 }).items[0];
        const e = this.ctx.store.events({ after: acked, limit: 1 }).items[0];
        const oldest = Math.min(r?.ts ?? Infinity, e?.ts ?? Infinity);
        if (Number.isFinite(oldest)) lagMs = Math.max(0, this.ctx.clock.now() - oldest);
      } catch {
        // store closing: the lag in ms is unknown
      }
    }
    return {
      connected: this.link?.connected ?? false,
      lastError: this.link?.lastError?.message ?? null,
      ackedSeq: acked,
      lagSeq,
      lagMs,
      inFlight: this.window.size,
      sentBatches: this.sentBatches,
      sentBytes: this.sentBytes,
      resent: this.resent,
      lastConnectedAt: this.link?.lastConnectedAt ?? null,
      ...(this.daily?.report() ?? { bytesToday: 0, bytesPerDay: [], bytesPerMonthEstimate: null }),
    };
  }

  // ---- connection ----------------------------------------------------------------------

  private onUp(client: MqttClient, connack: IConnackPacket): void {
    this.client = client;
    this.window.clear();
    client.on('message', (topic, payload) => {
      if (client !== this.client) return;
      if (topic === this.topics.commandsDown) {
        void this.commands.handle(client, topic, payload).catch((err: unknown) => this.log.error({ err }, 'handling a command from central failed'));
      } else if (topic === this.topics.configDown) {
        // without a service, a subscription the persistent session kept from an earlier run
        if (this.configDoor) this.configDoor.handle(payload);
        else this.log.warn({ bytes: payload.length }, 'configuration from central is not enabled on this gateway; message ignored');
      } else if (this.deploymentDoor?.owns(topic)) {
        this.deploymentDoor.handle(topic, payload);
      } else if (topic === this.topics.deploymentsDown) {
        this.log.warn({ bytes: payload.length }, 'firmware deployments from central are not enabled on this gateway; message ignored');
      } else if (this.homeAssistant.owns(topic)) {
        this.homeAssistant.handle(client, topic, payload);
      }
    });
    // The persistent session keeps the subscriptions (sessionPresent); subscribing again is
    // harmless and covers a session the broker lost.
    this.commands.subscribe(client);
    this.configDoor?.subscribe(client);
    this.deploymentDoor?.subscribe(client);
    this.homeAssistant.subscribe(client);
    this.log.debug({ sessionPresent: connack.sessionPresent }, 'upstream session');
    client.publish(this.topics.status, 'online', { qos: 1, retain: true }, (err) => {
      if (!err && client === this.client) this.link?.markHealthy();
    });
    this.publishLatestState();
    this.homeAssistant.connected(client);
    this.configDoor?.connected(client);
    this.deploymentDoor?.connected(client);
    this.wake();
  }

  private onDown(): void {
    this.client = undefined;
    this.configDoor?.disconnected();
    this.deploymentDoor?.disconnected();
    this.window.clear();
    this.clearAckTimer();
    this.clearLingerTimer();
  }

  /** The latest value of every point, one retained message per device, and each availability known, before any backlog. */
  private publishLatestState(): void {
    try {
      this.feed?.republish();
    } catch (err) {
      this.log.error({ err }, 'reading the latest state failed');
    }
  }

  // ---- the drain -----------------------------------------------------------------------

  private wake(): void {
    if (this.wakeScheduled || !this.client) return;
    this.wakeScheduled = true;
    // Never inside the writer's commit (the bus listener): after it.
    setImmediate(() => {
      this.wakeScheduled = false;
      try {
        this.pump();
      } catch (err) {
        // a store that fails to read: the next commit or ack wakes the drain again
        this.log.error({ err }, 'upstream drain failed');
      }
    });
  }

  private pump(): void {
    const cfg = this.cfg;
    const batcher = this.batcher;
    if (!cfg || !batcher) return;
    if (this.pumping) {
      // woken from inside a round: go again after it
      this.repump = true;
      return;
    }
    if (this.stillLingering(cfg.batchSize)) return;
    this.pumping = true;
    try {
      const client = this.client;
      while (client && client === this.client && this.window.size < cfg.inFlight) {
        const b = batcher.next(this.window.frontier);
        if (!b) break;
        const wait = this.linger.waitMs(b, this.ctx.clock.monotonic());
        if (wait > 0) {
          this.armLingerTimer(wait);
          break;
        }
        // the batch a timer waited for (if any) goes now
        this.clearLingerTimer();
        const payload = encodePayload(this.gateway, b.fromSeq, b.toSeq, b.itemsJson, cfg.compress);
        const entry = this.window.add(b.fromSeq, b.toSeq, this.ctx.clock.monotonic());
        this.sentBatches++;
        this.sentBytes += payload.length;
        this.daily?.add(payload.length);
        if (b.fromSeq <= this.highestSent) this.resent++;
        if (b.toSeq > this.highestSent) this.highestSent = b.toSeq;
        client.publish(this.topics.up(b.kind), payload, { qos: 1 }, (err) => this.onPuback(client, entry, err));
        if (!this.ackTimer) this.armAckTimer();
      }
    } finally {
      this.pumping = false;
      if (this.repump) {
        this.repump = false;
        this.wake();
      }
    }
  }

  private onPuback(client: MqttClient, batch: InFlightBatch, err: Error | undefined): void {
    if (client !== this.client) return;
    if (err) {
      // mqtt.js fails pending publishes when the connection closes; the close handler deals with that.
      if (/connection closed|disconnecting|client disconnecting/i.test(err.message)) return;
      // MQTT 5 §3.4.2.1: a PUBACK reason code >= 0x80 refuses the message: nothing is marked
      // synced; retry (with backoff) over a new connection.
      const code = (err as { code?: unknown }).code;
      this.link?.fail(
        typeof code === 'number'
          ? pubackError(code, err.message, this.cfg?.url ?? '', batch.fromSeq, batch.toSeq)
          : classifyError(err, this.cfg?.url ?? ''),
      );
      return;
    }
    this.link?.markHealthy();
    const moved = this.window.ack(batch.id);
    if (moved !== null) {
      this.linger.acked(moved);
      try {
        this.ctx.store.ackConsumer(UPSTREAM_CONSUMER, moved);
      } catch (e) {
        this.log.error({ err: e, seq: moved }, `moving the upstream cursor failed: ${errorMessage(e)}`);
      }
      this.clearAckTimer();
      this.armAckTimer();
    }
    this.wake();
  }

  // ---- the linger timer ----------------------------------------------------------------

  /** One timer for the lingering batch: kept while it is due no later than `waitMs` from now. */
  /**
   * A readings batch waits out its linger and a commit of readings woke the drain: it cannot end
   * the wait unless it may fill the batch by count, so the batch is not read and serialized again
   * at every commit. (One full by bytes before count, with a small batchBytes, goes when the timer
   * fires: within linger.) An event closes the batch: it is built and goes at once.
   */
  private stillLingering(batchSize: number): boolean {
    return this.lingerTimer !== undefined && !this.eventWhileLingering && this.lastSeq - this.window.frontier < batchSize;
  }

  private armLingerTimer(waitMs: number): void {
    const dueAt = this.ctx.clock.monotonic() + waitMs;
    // the batch was just built and waits: the events committed so far are in it, or past it
    this.eventWhileLingering = false;
    if (this.lingerTimer && this.lingerDueAt <= dueAt) return;
    this.clearLingerTimer();
    this.lingerDueAt = dueAt;
    this.lingerTimer = this.ctx.clock.setTimeout(() => {
      this.lingerTimer = undefined;
      this.lingerDueAt = Infinity;
      this.wake();
    }, waitMs);
    this.lingerTimer.unref?.();
  }

  private clearLingerTimer(): void {
    if (this.lingerTimer) this.ctx.clock.clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.lingerDueAt = Infinity;
  }

  // ---- the ack timeout -----------------------------------------------------------------

  private armAckTimer(): void {
    const cfg = this.cfg;
    const oldest = this.window.oldestPending();
    if (!cfg || !oldest || this.ackTimer) return;
    const due = Math.max(0, oldest.sentAt + cfg.ackTimeout - this.ctx.clock.monotonic());
    this.ackTimer = this.ctx.clock.setTimeout(() => {
      this.ackTimer = undefined;
      const still = this.window.oldestPending();
      if (!still || !this.client) return;
      if (still.id !== oldest.id) return this.armAckTimer();
      this.link?.fail(
        new SyncError('ack-timeout', `broker did not acknowledge batch ${still.fromSeq}..${still.toSeq} within ${cfg.ackTimeout} ms; reconnecting to resend it`),
      );
    }, due);
    this.ackTimer.unref?.();
  }

  /** The sync's table of bytes per day; null for a store without module tables (a test double): counted in memory only. */
  private bytesDatabase(): BetterSqlite3.Database | null {
    const db = moduleDatabase(this.ctx.store, SYNC_MODULE, SYNC_MIGRATIONS);
    if (db === null) this.log.warn('store has no module tables: upstream bytes per day are kept in memory only');
    return db;
  }

  private clearAckTimer(): void {
    if (this.ackTimer) this.ctx.clock.clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }
}
