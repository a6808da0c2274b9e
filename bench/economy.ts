/**
 * `npm run bench economy` (issue 15, "Benchmark"): the data economy of the shipped demo
 * (devices.yaml: four streetlight controllers polled every 2 s, a traffic controller every 1 s,
 * three LoRaWAN streetlight nodes reporting every 15 s, the forwarder's stat every 30 s), ONE
 * DAY SIMULATED IN ACCELERATED TIME (bench/economy/demoDay.ts: the simulator's models on a
 * virtual clock, read by the driver's own code, the demo's dimming schedules applied at their
 * steps), stored twice through the real BatchWriter and SQLite store with the default quota:
 * BEFORE with every poll stored (EVERY_POLL), AFTER with the built-in report strategies
 * (reportPolicy of the demo's config). For each: readings stored per second, bytes per stored
 * reading, the offline autonomy in the quota, and upstream bytes per month (the day's sync
 * payloads × 30, with the sync's default settings and the MQTT framing of each batch). The AFTER
 * series is checked against every poll (reconstruction.ts).
 *
 * Not simulated: the control plane's own records of the schedule's steps (a command row and its
 * events per device and step: some tens a day, kilobytes against these megabytes).
 *
 * In the same process: the ingest ratio against the bare SQLite loop (bench/ingest.ts) and the
 * Modbus TCP pipeline against modbus-serial (bench/modbus.ts, TCP part; the driver every poll
 * and under the report strategies).
 *
 * Targets: AFTER autonomy >= 30 days, upstream <= 100 MB a month, reconstruction ok; ingest
 * ratio >= 0.7; Modbus TCP ratio >= 0.9.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../edge/config/loader.js';
import { syncSchema } from '../edge/config/schema.js';
import { silentLogger } from '../edge/log.js';
import { reportPolicy } from '../edge/report/policy.js';
import { EVERY_POLL } from '../edge/report/strategy.js';
import { MIN_ROWS } from '../edge/store/autonomy.js';
import { measureDay, type LaneFigures } from './economy/measure.js';
import type { UpstreamTally } from './economy/upstream.js';
import { run as ingestRun } from './ingest.js';
import { benchDir, result, runWhenMain, type BenchResult } from './lib.js';
import { benchTcp } from './modbus.js';

/** a winter day: the longest night of lighting steps, in the demo's zone */
const DATE = { year: 2026, month: 12, day: 4 };
const isoDate = `${DATE.year}-${String(DATE.month).padStart(2, '0')}-${String(DATE.day).padStart(2, '0')}`;
const DAY_S = 86_400;
const MONTH_DAYS = 30;
const MB = 1_000_000;
const TARGET_DAYS = 30;
const TARGET_MB_MONTH = 100;
const INGEST_TARGET = 0.7;
const MODBUS_TARGET = 0.9;
const MODBUS_ROUNDS = Number(process.env.BENCH_ECONOMY_MODBUS_ROUNDS ?? 3);

const say = (line = ''): void => void process.stderr.write(`${line}\n`);

const perMonth = (t: UpstreamTally, other = false): number => (other ? t.otherPayloadBytes + t.otherMqttBytes : t.payloadBytes + t.mqttBytes) * MONTH_DAYS;

function num(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(digits);
}

const mb = (bytes: number): string => `${num(bytes / MB)} MB`;

/** The store measures bytes per reading from MIN_ROWS rows on, and assumes a default below. */
const bytesNote = (f: LaneFigures): string =>
  f.space.reading.rows >= MIN_ROWS ? `dbstat, ${num(f.space.reading.rows)} rows` : `store default (< ${num(MIN_ROWS)} rows)`;

