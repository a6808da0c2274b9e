/**
 * Reconnect delays: exponential from `minMs` up to `maxMs`, with "equal jitter" (half of the
 * delay fixed, half random) so a city's gateways that lost the same broker do not all come
 * back in the same second, and no delay collapses to zero. mqtt.js's own reconnectPeriod is a
 * fixed interval, so the sync drives reconnects itself.
 */
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** uniform in [0, 1); injectable for tests */
  random?: () => number;
}

export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  /** failures since the last success */
  attempt = 0;

  constructor(opts: BackoffOptions) {
    this.minMs = Math.max(1, opts.minMs);
    this.maxMs = Math.max(this.minMs, opts.maxMs);
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const half = ceiling / 2;
    return Math.round(half + this.random() * half);
  }

  reset(): void {
    this.attempt = 0;
  }
}
