/**
 * City safety of firmware updates, end to end (issue 17 Deliver 5; its "Tests": a light group
 * updated by day with at most the configured share down at once; an update attempted at night
 * waits for its window; a traffic controller with an active program request is not touched).
 * The real gateway process (the rig of support.ts), its controllers the simulators in this test
 * process, so the test sees what each one received and whether it is in its bootloader.
 *
 * Two gateways: one by day (gateway lat 0, lon where the local solar time is noon) for the group
 * share, the holds (a technician's override, a program request), the wanted level after an update
 * and the refusal of a traffic controller without allowCommands; one at night (solar midnight)
 * with no windows, where a light and a traffic controller wait until a configuration change
 * (PUT /api/v1/config) gives both a window. The tests of one gateway run in order; the two
 * gateways' suites run side by side (most of each is watching jobs wait or hold).
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { DeploymentReport, JobRecord } from '../../../edge/firmware/types.js';
import { startModbusSimulators, type ModbusSimulators, type SimDeviceSpec } from '../../../edge/sim/modbus/index.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import {
  api,
  envelope,
  freePort,
  fwGatewayYaml,
  keyPair,
  longitudeAtSolarHour,
  MAINT_TOKEN,
  simImage,
  startGatewayProcess,
  writeGateway,
  type Api,
  type DeviceSpec,
  type FwGatewaySpec,
  type GatewayProcess,
} from './support.js';

/** the simulators' silence after a commit: short, so a job takes about a second */
const REBOOT_MS = 300;
const IMAGE = simImage(0x0200, 8 * 1024);
const OLD_VERSION = 0x0100;
/** how long a held job is watched for a block that must not come */
const HELD_MS = 2000;
/** both windows together: the whole day, whatever the time the test runs at */
const ALL_DAY = "[ { from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' } ]";

interface SimBus {
  id: string;
  devices: (SimDeviceSpec & { device: string })[];
}

interface Rig {
  dir: TempDir;
  sims: ModbusSimulators;
  gw: GatewayProcess;
  api: Api;
  spec: FwGatewaySpec;
  /** bus and unit of a device */
  at(device: string): { bus: string; unit: number };
  stop(): Promise<void>;
}

async function startRig(id: string, lon: number, buses: SimBus[], devices: Omit<DeviceSpec, 'bus' | 'unit'>[], firmware: string[]): Promise<Rig> {
  const sims = await startModbusSimulators({ tcp: buses.map((b) => ({ id: b.id, devices: b.devices.map(({ unit, profile }) => ({ unit, profile })) })), rebootMs: REBOOT_MS });
  const dir = tempDir('fw-safety-');
  const where = new Map(buses.flatMap((b) => b.devices.map((d) => [d.device, { bus: b.id, unit: d.unit }] as const)));
  const spec: FwGatewaySpec = {
    id,
    apiPort: await freePort(),
    keys: keyPair(),
    lat: 0,
    lon,
    buses: buses.map((b) => ({ id: b.id, port: sims.bus(b.id).port! })),
    devices: devices.map((d) => ({ ...d, ...where.get(d.id)! })),
    firmware,
  };
  writeGateway(dir.path, spec);
  let gw: GatewayProcess;
  try {
    gw = await startGatewayProcess(dir.path, spec.apiPort);
  } catch (err) {
    await sims.stop();
    dir.remove();
    throw err;
  }
  return {
    dir,
    sims,
    gw,
    api: api(spec.apiPort),
    spec,
    at: (device) => where.get(device)!,
    async stop() {
      await gw.stop();
      await sims.stop();
      dir.remove();
    },
  };
}

/** On a failure of the test of `onTestFailed` (its context's: the suites run side by side), the gateway's last words. */
function showOutputOnFailure(onTestFailed: TestContext['onTestFailed'], rig: () => Rig | undefined): void {
  onTestFailed(() => {
    const out = rig()?.gw.output() ?? '';
    process.stderr.write(`--- gateway output (tail) ---\n${out.slice(-6000)}\n`);
  });
}

