/**
 * A report policy replaced while values flow (a configuration applied live, issue 16): the
 * filter keeps what it knows of a point whose strategy did not change (so a change elsewhere
 * stores nothing extra and a heartbeat keeps its rhythm), forgets a point whose strategy changed
 * or that the new configuration no longer declares (its next value is stored as a first value),
 * and the writer drops nothing it holds.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema, type ConfigInput } from '../../edge/config/schema.js';
import { silentLogger } from '../../edge/log.js';
import { ReportFilter, type DeclaringPolicy } from '../../edge/report/filter.js';
import { reportPolicy } from '../../edge/report/policy.js';
import { DEFAULT_STRATEGY, type ReportPolicy, type ReportStrategy } from '../../edge/report/strategy.js';
import { rng } from '../../edge/sim/modbus/model.js';
import type { NewReading, Value } from '../../edge/store/types.js';
import { BatchWriter } from '../../edge/store/writer.js';
import { Sandbox, newBus } from '../store/helpers.js';

const DEADBAND: ReportStrategy = { on: 'change', deadband: 1, deadbandPercent: 0, heartbeat: 0, minInterval: 0 };
const WIDE: ReportStrategy = { on: 'change', deadband: 50, deadbandPercent: 0, heartbeat: 0, minInterval: 0 };
const HEARTBEAT: ReportStrategy = { on: 'change', deadband: 0, deadbandPercent: 0, heartbeat: 10_000, minInterval: 0 };

/** A policy from a table device.point → strategy; others DEFAULT_STRATEGY. */
function table(t: Record<string, ReportStrategy>, declared?: string[]): DeclaringPolicy {
  const p: DeclaringPolicy = { strategy: (d, pt) => t[`${d}.${pt}`] ?? DEFAULT_STRATEGY };
  if (declared) p.declares = (d, pt) => declared.includes(`${d}.${pt}`);
  return p;
}

const r = (device: string, point: string, ts: number, value: Value): NewReading => ({ ts, device, point, value });

