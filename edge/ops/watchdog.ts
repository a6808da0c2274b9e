/**
 * The systemd watchdog (sd_notify(3)): READY=1 once every component has started, WATCHDOG=1
 * every WatchdogSec/2 while the gateway is healthy, STOPPING=1 on the way down. Healthy means
 * the event loop turns (its lag stays below half the watchdog period) and the store answers;
 * when it does not, the pings stop and systemd restarts the service (Restart=on-failure).
 *
 * Node's dgram cannot send on unix datagram sockets and we take no native dependency, so the
 * messages go through `systemd-notify` (the unit sets NotifyAccess=all: the sender is a child
 * process; systemd-notify ≥ 246 waits with BARRIER=1 until systemd has read the message).
 * Without $NOTIFY_SOCKET (not under systemd) the component does nothing.
 */
import { execFile } from 'node:child_process';
import type { Component, GatewayContext } from '../component.js';
import type { Timer } from '../clock.js';
import { errorMessage } from '../errors.js';

/** Sends one sd_notify message ("READY=1", "WATCHDOG=1", …). */
export type Notify = (message: string) => Promise<void>;

export interface WatchdogOptions {
  env?: NodeJS.ProcessEnv;
  /** how messages reach systemd; `systemd-notify` by default */
  notify?: Notify;
  /** ping period; WATCHDOG_USEC / 2 by default, or none (READY/STOPPING only) */
  intervalMs?: number;
  /** extra health checks: return why the gateway is unhealthy, or null */
  healthy?: () => string | null;
}

export interface Watchdog extends Component {
  readonly pings: number;
  /** why the last ping was withheld, or null */
  readonly lastProblem: string | null;
}

/** sd_notify through the systemd-notify binary (no native module needed). */
export function systemdNotify(env: NodeJS.ProcessEnv): Notify {
  return (message) =>
    new Promise((done, fail) => {
      execFile('systemd-notify', [message], { env, timeout: 5000 }, (err, _out, stderr) => {
        if (err) fail(new Error(`systemd-notify ${message}: ${String(stderr).trim() || errorMessage(err)}`));
        else done();
      });
    });
}

/** The ping period systemd asks for: half of WATCHDOG_USEC, for this process only. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(100, Math.floor(usec / 1000 / 2));
}

export function createWatchdog(ctx: Pick<GatewayContext, 'clock' | 'store' | 'log'>, opts: WatchdogOptions = {}): Watchdog {
  const env = opts.env ?? process.env;
  const enabled = opts.notify !== undefined || Boolean(env.NOTIFY_SOCKET);
  const notify = opts.notify ?? systemdNotify(env);
  const intervalMs = opts.intervalMs ?? watchdogIntervalMs(env);
  const { clock, store } = ctx;
  const log = ctx.log.child({ module: 'watchdog' });
  // the loop is sampled four times per ping period; a late sample is lag
  const sampleMs = intervalMs === null ? 0 : Math.max(25, Math.floor(intervalMs / 4));
  let sampleTimer: Timer | null = null;
  let expectedAt = 0;
  let maxLag = 0;
  let sinceLastPing = 0;
  let pings = 0;
  let lastProblem: string | null = null;
  let running = false;

  const send = (message: string): void => {
    void notify(message).catch((err: unknown) => log.warn({ err, message }, 'sd_notify failed'));
  };

  const problem = (): string | null => {
    if (maxLag > intervalMs! / 2) return `event loop blocked for ${Math.round(maxLag)} ms`;
    try {
      store.stats();
    } catch (err) {
      return `store: ${errorMessage(err)}`;
    }
    return opts.healthy?.() ?? null;
  };

  const sample = (): void => {
    const now = clock.monotonic();
    maxLag = Math.max(maxLag, now - expectedAt);
    sinceLastPing += sampleMs;
    if (sinceLastPing >= intervalMs!) {
      const why = problem();
      if (why === null) {
        pings++;
        send('WATCHDOG=1');
      } else if (why !== lastProblem) {
        log.error({ problem: why }, 'unhealthy: withholding the watchdog ping (systemd will restart the gateway)');
      }
      lastProblem = why;
      sinceLastPing = 0;
      maxLag = 0;
    }
    schedule();
  };

  const schedule = (): void => {
    if (!running) return;
    expectedAt = clock.monotonic() + sampleMs;
    sampleTimer = clock.setTimeout(sample, sampleMs);
    sampleTimer.unref?.();
  };

  return {
    name: 'watchdog',
    get pings() {
      return pings;
    },
    get lastProblem() {
      return lastProblem;
    },
    async start() {
      if (running || !enabled) return;
      running = true;
      send('READY=1');
      if (intervalMs !== null) {
        log.info({ intervalMs }, 'systemd watchdog armed');
        schedule();
      }
    },
    async stop() {
      if (!running) return;
      running = false;
      if (sampleTimer) clock.clearTimeout(sampleTimer);
      sampleTimer = null;
      send('STOPPING=1');
    },
  };
}
