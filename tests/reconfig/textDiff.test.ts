/** Unified diffs of configuration texts: the format of `diff -u`, minimal, bounded. */
import { describe, expect, it } from 'vitest';
import { MAX_CELLS, unifiedDiff } from '../../edge/reconfig/textDiff.js';

const labels = { a: 'version 1', b: 'version 2' };
const lines = (...ls: string[]): string => ls.map((l) => `${l}\n`).join('');

/** Applies a unified diff to `a` (the hunks checked against it): the text it describes. */
function applyDiff(a: string, diff: string): string {
  const src = a === '' ? [] : a.split(/(?<=\n)/);
  const out: string[] = [];
  const rows = diff.split('\n');
  expect(rows[0]).toBe(`--- ${labels.a}`);
  expect(rows[1]).toBe(`+++ ${labels.b}`);
  let at = 0; // lines of a consumed
  let k = 2;
  while (k < rows.length && rows[k] !== '') {
    const h = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$/.exec(rows[k]!);
    expect(h, rows[k]).not.toBeNull();
    const [aStart, aLen] = [Number(h![1]), h![2] === undefined ? 1 : Number(h![2])];
    const [bStart, bLen] = [Number(h![3]), h![4] === undefined ? 1 : Number(h![4])];
    const from = aLen === 0 ? aStart : aStart - 1;
    expect(from).toBeGreaterThanOrEqual(at);
    out.push(...src.slice(at, from));
    at = from;
    expect(bLen === 0 ? bStart : bStart - 1).toBe(out.length);
    k++;
    let seenA = 0;
    let seenB = 0;
    while (k < rows.length && /^[ +-]/.test(rows[k]!)) {
      const kind = rows[k]![0];
      const noEol = rows[k + 1] === '\\ No newline at end of file';
      const text = rows[k]!.slice(1) + (noEol ? '' : '\n');
      if (kind !== '+') {
        expect(src[at]).toBe(text);
        at++;
        seenA++;
      }
      if (kind !== '-') {
        out.push(text);
        seenB++;
      }
      k += noEol ? 2 : 1;
    }
    expect([seenA, seenB]).toEqual([aLen, bLen]);
  }
  out.push(...src.slice(at));
  return out.join('');
}

/** Lines removed plus lines added in a diff. */
function changes(diff: string): number {
  return diff.split('\n').filter((l) => /^[+-]/.test(l) && !/^(---|\+\+\+) /.test(l)).length;
}

/** The length of a longest common subsequence of lines, computed the plain way. */
function lcsLength(a: string[], b: string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    const cur = [0];
    b.forEach((y, j) => cur.push(x === y ? prev[j]! + 1 : Math.max(prev[j + 1]!, cur[j]!)));
    prev = cur;
  }
  return prev[b.length]!;
}

function splitKeep(text: string): string[] {
  return text === '' ? [] : text.split(/(?<=\n)/);
}

