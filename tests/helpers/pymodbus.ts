/**
 * Launches tests/helpers/pymodbus_server.py under /usr/bin/python3 (Debian's python3-pymodbus,
 * an implementation independent of ours) and waits for its "ready" line. Known register
 * contents are documented in the script; `expected` below computes them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from './tmp.js';

export const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./pymodbus_server.py', import.meta.url));

export interface PymodbusServer {
  /** tcp: the port it listens on */
  port: number;
  /** rtu: the serial path it opened */
  path: string;
  pid: number;
  stop(): Promise<void>;
}

export type Overrides = Record<string, Partial<Record<'hr' | 'ir' | 'co' | 'di', Record<string, (number | boolean)[]>>>>;

export interface PymodbusOptions {
  units?: number[];
  /** per unit, per table, start address → values */
  values?: Overrides;
  timeoutMs?: number;
}

export function startPymodbusTcp(opts: PymodbusOptions = {}): Promise<PymodbusServer> {
  return launch(['--tcp', '0'], opts);
}

export function startPymodbusRtu(path: string, opts: PymodbusOptions & { baud?: number; stopBits?: 1 | 2 } = {}): Promise<PymodbusServer> {
  return launch(['--rtu', path, '--baud', String(opts.baud ?? 9600), '--stopbits', String(opts.stopBits ?? 1), '--parity', 'N'], opts);
}

async function launch(args: string[], opts: PymodbusOptions): Promise<PymodbusServer> {
  const dir = tempDir('streetbox-pymodbus-');
  const all = [SCRIPT, ...args, '--units', (opts.units ?? [1]).join(',')];
  if (opts.values) {
    writeFileSync(dir.file('values.json'), JSON.stringify(opts.values));
    all.push('--values', dir.file('values.json'));
  }
  // stdin stays a pipe: the server exits when it closes, so it never outlives the test process.
  const child: ChildProcess = spawn(PYTHON, all, { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (stderr += d));
  try {
    const where = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pymodbus server not ready after ${opts.timeoutMs ?? 10_000} ms: ${stderr}`)), opts.timeoutMs ?? 10_000);
      let out = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (d: string) => {
        out += d;
        const m = /ready (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`pymodbus server exited with ${code}: ${stderr}`));
      });
    });
    let stopping: Promise<void> | null = null;
    return {
      port: /^\d+$/.test(where) ? Number(where) : 0,
      path: /^\d+$/.test(where) ? '' : where,
      pid: child.pid!,
      stop() {
        stopping ??= (async () => {
          child.stdin!.end();
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
          clearTimeout(t);
          dir.remove();
        })();
        return stopping;
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    dir.remove();
    throw err;
  }
}

/** The register contents the script serves when nothing overrides them. */
export const expected = {
  holding: (unit: number, a: number): number => (a * 7 + unit) & 0xffff,
  input: (unit: number, a: number): number => (1000 + a + unit) & 0xffff,
  coil: (unit: number, a: number): boolean => (a + unit) % 3 === 0,
  discrete: (unit: number, a: number): boolean => (a + unit) % 2 === 0,
};
