/**
 * `npm run bench footprint`: the demo gateway's memory and start time, with and without the
 * embedded Node-RED. The gateway runs as a cabinet runs it, built (`node bin/streetbox.js start`
 * on the bundle, built here first with `npm run build`; BENCH_FOOTPRINT_RUNNER=tsx runs
 * `node --import tsx edge/cli.ts start` instead), on a temp copy of the demo devices.yaml: its
 * own data directory, every port 0 (free), the simulators on; `nodeRed.enabled` toggled.
 *
 * - ready: from spawn to the gateway's "gateway running" log line (every component started;
 *   with Node-RED, its flows running).
 * - RSS: the largest VmRSS of /proc/<pid>/status sampled every 250 ms for BENCH_FOOTPRINT_SETTLE_MS
 *   (default 5 s) after ready, while the demo polls and the adaptive flow runs.
 * Baselines, same run: a bare `node` process (RSS, time to its first output) for the gateway
 * without Node-RED; the gateway without Node-RED for the one with it.
 * Targets: without Node-RED ≤ 80 MB RSS, with ≤ 160 MB, ready within 3 s (medians of the rounds).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse, stringify } from 'yaml';
import { startScriptEnv } from '../tests/helpers/startScript.js';
import { benchDir, median, result, table, writeResult, type BenchResult } from './lib.js';

const ROOT = join(benchDir, '..');
const ROUNDS = Number(process.env.BENCH_FOOTPRINT_ROUNDS ?? 3);
const SETTLE_MS = Number(process.env.BENCH_FOOTPRINT_SETTLE_MS ?? 5000);
const RUNNER = process.env.BENCH_FOOTPRINT_RUNNER === 'tsx' ? 'tsx' : 'compiled';
/**
 * The environment `npm start` (and the systemd unit) runs the gateway with: its memory tuning
 * (NODE_OPTIONS=--max-semi-space-size=1 --v8-pool-size=1, MALLOC_ARENA_MAX=2), read from package.json's start
 * script so the figure is that of the shipped command. BENCH_FOOTPRINT_UNTUNED=1 measures
 * without it; BENCH_FOOTPRINT_NODE_FLAGS adds V8 flags.
 */
const START_ENV: Record<string, string> = process.env.BENCH_FOOTPRINT_UNTUNED === '1' ? {} : startScriptEnv();
const NODE_FLAGS = (process.env.BENCH_FOOTPRINT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
const READY_TIMEOUT_MS = 30_000;
const MB = 1024 * 1024;
const TARGET = { rssWithout: 80, rssWith: 160, readyMs: 3000 };

interface Sample {
  readyMs: number;
  rssMb: number;
}

const log = (line: string): void => void process.stderr.write(`  ${line}\n`);

/** The demo devices.yaml, in a temp dir of its own: data there, free ports, Node-RED on or off. */
function demoConfig(dir: string, nodeRed: boolean): string {
  const cfg = parse(readFileSync(join(ROOT, 'devices.yaml'), 'utf8')) as Record<string, Record<string, unknown> & { port?: number }> & { buses: { type: string; port?: number }[] };
  cfg.storage!.path = join(dir, 'data', 'streetbox.db');
  for (const b of cfg.buses) if (b.type === 'tcp') b.port = 0;
  if (cfg.broker) cfg.broker.port = 0;
  if (cfg.api) cfg.api.port = 0;
  if (cfg.lorawan) cfg.lorawan.port = 0;
  cfg.nodeRed = nodeRed ? { enabled: true, credentialSecret: 'bench-footprint-secret', users: [{ username: 'technician', password: 'bench-footprint-password' }] } : { enabled: false };
  const file = join(dir, 'devices.yaml');
  writeFileSync(file, stringify(cfg));
  return file;
}

function vmRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / MB : NaN;
  } catch {
    return NaN;
  }
}

