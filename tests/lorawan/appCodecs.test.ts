/**
 * The application-layer package codecs (TS003, TS005, TS004 v1.0.0/v2.0.0, TS006), both ways:
 * one byte table per package and direction, each row worked out by hand from the specification's
 * tables (field order, bit positions, little-endian multi-octet fields); then frames that do not
 * decode (the commands before the bad byte are kept, with a reason) and commands that do not
 * encode (a RangeError naming the field).
 */
import { describe, expect, it } from 'vitest';
import {
  decodeClockSyncDown,
  decodeClockSyncUp,
  decodeFirmwareDown,
  decodeFirmwareUp,
  decodeFragDown,
  decodeFragUp,
  decodeMulticastDown,
  decodeMulticastUp,
  encodeClockSyncDown,
  encodeClockSyncUp,
  encodeFirmwareDown,
  encodeFirmwareUp,
  encodeFragDown,
  encodeFragUp,
  encodeMulticastDown,
  encodeMulticastUp,
  type AppDecoded,
  type ClockSyncDown,
  type ClockSyncUp,
  type FirmwareDown,
  type FirmwareUp,
  type FragDown,
  type FragUp,
  type FragVersion,
  type MulticastDown,
  type MulticastUp,
} from '../../edge/drivers/lorawan/app/index.js';
import { rng } from '../../edge/sim/modbus/random.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

type Row<T> = [name: string, command: T, bytes: string];

/** Every row both ways: the command encodes to its bytes, the bytes decode to the command alone. */
function bothWays<T>(rows: Row<T>[], encode: (cmds: T[]) => Buffer, decode: (buf: Buffer) => AppDecoded<T>): void {
  it.each(rows)('%s', (_name, command, bytes) => {
    expect(encode([command]).toString('hex')).toBe(hex(bytes).toString('hex'));
    expect(decode(hex(bytes))).toEqual({ commands: [command], error: null });
  });
}

const KEY = hex('000102030405060708090a0b0c0d0e0f');

describe('TS003 clock synchronisation v1.0.0 (FPort 202)', () => {
  describe('server → node', () => {
    bothWays<ClockSyncDown>(
      [
        ['PackageVersionReq (§3.1)', { cid: 'PackageVersionReq' }, '00'],
        ['AppTimeAns: a negative correction is int32 LE, TokenAns in bits 3:0 (§3.2)', { cid: 'AppTimeAns', timeCorrection: -2, tokenAns: 5 }, '01 feffffff 05'],
        ['AppTimeAns: the largest correction', { cid: 'AppTimeAns', timeCorrection: 0x7fff_ffff, tokenAns: 15 }, '01 ffffff7f 0f'],
        ['DeviceAppTimePeriodicityReq (§3.3)', { cid: 'DeviceAppTimePeriodicityReq', period: 9 }, '02 09'],
        ['ForceDeviceResyncReq (§3.4)', { cid: 'ForceDeviceResyncReq', nbTransmissions: 3 }, '03 03'],
      ],
      encodeClockSyncDown,
      decodeClockSyncDown,
    );
  });
  describe('node → server', () => {
    bothWays<ClockSyncUp>(
      [
        ['PackageVersionAns: package 1, version 1', { cid: 'PackageVersionAns', packageIdentifier: 1, packageVersion: 1 }, '00 01 01'],
        ['AppTimeReq: DeviceTime uint32 LE, AnsRequired bit 4 (§3.2)', { cid: 'AppTimeReq', deviceTime: 0x1234_5678, tokenReq: 3, ansRequired: true }, '01 78563412 13'],
        ['AppTimeReq without AnsRequired', { cid: 'AppTimeReq', deviceTime: 1, tokenReq: 15, ansRequired: false }, '01 01000000 0f'],
        ['DeviceAppTimePeriodicityAns: NotSupported bit 0, then the time (§3.3)', { cid: 'DeviceAppTimePeriodicityAns', notSupported: true, time: 0x0102_0304 }, '02 01 04030201'],
      ],
      encodeClockSyncUp,
      decodeClockSyncUp,
    );
  });
});

