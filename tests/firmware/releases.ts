/**
 * Releases for the self-update tests: bundles made as scripts/bundle.ts makes dist/streetbox.mjs
 * (same externals and banner, not minified), release directories laid out as selfUpdate.ts
 * expects, and a stand-in for systemd that starts deploy/streetbox-launch again as the unit's
 * Restart= rules say.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { GATEWAY_BUILD } from '../../scripts/bundle.js';
import { ROOT } from '../support/cli.js';

export const LAUNCHER = join(ROOT, 'deploy/streetbox-launch');

/** Bundles `entry` (a path under ROOT) to `outfile` as the gateway is bundled; `externals` adds modules left unresolved. */
export async function bundle(entry: string, outfile: string, opts: { externals?: RegExp; nodePaths?: string[] } = {}): Promise<void> {
  const plugins: Plugin[] = [];
  const externals = opts.externals;
  if (externals) {
    plugins.push({
      name: 'externals',
      setup(b) {
        b.onResolve({ filter: externals }, (a) => ({ path: a.path, external: true }));
      },
    });
  }
  await build({
    ...GATEWAY_BUILD,
    entryPoints: [entry],
    outfile,
    logLevel: 'error',
    plugins,
    ...(opts.nodePaths ? { nodePaths: opts.nodePaths } : {}),
  });
}

/**
 * `<releases>/<version>/`: package.json saying `version`, dist/streetbox.mjs (a copy of `bundleFile`,
 * or `script` as its text), node_modules and edge linked to the repository's (the data files a
 * gateway reads through asset()), and behaviour.json when given.
 */
export function makeRelease(releases: string, version: string, what: { bundleFile: string } | { script: string }, behaviour?: object): string {
  const dir = join(releases, version);
  mkdirSync(join(dir, 'dist'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'streetbox', version, type: 'module' }));
  if ('bundleFile' in what) copyFileSync(what.bundleFile, join(dir, 'dist/streetbox.mjs'));
  else writeFileSync(join(dir, 'dist/streetbox.mjs'), what.script);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'edge'), join(dir, 'edge'));
  if (behaviour) writeFileSync(join(dir, 'behaviour.json'), JSON.stringify(behaviour));
  return dir;
}

export interface UnitExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** the launcher's pid (the unit's main process) */
  pid: number;
}

/**
 * systemd for one unit whose ExecStart is the launcher: Restart=on-failure, RestartSec=0,
 * RestartPreventExitStatus=2, RestartForceExitStatus=3, at most `maxStarts` starts.
 */
export class Unit {
  readonly exits: UnitExit[] = [];
  stdout = '';
  stderr = '';
  private child: ChildProcess | null = null;
  private stopping = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly releases: string,
    private readonly args: string[],
    private readonly maxStarts = 12,
  ) {}

  /** The launcher's pid while it runs. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts the unit; `ended` settles when it stops for good. */
  start(): void {
    this.stopping = false;
    let starts = 0;
    this.done = new Promise<void>((resolve, reject) => {
      const once = (): void => {
        starts++;
        const child = spawn('/bin/sh', [LAUNCHER, ...this.args], {
          env: { ...process.env, STREETBOX_RELEASES: this.releases, STREETBOX_NODE: process.execPath, STREETBOX_LOG_LEVEL: 'info' },
          stdio: ['ignore', 'pipe', 'pipe'],
          // a process group of its own, as a unit's cgroup: kill() reaches a release run as the launcher's child
          detached: true,
        });
        this.child = child;
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
        child.once('exit', (code, signal) => {
          this.child = null;
          this.exits.push({ code, signal, pid: child.pid! });
          const failed = code !== 0 && code !== 2;
          const restart = !this.stopping && (code === 3 || failed);
          if (!restart) return resolve();
          if (starts >= this.maxStarts) return reject(new Error(`more than ${this.maxStarts} starts:\n${this.stderr}`));
          setImmediate(once);
        });
      };
      once();
    });
  }

  /** systemctl stop: SIGTERM to the main process, then waits for the unit to end. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.child?.kill('SIGTERM');
    await this.ended();
  }

  ended(): Promise<void> {
    return this.done ?? Promise.resolve();
  }

  /** SIGKILL to whatever still runs (cleanup after a failed test), as systemd's final kill of the cgroup. */
  kill(): void {
    this.stopping = true;
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
