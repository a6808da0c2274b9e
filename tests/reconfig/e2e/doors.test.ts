/**
 * The technician's doors on a real gateway process (`bin/streetbox.js start`, the bundle, on a
 * temp devices.yaml with comments and simulate: true). Proves:
 *  - an edit of the file (a schedule level) + SIGHUP, then another + `streetbox reload`: each a
 *    new version from `file`, confirmed; the file's comments stay as written;
 *  - a broken edit + `streetbox reload`: rejected with the problem at line:col of the file, exit
 *    2; the old version keeps running;
 *  - `streetbox config history` lists them; `streetbox config show <v>` shows a password as `***`;
 *  - `streetbox config apply <file>` goes through the API and is confirmed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigVersion } from '../../../edge/reconfig/types.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { runCli } from '../../support/cli.js';
import { TECH_TOKEN, spawnGateway, where, type GatewayProcess } from './support.js';

const PASSWORD = 'door-secret-password-1';
const YAML = `# doors e2e: a gateway run as a process
gateway:
  id: gw-doors        # the cabinet's id
storage:
  path: data/gw.db    # relative to this file
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 500ms }
groups:
  - { id: spare }
schedules:
  - id: night
    groups: [spare]
    steps:
      # the night level: the knob this test turns
      - { at: '22:00', level: 40 }
broker:
  host: 127.0.0.1
  port: 0
  users:
    - { username: tech, password: ${PASSWORD}, role: technician }   # a secret: never shown
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TECH_TOKEN}, role: technician }
simulate: true
`;

let gw: GatewayProcess;
let scratch: TempDir;
/** the versions each step made, by name */
const made: Record<string, number> = {};

beforeAll(async () => {
  scratch = tempDir('streetbox-e2e-doors-');
  gw = await spawnGateway(YAML);
});

afterAll(async () => {
  await gw?.stop();
  scratch?.remove();
});

async function versions(): Promise<{ versions: ConfigVersion[]; running: number }> {
  const res = await fetch(`http://127.0.0.1:${gw.port}/api/v1/config/versions`, { headers: { authorization: `Bearer ${TECH_TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { versions: ConfigVersion[]; running: number };
}

const edit = (level: number): string => YAML.replace('level: 40', `level: ${level}`);

describe('the file door', () => {
  it('an edit + SIGHUP: a new version from file, confirmed, the comments kept', async () => {
    const before = (await versions()).running;
    const text = edit(45);
    writeFileSync(gw.file, text);
    gw.child.kill('SIGHUP');
    const v = await waitFor('the edit confirmed', async () => (await versions()).versions.find((x) => x.version > before && x.stage === 'confirmed'), 15_000);
    expect(v).toMatchObject({ source: 'file', principal: 'file', running: true, components: ['control schedules'] });
    made.sighup = v.version;
    expect(readFileSync(gw.file, 'utf8')).toBe(text);
    // the file door never rewrites the file: the technician's comments are as written
    const shown = await runCli(['config', 'show', String(v.version), '-c', gw.file]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('# the night level: the knob this test turns');
    expect(shown.stdout).toContain("level: 45 }");
  });

  it('an edit + `streetbox reload`: confirmed, exit 0', async () => {
    const before = (await versions()).running;
    writeFileSync(gw.file, edit(50));
    const r = await runCli(['reload', '-c', gw.file, '--timeout', '30s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/version \d+ confirmed/);
    const now = await versions();
    expect(now.running).toBeGreaterThan(before);
    expect(now.versions[0]).toMatchObject({ version: now.running, source: 'file', stage: 'confirmed' });
    made.reload = now.running;
  });

  it('a broken edit + `streetbox reload`: rejected at line:col, exit 2, the old version keeps running', async () => {
    const good = edit(50);
    const before = (await versions()).running;
    const broken = good.replace('poll: 500ms', 'poll: fast');
    writeFileSync(gw.file, broken);
    const r = await runCli(['reload', '-c', gw.file, '--timeout', '30s']);
    expect(r.code).toBe(2);
    const at = where(broken, 'poll: fast', 'fast');
    expect(r.stderr).toContain(`${gw.file}:${at.line}:${at.col}`);
    expect(r.stdout).toMatch(/rejected/);
    const now = await versions();
    expect(now.running).toBe(before);
    expect(now.versions[0]).toMatchObject({ source: 'file', stage: 'rejected' });
    made.broken = now.versions[0]!.version;
    expect(gw.alive()).toBe(true);
    // the technician puts the good text back
    writeFileSync(gw.file, good);
  });
});

describe('the CLI', () => {
  it('`config history` lists the versions, newest first, the running one marked', async () => {
    const r = await runCli(['config', 'history', '-c', gw.file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^  ${made.broken}\\s+rejected\\s+file\\s+file\\b.*the configuration is not valid`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^\\* ${made.reload}\\s+confirmed\\s+file\\s+file\\b`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^  ${made.sighup}\\s+confirmed\\s+file\\s+file\\b`, 'm'));
    const order = [made.broken, made.reload, made.sighup].map((v) => r.stdout.search(new RegExp(`^[* ] ${v}\\s`, 'm')));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('`config show <v>` shows the password as ***', async () => {
    const r = await runCli(['config', 'show', String(made.reload), '-c', gw.file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/password: \*\*\*/);
    expect(r.stdout).not.toContain(PASSWORD);
  });

  it('`config apply <file>` goes through the API and is confirmed', async () => {
    const next = edit(55);
    writeFileSync(scratch.file('next.yaml'), next);
    const base = (await versions()).running;
    const r = await runCli(['config', 'apply', scratch.file('next.yaml'), '--base', String(base), '--url', `http://127.0.0.1:${gw.port}`, '--token', TECH_TOKEN, '--timeout', '30s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/version \d+ confirmed/);
    const now = await versions();
    expect(now.versions[0]).toMatchObject({ version: now.running, source: 'technician', principal: 'tech', stage: 'confirmed' });
    expect(readFileSync(gw.file, 'utf8')).toBe(next);
  });
});
