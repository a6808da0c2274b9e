import { describe, expect, it } from 'vitest';
import { Arbiter, membershipFromConfig, type Target } from '../../edge/control/arbiter.js';
import { ControlError } from '../../edge/control/errors.js';
import { createScheduler } from '../../edge/control/schedule.js';
import { sunDay } from '../../edge/control/sun.js';
import { configSchema, type Config } from '../../edge/config/schema.js';
import { FakeClock } from '../support/fakeClock.js';

const H = 3_600_000;
const M = 60_000;
const utc = (y: number, mo: number, d: number, h = 0, mi = 0) => Date.UTC(y, mo - 1, d, h, mi);

function config(): Config {
  return configSchema.parse({
    gateway: { id: 'gw1', lat: 52.37, lon: 4.9, timezone: 'Europe/Amsterdam' },
    buses: [{ id: 'line1', type: 'tcp', host: '127.0.0.1' }],
    devices: [
      { id: 'lamp-1', bus: 'line1', unit: 1, profile: 'streetlight-controller', groups: ['main'] },
      { id: 'lamp-2', bus: 'line1', unit: 2, profile: 'streetlight-controller', groups: ['main'] },
      { id: 'lamp-3', bus: 'line1', unit: 3, profile: 'streetlight-controller', groups: ['park', 'path'] },
      { id: 'lamp-4', bus: 'line1', unit: 4, profile: 'streetlight-controller', groups: ['unlisted'] },
    ],
    groups: [
      { id: 'main', defaultLevel: 80 },
      { id: 'park', defaultLevel: 30 },
      { id: 'path', defaultLevel: 60 },
    ],
    schedules: [
      {
        id: 'night',
        groups: ['main'],
        steps: [
          { at: 'sunset', level: 100 },
          { at: '23:00', level: 50 },
          { at: 'sunrise', level: 0 },
        ],
      },
    ],
  });
}

const lamp1: Target = { kind: 'device', id: 'lamp-1' };
const maint = { role: 'maintenance', principal: 'anna' } as const;
const central = { role: 'central', principal: 'city-ops' } as const;
const tech = { role: 'technician', principal: 'piet' } as const;

function setup(start = utc(2026, 11, 24, 18)) {
  const cfg = config();
  const clock = new FakeClock(start); // 19:00 CET, after sunset: the schedule says 100
  const scheduler = createScheduler(cfg.schedules, cfg.gateway);
  let n = 0;
  const arbiter = new Arbiter({ clock, membership: membershipFromConfig(cfg), schedule: scheduler, newId: () => `c${++n}` });
  return { cfg, clock, scheduler, arbiter };
}

