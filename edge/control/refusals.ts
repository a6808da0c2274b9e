/**
 * How many refused requests are stored, per principal (issue 13: a viewer token POSTing 5,000
 * forbidden commands in 12 s must not be able to erase the buffer and the audit trail).
 *
 * Every door (HTTP, MQTT, central, Node-RED, the CLI) refuses through one path, `refuse()` below,
 * which asks `admit()` before it records anything:
 *
 * - a token bucket per (principal, code) of `burst` tokens, refilled at `burst` per `windowMs`:
 *   while it has a token, the refusal is recorded in full, as before (a command row `rejected` and
 *   a `command.rejected` event), so an honest mistake is audited with its reason;
 * - beyond that it is counted: one `command.rejected.suppressed` event per principal per window
 *   (`windowMs` after the first refusal counted) with the exact count, the count per code, the
 *   first and last time and one sample (action, target, code, reason, transaction);
 * - at most `maxPrincipals` principals are tracked, least recently refused first out; one that
 *   goes out has its open count written first, so no refusal goes uncounted.
 *
 * What the requester is answered never changes (the same `rejected` row, 403 etc.); only what is
 * stored is bounded. Both kinds of record are kept in the store's refusal share (quota.ts), so
 * even the bounded records never evict a reading, an event or a genuine command.
 */
import type { Clock, Timer } from '../clock.js';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRecord, CommandSource, CommandTarget } from '../store/types.js';
import type { CommandRecorder } from './record.js';

export interface RefusalLimits {
  /** refusals per principal and code recorded in full before they are only counted */
  burst: number;
  /** the bucket refills `burst` tokens per window; one summary event per principal per window */
  windowMs: number;
  /** principals tracked at once (memory bound) */
  maxPrincipals: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = { burst: 10, windowMs: 60_000, maxPrincipals: 1000 };

export const SUPPRESSED_KIND = 'command.rejected.suppressed';

/** Why a command is refused: the code, a reason naming the field, and the field. */
export interface Rejection {
  code: ErrorCode;
  error: string;
  field?: string | null;
}

/** A refused command as it would be recorded (its row is made `rejected` with the rejection). */
export interface RefusedCommand {
  id: string;
  source: CommandSource;
  target: CommandTarget;
  action: string;
  params: Record<string, unknown>;
}

/** One refused request, as the summary's sample shows it. */
export interface RefusalSample {
  action: string;
  target: CommandTarget;
  code: ErrorCode;
  error: string;
  transaction?: string | number;
}

interface Bucket {
  tokens: number;
  /** monotonic ms of the last refill */
  at: number;
}

interface Summary {
  /** monotonic ms when it is written */
  dueAt: number;
  /** wall-clock ms of the first and the last refusal counted */
  from: number;
  to: number;
  count: number;
  codes: Partial<Record<ErrorCode, number>>;
  sample: RefusalSample;
}

interface Tracked {
  source: CommandSource;
  buckets: Map<ErrorCode, Bucket>;
  summary: Summary | null;
  /** refusals of this principal counted (not recorded in full) since it was first tracked */
  suppressed: number;
}

/** Error texts can quote a caller's input: a sample keeps a bounded piece of it. */
const MAX_SAMPLE_TEXT = 300;

export interface RefusalLedgerOptions {
  recorder: CommandRecorder;
  clock: Clock;
  log: Logger;
  limits?: Partial<RefusalLimits> | undefined;
}

export class RefusalLedger {
  readonly limits: RefusalLimits;
  /** refusals recorded in full / counted into summaries, since start */
  recorded = 0;
  suppressed = 0;
  private readonly tracked = new Map<string, Tracked>();
  private timer: Timer | undefined;

  constructor(private readonly o: RefusalLedgerOptions) {
    const l = { ...DEFAULT_REFUSAL_LIMITS, ...o.limits };
    this.limits = { burst: Math.max(1, Math.floor(l.burst)), windowMs: Math.max(1, l.windowMs), maxPrincipals: Math.max(1, Math.floor(l.maxPrincipals)) };
  }

  /** Principals tracked now (at most `maxPrincipals`). */
  get principals(): number {
    return this.tracked.size;
  }

