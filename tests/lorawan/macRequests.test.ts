/**
 * requestMac black box, beyond the scenario rows: what it refuses, a newer request replacing a
 * pending one, a rejoin ending them, a silent device's requests expiring, MAC commands riding a
 * class C downlink, and the MAC state as the store keeps it (what load() repairs, a rejoin, the ADR
 * history written now and then). Real UDP on 127.0.0.1, the real store, the driver on a fake clock.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lorawanMetrics } from '../../edge/componentMetrics.js';
import { decodeClockSyncDown, encodeClockSyncUp } from '../../edge/drivers/lorawan/app/clockSync.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { decodeMacDownlink, encodeMacUplink } from '../../edge/drivers/lorawan/mac/commands.js';
import { MAC_REQUEST_TTL_MS, SNR_WRITE_EVERY } from '../../edge/drivers/lorawan/mac/handler.js';
import { freshMacState } from '../../edge/drivers/lorawan/mac/state.js';
import { unixToGpsMs } from '../../edge/drivers/lorawan/mac/types.js';
import { txAck, type TxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { lorawanDatabase } from '../../edge/drivers/lorawan/storage/db.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { START, startRig, stopRig, uplink, type Rig } from './macScenario.js';
import { ABP, CLASS_C, dataUp, GW, joinRequest, loraConfig, OTAA, rxpk, waitFor } from './support.js';

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
    // RP002 §2.4: the 4-bit fields hold more than EU868 defines (15 alone means "keep")
    ['a TX power index EU868 does not define (LinkADRReq TXPower 9)', 'lamp-abp', { cid: 'LinkADRReq', dataRate: 5, txPower: 9, chMask: 7, chMaskCntl: 0, nbTrans: 1 }, 'E_INVALID_COMMAND'],
    ['a data rate EU868 does not define (LinkADRReq DataRate 8)', 'lamp-abp', { cid: 'LinkADRReq', dataRate: 8, txPower: 0, chMask: 7, chMaskCntl: 0, nbTrans: 1 }, 'E_INVALID_COMMAND'],
    ['an RX2 frequency outside the EU868 sub-bands (RXParamSetupReq 871 MHz)', 'lamp-abp', { cid: 'RXParamSetupReq', rx1DrOffset: 0, rx2DataRate: 0, frequency: 871_000_000 }, 'E_INVALID_COMMAND'],
    ['a default channel (NewChannelReq ChIndex 1)', 'lamp-abp', { cid: 'NewChannelReq', chIndex: 1, frequency: 868_300_000, minDr: 0, maxDr: 5 }, 'E_INVALID_COMMAND'],
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

  it('class C: the answers to the node\'s own MAC requests go in its uplink\'s downlink, though a TS003 answer of the same uplink went at once', async () => {
    const phy = loraPacket
      .fromFields(
        {
          MType: 'Unconfirmed Data Up',
          DevAddr: Buffer.from(CLASS_C.devAddr, 'hex'),
          FCtrl: { ADR: false, ACK: false, ADRACKReq: false, FPending: false },
          FCnt: 0,
          FOpts: encodeMacUplink([{ cid: 'DeviceTimeReq' }]),
          FPort: 202,
          payload: encodeClockSyncUp([{ cid: 'AppTimeReq', deviceTime: 1000, tokenReq: 1, ansRequired: true }]),
        },
        Buffer.from(CLASS_C.appSKey, 'hex'),
        Buffer.from(CLASS_C.nwkSKey, 'hex'),
        undefined,
        fCntMsb(0),
      )
      .getPHYPayload()!;
    rig.fwd.push(rxpk(phy));
    await waitFor('the AppTimeAns and the DeviceTimeAns', () => rig.fwd.pullResps().length === 2, 2000);
    const frames = rig.fwd.pullResps().map((r) => classC(r.txpk));
    expect(frames.map((f) => f.fPort)).toEqual([202, null]);
    expect(decodeClockSyncDown(frames[0]!.payload).commands).toMatchObject([{ cid: 'AppTimeAns', tokenAns: 1 }]);
    expect(frames[1]!.fOpts).toEqual([{ cid: 'DeviceTimeAns', gpsMs: unixToGpsMs(START) }]);
    expect(rig.driver.metrics().mac).toEqual({ DeviceTimeReq: { answered: 1 } });
  });

  it('class C: a request rides at most 4 frames while the node does not uplink, and fails at its next uplink without the answer', async () => {
    const { outcome } = rig.driver.requestMac('lamp-c', { cid: 'DevStatusReq' });
    for (let i = 0; i < 6; i++) rig.driver.enqueueApp('lamp-c', { fPort: 201, payload: Buffer.from([i]), label: `message ${i}` });
    for (let n = 1; n <= 6; n++) {
      await waitFor(`class C frame ${n}`, () => rig.fwd.pullResps().length >= n, 2000);
      rig.fwd.send(txAck(2, rig.fwd.pullResps()[n - 1]!.token, GW));
    }
    expect(rig.fwd.pullResps().map((r) => classC(r.txpk).fOpts.length)).toEqual([1, 1, 1, 1, 0, 0]);
    rig.fwd.push(rxpk(dataUp(CLASS_C, 0)));
    expect(await outcome).toEqual({ status: 'failed', reason: 'no_answer' });
    expect(rig.driver.metrics().mac).toEqual({ DevStatusReq: { sent: 4, failed: 1 } });
  });
});

describe('the MAC state in the store', () => {
  let db: BetterSqlite3.Database;
  beforeEach(() => {
    db = lorawanDatabase(t.store, t.ctx.log);
  });

  function write(devEui: string, doc: Record<string, unknown>): void {
    db.prepare('INSERT OR REPLACE INTO lorawan_mac_state (dev_eui, state, updated_at) VALUES (?, ?, 0)').run(devEui, JSON.stringify(doc));
  }

  function stored(devEui: string): { state: Record<string, unknown>; updatedAt: number } | null {
    const row = db.prepare('SELECT state, updated_at AS updatedAt FROM lorawan_mac_state WHERE dev_eui = ?').get(devEui) as { state: string; updatedAt: number } | undefined;
    return row ? { state: JSON.parse(row.state) as Record<string, unknown>, updatedAt: row.updatedAt } : null;
  }

  /** A stored document: the defaults with `over`. */
  function doc(devEui: string, over: Record<string, unknown>): Record<string, unknown> {
    const { devEui: _eui, ...fresh } = freshMacState(devEui, START);
    return { ...fresh, ...over };
  }

  async function restart(): Promise<void> {
    await stopRig(rig);
    rig = await startRig(t, clock);
  }

  it('a rejoin starts the stored state afresh too: after a restart the device is on the defaults, not on what its old session ACKed', async () => {
    await stopRig(rig);
    write(OTAA.devEui, doc(OTAA.devEui, { dr: 3, rx1Delay: 5, rx2Frequency: 869_100_000, pending: [{ id: 'old', request: { cid: 'DevStatusReq' }, attempts: 1, createdAt: START, origin: 'api' }] }));
    rig = await startRig(t, clock);
    rig.fwd.push(rxpk(joinRequest(1)));
    await waitFor('the old request failed', () => t.events.some((e) => e.kind === 'lorawan.mac.failed' && e.detail.reason === 'rejoined'), 2000);
    await restart();
    expect(stored(OTAA.devEui)?.state).toMatchObject({ dr: null, rx1Delay: null, rx2Frequency: null, pending: [] });
  });

  it('at load: a request that cannot go is dropped and counted, the others go; an index EU868 lacks reads as unknown; times ahead come back to now; rows of devices no longer configured go', async () => {
    await stopRig(rig);
    const tenYears = 10 * 365 * 24 * 3_600_000;
    const pending = (id: string, request: Record<string, unknown>, createdAt = START) => ({ id, request, attempts: 0, createdAt, origin: 'api' });
    write(
      ABP.devEui,
      doc(ABP.devEui, {
        txPower: 9,
        pending: [
          pending('no-eu868-power', { cid: 'LinkADRReq', dataRate: 5, txPower: 9, chMask: 7, chMaskCntl: 0, nbTrans: 1 }),
          pending('no-field', { cid: 'DutyCycleReq' }),
          // written under a radio clock years ahead (simulate.radioTimeScale)
          pending('ok', { cid: 'DevStatusReq' }, START + tenYears),
        ],
      }),
    );
    write('ffffffffffffffff', doc('ffffffffffffffff', {}));
    rig = await startRig(t, clock);
    expect(rig.driver.metrics().rejected).toEqual({ mac_stored_invalid: 2 });
    expect(rig.driver.status().devices.find((d) => d.id === 'lamp-abp')).toMatchObject({ txPower: null });
    expect(stored('ffffffffffffffff')).toBeNull();
    const [frame] = await uplink(rig, { fCnt: 0 });
    expect(frame!.fOpts).toEqual([{ cid: 'DevStatusReq' }]);
    // updated_at is the gateway's clock (the system's here), the document's times the driver's
    await waitFor('written', () => (stored(ABP.devEui)?.state.pending as { attempts: number }[])[0]?.attempts === 1, 2000);
    expect(Math.abs(stored(ABP.devEui)!.updatedAt - Date.now())).toBeLessThan(60_000);
    // brought back to now: it expires a day later, not in ten years
    await clock.advance(MAC_REQUEST_TTL_MS);
    expect(t.events).toContainEqual(expect.objectContaining({ kind: 'lorawan.mac.failed', detail: expect.objectContaining({ command: 'DevStatusReq', reason: 'expired' }) }));
  });

  it(`the ADR history is written every ${SNR_WRITE_EVERY} uplinks, not with each one`, async () => {
    await uplink(rig, { fCnt: 0 });
    await waitFor('lamp-abp first known', () => stored(ABP.devEui) !== null, 2000);
    for (let fCnt = 1; fCnt <= 3; fCnt++) await uplink(rig, { fCnt, adr: true, rx: { datr: 'SF12BW125', lsnr: fCnt } });
    // a write of the other devices' rows: lamp-abp's, were it due, would go in the same one
    rig.driver.status();
    await waitFor('the other devices written', () => stored(CLASS_C.devEui) !== null, 2000);
    expect(stored(ABP.devEui)!.state.snrHistory).toEqual([]);
    for (let fCnt = 4; fCnt <= SNR_WRITE_EVERY; fCnt++) await uplink(rig, { fCnt, adr: true, rx: { datr: 'SF12BW125', lsnr: fCnt } });
    await waitFor(`the history of ${SNR_WRITE_EVERY} uplinks written`, () => (stored(ABP.devEui)!.state.snrHistory as number[]).length === SNR_WRITE_EVERY, 2000);
  });
});

/** A downlink to lamp-c: its FPort, FOpts commands and decrypted payload. */
function classC(txpk: TxPk): { fPort: number | null; fOpts: ReturnType<typeof decodeMacDownlink>['commands']; payload: Buffer } {
  const p = loraPacket.fromWire(Buffer.from(txpk.data, 'base64'));
  const payload = p.FRMPayload && p.FRMPayload.length > 0 ? loraPacket.decrypt(p, Buffer.from(CLASS_C.appSKey, 'hex'), Buffer.from(CLASS_C.nwkSKey, 'hex')) : Buffer.alloc(0);
  return { fPort: p.getFPort(), fOpts: decodeMacDownlink(p.FOpts ?? Buffer.alloc(0)).commands, payload };
}