function fw(rig: Rig, device: string) {
  const { bus, unit } = rig.at(device);
  return rig.sims.firmware(bus, unit);
}

function setpoints(rig: Rig, device: string): [number, number] {
  const { bus, unit } = rig.at(device);
  const m = rig.sims.model(bus, unit);
  return [m.points.get('ch1_dim_setpoint'), m.points.get('ch2_dim_setpoint')];
}

async function deploy(rig: Rig, id: string, targets: { devices?: string[]; groups?: string[] }, policy: Record<string, unknown> = {}) {
  return rig.api.deploy(envelope(rig.spec.keys, rig.spec.id, { id, targets, policy }, IMAGE), IMAGE.bytes);
}

function job(jobs: JobRecord[], device: string): JobRecord {
  const j = jobs.find((x) => x.device === device);
  if (!j) throw new Error(`no job for ${device}`);
  return j;
}

/** The deployment once it ended (completed, halted, cancelled). */
function ended(rig: Rig, id: string, timeoutMs = 30_000): Promise<{ report: DeploymentReport; jobs: JobRecord[] }> {
  return rig.api.waitFor(id, 'ended', (r) => ['completed', 'halted', 'cancelled'].includes(r.status), timeoutMs);
}

/** The job's `waiting` once it matches `re`. */
async function waitsWith(rig: Rig, id: string, device: string, re: RegExp): Promise<string> {
  const d = await rig.api.waitFor(id, `${device} waits: ${re}`, (_r, jobs) => re.test(job(jobs, device).waiting ?? ''), 10_000);
  return job(d.jobs, device).waiting!;
}

