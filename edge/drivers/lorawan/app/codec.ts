/**
 * The command framing the four application-layer packages share, and the field helpers their
 * layouts are built from. Every package frames its FRMPayload the same way (TS003 v1.0.0 §3,
 * TS004 v1.0.0 §3 / v2.0.0 §3, TS005 v1.0.0 §4, TS006 v1.0.0 §3): "Command1 Command1Payload
 * Command2 …", each payload's length fixed or determined by its own first bytes, multi-octet
 * fields least significant octet first. A package file (clockSync.ts, multicast.ts,
 * fragmentation.ts, firmwareManagement.ts) is a table of layouts per direction; `packageCodec`
 * turns the two tables into its encoders and decoders.
 *
 * Encoders check each field against its width on the wire and throw a RangeError naming
 * `Command.field` (as mac/commands.ts does): the server and the simulated node build commands in
 * range, so a throw is a bug, not bad input from the air. Decoders never throw: they keep the
 * commands before the first one that does not decode and say why (the length of an unknown CID is
 * unknown, so nothing after it can be read).
 */
import type { AppDecoded } from './types.js';

/** The wire form of one command: its CID, its payload size, and how to write and read the payload. */
export interface Layout<T> {
  cid: number;
  /** payload bytes after the CID: fixed, or read from the bytes after the CID (null: too few of them to tell) */
  size: number | ((rest: Buffer) => number | null);
  write(cmd: T): Buffer;
  read(payload: Buffer): T;
}

/** One layout per command of a direction, keyed by the command's name. */
export type Layouts<T extends { cid: string }> = { [K in T['cid']]: Layout<Extract<T, { cid: K }>> };

export interface PackageCodec<Down, Up> {
  encodeDown(cmds: readonly Down[]): Buffer;
  decodeDown(buf: Buffer): AppDecoded<Down>;
  encodeUp(cmds: readonly Up[]): Buffer;
  decodeUp(buf: Buffer): AppDecoded<Up>;
}

// ---------------------------------------------------------------------------------------
// Field helpers

