/**
 * requestMac black box, beyond the scenario rows: what it refuses, a newer request replacing a
 * pending one, a rejoin ending them, a silent device's requests expiring, and MAC commands riding
 * a class C downlink. Real UDP on 127.0.0.1, the real store, the driver on a fake clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lorawanMetrics } from '../../edge/componentMetrics.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { decodeMacDownlink } from '../../edge/drivers/lorawan/mac/commands.js';
import { MAC_REQUEST_TTL_MS } from '../../edge/drivers/lorawan/mac/handler.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { START, startRig, stopRig, uplink, type Rig } from './macScenario.js';
import { joinRequest, loraConfig, rxpk, waitFor } from './support.js';

let t: TestContext;
let clock: FakeClock;
let rig: Rig;
beforeEach(async () => {
  t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
  clock = new FakeClock(START);
  rig = await startRig(t, clock);
});
afterEach(async () => {
  await stopRig(rig);
  await t.close();
});

describe('requestMac', () => {
  it.each([
    ['a command the node sends (LinkCheckAns)', 'lamp-abp', { cid: 'LinkCheckAns', margin: 1, gwCnt: 1 }, 'E_INVALID_COMMAND'],
    ['a field out of range (MaxDCycle 16)', 'lamp-abp', { cid: 'DutyCycleReq', maxDCycle: 16 }, 'E_INVALID_COMMAND'],
    ['an unknown device', 'nope', { cid: 'DevStatusReq' }, 'E_NOT_FOUND'],
  ] as const)('refuses %s at once', (_name, device, request, code) => {
    expect(() => rig.driver.requestMac(device, request)).toThrow(expect.objectContaining({ code }));
  });

  it('refuses while the driver is not running (E_COMPONENT)', () => {
    expect(() => createLorawanDriver(t.ctx).requestMac('lamp-abp', { cid: 'DevStatusReq' })).toThrow(expect.objectContaining({ code: 'E_COMPONENT' }));
  });

  it('a newer request of the same command replaces the pending one: its caller is told, the frame carries the new one', async () => {
    const old = rig.driver.requestMac('lamp-abp', { cid: 'DutyCycleReq', maxDCycle: 1 });
    rig.driver.requestMac('lamp-abp', { cid: 'DutyCycleReq', maxDCycle: 2 });
    expect(await old.outcome).toEqual({ status: 'failed', reason: 'replaced' });
    const [frame] = await uplink(rig, { fCnt: 0 });
    expect(frame!.fOpts).toEqual([{ cid: 'DutyCycleReq', maxDCycle: 2 }]);
  });

  it('a rejoin ends the pending requests of the old session (failed, rejoined)', async () => {
    rig.fwd.push(rxpk(joinRequest(1), { tmst: 10 }));
    await waitFor('joined', () => rig.driver.metrics().joins === 1, 2000);
    const { outcome } = rig.driver.requestMac('lamp-otaa', { cid: 'DevStatusReq' });
    rig.fwd.push(rxpk(joinRequest(2), { tmst: 20 }));
    expect(await outcome).toEqual({ status: 'failed', reason: 'rejoined' });
    expect(t.events).toContainEqual(expect.objectContaining({ kind: 'lorawan.mac.failed', device: 'lamp-otaa', detail: expect.objectContaining({ reason: 'rejoined' }) }));
  });

  it('a silent device\'s request expires after a day (swept on the driver\'s clock)', async () => {
    const { outcome } = rig.driver.requestMac('lamp-abp', { cid: 'DevStatusReq' });
    let done = false;
    void outcome.then(() => (done = true));
    await clock.advance(MAC_REQUEST_TTL_MS - 120_000);
    expect(done).toBe(false);
    await clock.advance(120_000);
    expect(await outcome).toEqual({ status: 'failed', reason: 'expired' });
  });

  it('class C: pending MAC commands ride in FOpts of the immediate downlink', async () => {
    rig.driver.requestMac('lamp-c', { cid: 'DevStatusReq' });
    rig.driver.enqueueDownlink('lamp-c', { action: 'on' });
    await waitFor('class C downlink', () => rig.fwd.pullResps().length === 1, 2000);
    const resp = rig.fwd.pullResps()[0]!;
    const p = loraPacket.fromWire(Buffer.from(resp.txpk.data, 'base64'));
    expect(resp.txpk).toMatchObject({ imme: true, freq: 869.525 });
    expect(p.getFPort()).toBe(10);
    expect(decodeMacDownlink(p.FOpts!).commands).toEqual([{ cid: 'DevStatusReq' }]);
  });

  it('/metrics: streetbox_lorawan_mac_total by command and outcome', async () => {
    const { outcome } = rig.driver.requestMac('lamp-abp', { cid: 'DevStatusReq' });
    await uplink(rig, { fCnt: 0 });
    await uplink(rig, { fCnt: 1, fOpts: [{ cid: 'DevStatusAns', battery: 10, margin: 2 }] });
    await outcome;
    const mac = lorawanMetrics(rig.driver).filter((m) => m.name === 'streetbox_lorawan_mac_total');
    expect(mac).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'counter', value: 1, labels: { command: 'DevStatusReq', outcome: 'sent' } }),
        expect.objectContaining({ type: 'counter', value: 1, labels: { command: 'DevStatusReq', outcome: 'answered' } }),
      ]),
    );
  });
});
