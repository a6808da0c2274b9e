// Profiles as data: the built-in YAML files validate; devices.yaml profiles add and override.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../edge/config/schema.js';
import { loadProfileFile, loadProfiles } from '../../edge/profiles/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-profiles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadProfiles', () => {
  it('loads both built-in profiles with their alarms and writable points', () => {
    const reg = loadProfiles([]);
    expect(reg.names()).toEqual(expect.arrayContaining(['streetlight-controller', 'traffic-controller']));
    const sl = reg.require('streetlight-controller');
    for (const ch of ['ch1', 'ch2']) {
      for (const suffix of ['on', 'dim_setpoint', 'dim_level', 'power', 'energy', 'burning_hours', 'status', 'lamp_failure', 'driver_fault']) {
        expect(sl.points.map((p) => p.name)).toContain(`${ch}_${suffix}`);
      }
    }
    expect(sl.points.filter((p) => p.access === 'rw').map((p) => p.name)).toEqual(['ch1_on', 'ch1_dim_setpoint', 'ch2_on', 'ch2_dim_setpoint']);
    expect(sl.points.find((p) => p.name === 'ch1_energy')).toMatchObject({ type: 'uint32', unit: 'kWh' });
    const tc = reg.require('traffic-controller');
    expect(tc.points.filter((p) => p.name.startsWith('loop'))).toHaveLength(8);
    expect(tc.points.filter((p) => p.access === 'rw').map((p) => p.name)).toEqual(['program_request', 'request_expiry']);
    expect(tc.alarms.map((a) => a.name)).toContain('cabinet_door');
    expect(reg.isCustom('traffic-controller')).toBe(false);
  });

  it('a custom profile is added, and one with a built-in name replaces it', () => {
    const custom = profileSchema.parse({
      name: 'streetlight-controller',
      points: [{ name: 'dim', table: 'holding', address: 100, access: 'rw' }],
    });
    const extra = profileSchema.parse({ name: 'acme-lc200', points: [{ name: 'power', table: 'input', address: 4, type: 'float32' }] });
    const reg = loadProfiles([custom, extra]);
    expect(reg.require('streetlight-controller').points.map((p) => p.name)).toEqual(['dim']);
    expect(reg.isCustom('streetlight-controller')).toBe(true);
    expect(reg.get('acme-lc200')?.points[0]?.type).toBe('float32');
    expect(reg.get('nope')).toBeUndefined();
    expect(() => reg.require('nope')).toThrow(/unknown profile "nope"; known: /);
  });

  it('rejects an alarm on an unknown point and a writable input register', () => {
    const badAlarm = profileSchema.parse({ name: 'x', points: [{ name: 'a', table: 'holding', address: 0 }], alarms: [{ name: 'al', point: 'b' }] });
    expect(() => loadProfiles([badAlarm])).toThrow(/alarm "al": unknown point "b"/);
    const badRw = profileSchema.parse({ name: 'y', points: [{ name: 'a', table: 'input', address: 0, access: 'rw' }] });
    expect(() => loadProfiles([badRw])).toThrow(/read-only/);
  });

  it('a broken profile file names the file and the field', () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'name: bad\npoints:\n  - { name: a, table: holding, address: -1 }\n');
    expect(() => loadProfileFile(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid profile: points.0.address`));
  });
});
