/**
 * Keeping a broker's Home Assistant discovery in step with the configuration: the configs of
 * homeAssistant.ts published as they change, cleared as entities go away. The embedded broker
 * (broker.ts) and the upstream sync (cloud-sync/homeAssistant.ts) each keep one.
 */
import type { Config, HomeAssistantSettings } from '../config/schema.js';
import { discoveryConfigs, type DiscoveryTopics } from './homeAssistant.js';

export type RetainedPublish = (topic: string, payload: string) => void;

/**
 * Keeps what a broker holds in step with the configuration: `update()` publishes the configs that
 * are new or changed and an empty retained payload for each entity that went away (Home Assistant
 * then removes it); `republish()` sends every config again (Home Assistant's birth message, a new
 * connection upstream). What it published is remembered across connections and settings, so a
 * gateway that comes back with fewer devices, another prefix or discovery turned off clears the rest.
 */
export class DiscoveryPublisher {
  private published = new Map<string, string>();
  private wanted = new Map<string, string>();
  private settings: HomeAssistantSettings = { enabled: false, prefix: 'homeassistant' };

  constructor(private readonly topics: DiscoveryTopics) {}

  /** The configs of `config` under `settings` (none when discovery is off): what update() and republish() publish. */
  want(config: Config, settings: HomeAssistantSettings): void {
    this.settings = settings;
    this.wanted = settings.enabled ? discoveryConfigs(config, { prefix: settings.prefix, topics: this.topics }) : new Map();
  }

  /** `<prefix>/status` `online`: Home Assistant (re)started and asks for every config again. */
  isBirth(topic: string, payload: string): boolean {
    return this.settings.enabled && topic === this.birthTopic && payload.trim() === 'online';
  }

  /** Home Assistant's birth and will topic, `<prefix>/status` */
  get birthTopic(): string {
    return `${this.settings.prefix}/status`;
  }

  /** the discovery prefix */
  get prefix(): string {
    return this.settings.prefix;
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** how many configs are wanted now */
  get size(): number {
    return this.wanted.size;
  }

  /** Publishes what changed since the last update or republish; says how many configs it published and cleared. */
  update(publish: RetainedPublish): { published: number; cleared: number } {
    let published = 0;
    let cleared = 0;
    for (const [topic, payload] of this.wanted) {
      if (this.published.get(topic) === payload) continue;
      publish(topic, payload);
      published++;
    }
    for (const topic of this.published.keys()) {
      if (this.wanted.has(topic)) continue;
      publish(topic, '');
      cleared++;
    }
    this.published = new Map(this.wanted);
    return { published, cleared };
  }

  /** A publish of `topic` that did not reach the broker (the connection closed): the next update() sends it again. */
  forget(topic: string): void {
    if (this.wanted.has(topic)) this.published.delete(topic);
    else this.published.set(topic, '');
  }

  /** Publishes every wanted config again (and clears what went away). */
  republish(publish: RetainedPublish): { published: number; cleared: number } {
    this.published = new Map([...this.published.keys()].filter((t) => !this.wanted.has(t)).map((t) => [t, '']));
    return this.update(publish);
  }
}
