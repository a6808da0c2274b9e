/** The progress line of backup and restore, on a fake clock: rewritten in place on a terminal, a few plain lines when piped. */
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../edge/progress.js';

function sink(isTTY: boolean, columns?: number) {
  const written: string[] = [];
  let t = 0;
  const progress = createProgress({ write: (s) => written.push(s), isTTY, columns }, { now: () => t, quietMs: 10_000 });
  return { written, progress, at: (ms: number) => (t = ms) };
}

const MiB = 1024 * 1024;

describe('progress', () => {
  it('on a terminal: one line rewritten at most every 100 ms, with bytes and percent, erased at the end', () => {
    const s = sink(true, 60);
    s.progress.step('backup: copying the database', 40 * MiB);
    s.at(50);
    s.progress.update(4 * MiB); // too soon: not drawn
    s.at(150);
    s.progress.update(12 * MiB);
    s.progress.end();
    expect(s.written).toEqual(['\r\x1b[Kbackup: copying the database 0.0 of 40 MiB (0 %)', '\r\x1b[Kbackup: copying the database 12 of 40 MiB (30 %)', '\r\x1b[K']);
    for (const w of s.written) expect(w.length).toBeLessThanOrEqual(3 + 59);
  });

  it('piped: a plain line when a step starts, then at most one every 10 s, never a carriage return', () => {
    const s = sink(false);
    s.progress.step('restore: unpacking', 100 * MiB);
    s.at(5_000);
    s.progress.update(10 * MiB);
    s.at(10_000);
    s.progress.update(50 * MiB);
    s.progress.step('restore: checking');
    s.progress.end();
    expect(s.written).toEqual(['restore: unpacking (100 MiB)\n', 'restore: unpacking 50 of 100 MiB (50 %)\n', 'restore: checking\n']);
  });
});

describe('progress of rows (export)', () => {
  const rows = (isTTY: boolean) => {
    const written: string[] = [];
    let t = 1000;
    const progress = createProgress({ write: (s) => written.push(s), isTTY }, { unit: 'rows', piped: 'quiet', delayMs: 300, now: () => t });
    return { written, progress, at: (ms: number) => (t = ms) };
  };

  it('on a terminal: nothing for short work, then a live count with its rate and a summary line', () => {
    const s = rows(true);
    s.progress.step('export readings');
    s.at(1200);
    s.progress.update(1000); // before the delay: quiet
    expect(s.written).toEqual([]);
    s.at(2000);
    s.progress.update(500_000);
    s.at(3000);
    s.progress.update(1_000_000);
    s.progress.end();
    expect(s.written).toEqual([
      '\r\x1b[Kexport readings: 500,000 rows · 500,000 rows/s',
      '\r\x1b[Kexport readings: 1,000,000 rows · 500,000 rows/s',
      '\r\x1b[Kexport readings: 1,000,000 rows in 2.0 s (500,000 rows/s)\n',
    ]);
  });

  it('piped: nothing at all', () => {
    const s = rows(false);
    s.progress.step('export readings');
    s.at(60_000);
    s.progress.update(10_000_000);
    s.progress.end();
    expect(s.written).toEqual([]);
  });
});
