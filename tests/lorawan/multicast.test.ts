/**
 * Multicast frames (TS005 §3) through the driver, black box over real UDP on 127.0.0.1 with the
 * real store: the frame the forwarder gets decodes with the group's keys (derived as the node
 * derives them), it goes `imme` at the session's frequency and data rate through the forwarder
 * that answers the devices, it is charged to the duty-cycle ledger and refused when the sub-band
 * has no budget, a TX_ACK error refunds it. The driver's clock is a fake one (the 5 s without TX_ACK).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { scaledClock } from '../../edge/clock.js';
import { mcSessionKeys } from '../../edge/drivers/lorawan/app/keys.js';
import { createLorawanDriver, type MulticastSession } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { timeOnAirMs } from '../../edge/drivers/lorawan/region/airtime.js';
import { subBandOf } from '../../edge/drivers/lorawan/region/eu868.js';
import { txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { AirtimeTable } from '../../edge/drivers/lorawan/storage/airtime.js';
import { lorawanDatabase } from '../../edge/drivers/lorawan/storage/db.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { START, startRig, stopRig, type Rig } from './macScenario.js';
import { ABP, dataUp, GW, GW2, loraConfig, RawForwarder, rxpk, waitFor } from './support.js';

const G3_HZ = 869_525_000;
const MC_ADDR = '01ab23cd';
const mcKey = randomBytes(16);
const keys = mcSessionKeys(mcKey, MC_ADDR);
const session = (over: Partial<MulticastSession> = {}): MulticastSession => ({ mcAddr: MC_ADDR, mcNwkSKey: keys.mcNwkSKey, mcAppSKey: keys.mcAppSKey, fCnt: 70_000, frequency: G3_HZ, dr: 5, ...over });

let t: TestContext;
let clock: FakeClock;
let rig: Rig;

async function start(chargedMs = 0): Promise<void> {
  t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
  clock = new FakeClock(START);
  if (chargedMs > 0) {
    // air time this forwarder already spent on g3 in the last hour (the ledger's journal)
    const journal = AirtimeTable.open(lorawanDatabase(t.store, t.ctx.log), clock, (err) => {
      throw err;
    })!;
    journal.load(3_600_000);
    journal.add({ gateway: GW, band: subBandOf(G3_HZ / 1e6)!.name, at: clock.monotonic(), airtimeMs: chargedMs });
  }
  rig = await startRig(t, clock);
}

afterEach(async () => {
  await stopRig(rig);
  await t.close();
});

/** The next PULL_RESP at `fwd`, decoded with the group's keys as a node of the group does. */
async function nextFrame(fwd: RawForwarder, n: number) {
  await waitFor(`PULL_RESP ${n}`, () => fwd.pullResps().length >= n, 2000);
  const resp = fwd.pullResps()[n - 1]!;
  const phy = Buffer.from(resp.txpk.data, 'base64');
  const p = loraPacket.fromWire(phy);
  const fCnt = p.getFCnt()!;
  return { resp, phy, p, fCnt };
}

