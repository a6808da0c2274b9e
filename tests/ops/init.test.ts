import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { BrokerUsers } from '../../edge/broker/auth.js';
import { loadConfig } from '../../edge/config/index.js';
import { isBcryptHash } from '../../edge/control/passwords.js';
import { demoSecrets, findDemoSecrets } from '../../edge/ops/demoSecrets.js';
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

  it('creates the output directory and writes a config whose API and broker are on, with fresh secrets only its owner can read', async () => {
    dir = tempDir('streetbox-init-');
    const out = dir.file('etc/streetbox/devices.yaml');
    const other = dir.file('other/devices.yaml');
    // and a second gateway, made at the same time (it must get secrets of its own)
    const [r, second] = await Promise.all([
      runCli(['init', '--out', out, '--skip-serial', '--gateway-id', 'cab-1', '--storage', dir.file('var/streetbox.db')]),
      runCli(['init', '--out', other, '--skip-serial', '--credentials', dir.file('other/creds')]),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const credentials = `${out}.credentials`;
    expect(r.stdout).toContain(`are in ${credentials} (mode 0600)`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(credentials).mode & 0o777).toBe(0o600);

    const { config } = loadConfig(out);
    expect(config.storage.path).toBe(dir.file('var/streetbox.db'));
    expect(config.api.enabled).toBe(true);
    expect(config.broker.enabled).toBe(true);
    expect(config.broker.allowAnonymous).toBe(false);
    expect(config.nodeRed.enabled).toBe(false);
    const creds = Object.fromEntries(
      readFileSync(credentials, 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => l.split('=') as [string, string]),
    );
    expect(Object.keys(creds)).toEqual(['STREETBOX_TOKEN', 'BROKER_TECHNICIAN_PASSWORD', 'NODERED_TECHNICIAN_PASSWORD']);
    expect(config.api.tokens).toEqual([{ name: 'technician', token: creds.STREETBOX_TOKEN, role: 'technician' }]);
    expect(creds.STREETBOX_TOKEN!.length).toBeGreaterThanOrEqual(43);
    // devices.yaml holds only hashes of the passwords
    const text = readFileSync(out, 'utf8');
    expect(text).not.toContain(creds.BROKER_TECHNICIAN_PASSWORD!);
    expect(text).not.toContain(creds.NODERED_TECHNICIAN_PASSWORD!);
    const users = new BrokerUsers(false);
    await users.load(config.broker.users);
    expect(await users.login('technician', Buffer.from(creds.BROKER_TECHNICIAN_PASSWORD!))).toMatchObject({ ok: true });
    expect(isBcryptHash(config.nodeRed.users[0]!.passwordHash!)).toBe(true);
    expect(config.nodeRed.credentialSecret!.length).toBeGreaterThanOrEqual(32);
    expect(findDemoSecrets(config, demoSecrets())).toEqual([]);

    // the second gateway got secrets of its own
    expect(second.code, second.stderr).toBe(0);
    const secondConfig = loadConfig(other).config;
    expect(secondConfig.api.tokens[0]!.token).not.toBe(config.api.tokens[0]!.token);
    expect(secondConfig.nodeRed.credentialSecret).not.toBe(config.nodeRed.credentialSecret);
    expect(existsSync(`${other}.credentials`)).toBe(false);
    expect(statSync(dir.file('other/creds')).mode & 0o777).toBe(0o600);
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
    // nor the credentials of an earlier init
    const again = await runCli(['init', '--out', dir.file('new.yaml'), '--skip-serial', '--credentials', `${out}.credentials`]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${out}.credentials exists`);
    expect(existsSync(dir.file('new.yaml'))).toBe(false);
  });
});
