/**
 * Shared helpers of the benchmarks: the result every bench returns (DESIGN.md "Benchmarks"),
 * timing, medians, the machine description, writing bench/results/<name>.json and the table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface Machine {
  cpus: number;
  node: string;
}

export interface BenchResult {
  name: string;
  /** what is measured, e.g. "ingest throughput" */
  metric: string;
  value: number;
  unit: string;
  /** what the value is compared with, measured in the same run */
  baseline: string;
  baselineValue: number;
  /** value / baselineValue */
  ratio: number;
  /** the target, in words: "ratio >= 0.7 and value >= 200000" */
  target: string;
  machine: Machine;
  /** ISO time of the run */
  at: string;
  /** whether the target held (optional: a bench may not judge itself) */
  pass?: boolean;
  /** anything else worth keeping: rounds, parameters */
  details?: Record<string, unknown>;
}

/** What a bench module exports. */
export type BenchFn = () => Promise<BenchResult>;

export const benchDir = dirname(fileURLToPath(import.meta.url));
export const resultsDir = join(benchDir, 'results');

export function machine(): Machine {
  return { cpus: cpus().length, node: process.version };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Milliseconds taken by `fn` (monotonic clock). */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function result(fields: Omit<BenchResult, 'ratio' | 'machine' | 'at'> & { ratio?: number }): BenchResult {
  return {
    ...fields,
    ratio: fields.ratio ?? (fields.baselineValue === 0 ? NaN : fields.value / fields.baselineValue),
    machine: machine(),
    at: new Date().toISOString(),
  };
}

export function writeResult(r: BenchResult, dir: string = resultsDir): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${r.name}.json`);
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}

/** A plain-text table of results, one row per bench. */
export function table(results: readonly BenchResult[]): string {
  const head = ['bench', 'value', 'unit', 'baseline', 'ratio', 'target', 'pass'];
  const rows = results.map((r) => [
    r.name,
    fmt(r.value),
    r.unit,
    `${fmt(r.baselineValue)} (${r.baseline})`,
    fmt(r.ratio),
    r.target,
    r.pass === undefined ? '' : r.pass ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * The devices.yaml lines of a bench's in-process gateway beside its buses and devices: no broker,
 * API or Node-RED; deployments signed with `publicPem`; lights that may update at any hour.
 */
export function firmwareGatewayYaml(publicPem: string): string[] {
  const pem = publicPem
    .split('\n')
    .filter(Boolean)
    .map((l) => `      ${l}`);
  return [
    'broker: { enabled: false }',
    'api: { enabled: false }',
    'nodeRed: { enabled: false }',
    'firmware:',
    '  signingKeys:',
    '    - |',
    ...pem,
    // all day: two halves (a window from 00:00 to 00:00 is refused by the config as empty)
    "  lights: { byDay: false, windows: [ { from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' } ] }",
  ];
}

/**
 * Runs a bench's `run()` when its file is the script node was started with (`tsx bench/x.ts`,
 * beside `npm run bench x`): writes the results and prints the table; a failure sets the exit code.
 */
export function runWhenMain(url: string, name: string, run: () => Promise<BenchResult | BenchResult[]>): void {
  if (url !== pathToFileURL(process.argv[1] ?? '').href) return;
  run().then(
    (out) => {
      const rs = Array.isArray(out) ? out : [out];
      for (const r of rs) writeResult(r);
      process.stdout.write(table(rs) + '\n');
    },
    (err: unknown) => {
      process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
