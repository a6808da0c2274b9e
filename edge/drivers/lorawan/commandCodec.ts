/**
 * The framing LoRaWAN's MAC commands and its application-layer packages share, the field helpers
 * their layouts are built from, and the one table-driven encoder and decoder both use. A payload is
 * "CID1 Payload1 CID2 Payload2 …" (LoRaWAN 1.0.3 §5; TS003 v1.0.0 §3, TS004 v1.0.0 §3 / v2.0.0 §3,
 * TS005 v1.0.0 §4, TS006 v1.0.0 §3), each payload's length fixed per CID or (application layer only)
 * told by its own first bytes, multi-octet fields least significant octet first (§4). The tables of
 * layouts are mac/commands.ts and app/{clockSync,multicast,fragmentation,firmwareManagement}.ts.
 *
 * A command carries no length on the wire: the receiver must know each CID's payload size, so an
 * unknown CID ends the decoding (§5, note under Table 5). Decoders therefore never throw: they keep
 * the commands before the first unknown or truncated one and say why they stopped. Encoders check
 * every field against its width on the wire and throw a RangeError naming `Command.field`: the
 * server and the simulated node build commands in range, so a throw is a bug, not bad input from
 * the air.
 */

/** Payload bytes after the CID: fixed, or read from the bytes after the CID (null: too few of them to tell). */
export type PayloadSize = number | ((rest: Buffer) => number | null);

/** The wire form of one command: its CID, its payload size, and how to write and read the payload. */
export interface Layout<T, S extends PayloadSize = PayloadSize> {
  cid: number;
  size: S;
  write(cmd: T): Buffer;
  read(payload: Buffer): T;
}

/** One layout per command of a direction, keyed by the command's name. */
export type Layouts<T extends { cid: string }, S extends PayloadSize = PayloadSize> = { [K in T['cid']]: Layout<Extract<T, { cid: K }>, S> };

/** A byte string that does not decode: the commands before it are kept, the rest is dropped. */
export interface Decoded<T> {
  commands: T[];
  /** null when every byte decoded; else why decoding stopped */
  error: string | null;
}

/** The encoder and decoder of one direction of a protocol, from its table of layouts. */
export interface CommandTable<T extends { cid: string }, S extends PayloadSize = PayloadSize> {
  /** The commands as one payload, in the order given. */
  encode(cmds: readonly T[]): Buffer;
  /** The commands of a payload. An empty buffer is no commands and no error. */
  decode(buf: Buffer): Decoded<T>;
  /** The layout of a command of this direction by name; a RangeError for any other name. */
  layout(name: string): Layout<T, S>;
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

/** LoRaWAN 1.0.3 §5.4, §5.6 (and TS005 v1.0.0 §4.5): a frequency is 24 bits little-endian in units of 100 Hz. */
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
 * A DevAddr (LoRaWAN 1.0.3 §6.1.1; a McAddr too) as the wire and the key derivations carry it:
 * 4 bytes least significant first. The address is written as it is printed, 8 hex digits most
 * significant first ("01020304" is 04 03 02 01 on the wire).
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
// Layouts of a common shape

/** A command without payload (the requests and answers that are just their CID). */
export function bare<C extends string>(name: C, cid: number): Layout<{ cid: C }, number> {
  return { cid, size: 0, write: () => Buffer.alloc(0), read: () => ({ cid: name }) };
}

/**
 * A command whose payload is one 4-bit field in bits 3:0, bits 7:4 RFU (LoRaWAN 1.0.3 §5.3
 * MaxDCycle, §5.7 Del; TS003 §3.3 Period; TS005 §4.2 ReqGroupMask).
 */
export function lowNibble<T extends { cid: string }>(name: T['cid'], cid: number, field: Exclude<keyof T, 'cid'> & string): Layout<T, number> {
  return {
    cid,
    size: 1,
    write: (c) => bytes(checkInt(name, field, c[field] as number, 0, 15)),
    read: (p) => ({ cid: name, [field]: p[0]! & 0x0f }) as T,
  };
}

/**
 * A command whose payload is one Status byte of flags: `fields[i]` is bit i; the bits above are
 * RFU, sent as 0 and ignored on receipt (LoRaWAN 1.0.3 §5.2, §5.4, §5.6; TS006 §3.6).
 */
export function statusBits<T extends { cid: string }>(name: T['cid'], cid: number, fields: readonly Exclude<keyof T, 'cid'>[]): Layout<T, number> {
  return {
    cid,
    size: 1,
    write: (c) => bytes(flags(...fields.map((field) => c[field] === true))),
    read: (p) => ({ cid: name, ...Object.fromEntries(fields.map((field, i) => [field, bit(p[0]!, i)])) }) as T,
  };
}

// ---------------------------------------------------------------------------------------
// Encoding and decoding

type ByCid<T> = ReadonlyMap<number, { name: string; layout: Layout<T> }>;

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

function decodeWith<T>(label: string, byCid: ByCid<T>, buf: Buffer): Decoded<T> {
  const commands: T[] = [];
  let at = 0;
  while (at < buf.length) {
    const cid = buf[at]!;
    const known = byCid.get(cid);
    // §5: the length of an unknown command is unknown, so nothing after it can be read.
    if (!known) return { commands, error: `unknown ${label} CID ${hex(cid)} at byte ${at}` };
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

/**
 * The encoder and decoder of one direction from its layouts; `label` names the protocol (and
 * version) in the errors: "MAC", "TS003", "TS004 v1.0.0".
 */
export function commandTable<T extends { cid: string }, S extends PayloadSize = PayloadSize>(label: string, layouts: Layouts<T, S>): CommandTable<T, S> {
  const layout = (name: string): Layout<T, S> => {
    // Own keys only: an untyped caller's "toString" is no command.
    if (!Object.hasOwn(layouts, name)) throw new RangeError(`${label}: no command "${name}" in this direction`);
    return layouts[name as T['cid']] as Layout<T, S>;
  };
  const byCid: ByCid<T> = new Map(Object.entries<Layout<T, S>>(layouts).map(([name, l]) => [l.cid, { name, layout: l }]));
  return {
    encode: (cmds) =>
      Buffer.concat(
        cmds.flatMap((cmd) => {
          const l = layout(cmd.cid);
          const payload = l.write(cmd);
          if (typeof l.size === 'number' && payload.length !== l.size) {
            throw new RangeError(`${label} ${cmd.cid}: wrote ${payload.length} payload bytes, the layout says ${l.size}`);
          }
          return [Buffer.of(l.cid), payload];
        }),
      ),
    decode: (buf) => decodeWith(label, byCid, buf),
    layout,
  };
}
