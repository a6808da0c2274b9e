// `streetbox scan`, `read` and `write` against the Modbus TCP simulator on loopback: the plain
// lines a script reads when piped, ✔/✘ and colours on a terminal (FORCE_COLOR=1). Runs that do
// not depend on each other go at once (each is a process of its own, with its own connection).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { runCli, tempGateway } from '../support/cli.js';

const ANSI = /\x1b\[/;
const PIPED = { FORCE_COLOR: '', NO_COLOR: '' };
const TTY = { FORCE_COLOR: '1', NO_COLOR: '' };

let sims: ModbusSimulators;
let gw: ReturnType<typeof tempGateway>;

beforeAll(async () => {
  sims = await startModbusSimulators({ tcp: [{ id: 'net', host: '127.0.0.1', port: 0, devices: [{ unit: 3, profile: 'streetlight-controller' }, { unit: 5, profile: 'streetlight-controller' }] }] });
  gw = tempGateway(`
gateway: { id: cli-modbus-out }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: ${sims.bus('net').port!}, timeout: 300ms }
devices:
  - { id: lamp-3, bus: net, unit: 3, profile: streetlight-controller }
  - { id: lamp-5, bus: net, unit: 5, profile: streetlight-controller }
`);
});

afterAll(async () => {
  gw.cleanup();
  await sims.stop();
});

describe('scan / read / write output', () => {
  it('piped: unit ids one a line, point lines, the write line: no escapes, no marks', async () => {
    const [scan, read, write] = await Promise.all([
      runCli(['scan', '--config', gw.config, '--bus', 'net', '--units', '1-6', '--timeout', '300'], { env: PIPED }),
      runCli(['read', '--config', gw.config, 'lamp-3'], { env: PIPED }),
      runCli(['write', '--config', gw.config, 'lamp-3', 'ch1_dim_setpoint', '42'], { env: PIPED }),
    ]);
    expect(scan.code, scan.stderr).toBe(0);
    expect(scan.stdout).toBe('3\n5\n');
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toMatch(/^ch1_dim_setpoint\s+\d+ %$/m);
    expect(write.stdout).toBe('lamp-3 ch1_dim_setpoint = 42 (verified)\n');
    for (const r of [scan, read, write]) {
      expect(r.stdout).not.toMatch(ANSI);
      expect(r.stdout).not.toMatch(/[✔✘]/);
    }
  });

  it('on a terminal: ✔ for each unit that answers and for a verified write, ✘ when none answers', async () => {
    // the two scans beside the write and the read that follows it
    const [scan, none, [write, read]] = await Promise.all([
      runCli(['scan', '--config', gw.config, '--bus', 'net', '--units', '1-6', '--timeout', '300'], { env: TTY }),
      runCli(['scan', '--config', gw.config, '--bus', 'net', '--units', '7-8', '--timeout', '300'], { env: TTY }),
      runCli(['write', '--config', gw.config, 'lamp-5', 'ch1_dim_setpoint', '43'], { env: TTY }).then(async (w) => [w, await runCli(['read', '--config', gw.config, 'lamp-5', 'ch1_dim_setpoint'], { env: TTY })] as const),
    ]);
    expect(scan.code, scan.stderr).toBe(0);
    expect(scan.stdout).toContain('\x1b[32m✔\x1b[39m \x1b[32munit 3\x1b[39m\n\x1b[32m✔\x1b[39m \x1b[32munit 5\x1b[39m\n');
    expect(scan.stdout).toContain('2 of 6 answered on net');
    expect(none.stdout).toContain('\x1b[31m✘\x1b[39m \x1b[31mno unit answered on net\x1b[39m (tried 2)');
    expect(write.code, write.stderr).toBe(0);
    expect(write.stdout).toBe('\x1b[32m✔\x1b[39m \x1b[32mlamp-5 ch1_dim_setpoint = 43 (verified)\x1b[39m\n');
    expect(read.stdout).toBe('\x1b[2mch1_dim_setpoint\x1b[22m  \x1b[1m43 %\x1b[22m\n');
  });
});
