/**
 * Devices and groups changed while the control plane runs (issue 16, ChangePlan control
 * `restart`): ctx.config is replaced, then ControlComponent.applyCatalog(). The catalog and the
 * lighting and traffic halves are rebuilt around the same light driver, so on the real parts of
 * tests/controlPipeline/rig.ts (Modbus TCP simulator, driver, store): a new light is driven to its
 * wanted level, a light whose group moved is driven to the new group's level, an override keeps
 * its light, and a light nothing changed for is not written again (a new lamp on one bus must not
 * write to every light of the cabinet, nor send every LoRaWAN node a downlink).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../edge/config/schema.js';
import { TECH, settled, startRig, waitFor, type Rig } from '../controlPipeline/rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const lamp = (unit: number, group: string): Config['devices'][number] =>
  ({ id: `lamp-${unit}`, bus: 'tcp', unit, profile: 'streetlight-controller', poll: 60_000, groups: [group] }) as Config['devices'][number];

const writesTo = (r: Rig, unit: number): number => r.writes.filter((w) => w.unit === unit).length;


describe('ControlComponent.applyCatalog', () => {
  it('drives only the new light and the light whose group changed; keeps an override; writes nothing else', async () => {
    rig = await startRig({
      config: {
        devices: [lamp(1, 'a'), lamp(2, 'a')],
        groups: [
          { id: 'a', defaultLevel: 80 },
          { id: 'b', defaultLevel: 60 },
        ],
      },
    });
    await settled(rig);
    expect(rig.level(1).setpoint).toBe(80);
    const override = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'override', level: 95, durationS: 3600, reason: 'street works' }, TECH).row.id);
    expect(override.status).toBe('verified');
    await settled(rig);
    const before = { 1: writesTo(rig, 1), 2: writesTo(rig, 2) };

    // lamp-3 added to group b; lamp-1 moved to group b; lamp-2 (overridden) unchanged
    const cfg = rig.t.ctx.config;
    const [l1, l2] = cfg.devices;
    rig.t.ctx.config = { ...cfg, devices: [{ ...l1!, groups: ['b'] }, l2!, { ...l1!, id: 'lamp-3', unit: 3, groups: ['b'] }] };
    // as the applier does: the bus first (the driver knows lamp-3), then control
    await rig.modbus.reconfigure(['tcp']);
    const driven = rig.control.applyCatalog();
    expect(driven.sort()).toEqual(['lamp-1', 'lamp-3']);

    await waitFor('lamp-3 driven to group b', () => rig!.level(3).setpoint === 60);
    await waitFor('lamp-1 driven to group b', () => rig!.level(1).setpoint === 60);
    await settled(rig);
    expect(writesTo(rig, 1)).toBeGreaterThan(before[1]);
    expect(writesTo(rig, 2)).toBe(before[2]);
    expect(rig.level(2).setpoint).toBe(95);
    expect(rig.control.wanted('lamp-2')).toMatchObject({ level: 95, source: { kind: 'claim', claim: { id: override.id } } });
    expect(rig.control.deviceKind('lamp-3')).toBe('lighting');

    // commands go to the new catalog: the new light takes a dim
    const dim = await rig.final(rig.control.submit({ kind: 'device', id: 'lamp-3' }, { action: 'dim', level: 20 }, TECH).row.id);
    expect(dim.status).toBe('verified');
    expect(rig.level(3).setpoint).toBe(20);
  });

  it('a removed light is no longer commanded', async () => {
    rig = await startRig({ config: { devices: [lamp(1, 'a'), lamp(2, 'a')], groups: [{ id: 'a', defaultLevel: 70 }] } });
    await settled(rig);
    rig.t.ctx.config = { ...rig.t.ctx.config, devices: rig.t.ctx.config.devices.filter((d) => d.id !== 'lamp-2') };
    expect(rig.control.applyCatalog()).toEqual([]);
    const row = rig.control.submit({ kind: 'device', id: 'lamp-2' }, { action: 'dim', level: 20 }, TECH).row;
    expect(row.status).toBe('rejected');
    expect(rig.control.deviceKind('lamp-2')).toBeUndefined();
  });
});
