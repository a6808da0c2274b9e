/**
 * MAC command codec (LoRaWAN 1.0.3 §5, TS001-1.0.4 §5). Every byte string below was worked out by
 * hand from the specification's field tables (the comment on each row shows the arithmetic), not
 * produced by the encoder under test.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeMacDownlink,
  decodeMacUplink,
  encodeMacDownlink,
  encodeMacUplink,
  fitFOpts,
  macDownlinkLength,
} from '../../edge/drivers/lorawan/mac/commands.js';
import { FOPTS_MAX, unixToGpsMs, type MacDownlink, type MacDownlinkCid, type MacUplink } from '../../edge/drivers/lorawan/mac/types.js';

const bytes = (hex: string): Buffer => Buffer.from(hex.replace(/ /g, ''), 'hex');

// name, command, wire bytes (CID first)
const DOWNLINK_ROWS: [string, MacDownlink, string][] = [
  // §5.1: margin 20 dB = 0x14, 2 gateways
  ['LinkCheckAns', { cid: 'LinkCheckAns', margin: 20, gwCnt: 2 }, '02 14 02'],
  // §5.2: DR5 TXPower 2 → 0x52; ChMask 0x0007 LE → 07 00; ChMaskCntl 0, NbTrans 1 → 0x01
  ['LinkADRReq DR5 TXPower 2, channels 1-3, NbTrans 1', { cid: 'LinkADRReq', dataRate: 5, txPower: 2, chMask: 0x0007, chMaskCntl: 0, nbTrans: 1 }, '03 52 07 00 01'],
  // 1.0.4 §5.2: DataRate/TXPower 15 and NbTrans 0 keep the current values; ChMaskCntl 6 = all channels on → 0x60
  ['LinkADRReq keep DR/power/NbTrans, ChMaskCntl 6', { cid: 'LinkADRReq', dataRate: 15, txPower: 15, chMask: 0x00ff, chMaskCntl: 6, nbTrans: 0 }, '03 ff ff 00 60'],
  // ChMask bit 15 is the high byte's top bit: 0x8001 LE → 01 80; ChMaskCntl 7, NbTrans 15 → 0x7f
  ['LinkADRReq ChMask high bit, NbTrans 15', { cid: 'LinkADRReq', dataRate: 0, txPower: 7, chMask: 0x8001, chMaskCntl: 7, nbTrans: 15 }, '03 07 01 80 7f'],
  // §5.3: 1/2^7
  ['DutyCycleReq', { cid: 'DutyCycleReq', maxDCycle: 7 }, '04 07'],
  // §5.4: RX1DRoffset 2, RX2 DR3 → 0x23; 869 525 000 Hz / 100 = 8 695 250 = 0x84ADD2 → d2 ad 84
  ['RXParamSetupReq', { cid: 'RXParamSetupReq', rx1DrOffset: 2, rx2DataRate: 3, frequency: 869_525_000 }, '05 23 d2 ad 84'],
  // §5.5
  ['DevStatusReq', { cid: 'DevStatusReq' }, '06'],
  // §5.6: ChIndex 3; 867 100 000 / 100 = 8 671 000 = 0x844F18 → 18 4f 84; MaxDR 5, MinDR 0 → 0x50
  ['NewChannelReq', { cid: 'NewChannelReq', chIndex: 3, frequency: 867_100_000, minDr: 0, maxDr: 5 }, '07 03 18 4f 84 50'],
  // §5.6: frequency 0 disables channel 4
  ['NewChannelReq disabling a channel', { cid: 'NewChannelReq', chIndex: 4, frequency: 0, minDr: 0, maxDr: 0 }, '07 04 00 00 00 00'],
  // §5.7: 1 s
  ['RXTimingSetupReq', { cid: 'RXTimingSetupReq', delay: 1 }, '08 01'],
  // §5.9: GPS 1 000 000 000.5 s: 1e9 = 0x3B9ACA00 → 00 ca 9a 3b; 0.5 s = 128/256 → 0x80
  ['DeviceTimeAns half a second', { cid: 'DeviceTimeAns', gpsMs: 1_000_000_000_500 }, '0d 00 ca 9a 3b 80'],
  // 2024-01-01T00:00:00.250Z: 1 704 067 200 − 315 964 800 + 18 leap s = 1 388 102 418 = 0x52BCC312 → 12 c3 bc 52; 0.25 s = 64/256 → 0x40
  ['DeviceTimeAns 2024-01-01', { cid: 'DeviceTimeAns', gpsMs: unixToGpsMs(Date.UTC(2024, 0, 1, 0, 0, 0, 250)) }, '0d 12 c3 bc 52 40'],
];

const UPLINK_ROWS: [string, MacUplink, string][] = [
  ['LinkCheckReq', { cid: 'LinkCheckReq' }, '02'],
  // §5.2 Table 7: bit 2 power, bit 1 data rate, bit 0 channel mask
  ['LinkADRAns all acknowledged', { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }, '03 07'],
  ['LinkADRAns channel mask refused', { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: false }, '03 06'],
  ['LinkADRAns data rate refused', { cid: 'LinkADRAns', powerAck: true, dataRateAck: false, channelMaskAck: true }, '03 05'],
  ['DutyCycleAns', { cid: 'DutyCycleAns' }, '04'],
  // §5.4 Table 8: bit 2 RX1DRoffset, bit 1 RX2 data rate, bit 0 channel
  ['RXParamSetupAns all acknowledged', { cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: true }, '05 07'],
  ['RXParamSetupAns RX2 data rate refused', { cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: false, channelAck: true }, '05 05'],
  // §5.5: battery 254 (full), margin +31 → 0x1f
  ['DevStatusAns highest margin', { cid: 'DevStatusAns', battery: 254, margin: 31 }, '06 fe 1f'],
  // margin −32 in 6-bit two's complement → 0b100000 = 0x20; battery 0 = external power
  ['DevStatusAns lowest margin, mains powered', { cid: 'DevStatusAns', battery: 0, margin: -32 }, '06 00 20'],
  // margin −1 → 0b111111 = 0x3f; battery 255 = cannot measure
  ['DevStatusAns margin −1, battery unknown', { cid: 'DevStatusAns', battery: 255, margin: -1 }, '06 ff 3f'],
  // §5.6: bit 1 data rate range, bit 0 frequency
  ['NewChannelAns both ok', { cid: 'NewChannelAns', dataRateOk: true, channelFreqOk: true }, '07 03'],
  ['NewChannelAns data rate range refused', { cid: 'NewChannelAns', dataRateOk: false, channelFreqOk: true }, '07 01'],
  ['RXTimingSetupAns', { cid: 'RXTimingSetupAns' }, '08'],
  ['DeviceTimeReq', { cid: 'DeviceTimeReq' }, '0d'],
];

describe('downlink MAC commands: object ⇄ bytes (server encodes, node decodes)', () => {
  it.each(DOWNLINK_ROWS)('%s', (_name, cmd, wire) => {
    expect(encodeMacDownlink([cmd]).toString('hex')).toBe(bytes(wire).toString('hex'));
    expect(decodeMacDownlink(bytes(wire))).toEqual({ commands: [cmd], error: null });
  });

  it('all of them in one frame round-trip in order', () => {
    const cmds = DOWNLINK_ROWS.map(([, cmd]) => cmd);
    const wire = encodeMacDownlink(cmds);
    expect(wire.toString('hex')).toBe(DOWNLINK_ROWS.map(([, , hex]) => bytes(hex).toString('hex')).join(''));
    expect(decodeMacDownlink(wire)).toEqual({ commands: cmds, error: null });
  });

  it('DeviceTimeAns keeps 1/256 s: a ms instant is truncated to the step below, and decodes to that step exactly', () => {
    // 999 ms = 255.744/256 → 255 (0xff); 255/256 s = 996.09375 ms
    const wire = encodeMacDownlink([{ cid: 'DeviceTimeAns', gpsMs: 10_999 }]);
    expect(wire.toString('hex')).toBe('0d0a000000ff');
    expect(decodeMacDownlink(wire).commands).toEqual([{ cid: 'DeviceTimeAns', gpsMs: 10_996.093_75 }]);
    expect(encodeMacDownlink(decodeMacDownlink(wire).commands)).toEqual(wire);
  });
});

describe('uplink MAC commands: bytes ⇄ object (node encodes, server decodes)', () => {
  it.each(UPLINK_ROWS)('%s', (_name, cmd, wire) => {
    expect(encodeMacUplink([cmd]).toString('hex')).toBe(bytes(wire).toString('hex'));
    expect(decodeMacUplink(bytes(wire))).toEqual({ commands: [cmd], error: null });
  });

  it('a typical FOpts: LinkADRAns, DevStatusAns, DeviceTimeReq', () => {
    expect(decodeMacUplink(bytes('03 07 06 fe 1f 0d'))).toEqual({
      commands: [
        { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true },
        { cid: 'DevStatusAns', battery: 254, margin: 31 },
        { cid: 'DeviceTimeReq' },
      ],
      error: null,
    });
  });

  // RFU bits are ignored by the receiver (§5 field tables mark them RFU)
  const RFU_ROWS: [string, string, MacUplink][] = [
    ['LinkADRAns RFU bits set', '03 ff', { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }],
    ['DevStatusAns margin RFU bits 7:6 set', '06 10 df', { cid: 'DevStatusAns', battery: 16, margin: 31 }],
    ['NewChannelAns RFU bits set', '07 fc', { cid: 'NewChannelAns', dataRateOk: false, channelFreqOk: false }],
  ];
  it.each(RFU_ROWS)('%s', (_name, wire, cmd) => {
    expect(decodeMacUplink(bytes(wire))).toEqual({ commands: [cmd], error: null });
  });
});

describe('malformed MAC bytes: decoding stops, says why, keeps the commands before', () => {
  // name, direction, bytes, commands kept, error
  const rows: [string, 'up' | 'down', string, (MacUplink | MacDownlink)[], string | null][] = [
    ['empty FOpts is no commands, no error', 'up', '', [], null],
    ['unknown CID first', 'up', '42', [], 'unknown MAC CID 0x42 at byte 0'],
    ['unknown CID after a command (its length is unknown, so the rest is lost)', 'up', '03 07 42 00 06 fe 1f', [{ cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }], 'unknown MAC CID 0x42 at byte 2'],
    ['TxParamSetupAns (0x09) is not spoken here', 'up', '02 09', [{ cid: 'LinkCheckReq' }], 'unknown MAC CID 0x09 at byte 1'],
    ['proprietary CID 0x80', 'up', '80 01', [], 'unknown MAC CID 0x80 at byte 0'],
    ['truncated DevStatusAns after a good command', 'up', '03 07 06 fe', [{ cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }], 'DevStatusAns truncated at byte 2: 2 payload bytes needed, 1 left'],
    ['a lone CID that needs a payload', 'up', '06', [], 'DevStatusAns truncated at byte 0: 2 payload bytes needed, 0 left'],
    ['truncated LinkADRReq', 'down', '03 52 07', [], 'LinkADRReq truncated at byte 0: 4 payload bytes needed, 2 left'],
    ['truncated DeviceTimeAns after DevStatusReq', 'down', '06 0d 00 ca 9a 3b', [{ cid: 'DevStatusReq' }], 'DeviceTimeAns truncated at byte 1: 5 payload bytes needed, 4 left'],
    ['CID 0x02 on the downlink side is LinkCheckAns, with 2 payload bytes', 'down', '02 14', [], 'LinkCheckAns truncated at byte 0: 2 payload bytes needed, 1 left'],
    ['unknown CID on the downlink side', 'down', '06 0b', [{ cid: 'DevStatusReq' }], 'unknown MAC CID 0x0b at byte 1'],
  ];
  it.each(rows)('%s', (_name, direction, wire, commands, error) => {
    const decode = direction === 'up' ? decodeMacUplink : decodeMacDownlink;
    expect(decode(bytes(wire))).toEqual({ commands, error });
  });
});

describe('encoders refuse out-of-range fields with a RangeError naming the field', () => {
  const downRows: [MacDownlink, string][] = [
    [{ cid: 'LinkCheckAns', margin: 255, gwCnt: 1 }, 'LinkCheckAns.margin'],
    [{ cid: 'LinkCheckAns', margin: 10, gwCnt: 256 }, 'LinkCheckAns.gwCnt'],
    [{ cid: 'LinkADRReq', dataRate: -1, txPower: 0, chMask: 1, chMaskCntl: 0, nbTrans: 1 }, 'LinkADRReq.dataRate'],
    [{ cid: 'LinkADRReq', dataRate: 1.5, txPower: 0, chMask: 1, chMaskCntl: 0, nbTrans: 1 }, 'LinkADRReq.dataRate'],
    [{ cid: 'LinkADRReq', dataRate: 5, txPower: 16, chMask: 1, chMaskCntl: 0, nbTrans: 1 }, 'LinkADRReq.txPower'],
    [{ cid: 'LinkADRReq', dataRate: 5, txPower: 0, chMask: 0x1_0000, chMaskCntl: 0, nbTrans: 1 }, 'LinkADRReq.chMask'],
    [{ cid: 'LinkADRReq', dataRate: 5, txPower: 0, chMask: 1, chMaskCntl: 8, nbTrans: 1 }, 'LinkADRReq.chMaskCntl'],
    [{ cid: 'LinkADRReq', dataRate: 5, txPower: 0, chMask: 1, chMaskCntl: 0, nbTrans: 16 }, 'LinkADRReq.nbTrans'],
    [{ cid: 'DutyCycleReq', maxDCycle: 16 }, 'DutyCycleReq.maxDCycle'],
    [{ cid: 'RXParamSetupReq', rx1DrOffset: 8, rx2DataRate: 0, frequency: 869_525_000 }, 'RXParamSetupReq.rx1DrOffset'],
    [{ cid: 'RXParamSetupReq', rx1DrOffset: 0, rx2DataRate: 16, frequency: 869_525_000 }, 'RXParamSetupReq.rx2DataRate'],
    [{ cid: 'RXParamSetupReq', rx1DrOffset: 0, rx2DataRate: 0, frequency: 869_525_050 }, 'RXParamSetupReq.frequency'],
    [{ cid: 'NewChannelReq', chIndex: 256, frequency: 867_100_000, minDr: 0, maxDr: 5 }, 'NewChannelReq.chIndex'],
    [{ cid: 'NewChannelReq', chIndex: 3, frequency: 0x100_0000 * 100, minDr: 0, maxDr: 5 }, 'NewChannelReq.frequency'],
    [{ cid: 'NewChannelReq', chIndex: 3, frequency: 867_100_000, minDr: 16, maxDr: 5 }, 'NewChannelReq.minDr'],
    [{ cid: 'NewChannelReq', chIndex: 3, frequency: 867_100_000, minDr: 0, maxDr: 16 }, 'NewChannelReq.maxDr'],
    [{ cid: 'RXTimingSetupReq', delay: 16 }, 'RXTimingSetupReq.delay'],
    [{ cid: 'DeviceTimeAns', gpsMs: -1 }, 'DeviceTimeAns.gpsMs'],
    [{ cid: 'DeviceTimeAns', gpsMs: 2 ** 32 * 1000 }, 'DeviceTimeAns.gpsMs'],
    [{ cid: 'DeviceTimeAns', gpsMs: Number.NaN }, 'DeviceTimeAns.gpsMs'],
  ];
  it.each(downRows)('%o → %s', (cmd, field) => {
    expect(() => encodeMacDownlink([cmd])).toThrow(RangeError);
    expect(() => encodeMacDownlink([cmd])).toThrow(new RegExp(`^${field.replace('.', '\\.')}: `));
  });

  const upRows: [MacUplink, string][] = [
    [{ cid: 'DevStatusAns', battery: 256, margin: 0 }, 'DevStatusAns.battery'],
    [{ cid: 'DevStatusAns', battery: 100, margin: 32 }, 'DevStatusAns.margin'],
    [{ cid: 'DevStatusAns', battery: 100, margin: -33 }, 'DevStatusAns.margin'],
  ];
  it.each(upRows)('%o → %s', (cmd, field) => {
    expect(() => encodeMacUplink([cmd])).toThrow(new RegExp(`^${field}: `));
  });

  it('an unknown command name (an untyped caller) is a RangeError too', () => {
    expect(() => encodeMacDownlink([{ cid: 'PingSlotChannelReq' } as unknown as MacDownlink])).toThrow('MAC: no command "PingSlotChannelReq" in this direction');
    expect(() => encodeMacUplink([{ cid: 'toString' } as unknown as MacUplink])).toThrow(RangeError);
  });
});

describe('macDownlinkLength: bytes on the wire, CID included', () => {
  const lengths: [MacDownlinkCid, number][] = [
    ['LinkCheckAns', 3],
    ['LinkADRReq', 5],
    ['DutyCycleReq', 2],
    ['RXParamSetupReq', 5],
    ['DevStatusReq', 1],
    ['NewChannelReq', 6],
    ['RXTimingSetupReq', 2],
    ['DeviceTimeAns', 6],
  ];
  it.each(lengths)('%s is %i bytes', (cid, length) => {
    expect(macDownlinkLength(cid)).toBe(length);
  });
  it.each(DOWNLINK_ROWS)('%s: the length is what the encoder writes', (_name, cmd) => {
    expect(encodeMacDownlink([cmd]).length).toBe(macDownlinkLength(cmd.cid));
  });
});

describe('fitFOpts: at most 15 bytes in FOpts (§4.3.1.6), first fit, order kept', () => {
  const adr: MacDownlink = { cid: 'LinkADRReq', dataRate: 5, txPower: 2, chMask: 7, chMaskCntl: 0, nbTrans: 1 }; // 5
  const newChannel = (chIndex: number): MacDownlink => ({ cid: 'NewChannelReq', chIndex, frequency: 867_100_000, minDr: 0, maxDr: 5 }); // 6
  const dutyCycle: MacDownlink = { cid: 'DutyCycleReq', maxDCycle: 7 }; // 2
  const timing: MacDownlink = { cid: 'RXTimingSetupReq', delay: 1 }; // 2
  const status: MacDownlink = { cid: 'DevStatusReq' }; // 1
  const time: MacDownlink = { cid: 'DeviceTimeAns', gpsMs: 1_000_000_000_500 }; // 6

  // name, commands, budget, fit, rest
  const rows: [string, MacDownlink[], number | undefined, MacDownlink[], MacDownlink[]][] = [
    ['nothing to send', [], undefined, [], []],
    ['exactly 15 bytes all go', [adr, newChannel(3), dutyCycle, timing], undefined, [adr, newChannel(3), dutyCycle, timing], []],
    ['the 16th byte waits', [adr, newChannel(3), dutyCycle, timing, status], undefined, [adr, newChannel(3), dutyCycle, timing], [status]],
    [
      'a command that does not fit waits, smaller ones after it still go, both in order',
      [adr, newChannel(3), time, status, timing, dutyCycle],
      undefined,
      [adr, newChannel(3), status, timing], // 5 + 6 + 1 + 2 = 14
      [time, dutyCycle], // 14 + 6 > 15, 14 + 2 > 15
    ],
    ['three NewChannelReq (18 bytes): two go', [newChannel(3), newChannel(4), newChannel(5)], undefined, [newChannel(3), newChannel(4)], [newChannel(5)]],
    ['budget 0: everything waits', [status, dutyCycle], 0, [], [status, dutyCycle]],
    ['a larger budget (FPort 0 payload) takes all', [adr, newChannel(3), time, status, timing, dutyCycle], 51, [adr, newChannel(3), time, status, timing, dutyCycle], []],
  ];
  it.each(rows)('%s', (_name, cmds, budget, fit, rest) => {
    const out = fitFOpts(cmds, budget);
    expect(out).toEqual({ fit, rest });
    expect(encodeMacDownlink(out.fit).length).toBeLessThanOrEqual(budget ?? FOPTS_MAX);
  });

  it('a negative budget is a RangeError', () => {
    expect(() => fitFOpts([status], -1)).toThrow(/^fitFOpts\.budget: /);
  });
});
