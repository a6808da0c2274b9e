/**
 * Nothing that matters is lost (issue 15, deliverable 2): a known signal (steps, ramps, noise
 * inside and outside the deadband, flat stretches, negative values, zero) played by a simulated
 * Modbus TCP device on loopback, polled every 100 ms by the real Modbus driver on the real clock,
 * through the real BatchWriter and its report filter into a SQLite store in a temp dir. The
 * device has one holding register per strategy, all holding the same sample, so every strategy
 * runs off the same polls. From the stored series (store.readings()) against everything polled
 * (the bus's `polled`), for every strategy:
 *   (a) every polled value beyond the deadband of the last stored one is stored, with its poll's ts;
 *   (b) at every poll time, the last stored value at or before it is within the deadband of the
 *       value polled then (minInterval: except within minInterval of a stored value);
 *   (c) no gap between stored values exceeds the heartbeat;
 *   (d) the economical strategies store far fewer values than were polled.
 * Midway the device answers a few polls with an exception: the bad values and the recovery are stored.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import type { GatewayContext } from '../../edge/component.js';
import { configSchema, profileSchema, type ProfileConfig } from '../../edge/config/schema.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { silentLogger } from '../../edge/log.js';
import { EVERY_POLL_STRATEGY, type ReportPolicy, type ReportStrategy } from '../../edge/report/strategy.js';
import { rng } from '../../edge/sim/modbus/model.js';
import { SignalModel, SignalUnits } from '../../edge/sim/modbus/signal.js';
import { TcpSimServer } from '../../edge/sim/modbus/tcpServer.js';
import { BatchWriter, openStore, type SqliteStore } from '../../edge/store/index.js';
import type { Reading, Value } from '../../edge/store/types.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const POLL_MS = 100;
const HEARTBEAT = 1000;
const DEVICE = 'signal-1';
/** reads of the device before the test stops: one sample each */
const SAMPLES = 200;
/** the read at which the device starts answering with an exception, and for how many reads */
const FAULT_AT = 150;
const FAULT_READS = 5;

const change = (s: Partial<ReportStrategy>): ReportStrategy => ({ on: 'change', deadband: 0, deadbandPercent: 0, heartbeat: 0, minInterval: 0, ...s });

/** One point per strategy. */
const STRATEGIES: Record<string, ReportStrategy> = {
  every_poll: EVERY_POLL_STRATEGY,
  on_change: change({}),
  deadband: change({ deadband: 1 }),
  deadband_percent: change({ deadbandPercent: 5 }),
  heartbeat: change({ heartbeat: HEARTBEAT }),
  deadband_heartbeat: change({ deadband: 1, heartbeat: HEARTBEAT }),
  min_interval: change({ minInterval: 350 }),
  combined: change({ deadband: 0.5, deadbandPercent: 2, heartbeat: HEARTBEAT, minInterval: 250 }),
};
/** the strategies that must store far fewer values than polled on this signal */
const ECONOMICAL = ['deadband', 'deadband_percent', 'deadband_heartbeat', 'min_interval', 'combined'];

const PROFILE: ProfileConfig = profileSchema.parse({
  name: 'signal',
  points: Object.keys(STRATEGIES).map((name, i) => ({ name, table: 'holding', address: i, type: 'int16', scale: 0.1 })),
});

const POLICY: ReportPolicy = { strategy: (_device, point) => STRATEGIES[point] ?? EVERY_POLL_STRATEGY };

/** The signal, one sample per poll, at the points' resolution (0.1). */
function buildSignal(): number[] {
  const rand = rng(15);
  const noise = (amplitude: number): number => (rand() * 2 - 1) * amplitude;
  const q = (v: number): number => Math.round(v * 10) / 10 + 0; // + 0: never -0
  const s: number[] = [];
  for (let i = 0; i < 20; i++) s.push(20); // flat: only a heartbeat stores it again
  for (let i = 0; i < 25; i++) s.push(q(20 + noise(0.45))); // noise inside the deadbands (1, and 5 % of 20)
  for (let i = 0; i < 15; i++) s.push(q(30 + noise(0.3))); // a step up, small noise
  for (let i = 0; i < 40; i++) s.push(q(30 + 0.6 * i + noise(0.2))); // a ramp
  for (let i = 0; i < 25; i++) s.push(q(55 + noise(4))); // noise far outside the deadbands
  for (let i = 0; i < 20; i++) s.push(10); // a step down, flat
  for (let i = 0; i < 25; i++) s.push(q(-2 - 0.4 * i + noise(0.1))); // negative, ramping down (the fault comes here)
  for (let i = 0; i < 30; i++) s.push(i < 15 ? 0 : q((i - 15) * 0.1)); // zero (a percent band of nothing), then the smallest steps
  return s;
}
const SIGNAL = buildSignal();

let dir: TempDir;
let server: TcpSimServer;
let units: SignalUnits;
let model: SignalModel;
let store: SqliteStore;
let writer: BatchWriter;
let driver: ModbusDriver | undefined;
let polled: Reading[];

