/**
 * The receiver's view of one gateway's seq line: at-least-once batches in, each seq exactly
 * once and in order out. Batches tile the seq line (each covers fromSeq..toSeq, the next starts
 * at toSeq + 1, on whichever topic), so the receiver knows exactly what it has covered:
 * - a batch entirely at or below the covered mark is a duplicate (its items are counted);
 * - a batch that starts past the mark waits (a reorder buffer) until the hole fills; a hole
 *   still open after the reorder window, or at the end, is reported as a gap and skipped; a
 *   late item of a skipped gap is still delivered (counted as late);
 * - a seq inside a covered range but in no item was evicted at the gateway before it was sent
 *   (counted as absent; the gateway's `storage.dropped` event has the details).
 */
import type { Batch, BatchKind, WireItem } from './payload.js';

export interface DeliveredItem {
  kind: BatchKind;
  item: WireItem;
}

export interface Gap {
  gateway: string;
  fromSeq: number;
  toSeq: number;
}

interface Pending {
  kind: BatchKind;
  batch: Batch;
  since: number;
}

export interface GatewayCounters {
  /** items delivered (written) */
  items: number;
  /** items received again (at-least-once redelivery) */
  duplicates: number;
  batches: number;
  /** seqs covered by a batch but absent from it (evicted at the gateway) */
  absent: number;
  /** items that arrived after their gap had been reported */
  late: number;
  /** every seq up to here is delivered, absent, or reported in a gap */
  coveredSeq: number;
  gaps: Gap[];
}

export class GatewayTrack {
  readonly counters: GatewayCounters;
  private pending: Pending[] = [];
  /** reported gaps still open to late items: seqs already delivered inside each */
  private openGaps: { gap: Gap; seen: Set<number> }[] = [];
  private started: boolean;

  /** @param floor seqs at or below it were delivered before (a resumed output file) */
  constructor(
    readonly gateway: string,
    floor = 0,
  ) {
    this.started = floor > 0;
    this.counters = { items: 0, duplicates: 0, batches: 0, absent: 0, late: 0, coveredSeq: floor, gaps: [] };
  }

  get pendingBatches(): number {
    return this.pending.length;
  }

  /** Takes one batch; returns what can be delivered now, in seq order. */
  accept(kind: BatchKind, batch: Batch, now: number): DeliveredItem[] {
    this.counters.batches++;
    if (!this.started) {
      // The first batch this receiver ever sees for the gateway sets where its line starts.
      this.started = true;
      this.counters.coveredSeq = batch.fromSeq - 1;
    }
    const out: DeliveredItem[] = [];
    const c = this.counters;
    if (batch.toSeq <= c.coveredSeq) {
      this.lateOrDuplicate(kind, batch.items, out);
      return out;
    }
    if (batch.fromSeq > c.coveredSeq + 1) {
      const overlapsPending = this.pending.some((p) => p.batch.fromSeq === batch.fromSeq && p.batch.toSeq >= batch.toSeq);
      if (overlapsPending) c.duplicates += batch.items.length;
      else this.pending.push({ kind, batch, since: now });
      return out;
    }
    this.take(kind, batch, out);
    this.drainPending(out);
    return out;
  }

  /**
   * Reports the hole before the oldest waiting batch as a gap when it waited longer than
   * `windowMs` (or always, with `force`), and delivers what follows it.
   */
  expire(now: number, windowMs: number, force = false): DeliveredItem[] {
    const out: DeliveredItem[] = [];
    for (let guard = 0; this.pending.length > 0 && guard < 1_000_000; guard++) {
      this.pending.sort((a, b) => a.batch.fromSeq - b.batch.fromSeq);
      const first = this.pending[0] as Pending;
      if (!force && now - first.since < windowMs) break;
      const gap: Gap = { gateway: this.gateway, fromSeq: this.counters.coveredSeq + 1, toSeq: first.batch.fromSeq - 1 };
      if (gap.toSeq >= gap.fromSeq) {
        this.counters.gaps.push(gap);
        this.openGaps.push({ gap, seen: new Set() });
        if (this.openGaps.length > 100) this.openGaps.shift();
        this.counters.coveredSeq = gap.toSeq;
      }
      this.drainPending(out);
    }
    return out;
  }

  private take(kind: BatchKind, batch: Batch, out: DeliveredItem[]): void {
    const c = this.counters;
    const start = Math.max(batch.fromSeq, c.coveredSeq + 1);
    let fresh = 0;
    for (const item of batch.items) {
      if (item.seq <= c.coveredSeq) {
        this.lateOrDuplicate(kind, [item], out);
        continue;
      }
      out.push({ kind, item });
      fresh++;
    }
    c.items += fresh;
    c.absent += batch.toSeq - start + 1 - fresh;
    c.coveredSeq = batch.toSeq;
  }

  private drainPending(out: DeliveredItem[]): void {
    this.pending.sort((a, b) => a.batch.fromSeq - b.batch.fromSeq);
    while (this.pending.length > 0) {
      const p = this.pending[0] as Pending;
      if (p.batch.fromSeq > this.counters.coveredSeq + 1) break;
      this.pending.shift();
      if (p.batch.toSeq <= this.counters.coveredSeq) this.lateOrDuplicate(p.kind, p.batch.items, out);
      else this.take(p.kind, p.batch, out);
    }
  }

  private lateOrDuplicate(kind: BatchKind, items: readonly WireItem[], out: DeliveredItem[]): void {
    for (const item of items) {
      const open = this.openGaps.find((g) => item.seq >= g.gap.fromSeq && item.seq <= g.gap.toSeq);
      if (open && !open.seen.has(item.seq)) {
        open.seen.add(item.seq);
        this.counters.late++;
        this.counters.items++;
        out.push({ kind, item });
      } else this.counters.duplicates++;
    }
  }
}
