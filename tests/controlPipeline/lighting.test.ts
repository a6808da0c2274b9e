// Lighting commands end to end: CommandService.submit → arbiter → Modbus driver → TCP simulator
// registers → read-back → row verified, events recorded. Real store, real sockets.
import { afterEach, describe, expect, it } from 'vitest';
import { isEvent } from '../../edge/store/eventKinds.js';
import type { CommandRecord } from '../../edge/store/types.js';
import { CENTRAL, MAINT, TECH, settled, startRig, waitFor, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const events = (r: Rig, id: string) => r.t.events.filter((e) => 'commandId' in e.detail && e.detail.commandId === id).map((e) => e.kind);

describe('lighting commands against the Modbus TCP simulator', () => {
  it('asserts the group defaultLevel at start, then a dim reaches both channels and comes back verified', async () => {
    rig = await startRig();
    await settled(rig);
    // no schedule: defaultLevel 80 of group "main", never dark
    for (const u of [1, 2, 3]) expect(rig.level(u)).toEqual({ setpoint: 80, on: 1 });
    const row = rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'dim', level: 40, durationS: 3600 }, MAINT).row;
    expect(row.status).toBe('queued');
    expect(row.priority).toBe(50);
    const done = await rig.final(row.id);
    expect(done.status).toBe('verified');
    expect(done.result).toMatchObject({ devices: { 'lamp-1': { status: 'verified', level: 40 } } });
    expect(rig.level(1, 1)).toEqual({ setpoint: 40, on: 1 });
    expect(rig.level(1, 2)).toEqual({ setpoint: 40, on: 1 });
    expect(rig.level(2)).toEqual({ setpoint: 80, on: 1 });
    expect(events(rig, row.id)).toEqual(['command.queued', 'command.sent', 'command.verified']);
    const ev = rig.t.events.filter((e) => isEvent(e, 'command.verified')).find((e) => e.detail.commandId === row.id)!;
    expect(ev.device).toBe('lamp-1');
    expect(ev.detail.source).toEqual(MAINT);
    expect(rig.control.wanted('lamp-1')).toMatchObject({ level: 40, asserted: 40, verified: 40, source: { kind: 'claim' } });
  });

  it('off switches every channel off; on brings it back at 100 %', async () => {
    rig = await startRig();
    await settled(rig);
    const off = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'off', durationS: 600 }, TECH).row.id);
    expect(off.status).toBe('verified');
    expect(rig.level(2, 1)).toEqual({ setpoint: 0, on: 0 });
    expect(rig.level(2, 2)).toEqual({ setpoint: 0, on: 0 });
    expect(rig.lamp(2).points.get('ch1_dim_level')).toBe(0);
    const on = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'on', durationS: 600 }, TECH).row.id);
    expect(on.status).toBe('verified');
    expect(rig.level(2)).toEqual({ setpoint: 100, on: 1 });
  });

  it('a group command is one row with a result per light; the traffic controller in the group is skipped, not written', async () => {
    rig = await startRig();
    await settled(rig);
    const before = rig.writes.filter((w) => w.unit === 10).length;
    const row = rig.control.submit({ kind: 'group', id: 'main' }, { action: 'override', level: 25, durationS: 900, reason: 'street works' }, CENTRAL).row;
    const done = await rig.final(row.id);
    expect(done.status).toBe('verified');
    expect(done.target).toEqual({ kind: 'group', id: 'main' });
    expect(Object.keys((done.result as { devices: object }).devices).sort()).toEqual(['lamp-1', 'lamp-2', 'lamp-3']);
    expect((done.result as { skipped: string[] }).skipped).toEqual(['tc-1']);
    for (const u of [1, 2, 3]) expect(rig.level(u).setpoint).toBe(25);
    expect(rig.writes.filter((w) => w.unit === 10).length).toBe(before);
    expect(rig.t.store.listCommands({ limit: 1000 }).filter((c) => c.action === 'override')).toHaveLength(1);
  });

  it('a lower-priority dim under a higher override is recorded but the light stays at the override', async () => {
    rig = await startRig();
    await settled(rig);
    await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-3' }, { action: 'override', level: 90, durationS: 600, reason: 'accident' }, TECH).row.id);
    const dim = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-3' }, { action: 'dim', level: 20, durationS: 600 }, MAINT).row.id);
    expect(dim.status).toBe('verified');
    expect(dim.result).toMatchObject({ devices: { 'lamp-3': { level: 90, heldBy: expect.any(String) } } });
    expect(rig.level(3).setpoint).toBe(90);
  });

  it('release by command id, and release of the caller\'s own claim, fall back to the next level', async () => {
    rig = await startRig();
    await settled(rig);
    const dim = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'dim', level: 60, durationS: 3600 }, MAINT).row.id);
    const ovr = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'override', level: 10, durationS: 3600, reason: 'test' }, TECH).row.id);
    expect(rig.level(1).setpoint).toBe(10);
    const rel = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'release', commandId: ovr.id }, TECH).row.id);
    expect(rel.status).toBe('verified');
    expect(rig.level(1).setpoint).toBe(60);
    expect((rig.t.store.getCommand(ovr.id)!.result as { claim: string }).claim).toBe('released');
    // maintenance releases its own claim without naming it
    const own = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'release' }, MAINT).row.id);
    expect(own.status).toBe('verified');
    expect(own.params.commandId).toBe(dim.id);
    expect(rig.level(1).setpoint).toBe(80);
    // nothing left to release
    const none = rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'release' }, MAINT).row;
    expect(none.status).toBe('rejected');
    expect(none.result).toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('a new command of the same caller on the same target replaces its previous claim', async () => {
    rig = await startRig();
    await settled(rig);
    const first = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'dim', level: 40, durationS: 3600 }, MAINT).row.id);
    await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'dim', level: 60, durationS: 3600 }, MAINT).row.id);
    expect(rig.t.store.getCommand(first.id)!.result).toMatchObject({ claim: 'superseded' });
    await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'release' }, MAINT).row.id);
    // back to the default, not to the superseded 40
    expect(rig.level(2).setpoint).toBe(80);
  });

  it('commands in quick succession: the newest level wins on the controller, every row ends final', async () => {
    rig = await startRig();
    await settled(rig);
    const ids = [10, 20, 30, 40, 50, 60, 70].map((level) => rig!.control.submit({ kind: 'device', id: 'lamp-3' }, { action: 'dim', level, durationS: 600 }, MAINT).row.id);
    const rows = await Promise.all(ids.map((id) => rig!.final(id)));
    expect(rows.every((r) => r.status === 'verified')).toBe(true);
    expect(rig.level(3, 1)).toEqual({ setpoint: 70, on: 1 });
    expect(rig.level(3, 2)).toEqual({ setpoint: 70, on: 1 });
    // coalesced: fewer than 7 full drives reached the wire
    expect(rig.writes.filter((w) => w.unit === 3 && w.address === 11).length).toBeLessThan(7);
  });

  it('maintenance cannot release a technician override', async () => {
    rig = await startRig();
    await settled(rig);
    const ovr = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'override', level: 5, durationS: 600, reason: 'x' }, TECH).row.id);
    const rel = rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'release', commandId: ovr.id }, MAINT).row;
    expect(rel.status).toBe('rejected');
    expect(rel.result).toMatchObject({ code: 'E_FORBIDDEN' });
    expect(rig.level(1).setpoint).toBe(5);
  });

  it('a device that does not answer ends failed with the reason', async () => {
    rig = await startRig();
    await settled(rig);
    rig.sims.setFault('tcp', 2, { kind: 'noAnswer' });
    const row = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'dim', level: 30, durationS: 60 }, TECH).row.id, 8000);
    expect(row.status).toBe('failed');
    const r = row.result as { devices: Record<string, { status: string; reason: string }> };
    expect(r.devices['lamp-2']!.reason).toMatch(/ch1_dim_setpoint/);
    expect(rig.t.events.some((e) => e.kind === 'command.failed' && e.detail.commandId === row.id && typeof e.detail.reason === 'string')).toBe(true);
  });

  it('a ramp steps the setpoint from the current level to the target', async () => {
    rig = await startRig({ deps: { rampStepMs: 40 } });
    await settled(rig);
    const mark = rig.writes.length;
    const row = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'dim', level: 20, rampS: 0.4, durationS: 600 }, TECH).row.id);
    expect(row.status).toBe('verified');
    const setpoints = rig.writes.slice(mark).filter((w) => w.unit === 1 && w.address === 11).map((w) => w.values[0]!);
    expect(setpoints.length).toBeGreaterThanOrEqual(9);
    expect(setpoints.at(-1)).toBe(20);
    for (let i = 1; i < setpoints.length; i++) expect(setpoints[i]!).toBeLessThanOrEqual(setpoints[i - 1]!);
    expect(setpoints[0]!).toBeLessThan(80);
  });

  it('lists recent commands newest first and finds one by id', async () => {
    rig = await startRig();
    await settled(rig);
    const a = rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'dim', level: 50, durationS: 60 }, TECH).row;
    const b = rig.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'dim', level: 150 }, TECH).row;
    await rig.final(a.id);
    const list = rig.control.list({ limit: 2 });
    expect(list.map((c: CommandRecord) => c.id)).toEqual([b.id, a.id]);
    expect(rig.control.list({ limit: 5, status: 'rejected' }).map((c) => c.id)).toEqual([b.id]);
    expect(rig.control.get(a.id)?.status).toBe('verified');
  });
});

