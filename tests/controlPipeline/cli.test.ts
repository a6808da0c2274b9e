// The control CLI (edge/control/cli.ts) against a running control plane over HTTP. The HTTP API
// proper is another component (edge/api); here a minimal stand-in serves the three endpoints
// the CLI uses (POST …/commands, GET /api/v1/commands/:id, GET /api/v1/commands) straight from
// CommandService, so the CLI is tested against the contract, with the real pipeline behind it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../edge/control/api.js';
import { registerControlCommands } from '../../edge/control/cli.js';
import { ConfigError } from '../../edge/config/index.js';
import { StreetboxError } from '../../edge/errors.js';
import { freePort } from '../helpers/ports.js';
import { settled, startRig, type Rig } from './rig.js';

const TOKENS: Record<string, Principal> = {
  'tech-token-0000000001': { role: 'technician', principal: 'cli-tech' },
  'maint-token-000000001': { role: 'maintenance', principal: 'cli-maint' },
};

let rig: Rig;
let server: Server;
let url: string;
let dir: string;

function standInApi(r: Rig): Server {
  return createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const who = TOKENS[(req.headers.authorization ?? '').replace(/^Bearer /, '')];
    if (!who) return send(401, { status: 'error', code: 'E_UNAUTHORIZED', error: 'no valid token' });
    const u = new URL(req.url ?? '/', 'http://x');
    const post = /^\/api\/v1\/(devices|groups)\/([^/]+)\/commands$/.exec(u.pathname);
    if (req.method === 'POST' && post) {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => {
        const row = r.control.submit({ kind: post[1] === 'groups' ? 'group' : 'device', id: decodeURIComponent(post[2]!) }, text, who).row;
        if (row.status === 'rejected') return send(400, { status: 'error', id: row.id, ...(row.result as object) });
        send(202, { id: row.id, status: row.status });
      });
      return;
    }
    const one = /^\/api\/v1\/commands\/([^/]+)$/.exec(u.pathname);
    if (req.method === 'GET' && one) {
      const row = r.control.get(decodeURIComponent(one[1]!));
      return row ? send(200, row) : send(404, { status: 'error', code: 'E_NOT_FOUND', error: 'no such command' });
    }
    if (req.method === 'GET' && u.pathname === '/api/v1/commands') return send(200, { commands: r.control.list({ limit: Number(u.searchParams.get('limit') ?? 20) }) });
    send(404, { status: 'error', code: 'E_NOT_FOUND', error: 'no route' });
  });
}

/** edge/cli.ts main(): these codes, ConfigError and commander errors exit 2; other errors 1. */
const BAD_INPUT = new Set(['E_USAGE', 'E_NOT_FOUND', 'E_INTERLOCK', 'E_FORBIDDEN', 'E_INVALID_COMMAND', 'E_CONFIG']);

/** Runs the CLI in-process, with the exit code edge/cli.ts main() gives. */
async function cli(args: string[], env: { token?: string } = { token: 'tech-token-0000000001' }): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  const program = new Command('streetbox').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  registerControlCommands(program, io);
  const withToken = env.token && !args.includes('--token') && args[0] !== 'schedule' ? [...args, '--token', env.token] : args;
  try {
    await program.parseAsync(['node', 'streetbox', ...withToken]);
    return { code: 0, out, err };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 0 ? 0 : 2, out, err: err + e.message };
    if (e instanceof ConfigError) return { code: 2, out, err: err + e.message };
    if (e instanceof StreetboxError && BAD_INPUT.has(e.code)) return { code: 2, out, err: err + e.message };
    return { code: 1, out, err: err + (e instanceof Error ? e.message : String(e)) };
  }
}