describe('TS005 remote multicast setup v1.0.0 (FPort 200)', () => {
  const setup: MulticastDown = { cid: 'McGroupSetupReq', mcGroupId: 1, mcAddr: '01020304', mcKeyEncrypted: KEY, minMcFCnt: 0, maxMcFCnt: 0xffff_ffff };
  // 869.525 MHz = 8 695 250 × 100 Hz = 0x84add2
  const classC: MulticastDown = { cid: 'McClassCSessionReq', mcGroupId: 0, sessionTime: 1_000_000_000, timeOut: 7, frequency: 869_525_000, dr: 3 };
  describe('server → node', () => {
    bothWays<MulticastDown>(
      [
        ['PackageVersionReq (§4.1)', { cid: 'PackageVersionReq' }, '00'],
        ['McGroupStatusReq: ReqGroupMask in bits 3:0 (§4.2)', { cid: 'McGroupStatusReq', reqGroupMask: 0b0101 }, '01 05'],
        ['McGroupSetupReq: McAddr LE, the encrypted key as is, FCnt range LE (§4.3)', setup, '02 01 04030201 000102030405060708090a0b0c0d0e0f 00000000 ffffffff'],
        ['McGroupDeleteReq (§4.4)', { cid: 'McGroupDeleteReq', mcGroupId: 2 }, '03 02'],
        ['McClassCSessionReq: GPS time LE, TimeOut, 24-bit frequency × 100 Hz, DR (§4.5)', classC, '04 00 00ca9a3b 07 d2ad84 03'],
      ],
      encodeMulticastDown,
      decodeMulticastDown,
    );
    it('carries several commands in one frame, in order', () => {
      const frame = encodeMulticastDown([setup, classC]);
      expect(frame.length).toBe(30 + 11);
      expect(decodeMulticastDown(frame)).toEqual({ commands: [setup, classC], error: null });
    });
  });
  describe('node → server', () => {
    bothWays<MulticastUp>(
      [
        ['PackageVersionAns: package 2', { cid: 'PackageVersionAns', packageIdentifier: 2, packageVersion: 1 }, '00 02 01'],
        [
          'McGroupStatusAns: NbTotalGroups in 6:4, a 5-byte record per group of AnsGroupMask (§4.2)',
          { cid: 'McGroupStatusAns', nbTotalGroups: 2, ansGroupMask: 0b0011, groups: [{ mcGroupId: 0, mcAddr: '01020304' }, { mcGroupId: 1, mcAddr: 'aabbccdd' }] },
          '01 23 00 04030201 01 ddccbbaa',
        ],
        ['McGroupStatusAns without groups', { cid: 'McGroupStatusAns', nbTotalGroups: 0, ansGroupMask: 0, groups: [] }, '01 00'],
        ['McGroupSetupAns (§4.3)', { cid: 'McGroupSetupAns', mcGroupId: 1, idError: false }, '02 01'],
        ['McGroupSetupAns: IDerror bit 2', { cid: 'McGroupSetupAns', mcGroupId: 3, idError: true }, '02 07'],
        ['McGroupDeleteAns: McGroupUndefined bit 2 (§4.4)', { cid: 'McGroupDeleteAns', mcGroupId: 0, mcGroupUndefined: true }, '03 04'],
        [
          'McClassCSessionAns: TimeToStart (24 bits LE) when no error (§4.5)',
          { cid: 'McClassCSessionAns', mcGroupId: 1, drError: false, freqError: false, mcGroupUndefined: false, timeToStart: 0x01_0203 },
          '04 01 030201',
        ],
        [
          'McClassCSessionAns: FreqError bit 3, no TimeToStart',
          { cid: 'McClassCSessionAns', mcGroupId: 2, drError: false, freqError: true, mcGroupUndefined: false, timeToStart: null },
          '04 0a',
        ],
      ],
      encodeMulticastUp,
      decodeMulticastUp,
    );
  });
});

