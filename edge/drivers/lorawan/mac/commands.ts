/**
 * MAC command codec (LoRaWAN 1.0.3 §5, and TS001-1.0.4 §5 where it differs), both directions:
 * the network server encodes downlinks and decodes uplinks, the simulated node does the reverse.
 * Pure: bytes in, commands out, no state. Multi-byte fields are little-endian (§4: multi-octet
 * fields are sent least significant octet first). Types and CIDs are `mac/types.ts`.
 *
 * A MAC command has no length on the wire: the receiver must know each CID's payload size, so an
 * unknown CID ends the decoding (§5, note under Table 5). Decoders therefore keep the commands
 * before the first unknown or truncated one and say why they stopped. Encoders check every field
 * against its bit width and throw a RangeError naming `Command.field`: the handler only builds
 * commands in range, so a throw is a bug, not bad input from the air.
 */
import { CID, FOPTS_MAX, type MacDecoded, type MacDownlink, type MacDownlinkCid, type MacUplink } from './types.js';

/** The wire form of one command: its CID and fixed payload size (bytes after the CID). */
interface Layout<T> {
  cid: number;
  size: number;
  write(cmd: T, payload: Buffer): void;
  read(payload: Buffer): T;
}

/** One layout per command of a direction, keyed by the command's name. */
type Layouts<T extends { cid: string }> = { [K in T['cid']]: Layout<Extract<T, { cid: K }>> };

// ---------------------------------------------------------------------------------------
// Field helpers

