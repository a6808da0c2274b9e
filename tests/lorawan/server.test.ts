/**
 * The network server over real UDP on 127.0.0.1, scenario by scenario: what goes in (a
 * datagram), what is counted, stored and sent back. Rejected input is counted by reason and
 * never stored; the server keeps serving.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { pushData } from '../../edge/drivers/lorawan/semtech/packet.js';
import { txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { createLogger } from '../../edge/log.js';
import { makeContext } from '../helpers/context.js';
import { ABP, CLASS_C, GW, GW2, OTAA, RawForwarder, dataUp, loraConfig, rxpk, sleep, startDriver, STATUS, waitFor, type Harness } from './support.js';

let h: Harness;
let fwd: RawForwarder;
beforeEach(async () => {
  h = await startDriver({ leadMs: 20 });
  fwd = await new RawForwarder(h.port).bind();
  fwd.pull();
  await waitFor(() => fwd.received.some((r) => r.d?.kind === 'pull_ack'), 2000, 'PULL_ACK');
});
afterEach(async () => {
  await fwd.close();
  await h.close();
});

const readingsOf = (device: string) => {
  h.t.writer.flush();
  return h.t.store.readings({ after: 0, limit: 10_000, device }).items;
};

function joinRequest(devNonce: number, appKey: string = OTAA.appKey): Buffer {
  const nonce = Buffer.alloc(2);
  nonce.writeUInt16BE(devNonce);
  return loraPacket
    .fromFields({ MType: 'Join Request', AppEUI: Buffer.from(OTAA.joinEui, 'hex'), DevEUI: Buffer.from(OTAA.devEui, 'hex'), DevNonce: nonce }, undefined, undefined, Buffer.from(appKey, 'hex'))
    .getPHYPayload()!;
}

describe('Semtech UDP: acknowledgements', () => {
  it('PUSH_ACK and PULL_ACK echo the version (1 or 2) and token of the request', async () => {
    fwd.send(Buffer.concat([Buffer.from('01abcd00', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{}')]));
    fwd.send(Buffer.concat([Buffer.from('02123402', 'hex'), Buffer.from(GW, 'hex')]));
    await waitFor(() => fwd.received.length >= 3, 2000, 'acks');
    const raws = fwd.received.map((r) => r.raw.toString('hex'));
    expect(raws).toContain('01abcd01');
    expect(raws).toContain('02123404');
  });

  it('stat objects become gateway readings once the forwarder relayed a frame with a valid MIC', async () => {
    // before: anyone can claim this EUI, so what it says of itself is not stored
    const d0 = h.driver.metrics().datagrams;
    fwd.send(pushData(2, 1, GW, { stat: { rxnb: 5, rxok: 5, rxfw: 5, ackr: 100, dwnb: 0, txnb: 0 } }));
    await waitFor(() => h.driver.metrics().datagrams > d0, 2000, 'the first stat handled');
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor(() => h.driver.metrics().uplinks === 1, 2000, 'a valid uplink');
    fwd.send(pushData(2, 1, GW, { stat: { rxnb: 12, rxok: 11, rxfw: 11, ackr: 100, dwnb: 2, txnb: 2, lati: 52.1, long: 5.1, alti: 3 } }));
    await waitFor(() => readingsOf(`gw-${GW}`).length >= 9, 2000, 'gateway readings');
    const r = readingsOf(`gw-${GW}`);
    expect(r.find((x) => x.point === 'rxnb')?.value).toBe(12);
    expect(r.find((x) => x.point === 'ackr')).toMatchObject({ value: 100, unit: '%' });
    expect(r.filter((x) => x.point === 'rxnb').map((x) => x.value)).toEqual([12]);
  });
});

describe('uplinks: accepted', () => {
  it('decodes, stores status + rssi/snr/dr readings, and advances the counter', async () => {
    fwd.push(rxpk(dataUp(ABP, 0), { rssi: -81, lsnr: 6.5, datr: 'SF9BW125' }));
    await waitFor(() => readingsOf('lamp-abp').some((r) => r.point === 'rssi'), 2000, 'rssi reading');
    const r = readingsOf('lamp-abp');
    expect(r.find((x) => x.point === 'dimLevel')).toMatchObject({ value: STATUS.dimLevel, unit: '%' });
    expect(r.find((x) => x.point === 'power')).toMatchObject({ value: 48, unit: 'W' });
    expect(r.find((x) => x.point === 'energy')).toMatchObject({ value: 1.5, unit: 'kWh' });
    expect(r.find((x) => x.point === 'lampOn')?.value).toBe(true);
    expect(r.find((x) => x.point === 'rssi')).toMatchObject({ value: -81, unit: 'dBm' });
    expect(r.find((x) => x.point === 'snr')).toMatchObject({ value: 6.5, unit: 'dB' });
    expect(r.find((x) => x.point === 'dr')?.value).toBe(3);
    expect(h.driver.status().devices.find((d) => d.id === 'lamp-abp')).toMatchObject({ fCntUp: 0, rssi: -81, snr: 6.5, dr: 3, gateway: GW });
  });

  it('the same frame from two forwarders is stored once, with the best RSSI/SNR', async () => {
    const fwd2 = await new RawForwarder(h.port, GW2).bind();
    const phy = dataUp(ABP, 0);
    fwd.push(rxpk(phy, { rssi: -100, lsnr: -3 }));
    fwd2.push(rxpk(phy, { rssi: -60, lsnr: 9 }));
    await waitFor(() => readingsOf('lamp-abp').some((r) => r.point === 'rssi'), 2000, 'rssi');
    await sleep(100);
    const r = readingsOf('lamp-abp');
    expect(r.filter((x) => x.point === 'dimLevel')).toHaveLength(1);
    expect(r.filter((x) => x.point === 'rssi').map((x) => x.value)).toEqual([-60]);
    expect(r.find((x) => x.point === 'gateways')?.value).toBe(2);
    expect(h.driver.metrics()).toMatchObject({ uplinks: 1, duplicates: 1 });
    await fwd2.close();
  });

  it('heard by two forwarders, a confirmed uplink is acknowledged through the one that heard it best, on its own tmst', async () => {
    const fwd2 = await new RawForwarder(h.port, GW2).bind();
    try {
      fwd2.pull();
      await waitFor(() => fwd2.received.some((r) => r.d?.kind === 'pull_ack'), 2000, 'PULL_ACK of the second forwarder');
      const phy = dataUp(ABP, 0, { confirmed: true });
      // the weak copy arrives first; each concentrator has its own microsecond counter
      fwd.push(rxpk(phy, { rssi: -110, lsnr: -8, tmst: 1_000_000 }));
      fwd2.push(rxpk(phy, { rssi: -70, lsnr: 7, tmst: 9_000_000 }));
      await waitFor(() => fwd2.pullResps().length === 1, 2000, 'PULL_RESP to the better forwarder');
      await sleep(100);
      expect(fwd.pullResps()).toHaveLength(0);
      const { txpk } = fwd2.pullResps()[0]!;
      expect(txpk).toMatchObject({ tmst: 10_000_000, ipol: true });
      expect(loraPacket.fromWire(Buffer.from(txpk.data, 'base64')).getFCtrlACK()).toBe(true);
      expect(h.driver.status().devices.find((d) => d.id === 'lamp-abp')).toMatchObject({ gateway: GW2, rssi: -70 });
    } finally {
      await fwd2.close();
    }
  });

  it('the answer goes through the best forwarder that can transmit: one that never sent PULL_DATA cannot', async () => {
    const pushOnly = await new RawForwarder(h.port, 'aa555a0000000103').bind();
    try {
      const phy = dataUp(ABP, 0, { confirmed: true });
      fwd.push(rxpk(phy, { rssi: -110, lsnr: -8, tmst: 1_000_000 }));
      pushOnly.push(rxpk(phy, { rssi: -70, lsnr: 7, tmst: 9_000_000 }));
      await waitFor(() => fwd.pullResps().length === 1, 2000, 'PULL_RESP through the forwarder that pulls');
      expect(fwd.pullResps()[0]!.txpk).toMatchObject({ tmst: 2_000_000 });
      await waitFor(() => h.driver.status().devices.find((d) => d.id === 'lamp-abp')?.rssi === -70, 2000, 'window closed');
      expect(h.driver.metrics().rejected).not.toHaveProperty('no_forwarder');
      expect(h.driver.status().devices.find((d) => d.id === 'lamp-abp')?.gateway).toBe(GW);
    } finally {
      await pushOnly.close();
    }
  });

  it('a confirmed uplink is acknowledged in RX1 (tmst + 1 s, modulo 2^32, inverted polarity)', async () => {
    fwd.push(rxpk(dataUp(ABP, 0, { confirmed: true }), { tmst: 4_294_000_000, freq: 868.5 }));
    await waitFor(() => fwd.pullResps().length === 1, 2000, 'PULL_RESP');
    const { txpk } = fwd.pullResps()[0]!;
    expect(txpk).toMatchObject({ imme: false, tmst: (4_294_000_000 + 1_000_000) % 2 ** 32, freq: 868.5, datr: 'SF7BW125', ipol: true, powe: 14 });
    const down = loraPacket.fromWire(Buffer.from(txpk.data, 'base64'));
    expect(down.getMType()).toBe('Unconfirmed Data Down');
    expect(down.getFCtrlACK()).toBe(true);
    expect(down.getFPort()).toBeNull();
    expect(loraPacket.verifyMIC(down, Buffer.from(ABP.nwkSKey, 'hex'))).toBe(true);
    fwd.send(txAck(2, (fwd.received.find((r) => r.d?.kind === 'pull_resp')!.d as { token: number }).token, GW));
  });

  it('accepts FCnt rollover past 65535 (MIC over the 32-bit counter)', async () => {
    fwd.push(rxpk(dataUp(ABP, 65_535)));
    fwd.push(rxpk(dataUp(ABP, 65_536)));
    await waitFor(() => h.driver.metrics().uplinks === 2, 2000, 'two uplinks');
    expect(h.driver.status().devices.find((d) => d.id === 'lamp-abp')!.fCntUp).toBe(65_536);
  });
});

describe('bad input: rejected, counted by reason, never stored; the server keeps serving', () => {
  const cases: [string, () => Buffer, string][] = [
    ['bad MIC', () => pushData(2, 1, GW, { rxpk: [rxpk(dataUp({ ...ABP, nwkSKey: '00'.repeat(16) }, 0))] }), 'mic'],
    ['unknown DevAddr', () => pushData(2, 1, GW, { rxpk: [rxpk(dataUp({ ...ABP, devAddr: '01020304' }, 0))] }), 'unknown_devaddr'],
    ['malformed JSON', () => Buffer.concat([Buffer.from('02000100', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{"rxpk":[{"tmst":')]), 'malformed_json'],
    ['too short', () => Buffer.from('0200', 'hex'), 'too_short'],
    ['too long', () => Buffer.alloc(65_100, 0x02), 'too_long'],
    ['unknown protocol version', () => Buffer.concat([Buffer.from('07000100', 'hex'), Buffer.from(GW, 'hex'), Buffer.from('{}')]), 'unknown_version'],
    ['PHYPayload that does not parse', () => pushData(2, 1, GW, { rxpk: [rxpk(Buffer.from('e0ffffffffffffffffffffffffff', 'hex'))] }), 'malformed_frame'],
    ['PHYPayload too short', () => pushData(2, 1, GW, { rxpk: [rxpk(Buffer.from('40010203', 'hex'))] }), 'frame_too_short'],
    ['CRC error', () => pushData(2, 1, GW, { rxpk: [rxpk(dataUp(ABP, 0), { stat: -1 })] }), 'crc'],
    ['a join with a wrong AppKey', () => pushData(2, 1, GW, { rxpk: [rxpk(joinRequest(1, 'ff'.repeat(16)))] }), 'mic'],
  ];
  it.each(cases)('%s', async (_name, datagram, reason) => {
    fwd.send(datagram());
    await waitFor(() => h.driver.metrics().rejected[reason] === 1, 2000, `rejected.${reason}`);
    // Still serving: a good frame after the bad one is stored.
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor(() => readingsOf('lamp-abp').some((r) => r.point === 'dimLevel'), 2000, 'good frame after bad');
    expect(readingsOf('lamp-abp').filter((r) => r.point === 'dimLevel')).toHaveLength(1);
    expect(readingsOf('01020304')).toHaveLength(0);
    expect(h.driver.metrics().uplinks).toBe(1);
  });

  it('replayed and too-far counters', async () => {
    fwd.push(rxpk(dataUp(ABP, 10)));
    await waitFor(() => h.driver.metrics().uplinks === 1, 2000, 'first');
    await sleep(80); // past the de-duplication window: a copy now is a replay
    fwd.push(rxpk(dataUp(ABP, 10)));
    fwd.push(rxpk(dataUp(ABP, 9)));
    fwd.push(rxpk(dataUp(ABP, 10 + 16_384)));
    await waitFor(() => h.driver.metrics().rejected.replay === 2 && h.driver.metrics().rejected.fcnt_gap === 1, 2000, 'replay + gap');
    expect(readingsOf('lamp-abp').filter((r) => r.point === 'dimLevel')).toHaveLength(1);
  });
});

describe('OTAA', () => {
  it('answers a Join Request with a Join Accept at tmst + 5 s; a reused DevNonce is rejected', async () => {
    fwd.push(rxpk(joinRequest(0x1234), { tmst: 100 }));
    await waitFor(() => fwd.pullResps().length === 1, 2000, 'join accept');
    const { txpk } = fwd.pullResps()[0]!;
    expect(txpk).toMatchObject({ tmst: 5_000_100, freq: 868.1, ipol: true });
    const ja = loraPacket.fromWire(loraPacket.decryptJoinAccept(loraPacket.fromWire(Buffer.from(txpk.data, 'base64')), Buffer.from(OTAA.appKey, 'hex')));
    expect(loraPacket.verifyMIC(ja, undefined, Buffer.from(OTAA.appKey, 'hex'))).toBe(true);
    expect(ja.NetID!.toString('hex')).toBe('000013');
    expect(h.driver.status().devices.find((d) => d.id === 'lamp-otaa')!.devAddr).toBe(ja.DevAddr!.toString('hex'));
    await sleep(80);
    fwd.push(rxpk(joinRequest(0x1234), { tmst: 200 }));
    await waitFor(() => h.driver.metrics().rejected.devnonce_reused === 1, 2000, 'devnonce_reused');
    expect(fwd.pullResps()).toHaveLength(1);
    expect(h.driver.metrics().joins).toBe(1);
  });
});

describe('downlinks', () => {
  it('a TX_ACK error becomes an event and RX1 falls back to RX2', async () => {
    const { id } = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 30 });
    fwd.push(rxpk(dataUp(ABP, 0), { tmst: 1000 }));
    await waitFor(() => fwd.pullResps().length === 1, 2000, 'RX1');
    const first = fwd.pullResps()[0]!;
    fwd.send(txAck(2, first.token, GW, 'COLLISION_PACKET'));
    await waitFor(() => fwd.pullResps().length === 2, 2000, 'RX2');
    expect(fwd.pullResps()[1]!.txpk).toMatchObject({ tmst: 2_001_000, freq: 869.525, datr: 'SF12BW125' });
    const ev = h.t.events.find((e) => e.kind === 'lorawan.tx_ack.error');
    expect(ev?.detail).toMatchObject({ error: 'COLLISION_PACKET', window: 'rx1', fallback: 'rx2', id });
    expect(h.driver.metrics().txAckErrors).toBe(1);
  });

  it('a downlink that would break the duty cycle is never sent: an event says so and the command waits', async () => {
    // 36 s of air time in an hour on g1 (1 %) and 360 s on g3 (10 %) are already spent by this gateway.
    const sender = (h.driver as unknown as { sender: { ledger: { record(g: string, f: number, ms: number, at: number): void } } }).sender;
    sender.ledger.record(GW, 868.1, 36_000, performance.now());
    sender.ledger.record(GW, 869.525, 360_000, performance.now());
    const { id } = h.driver.enqueueDownlink('lamp-abp', { action: 'on' });
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor(() => h.t.events.some((e) => e.kind === 'lorawan.downlink.delayed'), 2000, 'delayed event');
    expect(h.t.events.find((e) => e.kind === 'lorawan.downlink.delayed')!.detail).toMatchObject({ id, reason: 'duty_cycle', code: 'E_LORA_DUTY_CYCLE' });
    await sleep(50);
    expect(fwd.pullResps()).toHaveLength(0);
    expect(h.driver.metrics().rejected.duty_cycle).toBe(1);
    expect(h.driver.status().devices.find((d) => d.id === 'lamp-abp')!.queued).toBe(1);
  });

  it('a confirmed downlink without ACK is sent again on the next uplink, then fails after 3 attempts', async () => {
    const { id } = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 10, confirmed: true });
    for (let f = 0; f < 4; f++) {
      fwd.push(rxpk(dataUp(ABP, f)));
      await waitFor(() => h.driver.metrics().uplinks === f + 1, 2000, `uplink ${f}`);
    }
    await waitFor(() => h.t.events.some((e) => e.kind === 'lorawan.downlink.failed'), 2000, 'failed');
    expect(h.t.events.filter((e) => e.kind === 'lorawan.downlink.sent' && e.detail.id === id).map((e) => e.detail.attempt)).toEqual([1, 2, 3]);
    expect(h.t.events.find((e) => e.kind === 'lorawan.downlink.failed')!.detail).toMatchObject({ id, reason: 'no_ack' });
    // Each attempt used a new FCntDown.
    const fcnts = fwd.pullResps().map((r) => loraPacket.fromWire(Buffer.from(r.txpk.data, 'base64')).getFCnt());
    expect(fcnts).toEqual([0, 1, 2]);
  });

  it('an expired command fails with reason "expired"', async () => {
    const { id } = h.driver.enqueueDownlink('lamp-abp', { action: 'off', expiresAt: Date.now() - 1 });
    fwd.push(rxpk(dataUp(ABP, 0)));
    await waitFor(() => h.t.events.some((e) => e.kind === 'lorawan.downlink.failed'), 2000, 'expired');
    expect(h.t.events.find((e) => e.kind === 'lorawan.downlink.failed')!.detail).toMatchObject({ id, reason: 'expired' });
    expect(fwd.pullResps()).toHaveLength(0);
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
      await waitFor(() => h2.t.events.some((e) => e.kind === 'lorawan.downlink.delayed'), 2000, 'delayed');
      expect(h2.t.events.find((e) => e.kind === 'lorawan.downlink.delayed')!.detail).toMatchObject({ id, reason: 'no_forwarder' });
    } finally {
      await h2.close();
    }
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
      await waitFor(() => s.driver.metrics().uplinks === 1 && s.driver.metrics().joins === 1, 2000, 'uplink + join');
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
      await waitFor(() => s.driver.metrics().uplinks === 1, 2000, 'fresh uplink');
      await waitFor(() => s.driver.metrics().rejected.replay === 1 && s.driver.metrics().rejected.devnonce_reused === 1, 2000, 'replay + devnonce');
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
      await waitFor(() => s.driver.metrics().joins === 1 && s.driver.metrics().uplinks === 2 && s.driver.metrics().rejected.mic === 1, 2000, 'traffic');
      const otaa = (s.driver as unknown as { sessions: { get(e: string): { nwkSKey: Buffer; appSKey: Buffer } } }).sessions.get(OTAA.devEui);
      const secrets = [ABP.nwkSKey, ABP.appSKey, OTAA.appKey, CLASS_C.nwkSKey, CLASS_C.appSKey, otaa.nwkSKey.toString('hex'), otaa.appSKey.toString('hex')];
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
