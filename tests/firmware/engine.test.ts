/**
 * The firmware engine's road of one deployment (issue 17 Deliver 1, 2, 4, 7), in-process on
 * simulated streetlight controllers over TCP (engineRig.ts): an id seen before gets the original's
 * report, a refused id may come again corrected; pause holds a transfer where it is and resume
 * goes on from there; cancel ends it; nothing waits past the deadline; a stage that takes too
 * long fails; a gateway stopped mid-transfer or mid-verification goes on where it was when it
 * starts again, never from block 0.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { longitudeAtSolarHour, keyPair, simImage } from './e2e/support.js';
import { holds, startRig, transferFault, type EngineRig } from './engineRig.js';

let rig: EngineRig | undefined;

/** Waits until `key(read())` has not changed for 150 ms (a transfer that stopped), returns read(). */
async function settled<T>(read: () => T, key: (x: T) => string, timeoutMs = 5000): Promise<T> {
  let last = key(read());
  let since = Date.now();
  return waitFor('no more progress', () => {
    const k = key(read());
    if (k !== last) {
      last = k;
      since = Date.now();
    }
    return Date.now() - since >= 150 && read();
  }, { timeoutMs });
}
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('the doors', () => {
  it('a deployment id seen before gets the original’s report: no second deployment', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }] });
    const image = simImage(0x0301, 6_000);
    const first = rig.submit({ id: 'once', targets: { devices: ['lamp-1'] } }, image);
    expect(first.first.status).toBe('running');
    const again = rig.submit({ id: 'once', targets: { devices: ['lamp-1', 'lamp-2'] } }, simImage(0x0302, 6_000));
    expect(again.id).toBe('once');
    expect(again.first).toMatchObject({ id: 'once', status: 'running', code: null, artifact: { sha256: image.sha256 } });
    expect(again.first.jobs.map((j) => j.device)).toEqual(['lamp-1']);
    const [a, b] = await Promise.all([first.outcome, again.outcome]);
    expect(a.status).toBe('completed');
    expect(b).toEqual(a);
    expect(rig.fw.list().map((r) => r.id)).toEqual(['once']);
    expect(rig.fw.jobs('once').map((j) => j.device)).toEqual(['lamp-1']);
    expect(rig.sim('lamp-1').version).toBe(0x0301);
    expect(rig.sim('lamp-2').blocksReceived).toBe(0);
    // once ended, the same id again: still the original's report
    const late = rig.submit({ id: 'once', targets: { devices: ['lamp-2'] } }, image);
    expect(late.first).toMatchObject({ id: 'once', status: 'completed' });
    expect((await late.outcome).status).toBe('completed');
    expect(rig.events().filter((e) => e.kind === 'firmware.deployment.running')).toHaveLength(1);
  });

  it('an id refused for its signature is accepted when it comes again correctly signed', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const image = simImage(0x0303, 6_000);
    const bad = rig.submit({ id: 'resent', targets: { devices: ['lamp-1'] } }, image, keyPair());
    expect(bad.first).toMatchObject({ id: 'resent', status: 'rejected', code: 'E_FW_SIGNATURE' });
    expect(rig.fw.report('resent')).toMatchObject({ status: 'rejected', code: 'E_FW_SIGNATURE' });
    expect(rig.sim('lamp-1').blocksReceived).toBe(0);
    const good = rig.submit({ id: 'resent', targets: { devices: ['lamp-1'] } }, image);
    expect(good.first).toMatchObject({ id: 'resent', status: 'running', code: null });
    const r = await good.outcome;
    expect(r.status).toBe('completed');
    expect(rig.fw.jobs('resent').map((j) => [j.device, j.stage])).toEqual([['lamp-1', 'confirmed']]);
    expect(rig.events().filter((e) => e.kind.startsWith('firmware.deployment.')).map((e) => [e.kind, e.detail.code ?? null])).toEqual([
      ['firmware.deployment.rejected', 'E_FW_SIGNATURE'],
      ['firmware.deployment.running', null],
      ['firmware.deployment.completed', null],
    ]);
  });
});