beforeEach(async () => {
  dir = tempDir('streetbox-report-');
  units = new SignalUnits();
  model = new SignalModel(PROFILE, (n) => SIGNAL[Math.min(n, SIGNAL.length - 1)]!);
  units.addSignal(1, model);
  server = new TcpSimServer({ units, host: '127.0.0.1', port: 0 });
  await server.start();

  const config = configSchema.parse({
    gateway: { id: 'gw-test' },
    profiles: [PROFILE],
    buses: [{ id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 500, retries: 0, offlineAfter: 3, probeInterval: 1000 }],
    devices: [{ id: DEVICE, bus: 'tcp1', unit: 1, profile: 'signal', poll: POLL_MS }],
    storage: { path: dir.file('streetbox.db') },
  });
  const log = silentLogger();
  const bus = new EventBus(log);
  store = openStore({ path: config.storage.path, maxBytes: 64 * 1024 * 1024, durability: 'normal', log, bus, clock: systemClock });
  writer = new BatchWriter({ store, bus, log, clock: systemClock, flushIntervalMs: 50, flushRows: 1000, report: POLICY });
  writer.start();
  polled = [];
  bus.on(polled, 'polled', (rs) => polled.push(...rs));
  const ctx: GatewayContext = { config, configDir: dir.path, store, ingest: writer, bus, log, clock: systemClock };
  driver = createModbusDriver(ctx);
});

afterEach(async () => {
  await driver?.stop();
  driver = undefined;
  await writer.stop();
  store.close();
  await server.stop();
  dir.remove();
});

describe('report strategies: the stored series reconstructs a known signal', () => {
  it('stores every change beyond the deadband at its poll ts, within the deadband at every poll, within the heartbeat', { timeout: 120_000 }, async () => {
    await driver!.start();
    await waitFor('the signal to reach the fault', () => model.played >= FAULT_AT, { timeoutMs: 60_000, intervalMs: 5 });
    units.faults.set(1, { kind: 'exception', code: 4 }, { count: FAULT_READS });
    await waitFor('the whole signal to be polled', () => model.played >= SAMPLES, { timeoutMs: 60_000 });
    await driver!.stop();
    driver = undefined;
    await writer.stop(); // commits the rest, and sends the last `polled`

    const stored = store.readings({ after: 0, limit: 100_000, device: DEVICE }).items;
    const counts: string[] = [];
    for (const [point, strategy] of Object.entries(STRATEGIES)) {
      const p = polled.filter((r) => r.device === DEVICE && r.point === point);
      const s = stored.filter((r) => r.point === point);
      const report = checkPoint(point, strategy, p, s);
      counts.push(`${point.padEnd(20)} polled ${String(p.length).padStart(4)}  stored ${String(s.length).padStart(4)}  (${((100 * s.length) / p.length).toFixed(0).padStart(3)} %)  longest gap ${report.longestGap} ms${report.latePolls ? `, ${report.latePolls} gap(s) past the heartbeat after a poll > 2 intervals late` : ''}`);
      if (ECONOMICAL.includes(point)) expect(s.length, `${point}: stored vs polled`).toBeLessThan(p.length / 2.5);
    }
    process.stdout.write(`reconstruction: ${model.played} samples read, ${polled.length} values polled, ${stored.length} stored\n  ${counts.join('\n  ')}\n`);

    // the polls saw the signal sample by sample (until the fault)
    const every = polled.filter((r) => r.point === 'every_poll');
    const good = every.filter((r) => r.quality === 'good');
    expect(good.slice(0, FAULT_AT - 1).map((r) => r.value)).toEqual(SIGNAL.slice(0, FAULT_AT - 1));
    expect(good.length).toBeGreaterThanOrEqual(SAMPLES - FAULT_READS - 2);
    // the latest value in memory is the last polled one, stored or not
    const latest = store.latest(DEVICE);
    for (const point of Object.keys(STRATEGIES)) {
      const last = polled.filter((r) => r.point === point).at(-1)!;
      expect(latest.get(point), point).toMatchObject({ ts: last.ts, value: last.value, quality: last.quality });
    }
  });
});

interface PointReport {
  longestGap: number;
  /** gaps past the heartbeat that a poll later than the heartbeat allows for explains */
  latePolls: number;
}

