/**
 * The nodeRed options: `enabled: false` loads nothing at all; `editor: false` serves no editor
 * and no admin API while HTTP-in nodes still answer under httpNodePath; the flow file is seeded
 * from the default once and never overwritten; a stop/start (the supervisor's restart) runs the
 * same runtime again without piling up websocket handlers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RequestListener } from 'node:http';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../edge/clock.js';
import { configSchema } from '../../edge/config/schema.js';
import { createFlowsComponent, DEFAULT_FLOW_FILE, nightCheck, preparePaths } from '../../edge/flows/index.js';
import type { CommandService } from '../../edge/control/api.js';
import { makeContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { startFlowsRig } from './rig.js';

const loadedNodeRed = (): string[] => Object.keys(createRequire(import.meta.url).cache).filter((k) => /[\\/]node_modules[\\/](node-red|@node-red)[\\/]/.test(k));

describe('nodeRed options', () => {
  it('enabled: false mounts nothing and never loads node-red', async () => {
    const t = makeContext({ nodeRed: { enabled: false } });
    const mounts: string[] = [];
    const host = {
      server: () => {
        throw new Error('the flows component must not touch the server when disabled');
      },
      mount: (prefix: string, _h: RequestListener) => void mounts.push(prefix),
      unmount: () => undefined,
    };
    const flows = createFlowsComponent(t.ctx, { api: host, commands: {} as CommandService });
    await flows.start();
    expect(mounts).toEqual([]);
    expect(flows.paths()).toBeNull();
    expect(loadedNodeRed()).toEqual([]);
    await flows.stop();
    await t.close();
  });

  it('seeds the flow file from the default once, then leaves it to the editor', async () => {
    const t = makeContext({});
    const first = preparePaths(t.ctx);
    expect(first.seeded).toBe(true);
    expect(first.flowFile.startsWith(first.userDir)).toBe(true);
    expect(readFileSync(first.flowFile, 'utf8')).toBe(readFileSync(DEFAULT_FLOW_FILE, 'utf8'));
    writeFileSync(first.flowFile, '[]');
    const again = preparePaths(t.ctx);
    expect(again.seeded).toBe(false);
    expect(readFileSync(again.flowFile, 'utf8')).toBe('[]');
    await t.close();
  });

  it('editor: false serves no editor; HTTP-in nodes answer under httpNodePath; a restart runs the same flows', async () => {
    const tab = 'e0e0e0e000000001';
    const flow = [
      { id: tab, type: 'tab', label: 'http' },
      { id: 'e0e0e0e000000002', type: 'http in', z: tab, url: '/state', method: 'get', upload: false, wires: [['e0e0e0e000000003']] },
      { id: 'e0e0e0e000000003', type: 'streetbox state', z: tab, device: 'lamp-1', point: '', wires: [['e0e0e0e000000004']] },
      { id: 'e0e0e0e000000004', type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
      { id: 'e0e0e0e000000005', type: 'http in', z: tab, url: '/dim', method: 'post', upload: false, wires: [['e0e0e0e000000006']] },
      { id: 'e0e0e0e000000006', type: 'streetbox command', z: tab, targetKind: 'group', target: 'street', role: 'maintenance', principal: 'http-test', priority: '', timeout: 10, wires: [['e0e0e0e000000004']] },
      { id: 'e0e0e0e000000007', type: 'http in', z: tab, url: '/read', method: 'get', upload: false, wires: [['e0e0e0e000000008']] },
      { id: 'e0e0e0e000000008', type: 'streetbox read', z: tab, device: 'lamp-2', point: 'ch1_dim_setpoint', wires: [['e0e0e0e000000004']] },
    ];
    const rig = await startFlowsRig({ nodeRed: { editor: false, httpNodePath: '/local' }, flow });
    try {
      // (the check of the first test sees a loaded node-red, so its empty list means something)
      expect(loadedNodeRed().length).toBeGreaterThan(0);
      expect((await fetch(`${rig.base}/flows/`)).status).toBe(404);
      expect((await fetch(`${rig.base}/flows/flows`)).status).toBe(404);
      expect((await fetch(`${rig.base}/flows/auth/login`)).status).toBe(404);
      await waitFor('lamp-1 polled at its default level', () => rig.t.store.latest('lamp-1').get('ch1_dim_setpoint')?.value === 80, 5000);
      const state = async (): Promise<Record<string, unknown>> => {
        const r = await fetch(`${rig.base}/local/state`);
        expect(r.status).toBe(200);
        return (await r.json()) as Record<string, unknown>;
      };
      expect(await state()).toMatchObject({ ch1_dim_setpoint: 80 });
      // streetbox command: the flow answers with the command row once it is final
      const dim = await fetch(`${rig.base}/local/dim`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ action: 'dim', level: 45, durationS: 60 }) });
      expect(dim.status).toBe(200);
      const row = (await dim.json()) as { status: string; priority: number; source: { role: string; principal: string } };
      expect(row).toMatchObject({ status: 'verified', priority: 50, source: { role: 'maintenance', principal: 'node-red:http-test' } });
      // streetbox read: the point read from the device now
      const read = await fetch(`${rig.base}/local/read`);
      expect(await read.json()).toBe(45);
      // a refused command comes back at once, rejected with its reason
      const refused = await fetch(`${rig.base}/local/dim`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ action: 'dim', level: 150 }) });
      expect(await refused.json()).toMatchObject({ status: 'rejected', result: { code: 'E_INVALID_COMMAND' } });
      const upgrades = rig.api.server().listenerCount('upgrade');
      await rig.flows.stop();
      expect((await fetch(`${rig.base}/local/state`)).status).toBe(404);
      await rig.flows.start();
      await waitFor('lamp-1 polled at 45', () => rig.t.store.latest('lamp-1').get('ch1_dim_setpoint')?.value === 45, 5000);
      expect(await state()).toMatchObject({ ch1_dim_setpoint: 45 });
      expect(rig.api.server().listenerCount('upgrade')).toBe(upgrades);
    } finally {
      await rig.close();
    }
  });
});

describe('night at the gateway (the adaptive flow\'s "sun" setting)', () => {
  const at = (iso: string): number => Date.parse(iso);
  const check = (gateway: Record<string, unknown>) => nightCheck(makeContextLike(gateway));

  it('follows the sun at the gateway\'s place', () => {
    const amsterdam = check({ id: 'gw', lat: 52.3791, lon: 4.9003, timezone: 'Europe/Amsterdam' });
    expect(amsterdam(at('2026-06-21T12:00:00Z'))).toBe(false);
    expect(amsterdam(at('2026-06-21T21:00:00Z'))).toBe(true); // sunset ~20:07 UTC
    expect(amsterdam(at('2026-12-21T07:30:00Z'))).toBe(true); // sunrise ~07:48 UTC
    expect(amsterdam(at('2026-12-21T08:00:00Z'))).toBe(false);
    expect(amsterdam(at('2026-12-21T15:45:00Z'))).toBe(true); // sunset ~15:29 UTC
    const tromso = check({ id: 'gw', lat: 69.65, lon: 18.96, timezone: 'Europe/Oslo' });
    expect(tromso(at('2026-12-21T11:00:00Z'))).toBe(true); // polar night
    expect(tromso(at('2026-06-21T23:00:00Z'))).toBe(false); // midnight sun
  });

  it('uses 20:00-07:00 local time without lat/lon', () => {
    const noSite = check({ id: 'gw', timezone: 'Europe/Amsterdam' });
    expect(noSite(at('2026-01-10T19:30:00Z'))).toBe(true); // 20:30 local
    expect(noSite(at('2026-01-10T05:30:00Z'))).toBe(true); // 06:30 local
    expect(noSite(at('2026-01-10T06:30:00Z'))).toBe(false); // 07:30 local
  });
});

function makeContextLike(gateway: Record<string, unknown>): Parameters<typeof nightCheck>[0] {
  const config = configSchema.parse({ gateway });
  return { config, clock: systemClock };
}
