/**
 * `streetbox logs`: a JSON log (a file, stdin) printed as the lines a terminal shows, in the
 * gateway's zone (from --zone, else devices.yaml), filtered by level; other lines unchanged.
 * The command runs through commander as the CLI runs it, with a fake io.
 */
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { configuredZone, registerLogCommands, type LogCliOptions } from '../../edge/logCli.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('streetbox-logs-');
afterAll(() => dir.remove());

const WINTER = Date.parse('2026-01-15T12:00:00.000Z');
const rec = (level: number, msg: string, extra: Record<string, unknown> = {}) => JSON.stringify({ level, time: WINTER, pid: 7, gateway: 'gw-1', ...extra, msg });

const LOG = [
  rec(30, 'gateway running', { components: ['ingest', 'modbus'] }),
  '<6>{"level":30,"time":1,"msg":"prefixed"}',
  'plain text from a shell script',
  rec(40, 'modbus device offline', { module: 'modbus', device: 'lamp-12', unit: 12 }),
  rec(50, 'component degraded', { module: 'supervisor', component: 'sync', err: { type: 'Error', message: 'refused', stack: 'Error: refused\n    at x (y.ts:1:1)' } }),
].join('\n');

async function run(args: string[], opts: LogCliOptions = {}): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  const program = new Command('streetbox').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  registerLogCommands(program, io, { isTTY: false, env: {}, defaultConfig: dir.file('absent.yaml'), ...opts });
  await program.parseAsync(['node', 'streetbox', 'logs', ...args]);
  return { out, err };
}

describe('streetbox logs', () => {
  const file = dir.file('gateway.log');
  writeFileSync(file, `${LOG}\n`);

  it('prints a JSON log file as lines in the given zone; other lines pass unchanged', async () => {
    const { out } = await run([file, '--zone', 'Europe/Amsterdam']);
    expect(out.split('\n')).toEqual([
      '2026-01-15T13:00:00.000+01:00 INFO  gateway running components=["ingest","modbus"]',
      '<6>{"level":30,"time":1,"msg":"prefixed"}',
      'plain text from a shell script',
      '2026-01-15T13:00:00.000+01:00 WARN  modbus/lamp-12 modbus device offline unit=12',
      '2026-01-15T13:00:00.000+01:00 ERROR supervisor/sync component degraded err=refused',
      '    Error: refused',
      '        at x (y.ts:1:1)',
      '',
    ]);
    expect(out).not.toContain('\x1b[');
  });

  it('takes the zone from the configuration, else UTC', async () => {
    const config = dir.file('devices.yaml');
    // ${SECRET} is not in this shell: the zone is still found
    writeFileSync(config, 'gateway: { id: gw-1, timezone: America/New_York }\nsync: { url: "mqtts://x", password: "${SECRET}" }\n');
    expect(configuredZone(config)).toBe('America/New_York');
    expect((await run([file, '--config', config])).out).toContain('2026-01-15T07:00:00.000-05:00 INFO  gateway running');
    expect((await run([file])).out).toContain('2026-01-15T12:00:00.000+00:00 INFO  gateway running');
    writeFileSync(dir.file('bad-zone.yaml'), 'gateway: { id: gw-1, timezone: Mars/Olympus }\n');
    expect(configuredZone(dir.file('bad-zone.yaml'))).toBe('UTC');
    expect(configuredZone(dir.file('absent.yaml'))).toBe('UTC');
  });

  it('--level warn leaves out info records and keeps other lines', async () => {
    const { out } = await run([file, '--level', 'warn']);
    expect(out).not.toContain('gateway running');
    expect(out).toContain('plain text from a shell script');
    expect(out).toContain('WARN  modbus/lamp-12');
    expect(out).toContain('ERROR supervisor/sync');
  });

  it('reads stdin without a file, in chunks that split lines and characters', async () => {
    const bytes = Buffer.from(`${rec(30, 'héllo ✔', { device: 'lamp-1' })}\r\n${rec(40, 'no newline at the end')}`);
    const inE = bytes.indexOf(Buffer.from('é')) + 1;
    const inCheck = bytes.indexOf(Buffer.from('✔')) + 2;
    const chunks = [bytes.subarray(0, inE), bytes.subarray(inE, inCheck), bytes.subarray(inCheck)];
    const { out } = await run([], { stdin: Readable.from(chunks) });
    expect(out).toBe('2026-01-15T12:00:00.000+00:00 INFO  lamp-1 héllo ✔\n2026-01-15T12:00:00.000+00:00 WARN  no newline at the end\n');
  });

  it('colours only for a terminal without NO_COLOR', async () => {
    expect((await run([file], { isTTY: true, env: {} })).out).toContain('\x1b[33mWARN');
    expect((await run([file], { isTTY: true, env: { NO_COLOR: '1' } })).out).not.toContain('\x1b[');
  });

  it('refuses an unknown zone or level, and a missing file', async () => {
    await expect(run([file, '--zone', 'Mars/Olympus'])).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringContaining('"--zone"') as unknown });
    await expect(run([file, '--level', 'loud'])).rejects.toThrow(/Allowed choices are trace, debug, info, warn, error, fatal/);
    await expect(run([dir.file('nope.log')])).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(run([dir.path])).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});
