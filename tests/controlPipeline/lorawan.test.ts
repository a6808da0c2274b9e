// LoRaWAN streetlights through the pipeline: the real network server on real UDP with the
// simulated forwarder and nodes; a dim becomes a confirmed downlink, verified by the node's
// ACK / report; a node that is never heard from makes the command expire.
import { afterEach, describe, expect, it } from 'vitest';
import { createControl, type ControlComponent } from '../../edge/control/index.js';
import { silentLogger } from '../../edge/log.js';
import { startLorawanSimulator, type LorawanSimulator } from '../../edge/sim/lorawan/index.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { CLASS_C, loraConfig, startDriver, type Harness } from '../lorawan/support.js';
import { MAINT, TECH } from './rig.js';

let h: Harness | null = null;
let sim: LorawanSimulator | null = null;
let control: ControlComponent | null = null;
let ctx: TestContext | null = null;
afterEach(async () => {
  await control?.stop();
  await sim?.stop();
  await h?.close();
  await ctx?.close();
  control = sim = h = ctx = null;
});

function config() {
  const c = loraConfig();
  return {
    ...c,
    devices: c.devices.map((d) => ({ ...d, groups: ['park'] })),
    groups: [{ id: 'park', defaultLevel: 70 }],
  };
}

describe('LoRaWAN lights', () => {
  it('class C: start asserts the defaultLevel, a dim is verified by the node, off switches the lamp off', async () => {
    const t = (ctx = makeContext(config() as never, { flushIntervalMs: 10 }));
    h = await startDriver({}, {}, t);
    sim = await startLorawanSimulator({
      port: h.port,
      host: '127.0.0.1',
      devices: [{ id: 'lamp-c', activation: 'abp', class: 'C', ...CLASS_C }],
      uplinkIntervalMs: 60_000,
      reportDelayMs: 50,
      keepaliveMs: 200,
      log: silentLogger(),
    });
    const node = sim.nodes[0]!;
    await waitFor('first uplink', () => h!.driver.status().devices.find((x) => x.id === 'lamp-c')!.lastUplink !== null, 5000);
    control = createControl(t.ctx, { lorawan: h.driver, loraTimeoutMs: 3000, loraSilenceMs: 400 });
    await control.start();
    const start = t.store.listCommands({ limit: 100 }).find((c) => c.action === 'assert' && c.target.id === 'lamp-c')!;
    await waitFor('start assert verified', () => t.store.getCommand(start.id)!.status === 'verified', 5000);
    expect(node.state.dimLevel).toBe(70);

    const dim = control.submit({ kind: 'device', id: 'lamp-c' }, { action: 'dim', level: 30, durationS: 600 }, MAINT).row;
    await waitFor('dim outcome', () => ['verified', 'failed', 'expired'].includes(t.store.getCommand(dim.id)!.status), 5000);
    expect(t.store.getCommand(dim.id)!.status).toBe('verified');
    expect(t.store.getCommand(dim.id)!.result).toMatchObject({ devices: { 'lamp-c': { status: 'verified', level: 30, via: 'lorawan' } } });
    expect(node.state.dimLevel).toBe(30);

    const off = control.submit({ kind: 'device', id: 'lamp-c' }, { action: 'off', durationS: 600 }, TECH).row;
    await waitFor('off verified', () => t.store.getCommand(off.id)!.status === 'verified', 5000);
    expect(node.state.lampOn).toBe(false);

    // the node reboots to full light and is silent for a while; its next uplink brings the wanted level back
    node.state.lampOn = true;
    node.state.dimLevel = 100;
    const reasserts = () => t.store.listCommands({ limit: 1000 }).filter((c) => c.action === 'assert' && c.params.reason === 'uplink-after-silence');
    const before = new Set(reasserts().map((c) => c.id));
    // the silence is the input: the next uplink comes more than loraSilenceMs after the last reading stored
    const lastHeard = (): number => Math.max(...[...t.store.latest('lamp-c').values()].map((v) => v.ts));
    await waitFor('a silence longer than loraSilenceMs', () => t.ctx.clock.now() - lastHeard() > 400, 3000);
    sim.uplink(node);
    await waitFor('the re-assert', () => reasserts().some((c) => !before.has(c.id) && c.status === 'verified'), 5000);
    expect(node.state.lampOn).toBe(false);
  });

  it('a node that is never heard from: the downlink expires and the command says so', async () => {
    const t = (ctx = makeContext(config() as never, { flushIntervalMs: 10 }));
    h = await startDriver({}, {}, t);
    control = createControl(t.ctx, { lorawan: h.driver, loraTimeoutMs: 1500 });
    await control.start();
    const row = control.submit({ kind: 'device', id: 'lamp-otaa' }, { action: 'dim', level: 20, durationS: 600 }, TECH).row;
    await waitFor('the downlink to expire', () => ['verified', 'failed', 'expired'].includes(t.store.getCommand(row.id)!.status), 8000);
    const done = t.store.getCommand(row.id)!;
    expect(done.status).toBe('expired');
    expect(done.result).toMatchObject({ devices: { 'lamp-otaa': { status: 'expired' } } });
    expect(t.events.some((e) => e.kind === 'command.expired' && e.detail.commandId === row.id)).toBe(true);
  });
});
