/**
 * Firmware orchestration in devices.yaml (edge/config/firmware.ts, issue 17): the top-level
 * `firmware:` section with its defaults, time windows, signing keys checked like
 * sync.configSigningKeys; a bus's transferShare; a profile's update method with its version point
 * and registers that do not overlap (but an `abort` on the `enter` register, with a value of its own). Every bad value is an issue at its line:col with its path.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config, type FirmwareConfig } from '../../edge/config/index.js';
import { configIssues, withAcmeProfile } from '../helpers/configText.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The issues of a devices.yaml, each as `line:col path: message`. */
const issues = (text: string): string[] => configIssues(text, { env: {} });

const parse = (text: string, dir = '/srv/streetbox'): Config => parseConfig(text, { file: 'devices.yaml', dir, env: {} }).config;

const MIN = 60_000;
const DEFAULTS: FirmwareConfig = {
  signingKeys: [],
  artifacts: { maxBytes: 256 * 1024 * 1024 },
  deploymentTtl: 7 * 24 * 60 * MIN,
  retries: 5,
  lights: { byDay: true, dayMargin: 30 * MIN, windows: [], maxGroupShare: 0.25 },
  traffic: { windows: [] },
  timeouts: { fetch: 60 * MIN, transfer: 30 * MIN, activate: 5 * MIN, verify: 2 * MIN },
  selfUpdate: { releases: null, healthTimeout: 2 * MIN },
};

const ALL_DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

describe('firmware: the top-level section', () => {
  it('left out, it takes every default', () => {
    expect(parse('gateway: { id: gw }\n').firmware).toEqual(DEFAULTS);
    expect(parse('gateway: { id: gw }\nfirmware: {}\n').firmware).toEqual(DEFAULTS);
  });

  it("the shipped devices.yaml writes the defaults out, and validates", () => {
    const text = readFileSync(join(ROOT, 'devices.yaml'), 'utf8');
    expect(text).toMatch(/^firmware:$/m);
    const config = parseConfig(text, { file: 'devices.yaml', dir: ROOT, env: {} }).config;
    expect(config.firmware).toEqual(DEFAULTS);
    expect(config.buses.find((b) => b.id === 'rs485-1')!.transferShare).toBe(0.9);
  });

  it('a full section: durations in ms, sizes in bytes, windows with their days, releases relative to the file', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
    const config = parse(`gateway: { id: gw }
firmware:
  signingKeys:
    - ${raw}
    - |
${pem.trimEnd().replace(/^/gm, '      ')}
  artifacts: { maxBytes: 1GiB }
  deploymentTtl: 2d
  retries: 3
  lights:
    byDay: false
    dayMargin: 1h
    windows: [{ from: '22:00', to: '05:00' }]
    maxGroupShare: 0.5
  traffic:
    windows: [{ from: '02:00', to: '04:30', days: [sat, sun] }]
  timeouts: { fetch: 10m, transfer: 2h, activate: 90s, verify: 1m }
  selfUpdate: { releases: opt/releases, healthTimeout: 30s }
`);
    expect(config.firmware).toEqual({
      signingKeys: [raw, pem],
      artifacts: { maxBytes: 1024 ** 3 },
      deploymentTtl: 2 * 24 * 60 * MIN,
      retries: 3,
      lights: { byDay: false, dayMargin: 60 * MIN, windows: [{ from: '22:00', to: '05:00', days: ALL_DAYS }], maxGroupShare: 0.5 },
      traffic: { windows: [{ from: '02:00', to: '04:30', days: ['sat', 'sun'] }] },
      timeouts: { fetch: 10 * MIN, transfer: 120 * MIN, activate: 90_000, verify: MIN },
      selfUpdate: { releases: '/srv/streetbox/opt/releases', healthTimeout: 30_000 },
    });
  });

  it('every bad value at its line:col, all at once; a key never quoted', () => {
    expect(
      issues(`gateway: { id: gw }
firmware:
  signingKeys: ['nope', "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIA\\n-----END PRIVATE KEY-----"]
  artifacts: { maxBytes: 12XB }
  deploymentTtl: 30d
  retries: 0
  lights: { byDay: maybe, dayMargin: 7h, maxGroupShare: 0 }
  traffic: { windows: [{ from: '25:00', to: '04:00' }, { from: '01:00' }, { from: '01:00', to: '02:00', days: [mon, xyz] }] }
  timeouts: { fetch: 2d, transfer: 1s, activate: 0s, verify: 2h }
  selfUpdate: { releases: '', healthTimeout: 1s, extra: 1 }
  retry: 1
`),
    ).toEqual([
      '3:17 firmware.signingKeys[0]: not a usable key (not shown): expected an ed25519 public key (PEM or base64 of 32 bytes)',
      '3:25 firmware.signingKeys[1]: a private key (not shown; never put one in devices.yaml): expected an ed25519 public key (PEM or base64 of 32 bytes)',
      '4:26 firmware.artifacts.maxBytes: expected a size like "64MB" or "1GiB", got "12XB"',
      '5:18 firmware.deploymentTtl: expected a duration 1m..24d, got "30d"',
      '6:12 firmware.retries: expected an integer 1..100, got 0',
      '7:20 firmware.lights.byDay: expected true or false, got "maybe"',
      '7:38 firmware.lights.dayMargin: expected a duration 0ms..6h, got "7h"',
      '7:57 firmware.lights.maxGroupShare: expected a number greater than 0 and at most 1, got 0',
      '8:32 firmware.traffic.windows[0].from: expected a time "HH:MM" (00:00..23:59), got "25:00"',
      '8:56 firmware.traffic.windows[1]: missing required key "to"',
      '8:117 firmware.traffic.windows[2].days[1]: expected one of mon, tue, wed, thu, fri, sat, sun, got "xyz"',
      '9:22 firmware.timeouts.fetch: expected a duration 1s..1d, got "2d"',
      '9:50 firmware.timeouts.activate: expected a duration 1s..1h, got "0s"',
      '9:62 firmware.timeouts.verify: expected a duration 1s..1h, got "2h"',
      '10:27 firmware.selfUpdate.releases: expected a non-empty string, got ""',
      '10:46 firmware.selfUpdate.healthTimeout: expected a duration 5s..1h, got "1s"',
      '10:50 firmware.selfUpdate.extra: unknown key "extra"; expected one of: releases, healthTimeout',
      '11:3 firmware.retry: unknown key "retry"; expected one of: signingKeys, artifacts, deploymentTtl, retries, lights, traffic, timeouts, selfUpdate',
    ]);
  });

  it('a window from a time to the same time is the whole day; a day is named once', () => {
    expect(
      issues(`gateway: { id: gw }
firmware:
  lights:
    windows:
      - { from: '02:00', to: '02:00' }
      - { from: '23:00', to: '01:00', days: [fri, sat, fri] }
`),
    ).toEqual(['6:56 firmware.lights.windows[1].days[2]: duplicate day "fri" (first at index 0)']);
  });

  it('selfUpdate.releases: an absolute path as written, null by default', () => {
    expect(parse('gateway: { id: gw }\nfirmware: { selfUpdate: { releases: /opt/streetbox } }\n').firmware.selfUpdate.releases).toBe('/opt/streetbox');
    expect(parse('gateway: { id: gw }\nfirmware: { selfUpdate: { releases: null } }\n').firmware.selfUpdate.releases).toBeNull();
  });
});

