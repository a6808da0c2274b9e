/**
 * The Modbus simulators in a process of their own (edge/sim/modbus/serve.ts), so a benchmark's
 * server does not share an event loop with the client it measures.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ServeSpec } from '../../edge/sim/modbus/serve.js';

const SERVE = fileURLToPath(new URL('../../edge/sim/modbus/serve.ts', import.meta.url));

export interface LineCounters {
  id: string;
  ignored: number;
  dropped: number;
  gapViolations: number;
  timed: number;
  masterIdleMs: number;
  writeLateMs: number;
}

export interface SimBusInfo {
  id: string;
  kind: 'rtu' | 'tcp';
  path?: string;
  host?: string;
  port?: number;
}

export interface SimProcess {
  buses: SimBusInfo[];
  bus(id: string): SimBusInfo;
  /** Stops the process; resolves with the RTU line counters it printed on the way out. */
  stop(): Promise<LineCounters[]>;
}

export async function spawnSimulators(spec: ServeSpec, timeoutMs = 15_000): Promise<SimProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVE, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (err += d));
  const buses = await new Promise<SimBusInfo[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`simulator process not ready after ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /^ready (.*)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(JSON.parse(m[1]!) as SimBusInfo[]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`simulator process exited with ${code}: ${err}`));
    });
  });
  let stopping: Promise<LineCounters[]> | null = null;
  return {
    buses,
    bus(id) {
      const b = buses.find((x) => x.id === id);
      if (!b) throw new Error(`no simulated bus ${id}`);
      return b;
    },
    stop() {
      stopping ??= (async () => {
        child.stdin.end();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(kill);
        const m = /^lines (.*)$/m.exec(out);
        return m ? (JSON.parse(m[1]!) as LineCounters[]) : [];
      })();
      return stopping;
    },
  };
}
