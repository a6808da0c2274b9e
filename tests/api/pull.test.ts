/**
 * The pull API of the cloud-sync issue: a central system pages through readings with
 * after/next and acknowledges with POST /api/v1/consumers/:name/ack; the cursor only moves
 * forward; the store's quota evicts acknowledged readings first, and when it must drop what the
 * consumer has not acknowledged, storage.dropped counts it for that consumer and the pull shows
 * the gap. A real store (2 MiB quota) in a temp dir, real sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import { configSchema } from '../../edge/config/schema.js';
import { silentLogger } from '../../edge/log.js';
import { BatchWriter, openStore, type Store } from '../../edge/store/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { RecordingCommands } from './support/commands.js';
import { DEVICES, GW, KNOWN } from './support/context.js';
import { TOKENS } from './support/http.js';

const MAX = 2 * 1024 * 1024;
let dir: TempDir;
let store: Store;
let writer: BatchWriter;
let api: ApiComponent;

beforeAll(async () => {
  dir = tempDir('streetbox-pull-');
  const config = configSchema.parse({
    gateway: { id: GW },
    ...DEVICES,
    storage: { path: dir.file('streetbox.db'), maxBytes: MAX },
    api: { host: '127.0.0.1', port: 0, tokens: [{ name: 'city', token: TOKENS.central, role: 'central' }] },
  });
  const log = silentLogger();
  const bus = new EventBus(log);
  store = openStore({ path: config.storage.path, maxBytes: MAX, durability: 'normal', log, bus, clock: systemClock });
  writer = new BatchWriter({ store, bus, log, clock: systemClock, flushIntervalMs: 60_000, flushRows: 1000 });
  const ctx = { config, configDir: dir.path, store, ingest: writer, bus, log, clock: systemClock };
  api = createApi(ctx, { commands: new RecordingCommands(store, KNOWN), status: () => ({}) });
  await api.start();
});

afterAll(async () => {
  await api?.stop();
  await writer?.stop();
  store?.close();
  dir?.remove();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(`http://127.0.0.1:${api.port()}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKENS.central}`, 'Content-Type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, json: await r.json() };
}

let ts = 1_700_000_000_000;
/** Pushes n readings in commits of 1000; calls `each` with the last seq of each commit. */
async function fill(n: number, each?: (lastSeq: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    for (let j = 0; j < 1000; j++) writer.push({ ts: ts++, device: `lamp-${j % 50}`, point: `p${j % 20}`, value: j / 10, unit: 'V' });
    const res = writer.flush()!;
    await each?.(res.lastSeq);
  }
}

const ack = (name: string, seq: number): Promise<{ status: number; json: any }> => call('POST', `/api/v1/consumers/${name}/ack`, { seq }); // eslint-disable-line @typescript-eslint/no-explicit-any

describe('pull API', () => {
  it('pages every reading once, in seq order, and acks forward only', async () => {
    await fill(5000);
    const seen: number[] = [];
    let after = 0;
    for (let page = 0; page < 20; page++) {
      const r = await call('GET', `/api/v1/readings?after=${after}&limit=700`);
      expect(r.status).toBe(200);
      if (r.json.readings.length === 0) {
        expect(r.json.next).toBe(after);
        break;
      }
      seen.push(...r.json.readings.map((x: { seq: number }) => x.seq));
      after = r.json.next;
      const a = await ack('city-a', after);
      expect(a.json).toMatchObject({ name: 'city-a', ackedSeq: after, moved: true });
    }
    expect(seen).toHaveLength(5000);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(new Set(seen).size).toBe(5000);

    // an older seq leaves the cursor where it is
    const back = await ack('city-a', 10);
    expect(back.status).toBe(200);
    expect(back.json).toMatchObject({ ackedSeq: after, moved: false });
    const list = await call('GET', '/api/v1/consumers');
    expect(list.json.consumers).toEqual([expect.objectContaining({ name: 'city-a', ackedSeq: after, behind: 0 })]);
  });

  it('eviction takes acknowledged readings first; what it must drop unacknowledged is counted for the consumer', async () => {
    // phase 1: the consumer keeps up (acks over HTTP after each commit): the quota drops nothing it has not acknowledged
    await fill(100_000, async (lastSeq) => {
      expect((await ack('city-a', lastSeq)).status).toBe(200);
    });
    expect(store.stats().readings).toBeLessThan(105_000); // evictions happened
    expect((await call('GET', '/api/v1/events?kind=storage.dropped')).json.events).toEqual([]);

    // phase 2: it stops acknowledging; the quota must drop unacknowledged readings and says so
    const ackedAt = store.consumer('city-a')!.ackedSeq;
    await fill(100_000);
    const dropped = (await call('GET', '/api/v1/events?kind=storage.dropped&limit=10000')).json.events as { detail: { consumers: Record<string, number>; fromSeq: number; toSeq: number } }[];
    expect(dropped.length).toBeGreaterThan(0);
    const lost = dropped.reduce((n, e) => n + (e.detail.consumers['city-a'] ?? 0), 0);
    expect(lost).toBeGreaterThan(0);
    expect(store.stats().droppedTotal).toBe(lost);

    // the consumer's next page starts after a gap of exactly what was counted for it
    const next = await call('GET', `/api/v1/readings?after=${ackedAt}&limit=1`);
    expect(next.json.readings[0].seq - ackedAt - 1).toBe(lost);
    const consumers = await call('GET', '/api/v1/consumers');
    expect(consumers.json.consumers[0]).toMatchObject({ name: 'city-a', ackedSeq: ackedAt, behind: store.stats().lastSeq - ackedAt });
  });
});
