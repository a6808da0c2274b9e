/**
 * The connection to the upstream broker: one mqtt.js client per attempt (mqtt.js's own
 * reconnect is off: its period is fixed), exponential backoff with jitter between attempts,
 * a persistent session under a stable client id, and the last will `offline` (retained) on
 * `streetbox/<gw>/status`. Every change of condition is logged once (connected, lost, which
 * failure); retries of the same failure go to debug.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt';
import type { Clock, Timer } from '../edge/clock.js';
import { errorMessage } from '../edge/errors.js';
import type { Logger } from '../edge/log.js';
import type { Config } from '../edge/config/schema.js';
import { Backoff } from './backoff.js';
import { SyncError, classifyError, disconnectError } from './errors.js';

export type SyncConfig = NonNullable<Config['sync']>;
export type LinkState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'stopped';

/** MQTT 5 §3.1.2.11.2: a persistent session needs a session expiry; a week of absence is kept. */
const SESSION_EXPIRY_S = 7 * 24 * 3600;
const STOP_TIMEOUT_MS = 1000;

export interface LinkOptions {
  /** mqtt.js's connect(), loaded only when a sync is configured (it is a large module) */
  connect: (url: string, options: IClientOptions) => MqttClient;
  gateway: string;
  config: SyncConfig;
  /** directory that relative ca/cert/key paths are resolved against */
  configDir: string;
  statusTopic: string;
  log: Logger;
  clock: Clock;
  random?: () => number;
  onUp(client: MqttClient, connack: IConnackPacket): void;
  onDown(): void;
}

export class UpstreamLink {
  state: LinkState = 'idle';
  lastError: SyncError | null = null;
  lastConnectedAt: number | null = null;
  private readonly backoff: Backoff;
  private client: MqttClient | undefined;
  private timer: Timer | undefined;
  /** bumped for every client, so events of a discarded client are ignored */
  private generation = 0;
  private lastReported = '';
  private unreportedConnect: Record<string, unknown> | undefined;