describe('ReportFilter.setPolicy', () => {
  it('keeps the last stored value of a point whose strategy is unchanged (an equal object), forgets one whose strategy changed', () => {
    const f = new ReportFilter(table({ 'a.p': DEADBAND, 'b.p': DEADBAND }));
    expect(f.keep(r('a', 'p', 0, 10))).toBe(true);
    expect(f.keep(r('b', 'p', 0, 10))).toBe(true);
    // a new policy: a's strategy an equal copy, b's wider
    const kept = f.setPolicy(table({ 'a.p': { ...DEADBAND }, 'b.p': WIDE }));
    expect(kept).toEqual({ kept: 1, forgotten: 1 });
    // a: still compared with its last stored 10 (within the band: not stored; beyond: stored)
    expect(f.keep(r('a', 'p', 100, 10.5))).toBe(false);
    expect(f.keep(r('a', 'p', 200, 11.5))).toBe(true);
    // b: a first value under the new strategy, then its wide band
    expect(f.keep(r('b', 'p', 100, 10.5))).toBe(true);
    expect(f.keep(r('b', 'p', 200, 40))).toBe(false);
    expect(f.keep(r('b', 'p', 300, 61))).toBe(true);
  });

  it('forgets the points a declaring policy no longer declares, even with the same strategy', () => {
    const f = new ReportFilter(table({ 'a.p': DEADBAND, 'gone.p': DEADBAND }));
    f.keep(r('a', 'p', 0, 10));
    f.keep(r('gone', 'p', 0, 10));
    expect(f.setPolicy(table({ 'a.p': DEADBAND, 'gone.p': DEADBAND }, ['a.p']))).toEqual({ kept: 1, forgotten: 1 });
    expect(f.keep(r('a', 'p', 100, 10))).toBe(false);
    // back again: stored as a first value
    expect(f.keep(r('gone', 'p', 100, 10))).toBe(true);
  });

  it('asks the new policy for a point first polled after the change', () => {
    const f = new ReportFilter(table({}));
    f.setPolicy(table({ 'n.p': WIDE }));
    expect([5, 20, 60].map((v, i) => f.keep(r('n', 'p', i * 100, v)))).toEqual([true, false, true]);
  });

  it('keeps the heartbeat bookkeeping: a change of policy elsewhere stores exactly what no change would', () => {
    const random = rng(7);
    const polls: NewReading[] = [];
    let ts = 0;
    for (let i = 0; i < 2000; i++) {
      ts += 1000 + Math.round((random() - 0.5) * 1000); // every second, ±0.5 s
      polls.push(r('hb', 'p', ts, 42)); // never changes: only the heartbeat stores
      polls.push(r('other', 'p', ts, i % 7));
    }
    const plain = new ReportFilter(table({ 'hb.p': HEARTBEAT, 'other.p': DEADBAND }));
    const changed = new ReportFilter(table({ 'hb.p': HEARTBEAT, 'other.p': DEADBAND }));
    const storedPlain: number[] = [];
    const storedChanged: number[] = [];
    polls.forEach((p, i) => {
      if (i === polls.length / 2) changed.setPolicy(table({ 'hb.p': { ...HEARTBEAT }, 'other.p': WIDE }));
      if (p.device !== 'hb') {
        plain.keep(p);
        changed.keep(p);
        return;
      }
      if (plain.keep(p)) storedPlain.push(p.ts);
      if (changed.keep(p)) storedChanged.push(p.ts);
    });
    expect(storedChanged).toEqual(storedPlain);
    // and the heartbeat's promise holds across the change: never more than 10 s between two rows
    const gaps = storedChanged.slice(1).map((t, i) => t - storedChanged[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(10_000);
    expect(storedChanged.length).toBeGreaterThan(150);
  });
});

describe('BatchWriter.setReport', () => {
  let sb: Sandbox;
  const writers: BatchWriter[] = [];
  beforeEach(() => {
    sb = new Sandbox();
  });
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop();
    sb.cleanup();
  });

  function setup(report: ReportPolicy) {
    const bus = newBus();
    const store = sb.open({ bus });
    const w = new BatchWriter({ store, bus, log: silentLogger(), flushIntervalMs: 60_000, flushRows: 1000, report });
    writers.push(w);
    w.start();
    return { store, w };
  }

  const rows = (store: ReturnType<Sandbox['open']>) => store.readings({ after: 0, limit: 1000 }).items.map((x) => [x.device, x.ts, x.value]);

  it('stores what was buffered before the change and lets the new policy decide from the next value', () => {
    const { store, w } = setup(table({ 'a.p': DEADBAND, 'b.p': DEADBAND }));
    w.pushMany([r('a', 'p', 1000, 10), r('b', 'p', 1000, 10), r('a', 'p', 1100, 12)]);
    expect(w.pending).toBe(3);
    w.setReport(table({ 'a.p': DEADBAND, 'b.p': WIDE }));
    expect(w.pending).toBe(3);
    w.pushMany([r('a', 'p', 1200, 12.5), r('b', 'p', 1200, 10.5), r('b', 'p', 1300, 30), r('a', 'p', 1300, 14)]);
    w.flush();
    expect(rows(store)).toEqual([
      ['a', 1000, 10],
      ['b', 1000, 10],
      ['a', 1100, 12],
      ['b', 1200, 10.5], // b's strategy changed: a first value
      ['a', 1300, 14], // a kept its last stored 12: 12.5 was within the band, 14 beyond
    ]);
    expect(w.polled).toBe(7);
  });

  it('keeps the state of the devices a configuration change leaves alone (reportPolicy of two configs)', () => {
    const base: ConfigInput = {
      gateway: { id: 'gw-test' },
      buses: [{ id: 'b1', type: 'tcp', host: '127.0.0.1', port: 1502 }],
      devices: [
        { id: 'lamp-1', bus: 'b1', unit: 1, profile: 'streetlight-controller', report: { deadband: 1 } },
        { id: 'lamp-2', bus: 'b1', unit: 2, profile: 'streetlight-controller', report: { deadband: 1 } },
      ],
    };
    const next: ConfigInput = {
      ...base,
      devices: [
        { id: 'lamp-1', bus: 'b1', unit: 1, profile: 'streetlight-controller', report: { deadband: 1 } },
        { id: 'lamp-2', bus: 'b1', unit: 2, profile: 'streetlight-controller', report: { deadband: 100 } },
        { id: 'lamp-3', bus: 'b1', unit: 3, profile: 'streetlight-controller' },
      ],
    };
    const { store, w } = setup(reportPolicy(configSchema.parse(base)));
    const power = (device: string, ts: number, value: number): NewReading => ({ ts, device, point: 'ch1_power', value, unit: 'W' });
    w.pushMany([power('lamp-1', 1000, 100), power('lamp-2', 1000, 100)]);
    w.flush();
    w.setReport(reportPolicy(configSchema.parse(next)));
    w.pushMany([power('lamp-1', 2000, 100.5), power('lamp-2', 2000, 100.5), power('lamp-3', 2000, 7)]);
    w.flush();
    expect(rows(store)).toEqual([
      ['lamp-1', 1000, 100],
      ['lamp-2', 1000, 100],
      ['lamp-2', 2000, 100.5],
      ['lamp-3', 2000, 7],
    ]);
  });
});
