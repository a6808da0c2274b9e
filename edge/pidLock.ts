import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { StreetboxError } from './errors.js';

export interface PidLock {
  readonly path: string;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One gateway per data file: a pid file created exclusively beside the database. A pid file
 * left by a process that no longer exists (power cut, kill -9) is taken over.
 */
export function acquirePidLock(path: string): PidLock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StreetboxError('E_STORE', `cannot create ${path}: ${(err as Error).message}`, { cause: err });
      }
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new StreetboxError('E_STORE', `another streetbox (pid ${pid}) is using this data file (${path})`);
      }
      unlinkSync(path); // stale: its process is gone
    }
  }
  throw new StreetboxError('E_STORE', `cannot lock ${path}`);
}

/** The pid of the gateway holding the lock, if one is running. */
export function lockHolder(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
  } catch {
    return null;
  }
}
