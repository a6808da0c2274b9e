/**
 * Reconnect delays of the upstream link: the gateway's one backoff (edge/backoff.ts),
 * exponential from `minMs` up to `maxMs`, with "equal jitter" (half of the delay fixed, half
 * random) so a city's gateways that lost the same broker do not all come back in the same
 * second, and no delay collapses to zero. mqtt.js's own reconnectPeriod is a fixed interval,
 * so the sync drives reconnects itself.
 */
import { Backoff as ExponentialBackoff, type BackoffOptions as ExponentialOptions } from '../edge/backoff.js';

export type BackoffOptions = Omit<ExponentialOptions, 'jitter'>;

export class Backoff extends ExponentialBackoff {
  constructor(opts: BackoffOptions) {
    super({ ...opts, jitter: 'equal' });
  }
}
