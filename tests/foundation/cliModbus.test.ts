import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { runCli, tempGateway } from '../support/cli.js';

// The commissioning commands against the Modbus TCP simulator on loopback. Runs of a test that
// do not depend on each other go at once (each is a process of its own, ~1.3 s of CPU to start).
let sims: ModbusSimulators;
let gw: ReturnType<typeof tempGateway>;

beforeAll(async () => {
  sims = await startModbusSimulators({
    tcp: [{ id: 'net', host: '127.0.0.1', port: 0, devices: [{ unit: 3, profile: 'streetlight-controller' }, { unit: 9, profile: 'traffic-controller' }] }],
  });
  const port = sims.bus('net').port!;
  gw = tempGateway(`
gateway: { id: cli-modbus }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: ${port}, timeout: 300ms }
devices:
  - { id: lamp-3, bus: net, unit: 3, profile: streetlight-controller }
  - { id: tc-9, bus: net, unit: 9, profile: traffic-controller, allowCommands: true }
`);
});

afterAll(async () => {
  gw.cleanup();
  await sims.stop();
});

describe('streetbox scan / read / write', () => {
  it('scan lists exactly the units that answer', async () => {
    const r = await runCli(['scan', '--config', gw.config, '--bus', 'net', '--units', '1-12', '--timeout', '100']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['3', '9']);
  });

  it('read prints the points of a device with units; one point alone as JSON', async () => {
    const [all, one] = await Promise.all([runCli(['read', '--config', gw.config, 'lamp-3']), runCli(['read', '--config', gw.config, 'lamp-3', 'ch2_on', '--json'])]);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^mains_voltage\s+\d+(\.\d+)? V$/m);
    expect(all.stdout).toMatch(/^ch1_dim_setpoint\s+\d+ %$/m);
    const values = JSON.parse(one.stdout) as { point: string; value: unknown; quality: string }[];
    expect(values).toHaveLength(1);
    expect(values[0]).toMatchObject({ point: 'ch2_on', quality: 'good' });
  });

  it('write sets a point, reads it back, and the device really has it', async () => {
    const r = await runCli(['write', '--config', gw.config, 'lamp-3', 'ch1_dim_setpoint', '37']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('lamp-3 ch1_dim_setpoint = 37 (verified)\n');
    const back = await runCli(['read', '--config', gw.config, 'lamp-3', 'ch1_dim_setpoint', '--json']);
    expect((JSON.parse(back.stdout) as { value: number }[])[0]!.value).toBe(37);
  });

  it('refuses bad input with exit 2: a read-only point, an unknown device, a traffic controller', async () => {
    // none of them reaches unit 9 (the first is lamp-3's), so its count is read once before all three
    const before = sims.stats('net', 9).requests;
    const [ro, unknown, tc] = await Promise.all([
      runCli(['write', '--config', gw.config, 'lamp-3', 'mains_voltage', '1']),
      runCli(['read', '--config', gw.config, 'lamp-99']),
      runCli(['write', '--config', gw.config, 'tc-9', 'program_request', '2']),
    ]);
    expect(ro.code).not.toBe(0);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no device "lamp-99"');
    expect(tc.code).toBe(2);
    expect(tc.stderr).toContain('refused: tc-9 is a traffic controller');
    // refused before anything reached the line
    expect(sims.stats('net', 9).requests).toBe(before);
  });
});

describe('streetbox write on a custom traffic-controller profile', () => {
  it('refuses any device whose profile has a program request point, whatever its name', async () => {
    const custom = tempGateway(`
gateway: { id: cli-modbus-custom }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: ${sims.bus('net').port!}, timeout: 300ms }
profiles:
  - name: acme-junction
    points:
      - { name: program_request, table: holding, address: 0, access: rw }
      - { name: signal_group_1, table: holding, address: 5, access: rw }
  - name: acme-signals
    kind: traffic
    points:
      - { name: plan, table: holding, address: 0, access: rw }
devices:
  - { id: junction-9, bus: net, unit: 9, profile: acme-junction }
  - { id: signals-3, bus: net, unit: 3, profile: acme-signals }
`);
    try {
      const before = sims.stats('net', 9).requests;
      const before3 = sims.stats('net', 3).requests;
      const [r, k] = await Promise.all([
        runCli(['write', '--config', custom.config, 'junction-9', 'signal_group_1', '1']),
        // a profile that says kind: traffic, whatever its points are called
        runCli(['write', '--config', custom.config, 'signals-3', 'plan', '2']),
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('refused: junction-9 is a traffic controller');
      expect(sims.stats('net', 9).requests).toBe(before);
      expect(k.code).toBe(2);
      expect(k.stderr).toContain('refused: signals-3 is a traffic controller');
      expect(sims.stats('net', 3).requests).toBe(before3);
    } finally {
      custom.cleanup();
    }
  });
});