describe('arbiter: priority and expiry on a fake clock', () => {
  it('a maintenance override expires → the schedule → no schedule left (config reload) → defaultLevel', async () => {
    const { clock, arbiter } = setup();
    expect(arbiter.wanted(lamp1)).toMatchObject({ level: 100, source: { kind: 'schedule', schedule: 'night', step: 0 } });
    arbiter.claim({ target: lamp1, level: 20, source: maint, durationMs: 2 * H, reason: 'road works' });
    expect(arbiter.wanted(lamp1)).toMatchObject({ level: 20, source: { kind: 'claim', claim: { priority: 50, reason: 'road works' } } });
    expect(arbiter.nextChange()).toBe(clock.now() + 2 * H);

    await clock.advance(2 * H - 1);
    expect(arbiter.wanted(lamp1).level).toBe(20);
    await clock.advance(1);
    // expired at exactly expiresAt, even before expire() has removed it
    expect(arbiter.wanted(lamp1)).toMatchObject({ level: 100, source: { kind: 'schedule' } });
    expect(arbiter.expire().map((c) => c.id)).toEqual(['c1']);
    expect(arbiter.list()).toEqual([]);

    // 23:00 CET: the schedule's next step
    await clock.advance(utc(2026, 11, 24, 22) - clock.now());
    expect(arbiter.wanted(lamp1)).toMatchObject({ level: 50, source: { kind: 'schedule', step: 1 } });

    arbiter.setSchedule(null);
    expect(arbiter.wanted(lamp1)).toEqual({ level: 80, source: { kind: 'default', group: 'main' } });
  });

  it('technician beats central beats maintenance; releases and expiries fall back in order', async () => {
    const { clock, arbiter } = setup();
    const m = arbiter.claim({ target: lamp1, level: 40, source: maint, reason: 'm' });
    const c = arbiter.claim({ target: lamp1, level: 60, source: central, durationMs: H, reason: 'c' });
    const t = arbiter.claim({ target: lamp1, level: 90, source: tech, reason: 't' });
    expect([m.priority, c.priority, t.priority]).toEqual([50, 70, 90]);
    expect(arbiter.wanted(lamp1).level).toBe(90);
    // a lower-priority claim made later does not win
    const later = arbiter.claim({ target: lamp1, level: 5, source: maint, reason: 'later' });
    expect(arbiter.wanted(lamp1).level).toBe(90);

    arbiter.release(t.id, tech);
    expect(arbiter.wanted(lamp1).level).toBe(60);
    await clock.advance(H);
    expect(arbiter.wanted(lamp1)).toMatchObject({ level: 5, source: { kind: 'claim', claim: { reason: 'later' } } }); // ties: most recent
    expect(arbiter.expire().map((x) => x.id)).toEqual([c.id]);
    arbiter.release(later.id);
    expect(arbiter.wanted(lamp1).level).toBe(40);
    arbiter.release(m.id, maint);
    expect(arbiter.wanted(lamp1).source.kind).toBe('schedule');
  });

  it('ties at the same priority: the latest start wins, then the latest arrival', () => {
    const { clock, arbiter } = setup();
    arbiter.claim({ target: lamp1, level: 10, source: maint, startsAt: clock.now() - M });
    arbiter.claim({ target: lamp1, level: 30, source: { role: 'maintenance', principal: 'bob' }, startsAt: clock.now() - 2 * M });
    expect(arbiter.wanted(lamp1).level).toBe(10);
    arbiter.claim({ target: lamp1, level: 70, source: maint, startsAt: clock.now() - M });
    expect(arbiter.wanted(lamp1).level).toBe(70);
  });

  it('an explicit priority within the role ceiling; above it is forbidden', () => {
    const { arbiter } = setup();
    arbiter.claim({ target: lamp1, level: 10, source: maint, priority: 59 });
    arbiter.claim({ target: lamp1, level: 20, source: central, priority: 40 });
    expect(arbiter.wanted(lamp1).level).toBe(10);
    const forbidden = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(ControlError);
        return (err as ControlError).code;
      }
      return 'none';
    };
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: maint, priority: 60 }))).toBe('E_FORBIDDEN');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: central, priority: 80 }))).toBe('E_FORBIDDEN');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: tech, priority: 100 }))).toBe('none');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: { role: 'viewer', principal: 'v' } }))).toBe('E_FORBIDDEN');
    // bad input: level 150, a negative duration, priority 0 (the schedule's), an expiry before the start
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 150, source: maint }))).toBe('E_INVALID_COMMAND');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: Number.NaN, source: maint }))).toBe('E_INVALID_COMMAND');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: maint, durationMs: -5 }))).toBe('E_INVALID_COMMAND');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: maint, priority: 0 }))).toBe('E_INVALID_COMMAND');
    expect(forbidden(() => arbiter.claim({ target: lamp1, level: 10, source: maint, startsAt: 1000, expiresAt: 1000 }))).toBe('E_INVALID_COMMAND');
    expect(forbidden(() => arbiter.claim({ id: 'x', target: lamp1, level: 10, source: maint }))).toBe('none');
    expect(forbidden(() => arbiter.claim({ id: 'x', target: lamp1, level: 10, source: maint }))).toBe('E_INVALID_COMMAND');
    // release: a role may release only what it could have claimed
    const t = arbiter.claim({ target: lamp1, level: 99, source: tech });
    expect(forbidden(() => arbiter.release(t.id, maint))).toBe('E_FORBIDDEN');
    expect(forbidden(() => arbiter.release(t.id, { role: 'viewer', principal: 'v' }))).toBe('E_FORBIDDEN');
    expect(forbidden(() => arbiter.release('nope'))).toBe('E_NOT_FOUND');
    expect(arbiter.release(t.id, tech).id).toBe(t.id);
  });
});