describe('unifiedDiff', () => {
  it('is empty for equal texts', () => {
    expect(unifiedDiff('', '', labels)).toBe('');
    expect(unifiedDiff('a: 1\n', 'a: 1\n', labels)).toBe('');
  });

  it('prints a change with three lines of context, as diff -u does', () => {
    const a = lines('gateway:', '  id: gw-1', 'buses:', '  - id: rtu1', '    port: /dev/ttyS0', '    baud: 9600', '  - id: rtu2', '    port: /dev/ttyS1');
    const b = lines('gateway:', '  id: gw-1', 'buses:', '  - id: rtu1', '    port: /dev/ttyS0', '    baud: 19200', '  - id: rtu2', '    port: /dev/ttyS1');
    expect(unifiedDiff(a, b, labels)).toBe(
      ['--- version 1', '+++ version 2', '@@ -3,6 +3,6 @@', ' buses:', '   - id: rtu1', '     port: /dev/ttyS0', '-    baud: 9600', '+    baud: 19200', '   - id: rtu2', '     port: /dev/ttyS1', ''].join('\n'),
    );
  });

  it('splits far changes into hunks, merges near ones, and takes the context asked for', () => {
    const a = lines('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l');
    const b = lines('a', 'B', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'K', 'l');
    expect(unifiedDiff(a, b, labels)).toBe(
      ['--- version 1', '+++ version 2', '@@ -1,5 +1,5 @@', ' a', '-b', '+B', ' c', ' d', ' e', '@@ -8,5 +8,5 @@', ' h', ' i', ' j', '-k', '+K', ' l', ''].join('\n'),
    );
    // with 4 lines of context the gap (8 lines) is close enough: one hunk
    expect(unifiedDiff(a, b, labels, 4).match(/^@@/gm)).toHaveLength(1);
    expect(unifiedDiff(a, b, labels, 0)).toBe(['--- version 1', '+++ version 2', '@@ -2 +2 @@', '-b', '+B', '@@ -11 +11 @@', '-k', '+K', ''].join('\n'));
  });

  it('names the line before an empty range, and marks a missing last newline', () => {
    expect(unifiedDiff('', lines('one'), labels)).toBe('--- version 1\n+++ version 2\n@@ -0,0 +1 @@\n+one\n');
    expect(unifiedDiff(lines('one', 'two'), '', labels)).toBe('--- version 1\n+++ version 2\n@@ -1,2 +0,0 @@\n-one\n-two\n');
    expect(unifiedDiff(lines('a', 'b'), lines('a', 'x', 'b'), labels, 0)).toBe('--- version 1\n+++ version 2\n@@ -1,0 +2 @@\n+x\n');
    expect(unifiedDiff('a\nb\n', 'a\nb', labels)).toBe('--- version 1\n+++ version 2\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n');
  });

  it('describes exactly the second text, with as few changed lines as possible (random texts)', () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const words = ['a', 'b', 'c', 'd', 'e'];
    const text = (n: number): string => {
      const ls = Array.from({ length: n }, () => words[random(words.length)]!);
      return ls.map((l) => `${l}\n`).join('') + (random(4) === 0 ? 'tail' : '');
    };
    for (let round = 0; round < 300; round++) {
      const a = text(random(25));
      const b = text(random(25));
      const diff = unifiedDiff(a, b, labels, random(4));
      if (a === b) {
        expect(diff).toBe('');
        continue;
      }
      expect(applyDiff(a, diff)).toBe(b);
      const [la, lb] = [splitKeep(a), splitKeep(b)];
      expect(changes(diff)).toBe(la.length + lb.length - 2 * lcsLength(la, lb));
    }
  });

  it('finds the few changes of a long text, far apart (Myers past the table)', () => {
    const a = lines(...Array.from({ length: 30_000 }, (_, i) => `line ${i}`));
    const b = a.replace('line 100\n', 'line one hundred\n').replace('line 29000\n', '');
    const diff = unifiedDiff(a, b, labels);
    expect(changes(diff)).toBe(3);
    expect(diff.match(/^@@.*$/gm)).toEqual(['@@ -98,7 +98,7 @@', '@@ -28998,7 +28998,6 @@']);
    expect(applyDiff(a, diff)).toBe(b);
  });

  it('is minimal past the table too (random edits of a long text)', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const base = Array.from({ length: 2_100 }, () => `v${random(40)}`);
    for (const edits of [0, 5, 40, 300]) {
      // the first and the last line changed: the middle is the whole text, past the table
      const next = ['first changed', ...base.slice(1, -1), 'last changed'];
      for (let e = 0; e < edits; e++) {
        const at = random(next.length);
        const what = random(3);
        if (what === 0) next.splice(at, 1);
        else if (what === 1) next.splice(at, 0, `new${random(40)}`);
        else next[at] = `v${random(40)}`;
      }
      const a = lines(...base);
      const b = lines(...next);
      const diff = unifiedDiff(a, b, labels);
      expect(applyDiff(a, diff)).toBe(b);
      expect(changes(diff)).toBe(base.length + next.length - 2 * lcsLength(splitKeep(a), splitKeep(b)));
    }
  });

  it('shows a replacement too big to match as a whole, keeping the common ends', () => {
    const n = Math.ceil(Math.sqrt(MAX_CELLS)) + 10;
    const a = lines('head', ...Array.from({ length: n }, (_, i) => `a${i}`), 'shared', 'tail');
    const b = lines('head', ...Array.from({ length: n }, (_, i) => `b${i}`), 'shared', 'tail');
    const started = Date.now();
    const diff = unifiedDiff(a, b, labels);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(diff.startsWith(`--- version 1\n+++ version 2\n@@ -1,${n + 3} +1,${n + 3} @@\n head\n-a0\n`)).toBe(true);
    expect(diff.split('\n').filter((l) => l.startsWith('-a')).length).toBe(n);
    expect(diff.split('\n').filter((l) => l.startsWith('+b')).length).toBe(n);
    expect(applyDiff(a, diff)).toBe(b);
  });
});
