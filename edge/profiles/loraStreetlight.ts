/**
 * The `lora-streetlight` profile: the payload codec of LoRaWAN streetlight nodes. The byte
 * layout is documented in lora-streetlight.md beside this file; the points it produces are
 * listed in LORA_STREETLIGHT_POINTS. All multi-byte fields are big-endian.
 */

import type { PointRole, ProfileKind } from './pointRoles.js';
import { DEFAULT_STRATEGY, type ReportStrategy } from '../report/strategy.js';

export const LORA_STREETLIGHT_PROFILE = 'lora-streetlight';
/** what a node with this profile is (edge/profiles/describe.ts): a light, dimmed by downlink commands */
export const LORA_STREETLIGHT_KIND: ProfileKind = 'lighting';
/** uplink status frames */
export const STATUS_FPORT = 2;
/** downlink command frames */
export const COMMAND_FPORT = 10;

export const STATUS_VERSION = 0x01;
export const STATUS_LENGTH = 12;

/** status flags (byte 8) */
export const FLAG_LAMP_ON = 0x01;
export const FLAG_LAMP_FAILURE = 0x02;
export const FLAG_DRIVER_FAULT = 0x04;
export const FLAG_MAINS_FAILURE = 0x08;
export const FLAG_MANUAL_OVERRIDE = 0x10;
export const FLAG_SCHEDULE_ACTIVE = 0x20;

export interface StreetlightStatus {
  /** 0..100 % */
  dimLevel: number;
  /** W, resolution 0.1 W */
  power: number;
  /** kWh since commissioning, resolution 1 Wh */
  energy: number;
  lampOn: boolean;
  lampFailure: boolean;
  driverFault: boolean;
  mainsFailure: boolean;
  manualOverride: boolean;
  /** 0 = none */
  scheduleId: number;
  /** °C of the driver */
  temperature: number;
}

export interface PointSpec {
  name: keyof StreetlightStatus;
  unit: string | null;
  description: string;
  /** what the point means (edge/profiles/pointRoles.ts), as a Modbus profile's points declare it */
  role?: PointRole;
  /** when a value is stored, where its role's default does not fit (edge/report/defaults.ts), as a Modbus profile's `report:` */
  report?: ReportStrategy;
}

/**
 * The heartbeat of a LoRaWAN node's points (edge/report/defaults.ts): uplinks come minutes apart,
 * and the filter stores a heartbeat once the next uplink could come after it (since the last
 * stored value + 2.5 × the mean uplink interval > heartbeat), so a 15 min heartbeat would store nearly
 * every uplink of a node sending every 5–10 minutes. An hour is several uplink intervals.
 */
export const LORAWAN_HEARTBEAT = 60 * 60_000;

export const LORA_STREETLIGHT_POINTS: readonly PointSpec[] = [
  { name: 'dimLevel', unit: '%', description: 'dim level the driver is at', role: 'actualLightLevel' },
  { name: 'power', unit: 'W', description: 'active power', role: 'activePower' },
  { name: 'energy', unit: 'kWh', description: 'energy since commissioning', role: 'activeEnergy' },
  { name: 'lampOn', unit: null, description: 'lamp is lit' },
  { name: 'lampFailure', unit: null, description: 'lamp failure (open circuit / no current while on)', role: 'lampFailure' },
  { name: 'driverFault', unit: null, description: 'driver fault or over-temperature' },
  { name: 'mainsFailure', unit: null, description: 'mains supply out of range' },
  { name: 'manualOverride', unit: null, description: 'local manual override active' },
  { name: 'scheduleId', unit: null, description: 'active on-node schedule (0 = none)' },
  // whole degrees: a deadband of 1 (not the role's 0.5) passes a flicker between two of them
  { name: 'temperature', unit: '°C', description: 'driver temperature', role: 'temperature', report: { ...DEFAULT_STRATEGY, deadband: 1, heartbeat: LORAWAN_HEARTBEAT } },
];

/**
 * The radio side of a node, stored as points beside the codec's (edge/drivers/lorawan/readings.ts):
 * per uplink rssi, snr, dr when known, gateways when more than one forwarder heard it, txPower (dBm)
 * once the node ACKed a LinkADRReq; per DevStatusAns (LoRaWAN 1.0.3 §5.6) battery (%), externalPower
 * and margin (dB).
 */
export const RADIO_POINTS = ['rssi', 'snr', 'dr', 'gateways', 'txPower', 'battery', 'externalPower', 'margin'] as const;
export type RadioPoint = (typeof RADIO_POINTS)[number];

/** The unit each radio point is stored with (null: a count or a flag). */
export const RADIO_UNITS: Readonly<Record<RadioPoint, string | null>> = { rssi: 'dBm', snr: 'dB', dr: null, gateways: null, txPower: 'dBm', battery: '%', externalPower: null, margin: 'dB' };

export class CodecError extends Error {}

