/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1): logins from broker.users (edge/broker/auth.ts),
 * the ACL of each user's role (edge/control/roles.ts `mqttAllowed`) as aedes' authorize hooks,
 * and the topic API of DESIGN.md: retained status, state and availability, the retained list of
 * devices, events, set topics handed to the command pipeline (a JSON body or the shorthand: a bare
 * level, ON / OFF), and command results on `commands/<id>`; with `broker.homeAssistant`, Home
 * Assistant discovery (homeAssistant.ts), published again at Home Assistant's birth message.
 * `setAuth` swaps the users in place (a config change, issue 16): only the connections whose
 * login no longer stands are closed; a change of the devices republishes the list and the
 * discovery (what went away is cleared).
 */
import { randomUUID } from 'node:crypto';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Server, Socket } from 'node:net';
import type { MetricSample } from '../api/metricsText.js';
import type { Component, GatewayContext } from '../component.js';
import { homeAssistantOf, type Config } from '../config/schema.js';
import type { CommandService } from '../control/api.js';
import { mqttAllowed, type DeviceKind, type MqttAclOptions, type Principal } from '../control/roles.js';
import { describeDevice } from '../profiles/describe.js';
import { loadProfiles } from '../profiles/index.js';
import { errorMessage } from '../errors.js';
import { commandBody } from '../jsonLimits.js';
import type { Logger } from '../log.js';
import { Admission } from './admission.js';
import { BrokerUsers, type Login } from './auth.js';
import { GuardedConnection } from './framing.js';
import { close, listen, plainServer, tlsServer } from './listeners.js';
import { commandShorthand } from '../flows/nodes/commandShorthand.js';
import { deviceListPayload } from './deviceList.js';
import { DiscoveryPublisher } from './discoveryPublisher.js';
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

