import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../edge/clock.js';
import { createLogger } from '../../edge/log.js';
import { createClockWatch } from '../../edge/ops/clockWatch.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

/** A FakeClock whose wall time can also be set on its own, as NTP or an operator does. */
class JumpingClock implements Clock {
  readonly base = new FakeClock(Date.UTC(1970, 0, 2)); // a board without RTC boots near the epoch
  offset = 0;
  now = () => this.base.now() + this.offset;
  monotonic = () => this.base.monotonic();
  setTimeout = (fn: () => void, ms: number) => this.base.setTimeout(fn, ms);
  clearTimeout = (t: ReturnType<Clock['setTimeout']>) => this.base.clearTimeout(t);
  /** steps the wall clock only; monotonic time does not move */
  jump(ms: number): void {
    this.offset += ms;
  }
}

const log = createLogger({ level: 'silent' });
let dir: TempDir;
let store: SqliteStore | undefined;
afterEach(() => {
  store?.close();
  store = undefined;
  dir?.remove();
});

function setup(clock: Clock): SqliteStore {
  dir = tempDir('streetbox-clock-');
  store = openStore({ path: dir.file('gw.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log, clock, latestPersistMs: 3_600_000 });
  return store;
}

const jumps = (s: SqliteStore) => s.events({ after: 0, limit: 100, kind: 'clock.jumped' }).items.filter((e) => isEvent(e, 'clock.jumped'));

describe('clock-jump detection', () => {
  it('records a clock.jumped event when NTP steps the wall clock, and nothing while both clocks agree', async () => {
    const clock = new JumpingClock();
    const s = setup(clock);
    const watch = createClockWatch({ clock, store: s, log }, { intervalMs: 5000, thresholdMs: 2000 });
    await watch.start();
    await clock.base.advance(60_000);
    expect(jumps(s)).toEqual([]);

    const bootTs = clock.now();
    await clock.base.advance(1000);
    const ntp = Date.UTC(2026, 10, 24, 12, 0, 0);
    clock.jump(ntp - clock.now()); // NTP syncs 1 s into the interval
    await clock.base.advance(4000); // the next comparison
    const [e, ...rest] = jumps(s);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({ kind: 'clock.jumped', severity: 'warning', device: null, ts: ntp + 4000 });
    // it should have been boot time + 5 s; it was the synced time
    expect(e!.detail).toEqual({ fromTs: bootTs + 5000, toTs: ntp + 4000, deltaMs: ntp + 4000 - (bootTs + 5000) });
    expect(watch.jumps).toBe(1);

    // a new baseline: the synced clock runs on without further events
    await clock.base.advance(60_000);
    expect(jumps(s)).toHaveLength(1);
    await watch.stop();
  });

  it('detects a backward step, ignores drift under the threshold, and stops cleanly', async () => {
    const clock = new JumpingClock();
    const s = setup(clock);
    const watch = createClockWatch({ clock, store: s, log }, { intervalMs: 5000, thresholdMs: 2000 });
    await watch.start();
    await watch.start(); // idempotent: one timer
    await clock.base.advance(5000);
    clock.jump(1500); // slewing / a small correction: not a jump
    await clock.base.advance(5000);
    expect(jumps(s)).toEqual([]);
    clock.jump(-3_600_000);
    await clock.base.advance(5000);
    expect(jumps(s).map((e) => e.detail.deltaMs)).toEqual([-3_600_000]);
    await watch.stop();
    await watch.stop();
    clock.jump(10_000_000);
    await clock.base.advance(60_000);
    expect(jumps(s)).toHaveLength(1);
  });

  it('keeps seq order when the wall clock goes backwards: seq is a counter, ts is the wall clock', () => {
    const clock = new JumpingClock();
    const s = setup(clock);
    s.appendReadings([{ ts: clock.now(), device: 'lamp-1', point: 'level', value: 40 }]);
    clock.jump(-3_600_000);
    s.appendReadings([{ ts: clock.now(), device: 'lamp-1', point: 'level', value: 50 }]);
    const [a, b] = s.readings({ after: 0, limit: 10 }).items;
    expect(b!.seq).toBeGreaterThan(a!.seq);
    expect(b!.ts).toBeLessThan(a!.ts);
    expect(s.readings({ after: a!.seq, limit: 10 }).items.map((r) => r.value)).toEqual([50]);
  });
});