describe('TS004 fragmented data block transport (FPort 201)', () => {
  const setupV1: FragDown = {
    cid: 'FragSessionSetupReq',
    fragIndex: 1,
    mcGroupBitMask: 0b0001,
    nbFrag: 200,
    fragSize: 50,
    fragAlgo: 0,
    blockAckDelay: 3,
    padding: 7,
    descriptor: 0x0102_0304,
  };
  const setupV2: FragDown = {
    cid: 'FragSessionSetupReq',
    fragIndex: 0,
    mcGroupBitMask: 0b0001,
    nbFrag: 10,
    fragSize: 10,
    fragAlgo: 0,
    blockAckDelay: 1,
    padding: 0,
    descriptor: 0,
    ackReception: true,
    sessionCnt: 0x0102,
    mic: hex('deadbeef'),
  };
  const versioned =
    <T>(version: FragVersion, encode: (cmds: T[], v: FragVersion) => Buffer, decode: (buf: Buffer, v: FragVersion) => AppDecoded<T>) =>
    (rows: Row<T>[]): void =>
      bothWays(
        rows,
        (cmds) => encode(cmds, version),
        (buf) => decode(buf, version),
      );

  describe('v1.0.0, server → node', () => {
    versioned<FragDown>(
      1,
      encodeFragDown,
      decodeFragDown,
    )([
      ['PackageVersionReq (§3.1)', { cid: 'PackageVersionReq' }, '00'],
      ['FragSessionStatusReq: FragIndex in 2:1, Participants bit 0 (§3.5)', { cid: 'FragSessionStatusReq', fragIndex: 2, participants: true }, '01 05'],
      ['FragSessionSetupReq: FragSession, NbFrag LE, FragSize, Control, Padding, Descriptor LE (§3.2)', setupV1, '02 11 c800 32 03 07 04030201'],
      ['FragSessionDeleteReq (§3.3)', { cid: 'FragSessionDeleteReq', fragIndex: 3 }, '03 03'],
      ['DataFragment: Index&N LE (FragIndex 15:14, N 13:0), then the fragment (§3.4)', { cid: 'DataFragment', fragIndex: 1, n: 300, payload: hex('aabbcc') }, '08 2c41 aabbcc'],
    ]);
  });
  describe('v2.0.0, server → node', () => {
    versioned<FragDown>(
      2,
      encodeFragDown,
      decodeFragDown,
    )([
      ['FragSessionSetupReq: AckReception bit 6 of Control, SessionCnt LE and MIC after the Descriptor (§3.3)', setupV2, '02 01 0a00 0a 41 00 00000000 0201 deadbeef'],
      ['FragDataBlockReceivedAns (§3.5)', { cid: 'FragDataBlockReceivedAns', fragIndex: 2 }, '04 02'],
      ['DataFragment as in v1.0.0 (§3.6)', { cid: 'DataFragment', fragIndex: 0, n: 1, payload: hex('00') }, '08 0100 00'],
    ]);
  });
  describe('v1.0.0, node → server', () => {
    versioned<FragUp>(
      1,
      encodeFragUp,
      decodeFragUp,
    )([
      ['PackageVersionAns: package 3, version 1', { cid: 'PackageVersionAns', packageIdentifier: 3, packageVersion: 1 }, '00 03 01'],
      [
        'FragSessionStatusAns: Received&index LE, MissingFrag, then Status (§3.5)',
        { cid: 'FragSessionStatusAns', fragIndex: 1, nbFragReceived: 1024, missingFrag: 5, notEnoughMemory: true },
        '01 0044 05 01',
      ],
      [
        'FragSessionSetupAns: FragIndex in 7:6, status bits 3:0 (§3.2)',
        { cid: 'FragSessionSetupAns', fragIndex: 3, encodingUnsupported: true, notEnoughMemory: false, fragIndexUnsupported: true, wrongDescriptor: false },
        '02 c5',
      ],
      ['FragSessionDeleteAns: Session does not exist bit 2 (§3.3)', { cid: 'FragSessionDeleteAns', fragIndex: 1, sessionDoesNotExist: true }, '03 05'],
    ]);
  });
  describe('v2.0.0, node → server', () => {
    versioned<FragUp>(
      2,
      encodeFragUp,
      decodeFragUp,
    )([
      ['PackageVersionAns: package 3, version 2', { cid: 'PackageVersionAns', packageIdentifier: 3, packageVersion: 2 }, '00 03 02'],
      [
        'FragSessionStatusAns: Status first (MICError bit 1), then Received&index and MissingFrag (§3.2)',
        { cid: 'FragSessionStatusAns', fragIndex: 2, nbFragReceived: 16_383, missingFrag: 0, notEnoughMemory: false, micError: true, sessionDoesNotExist: false },
        '01 02 ffbf 00',
      ],
      [
        'FragSessionStatusAns of a session that does not exist: the Status octet alone',
        { cid: 'FragSessionStatusAns', fragIndex: 0, nbFragReceived: 0, missingFrag: 0, notEnoughMemory: false, micError: false, sessionDoesNotExist: true },
        '01 04',
      ],
      [
        'FragSessionSetupAns: SessionCnt replay bit 4 (§3.3 Table 14)',
        { cid: 'FragSessionSetupAns', fragIndex: 1, encodingUnsupported: false, notEnoughMemory: false, fragIndexUnsupported: false, wrongDescriptor: false, sessionCntReplay: true },
        '02 50',
      ],
      ['FragDataBlockReceivedReq: MICError bit 2 (§3.5)', { cid: 'FragDataBlockReceivedReq', fragIndex: 1, micOk: false }, '04 05'],
      ['FragDataBlockReceivedReq with a good MIC', { cid: 'FragDataBlockReceivedReq', fragIndex: 3, micOk: true }, '04 03'],
    ]);
    it('reads a short FragSessionStatusAns and the command after it', () => {
      expect(decodeFragUp(hex('0104 0305'), 2)).toEqual({
        commands: [
          { cid: 'FragSessionStatusAns', fragIndex: 0, nbFragReceived: 0, missingFrag: 0, notEnoughMemory: false, micError: false, sessionDoesNotExist: true },
          { cid: 'FragSessionDeleteAns', fragIndex: 1, sessionDoesNotExist: true },
        ],
        error: null,
      });
    });
  });
  it('version 1 is the default of all four functions', () => {
    expect(encodeFragDown([setupV1]).toString('hex')).toBe('0211c80032030704030201');
    expect(decodeFragDown(hex('0211c80032030704030201')).commands).toEqual([setupV1]);
    expect(encodeFragUp([{ cid: 'FragSessionDeleteAns', fragIndex: 1, sessionDoesNotExist: true }]).toString('hex')).toBe('0305');
    expect(decodeFragUp(hex('01 0044 05 01')).commands[0]).not.toHaveProperty('micError');
  });
});