  /**
   * True: record this refusal in full (the caller writes the row and its event). False: it has
   * been counted into its principal's summary; store nothing for it.
   */
  admit(source: CommandSource, sample: RefusalSample): boolean {
    const now = this.o.clock.monotonic();
    const t = this.touch(source);
    if (t.summary && now >= t.summary.dueAt) this.write(t);
    let b = t.buckets.get(sample.code);
    if (!b) t.buckets.set(sample.code, (b = { tokens: this.limits.burst, at: now }));
    b.tokens = Math.min(this.limits.burst, b.tokens + ((now - b.at) * this.limits.burst) / this.limits.windowMs);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.recorded++;
      return true;
    }
    const wall = this.o.clock.now();
    let s = t.summary;
    if (!s) {
      s = t.summary = { dueAt: now + this.limits.windowMs, from: wall, to: wall, count: 0, codes: {}, sample: boundedSample(sample) };
      this.arm();
    }
    s.count++;
    s.codes[sample.code] = (s.codes[sample.code] ?? 0) + 1;
    s.to = wall;
    t.suppressed++;
    this.suppressed++;
    return false;
  }

  /**
   * The one way out for a refused command, from whichever door: recorded in full (a `rejected` row
   * and its `command.rejected` event) while `admit` lets it, else only counted. The requester is
   * answered the same row either way (one only counted is not stored: GET /api/v1/commands/:id
   * does not know it).
   */
  refuse(cmd: RefusedCommand, why: Rejection): CommandRecord {
    const t = cmd.params.transaction;
    const transaction = typeof t === 'string' || typeof t === 'number' ? { transaction: t } : {};
    const r = why.field === undefined ? { code: why.code, error: why.error } : { code: why.code, error: why.error, field: why.field };
    const result = { ...r, ...transaction };
    const sample: RefusalSample = { action: cmd.action, target: cmd.target, code: why.code, error: why.error, ...transaction };
    if (this.admit(cmd.source, sample)) {
      this.o.log.info({ command: cmd.id, target: cmd.target, action: cmd.action, code: why.code, error: why.error, principal: cmd.source.principal }, 'command rejected');
      return this.o.recorder.create({ ...cmd, status: 'rejected', result }, { code: why.code, error: why.error }, { refusal: true });
    }
    const now = this.o.clock.now();
    return { ...cmd, ts: now, priority: 0, expiresAt: null, status: 'rejected', result, updatedAt: now };
  }

  /** Writes every open summary now (the control component's stop). */
  flush(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const t of this.tracked.values()) if (t.summary) this.write(t);
  }

  /** The principal's entry, made the most recently used; the least recently used goes past the bound. */
  private touch(source: CommandSource): Tracked {
    const key = `${source.role}\u0000${source.principal}`;
    let t = this.tracked.get(key);
    if (t) {
      this.tracked.delete(key);
    } else {
      t = { source: { role: source.role, principal: source.principal }, buckets: new Map(), summary: null, suppressed: 0 };
      while (this.tracked.size >= this.limits.maxPrincipals) {
        const [oldKey, old] = this.tracked.entries().next().value!;
        if (old.summary) this.write(old);
        this.tracked.delete(oldKey);
      }
    }
    this.tracked.set(key, t);
    return t;
  }

  /** One timer, at the earliest summary due. */
  private arm(): void {
    if (this.timer) return;
    let next = Infinity;
    for (const t of this.tracked.values()) if (t.summary && t.summary.dueAt < next) next = t.summary.dueAt;
    if (next === Infinity) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      const now = this.o.clock.monotonic();
      for (const t of this.tracked.values()) if (t.summary && t.summary.dueAt <= now) this.write(t);
      this.arm();
    }, Math.max(0, next - this.o.clock.monotonic()));
    this.timer.unref?.();
  }

  private write(t: Tracked): void {
    const s = t.summary;
    if (!s) return;
    t.summary = null;
    const detail = {
      source: t.source,
      count: s.count,
      codes: s.codes,
      from: s.from,
      to: s.to,
      windowMs: this.limits.windowMs,
      sample: s.sample,
      // this principal's refusals counted so far, this window included
      total: t.suppressed,
    };
    this.o.log.warn({ principal: t.source.principal, role: t.source.role, count: s.count, codes: s.codes }, 'refused commands counted, not recorded one by one');
    this.o.recorder.append({ device: null, kind: SUPPRESSED_KIND, severity: 'warning', detail }, { refusal: true });
  }
}

function boundedSample(s: RefusalSample): RefusalSample {
  const out: RefusalSample = { action: clip(s.action), target: { kind: s.target.kind, id: clip(s.target.id) }, code: s.code, error: clip(s.error) };
  if (s.transaction !== undefined) out.transaction = typeof s.transaction === 'string' ? clip(s.transaction) : s.transaction;
  return out;
}

function clip(text: string): string {
  return text.length <= MAX_SAMPLE_TEXT ? text : `${text.slice(0, MAX_SAMPLE_TEXT)}…`;
}
