/**
 * The driver's application-layer plumbing, black box over real UDP on 127.0.0.1 and the real
 * store: enqueueApp (its FPort, its outcome, its refusals), onAppUplink (what a listener gets,
 * listeners that fail), TS003 clock sync answered by the driver itself, FPending, genAppKey and
 * deviceId, and the driver's own clock (simulate.radioTimeScale).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RADIO_TIME_ORIGIN, scaledClock } from '../../edge/clock.js';
import { buildComponents } from '../../edge/components.js';
import { createLorawanDriver, type AppUplink } from '../../edge/drivers/lorawan/index.js';
import { decodeClockSyncDown, encodeClockSyncUp } from '../../edge/drivers/lorawan/app/clockSync.js';
import { FPORT_CLOCK_SYNC } from '../../edge/drivers/lorawan/app/types.js';
import { unixToGpsMs } from '../../edge/drivers/lorawan/mac/types.js';
import { txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { START, startRig, stopRig, uplink, type Rig } from './macScenario.js';
import { ABP, CLASS_C, GW, loraConfig } from './support.js';

let t: TestContext;
let rig: Rig;
beforeEach(async () => {
  t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
  rig = await startRig(t, new FakeClock(START));
});
afterEach(async () => {
  await stopRig(rig);
  await t.close();
});

const START_GPS_S = Math.floor(unixToGpsMs(START) / 1000);

describe('enqueueApp', () => {
  it('goes in RX1 of the next uplink on its FPort, encrypted with the AppSKey; sent once the forwarder ACKs; the next one at the next uplink', async () => {
    const first = rig.driver.enqueueApp('lamp-abp', { fPort: 201, payload: Buffer.from('0102', 'hex'), label: 'FragSessionStatusReq' });
    rig.driver.enqueueApp('lamp-abp', { fPort: 203, payload: Buffer.from('01', 'hex'), label: 'DevVersionReq' });
    const [frame] = await uplink(rig, { fCnt: 0 });
    expect(frame).toMatchObject({ fPort: 201, payloadHex: '0102', fPending: true, micOk: true, txpk: { tmst: 2_000_000 } });
    expect(t.events).toContainEqual(expect.objectContaining({ kind: 'lorawan.downlink.sent', detail: expect.objectContaining({ id: first.id, action: 'FragSessionStatusReq', window: 'rx1' }) }));
    rig.fwd.send(txAck(2, rig.fwd.pullResps()[0]!.token, GW));
    expect(await first.outcome).toEqual({ id: first.id, device: 'lamp-abp', status: 'sent' });
    expect(rig.driver.status().devices.find((d) => d.id === 'lamp-abp')!.queued).toBe(1);
    const [second] = await uplink(rig, { fCnt: 1 });
    expect(second).toMatchObject({ fPort: 203, payloadHex: '01', fPending: false });
  });

  it('a confirmed one is verified by the node\'s ACK', async () => {
    const q = rig.driver.enqueueApp('lamp-abp', { fPort: 200, payload: Buffer.from('00', 'hex'), label: 'PackageVersionReq', confirmed: true });
    const [frame] = await uplink(rig, { fCnt: 0 });
    expect(frame!.fPort).toBe(200);
    // no ACK: sent again
    const [retry] = await uplink(rig, { fCnt: 1 });
    expect(retry!.fPort).toBe(200);
    await uplink(rig, { fCnt: 2, ack: true });
    expect(await q.outcome).toMatchObject({ status: 'verified' });
  });

  it('longer than either RX window of the uplink carries: failed, too_long, never sent', async () => {
    const q = rig.driver.enqueueApp('lamp-abp', { fPort: 201, payload: Buffer.alloc(100), label: 'DataFragment' });
    // SF12 up: RX1 DR0 and RX2 DR0 carry 51 bytes
    expect(await uplink(rig, { fCnt: 0, rx: { datr: 'SF12BW125' } })).toEqual([]);
    expect(await q.outcome).toMatchObject({ status: 'failed', reason: 'too_long' });
    expect(rig.driver.metrics().rejected).toMatchObject({ too_long: 1 });
  });

  it.each([
    ['FPort 0 (MAC commands)', 0, 2],
    ['the command port 10', 10, 2],
    ['a reserved FPort (224)', 224, 2],
    ['a payload no data rate carries', 201, 223],
  ])('refuses %s with E_INVALID_COMMAND', (_name, fPort, length) => {
    expect(() => rig.driver.enqueueApp('lamp-abp', { fPort, payload: Buffer.alloc(length), label: 'x' })).toThrow(expect.objectContaining({ code: 'E_INVALID_COMMAND' }));
  });

  it('refuses an unknown device (E_NOT_FOUND) and a stopped driver (E_COMPONENT)', async () => {
    expect(() => rig.driver.enqueueApp('nope', { fPort: 201, payload: Buffer.alloc(1), label: 'x' })).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
    const stopped = createLorawanDriver(t.ctx);
    expect(() => stopped.enqueueApp('lamp-abp', { fPort: 201, payload: Buffer.alloc(1), label: 'x' })).toThrow(expect.objectContaining({ code: 'E_COMPONENT' }));
  });
});

describe('onAppUplink', () => {
  it('a listener gets the uplinks of its port: device, payload decrypted, counter, GPS time of the reception', async () => {
    const got: AppUplink[] = [];
    const off = rig.driver.onAppUplink(203, (u) => got.push(u));
    await uplink(rig, { fCnt: 0, fPort: 203, payload: Buffer.from('0101020304', 'hex'), rx: { datr: 'SF9BW125', lsnr: 4 } });
    await uplink(rig, { fCnt: 1, fPort: 201, payload: Buffer.from('01', 'hex') });
    off();
    await uplink(rig, { fCnt: 2, fPort: 203, payload: Buffer.from('02', 'hex') });
    expect(got).toEqual([
      { device: 'lamp-abp', devEui: ABP.devEui, fPort: 203, payload: Buffer.from('0101020304', 'hex'), fCnt: 0, receivedAt: START, gpsMs: unixToGpsMs(START), snr: 4, rssi: -70, dr: 3 },
    ]);
  });

  it('a listener that throws, or rejects, is logged; the others still get the uplink and the server keeps serving', async () => {
    const got: number[] = [];
    rig.driver.onAppUplink(200, () => {
      throw new Error('listener bug');
    });
    rig.driver.onAppUplink(200, (() => Promise.reject(new Error('async listener bug'))) as never);
    rig.driver.onAppUplink(200, (u) => got.push(u.fCnt));
    await uplink(rig, { fCnt: 0, fPort: 200, payload: Buffer.from('00', 'hex') });
    await uplink(rig, { fCnt: 1, fPort: 200, payload: Buffer.from('00', 'hex') });
    expect(got).toEqual([0, 1]);
    expect(rig.driver.metrics().uplinks).toBe(2);
  });

  it('listeners registered before start hear the running driver', async () => {
    await stopRig(rig);
    const got: number[] = [];
    const clock = new FakeClock(START);
    const driver = createLorawanDriver(t.ctx, { clock, leadMs: 20 });
    driver.onAppUplink(201, (u) => got.push(u.fCnt));
    rig = await startRig(t, clock, driver);
    await uplink(rig, { fCnt: 0, fPort: 201, payload: Buffer.from('00', 'hex') });
    expect(got).toEqual([0]);
  });
});

describe('TS003 clock sync: the driver answers AppTimeReq itself', () => {
  const appTimeReq = (deviceTime: number, ansRequired: boolean, tokenReq = 5) => encodeClockSyncUp([{ cid: 'AppTimeReq', deviceTime, tokenReq, ansRequired }]);

  it.each([
    ['10 s behind: +10', START_GPS_S - 10, false, 10],
    ['3 s ahead: −3', START_GPS_S + 3, false, -3],
    ['in sync but AnsRequired: 0', START_GPS_S, true, 0],
    ['across the 2^32 wrap of DeviceTime', (START_GPS_S + 2 ** 32 - 7) % 2 ** 32, false, 7],
  ])('%s, in RX1 of the same uplink, the token echoed', async (_name, deviceTime, ansRequired, correction) => {
    const [frame] = await uplink(rig, { fCnt: 0, fPort: FPORT_CLOCK_SYNC, payload: appTimeReq(deviceTime, ansRequired) });
    expect(frame).toMatchObject({ fPort: FPORT_CLOCK_SYNC, txpk: { tmst: 2_000_000 } });
    expect(decodeClockSyncDown(Buffer.from(frame!.payloadHex!, 'hex'))).toEqual({ commands: [{ cid: 'AppTimeAns', timeCorrection: correction, tokenAns: 5 }], error: null });
  });

  it('in sync and no answer required: nothing sent; a listener of 202 still hears it', async () => {
    const got: number[] = [];
    rig.driver.onAppUplink(FPORT_CLOCK_SYNC, (u) => got.push(u.fCnt));
    expect(await uplink(rig, { fCnt: 0, fPort: FPORT_CLOCK_SYNC, payload: appTimeReq(START_GPS_S, false) })).toEqual([]);
    expect(got).toEqual([0]);
  });

  it('a payload that does not decode: counted, not answered', async () => {
    expect(await uplink(rig, { fCnt: 0, fPort: FPORT_CLOCK_SYNC, payload: Buffer.from('01ff', 'hex') })).toEqual([]);
    expect(rig.driver.metrics().rejected).toEqual({ clock_sync_malformed: 1 });
  });
});

describe('genAppKey and deviceId', () => {
  it('genAppKey: lorawan.devices[].genAppKey, never the AppKey (TS005 §3.3: a key of its own), else null; deviceId by id or DevEUI', async () => {
    const genAppKey = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf';
    const base = loraConfig().lorawan;
    const c = makeContext(loraConfig({ devices: base.devices.map((d) => (d.devEui === CLASS_C.devEui ? { ...d, genAppKey } : d)) }) as never);
    try {
      const d = createLorawanDriver(c.ctx);
      expect(d.genAppKey('lamp-otaa')).toBeNull();
      expect(d.genAppKey(CLASS_C.devEui.toUpperCase())).toEqual(Buffer.from(genAppKey, 'hex'));
      expect(d.genAppKey('lamp-abp')).toBeNull();
      expect(d.genAppKey('nope')).toBeNull();
      expect(d.deviceId(ABP.devEui)).toBe('lamp-abp');
      expect(d.deviceId('lamp-c')).toBe('lamp-c');
      expect(d.deviceId('0000000000000000')).toBeNull();
    } finally {
      await c.close();
    }
  });
});

describe('the driver\'s clock', () => {
  it('scaledClock runs k× from its creation: now, monotonic, and timers after ms/k', async () => {
    const base = new FakeClock(START);
    await base.advance(1_000);
    const fast = scaledClock(base, 4);
    const [wall0, mono0] = [fast.now(), fast.monotonic()];
    expect(wall0).toBe(base.now());
    let fired = 0;
    fast.setTimeout(() => fired++, 4_000);
    await base.advance(999);
    expect(fired).toBe(0);
    await base.advance(1);
    expect(fired).toBe(1);
    expect(fast.monotonic() - mono0).toBe(4_000);
    expect(fast.now() - wall0).toBe(4_000);
    expect(() => scaledClock(base, 0.5)).toThrow(/"k"/);
  });

  it('components give the driver a clock scaled by simulate.radioTimeScale', async () => {
    const c = makeContext({ ...loraConfig(), simulate: { enabled: true, radioTimeScale: 5 }, broker: { enabled: false }, api: { enabled: false } } as never);
    const wall = new FakeClock(START);
    try {
      const built = await buildComponents({ ...c.ctx, clock: wall }, { status: () => ({}) });
      const clock = built.lorawan!.clock;
      const m0 = clock.monotonic();
      await wall.advance(1_000);
      expect(clock.monotonic() - m0).toBe(5_000);
      // on the radio time line every process shares: 5× the time since RADIO_TIME_ORIGIN
      expect(clock.now()).toBe(RADIO_TIME_ORIGIN + 5 * (wall.now() - RADIO_TIME_ORIGIN));
    } finally {
      await c.close();
    }
  });
});
