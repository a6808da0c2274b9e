/**
 * Firmware orchestration in devices.yaml (issue 17, README "Firmware orchestration"): the
 * top-level `firmware:` section (who signs manifests, where artifacts live, the city-safety
 * windows, the stage timeouts, the gateway's own releases) and a profile's `firmware:` section,
 * how a Modbus controller takes an image, as data:
 *
 *   registerBlock: FC 6 `enter` (the bootloader), per block ONE FC 16 at `block.register` carrying
 *     [block index, window of `block.registers` registers]
 *   fileRecord: per block FC 21 at file `file` + i / blocksPerFile, record (i % blocksPerFile) ×
 *     recordRegisters, then FC 20 read-back (MODBUS Application Protocol V1.1b3 §6.14, §6.15)
 *   both: FC 16 `size` (uint32, high word first), FC 3 `checksum` (the device's CRC-32), FC 6 `commit`,
 *     then the device is silent for up to `rebootS` seconds and answers with its new version;
 *     optionally FC 6 `abort`: a job that ends before its commit takes the device out of its
 *     bootloader (it drops what it received and runs its old firmware).
 *
 * and how a LoRaWAN node takes one, with no register at all:
 *
 *   fuota: LoRa Alliance FUOTA (edge/firmware/methods/fuota): TS005 multicast group, TS004 fragments
 *     with forward error correction, TS006 reboot and DevVersionAns (the node's version: no point).
 *
 * The checks a profile's section needs beyond its own fields (its version point, registers that
 * overlap, a method of its transport) are `profileFirmwareIssues`, run by the profile schema like
 * the roles' checks. No imports from schema.ts: it imports from here.
 */
import { z } from 'zod';
import type { RolePoint } from '../profiles/pointRoles.js';
import { byteSize, durationIn } from './scalars.js';
import { signingKey } from './signingKeys.js';

// ---------------------------------------------------------------------------------------
// A profile's update method

/** A holding register (protocol address, zero-based). */
const register = z.number().int().min(0).max(65535);
/** A register's value (uint16; YAML takes 0xB007). */
const registerValue = z.number().int().min(0).max(65535);

/** One FC 6 write: the value that makes the device do something. */
const registerWrite = z.strictObject({
  register: register.describe('the holding register written (FC 6; protocol address, zero-based)'),
  value: registerValue.describe('the value written (uint16; YAML takes `0xB007`)'),
});

/** What both methods end with: size, checksum, commit, the reboot. */
const finish = {
  size: register.describe('a holding register pair (uint32, high word first): the image size in bytes, written (FC 16) before the commit'),
  checksum: register.describe('a holding register pair (read with FC 3): the device\'s CRC-32 (IEEE) of the bytes [0, size) it received, which must equal the image\'s before the commit'),
  commit: registerWrite.describe('FC 6: the device checks the image and reboots into it'),
  abort: registerWrite
    .optional()
    .describe(
      'FC 6: what a job that ends before its commit writes, so that the device leaves its bootloader, drops the blocks it received and runs its old firmware (one already in its application answers it all the same); may write another value to `enter`\'s register, takes no other',
    ),
  rebootS: z.number().int().min(1).max(600).default(30).describe('how long the device may take to answer again after the commit, in seconds'),
};

/** MODBUS Application Protocol V1.1b3 §6.12: FC 16 writes at most 123 registers; one is the block index. */
export const MAX_BLOCK_REGISTERS = 122;
/** MODBUS Application Protocol V1.1b3 §6.14: one FC 21 sub-request in a 253-byte PDU carries at most 119 registers. */
export const MAX_RECORD_REGISTERS = 119;
/** MODBUS Application Protocol V1.1b3 §6.14: record numbers 0..9999 in a file. */
export const FILE_RECORDS = 10_000;

export const registerBlockSchema = z.strictObject({
  method: z.literal('registerBlock').describe('a register-block bootloader: FC 6 `enter`, then per block ONE FC 16 at `block.register`'),
  enter: registerWrite.describe('FC 6: enter the bootloader (again: a device already in it keeps the blocks it received)'),
  block: z
    .strictObject({
      register: register.describe('the holding register of the block index; the window of `registers` registers follows it'),
      registers: z.number().int().min(1).max(MAX_BLOCK_REGISTERS).describe('registers per block; block bytes = 2 × registers'),
    })
    .describe('per block ONE FC 16 at `register`: [block index, window of `registers` registers]'),
  ...finish,
});

export const fileRecordSchema = z.strictObject({
  method: z.literal('fileRecord').describe('Modbus file records: per block FC 21, read back with FC 20 (10000 records a file)'),
  enter: registerWrite.optional().describe('FC 6 before the first block, when the device needs one'),
  file: z.number().int().min(1).max(65535).describe('the first file number; block i goes to file + floor(i / floor(10000 / recordRegisters))'),
  recordRegisters: z
    .number()
    .int()
    .min(1)
    .max(MAX_RECORD_REGISTERS)
    .describe('registers per block (one record of this length); block bytes = 2 × recordRegisters'),
  ...finish,
});

