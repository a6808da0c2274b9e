/**
 * `npm run bench history` (or standalone: `npx tsx bench/history.ts`): two results.
 *
 * history: a week's chart of one point on a full buffer. The buffer (maxBytes 256 MiB, in a temp
 * dir, deleted after) is filled through the store's own path (appendReadings in commits of 1000,
 * the quota applied after each, as the batched writer does) with 12 days of 1000 points of 100
 * devices polled every 90 s, more than fits, so the oldest days are evicted; one point,
 * lamp-ctrl-01 ch1_power, is polled every 2 s over the last 7 days (302,400 readings, one in 997
 * bad). Timed: Store.history of that point over the 7 days in 500 buckets (min, mean, max, last,
 * count, bad) against a bare SQLite aggregate over the same rows in the same run, through the
 * same index (the seq range the span index gives, history.ts):
 *   SELECT (ts - ?) / ? b, min(value), avg(value), max(value), count(*) FROM reading
 *   WHERE seq BETWEEN ? AND ? AND point_id = ? AND ts >= ? AND ts < ? GROUP BY b
 * Rounds alternate which goes first; the ratio is the median of bare time / history time per
 * round (the details give the same of their CPU time). Target >= 0.8. The GET /api/v1/history of
 * the same chart is timed too (details).
 *
 * history-ingest: the batched writer (bench/ingest.ts and its rows), which now keeps the
 * span index, against the bare better-sqlite3 loop of bench/ingest.ts into the schema without it
 * (migrations 1-3, the baseline of issue 4). Target >= 0.7. The details also give the writer with
 * the span upkeep switched off (ReadingSpans.update a no-op), i.e. the writer without the index.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../edge/clock.js';
import { createApi } from '../edge/api/index.js';
import { EventBus } from '../edge/bus.js';
import { configSchema } from '../edge/config/schema.js';
import type { CommandService } from '../edge/control/api.js';
import { silentLogger } from '../edge/log.js';
import { ReadingSpans, SPAN_SEQS } from '../edge/store/history.js';
import { STORE_MIGRATIONS } from '../edge/store/migrations.js';
import { openStore, type SqliteStore } from '../edge/store/store.js';
import type { NewReading } from '../edge/store/types.js';
import { ROWS as INGEST_ROWS, TARGET_RATIO as INGEST_TARGET, bareRound, makePolls, writerRound } from './ingest.js';
import { median, result, runWhenMain, type BenchResult } from './lib.js';

const MAX_BYTES = 256 * 1024 * 1024;
const DAY = 86_400_000;
const END = Date.UTC(2026, 0, 20);
const WEEK = 7 * DAY;
const FILL_DAYS = 12;
const DEVICES = 100;
const POINTS_PER_DEVICE = 10;
const OTHER_PERIOD_S = 90;
const TARGET = { device: 'lamp-ctrl-01', point: 'ch1_power', unit: 'W' } as const;
const TARGET_PERIOD_MS = 2000;
const TARGET_READINGS = WEEK / TARGET_PERIOD_MS;
const BUCKETS = 500;
const ROUNDS = Number(process.env.BENCH_HISTORY_ROUNDS ?? 15);
/** the first rounds also time GET /api/v1/history */
const HTTP_ROUNDS = 5;
const INGEST_ROUNDS = Number(process.env.BENCH_HISTORY_INGEST_ROUNDS ?? 9);
const TARGET_RATIO = 0.8;
const TOKEN = 'bench-viewer-token-0123456789';

const log = (line: string): void => void process.stderr.write(`  ${line}\n`);

/** The readings of one second, as a gateway polls them. */
function second(t: number, out: NewReading[]): void {
  if (t >= END - WEEK && (t - (END - WEEK)) % TARGET_PERIOD_MS === 0) {
    const k = (t - (END - WEEK)) / TARGET_PERIOD_MS;
    out.push(k % 997 === 0 ? { ts: t, ...TARGET, value: null, quality: 'bad' } : { ts: t, ...TARGET, value: 50 + ((k * 37) % 400) / 10 });
  }
  const slot = (t / 1000) % OTHER_PERIOD_S;
  for (let i = slot; i < DEVICES * POINTS_PER_DEVICE; i += OTHER_PERIOD_S) {
    const device = `lamp-${Math.floor(i / POINTS_PER_DEVICE)}`;
    const p = i % POINTS_PER_DEVICE;
    out.push(p === 0 ? { ts: t, device, point: 'lamp_on', value: (t / 1000 + i) % 3 !== 0 } : { ts: t, device, point: `p${p}`, value: 230 + ((t / 1000 + i) % 100) / 10, unit: 'V' });
  }
}

