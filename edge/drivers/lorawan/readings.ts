/**
 * Readings the driver stores (DESIGN.md data model): the status points of the
 * lora-streetlight codec, the radio quality of each accepted uplink (best of all forwarders
 * that heard it), and the counters of each forwarder's `stat` object (PROTOCOL.TXT §4).
 */
import { LORA_STREETLIGHT_POINTS, type RadioPoint, type StreetlightStatus } from '../../profiles/loraStreetlight.js';
import type { NewReading } from '../../store/types.js';
import type { Stat } from './semtech/packet.js';
import type { RxMeta } from './uplink/dedup.js';

export function statusReadings(device: string, status: StreetlightStatus, ts: number): NewReading[] {
  return LORA_STREETLIGHT_POINTS.map((p) => ({ ts, device, point: p.name, value: status[p.name], unit: p.unit, quality: 'good' }));
}

/** The radio points of one uplink (RADIO_POINTS: dr when known, gateways when more than one forwarder heard it). */
export function radioReadings(device: string, ts: number, best: RxMeta, dr: number | null, copies: number): NewReading[] {
  const row = (point: RadioPoint, value: number, unit: string | null): NewReading => ({ ts, device, point, value, unit, quality: 'good' });
  const rows = [row('rssi', best.rssi, 'dBm'), row('snr', best.snr, 'dB')];
  if (dr !== null) rows.push(row('dr', dr, null));
  if (copies > 1) rows.push(row('gateways', copies, null));
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