/** Home Assistant's birth messages republish the discovery at most once per this many ms. */
const BIRTH_GAP_MS = 5_000;

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
  private readonly discovery: DiscoveryPublisher;
  /** the retained device list as last published */
  private deviceList = '';
  private lastBirth = -Infinity;
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
    this.discovery = new DiscoveryPublisher(this.topics);
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
        if (client && this.discovery.isBirth(packet.topic, packet.payload.toString('utf8'))) this.publishDiscovery('birth');
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
      this.deviceList = '';
      this.discovery.want(this.ctx.config, homeAssistantOf(cfg.homeAssistant));
      // a new aedes holds nothing retained: every config again (and the clearing of those that went away)
      this.publishDevices('start');
      // a configuration change that adds or removes devices: the list and the discovery follow
      this.ctx.bus.on(this, 'configReport', (r) => {
        if (r.stage === 'applied' || r.stage === 'rolledBack') this.configChanged();
      });
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
    this.ctx.bus.off(this);
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

  /** The retained device list, when it changed, and the discovery configs that changed (at start all of them). */
  private publishDevices(why: 'start' | 'update'): void {
    const list = deviceListPayload(this.ctx.config);
    if (list !== this.deviceList) {
      this.deviceList = list;
      this.publish(this.topics.devices, list, true);
    }
    this.publishDiscovery(why);
  }

  /**
   * The discovery configs: at start and at Home Assistant's birth every one, after a configuration
   * change those that changed; those that went away (discovery turned off included) are cleared.
   * Births are taken at most one per BIRTH_GAP_MS: any logged-in client may publish one.
   */
  private publishDiscovery(why: 'start' | 'update' | 'birth'): void {
    if (why === 'birth') {
      const now = this.ctx.clock.monotonic();
      if (now - this.lastBirth < BIRTH_GAP_MS) return;
      this.lastBirth = now;
    }
    const publish = (topic: string, payload: string): void => this.publish(topic, payload, true);
    const n = why === 'update' ? this.discovery.update(publish) : this.discovery.republish(publish);
    if (n.published + n.cleared > 0) this.log.info({ why, ...n }, 'home assistant discovery published');
  }

  /** A new configuration runs (or the previous one again): the devices it has now. */
  private configChanged(): void {
    try {
      this.discovery.want(this.ctx.config, homeAssistantOf(this.ctx.config.broker.homeAssistant));
      this.publishDevices('update');
    } catch (err) {
      this.log.error({ err }, 'publishing the devices after a configuration change failed');
    }
  }

  private aclOptions(): MqttAclOptions {
    return { deviceKind: this.deviceKind, homeAssistantPrefix: this.discovery.enabled ? this.discovery.prefix : undefined };
  }

  private authorizePublish(client: Client | null, packet: PublishPacket): Error | null {
    // client null: a will left by a client of an earlier broker; nobody to judge it for
    const who = client ? this.principals.get(client) : undefined;
    const ok = who !== undefined && mqttAllowed(who.role, 'publish', packet.topic, this.ctx.config.gateway.id, this.aclOptions());
    const set = ok && this.topics.setTarget(packet.topic) !== null;
    if (ok && (!set || packet.payload.length <= MAX_SET_PAYLOAD)) {
      // a retained command would be replayed to every later subscriber: a set is never retained
      if (set) packet.retain = false;
      this.counters.publishesIn++;
      return null;
    }
    this.counters.publishesDenied++;
    this.log.info({ principal: who?.principal ?? null, role: who?.role ?? null, topic: packet.topic, bytes: packet.payload.length }, 'mqtt publish refused');
    if (who) this.recordRefusedCommand(who, packet);
    // [MQTT-3.3.5-2] MQTT 3.1.1 has no negative PUBACK: the server closes the connection
    return new Error(`not authorized to publish to ${packet.topic}`);
  }

  private authorizeSubscribe(client: Client, sub: Subscription): Subscription | null {
    const who = this.principals.get(client);
    if (who && mqttAllowed(who.role, 'subscribe', sub.topic, this.ctx.config.gateway.id, this.aclOptions())) return sub;
    this.counters.subscriptionsDenied++;
    this.log.info({ principal: who?.principal ?? null, role: who?.role ?? null, filter: sub.topic }, 'mqtt subscription refused');
    return null; // MQTT 3.1.1 §3.9.3: return code 0x80 Failure
  }

  /**
   * A command on a set topic that the client's role may not send (a viewer, maintenance on a
   * traffic controller): the connection is closed (MQTT 3.1.1 has no negative PUBACK) and the
   * refusal recorded as a `command.rejected` event, in the store's refusal share (quota.ts), as
   * every door's refusals are. The pipeline never sees it: the ACL decided before.
   */
  private recordRefusedCommand(who: Principal, packet: PublishPacket): void {
    const target = this.topics.setTarget(packet.topic);
    if (!target || packet.payload.length > MAX_SET_PAYLOAD) return;
    const { body, transaction } = setCommand(packet.payload);
    const a = body !== null && typeof body === 'object' ? (body as { action?: unknown }).action : undefined;
    const action = typeof a === 'string' ? a.slice(0, 32) : 'unknown';
    const error = `role ${who.role} may not send commands to ${target.kind} ${target.id} over MQTT`;
    try {
      this.ctx.store.appendEvent(
        {
          kind: 'command.rejected',
          severity: 'warning',
          ...(target.kind === 'device' ? { device: target.id } : {}),
          detail: { transaction: transaction?.slice(0, 128) ?? randomUUID(), source: { role: who.role, principal: who.principal }, code: 'E_FORBIDDEN', error, target, action, door: 'mqtt' },
        },
        { refusal: true },
      );
    } catch (err) {
      this.log.error({ err, principal: who.principal }, 'recording a refused command failed');
    }
  }

  private onClientPublish(client: Client, packet: AedesPublishPacket): void {
    const target = this.topics.setTarget(packet.topic);
    const who = this.principals.get(client);
    if (!target || !who || !this.publisher) return;
    const { body, transaction } = setCommand(packet.payload);
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

/**
 * A set topic's payload as the pipeline takes it, with its `transaction`: the shorthand (a bare
 * level, ON / OFF), else JSON parsed within the limits of edge/jsonLimits.ts; a text that is
 * neither is handed over as it is, and the pipeline refuses it with the reason and records it.
 */
function setCommand(payload: Buffer | string): { body: unknown; transaction: string | undefined } {
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  const body = commandShorthand(text) ?? commandBody(text);
  const t = body !== null && typeof body === 'object' ? (body as { transaction?: unknown }).transaction : undefined;
  return { body, transaction: typeof t === 'string' || typeof t === 'number' ? String(t) : undefined };
}

function remoteOf(client: Client): string | null {
  const conn = client.conn as Partial<Socket>;
  return typeof conn.remoteAddress === 'string' ? conn.remoteAddress : null;
}
