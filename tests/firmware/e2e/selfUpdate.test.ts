/**
 * Gateway self-update, end to end through the engine (issue 17 Deliver 6, its test "a good release
 * is confirmed; a release that fails to start is rolled back by itself"). The real gateway bundle
 * (dist/streetbox.mjs of `npm run build`) runs as release 1.0.0 under deploy/streetbox-launch,
 * started again by a stand-in for systemd (../releases.ts `Unit`); a technician deploys releases
 * over the HTTP API, their artifacts (tar.gz of a release directory) served by this test over
 * http://127.0.0.1 (a `url` source). One gateway goes through three deployments in order:
 *
 *   2.0.0  the same bundle: fetched, unpacked, switched in, restarted (exit 3), healthy: confirmed
 *   3.0.0  a bundle that exits 1 at once: started 3 times, the launcher switches back to 2.0.0 by
 *          itself, and 2.0.0 journals the job rolled back with the launcher's reason
 *   4.0.0  the same bundle, but running unhealthy (upstream configured and unreachable): it
 *          switches itself back within healthTimeout; 2.0.0 runs again
 */
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMarker } from '../../../edge/firmware/selfUpdate.js';
import type { JobRecord } from '../../../edge/firmware/types.js';
import { ROOT } from '../../support/cli.js';
import { tempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { Unit, makeRelease } from '../releases.js';
import { TECH_TOKEN, api, envelope, freePort, keyPair } from './support.js';

const GW = 'gw-self';
const BUNDLE = join(ROOT, 'dist/streetbox.mjs');
const HEALTH_TIMEOUT_MS = 5000;

interface Artifact {
  file: string;
  size: number;
  sha256: string;
}

interface EventRow {
  seq: number;
  kind: string;
  device: string | null;
  detail: { deployment?: string; stage?: string; code?: string; reason?: string; version?: string };
}

const work = tempDir('streetbox-fw-selfupdate-e2e-');
const releases = join(work.path, 'releases');
const config = join(work.path, 'devices.yaml');
const keys = keyPair();
const served = new Map<string, Buffer>();
let server: Server;
let serverPort = 0;
let apiPort = 0;
let unit: Unit;
let yamlBase = '';

/** The data files a release reads beside its bundle (edge/assets.ts asset()). */
const DATA_DIRS = ['edge/profiles', 'edge/api/static', 'edge/flows'];

/**
 * A release directory packed as its artifact: package.json saying `version`, dist/streetbox.mjs and
 * the data files, no node_modules (the gateway links the running release's). Real files only: an
 * artifact's links may not point outside it (node-tar strips an absolute link path, and strict
 * unpacking refuses that: E_FW_ARTIFACT).
 */
async function releaseArtifact(version: string, streetbox: { bundleFile: string } | { script: string }): Promise<Artifact> {
  const tree = join(work.path, 'build', version);
  mkdirSync(join(tree, 'dist'), { recursive: true });
  writeFileSync(join(tree, 'package.json'), JSON.stringify({ name: 'streetbox', version, type: 'module' }));
  if ('bundleFile' in streetbox) copyFileSync(streetbox.bundleFile, join(tree, 'dist/streetbox.mjs'));
  else writeFileSync(join(tree, 'dist/streetbox.mjs'), streetbox.script);
  for (const d of DATA_DIRS) cpSync(join(ROOT, d), join(tree, d), { recursive: true });
  const file = join(work.path, 'build', `streetbox-${version}.tgz`);
  await tar.c({ gzip: true, file, cwd: tree, portable: true }, ['.']);
  const bytes = readFileSync(file);
  served.set(`/releases/streetbox-${version}.tgz`, bytes);
  return { file, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function deploymentEnvelope(id: string, version: string, a: Artifact): string {
  return envelope(keys, GW, {
    id,
    targets: { gateway: true },
    artifact: { name: 'streetbox', version, size: a.size, sha256: a.sha256, source: { url: `http://127.0.0.1:${serverPort}/releases/streetbox-${version}.tgz` } },
  });
}

function writeConfig(extra: string[] = []): void {
  writeFileSync(config, [yamlBase, ...extra, ''].join('\n'));
}

/** The firmware.* events of a deployment (but firmware.job.waiting), in the order they were recorded. */
async function events(id: string): Promise<EventRow[]> {
  const r = await api(apiPort).call<{ events: EventRow[] }>('GET', '/api/v1/events?limit=10000');
  expect(r.status).toBe(200);
  return r.body.events.filter((e) => e.kind.startsWith('firmware.') && e.kind !== 'firmware.job.waiting' && e.detail.deployment === id);
}

function gatewayJob(jobs: JobRecord[]): JobRecord {
  const j = jobs.find((x) => x.device === GW);
  expect(j).toBeDefined();
  return j!;
}

const current = (): string => readlinkSync(join(releases, 'current'));

/** The command line of a process, or [] once it is gone. */
function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The release the unit runs and how: node in the launcher's place (`exec`, no trial), or node as
 * the launcher's child (a trial). Read from /proc: the launcher starts `<releases>/<version>/dist/streetbox.mjs`.
 */
function runningRelease(): { version: string; as: 'exec' | 'child' } | null {
  const pid = unit.pid;
  if (pid === null) return null;
  const versionOf = (args: string[]): string | undefined => args.map((a) => /\/releases\/([^/]+)\/dist\/streetbox\.mjs$/.exec(a)?.[1]).find(Boolean);
  const own = versionOf(cmdline(pid));
  if (own) return { version: own, as: 'exec' };
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid …: comm may hold spaces, so from the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const child = ppid === pid ? versionOf(cmdline(Number(name))) : undefined;
    if (child) return { version: child, as: 'child' };
  }
  return null;
}

/** The API answers (the gateway is up), whichever release runs. */
async function apiUp(what: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    what,
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${apiPort}/api/v1/health`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs, intervalMs: 50 },
  );
}

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);

  server = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverPort = (server.address() as AddressInfo).port;

  mkdirSync(releases);
  makeRelease(releases, '1.0.0', { bundleFile: BUNDLE });
  symlinkSync('1.0.0', join(releases, 'current'));
  apiPort = await freePort();
  yamlBase = [
    `gateway: { id: ${GW}, timezone: UTC }`,
    `storage: { path: '${join(work.path, 'data/gw.db')}' }`,
    'broker: { enabled: false }',
    `api: { host: 127.0.0.1, port: ${apiPort}, tokens: [ { name: tech, token: ${TECH_TOKEN}, role: technician } ] }`,
    'firmware:',
    '  signingKeys:',
    '    - |',
    ...keys.publicPem
      .split('\n')
      .filter(Boolean)
      .map((l) => `      ${l}`),
    `  selfUpdate: { releases: '${releases}', healthTimeout: ${HEALTH_TIMEOUT_MS / 1000}s }`,
    'simulate: false',
  ].join('\n');
  writeConfig();
  unit = new Unit(releases, ['start', '--config', config]);
  unit.start();
  await apiUp('release 1.0.0 answers');
}, 30_000);

afterAll(async () => {
  if (unit?.running) await Promise.race([unit.stop(), new Promise((r) => setTimeout(r, 15_000))]);
  unit?.kill();
  if (server) await new Promise((r) => server.close(r));
  work.remove();
});

describe('Gateway self-update through the engine, under the launcher and a stand-in for systemd', () => {
  it('a good release (2.0.0) is fetched, switched in, restarted, verified healthy and confirmed', async () => {
    const a = await releaseArtifact('2.0.0', { bundleFile: BUNDLE });
    const tech = api(apiPort);
    const r = await tech.deploy(deploymentEnvelope('self-2', '2.0.0', a));
    expect(r.status, JSON.stringify(r.body)).toBe(202);

    // the new process on trial, as the launcher's child: the job read through the restart
    const verifying = await tech.waitFor('self-2', 'verifying in release 2.0.0', (_rep, jobs) => gatewayJob(jobs).stage === 'verifying', 30_000);
    expect(unit.exits[0]?.code).toBe(3);
    expect(unit.stderr).toContain('release 2.0.0 on trial: start 1 of 3');
    expect(gatewayJob(verifying.jobs)).toMatchObject({ method: 'gateway', versionBefore: '1.0.0', bytesAcked: a.size });

    const done = await tech.waitFor('self-2', 'ended', (rep) => rep.status !== 'running', 30_000);
    expect(done.report.status).toBe('completed');
    expect(gatewayJob(done.jobs)).toMatchObject({ stage: 'confirmed', code: null, versionBefore: '1.0.0', versionAfter: '2.0.0' });
    expect(current()).toBe('2.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(existsSync(join(releases, 'outcome'))).toBe(false); // journaled, then cleared
    expect(readlinkSync(join(releases, '2.0.0/node_modules'))).toBe(join(ROOT, 'node_modules')); // shared with 1.0.0's
    expect(unit.exits.map((e) => e.code)).toEqual([3]);
    // the release confirmed goes on running as the launcher's child (until the unit's next start)
    expect(runningRelease()).toEqual({ version: '2.0.0', as: 'child' });

    const kinds = (await events('self-2')).map((e) => e.kind);
    expect(kinds).toEqual(['firmware.deployment.running', 'firmware.job.fetching', 'firmware.job.transferring', 'firmware.job.activating', 'firmware.job.verifying', 'firmware.job.confirmed', 'firmware.deployment.completed']);
  }, 60_000);

  it('a release that fails to start (3.0.0 exits 1) is switched back by the launcher; the previous release records it rolled back', async () => {
    const a = await releaseArtifact('3.0.0', { script: 'process.exit(1);\n' });
    const tech = api(apiPort);
    const exitsBefore = unit.exits.length;
    const r = await tech.deploy(deploymentEnvelope('self-3', '3.0.0', a));
    expect(r.status, JSON.stringify(r.body)).toBe(202);

    const done = await tech.waitFor('self-3', 'ended', (rep) => rep.status !== 'running', 40_000);
    // 2.0.0 asked for the restart (3); 3.0.0 ended three times (1); the fourth start ran 2.0.0
    expect(unit.exits.slice(exitsBefore).map((e) => e.code)).toEqual([3, 1, 1, 1]);
    expect(unit.stderr).toContain('rolled back: release 3.0.0 did not report healthy (3 starts)');
    expect(gatewayJob(done.jobs)).toMatchObject({ stage: 'rolledBack', code: 'E_FW_ROLLED_BACK', reason: 'release 3.0.0 did not report healthy (3 starts)', versionBefore: '2.0.0' });
    // one job, rolled back: past the default error threshold (0) of its only wave (a rollback, not an expiry)
    expect(done.report).toMatchObject({ status: 'halted', code: 'E_FW_HALTED', reason: 'wave 1: 1 of 1 jobs failed (100 %), more than its error threshold 0 %' });
    expect(current()).toBe('2.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(existsSync(join(releases, 'outcome'))).toBe(false);

    // the previous release, in the launcher's place (no trial)
    expect(runningRelease()).toEqual({ version: '2.0.0', as: 'exec' });

    const recorded = await events('self-3');
    expect(recorded.map((e) => e.kind)).toEqual(['firmware.deployment.running', 'firmware.job.fetching', 'firmware.job.transferring', 'firmware.job.activating', 'firmware.job.rolledBack', 'firmware.deployment.halted']);
    expect(recorded[4]!.detail).toMatchObject({ code: 'E_FW_ROLLED_BACK', reason: 'release 3.0.0 did not report healthy (3 starts)', version: '3.0.0' });
  }, 60_000);

  it('a release that runs but is not healthy (4.0.0, upstream unreachable) switches itself back within healthTimeout', async () => {
    const a = await releaseArtifact('4.0.0', { bundleFile: BUNDLE });
    // the next start reads an upstream nobody listens on: 2.0.0, running, does not reread the file
    const deadPort = await freePort();
    writeConfig([`sync: { url: 'mqtt://127.0.0.1:${deadPort}', reconnectMin: 1s, reconnectMax: 2s }`]);
    const tech = api(apiPort);
    const exitsBefore = unit.exits.length;
    const r = await tech.deploy(deploymentEnvelope('self-4', '4.0.0', a));
    expect(r.status, JSON.stringify(r.body)).toBe(202);

    const verifying = await tech.waitFor('self-4', 'verifying in release 4.0.0', (_rep, jobs) => gatewayJob(jobs).stage === 'verifying', 30_000);
    const trialStarted = verifying.jobs.find((j) => j.device === GW)!.stageAt;
    expect(readMarker(join(releases, 'pending'))).toMatchObject({ deployment: 'self-4', from: '2.0.0', to: '4.0.0', attempts: '1' });

    const done = await tech.waitFor('self-4', 'ended', (rep) => rep.status !== 'running', 30_000);
    const job = gatewayJob(done.jobs);
    expect(job).toMatchObject({ stage: 'rolledBack', code: 'E_FW_ROLLED_BACK', versionBefore: '2.0.0' });
    expect(job.reason).toMatch(/^release 4\.0\.0 did not report healthy within 5 s: .*upstream is not connected/);
    // switched back by itself within its health timeout (the launcher's deadline is a minute later)
    expect(job.stageAt - trialStarted).toBeLessThan(HEALTH_TIMEOUT_MS + 2000);
    expect(done.report).toMatchObject({ status: 'halted', code: 'E_FW_HALTED' });
    // 2.0.0 asked for the restart (3); 4.0.0 asked for one when it switched back (3)
    await waitFor('2.0.0 runs again', () => unit.exits.length >= exitsBefore + 2 && current() === '2.0.0' && !existsSync(join(releases, 'pending')), 10_000);
    await apiUp('release 2.0.0 answers again');
    expect(unit.exits.slice(exitsBefore).map((e) => e.code)).toEqual([3, 3]);
    expect(unit.stderr.split('\n').filter((l) => l.includes('release 4.0.0 on trial'))).toHaveLength(1);
    expect(existsSync(join(releases, 'outcome'))).toBe(false);

    expect(runningRelease()).toEqual({ version: '2.0.0', as: 'exec' });

    const kinds = (await events('self-4')).map((e) => e.kind);
    expect(kinds).toEqual(['firmware.deployment.running', 'firmware.job.fetching', 'firmware.job.transferring', 'firmware.job.activating', 'firmware.job.verifying', 'firmware.job.rolledBack', 'firmware.deployment.halted']);

    // a clean stop of the unit after it all: the release in the launcher's place exits 0
    await unit.stop();
    expect(unit.exits.at(-1)!.code).toBe(0);
  }, 60_000);
});
