/**
 * Issue 17 end to end, the methods: the real gateway process (the bundle, support.ts) updates
 * simulated controllers in this test process, over TCP and over an RTU line on a socat PTY
 * (115200 8N1): a streetlight by its register-block bootloader, a traffic controller by file
 * records, a custom profile that copies the streetlight but declares file records; each job ends
 * confirmed only once the device rebooted into the new version, with the image on the device
 * byte for byte the artifact, while the other device on the line keeps its poll cycle. A device
 * that lies (boots its old version after a commit) fails and halts its deployment, and is driven
 * back to its wanted level. Central's door on a real mosquitto: a deployment published on
 * `down/deployments`, its retained reports on `up/deployments/<id>` in order, pause, resume and
 * cancel by `{ action, id }`, and an artifact sent in chunks on `down/artifacts/<sha256>/<index>`.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema, type ProfileConfig } from '../../../edge/config/schema.js';
import { JOB_STAGES, type DeploymentReport, type JobRecord } from '../../../edge/firmware/types.js';
import { loadProfiles } from '../../../edge/profiles/index.js';
import { startModbusSimulators, type ModbusSimulators } from '../../../edge/sim/modbus/index.js';
import { observe, type Observer } from '../../sync/helpers.js';
import { startMosquitto, type Mosquitto } from '../../sync/mosquitto.js';
import type { TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { ALL_DAY, dumpOnFailure, watchPolls } from './outcomes.js';
import { envelope, keyPair, launchGateway, simBuses, simImage, startGatewayProcess, type Api, type GatewayProcess, type Image, type KeyPair } from './support.js';

const GW = 'gw-methods';
const DOWN = `streetbox/${GW}/down/deployments`;
const UP = `streetbox/${GW}/up/deployments`;
const ENDED = ['completed', 'halted', 'cancelled', 'rejected'];
/** the level group `dim` wants (a light that fails is driven back to it; a light boots at 100) */
const DIM_LEVEL = 70;
/** a simulated controller is silent this long after a commit: longer than a version read's timeout and retry (2 × 300 ms) */
const REBOOT_MS = 1000;

