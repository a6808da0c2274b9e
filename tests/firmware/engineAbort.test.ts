/**
 * A job that ends before its commit takes its device out of the bootloader (the profile's
 * `abort`, edge/firmware/jobRunner.ts leaveBootloader): a cancelled transfer leaves the light
 * running its old firmware with nothing half-received; a pause does not (the transfer resumes
 * into the same bootloader); a job past its commit is never aborted. The engine in-process
 * (engineRig.ts), the built-in streetlight profile's `abort: { register: 110, value: 0 }`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { simImage } from './e2e/support.js';
import { startRig, type EngineRig } from './engineRig.js';
import { waitFor } from '../helpers/wait.js';

let rig: EngineRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('leaving the bootloader', () => {
  it('a cancelled transfer: the device leaves its bootloader, drops the blocks, runs its old version', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const r = rig;
    r.fault('lamp-1', { kind: 'late', ms: 5 });
    const s = r.submit({ id: 'dropped', targets: { devices: ['lamp-1'] } }, simImage(0x0401, 40_000));
    await r.waitJob('dropped', 'lamp-1', '5 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 5);
    expect(r.sim('lamp-1').mode).toBe('bootloader');
    expect(r.fw.control('dropped', 'cancel', 'tech').ok).toBe(true);
    const out = await s.outcome;
    expect(out).toMatchObject({ status: 'cancelled', code: 'E_FW_CANCELLED' });
    r.fault('lamp-1', null);
    await waitFor('the device back in its application', () => r.sim('lamp-1').mode === 'app', { timeoutMs: 5000 });
    expect(r.sim('lamp-1')).toMatchObject({ mode: 'app', version: 0x0100, aborts: 1, blocksReceived: 0, commits: 0 });
  });

  it('a pause keeps the device in its bootloader; resume ends confirmed without an abort', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const r = rig;
    r.fault('lamp-1', { kind: 'late', ms: 5 });
    const s = r.submit({ id: 'held', targets: { devices: ['lamp-1'] } }, simImage(0x0402, 30_000));
    await r.waitJob('held', 'lamp-1', '5 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 5);
    expect(r.fw.control('held', 'pause', 'tech').ok).toBe(true);
    await waitFor('the transfer parked', () => r.fw.report('held')?.status === 'paused');
    expect(r.sim('lamp-1')).toMatchObject({ mode: 'bootloader', aborts: 0 });
    r.fault('lamp-1', null);
    expect(r.fw.control('held', 'resume', 'tech').ok).toBe(true);
    const out = await s.outcome;
    expect(out.status).toBe('completed');
    expect(r.job('held', 'lamp-1').stage).toBe('confirmed');
    expect(r.sim('lamp-1')).toMatchObject({ version: 0x0402, aborts: 0, commits: 1 });
  });

  it('a device that lies (past its commit) is failed but not aborted', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const r = rig;
    r.fault('lamp-1', { kind: 'lies' });
    const s = r.submit({ id: 'liar', targets: { devices: ['lamp-1'] } }, simImage(0x0403, 6_000));
    const out = await s.outcome;
    expect(out.status).toBe('halted');
    expect(r.job('liar', 'lamp-1')).toMatchObject({ stage: 'failed', code: 'E_FW_VERIFY' });
    expect(r.sim('lamp-1')).toMatchObject({ aborts: 0, commits: 1, version: 0x0100 });
  });
});

describe('a controller that lost what it had acknowledged', () => {
  it('the cabinet loses power mid-transfer (gateway and controller): on resume the checksum differs, the image goes again from block 0 once, and the job ends confirmed', async () => {
    rig = await startRig({ lights: [{ bus: 'a' }] });
    const r = rig;
    r.fault('lamp-1', { kind: 'late', ms: 3 });
    const image = simImage(0x0404, 24_000);
    r.submit({ id: 'blackout', targets: { devices: ['lamp-1'] } }, image);
    await r.waitJob('blackout', 'lamp-1', '10 blocks in', (j) => j.stage === 'transferring' && j.blocksAcked >= 10);
    // the gateway stops between two blocks; the controller's bootloader forgets everything meanwhile
    await r.restart(() => r.sims.model('a', 1).firmware!.powerLoss());
    r.fault('lamp-1', null);
    const done = await r.waitJob('blackout', 'lamp-1', 'ended', (j) => j.stage === 'confirmed' || j.stage === 'failed', 30_000);
    expect(done).toMatchObject({ stage: 'confirmed', versionAfter: 0x0404 });
    const sim = r.sim('lamp-1');
    expect(sim.image.equals(image.bytes)).toBe(true);
    expect(sim.commits).toBe(1);
    // since the power loss: the resume from the journaled block (never from 0: it cannot know), then,
    // the checksum differing, the whole image once from block 0, in order
    const blocks = Math.ceil(image.bytes.length / 240);
    expect(sim.blockLog[0]).toBeGreaterThanOrEqual(10);
    const restart = sim.blockLog.indexOf(0);
    expect(sim.blockLog.filter((b) => b === 0)).toHaveLength(1);
    expect(sim.blockLog.slice(restart)).toEqual(Array.from({ length: blocks }, (_, i) => i));
    expect(r.job('blackout', 'lamp-1').reason).toMatch(/^version 1028; probe/);
  });
});
