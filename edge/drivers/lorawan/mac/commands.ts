/**
 * MAC command codec (LoRaWAN 1.0.3 §5, and TS001-1.0.4 §5 where it differs), both directions:
 * the network server encodes downlinks and decodes uplinks, the simulated node does the reverse.
 * Pure: bytes in, commands out, no state. Types and CIDs are `mac/types.ts`; this file is the
 * table of layouts per direction, and `../commandCodec.ts` (shared with the application-layer
 * packages) frames them: decoders keep the commands before the first unknown or truncated one and
 * say why they stopped (§5: a MAC command has no length on the wire), encoders throw a RangeError
 * naming `Command.field` (the handler only builds commands in range, so a throw is a bug).
 */
import { bare, bytes, checkInt, commandTable, frequencyField, lowNibble, readFrequency, statusBits, uintLE } from '../commandCodec.js';
import { CID, FOPTS_MAX, type MacDecoded, type MacDownlink, type MacDownlinkCid, type MacUplink } from './types.js';

/** Two 4-bit fields in one byte: `hi` in bits 7:4, `lo` in bits 3:0. */
function nibbles(command: string, hiField: string, hi: number, loField: string, lo: number): number {
  return (checkInt(command, hiField, hi, 0, 15) << 4) | checkInt(command, loField, lo, 0, 15);
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

function writeGpsTime(gpsMs: number): Buffer {
  if (!Number.isFinite(gpsMs) || gpsMs < 0 || gpsMs >= (GPS_SECONDS_MAX + 1) * 1000) {
    throw new RangeError(`DeviceTimeAns.gpsMs: expected 0..${GPS_SECONDS_MAX} s of GPS time in ms, got ${gpsMs}`);
  }
  const seconds = Math.floor(gpsMs / 1000);
  // Truncated, not rounded: rounding could give 256/256, a carry into the seconds.
  return bytes(uintLE('DeviceTimeAns', 'gpsMs', seconds, 4), Math.floor(((gpsMs - seconds * 1000) * 256) / 1000));
}

/** The exact instant the bytes say: a 1/256 s step is 3.90625 ms, so the result may carry a fraction of a ms. */
function readGpsTime(payload: Buffer): number {
  return payload.readUInt32LE(0) * 1000 + (payload[4]! * 1000) / 256;
}

// ---------------------------------------------------------------------------------------
// Network → device

const DOWNLINK = commandTable<MacDownlink, number>('MAC', {
  // §5.1: Margin (dB above the demodulation floor, 0..254; 255 reserved), GwCnt
  LinkCheckAns: {
    cid: CID.LinkCheck,
    size: 2,
    write: (c) => bytes(checkInt('LinkCheckAns', 'margin', c.margin, 0, 254), checkInt('LinkCheckAns', 'gwCnt', c.gwCnt, 0, 255)),
    read: (p) => ({ cid: 'LinkCheckAns', margin: p[0]!, gwCnt: p[1]! }),
  },
  // §5.2: DataRate_TXPower (7:4 DataRate, 3:0 TXPower), ChMask (16 bits LE, bit 0 = channel 1),
  // Redundancy (7 RFU, 6:4 ChMaskCntl, 3:0 NbTrans). 1.0.4 §5.2: DataRate or TXPower 15 and
  // NbTrans 0 mean "keep the current value"; they are valid on the wire.
  LinkADRReq: {
    cid: CID.LinkADR,
    size: 4,
    write: (c) =>
      bytes(
        nibbles('LinkADRReq', 'dataRate', c.dataRate, 'txPower', c.txPower),
        uintLE('LinkADRReq', 'chMask', c.chMask, 2),
        (checkInt('LinkADRReq', 'chMaskCntl', c.chMaskCntl, 0, 7) << 4) | checkInt('LinkADRReq', 'nbTrans', c.nbTrans, 0, 15),
      ),
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
    write: (c) =>
      bytes(
        (checkInt('RXParamSetupReq', 'rx1DrOffset', c.rx1DrOffset, 0, 7) << 4) | checkInt('RXParamSetupReq', 'rx2DataRate', c.rx2DataRate, 0, 15),
        frequencyField('RXParamSetupReq', c.frequency),
      ),
    read: (p) => ({ cid: 'RXParamSetupReq', rx1DrOffset: (p[0]! >> 4) & 0x07, rx2DataRate: p[0]! & 0x0f, frequency: readFrequency(p, 1) }),
  },
  // §5.5
  DevStatusReq: bare('DevStatusReq', CID.DevStatus),
  // §5.6: ChIndex, Freq (24 bits LE × 100 Hz; 0 disables the channel), DrRange (7:4 MaxDR, 3:0 MinDR)
  NewChannelReq: {
    cid: CID.NewChannel,
    size: 5,
    write: (c) => bytes(checkInt('NewChannelReq', 'chIndex', c.chIndex, 0, 255), frequencyField('NewChannelReq', c.frequency), nibbles('NewChannelReq', 'maxDr', c.maxDr, 'minDr', c.minDr)),
    read: (p) => ({ cid: 'NewChannelReq', chIndex: p[0]!, frequency: readFrequency(p, 1), minDr: p[4]! & 0x0f, maxDr: p[4]! >> 4 }),
  },
  // §5.7: Settings (7:4 RFU, 3:0 Del; 0 means 1 s)
  RXTimingSetupReq: lowNibble('RXTimingSetupReq', CID.RXTimingSetup, 'delay'),
  // §5.9: GPS seconds (uint32 LE), fractional second (1/256 s)
  DeviceTimeAns: { cid: CID.DeviceTime, size: 5, write: (c) => writeGpsTime(c.gpsMs), read: (p) => ({ cid: 'DeviceTimeAns', gpsMs: readGpsTime(p) }) },
});

// ---------------------------------------------------------------------------------------
// Device → network

const UPLINK = commandTable<MacUplink, number>('MAC', {
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
    write: (c) => bytes(checkInt('DevStatusAns', 'battery', c.battery, 0, 255), writeMargin6(c.margin)),
    read: (p) => ({ cid: 'DevStatusAns', battery: p[0]!, margin: readMargin6(p[1]!) }),
  },
  // §5.6: Status (7:2 RFU, 1 Data rate range ok, 0 Channel frequency ok)
  NewChannelAns: statusBits('NewChannelAns', CID.NewChannel, ['channelFreqOk', 'dataRateOk']),
  // §5.7
  RXTimingSetupAns: bare('RXTimingSetupAns', CID.RXTimingSetup),
  // §5.9
  DeviceTimeReq: bare('DeviceTimeReq', CID.DeviceTime),
});

// ---------------------------------------------------------------------------------------
// The API

/** Downlink commands as FOpts / FPort 0 bytes, in the order given. */
export function encodeMacDownlink(cmds: readonly MacDownlink[]): Buffer {
  return DOWNLINK.encode(cmds);
}

/** The simulated node's side. An empty buffer is no commands and no error. */
export function decodeMacDownlink(buf: Buffer): MacDecoded<MacDownlink> {
  return DOWNLINK.decode(buf);
}

/** The simulated node's side. */
export function encodeMacUplink(cmds: readonly MacUplink[]): Buffer {
  return UPLINK.encode(cmds);
}

/** The commands of an uplink's FOpts or FPort 0 payload. An empty buffer is no commands and no error. */
export function decodeMacUplink(buf: Buffer): MacDecoded<MacUplink> {
  return UPLINK.decode(buf);
}

/** Bytes a downlink command takes on the wire, CID included. */
export function macDownlinkLength(cid: MacDownlinkCid): number {
  return 1 + DOWNLINK.layout(cid).size;
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
