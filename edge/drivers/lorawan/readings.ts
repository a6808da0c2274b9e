/**
 * Readings the driver stores (DESIGN.md data model): the status points of the
 * lora-streetlight codec, the radio quality of each accepted uplink (best of all forwarders
 * that heard it, and the TX power the node runs at once known), what a node reports in
 * DevStatusAns (battery, margin), and the counters of each forwarder's `stat` object (PROTOCOL.TXT §4).
 */
import { LORA_STREETLIGHT_POINTS, RADIO_UNITS, type RadioPoint, type StreetlightStatus } from '../../profiles/loraStreetlight.js';
import type { NewReading } from '../../store/types.js';
import type { Stat } from './semtech/packet.js';
import type { RxMeta } from './uplink/dedup.js';

export function statusReadings(device: string, status: StreetlightStatus, ts: number): NewReading[] {
  return LORA_STREETLIGHT_POINTS.map((p) => ({ ts, device, point: p.name, value: status[p.name], unit: p.unit, quality: 'good' }));
}

function radioRow(device: string, ts: number, point: RadioPoint, value: number | boolean): NewReading {
  const unit = RADIO_UNITS[point];
  return { ts, device, point, value, unit, quality: 'good' };
}

/** The radio points of one uplink (RADIO_POINTS: dr when known, gateways when more than one forwarder heard it, txPower once known). */
export function radioReadings(device: string, ts: number, best: RxMeta, dr: number | null, copies: number, txPowerDbm: number | null = null): NewReading[] {
  const rows = [radioRow(device, ts, 'rssi', best.rssi), radioRow(device, ts, 'snr', best.snr)];
  if (dr !== null) rows.push(radioRow(device, ts, 'dr', dr));
  if (copies > 1) rows.push(radioRow(device, ts, 'gateways', copies));
  if (txPowerDbm !== null) rows.push(radioRow(device, ts, 'txPower', txPowerDbm));
  return rows;
}

/** LoRaWAN 1.0.3 §5.6: battery 1 (minimum) .. 254 (maximum) as a percentage, one decimal. */
function batteryPercent(level: number): number {
  return Math.round(((level - 1) / 253) * 1000) / 10;
}

/**
 * A DevStatusAns battery level (LoRaWAN 1.0.3 §5.6): 1..254 as 0–100 % on battery, 0 as external
 * power, 255 (the node cannot measure) as nothing known.
 */
export function decodeBattery(level: number | null): { battery: number | null; externalPower: boolean | null } {
  if (level === null || level === 255) return { battery: null, externalPower: null };
  return level === 0 ? { battery: null, externalPower: true } : { battery: batteryPercent(level), externalPower: false };
}

/** A DevStatusAns as readings: battery (%) and externalPower as decodeBattery says, the demodulation margin in dB. */
export function devStatusReadings(device: string, battery: number, margin: number, ts: number): NewReading[] {
  const rows = [radioRow(device, ts, 'margin', margin)];
  const b = decodeBattery(battery);
  if (b.battery !== null) rows.push(radioRow(device, ts, 'battery', b.battery));
  if (b.externalPower !== null) rows.push(radioRow(device, ts, 'externalPower', b.externalPower));
  return rows;
}

const STAT_UNITS: Record<string, string | null> = { rxnb: null, rxok: null, rxfw: null, ackr: '%', dwnb: null, txnb: null, lati: '°', long: '°', alti: 'm' };

/** A forwarder's stat as readings of the device `gw-<gateway EUI>`. */
export function gatewayReadings(gatewayEui: string, stat: Stat, ts: number): NewReading[] {
  const device = `gw-${gatewayEui}`;
  const rows: NewReading[] = [];
  for (const [k, unit] of Object.entries(STAT_UNITS)) {
    const v = (stat as Record<string, unknown>)[k];
    if (typeof v === 'number' && Number.isFinite(v)) rows.push({ ts, device, point: k, value: v, unit, quality: 'good' });
  }
  return rows;
}
