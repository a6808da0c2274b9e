/**
 * Crash safety of a firmware transfer (issue 17): the real gateway process (bin/streetbox.js
 * start on the bundle, `npm run build` first; the README's `npm test` builds) is SIGKILLed at
 * random moments while it updates three controllers, KILLS (10) times, and started again each time. The
 * simulators live in this test process, so they outlive every kill and keep what they received:
 * two streetlights (registerBlock) on an RTU line (a socat PTY pair, frames held for their time on
 * the wire at 115200 baud), and a traffic controller (fileRecord: FC 21 write, FC 20 read-back) on
 * a Modbus TCP server, so both methods are crashed.
 *
 * Each round waits until a transfer went past the point the last kill left it at (a job's
 * blocksAcked grew, or its stage moved on), then kills after a random delay (0..800 ms): mostly in
 * `transferring`, now and then in `activating` or `verifying`. After the last kill the gateway is
 * left to finish. Then: every job is confirmed; every simulator holds the artifact byte for byte
 * and runs its version; each one's block log starts at block 0, never sends block 0 again after a
 * later block, never goes back by more than one block (a kill between the device's answer and the
 * journal's write re-sends that one block), never skips one; the journal's blocksAcked, read after
 * each restart, never went down and no stage moved back; the store passes `PRAGMA integrity_check`.
 *
 * The moments are drawn from a seeded PRNG; the seed is in the test's name, and
 * STREETBOX_CRASH_SEED=<n> replays a run (STREETBOX_CRASH_TRACE=1: a line per kill on stderr).
 *
 * Three moments a random kill rarely meets are set up on purpose, each on a device of its own:
 * the kill comes as the device takes the size write (activating, before the commit); as it takes
 * the commit (it reboots into the new image, the gateway never hears its answer: the journal still
 * says activating); and while the job is verifying. Each ends confirmed with one commit. The four
 * cases run side by side, each on a gateway process and a simulator of its own (a kill of one
 * touches no other case): most of a case is waiting for a reboot and a restart.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { JOB_STAGES, FINAL_JOB_STAGES, type JobRecord, type JobStage } from '../../../edge/firmware/types.js';
import { startModbusSimulators, type ModbusSimulators } from '../../../edge/sim/modbus/index.js';
import { mulberry32 } from '../../../edge/sim/modbus/model.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { ALL_DAY } from './outcomes.js';
import { api, envelope, freePort, keyPair, simBuses, simImage, startGatewayProcess, writeGateway, type Api, type FwGatewaySpec, type GatewayProcess, type Image, type KeyPair } from './support.js';

const KILLS = 10;
const MAX_DELAY_MS = 800;
const SEED = Number(process.env.STREETBOX_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TRACE = process.env.STREETBOX_CRASH_TRACE === '1';
/** 205 blocks of 240 bytes per light; two lights share the line at ~29 blocks/s: ~14 s without kills, 60..110 blocks of it during the kills */
const LIGHT_BYTES = 48 * 1024;
/** 3277 blocks of 200 bytes (FC 21 + FC 20 each) over loopback TCP: ~7 s without kills, so some of the kills land in it */
const TRAFFIC_BYTES = 640 * 1024;
/** how long a controller is silent after its commit */
const REBOOT_MS = 1500;
/** the firmware section of devices.yaml: lights and traffic controllers may update at any time of day */
const FIRMWARE = [`lights: { windows: ${ALL_DAY} }`, `traffic: { windows: ${ALL_DAY} }`];

const stageIndex = (s: JobStage): number => JOB_STAGES.indexOf(s);

