/**
 * `sync.linger` and `sync.compress` against a real mosquitto, the sync's time on a hand-moved
 * clock (FakeClock: its linger timer, its monotonic time; the writer commits on its own): a
 * trickle of readings waits until its oldest reading has waited linger and then goes as one
 * batch; an event goes at once and takes the readings before it; a backlog goes in full batches
 * without waiting, and after an outage its tail too; batches are deflated by default and decode
 * to the stored items. Then the linger rule alone (cloud-sync/linger.ts), without a broker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltBatch } from '../../cloud-sync/batcher.js';
import { createSyncComponent, type SyncComponent } from '../../cloud-sync/index.js';
import { Linger } from '../../cloud-sync/linger.js';
import { decodePayload, type Batch } from '../../cloud-sync/payload.js';
import { configSchema } from '../../edge/config/schema.js';
import type { Reading, StoredEvent } from '../../edge/store/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { FakeClock } from '../support/fakeClock.js';
import { observe, reading, writeBacklog, type Observer } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

const LINGER = 2000;

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

interface Rig {
  t: TestContext;
  clock: FakeClock;
  sync: SyncComponent;
  observer: Observer;
  /** the batches the broker delivered, in seq order */
  batches(): (Batch & { topic: string })[];
  /** pushes `n` readings through the writer and commits them now */
  commit(n: number): void;
  close(): Promise<void>;
}

/** A connected sync on the fake clock, an observer of its batches; `before` runs before the sync starts. */
async function rig(gateway: string, sync: Record<string, unknown>, opts: { url?: string; before?: (t: TestContext) => void } = {}): Promise<Rig> {
  const url = opts.url ?? broker.url;
  const t = makeContext({ gateway: { id: gateway }, sync: { url, reconnectMin: 100, reconnectMax: 200, ...sync } });
  const clock = new FakeClock();
  const observer = await observe(url, `streetbox/${gateway}/up/#`);
  opts.before?.(t);
  const s = createSyncComponent({ ...t.ctx, clock });
  let n = 0;
  const r: Rig = {
    t,
    clock,
    sync: s,
    observer,
    batches: () =>
      observer.messages
        .filter((m) => m.topic.includes('/up/'))
        .map((m) => ({ ...decodePayload(m.payload), topic: m.topic }))
        .sort((a, b) => a.fromSeq - b.fromSeq),
    commit(count) {
      for (let i = 0; i < count; i++, n++) t.writer.push(reading(n, Date.now()));
      t.writer.flush();
    },
    async close() {
      await s.stop();
      await observer.close();
      await t.close();
    },
  };
  try {
    await s.start();
    await waitFor('the sync connected', () => s.status().connected, 5000);
  } catch (err) {
    await r.close();
    throw err;
  }
  return r;
}

const seqs = (b: Batch): number[] => b.items.map((i) => i.seq);
const storedReadings = (t: TestContext): Reading[] => t.store.readings({ after: 0, limit: 10_000 }).items;

