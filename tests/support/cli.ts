import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'edge/cli.ts');

/**
 * The node arguments that run the CLI: from the TypeScript sources (--import tsx) by default, or,
 * with STREETBOX_TEST_CLI=bundle (`npm test`, which builds just before), the built bundle as a user
 * runs it (bin/streetbox.js): the same code, and half the CPU of a tsx start (about 0.6 s against
 * 1.5 s a run, over some 150 runs of the suite). `npx vitest run <file>` runs the sources, so it
 * never tests a stale bundle.
 */
export const CLI_ARGS: readonly string[] = process.env['STREETBOX_TEST_CLI'] === 'bundle' ? [join(ROOT, 'bin/streetbox.js')] : ['--import', 'tsx', CLI];

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns the CLI (CLI_ARGS: the sources, or the bundle under `npm test`), as a user runs it. */
export function spawnCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [...CLI_ARGS, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, STREETBOX_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawnCli(args, opts);
  return collect(child, opts.timeoutMs ?? 30_000);
}

export function collect(child: ChildProcess, timeoutMs: number): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`CLI did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // let the pipes drain
      setImmediate(() => done({ code, signal, stdout, stderr }));
    });
  });
}

/** A temp dir with a devices.yaml written from `yaml`; removed by cleanup(). */
export function tempGateway(yaml: string): { dir: string; config: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-cli-'));
  const config = join(dir, 'devices.yaml');
  writeFileSync(config, yaml);
  return { dir, config, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The smallest gateway with a device: one simulated streetlight controller over Modbus TCP, no broker, no API. */
export function oneLampGateway(id: string): ReturnType<typeof tempGateway> {
  return tempGateway(`
gateway: { id: ${id} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms }
broker: { enabled: false }
api: { enabled: false }
simulate: true
`);
}