/** Throws unless `value` is an integer in min..max; returns it. */
function checkInt(command: string, field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${command}.${field}: expected an integer ${min}..${max}, got ${value}`);
  }
  return value;
}

/** Two 4-bit fields in one byte: `hi` in bits 7:4, `lo` in bits 3:0. */
function nibbles(command: string, hiField: string, hi: number, loField: string, lo: number): number {
  return (checkInt(command, hiField, hi, 0, 15) << 4) | checkInt(command, loField, lo, 0, 15);
}

/** §5.4, §5.6: a frequency is 24 bits little-endian in units of 100 Hz. */
const FREQ_UNIT_HZ = 100;
const FREQ_MAX_HZ = 0xff_ffff * FREQ_UNIT_HZ;

function writeFrequency(command: string, hz: number, payload: Buffer, offset: number): void {
  if (!Number.isInteger(hz) || hz < 0 || hz > FREQ_MAX_HZ || hz % FREQ_UNIT_HZ !== 0) {
    throw new RangeError(`${command}.frequency: expected a multiple of ${FREQ_UNIT_HZ} Hz in 0..${FREQ_MAX_HZ}, got ${hz}`);
  }
  payload.writeUIntLE(hz / FREQ_UNIT_HZ, offset, 3);
}

function readFrequency(payload: Buffer, offset: number): number {
  return payload.readUIntLE(offset, 3) * FREQ_UNIT_HZ;
}

/** §5.5: DevStatusAns margin is a 6-bit two's complement value in bits 5:0 (bits 7:6 RFU). */
function writeMargin6(margin: number): number {
  return checkInt('DevStatusAns', 'margin', margin, -32, 31) & 0x3f;
}

function readMargin6(byte: number): number {
  const raw = byte & 0x3f;
  return raw >= 32 ? raw - 64 : raw;
}

/** §5.9: DeviceTimeAns is GPS seconds (uint32 LE) then the fraction of a second in 1/256 s. */
const GPS_SECONDS_MAX = 0xffff_ffff;

function writeGpsTime(gpsMs: number, payload: Buffer): void {
  if (!Number.isFinite(gpsMs) || gpsMs < 0 || gpsMs >= (GPS_SECONDS_MAX + 1) * 1000) {
    throw new RangeError(`DeviceTimeAns.gpsMs: expected 0..${GPS_SECONDS_MAX} s of GPS time in ms, got ${gpsMs}`);
  }
  const seconds = Math.floor(gpsMs / 1000);
  payload.writeUInt32LE(seconds, 0);
  // Truncated, not rounded: rounding could give 256/256, a carry into the seconds.
  payload[4] = Math.floor(((gpsMs - seconds * 1000) * 256) / 1000);
}

/** The exact instant the bytes say: a 1/256 s step is 3.90625 ms, so the result may carry a fraction of a ms. */
function readGpsTime(payload: Buffer): number {
  return payload.readUInt32LE(0) * 1000 + (payload[4]! * 1000) / 256;
}

/** A command without payload (the requests and answers that are just their CID). */
function bare<C extends string>(name: C, cid: number): Layout<{ cid: C }> {
  return { cid, size: 0, write: () => undefined, read: () => ({ cid: name }) };
}

/**
 * An answer whose payload is one Status byte of acknowledgements: `fields[i]` is bit i; the bits
 * above are RFU, sent as 0 and ignored on receipt.
 */
function statusBits<T extends { cid: string }>(name: T['cid'], cid: number, fields: readonly Exclude<keyof T, 'cid'>[]): Layout<T> {
  return {
    cid,
    size: 1,
    write: (c, p) => {
      p[0] = fields.reduce((byte, field, i) => (c[field] === true ? byte | (1 << i) : byte), 0);
    },
    read: (p) => ({ cid: name, ...Object.fromEntries(fields.map((field, i) => [field, ((p[0]! >> i) & 1) === 1])) }) as T,
  };
}

/** A request whose payload is one 4-bit field in bits 3:0, bits 7:4 RFU (§5.3 MaxDCycle, §5.7 Del). */
function lowNibble<T extends { cid: string }>(name: T['cid'], cid: number, field: Exclude<keyof T, 'cid'> & string): Layout<T> {
  return {
    cid,
    size: 1,
    write: (c, p) => {
      p[0] = checkInt(name, field, c[field] as number, 0, 15);
    },
    read: (p) => ({ cid: name, [field]: p[0]! & 0x0f }) as T,
  };
}

// ---------------------------------------------------------------------------------------
// Network → device

const DOWNLINK: Layouts<MacDownlink> = {
  // §5.1: Margin (dB above the demodulation floor, 0..254; 255 reserved), GwCnt
  LinkCheckAns: {
    cid: CID.LinkCheck,
    size: 2,
    write: (c, p) => {
      p[0] = checkInt('LinkCheckAns', 'margin', c.margin, 0, 254);
      p[1] = checkInt('LinkCheckAns', 'gwCnt', c.gwCnt, 0, 255);
    },
    read: (p) => ({ cid: 'LinkCheckAns', margin: p[0]!, gwCnt: p[1]! }),
  },
  // §5.2: DataRate_TXPower (7:4 DataRate, 3:0 TXPower), ChMask (16 bits LE, bit 0 = channel 1),
  // Redundancy (7 RFU, 6:4 ChMaskCntl, 3:0 NbTrans). 1.0.4 §5.2: DataRate or TXPower 15 and
  // NbTrans 0 mean "keep the current value"; they are valid on the wire.
  LinkADRReq: {
    cid: CID.LinkADR,
    size: 4,
    write: (c, p) => {
      p[0] = nibbles('LinkADRReq', 'dataRate', c.dataRate, 'txPower', c.txPower);
      p.writeUInt16LE(checkInt('LinkADRReq', 'chMask', c.chMask, 0, 0xffff), 1);
      p[3] = (checkInt('LinkADRReq', 'chMaskCntl', c.chMaskCntl, 0, 7) << 4) | checkInt('LinkADRReq', 'nbTrans', c.nbTrans, 0, 15);
    },
    read: (p) => ({
      cid: 'LinkADRReq',
      dataRate: p[0]! >> 4,
      txPower: p[0]! & 0x0f,
      chMask: p.readUInt16LE(1),
      chMaskCntl: (p[3]! >> 4) & 0x07,
      nbTrans: p[3]! & 0x0f,
    }),
  },
  // §5.3: DutyCyclePL (7:4 RFU, 3:0 MaxDCycle); aggregated duty cycle 1/2^MaxDCycle
  DutyCycleReq: lowNibble('DutyCycleReq', CID.DutyCycle, 'maxDCycle'),
  // §5.4: DLSettings (7 RFU, 6:4 RX1DRoffset, 3:0 RX2DataRate), Frequency (24 bits LE × 100 Hz)
  RXParamSetupReq: {
    cid: CID.RXParamSetup,
    size: 4,
    write: (c, p) => {
      p[0] = (checkInt('RXParamSetupReq', 'rx1DrOffset', c.rx1DrOffset, 0, 7) << 4) | checkInt('RXParamSetupReq', 'rx2DataRate', c.rx2DataRate, 0, 15);
      writeFrequency('RXParamSetupReq', c.frequency, p, 1);
    },
    read: (p) => ({ cid: 'RXParamSetupReq', rx1DrOffset: (p[0]! >> 4) & 0x07, rx2DataRate: p[0]! & 0x0f, frequency: readFrequency(p, 1) }),
  },
  // §5.5
  DevStatusReq: bare('DevStatusReq', CID.DevStatus),
  // §5.6: ChIndex, Freq (24 bits LE × 100 Hz; 0 disables the channel), DrRange (7:4 MaxDR, 3:0 MinDR)
  NewChannelReq: {
    cid: CID.NewChannel,
    size: 5,
    write: (c, p) => {
      p[0] = checkInt('NewChannelReq', 'chIndex', c.chIndex, 0, 255);
      writeFrequency('NewChannelReq', c.frequency, p, 1);
      p[4] = nibbles('NewChannelReq', 'maxDr', c.maxDr, 'minDr', c.minDr);
    },
    read: (p) => ({ cid: 'NewChannelReq', chIndex: p[0]!, frequency: readFrequency(p, 1), minDr: p[4]! & 0x0f, maxDr: p[4]! >> 4 }),
  },
  // §5.7: Settings (7:4 RFU, 3:0 Del; 0 means 1 s)
  RXTimingSetupReq: lowNibble('RXTimingSetupReq', CID.RXTimingSetup, 'delay'),
  // §5.9: GPS seconds (uint32 LE), fractional second (1/256 s)
  DeviceTimeAns: { cid: CID.DeviceTime, size: 5, write: (c, p) => writeGpsTime(c.gpsMs, p), read: (p) => ({ cid: 'DeviceTimeAns', gpsMs: readGpsTime(p) }) },
};

// ---------------------------------------------------------------------------------------
// Device → network

const UPLINK: Layouts<MacUplink> = {
  // §5.1
  LinkCheckReq: bare('LinkCheckReq', CID.LinkCheck),
  // §5.2 Table 7: Status (7:3 RFU, 2 Power ACK, 1 Data rate ACK, 0 Channel mask ACK)
  LinkADRAns: statusBits('LinkADRAns', CID.LinkADR, ['channelMaskAck', 'dataRateAck', 'powerAck']),
  // §5.3
  DutyCycleAns: bare('DutyCycleAns', CID.DutyCycle),
  // §5.4 Table 8: Status (7:3 RFU, 2 RX1DRoffset ACK, 1 RX2 Data rate ACK, 0 Channel ACK)
  RXParamSetupAns: statusBits('RXParamSetupAns', CID.RXParamSetup, ['channelAck', 'rx2DataRateAck', 'rx1DrOffsetAck']),
  // §5.5: Battery (0 external power, 1..254, 255 unknown), Margin (7:6 RFU, 5:0 signed −32..31 dB)
  DevStatusAns: {
    cid: CID.DevStatus,
    size: 2,
    write: (c, p) => {
      p[0] = checkInt('DevStatusAns', 'battery', c.battery, 0, 255);
      p[1] = writeMargin6(c.margin);
    },
    read: (p) => ({ cid: 'DevStatusAns', battery: p[0]!, margin: readMargin6(p[1]!) }),
  },
  // §5.6: Status (7:2 RFU, 1 Data rate range ok, 0 Channel frequency ok)
  NewChannelAns: statusBits('NewChannelAns', CID.NewChannel, ['channelFreqOk', 'dataRateOk']),
  // §5.7
  RXTimingSetupAns: bare('RXTimingSetupAns', CID.RXTimingSetup),
  // §5.9
  DeviceTimeReq: bare('DeviceTimeReq', CID.DeviceTime),
};

// ---------------------------------------------------------------------------------------
// Encoding and decoding, the same for both directions

function layoutOf<T extends { cid: string }>(layouts: Layouts<T>, name: string): Layout<T> {
  // Own keys only: an untyped caller's "toString" is no command.
  if (!Object.hasOwn(layouts, name)) throw new RangeError(`unknown MAC command "${name}"`);
  return layouts[name as T['cid']] as Layout<T>;
}

function encodeWith<T extends { cid: string }>(layouts: Layouts<T>, cmds: readonly T[]): Buffer {
  return Buffer.concat(
    cmds.map((cmd) => {
      const layout = layoutOf(layouts, cmd.cid);
      const bytes = Buffer.alloc(1 + layout.size);
      bytes[0] = layout.cid;
      layout.write(cmd, bytes.subarray(1));
      return bytes;
    }),
  );
}

type ByCid<T> = ReadonlyMap<number, { name: string; layout: Layout<T> }>;

function indexByCid<T extends { cid: string }>(layouts: Layouts<T>): ByCid<T> {
  return new Map(Object.entries<Layout<T>>(layouts).map(([name, layout]) => [layout.cid, { name, layout }]));
}

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

function decodeWith<T>(byCid: ByCid<T>, buf: Buffer): MacDecoded<T> {
  const commands: T[] = [];
  let at = 0;
  while (at < buf.length) {
    const cid = buf[at]!;
    const known = byCid.get(cid);
    // §5: the length of an unknown command is unknown, so nothing after it can be read.
    if (!known) return { commands, error: `unknown CID ${hex(cid)} at byte ${at}` };
    const end = at + 1 + known.layout.size;
    if (end > buf.length) {
      return { commands, error: `${known.name} truncated at byte ${at}: ${known.layout.size} payload bytes needed, ${buf.length - at - 1} left` };
    }
    commands.push(known.layout.read(buf.subarray(at + 1, end)));
    at = end;
  }
  return { commands, error: null };
}

const DOWNLINK_BY_CID = indexByCid(DOWNLINK);
const UPLINK_BY_CID = indexByCid(UPLINK);

/** Downlink commands as FOpts / FPort 0 bytes, in the order given. */
export function encodeMacDownlink(cmds: readonly MacDownlink[]): Buffer {
  return encodeWith(DOWNLINK, cmds);
}

/** The simulated node's side. An empty buffer is no commands and no error. */
export function decodeMacDownlink(buf: Buffer): MacDecoded<MacDownlink> {
  return decodeWith(DOWNLINK_BY_CID, buf);
}

/** The simulated node's side. */
export function encodeMacUplink(cmds: readonly MacUplink[]): Buffer {
  return encodeWith(UPLINK, cmds);
}

/** The commands of an uplink's FOpts or FPort 0 payload. An empty buffer is no commands and no error. */
export function decodeMacUplink(buf: Buffer): MacDecoded<MacUplink> {
  return decodeWith(UPLINK_BY_CID, buf);
}

/** Bytes a downlink command takes on the wire, CID included. */
export function macDownlinkLength(cid: MacDownlinkCid): number {
  return 1 + layoutOf(DOWNLINK, cid).size;
}

/**
 * Splits downlink commands into those that go in this frame's FOpts (§4.3.1.6: at most 15 bytes)
 * and those that wait. First fit, in order: a command that does not fit stays in `rest` and a
 * smaller one after it may still go; both lists keep the order given. The handler orders commands
 * that depend on each other (a NewChannelReq before the LinkADRReq that enables the channel).
 */
export function fitFOpts(cmds: readonly MacDownlink[], budget: number = FOPTS_MAX): { fit: MacDownlink[]; rest: MacDownlink[] } {
  checkInt('fitFOpts', 'budget', budget, 0, Number.MAX_SAFE_INTEGER);
  const fit: MacDownlink[] = [];
  const rest: MacDownlink[] = [];
  let left = budget;
  for (const cmd of cmds) {
    const length = macDownlinkLength(cmd.cid);
    if (length <= left) {
      fit.push(cmd);
      left -= length;
    } else {
      rest.push(cmd);
    }
  }
  return { fit, rest };
}