/** Throws unless `value` is an integer in min..max; returns it. */
export function checkInt(command: string, field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${command}.${field}: expected an integer ${min}..${max}, got ${value}`);
  }
  return value;
}

/** An unsigned little-endian field of `width` bytes (1..6). */
export function uintLE(command: string, field: string, value: number, width: number): Buffer {
  const out = Buffer.alloc(width);
  out.writeUIntLE(checkInt(command, field, value, 0, 2 ** (8 * width) - 1), 0, width);
  return out;
}

/** A two's complement little-endian field of `width` bytes (1..6). */
export function intLE(command: string, field: string, value: number, width: number): Buffer {
  const half = 2 ** (8 * width - 1);
  const out = Buffer.alloc(width);
  out.writeIntLE(checkInt(command, field, value, -half, half - 1), 0, width);
  return out;
}

/** A field of exactly `length` bytes carried as is (keys, MICs). */
export function fixedBytes(command: string, field: string, value: Buffer, length: number): Buffer {
  if (!Buffer.isBuffer(value) || value.length !== length) {
    throw new RangeError(`${command}.${field}: expected ${length} bytes, got ${Buffer.isBuffer(value) ? value.length : typeof value}`);
  }
  return Buffer.from(value);
}

/** A payload from its parts: a number is one byte (checked by the caller), a Buffer is copied. */
export function bytes(...parts: (number | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'number' ? Buffer.of(part) : part)));
}

/** Status bits: flags[i] is bit i (bits above are RFU, sent as 0). */
export function flags(...bits: boolean[]): number {
  return bits.reduce((byte, set, i) => (set ? byte | (1 << i) : byte), 0);
}

export function bit(byte: number, i: number): boolean {
  return ((byte >> i) & 1) === 1;
}

/** Set bits of a byte: how many records a group mask announces. */
export function bitCount(byte: number): number {
  let count = 0;
  for (let b = byte; b !== 0; b &= b - 1) count++;
  return count;
}

/** TS005 v1.0.0 §4.5 (as LoRaWAN 1.0.3 §5.4): a frequency is 24 bits little-endian in units of 100 Hz. */
const FREQ_UNIT_HZ = 100;
const FREQ_MAX_HZ = 0xff_ffff * FREQ_UNIT_HZ;

export function frequencyField(command: string, hz: number): Buffer {
  if (!Number.isInteger(hz) || hz < 0 || hz > FREQ_MAX_HZ || hz % FREQ_UNIT_HZ !== 0) {
    throw new RangeError(`${command}.frequency: expected a multiple of ${FREQ_UNIT_HZ} Hz in 0..${FREQ_MAX_HZ}, got ${hz}`);
  }
  return uintLE(command, 'frequency', hz / FREQ_UNIT_HZ, 3);
}

export function readFrequency(payload: Buffer, offset: number): number {
  return payload.readUIntLE(offset, 3) * FREQ_UNIT_HZ;
}

const DEV_ADDR_HEX = /^[0-9a-f]{8}$/i;

/**
 * A McAddr (a DevAddr, LoRaWAN 1.0.3 §6.1.1) as the wire and the key derivations carry it: 4 bytes
 * least significant first. The address is written as it is printed, 8 hex digits most significant
 * first ("01020304" is 04 03 02 01 on the wire).
 */
export function devAddrLE(command: string, field: string, hex: string): Buffer {
  if (typeof hex !== 'string' || !DEV_ADDR_HEX.test(hex)) throw new RangeError(`${command}.${field}: expected 8 hex digits, got ${String(hex)}`);
  return Buffer.from(hex, 'hex').reverse();
}

/** The 8 lowercase hex digits of the address stored little-endian at `offset`. */
export function readDevAddrLE(payload: Buffer, offset: number): string {
  return Buffer.from(payload.subarray(offset, offset + 4)).reverse().toString('hex');
}

// ---------------------------------------------------------------------------------------
// Layouts every package has

/** A command without payload (the requests that are just their CID). */
export function bare<C extends string>(name: C, cid: number): Layout<{ cid: C }> {
  return { cid, size: 0, write: () => Buffer.alloc(0), read: () => ({ cid: name }) };
}

/** CID 0x00 of every package (TS003 §3.1, TS004 §3.1, TS005 §4.1, TS006 §3.1). */
export const packageVersionReq = bare('PackageVersionReq', 0x00);

/** PackageIdentifier, PackageVersion: one byte each. */
export const packageVersionAns: Layout<{ cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }> = {
  cid: 0x00,
  size: 2,
  write: (c) => bytes(checkInt('PackageVersionAns', 'packageIdentifier', c.packageIdentifier, 0, 255), checkInt('PackageVersionAns', 'packageVersion', c.packageVersion, 0, 255)),
  read: (p) => ({ cid: 'PackageVersionAns', packageIdentifier: p[0]!, packageVersion: p[1]! }),
};

// ---------------------------------------------------------------------------------------
// Encoding and decoding

function layoutOf<T extends { cid: string }>(pkg: string, layouts: Layouts<T>, name: string): Layout<T> {
  // Own keys only: an untyped caller's "toString" is no command.
  if (!Object.hasOwn(layouts, name)) throw new RangeError(`${pkg}: no command "${name}" in this direction`);
  return layouts[name as T['cid']] as Layout<T>;
}

function encodeWith<T extends { cid: string }>(pkg: string, layouts: Layouts<T>, cmds: readonly T[]): Buffer {
  return Buffer.concat(
    cmds.flatMap((cmd) => {
      const layout = layoutOf(pkg, layouts, cmd.cid);
      const payload = layout.write(cmd);
      if (typeof layout.size === 'number' && payload.length !== layout.size) {
        throw new RangeError(`${pkg} ${cmd.cid}: wrote ${payload.length} payload bytes, the layout says ${layout.size}`);
      }
      return [Buffer.of(layout.cid), payload];
    }),
  );
}

type ByCid<T> = ReadonlyMap<number, { name: string; layout: Layout<T> }>;

function indexByCid<T extends { cid: string }>(layouts: Layouts<T>): ByCid<T> {
  return new Map(Object.entries<Layout<T>>(layouts).map(([name, layout]) => [layout.cid, { name, layout }]));
}

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

function decodeWith<T>(pkg: string, byCid: ByCid<T>, buf: Buffer): AppDecoded<T> {
  const commands: T[] = [];
  let at = 0;
  while (at < buf.length) {
    const cid = buf[at]!;
    const known = byCid.get(cid);
    if (!known) return { commands, error: `unknown ${pkg} CID ${hex(cid)} at byte ${at}` };
    const rest = buf.subarray(at + 1);
    const size = typeof known.layout.size === 'number' ? known.layout.size : known.layout.size(rest);
    if (size === null || size > rest.length) {
      const need = size === null ? 'its header is missing' : `${size} payload bytes needed, ${rest.length} left`;
      return { commands, error: `${known.name} truncated at byte ${at}: ${need}` };
    }
    commands.push(known.layout.read(rest.subarray(0, size)));
    at += 1 + size;
  }
  return { commands, error: null };
}

/** The encoders and decoders of one package (and version) from its two layout tables. */
export function packageCodec<Down extends { cid: string }, Up extends { cid: string }>(pkg: string, down: Layouts<Down>, up: Layouts<Up>): PackageCodec<Down, Up> {
  const downByCid = indexByCid(down);
  const upByCid = indexByCid(up);
  return {
    encodeDown: (cmds) => encodeWith(pkg, down, cmds),
    decodeDown: (buf) => decodeWith(pkg, downByCid, buf),
    encodeUp: (cmds) => encodeWith(pkg, up, cmds),
    decodeUp: (buf) => decodeWith(pkg, upByCid, buf),
  };
}