describe('pause, resume, cancel', () => {
  it('pause holds a transfer where it is; resume goes on from that block', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const r0 = rig;
    rig.fault('lamp-1', { kind: 'late', ms: 5 });
    const image = simImage(0x0304, 36_000);
    const s = rig.submit({ id: 'held', targets: { devices: ['lamp-1'] } }, image);
    await rig.waitJob('held', 'lamp-1', '10 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 10);
    const paused = rig.fw.control('held', 'pause', 'tech');
    expect(paused.ok && paused.report.status).toBe('paused');
    // the block under way ends, then nothing more goes out
    const at = await settled(() => r0.job('held', 'lamp-1'), (j) => `${j.blocksAcked}/${r0.sim('lamp-1').blocksReceived}`);
    const received = rig.sim('lamp-1').blocksReceived;
    // the journal has every block the device took, but the one in flight when the pause came
    expect(received - at.blocksAcked).toBeGreaterThanOrEqual(0);
    expect(received - at.blocksAcked).toBeLessThanOrEqual(1);
    expect(at.blocksAcked).toBeLessThan(at.blocksTotal);
    await holds('a paused transfer stays where it is', 400, () => {
      const j = r0.job('held', 'lamp-1');
      return j.stage === 'transferring' && j.blocksAcked === at.blocksAcked && r0.sim('lamp-1').blocksReceived === received;
    });
    expect(rig.fw.report('held')!.status).toBe('paused');
    const resumed = rig.fw.control('held', 'resume', 'tech');
    expect(resumed.ok && resumed.report.status).toBe('running');
    const r = await s.outcome;
    expect(r.status).toBe('completed');
    const fw = rig.sim('lamp-1');
    expect(transferFault(fw.blockLog, rig.job('held', 'lamp-1').blocksTotal)).toBeNull();
    // resumed from the journal's count: the blocks after it come once
    expect(fw.blockLog.slice(received)).toEqual(Array.from({ length: fw.blockLog.length - received }, (_, i) => at.blocksAcked + i));
    expect(fw.image.equals(image.bytes)).toBe(true);
    expect(fw.version).toBe(0x0304);
    expect(rig.events().filter((e) => e.kind.startsWith('firmware.deployment.')).map((e) => [e.kind, e.detail.principal])).toEqual([
      ['firmware.deployment.running', 'tech'],
      ['firmware.deployment.paused', 'tech'],
      ['firmware.deployment.running', 'tech'],
      ['firmware.deployment.completed', 'tech'],
    ]);
  });

  it('cancel ends a transferring job E_FW_CANCELLED, the deployment cancelled, and settles its outcome', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }] });
    rig.fault('lamp-1', { kind: 'late', ms: 5 });
    const s = rig.submit({ id: 'dropped', targets: { devices: ['lamp-1', 'lamp-2'] }, policy: { maxPerBus: 1 } }, simImage(0x0305, 36_000));
    await rig.waitJob('dropped', 'lamp-1', '5 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 5);
    const c = rig.fw.control('dropped', 'cancel', 'tech');
    expect(c.ok).toBe(true);
    const r = await s.outcome;
    expect(r).toMatchObject({ status: 'cancelled', code: 'E_FW_CANCELLED', reason: 'cancelled by tech' });
    // a deployment's final report has no job under way (engine bug: it ends before its transfer stops)
    expect.soft(r.jobs.map((j) => [j.device, j.stage])).toEqual([['lamp-1', 'cancelled'], ['lamp-2', 'cancelled']]);
    await rig.waitJob('dropped', 'lamp-1', 'cancelled', (j) => j.stage === 'cancelled');
    expect(rig.job('dropped', 'lamp-1')).toMatchObject({ stage: 'cancelled', code: 'E_FW_CANCELLED' });
    expect(rig.fw.outbox().pending(100).find((p) => p.topicId === 'dropped')!.report.jobs.map((j) => j.stage)).toEqual(['cancelled', 'cancelled']);
    expect(rig.job('dropped', 'lamp-2')).toMatchObject({ stage: 'cancelled', code: 'E_FW_CANCELLED', startedAt: null });
    expect(rig.sim('lamp-1')).toMatchObject({ version: 0x0100, commits: 0 });
    expect(rig.sim('lamp-2').blocksReceived).toBe(0);
    expect(rig.fw.control('dropped', 'resume', 'tech')).toMatchObject({ ok: false, code: 'E_FW_FINAL' });
    expect(rig.events().filter((e) => e.kind === 'firmware.deployment.cancelled').map((e) => e.detail)).toEqual([
      expect.objectContaining({ deployment: 'dropped', status: 'cancelled', code: 'E_FW_CANCELLED', principal: 'tech' }),
    ]);
  });
});

