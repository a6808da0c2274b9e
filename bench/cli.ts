/**
 * How fast the README's way of running the CLI answers: `bin/streetbox.js --version` and
 * `bin/streetbox.js validate devices.yaml` (loads the config schema and the shipped demo), against
 * a bare `node -e 0` in the same run, medians of interleaved rounds. Target: under 1 s, and the
 * ratio to bare node is what to watch on a noisy machine. For comparison the same run measures
 * `npx --no -- streetbox --version` (npm resolves the project itself as a package: it installs it
 * into its cache first), which the README no longer uses.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, result, type BenchResult } from './lib.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const ROUNDS = 7;

function wall(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return performance.now() - t0;
}

export async function run(): Promise<BenchResult[]> {
  const bare: number[] = [];
  const version: number[] = [];
  const validate: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    bare.push(wall(process.execPath, ['-e', '0']));
    version.push(wall(process.execPath, ['bin/streetbox.js', '--version']));
    validate.push(wall(process.execPath, ['bin/streetbox.js', 'validate', 'devices.yaml']));
  }
  const npx = wall('npx', ['--no', '--', 'streetbox', '--version']);
  const b = median(bare);
  const v = median(version);
  const val = median(validate);
  const details = { rounds: ROUNDS, bareMs: bare.map(Math.round), versionMs: version.map(Math.round), validateMs: validate.map(Math.round), npxVersionMs: Math.round(npx) };
  return [
    result({ name: 'cli-start', metric: 'bin/streetbox.js --version, wall time', value: Math.round(v), unit: 'ms', baseline: 'node -e 0', baselineValue: Math.round(b), target: 'value < 1000 ms', pass: v < 1000, details }),
    result({ name: 'cli-validate', metric: 'bin/streetbox.js validate devices.yaml, wall time', value: Math.round(val), unit: 'ms', baseline: 'node -e 0', baselineValue: Math.round(b), target: 'value < 1000 ms', pass: val < 1000, details }),
  ];
}