beforeAll(async () => {
  rig = await startRig();
  await settled(rig);
  server = standInApi(rig);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = mkdtempSync(join(tmpdir(), 'sb-ctl-cli-'));
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rig.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('streetbox dim / override / release / commands', () => {
  it('dim <device> <level> --for 2h waits for the verified outcome (exit 0) and the controller has it', async () => {
    const r = await cli(['dim', 'lamp-1', '40', '--for', '2h', '--url', url]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/command [0-9a-f-]{36} verified: dim device lamp-1/);
    expect(r.out).toMatch(/lamp-1: verified at 40 %/);
    expect(rig.level(1).setpoint).toBe(40);
    const row = rig.control.list({ limit: 1 })[0]!;
    expect(row).toMatchObject({ action: 'dim', source: { role: 'technician', principal: 'cli-tech' }, params: { level: 40, durationS: 7200 } });
  });

  it('dim a group with a ramp', async () => {
    const r = await cli(['dim', 'main', '55', '--group', '--ramp', '1s', '--for', '10m', '--url', url]);
    expect(r.code).toBe(0);
    for (const u of [1, 2, 3]) expect(rig.level(u).setpoint).toBe(55);
    expect(r.out).toMatch(/skipped \(not lights\): tc-1/);
  });

  it('override needs --for and --reason; with them it is verified; release --command hands back', async () => {
    expect((await cli(['override', 'lamp-2', '10', '--url', url])).code).toBe(2);
    const r = await cli(['override', 'lamp-2', '10', '--for', '30m', '--reason', 'cable work', '--url', url]);
    expect(r.code).toBe(0);
    expect(rig.level(2).setpoint).toBe(10);
    const id = /command ([0-9a-f-]{36})/.exec(r.out)![1]!;
    const rel = await cli(['release', 'lamp-2', '--command', id, '--url', url]);
    expect(rel.code).toBe(0);
    expect(rel.out).toMatch(/verified: release device lamp-2/);
    expect(rig.level(2).setpoint).toBe(55);
  });

  it('bad input exits 2: a level out of range, an unknown target (from the config), a rejected command', async () => {
    expect((await cli(['dim', 'lamp-1', '150', '--url', url])).code).toBe(2);
    expect((await cli(['dim', 'lamp-1', '40', '--for', '-5m', '--url', url])).code).toBe(2);
    const rejected = await cli(['override', 'lamp-1', '10', '--for', '1h', '--reason', 'x', '--priority', '80', '--url', url], { token: 'maint-token-000000001' });
    expect(rejected.code).toBe(2);
    expect(rejected.err).toMatch(/priority 80 is above the ceiling 59/);
    const unknown = await cli(['dim', 'lamp-77', '10', '--url', url]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown device "lamp-77"/);
    // with a devices.yaml the CLI knows the targets (and the API address) itself
    const cfg = join(dir, 'devices.yaml');
    writeFileSync(
      cfg,
      `gateway: { id: gw-cli }\napi: { host: 127.0.0.1, port: ${new URL(url).port} }\nbuses: [{ id: b, type: tcp, host: 127.0.0.1 }]\ndevices: [{ id: lamp-1, bus: b, unit: 1, profile: streetlight-controller, groups: [main] }]\n`,
    );
    const offline = await cli(['dim', 'nowhere', '10', '-c', cfg]);
    expect(offline.code).toBe(2);
    expect(offline.err).toMatch(/unknown device or group "nowhere"/);
    const viaConfig = await cli(['dim', 'main', '60', '--for', '1m', '-c', cfg]);
    expect(viaConfig.code).toBe(0);
    expect(viaConfig.out).toMatch(/dim group main/);
    expect((await cli(['dim', 'lamp-1', '10', '--url', url], {})).err).toMatch(/no API token/);
  });

  it('a failed command exits 1 with the reason', async () => {
    rig.sims.setFault('tcp', 3, { kind: 'noAnswer' });
    try {
      const r = await cli(['dim', 'lamp-3', '20', '--for', '1m', '--url', url]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/failed: dim device lamp-3/);
      expect(r.out).toMatch(/lamp-3: failed/);
    } finally {
      rig.sims.setFault('tcp', 3, null);
    }
  });

  it('an unreachable gateway exits 1', async () => {
    const port = await freePort();
    const r = await cli(['dim', 'lamp-1', '20', '--url', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/gateway unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('commands lists recent ones with their status', async () => {
    const r = await cli(['commands', '--limit', '3', '--url', url]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(3);
    // ISO 8601 with the offset: UTC without a configuration (--url alone)
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 {2}[0-9a-f]{8} {2}(verified|failed|rejected)/);
    const json = JSON.parse((await cli(['commands', '--limit', '2', '--json', '--url', url])).out) as { id: string }[];
    expect(json).toHaveLength(2);
  });
});

describe('streetbox schedule preview (offline)', () => {
  it('prints the steps of a week across the spring-forward switch; an unknown group exits 2', async () => {
    const cfg = join(dir, 'sched.yaml');
    writeFileSync(
      cfg,
      [
        'gateway: { id: gw-ams, lat: 52.37, lon: 4.90, timezone: Europe/Amsterdam }',
        'groups: [{ id: centre, defaultLevel: 100 }]',
        'schedules:',
        '  - id: night',
        '    groups: [centre]',
        "    steps: [{ at: sunset-15m, level: 100 }, { at: '02:30', level: 40 }, { at: sunrise, level: 0 }]",
        '',
      ].join('\n'),
    );
    const r = await cli(['schedule', 'preview', '-c', cfg, '--group', 'centre', '--days', '3', '--from', '2026-03-28']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Schedule preview: group "centre" · Europe\/Amsterdam/);
    expect(r.out).toMatch(/Sun 2026-03-29 .*clocks go forward at 02:00/);
    expect(r.out).toMatch(/03:00 \+02:00 +40 % +night\.steps\[1\] 02:30 +\(02:30 does not exist today/);
    expect(r.out.match(/sunset/g)!.length).toBeGreaterThanOrEqual(3);
    const bad = await cli(['schedule', 'preview', '-c', cfg, '--group', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown group "nope"/);
    expect((await cli(['schedule', 'preview', '-c', cfg, '--group', 'centre', '--days', '0'])).code).toBe(2);
  });
});