/**
 * A LoRaWAN node's FUOTA (TS003–TS006): nothing to declare but the method; how the image goes
 * (data rate, frequency, fragmentation version, reboot delay) is the gateway's `lorawan.fuota`.
 */
export const fuotaFirmwareSchema = z.strictObject({
  method: z.literal('fuota').describe('LoRaWAN FUOTA (TS003–TS006), for `transport: lorawan`: how the image goes is the gateway\'s `lorawan.fuota`'),
});

/** A profile's `firmware:` section. */
export const profileFirmwareSchema = z.discriminatedUnion('method', [registerBlockSchema, fileRecordSchema, fuotaFirmwareSchema]);

/** A Modbus controller's bootloader, as its profile declares it (registerBlock or fileRecord). */
export type ProfileFirmware = Exclude<z.infer<typeof profileFirmwareSchema>, { method: 'fuota' }>;
export type FuotaFirmware = z.infer<typeof fuotaFirmwareSchema>;
/** What a profile's `firmware:` section may hold: a Modbus bootloader or FUOTA. */
export type FirmwareDecl = ProfileFirmware | FuotaFirmware;
export type FirmwareMethod = FirmwareDecl['method'];
/** The methods a LoRaWAN profile may declare; every other one is Modbus. */
export const LORAWAN_FIRMWARE_METHODS: readonly FirmwareMethod[] = ['fuota'];

/** The shape of a profile this file reads (the config's ProfileConfig, input or output side). */
export interface FirmwareProfile {
  transport?: 'modbus' | 'lorawan' | undefined;
  points: readonly Pick<RolePoint, 'role'>[];
  firmware?: FirmwareDecl | undefined;
}

export interface FirmwareIssue {
  /** relative to the profile: ['firmware', 'checksum'] */
  path: (string | number)[];
  message: string;
}

interface RegisterSpan {
  key: string;
  path: string[];
  from: number;
  to: number;
  /** FC 6 writes: the value that does it */
  value?: number;
}

/** The holding registers a declaration writes or reads, each with the key that names it. */
function registerSpans(fw: ProfileFirmware): RegisterSpan[] {
  const write = (key: 'enter' | 'commit' | 'abort', w: { register: number; value: number }): RegisterSpan => ({
    key,
    path: [key, 'register'],
    from: w.register,
    to: w.register,
    value: w.value,
  });
  const spans: RegisterSpan[] = [
    { key: 'size', path: ['size'], from: fw.size, to: fw.size + 1 },
    { key: 'checksum', path: ['checksum'], from: fw.checksum, to: fw.checksum + 1 },
    write('commit', fw.commit),
  ];
  if (fw.enter !== undefined) spans.push(write('enter', fw.enter));
  // the block index and its window
  if (fw.method === 'registerBlock') spans.push({ key: 'block', path: ['block', 'register'], from: fw.block.register, to: fw.block.register + fw.block.registers });
  if (fw.abort !== undefined) spans.push(write('abort', fw.abort));
  return spans;
}

/** `abort` on `enter`'s register: the one overlap a bootloader's registers may have (with a value of its own, checked apart). */
const sharedEnter = (a: RegisterSpan, b: RegisterSpan): boolean => [a.key, b.key].sort().join() === 'abort,enter' && a.from === b.from;

const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;
const span = (from: number, to: number): string => (from === to ? `register ${from}` : `registers ${from}..${to}`);

/**
 * The issues of a profile's firmware section beyond its fields: a method of the profile's
 * transport (fuota for LoRaWAN, which reports its version in DevVersionAns: nothing more to check);
 * for Modbus a point of role firmwareVersion (read before and after an update: done means the device
 * reports the new version), and registers that fit the table and do not overlap each other (but
 * `abort`, which may write another value to `enter`'s register).
 */
export function profileFirmwareIssues(p: FirmwareProfile): FirmwareIssue[] {
  const fw = p.firmware;
  if (fw === undefined) return [];
  const transport = p.transport ?? 'modbus';
  const lorawanMethod = LORAWAN_FIRMWARE_METHODS.includes(fw.method);
  if (lorawanMethod !== (transport === 'lorawan')) {
    const wants = lorawanMethod ? 'LoRaWAN (transport: lorawan)' : 'Modbus';
    return [{ path: ['firmware'], message: `an update method "${fw.method}" is ${wants}; this profile is transport "${transport}"` }];
  }
  if (fw.method === 'fuota') return [];
  const issues: FirmwareIssue[] = [];
  if (!p.points.some((pt) => pt.role === 'firmwareVersion')) {
    issues.push({
      path: ['firmware'],
      message: 'a profile with firmware needs a point of role firmwareVersion (a numeric register the device reports its version in: read before an update and after its reboot)',
    });
  }
  const spans = registerSpans(fw);
  spans.forEach((s, i) => {
    const at = ['firmware', ...s.path];
    if (s.to > 65535) {
      issues.push({ path: at, message: `"${s.key}" takes ${span(s.from, s.to)}, past the last register (65535)` });
      return;
    }
    const others = spans.slice(0, i).filter((o) => o.from <= s.to && s.from <= o.to && o.to <= 65535 && !sharedEnter(o, s));
    if (spans.slice(0, i).some((o) => sharedEnter(o, s) && o.value === s.value)) {
      issues.push({ path: ['firmware', 'abort', 'value'], message: `"abort" writes ${hex(s.value ?? 0)} to register ${s.from}, as "enter" does: it needs a value of its own` });
    }
    if (others.length > 0) {
      const what = others.map((o) => `"${o.key}" (${span(o.from, o.to)})`).join(' and ');
      const but = s.key === 'abort' ? ' ("abort" may share only the register of "enter")' : '';
      issues.push({ path: at, message: `"${s.key}" (${span(s.from, s.to)}) overlaps ${what}: each takes registers of its own${but}` });
    }
  });
  return issues;
}