describe('sendMulticast', () => {
  beforeEach(() => start());

  it('sends a frame to McAddr that a group member decodes (McNwkSKey MIC, McAppSKey payload), imme at the session\'s frequency and DR; TX_ACK: sent; FCnt advanced; the ledger charged', async () => {
    const s = session();
    const payload = Buffer.from('08000102030405060708090a', 'hex');
    const used0 = rig.driver.radio.usedMs(G3_HZ, GW);
    const outcome = rig.driver.sendMulticast(s, 201, payload);
    const { resp, phy, p } = await nextFrame(rig.fwd, 1);
    expect(resp.txpk).toMatchObject({ imme: true, freq: 869.525, datr: 'SF7BW125', ipol: true });
    expect(p.getMType()).toBe('Unconfirmed Data Down');
    expect(p.DevAddr!.toString('hex')).toBe(MC_ADDR);
    expect(p.getFCnt()).toBe(70_000 & 0xffff);
    expect(p.getFPort()).toBe(201);
    // the 32-bit counter's MSBs sign it (LoRaWAN 1.0.3 §4.4)
    expect(loraPacket.verifyMIC(p, keys.mcNwkSKey, undefined, fCntMsb(70_000))).toBe(true);
    expect(loraPacket.decrypt(p, keys.mcAppSKey, keys.mcNwkSKey, fCntMsb(70_000))).toEqual(payload);
    expect(s.fCnt).toBe(70_001);
    const airtimeMs = rig.driver.radio.downlinkAirtimeMs(phy.length, 5);
    expect(rig.driver.radio.usedMs(G3_HZ, GW) - used0).toBeCloseTo(airtimeMs, 6);
    rig.fwd.send(txAck(2, resp.token, GW));
    expect(await outcome).toEqual({ status: 'sent', airtimeMs: Math.round(airtimeMs * 10) / 10, gateway: GW, fCnt: 70_000 });
    expect(rig.driver.metrics().multicast).toEqual({ sent: 1 });
  });

  it('a TX_ACK error: txError, its air time refunded, counted, an event', async () => {
    const used0 = rig.driver.radio.usedMs(G3_HZ, GW);
    const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(20));
    const { resp } = await nextFrame(rig.fwd, 1);
    rig.fwd.send(txAck(2, resp.token, GW, 'TX_FREQ'));
    expect(await outcome).toMatchObject({ status: 'txError', error: 'TX_FREQ', gateway: GW, fCnt: 70_000 });
    expect(rig.driver.radio.usedMs(G3_HZ, GW)).toBe(used0);
    expect(rig.driver.metrics()).toMatchObject({ txAckErrors: 1, multicast: { txError: 1 } });
    expect(t.events).toContainEqual(expect.objectContaining({ kind: 'lorawan.tx_ack.error', detail: { gateway: GW, error: 'TX_FREQ', window: 'immediate', id: null, fallback: null } }));
  });

  it('no TX_ACK within 5 s (a v1 forwarder): sent', async () => {
    let done = false;
    const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(10));
    void outcome.then(() => (done = true));
    await nextFrame(rig.fwd, 1);
    await clock.advance(4_900);
    expect(done).toBe(false);
    await clock.advance(100);
    expect(await outcome).toMatchObject({ status: 'sent' });
  });

  it('a TX_ACK error later than the 5 s wait (the frame was taken as sent) still refunds its air time', async () => {
    const used0 = rig.driver.radio.usedMs(G3_HZ, GW);
    const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(20));
    const { resp } = await nextFrame(rig.fwd, 1);
    await clock.advance(5_000);
    expect(await outcome).toMatchObject({ status: 'sent' });
    expect(rig.driver.radio.usedMs(G3_HZ, GW)).toBeGreaterThan(used0);
    rig.fwd.send(txAck(2, resp.token, GW, 'TOO_LATE'));
    await waitFor('the late TX_ACK error', () => rig.driver.metrics().txAckErrors === 1, 2000);
    expect(rig.driver.radio.usedMs(G3_HZ, GW)).toBe(used0);
    expect(rig.driver.metrics().rejected).toEqual({});
  });

  it('the driver stops before the TX_ACK came: noForwarder (not known to be sent; FUOTA sends the fragment again), not sent', async () => {
    const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(10));
    await nextFrame(rig.fwd, 1);
    await rig.driver.stop();
    expect(await outcome).toEqual({ status: 'noForwarder' });
    expect(rig.driver.metrics().multicast).toEqual({ noForwarder: 1 });
  });

  it('through the forwarder that answers the devices (the one that heard them), not just any that can send', async () => {
    const gw2 = await new RawForwarder(rig.driver.port(), GW2).bind();
    try {
      gw2.pull();
      await waitFor('GW2 PULL_ACK', () => gw2.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
      gw2.push(rxpk(dataUp(ABP, 0)));
      await waitFor('uplink via GW2', () => rig.driver.metrics().uplinks === 1, 2000);
      await clock.advance(50);
      const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(10));
      const { resp } = await nextFrame(gw2, 1);
      gw2.send(txAck(2, resp.token, GW2));
      expect(await outcome).toMatchObject({ status: 'sent', gateway: GW2 });
      expect(rig.fwd.pullResps()).toHaveLength(0);
    } finally {
      await gw2.close();
    }
  });

  it.each([
    ['FPort 0', session(), 0, 10],
    ['a reserved FPort', session(), 224, 10],
    ['a payload longer than DR0 carries', session({ dr: 0 }), 201, 52],
    ['a frequency outside the EU868 sub-bands', session({ frequency: 871_000_000 }), 201, 10],
    ['an McAddr that is not 8 hex digits', session({ mcAddr: 'xyz' }), 201, 10],
    ['a data rate EU868 does not have', session({ dr: 9 }), 201, 10],
    ['DR7 (FSK: the server sends LoRa only)', session({ dr: 7 }), 201, 10],
  ])('refuses %s at once (E_INVALID_COMMAND), sends nothing', (_name, s, fPort, length) => {
    expect(() => rig.driver.sendMulticast(s, fPort, Buffer.alloc(length))).toThrow(expect.objectContaining({ code: 'E_INVALID_COMMAND' }));
    expect(s.fCnt).toBe(70_000);
  });
});

