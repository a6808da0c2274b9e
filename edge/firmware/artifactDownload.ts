/**
 * An artifact's bytes over HTTP(S) into its part file (artifacts.ts keeps the store): a GET from
 * where the part file ends, `Range: bytes=<have>-` (RFC 9110 §14.2), so a cut connection or a
 * restart of the gateway goes on where it stopped. A 206 must start exactly there (§14.4,
 * Content-Range), a 200 is the whole body again (the part file starts over, §14.2: a server may
 * ignore Range), a 416 means the part file is not a prefix of what the server has (it starts
 * over). Interruptions are retried with a backoff, counted anew after each attempt that brought
 * bytes; a body longer than the artifact, or a whole answer shorter, is final. Redirects are
 * followed (at most MAX_REDIRECTS), to https://, or http:// on a loopback host only.
 */
import { open, stat, unlink, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { FirmwareError } from './errors.js';
import { artifactUrlProblem } from './manifest.js';

/** Pauses before the retries after the 1st, 2nd, … attempt in a row that brought no byte; past the last one the fetch fails (the part file stays). */
export const RETRY_DELAYS_MS: readonly number[] = [0, 1_000, 5_000, 15_000, 30_000];
/** A connection silent this long is cut (and retried). */
export const IDLE_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;

/** An attempt cut short (network, 5xx, a resume the server answered elsewhere): worth another. */
class Interrupted extends FirmwareError {
  /** the part file was dropped to start over from byte 0: retried at once */
  readonly startOver: boolean;

  constructor(message: string, options?: { cause?: unknown; startOver?: boolean }) {
    super('E_FW_ARTIFACT', message, options);
    this.startOver = options?.startOver ?? false;
  }
}

export interface DownloadJob {
  url: string;
  /** the part file: appended to, restarted when the server sends the whole body */
  part: string;
  /** the artifact's size: the part file never grows past it */
  size: number;
  signal: AbortSignal;
  clock: Clock;
  log: Logger;
  /** bytes in the part file, after each write */
  onBytes: (have: number) => void;
}

/** Fills the part file to `size` bytes (not checked here: the store checks the sha256). Throws FirmwareError E_FW_ARTIFACT, or the signal's reason. */
export async function downloadToPart(job: DownloadJob): Promise<void> {
  let failures = 0;
  for (;;) {
    let have = await partSize(job.part);
    if (have > job.size) {
      await removePart(job.part);
      have = 0;
    }
    if (have === job.size) return;
    const got = { bytes: 0 };
    try {
      await attempt(job, have, got);
      if ((await partSize(job.part)) === job.size) return;
      // a 206 answering less than the rest: ask for the rest, unless it answered nothing
      if (got.bytes === 0) throw new Interrupted(`the server answered no bytes from byte ${have} on`);
      failures = 0;
    } catch (err) {
      if (job.signal.aborted) throw abortReason(job.signal);
      if (!(err instanceof Interrupted)) throw err;
      // once from a dropped part file to byte 0, then as any interruption
      if (err.startOver && have > 0) {
        job.log.warn({ err: err.message, size: job.size }, 'firmware: artifact download starts over');
        continue;
      }
      // an attempt that brought bytes is resumed at once; one that brought none waits its turn of the backoff
      failures = got.bytes > 0 ? 0 : failures + 1;
      const delay = failures === 0 ? 0 : RETRY_DELAYS_MS[failures - 1];
      const kept = await partSize(job.part);
      if (delay === undefined) {
        throw new FirmwareError('E_FW_ARTIFACT', `the artifact could not be fetched: ${err.message} (${failures} attempts in a row without a byte; ${kept} of ${job.size} bytes are kept for the next try)`, { cause: err });
      }
      job.log.warn({ err: err.message, have: kept, size: job.size, retryInMs: delay }, 'firmware: artifact download interrupted; resuming');
      await sleep(job.clock, delay, job.signal);
    }
  }
}

/**
 * One GET from byte `have` on, into the part file. The file is open before the request and the
 * body is taken as it comes (receive), so bytes the connection delivered before it broke are
 * kept: they are what the next attempt resumes after.
 */
async function attempt(job: DownloadJob, have: number, got: { bytes: number }): Promise<void> {
  const fh = await open(job.part, 'a');
  try {
    const res = await get(job.url, have, job.signal, 0);
    const offset = await answerOffset(job, res, have);
    const pos = await receive(job, res, fh, offset, got);
    if (pos < job.size && res.statusCode === 200) {
      // the whole answer, ended in order, and short
      await removePart(job.part);
      throw sizeDiffers(job.size, `the server sent ${pos}`);
    }
  } finally {
    await fh.close();
  }
}

/**
 * Where the answer's body goes in the part file: `have` for a 206 starting there, 0 for a 200.
 * Anything else throws (the body drained), synchronously but for a part file to drop, so the
 * body is taken before the connection can break.
 */
async function answerOffset(job: DownloadJob, res: http.IncomingMessage, have: number): Promise<number> {
  if (res.statusCode === 206) {
    const range = contentRange(res.headers['content-range']);
    if (range !== undefined && range.total !== undefined && range.total !== job.size) {
      res.resume();
      await removePart(job.part);
      throw sizeDiffers(job.size, `the server has ${range.total}`);
    }
    if (range?.start !== have) {
      res.resume();
      await removePart(job.part);
      throw new Interrupted(`the server resumed at ${range === undefined ? 'an unstated offset' : `byte ${range.start}`}, not ${have}: starting over`, { startOver: true });
    }
    return have;
  }
  if (res.statusCode === 200) {
    const length = Number(res.headers['content-length'] ?? NaN);
    if (Number.isFinite(length) && length !== job.size) {
      res.resume();
      await removePart(job.part);
      throw sizeDiffers(job.size, `the server has ${length}`);
    }
    return 0;
  }
  res.resume();
  if (res.statusCode === 416) {
    // RFC 9110 §15.5.17: nothing from `have` on; the part file is not a prefix of this artifact
    await removePart(job.part);
    throw new Interrupted(`the server has nothing from byte ${have} on: starting over`, { startOver: true });
  }
  const status = res.statusCode ?? 0;
  const why = `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
  if (status >= 500 || status === 408 || status === 429) throw new Interrupted(why);
  throw new FirmwareError('E_FW_ARTIFACT', `the artifact could not be fetched: ${why}`);
}

/** Bytes queued beyond this pause the connection until written. */
const HIGH_WATER = 1024 * 1024;

/**
 * The body into the part file from `offset` (0: the file starts over), as the connection
 * delivers it: every chunk emitted is queued at once and written in order, so a cut loses none of
 * them. Resolves with the part file's length when the body ended in order.
 */
async function receive(job: DownloadJob, res: http.IncomingMessage, fh: FileHandle, offset: number, got: { bytes: number }): Promise<number> {
  const queue: Buffer[] = [];
  let queued = 0;
  let ended: { error?: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  res.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= HIGH_WATER) res.pause();
    notify();
  });
  res.once('end', () => {
    ended ??= {};
    notify();
  });
  res.once('error', (error) => {
    ended ??= { error };
    notify();
  });
  res.once('close', () => {
    ended ??= { error: new Error('the connection closed') };
    notify();
  });
  if (offset === 0) await fh.truncate(0);
  let pos = offset;
  for (;;) {
    const chunk = queue.shift();
    if (chunk !== undefined) {
      queued -= chunk.length;
      if (pos + chunk.length > job.size) {
        res.destroy();
        throw sizeDiffers(job.size, 'the server sent more');
      }
      await fh.write(chunk);
      pos += chunk.length;
      got.bytes += chunk.length;
      job.onBytes(pos);
      if (res.isPaused() && queued < HIGH_WATER / 2) res.resume();
      continue;
    }
    if (ended !== undefined) {
      if (ended.error !== undefined) throw new Interrupted(`the connection broke after ${pos} bytes: ${errorMessage(ended.error)}`, { cause: ended.error });
      return pos;
    }
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

/** A GET with `Range` when `have` > 0, redirects followed; resolves with the final answer's response. */
function get(url: string, have: number, signal: AbortSignal, hops: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'user-agent': 'streetbox', 'accept-encoding': 'identity' };
    if (have > 0) headers.range = `bytes=${have}-`;
    const client = url.startsWith('https:') ? https : http;
    let req: http.ClientRequest;
    try {
      req = client.get(url, { headers, signal, timeout: IDLE_TIMEOUT_MS });
    } catch (err) {
      reject(new FirmwareError('E_FW_ARTIFACT', `the artifact could not be fetched: ${errorMessage(err)}`, { cause: err }));
      return;
    }
    req.on('timeout', () => req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => reject(signal.aborted ? abortReason(signal) : new Interrupted(errorMessage(err), { cause: err })));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status < 300 || status >= 400 || status === 304 || location === undefined) {
        resolve(res);
        return;
      }
      res.resume();
      const next = new URL(location, url).toString();
      const problem = artifactUrlProblem(next);
      if (problem !== undefined) reject(new FirmwareError('E_FW_ARTIFACT', `the artifact's URL redirects where it may not: ${problem}`));
      else if (hops >= MAX_REDIRECTS) reject(new FirmwareError('E_FW_ARTIFACT', `the artifact's URL redirects more than ${MAX_REDIRECTS} times`));
      else get(next, have, signal, hops + 1).then(resolve, reject);
    });
  });
}

