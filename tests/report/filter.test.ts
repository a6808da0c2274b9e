/**
 * The report filter (edge/report/filter.ts): every rule of a report strategy, as scenario tables
 * (polls in, which of them are stored), and the promises of the heartbeat and the minimum
 * interval as properties over long seeded runs of jittered polls.
 */
import { describe, expect, it } from 'vitest';
import { ReportFilter } from '../../edge/report/filter.js';
import { DEFAULT_STRATEGY, EVERY_POLL, type ReportPolicy, type ReportStrategy } from '../../edge/report/strategy.js';
import { rng } from '../../edge/sim/modbus/model.js';
import type { NewReading, Quality, Value } from '../../edge/store/types.js';

/** A strategy from the fields a case sets; the rest off (no heartbeat unless asked). */
function strategy(s: Partial<ReportStrategy>): ReportStrategy {
  return { ...DEFAULT_STRATEGY, heartbeat: 0, ...s };
}

function only(s: Partial<ReportStrategy>): ReportPolicy {
  const st = strategy(s);
  return { strategy: () => st };
}

/** [ts, value, quality] of one poll of one point; quality left out is good */
type Poll = [number, Value, Quality?];

function reading([ts, value, quality]: Poll, point = 'p'): NewReading {
  return { ts, device: 'd', point, value, ...(quality ? { quality } : {}) };
}

/** Which of `polls` (of one point) the filter stores. */
function kept(s: Partial<ReportStrategy>, polls: Poll[]): boolean[] {
  const f = new ReportFilter(only(s));
  return polls.map((p) => f.keep(reading(p)));
}

/** Polls every 100 ms of the values given. */
function every100(...values: Value[]): Poll[] {
  return values.map((v, i) => [i * 100, v]);
}

const T = true;
const F = false;

interface Case {
  name: string;
  strategy: Partial<ReportStrategy>;
  polls: Poll[];
  stored: boolean[];
}

