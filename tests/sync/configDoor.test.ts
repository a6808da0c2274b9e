/**
 * Central's configuration door against a real mosquitto: a message on `down/config` reaches the
 * configuration service as sent, and the stage reports in its outbox go upstream retained on
 * `up/config/<id>`, oldest first, each marked delivered at its PUBACK; what could not go while
 * the link was down (or the sync was restarted) goes at the next connect.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncComponent, type SyncComponent } from '../../cloud-sync/index.js';
import { REPORT_PAGE } from '../../cloud-sync/configDoor.js';
import type { ConfigService, ConfigStageReport, ConfigSubmitted, OutboxPort } from '../../edge/reconfig/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { GW, observe, type Observer } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

const DOWN = `streetbox/${GW}/down/config`;
const UP = `streetbox/${GW}/up/config`;

/**
 * Stands in for the configuration manager (edge/reconfig/manager.ts), whose real road (validate,
 * record, apply, confirm, its outbox in the store) the integration tests cover: it records what
 * the door hands over, keeps an outbox in memory and answers with canned reports.
 */
class FakeConfigService implements OutboxPort {
  readonly payloads: Buffer[] = [];
  /** seqs in the order delivered() was called */
  readonly deliveredSeqs: number[] = [];
  /** the next submitCentral throws (a broken service must not break the sync) */
  throwNext = false;
  private readonly items: { seq: number; topicId: string; report: ConfigStageReport; delivered: boolean }[] = [];
  private seq = 0;

  readonly service = {
    submitCentral: (payload: Buffer): ConfigSubmitted => {
      this.payloads.push(payload);
      if (this.throwNext) {
        this.throwNext = false;
        throw new Error('service broken');
      }
      const id = `c-${this.payloads.length}`;
      const first = report(id, 1, 'staged');
      // never settles: the door must not wait for it (a change may take minutes)
      const never = new Promise<ConfigStageReport>(() => undefined);
      return { id, first, settled: never, outcome: never };
    },
    outbox: (): OutboxPort => this,
  } as Partial<ConfigService> as ConfigService;

  queue(topicId: string, stage: ConfigStageReport['stage']): number {
    const seq = ++this.seq;
    this.items.push({ seq, topicId, report: report(topicId, seq, stage), delivered: false });
    return seq;
  }