describe('TS006 firmware management v1.0.0 (FPort 203)', () => {
  describe('server → node', () => {
    bothWays<FirmwareDown>(
      [
        ['PackageVersionReq (§3.1)', { cid: 'PackageVersionReq' }, '00'],
        ['DevVersionReq (§3.2)', { cid: 'DevVersionReq' }, '01'],
        ['DevRebootTimeReq: GPS seconds LE (§3.3)', { cid: 'DevRebootTimeReq', rebootTime: 1_300_000_000 }, '02 006d7c4d'],
        ['DevRebootTimeReq cancelling', { cid: 'DevRebootTimeReq', rebootTime: 0xffff_ffff }, '02 ffffffff'],
        ['DevRebootCountdownReq: 24 bits LE (§3.4)', { cid: 'DevRebootCountdownReq', countdown: 3600 }, '03 100e00'],
        ['DevUpgradeImageReq (§3.5)', { cid: 'DevUpgradeImageReq' }, '04'],
        ['DevDeleteImageReq (§3.6)', { cid: 'DevDeleteImageReq', firmwareToDeleteVersion: 0x0001_0203 }, '05 03020100'],
      ],
      encodeFirmwareDown,
      decodeFirmwareDown,
    );
  });
  describe('node → server', () => {
    bothWays<FirmwareUp>(
      [
        ['PackageVersionAns: package 4', { cid: 'PackageVersionAns', packageIdentifier: 4, packageVersion: 1 }, '00 04 01'],
        ['DevVersionAns: FW then HW version, uint32 LE (§3.2)', { cid: 'DevVersionAns', fwVersion: 0x0102_0304, hwVersion: 0x0a0b_0c0d }, '01 04030201 0d0c0b0a'],
        ['DevRebootTimeAns (§3.3)', { cid: 'DevRebootTimeAns', rebootTime: 1_300_000_000 }, '02 006d7c4d'],
        ['DevRebootCountdownAns: no countdown', { cid: 'DevRebootCountdownAns', countdown: 0xff_ffff }, '03 ffffff'],
        ['DevUpgradeImageAns: a valid image and its version (§3.5)', { cid: 'DevUpgradeImageAns', status: 3, nextFirmwareVersion: 0x0002_0001 }, '04 03 01000200'],
        ['DevUpgradeImageAns: no image, no version', { cid: 'DevUpgradeImageAns', status: 0, nextFirmwareVersion: null }, '04 00'],
        ['DevUpgradeImageAns: a corrupt image', { cid: 'DevUpgradeImageAns', status: 1, nextFirmwareVersion: null }, '04 01'],
        ['DevDeleteImageAns: ErrorInvalidVersion bit 1 (§3.6)', { cid: 'DevDeleteImageAns', errorNoValidImage: false, errorInvalidVersion: true }, '05 02'],
      ],
      encodeFirmwareUp,
      decodeFirmwareUp,
    );
  });
});