const CASES: Case[] = [
  // first value
  { name: 'on change: the first value is stored', strategy: { on: 'change' }, polls: every100(5), stored: [T] },
  { name: 'deadband: the first value is stored', strategy: { deadband: 100 }, polls: every100(5, 6), stored: [T, F] },
  { name: 'minInterval: the first value is stored', strategy: { minInterval: 60_000 }, polls: every100(5, 6), stored: [T, F] },
  { name: 'a first value that is bad (null) is stored', strategy: { on: 'change' }, polls: [[0, null, 'bad'], [100, null, 'bad']], stored: [T, F] },

  // on poll
  { name: 'on poll: every value is stored, repeats too', strategy: { on: 'poll' }, polls: every100(1, 1, 1, 2, 2, null), stored: [T, T, T, T, T, T] },

  // on change, exactly
  { name: 'on change: exactly the changes are stored', strategy: { on: 'change' }, polls: every100(1, 1, 2, 2, 1, 1, 1), stored: [T, F, T, F, T, F, F] },
  { name: 'on change: the smallest difference is a change', strategy: { on: 'change' }, polls: every100(1, 1 + 1e-12, 1 + 1e-12), stored: [T, T, F] },
  { name: 'on change: 0 and -0 are the same value', strategy: { on: 'change' }, polls: every100(0, -0), stored: [T, F] },

  // absolute deadband: strictly beyond, against the last *stored* value
  { name: 'deadband: a difference equal to the band is not stored', strategy: { deadband: 2 }, polls: every100(10, 12, 8), stored: [T, F, F] },
  { name: 'deadband: a difference beyond the band is stored, up or down', strategy: { deadband: 2 }, polls: every100(10, 12.5, 10.5, 10.4), stored: [T, T, F, T] },
  { name: 'deadband: a slow drift is stored once it is beyond the band from the last stored', strategy: { deadband: 2.5 }, polls: every100(10, 11, 12, 13, 14, 15, 16), stored: [T, F, F, T, F, F, T] },
  { name: 'deadband: negative values', strategy: { deadband: 1 }, polls: every100(-10, -11, -11.5, -10.4), stored: [T, F, T, T] },

  // percent deadband: of |last stored|
  { name: 'percent: equal to the band is not stored, beyond it is', strategy: { deadbandPercent: 10 }, polls: every100(100, 110, 90, 110.5), stored: [T, F, F, T] },
  { name: 'percent: the band follows the last stored value', strategy: { deadbandPercent: 10 }, polls: every100(100, 110.5, 99.5, 99), stored: [T, T, F, T] },
  { name: 'percent: of the magnitude of a negative value', strategy: { deadbandPercent: 10 }, polls: every100(-50, -55, -45, -56), stored: [T, F, F, T] },
  { name: 'percent: after a stored 0 every change is stored', strategy: { deadbandPercent: 50 }, polls: every100(0, 0, 0.001, 0.001), stored: [T, F, T, F] },
  { name: 'absolute and percent: the wider band applies (absolute near 0)', strategy: { deadband: 1, deadbandPercent: 10 }, polls: every100(5, 6, 4, 6.1), stored: [T, F, F, T] },
  { name: 'absolute and percent: the wider band applies (percent when large)', strategy: { deadband: 1, deadbandPercent: 10 }, polls: every100(100, 109, 91, 110.5), stored: [T, F, F, T] },

  // values that are not plain numbers
  { name: 'NaN beside NaN is unchanged; a value becoming NaN or back is stored', strategy: { deadband: 1000 }, polls: every100(1, NaN, NaN, 1, 1), stored: [T, T, F, T, F] },
  { name: 'a value becoming infinite is stored whatever the deadband', strategy: { deadband: 1e300, deadbandPercent: 100 }, polls: every100(1, Infinity, Infinity, -Infinity, 5), stored: [T, T, F, T, T] },
  { name: 'booleans: stored when they flip, whatever the deadband', strategy: { deadband: 5 }, polls: every100(true, true, false, false, true), stored: [T, F, T, F, T] },
  { name: 'strings: stored when they differ', strategy: { deadband: 5 }, polls: every100('a', 'a', 'b', 'b'), stored: [T, F, T, F] },
  { name: 'null beside null is unchanged', strategy: { on: 'change' }, polls: every100(null, null), stored: [T, F] },

  // a change of type is always stored
  { name: 'type change: number → boolean → string → null, inside any deadband', strategy: { deadband: 1e9 }, polls: every100(1, true, '1', null, 1), stored: [T, T, T, T, T] },
  { name: 'type change: stored inside minInterval', strategy: { minInterval: 60_000 }, polls: every100(1, true, '1', null, null, 2), stored: [T, T, T, T, F, T] },

  // a change of quality is always stored
  {
    name: 'quality: good → bad → stale → good, same value, each stored',
    strategy: { deadband: 1e9 },
    polls: [[0, 5], [100, 5, 'bad'], [200, 5, 'bad'], [300, 5, 'stale'], [400, 5, 'stale'], [500, 5, 'good'], [600, 5]],
    stored: [T, T, F, T, F, T, F],
  },
  {
    name: 'quality: every change stored inside minInterval',
    strategy: { minInterval: 60_000 },
    polls: [[0, 5], [100, 6], [200, null, 'bad'], [300, 5, 'stale'], [400, 7, 'stale'], [500, 5, 'good'], [600, 9]],
    stored: [T, F, T, T, F, T, F],
  },
  { name: 'quality left out is good', strategy: { on: 'change' }, polls: [[0, 5, 'good'], [100, 5], [200, 5, 'good']], stored: [T, F, F] },

  // minInterval (no heartbeat)
  {
    name: 'minInterval: a change sooner than the interval waits; the value polled when it ends is stored',
    strategy: { minInterval: 1000 },
    polls: [[0, 1], [300, 2], [600, 3], [999, 4], [1000, 5], [1100, 6], [1999, 7], [2000, 7]],
    stored: [T, F, F, F, T, F, F, T],
  },
  {
    name: 'minInterval: a change that came back within the interval is not stored',
    strategy: { minInterval: 1000 },
    polls: [[0, 1], [300, 2], [1000, 1], [1100, 1], [1200, 3]],
    stored: [T, F, F, F, T],
  },
  {
    name: 'minInterval with a deadband: the value at the end of the interval is weighed against the band',
    strategy: { minInterval: 1000, deadband: 2 },
    polls: [[0, 10], [500, 20], [1000, 11], [1500, 13]],
    stored: [T, F, F, T],
  },
  { name: 'minInterval on poll: at most one value per interval', strategy: { on: 'poll', minInterval: 250 }, polls: every100(1, 1, 1, 1, 1, 1, 1), stored: [T, F, F, T, F, F, T] },

  // heartbeat: scenarios (the promise itself is the property below)
  { name: 'heartbeat 0: an unchanged value is never stored again', strategy: { heartbeat: 0 }, polls: [[0, 1], [1e9, 1]], stored: [T, F] },
  { name: 'heartbeat: an unchanged value polled after a gap longer than the heartbeat is stored', strategy: { heartbeat: 1000 }, polls: [[0, 1], [100, 1], [5000, 1], [5100, 1]], stored: [T, F, T, F] },
  {
    name: 'heartbeat: a stored change restarts it',
    strategy: { heartbeat: 1000 },
    polls: every100(1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2),
    // every 100 ms: stored ahead of the heartbeat once the next poll could be late (2.5 intervals)
    stored: [T, F, F, F, F, T, F, F, F, F, F, F, F, T],
  },
];

