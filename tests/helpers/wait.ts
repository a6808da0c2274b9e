/**
 * The one way a test waits: for a condition, never for a fixed time. `fn` is polled (every
 * 10 ms by default) until it returns something other than undefined, null or false; that
 * value is returned. After `timeoutMs` (default 5 s) it rejects naming `what`, with the last
 * error `fn` threw, if any.
 *
 *   const row = await waitFor('command verified', () => store.getCommand(id)?.status === 'verified' && store.getCommand(id));
 */
export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

type Falsy = undefined | null | false;

export async function waitFor<T>(what: string, fn: () => T | Falsy | Promise<T | Falsy>, opts: number | WaitOptions = {}): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 10 } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const why = last === undefined ? '' : `; last error: ${last instanceof Error ? last.message : String(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