describe('frames that do not decode keep what came before and say why', () => {
  const rows: [string, (buf: Buffer) => AppDecoded<{ cid: string }>, string, string[], RegExp][] = [
    ['TS003 AppTimeReq cut short', decodeClockSyncUp, '01 785634', [], /^AppTimeReq truncated at byte 0: 5 payload bytes needed, 3 left$/],
    ['TS003 an answer then an unknown CID', decodeClockSyncUp, '00 0101 09 00', ['PackageVersionAns'], /^unknown TS003 CID 0x09 at byte 3$/],
    ['TS003 an uplink command read as a downlink', decodeClockSyncDown, '03 01 01 785634', ['ForceDeviceResyncReq'], /AppTimeAns truncated at byte 2/],
    ['TS005 McGroupStatusAns missing a record', decodeMulticastUp, '01 23 00 04030201 01 ddcc', [], /^McGroupStatusAns truncated at byte 0: 11 payload bytes needed, 9 left$/],
    ['TS005 McClassCSessionAns without its status', decodeMulticastUp, '02 01 04', ['McGroupSetupAns'], /^McClassCSessionAns truncated at byte 2: its header is missing$/],
    ['TS005 McClassCSessionAns without TimeToStart', decodeMulticastUp, '04 01 0302', [], /McClassCSessionAns truncated/],
    ['TS005 McClassBSessionReq (not supported)', decodeMulticastDown, '05 00 00000000 00 d2ad84 03', [], /^unknown TS005 CID 0x05 at byte 0$/],
    ['TS004 DataFragment without Index&N', (b) => decodeFragDown(b, 1), '08 2c', [], /^DataFragment truncated/],
    ['TS004 a v2 FragDataBlockReceivedAns to a v1 node', (b) => decodeFragDown(b, 1), '01 05 04 02', ['FragSessionStatusReq'], /^unknown TS004 v1.0.0 CID 0x04 at byte 2$/],
    ['TS004 a v1 FragSessionSetupReq to a v2 node', (b) => decodeFragDown(b, 2), '02 11 c800 32 03 07 04030201', [], /FragSessionSetupReq truncated at byte 0: 16 payload bytes needed, 10 left/],
    ['TS004 a v2 short status answer read as v1', (b) => decodeFragUp(b, 1), '01 04', [], /FragSessionStatusAns truncated/],
    ['TS004 an unknown version', (b) => decodeFragUp(b, 3 as FragVersion), '00 03 01', [], /no version 3/],
    ['TS006 DevUpgradeImageAns without its version', decodeFirmwareUp, '04 03 0100', [], /^DevUpgradeImageAns truncated/],
    ['TS006 an unknown CID', decodeFirmwareDown, '01 06', ['DevVersionReq'], /^unknown TS006 CID 0x06 at byte 1$/],
  ];
  it.each(rows)('%s', (_name, decode, bytes, kept, error) => {
    const decoded = decode(hex(bytes));
    expect(decoded.commands.map((c) => c.cid)).toEqual(kept);
    expect(decoded.error).toMatch(error);
  });

  it('an empty payload is no command and no error', () => {
    for (const decode of [decodeClockSyncUp, decodeMulticastUp, decodeFirmwareUp, (b: Buffer) => decodeFragUp(b, 2)]) {
      expect(decode(Buffer.alloc(0))).toEqual({ commands: [], error: null });
    }
  });

  it('no decoder throws on random bytes (2000 seeded frames each)', () => {
    const random = rng(18);
    const decoders = [decodeClockSyncDown, decodeClockSyncUp, decodeMulticastDown, decodeMulticastUp, decodeFirmwareDown, decodeFirmwareUp]
      .map((d) => (b: Buffer) => d(b) as AppDecoded<unknown>)
      .concat([1, 2].flatMap((v) => [(b: Buffer) => decodeFragDown(b, v as FragVersion), (b: Buffer) => decodeFragUp(b, v as FragVersion)]));
    for (const decode of decoders) {
      for (let i = 0; i < 2000; i++) {
        const frame = Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
        const decoded = decode(frame);
        expect(decoded.error === null || typeof decoded.error === 'string').toBe(true);
      }
    }
  });
});

