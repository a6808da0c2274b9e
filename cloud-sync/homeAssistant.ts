/**
 * Home Assistant on the upstream broker (`sync.homeAssistant`): the discovery configs of the
 * embedded broker's builder (edge/broker/homeAssistant.ts) pointed at the upstream topics (the
 * retained `status`, which is the sync's last will, `devices/<id>/state` and
 * `devices/<id>/availability`), and Home Assistant's commands on `devices/<id>/set` handed to the
 * central command path (role `central`, principal `upstream:homeassistant`), with the shorthand of
 * every set topic (a bare level, ON / OFF).
 *
 * Configs go at each connection (only those that changed since this process published them: a
 * reconnect over a flaky uplink does not resend them all), at Home Assistant's birth message on
 * `<prefix>/status` (all of them, at most one birth per BIRTH_GAP_MS) and after a configuration
 * change (those that changed, and an empty retained payload for each entity that went away).
 * Set topics are subscribed at QoS 0: a command Home Assistant sent while the gateway was away is
 * not kept for it and carried out late.
 */
import type { MqttClient } from 'mqtt';
import type { Clock } from '../edge/clock.js';
import { homeAssistantOf, identifier, type Config } from '../edge/config/schema.js';
import { DiscoveryPublisher } from '../edge/broker/discoveryPublisher.js';
import type { Logger } from '../edge/log.js';
import type { CentralCommands } from './commands.js';
import { deviceSetLevel, type GatewayTopics } from './topics.js';

/** Who Home Assistant's commands upstream are recorded as (with role central). */
export const HOME_ASSISTANT_PRINCIPAL = 'upstream:homeassistant';

/** Births republish every config at most once per this many ms (each costs uplink bytes). */
const BIRTH_GAP_MS = 60_000;

export interface HomeAssistantDoorOptions {
  gateway: string;
  topics: GatewayTopics;
  commands: CentralCommands;
  clock: Clock;
  log: Logger;
}

export class HomeAssistantDoor {
  /** kept across connections and restarts of the sync: what the broker holds from this process */
  private readonly discovery: DiscoveryPublisher;
  private lastBirth = -Infinity;
  private ignored = 0;

  constructor(private readonly o: HomeAssistantDoorOptions) {
    this.discovery = new DiscoveryPublisher({
      status: o.topics.status,
      state: (d) => o.topics.deviceState(d),
      availability: (d) => o.topics.deviceAvailability(d),
      set: (d) => o.topics.deviceSet(d),
    });
  }

  get enabled(): boolean {
    return this.discovery.enabled;
  }

  /** The configs of `config` under its `sync.homeAssistant` (none when off: what was published is cleared at the next publish). */
  want(config: Config): void {
    this.discovery.want(config, homeAssistantOf(config.sync?.homeAssistant));
  }

  subscribe(client: MqttClient): void {
    if (!this.discovery.enabled) return;
    const filters = { [this.o.topics.deviceSets]: { qos: 0 as const }, [this.discovery.birthTopic]: { qos: 0 as const } };
    client.subscribe(filters, (err) => {
      if (!err) return;
      const level = /closed|disconnecting/i.test(err.message) ? 'debug' : 'warn';
      this.o.log[level]({ err, filters: Object.keys(filters) }, 'subscribing to Home Assistant upstream failed');
    });
  }

  /** Whether a message of `topic` is this door's (a set topic, Home Assistant's status). */
  owns(topic: string): boolean {
    return deviceSetLevel(this.o.gateway, topic) !== null || (this.discovery.enabled && topic === this.discovery.birthTopic);
  }

  /** A message this door owns; never throws. */
  handle(client: MqttClient, topic: string, payload: Buffer): void {
    if (this.discovery.isBirth(topic, payload.toString('utf8'))) {
      const now = this.o.clock.monotonic();
      if (now - this.lastBirth >= BIRTH_GAP_MS) {
        this.lastBirth = now;
        this.publish(client, 'birth');
      }
      return;
    }
    const id = deviceSetLevel(this.o.gateway, topic);
    if (id === null) return;
    if (!this.discovery.enabled || !identifier.safeParse(id).success) {
      // a subscription the persistent session kept from a run with Home Assistant on, or a topic level no device can have
      if (this.ignored++ % 100 === 0) this.o.log.warn({ topic, ignored: this.ignored }, 'command on a set topic upstream ignored (sync.homeAssistant is off, or not a device id)');
      return;
    }
    void this.o.commands
      .handle(client, topic, payload, { target: { kind: 'device', id }, principal: HOME_ASSISTANT_PRINCIPAL })
      .catch((err: unknown) => this.o.log.error({ err, topic }, 'handling a command from Home Assistant failed'));
  }

  /** A new connection: the configs that changed since they were last published (all, the first time). */
  connected(client: MqttClient): void {
    this.publish(client, 'connect');
  }

  /** A configuration change ran: what changed, when connected. */
  changed(client: MqttClient | undefined): void {
    if (client) this.publish(client, 'update');
  }

  private publish(client: MqttClient, why: 'connect' | 'update' | 'birth'): void {
    const send = (topic: string, payload: string): void => {
      client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        if (!err) return;
        // sent again at the next connection (a new client: mqtt.js does not carry this one's in-flight messages over)
        this.discovery.forget(topic);
        this.o.log.debug({ err, topic }, 'publishing a Home Assistant config failed');
      });
    };
    try {
      const n = why === 'birth' ? this.discovery.republish(send) : this.discovery.update(send);
      if (n.published + n.cleared > 0) this.o.log.info({ why, ...n }, 'home assistant discovery published upstream');
    } catch (err) {
      this.o.log.error({ err }, 'publishing Home Assistant discovery upstream failed');
    }
  }
}