describe('nothing stays in progress', () => {
  it('lights at night wait, then fail E_FW_EXPIRED at the deadline, and the deployment ends', async () => {
    // at the equator, local midnight: no daylight for hours; no lights windows
    rig = await startRig({ lights: [{ bus: 'a' }, { bus: 'a' }], lat: 0, lon: longitudeAtSolarHour(0), firmware: ['lights: { byDay: true }'] });
    const deadline = Date.now() + 2000;
    const s = rig.submit({ id: 'night', targets: { devices: ['lamp-1', 'lamp-2'] }, policy: { deadline, maxPerBus: 2, maxPerGroup: 2 } }, simImage(0x0306, 6_000));
    const waiting = await rig.waitJob('night', 'lamp-1', 'waiting', (j) => j.waiting !== null);
    expect(waiting.stage).toBe('pending');
    expect(waiting.waiting).toMatch(/^night: lights update by day \(from \d{4}-\d\d-\d\dT/);
    const r = await s.outcome;
    expect(Date.now()).toBeGreaterThan(deadline);
    expect(Date.now() - deadline).toBeLessThan(3000);
    expect(r).toMatchObject({ status: 'halted', code: 'E_FW_EXPIRED' });
    for (const d of ['lamp-1', 'lamp-2']) {
      const j = rig.job('night', d);
      expect(j, d).toMatchObject({ stage: 'failed', code: 'E_FW_EXPIRED', startedAt: null });
      expect(j.reason).toMatch(/^not (started|done) before the deployment's deadline .*; it was waiting: night: /);
      expect(rig.sim(d).blocksReceived).toBe(0);
    }
  });

  it('a device that never comes back after its commit fails E_FW_TIMEOUT within verify + rebootS', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }], rebootS: 1, firmware: ["lights: { windows: [ { from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' } ] }", 'timeouts: { verify: 1s }'] });
    const r0 = rig;
    // the moment the job reaches verifying (its report goes out synchronously), the device goes silent
    rig.gw.context.bus.on('engine-test', 'deploymentReport', (r) => {
      if (r.jobs.some((j) => j.device === 'lamp-1' && j.stage === 'verifying')) r0.fault('lamp-1', { kind: 'noAnswer' });
    });
    const s = rig.submit({ id: 'silent', targets: { devices: ['lamp-1'] } }, simImage(0x0307, 6_000));
    const r = await s.outcome;
    rig.gw.context.bus.off('engine-test');
    rig.fault('lamp-1', null);
    const j = rig.job('silent', 'lamp-1');
    expect(j).toMatchObject({ stage: 'failed', code: 'E_FW_TIMEOUT' });
    expect(j.reason).toMatch(/within 2 s of its commit|verifying took longer than 2 s/);
    const verifying = rig.events().find((e) => e.kind === 'firmware.job.verifying')!;
    // verify (1 s) + rebootS (1 s), a tick (1 s) and a read's timeouts
    expect(j.endedAt! - verifying.ts).toBeGreaterThanOrEqual(2000);
    expect(j.endedAt! - verifying.ts).toBeLessThan(4000);
    expect(r).toMatchObject({ status: 'halted', code: 'E_FW_HALTED' });
  });
});

describe('a restart resumes each job where it was', () => {
  it('stopped while transferring: the transfer goes on from its acknowledged blocks, never from block 0', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    rig.fault('lamp-1', { kind: 'late', ms: 5 });
    const image = simImage(0x0308, 30_000);
    rig.submit({ id: 'cut', targets: { devices: ['lamp-1'] } }, image);
    await rig.waitJob('cut', 'lamp-1', '10 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 10);
    await rig.restart();
    const before = rig.job('cut', 'lamp-1');
    expect(before.stage).toBe('transferring');
    expect(before.blocksAcked).toBeLessThan(before.blocksTotal);
    const received = rig.sim('lamp-1').blocksReceived;
    expect(received - before.blocksAcked).toBeGreaterThanOrEqual(0);
    expect(received - before.blocksAcked).toBeLessThanOrEqual(1);
    rig.fault('lamp-1', null);
    const j = await rig.waitJob('cut', 'lamp-1', 'confirmed', (x) => x.stage === 'confirmed' || x.stage === 'failed');
    expect(j.stage, j.reason ?? '').toBe('confirmed');
    const fw = rig.sim('lamp-1');
    expect(fw.blockLog.filter((b) => b === 0)).toHaveLength(1);
    expect(transferFault(fw.blockLog, j.blocksTotal)).toBeNull();
    expect(fw.blockLog[received]).toBe(before.blocksAcked);
    expect(fw.image.equals(image.bytes)).toBe(true);
    await waitFor('deployment cut completed', () => rig!.fw.report('cut')!.status === 'completed');
  });

  it('stopped while verifying: no second commit, the job ends confirmed', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }], rebootMs: 1500, rebootS: 5 });
    rig.submit({ id: 'rebooting', targets: { devices: ['lamp-1'] } }, simImage(0x0309, 6_000));
    await rig.waitJob('rebooting', 'lamp-1', 'verifying', (j) => j.stage === 'verifying');
    await rig.restart();
    expect(rig.job('rebooting', 'lamp-1').stage).toBe('verifying');
    const j = await rig.waitJob('rebooting', 'lamp-1', 'ended', (x) => x.stage === 'confirmed' || x.stage === 'failed');
    expect(j).toMatchObject({ stage: 'confirmed', versionAfter: 0x0309, versionBefore: 0x0100 });
    expect(rig.sim('lamp-1')).toMatchObject({ version: 0x0309, commits: 1, reboots: 1 });
    await waitFor('deployment rebooting completed', () => rig!.fw.report('rebooting')!.status === 'completed');
  });
});