/** Fills the buffer through the store's path: commits of 1000, the quota after each. */
function fill(store: SqliteStore): number {
  let batch: NewReading[] = [];
  let n = 0;
  for (let t = END - FILL_DAYS * DAY; t < END; t += 1000) {
    second(t, batch);
    if (batch.length >= 1000) {
      store.appendReadings(batch);
      store.enforceQuota();
      n += batch.length;
      batch = [];
    }
  }
  store.appendReadings(batch);
  store.enforceQuota();
  return n + batch.length;
}

/** The bare aggregate over the same rows: the seq range from the span index, one GROUP BY. */
function bareQuery(store: SqliteStore): () => unknown[][] {
  const db = store.sqlite;
  const from = END - WEEK;
  const step = Math.ceil(WEEK / BUCKETS);
  const pointId = db.prepare('SELECT id FROM point WHERE device = ? AND point = ? AND unit = ?').pluck().get(TARGET.device, TARGET.point, TARGET.unit) as number;
  const firstBlock = db.prepare('SELECT min(block) FROM reading_span WHERE max_ts >= ? AND min_ts < ?').pluck();
  const lastSeq = db.prepare('SELECT max(seq) FROM reading').pluck();
  const agg = db
    .prepare('SELECT (ts - ?) / ? b, min(value), avg(value), max(value), count(*) FROM reading WHERE seq BETWEEN ? AND ? AND point_id = ? AND ts >= ? AND ts < ? GROUP BY b')
    .raw();
  return () => {
    const lo = (firstBlock.get(from, END) as number) * SPAN_SEQS;
    return agg.all(BigInt(from), BigInt(step), lo, lastSeq.get(), pointId, from, END) as unknown[][];
  };
}

/** An API on a free port over the store, with the chart's device configured and a viewer token. */
async function startApi(store: SqliteStore): Promise<{ url: string; stop(): Promise<void> }> {
  const config = configSchema.parse({
    gateway: { id: 'gw-bench' },
    storage: { path: store.path },
    buses: [{ id: 'tcp-1', type: 'tcp', host: '127.0.0.1', port: 1 }],
    devices: [{ id: TARGET.device, bus: 'tcp-1', unit: 1, profile: 'streetlight-controller' }],
    api: { host: '127.0.0.1', port: 0, tokens: [{ name: 'bench', token: TOKEN, role: 'viewer' }] },
  });
  const log = silentLogger();
  const commands: CommandService = {
    submit: () => {
      throw new Error('no commands in this bench');
    },
    get: () => undefined,
    list: () => [],
  };
  const ctx = { config, configDir: tmpdir(), store, ingest: { push() {}, pushMany() {}, flush: () => null, pending: 0 }, bus: new EventBus(log), log, clock: systemClock };
  const api = createApi(ctx, { commands, status: () => ({}) });
  await api.start();
  const q = new URLSearchParams({ device: TARGET.device, point: TARGET.point, from: String(END - WEEK), to: String(END), buckets: String(BUCKETS) });
  return { url: `http://127.0.0.1:${api.port()}/api/v1/history?${q}`, stop: () => api.stop() };
}

