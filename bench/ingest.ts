/**
 * Ingest throughput: readings/s through the store's BatchWriter (validation, point ids, seqs,
 * the latest values, the bus fan-out, the quota check) against a bare better-sqlite3 loop that
 * inserts the same rows, already encoded, into the same schema with the same pragmas, in
 * transactions of the same size. Rounds alternate; the ratio is the median of the per-round
 * ratios (writer round / the bare round right after it). The writer inserts 50
 * rows per statement; a bare loop doing the same is measured too and reported in `details`.
 * Target: ratio >= 0.7 and >= 200 000 readings/s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBus } from '../edge/bus.js';
import { silentLogger } from '../edge/log.js';
import { encodeFlags, storedValue } from '../edge/store/codec.js';
import { STORE_MIGRATIONS, STORE_MODULE, applyMigrations, type Migration } from '../edge/store/migrations.js';
import { openDatabase } from '../edge/store/open.js';
import { openStore } from '../edge/store/store.js';
import type { NewReading, Reading } from '../edge/store/types.js';
import { BatchWriter } from '../edge/store/writer.js';
import { median, result, type BenchResult } from './lib.js';

const DEVICES = 50;
const POINTS = 20;
export const ROWS = Number(process.env.BENCH_INGEST_ROWS ?? 500_000);
const ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 5);
const FLUSH_ROWS = 1000;
const MAX_BYTES = 1024 * 1024 * 1024;
export const TARGET_RATIO = 0.7;
const TARGET_RATE = 200_000;

/** Polls of 50 devices × 20 points: numbers mostly, a few booleans and strings, a bad read now and then. */
export function makePolls(rows: number): NewReading[][] {
  const polls: NewReading[][] = [];
  const t0 = Date.UTC(2026, 0, 1);
  let n = 0;
  for (let round = 0; n < rows; round++) {
    for (let d = 0; d < DEVICES && n < rows; d++) {
      const poll: NewReading[] = [];
      for (let p = 0; p < POINTS && n < rows; p++, n++) {
        const ts = t0 + round * 1000 + d;
        const device = `lamp-${d}`;
        if (p === 0) poll.push({ ts, device, point: 'on', value: (round + d) % 2 === 0 });
        else if (p === 1) poll.push({ ts, device, point: 'mode', value: round % 7 === 0 ? 'manual' : 'schedule' });
        else if (n % 997 === 0) poll.push({ ts, device, point: `p${p}`, value: null, unit: 'V', quality: 'bad' });
        else poll.push({ ts, device, point: `p${p}`, value: 230 + ((round * 31 + p * 7 + d) % 100) / 10, unit: 'V' });
      }
      polls.push(poll);
    }
  }
  return polls;
}

export async function writerRound(dir: string, polls: NewReading[][], rows: number): Promise<number> {
  const path = join(dir, `writer-${Math.random().toString(36).slice(2)}.db`);
  const log = silentLogger();
  const bus = new EventBus(log);
  let seen = 0;
  bus.on('bench', 'readings', (rs: Reading[]) => {
    seen += rs.length;
  });
  const store = openStore({ path, maxBytes: MAX_BYTES, durability: 'normal', log, bus });
  const writer = new BatchWriter({ store, bus, log, flushIntervalMs: 200, flushRows: FLUSH_ROWS });
  writer.start();
  const t0 = performance.now();
  for (const poll of polls) writer.pushMany(poll);
  await writer.stop();
  const ms = performance.now() - t0;
  store.close();
  if (seen !== rows || store.isOpen) throw new Error(`writer round: ${seen} readings on the bus, expected ${rows}`);
  return (rows / ms) * 1000;
}

/**
 * `chunk` rows per INSERT statement (1: a statement per row, the baseline of the spec), into the
 * schema of `migrations` (bench/history.ts: the schema before the span index).
 */
