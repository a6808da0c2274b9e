/**
 * Readings the driver stores (DESIGN.md data model): the status points of the
 * lora-streetlight codec, the radio quality of each accepted uplink (best of all forwarders
 * that heard it), and the counters of each forwarder's `stat` object (PROTOCOL.TXT §4).
 */
import { LORA_STREETLIGHT_POINTS, type StreetlightStatus } from '../../profiles/loraStreetlight.js';
import type { NewReading } from '../../store/types.js';
import type { Stat } from './semtech/packet.js';
import type { RxMeta } from './uplink/dedup.js';

export function statusReadings(device: string, status: StreetlightStatus, ts: number): NewReading[] {
  return LORA_STREETLIGHT_POINTS.map((p) => ({ ts, device, point: p.name, value: status[p.name], unit: p.unit, quality: 'good' }));
}

export function radioReadings(device: string, ts: number, best: RxMeta, dr: number | null, copies: number): NewReading[] {
  const rows: NewReading[] = [
    { ts, device, point: 'rssi', value: best.rssi, unit: 'dBm', quality: 'good' },
    { ts, device, point: 'snr', value: best.snr, unit: 'dB', quality: 'good' },
  ];
  if (dr !== null) rows.push({ ts, device, point: 'dr', value: dr, unit: null, quality: 'good' });
  if (copies > 1) rows.push({ ts, device, point: 'gateways', value: copies, unit: null, quality: 'good' });
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