describe('buses: transferShare', () => {
  const bus = (extra: string): string => `gateway: { id: gw }
buses:
  - { id: rtu, type: serial, path: /dev/ttyUSB0${extra} }
  - { id: net, type: tcp, host: 10.0.0.2${extra} }
`;

  it('defaults to 0.9 on serial and tcp buses; 0.05 and 1 are taken', () => {
    expect(parse(bus('')).buses.map((b) => b.transferShare)).toEqual([0.9, 0.9]);
    expect(parse(bus(', transferShare: 0.05')).buses.map((b) => b.transferShare)).toEqual([0.05, 0.05]);
    expect(parse(bus(', transferShare: 1')).buses.map((b) => b.transferShare)).toEqual([1, 1]);
  });

  it('outside 0.05..1: refused at the key, on either kind of bus', () => {
    expect(issues(bus(', transferShare: 0.04'))).toEqual([
      '3:65 buses[0].transferShare: expected a number 0.05..1, got 0.04',
      '4:58 buses[1].transferShare: expected a number 0.05..1, got 0.04',
    ]);
    expect(issues(bus(', transferShare: 1.5'))).toEqual([
      '3:65 buses[0].transferShare: expected a number 0.05..1, got 1.5',
      '4:58 buses[1].transferShare: expected a number 0.05..1, got 1.5',
    ]);
  });
});

/** A devices.yaml with one controller of a custom profile `acme` whose `firmware:` (and points) are given. */
function withFirmware(firmware: string, points = '      - { name: fw_version, table: input, address: 5, role: firmwareVersion }\n', more = ''): string {
  return withAcmeProfile(`${more}    points:
${points}    firmware:
${firmware}`);
}

