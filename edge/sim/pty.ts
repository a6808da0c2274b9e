/**
 * A pseudo-terminal pair made by socat: two /dev/pts paths joined back to back, the
 * RS-485 line of the simulators (one end for the simulated slaves, one for the driver).
 * A PTY carries bytes at memory speed whatever the baud, and this kernel refuses parity
 * settings on it: use 8N1 or 8N2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { StreetboxError } from '../errors.js';

export interface PtyPair {
  /** the end the simulator opens */
  readonly simPath: string;
  /** the end the driver (the master) opens */
  readonly masterPath: string;
  readonly pid: number;
  /** Kills socat; both paths disappear. Idempotent. */
  close(): Promise<void>;
}

export interface PtyPairOptions {
  /** how long to wait for socat to report both ends; default 5000 ms */
  timeoutMs?: number;
  /** the socat binary; default "socat" from PATH */
  socat?: string;
  /**
   * a stable path for the driver's end: a symlink socat makes to it (and removes when it
   * stops), so a restarted simulator keeps the path the driver reopens
   */
  link?: string;
}

/**
 * util-linux's setpriv (Essential on Debian) sets the child's parent-death signal
 * (prctl PR_SET_PDEATHSIG, see prctl(2)) before it execs socat: socat gets SIGTERM when the
 * gateway dies, even by SIGKILL, so no simulated line outlives its gateway.
 */
const SETPRIV = '/usr/bin/setpriv';

/** The command that runs `bin args` so that it dies with this process, where the system allows. */
export function dieWithParent(bin: string, args: string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'TERM', '--', bin, ...args]] : [bin, args];
}

/**
 * Without setpriv (not Debian), children are at least killed when this process exits by any
 * path Node runs 'exit' handlers for (a signal handled, process.exit, an uncaught exception);
 * only a SIGKILL can orphan them then.
 */
const children = new Set<ChildProcess>();
let exitHook = false;
function killOnExit(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of children) c.kill('SIGTERM');
  });
}

const PTY_RE = /PTY is (\/dev\/[^\s]+)/g;

/** Starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and resolves with both paths. */
export function openPtyPair(opts: PtyPairOptions = {}): Promise<PtyPair> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const bin = opts.socat ?? 'socat';
  return new Promise<PtyPair>((resolve, reject) => {
    let child: ChildProcess;
    try {
      const master = opts.link === undefined ? 'pty,raw,echo=0' : `pty,raw,echo=0,link=${opts.link}`;
      const [cmd, args] = dieWithParent(bin, ['-d', '-d', 'pty,raw,echo=0', master]);
      child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      killOnExit(child);
    } catch (err) {
      reject(missing(bin, err));
      return;
    }
    let stderr = '';
    const paths: string[] = [];
    let settled = false;
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new StreetboxError('E_MODBUS_TRANSPORT', `socat did not report two PTYs within ${timeoutMs} ms: ${stderr.trim()}`));
    }, timeoutMs);
    child.once('error', (err: NodeJS.ErrnoException) => fail(err.code === 'ENOENT' ? missing(bin, err) : err));
    child.once('exit', (code, signal) => {
      // setpriv reports a program it cannot run as exit 127 (in any locale); socat itself never exits 127
      if (code === 127) return fail(missing(bin, new Error(stderr.trim())));
      fail(new StreetboxError('E_MODBUS_TRANSPORT', `socat exited (code ${code}, signal ${signal}) before reporting two PTYs: ${stderr.trim()}`));
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (settled) return;
      stderr += chunk;
      for (const m of chunk.matchAll(PTY_RE)) paths.push(m[1]!);
      // "starting data transfer loop" is printed once both ends exist
      if (paths.length >= 2 && stderr.includes('starting data transfer loop')) {
        settled = true;
        clearTimeout(timer);
        child.stderr?.removeAllListeners('data');
        child.stderr?.resume();
        let closing: Promise<void> | null = null;
        resolve({
          simPath: paths[0]!,
          masterPath: opts.link ?? paths[1]!,
          pid: child.pid!,
          close() {
            closing ??= (async () => {
              if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
              await exited;
            })();
            return closing;
          },
        });
      }
    });
  });
}

function missing(bin: string, cause: unknown): StreetboxError {
  return new StreetboxError(
    'E_MODBUS_TRANSPORT',
    `cannot start "${bin}": socat is needed for the simulated RS-485 line (PTY pair); install it with: apt-get install socat`,
    { cause },
  );
}
