/**
 * Replacing devices.yaml so that a power cut at any instant leaves either the old text or the
 * new one, never a mix or an empty file (issue 16): the new text goes to a temp file in the same
 * directory (a rename is atomic only within one filesystem), is fsynced, renamed over the file,
 * and the directory is fsynced so the rename itself survives the cut. Also the sha256 every
 * version is known by.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fsyncSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StreetboxError, errorMessage } from '../errors.js';

/** The sha256 of a text's UTF-8 bytes, lowercase hex. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** `.<name>.<pid>.<random>.tmp` beside `path`: hidden, and never the name of a file of another writer. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * writeFileAtomic without blocking the event loop while the disk syncs (an SD card can take a
 * while): the same steps and guarantees.
 */
export async function writeFileAtomicAsync(path: string, text: string): Promise<void> {
  const target = await resolveTarget(path);
  const mode = await existingMode(target);
  const tmp = tempPathFor(target);
  const made = { tmp: false };
  try {
    await writeSynced(tmp, text, mode, made);
    await rename(tmp, target);
  } catch (err) {
    // only a temp file this call made: never one of the same name it failed to create
    if (made.tmp) await unlink(tmp).catch(() => undefined);
    throw new StreetboxError('E_CONFIG_APPLY', `cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
  await syncDirectory(dirname(target), path);
}

/** The real file behind `path` (a symlinked devices.yaml); `path` itself when it does not exist yet. */
async function resolveTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw new StreetboxError('E_CONFIG_APPLY', `cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

/** The permission bits of the file being replaced; undefined when there is none (the umask decides). */
async function existingMode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return undefined;
  }
}

async function writeSynced(tmp: string, text: string, mode: number | undefined, made: { tmp: boolean }): Promise<void> {
  // O_EXCL: a temp file of the same name (impossible but for a pid reuse and a random clash) is never written through
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode ?? 0o666);
  made.tmp = true;
  try {
    await fh.writeFile(text, 'utf8');
    // the mode given to open() is masked by the umask: set it exactly
    if (mode !== undefined) await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Filesystems that cannot fsync a directory say so with these: the rename is as durable as they allow. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF', 'EPERM', 'EACCES']);

/** fsyncs the directory so the rename survives a power cut; the file is already replaced when this runs. */
async function syncDirectory(dir: string, path: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY);
    await fh.sync();
  } catch (err) {
    if (DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return;
    throw new StreetboxError('E_CONFIG_APPLY', `${path} was replaced, but syncing its directory failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    await fh?.close();
  }
}

/**
 * Replaces the file at `path` with `text` atomically and durably. The file keeps its permission
 * bits (a devices.yaml with secrets is often 0600); a symlink is followed, so the file it points
 * at is replaced and the link stays. On any failure before the rename the temp file is removed
 * and the file is as it was. Throws StreetboxError('E_CONFIG_APPLY') with the cause. It blocks
 * for the two fsyncs (milliseconds for a config file); writeFileAtomicAsync does not.
 */
export function writeFileAtomic(path: string, text: string): void {
  const target = resolveTargetSync(path);
  const mode = existingModeSync(target);
  const tmp = tempPathFor(target);
  let made = false;
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode ?? 0o666);
    made = true;
    try {
      writeFileSync(fd, text, 'utf8');
      if (mode !== undefined) chmodSync(tmp, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    try {
      if (made) unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw new StreetboxError('E_CONFIG_APPLY', `cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
  syncDirectorySync(dirname(target), path);
}

function resolveTargetSync(path: string): string {
  try {
    return realpathSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw new StreetboxError('E_CONFIG_APPLY', `cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

function existingModeSync(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return undefined;
  }
}

function syncDirectorySync(dir: string, path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch (err) {
    if (DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return;
    throw new StreetboxError('E_CONFIG_APPLY', `${path} was replaced, but syncing its directory failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