  pending(limit: number): { seq: number; topicId: string; report: ConfigStageReport }[] {
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

function report(id: string, version: number, stage: ConfigStageReport['stage']): ConfigStageReport {
  return { id, version, stage, at: Date.now(), source: 'central', principal: 'upstream', runningVersion: version };
}

let broker: Mosquitto;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

interface Rig {
  t: TestContext;
  fake: FakeConfigService;
  sync: SyncComponent;
  close(): Promise<void>;
}

function rig(): Rig {
  const t = makeContext({ gateway: { id: GW }, sync: { url: broker.url, reconnectMin: 50, reconnectMax: 300, linger: 0 } });
  const fake = new FakeConfigService();
  const sync = createSyncComponent(t.ctx, { config: fake.service });
  return {
    t,
    fake,
    sync,
    async close() {
      await sync.stop();
      await t.close();
    },
  };
}

async function centralPublish(payload: string, opts: { retain?: boolean } = {}): Promise<void> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  try {
    await c.publishAsync(DOWN, payload, { qos: 1, retain: opts.retain ?? false });
  } finally {
    await c.endAsync();
  }
}

/** What a subscriber arriving now gets: the retained report of every change, by topic. */
async function retained(ids: string[]): Promise<Map<string, { report: ConfigStageReport; retain: boolean }>> {
  const o = await observe(broker.url, `${UP}/#`);
  try {
    await waitFor(`retained reports of ${ids.join(', ')}`, () => ids.every((id) => o.messages.some((m) => m.topic === `${UP}/${id}`)), 5000);
    return new Map(o.messages.map((m) => [m.topic.slice(UP.length + 1), { report: JSON.parse(m.payload.toString()) as ConfigStageReport, retain: m.retain }]));
  } finally {
    await o.close();
  }
}

describe('configuration from central (down/config)', () => {
  it('hands every message to the service as sent, without waiting for its outcome; a failing service breaks nothing', async () => {
    const r = rig();
    try {
      const before = broker.subscriptions({ filter: DOWN });
      await r.sync.start();
      await waitFor('the sync subscribed to down/config', () => broker.subscriptions({ filter: DOWN }) > before, 10_000);
      const first = JSON.stringify({ id: 'cfg-1', baseVersion: 3, content: 'gateway: { id: gw-test }\n', force: false });
      await centralPublish(first);
      await waitFor('the first message at the service', () => r.fake.payloads.length === 1);
      expect(r.fake.payloads[0]!.toString()).toBe(first);
      // its outcome never settles, and a second message still gets through; so does one that is not JSON
      r.fake.throwNext = true;
      await centralPublish('{ not json');
      await centralPublish(JSON.stringify({ id: 'cfg-2', baseVersion: null, content: 'x: 1\n' }));
      await waitFor('three messages at the service', () => r.fake.payloads.length === 3);
      expect(r.fake.payloads.map((p) => p.toString())).toEqual([first, '{ not json', JSON.stringify({ id: 'cfg-2', baseVersion: null, content: 'x: 1\n' })]);
      expect(r.sync.status().connected).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('a change published while the gateway was away arrives when it comes back (persistent session)', async () => {
    const r = rig();
    try {
      const before = broker.subscriptions({ filter: DOWN });
      await r.sync.start();
      await waitFor('subscribed', () => broker.subscriptions({ filter: DOWN }) > before, 10_000);
      await r.sync.stop();
      const msg = JSON.stringify({ id: 'cfg-away', baseVersion: 1, content: 'a: 1\n' });
      await centralPublish(msg);
      await r.sync.start();
      await waitFor('the message queued while away', () => r.fake.payloads.some((p) => p.toString() === msg), 10_000);
    } finally {
      await r.close();
    }
  });
});

describe('stage reports (up/config/<id>)', () => {
  it('publishes the outbox retained, oldest first, more than a page of it, each marked delivered at its PUBACK', async () => {
    const r = rig();
    const live: Observer = await observe(broker.url, `${UP}/#`);
    try {
      // queued before the connect: they go at it
      const ids = ['rep-a', 'rep-b', 'rep-c'];
      const stages: ConfigStageReport['stage'][] = ['staged', 'applied', 'confirmed'];
      const n = REPORT_PAGE + 10;
      for (let i = 0; i < n; i++) r.fake.queue(ids[i % 3]!, stages[Math.min(2, Math.floor((i * 3) / n))]!);
      await r.sync.start();
      await waitFor('every report delivered', () => r.fake.undelivered() === 0, 10_000);
      expect(r.fake.deliveredSeqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      await waitFor('every report at the live subscriber', () => live.messages.length >= n, 5000);
      const seqs = live.messages.map((m) => (JSON.parse(m.payload.toString()) as ConfigStageReport).version);
      expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      // a subscriber arriving later gets the latest stage of each change, retained
      const kept = await retained(ids);
      for (const id of ids) {
        expect(kept.get(id)?.retain).toBe(true);
        expect(kept.get(id)?.report).toMatchObject({ id, stage: 'confirmed' });
      }
      // a report added while connected goes when the bus says so
      const seq = r.fake.queue('rep-d', 'rejected');
      r.t.ctx.bus.emit('configReport', report('rep-d', seq, 'rejected'));
      await waitFor('the new report delivered', () => r.fake.deliveredSeqs.includes(seq), 5000);
      expect((await retained(['rep-d'])).get('rep-d')?.report).toMatchObject({ id: 'rep-d', stage: 'rejected', version: seq });
    } finally {
      await live.close();
      await r.close();
    }
  });

  it('a report added while the link is down goes after the reconnect; one added while the sync is stopped goes after its start', async () => {
    const r = rig();
    try {
      await r.sync.start();
      await waitFor('connected', () => r.sync.status().connected, 10_000);
      await broker.stop();
      await waitFor('the link down', () => !r.sync.status().connected, 10_000);
      const seq = r.fake.queue('rep-down', 'applied');
      r.t.ctx.bus.emit('configReport', report('rep-down', seq, 'applied'));
      // nothing can take it now
      await new Promise((resolve) => setImmediate(resolve));
      expect(r.fake.deliveredSeqs).not.toContain(seq);
      await broker.start();
      await waitFor('the report delivered after the reconnect', () => r.fake.deliveredSeqs.includes(seq), 10_000);
      expect((await retained(['rep-down'])).get('rep-down')).toMatchObject({ retain: true, report: { id: 'rep-down', stage: 'applied' } });

      // a configuration change restarting the sync: the report it adds meanwhile goes at the next connect
      await r.sync.stop();
      const seq2 = r.fake.queue('rep-down', 'confirmed');
      r.t.ctx.bus.emit('configReport', report('rep-down', seq2, 'confirmed'));
      expect(r.fake.deliveredSeqs).not.toContain(seq2);
      await r.sync.start();
      await waitFor('the report delivered after the restart', () => r.fake.deliveredSeqs.includes(seq2), 10_000);
      expect((await retained(['rep-down'])).get('rep-down')?.report).toMatchObject({ stage: 'confirmed' });
    } finally {
      await r.close();
    }
  });
});