export async function run(): Promise<BenchResult[]> {
  const { config } = loadConfig(join(benchDir, '..', 'devices.yaml'));
  // the sync's defaults: the demo has no sync section
  const sync = syncSchema.parse({ url: 'mqtt://127.0.0.1' });
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-economy-'));
  let before: LaneFigures;
  let after: LaneFigures;
  const t0 = performance.now();
  try {
    say(`  simulating one day of the demo in accelerated time (${isoDate}, ${config.gateway.timezone}), before and after…`);
    const out = await measureDay(
      config,
      [
        { name: 'before', policy: EVERY_POLL, check: false },
        { name: 'after', policy: reportPolicy(config), check: true },
      ],
      { date: DATE, dir, sync, log: silentLogger() },
    );
    [before, after] = out.lanes as [LaneFigures, LaneFigures];
    const wallS = (performance.now() - t0) / 1000;
    say(`  ${DAY_S.toLocaleString('en-US')} s of virtual time in ${wallS.toFixed(0)} s; schedule steps: ${out.day.steps.map((s) => `${s.stepAt} ${s.group} → ${s.level} %`).join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  say('  ingest vs the bare SQLite loop (bench/ingest.ts)…');
  const ingest = await ingestRun();
  say(`  Modbus TCP pipeline vs modbus-serial (bench/modbus.ts, ${MODBUS_ROUNDS} rounds)…`);
  const modbus = await benchTcp(MODBUS_ROUNDS);

  const rec = after.reconstruction!;
  const recOk = rec.violations === 0;
  const recText = recOk
    ? `reconstruction ok: ${rec.points} points, ${num(rec.polled)} polls within their deadband, longest gap between stored values ${(rec.worstGapRatio * 100).toFixed(1)} % of its heartbeat${rec.lateGaps > 0 ? ` (${rec.lateGaps} gaps past it after a late poll: the lookahead's caveat)` : ''}`
    : `reconstruction FAILED: ${rec.violations} violations; first: ${rec.first.map((v) => `${v.device}/${v.point}: ${v.what}`).join('; ')}`;

  const rate = (f: LaneFigures): number => f.stored / DAY_S;
  const days = (f: LaneFigures): number => f.autonomy.days ?? NaN;
  const upstream = (f: LaneFigures): number => perMonth(f.online);
  const results: BenchResult[] = [
    result({
      name: 'economy-stored',
      metric: 'readings stored per second, the demo simulated for one day (after: built-in report strategies)',
      value: rate(after),
      unit: 'readings/s',
      baseline: 'every poll stored',
      baselineValue: rate(before),
      target: 'reconstruction ok (every poll within its deadband, no gap past its heartbeat)',
      pass: recOk,
      details: { polledPerDay: after.polled, storedPerDay: { before: before.stored, after: after.stored }, reconstruction: rec, storedByPointAfter: Object.fromEntries(after.storedByPoint) },
    }),
    result({
      name: 'economy-bytes',
      metric: 'bytes per stored reading in the reading table (dbstat pages / rows)',
      value: after.autonomy.bytesPerReading,
      unit: 'B/reading',
      baseline: 'every poll stored',
      baselineValue: before.autonomy.bytesPerReading,
      target: '(informative)',
      details: { before: before.space, after: after.space },
    }),
    result({
      name: 'economy-autonomy',
      metric: `offline autonomy in the default quota (${mb(config.storage.maxBytes)}), edge/store/autonomy.ts`,
      value: days(after),
      unit: 'days',
      baseline: 'every poll stored',
      baselineValue: days(before),
      target: `>= ${TARGET_DAYS} days`,
      pass: days(after) >= TARGET_DAYS,
      details: { before: before.autonomy, after: after.autonomy },
    }),
    result({
      name: 'economy-upstream',
      metric: `upstream bytes per month (a simulated day × ${MONTH_DAYS}: sync payloads${sync.compress ? ', compressed' : ''} + MQTT framing, an open readings batch lingers ${sync.linger / 1000} s)`,
      value: upstream(after) / MB,
      unit: 'MB/month',
      baseline: 'every poll stored',
      baselineValue: upstream(before) / MB,
      target: `<= ${TARGET_MB_MONTH} MB/month`,
      pass: upstream(after) / MB <= TARGET_MB_MONTH,
      details: {
        sync: { batchSize: sync.batchSize, batchBytes: sync.batchBytes, compress: sync.compress, linger: sync.linger },
        mqttFraming: 'per batch: PUBLISH fixed header (1 + 1..4 bytes) + topic (2 + its length) + packet id (2), and the PUBACK (4); TCP/IP, TLS and keepalives not counted',
        perDay: { before: { online: before.online, backlog: before.backlog }, after: { online: after.online, backlog: after.backlog } },
        monthMB: {
          before: { online: upstream(before) / MB, onlineOtherCompress: perMonth(before.online, true) / MB, backlog: perMonth(before.backlog) / MB, backlogOtherCompress: perMonth(before.backlog, true) / MB },
          after: { online: upstream(after) / MB, onlineOtherCompress: perMonth(after.online, true) / MB, backlog: perMonth(after.backlog) / MB, backlogOtherCompress: perMonth(after.backlog, true) / MB },
        },
      },
    }),
    result({
      name: 'economy-ingest',
      metric: ingest.metric,
      value: ingest.value,
      unit: ingest.unit,
      baseline: ingest.baseline,
      baselineValue: ingest.baselineValue,
      ratio: ingest.ratio,
      target: `ratio >= ${INGEST_TARGET}`,
      pass: ingest.ratio >= INGEST_TARGET,
      details: ingest.details ?? {},
    }),
    result({
      name: 'economy-modbus',
      metric: 'Modbus TCP reads of 10 holding registers through the driver (scheduler + store, every poll stored)',
      value: Math.round(modbus.driver),
      unit: 'transactions/s',
      baseline: 'bare modbus-serial client loop',
      baselineValue: Math.round(modbus.modbusSerial),
      ratio: modbus.ratio,
      target: `ratio >= ${MODBUS_TARGET}`,
      pass: modbus.ratio >= MODBUS_TARGET,
      details: { strategiesRatio: modbus.strategiesRatio, rounds: modbus.rounds },
    }),
  ];

  printTable(before, after, recText, ingest, modbus, sync);
  return results;
}

function printTable(
  before: LaneFigures,
  after: LaneFigures,
  recText: string,
  ingest: BenchResult,
  modbus: Awaited<ReturnType<typeof benchTcp>>,
  { compress, linger }: { compress: boolean; linger: number },
): void {
  const other = compress ? 'uncompressed' : 'compressed';
  const pass = (ok: boolean): string => (ok ? 'pass' : 'FAIL');
  const rows: string[][] = [
    ['', 'before (every poll)', 'after (strategies)', 'after/before', 'target'],
    ['readings polled per day', num(before.polled), num(after.polled), '', ''],
    ['readings stored per second', num(before.stored / DAY_S), num(after.stored / DAY_S), num(after.stored / before.stored), ''],
    ['bytes per stored reading', num(before.autonomy.bytesPerReading), num(after.autonomy.bytesPerReading), num(after.autonomy.bytesPerReading / before.autonomy.bytesPerReading), bytesNote(after)],
    ['offline autonomy (days)', num(before.autonomy.days ?? NaN), num(after.autonomy.days ?? NaN), num((after.autonomy.days ?? NaN) / (before.autonomy.days ?? NaN)), `>= ${TARGET_DAYS}: ${pass((after.autonomy.days ?? 0) >= TARGET_DAYS)}`],
    ['upstream per month, online', mb(perMonth(before.online)), mb(perMonth(after.online)), num(perMonth(after.online) / perMonth(before.online)), `<= ${TARGET_MB_MONTH} MB: ${pass(perMonth(after.online) / MB <= TARGET_MB_MONTH)}`],
    ['  of which MQTT framing', mb(before.online.mqttBytes * MONTH_DAYS), mb(after.online.mqttBytes * MONTH_DAYS), '', `${num(after.online.batches)} batches/day`],
    [`  had it been ${other}`, mb(perMonth(before.online, true)), mb(perMonth(after.online, true)), '', ''],
    ['upstream per month, as backlog', mb(perMonth(before.backlog)), mb(perMonth(after.backlog)), '', 'full batches'],
    [`  had it been ${other}`, mb(perMonth(before.backlog, true)), mb(perMonth(after.backlog, true)), '', ''],
    ['ingest vs bare SQLite loop', '', '', num(ingest.ratio), `>= ${INGEST_TARGET}: ${pass(ingest.ratio >= INGEST_TARGET)}`],
    ['Modbus TCP vs modbus-serial', num(modbus.ratio), num(modbus.strategiesRatio), '', `>= ${MODBUS_TARGET}: ${pass(modbus.ratio >= MODBUS_TARGET)}`],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  say();
  say(`economy: the shipped demo, ONE DAY SIMULATED IN ACCELERATED TIME (${isoDate}); sync defaults: ${compress ? 'compressed' : 'uncompressed'}, readings batches linger ${linger / 1000} s`);
  for (const r of rows) say('  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('   ').trimEnd());
  say('  MQTT framing per batch: PUBLISH fixed header + topic + packet id, and the PUBACK (TCP/IP, TLS, keepalives not counted)');
  say(`  ${recText}`);
  say(`  most stored after: ${after.storedByPoint
    .slice(0, 8)
    .map(([p, n]) => `${p} ${num(n / DAY_S)}/s`)
    .join(', ')}`);
  say();
}

runWhenMain(import.meta.url, 'economy', run);
