/**
 * Exponential backoff, written once: the Modbus bus reconnects (edge/drivers/modbus/transport/
 * connection.ts), the bus scheduler's retries and slowed polls, the supervisor's restarts, the
 * batched writer's flush retries (store/writer.ts) and the CLI's polls for a command's outcome
 * (control/cli.ts) all take their delays from here. Delays double from `minMs` up to `maxMs`; with `jitter:
 * 'equal'` half of each delay is fixed and half random, so a city's gateways that lost the
 * same peer do not all come back in the same second, and no delay collapses to zero.
 */

export interface BackoffOptions {
  /** the first delay, ms */
  minMs: number;
  /** the ceiling, ms */
  maxMs: number;
  /** 'none' (default): exactly minMs × 2^failures; 'equal': half of that fixed, half random */
  jitter?: 'none' | 'equal';
  /** uniform in [0, 1); injectable for tests */
  random?: () => number;
}

/** The delay after `attempt` failures in a row (0 for the first): min(maxMs, minMs × 2^attempt). */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/** The delays of one retried thing: each next() counts one more failure, reset() a success. */
export class Backoff {
  /** failures since the last success */
  attempt = 0;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly jitter: 'none' | 'equal';
  private readonly random: () => number;

  constructor(opts: BackoffOptions) {
    this.minMs = Math.max(1, opts.minMs);
    this.maxMs = Math.max(this.minMs, opts.maxMs);
    this.jitter = opts.jitter ?? 'none';
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt; counts one more failure. */
  next(): number {
    const ceiling = backoffDelay(this.attempt, this.minMs, this.maxMs);
    this.attempt++;
    if (this.jitter === 'none') return ceiling;
    const half = ceiling / 2;
    return Math.round(half + this.random() * half);
  }

  reset(): void {
    this.attempt = 0;
  }
}
