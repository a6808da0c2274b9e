/**
 * The firmware engine's waves, thresholds and caps (issue 17 Deliver 1, 4), in-process on
 * simulated streetlight controllers over TCP (engineRig.ts): a wave starts only once the one
 * before it ended; a wave's failures past its errorThreshold halt the deployment at once and
 * cancel what had not started; a wave that ends with too few confirmed halts it; never more jobs
 * on one bus or in one group than the policy lets, across deployments. Plus what a deployment
 * leaves behind: an event per job stage, the deployment's events, its latest report in the
 * outbox, the streetbox_firmware_* metrics.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentReport, JobRecord } from '../../edge/firmware/types.js';
import { simImage } from './e2e/support.js';
import { ALL_DAY, sampler, startRig, transferFault, type EngineRig } from './engineRig.js';

const BUSY = new Set(['fetching', 'transferring', 'activating', 'verifying']);
const ENDED = new Set(['completed', 'halted', 'cancelled', 'rejected']);

function byDevice(jobs: JobRecord[]): Map<string, JobRecord> {
  return new Map(jobs.map((j) => [j.device, j]));
}

describe('a deployment in waves [1, 50 %, 100 %] over 4 lights', () => {
  let rig: EngineRig;
  let outcome: DeploymentReport;
  const wavesSeen: number[] = [];
  const image = simImage(0x0201, 12_000);

  beforeAll(async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }, { bus: 'a' }, { bus: 'a' }] });
    const s = rig.submit({ id: 'waves', targets: { devices: ['lamp-1', 'lamp-2', 'lamp-3', 'lamp-4'] }, policy: { waves: [{ size: 1 }, { size: '50%' }, { size: '100%' }], maxPerBus: 4, maxPerGroup: 4 } }, image);
    expect(s.first.status, s.first.reason ?? '').toBe('running');
    const watch = sampler(() => {
      const w = rig.fw.report('waves')!.wave;
      if (wavesSeen.at(-1) !== w) wavesSeen.push(w);
    });
    outcome = await s.outcome;
    watch.stop();
  });
  afterAll(async () => rig?.stop());

  it('starts the jobs of a wave only after the wave before it ended, and completes', () => {
    expect(outcome.status).toBe('completed');
    expect(outcome.waves).toBe(3);
    const jobs = rig.fw.jobs('waves');
    expect(jobs.map((j) => [j.device, j.wave])).toEqual([['lamp-1', 0], ['lamp-2', 1], ['lamp-3', 1], ['lamp-4', 2]]);
    for (const w of [0, 1]) {
      const ended = Math.max(...jobs.filter((j) => j.wave === w).map((j) => j.endedAt!));
      const nextStarted = Math.min(...jobs.filter((j) => j.wave === w + 1).map((j) => j.startedAt!));
      expect(nextStarted, `wave ${w + 2} started before wave ${w + 1} ended`).toBeGreaterThanOrEqual(ended);
    }
    for (const j of jobs) {
      expect(j.stage).toBe('confirmed');
      expect(j.versionAfter).toBe(0x0201);
      expect(rig.sim(j.device).image.equals(image.bytes)).toBe(true);
      expect(transferFault(rig.sim(j.device).blockLog, j.blocksTotal), j.device).toBeNull();
    }
  });

  it('advances report.wave 0 → 1 → 2', () => {
    expect(wavesSeen).toEqual([0, 1, 2]);
    expect(outcome.wave).toBe(2);
  });

  it('records a firmware.job.<stage> event per stage of each job, and the deployment running then completed', () => {
    const events = rig.events();
    for (const device of ['lamp-1', 'lamp-2', 'lamp-3', 'lamp-4']) {
      const stages = events.filter((e) => e.kind.startsWith('firmware.job.') && e.kind !== 'firmware.job.waiting' && e.device === device && e.detail.deployment === 'waves' && e.detail.device === device).map((e) => e.kind);
      expect(stages, device).toEqual(['fetching', 'transferring', 'activating', 'verifying', 'confirmed'].map((s) => `firmware.job.${s}`));
    }
    // the jobs of later waves say why they wait: the wave right before theirs
    const waits = events.filter((e) => e.kind === 'firmware.job.waiting').map((e) => [e.device, e.detail.waiting]);
    expect(waits).toEqual([
      ['lamp-2', 'wave 2 starts after wave 1 ends'],
      ['lamp-3', 'wave 2 starts after wave 1 ends'],
      ['lamp-4', 'wave 3 starts after wave 2 ends'],
    ]);
    const confirmed = events.find((e) => e.kind === 'firmware.job.confirmed' && e.device === 'lamp-4')!;
    expect(confirmed.detail).toMatchObject({ deployment: 'waves', principal: 'tech', stage: 'confirmed', bytesAcked: image.bytes.length, version: 0x0201 });
    const deployment = events.filter((e) => e.kind.startsWith('firmware.deployment.') && e.detail.deployment === 'waves');
    expect(deployment.map((e) => e.kind)).toEqual(['firmware.deployment.running', 'firmware.deployment.wave', 'firmware.deployment.wave', 'firmware.deployment.completed']);
    expect(deployment.map((e) => e.detail.status)).toEqual(['running', 'running', 'running', 'completed']);
  });

  it('leaves its latest report in the outbox: completed, every job confirmed', () => {
    const pending = rig.fw.outbox().pending(100).filter((p) => p.topicId === 'waves');
    expect(pending).toHaveLength(1);
    const r = pending[0]!.report;
    expect(r).toMatchObject({ id: 'waves', gateway: 'gw-engine', status: 'completed', wave: 2, waves: 3 });
    expect(r.counts.confirmed).toBe(4);
    expect(r.jobs.map((j) => [j.device, j.stage, j.bytesAcked, j.versionAfter])).toEqual(['lamp-1', 'lamp-2', 'lamp-3', 'lamp-4'].map((d) => [d, 'confirmed', image.bytes.length, 0x0201]));
  });

  it('exports streetbox_firmware_* metrics', () => {
    const m = rig.fw.metrics();
    const one = (name: string) => m.find((s) => s.name === name)?.value;
    expect(m.every((s) => s.name.startsWith('streetbox_firmware_'))).toBe(true);
    expect(one('streetbox_firmware_deployments_submitted_total')).toBe(1);
    expect(one('streetbox_firmware_deployments_rejected_total')).toBe(0);
    expect(one('streetbox_firmware_blocks_total')).toBe(4 * Math.ceil(image.bytes.length / 240));
    expect(one('streetbox_firmware_artifact_bytes_limit')).toBeGreaterThan(0);
    expect(one('streetbox_firmware_artifact_bytes')).toBeGreaterThanOrEqual(0);
    const active = m.filter((s) => s.name === 'streetbox_firmware_jobs_active');
    expect(active.map((s) => s.labels?.stage).sort()).toEqual(['activating', 'cancelled', 'confirmed', 'failed', 'fetching', 'pending', 'rolledBack', 'transferring', 'verifying']);
    expect(active.every((s) => s.value === 0)).toBe(true);
  });
});

describe('thresholds', () => {
  let rig: EngineRig | undefined;
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });
  const image = simImage(0x0202, 6_000);

  it('errorThreshold 0.5: one lying device of two does not halt, the next wave runs', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }, { bus: 'a' }] });
    rig.fault('lamp-2', { kind: 'lies' });
    const s = rig.submit({ id: 'tolerant', targets: { devices: ['lamp-1', 'lamp-2', 'lamp-3'] }, policy: { waves: [{ size: 2, errorThreshold: 0.5, successThreshold: 0.5 }, { size: '100%' }], maxPerBus: 2, maxPerGroup: 2 } }, image);
    const r = await s.outcome;
    const jobs = byDevice(rig.fw.jobs('tolerant'));
    expect(r.status, r.reason ?? '').toBe('completed');
    expect(jobs.get('lamp-2')).toMatchObject({ stage: 'failed', code: 'E_FW_VERIFY' });
    expect(jobs.get('lamp-2')!.reason).toMatch(/version 256/);
    expect(jobs.get('lamp-1')!.stage).toBe('confirmed');
    expect(jobs.get('lamp-3')!.stage).toBe('confirmed');
    expect(rig.sim('lamp-2').version).toBe(0x0100);
    expect(rig.sim('lamp-3').version).toBe(0x0202);
  });

  it('errorThreshold 0: the first failure halts the deployment at once; the jobs not started end cancelled E_FW_HALTED', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }, { bus: 'a' }] });
    rig.fault('lamp-1', { kind: 'lies' });
    const s = rig.submit({ id: 'strict', targets: { devices: ['lamp-1', 'lamp-2', 'lamp-3'] }, policy: { waves: [{ size: 2 }, { size: '100%' }], maxPerBus: 1 } }, image);
    const r = await s.outcome;
    expect(r).toMatchObject({ status: 'halted', code: 'E_FW_HALTED', wave: 0 });
    expect(r.reason).toMatch(/wave 1: 1 of 2 jobs failed .*error threshold 0 %/);
    const jobs = byDevice(rig.fw.jobs('strict'));
    expect(jobs.get('lamp-1')).toMatchObject({ stage: 'failed', code: 'E_FW_VERIFY' });
    for (const d of ['lamp-2', 'lamp-3']) {
      expect(jobs.get(d), d).toMatchObject({ stage: 'cancelled', code: 'E_FW_HALTED', startedAt: null });
      expect(rig.sim(d).blocksReceived, d).toBe(0);
    }
    const halted = rig.events().filter((e) => e.kind === 'firmware.deployment.halted');
    expect(halted.map((e) => e.detail)).toEqual([expect.objectContaining({ deployment: 'strict', status: 'halted', code: 'E_FW_HALTED' })]);
    expect(rig.events().filter((e) => e.kind === 'firmware.job.cancelled').map((e) => [e.device, e.detail.code])).toEqual([
      ['lamp-2', 'E_FW_HALTED'],
      ['lamp-3', 'E_FW_HALTED'],
    ]);
  });

  it('a halt stops a transfer under way in the same wave: cancelled E_FW_HALTED, never committed', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'b' }] });
    rig.fault('lamp-1', { kind: 'lies' });
    rig.fault('lamp-2', { kind: 'late', ms: 25 }); // still transferring when lamp-1 fails
    const s = rig.submit({ id: 'stopped', targets: { devices: ['lamp-1', 'lamp-2'] }, policy: { maxPerBus: 2, maxPerGroup: 2 } }, simImage(0x0208, 48_000));
    const r = await s.outcome;
    expect(r).toMatchObject({ status: 'halted', code: 'E_FW_HALTED' });
    // the final report has no job under way (engine bug: the deployment ends before the transfer stops)
    expect.soft(r.jobs.map((j) => [j.device, j.stage])).toEqual([['lamp-1', 'failed'], ['lamp-2', 'cancelled']]);
    const j = await rig.waitJob('stopped', 'lamp-2', 'cancelled', (x) => x.stage !== 'transferring');
    expect(j).toMatchObject({ stage: 'cancelled', code: 'E_FW_HALTED' });
    expect(j.blocksAcked).toBeLessThan(j.blocksTotal);
    expect(rig.sim('lamp-2')).toMatchObject({ version: 0x0100, commits: 0 });
  });

  it('a wave that ends with fewer confirmed than its successThreshold halts the deployment with that reason', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }, { bus: 'a' }] });
    rig.fault('lamp-2', { kind: 'lies' });
    const s = rig.submit({ id: 'short', targets: { devices: ['lamp-1', 'lamp-2', 'lamp-3'] }, policy: { waves: [{ size: 2, errorThreshold: 0.5, successThreshold: 1 }, { size: '100%' }], maxPerBus: 2, maxPerGroup: 2 } }, image);
    const r = await s.outcome;
    expect(r).toMatchObject({ status: 'halted', code: 'E_FW_HALTED' });
    expect(r.reason).toMatch(/wave 1: 1 of 2 jobs confirmed \(50 %\), less than its success threshold 100 %/);
    const jobs = byDevice(rig.fw.jobs('short'));
    expect(jobs.get('lamp-1')!.stage).toBe('confirmed');
    expect(jobs.get('lamp-2')!.stage).toBe('failed');
    expect(jobs.get('lamp-3')).toMatchObject({ stage: 'cancelled', code: 'E_FW_HALTED', startedAt: null });
  });
});

describe('caps', () => {
  let rig: EngineRig | undefined;
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });

  it('maxPerBus 1: never two jobs under way on one bus, the others wait naming the bus', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }, { bus: 'a' }] });
    const r0 = rig;
    let most = 0;
    const watch = sampler(() => {
      const busy = r0.fw.jobs('bus1').filter((j) => BUSY.has(j.stage)).length;
      most = Math.max(most, busy);
      if (busy > 1) throw new Error(`${busy} jobs under way at once on bus a`);
    });
    const s = rig.submit({ id: 'bus1', targets: { devices: ['lamp-1', 'lamp-2', 'lamp-3'] }, policy: { maxPerBus: 1, maxPerGroup: 3 } }, simImage(0x0203, 8_000));
    const r = await s.outcome;
    watch.stop();
    expect(r.status, r.reason ?? '').toBe('completed');
    expect(most).toBe(1);
    const jobs = rig.fw.jobs('bus1').sort((x, y) => x.startedAt! - y.startedAt!);
    for (let i = 1; i < jobs.length; i++) expect(jobs[i]!.startedAt!).toBeGreaterThanOrEqual(jobs[i - 1]!.endedAt!);
    const waits = rig.events().filter((e) => e.kind === 'firmware.job.waiting').map((e) => e.detail.waiting);
    expect(waits.length).toBeGreaterThan(0);
    for (const w of waits) expect(w).toMatch(/^bus a busy: lamp-\d updating \(at most 1 at once\)$/);
  });

  it('maxPerGroup 1 across two deployments: the second one’s job waits, naming the group, until the first ends', async () => {
    rig = await startRig({ lights: [{ bus: 'a', groups: ['street'] }, { bus: 'a', groups: ['street'] }], firmware: [ALL_DAY.replace(/ }$/, ', maxGroupShare: 1 }')] });
    rig.fault('lamp-1', { kind: 'late', ms: 5 }); // the first transfer takes a while
    const first = rig.submit({ id: 'g-first', targets: { devices: ['lamp-1'] }, policy: { maxPerBus: 2, maxPerGroup: 1 } }, simImage(0x0204, 16_000));
    await rig.waitJob('g-first', 'lamp-1', 'transferring', (j) => j.stage === 'transferring');
    const second = rig.submit({ id: 'g-second', targets: { devices: ['lamp-2'] }, policy: { maxPerBus: 2, maxPerGroup: 1 } }, simImage(0x0205, 6_000));
    expect(second.first.status).toBe('running');
    const waiting = await rig.waitJob('g-second', 'lamp-2', 'waiting', (j) => j.waiting !== null, 5_000);
    expect(waiting.stage).toBe('pending');
    expect(waiting.waiting).toBe('group street: 1 updating already (at most 1 at once)');
    expect(rig.fw.report('g-second')!.jobs[0]!.waiting).toBe(waiting.waiting);
    const [a, b] = await Promise.all([first.outcome, second.outcome]);
    expect([a.status, b.status]).toEqual(['completed', 'completed']);
    expect(rig.job('g-second', 'lamp-2').startedAt!).toBeGreaterThanOrEqual(rig.job('g-first', 'lamp-1').endedAt!);
    expect(rig.job('g-second', 'lamp-2').waiting).toBeNull();
  });

  it('a device in a deployment that has not ended cannot be a target of another: E_FW_TARGET, recorded', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }] });
    rig.fault('lamp-1', { kind: 'late', ms: 5 });
    const first = rig.submit({ id: 'holder', targets: { devices: ['lamp-1'] } }, simImage(0x0206, 12_000));
    await rig.waitJob('holder', 'lamp-1', 'transferring', (j) => j.stage === 'transferring');
    const second = rig.submit({ id: 'intruder', targets: { devices: ['lamp-2', 'lamp-1'] } }, simImage(0x0207, 6_000));
    expect(second.first).toMatchObject({ id: 'intruder', status: 'rejected', code: 'E_FW_TARGET' });
    expect(second.first.reason).toBe('device "lamp-1" is already a target of deployment holder, which has not ended');
    expect((await second.outcome).status).toBe('rejected');
    expect(rig.fw.jobs('intruder')).toEqual([]);
    expect(rig.events().some((e) => e.kind === 'firmware.deployment.rejected' && e.detail.deployment === 'intruder' && e.detail.code === 'E_FW_TARGET')).toBe(true);
    const r = await first.outcome;
    expect(r.status).toBe('completed');
    expect(ENDED.has(r.status)).toBe(true);
    expect(rig.sim('lamp-2').blocksReceived).toBe(0);
  });
});
