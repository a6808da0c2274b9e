/**
 * The network server over real UDP on 127.0.0.1, beyond single uplinks (classA.test.ts has
 * those as scenario rows): the Semtech acknowledgements, malformed datagrams, downlinks over
 * several uplinks and TX_ACKs, their outcomes, restarts and secrets. Rejected input is counted
 * by reason and never stored; the server keeps serving.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { pushData } from '../../edge/drivers/lorawan/semtech/packet.js';
import { txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import { lorawanDatabase } from '../../edge/drivers/lorawan/storage/db.js';
import { createLogger } from '../../edge/log.js';
import { makeContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { ABP, CLASS_C, GW, OTAA, RawForwarder, dataUp, joinRequest, loraConfig, rxpk, startDriver, waitFor, type Harness } from './support.js';

let h: Harness;
let fwd: RawForwarder;
beforeEach(async () => {
  h = await startDriver({ leadMs: 20 });
  fwd = await new RawForwarder(h.port).bind();
  fwd.pull();
  await waitFor('PULL_ACK', () => fwd.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
});
afterEach(async () => {
  await fwd.close();
  await h.close();
});

const readingsOf = (device: string) => {
  h.t.writer.flush();
  return h.t.store.readings({ after: 0, limit: 10_000, device }).items;
};

describe('Semtech UDP: acknowledgements', () => {
  it('PUSH_ACK and PULL_ACK echo the version (1 or 2) and token of the request', async () => {
    fwd.send(Buffer.concat([Buffer.from('01abcd00', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{}')]));
    fwd.send(Buffer.concat([Buffer.from('02123402', 'hex'), Buffer.from(GW, 'hex')]));
    await waitFor('acks', () => fwd.received.length >= 3, 2000);
    const raws = fwd.received.map((r) => r.raw.toString('hex'));
    expect(raws).toContain('01abcd01');
    expect(raws).toContain('02123404');
  });

  it('stat objects become gateway readings once the forwarder relayed a frame with a valid MIC', async () => {
    // before: anyone can claim this EUI, so what it says of itself is not stored
    const d0 = h.driver.metrics().datagrams;
    fwd.send(pushData(2, 1, GW, { stat: { rxnb: 5, rxok: 5, rxfw: 5, ackr: 100, dwnb: 0, txnb: 0 } }));
    await waitFor('the first stat handled', () => h.driver.metrics().datagrams > d0, 2000);
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor('a valid uplink', () => h.driver.metrics().uplinks === 1, 2000);
    fwd.send(pushData(2, 1, GW, { stat: { rxnb: 12, rxok: 11, rxfw: 11, ackr: 100, dwnb: 2, txnb: 2, lati: 52.1, long: 5.1, alti: 3 } }));
    await waitFor('gateway readings', () => readingsOf(`gw-${GW}`).length >= 9, 2000);
    const r = readingsOf(`gw-${GW}`);
    expect(r.find((x) => x.point === 'rxnb')?.value).toBe(12);
    expect(r.find((x) => x.point === 'ackr')).toMatchObject({ value: 100, unit: '%' });
    expect(r.filter((x) => x.point === 'rxnb').map((x) => x.value)).toEqual([12]);
  });
});

describe('bad input: rejected, counted by reason, never stored; the server keeps serving', () => {
  const cases: [string, () => Buffer, string][] = [
    ['malformed JSON', () => Buffer.concat([Buffer.from('02000100', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{"rxpk":[{"tmst":')]), 'malformed_json'],
    ['too short', () => Buffer.from('0200', 'hex'), 'too_short'],
    ['too long', () => Buffer.alloc(65_100, 0x02), 'too_long'],
    ['unknown protocol version', () => Buffer.concat([Buffer.from('07000100', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{}')]), 'unknown_version'],
  ];
  it.each(cases)('%s', async (_name, datagram, reason) => {
    fwd.send(datagram());
    await waitFor(`rejected.${reason}`, () => h.driver.metrics().rejected[reason] === 1, 2000);
    // Still serving: a good frame after the bad one is stored.
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor('good frame after bad', () => readingsOf('lamp-abp').some((r) => r.point === 'dimLevel'), 2000);
    expect(readingsOf('lamp-abp').filter((r) => r.point === 'dimLevel')).toHaveLength(1);
    expect(readingsOf('01020304')).toHaveLength(0);
    expect(h.driver.metrics().uplinks).toBe(1);
  });
});

describe('downlinks', () => {
  it('a TX_ACK error becomes an event and RX1 falls back to RX2', async () => {
    const { id } = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 30 });
    fwd.push(rxpk(dataUp(ABP, 0), { tmst: 1000 }));
    await waitFor('RX1', () => fwd.pullResps().length === 1, 2000);
    const first = fwd.pullResps()[0]!;
    fwd.send(txAck(2, first.token, GW, 'COLLISION_PACKET'));
    await waitFor('RX2', () => fwd.pullResps().length === 2, 2000);
    expect(fwd.pullResps()[1]!.txpk).toMatchObject({ tmst: 2_001_000, freq: 869.525, datr: 'SF12BW125' });
    const ev = h.t.events.find((e) => e.kind === 'lorawan.tx_ack.error');
    expect(ev?.detail).toMatchObject({ error: 'COLLISION_PACKET', window: 'rx1', fallback: 'rx2', id });
    expect(h.driver.metrics().txAckErrors).toBe(1);
  });

  it('a confirmed downlink without ACK is sent again on the next uplink, then fails after 3 attempts', async () => {
    const { id, outcome } = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 10, confirmed: true });
    for (let f = 0; f < 4; f++) {
      fwd.push(rxpk(dataUp(ABP, f)));
      await waitFor(`uplink ${f}`, () => h.driver.metrics().uplinks === f + 1, 2000);
    }
    expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'failed', reason: 'no_ack' });
    expect(h.t.events.flatMap((e) => (e.kind === 'lorawan.downlink.sent' && e.detail.id === id ? [e.detail.attempt] : []))).toEqual([1, 2, 3]);
    expect(h.t.events.find((e) => e.kind === 'lorawan.downlink.failed')!.detail).toMatchObject({ id, reason: 'no_ack' });
    // Each attempt used a new FCntDown.
    const fcnts = fwd.pullResps().map((r) => loraPacket.fromWire(Buffer.from(r.txpk.data, 'base64')).getFCnt());
    expect(fcnts).toEqual([0, 1, 2]);
  });

  it('refuses unknown devices and invalid commands with typed errors', () => {
    expect(() => h.driver.enqueueDownlink('nope', { action: 'on' })).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
    expect(() => h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 140 })).toThrow(expect.objectContaining({ code: 'E_INVALID_COMMAND' }));
    expect(() => h.driver.enqueueDownlink('lamp-abp', { action: 'dim' })).toThrow(expect.objectContaining({ code: 'E_INVALID_COMMAND' }));
  });

  it('class C without a forwarder address waits, with an event', async () => {
    const h2 = await startDriver();
    try {
      const { id } = h2.driver.enqueueDownlink(CLASS_C.devEui, { action: 'on' });
      await waitFor('delayed', () => h2.t.events.some((e) => e.kind === 'lorawan.downlink.delayed'), 2000);
      expect(h2.t.events.find((e) => e.kind === 'lorawan.downlink.delayed')!.detail).toMatchObject({ id, reason: 'no_forwarder' });
    } finally {
      await h2.close();
    }
  });
});

describe('downlink outcomes: enqueueDownlink returns a promise of what became of the downlink', () => {
  it('a confirmed downlink the node acknowledges: verified', async () => {
    const { id, outcome } = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 20, confirmed: true });
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor('the command in RX1', () => fwd.pullResps().length === 1, 2000);
    fwd.push(rxpk(dataUp(ABP, 1, { ack: true })));
    expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'verified' });
  });

  it('an unconfirmed downlink the forwarder transmitted (TX_ACK without error): sent', async () => {
    const { id, outcome } = h.driver.enqueueDownlink('lamp-abp', { action: 'on' });
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor('the command in RX1', () => fwd.pullResps().length === 1, 2000);
    fwd.send(txAck(2, fwd.pullResps()[0]!.token, GW));
    expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'sent' });
  });

  it('not delivered before its expiresAt: expired, swept on the driver\'s clock without an uplink', async () => {
    const clock = new FakeClock(Date.now());
    const t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    const driver = createLorawanDriver({ ...t.ctx, clock });
    await driver.start();
    try {
      const { id, outcome } = driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 5, expiresAt: clock.now() + 5_000 });
      let settled = false;
      void outcome.then(() => (settled = true));
      await clock.advance(4_000);
      expect(settled).toBe(false);
      await clock.advance(2_000);
      expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'expired', reason: 'expired' });
      expect(t.events).toContainEqual(expect.objectContaining({ kind: 'lorawan.downlink.failed', detail: expect.objectContaining({ id, reason: 'expired' }) }));
    } finally {
      await driver.stop();
      await t.close();
    }
  });

  it('the driver stops before the downlink went out: failed, with the reason', async () => {
    const { id, outcome } = h.driver.enqueueDownlink('lamp-abp', { action: 'on' });
    await h.driver.stop();
    expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'failed', reason: 'stopped', code: 'E_INTERRUPTED' });
  });
});

describe('persistence', () => {
  it('a restart keeps sessions and counters: a replay after restart is still rejected; OTAA DevNonces stay used', async () => {
    const t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    try {
      let s = await startDriver({}, {}, t);
      let f = await new RawForwarder(s.port).bind();
      f.push(rxpk(dataUp(ABP, 41)));
      f.push(rxpk(joinRequest(0x0bad), { tmst: 5 }));
      await waitFor('uplink + join', () => s.driver.metrics().uplinks === 1 && s.driver.metrics().joins === 1, 2000);
      const devAddr = s.driver.status().devices.find((d) => d.id === 'lamp-otaa')!.devAddr;
      await f.close();
      await s.close();

      s = await startDriver({}, {}, t);
      f = await new RawForwarder(s.port).bind();
      expect(s.driver.status().devices.find((d) => d.id === 'lamp-abp')!.fCntUp).toBe(41);
      expect(s.driver.status().devices.find((d) => d.id === 'lamp-otaa')!.devAddr).toBe(devAddr);
      f.push(rxpk(dataUp(ABP, 41)));
      f.push(rxpk(joinRequest(0x0bad), { tmst: 9 }));
      f.push(rxpk(dataUp(ABP, 42)));
      await waitFor('fresh uplink', () => s.driver.metrics().uplinks === 1, 2000);
      await waitFor('replay + devnonce', () => s.driver.metrics().rejected.replay === 1 && s.driver.metrics().rejected.devnonce_reused === 1, 2000);
      await f.close();
      await s.close();
    } finally {
      await t.close();
    }
  });
});

describe('secrets', () => {
  it('never logs NwkSKey, AppSKey, AppKey or derived session keys, even at debug level', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } as never });
    const t = makeContext(loraConfig() as never, { log, flushIntervalMs: 10 });
    const s = await startDriver({}, {}, t);
    const f = await new RawForwarder(s.port).bind();
    try {
      f.pull();
      f.push(rxpk(joinRequest(0x7777)));
      f.push(rxpk(dataUp(ABP, 0)));
      f.push(rxpk(dataUp({ ...ABP, nwkSKey: '00'.repeat(16) }, 1)));
      s.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 5 });
      f.push(rxpk(dataUp(ABP, 2)));
      await waitFor('traffic', () => s.driver.metrics().joins === 1 && s.driver.metrics().uplinks === 2 && s.driver.metrics().rejected.mic === 1, 2000);
      // the keys derived at the join, as the store holds them
      const otaa = lorawanDatabase(t.store, log).prepare('SELECT nwk_s_key, app_s_key FROM lorawan_session WHERE dev_eui = ?').get(OTAA.devEui) as { nwk_s_key: string; app_s_key: string };
      const secrets = [ABP.nwkSKey, ABP.appSKey, OTAA.appKey, CLASS_C.nwkSKey, CLASS_C.appSKey, otaa.nwk_s_key, otaa.app_s_key];
      const all = lines.join('').toLowerCase();
      expect(all).toContain('lorawan frame rejected');
      expect(all).toContain('downlink queued');
      for (const k of secrets) expect(all).not.toContain(k);
    } finally {
      await f.close();
      await s.close();
      await t.close();
    }
  });
});
