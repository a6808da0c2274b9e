/**
 * `npm run bench [name…]`: runs bench/<name>.ts (all of bench/*.ts but this runner and lib.ts
 * by default), one after the other, prints a table and writes bench/results/<name>.json.
 */
/* eslint-disable no-console -- a command-line runner prints its table */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchDir, table, writeResult, type BenchResult } from './lib.js';

function discover(): string[] {
  return readdirSync(benchDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== 'run.ts' && f !== 'lib.ts')
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(): Promise<number> {
  const available = discover();
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !available.includes(w));
  if (unknown.length > 0) {
    console.error(`unknown bench: ${unknown.join(', ')} (available: ${available.join(', ')})`);
    return 2;
  }
  const names = wanted.length > 0 ? wanted : available;
  const results: BenchResult[] = [];
  let failed = 0;
  for (const name of names) {
    console.error(`bench ${name}…`);
    try {
      const mod = (await import(pathToFileURL(join(benchDir, `${name}.ts`)).href)) as { run?: () => Promise<BenchResult | BenchResult[]> };
      if (typeof mod.run !== 'function') throw new Error(`bench/${name}.ts exports no run()`);
      const out = await mod.run();
      // A bench may measure several things (bench/lorawan.ts: throughput and latency).
      for (const r of Array.isArray(out) ? out : [out]) {
        const file = writeResult(r);
        console.error(`  wrote ${file}`);
        results.push(r);
      }
    } catch (err) {
      failed++;
      console.error(`bench ${name} failed:`, err);
    }
  }
  console.log(table(results));
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
