/**
 * Schedules swapped while the control plane runs (issue 16, ChangePlan control `schedules`):
 * ctx.config is replaced, then ControlComponent.applySchedules(). On the real parts of
 * tests/controlPipeline/rig.ts (Modbus TCP simulator, driver, store): a group whose wanted level
 * changes is driven to it, an override still holds its light, a group the change does not
 * affect is not written, the driver (and its bus) is the same; schedules that cannot be built
 * fall back to every group's defaultLevel, as at start.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../edge/config/schema.js';
import { TECH, settled, startRig, waitFor, type Rig } from '../controlPipeline/rig.js';
import { loggerToLines } from '../helpers/logLines.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Schedules = Config['schedules'];

/** lamp-1 and lamp-2 in group a (defaultLevel 80), lamp-3 in group b (defaultLevel 60, scheduled to 40 all day) */
const SCHED_B: Schedules[number] = { id: 'night-b', groups: ['b'], steps: [{ at: '00:00', level: 40 }] };

async function rigWithGroups(): Promise<{ rig: Rig; logLines: string[] }> {
  const r = await startRig({
    config: {
      devices: [
        { id: 'lamp-1', bus: 'tcp', unit: 1, profile: 'streetlight-controller', poll: 60_000, groups: ['a'] },
        { id: 'lamp-2', bus: 'tcp', unit: 2, profile: 'streetlight-controller', poll: 60_000, groups: ['a'] },
        { id: 'lamp-3', bus: 'tcp', unit: 3, profile: 'streetlight-controller', poll: 60_000, groups: ['b'] },
      ],
      groups: [
        { id: 'a', defaultLevel: 80 },
        { id: 'b', defaultLevel: 60 },
      ],
      schedules: [SCHED_B],
    },
    noControl: true,
  });
  const logLines: string[] = [];
  r.t.ctx.log = loggerToLines(logLines, 'info');
  await r.startControl();
  await settled(r);
  return { rig: r, logLines };
}

const writesTo = (r: Rig, unit: number): number => r.writes.filter((w) => w.unit === unit).length;

/** What the applier does: the new Config in ctx.config, then the component told. */
function changeSchedules(r: Rig, schedules: Schedules, gateway: Partial<Config['gateway']> = {}): void {
  r.t.ctx.config = { ...r.t.ctx.config, schedules, gateway: { ...r.t.ctx.config.gateway, ...gateway } };
  r.control.applySchedules();
}

describe('ControlComponent.applySchedules', () => {
  it('drives the lights whose wanted level changes, keeps an override, and writes nothing to the others', async () => {
    const g = await rigWithGroups();
    rig = g.rig;
    expect(rig.level(1).setpoint).toBe(80);
    expect(rig.level(3).setpoint).toBe(40);
    const override = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'override', level: 95, durationS: 3600, reason: 'street works' }, TECH).row.id);
    expect(override.status).toBe('verified');
    expect(rig.level(2).setpoint).toBe(95);
    const before = { 1: writesTo(rig, 1), 2: writesTo(rig, 2), 3: writesTo(rig, 3) };
    const rowsBefore = rig.t.store.listCommands({ limit: 1000 }).length;

    // a new program for group a, all day at 30; group b's as it was
    changeSchedules(rig, [SCHED_B, { id: 'night-a', groups: ['a'], steps: [{ at: '00:00', level: 30 }] }]);

    await waitFor('lamp-1 driven to the new schedule level', () => rig!.level(1).setpoint === 30);
    await settled(rig);
    expect(rig.control.wanted('lamp-1')).toMatchObject({ level: 30, source: { kind: 'schedule', schedule: 'night-a', group: 'a' }, asserted: 30, verified: 30 });
    // the override is still in force and its light untouched
    expect(rig.control.wanted('lamp-2')).toMatchObject({ level: 95, source: { kind: 'claim', claim: { id: override.id } } });
    expect(rig.level(2).setpoint).toBe(95);
    expect(writesTo(rig, 2)).toBe(before[2]);
    // group b: the same level, not written
    expect(rig.level(3).setpoint).toBe(40);
    expect(writesTo(rig, 3)).toBe(before[3]);
    expect(writesTo(rig, 1)).toBeGreaterThan(before[1]);

    // one assert row, for lamp-1, on the schedule's account, with the reason
    const rows = rig.t.store.listCommands({ limit: 1000 });
    expect(rows.length - rowsBefore).toBe(1);
    const assert = rows.find((c) => c.action === 'assert' && c.params.reason === 'schedules');
    expect(assert).toMatchObject({ target: { kind: 'device', id: 'lamp-1' }, source: { role: 'schedule', principal: 'night-a' }, status: 'verified' });
    expect(rig.t.store.getCommand(override.id)!.status).toBe('verified');
    expect(g.logLines.some((l) => l.includes('control: schedules replaced'))).toBe(true);

    // the override released: lamp-2 falls to the new schedule, not to the old defaultLevel
    const rel = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'release', commandId: override.id }, TECH).row.id);
    expect(rel.status).toBe('verified');
    expect(rig.level(2).setpoint).toBe(30);
  });

  it('falls back to every group\'s defaultLevel when the schedules cannot be built (a sun step without lat/lon), and logs it', async () => {
    const g = await rigWithGroups();
    rig = g.rig;
    expect(rig.t.ctx.config.gateway.lat).toBeUndefined();
    changeSchedules(rig, [SCHED_B, { id: 'dusk-a', groups: ['a'], steps: [{ at: 'sunset', level: 20 }] }]);
    await waitFor('group b back at its defaultLevel', () => rig!.level(3).setpoint === 60);
    await settled(rig);
    expect(rig.level(1).setpoint).toBe(80); // group a: defaultLevel, as before: not written
    expect(rig.control.wanted('lamp-3')).toMatchObject({ level: 60, source: { kind: 'default', group: 'b' } });
    expect(g.logLines.some((l) => l.includes('schedules not usable'))).toBe(true);

    // lat/lon given: the sun step runs
    const writes1 = writesTo(rig, 1);
    changeSchedules(rig, [SCHED_B, { id: 'dusk-a', groups: ['a'], steps: [{ at: 'sunset', level: 20 }] }], { lat: 52.37, lon: 4.89 });
    await waitFor('lamp-1 on the sunset step', () => rig!.level(1).setpoint === 20);
    await waitFor('lamp-3 on its schedule again', () => rig!.level(3).setpoint === 40);
    expect(writesTo(rig, 1)).toBeGreaterThan(writes1);
  });

  it('does nothing when the control plane is not running; the next start reads ctx.config', async () => {
    rig = await startRig({ config: { groups: [{ id: 'main', defaultLevel: 80 }] } });
    await settled(rig);
    await rig.control.stop();
    const writes = rig.writes.length;
    changeSchedules(rig, [{ id: 'all-main', groups: ['main'], steps: [{ at: '00:00', level: 35 }] }]);
    expect(rig.writes.length).toBe(writes);
    await rig.control.start();
    await waitFor('the new schedule asserted at start', () => [1, 2, 3].every((u) => rig!.level(u).setpoint === 35));
  });
});