/** What is wrong with a device's block log of an image of `blocks` blocks (empty: nothing). */
function blockLogProblems(log: readonly number[], blocks: number): string[] {
  const problems: string[] = [];
  if (log[0] !== 0) problems.push(`it starts at block ${log[0]}, not 0`);
  let highest = -1;
  for (let i = 0; i < log.length; i++) {
    const b = log[i]!;
    if (b === 0 && highest > 0) problems.push(`block 0 sent again at entry ${i}, after block ${highest}: the transfer restarted from the start`);
    if (i > 0) {
      const step = b - log[i - 1]!;
      if (step < -1) problems.push(`entry ${i}: block ${b} after block ${log[i - 1]}: back by ${-step} blocks`);
      if (step > 1) problems.push(`entry ${i}: block ${b} after block ${log[i - 1]}: ${step - 1} blocks skipped`);
    }
    highest = Math.max(highest, b);
  }
  const seen = new Set(log);
  const missing = Array.from({ length: blocks }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0) problems.push(`${missing.length} blocks never sent (first ${missing[0]})`);
  if (highest >= blocks) problems.push(`block ${highest} is beyond the image (${blocks} blocks)`);
  return problems;
}

/** Blocks sent again (the log not moving forward by one). */
const resent = (log: readonly number[]): number => log.reduce((n, b, i) => (i > 0 && b - log[i - 1]! !== 1 ? n + 1 : n), 0);

interface Rig {
  dir: TempDir;
  sims: ModbusSimulators;
  apiPort: number;
  gp: GatewayProcess | null;
}

const rigs: Rig[] = [];

afterEach(async () => {
  await Promise.all(
    rigs.splice(0).map(async (rig) => {
      await rig.gp?.kill();
      await rig.sims.stop();
      rig.dir.remove();
    }),
  );
});

/** A test's rig (torn down after it): a temp gateway directory with the devices.yaml of `spec` on a free API port, signed by new keys; not started. */
async function prepare(prefix: string, sims: ModbusSimulators, spec: Omit<FwGatewaySpec, 'apiPort' | 'keys' | 'firmware'>): Promise<{ r: Rig; keys: KeyPair; a: Api }> {
  const keys = keyPair();
  const apiPort = await freePort();
  const r: Rig = { dir: tempDir(prefix), sims, apiPort, gp: null };
  rigs.push(r);
  writeGateway(r.dir.path, { ...spec, apiPort, keys, firmware: FIRMWARE });
  return { r, keys, a: api(apiPort) };
}

async function start(r: Rig): Promise<GatewayProcess> {
  r.gp = await startGatewayProcess(r.dir.path, r.apiPort);
  return r.gp;
}

/** The jobs of `ids` as the restarted gateway's API reports them (it may be a moment before it answers). */
async function jobsOf(a: Api, ids: readonly string[], what: string): Promise<JobRecord[]> {
  return waitFor(
    `${what}: the deployments readable`,
    async () => {
      const all: JobRecord[] = [];
      for (const id of ids) {
        const d = await a.deployment(id).catch(() => null);
        if (!d) return false;
        all.push(...d.jobs);
      }
      return all;
    },
    { timeoutMs: 15_000, intervalMs: 20 },
  );
}

/** The journal's row of one job, read from the data file (the gateway dead). */
function journalRow(dir: TempDir, deployment: string, device: string): { stage: string; blocks_acked: number } | undefined {
  const db = new Database(join(dir.path, 'data', 'gw.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT stage, blocks_acked FROM firmware_jobs WHERE deployment = ? AND device = ?').get(deployment, device) as { stage: string; blocks_acked: number } | undefined;
  } finally {
    db.close();
  }
}

function integrity(dir: TempDir): unknown {
  const db = new Database(join(dir.path, 'data', 'gw.db'), { readonly: true, fileMustExist: true });
  try {
    return db.pragma('integrity_check', { simple: true });
  } finally {
    db.close();
  }
}

