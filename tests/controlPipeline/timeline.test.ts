// Priorities, expiry, schedules, restarts and comms recovery end to end: the control plane runs
// on a fake clock (its timers: schedule steps, claim expiry); the Modbus side is real (TCP
// simulator, driver, SQLite store), so every level change is checked in the controller's registers.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../support/fakeClock.js';
import { CENTRAL, MAINT, TECH, settled, startRig, waitFor, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const M = 60_000;
const H = 3_600_000;
const lamp1 = { kind: 'device', id: 'lamp-1' } as const;

/** both channels of a unit at `level` (and on unless 0) */
async function levelIs(r: Rig, unit: number, level: number): Promise<void> {
  const at = (ch: number) => r.level(unit, ch).setpoint === level && r.level(unit, ch).on === (level > 0 ? 1 : 0);
  await waitFor(`unit ${unit} at ${level} %`, () => at(1) && at(2), 5000);
}

describe('priority and expiry on a fake clock', () => {
  it('technician > central > maintenance > default; each expiry falls back to the next, never dark', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0));
    rig = await startRig({ clock });
    await settled(rig);
    await levelIs(rig, 1, 80); // group defaultLevel
    const maint = await rig.final(rig.control.submit(lamp1, { action: 'dim', level: 40, durationS: 3 * 3600 }, MAINT).row.id);
    const central = await rig.final(rig.control.submit(lamp1, { action: 'override', level: 60, durationS: 2 * 3600, reason: 'event' }, CENTRAL).row.id);
    const tech = await rig.final(rig.control.submit(lamp1, { action: 'override', level: 0, durationS: 3600, reason: 'cable work' }, TECH).row.id);
    expect([maint.status, central.status, tech.status]).toEqual(['verified', 'verified', 'verified']);
    expect(rig.level(1)).toEqual({ setpoint: 0, on: 0 });

    await clock.advance(H);
    await levelIs(rig, 1, 60);
    expect(rig.t.store.getCommand(tech.id)!.status).toBe('expired');
    expect(rig.control.wanted('lamp-1')).toMatchObject({ level: 60, source: { kind: 'claim', claim: { id: central.id } } });

    await clock.advance(H);
    await levelIs(rig, 1, 40);
    await clock.advance(H);
    await levelIs(rig, 1, 80);
    expect(rig.control.wanted('lamp-1')).toMatchObject({ level: 80, source: { kind: 'default', group: 'main' } });
    for (const id of [tech.id, central.id, maint.id]) expect(rig.t.events.some((e) => e.kind === 'command.expired' && e.detail.commandId === id)).toBe(true);
    // the fallbacks were recorded as the gateway's own commands
    const asserts = rig.t.store.listCommands({ limit: 1000 }).filter((c) => c.action === 'assert' && c.params.reason === 'expired' && c.target.id === 'lamp-1');
    expect(asserts.map((c) => c.params.level)).toEqual([60, 40, 80]);
    expect(asserts.every((c) => c.status === 'verified')).toBe(true);
  });

  it('a group override and a device dim: the higher priority wins whichever target it names', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0));
    rig = await startRig({ clock });
    await settled(rig);
    await rig.final(rig.control.submit({ kind: 'group', id: 'main' }, { action: 'override', level: 30, durationS: 600, reason: 'x' }, CENTRAL).row.id);
    await rig.final(rig.control.submit(lamp1, { action: 'dim', level: 90, durationS: 1200 }, MAINT).row.id);
    for (const u of [1, 2, 3]) expect(rig.level(u).setpoint).toBe(30);
    await clock.advance(10 * M);
    await levelIs(rig, 1, 90);
    await levelIs(rig, 2, 80);
  });
});

describe('schedules', () => {
  it('the timer drives each step at its instant; a dim without a duration holds until the next step', async () => {
    // UTC zone keeps the arithmetic plain; DST is covered by tests/control/schedule.test.ts
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 21, 50));
    rig = await startRig({
      clock,
      config: {
        gateway: { id: 'gw-test', timezone: 'UTC' },
        schedules: [{ id: 'night', groups: ['main'], steps: [{ at: '22:00', level: 50 }, { at: '23:00', level: 30 }, { at: '06:00', level: 100 }] }],
      },
    });
    await settled(rig);
    await levelIs(rig, 2, 100); // 06:00 step still in force
    const dim = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'dim', level: 70 }, MAINT).row.id);
    expect(dim.expiresAt).toBe(Date.UTC(2026, 5, 1, 22, 0));
    await levelIs(rig, 2, 70);
    await clock.advance(10 * M); // 22:00
    await levelIs(rig, 1, 50);
    await levelIs(rig, 2, 50);
    const asserts = rig.t.store.listCommands({ limit: 1000 }).filter((c) => c.action === 'assert' && c.source.role === 'schedule');
    expect(asserts.length).toBeGreaterThanOrEqual(3);
    expect(asserts.at(-1)!.source).toEqual({ role: 'schedule', principal: 'night' });
    await clock.advance(H); // 23:00
    await levelIs(rig, 3, 30);
    await clock.advance(7 * H); // 06:00
    await levelIs(rig, 1, 100);
  });
});

describe('restart and recovery', () => {
  it('claims survive a restart and are re-asserted on the controllers', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0));
    rig = await startRig({ clock });
    await settled(rig);
    const ovr = await rig.final(rig.control.submit(lamp1, { action: 'override', level: 15, durationS: 2 * 3600, reason: 'works' }, TECH).row.id);
    const short = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'override', level: 35, durationS: 600, reason: 'short' }, TECH).row.id);
    await rig.control.stop();
    // the controllers lose their settings (a power cut) while the gateway is down, for 30 minutes
    for (const u of [1, 2]) rig.lamp(u).points.set('ch1_dim_setpoint', 100);
    await clock.advance(30 * M);
    const again = await rig.startControl(clock);
    await settled(rig);
    expect(again.wanted('lamp-1')).toMatchObject({ level: 15, source: { kind: 'claim', claim: { id: ovr.id } } });
    await levelIs(rig, 1, 15);
    // the short one expired while the gateway was down: recorded, and the light is back at its default
    expect(rig.t.store.getCommand(short.id)!.status).toBe('expired');
    await levelIs(rig, 2, 80);
    await clock.advance(2 * H);
    await levelIs(rig, 1, 80);
  });

  it('when a controller comes back online (comms.restored) its wanted level is asserted again', async () => {
    rig = await startRig({ poll: 100 });
    await settled(rig);
    await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-3' }, { action: 'override', level: 45, durationS: 600, reason: 'x' }, TECH).row.id);
    rig.sims.setFault('tcp', 3, { kind: 'noAnswer' });
    await waitFor('comms.lost', () => rig!.t.events.some((e) => e.kind === 'comms.lost' && e.device === 'lamp-3'), 5000);
    rig.lamp(3).points.set('ch1_dim_setpoint', 100); // rebooted with its factory default
    rig.lamp(3).points.set('ch2_dim_setpoint', 100);
    rig.sims.setFault('tcp', 3, null);
    await waitFor('comms.restored', () => rig!.t.events.some((e) => e.kind === 'comms.restored' && e.device === 'lamp-3'), 5000);
    await levelIs(rig, 3, 45);
    await waitFor('channel 2 back at 45 %', () => rig!.level(3, 2).setpoint === 45, 5000);
    const re = rig.t.store.listCommands({ limit: 1000 }).filter((c) => c.action === 'assert' && c.params.reason === 'comms.restored');
    expect(re.map((c) => c.target.id)).toEqual(['lamp-3']);
  });
});
