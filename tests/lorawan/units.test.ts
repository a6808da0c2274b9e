/** Frame counters, time on air, duty cycle, DevAddr allocation, Semtech packets and tmst arithmetic. */
import { describe, expect, it } from 'vitest';
import { FCntError } from '../../edge/drivers/lorawan/errors.js';
import { timeOnAirMs } from '../../edge/drivers/lorawan/region/airtime.js';
import { DutyCycleLedger } from '../../edge/drivers/lorawan/region/dutyCycle.js';
import { rx1DataRate, subBandOf } from '../../edge/drivers/lorawan/region/eu868.js';
import { ack, parseDatagram, pullData, pullResp, pushData, PUSH_ACK, tmstAdd, tmstDiff, txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { ProtocolError } from '../../edge/drivers/lorawan/errors.js';
import { fCntMsb, MAX_FCNT_GAP, reconstructFCnt } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { allocateDevAddr, devAddrPrefix } from '../../edge/drivers/lorawan/uplink/netId.js';
import { DutyCycleError } from '../../edge/drivers/lorawan/errors.js';
import { planClassA } from '../../edge/drivers/lorawan/downlink/scheduler.js';

describe('32-bit FCnt reconstruction (LoRaWAN 1.0.3 §4.3.1.5)', () => {
  const rows: [string, number | null, number, number | 'replay' | 'fcnt_gap'][] = [
    ['first frame of a session', null, 0, 0],
    ['next frame', 5, 6, 6],
    ['a lost frame or two', 5, 9, 9],
    ['rollover past 65535', 65_535, 0, 65_536],
    ['rollover with a gap', 65_530, 3, 65_539],
    ['second rollover', 131_071, 1, 131_073],
    ['high counter keeps its MSBs', 0x1_0005, 0x0007, 0x1_0007],
    ['replay of the last frame', 10, 10, 'replay'],
    ['older frame', 10, 3, 'replay'],
    ['older frame across the wrap', 65_540, 65_530, 'replay'],
    ['gap of MAX_FCNT_GAP', 10, 10 + MAX_FCNT_GAP, 'fcnt_gap'],
    ['gap just under MAX_FCNT_GAP', 10, 10 + MAX_FCNT_GAP - 1, 10 + MAX_FCNT_GAP - 1],
    ['first frame far from 0 (OTAA)', null, 20_000, 'fcnt_gap'],
  ];
  it('an ABP session may start anywhere (the node counted before the gateway knew it)', () => {
    expect(reconstructFCnt(null, 20_000, MAX_FCNT_GAP, true)).toBe(20_000);
  });
  it.each(rows)('%s', (_name, last, fCnt16, expected) => {
    if (typeof expected === 'number') expect(reconstructFCnt(last, fCnt16)).toBe(expected);
    else {
      const err = (() => {
        try {
          reconstructFCnt(last, fCnt16);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(FCntError);
      expect((err as FCntError).reason).toBe(expected);
      expect((err as FCntError).code).toBe('E_LORA_FCNT');
    }
  });
  it('MSBs as lora-packet wants them (little-endian upper half)', () => {
    expect(fCntMsb(0x0001_0000).toString('hex')).toBe('0100');
    expect(fCntMsb(0x1234_5678).toString('hex')).toBe('3412');
  });
});

describe('time on air (Semtech AN1200.13)', () => {
  it.each([
    // sf, bw, bytes, crc, ms
    [7, 125, 13, true, 46.336], // the classic "SF7, 13 bytes: 46.3 ms"
    [12, 125, 13, true, 1155.072],
    [9, 125, 13, true, 164.864],
    [7, 125, 23, true, 61.696], // 10-byte application payload: TTN's 61.7 ms
    [12, 125, 23, true, 1482.752], // …and at SF12: TTN's 1482.8 ms
    [7, 250, 13, true, 23.168],
    [12, 125, 12, false, 991.232], // an ACK-only downlink in RX2 (no CRC)
  ])('SF%iBW%i, %i bytes, crc %s → %f ms', (sf, bw, bytes, crc, ms) => {
    expect(timeOnAirMs({ sf, bw, payloadBytes: bytes, crc })).toBeCloseTo(ms, 3);
  });
});

describe('EU868 duty cycle', () => {
  it('sub-bands: g 1 %, g1 1 %, g2 0.1 %, g3 10 %', () => {
    expect(subBandOf(867.1)).toMatchObject({ name: 'g', dutyCycle: 0.01 });
    expect(subBandOf(868.1)).toMatchObject({ name: 'g1', dutyCycle: 0.01 });
    expect(subBandOf(868.8)).toMatchObject({ name: 'g2', dutyCycle: 0.001 });
    expect(subBandOf(869.525)).toMatchObject({ name: 'g3', dutyCycle: 0.1 });
    expect(subBandOf(869.3)).toBeNull();
    expect(subBandOf(915.0)).toBeNull();
  });

  it('1 % of an hour is 36 s per gateway and sub-band; the earliest retry is when old air time leaves the window', () => {
    const l = new DutyCycleLedger();
    for (let i = 0; i < 36; i++) l.record('gw1', 868.1, 1000, i * 10);
    expect(l.check('gw1', 868.1, 1, 400)).toMatchObject({ ok: false, reason: 'duty_cycle', usedMs: 36_000, budgetMs: 36_000, retryAt: 3_601_000 });
    expect(l.check('gw1', 868.3, 1, 400).ok).toBe(false); // same sub-band g1
    expect(l.check('gw2', 868.1, 1, 400).ok).toBe(true); // per gateway
    expect(l.check('gw1', 869.525, 1000, 400).ok).toBe(true); // g3 has its own 10 %
    expect(l.check('gw1', 868.1, 1000, 3_601_000).ok).toBe(true);
    l.refund('gw1', 868.1, 1000, 0);
    expect(l.check('gw1', 868.1, 1000, 400).ok).toBe(true);
  });

  it('a class A downlink that would break the duty cycle on RX1 goes to RX2; with both spent it is refused', () => {
    const l = new DutyCycleLedger();
    l.record('gw', 868.1, 36_000, 0);
    const up = { gatewayEui: 'gw', tmst: 0, freq: 868.1, datr: 'SF7BW125', receivedAt: 0 };
    const s = { rx1Delay: 1, rx1DrOffset: 0, rx2Dr: 0, leadMs: 50 };
    const plans = planClassA(Buffer.alloc(20), up, false, s, l, 10, 10);
    expect(plans.map((p) => p.window)).toEqual(['rx2']);
    l.record('gw', 869.525, 360_000, 0);
    expect(() => planClassA(Buffer.alloc(20), up, false, s, l, 10, 10)).toThrow(DutyCycleError);
  });

  it('class A: RX1 at tmst + 1 s on the uplink frequency and DR − offset, RX2 at +2 s; join accept at +5/+6 s; tmst wraps', () => {
    const l = new DutyCycleLedger();
    const up = { gatewayEui: 'gw', tmst: 0xffff_0000, freq: 868.3, datr: 'SF9BW125', receivedAt: 0 };
    const [rx1, rx2] = planClassA(Buffer.alloc(20), up, false, { rx1Delay: 1, rx1DrOffset: 1, rx2Dr: 0, leadMs: 50 }, l, 5, 5);
    expect(rx1!.txpk).toMatchObject({ tmst: (0xffff_0000 + 1_000_000) % 2 ** 32, freq: 868.3, datr: 'SF10BW125', ipol: true, imme: false });
    expect(rx2!.txpk).toMatchObject({ tmst: (0xffff_0000 + 2_000_000) % 2 ** 32, freq: 869.525, datr: 'SF12BW125' });
    const [j1] = planClassA(Buffer.alloc(17), up, true, { rx1Delay: 1, rx1DrOffset: 0, rx2Dr: 0, leadMs: 50 }, l, 5, 5);
    expect(j1!.txpk.tmst).toBe((0xffff_0000 + 5_000_000) % 2 ** 32);
    // 980 ms after the uplink RX1 is too late (lead 50 ms): RX2 only.
    expect(planClassA(Buffer.alloc(20), up, false, { rx1Delay: 1, rx1DrOffset: 0, rx2Dr: 0, leadMs: 50 }, l, 980, 980).map((p) => p.window)).toEqual(['rx2']);
    expect(rx1DataRate(0, 3)).toBe(0);
  });
});

describe('DevAddr from the NetID (Backend Interfaces 1.0 §13)', () => {
  it('type 0 NetID 000013: 7-bit prefix 0010011 (TTN: 0x26/0x27)', () => {
    expect(devAddrPrefix('000013')).toEqual({ prefix: 0x13, prefixBits: 7 });
    const a = allocateDevAddr('000013', () => false);
    expect(parseInt(a, 16) >>> 25).toBe(0x13);
  });
  it('type 3 NetID 600000 + NwkID', () => {
    const { prefix, prefixBits } = devAddrPrefix('600005');
    expect(prefixBits).toBe(15);
    expect(prefix).toBe((0b1110 << 11) | 5);
  });
  it('never returns an address in use', () => {
    let n = 0;
    const a = allocateDevAddr('000000', () => n++ < 3);
    expect(a).toHaveLength(8);
    expect(n).toBe(4);
  });
});

describe('Semtech UDP packets (PROTOCOL.TXT)', () => {
  it('PUSH_DATA round trip, PUSH_ACK echoes version and token', () => {
    const d = parseDatagram(pushData(1, 0xbeef, 'aa555a0000000001', { rxpk: [], stat: { rxnb: 2 } }));
    expect(d).toMatchObject({ kind: 'push_data', version: 1, token: 0xbeef, gatewayEui: 'aa555a0000000001', stat: { rxnb: 2 } });
    expect(ack(1, 0xbeef, PUSH_ACK).toString('hex')).toBe('01beef01');
  });
  it('PULL_DATA, PULL_RESP (v1 has no token), TX_ACK with and without JSON', () => {
    expect(parseDatagram(pullData(2, 7, '0102030405060708'))).toMatchObject({ kind: 'pull_data', gatewayEui: '0102030405060708' });
    const txpk = { imme: true, freq: 869.525, rfch: 0, powe: 14, modu: 'LORA' as const, datr: 'SF12BW125', codr: '4/5', ipol: true, size: 1, data: 'AA==' };
    expect(pullResp(1, 9, txpk).readUInt16BE(1)).toBe(0);
    expect(parseDatagram(pullResp(2, 9, txpk))).toMatchObject({ kind: 'pull_resp', token: 9, txpk });
    expect(parseDatagram(txAck(2, 9, '0102030405060708', 'TOO_LATE'))).toMatchObject({ kind: 'tx_ack', token: 9, error: 'TOO_LATE' });
    expect(parseDatagram(Buffer.from('020009050102030405060708', 'hex'))).toMatchObject({ kind: 'tx_ack', error: 'NONE' });
  });
  it.each([
    ['too_short', Buffer.from('0200', 'hex')],
    ['unknown_version', Buffer.from('0300010001020304050607087b7d', 'hex')],
    ['malformed_json', Buffer.concat([Buffer.from('0200010001020304050607 08'.replace(' ', ''), 'hex'), Buffer.from('{"rxpk":[')])],
    ['too_long', Buffer.alloc(70_000, 2)],
    ['unknown_identifier', Buffer.from('020001090102', 'hex')],
    ['bad_rxpk', pushData(2, 1, '0102030405060708', { rxpk: [{ tmst: -1 } as never] })],
  ])('rejects %s', (reason, buf) => {
    try {
      parseDatagram(buf);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ProtocolError);
      expect((e as ProtocolError).reason).toBe(reason);
    }
  });
  it('tmst arithmetic is modulo 2^32', () => {
    expect(tmstAdd(0xffff_ffff, 1)).toBe(0);
    expect(tmstAdd(4_294_000_000, 1_000_000)).toBe(32_704);
    expect(tmstDiff(4_294_000_000, 32_704)).toBe(1_000_000);
    expect(tmstDiff(32_704, 4_294_000_000)).toBe(-1_000_000);
  });
});
