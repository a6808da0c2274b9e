/**
 * The in-flight window of published batches. Acknowledgements (PUBACK) may complete in any
 * order; the cursor only moves over the contiguous acknowledged prefix, so a crash between
 * two acks never marks an unacknowledged seq as synced.
 */
export interface InFlightBatch {
  /** unique per published batch */
  id: number;
  fromSeq: number;
  toSeq: number;
  acked: boolean;
  /** monotonic ms of the publish */
  sentAt: number;
}

export class AckWindow {
  private readonly batches: InFlightBatch[] = [];
  private nextId = 1;

  /** @param ackedSeq everything <= ackedSeq is acknowledged (the consumer cursor) */
  constructor(public ackedSeq: number) {}

  get size(): number {
    return this.batches.length;
  }

  /** The seq after which the next batch starts. */
  get frontier(): number {
    const last = this.batches[this.batches.length - 1];
    return last ? last.toSeq : this.ackedSeq;
  }

  /** The oldest unacknowledged batch (for the ack timeout). */
  oldestPending(): InFlightBatch | undefined {
    return this.batches.find((b) => !b.acked);
  }

  add(fromSeq: number, toSeq: number, sentAt: number): InFlightBatch {
    const b: InFlightBatch = { id: this.nextId++, fromSeq, toSeq, acked: false, sentAt };
    this.batches.push(b);
    return b;
  }

  /**
   * Marks a batch acknowledged; returns the new cursor when the contiguous acknowledged prefix
   * grew, else null (an ack for a batch this window no longer holds is ignored).
   */
  ack(id: number): number | null {
    const b = this.batches.find((x) => x.id === id);
    if (!b || b.acked) return null;
    b.acked = true;
    let moved = false;
    while (this.batches.length > 0 && (this.batches[0] as InFlightBatch).acked) {
      this.ackedSeq = (this.batches.shift() as InFlightBatch).toSeq;
      moved = true;
    }
    return moved ? this.ackedSeq : null;
  }

  /** Forgets every batch in flight (the connection is gone; they are resent from the cursor). */
  clear(): void {
    this.batches.length = 0;
  }
}