describe('ReportFilter: the rules of a strategy', () => {
  it.each(CASES)('$name', ({ strategy: s, polls, stored }) => {
    expect(kept(s, polls)).toEqual(stored);
  });

  it('stores the first value of every point, and keeps each point to its own strategy', () => {
    const asked: string[] = [];
    const f = new ReportFilter({
      strategy(device, point) {
        asked.push(`${device}/${point}`);
        return point === 'every' ? strategy({ on: 'poll' }) : strategy({ deadband: 10 });
      },
    });
    const r = (device: string, point: string, ts: number, value: number): boolean => f.keep({ ts, device, point, value });
    expect([r('a', 'every', 0, 1), r('a', 'band', 0, 1), r('b', 'band', 0, 50)]).toEqual([T, T, T]);
    expect([r('a', 'every', 100, 1), r('a', 'band', 100, 5), r('b', 'band', 100, 55)]).toEqual([T, F, F]);
    expect([r('a', 'band', 200, 12), r('b', 'band', 200, 60)]).toEqual([T, F]);
    // asked once per point, the first time a value of it is polled
    expect(asked).toEqual(['a/every', 'a/band', 'b/band']);
    expect({ polled: f.polled, stored: f.stored }).toEqual({ polled: 8, stored: 5 });
  });

  it('a wall clock stepped back stores the next value and takes it as the baseline, so no change waits for the clock to catch up', () => {
    const f = new ReportFilter({ strategy: () => strategy({ minInterval: 10_000, heartbeat: 60_000 }) });
    const t0 = 3_600_000;
    expect(f.keep(reading([t0, 1]))).toBe(true);
    // NTP steps the clock back an hour: the first value after it is stored, then minInterval counts from it
    expect(f.keep(reading([t0 - 3_600_000 + 1000, 2]))).toBe(true);
    expect(f.keep(reading([t0 - 3_600_000 + 2000, 3]))).toBe(false);
    expect(f.keep(reading([t0 - 3_600_000 + 12_000, 3]))).toBe(true);
  });

  it('a deadband compares in decimal terms: steps of exactly the band are on it, not beyond it', () => {
    const f = new ReportFilter({ strategy: () => strategy({ deadband: 0.1 }) });
    let v = 10;
    const stored: boolean[] = [];
    for (let i = 0; i < 200; i++) {
      v = Math.round((v + 0.1) * 10) / 10; // 10.1, 10.2, …: each 0.1 from the last, in binary sometimes a hair above
      stored.push(f.keep(reading([i * 1000, v])));
    }
    // the first value, then every second step: 0.2 from the last stored value, and only those
    expect(stored.filter(Boolean).length).toBe(100);
    expect(stored.every((s, i) => s === (i % 2 === 0))).toBe(true);
  });

  it('EVERY_POLL stores every value', () => {
    const f = new ReportFilter(EVERY_POLL);
    const all = Array.from({ length: 50 }, (_, i) => f.keep(reading([i, 7])));
    expect(all.every(Boolean)).toBe(true);
    expect({ polled: f.polled, stored: f.stored }).toEqual({ polled: 50, stored: 50 });
  });
});

