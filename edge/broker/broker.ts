/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1): logins from broker.users (edge/broker/auth.ts),
 * the ACL of each user's role (edge/control/roles.ts `mqttAllowed`) as aedes' authorize hooks,
 * and the topic API of DESIGN.md: retained status, state and availability, events, set topics
 * handed to the command pipeline, and command results on `commands/<id>`. `setAuth` swaps the
 * users in place (a config change, issue 16): only the connections whose login no longer stands
 * are closed.
 */
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Server, Socket } from 'node:net';
import type { MetricSample } from '../api/metricsText.js';
import type { Component, GatewayContext } from '../component.js';
import type { Config } from '../config/schema.js';
import type { CommandService } from '../control/api.js';
import { mqttAllowed, type DeviceKind, type Principal } from '../control/roles.js';
import { describeDevice } from '../profiles/describe.js';
import { loadProfiles } from '../profiles/index.js';
import { errorMessage } from '../errors.js';
import { commandBody } from '../jsonLimits.js';
import type { Logger } from '../log.js';
import { Admission } from './admission.js';
import { BrokerUsers, type Login } from './auth.js';
import { GuardedConnection } from './framing.js';
import { close, listen, plainServer, tlsServer } from './listeners.js';
import { BrokerMetrics } from './metrics.js';
import { Publisher } from './publisher.js';
import { topicsFor, type Topics } from './topics.js';

export interface BrokerDeps {
  commands: CommandService;
  /** the kind of a device, so a traffic controller's set topic needs `command.traffic` (default: from its profile) */
  deviceKind?(id: string): DeviceKind | undefined;
  /** state publishes per device are at most one per this many ms (default 100) */
  coalesceMs?: number;
}

export interface BrokerComponent extends Component {
  /** the plain MQTT port, once started (the bound one when broker.port is 0) */
  port(): number;
  /** the MQTT-over-TLS port, once started, or undefined when not configured */
  tlsPort(): number | undefined;
  metrics(): MetricSample[];
  /**
   * Swaps the users (and allowAnonymous) of the running broker: new logins are checked against
   * them once it resolves; connections of users removed, or whose password, passwordHash or role
   * changed, (and anonymous ones when anonymous is no longer allowed) are closed, every other
   * connection stays as it is. `closed`: how many. Not running: nothing to do ({ closed: 0 }).
   * Rejects with E_CONFIG (a malformed passwordHash), the old users still in force.
   */
  setAuth(broker: Pick<Config['broker'], 'users' | 'allowAnonymous'>): Promise<{ closed: number }>;
}

/** A command on a set topic larger than this is refused (the client is disconnected). */
export const MAX_SET_PAYLOAD = 64 * 1024;

// MQTT 3.1.1 §3.2.2.3 Connect Return code
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;
const SERVER_UNAVAILABLE = 3;

export function createBroker(ctx: GatewayContext, deps: BrokerDeps): BrokerComponent {
  return new EmbeddedBroker(ctx, deps);
}

/**
 * The kind of each configured device, as its profile declares it (edge/profiles/describe.ts);
 * `other` is none. Computed here, once, from the config (validated by then, profiles included):
 * the broker calls it when it is built, so a profile that cannot be read fails the broker's
 * construction, never an ACL question inside authorizePublish.
 */
export function deviceKindFromConfig(config: Pick<Config, 'devices' | 'profiles'>): (id: string) => DeviceKind | undefined {
  const kinds = new Map<string, DeviceKind>();
  const profiles = loadProfiles(config.profiles);
  for (const d of config.devices) {
    const { kind } = describeDevice(d, profiles);
    if (kind !== 'other') kinds.set(d.id, kind);
  }
  return (id) => kinds.get(id);
}

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

