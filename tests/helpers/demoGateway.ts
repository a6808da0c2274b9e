/**
 * The shipped demo (devices.yaml at the repo root) with its ports moved to free ones and its data
 * in a temp directory, two ways:
 * - startDemo: as `npm start` runs it: bin/streetbox.js on the bundle (dist/, built by the
 *   README's test command), with the start script's environment, in a process of its own, on a
 *   copy of devices.yaml. For tests of the process itself: signals, exit codes, children, the
 *   banner, the README's commands.
 * - startDemoInProcess: startGateway in the test's own process on devices.yaml as it is, the
 *   ports and the buffer moved by an override. For tests of what the demo serves: pages, the API,
 *   /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { Config } from '../../edge/config/schema.js';
import { silentLogger, type Logger } from '../../edge/log.js';
import type { Gateway } from '../../edge/main.js';
import { startScriptEnv } from './startScript.js';
import { tempDir, type TempDir } from './tmp.js';
import { ROOT, collect, type CliResult } from '../support/cli.js';

export const BIN = join(ROOT, 'bin/streetbox.js');
/** the demo's own credentials (devices.yaml) */
export const DEMO = {
  technicianToken: 'demo-technician-token-0001',
  viewerToken: 'demo-viewer-token-00000001',
  editor: { username: 'technician', password: 'demo-technician-password' },
};

export type DemoConfig = Record<string, unknown> & {
  storage: Record<string, unknown>;
  buses: ({ type: string; port?: number } & Record<string, unknown>)[];
  broker: Record<string, unknown>;
  api: Record<string, unknown>;
  lorawan: Record<string, unknown>;
  nodeRed: Record<string, unknown>;
};

export interface DemoOptions {
  /** edits the demo config (already on free ports and a temp data path) */
  edit?: (cfg: DemoConfig) => void;
  env?: NodeJS.ProcessEnv;
  /** what the process is given as argv after `start --config <file>` */
  args?: string[];
  /** wait for this log message before resolving (default "gateway running") */
  readyMsg?: string;
}

export interface DemoGateway {
  readonly child: ChildProcess;
  readonly dir: TempDir;
  readonly config: string;
  /** the HTTP API's port (when the API runs) */
  readonly port: number;
  /** all stdout so far */
  out(): string;
  /** resolves when a stdout line matches */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** resolves with the exit; rejects if the process is still running after `timeoutMs` (then kills it) */
  exited(timeoutMs: number): Promise<CliResult>;
  /** SIGKILL if still running, remove the temp dir */
  dispose(): Promise<void>;
}

/** Writes the demo config for a temp dir: free ports everywhere, data in the temp dir. */
export function demoConfig(dir: TempDir, edit?: (cfg: DemoConfig) => void): string {
  const cfg = parse(readFileSync(join(ROOT, 'devices.yaml'), 'utf8')) as DemoConfig;
  cfg.storage.path = join(dir.path, 'data', 'streetbox.db');
  for (const b of cfg.buses) if (b.type === 'tcp') b.port = 0;
  cfg.broker.port = 0;
  cfg.api.port = 0;
  cfg.lorawan.port = 0;
  edit?.(cfg);
  const file = join(dir.path, 'devices.yaml');
  writeFileSync(file, stringify(cfg));
  return file;
}

export async function startDemo(opts: DemoOptions = {}): Promise<DemoGateway> {
  const dir = tempDir('streetbox-demo-');
  const config = demoConfig(dir, opts.edit);
  const child = spawn(process.execPath, [BIN, 'start', '--config', config, ...(opts.args ?? [])], {
    cwd: dir.path,
    env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let exit: CliResult | null = null;
  const exitedP = new Promise<CliResult>((resolve) =>
    child.once('exit', (code, signal) => {
      setImmediate(() => {
        exit = { code, signal, stdout: out, stderr };
        for (const w of waiters) w();
        resolve(exit);
      });
    }),
  );
  const waitFor = (re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(out);
        if (m) {
          done();
          resolve(m);
        } else if (exit) {
          done();
          reject(new Error(`exited (${exit.code ?? exit.signal}) before ${re}:\n${out}\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${re} within ${timeoutMs} ms:\n${out}\n${stderr}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const gw: DemoGateway = {
    child,
    dir,
    config,
    port: 0,
    out: () => out,
    waitFor,
    exited: (timeoutMs) =>
      Promise.race([
        exitedP,
        new Promise<CliResult>((_, reject) =>
          setTimeout(() => {
            if (exit) return;
            child.kill('SIGKILL');
            reject(new Error(`still running ${timeoutMs} ms later:\n${out.slice(-3000)}\n${stderr}`));
          }, timeoutMs).unref(),
        ),
      ]),
    async dispose() {
      if (!exit) {
        child.kill('SIGKILL');
        await exitedP;
      }
      dir.remove();
    },
  };
  try {
    await waitFor(new RegExp(`"msg":"${opts.readyMsg ?? 'gateway running'}"`), 60_000);
    const listening = /"port":(\d+)[^\n]*"msg":"http api listening"/.exec(out);
    (gw as { port: number }).port = listening ? Number(listening[1]) : 0;
  } catch (err) {
    await gw.dispose();
    throw err;
  }
  return gw;
}

export interface InProcessDemoOptions {
  /** run the Node-RED editor too (default true, as the demo ships it); off spares seconds of start-up */
  nodeRed?: boolean;
  /** further edits to the config, after the ports, the buffer and nodeRed are set */
  edit?: (cfg: Config) => void;
  /** the gateway's logger (default silent) */
  log?: Logger;
}

export interface InProcessDemo {
  gw: Gateway;
  /** http://127.0.0.1:<port> of the API */
  base: string;
  /** the demo's technician token */
  token: string;
  /** stops the gateway and removes its temp dir */
  stop(): Promise<void>;
}

/**
 * Starts the shipped demo in this process: startGateway on devices.yaml at the repo root, with the
 * API, the broker, the LoRaWAN packet forwarder port and every Modbus TCP bus on port 0 (free
 * ports) and the buffer in a temp dir of its own, removed by stop() (or at once if the start fails).
 */
export async function startDemoInProcess(opts: InProcessDemoOptions = {}): Promise<InProcessDemo> {
  // imported here, not at the top: the many tests that only spawn the bundle (BIN, startDemo) would
  // otherwise load the whole gateway (some 300 modules, seconds of a test file's import) for nothing
  const { startGateway } = await import('../../edge/main.js');
  const data = tempDir('streetbox-demo-');
  let gw: Gateway;
  try {
    gw = await startGateway({
      configPath: join(ROOT, 'devices.yaml'),
      log: opts.log ?? silentLogger(),
      override: (c) => {
        c.storage.path = join(data.path, 'streetbox.db');
        c.api.port = 0;
        c.broker.port = 0;
        if (c.lorawan) c.lorawan.port = 0;
        for (const b of c.buses) if (b.type === 'tcp') b.port = 0;
        if (opts.nodeRed === false) c.nodeRed.enabled = false;
        opts.edit?.(c);
      },
    });
  } catch (err) {
    data.remove();
    throw err;
  }
  return {
    gw,
    base: `http://127.0.0.1:${gw.built.api!.port()}`,
    token: DEMO.technicianToken,
    async stop() {
      try {
        await gw.stop();
      } finally {
        data.remove();
      }
    },
  };
}

export { collect };