/** Decodes an FPort 2 status frame; throws CodecError on a wrong length or version. */
export function decodeStatus(buf: Buffer): StreetlightStatus {
  if (buf.length < STATUS_LENGTH) throw new CodecError(`status frame of ${buf.length} bytes (expected ${STATUS_LENGTH})`);
  if (buf[0] !== STATUS_VERSION) throw new CodecError(`status frame version ${buf[0]} (expected ${STATUS_VERSION})`);
  const dimLevel = buf[1]!;
  if (dimLevel > 100) throw new CodecError(`dim level ${dimLevel} out of 0..100`);
  const flags = buf[8]!;
  return {
    dimLevel,
    power: buf.readUInt16BE(2) / 10,
    energy: buf.readUInt32BE(4) / 1000,
    lampOn: (flags & FLAG_LAMP_ON) !== 0,
    lampFailure: (flags & FLAG_LAMP_FAILURE) !== 0,
    driverFault: (flags & FLAG_DRIVER_FAULT) !== 0,
    mainsFailure: (flags & FLAG_MAINS_FAILURE) !== 0,
    manualOverride: (flags & FLAG_MANUAL_OVERRIDE) !== 0,
    scheduleId: buf[9]!,
    temperature: buf.readInt8(10),
    // byte 11: reserved
  };
}

/** Encodes a status frame (the simulated nodes use it). */
export function encodeStatus(s: StreetlightStatus): Buffer {
  const b = Buffer.alloc(STATUS_LENGTH);
  b[0] = STATUS_VERSION;
  b[1] = clampInt(s.dimLevel, 0, 100);
  b.writeUInt16BE(clampInt(s.power * 10, 0, 0xffff), 2);
  b.writeUInt32BE(clampInt(s.energy * 1000, 0, 0xffffffff), 4);
  b[8] =
    (s.lampOn ? FLAG_LAMP_ON : 0) |
    (s.lampFailure ? FLAG_LAMP_FAILURE : 0) |
    (s.driverFault ? FLAG_DRIVER_FAULT : 0) |
    (s.mainsFailure ? FLAG_MAINS_FAILURE : 0) |
    (s.manualOverride ? FLAG_MANUAL_OVERRIDE : 0) |
    (s.scheduleId > 0 ? FLAG_SCHEDULE_ACTIVE : 0);
  b[9] = clampInt(s.scheduleId, 0, 255);
  b.writeInt8(clampInt(s.temperature, -128, 127), 10);
  return b;
}

export type StreetlightCommand =
  | { action: 'dim'; level: number }
  | { action: 'on' }
  | { action: 'off' }
  | { action: 'schedule'; scheduleId: number };

export const CMD_DIM = 0x01;
export const CMD_ON = 0x02;
export const CMD_OFF = 0x03;
export const CMD_SCHEDULE = 0x04;

/** Encodes an FPort 10 command. */
export function encodeCommand(c: StreetlightCommand): Buffer {
  switch (c.action) {
    case 'dim':
      if (!Number.isFinite(c.level) || c.level < 0 || c.level > 100) throw new CodecError(`"level" is not in 0..100: ${c.level}`);
      return Buffer.from([CMD_DIM, Math.round(c.level)]);
    case 'on':
      return Buffer.from([CMD_ON]);
    case 'off':
      return Buffer.from([CMD_OFF]);
    case 'schedule':
      if (!Number.isInteger(c.scheduleId) || c.scheduleId < 0 || c.scheduleId > 255) throw new CodecError(`"scheduleId" is not in 0..255: ${c.scheduleId}`);
      return Buffer.from([CMD_SCHEDULE, c.scheduleId]);
  }
}

/** Decodes an FPort 10 command (the simulated nodes use it). */
export function decodeCommand(buf: Buffer): StreetlightCommand {
  switch (buf[0]) {
    case CMD_DIM:
      if (buf.length !== 2 || buf[1]! > 100) throw new CodecError('dim command: expected 2 bytes, level 0..100');
      return { action: 'dim', level: buf[1]! };
    case CMD_ON:
      return { action: 'on' };
    case CMD_OFF:
      return { action: 'off' };
    case CMD_SCHEDULE:
      if (buf.length !== 2) throw new CodecError('schedule command: expected 2 bytes');
      return { action: 'schedule', scheduleId: buf[1]! };
    default:
      throw new CodecError(`unknown command 0x${(buf[0] ?? 0).toString(16)}`);
  }
}

/** Does a reported status show the command as applied (the read-back that verifies it)? */
export function statusConfirms(c: StreetlightCommand, s: StreetlightStatus): boolean {
  switch (c.action) {
    case 'dim':
      return s.dimLevel === Math.round(c.level) && (c.level === 0 ? !s.lampOn : s.lampOn);
    case 'on':
      return s.lampOn;
    case 'off':
      return !s.lampOn;
    case 'schedule':
      return s.scheduleId === c.scheduleId;
  }
}

function clampInt(v: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.round(v)));
}
