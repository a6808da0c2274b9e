/**
 * Cuts the store's merged stream (readings and events share one seq space) into batches: each
 * batch holds one kind, starts right after the previous one (`after + 1`), and is bounded by a
 * count and by its size in bytes (at least one item, so an oversized item still goes out).
 */
import type { Store } from '../edge/store/api.js';
import type { Reading, StoredEvent } from '../edge/store/types.js';
import { envelopeBytes, type BatchKind } from './payload.js';

export interface BuiltBatch {
  kind: BatchKind;
  /** after + 1: the batch covers every seq up to toSeq that is not in the other kind */
  fromSeq: number;
  toSeq: number;
  /** each item serialized once, in seq order */
  itemsJson: string[];
  /** uncompressed payload size */
  bytes: number;
  /**
   * The batch could still grow: it is neither full (batchSize items, or the next item would pass
   * batchBytes) nor closed (an item of the other kind follows it in the seq line). Only an open
   * readings batch may linger (cloud-sync/linger.ts).
   */
  open: boolean;
}

export interface BatcherOptions {
  store: Store;
  gateway: string;
  batchSize: number;
  batchBytes: number;
}

export class Batcher {
  constructor(private readonly opts: BatcherOptions) {}

  /** The batch after seq `after`, or null when nothing is stored after it. */
  next(after: number): BuiltBatch | null {
    const { store, batchSize } = this.opts;
    const readings = store.readings({ after, limit: batchSize }).items;
    const events = store.events({ after, limit: batchSize }).items;
    const r0 = readings[0]?.seq ?? Infinity;
    const e0 = events[0]?.seq ?? Infinity;
    if (r0 === Infinity && e0 === Infinity) return null;
    // The kind that comes first takes every item before the other kind's first seq.
    return r0 < e0 ? this.cut('readings', after, readings, e0) : this.cut('events', after, events, r0);
  }

  private cut(kind: BatchKind, after: number, items: readonly (Reading | StoredEvent)[], before: number): BuiltBatch {
    const { gateway, batchSize, batchBytes } = this.opts;
    const itemsJson: string[] = [];
    let bytes = envelopeBytes(gateway, after + items.length + 1);
    let toSeq = after;
    let full = false;
    for (const item of items) {
      if (item.seq >= before) break;
      const json = kind === 'readings' ? this.readingJson(item as Reading) : JSON.stringify(item);
      const size = Buffer.byteLength(json) + 1;
      if (itemsJson.length > 0 && bytes + size > batchBytes) {
        full = true;
        break;
      }
      itemsJson.push(json);
      bytes += size;
      toSeq = item.seq;
    }
    // `items` came with limit batchSize: fewer means every item of this kind up to `before` is in
    const open = !full && itemsJson.length < batchSize && before === Infinity;
    return { kind, fromSeq: after + 1, toSeq, itemsJson, bytes, open };
  }

  /** JSON-escaped device, point, unit and quality strings: a gateway has a few hundred of them. */
  private readonly quoted = new Map<string, string>();

  private quote(s: string): string {
    let q = this.quoted.get(s);
    if (q === undefined) {
      q = JSON.stringify(s);
      if (this.quoted.size < 100_000) this.quoted.set(s, q);
    }
    return q;
  }

  /** The same text as JSON.stringify(reading), field for field, at a fraction of the cost. */
  private readingJson(r: Reading): string {
    const v = r.value;
    const value = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : v ? 'true' : 'false';
    const unit = r.unit === null ? 'null' : this.quote(r.unit);
    return `{"seq":${r.seq},"ts":${r.ts},"device":${this.quote(r.device)},"point":${this.quote(r.point)},"value":${value},"unit":${unit},"quality":${this.quote(r.quality)}}`;
  }
}