describe('sync.linger against mosquitto', () => {
  it('a trickle of readings waits until its oldest has waited linger, then goes as one batch', async () => {
    const r = await rig('gw-linger-trickle', { linger: LINGER });
    try {
      r.commit(1); // monotonic 0: the oldest
      for (let i = 0; i < 3; i++) {
        await r.clock.advance(500);
        r.commit(2);
      }
      await r.clock.advance(LINGER - 1500 - 1); // the oldest has waited linger − 1 ms
      expect(r.sync.status()).toMatchObject({ sentBatches: 0, lagSeq: 7 });
      expect(r.batches()).toEqual([]);

      await r.clock.advance(1);
      expect(r.sync.status().sentBatches).toBe(1);
      await waitFor('the batch at the broker', () => r.batches().length === 1);
      expect(seqs(r.batches()[0]!)).toEqual(storedReadings(r.t).map((x) => x.seq));
      expect(r.batches()[0]!.items).toHaveLength(7);
      await waitFor('acknowledged', () => r.sync.status().lagSeq === 0);

      // the next reading waits linger from its own commit, not from the last batch
      await r.clock.advance(300);
      r.commit(1);
      await r.clock.advance(LINGER - 1);
      expect(r.sync.status().sentBatches).toBe(1);
      await r.clock.advance(1);
      expect(r.sync.status().sentBatches).toBe(2);
      await waitFor('the second batch at the broker', () => r.batches().length === 2);
      expect(r.batches()[1]).toMatchObject({ fromSeq: 8, toSeq: 8 });
    } finally {
      await r.close();
    }
  });

  it('while a batch lingers, a commit of readings does not read and serialize it again', async () => {
    let reads = 0;
    const r = await rig('gw-linger-reads', { linger: LINGER }, {
      before: (t) => {
        const read = t.store.readings.bind(t.store);
        t.store.readings = (q) => {
          reads++;
          return read(q);
        };
      },
    });
    try {
      const before = reads;
      r.commit(1);
      await waitFor('the batch built and found waiting', () => reads > before);
      const first = reads;
      for (let i = 0; i < 10; i++) {
        await r.clock.advance(100);
        r.commit(3);
      }
      // woken 10 times within the linger: the waiting batch was not built again
      expect(reads).toBe(first);
      await r.clock.advance(LINGER);
      expect(r.sync.status().sentBatches).toBe(1);
      await waitFor('the batch at the broker', () => r.batches().length === 1);
      expect(r.batches()[0]!.items).toHaveLength(31);
    } finally {
      await r.close();
    }
  });

  it('an event goes at once and takes the readings before it', async () => {
    const r = await rig('gw-linger-event', { linger: LINGER });
    try {
      r.commit(3);
      await r.clock.advance(500);
      expect(r.sync.status().sentBatches).toBe(0);
      const e = r.t.store.appendEvent({ kind: 'alarm.raised', severity: 'warning', device: 'lamp-1', detail: { alarm: 'ch1_lamp_failure', point: 'ch1_status', value: 1, bit: 0 } });
      // no clock moved: the event closed the readings batch, and events never wait
      await waitFor('both batches at the broker', () => r.batches().length === 2);
      const [readings, events] = r.batches() as [Batch & { topic: string }, Batch & { topic: string }];
      expect(readings).toMatchObject({ topic: 'streetbox/gw-linger-event/up/readings', fromSeq: 1, toSeq: 3 });
      expect(seqs(readings)).toEqual([1, 2, 3]);
      expect(events).toMatchObject({ topic: 'streetbox/gw-linger-event/up/events', fromSeq: 4, toSeq: 4 });
      expect((events.items[0] as StoredEvent).kind).toBe('alarm.raised');
      expect(e.seq).toBe(4);
      expect(r.clock.monotonic()).toBe(500);
    } finally {
      await r.close();
    }
  });

  it('a backlog goes in full batches without waiting; its open tail waits linger from the start', async () => {
    const r = await rig('gw-linger-backlog', { linger: LINGER, batchSize: 500 }, { before: (t) => writeBacklog(t.store, 5100, { eventEvery: 0 }) });
    try {
      await waitFor('ten full batches at the broker', () => r.batches().length === 10, 10_000);
      expect(r.batches().every((b) => b.items.length === 500)).toBe(true);
      expect(r.clock.monotonic()).toBe(0);
      await r.clock.advance(LINGER - 1);
      expect(r.sync.status().sentBatches).toBe(10);
      await r.clock.advance(1);
      await waitFor('the tail at the broker', () => r.batches().length === 11);
      expect(r.batches()[10]).toMatchObject({ fromSeq: 5001, toSeq: 5100 });
      expect(r.batches()[10]!.items).toHaveLength(100);
    } finally {
      await r.close();
    }
  });

  it('after an outage longer than linger, what was pending goes as soon as the link is back', async () => {
    const own = await startMosquitto();
    const r = await rig('gw-linger-outage', { linger: LINGER }, { url: own.url });
    try {
      await own.stop();
      await waitFor('the link down', () => !r.sync.status().connected, 5000);
      r.commit(40);
      await r.clock.advance(LINGER + 500); // the retries fail meanwhile, on the same clock
      await own.start();
      // the backoff runs on the same clock: move it only until the link is up, then not at all
      await waitFor('the link back', async () => r.sync.status().connected || void (await r.clock.advance(50)), 10_000);
      const at = r.clock.monotonic();
      await waitFor('the pending readings acknowledged', () => r.sync.status().ackedSeq === 40, 5000);
      expect(r.clock.monotonic()).toBe(at);
    } finally {
      await r.close();
      await own.close();
    }
  });
});