export function bareRound(dir: string, polls: NewReading[][], rows: number, chunk = 1, migrations: readonly Migration[] = STORE_MIGRATIONS): number {
  const path = join(dir, `bare-${Math.random().toString(36).slice(2)}.db`);
  const { db } = openDatabase(path, { durability: 'normal', maxBytes: MAX_BYTES }, silentLogger(), Date.now);
  applyMigrations(db, STORE_MODULE, migrations);
  // Point ids and encoded values prepared outside the timed loop: this is the floor.
  const ids = new Map<string, number>();
  const insPoint = db.prepare('INSERT INTO point (id, device, point, unit) VALUES (?, ?, ?, ?)');
  const flat: { ts: number; pointId: number; value: number | string | null; flags: number }[] = [];
  for (const poll of polls) {
    for (const r of poll) {
      const key = `${r.device}\0${r.point}\0${r.unit ?? ''}`;
      let id = ids.get(key);
      if (id === undefined) {
        ids.set(key, (id = ids.size + 1));
        insPoint.run(id, r.device, r.point, r.unit ?? null);
      }
      flat.push({ ts: r.ts, pointId: id, value: storedValue(r.value), flags: encodeFlags(r.value, r.quality) });
    }
  }
  const ins = db.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, ?, ?, ?)');
  const insMany = db.prepare(`INSERT INTO reading (seq, ts, point_id, value, flags) VALUES ${new Array(chunk).fill('(?, ?, ?, ?, ?)').join(', ')}`);
  const args = new Array<unknown>(chunk * 5);
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  const t0 = performance.now();
  let seq = 0;
  for (let i = 0; i < flat.length; i += FLUSH_ROWS) {
    begin.run();
    const end = Math.min(flat.length, i + FLUSH_ROWS);
    let j = i;
    if (chunk > 1) {
      for (; j + chunk <= end; j += chunk) {
        for (let k = 0, o = 0; k < chunk; k++) {
          const r = flat[j + k] as (typeof flat)[number];
          args[o++] = ++seq;
          args[o++] = r.ts;
          args[o++] = r.pointId;
          args[o++] = r.value;
          args[o++] = r.flags;
        }
        insMany.run(args);
      }
    }
    for (; j < end; j++) {
      const r = flat[j] as (typeof flat)[number];
      ins.run(++seq, r.ts, r.pointId, r.value, r.flags);
    }
    commit.run();
  }
  const ms = performance.now() - t0;
  db.close();
  if (seq !== rows) throw new Error(`bare round: ${seq} rows, expected ${rows}`);
  return (rows / ms) * 1000;
}

export async function run(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-ingest-'));
  try {
    const polls = makePolls(ROWS);
    // one warm-up of each, not counted
    await writerRound(dir, polls.slice(0, 500), 500 * POINTS);
    bareRound(dir, polls.slice(0, 500), 500 * POINTS);
    const writer: number[] = [];
    const bare: number[] = [];
    const bareMulti: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      writer.push(await writerRound(dir, polls, ROWS));
      bare.push(bareRound(dir, polls, ROWS));
      bareMulti.push(bareRound(dir, polls, ROWS, 50));
    }
    const value = median(writer);
    const baselineValue = median(bare);
    // each writer round against the bare round right after it, then the median: load that comes
    // and goes on a shared machine hits both sides of a pair alike
    const ratio = median(writer.map((w, i) => w / (bare[i] as number)));
    return result({
      name: 'ingest',
      metric: 'readings committed per second through BatchWriter (durability normal, flushRows 1000)',
      value,
      unit: 'readings/s',
      baseline: 'bare better-sqlite3 insert loop, same schema and transaction size',
      baselineValue,
      ratio,
      target: `ratio >= ${TARGET_RATIO} and >= ${TARGET_RATE} readings/s`,
      pass: ratio >= TARGET_RATIO && value >= TARGET_RATE,
      details: {
        rowsPerRound: ROWS,
        rounds: ROUNDS,
        devices: DEVICES,
        pointsPerDevice: POINTS,
        writerRounds: writer.map(Math.round),
        bareRounds: bare.map(Math.round),
        // for reference: a bare loop with the writer's own trick (50 rows per INSERT statement)
        bareMultiRowRounds: bareMulti.map(Math.round),
        ratioToBareMultiRow: value / median(bareMulti),
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
