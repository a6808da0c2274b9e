/**
 * Crash safety of a configuration change (issue 16): the real gateway process (bin/streetbox.js
 * start on the bundle, `npm run build` first; the README's `npm test` builds) is SIGKILLed at a
 * random moment while it takes each of its CHANGES changes from a technician (PUT /api/v1/config
 * ?wait=staged), alternately a schedule change and a device added to or removed from its bus (so
 * the bus is rewired), and started again each time. After every restart, once the gateway has
 * settled (the running version confirmed, nothing left staged or applied): devices.yaml parses
 * and is byte for byte the old text or the new one, never a mix, and no temp file of the atomic
 * write is left beside it; the version the store marks running has the file's sha256; the
 * change's own record agrees with what runs (confirmed and running when its text is on disk,
 * else closed: rejected or rolled back); the gateway runs the devices the file names; and it
 * takes the next change to its end (a restart that probed an interrupted change must not leave
 * the road blocked). At the end the data file passes `PRAGMA integrity_check` and no seq was
 * handed out twice.
 *
 * The moments are drawn from a seeded PRNG; the seed is in the test's name, and
 * STREETBOX_CRASH_SEED=<n> replays a run. The kill delay counts from the moment the request is
 * sent, so it can land before the change was received, while it is recorded and its file
 * written, during the apply, during the probe, or after the confirm.
 *
 * Two moments a random kill rarely or never meets are set up on purpose: a temp file of the
 * atomic write left by a writer killed in the middle of it (a window of about a millisecond) is
 * swept at the next start; and a breaking change (its bus pointed at a dead port, simulate:
 * false, the bus's peer a simulator process of its own) killed while its probe fails is, after
 * the restart, probed again as a change of that bus and rolled back to the version before it.
 *
 * The three tests run side by side (each its own directory and processes; each asserts with its own
 * `expect`): most of each is waiting for a gateway to start, settle or give up on a probe.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigVersions } from '../../edge/reconfig/versions.js';
import type { ConfigVersion } from '../../edge/reconfig/types.js';
import { mulberry32 } from '../../edge/sim/modbus/model.js';
import { BIN } from '../helpers/demoGateway.js';
import { freePort } from '../helpers/ports.js';
import { spawnSimulators } from '../helpers/simProcess.js';
import { startScriptEnv } from '../helpers/startScript.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const CHANGES = 10;
/** the longest kill delay: a schedule change is confirmed well before it, a bus change may still be proving itself */
const MAX_DELAY_MS = 600;
/** the health probe's bound; a change it cannot confirm by then is rolled back (and then recorded so) */
const CONFIRM_TIMEOUT_S = 5;
const TOKEN = 'crash-technician-token-0001';
const SEED = Number(process.env.STREETBOX_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** STREETBOX_CRASH_TRACE=1: one line per change on stderr (the delay, what the kill found) */
const TRACE = process.env.STREETBOX_CRASH_TRACE === '1';
/** the bounded tail of a process's output kept for a failure's message */
const OUTPUT_TAIL = 20_000;

interface Desired {
  /** the schedule's evening level */
  level: number;
  /** lamp-2 on bus `net` */
  lamp2: boolean;
}

/** The whole devices.yaml of change `n`: every text differs (its first line), so none is `unchanged`. */
function render(n: number, d: Desired, note = ''): string {
  const lamp2 = d.lamp2 ? '  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 100ms, groups: [main] }\n' : '';
  return `# crash test, change ${n}${note}
gateway: { id: crash-gw, confirmTimeout: ${CONFIRM_TIMEOUT_S}s, timezone: UTC }
storage: { path: data/gw.db, flushInterval: 50ms }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 300ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 100ms, groups: [main] }
${lamp2}groups:
  - { id: main }
schedules:
  - id: night
    groups: [main]
    steps:
      - { at: '22:00', level: ${d.level} }
      - { at: '06:00', level: 0 }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TOKEN}, role: technician }
simulate: true
`;
}

/** One lamp on Modbus TCP bus `a` at `port`, simulate: false, the API on a fixed port (0 needs simulate). */
function breakable(port: number, apiPort: number): string {
  return `gateway: { id: crash-probe-gw, confirmTimeout: ${CONFIRM_TIMEOUT_S}s, timezone: UTC }
storage: { path: data/gw.db, flushInterval: 50ms }
buses:
  - { id: a, type: tcp, host: 127.0.0.1, port: ${port}, timeout: 300ms }
devices:
  - { id: lamp-1, bus: a, unit: 1, profile: streetlight-controller, poll: 100ms }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: ${apiPort}
  tokens:
    - { name: tech, token: ${TOKEN}, role: technician }
simulate: false
`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

interface GatewayProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
  /** the tail of its stdout and stderr */
  tail(): string;
}

/** `streetbox start` on `config`, resolved once it runs and its API listens. */
async function startProcess(config: string, cwd: string): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', config], {
    cwd,
    env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let port = 0;
  let running = false;
  let exitedWith: string | null = null;
  const keep = (d: string): void => {
    out = (out + d).slice(-OUTPUT_TAIL);
  };
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    keep(d);
    // whole lines only (a chunk may end mid-line); the port is logged once, before "gateway running"
    const lines = (partial + d).split('\n');
    partial = (lines.pop() ?? '').slice(-OUTPUT_TAIL);
    for (const line of lines) {
      const m = /"port":(\d+)[^\n]*"msg":"http api listening"/.exec(line);
      if (m) port = Number(m[1]);
      if (line.includes('"msg":"gateway running"')) running = true;
    }
  });
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitedWith = String(code ?? signal);
      resolve();
    }),
  );
  const g: GatewayProcess = { child, port: 0, exited, tail: () => out };
  try {
    await waitFor('the gateway process running', () => {
      if (exitedWith !== null) throw new Error(`exited (${exitedWith}) before it ran:\n${out}`);
      return running && port > 0;
    }, { timeoutMs: 30_000, intervalMs: 20 });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  g.port = port;
  return g;
}

