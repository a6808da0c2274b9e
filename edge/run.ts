/**
 * `streetbox start`: the process's life around one gateway. The process lives until a signal,
 * not until its event loop happens to empty, and it ends when the stop has finished, whatever
 * a library left behind:
 *
 * - SIGINT / SIGTERM: the gateway stops (components in reverse, within what is left of
 *   EXIT_DEADLINE_MS), the buffer is flushed and closed, and the process exits 0. Node-RED keeps a session-expiry
 *   timer once anyone has logged into the editor (@node-red/editor-api auth/tokens.js, not
 *   reachable from outside), so waiting for the loop to drain would keep a stopped gateway
 *   alive for days; we exit explicitly.
 * - A second signal while stopping exits at once: 130 (SIGINT) or 143 (SIGTERM), 128 + signal;
 *   one within DUPLICATE_MS of the first is the same Ctrl-C delivered twice (the terminal sends
 *   SIGINT to the whole group and `npm start` forwards it to its child again), not a second one.
 * - A signal during start-up: no further component is started, what has started is stopped,
 *   and the process exits 0.
 * - A gateway whose components all failed at start stays up, degraded, and retries them
 *   (the supervisor's backoff); it never falls off the end of an empty event loop with
 *   Node's exit code 13 ("unsettled top-level await") and no word why.
 * - SIGHUP: devices.yaml as it is on disk now goes the road of a configuration change
 *   (edge/reconfig: validated, applied to what it touches, confirmed or rolled back); before the
 *   gateway runs, and while it stops, SIGHUP is ignored (never Node's default: exit).
 * - A stop that cannot finish within EXIT_DEADLINE_MS is cut short: the component that hung is
 *   logged as an error and the process exits 0 all the same (committed data is safe in the WAL;
 *   exit 0 keeps a unit's stop a stop, not a failure to restart from).
 * - A restart asked from inside (edge/restart.ts `requestProcessRestart`: the self-update switched
 *   in a new release): the gateway stops as for SIGTERM, within the same deadline, and the process
 *   exits RESTART_EXIT_CODE (3), which systemd restarts (RestartForceExitStatus=3). A signal
 *   during that stop makes it a plain stop (exit 0 when done); a second one exits at once.
 */
import type { Gateway, GatewayOptions } from './main.js';
import type { Logger } from './log.js';
import { RESTART_EXIT_CODE, processRestarts, type RestartRequests } from './restart.js';

/** what the components get, together, to stop when no signal asked (each is abandoned past it) */
export const STOP_BUDGET_MS = 3500;
/** the hard limit from the first signal to the exit: systemd's stop and Ctrl-C never wait longer */
export const EXIT_DEADLINE_MS = 4500;
/** kept from the deadline for closing the store and flushing the log */
const CLOSE_RESERVE_MS = 700;
/** a repeat of the first signal within this is the same signal delivered twice */
const DUPLICATE_MS = 1000;

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export interface RunOptions {
  gateway: GatewayOptions;
  log: Logger;
  /** called once the gateway runs (the banner) */
  onRunning?: (gateway: Gateway) => void;
  /** ends the process (tests inject it); default process.exit */
  exit?: (code: number) => never | void;
  /** where signals come from (tests inject an emitter); default the process */
  signals?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  /** where restart requests come from (tests inject their own); default restart.ts `processRestarts` */
  restarts?: Pick<RestartRequests, 'listen'>;
  /** starts the gateway (tests inject one); default startGateway */
  start?: (opts: GatewayOptions) => Promise<Gateway>;
  /** default EXIT_DEADLINE_MS */
  deadlineMs?: number;
  /** default DUPLICATE_MS */
  duplicateMs?: number;
}

/**
 * Runs a gateway until SIGINT or SIGTERM (exit 0) or a restart request (exit RESTART_EXIT_CODE),
 * then stops it and exits. Resolves only if the gateway could not start (its error is thrown: a
 * bad config, a held data file).
 */
export async function runUntilSignal(opts: RunOptions): Promise<void> {
  const { log } = opts;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? process;
  const deadlineMs = opts.deadlineMs ?? EXIT_DEADLINE_MS;
  const duplicateMs = opts.duplicateMs ?? DUPLICATE_MS;
  const restarts = opts.restarts ?? processRestarts;
  let signalled: NodeJS.Signals | null = null;
  let signalledAt = 0;
  /** set when a restart request started the stop (and no signal came since) */
  let restartReason: string | null = null;
  let stopping = false;
  let stopAt = 0;
  const aborted = new AbortController();
  let onStop: (() => void) | null = null;
  const exitCode = (): number => (signalled === null && restartReason !== null ? RESTART_EXIT_CODE : 0);
  const beginStop = (): void => {
    stopping = true;
    stopAt = performance.now();
    aborted.abort();
    // The deadline holds from the first signal (or request), through start-up and stop alike.
    setTimeout(() => {
      log.error({ deadlineMs }, 'stop did not finish in time; exiting (committed data is safe)');
      log.flush();
      exit(exitCode());
    }, deadlineMs).unref();
    onStop?.();
  };
  const handler = (s: NodeJS.Signals): void => {
    if (signalled) {
      if (s === signalled && performance.now() - signalledAt < duplicateMs) return;
      log.warn({ signal: s }, 'second signal: exiting now');
      log.flush();
      exit(SIGNAL_EXIT[s] ?? 1);
      return;
    }
    signalled = s;
    signalledAt = performance.now();
    if (stopping) {
      log.info({ signal: s, restart: restartReason }, 'signal received while stopping for a restart: a stop, not a restart');
      return;
    }
    log.info({ signal: s }, 'signal received; stopping');
    beginStop();
  };
  const onRestart = (reason: string): void => {
    if (stopping) return;
    restartReason = reason;
    log.info({ reason, exitCode: RESTART_EXIT_CODE }, 'restart requested; stopping');
    beginStop();
  };
  let running: Gateway | null = null;
  const onHangup = (): void => {
    if (!running || stopping) {
      log.warn('SIGHUP before the gateway runs or while it stops: ignored');
      return;
    }
    log.info('SIGHUP: reloading devices.yaml');
    running.reload('file');
  };
  // Installed before anything starts: a SIGTERM during start-up is a stop, not a kill.
  signals.on('SIGINT', handler);
  signals.on('SIGTERM', handler);
  signals.on('SIGHUP', onHangup);
  const unlistenRestart = restarts.listen(onRestart);
  // The process lives until a signal, even with every component degraded and waiting for a retry.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const cleanup = (): void => {
    clearInterval(keepAlive);
    signals.off('SIGINT', handler);
    signals.off('SIGTERM', handler);
    signals.off('SIGHUP', onHangup);
    unlistenRestart();
  };

  const start = opts.start ?? (await import('./main.js')).startGateway;
  let gateway: Gateway;
  try {
    gateway = await start({ ...opts.gateway, stopBudgetMs: STOP_BUDGET_MS, signal: aborted.signal });
  } catch (err) {
    cleanup();
    throw err;
  }
  if (!stopping) {
    running = gateway;
    try {
      opts.onRunning?.(gateway);
    } catch (err) {
      log.error({ err }, 'start-up report failed');
    }
    await new Promise<void>((resolve) => {
      if (stopping) resolve();
      onStop = () => resolve();
    });
  }
  // the components share what is left of the deadline, less the time to close the store
  await gateway.stop(Math.max(100, deadlineMs - (performance.now() - stopAt) - CLOSE_RESERVE_MS));
  log.flush();
  cleanup();
  exit(exitCode());
}