/** The checks (a) to (c) for one point: what was polled, what was stored. */
function checkPoint(point: string, st: ReportStrategy, polledValues: Reading[], stored: Reading[]): PointReport {
  expect(polledValues.length, `${point}: polled`).toBeGreaterThanOrEqual(SAMPLES - FAULT_READS - 2);

  // The stored series is polled values, in order, each with its poll's ts, value and quality;
  // `polled` gives the seq of each stored one.
  let j = 0;
  /** per stored row, the index of its poll in polledValues */
  const storedAt: number[] = [];
  const isStored = polledValues.map((r, i) => {
    const s = stored[j];
    const hit = s !== undefined && s.ts === r.ts && Object.is(s.value, r.value) && s.quality === r.quality;
    if (hit) {
      storedAt.push(i);
      j++;
    }
    expect(r.seq > 0, `${point} polled at ${r.ts}: seq ${r.seq} on \`polled\`, stored ${hit}`).toBe(hit);
    if (hit) expect(r.seq, `${point} at ${r.ts}: seq`).toBe(s.seq);
    return hit;
  });
  expect(j, `${point}: stored rows that were never polled`).toBe(stored.length);

  // (a): nothing beyond the deadband of the last stored value is skipped, nor a change of quality or type
  let last: Reading | undefined;
  polledValues.forEach((r, i) => {
    const where = `${point}, polled ${JSON.stringify(r.value)} (${r.quality}) at poll ${i}, last stored ${JSON.stringify(last?.value)} (${last?.quality}) ${last ? r.ts - last.ts : '-'} ms before`;
    if (!last) expect(isStored[i], `${where}: the first value`).toBe(true);
    else if (!isStored[i]) {
      expect(r.quality, `${where}: a change of quality`).toBe(last.quality);
      if (!(st.minInterval > 0 && r.ts - last.ts < st.minInterval)) {
        expect(within(st, last.value, r.value), `${where}: beyond the deadband`).toBe(true);
      }
    }
    if (isStored[i]) last = r;
  });

  // (b): at every poll time t, the last stored value at or before t (looked up by ts in the stored
  // series; two polls in the same ms, as when the scheduler catches up after a stall, in poll order)
  // is within the deadband of the value polled at t; minInterval allows an exception within
  // minInterval of that stored value only
  for (const [i, r] of polledValues.entries()) {
    const before = lastAtOrBefore(stored, r.ts, (k) => storedAt[k]! <= i);
    const where = `${point} at ${r.ts}: polled ${JSON.stringify(r.value)} (${r.quality}), stored before ${JSON.stringify(before?.value)}`;
    expect(before, where).toBeDefined();
    if (st.minInterval > 0 && r.ts - before!.ts < st.minInterval) continue;
    expect(before!.quality, where).toBe(r.quality);
    expect(within(st, before!.value, r.value), where).toBe(true);
  }

  // (c): no gap between consecutive stored values exceeds the heartbeat. The filter keeps that
  // promise for polls up to half an interval early or late; past that (a loaded machine stalled
  // the poll), a gap may exceed it by the lateness only: the poll before was still inside it.
  let longestGap = 0;
  let latePolls = 0;
  for (let i = 1; i < stored.length; i++) {
    const gap = stored[i]!.ts - stored[i - 1]!.ts;
    longestGap = Math.max(longestGap, gap);
    if (st.heartbeat === 0 || gap <= st.heartbeat) continue;
    const k = storedAt[i]!;
    const interval = stored[i]!.ts - polledValues[k - 1]!.ts;
    const where = `${point}: ${gap} ms between stored values at ${stored[i - 1]!.ts} and ${stored[i]!.ts} (heartbeat ${st.heartbeat} ms), after a poll interval of ${interval} ms`;
    expect(interval, where).toBeGreaterThan(2 * POLL_MS);
    expect(polledValues[k - 1]!.ts - stored[i - 1]!.ts, where).toBeLessThanOrEqual(st.heartbeat);
    latePolls++;
  }

  // the quality step: the first bad value is stored (null), and so is the first good one after it
  const bad = polledValues.findIndex((r) => r.quality === 'bad');
  expect(bad, `${point}: a bad value was polled`).toBeGreaterThan(0);
  expect(polledValues[bad]!.value).toBeNull();
  expect(isStored[bad], `${point}: the bad value stored`).toBe(true);
  const back = polledValues.findIndex((r, i) => i > bad && r.quality === 'good');
  expect(back, `${point}: a good value after the fault`).toBeGreaterThan(bad);
  expect(isStored[back], `${point}: the recovery stored`).toBe(true);
  return { longestGap, latePolls };
}

/** Whether `value` is within the strategy's deadband of the stored `last` (equal, for what is not a number). */
function within(st: ReportStrategy, last: Value, value: Value): boolean {
  if (typeof last !== 'number' || typeof value !== 'number') return Object.is(last, value);
  const band = Math.max(st.deadband, (st.deadbandPercent / 100) * Math.abs(last));
  // on the band in decimal terms is within it (3.3 − 2.3 is 0.9999999999999996 or 1.0000000000000004 in binary)
  return Math.abs(value - last) <= band * (1 + 1e-9) + 1e-9 * Math.max(Math.abs(value), Math.abs(last));
}

/** The last of `stored` (in ts order) at or before `ts`; of those at `ts` itself, only the ones `sameMs` accepts (by index). */
function lastAtOrBefore(stored: readonly Reading[], ts: number, sameMs: (k: number) => boolean): Reading | undefined {
  let found: Reading | undefined;
  for (const [k, s] of stored.entries()) {
    if (s.ts > ts || (s.ts === ts && !sameMs(k))) break;
    found = s;
  }
  return found;
}