// ---------------------------------------------------------------------------------------------
// The heartbeat's promise: with polls every P, no gap between stored values exceeds the heartbeat

/** How polls are spread around their period: the times of `n` polls every `p` ms. */
const SCHEDULES: { name: string; times: (p: number, n: number, rand: () => number) => number[] }[] = [
  { name: 'on time', times: (p, n) => Array.from({ length: n }, (_, k) => k * p) },
  // the Modbus scheduler: a fixed rate, each poll up to half a period late (the next one is not)
  { name: 'up to P/2 late', times: (p, n, rand) => Array.from({ length: n }, (_, k) => Math.round(k * p + (rand() * p) / 2)) },
  { name: 'up to P/2 early or late', times: (p, n, rand) => Array.from({ length: n }, (_, k) => Math.round(k * p + (rand() - 0.5) * p)) },
  // each interval between P/2 and 3P/2
  {
    name: 'intervals P ± P/2',
    times: (p, n, rand) => {
      const out = [0];
      for (let k = 1; k < n; k++) out.push(Math.round(out[k - 1]! + p / 2 + rand() * p));
      return out;
    },
  },
];

const RHYTHMS = [
  { p: 100, heartbeat: 1000 },
  { p: 70, heartbeat: 1000 },
  { p: 1000, heartbeat: 15 * 60_000 },
  { p: 5000, heartbeat: 60_000 },
];

/** The stored polls of one point through `f`, as [ts, value]. */
function storedOf(f: ReportFilter, polls: Poll[]): Poll[] {
  return polls.filter((p) => f.keep(reading(p)));
}

/** The gaps between consecutive stored values. */
function gaps(stored: Poll[]): number[] {
  return stored.slice(1).map((s, i) => s[0] - stored[i]![0]);
}

