/** Temporary directories under os.tmpdir(), removed by the returned cleanup. */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  path: string;
  file(name: string): string;
  remove(): void;
}

/** `base`: another parent than os.tmpdir() (e.g. memoryTmp() for a test that writes a lot). */
export function tempDir(prefix = 'streetbox-test-', base = tmpdir()): TempDir {
  const path = mkdtempSync(join(base, prefix));
  return {
    path,
    file: (name) => join(path, name),
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

/**
 * /dev/shm when it is a writable tmpfs, else os.tmpdir(): for a test that writes tens of
 * thousands of files (the Debian package's staging and installs), a disk's metadata writes
 * take seconds that memory does not.
 */
export function memoryTmp(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}
