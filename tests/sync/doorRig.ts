/**
 * Shared pieces of the door tests (configDoor, deploymentDoor): a service's report outbox kept in
 * memory, a sync component on the test broker with the services under test, central's publisher
 * and a late subscriber that reads back the retained reports.
 */
import mqtt from 'mqtt';
import { createSyncComponent, type SyncComponent, type SyncOptions } from '../../cloud-sync/index.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { GW, observe } from './helpers.js';
import type { Mosquitto } from './mosquitto.js';

/**
 * An outbox of reports in memory, the port both doors drain (edge/reconfig OutboxPort,
 * edge/firmware DeploymentOutbox): pending oldest first, marked delivered by seq.
 */
export class MemoryOutbox<R> {
  /** seqs in the order delivered() was called */
  readonly deliveredSeqs: number[] = [];
  private readonly items: { seq: number; topicId: string; report: R; delivered: boolean }[] = [];
  private seq = 0;

  /** Adds the report `make` builds for the next seq under `topicId`; returns that seq. */
  protected add(topicId: string, make: (seq: number) => R): number {
    const seq = ++this.seq;
    this.items.push({ seq, topicId, report: make(seq), delivered: false });
    return seq;
  }

  pending(limit: number): { seq: number; topicId: string; report: R }[] {
    return this.items.filter((i) => !i.delivered).slice(0, limit).map(({ seq, topicId, report }) => ({ seq, topicId, report }));
  }

  delivered(seq: number): void {
    const item = this.items.find((i) => i.seq === seq);
    if (item) item.delivered = true;
    this.deliveredSeqs.push(seq);
  }

  undelivered(): number {
    return this.items.filter((i) => !i.delivered).length;
  }
}

export interface DoorSync {
  t: TestContext;
  sync: SyncComponent;
  /** stops the sync and removes its context */
  close(): Promise<void>;
}

/** A sync component (not started) of `gateway` on `broker` with `services`: quick reconnects, no linger. */
export function doorSync(broker: Mosquitto, services: SyncOptions, gateway = GW): DoorSync {
  const t = makeContext({ gateway: { id: gateway }, sync: { url: broker.url, reconnectMin: 50, reconnectMax: 300, linger: 0 } });
  const sync = createSyncComponent(t.ctx, services);
  return {
    t,
    sync,
    async close() {
      await sync.stop();
      await t.close();
    },
  };
}

/** Starts the sync and waits until the broker holds one more subscription to `filter` than before. */
export async function startSubscribed(broker: Mosquitto, sync: SyncComponent, filter: string, what = filter): Promise<void> {
  const before = broker.subscriptions({ filter });
  await sync.start();
  await waitFor(what, () => broker.subscriptions({ filter }) > before, 10_000);
}

/** Publishes `messages` as central does (QoS 1, not retained), in order, on one connection. */
export async function publishAsCentral(broker: Mosquitto, messages: { topic: string; payload: string | Buffer }[]): Promise<void> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  try {
    for (const m of messages) await c.publishAsync(m.topic, m.payload, { qos: 1 });
  } finally {
    await c.endAsync();
  }
}

/** What a subscriber arriving now gets on `<up>/<id>` for each of `ids`: the report (JSON) and its retain flag, by id. */
export async function retainedReports<R>(broker: Mosquitto, up: string, ids: string[]): Promise<Map<string, { report: R; retain: boolean }>> {
  const o = await observe(broker.url, `${up}/#`);
  try {
    await waitFor(`retained reports of ${ids.join(', ')}`, () => ids.every((id) => o.messages.some((m) => m.topic === `${up}/${id}`)), 5000);
    return new Map(o.messages.map((m) => [m.topic.slice(up.length + 1), { report: JSON.parse(m.payload.toString()) as R, retain: m.retain }]));
  } finally {
    await o.close();
  }
}
