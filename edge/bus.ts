import type { Logger } from './log.js';
import type { CommandRecord, Reading, StoredEvent } from './store/types.js';
import type { ConfigStageReport } from './reconfig/records.js';
import type { DeploymentReport } from './firmware/records.js';

/**
 * The gateway's in-process fan-out: data committed to the store, and the values polled around it.
 * Listeners are registered under an owner so a component removes all of its own with one call.
 * What they are given is shared with the other listeners (`polled` and `readings` share the
 * Reading of a stored value): read it, never change it.
 */
export interface EventBusMap {
  /** Readings just committed to the store, in seq order (what the report strategies kept: edge/report). */
  readings: [Reading[]];
  /**
   * Every value the devices reported since the last flush, stored or not, in the order polled: the
   * latest value of a point is the last one here. `seq` is the stored reading's seq, or 0 when the
   * point's report strategy did not store it (or its commit failed and waits for a retry; it comes
   * on `readings` when committed). For what shows live values: status page, broker state, flows.
   */
  polled: [Reading[]];
  /** An event just committed to the store. */
  event: [StoredEvent];
  /** A command row was created or changed status. */
  command: [CommandRecord];
  /** A supervised component changed state. */
  component: [ComponentStateChange];
  /**
   * A running component lost a part it restores by itself (a Modbus bus reopening with backoff),
   * or has it back: the supervisor shows the component degraded meanwhile, without restarting it.
   */
  health: [ComponentHealth];
  /** A configuration change reached a stage (edge/reconfig): the sync publishes it on `up/config/<id>` from the store's outbox. */
  configReport: [ConfigStageReport];
  /** A deployment's report was added to the firmware outbox (edge/firmware): the sync publishes it on `up/deployments/<id>`. */
  deploymentReport: [DeploymentReport];
}

export interface ComponentStateChange {
  name: string;
  state: ComponentState;
  error?: string;
}

export interface ComponentHealth {
  /** the component's name */
  name: string;
  /** what is lost or back, e.g. `bus rs485-1` */
  part: string;
  ok: boolean;
  /** why it is lost */
  error?: string;
}

export type ComponentState = 'stopped' | 'starting' | 'running' | 'degraded' | 'stopping';

type Listener<K extends keyof EventBusMap> = (...args: EventBusMap[K]) => void;

export class EventBus {
  private readonly listeners = new Map<keyof EventBusMap, Map<object | string, Listener<never>[]>>();
  private readonly log: Logger | undefined;
  /** Listener failures, counted for /metrics. */
  listenerErrors = 0;

  constructor(log?: Logger) {
    this.log = log;
  }

  on<K extends keyof EventBusMap>(owner: object | string, key: K, listener: Listener<K>): void {
    let byOwner = this.listeners.get(key);
    if (!byOwner) this.listeners.set(key, (byOwner = new Map()));
    const list = byOwner.get(owner) ?? [];
    list.push(listener as Listener<never>);
    byOwner.set(owner, list);
  }

  /** Removes every listener of `owner`. */
  off(owner: object | string): void {
    for (const byOwner of this.listeners.values()) byOwner.delete(owner);
  }

  emit<K extends keyof EventBusMap>(key: K, ...args: EventBusMap[K]): void {
    const byOwner = this.listeners.get(key);
    if (!byOwner) return;
    for (const list of byOwner.values()) {
      for (const listener of list) {
        try {
          (listener as Listener<K>)(...args);
        } catch (err) {
          // A broken listener must not stop the fan-out to the others, nor the writer behind it.
          this.listenerErrors++;
          this.log?.error({ err, key }, 'bus listener failed');
        }
      }
    }
  }
}
