/**
 * Progress of long CLI work (backup, restore, an export of millions of rows) on stderr, never
 * on stdout (which carries the result a script reads). On a terminal: one live line, rewritten
 * in place at most ten times a second (`backup: copying the database 12.3 of 40.1 MiB (30 %)`,
 * `export readings: 1,200,000 rows · 410,000 rows/s`) and, at the end, erased (bytes) or
 * replaced by a summary (rows). Piped: a plain line when a step starts and at most one every
 * `quietMs` while it lasts, or nothing at all (`piped: 'quiet'`).
 */

export interface ProgressSink {
  write: (text: string) => void;
  isTTY: boolean;
  /** the terminal's width; lines are cut to it */
  columns?: number | undefined;
}

export interface Progress {
  /** A new step: what it does and, if known, its total (bytes or rows). */
  step(label: string, total?: number): void;
  /** How much of the current step is done. */
  update(done: number): void;
  /** Ends the live line (a terminal) before the result is printed. */
  end(): void;
}

export interface ProgressOptions {
  /** what is counted: bytes (MiB and percent) or rows (a count and a rate) */
  unit?: 'bytes' | 'rows';
  /** piped: plain lines (default) or nothing */
  piped?: 'lines' | 'quiet';
  /** on a terminal, nothing is drawn before a step has run this long (short work stays quiet) */
  delayMs?: number;
  now?: () => number;
  /** piped: the least time between two plain lines of one step */
  quietMs?: number;
}

export const noProgress: Progress = { step: () => {}, update: () => {}, end: () => {} };

const MiB = 1024 * 1024;
/** ECMA-48: CR back to the start of the line, ESC [K erases to its end (EL, §8.3.41) */
const REWRITE = '\r\x1b[K';

const mib = (bytes: number): string => (bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0);
const count = (n: number): string => n.toLocaleString('en-US');

export function createProgress(sink: ProgressSink, opts: ProgressOptions = {}): Progress {
  const now = opts.now ?? Date.now;
  const quietMs = opts.quietMs ?? 10_000;
  const unit = opts.unit ?? 'bytes';
  const delayMs = opts.delayMs ?? 0;
  const quiet = !sink.isTTY && opts.piped === 'quiet';
  let label = '';
  let total: number | undefined;
  let done = 0;
  let started = 0;
  let last = 0;
  let live = false;

  const rate = (t: number): number => Math.round((done * 1000) / Math.max(1, t - started));
  const describe = (t: number): string => {
    if (unit === 'rows') return `${label}: ${count(done)} rows · ${count(rate(t))} rows/s`;
    if (total === undefined || total <= 0) return done > 0 ? `${label} ${mib(done)} MiB` : label;
    const pct = Math.min(100, Math.floor((done / total) * 100));
    return `${label} ${mib(Math.min(done, total))} of ${mib(total)} MiB (${pct} %)`;
  };
  const draw = (t: number): void => {
    const width = sink.columns !== undefined && sink.columns > 10 ? sink.columns - 1 : 200;
    sink.write(`${REWRITE}${describe(t).slice(0, width)}`);
    live = true;
  };

  return {
    step(l, tot) {
      label = l;
      total = tot;
      done = 0;
      started = last = now();
      if (quiet) return;
      if (sink.isTTY) {
        if (delayMs === 0) draw(started);
      } else sink.write(`${total === undefined || unit === 'rows' ? label : `${label} (${mib(total)} MiB)`}\n`);
    },
    update(d) {
      done = d;
      if (quiet) return;
      const t = now();
      if (sink.isTTY) {
        if (t - started >= delayMs && (t - last >= 100 || !live)) {
          last = t;
          draw(t);
        }
      } else if (t - last >= quietMs) {
        last = t;
        sink.write(`${describe(t)}\n`);
      }
    },
    end() {
      if (!live) return;
      const t = now();
      // rows: the live line becomes a summary; bytes: it is erased before the result is printed
      sink.write(unit === 'rows' ? `${REWRITE}${label}: ${count(done)} rows in ${((t - started) / 1000).toFixed(1)} s (${count(rate(t))} rows/s)\n` : REWRITE);
      live = false;
    },
  };
}
