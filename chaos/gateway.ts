/**
 * The gateway under attack: the built bin (as npm start runs it) on a copy of the demo with
 * fixed free loopback ports (stable across the SIGKILL loop's restarts), its data in a temp
 * dir, syncing to a real mosquitto. Watches it the whole time: RSS (VmRSS of the process),
 * the health check's latency every 250 ms, and every exit we did not cause (a crash).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import { demoConfig, BIN } from '../tests/helpers/demoGateway.js';
import { startScriptEnv } from '../tests/helpers/startScript.js';
import type { TempDir } from '../tests/helpers/tmp.js';

export interface Ports {
  api: number;
  broker: number;
  lorawan: number;
  tc: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Watch {
  /** the worst health-check latency (ms) while the gateway was meant to be up */
  worstHealthMs: number;
  /** health checks that did not answer 200 within 5 s while it was meant to be up */
  healthFailures: number;
  peakRssMb: number;
  crashes: number;
  /** log lines of unhandled errors (uncaught exception, unhandled rejection) */
  unhandled: number;
}

export class ChaosGateway {
  child: ChildProcess | null = null;
  readonly config: string;
  private out = '';
  private expectingExit = false;
  /** true while it should answer (not during a deliberate kill and restart) */
  private up = false;
  private timer: NodeJS.Timeout | null = null;
  private monitor: Worker | null = null;
  watch: Watch = { worstHealthMs: 0, healthFailures: 0, peakRssMb: 0, crashes: 0, unhandled: 0 };

  constructor(
    readonly dir: TempDir,
    readonly ports: Ports,
    syncUrl: string,
  ) {
    this.config = demoConfig(dir, (cfg) => {
      cfg.api.port = ports.api;
      cfg.broker.port = ports.broker;
      cfg.lorawan.port = ports.lorawan;
      for (const b of cfg.buses) if (b.type === 'tcp') b.port = ports.tc;
      // linger 0: the drain phase ends on a sync lag of 0, which a lingering batch never shows under live load
      (cfg as Record<string, unknown>).sync = { url: syncUrl, clientId: 'chaos-gateway', compress: true, linger: 0 };
      // a small quota, so floods meet the eviction rules in minutes
      cfg.storage.maxBytes = '16MB';
    });
  }

  get base(): string {
    return `http://127.0.0.1:${this.ports.api}`;
  }

  /** Starts the process and waits until the API answers. */
  async start(): Promise<void> {
    this.out = '';
    const child = spawn(process.execPath, [BIN, 'start', '--config', this.config], {
      cwd: this.dir.path,
      env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'warn', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.expectingExit = false;
    const onData = (d: Buffer): void => {
      const text = d.toString();
      this.out = (this.out + text).slice(-200_000);
      this.watch.unhandled += (text.match(/uncaught exception|unhandled promise rejection/g) ?? []).length;
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      this.up = false;
      if (!this.expectingExit) {
        this.watch.crashes++;
        process.stderr.write(`chaos: the gateway exited unexpectedly (code ${code}, signal ${signal}):\n${this.out.slice(-4000)}\n`);
      }
    });
    const t0 = Date.now();
    for (;;) {
      if (!this.child) throw new Error(`the gateway did not start:\n${this.out.slice(-4000)}`);
      if (Date.now() - t0 > 60_000) throw new Error('the gateway did not answer within 60 s');
      const ok = await fetch(`${this.base}/api/v1/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) break;
      await sleep(100);
    }
    this.up = true;
    this.timer ??= setInterval(() => this.sampleRss(), 250);
    this.startMonitor();
    this.monitor?.postMessage({ pid: child.pid });
  }

  private sampleRss(): void {
    const child = this.child;
    if (!child || !this.up) return;
    try {
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (rss) this.watch.peakRssMb = Math.max(this.watch.peakRssMb, Number(rss[1]) / 1024);
    } catch {
      // exiting
    }
  }

  /**
   * The health checks run in a worker thread with an event loop of its own: the attacks keep
   * this one busy, and a check timed here would measure the attacker, not the gateway.
   */
  private startMonitor(): void {
    if (this.monitor) return;
    const code = `
      const { parentPort } = require('node:worker_threads');
      let pid = 0;
      parentPort.on('message', (m) => { pid = m.pid; });
      setInterval(async () => {
        const p = pid;
        if (!p) return;
        const t0 = performance.now();
        const ok = await fetch(${JSON.stringify(`http://127.0.0.1:${this.ports.api}/api/v1/health`)}, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false);
        parentPort.postMessage({ pid: p, ok, ms: performance.now() - t0 });
      }, 250);`;
    const w = new Worker(code, { eval: true });
    w.unref();
    w.on('message', (m: { pid: number; ok: boolean; ms: number }) => {
      // a check of a process we killed meanwhile is not a health failure
      if (!this.up || this.child?.pid !== m.pid) return;
      if (m.ok) this.watch.worstHealthMs = Math.max(this.watch.worstHealthMs, m.ms);
      else this.watch.healthFailures++;
    });
    this.monitor = w;
  }

  /** Sends a signal we mean (not a crash) and waits for the exit. */
  async kill(signal: NodeJS.Signals, timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const child = this.child;
    if (!child) throw new Error('not running');
    this.up = false;
    this.expectingExit = true;
    this.monitor?.postMessage({ pid: 0 });
    const t0 = performance.now();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const r = await exited;
    clearTimeout(timer);
    return { ...r, ms: performance.now() - t0 };
  }

  logTail(): string {
    return this.out.slice(-4000);
  }

  async dispose(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.monitor?.terminate();
    this.monitor = null;
    if (this.child) await this.kill('SIGKILL');
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