/** The built-in streetlight, named `slc-file`, that takes firmware by file records (no bootloader to enter). */
function fileRecordLight(): Record<string, unknown> {
  const raw = parseYaml(readFileSync(new URL('../../../edge/profiles/streetlight-controller.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
  return { ...raw, name: 'slc-file', firmware: { method: 'fileRecord', file: 1, recordRegisters: 100, size: 100, checksum: 102, commit: { register: 104, value: 0xc0de }, rebootS: 30 } };
}

const TCP = [
  { id: 'lamp-a1', unit: 1 },
  { id: 'tc-a', unit: 2, profile: 'traffic-controller', allowCommands: true },
  { id: 'cust-a', unit: 3, profile: 'slc-file' },
  { id: 'liar-a', unit: 4, groups: ['dim'] },
  { id: 'lamp-a5', unit: 5, groups: ['dim'] },
  { id: 'lamp-a6', unit: 6, groups: ['dim'] },
  { id: 'lamp-c1', unit: 7 },
  { id: 'lamp-c2', unit: 8 },
  { id: 'lamp-c3', unit: 9 },
  { id: 'lamp-c4', unit: 10 },
  { id: 'lamp-c5', unit: 11 },
  { id: 'nb-a', unit: 20, poll: '200ms' },
];
const RTU = [
  { id: 'lamp-r1', unit: 1 },
  { id: 'tc-r', unit: 2, profile: 'traffic-controller', allowCommands: true },
  { id: 'nb-r', unit: 9, poll: '200ms' },
];
const unitOf = (id: string): { bus: string; unit: number } => {
  const t = TCP.find((d) => d.id === id);
  if (t) return { bus: 'a', unit: t.unit };
  return { bus: 'r', unit: RTU.find((d) => d.id === id)!.unit };
};

let dir: TempDir;
let sims: ModbusSimulators;
let broker: Mosquitto;
let central: MqttClient;
let gw: GatewayProcess;
let keys: KeyPair;
let a: Api;

beforeAll(async () => {
  const custom = profileSchema.parse(fileRecordLight()) as ProfileConfig;
  const builtins = loadProfiles();
  sims = await startModbusSimulators({
    tcp: [{ id: 'a', devices: TCP.map((d) => ({ unit: d.unit, profile: d.profile ?? 'streetlight-controller' })) }],
    rtu: [{ id: 'r', baud: 115200, devices: RTU.map((d) => ({ unit: d.unit, profile: d.profile ?? 'streetlight-controller' })) }],
    profiles: (name) => (name === custom.name ? custom : builtins.require(name)),
    rebootMs: REBOOT_MS,
  });
  broker = await startMosquitto();
  keys = keyPair();
  ({ dir, gw, a } = await launchGateway('fw-e2e-methods-', {
    id: GW,
    keys,
    buses: simBuses(sims, ['a', 'r'], { retries: 1 }),
    devices: [...TCP.map((d) => ({ ...d, bus: 'a' })), ...RTU.map((d) => ({ ...d, bus: 'r' }))],
    groups: [],
    firmware: [`lights: { windows: ${ALL_DAY} }`, `traffic: { windows: ${ALL_DAY} }`, 'retries: 3', 'timeouts: { transfer: 1m, activate: 30s, verify: 30s }'],
    extra: [
      'groups:',
      `  - { id: dim, defaultLevel: ${DIM_LEVEL} }`,
      'profiles:',
      `  - ${JSON.stringify(fileRecordLight())}`,
      'sync:',
      `  url: '${broker.url}'`,
      '  reconnectMin: 100ms',
      '  reconnectMax: 1s',
    ],
  }));
  central = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: 'central-methods' });
  await waitFor('the gateway subscribed to down/deployments', () => broker.subscriptions({ filter: DOWN }) > 0, 15_000);
}, 60_000);

afterAll(async () => {
  await central?.endAsync(true);
  await gw?.stop();
  await sims?.stop();
  await broker?.close();
  dir?.remove();
});

/** Until deployment `id` ended; returns its report and jobs. */
function ended(id: string, timeoutMs = 40_000): Promise<{ report: DeploymentReport; jobs: JobRecord[] }> {
  return a.waitFor(id, 'ended', (r) => ENDED.includes(r.status), timeoutMs);
}

/** Each job confirmed with the version read before (256) and after (the image's), the image on its device byte for byte, one commit. */
function expectConfirmed(jobs: JobRecord[], devices: string[], img: Image): void {
  expect(jobs.map((j) => [j.device, j.stage, j.code])).toEqual(devices.map((d) => [d, 'confirmed', null]));
  for (const j of jobs) {
    expect(j.versionBefore).toBe(0x0100);
    expect(j.versionAfter).toBe(img.versionCode);
    expect(j.bytesAcked).toBe(img.bytes.length);
    const { bus, unit } = unitOf(j.device);
    const fw = sims.firmware(bus, unit);
    expect(fw.image.equals(img.bytes), `${j.device}: the image on the device is the artifact`).toBe(true);
    expect(fw.commits).toBe(1);
    expect(fw.version).toBe(img.versionCode);
    expect(fw.mode).toBe('app');
  }
}

/** Deploys `img` to `devices` (one at a time on their bus), watching `neighbour`'s polls while a job transfers. */
async function deployWatching(id: string, devices: string[], neighbour: string, img: Image): Promise<{ jobs: JobRecord[]; polls: number; phases: string[] }> {
  const phase = async (): Promise<string> => {
    const d = await a.deployment(id);
    return d?.jobs.some((j) => j.stage === 'transferring') ? 'transferring' : (d?.report.status ?? 'none');
  };
  const watch = watchPolls(a, [neighbour], phase);
  try {
    const r = await a.deploy(envelope(keys, GW, { id, targets: { devices } }, img), img.bytes);
    expect([r.status, r.body.status]).toEqual([202, 'running']);
    const done = await ended(id);
    expect(done.report.status).toBe('completed');
    return { jobs: done.jobs, polls: watch.polls(neighbour, 'transferring'), phases: watch.phases() };
  } finally {
    await watch.stop();
  }
}

/**
 * The gateway of the beforeAll above, its tests in order; beside them, on a gateway of its own, the
 * awkward moments (their suite below): most of either is waiting on a transfer, a reboot or a pause.
 */
describe.concurrent('the methods gateway', () => {
  describe.sequential('both Modbus methods end confirmed on simulated controllers', () => {
    it('over TCP: a streetlight (registerBlock) and a traffic controller (fileRecord), the neighbour polled throughout', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0201, 200_000);
      const { jobs, polls, phases } = await deployWatching('m-tcp', ['lamp-a1', 'tc-a'], 'nb-a', img);
      expectConfirmed(jobs, ['lamp-a1', 'tc-a'], img);
      expect(sims.firmware('a', 1).method).toBe('registerBlock');
      expect(sims.firmware('a', 2).method).toBe('fileRecord');
      expect(phases).toContain('transferring');
      // nb-a polls every 200 ms; the two transfers take seconds
      expect(polls, 'polls of nb-a answered while a job transferred').toBeGreaterThanOrEqual(3);
    });

    it('over an RTU line (PTY, 115200 8N1): the same, the neighbour on the line polled throughout', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0202, 20_000);
      const { jobs, polls } = await deployWatching('m-rtu', ['lamp-r1', 'tc-r'], 'nb-r', img);
      expectConfirmed(jobs, ['lamp-r1', 'tc-r'], img);
      expect(polls, 'polls of nb-r answered while a job transferred').toBeGreaterThanOrEqual(3);
    });

    it('a custom profile (devices.yaml profiles:) copying the streetlight but declaring fileRecord: confirmed', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0203, 30_000);
      const r = await a.deploy(envelope(keys, GW, { id: 'm-custom', targets: { profiles: ['slc-file'] } }, img), img.bytes);
      expect(r.status).toBe(202);
      const done = await ended('m-custom');
      expect(done.report.status).toBe('completed');
      expectConfirmed(done.jobs, ['cust-a'], img);
      expect(done.jobs[0]!.method).toBe('fileRecord');
      const fw = sims.firmware('a', 3);
      expect(fw.method).toBe('fileRecord');
      expect(fw.blockLog).toEqual([...Array(Math.ceil(img.bytes.length / 200)).keys()]);
    });
  });

  describe.sequential('a device that lies', () => {
    it('fails E_FW_VERIFY, halts the deployment past its wave threshold, and is driven back to its wanted level', async () => {
      dumpOnFailure(() => gw);
      const setpoint = (unit: number): number => sims.model('a', unit).points.get('ch1_dim_setpoint');
      // the control plane drives the group to its default level first
      await waitFor('the lights of group dim at their default level', () => [4, 5, 6].every((u) => setpoint(u) === DIM_LEVEL), 10_000);
      sims.setFault('a', 4, { kind: 'lies' });
      try {
        const img = simImage(0x0204, 10_000);
        const m = { id: 'm-liar', targets: { groups: ['dim'] }, policy: { waves: [{ size: 1, errorThreshold: 0 }, { size: '100%' }] } };
        const r = await a.deploy(envelope(keys, GW, m, img), img.bytes);
        expect(r.status).toBe(202);
        const done = await ended('m-liar');
        expect([done.report.status, done.report.code]).toEqual(['halted', 'E_FW_HALTED']);
        const byDevice = new Map(done.jobs.map((j) => [j.device, j]));
        const liar = byDevice.get('liar-a')!;
        expect([liar.wave, liar.stage, liar.code]).toEqual([0, 'failed', 'E_FW_VERIFY']);
        expect(liar.reason).toMatch(/version 256/);
        // it took the image and the commit, and booted its old version
        const fw = sims.firmware('a', 4);
        expect([fw.commits, fw.reboots, fw.version]).toEqual([1, 1, 0x0100]);
        for (const [device, unit] of [['lamp-a5', 5], ['lamp-a6', 6]] as const) {
          const j = byDevice.get(device)!;
          expect([j.wave, j.stage, j.code], device).toEqual([1, 'cancelled', 'E_FW_HALTED']);
          expect(sims.firmware('a', unit).blocksReceived, `${device} never received a block`).toBe(0);
          expect(sims.firmware('a', unit).commits).toBe(0);
        }
        // it rebooted into its safe default (100 %); the gateway drives it back to what its group wants
        await waitFor('the failed light driven back to its wanted level', () => setpoint(4) === DIM_LEVEL, 10_000);
      } finally {
        sims.setFault('a', 4, null);
      }
    });
  });

  describe.sequential("central's door on a real mosquitto", () => {
    let up: Observer;
    beforeAll(async () => {
      up = await observe(broker.url, `${UP}/#`);
    });
    afterAll(async () => {
      await up?.close();
    });

    const publish = async (payload: string | object): Promise<void> => {
      await central.publishAsync(DOWN, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
    };
    const reportsOf = (id: string): DeploymentReport[] => up.messages.filter((m) => m.topic === `${UP}/${id}`).map((m) => JSON.parse(m.payload.toString()) as DeploymentReport);
    const jobOf = async (id: string, device: string): Promise<JobRecord | undefined> => (await a.deployment(id))?.jobs.find((j) => j.device === device);

    it('a deployment published on down/deployments: retained reports in order, paused and resumed by { action, id }', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0301, 400_000);
      expect((await a.call('POST', '/api/v1/artifacts', img.bytes)).status).toBe(201);
      await publish(envelope(keys, GW, { id: 'c-pause', targets: { devices: ['lamp-c1'] } }, img));
      await waitFor('lamp-c1 transferring', async () => ((await jobOf('c-pause', 'lamp-c1'))?.bytesAcked ?? 0) > 0, 15_000);
      await publish({ action: 'pause', id: 'c-pause' });
      await a.waitFor('c-pause', 'paused', (r) => r.status === 'paused', 10_000);
      // the transfer stops after its block: nothing more reaches the device while paused
      const stopped = await waitFor(
        'the transfer stopped',
        (() => {
          let prev = -1;
          return () => {
            const n = sims.firmware('a', 7).blocksReceived;
            const same = n === prev;
            prev = n;
            return same && n;
          };
        })(),
        { timeoutMs: 5000, intervalMs: 300 },
      );
      await new Promise((r) => setTimeout(r, 700));
      expect(sims.firmware('a', 7).blocksReceived, 'blocks while paused').toBe(stopped);
      expect((await jobOf('c-pause', 'lamp-c1'))?.stage).toBe('transferring');
      await publish({ action: 'resume', id: 'c-pause' });
      const done = await ended('c-pause');
      expect(done.report.status).toBe('completed');
      expectConfirmed(done.jobs, ['lamp-c1'], img);
      // resumed from its last acknowledged block: every block sent, in order; at most the one in flight at the pause sent again
      const log = sims.firmware('a', 7).blockLog;
      const again = log.filter((b, i) => log.indexOf(b) !== i);
      expect(again.length).toBeLessThanOrEqual(1);
      expect(again.every((b) => b === stopped - 1)).toBe(true);
      expect([...new Set(log)]).toEqual([...Array(Math.ceil(img.bytes.length / 240)).keys()]);

      // the reports went up in order: running (all pending) … paused … running … completed
      await waitFor('the completed report upstream', () => reportsOf('c-pause').some((r) => r.status === 'completed'), 10_000);
      const reports = reportsOf('c-pause');
      expect(reports[0]!.status).toBe('running');
      expect(reports[0]!.jobs[0]!.stage).toBe('pending');
      expect(reports[reports.length - 1]!.status).toBe('completed');
      const statuses = reports.map((r) => r.status).filter((s, i, all) => s !== all[i - 1]);
      expect(statuses).toEqual(['running', 'paused', 'running', 'completed']);
      const stages = reports.map((r) => JOB_STAGES.indexOf(r.jobs[0]!.stage));
      expect(stages, 'job stages never go back').toEqual([...stages].sort((x, y) => x - y));
      expect(reports.map((r) => r.jobs[0]!.stage)).toContain('transferring');
      const ats = reports.map((r) => r.at);
      expect(ats).toEqual([...ats].sort((x, y) => x - y));
      // a subscriber arriving now gets the final report, retained
      const late = await observe(broker.url, `${UP}/c-pause`);
      try {
        const m = await waitFor('the retained report', () => late.messages[0], 5000);
        expect(m.retain).toBe(true);
        expect((JSON.parse(m.payload.toString()) as DeploymentReport).status).toBe('completed');
      } finally {
        await late.close();
      }
    });

    it('cancel of a long deployment by { action: cancel }: it ends cancelled, the jobs not started cancelled and never sent a block', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0302, 300_000);
      expect((await a.call('POST', '/api/v1/artifacts', img.bytes)).status).toBe(201);
      await publish(envelope(keys, GW, { id: 'c-cancel', targets: { devices: ['lamp-c2', 'lamp-c3', 'lamp-c4'] } }, img));
      await waitFor('lamp-c2 transferring', async () => ((await jobOf('c-cancel', 'lamp-c2'))?.bytesAcked ?? 0) > 0, 15_000);
      await publish({ action: 'cancel', id: 'c-cancel' });
      const done = await ended('c-cancel', 15_000);
      expect([done.report.status, done.report.code]).toEqual(['cancelled', 'E_FW_CANCELLED']);
      expect(done.jobs.map((j) => [j.device, j.stage, j.code])).toEqual([
        ['lamp-c2', 'cancelled', 'E_FW_CANCELLED'],
        ['lamp-c3', 'cancelled', 'E_FW_CANCELLED'],
        ['lamp-c4', 'cancelled', 'E_FW_CANCELLED'],
      ]);
      expect(sims.firmware('a', 8).commits).toBe(0);
      expect(sims.firmware('a', 9).blocksReceived).toBe(0);
      expect(sims.firmware('a', 10).blocksReceived).toBe(0);
      await waitFor('the cancelled report upstream', () => reportsOf('c-cancel').some((r) => r.status === 'cancelled'), 10_000);
      // an action on a deployment that has ended changes nothing
      await publish({ action: 'resume', id: 'c-cancel' });
      expect((await a.deployment('c-cancel'))?.report.status).toBe('cancelled');
    });

    it('an artifact sent over MQTT in chunks on down/artifacts/<sha256>/<index>: the job confirms', async () => {
      dumpOnFailure(() => gw);
      const img = simImage(0x0303, 50_000);
      const chunkBytes = 8192;
      const artifact = { name: 'slc-fw', version: 'v303', versionCode: img.versionCode, size: img.bytes.length, sha256: img.sha256, source: { mqtt: { chunkBytes } } };
      await publish(envelope(keys, GW, { id: 'c-chunks', targets: { devices: ['lamp-c5'] }, artifact }));
      await a.waitFor('c-chunks', 'accepted', (r) => r.status === 'running', 10_000);
      for (let i = 0; i * chunkBytes < img.bytes.length; i++) {
        await central.publishAsync(`streetbox/${GW}/down/artifacts/${img.sha256}/${i}`, img.bytes.subarray(i * chunkBytes, (i + 1) * chunkBytes), { qos: 1 });
      }
      const done = await ended('c-chunks');
      expect(done.report.status).toBe('completed');
      expectConfirmed(done.jobs, ['lamp-c5'], img);
      await waitFor('the completed report upstream', () => reportsOf('c-chunks').some((r) => r.status === 'completed'), 10_000);
    });
  });
});