/** Spawns `args`, waits for a stdout line matching `ready`, samples RSS, then stops it with SIGTERM. */
async function measure(args: string[], ready: RegExp, settleMs: number, env: Record<string, string> = {}): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env, STREETBOX_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const readyMs = await new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`not ready within ${READY_TIMEOUT_MS} ms: ${stderr}`)), READY_TIMEOUT_MS);
      child.stdout.on('data', (d: Buffer) => {
        buf = (buf + d.toString()).slice(-65_536);
        if (ready.test(buf)) {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code} before ready: ${stderr || buf.slice(-2000)}`));
      });
    });
    let rssMb = vmRss(child.pid!);
    const until = performance.now() + settleMs;
    while (performance.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      rssMb = Math.max(rssMb, vmRss(child.pid!));
    }
    return { readyMs, rssMb };
  } finally {
    child.stdout.resume();
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }
}

function gatewayArgs(config: string): string[] {
  const script = RUNNER === 'tsx' ? ['--import', 'tsx', join(ROOT, 'edge/cli.ts')] : [join(ROOT, 'bin/streetbox.js')];
  return [...NODE_FLAGS, ...script, 'start', '--config', config];
}

export async function run(): Promise<BenchResult[]> {
  if (RUNNER === 'compiled') {
    log('building (npm run build: type check, then the bundle)…');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
  }
  const bare: Sample[] = [];
  const without: Sample[] = [];
  const withNr: Sample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bare.push(await measure(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], /ready/, SETTLE_MS));
    for (const [nodeRed, into] of [
      [false, without],
      [true, withNr],
    ] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-footprint-'));
      try {
        const s = await measure(gatewayArgs(demoConfig(dir, nodeRed)), /"msg":"gateway running"/, SETTLE_MS, START_ENV);
        into.push(s);
        log(`round ${round + 1}: ${nodeRed ? 'with' : 'without'} Node-RED: ready ${Math.round(s.readyMs)} ms, RSS ${s.rssMb.toFixed(1)} MB`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const med = (xs: Sample[], k: keyof Sample): number => median(xs.map((x) => x[k]));
  const details = (xs: Sample[]) => ({ runner: RUNNER, env: START_ENV, nodeFlags: NODE_FLAGS, rounds: ROUNDS, settleMs: SETTLE_MS, samples: xs.map((x) => ({ readyMs: Math.round(x.readyMs), rssMb: Number(x.rssMb.toFixed(1)) })) });
  const rssWithout = med(without, 'rssMb');
  const rssWith = med(withNr, 'rssMb');
  const readyWithout = med(without, 'readyMs');
  const readyWith = med(withNr, 'readyMs');
  const round1 = (n: number): number => Math.round(n * 10) / 10;
  return [
    result({ name: 'footprint-rss', metric: 'demo gateway RSS without Node-RED', value: round1(rssWithout), unit: 'MB', baseline: 'bare node process', baselineValue: round1(med(bare, 'rssMb')), target: `value <= ${TARGET.rssWithout} MB`, pass: rssWithout <= TARGET.rssWithout, details: details(without) }),
    result({ name: 'footprint-rss-nodered', metric: 'demo gateway RSS with Node-RED', value: round1(rssWith), unit: 'MB', baseline: 'demo gateway without Node-RED', baselineValue: round1(rssWithout), target: `value <= ${TARGET.rssWith} MB`, pass: rssWith <= TARGET.rssWith, details: details(withNr) }),
    result({ name: 'footprint-ready', metric: 'demo gateway start to ready without Node-RED', value: Math.round(readyWithout), unit: 'ms', baseline: 'bare node process start', baselineValue: Math.round(med(bare, 'readyMs')), target: `value <= ${TARGET.readyMs} ms`, pass: readyWithout <= TARGET.readyMs, details: details(without) }),
    result({ name: 'footprint-ready-nodered', metric: 'demo gateway start to ready with Node-RED', value: Math.round(readyWith), unit: 'ms', baseline: 'demo gateway without Node-RED', baselineValue: Math.round(readyWithout), target: `value <= ${TARGET.readyMs} ms`, pass: readyWith <= TARGET.readyMs, details: details(withNr) }),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await run();
  for (const r of results) writeResult(r);
  process.stdout.write(`${table(results)}\n`);
}