describe('ReportFilter: the heartbeat', () => {
  for (const sched of SCHEDULES) {
    it(`keeps every gap within the heartbeat, polls ${sched.name}`, () => {
      for (const { p, heartbeat } of RHYTHMS) {
        for (const seed of [1, 2, 3]) {
          const rand = rng(seed * 7919 + p);
          const n = Math.max(3000, Math.ceil((20 * heartbeat) / p));
          // an unchanged value (the heartbeat alone stores it), then one that changes now and then
          const flat: Poll[] = sched.times(p, n, rand).map((t) => [t, 42]);
          const changing: Poll[] = sched.times(p, n, rand).map((t, k) => [t, Math.floor(k / 37) % 3 === 0 ? k : 42]);
          for (const [what, polls] of [
            ['flat', flat],
            ['changing', changing],
          ] as const) {
            const stored = storedOf(new ReportFilter(only({ on: 'change', heartbeat })), polls);
            const where = `${what}, P ${p} ms, heartbeat ${heartbeat} ms, seed ${seed}`;
            expect(Math.max(...gaps(stored)), where).toBeLessThanOrEqual(heartbeat);
            if (what === 'flat') {
              // and not much sooner: an unchanged value costs one row per heartbeat, about
              expect(Math.min(...gaps(stored)), where).toBeGreaterThan(heartbeat - 3.5 * p);
            }
          }
        }
      }
    });
  }

  it('keeps its promise for a deadband strategy and for every poll with a minimum interval', () => {
    const p = 100;
    const heartbeat = 1000;
    const rand = rng(99);
    const times = SCHEDULES[2]!.times(p, 20_000, rand);
    const noise: Poll[] = times.map((t) => [t, 20 + (rand() - 0.5) * 1.8]); // always inside the band
    for (const s of [{ deadband: 1, heartbeat }, { deadbandPercent: 5, heartbeat }, { on: 'poll' as const, minInterval: 400, heartbeat }]) {
      const stored = storedOf(new ReportFilter(only(s)), noise);
      expect(Math.max(...gaps(stored)), JSON.stringify(s)).toBeLessThanOrEqual(heartbeat);
    }
  });

  it('is not fooled by a loss of contact: the rhythm seen before it still holds after it', () => {
    // polls every 100 ms, an hour without any, then every 100 ms again: the stored value after
    // the gap and then one per heartbeat, not one per poll while the gap fades from the estimate
    const polls: Poll[] = [];
    for (let k = 0; k < 100; k++) polls.push([k * 100, 1]);
    for (let k = 0; k < 200; k++) polls.push([3_600_000 + k * 100, 1]);
    const stored = storedOf(new ReportFilter(only({ heartbeat: 1000 })), polls).map((s) => s[0]);
    const after = stored.filter((t) => t >= 3_600_000);
    expect(after[0]).toBe(3_600_000);
    expect(after.length).toBeLessThanOrEqual(Math.ceil(20_000 / 700) + 1);
    expect(Math.max(...gaps(after.map((t) => [t, 1])))).toBeLessThanOrEqual(1000);
  });
});

// ---------------------------------------------------------------------------------------------
// The minimum interval's promise

describe('ReportFilter: the minimum interval', () => {
  it('never stores two values closer than minInterval unless quality or type changed; the value polled when it ends is stored', () => {
    const p = 100;
    for (const minInterval of [250, 1000, 3000]) {
      for (const heartbeat of [0, minInterval + 5 * p]) {
        const rand = rng(minInterval + heartbeat);
        const polls: Poll[] = SCHEDULES[2]!.times(p, 20_000, rand).map((t, k) => {
          // a value that changes at every poll (a random walk), bad now and then, stale now and then
          if (k % 997 < 3) return [t, null, 'bad'];
          if (k % 1409 < 2) return [t, k, 'stale'];
          if (k % 2003 === 0) return [t, k % 2 === 0];
          return [t, k + rand()];
        });
        const f = new ReportFilter(only({ minInterval, heartbeat }));
        const keep = polls.map((q) => f.keep(reading(q)));
        const wrong: string[] = [];
        let last: Poll | undefined;
        let sawException = 0;
        for (let i = 0; i < polls.length; i++) {
          const q = polls[i]!;
          const since = last === undefined ? Infinity : q[0] - last[0];
          const special = last !== undefined && ((q[2] ?? 'good') !== (last[2] ?? 'good') || typeOf(q[1]) !== typeOf(last[1]));
          // the first value, a change of quality or type: stored; else nothing sooner than minInterval;
          // and the first change once the interval is over (every good poll is one)
          const expected = last === undefined || special || (since >= minInterval && q[1] !== last[1]);
          if (keep[i] !== expected) wrong.push(`poll ${i} (${JSON.stringify(q)}), ${since} ms after the last stored: stored ${keep[i]}`);
          if (keep[i]) {
            if (special && since < minInterval) sawException++;
            last = q;
          }
        }
        expect(wrong, `minInterval ${minInterval}, heartbeat ${heartbeat}`).toEqual([]);
        // the scenario did exercise the exceptions
        expect(sawException).toBeGreaterThan(10);
      }
    }
  });
});

function typeOf(v: Value): string {
  return v === null ? 'null' : typeof v;
}