describe('commands that do not encode throw a RangeError naming the field', () => {
  const setup = { cid: 'McGroupSetupReq', mcGroupId: 0, mcAddr: '01020304', mcKeyEncrypted: KEY, minMcFCnt: 0, maxMcFCnt: 10 } as const;
  const fragSetup = { cid: 'FragSessionSetupReq', fragIndex: 0, mcGroupBitMask: 1, nbFrag: 10, fragSize: 10, fragAlgo: 0, blockAckDelay: 0, padding: 0, descriptor: 0 } as const;
  const rows: [string, () => Buffer, RegExp][] = [
    ['a 5-bit token', () => encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: 0, tokenAns: 16 }]), /^AppTimeAns\.tokenAns: expected an integer 0\.\.15, got 16$/],
    ['a correction beyond int32', () => encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: 2 ** 31, tokenAns: 0 }]), /AppTimeAns\.timeCorrection/],
    ['a 15-byte McKey', () => encodeMulticastDown([{ ...setup, mcKeyEncrypted: KEY.subarray(1) }]), /^McGroupSetupReq\.mcKeyEncrypted: expected 16 bytes, got 15$/],
    ['a McAddr that is no address', () => encodeMulticastDown([{ ...setup, mcAddr: '0102030g' }]), /McGroupSetupReq\.mcAddr: expected 8 hex digits/],
    ['a McGroupID beyond 3', () => encodeMulticastDown([{ cid: 'McGroupDeleteReq', mcGroupId: 4 }]), /McGroupDeleteReq\.mcGroupId/],
    [
      'a frequency not a multiple of 100 Hz',
      () => encodeMulticastDown([{ cid: 'McClassCSessionReq', mcGroupId: 0, sessionTime: 0, timeOut: 0, frequency: 869_525_050, dr: 0 }]),
      /McClassCSessionReq\.frequency/,
    ],
    [
      'a TimeToStart with an error bit',
      () => encodeMulticastUp([{ cid: 'McClassCSessionAns', mcGroupId: 0, drError: true, freqError: false, mcGroupUndefined: false, timeToStart: 5 }]),
      /McClassCSessionAns\.timeToStart/,
    ],
    [
      'records that do not match AnsGroupMask',
      () => encodeMulticastUp([{ cid: 'McGroupStatusAns', nbTotalGroups: 1, ansGroupMask: 0b0010, groups: [{ mcGroupId: 0, mcAddr: '01020304' }] }]),
      /McGroupStatusAns\.groups/,
    ],
    ['v2 fields in a v1 FragSessionSetupReq', () => encodeFragDown([{ ...fragSetup, sessionCnt: 1 }], 1), /FragSessionSetupReq\.sessionCnt: TS004 v2\.0\.0 only/],
    ['a v2 FragSessionSetupReq without its MIC', () => encodeFragDown([{ ...fragSetup, sessionCnt: 1 }], 2), /v2\.0\.0 needs sessionCnt and mic/],
    ['a 3-byte MIC', () => encodeFragDown([{ ...fragSetup, sessionCnt: 1, mic: hex('010203') }], 2), /FragSessionSetupReq\.mic: expected 4 bytes/],
    ['a v2-only command to a v1 node', () => encodeFragDown([{ cid: 'FragDataBlockReceivedAns', fragIndex: 0 }], 1), /TS004 v1\.0\.0: no command "FragDataBlockReceivedAns"/],
    [
      'a DataFragment with another command',
      () => encodeFragDown([{ cid: 'FragSessionStatusReq', fragIndex: 0, participants: true }, { cid: 'DataFragment', fragIndex: 0, n: 1, payload: hex('00') }]),
      /DataFragment: must be the only command/,
    ],
    ['an N beyond 14 bits', () => encodeFragDown([{ cid: 'DataFragment', fragIndex: 0, n: 16_384, payload: hex('00') }]), /DataFragment\.n: expected an integer 0\.\.16383/],
    [
      'a v2 status bit to a v1 server',
      () => encodeFragUp([{ cid: 'FragSessionStatusAns', fragIndex: 0, nbFragReceived: 1, missingFrag: 0, notEnoughMemory: false, micError: true }], 1),
      /FragSessionStatusAns\.micError: TS004 v2\.0\.0 only/,
    ],
    ['a valid image without its version', () => encodeFirmwareUp([{ cid: 'DevUpgradeImageAns', status: 3, nextFirmwareVersion: null }]), /DevUpgradeImageAns\.nextFirmwareVersion/],
    ['a countdown beyond 24 bits', () => encodeFirmwareDown([{ cid: 'DevRebootCountdownReq', countdown: 0x100_0000 }]), /DevRebootCountdownReq\.countdown/],
    ['a command of the other direction', () => encodeFirmwareDown([{ cid: 'DevVersionAns' } as unknown as FirmwareDown]), /TS006: no command "DevVersionAns"/],
  ];
  it.each(rows)('%s', (_name, encode, message) => {
    expect(encode).toThrow(RangeError);
    expect(encode).toThrow(message);
  });
});