/** `bytes 100-199/1000` (RFC 9110 §14.4); total undefined for `*`. */
function contentRange(header: string | undefined): { start: number; total: number | undefined } | undefined {
  const m = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (m === null) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

function sizeDiffers(expected: number, found: string): FirmwareError {
  return new FirmwareError('E_FW_ARTIFACT', `the artifact's size differs: the manifest says ${expected} bytes, ${found}`);
}

async function partSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function removePart(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** The reason a fetch stopped when its signal fired: a FirmwareError the engine gave (E_FW_TIMEOUT), else E_FW_CANCELLED. */
export function abortReason(signal: AbortSignal): FirmwareError {
  const r: unknown = signal.reason;
  return r instanceof FirmwareError ? r : new FirmwareError('E_FW_CANCELLED', 'the artifact fetch was cancelled', { cause: r });
}

/** Waits `ms` on the clock; rejects with the abort reason when the signal fires first. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** `signal`, also aborted with E_FW_TIMEOUT after `timeoutMs`; dispose() stops the timer. */
export function withTimeout(clock: Clock, signal: AbortSignal, timeoutMs: number | undefined): { signal: AbortSignal; dispose: () => void } {
  if (timeoutMs === undefined) return { signal, dispose: () => undefined };
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal.reason);
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  const timer = clock.setTimeout(() => controller.abort(new FirmwareError('E_FW_TIMEOUT', `the artifact was not fetched within ${timeoutMs} ms`)), timeoutMs);
  return {
    signal: controller.signal,
    dispose: () => {
      clock.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    },
  };
}

/** `promise`, or the abort reason as soon as the signal fires. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new FirmwareError('E_FW_ARTIFACT', String(err)));
      },
    );
  });
}

/** A download shared by the fetches of one artifact. */
interface Shared {
  promise: Promise<string>;
  controller: AbortController;
  callers: number;
  progress: Set<(bytes: number) => void>;
}

/**
 * One download per artifact, whatever the number of fetches that want it: a fetch joins the one
 * under way or starts it. The last fetch to give up stops it, and returns only once it has
 * stopped (its part file closed), so what follows (a gc, a new fetch) never meets it running.
 */
export class SharedDownloads {
  private readonly running = new Map<string, Shared>();

  has(key: string): boolean {
    return this.running.has(key);
  }

  async join(key: string, run: (signal: AbortSignal, emit: (bytes: number) => void) => Promise<string>, signal: AbortSignal, onProgress?: (bytes: number) => void): Promise<string> {
    let d = this.running.get(key);
    if (d === undefined || d.controller.signal.aborted) {
      // one being stopped finishes first: two writers never share a part file
      const previous = d?.promise.catch(() => undefined) ?? Promise.resolve(undefined);
      const started: Shared = { promise: Promise.resolve(''), controller: new AbortController(), callers: 0, progress: new Set() };
      const emit = (bytes: number): void => {
        for (const cb of started.progress) cb(bytes);
      };
      started.promise = previous
        .then(() => run(started.controller.signal, emit))
        .finally(() => {
          if (this.running.get(key) === started) this.running.delete(key);
        });
      started.promise.catch(() => undefined); // each fetch gets the outcome through its own race below
      this.running.set(key, started);
      d = started;
    }
    const shared = d;
    shared.callers++;
    if (onProgress !== undefined) shared.progress.add(onProgress);
    try {
      return await raceAbort(shared.promise, signal);
    } finally {
      shared.callers--;
      if (onProgress !== undefined) shared.progress.delete(onProgress);
      if (shared.callers === 0 && this.running.get(key) === shared) {
        shared.controller.abort(new FirmwareError('E_FW_CANCELLED', 'no fetch waits for the download any more'));
        await shared.promise.catch(() => undefined);
      }
    }
  }
}