describe('sync.compress by default', () => {
  it('publishes the deflate form, which decodes to the stored items', async () => {
    expect(configSchema.parse({ gateway: { id: 'g' }, sync: { url: 'mqtt://h' } }).sync).toMatchObject({ compress: true, linger: 30_000 });
    const r = await rig('gw-linger-zip', { linger: 0 });
    try {
      r.commit(50);
      await waitFor('a batch at the broker', () => r.batches().length >= 1);
      const raw = r.observer.messages.map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
      expect(raw.every((p) => p.encoding === 'deflate' && typeof p.data === 'string' && p.items === undefined)).toBe(true);
      expect(r.batches().flatMap((b) => b.items)).toEqual(storedReadings(r.t));
    } finally {
      await r.close();
    }
  });
});

describe('Linger', () => {
  const batch = (fromSeq: number, toSeq: number, over: Partial<BuiltBatch> = {}): BuiltBatch => ({ kind: 'readings', fromSeq, toSeq, itemsJson: [], bytes: 0, open: true, ...over });

  it('an open readings batch waits until its oldest item has waited linger since the sync saw it', () => {
    const l = new Linger(1000);
    l.seen(3, 100);
    l.seen(5, 700);
    expect(l.waitMs(batch(1, 5), 700)).toBe(400);
    expect(l.waitMs(batch(1, 5), 1100)).toBe(0);
    // the next batch starts after 3: its oldest item came with the commit seen at 700
    expect(l.waitMs(batch(4, 5), 1100)).toBe(600);
  });

  it('events, full batches and closed ones go at once; linger 0 never waits', () => {
    const l = new Linger(1000);
    l.seen(5, 0);
    expect(l.waitMs(batch(1, 5, { kind: 'events' }), 0)).toBe(0);
    expect(l.waitMs(batch(1, 5, { open: false }), 0)).toBe(0);
    const off = new Linger(0);
    off.seen(5, 0);
    expect(off.waitMs(batch(1, 5), 0)).toBe(0);
  });

  it('a batch resent before its ack keeps the time its items were first seen; after the ack the next waits anew', () => {
    const l = new Linger(1000);
    l.seen(10, 0);
    expect(l.waitMs(batch(1, 10), 1000)).toBe(0); // published, then the link drops
    l.seen(12, 1500);
    expect(l.waitMs(batch(1, 12), 1600)).toBe(0); // resent at once after the reconnect
    l.acked(12);
    l.seen(14, 3000);
    expect(l.waitMs(batch(13, 14), 3000)).toBe(1000);
  });

  it('through an outage of many commits the oldest pending stays due, and an unseen commit counts from now', () => {
    const l = new Linger(1000);
    for (let i = 1; i <= 10_000; i++) l.seen(i, i * 10);
    expect(l.waitMs(batch(1, 10_000), 100_000)).toBe(0);
    expect((l as unknown as { marks: unknown[] }).marks.length).toBeLessThanOrEqual(102);
    // rows written to the store without the bus telling
    const quiet = new Linger(1000);
    expect(quiet.waitMs(batch(1, 3), 50)).toBe(1000);
    expect(quiet.waitMs(batch(1, 3), 1050)).toBe(0);
  });
});
