/**
 * Normal store-and-forward against a real mosquitto: a backlog of readings and events drains in
 * seq order, the latest state goes first, live readings follow, the cursor matches the broker's
 * acks, compression round-trips, and commands from central without a handler are rejected,
 * recorded and answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncComponent, type CommandHandler, type SyncComponent } from '../../cloud-sync/index.js';
import { decodePayload } from '../../cloud-sync/payload.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { GW, captureLog, observe, outputSeqs, reading, receiverSubscribed, startReceiver, storeSeqs, writeBacklog } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

let broker: Mosquitto;
let dir: TempDir;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempDir('streetbox-sync-drain-');
});
afterAll(async () => {
  await broker?.close();
  dir?.remove();
});

async function withSync<T>(t: TestContext, fn: (sync: SyncComponent) => Promise<T>, handler?: CommandHandler): Promise<T> {
  const sync = createSyncComponent(t.ctx, handler ? { onCommand: handler } : {});
  try {
    await sync.start();
    return await fn(sync);
  } finally {
    await sync.stop();
  }
}

describe('upstream drain', () => {
  it('drains a 20k backlog of readings and events: every seq once, in order, latest state first, then live readings', async () => {
    const cap = captureLog();
    // linger 0: live readings are expected upstream right after their commit, and the backlog's tail with it
    const t = makeContext({ gateway: { id: GW }, sync: { url: broker.url, batchSize: 500, linger: 0 } }, { log: cap.log });
    const out = dir.file('normal.jsonl');
    const receiver = startReceiver({ broker: broker.url, out });
    const observer = await observe(broker.url, `streetbox/${GW}/#`);
    try {
      await receiverSubscribed(broker, receiver);
      const lastSeq = writeBacklog(t.store, 20_000, { eventEvery: 97 });
      const total = storeSeqs(t.store).length;
      expect(total).toBeGreaterThan(20_100);
      await withSync(t, async (sync) => {
        await receiver.waitItems(total, 30_000);
        await waitFor('cursor at the last seq', () => sync.status().ackedSeq === lastSeq, 5000);
        // live readings keep flowing, woken by the bus
        for (let i = 0; i < 300; i++) t.writer.push(reading(i, Date.now()));
        await receiver.waitItems(total + 300, 10_000);
        const st = sync.status();
        expect(st.connected).toBe(true);
        expect(st.lagSeq).toBe(0);
        expect(st.lastError).toBeNull();
        expect(t.store.consumer('upstream')?.ackedSeq).toBe(t.store.stats().lastSeq);
      });
      const report = await receiver.stop();
      expect(report.gaps).toEqual([]);
      expect(report.absent).toBe(0);
      const seqs = outputSeqs(out);
      expect(seqs).toEqual(storeSeqs(t.store));
      // the retained state of each device was published before the first backlog batch
      const topics = observer.messages.map((m) => m.topic);
      const firstBatch = topics.findIndex((x) => x.includes('/up/'));
      const states = topics.map((x, i) => [x, i] as const).filter(([x]) => x.endsWith('/state'));
      expect(states.length).toBe(10);
      expect(Math.max(...states.map(([, i]) => i))).toBeLessThan(firstBatch);
      const state = JSON.parse(observer.messages[states[0]![1]]!.payload.toString()) as { ts: number; values: Record<string, unknown> };
      expect(Object.keys(state.values).sort()).toEqual(['level', 'on', 'power']);
      expect(topics).toContain(`streetbox/${GW}/status`);
      // one batch per kind, tiling the seq line
      const batches = observer.messages.filter((m) => m.topic.includes('/up/')).map((m) => decodePayload(m.payload));
      for (let i = 1; i < batches.length; i++) expect(batches[i]!.fromSeq).toBe(batches[i - 1]!.toSeq + 1);
      expect(batches.every((b) => b.items.length <= 500)).toBe(true);
      expect(cap.count('upstream connected')).toBe(1);
    } finally {
      await receiver.stop();
      await observer.close();
      await t.close();
    }
  });

  it('compresses batches (deflate, marked in the payload) and keeps them under batchBytes', async () => {
    const t = makeContext({ gateway: { id: 'gw-zip' }, sync: { url: broker.url, compress: true, batchBytes: 32 * 1024, batchSize: 10_000, linger: 0 } });
    const out = dir.file('zip.jsonl');
    const receiver = startReceiver({ broker: broker.url, out, gateways: ['gw-zip'] });
    const observer = await observe(broker.url, 'streetbox/gw-zip/up/#');
    try {
      await receiverSubscribed(broker, receiver);
      writeBacklog(t.store, 5000, { eventEvery: 0 });
      await withSync(t, async () => {
        await receiver.waitItems(5000, 20_000);
      });
      await receiver.stop();
      expect(outputSeqs(out)).toEqual(storeSeqs(t.store));
      const raw = observer.messages.map((m) => JSON.parse(m.payload.toString()) as { encoding?: string; data?: string; items?: unknown });
      expect(raw.every((p) => p.encoding === 'deflate' && typeof p.data === 'string' && p.items === undefined)).toBe(true);
      const wire = observer.messages.reduce((n, m) => n + m.payload.length, 0);
      expect(wire / 5000).toBeLessThan(40);
      // 32 KiB of JSON per batch at most: ~300 readings, so several batches
      expect(observer.messages.length).toBeGreaterThan(10);
    } finally {
      await receiver.stop();
      await observer.close();
      await t.close();
    }
  });

  it('rejects commands from central when built without a handler: event recorded, outcome published', async () => {
    const t = makeContext({ gateway: { id: 'gw-cmd' }, sync: { url: broker.url } });
    const observer = await observe(broker.url, 'streetbox/gw-cmd/commands/#');
    // the sync does not report its subscription; the broker's log does
    const subscribed = (): number => broker.subscriptions({ filter: 'streetbox/gw-cmd/down/commands' });
    try {
      let before = subscribed();
      await withSync(t, async (sync) => {
        await waitFor('connected', () => sync.status().connected, 5000);
        await waitFor('the sync subscribed to commands', () => subscribed() > before, 5000);
        await observer.client.publishAsync('streetbox/gw-cmd/down/commands', JSON.stringify({ id: 'c-1', action: 'dim', target: { kind: 'group', id: 'main' }, level: 40 }), { qos: 1 });
        await observer.client.publishAsync('streetbox/gw-cmd/down/commands', 'not json', { qos: 1 });
        await waitFor('two outcomes', () => observer.messages.length >= 2, 5000);
        const c1 = observer.messages.find((m) => m.topic === 'streetbox/gw-cmd/commands/c-1');
        expect(JSON.parse(c1!.payload.toString())).toMatchObject({ id: 'c-1', status: 'rejected', code: 'E_FORBIDDEN' });
        const bad = observer.messages.find((m) => m.topic !== 'streetbox/gw-cmd/commands/c-1');
        expect(JSON.parse(bad!.payload.toString())).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND' });
        const events = t.store.events({ after: 0, limit: 10, kind: 'command.rejected' }).items;
        expect(events).toHaveLength(2);
        expect(events[0]!.detail).toMatchObject({ transaction: 'c-1', code: 'E_FORBIDDEN', source: { role: 'central' } });
        // the rejections go upstream like every event
        await waitFor('events synced', () => sync.status().ackedSeq >= events[1]!.seq, 5000);
      });

      // a sync built with a handler (SyncOptions.onCommand, wired at construction) answers instead
      before = subscribed();
      await withSync(
        t,
        async (sync) => {
          await waitFor('connected', () => sync.status().connected, 5000);
          await waitFor('the sync subscribed to commands', () => subscribed() > before, 5000);
          await observer.client.publishAsync('streetbox/gw-cmd/down/commands', JSON.stringify({ id: 'c-2', action: 'switch' }), { qos: 1 });
          await waitFor('outcome of c-2', () => observer.messages.some((m) => m.topic === 'streetbox/gw-cmd/commands/c-2'), 5000);
          const c2 = observer.messages.find((m) => m.topic === 'streetbox/gw-cmd/commands/c-2');
          expect(JSON.parse(c2!.payload.toString())).toEqual({ id: 'c-2', status: 'queued', result: { action: 'switch' } });
        },
        async (cmd) => ({ id: cmd.id, status: 'queued', result: { action: cmd.message.action } }),
      );
    } finally {
      await observer.close();
      await t.close();
    }
  });

  it('publishes `online` retained on connect and `offline` retained on stop', async () => {
    const t = makeContext({ gateway: { id: 'gw-status' }, sync: { url: broker.url } });
    try {
      await withSync(t, async (sync) => {
        await waitFor('connected', () => sync.status().connected, 5000);
        const o = await observe(broker.url, 'streetbox/gw-status/status');
        await waitFor('retained status', () => o.messages.length > 0, 5000);
        expect(o.messages[0]).toMatchObject({ retain: true });
        expect(o.messages[0]!.payload.toString()).toBe('online');
        await o.close();
      });
      const o = await observe(broker.url, 'streetbox/gw-status/status');
      await waitFor('retained status', () => o.messages.length > 0, 5000);
      expect(o.messages[0]!.payload.toString()).toBe('offline');
      await o.close();
    } finally {
      await t.close();
    }
  });
});