/** A command by the API, until it is final; the row. */
async function command(rig: Rig, device: string, body: Record<string, unknown>, token?: string): Promise<{ id: string; status: string; result: unknown }> {
  const r = await rig.api.call<{ id: string; status: string }>('POST', `/api/v1/devices/${device}/commands`, JSON.stringify(body), token);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return waitFor(
    `command ${r.body.id} final`,
    async () => {
      const row = await rig.api.call<{ id: string; status: string; result: unknown }>('GET', `/api/v1/commands/${r.body.id}`);
      return ['verified', 'failed', 'rejected', 'expired', 'partial'].includes(row.body.status) ? row.body : false;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

/** `check` holds at every look for `ms` (a window of observation: nothing may happen in it). */
async function holdsFor(ms: number, what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!check()) throw new Error(`${what}: no longer true after ${ms - (end - Date.now())} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface StoredEvent {
  seq: number;
  ts: number;
  kind: string;
  device: string | null;
  detail: Record<string, unknown>;
}

async function events(rig: Rig, prefix: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const r = await rig.api.call<{ events: StoredEvent[]; next: number | null }>('GET', `/api/v1/events?after=${after}&limit=10000`);
    expect(r.status).toBe(200);
    out.push(...r.body.events.filter((e) => e.kind.startsWith(prefix)));
    if (r.body.events.length === 0 || r.body.next === null || r.body.next === after) return out;
    after = r.body.next;
  }
}

/** The most jobs of `deployment` under way at once, each from its `transferring` event to its last. */
function mostAtOnce(evs: StoredEvent[], deployment: string): number {
  const mine = evs.filter((e) => e.detail['deployment'] === deployment && e.device !== null);
  const edges: { ts: number; seq: number; d: number }[] = [];
  for (const device of new Set(mine.map((e) => e.device!))) {
    const of = mine.filter((e) => e.device === device);
    const start = of.find((e) => e.kind === 'firmware.job.transferring');
    const end = of.find((e) => e.kind === 'firmware.job.confirmed' || e.kind === 'firmware.job.failed');
    if (!start || !end) throw new Error(`${device}: no transferring or no final event in ${JSON.stringify(of.map((e) => e.kind))}`);
    edges.push({ ts: start.ts, seq: start.seq, d: +1 }, { ts: end.ts, seq: end.seq, d: -1 });
  }
  // in the order they were recorded
  edges.sort((a, b) => a.seq - b.seq);
  let now = 0;
  let most = 0;
  for (const e of edges) {
    now += e.d;
    most = Math.max(most, now);
  }
  return most;
}

// ───────────────────────────── by day ─────────────────────────────

describe.concurrent('by day', () => {
  const LIGHTS = Array.from({ length: 8 }, (_, i) => `l${i + 1}`);
  let rig: Rig | undefined;

  beforeAll(async () => {
    const light = (device: string, unit: number) => ({ device, unit, profile: 'streetlight-controller' });
    rig = await startRig(
      'gw-day',
      longitudeAtSolarHour(12),
      [
        { id: 'a', devices: LIGHTS.slice(0, 4).map((d, i) => light(d, i + 1)) },
        { id: 'b', devices: LIGHTS.slice(4).map((d, i) => light(d, i + 1)) },
        {
          id: 'c',
          devices: [light('lamp-x', 1), light('lamp-w', 2), { device: 'tc-1', unit: 3, profile: 'traffic-controller' }, { device: 'tc-3', unit: 4, profile: 'traffic-controller' }],
        },
      ],
      [
        ...LIGHTS.map((id) => ({ id, groups: ['street'] })),
        { id: 'lamp-x' },
        { id: 'lamp-w' },
        { id: 'tc-1', profile: 'traffic-controller', allowCommands: true },
        { id: 'tc-3', profile: 'traffic-controller' },
      ],
      ['lights: { byDay: true, maxGroupShare: 0.25 }', `traffic: { windows: ${ALL_DAY} }`],
    );
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it.sequential('updates a group of 8 lights by day with at most 25 % of them (2) out of service at once, each back at its wanted level', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    let most = 0;
    let seen = 0;
    const sample = setInterval(() => {
      const out = LIGHTS.filter((d) => fw(r, d).mode !== 'app').length;
      most = Math.max(most, out);
      seen += out > 0 ? 1 : 0;
    }, 20);
    try {
      const sub = await deploy(r, 'share-1', { groups: ['street'] }, { maxPerBus: 8, maxPerGroup: 8 });
      expect(sub.status, JSON.stringify(sub.body)).toBe(202);
      const done = await ended(r, 'share-1', 60_000);
      expect(done.report.status).toBe('completed');
      expect(done.jobs.map((j) => [j.device, j.stage]).sort()).toEqual(LIGHTS.map((d) => [d, 'confirmed']));
    } finally {
      clearInterval(sample);
    }
    for (const d of LIGHTS) {
      const f = fw(r, d);
      expect({ d, version: f.version, mode: f.mode, image: f.image.equals(IMAGE.bytes) }).toEqual({ d, version: IMAGE.versionCode, mode: 'app', image: true });
      // the probe dims it, its reboot puts it at 100: the engine drives it back to its wanted level (100: no claim, no schedule)
      expect({ d, setpoints: setpoints(r, d) }).toEqual({ d, setpoints: [100, 100] });
    }
    // the simulators, seen every 20 ms: never more than 2 in their bootloader or rebooting
    expect(seen).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    // the journal's events: transferring..confirmed intervals overlap 2 at most, and 2 do (the share is what limits)
    const evs = await events(r, 'firmware.job.');
    expect(mostAtOnce(evs, 'share-1')).toBe(2);
    const waits = evs.filter((e) => e.kind === 'firmware.job.waiting' && e.detail['deployment'] === 'share-1').map((e) => String(e.detail['waiting']));
    expect(waits.some((w) => /^group street: 2 updating already \(at most 2 at once\)$/.test(w)), JSON.stringify(waits)).toBe(true);
  });

  it.sequential("holds a light under a technician's override until it is released", async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const dim = await command(r, 'lamp-x', { action: 'dim', level: 30, durationS: 600 });
    expect(dim.status).toBe('verified');
    expect(setpoints(r, 'lamp-x')).toEqual([30, 30]);

    const sub = await deploy(r, 'hold-1', { devices: ['lamp-x'] });
    expect(sub.status, JSON.stringify(sub.body)).toBe(202);
    const waiting = await waitsWith(r, 'hold-1', 'lamp-x', /override/);
    expect(waiting).toMatch(/^held by an override of technician tech until \d{4}-\d\d-\d\dT/);
    await holdsFor(HELD_MS, 'lamp-x untouched while held', () => fw(r, 'lamp-x').blocksReceived === 0 && fw(r, 'lamp-x').mode === 'app');
    expect(job((await r.api.deployment('hold-1'))!.jobs, 'lamp-x').stage).toBe('pending');

    const release = await command(r, 'lamp-x', { action: 'release' });
    expect(release.status).toBe('verified');
    const done = await ended(r, 'hold-1');
    expect(done.report.status).toBe('completed');
    expect(job(done.jobs, 'lamp-x')).toMatchObject({ stage: 'confirmed', versionAfter: IMAGE.versionCode });
    expect(fw(r, 'lamp-x').version).toBe(IMAGE.versionCode);
    expect(setpoints(r, 'lamp-x')).toEqual([100, 100]);
  });

  it.sequential('drives a light back to its wanted level after its update (a maintenance dim to 40 %, not a hold)', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const dim = await command(r, 'lamp-w', { action: 'dim', level: 40, durationS: 600 }, MAINT_TOKEN);
    expect(dim.status).toBe('verified');
    expect(setpoints(r, 'lamp-w')).toEqual([40, 40]);
    const reboots = fw(r, 'lamp-w').reboots;

    const sub = await deploy(r, 'wanted-1', { devices: ['lamp-w'] });
    expect(sub.status, JSON.stringify(sub.body)).toBe(202);
    const done = await ended(r, 'wanted-1');
    expect(done.report.status).toBe('completed');
    expect(job(done.jobs, 'lamp-w')).toMatchObject({ stage: 'confirmed', versionBefore: OLD_VERSION, versionAfter: IMAGE.versionCode });
    // it rebooted (and came up at 100 %), the probe dimmed it: now it is where it is wanted
    expect(fw(r, 'lamp-w').reboots).toBe(reboots + 1);
    expect(setpoints(r, 'lamp-w')).toEqual([40, 40]);
  });

  it.sequential('does not touch a traffic controller while a program request is active; after the release it updates', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const program = await command(r, 'tc-1', { action: 'program', program: 2, expiresInS: 600 });
    expect(program.status, JSON.stringify(program)).toBe('verified');

    const sub = await deploy(r, 'tc-held', { devices: ['tc-1'] });
    expect(sub.status, JSON.stringify(sub.body)).toBe(202);
    expect(await waitsWith(r, 'tc-held', 'tc-1', /program request/)).toBe('a program request of this gateway is active');
    await holdsFor(HELD_MS, 'tc-1 untouched while its program request is active', () => fw(r, 'tc-1').blocksReceived === 0 && fw(r, 'tc-1').mode === 'app');
    expect(job((await r.api.deployment('tc-held'))!.jobs, 'tc-1').stage).toBe('pending');

    const release = await command(r, 'tc-1', { action: 'release' });
    expect(release.status, JSON.stringify(release)).toBe('verified');
    const done = await ended(r, 'tc-held');
    expect(done.report.status).toBe('completed');
    expect(job(done.jobs, 'tc-1')).toMatchObject({ stage: 'confirmed', versionAfter: IMAGE.versionCode });
    expect(fw(r, 'tc-1')).toMatchObject({ version: IMAGE.versionCode, mode: 'app' });
    expect(fw(r, 'tc-1').image.equals(IMAGE.bytes)).toBe(true);
  });

  it.sequential('refuses a traffic controller without allowCommands at submit (E_FW_TARGET)', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const sub = await deploy(r, 'tc-closed', { devices: ['tc-3'] });
    expect(sub.status).toBe(422);
    expect(sub.body).toMatchObject({ status: 'rejected', code: 'E_FW_TARGET' });
    expect(sub.body.reason).toMatch(/tc-3.*allowCommands: false/);
    expect(fw(r, 'tc-3')).toMatchObject({ blocksReceived: 0, mode: 'app', version: OLD_VERSION });
  });
});

// ───────────────────────────── at night ─────────────────────────────

describe.concurrent('at night, with no windows', () => {
  let rig: Rig | undefined;
  const firmwareLines = ['lights: { byDay: true }'];

  beforeAll(async () => {
    rig = await startRig(
      'gw-night',
      longitudeAtSolarHour(0),
      [{ id: 'n', devices: [{ device: 'lamp-n', unit: 1, profile: 'streetlight-controller' }, { device: 'tc-2', unit: 2, profile: 'traffic-controller' }] }],
      [{ id: 'lamp-n', groups: ['night'] }, { id: 'tc-2', profile: 'traffic-controller', allowCommands: true }],
      firmwareLines,
    );
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it.sequential('a traffic controller waits: no firmware.traffic.windows is set', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const sub = await deploy(r, 'tc-none', { devices: ['tc-2'] });
    expect(sub.status, JSON.stringify(sub.body)).toBe(202);
    expect(await waitsWith(r, 'tc-none', 'tc-2', /none is set/)).toBe('traffic controllers update only inside firmware.traffic.windows, and none is set');
  });

  it.sequential('a light waits for daylight, names when it begins, gets no block; a window given through the configuration lets it (and the traffic controller) update', async ({ onTestFailed }) => {
    showOutputOnFailure(onTestFailed, () => rig);
    const r = rig!;
    const sub = await deploy(r, 'night-1', { devices: ['lamp-n'] });
    expect(sub.status, JSON.stringify(sub.body)).toBe(202);
    const waiting = await waitsWith(r, 'night-1', 'lamp-n', /^night/);
    const m = /^night: lights update by day \(from (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\)$/.exec(waiting);
    expect(m, waiting).not.toBeNull();
    // solar midnight at the equator: sunrise about 6 h on (± the equation of time), plus the 30 min margin
    const inH = (Date.parse(m![1]!) - Date.now()) / 3_600_000;
    expect(inH).toBeGreaterThan(5.5);
    expect(inH).toBeLessThan(7.5);
    await holdsFor(HELD_MS, 'lamp-n and tc-2 untouched at night with no window', () => ['lamp-n', 'tc-2'].every((d) => fw(r, d).blocksReceived === 0 && fw(r, d).mode === 'app'));

    // a window from half an hour ago to an hour and a half on (UTC, possibly past midnight), for both kinds
    const hhmm = (t: number) => new Date(t).toISOString().slice(11, 16);
    const window = `[ { from: '${hhmm(Date.now() - 30 * 60_000)}', to: '${hhmm(Date.now() + 90 * 60_000)}' } ]`;
    const content = fwGatewayYaml({ ...r.spec, firmware: [`lights: { byDay: true, windows: ${window} }`, `traffic: { windows: ${window} }`] });
    const versions = await r.api.call<{ running: number | null }>('GET', '/api/v1/config/versions');
    expect(versions.status).toBe(200);
    const put = await r.api.call<{ stage: string; reason?: string }>('PUT', '/api/v1/config', JSON.stringify({ content, baseVersion: versions.body.running }));
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.stage).toBe('confirmed');

    const night = await ended(r, 'night-1');
    expect(night.report.status).toBe('completed');
    expect(job(night.jobs, 'lamp-n')).toMatchObject({ stage: 'confirmed', versionAfter: IMAGE.versionCode, waiting: null });
    const tc = await ended(r, 'tc-none');
    expect(tc.report.status).toBe('completed');
    expect(job(tc.jobs, 'tc-2')).toMatchObject({ stage: 'confirmed', versionAfter: IMAGE.versionCode });
    for (const d of ['lamp-n', 'tc-2']) expect({ d, version: fw(r, d).version, image: fw(r, d).image.equals(IMAGE.bytes) }).toEqual({ d, version: IMAGE.versionCode, image: true });
    expect(setpoints(r, 'lamp-n')).toEqual([100, 100]);
  });
});
