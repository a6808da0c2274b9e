/**
 * The in-memory side of the `point` and `latest` tables: (device, point, unit) → point id for
 * the writer, and the latest value of every point for `latest()` / `latestAll()`: the last one
 * committed, or polled after it and not stored (`observe`). Lookups are two Map gets and no
 * allocation; the latest value is updated in place.
 */
import { decodeValue, encodeFlags, qualityOf, storedValue } from './codec.js';
import type { LatestValue, NewReading } from './types.js';

export interface PointEntry {
  readonly id: number;
  readonly device: string;
  readonly point: string;
  readonly unit: string | null;
  /** the same (device, point) with another unit: rare, chained */
  alt: PointEntry | null;
  /** seq of the latest committed reading of this point (0: none yet) */
  seq: number;
  /** ts, value (plain form, codec.ts) and flags of the latest value: that reading's, or one polled after it (observe) */
  ts: number;
  value: number | string | null;
  flags: number;
  /** the latest seq written to the `latest` table */
  persistedSeq: number;
}

export class PointRegistry {
  private readonly byDevice = new Map<string, Map<string, PointEntry>>();
  private readonly byId: (PointEntry | undefined)[] = [];
  private maxId = 0;

  get nextId(): number {
    return this.maxId + 1;
  }

  find(device: string, point: string, unit: string | null): PointEntry | undefined {
    let e = this.byDevice.get(device)?.get(point);
    while (e !== undefined && e.unit !== unit) e = e.alt ?? undefined;
    return e;
  }

  get(id: number): PointEntry | undefined {
    return this.byId[id];
  }

  add(id: number, device: string, point: string, unit: string | null): PointEntry {
    const entry: PointEntry = { id, device, point, unit, alt: null, seq: 0, ts: 0, value: null, flags: 0, persistedSeq: 0 };
    let points = this.byDevice.get(device);
    if (!points) this.byDevice.set(device, (points = new Map()));
    const first = points.get(point);
    if (first) {
      let last = first;
      while (last.alt) last = last.alt;
      last.alt = entry;
    } else {
      points.set(point, entry);
    }
    this.byId[id] = entry;
    if (id > this.maxId) this.maxId = id;
    return entry;
  }

  /** Forgets an entry whose insert was rolled back. */
  remove(entry: PointEntry): void {
    const points = this.byDevice.get(entry.device);
    const first = points?.get(entry.point);
    if (points && first) {
      if (first === entry) {
        if (entry.alt) points.set(entry.point, entry.alt);
        else points.delete(entry.point);
      } else {
        let e = first;
        while (e.alt && e.alt !== entry) e = e.alt;
        if (e.alt === entry) e.alt = entry.alt;
      }
      if (points.size === 0) this.byDevice.delete(entry.device);
    }
    this.byId[entry.id] = undefined;
    if (entry.id === this.maxId) {
      while (this.maxId > 0 && this.byId[this.maxId] === undefined) this.maxId--;
    }
  }

  /** Point ids of a device (all units). */
  idsOf(device: string): number[] {
    const ids: number[] = [];
    for (const e of this.entriesOf(device)) ids.push(e.id);
    return ids;
  }

  *entriesOf(device: string): Iterable<PointEntry> {
    const points = this.byDevice.get(device);
    if (!points) return;
    for (const first of points.values()) {
      for (let e: PointEntry | null = first; e; e = e.alt) yield e;
    }
  }

  *all(): Iterable<PointEntry> {
    for (const e of this.byId) if (e) yield e;
  }

  devices(): Iterable<string> {
    return this.byDevice.keys();
  }

  /**
   * A polled value the report strategy did not store becomes the latest value of its point when
   * it is not older than the latest one; seq stays the last stored reading's. A point with no
   * stored reading yet is left alone: its first value is always stored (edge/report/filter.ts).
   */
  observe(r: NewReading): void {
    const e = this.find(r.device, r.point, r.unit ?? null);
    if (e === undefined || e.seq === 0 || r.ts < e.ts) return;
    e.ts = r.ts;
    e.value = storedValue(r.value);
    e.flags = encodeFlags(r.value, r.quality);
  }

  /** Latest value per point name of a device; of several units, the most recent (by ts, then seq) wins. */
  latest(device: string): Map<string, LatestValue> {
    const out = new Map<string, LatestValue>();
    const points = this.byDevice.get(device);
    if (!points) return out;
    for (const [name, first] of points) {
      let best: PointEntry | null = null;
      for (let e: PointEntry | null = first; e; e = e.alt) {
        if (e.seq > 0 && (!best || e.ts > best.ts || (e.ts === best.ts && e.seq > best.seq))) best = e;
      }
      if (best) out.set(name, latestValue(best));
    }
    return out;
  }
}

export function latestValue(e: PointEntry): LatestValue {
  return { seq: e.seq, ts: e.ts, value: decodeValue(e.value, e.flags), unit: e.unit, quality: qualityOf(e.flags) };
}
