/**
 * No import cycles under edge/: a file never reaches itself through its imports, type-only
 * imports and re-exports included (a cycle of types still ties the files into one knot that
 * must be read, and moved, together). The imports are read by TypeScript's own pre-processor
 * (static, type-only, re-exports and `import('…')` with a literal), so comments and strings do
 * not count. When this fails, move what both sides share into a file of its own, as
 * edge/cliIo.ts holds the CliIo of edge/cli.ts and its command files.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const EDGE = join(ROOT, 'edge');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The files of the tree a file imports: relative specifiers, `./x.js` resolved to `./x.ts` where that is the source. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const out: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const target = resolve(dirname(file), fileName);
    const candidates = [target.replace(/\.js$/, '.ts'), target, `${target}.ts`, join(target, 'index.ts')];
    const found = candidates.find((c) => existsSync(c) && c.startsWith(`${EDGE}/`) && /\.(ts|js)$/.test(c));
    if (found) out.push(found);
  }
  return out;
}

/** The strongly connected components of more than one file, or of a file importing itself (Tarjan). */
function importCycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      scc.push(w);
      if (w === v) break;
    }
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

describe('import cycles', () => {
  it('finds a cycle in a graph that has one, and none in a chain', () => {
    expect(importCycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
    expect(importCycles(new Map([['a', ['a']]]))).toEqual([['a']]);
    expect(importCycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]]))).toEqual([]);
  });

  it('edge/ has none', () => {
    const files = sourceFiles(EDGE);
    expect(files.length).toBeGreaterThan(50);
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    // the reader sees the imports: edge/cli.ts reaches its command files
    expect(graph.get(join(EDGE, 'cli.ts'))).toContain(join(EDGE, 'control/cli.ts'));
    const cycles = importCycles(graph).map((c) => c.map((f) => relative(ROOT, f)).join(' ↔ '));
    expect(cycles).toEqual([]);
  });
});
