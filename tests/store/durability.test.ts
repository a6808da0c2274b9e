/**
 * Committed means committed: a child ingests through BatchWriter (durability normal) and is
 * SIGKILLed at random moments, 20 times on the same file. After every kill each batch the child
 * reported committed is there, seqs never go back, and the file passes integrity_check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'ingestChild.ts');
const RUNS = 20;

interface Batch {
  run: number;
  firstSeq: number;
  lastSeq: number;
  count: number;
}

const sandbox = new Sandbox();
let child: ChildProcess | undefined;

afterAll(() => {
  child?.kill('SIGKILL');
  sandbox.cleanup();
});

/** Runs one child until killed; returns the batches it reported (complete lines only). */
async function runAndKill(path: string, run: number): Promise<{ batches: Batch[]; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, path, String(run)], {
    cwd: join(import.meta.dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let out = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const kill = (): void => {
    proc.kill('SIGKILL');
  };
  if (run % 4 === 0) {
    // anywhere from startup (open, migrations, recovery) on
    setTimeout(kill, Math.random() * 500);
  } else {
    const ready = new Promise<void>((resolve) => {
      const check = (): void => {
        if (out.includes('ready')) resolve();
      };
      proc.stdout.on('data', check);
      void exited.then(() => resolve());
    });
    await ready;
    setTimeout(kill, 10 + Math.random() * 250);
  }
  await exited;
  // drain what the pipe still holds
  await new Promise((resolve) => setImmediate(resolve));
  child = undefined;
  const lines = out.split('\n').slice(0, -1); // the last piece has no newline: not complete
  const batches: Batch[] = [];
  for (const line of lines) {
    const m = /^(\d+) (\d+) (\d+) (\d+)$/.exec(line);
    if (m) batches.push({ run: Number(m[1]), firstSeq: Number(m[2]), lastSeq: Number(m[3]), count: Number(m[4]) });
  }
  return { batches, stderr };
}

describe('durability under SIGKILL', () => {
  it('keeps every reported batch, never reuses a seq and stays intact over 20 kills', async () => {
    const path = sandbox.file('durability.db');
    const committed: Batch[] = [];
    let maxSeqBefore = 0;
    let reportedTotal = 0;
    for (let run = 1; run <= RUNS; run++) {
      const { batches, stderr } = await runAndKill(path, run);
      // the child never fails on its own: it is only ever killed
      expect(stderr).not.toMatch(/Error/);
      for (const b of batches) {
        expect(b.run).toBe(run);
        expect(b.lastSeq - b.firstSeq + 1).toBe(b.count);
      }
      // seqs strictly increase across kills: the new run starts after everything the file had
      if (batches.length > 0) expect((batches[0] as Batch).firstSeq).toBeGreaterThan(maxSeqBefore);
      for (let i = 1; i < batches.length; i++) {
        expect((batches[i] as Batch).firstSeq).toBe((batches[i - 1] as Batch).lastSeq + 1);
      }
      committed.push(...batches);
      reportedTotal += batches.length;

      const db = new Database(path);
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        const inRange = db.prepare(
          `SELECT count(*) AS n, min(p.device) AS d1, max(p.device) AS d2 FROM reading r JOIN point p ON p.id = r.point_id
           WHERE r.seq BETWEEN ? AND ?`,
        );
        for (const b of committed) {
          const row = inRange.get(b.firstSeq, b.lastSeq) as { n: number; d1: string; d2: string };
          expect(row, `run ${b.run} batch ${b.firstSeq}..${b.lastSeq}`).toEqual({ n: b.count, d1: `run-${b.run}`, d2: `run-${b.run}` });
        }
        // within a run, the values (the child's counter) follow seq order without a gap
        const values = db
          .prepare(`SELECT r.value FROM reading r JOIN point p ON p.id = r.point_id WHERE p.device = ? ORDER BY r.seq`)
          .pluck()
          .all(`run-${run}`) as number[];
        values.forEach((v, i) => expect(v).toBe(i));
        const maxSeq = (db.prepare('SELECT max(seq) FROM reading').pluck().get() as number | null) ?? 0;
        expect(maxSeq).toBeGreaterThanOrEqual(maxSeqBefore);
        maxSeqBefore = Math.max(maxSeq, (db.prepare("SELECT value FROM meta WHERE key = 'last_seq'").pluck().get() as number | undefined) ?? 0);
      } finally {
        db.close();
      }
    }
    // the kills did land while data was flowing
    expect(reportedTotal).toBeGreaterThan(RUNS);
  }, 60_000);
});