async function historyBench(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-history-'));
  const store = openStore({ path: join(dir, 'streetbox.db'), maxBytes: MAX_BYTES, durability: 'normal', log: silentLogger() });
  try {
    const t0 = performance.now();
    const written = fill(store);
    const fillS = (performance.now() - t0) / 1000;
    const stats = store.stats();
    log(`filled: ${written} readings written, ${stats.readings} kept, ${(stats.usedBytes / 2 ** 20).toFixed(1)} MiB used, ${fillS.toFixed(1)} s`);
    if (stats.droppedTotal === 0) throw new Error('the buffer never filled up');

    const q = { device: TARGET.device, points: [TARGET.point], from: END - WEEK, to: END, buckets: BUCKETS };
    const bare = bareQuery(store);
    // the answers agree, and every reading of the week is there
    const h = await store.history(q);
    const s = h.series[0]!;
    const counted = s.count.reduce((a, c) => a + c, 0) + s.bad.reduce((a, c) => a + c, 0);
    const bareRows = bare();
    const bareCounted = bareRows.reduce((a, r) => a + (r[4] as number), 0);
    if (counted !== TARGET_READINGS || bareCounted !== TARGET_READINGS) throw new Error(`counted ${counted} (history) and ${bareCounted} (bare), expected ${TARGET_READINGS}`);

    const historyMs: number[] = [];
    const bareMs: number[] = [];
    // CPU time of the process too: on a loaded machine wall time also counts the waits for a core
    const historyCpu: number[] = [];
    const bareCpu: number[] = [];
    const timed = async (fn: () => unknown, wall: number[], cpu: number[]): Promise<void> => {
      const c = process.cpuUsage();
      const t = performance.now();
      await fn();
      wall.push(performance.now() - t);
      const u = process.cpuUsage(c);
      cpu.push((u.user + u.system) / 1000);
    };
    const httpMs: number[] = [];
    const api = await startApi(store);
    try {
      for (let r = 0; r < ROUNDS; r++) {
        if (r % 2 === 0) {
          await timed(() => store.history(q), historyMs, historyCpu);
          await timed(bare, bareMs, bareCpu);
        } else {
          await timed(bare, bareMs, bareCpu);
          await timed(() => store.history(q), historyMs, historyCpu);
        }
        if (r >= HTTP_ROUNDS) continue;
        const t = performance.now();
        const res = await fetch(api.url, { headers: { Authorization: `Bearer ${TOKEN}` } });
        const body = (await res.json()) as { series?: { count: number[] }[] };
        httpMs.push(performance.now() - t);
        if (res.status !== 200 || body.series?.[0]?.count.length !== BUCKETS) throw new Error(`GET /api/v1/history answered ${res.status}`);
      }
    } finally {
      await api.stop();
    }
    const ratio = median(bareMs.map((b, i) => b / (historyMs[i] as number)));
    return result({
      name: 'history',
      metric: 'Store.history of a 7-day point (302,400 readings) in 500 buckets on a full 256 MiB buffer',
      value: median(historyMs),
      unit: 'ms',
      baseline: 'bare SQLite GROUP BY over the same rows through the same span index',
      baselineValue: median(bareMs),
      ratio,
      target: `ratio (bare time / history time) >= ${TARGET_RATIO}`,
      pass: ratio >= TARGET_RATIO,
      details: {
        readingsWritten: written,
        readingsKept: stats.readings,
        usedMiB: +(stats.usedBytes / 2 ** 20).toFixed(1),
        bytesPerReading: +(stats.usedBytes / stats.readings).toFixed(1),
        spanRows: store.sqlite.prepare('SELECT count(*) FROM reading_span').pluck().get(),
        fillSeconds: +fillS.toFixed(1),
        rounds: ROUNDS,
        historyMs: historyMs.map((x) => +x.toFixed(1)),
        bareMs: bareMs.map((x) => +x.toFixed(1)),
        historyCpuMs: historyCpu.map((x) => +x.toFixed(1)),
        bareCpuMs: bareCpu.map((x) => +x.toFixed(1)),
        cpuRatio: +median(bareCpu.map((b, i) => b / (historyCpu[i] as number))).toFixed(3),
        httpMs: httpMs.map((x) => +x.toFixed(1)),
        httpMedianMs: +median(httpMs).toFixed(1),
        // the route against Store.history of the same round
        httpOverHistory: +median(httpMs.map((h, i) => h / (historyMs[i] as number))).toFixed(3),
      },
    });
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The writer with the span upkeep switched off: the writer as it was before the index. */
async function writerWithoutIndex(dir: string, polls: NewReading[][], rows: number): Promise<number> {
  const update = Object.getOwnPropertyDescriptor(ReadingSpans.prototype, 'update')!;
  ReadingSpans.prototype.update = () => {};
  try {
    return await writerRound(dir, polls, rows);
  } finally {
    Object.defineProperty(ReadingSpans.prototype, 'update', update);
  }
}

async function ingestBench(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-history-ingest-'));
  const before = STORE_MIGRATIONS.slice(0, 3);
  try {
    const polls = makePolls(INGEST_ROWS);
    const warm = polls.slice(0, 500);
    await writerRound(dir, warm, warm.flat().length);
    bareRound(dir, warm, warm.flat().length, 1, before);
    const withIndex: number[] = [];
    const without: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < INGEST_ROUNDS; i++) {
      withIndex.push(await writerRound(dir, polls, INGEST_ROWS));
      bare.push(bareRound(dir, polls, INGEST_ROWS, 1, before));
      without.push(await writerWithoutIndex(dir, polls, INGEST_ROWS));
    }
    const ratio = median(withIndex.map((w, i) => w / (bare[i] as number)));
    return result({
      name: 'history-ingest',
      metric: 'readings committed per second through BatchWriter keeping the span index (as bench ingest)',
      value: median(withIndex),
      unit: 'readings/s',
      baseline: 'bare better-sqlite3 insert loop of bench ingest, schema without the index',
      baselineValue: median(bare),
      ratio,
      target: `ratio >= ${INGEST_TARGET}`,
      pass: ratio >= INGEST_TARGET,
      details: {
        rowsPerRound: INGEST_ROWS,
        rounds: INGEST_ROUNDS,
        writerRounds: withIndex.map(Math.round),
        writerWithoutIndexRounds: without.map(Math.round),
        bareRounds: bare.map(Math.round),
        // the index's cost on the writer: with / without, paired by round
        withOverWithout: +median(withIndex.map((w, i) => w / (without[i] as number))).toFixed(3),
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  return [await historyBench(), await ingestBench()];
}

runWhenMain(import.meta.url, 'history', run);