describe('arbiter: targets, groups and default levels', () => {
  it('a group claim applies to its devices; a device claim only to its device', () => {
    const { arbiter } = setup();
    arbiter.claim({ target: { kind: 'group', id: 'main' }, level: 35, source: central });
    arbiter.claim({ target: { kind: 'device', id: 'lamp-2' }, level: 15, source: maint, priority: 10 });
    expect(arbiter.wanted(lamp1).level).toBe(35);
    expect(arbiter.wanted({ kind: 'device', id: 'lamp-2' }).level).toBe(35); // the group claim outranks
    expect(arbiter.wanted({ kind: 'group', id: 'main' }).level).toBe(35);
    expect(arbiter.wanted({ kind: 'device', id: 'lamp-3' }).source.kind).toBe('default');
  });

  it('without schedule: the highest defaultLevel of the device groups, 100 when none is configured', () => {
    const { arbiter } = setup();
    expect(arbiter.wanted({ kind: 'device', id: 'lamp-3' })).toEqual({ level: 60, source: { kind: 'default', group: 'path' } });
    expect(arbiter.wanted({ kind: 'device', id: 'lamp-4' })).toEqual({ level: 100, source: { kind: 'default', group: null } });
    expect(arbiter.wanted({ kind: 'group', id: 'park' })).toEqual({ level: 30, source: { kind: 'default', group: 'park' } });
    expect(arbiter.wanted({ kind: 'device', id: 'unknown' })).toEqual({ level: 100, source: { kind: 'default', group: null } });
  });

  it('a claim that starts later applies from its start; nextChange sees it', async () => {
    const { clock, arbiter } = setup();
    const start = clock.now() + 30 * M;
    arbiter.claim({ target: lamp1, level: 5, source: maint, startsAt: start, durationMs: H });
    expect(arbiter.wanted(lamp1).level).toBe(100);
    expect(arbiter.nextChange()).toBe(start);
    await clock.advance(30 * M);
    expect(arbiter.wanted(lamp1).level).toBe(5);
    expect(arbiter.nextChange()).toBe(start + H);
  });

  it('a timer driven by nextChange follows a whole night: schedule, override, expiry, sunrise', async () => {
    const { clock, arbiter } = setup(utc(2026, 11, 24, 12)); // 13:00 CET
    const seen: [number, number, string][] = [];
    let timer: ReturnType<FakeClock['setTimeout']> | null = null;
    const tick = () => {
      arbiter.expire();
      const w = arbiter.wanted(lamp1);
      const last = seen[seen.length - 1];
      if (!last || last[1] !== w.level) seen.push([clock.now(), w.level, w.source.kind]);
      const next = arbiter.nextChange(clock.now(), lamp1);
      if (next !== null) timer = clock.setTimeout(tick, next - clock.now());
    };
    tick();
    arbiter.claim({ target: lamp1, level: 70, source: maint, startsAt: utc(2026, 11, 24, 20), durationMs: 90 * M, reason: 'event' });
    if (timer) clock.clearTimeout(timer);
    tick();
    await clock.advance(utc(2026, 11, 25, 12) - clock.now());
    const day = sunDay(52.37, 4.9, { year: 2026, month: 11, day: 24 });
    const next = sunDay(52.37, 4.9, { year: 2026, month: 11, day: 25 });
    if (day.sunset.kind !== 'event' || next.sunrise.kind !== 'event') throw new Error('no sun events');
    expect(seen).toEqual([
      [utc(2026, 11, 24, 12), 0, 'schedule'],
      [day.sunset.at, 100, 'schedule'],
      [utc(2026, 11, 24, 20), 70, 'claim'],
      [utc(2026, 11, 24, 21, 30), 100, 'schedule'],
      [utc(2026, 11, 24, 22), 50, 'schedule'],
      [next.sunrise.at, 0, 'schedule'],
    ]);
  });
});

describe('arbiter: persistence', () => {
  it('claims survive a restart as plain JSON rows; expired and bad rows are reported', async () => {
    const { clock, arbiter, cfg, scheduler } = setup();
    arbiter.claim({ target: lamp1, level: 10, source: maint, startsAt: clock.now() - M, rampS: 5, reason: 'a' });
    arbiter.claim({ target: lamp1, level: 30, source: maint, startsAt: clock.now() - M, reason: 'b' }); // same start: arrival decides
    arbiter.claim({ target: { kind: 'group', id: 'main' }, level: 60, source: central, durationMs: 10 * M, reason: 'c' });
    const json = JSON.stringify(arbiter.toRows());
    const rows = JSON.parse(json) as unknown[];
    rows.push({ id: 'bad', level: 'x' });

    await clock.advance(20 * M); // the central claim expires while the gateway is down
    let n = 100;
    const after = new Arbiter({ clock, membership: membershipFromConfig(cfg), schedule: scheduler, newId: () => `r${++n}` });
    const r = after.restore(rows);
    expect(r.restored.map((c) => c.reason)).toEqual(['a', 'b']);
    expect(r.expired.map((c) => c.reason)).toEqual(['c']);
    expect(r.invalid).toHaveLength(1);
    expect(r.invalid[0]!.index).toBe(3);
    expect(after.wanted(lamp1)).toMatchObject({ level: 30, source: { kind: 'claim', claim: { reason: 'b' } } });
    // a new claim after the restart is still the most recent arrival
    after.claim({ target: lamp1, level: 45, source: maint, startsAt: clock.now() - 21 * M });
    expect(after.wanted(lamp1).level).toBe(45);
    expect(after.get('c1')).toMatchObject({ rampS: 5, source: maint });
  });
});