const REGISTER_BLOCK = `      method: registerBlock
      enter: { register: 110, value: 0xB007 }
      block: { register: 112, registers: 120 }
      size: 100
      checksum: 102
      commit: { register: 104, value: 0xC0DE }
`;

const FILE_RECORD = `      method: fileRecord
      file: 1
      recordRegisters: 100
      size: 100
      checksum: 102
      commit: { register: 104, value: 0xC0DE }
      rebootS: 60
`;

describe('profiles: the firmware section', () => {
  it('a register-block bootloader: rebootS defaults to 30; hex values are numbers', () => {
    expect(parse(withFirmware(REGISTER_BLOCK)).profiles[0]!.firmware).toEqual({
      method: 'registerBlock',
      enter: { register: 110, value: 0xb007 },
      block: { register: 112, registers: 120 },
      size: 100,
      checksum: 102,
      commit: { register: 104, value: 0xc0de },
      rebootS: 30,
    });
  });

  it('file records: no enter needed; one may be given', () => {
    expect(parse(withFirmware(FILE_RECORD)).profiles[0]!.firmware).toEqual({ method: 'fileRecord', file: 1, recordRegisters: 100, size: 100, checksum: 102, commit: { register: 104, value: 0xc0de }, rebootS: 60 });
    const entered = parse(withFirmware(`${FILE_RECORD}      enter: { register: 110, value: 1 }\n`)).profiles[0]!.firmware;
    expect(entered).toMatchObject({ method: 'fileRecord', enter: { register: 110, value: 1 } });
  });

  it('the limits of the protocol: 122 registers a block (FC 16), 119 a record (FC 21), registers and values 0..65535', () => {
    const edge = REGISTER_BLOCK.replace('registers: 120', 'registers: 122').replace('register: 110, value: 0xB007', 'register: 0, value: 65535');
    expect(issues(withFirmware(edge))).toEqual([]);
    expect(issues(withFirmware(FILE_RECORD.replace('recordRegisters: 100', 'recordRegisters: 119')))).toEqual([]);
  });

  it.each([
    ['registerBlock without enter', REGISTER_BLOCK.replace(/ {6}enter:.*\n/, ''), ['12:7 profiles[0].firmware: missing required key "enter"']],
    ['registerBlock without block', REGISTER_BLOCK.replace(/ {6}block:.*\n/, ''), ['12:7 profiles[0].firmware: missing required key "block"']],
    ['fileRecord without file', FILE_RECORD.replace(/ {6}file:.*\n/, ''), ['12:7 profiles[0].firmware: missing required key "file"']],
    ['fileRecord without recordRegisters', FILE_RECORD.replace(/ {6}recordRegisters:.*\n/, ''), ['12:7 profiles[0].firmware: missing required key "recordRegisters"']],
    [
      "a block on file records (registerBlock's key)",
      `${FILE_RECORD}      block: { register: 112, registers: 120 }\n`,
      ['19:7 profiles[0].firmware.block: unknown key "block"; expected one of: method, enter, file, recordRegisters, size, checksum, commit, abort, rebootS'],
    ],
    ['no method', FILE_RECORD.replace(/ {6}method:.*\n/, ''), ['12:7 profiles[0].firmware: missing required key "method" (one of registerBlock, fileRecord, fuota)']],
    ['an unknown method', FILE_RECORD.replace('fileRecord', 'xmodem'), ['12:15 profiles[0].firmware.method: expected one of registerBlock, fileRecord, fuota, got "xmodem"']],
    ['a block of 123 registers', REGISTER_BLOCK.replace('registers: 120', 'registers: 123'), ['14:42 profiles[0].firmware.block.registers: expected an integer 1..122, got 123']],
    ['a record of 120 registers', FILE_RECORD.replace('recordRegisters: 100', 'recordRegisters: 120'), ['14:24 profiles[0].firmware.recordRegisters: expected an integer 1..119, got 120']],
    ['file 0', FILE_RECORD.replace('file: 1', 'file: 0'), ['13:13 profiles[0].firmware.file: expected an integer 1..65535, got 0']],
    ['a value past 16 bits', REGISTER_BLOCK.replace('0xC0DE', '65536'), ['17:39 profiles[0].firmware.commit.value: expected an integer 0..65535, got 65536']],
    ['a register past 65535', REGISTER_BLOCK.replace('size: 100', 'size: 65536'), ['15:13 profiles[0].firmware.size: expected an integer 0..65535, got 65536']],
    ['rebootS 0', `${FILE_RECORD.replace(/ {6}rebootS:.*\n/, '')}      rebootS: 0\n`, ['18:16 profiles[0].firmware.rebootS: expected an integer 1..600, got 0']],
    ['rebootS 601', FILE_RECORD.replace('rebootS: 60', 'rebootS: 601'), ['18:16 profiles[0].firmware.rebootS: expected an integer 1..600, got 601']],
  ])('%s: at its line:col', (_name, firmware, expected) => {
    expect(issues(withFirmware(firmware))).toEqual(expected);
  });

  it.each([
    ['checksum inside the size pair', REGISTER_BLOCK.replace('checksum: 102', 'checksum: 101'), ['16:17 profiles[0].firmware.checksum: "checksum" (registers 101..102) overlaps "size" (registers 100..101): each takes registers of its own']],
    ['commit on the checksum pair', REGISTER_BLOCK.replace('register: 104, value: 0xC0DE', 'register: 103, value: 0xC0DE'), ['17:27 profiles[0].firmware.commit.register: "commit" (register 103) overlaps "checksum" (registers 102..103): each takes registers of its own']],
    ['enter on the commit register', REGISTER_BLOCK.replace('register: 110, value: 0xB007', 'register: 104, value: 0xB007'), ['13:26 profiles[0].firmware.enter.register: "enter" (register 104) overlaps "commit" (register 104): each takes registers of its own']],
    ["enter inside the block's window", REGISTER_BLOCK.replace('register: 110, value: 0xB007', 'register: 232, value: 0xB007'), ['14:26 profiles[0].firmware.block.register: "block" (registers 112..232) overlaps "enter" (register 232): each takes registers of its own']],
    ['a block past the last register', REGISTER_BLOCK.replace('register: 112, registers: 120', 'register: 65500, registers: 120'), ['14:26 profiles[0].firmware.block.register: "block" takes registers 65500..65620, past the last register (65535)']],
    ['a size pair past the last register', REGISTER_BLOCK.replace('size: 100', 'size: 65535'), ['15:13 profiles[0].firmware.size: "size" takes registers 65535..65536, past the last register (65535)']],
    ['enter on the size pair (file records)', `${FILE_RECORD}      enter: { register: 101, value: 1 }\n`, ['19:26 profiles[0].firmware.enter.register: "enter" (register 101) overlaps "size" (registers 100..101): each takes registers of its own']],
  ])('registers of their own: %s', (_name, firmware, expected) => {
    expect(issues(withFirmware(firmware))).toEqual(expected);
  });

  describe('abort: an optional FC 6 that takes the device out of its bootloader', () => {
    const ABORT = (register: number, value: string): string => `      abort: { register: ${register}, value: ${value} }\n`;

    it('on either method; on the register of enter with another value (a vendor writes 0 where 0xB007 entered)', () => {
      expect(parse(withFirmware(`${REGISTER_BLOCK}${ABORT(110, '0')}`)).profiles[0]!.firmware).toEqual({
        method: 'registerBlock',
        enter: { register: 110, value: 0xb007 },
        block: { register: 112, registers: 120 },
        size: 100,
        checksum: 102,
        commit: { register: 104, value: 0xc0de },
        abort: { register: 110, value: 0 },
        rebootS: 30,
      });
      expect(parse(withFirmware(`${REGISTER_BLOCK}${ABORT(106, '0xDEAD')}`)).profiles[0]!.firmware).toMatchObject({ abort: { register: 106, value: 0xdead } });
      expect(parse(withFirmware(`${FILE_RECORD}${ABORT(106, '1')}`)).profiles[0]!.firmware).toMatchObject({ method: 'fileRecord', abort: { register: 106, value: 1 } });
      const entered = `${FILE_RECORD}      enter: { register: 110, value: 0xB007 }\n${ABORT(110, '0xAB0')}`;
      expect(parse(withFirmware(entered)).profiles[0]!.firmware).toMatchObject({ enter: { register: 110, value: 0xb007 }, abort: { register: 110, value: 0xab0 } });
    });

    it('left out: none (the built-in declarations without it stay as they were)', () => {
      expect(parse(withFirmware(REGISTER_BLOCK)).profiles[0]!.firmware).not.toHaveProperty('abort');
      expect(parse(withFirmware(FILE_RECORD)).profiles[0]!.firmware).not.toHaveProperty('abort');
    });

    it.each([
      ['no value', REGISTER_BLOCK + '      abort: { register: 106 }\n', ['18:14 profiles[0].firmware.abort: missing required key "value"']],
      ['a value past 16 bits', REGISTER_BLOCK + ABORT(106, '65536'), ['18:38 profiles[0].firmware.abort.value: expected an integer 0..65535, got 65536']],
      ['a register past 65535', REGISTER_BLOCK + ABORT(65536, '0'), ['18:26 profiles[0].firmware.abort.register: expected an integer 0..65535, got 65536']],
      ['an unknown key', REGISTER_BLOCK + '      abort: { register: 106, value: 0, delay: 1 }\n', ['18:41 profiles[0].firmware.abort.delay: unknown key "delay"; expected one of: register, value']],
    ])('%s: at its line:col', (_name, firmware, expected) => {
      expect(issues(withFirmware(firmware))).toEqual(expected);
    });

    it.each([
      ['the value enter writes, on its register', REGISTER_BLOCK + ABORT(110, '0xB007'), ['18:38 profiles[0].firmware.abort.value: "abort" writes 0xB007 to register 110, as "enter" does: it needs a value of its own']],
      [
        'the commit register, even with another value',
        REGISTER_BLOCK + ABORT(104, '0xDEAD'),
        ['18:26 profiles[0].firmware.abort.register: "abort" (register 104) overlaps "commit" (register 104): each takes registers of its own ("abort" may share only the register of "enter")'],
      ],
      [
        'the size pair',
        REGISTER_BLOCK + ABORT(101, '0'),
        ['18:26 profiles[0].firmware.abort.register: "abort" (register 101) overlaps "size" (registers 100..101): each takes registers of its own ("abort" may share only the register of "enter")'],
      ],
      [
        'the checksum pair (file records)',
        FILE_RECORD + ABORT(103, '0'),
        ['19:26 profiles[0].firmware.abort.register: "abort" (register 103) overlaps "checksum" (registers 102..103): each takes registers of its own ("abort" may share only the register of "enter")'],
      ],
      [
        "the block's window",
        REGISTER_BLOCK + ABORT(112, '0'),
        ['18:26 profiles[0].firmware.abort.register: "abort" (register 112) overlaps "block" (registers 112..232): each takes registers of its own ("abort" may share only the register of "enter")'],
      ],
      [
        "enter's register when enter overlaps too: each overlap reported, the shared register not",
        REGISTER_BLOCK.replace('register: 110, value: 0xB007', 'register: 104, value: 0xB007') + ABORT(104, '0'),
        [
          '13:26 profiles[0].firmware.enter.register: "enter" (register 104) overlaps "commit" (register 104): each takes registers of its own',
          '18:26 profiles[0].firmware.abort.register: "abort" (register 104) overlaps "commit" (register 104): each takes registers of its own ("abort" may share only the register of "enter")',
        ],
      ],
    ])('registers of its own but enter\'s: %s', (_name, firmware, expected) => {
      expect(issues(withFirmware(firmware))).toEqual(expected);
    });
  });

  it('needs a point of role firmwareVersion, numeric', () => {
    expect(issues(withFirmware(FILE_RECORD, '      - { name: fw_version, table: input, address: 5 }\n'))).toEqual([
      '11:5 profiles[0].firmware: a profile with firmware needs a point of role firmwareVersion (a numeric register the device reports its version in: read before an update and after its reboot)',
    ]);
    expect(issues(withFirmware(FILE_RECORD, '      - { name: fw_version, table: input, address: 5, bit: 3, type: bool, role: firmwareVersion }\n'))).toEqual([
      '10:81 profiles[0].points[0].role: role "firmwareVersion" is a number: expected a register point (int16, uint16, int32, uint32, float32, no bit), got bit 3 of a register',
    ]);
  });

  it('is Modbus only', () => {
    expect(issues(withFirmware(FILE_RECORD, undefined, '    transport: lorawan\n'))).toEqual(['12:5 profiles[0].firmware: an update method "fileRecord" is Modbus; this profile is transport "lorawan"']);
  });

  it('reported beside the issues of the rest of the file and of the profile', () => {
    const text = withFirmware(REGISTER_BLOCK.replace('checksum: 102', 'checksum: 101'), '      - { name: fw_version, table: input, address: 70000, role: firmwareVersion }\n').replace('profile: acme', 'profile: acme, poll: 1y');
    expect(issues(text)).toEqual([
      '5:53 devices[0].poll: expected a duration like "500ms", "5s", "2m", "1h" (100ms..1d), got "1y"',
      '10:52 profiles[0].points[0].address: expected an integer 0..65535, got 70000',
      '16:17 profiles[0].firmware.checksum: "checksum" (registers 101..102) overlaps "size" (registers 100..101): each takes registers of its own',
    ]);
  });
});