describe('a profile with its own ramp register', () => {
  it('gets the ramp time written to the register, then the level, with no gateway steps', async () => {
    const { startModbusSimulators } = await import('../../edge/sim/modbus/index.js');
    const { makeContext } = await import('../helpers/context.js');
    const { createModbusDriver } = await import('../../edge/drivers/modbus/index.js');
    const { createControl } = await import('../../edge/control/index.js');
    const hold = (name: string, address: number) => ({ name, table: 'holding' as const, address, type: 'uint16' as const, wordOrder: 'big' as const, scale: 1, offset: 0, access: 'rw' as const });
    const profile = { name: 'ramp-light', transport: 'modbus' as const, alarms: [], points: [hold('ch1_on', 0), hold('ch1_dim_setpoint', 1), hold('ch1_ramp_s', 2)] };
    const sims = await startModbusSimulators({ tcp: [{ id: 'tcp', devices: [{ unit: 1, profile: 'ramp-light' }] }], profiles: () => profile });
    const writes: { address: number; value: number }[] = [];
    const bank = sims.bus('tcp').units.banks.get(1)!;
    const orig = bank.writeFromWire.bind(bank);
    bank.writeFromWire = (table, address, values) => {
      writes.push({ address, value: values[0]! });
      return orig(table, address, values);
    };
    const t = makeContext({
      profiles: [profile],
      buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port: sims.bus('tcp').port!, timeout: 300 }],
      devices: [{ id: 'ramp-1', bus: 'tcp', unit: 1, profile: 'ramp-light', poll: 60_000 }],
    });
    const modbus = createModbusDriver(t.ctx);
    await modbus.start();
    const control = createControl(t.ctx, { modbus, rampStepMs: 20 });
    try {
      await control.start();
      await waitFor('start assert', () => t.store.listCommands({ limit: 10 }).every((c) => c.status === 'verified'), 5000);
      const mark = writes.length;
      const row = control.submit({ kind: 'device', id: 'ramp-1' }, { action: 'dim', level: 30, rampS: 12, durationS: 60 }, TECH).row;
      await waitFor('verified', () => t.store.getCommand(row.id)?.status === 'verified', 5000);
      expect(writes.slice(mark)).toEqual([
        { address: 2, value: 12 },
        { address: 1, value: 30 },
        { address: 0, value: 1 },
      ]);
    } finally {
      await control.stop();
      await modbus.stop();
      await sims.stop();
      await t.close();
    }
  });
});