  constructor(private readonly opts: LinkOptions) {
    const c = opts.config;
    this.backoff = new Backoff({ minMs: c.reconnectMin, maxMs: c.reconnectMax, ...(opts.random ? { random: opts.random } : {}) });
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** The stable client id: sync.clientId, else derived from the gateway id. */
  get clientId(): string {
    return this.opts.config.clientId ?? `streetbox-${this.opts.gateway}`;
  }

  start(): void {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    this.state = 'idle';
    this.attempt();
  }

  /** A healthy exchange happened (a PUBACK): the next failure starts the backoff from the bottom. */
  markHealthy(): void {
    this.backoff.reset();
    this.lastError = null;
    const fields = this.unreportedConnect;
    if (fields) {
      this.unreportedConnect = undefined;
      this.report('connected', 'info', 'upstream connected', fields);
    }
  }

  /** Drops the current connection for `err` (an ack timeout, a refused publish) and retries later. */
  fail(err: SyncError): void {
    if (this.state === 'stopped' || this.state === 'backoff') return;
    this.dropped(this.generation, err);
  }

  /** Publishes `offline` (retained) when connected, disconnects cleanly, stops retrying. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.state = 'stopped';
    this.generation++;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    this.client = undefined;
    if (wasConnected) this.opts.onDown();
    if (!client) return;
    if (wasConnected && this.unreportedConnect === undefined) {
      // A clean DISCONNECT discards the will (MQTT 3.1.1 §3.14.4), so the status is set here.
      await withTimeout(client.publishAsync(this.opts.statusTopic, 'offline', { qos: 1, retain: true }), STOP_TIMEOUT_MS).catch(() => undefined);
      await withTimeout(client.endAsync(false), STOP_TIMEOUT_MS).catch(() => undefined);
    }
    client.end(true);
    this.opts.log.info('upstream disconnected (stopped)');
  }

  private attempt(): void {
    this.timer = undefined;
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    const gen = ++this.generation;
    let options: IClientOptions;
    try {
      options = this.clientOptions();
    } catch (err) {
      this.dropped(gen, err instanceof SyncError ? err : new SyncError('config', errorMessage(err), { cause: err }));
      return;
    }
    this.opts.log.debug({ url: this.opts.config.url, attempt: this.backoff.attempt }, 'connecting upstream');
    const client = this.opts.connect(this.opts.config.url, options);
    this.client = client;
    let lastClientError: SyncError | null = null;
    let serverDisconnect: SyncError | null = null;
    client.on('error', (err) => {
      if (gen === this.generation) lastClientError = classifyError(err, this.opts.config.url);
    });
    // MQTT 5 §3.14: the broker closes the session with a reason (0x87: a publish its ACL denies)
    client.on('disconnect', (packet) => {
      if (gen === this.generation) serverDisconnect = disconnectError(packet.reasonCode ?? 0, this.opts.config.url);
    });
    client.on('connect', (connack) => {
      if (gen !== this.generation) return;
      this.state = 'connected';
      this.lastConnectedAt = this.opts.clock.now();
      // small messages (a stage report, an ack-sized batch) go at once, not after Nagle's ~40 ms
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      // Logged at the first acknowledgement: a broker that accepts CONNECT but never acknowledges
      // is not "connected" to a technician, and its retries must not log twice per round.
      this.unreportedConnect = { url: this.opts.config.url, clientId: this.clientId, sessionPresent: connack.sessionPresent };
      this.opts.log.debug(this.unreportedConnect, 'upstream CONNACK');
      this.opts.onUp(client, connack);
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      const err = serverDisconnect ?? lastClientError ?? new SyncError('closed', `connection to ${this.opts.config.url} closed`);
      this.dropped(gen, err);
    });
  }

  private dropped(gen: number, err: SyncError): void {
    if (gen !== this.generation || this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.generation++;
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('connect');
      client.removeAllListeners('close');
      client.end(true);
    }
    this.lastError = err;
    this.unreportedConnect = undefined;
    if (wasConnected) this.opts.onDown();
    const delay = this.backoff.next();
    const key = `${err.failure}:${err.message}`;
    if (wasConnected) this.report(key, 'warn', 'upstream connection lost; reconnecting', { error: err.message, failure: err.failure });
    else this.report(key, 'error', 'upstream unavailable; retrying with backoff', { error: err.message, failure: err.failure });
    this.opts.log.debug({ delayMs: delay, attempt: this.backoff.attempt, failure: err.failure }, 'upstream retry scheduled');
    this.state = 'backoff';
    this.timer = this.opts.clock.setTimeout(() => this.attempt(), delay);
    this.timer.unref?.();
  }

  /** Logs a condition once: the same condition again (another retry) only at debug. */
  private report(key: string, level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    if (key === this.lastReported) {
      this.opts.log.debug(fields, msg);
      return;
    }
    this.lastReported = key;
    this.opts.log[level](fields, msg);
  }

  private clientOptions(): IClientOptions {
    const c = this.opts.config;
    const file = (what: 'ca' | 'cert' | 'key'): Buffer | undefined => {
      const p = c[what];
      if (p === undefined) return undefined;
      const path = isAbsolute(p) ? p : resolve(this.opts.configDir, p);
      try {
        return readFileSync(path);
      } catch (err) {
        throw new SyncError('config', `sync.${what}: cannot read ${path}: ${errorMessage(err)}`, { cause: err });
      }
    };
    const ca = file('ca');
    const cert = file('cert');
    const key = file('key');
    return {
      clientId: this.clientId,
      clean: false,
      protocolVersion: c.protocolVersion,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: Math.max(1000, Math.min(c.ackTimeout, 30_000)),
      resubscribe: false,
      ...(c.username !== undefined ? { username: c.username } : {}),
      ...(c.password !== undefined ? { password: c.password } : {}),
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      rejectUnauthorized: c.rejectUnauthorized,
      will: { topic: this.opts.statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(c.protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
    };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new SyncError('closed', `timed out after ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new SyncError('closed', errorMessage(e)));
      },
    );
  });
}