describe('the duty cycle', () => {
  it('charges every frame and refuses the one that would break the sub-band\'s budget (retryAt), without sending or counting it', async () => {
    // 10 % of an hour on g3 is 360 s; 357 s are spent: one DR0 frame of 51 bytes (~2.5 s) fits, a second does not
    await start(357_000);
    const s = session({ dr: 0 });
    const first = rig.driver.sendMulticast(s, 201, Buffer.alloc(51));
    const { resp } = await nextFrame(rig.fwd, 1);
    rig.fwd.send(txAck(2, resp.token, GW));
    expect(await first).toMatchObject({ status: 'sent', fCnt: 70_000 });
    const second = await rig.driver.sendMulticast(s, 201, Buffer.alloc(51));
    expect(second).toMatchObject({ status: 'dutyCycle', budgetMs: 360_000 });
    if (second.status !== 'dutyCycle') throw new Error('unreachable');
    expect(second.usedMs).toBeLessThanOrEqual(360_000);
    expect(second.retryAt).toBeGreaterThan(clock.monotonic());
    expect(s.fCnt).toBe(70_001);
    expect(rig.fwd.pullResps()).toHaveLength(1);
    expect(rig.driver.radio.usedMs(G3_HZ)).toBeLessThanOrEqual(rig.driver.radio.budgetMs(G3_HZ));
    expect(rig.driver.metrics().multicast).toEqual({ dutyCycle: 1, sent: 1 });
  });
});

describe('without a forwarder that can send', () => {
  it('noForwarder, nothing charged', async () => {
    t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    clock = new FakeClock(START);
    const driver = createLorawanDriver(t.ctx, { clock });
    await driver.start();
    // rig for afterEach: the same driver, and a forwarder that never pulled
    rig = { t, clock, driver, fwd: await new RawForwarder(driver.port(), GW).bind(), extra: new Map() };
    expect(await driver.sendMulticast(session(), 201, Buffer.alloc(10))).toEqual({ status: 'noForwarder' });
    expect(driver.radio.usedMs(G3_HZ)).toBe(0);
  });
});

describe('a scaled radio clock (simulate.radioTimeScale)', () => {
  it('a jump of the wall clock (clock.jumped) moves the stored air time k times as far, as it moved the radio clock', async () => {
    const K = 10;
    t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    clock = new FakeClock(START);
    const radio = scaledClock(clock, K);
    rig = await startRig(t, clock, createLorawanDriver({ ...t.ctx, clock }, { clock: radio, leadMs: 20 }));
    const outcome = rig.driver.sendMulticast(session(), 201, Buffer.alloc(10));
    const { resp } = await nextFrame(rig.fwd, 1);
    rig.fwd.send(txAck(2, resp.token, GW));
    await outcome;
    const db = lorawanDatabase(t.store, t.ctx.log);
    const at = () => db.prepare('SELECT at FROM lorawan_airtime').pluck().get() as number;
    const before = at();
    t.store.appendEvent({ ts: clock.now(), kind: 'clock.jumped', severity: 'warning', detail: { fromTs: clock.now(), toTs: clock.now() + 60_000, deltaMs: 60_000 } });
    expect(at() - before).toBe(K * 60_000);
  });
});

describe('radio facts (RP002 EU868)', () => {
  beforeEach(() => start());

  it('max payload per DR, time on air, duty cycle and budget per sub-band', () => {
    const { radio } = rig.driver;
    expect([0, 1, 2, 3, 4, 5, 6].map((dr) => radio.maxPayload(dr))).toEqual([51, 51, 51, 115, 222, 222, 222]);
    expect(radio.downlinkAirtimeMs(30, 0)).toBe(timeOnAirMs({ sf: 12, bw: 125, payloadBytes: 30, crc: false }));
    expect(radio.dutyCycleAt(869_525_000)).toBe(0.1);
    expect(radio.dutyCycleAt(868_100_000)).toBe(0.01);
    expect(radio.dutyCycleAt(871_000_000)).toBeNull();
    expect(radio.budgetMs(869_525_000)).toBe(360_000);
    expect(radio.usedMs(869_525_000)).toBe(0);
  });
});
