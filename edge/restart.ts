/**
 * A restart of the whole process, asked from inside the gateway (the self-update: a new release
 * is switched in and must be started). `streetbox start` (run.ts) listens: it stops the gateway
 * as for SIGTERM, then exits with RESTART_EXIT_CODE, and systemd starts the service again
 * (deploy/streetbox.service: RestartForceExitStatus=3), through the launcher, which runs the
 * release `current` points at (deploy/streetbox-launch).
 *
 * Nothing here stops anything itself: without a listener (a gateway started by a test, not by
 * run.ts) a request goes nowhere, and `requestProcessRestart` says false.
 */

/** The exit code of a process that stopped cleanly to be started again (not a failure, not a stop). */
export const RESTART_EXIT_CODE = 3;

export type RestartListener = (reason: string) => void;

/** Where restart requests go; run.ts listens to `processRestarts`, tests make their own. */
export class RestartRequests {
  private readonly listeners = new Set<RestartListener>();

  /** Asks for a restart. True when a listener (run.ts) will stop the process and exit for it. */
  request(reason: string): boolean {
    for (const l of [...this.listeners]) l(reason);
    return this.listeners.size > 0;
  }

  /** Listens for requests; returns the function that stops listening. A request made before is not replayed. */
  listen(fn: RestartListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }
}

/** The process's one registry. */
export const processRestarts = new RestartRequests();

/**
 * Asks `streetbox start` to stop the gateway cleanly and exit RESTART_EXIT_CODE (systemd starts
 * it again). True when run.ts listens; false when nothing will restart the process.
 */
export function requestProcessRestart(reason: string): boolean {
  return processRestarts.request(reason);
}