/**
 * Pause and cancel at awkward moments, on a gateway of its own (a short transfer timeout; devices
 * that take 4 s to reboot): a technician's pause is not a hanging transfer, and a cancel that
 * comes while a device reboots into its image, followed by a power cut, leaves nothing in progress.
 */
describe.concurrent('pause and cancel at awkward moments', () => {
  let sims2: ModbusSimulators;
  let dir2: TempDir;
  let gw2: GatewayProcess;
  let b: Api;
  let port2: number;

  beforeAll(async () => {
    sims2 = await startModbusSimulators({ tcp: [{ id: 'a', devices: [1, 2].map((unit) => ({ unit, profile: 'streetlight-controller' })) }], rebootMs: 4000 });
    ({ dir: dir2, apiPort: port2, gw: gw2, a: b } = await launchGateway('fw-e2e-awkward-', {
      id: 'gw-awkward',
      keys,
      buses: simBuses(sims2, ['a']),
      devices: [1, 2].map((u) => ({ id: `lamp-${u}`, bus: 'a', unit: u })),
      firmware: [`lights: { windows: ${ALL_DAY} }`, 'timeouts: { transfer: 3s }'],
    }));
  }, 30_000);

  afterAll(async () => {
    await gw2?.stop();
    await sims2?.stop();
    dir2?.remove();
  });

  it.sequential('a pause longer than the transfer timeout: the transfer is held, not failed, and goes on at resume', async () => {
    dumpOnFailure(() => gw2);
    const img = simImage(0x0501, 400_000);
    expect((await b.deploy(envelope(keys, 'gw-awkward', { id: 'w-pause', targets: { devices: ['lamp-1'] } }, img), img.bytes)).status).toBe(202);
    await b.waitFor('w-pause', 'transferring', (_r, jobs) => jobs[0]!.bytesAcked > 0, 15_000);
    expect((await b.call('POST', '/api/v1/deployments/w-pause/pause', '{}')).status).toBe(200);
    // held past timeouts.transfer (3 s): a technician's pause is not a transfer that hangs
    await new Promise((r) => setTimeout(r, 4500));
    const held = await b.deployment('w-pause');
    expect([held?.report.status, held?.jobs[0]?.stage, held?.jobs[0]?.code]).toEqual(['paused', 'transferring', null]);
    expect((await b.call('POST', '/api/v1/deployments/w-pause/resume', '{}')).status).toBe(200);
    const done = await b.waitFor('w-pause', 'ended', (r) => ENDED.includes(r.status), 20_000);
    expect([done.report.status, done.jobs[0]!.stage, done.jobs[0]!.code]).toEqual(['completed', 'confirmed', null]);
  }, 40_000);

  it.sequential('a cancel while a job verifies, then a power cut: the job still ends (nothing stays in progress)', async () => {
    dumpOnFailure(() => gw2);
    const img = simImage(0x0502, 5000);
    expect((await b.deploy(envelope(keys, 'gw-awkward', { id: 'w-cancel', targets: { devices: ['lamp-2'] } }, img), img.bytes)).status).toBe(202);
    await b.waitFor('w-cancel', 'verifying', (_r, jobs) => jobs[0]!.stage === 'verifying', 15_000);
    const c = await b.call<DeploymentReport>('POST', '/api/v1/deployments/w-cancel/cancel', '{}');
    expect(c.status).toBe(200);
    // the device is rebooting (4 s): the gateway loses power before it answers
    await gw2.kill();
    gw2 = await startGatewayProcess(dir2.path, port2);
    const done = await b.waitFor('w-cancel', 'the job ended', (_r, jobs) => !['activating', 'verifying'].includes(jobs[0]!.stage), 15_000);
    // the device runs the new version: the job is confirmed (verified after the restart)
    expect(sims2.firmware('a', 2).version).toBe(img.versionCode);
    expect(done.jobs[0]!.stage).toBe('confirmed');
  }, 40_000);
});