// ---------------------------------------------------------------------------------------
// The top-level section

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'expected a time "HH:MM" (00:00..23:59)' });

/**
 * A window of local time (the gateway's time zone) in which updates may run: `from` up to `to`;
 * a window past midnight (22:00 to 05:00) belongs to the day it starts on; `from` = `to` is the whole
 * day (00:00 to 00:00: any time). `days` left out: every day.
 */
export const timeWindowSchema = z
  .strictObject({
    from: clockTime.describe('the window\'s start, `HH:MM` local time (gateway.timezone)'),
    to: clockTime.describe('its end, `HH:MM`: past midnight when before `from` (the window belongs to the day it starts on); `from` = `to` is the whole day'),
    days: z
      .array(z.enum(WEEKDAYS))
      .min(1)
      .default([...WEEKDAYS])
      .describe('the days it starts on (`mon` … `sun`); omitted: every day'),
  })
  .superRefine((w, ctx) => {
    w.days.forEach((d, i) => {
      const first = w.days.indexOf(d);
      if (first < i) ctx.addIssue({ code: 'custom', path: ['days', i], message: `duplicate day "${d}" (first at index ${first})` });
    });
  });

export type TimeWindowConfig = z.infer<typeof timeWindowSchema>;

const windows = z.array(timeWindowSchema).default([]);

export const firmwareSchema = z.strictObject({
  signingKeys: z
    .array(signingKey)
    .default([])
    .describe('ed25519 public keys (PEM SPKI or base64 of the raw 32 bytes) that sign deployment manifests; none: every manifest is refused'),
  artifacts: z
    .strictObject({
      maxBytes: byteSize.default(256 * 1024 * 1024).describe('the quota of the artifacts, kept in <dir of storage.path>/artifacts'),
    })
    .prefault({})
    .describe('the firmware images, kept beside the buffer'),
  deploymentTtl: durationIn('1m', '24d')
    .default(7 * 86_400_000)
    .describe('the default deadline of a deployment (one that names none): jobs not started by then end `E_FW_EXPIRED`'),
  retries: z.number().int().min(1).max(100).default(5).describe('attempts per block and per step before a job fails'),
  lights: z
    .strictObject({
      byDay: z.boolean().default(true).describe('lights update by day: from sunrise + `dayMargin` to sunset − `dayMargin` at gateway.lat / gateway.lon'),
      dayMargin: durationIn('0ms', '6h').default(30 * 60_000).describe('the margin after sunrise and before sunset of `byDay`'),
      windows: windows.describe('more windows (gateway.timezone) in which lights may update'),
      maxGroupShare: z
        .number()
        .gt(0)
        .max(1)
        .default(0.25)
        .describe('at most this share of a group\'s lights out of service at once, over all deployments (at least one light)'),
    })
    .prefault({})
    .describe('when streetlights may update; a technician\'s override on a light holds it'),
  traffic: z
    .strictObject({
      windows: windows.describe('the windows (gateway.timezone) in which traffic controllers may update; none: never'),
    })
    .prefault({})
    .describe('when traffic controllers (with `allowCommands: true`, no program request active) may update'),
  timeouts: z
    .strictObject({
      fetch: durationIn('1s', '1d').default(3_600_000).describe('fetching and checking the artifact'),
      transfer: durationIn('1s', '1d').default(30 * 60_000).describe('sending the image to a device'),
      activate: durationIn('1s', '1h').default(5 * 60_000).describe('size, checksum and commit, on top of the profile\'s `rebootS`'),
      verify: durationIn('1s', '1h')
        .default(2 * 60_000)
        .describe('the device answering with the new version and passing its functional probe, on top of `rebootS` (the gateway itself: of `selfUpdate.healthTimeout`)'),
    })
    .prefault({})
    .describe('how long each stage of a job may take before it fails (FUOTA nodes: as their session\'s plan says)'),
  selfUpdate: z
    .strictObject({
      releases: z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe('the directory with releases/<version>/ and a `current` link (deploy/install.sh --releases); null: the gateway cannot be a target'),
      healthTimeout: durationIn('5s', '1h').default(2 * 60_000).describe('the new release must report healthy within this, else the previous one runs again'),
    })
    .prefault({})
    .describe('the gateway\'s own releases, side by side; see "Updating the gateway itself"'),
});

export type FirmwareConfig = z.infer<typeof firmwareSchema>;