class EmbeddedBroker implements BrokerComponent {
  readonly name = 'broker';
  private readonly log: Logger;
  private readonly topics: Topics;
  private readonly deviceKind: (id: string) => DeviceKind | undefined;
  private readonly counters = new BrokerMetrics();
  private readonly principals = new WeakMap<Client, Principal>();
  /** the connections logged in now, with what they logged in as (setAuth closes those whose login no longer stands) */
  private readonly logins = new Map<Client, Login>();
  private users: BrokerUsers | null = null;
  private aedes: Aedes | null = null;
  private admission: Admission | null = null;
  private publisher: Publisher | null = null;
  private servers: Server[] = [];
  private ports: { plain: number; tls: number | undefined } | null = null;
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: GatewayContext,
    private readonly deps: BrokerDeps,
  ) {
    this.log = ctx.log.child({ module: 'broker' });
    this.topics = topicsFor(ctx.config.gateway.id);
    this.deviceKind = deps.deviceKind ?? deviceKindFromConfig(ctx.config);
  }

  port(): number {
    if (!this.ports) throw new Error('broker not started');
    return this.ports.plain;
  }

  tlsPort(): number | undefined {
    return this.ports?.tls;
  }

  metrics(): MetricSample[] {
    return this.counters.samples(this.aedes?.connectedClients ?? 0, this.admission?.size ?? 0);
  }

  start(): Promise<void> {
    // after a failed start (or stop) the next start tries again: the supervisor retries
    this.busy = this.busy.catch(() => undefined).then(() => this.doStart());
    return this.busy;
  }

  stop(): Promise<void> {
    this.busy = this.busy.catch(() => undefined).then(() => this.doStop());
    return this.busy;
  }

  private async doStart(): Promise<void> {
    if (this.aedes) return;
    const cfg = this.ctx.config.broker;
    const users = new BrokerUsers(cfg.allowAnonymous);
    await users.load(cfg.users);
    const admission = new Admission({ limits: cfg, clock: this.ctx.clock, log: this.log, refused: (reason) => this.counters.refused(reason) });
    const aedes = await Aedes.createBroker({
      id: `streetbox-${this.ctx.config.gateway.id}`,
      drainTimeout: 10_000,
      // a backstop: admission.ts closes a connection without an authenticated CONNECT first (it counts from accept)
      connectTimeout: cfg.connectTimeout + 1_000,
      authenticate: (client, username, password, done) => {
        users.login(username, password).then(
          (r) => {
            // the users were swapped while the password was checked, and this login no longer stands
            if (r.ok && !users.holds(r.login)) r = { ok: false, reason: 'credentials' };
            if (r.ok) {
              this.principals.set(client, r.principal);
              this.loggedIn(client, r.login);
              // before the CONNACK: the client's next packets may be up to broker.maxPacketSize
              if (client.conn instanceof GuardedConnection) client.conn.authenticated();
              done(null, true);
              return;
            }
            this.counters.authFailure(r.reason);
            // never the password; the username helps a technician find a misconfigured client
            this.log.warn({ username: username ?? null, clientId: client.id, remote: remoteOf(client), reason: r.reason }, 'mqtt login refused');
            if (r.reason === 'busy') done(authError('server busy', SERVER_UNAVAILABLE), false);
            else if (r.reason === 'anonymous') done(authError('anonymous clients are not allowed', NOT_AUTHORIZED), false);
            else done(authError('bad username or password', BAD_USERNAME_OR_PASSWORD), false);
          },
          (err: unknown) => {
            this.log.error({ err, clientId: client.id }, 'mqtt login failed');
            done(authError('login failed', SERVER_UNAVAILABLE), false);
          },
        );
      },
      authorizePublish: (client, packet, done) => done(this.authorizePublish(client, packet)),
      authorizeSubscribe: (client, sub, done) => done(null, this.authorizeSubscribe(client, sub)),
      authorizeForward: (_client, packet) => {
        this.counters.publishesOut++;
        return packet;
      },
      published: (packet, client, done) => {
        if (client) this.onClientPublish(client, packet);
        done();
      },
    });
    aedes.on('client', () => this.counters.connections++);
    aedes.on('clientError', (client, err) => this.log.debug({ clientId: client.id, err: errorMessage(err) }, 'mqtt client error'));
    aedes.on('connectionError', (client, err) => this.log.debug({ clientId: client.id, err: errorMessage(err) }, 'mqtt connection error'));
    this.aedes = aedes;
    this.admission = admission;
    this.users = users;

    const publish = (topic: string, payload: string, retain: boolean): void => this.publish(topic, payload, retain);
    this.publisher = new Publisher({ bus: this.ctx.bus, store: this.ctx.store, clock: this.ctx.clock, log: this.log, topics: this.topics, publish, ...(this.deps.coalesceMs !== undefined ? { coalesceMs: this.deps.coalesceMs } : {}) });
    try {
      this.publisher.start();
      publish(this.topics.status, 'online', true);
      // aedes reads only what the framing check let through, never the socket itself
      const onConnection = (socket: Socket): void => {
        const conn = admission.guard(socket);
        if (conn) aedes.handle(conn);
      };
      const plain = plainServer(admission, onConnection);
      this.servers.push(plain);
      const plainPort = await listen(plain, cfg.port, cfg.host, 'broker');
      const tls = tlsServer(cfg, this.ctx.configDir, admission, onConnection);
      let tlsPort: number | undefined;
      if (tls) {
        this.servers.push(tls);
        tlsPort = await listen(tls, cfg.tlsPort!, cfg.host, 'broker (TLS)');
      }
      this.ports = { plain: plainPort, tls: tlsPort };
      this.log.info({ host: cfg.host, port: plainPort, tlsPort: tlsPort ?? null, users: users.size, allowAnonymous: cfg.allowAnonymous }, 'mqtt broker listening');
    } catch (err) {
      await this.doStop();
      throw err;
    }
  }

  private async doStop(): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return;
    this.publisher?.stop();
    this.publisher = null;
    await new Promise<void>((r) => {
      aedes.publish({ cmd: 'publish', topic: this.topics.status, payload: Buffer.from('offline'), qos: 1, retain: true, dup: false }, () => r());
    });
    const closing = this.servers.map((s) => close(s));
    await new Promise<void>((r) => aedes.close(() => r()));
    // connections that never logged in are not aedes' clients: the servers would wait for them
    this.admission?.closeAll();
    await Promise.all(closing);
    this.servers = [];
    this.aedes = null;
    this.admission = null;
    this.users = null;
    this.logins.clear();
    this.ports = null;
    this.log.info('mqtt broker stopped');
  }

  setAuth(broker: Pick<Config['broker'], 'users' | 'allowAnonymous'>): Promise<{ closed: number }> {
    // in turn with start and stop: never against a broker half started or stopped
    const run = this.busy.catch(() => undefined).then(() => this.doSetAuth(broker));
    this.busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async doSetAuth(broker: Pick<Config['broker'], 'users' | 'allowAnonymous'>): Promise<{ closed: number }> {
    const users = this.users;
    if (!users || !this.aedes) return { closed: 0 };
    const change = await users.update(broker.users, broker.allowAnonymous);
    // from here to the end nothing awaits: no login completes between the swap and the closing
    let closed = 0;
    for (const [client, login] of this.logins) {
      if (users.holds(login)) continue;
      this.logins.delete(client);
      // its will is not published on the authority it no longer has (authorizePublish finds no principal)
      this.principals.delete(client);
      client.close();
      closed++;
    }
    // usernames only: never a password or a hash
    this.log.info({ users: users.size, ...change, allowAnonymous: broker.allowAnonymous, closed }, 'mqtt users replaced');
    return { closed };
  }

  /** A connection logged in: kept (with its login) until its stream closes. */
  private loggedIn(client: Client, login: Login): void {
    const conn = client.conn as Partial<NodeJS.EventEmitter> & { destroyed?: boolean };
    if (conn.destroyed === true || typeof conn.once !== 'function') return;
    this.logins.set(client, login);
    conn.once('close', () => this.logins.delete(client));
  }

  private publish(topic: string, payload: string, retain: boolean): void {
    const aedes = this.aedes;
    if (!aedes || aedes.closed) return;
    aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload, 'utf8'), qos: 1, retain, dup: false }, (err) => {
      if (err) this.log.warn({ topic, err: errorMessage(err) }, 'mqtt publish failed');
    });
  }

  private authorizePublish(client: Client | null, packet: PublishPacket): Error | null {
    // client null: a will left by a client of an earlier broker; nobody to judge it for
    const who = client ? this.principals.get(client) : undefined;
    const ok = who !== undefined && mqttAllowed(who.role, 'publish', packet.topic, this.ctx.config.gateway.id, { deviceKind: this.deviceKind });
    const set = ok && this.topics.setTarget(packet.topic) !== null;
    if (ok && (!set || packet.payload.length <= MAX_SET_PAYLOAD)) {
      // a retained command would be replayed to every later subscriber: a set is never retained
      if (set) packet.retain = false;
      this.counters.publishesIn++;
      return null;
    }
    this.counters.publishesDenied++;
    this.log.info({ principal: who?.principal ?? null, role: who?.role ?? null, topic: packet.topic, bytes: packet.payload.length }, 'mqtt publish refused');
    // [MQTT-3.3.5-2] MQTT 3.1.1 has no negative PUBACK: the server closes the connection
    return new Error(`not authorized to publish to ${packet.topic}`);
  }

  private authorizeSubscribe(client: Client, sub: Subscription): Subscription | null {
    const who = this.principals.get(client);
    if (who && mqttAllowed(who.role, 'subscribe', sub.topic, this.ctx.config.gateway.id)) return sub;
    this.counters.subscriptionsDenied++;
    this.log.info({ principal: who?.principal ?? null, role: who?.role ?? null, filter: sub.topic }, 'mqtt subscription refused');
    return null; // MQTT 3.1.1 §3.9.3: return code 0x80 Failure
  }

  private onClientPublish(client: Client, packet: AedesPublishPacket): void {
    const target = this.topics.setTarget(packet.topic);
    const who = this.principals.get(client);
    if (!target || !who || !this.publisher) return;
    // parsed within the limits of edge/jsonLimits.ts; a text that is not is handed over as it is,
    // and the pipeline refuses it with the reason and records it
    const body = commandBody(packet.payload.toString('utf8'));
    const t = body !== null && typeof body === 'object' ? (body as { transaction?: unknown }).transaction : undefined;
    const transaction = typeof t === 'string' || typeof t === 'number' ? String(t) : undefined;
    this.counters.commandsSubmitted++;
    try {
      // the result goes out on commands/<id> as each status is committed (publisher.ts); nobody awaits the outcome here
      const { row } = this.publisher.submitWith(transaction, () => this.deps.commands.submit(target, body, who));
      this.log.debug({ id: row.id, status: row.status, target, principal: who.principal }, 'mqtt command submitted');
    } catch (err) {
      this.log.error({ err, target, principal: who.principal }, 'command submit failed');
    }
  }
}

function remoteOf(client: Client): string | null {
  const conn = client.conn as Partial<Socket>;
  return typeof conn.remoteAddress === 'string' ? conn.remoteAddress : null;
}