interface VersionsBody {
  versions: ConfigVersion[];
  running: number | null;
}

async function api<T>(g: GatewayProcess, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${g.port}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/** Settled: a version runs, confirmed, and none is left staged or applied (an interrupted change probed and closed). */
async function settled(g: GatewayProcess, what: string): Promise<VersionsBody> {
  return waitFor(
    `${what}: the gateway settled`,
    async () => {
      const body = await api<VersionsBody>(g, '/api/v1/config/versions?limit=1000');
      const running = body.versions.find((v) => v.version === body.running);
      const open = body.versions.some((v) => v.stage === 'staged' || v.stage === 'applied');
      return running?.stage === 'confirmed' && !open && body;
    },
    { timeoutMs: (CONFIRM_TIMEOUT_S + 15) * 1000, intervalMs: 25 },
  );
}

/** Sends the change and waits for its outcome (bounded: a change that never settles fails here, saying where it stopped). */
async function putSettled(g: GatewayProcess, text: string, base: number, where: string): Promise<{ status: number; body: { version: number | null; stage: string; reason?: string } }> {
  const withinMs = (CONFIRM_TIMEOUT_S + 10) * 1000;
  try {
    const r = await fetch(`http://127.0.0.1:${g.port}/api/v1/config?wait=settled&base=${base}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/yaml' },
      body: text,
      signal: AbortSignal.timeout(withinMs),
    });
    return { status: r.status, body: (await r.json()) as { version: number | null; stage: string; reason?: string } };
  } catch (err) {
    const mine = (await api<VersionsBody>(g, '/api/v1/config/versions?limit=5').catch(() => null))?.versions.find((v) => v.sha256 === sha256(text));
    throw new Error(`${where}: a change after the restart did not settle within ${withinMs} ms (${mine ? `version ${mine.version} is ${mine.stage}` : 'no version recorded'}): ${String(err)}`);
  }
}

/** Sends the change; resolves with its version once staged, or null when the kill cut the request short. */
async function put(g: GatewayProcess, text: string, base: number): Promise<{ status: number; body: { version: number | null; stage: string } } | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${g.port}/api/v1/config?wait=staged&base=${base}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/yaml' },
      body: text,
    });
    return { status: r.status, body: (await r.json()) as { version: number | null; stage: string } };
  } catch {
    return null; // the process died before it answered
  }
}

function tempFilesBeside(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('.devices.yaml.') && f.endsWith('.tmp'));
}

/** What a kill found: the change's stage in the store and whether its text was on disk (STREETBOX_CRASH_TRACE). */
function trace(n: number, delayMs: number, answered: boolean, newOnDisk: boolean, sha: string): void {
  const db = new Database(join(dir.path, 'data', 'gw.db'), { readonly: true, fileMustExist: true });
  try {
    const stage = ConfigVersions.readOnly(db).list({ limit: 1000 }).find((v) => v.sha256 === sha)?.stage ?? 'none';
    process.stderr.write(`change ${n}: killed after ${delayMs} ms, answered ${answered}, stage ${stage}, file ${newOnDisk ? 'new' : 'old'}\n`);
  } finally {
    db.close();
  }
}

let dir: TempDir;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = tempDir('streetbox-reconfig-crash-');
});
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
    }
  }
  dir?.remove();
});

describe.concurrent('a configuration change cut short by SIGKILL', () => {
  it(`each restart runs a whole version, the store's record agrees, the data file is intact (seed ${SEED})`, async ({ expect }) => {
    const random = mulberry32(SEED); // a failing run is replayed from its seed
    const file = dir.file('devices.yaml');
    let desired: Desired = { level: 50, lamp2: false };
    writeFileSync(file, render(0, desired));
    let g = await startProcess(file, dir.path);
    children.push(g.child);
    // the version a change is made from (a change says which, else it is refused as stale)
    let base = (await settled(g, 'the first start')).running!;

    for (let n = 1; n <= CHANGES; n++) {
      const where = `seed ${SEED}, change ${n}`;
      const before = readFileSync(file, 'utf8');
      const previous = desired;
      // odd: a schedule change (no bus touched); even: lamp-2 added or removed (bus net rewired)
      desired = n % 2 === 1 ? { ...desired, level: 10 + n } : { ...desired, lamp2: !desired.lamp2 };
      const next = render(n, desired);
      // squared: half the kills within the first 150 ms, where the apply and the probe run
      const delayMs = Math.round(random() ** 2 * MAX_DELAY_MS);

      // the kill moment counts from the request: it may land before the answer, which is the point
      const answer = put(g, next, base);
      await new Promise((r) => setTimeout(r, delayMs));
      g.child.kill('SIGKILL');
      await g.exited;
      const reply = await answer;
      if (reply) expect(reply, `${where}: the answer to the PUT`).toMatchObject({ status: 202, body: { stage: 'staged' } });
      // at the instant of death, the commit point is whole: one text or the other
      const atDeath = readFileSync(file, 'utf8');
      expect([before, next].includes(atDeath), `${where}: devices.yaml after the kill is neither the old nor the new text`).toBe(true);

      if (TRACE) trace(n, delayMs, reply !== null, atDeath === next, sha256(next));

      g = await startProcess(file, dir.path);
      children.push(g.child);
      const body = await settled(g, where);
      const onDisk = readFileSync(file, 'utf8');
      expect([before, next].includes(onDisk), `${where}: devices.yaml after the restart is neither the old nor the new text`).toBe(true);
      expect(() => parse(onDisk) as unknown, `${where}: devices.yaml parses`).not.toThrow();
      expect(tempFilesBeside(dir.path), `${where}: temp files of the atomic write left beside devices.yaml`).toEqual([]);

      const running = body.versions.find((v) => v.version === body.running)!;
      expect(running.sha256, `${where}: the running version is not the file's text`).toBe(sha256(onDisk));
      const mine = body.versions.filter((v) => v.sha256 === sha256(next));
      expect(mine.length, `${where}: versions recorded for the change`).toBeLessThanOrEqual(1);
      if (reply?.body.version != null) expect(mine.map((v) => v.version), `${where}: the staged version`).toEqual([reply.body.version]);
      const change = mine[0];
      if (onDisk === next) {
        expect(change, `${where}: the new text runs but no version of it was recorded`).toBeDefined();
        expect(change, `${where}: the change whose text runs`).toMatchObject({ stage: 'confirmed', running: true });
      } else if (change) {
        expect(['rejected', 'rolledBack'], `${where}: the change whose text is not on disk ended ${change.stage}`).toContain(change.stage);
        expect(change.running, `${where}: a change whose text is not on disk is marked running`).toBe(false);
      }
      // the gateway runs the devices the file names (a rewired bus came back whole)
      const devices = await api<{ devices: { id: string }[] }>(g, '/api/v1/devices');
      const declared = (parse(onDisk) as { devices: { id: string }[] }).devices.map((d) => d.id);
      expect(devices.devices.map((d) => d.id).sort(), `${where}: the devices the gateway runs`).toEqual(declared.sort());

      // and the restarted gateway takes the next change to its end (its road is not left blocked)
      const after = await putSettled(g, render(n, onDisk === next ? desired : previous, ', after the restart'), body.running!, where);
      expect(after, `${where}: a change after the restart`).toMatchObject({ status: 200, body: { stage: 'confirmed' } });
      base = after.body.version!;
      if (onDisk !== next) desired = previous;
    }

    // a clean stop, then the data file as the next start would find it
    g.child.kill('SIGTERM');
    await g.exited;
    expect(g.child.exitCode, `seed ${SEED}: the last stop's exit code\n${g.tail()}`).toBe(0);
    const db = new Database(join(dir.path, 'data', 'gw.db'), { readonly: true, fileMustExist: true });
    try {
      expect(db.pragma('integrity_check', { simple: true }), `seed ${SEED}: PRAGMA integrity_check`).toBe('ok');
      const seqs = db
        .prepare('SELECT count(*) AS n, count(DISTINCT seq) AS distinct_ FROM (SELECT seq FROM reading UNION ALL SELECT seq FROM event UNION ALL SELECT seq FROM refusal_event)')
        .get() as { n: number; distinct_: number };
      expect(seqs.n, `seed ${SEED}: readings and events stored`).toBeGreaterThan(0);
      expect(seqs.distinct_, `seed ${SEED}: seqs handed out twice`).toBe(seqs.n);
      const readings = db.prepare('SELECT count(*) FROM reading').pluck().get() as number;
      expect(readings, `seed ${SEED}: readings stored`).toBeGreaterThan(0);

      const versions = ConfigVersions.readOnly(db);
      expect(versions.unfinished(), `seed ${SEED}: versions left staged or applied`).toEqual([]);
      expect(versions.running()?.sha256, `seed ${SEED}: the running version is the file's text`).toBe(sha256(readFileSync(file, 'utf8')));
      // one version for the first start, at most one per killed change and one per change after a restart
      const all = versions.list({ limit: 1000 });
      expect(all.length, `seed ${SEED}: versions recorded`).toBeLessThanOrEqual(1 + 2 * CHANGES);
      expect(new Set(all.map((v) => v.sha256)).size, `seed ${SEED}: a text recorded twice`).toBe(all.length);
    } finally {
      db.close();
    }
  }, 120_000);

  it('a temp file of the atomic write, left by a gateway killed in the middle of it, is gone after the next start', async ({ expect }) => {
    // the window (temp file open → renamed) is about a millisecond, too narrow to hit reliably
    // with a random kill: the temp file such a kill leaves is put there as it would be
    const sub = tempDir('streetbox-reconfig-crash-tmp-');
    try {
      const file = sub.file('devices.yaml');
      const text = render(0, { level: 50, lamp2: false });
      writeFileSync(file, text);
      const first = await startProcess(file, sub.path);
      children.push(first.child);
      await settled(first, 'the first start');
      first.child.kill('SIGKILL');
      await first.exited;
      // tempPathFor's name (edge/reconfig/atomicFile.ts), of the process that died, half written
      const left = sub.file(`.devices.yaml.${first.child.pid}.0123456789ab.tmp`);
      writeFileSync(left, render(1, { level: 11, lamp2: false }).slice(0, 200));

      const second = await startProcess(file, sub.path);
      children.push(second.child);
      await settled(second, 'the restart');
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(tempFilesBeside(sub.path), 'temp files of a killed writer left beside devices.yaml after a restart').toEqual([]);
      second.child.kill('SIGTERM');
      await second.exited;
    } finally {
      sub.remove();
    }
  }, 60_000);

  it('a breaking change killed while its probe fails: after the restart it is still probed as a change of that bus, and rolled back', async ({ expect }) => {
    // simulate: false (a simulator would answer at any address): the bus's peer is a process of its own
    const sim = await spawnSimulators({ tcp: [{ id: 'a', devices: [{ unit: 1, profile: 'streetlight-controller' }] }] });
    const sub = tempDir('streetbox-reconfig-crash-probe-');
    try {
      const apiPort = await freePort();
      const file = sub.file('devices.yaml');
      const good = breakable(sim.bus('a').port!, apiPort);
      writeFileSync(file, good);
      const first = await startProcess(file, sub.path);
      children.push(first.child);
      const before = await settled(first, 'the first start');
      await waitFor('lamp-1 answering', async () => (await api<{ online: boolean | null }>(first, '/api/v1/devices/lamp-1')).online === true, 15_000);

      // the bus pointed at a port nobody listens on: its probe fails until confirmTimeout, and the kill comes first
      const bad = breakable(await freePort(), apiPort);
      const reply = await put(first, bad, before.running!);
      expect(reply).toMatchObject({ status: 202, body: { stage: 'staged' } });
      const version = reply!.body.version!;
      const stageOf = async (): Promise<string> => (await api<{ version: ConfigVersion }>(first, `/api/v1/config/versions/${version}`)).version.stage;
      await waitFor('the breaking change applied, its probe failing', async () => (await stageOf()) === 'applied', 10_000);
      first.child.kill('SIGKILL');
      await first.exited;
      expect(readFileSync(file, 'utf8'), 'the breaking text is on disk when the gateway dies').toBe(bad);

      const second = await startProcess(file, sub.path);
      children.push(second.child);
      const after = await settled(second, 'the restart');
      const change = after.versions.find((v) => v.version === version)!;
      expect(change, 'the breaking change after the restart').toMatchObject({ stage: 'rolledBack', running: false });
      expect(after.running, 'the version that runs after the restart').toBe(before.running);
      expect(readFileSync(file, 'utf8'), 'devices.yaml after the restart').toBe(good);
      second.child.kill('SIGTERM');
      await second.exited;
    } finally {
      await sim.stop();
      sub.remove();
    }
  }, 60_000);
});
