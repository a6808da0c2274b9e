/**
 * The embedded runtime loads the default flow, and the adaptive-lighting flow works end to end on
 * the simulators: real Modbus TCP simulator, driver, store, control pipeline, HTTP API and
 * Node-RED; the threshold shortened to about a second through the flow's environment variables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../edge/flows/runtime.js';
import { silentLogger } from '../../edge/log.js';
import type { CommandRecord } from '../../edge/store/types.js';
import { waitFor } from '../helpers/wait.js';
import { LAMPS, startFlowsRig, type FlowsRig } from './rig.js';
import { admin, login } from './support.js';

let rig: FlowsRig;
const flowCommands = (): CommandRecord[] => rig.t.store.listCommands({ limit: 1000 }).filter((c) => c.source.principal === 'node-red:adaptive-lighting');
const levels = (): number[] => LAMPS.map((u) => rig.setpoint(u));

beforeAll(async () => {
  rig = await startFlowsRig();
});
afterAll(async () => {
  await rig?.close();
});

describe('embedded Node-RED: the default flow', () => {
  it('loads flows.json with the streetbox nodes and the adaptive-lighting tab', async () => {
    const token = await login(rig.base);
    const r = await admin(rig.base, token, 'GET', '/flows');
    expect(r.status).toBe(200);
    const flows = (r.json as { flows: { type: string; label?: string }[] }).flows;
    expect(flows.find((n) => n.type === 'tab')?.label).toBe('Adaptive lighting');
    const types = new Set(flows.map((n) => n.type));
    for (const t of ['streetbox in', 'function', 'streetbox command']) expect(types.has(t)).toBe(true);
    const nodes = await admin(rig.base, token, 'GET', '/nodes');
    const sets = nodes.json as { module: string; types: string[]; enabled: boolean }[];
    const set = sets.find((n) => n.module === 'node-red-contrib-streetbox' && n.types.includes('streetbox in'));
    expect(set?.enabled).toBe(true);
    // no shell commands from a flow
    expect(sets.flatMap((n) => n.types)).not.toContain('exec');
    expect(sets.flatMap((n) => n.types)).toContain('function');
  });

  it('dims the street at maintenance priority when traffic stops, and restores it when traffic returns', async () => {
    // traffic flows (8 loops × 0.5 vehicles/s): the lights stay at the group's default level
    await waitFor('the group at its default level', () => levels().every((l) => l === 80), 5000);
    // a fixed wait, as it shows that something does NOT happen: no dim while traffic flows for
    // longer than the flow's sample window plus most of its quiet time (1 s each here)
    await new Promise((r) => setTimeout(r, 1500));
    expect(levels()).toEqual([80, 80]);
    expect(flowCommands()).toHaveLength(0);

    rig.tc().setVehicleRate(0);
    await waitFor('the street dimmed to 30 %', () => levels().every((l) => l === 30), 10_000);
    const dim = flowCommands()[0]!;
    expect(dim).toMatchObject({ action: 'dim', target: { kind: 'group', id: 'street' }, source: { role: 'maintenance', principal: 'node-red:adaptive-lighting' }, priority: 50 });
    expect(dim.params).toMatchObject({ level: 30, durationS: 600 });
    await waitFor('dim verified', () => rig.t.store.getCommand(dim.id)?.status === 'verified', 5000);

    rig.tc().setVehicleRate(2);
    await waitFor('the street restored to 80 %', () => levels().every((l) => l === 80), 10_000);
    const release = flowCommands().find((c) => c.action === 'release');
    expect(release).toMatchObject({ target: { kind: 'group', id: 'street' }, source: { role: 'maintenance' } });
    expect(release!.params.commandId).toBe(dim.id);
    await waitFor('release verified', () => rig.t.store.getCommand(release!.id)?.status === 'verified', 5000);
  });

  it("a technician's override outranks the flow's dim", async () => {
    const tech = { role: 'technician', principal: 'tech-anna' } as const;
    const row = rig.control.submit({ kind: 'group', id: 'street' }, { action: 'override', level: 100, durationS: 60 }, tech).row;
    await waitFor('override applied', () => levels().every((l) => l === 100), 5000);
    rig.tc().setVehicleRate(0);
    await waitFor('the flow dims again', () => flowCommands().filter((c) => c.action === 'dim').length === 2, 10_000);
    const dim = flowCommands().filter((c) => c.action === 'dim')[1]!;
    await waitFor('second dim final', () => ['verified', 'failed'].includes(rig.t.store.getCommand(dim.id)?.status ?? ''), 5000);
    expect(levels()).toEqual([100, 100]);
    rig.control.submit({ kind: 'group', id: 'street' }, { action: 'release', commandId: row.id }, tech);
    await waitFor('the flow dim applies once the override is gone', () => levels().every((l) => l === 30), 5000);
    rig.tc().setVehicleRate(2);
    await waitFor('restored', () => levels().every((l) => l === 80), 10_000);
  });

  it('refuses a command node configured above nodeRed.maxRole (maintenance unless configured), recording nothing', () => {
    const street = { kind: 'group', id: 'street' } as const;
    const rt = createRuntime(rig.t.ctx, { commands: rig.control }, silentLogger());
    const before = rig.t.store.listCommands({ limit: 1000 }).length;
    try {
      for (const role of ['technician', 'central'] as const) {
        expect(() => rt.submit(street, { action: 'override', level: 100, durationS: 60 }, { role, principal: 'node-red:escalate' }).row).toThrow(/flows act at most as maintenance \(nodeRed.maxRole\); this node asks for/);
      }
      expect(rig.t.store.listCommands({ limit: 1000 }).length).toBe(before);
      expect(levels()).not.toContain(100);
    } finally {
      rt.close();
    }
    // configured higher, the role passes the cap (an unknown group: rejected by the pipeline, recorded)
    const trusted = createRuntime({ ...rig.t.ctx, config: { ...rig.t.ctx.config, nodeRed: { ...rig.t.ctx.config.nodeRed, maxRole: 'technician' } } }, { commands: rig.control }, silentLogger());
    try {
      const row = trusted.submit({ kind: 'group', id: 'no-such-group' }, { action: 'on' }, { role: 'technician', principal: 'node-red:trusted' }).row;
      expect(row).toMatchObject({ status: 'rejected', source: { role: 'technician' }, result: { code: 'E_NOT_FOUND' } });
    } finally {
      trusted.close();
    }
  });

  it('contains a throwing flow: node errors are reported, the gateway keeps answering', async () => {
    const token = await login(rig.base);
    const current = await admin(rig.base, token, 'GET', '/flows');
    const rev = (current.json as { rev: string }).rev;
    const tab = 'c0ffee0000000001';
    const bad = [
      { id: tab, type: 'tab', label: 'bad' },
      { id: 'c0ffee0000000002', type: 'inject', z: tab, props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '0.2', once: true, onceDelay: 0.1, wires: [['c0ffee0000000003', 'c0ffee0000000004', 'c0ffee0000000005']] },
      { id: 'c0ffee0000000003', type: 'function', z: tab, func: 'throw new Error("boom");', outputs: 1, wires: [[]] },
      { id: 'c0ffee0000000004', type: 'function', z: tab, func: 'setTimeout(() => { null.x; }, 0); return msg;', outputs: 1, wires: [[]] },
      { id: 'c0ffee0000000005', type: 'streetbox read', z: tab, device: 'no-such-device', point: '', wires: [[]] },
      { id: 'c0ffee0000000006', type: 'streetbox command', z: tab, targetKind: 'group', target: 'nowhere', role: 'maintenance', wires: [[]] },
    ];
    const flows = [...(current.json as { flows: unknown[] }).flows, ...bad];
    const deploy = await admin(rig.base, token, 'POST', '/flows', { rev, flows });
    expect(deploy.status).toBe(200);
    // each failure is a node error in the gateway's log, with the node's type
    type LogLine = { module?: string; node?: string; msg?: string; err?: { message?: string } };
    const text = (e: LogLine): string => `${e.msg ?? ''} ${e.err?.message ?? ''}`;
    const errors = await waitFor('the broken nodes logged', () => {
      const lines = rig.logLines.map((l) => JSON.parse(l) as LogLine);
      const flows = lines.filter((e) => e.module === 'flows');
      const logged = (node: string, re: RegExp): boolean => flows.some((e) => e.node === node && re.test(text(e)));
      return logged('function', /boom/) && logged('function', /null/) && logged('streetbox read', /no-such-device/) && lines;
    });
    const health = await fetch(`${rig.base}/api/v1/health`);
    expect(health.status).toBe(200);
    expect(errors.some((e) => e.module === 'flows' && e.node === 'function' && text(e).includes('boom'))).toBe(true);
    expect(errors.some((e) => e.module === 'flows' && e.node === 'function' && /null/.test(text(e)))).toBe(true);
    expect(errors.some((e) => e.module === 'flows' && e.node === 'streetbox read' && text(e).includes('no-such-device'))).toBe(true);
    expect(errors.some((e) => e.module === 'flows' && e.node === 'streetbox command')).toBe(false);
    // the adaptive flow still runs next to the broken one
    rig.tc().setVehicleRate(0);
    await waitFor('still dims', () => levels().every((l) => l === 30), 10_000);
    rig.tc().setVehicleRate(2);
    await waitFor('still restores', () => levels().every((l) => l === 80), 10_000);
  });
});
