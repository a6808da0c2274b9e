/**
 * When an open readings batch goes upstream (`sync.linger`): once its oldest item has waited
 * `linger` since the sync first saw it pending, not at every commit. A cabinet that stores a
 * reading every second or two then sends one batch per linger instead of one tiny batch per
 * commit (five a second), and the deflate of a batch has something to work on. Events, full
 * batches and batches an event closed never wait (Batcher `open`); a backlog whose oldest item
 * was seen long ago (an outage) goes at once. Times are the clock's monotonic ms.
 */
import type { BuiltBatch } from './batcher.js';

/** Every seq up to `seq` was committed, and pending, by monotonic time `at`. */
interface Mark {
  seq: number;
  at: number;
}

export class Linger {
  /** one per commit the sync was told of, oldest first; seqs and times rising */
  private readonly marks: Mark[] = [];

  constructor(private readonly lingerMs: number) {}

  /** Everything up to `seq` is committed, seen at monotonic `at` (the store's bus after a commit). */
  seen(seq: number, at: number): void {
    if (this.lingerMs === 0) return;
    const last = this.marks[this.marks.length - 1];
    if (last && seq <= last.seq) return;
    this.marks.push({ seq, at });
    // A mark that is due stays due: of the due ones only the newest is needed, so the list holds
    // at most one linger of commits, even through an outage of days.
    const due = at - this.lingerMs;
    let drop = 0;
    while (drop + 1 < this.marks.length && (this.marks[drop + 1] as Mark).at <= due) drop++;
    if (drop > 0) this.marks.splice(0, drop);
  }

  /**
   * Everything up to `seq` is acknowledged. Marks go only here, not when a batch is published:
   * a batch resent after a reconnect finds the time its items were first seen, and goes at once.
   */
  acked(seq: number): void {
    let drop = 0;
    while (drop < this.marks.length && (this.marks[drop] as Mark).seq <= seq) drop++;
    if (drop > 0) this.marks.splice(0, drop);
  }

  /** The ms batch `b` still waits at monotonic `now`; 0: it goes now. */
  waitMs(b: BuiltBatch, now: number): number {
    if (this.lingerMs === 0 || b.kind === 'events' || !b.open) return 0;
    let mark = this.marks.find((m) => m.seq >= b.fromSeq);
    if (!mark) {
      // rows committed without the bus telling (written to the store directly): seen now
      mark = { seq: b.toSeq, at: now };
      this.marks.push(mark);
    }
    return Math.max(0, mark.at + this.lingerMs - now);
  }
}