describe('a firmware transfer cut short by SIGKILL', () => {
  it(`${KILLS} kills at random moments: every job confirmed, every image byte-identical, no transfer restarted from block 0 (seed ${SEED})`, async () => {
    const random = mulberry32(SEED); // a failing run is replayed from its seed
    const sims = await startModbusSimulators({
      rtu: [{ id: 'line', wireTime: true, baud: 115200, devices: [{ unit: 1, profile: 'streetlight-controller' }, { unit: 2, profile: 'streetlight-controller' }] }],
      tcp: [{ id: 'net', devices: [{ unit: 1, profile: 'traffic-controller' }] }],
      rebootMs: REBOOT_MS,
    });
    const gateway = 'gw-crash';
    const { r, keys, a } = await prepare('streetbox-fw-crash-', sims, {
      id: gateway,
      buses: simBuses(sims, ['line', 'net']),
      devices: [
        { id: 'lamp-1', bus: 'line', unit: 1 },
        { id: 'lamp-2', bus: 'line', unit: 2 },
        { id: 'tc-1', bus: 'net', unit: 1, profile: 'traffic-controller', allowCommands: true },
      ],
    });
    const lights = simImage(0x0300, LIGHT_BYTES);
    const traffic = simImage(0x0301, TRAFFIC_BYTES);
    const where = (n: number | string): string => `seed ${SEED}, ${typeof n === 'number' ? `kill ${n}` : n}`;

    let gp = await start(r);
    const d1 = await a.deploy(envelope(keys, gateway, { id: 'crash-lights', targets: { devices: ['lamp-1', 'lamp-2'] }, policy: { maxPerBus: 2, maxPerGroup: 2 } }, lights), lights.bytes);
    expect(d1, 'the lights deployment').toMatchObject({ status: 202, body: { status: 'running' } });
    const d2 = await a.deploy(envelope(keys, gateway, { id: 'crash-traffic', targets: { devices: ['tc-1'] } }, traffic), traffic.bytes);
    expect(d2, 'the traffic deployment').toMatchObject({ status: 202, body: { status: 'running' } });
    const ids = ['crash-lights', 'crash-traffic'];
    const images: Record<string, { bus: string; unit: number; image: Image }> = {
      'lamp-1': { bus: 'line', unit: 1, image: lights },
      'lamp-2': { bus: 'line', unit: 2, image: lights },
      'tc-1': { bus: 'net', unit: 1, image: traffic },
    };

    // what the journal said after each (re)start: blocksAcked never goes down, no stage goes back
    let sample = await jobsOf(a, ids, where('the first start'));
    const samples: JobRecord[][] = [sample];
    /** per device: kills that found its job transferring part-way, and in activating or verifying */
    const hits = new Map<string, { transferring: number; activation: number }>(Object.keys(images).map((d) => [d, { transferring: 0, activation: 0 }]));
    let kills = 0;
    for (let n = 1; n <= KILLS; n++) {
      const base = new Map(sample.map((j) => [j.device, j]));
      // past the point the last kill left it at: a job's acknowledged blocks grew, or its stage moved on
      const moved = await waitFor(
        `${where(n)}: a job progressing after the restart`,
        async () => {
          const now = await jobsOf(a, ids, where(n));
          if (now.every((j) => FINAL_JOB_STAGES.includes(j.stage))) return { ended: true as const, now };
          const on = now.some((j) => {
            const b = base.get(j.device)!;
            return !FINAL_JOB_STAGES.includes(j.stage) && (j.blocksAcked > b.blocksAcked || stageIndex(j.stage) > stageIndex(b.stage));
          });
          return on && { ended: false as const, now };
        },
        { timeoutMs: 30_000, intervalMs: 20 },
      );
      if (moved.ended) break;
      const delayMs = Math.floor(random() * MAX_DELAY_MS);
      // the random moment is the point of the test: a fixed delay drawn from the seed
      await new Promise((res) => setTimeout(res, delayMs));
      await gp.kill();
      kills++;

      gp = await start(r);
      const after = await jobsOf(a, ids, where(n));
      for (const j of after) {
        const before = samples[samples.length - 1]!.find((x) => x.device === j.device)!;
        expect(j.blocksAcked, `${where(n)}: ${j.device}'s blocksAcked after the restart (was ${before.blocksAcked})`).toBeGreaterThanOrEqual(before.blocksAcked);
        expect(stageIndex(j.stage), `${where(n)}: ${j.device}'s stage after the restart is ${j.stage}, was ${before.stage}`).toBeGreaterThanOrEqual(stageIndex(before.stage));
        const h = hits.get(j.device)!;
        if (j.stage === 'transferring' && j.blocksAcked > 0 && j.blocksAcked < j.blocksTotal) h.transferring++;
        if (j.stage === 'activating' || j.stage === 'verifying') h.activation++;
      }
      if (TRACE) process.stderr.write(`${where(n)}: killed ${delayMs} ms after progress; at the restart ${after.map((j) => `${j.device} ${j.stage} ${j.blocksAcked}/${j.blocksTotal}`).join(', ')}\n`);
      samples.push(after);
      sample = after;
    }
    expect(kills, `${where('the kills')}: the jobs ended before ${KILLS} kills: make the images larger`).toBe(KILLS);
    for (const [device, h] of hits) {
      expect(h.transferring, `${where('the kills')}: kills that found ${device} part-way through its transfer`).toBeGreaterThan(0);
    }

    // left to finish
    for (const id of ids) {
      const done = await a.waitFor(id, 'ended', (rep) => rep.status !== 'running' && rep.status !== 'paused', 90_000);
      expect(done.report.status, `${where(id)}: the deployment's end (${JSON.stringify(done.jobs.map((j) => [j.device, j.stage, j.code, j.reason]))})`).toBe('completed');
      for (const j of done.jobs) {
        const { bus, unit, image } = images[j.device]!;
        expect(j, `${where(id)}: ${j.device}'s job`).toMatchObject({ stage: 'confirmed', code: null, versionAfter: image.versionCode, blocksAcked: j.blocksTotal });
        const fw = sims.firmware(bus, unit);
        expect(fw.version, `${where(id)}: the version ${j.device} runs`).toBe(image.versionCode);
        expect(fw.image.equals(image.bytes), `${where(id)}: ${j.device}'s image is the artifact byte for byte`).toBe(true);
        expect(fw.commits, `${where(id)}: commits ${j.device} took`).toBe(1);
        expect(blockLogProblems(fw.blockLog, j.blocksTotal), `${where(id)}: ${j.device}'s block log`).toEqual([]);
        if (TRACE) process.stderr.write(`${where(id)}: ${j.device}: ${j.blocksTotal} blocks, ${resent(fw.blockLog)} sent again; kills in its transfer ${hits.get(j.device)!.transferring}, in activating/verifying ${hits.get(j.device)!.activation}\n`);
      }
    }

    await gp.stop();
    expect(gp.child.exitCode, `${where('the last stop')}: exit code\n${gp.output()}`).toBe(0);
    expect(integrity(r.dir), `${where('the end')}: PRAGMA integrity_check`).toBe('ok');
  }, 150_000);

  it('a kill as the device takes its size write, as it takes its commit, and while the job verifies: each job ends confirmed with one commit', async () => {
    // the built-in profiles' registers (edge/profiles): size 100..101, commit 104 (0xC0DE)
    const SIZE_REGISTER = 100;
    const COMMIT_REGISTER = 104;
    const cases: { id: string; device: string; unit: number; profile?: string; at: 'size' | 'commit' | 'verifying'; journal: JobStage; version: number }[] = [
      { id: 'act-size', device: 'lamp-a', unit: 1, at: 'size', journal: 'activating', version: 0x0401 },
      { id: 'act-commit-light', device: 'lamp-b', unit: 2, at: 'commit', journal: 'activating', version: 0x0402 },
      { id: 'act-commit-traffic', device: 'tc-1', unit: 4, profile: 'traffic-controller', at: 'commit', journal: 'activating', version: 0x0403 },
      { id: 'act-verifying', device: 'lamp-c', unit: 3, at: 'verifying', journal: 'verifying', version: 0x0404 },
    ];

    // the gateways start one at a time (a start is a second or more of CPU; four at once on two cores stall
    // each other past the start's bound), and wait side by side: for the kill, the reboot, the verify
    let starting: Promise<unknown> = Promise.resolve();
    const startInTurn = (r: Rig): Promise<GatewayProcess> => {
      const started = starting.then(() => start(r));
      starting = started.catch(() => undefined);
      return started;
    };

    /** One case on a gateway and a simulator of its own: what it found that is not as wanted, or null. */
    const run = async (c: (typeof cases)[number]): Promise<string | null> => {
      const where = `${c.id} (${c.device}, killed at the ${c.at === 'verifying' ? 'stage verifying' : `${c.at} write`})`;
      // a reboot longer than the gateway's restart: after a kill at the commit the device is still silent when the engine looks
      const sims = await startModbusSimulators({ tcp: [{ id: 'net', devices: [{ unit: c.unit, profile: c.profile ?? 'streetlight-controller' }] }], rebootMs: 3000 });
      const gateway = `gw-${c.id}`;
      const { r, keys, a } = await prepare(`streetbox-fw-${c.id}-`, sims, {
        id: gateway,
        buses: simBuses(sims, ['net']),
        devices: [{ id: c.device, bus: 'net', unit: c.unit, ...(c.profile ? { profile: c.profile, allowCommands: true } : {}) }],
      });
      await startInTurn(r);

      /** Kills the gateway as the device takes a write to `register`, before it answers (once). */
      const killOnWrite = (register: number): { fired: () => boolean } => {
        const fw = sims.model('net', c.unit).firmware!;
        const take = fw.interceptWrite.bind(fw);
        let fired = false;
        fw.interceptWrite = (table, address, values) => {
          if (!fired && table === 'holding' && address === register) {
            fired = true;
            r.gp?.child.kill('SIGKILL');
          }
          return take(table, address, values);
        };
        return { fired: () => fired };
      };

      const image = simImage(c.version, 4096);
      const hook = c.at === 'verifying' ? null : killOnWrite(c.at === 'size' ? SIZE_REGISTER : COMMIT_REGISTER);
      const sent = await a.deploy(envelope(keys, gateway, { id: c.id, targets: { devices: [c.device] } }, image), image.bytes);
      expect(sent, `${where}: the deployment`).toMatchObject({ status: 202, body: { status: 'running' } });
      if (hook) {
        await waitFor(`${where}: the kill`, () => hook.fired(), { timeoutMs: 30_000, intervalMs: 5 });
        await r.gp!.exited;
      } else {
        await a.waitFor(c.id, 'verifying', (_rep, jobs) => jobs[0]?.stage === 'verifying', 30_000);
        await r.gp!.kill();
      }
      const row = journalRow(r.dir, c.id, c.device);
      expect(row?.stage, `${where}: the journal's stage at the kill`).toBe(c.journal);
      expect(sims.firmware('net', c.unit).commits, `${where}: commits before the restart`).toBe(c.at === 'size' ? 0 : 1);

      await startInTurn(r);
      const done = await a.waitFor(c.id, 'ended', (rep) => rep.status !== 'running' && rep.status !== 'paused', 45_000);
      const fw = sims.firmware('net', c.unit);
      const job = done.jobs[0]!;
      await r.gp!.stop();
      expect(integrity(r.dir), `${where}: PRAGMA integrity_check`).toBe('ok');
      // the cases run on; what each found is collected and asserted at the end
      const got = { status: done.report.status, stage: job.stage, code: job.code, version: fw.version, commits: fw.commits, image: fw.image.equals(image.bytes) };
      const want = { status: 'completed', stage: 'confirmed', code: null, version: c.version, commits: 1, image: true };
      return JSON.stringify(got) !== JSON.stringify(want) ? `${where}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}; reason: ${job.reason}` : null;
    };

    // every case to its end before the teardown, then the first error any threw
    const results = await Promise.allSettled(cases.map(run));
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    const failures = results.map((r) => (r.status === 'fulfilled' ? r.value : null)).filter((f) => f !== null);
    expect(failures, 'cases that did not end confirmed with one commit').toEqual([]);
  }, 120_000);
});
