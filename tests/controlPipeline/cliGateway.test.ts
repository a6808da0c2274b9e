import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../edge/main.js';
import { silentLogger } from '../../edge/log.js';
import { runCli, tempGateway } from '../support/cli.js';

// The CLI against a real running gateway: its HTTP API, the command pipeline, the Modbus
// driver and the TCP simulator. A command typed by a technician reaches the controller's
// registers and comes back verified.
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let url: string;
const TECH = 'cli-technician-token-000001';
const VIEWER = 'cli-viewer-token-0000000001';

beforeAll(async () => {
  dir = tempGateway(`
gateway: { id: cli-gw }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms, groups: [main] }
  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 200ms, groups: [main] }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TECH}, role: technician }
    - { name: viewer, token: ${VIEWER}, role: viewer }
simulate: true
`);
  gw = await startGateway({ configPath: dir.config, log: silentLogger() });
  url = `http://127.0.0.1:${gw.built.api!.port()}`;
});

afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
});

describe('streetbox dim / override / release / commands against a running gateway', () => {
  it('dims a group through the API and waits until both controllers verify it', async () => {
    const r = await runCli(['dim', 'main', '45', '--group', '--for', '1h', '--url', url, '--token', TECH]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/verified/);
    // verified by read-back; the polled values reach the store with the next polls (a poll may
    // fall between the writes of ch1 and ch2)
    for (const lamp of ['lamp-1', 'lamp-2']) {
      for (const point of ['ch1_dim_setpoint', 'ch2_dim_setpoint']) {
        await expect.poll(() => gw.context.store.latest(lamp).get(point)?.value, { timeout: 3000 }).toBe(45);
      }
    }
  });

  it('an override wins, a release falls back to the dim below it', async () => {
    const o = await runCli(['override', 'lamp-1', '80', '--for', '10m', '--reason', 'road works', '--url', url, '--token', TECH]);
    expect(o.code, o.stderr).toBe(0);
    await expect.poll(() => gw.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value, { timeout: 3000 }).toBe(80);
    const rel = await runCli(['release', 'lamp-1', '--url', url, '--token', TECH]);
    expect(rel.code, rel.stderr).toBe(0);
    await expect.poll(() => gw.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value, { timeout: 3000 }).toBe(45);
  });

  it('a viewer is refused with exit 2 and nothing changes; commands lists what happened', async () => {
    const r = await runCli(['dim', 'lamp-2', '10', '--url', url, '--token', VIEWER]);
    expect(r.code).toBe(2);
    expect(gw.context.store.latest('lamp-2').get('ch1_dim_setpoint')?.value).toBe(45);
    const list = await runCli(['commands', '--limit', '10', '--url', url, '--token', TECH]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/override/);
    expect(list.stdout).toMatch(/verified/);
  });
});
