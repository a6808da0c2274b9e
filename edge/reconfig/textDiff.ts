/**
 * Unified diff of two configuration texts (`streetbox config diff`, GET /api/v1/config/diff):
 * the common lines are trimmed off both ends, the middle is matched line by line with as few
 * changed lines as possible, and the changes are printed with `context` lines around them, as
 * `diff -u` does. The work is bounded: when the middle parts' line counts multiply to at most
 * MAX_CELLS, a longest-common-subsequence table; past that, Myers' O(ND) search (a long file with
 * a few edits far apart), given up once it needs more than MAX_CELLS trace cells or MAX_STEPS
 * steps, and then the middle is shown as a whole replacement. Callers pass redacted texts
 * (redactText.ts): this file never sees a secret it was not given.
 */

/** Largest LCS table (cells, 4 bytes each: 16 MB), and largest Myers trace, computed. */
export const MAX_CELLS = 4_000_000;
/** Line comparisons and trace cells Myers' search may spend before the middle is shown replaced whole. */
export const MAX_STEPS = 20_000_000;

export interface DiffLabels {
  a: string;
  b: string;
}

/** One line of a text, with its newline when it has one (the last line may not). */
type Line = string;

type Op = { kind: ' ' | '-' | '+'; line: Line };

/** The diff of `a` to `b` in unified format; '' when they are equal. */
export function unifiedDiff(a: string, b: string, labels: DiffLabels, context = 3): string {
  if (a === b) return '';
  const ops = diffLines(splitLines(a), splitLines(b));
  const hunks = groupHunks(ops, Math.max(0, Math.floor(context)));
  if (hunks.length === 0) return '';
  return `--- ${labels.a}\n+++ ${labels.b}\n${hunks.join('')}`;
}

/** Lines with their terminators: "a\nb" is ["a\n", "b"], so a missing last newline is a difference. */
function splitLines(text: string): Line[] {
  if (text === '') return [];
  const lines = text.split('\n').map((l) => `${l}\n`);
  const last = lines.length - 1;
  if (text.endsWith('\n')) lines.pop();
  else lines[last] = lines[last]!.slice(0, -1);
  return lines;
}

/** The edit script: every line of a and b once, in order, as kept, removed or added. */
function diffLines(a: Line[], b: Line[]): Op[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const ops: Op[] = a.slice(0, start).map((line) => ({ kind: ' ', line }));
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const middle = midA.length * midB.length <= MAX_CELLS ? lcsOps(midA, midB) : myersOps(midA, midB);
  if (middle !== undefined) {
    ops.push(...middle);
  } else {
    for (const line of midA) ops.push({ kind: '-', line });
    for (const line of midB) ops.push({ kind: '+', line });
  }
  for (const line of a.slice(endA)) ops.push({ kind: ' ', line });
  return ops;
}

/** The edit script of a longest common subsequence; removals before additions within a change. */
function lcsOps(a: Line[], b: Line[]): Op[] {
  const n = a.length;
  const m = b.length;
  const width = m + 1;
  // suffix table: cell (i, j) is the LCS length of a[i..] and b[j..]
  const table = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * width + j] = a[i] === b[j] ? table[(i + 1) * width + j + 1]! + 1 : Math.max(table[(i + 1) * width + j]!, table[i * width + j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i++]! });
      j++;
    } else if (table[(i + 1) * width + j]! >= table[i * width + j + 1]!) {
      ops.push({ kind: '-', line: a[i++]! });
    } else {
      ops.push({ kind: '+', line: b[j++]! });
    }
  }
  while (i < n) ops.push({ kind: '-', line: a[i++]! });
  while (j < m) ops.push({ kind: '+', line: b[j++]! });
  return ops;
}

/**
 * Myers' shortest edit script (the greedy forward search, with the furthest reach of every
 * diagonal kept per step for the way back); undefined when it would pass MAX_CELLS or MAX_STEPS.
 */
