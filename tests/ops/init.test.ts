import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../edge/config/index.js';
import { profileSchema } from '../../edge/config/schema.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { runCli } from '../support/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

// A controller with a register map no built-in profile has (holding 100..101 only).
const ODD = profileSchema.parse({ name: 'odd-meter', transport: 'modbus', points: [{ name: 'kwh', table: 'holding', address: 100, type: 'uint32' }] });

let sims: ModbusSimulators | undefined;
let dir: TempDir | undefined;
afterEach(async () => {
  await sims?.stop();
  sims = undefined;
  dir?.remove();
});

describe('streetbox init', () => {
  it('scans a Modbus TCP endpoint, guesses each unit\'s profile and writes a devices.yaml that validates', async () => {
    const builtin = loadProfiles();
    sims = await startModbusSimulators({
      tcp: [{ id: 'net', host: '127.0.0.1', port: 0, devices: [{ unit: 1, profile: 'streetlight-controller' }, { unit: 2, profile: 'traffic-controller' }, { unit: 5, profile: 'odd-meter' }] }],
      profiles: (name) => (name === 'odd-meter' ? ODD : builtin.require(name)),
    });
    const port = sims.bus('net').port!;
    dir = tempDir('streetbox-init-');
    const out = dir.file('devices.yaml');
    const r = await runCli(['init', '--out', out, '--skip-serial', '--tcp', `127.0.0.1:${port}`, '--units', '1-6', '--timeout', '100', '--gateway-id', 'cabinet-7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`tcp-1 (127.0.0.1:${port}): unit 1 streetlight-controller, unit 2 traffic-controller, unit 5 (unknown profile)`);
    expect(r.stdout).toContain('wrote');

    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^# devices.yaml written by `streetbox init`/);
    expect(text).toContain('# unit 5 on tcp-1 answered but matches no built-in profile');
    const { config } = loadConfig(out);
    expect(config.gateway.id).toBe('cabinet-7');
    expect(config.simulate).toBe(false);
    expect(config.buses).toMatchObject([{ id: 'tcp-1', type: 'tcp', host: '127.0.0.1', port }]);
    expect(config.devices.map((d) => [d.id, d.bus, d.unit, d.profile, d.allowCommands])).toEqual([
      ['lamp-1', 'tcp-1', 1, 'streetlight-controller', false],
      ['tc-1', 'tcp-1', 2, 'traffic-controller', false],
    ]);

    // the written file drives the devices it found
    const read = await runCli(['read', 'lamp-1', 'mains_voltage', '--config', out]);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toMatch(/mains_voltage/);
  });

  it('scans a serial RS-485 line (a socat PTY with a simulated controller) and names it by the path given', async () => {
    sims = await startModbusSimulators({ rtu: [{ id: 'line', baud: 19200, devices: [{ unit: 3, profile: 'streetlight-controller' }] }] });
    const path = sims.bus('line').path!;
    dir = tempDir('streetbox-init-');
    const out = dir.file('devices.yaml');
    const r = await runCli(['init', '--out', out, '--serial', path, '--baud', '19200', '--parity', 'none', '--units', '1-4', '--timeout', '150', '--gateway-id', 'rtu-cabinet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`rs485-1 (${path}): unit 3 streetlight-controller`);
    const { config } = loadConfig(out);
    expect(config.buses).toMatchObject([{ id: 'rs485-1', type: 'serial', path, baud: 19200, parity: 'none' }]);
    expect(config.devices.map((d) => [d.id, d.bus, d.unit, d.profile])).toEqual([['lamp-1', 'rs485-1', 3, 'streetlight-controller']]);
  });

  it('never overwrites silently: refuses an existing file, and --force moves it aside', async () => {
    dir = tempDir('streetbox-init-');
    const out = dir.file('devices.yaml');
    writeFileSync(out, 'mine\n');
    const refused = await runCli(['init', '--out', out, '--skip-serial']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('exists');
    const forced = await runCli(['init', '--out', out, '--skip-serial', '--force', '--gateway-id', 'x']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('0 bus(es), 0 device(s)');
    const aside = readdirSync(dir.path).find((f) => f.startsWith('devices.yaml.before-init-'))!;
    expect(readFileSync(dir.file(aside), 'utf8')).toBe('mine\n');
    expect(loadConfig(out).config.buses).toEqual([]);
  });
});
