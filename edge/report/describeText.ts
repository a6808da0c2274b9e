/**
 * `streetbox validate --report`: every point of a device with the strategy it follows and where
 * that comes from (README "Report strategies"), for a technician checking a devices.yaml.
 */
import { durationText } from '../config/scalars.js';
import type { Config } from '../config/schema.js';
import { describeReport } from './policy.js';
import type { ReportStrategy } from './strategy.js';

/** A strategy in devices.yaml's own words: `change beyond 2 %, heartbeat 15m`. */
export function strategyText(s: ReportStrategy): string {
  const parts: string[] = [];
  if (s.on === 'poll') parts.push('every poll');
  else if (s.deadband > 0) parts.push(`change beyond ${s.deadband}`);
  else if (s.deadbandPercent > 0) parts.push(`change beyond ${s.deadbandPercent} %`);
  else parts.push('every change');
  if (s.minInterval > 0) parts.push(`at most every ${durationText(s.minInterval)}`);
  if (s.heartbeat > 0) parts.push(`heartbeat ${durationText(s.heartbeat)}`);
  return parts.join(', ');
}

/** The table of one device, or of every device when `deviceId` is undefined; null: no such device. */
export function reportTable(config: Config, deviceId?: string): string | null {
  const ids = deviceId === undefined ? config.devices.map((d) => d.id) : [deviceId];
  if (deviceId !== undefined && !config.devices.some((d) => d.id === deviceId)) return null;
  const lines: string[] = [];
  for (const id of ids) {
    const rows = describeReport(config, id).map((p) => [p.point, strategyText(p.strategy), p.note === undefined ? p.from : `${p.from}: ${p.note}`]);
    const width = (i: number): number => Math.max(...rows.map((r) => (r[i] ?? '').length), 0);
    const w0 = width(0);
    const w1 = width(1);
    lines.push(`${id}:`);
    for (const [point, strategy, from] of rows) lines.push(`  ${(point ?? '').padEnd(w0)}  ${(strategy ?? '').padEnd(w1)}  (${from})`);
  }
  return `${lines.join('\n')}\n`;
}