function myersOps(a: Line[], b: Line[]): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  const offset = n + m + 1;
  // v[offset + k]: the furthest x reached on diagonal k = x - y
  const v = new Int32Array(2 * offset + 1);
  const trace: Int32Array[] = [];
  let cells = 0;
  let steps = 0;
  for (let d = 0; d <= n + m; d++) {
    // the reach after step d - 1, for diagonals -d..d
    trace.push(v.slice(offset - d, offset + d + 1));
    cells += 2 * d + 1;
    steps += 2 * d + 1;
    if (cells > MAX_CELLS || steps > MAX_STEPS) return undefined;
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
        steps++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return removalsFirst(myersBacktrack(a, b, trace, d));
      if (steps > MAX_STEPS) return undefined;
    }
  }
  return undefined;
}

/** The script from the end back to the start, through the reach each step had: kept, removed and added lines in order. */
function myersBacktrack(a: Line[], b: Line[], trace: Int32Array[], last: number): Op[] {
  const ops: Op[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = last; d > 0; d--) {
    const before = trace[d]!; // index k + d
    const k = x - y;
    const reach = (diagonal: number): number => before[diagonal + d]!;
    const prevK = k === -d || (k !== d && reach(k - 1) < reach(k + 1)) ? k + 1 : k - 1;
    const prevX = reach(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: ' ', line: a[--x]! });
      y--;
    }
    if (prevK === k + 1) ops.push({ kind: '+', line: b[--y]! });
    else ops.push({ kind: '-', line: a[--x]! });
  }
  // step 0: the lines both start with
  while (x > 0) ops.push({ kind: ' ', line: a[--x]! });
  return ops.reverse();
}

/** Within each run of changes, the removed lines before the added ones (as diff -u shows them). */
function removalsFirst(ops: Op[]): Op[] {
  const out: Op[] = [];
  let added: Op[] = [];
  for (const op of ops) {
    if (op.kind === '+') {
      added.push(op);
      continue;
    }
    if (op.kind === ' ' && added.length > 0) {
      out.push(...added);
      added = [];
    }
    out.push(op);
  }
  out.push(...added);
  return out;
}

/** The hunks of the script: runs of changes closer than 2 × context merged, each with its context around. */
function groupHunks(ops: Op[], context: number): string[] {
  const changes: number[] = [];
  // linesBefore[k]: the lines of a and of b before op k
  const linesBefore: [number, number][] = [];
  let inA = 0;
  let inB = 0;
  ops.forEach((op, k) => {
    linesBefore.push([inA, inB]);
    if (op.kind !== '+') inA++;
    if (op.kind !== '-') inB++;
    if (op.kind !== ' ') changes.push(k);
  });
  const hunks: string[] = [];
  let k = 0;
  while (k < changes.length) {
    let last = k;
    while (last + 1 < changes.length && changes[last + 1]! - changes[last]! - 1 <= 2 * context) last++;
    const from = Math.max(0, changes[k]! - context);
    const to = Math.min(ops.length, changes[last]! + context + 1);
    hunks.push(formatHunk(ops, from, to, linesBefore[from]!));
    k = last + 1;
  }
  return hunks;
}

/** One hunk: its `@@ -l,s +l,s @@` header (line numbers 1-based) and its lines. */
function formatHunk(ops: Op[], from: number, to: number, [beforeA, beforeB]: [number, number]): string {
  let lenA = 0;
  let lenB = 0;
  let body = '';
  for (let k = from; k < to; k++) {
    const op = ops[k]!;
    if (op.kind !== '+') lenA++;
    if (op.kind !== '-') lenB++;
    body += op.line.endsWith('\n') ? `${op.kind}${op.line}` : `${op.kind}${op.line}\n\\ No newline at end of file\n`;
  }
  return `@@ -${range(beforeA, lenA)} +${range(beforeB, lenB)} @@\n${body}`;
}

/** `start,len` as diff -u writes it: an empty range names the line before it, a one-line range has no length. */
function range(before: number, len: number): string {
  if (len === 0) return `${before},0`;
  if (len === 1) return String(before + 1);
  return `${before + 1},${len}`;
}
