// `streetbox dim` and `commands` against a real running gateway (HTTP API, command pipeline,
// Modbus driver, TCP simulator, a schedule): times in the gateway's zone, who sent a command
// named once, ✔/✘ and colours for a terminal only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { isoLocal } from '../../edge/timeFormat.js';
import { waitFor } from '../helpers/wait.js';
import { runCli, tempGateway } from '../support/cli.js';

const ANSI = /\x1b\[/;
const PIPED = { FORCE_COLOR: '', NO_COLOR: '' };
const TTY = { FORCE_COLOR: '1', NO_COLOR: '' };
const TECH = 'cmd-out-technician-token-0001';
const VIEWER = 'cmd-out-viewer-token-00000001';
const ZONE = 'Europe/Amsterdam';

let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let url: string;

beforeAll(async () => {
  dir = tempGateway(`
gateway: { id: cmd-out, timezone: ${ZONE} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms, groups: [main] }
  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 200ms, groups: [main] }
groups: [{ id: main }]
schedules:
  - { id: park-night, groups: [main], steps: [{ at: '00:00', level: 30 }] }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: demo-technician, token: ${TECH}, role: technician }
    - { name: demo-viewer, token: ${VIEWER}, role: viewer }
simulate: true
`);
  gw = await startGateway({ configPath: dir.config, log: silentLogger() });
  url = `http://127.0.0.1:${gw.built.api!.port()}`;
  // the schedule's own commands: the gateway asserts the scheduled level at start
  await waitFor('the schedule to set lamp-1 to 30 %', () => gw!.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value === 30);
});

afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
});

const rows = async (): Promise<{ id: string; ts: number; status: string; source: { role: string; principal: string } }[]> =>
  JSON.parse((await runCli(['commands', '--json', '--limit', '50', '--url', url, '--token', TECH], { env: PIPED })).stdout) as never;

describe('dim: the outcome', () => {
  it('piped: plain words, no escapes, no marks', async () => {
    const r = await runCli(['dim', 'main', '45', '--group', '--for', '1h', '--url', url, '--token', TECH], { env: PIPED });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(ANSI);
    expect(r.stdout).not.toMatch(/[✔✘]/);
    expect(r.stdout).toMatch(/^command [0-9a-f-]{36} queued: dim group main$/m);
    expect(r.stdout).toMatch(/^command [0-9a-f-]{36} verified: dim group main$/m);
    expect(r.stdout).toMatch(/^ {2}lamp-1: verified at 45 %$/m);
  });

  it('on a terminal: ✔ and green for verified', async () => {
    const r = await runCli(['override', 'lamp-1', '80', '--for', '10m', '--reason', 'road works', '--url', url, '--token', TECH], { env: TTY });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^command [0-9a-f-]{36} \x1b\[32m✔\x1b\[39m \x1b\[32mverified\x1b\[39m: override device lamp-1$/m);
    expect(r.stdout).toContain('  lamp-1: \x1b[32m✔\x1b[39m \x1b[32mverified\x1b[39m at 80 %');
    const rel = await runCli(['release', 'lamp-1', '--url', url, '--token', TECH], { env: TTY });
    expect(rel.code, rel.stderr).toBe(0);
    expect(rel.stdout).toContain('\x1b[32m✔\x1b[39m \x1b[32mverified\x1b[39m: release device lamp-1');
  });
});

describe('commands', () => {
  it('piped: ISO 8601 in the gateway zone, the sender once (schedule:park-night, technician:demo-technician), no escapes, no marks', async () => {
    expect((await runCli(['dim', 'lamp-2', '10', '--url', url, '--token', VIEWER], { env: PIPED })).code).toBe(2); // a rejected one
    // the table and the rows as JSON, read at once (nothing is sent meanwhile)
    const [r, json] = await Promise.all([runCli(['commands', '--limit', '50', '-c', dir.config, '--url', url, '--token', TECH], { env: PIPED }), rows()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(ANSI);
    expect(r.stdout).not.toMatch(/[✔✘]/);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(json.length);
    // each line opens with its row's time, in Amsterdam, with the offset of that instant
    lines.forEach((line, i) => expect(line.startsWith(`${isoLocal(json[i]!.ts, ZONE)}  ${json[i]!.id.slice(0, 8)}  `), line).toBe(true));
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00 {2}/);
    expect(json.some((row) => row.source.role === 'schedule' && row.source.principal === 'park-night')).toBe(true);
    expect(r.stdout).toMatch(/ {2}assert 30 % .* {2}schedule:park-night$/m);
    expect(r.stdout).not.toContain('schedule:schedule:');
    expect(r.stdout).toMatch(/ {2}technician:demo-technician$/m);
    expect(r.stdout).toMatch(/^\S+ {2}[0-9a-f]{8} {2}rejected {2}dim 10 % .* {2}viewer:demo-viewer {2}\(.+\)$/m);
  });

  it('with --url alone (no configuration): UTC, written +00:00', async () => {
    const [r, [row]] = await Promise.all([runCli(['commands', '--limit', '1', '--url', url, '--token', TECH], { env: PIPED }), rows()]);
    expect(r.stdout.startsWith(`${isoLocal(row!.ts, 'UTC')}  `)).toBe(true);
  });

  it('on a terminal: verified ✔ green, rejected ✘ red, columns still aligned', async () => {
    const r = await runCli(['commands', '--limit', '50', '--url', url, '--token', TECH], { env: TTY });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('\x1b[32m✔\x1b[39m \x1b[32mverified\x1b[39m');
    expect(r.stdout).toContain('\x1b[31m✘\x1b[39m \x1b[31mrejected\x1b[39m');
    const plain = r.stdout.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n');
    const actionAt = plain.map((l) => l.search(/ {2}(dim|override|release|assert|on|off)\b/));
    expect(new Set(actionAt).size).toBe(1);
  });
});
