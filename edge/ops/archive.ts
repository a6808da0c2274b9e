/**
 * Backup archives: gzip-compressed tar written and read by node-tar (the tar of npm itself), so
 * an archive that GNU or BSD tar wrote (`tar czf x.tgz .`, with or without `./` before the names,
 * PAX or GNU long names) restores as well as ours. node-tar is imported only here, and only when
 * an archive is packed or unpacked: the gateway's start never loads it.
 *
 * What unpacking accepts: regular files and directories only, below the target directory (node-tar
 * strips `..` and leading `/`, and refuses to write through a symlink); any other entry (a link, a
 * device) fails the whole archive. Owners in the archive are ignored.
 */
import { closeSync, createReadStream, createWriteStream, openSync, readSync, statSync } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { StreetboxError, errorMessage } from '../errors.js';

/** A pass-through that reports how many bytes went by. */
function counter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      total += chunk.length;
      onBytes(total);
      done(null, chunk);
    },
  });
}

/**
 * Writes `names` (files or directories, relative to `cwd`, in this order) into a new gzip tar
 * at `out`, mode 0600. `onBytes` hears the uncompressed tar bytes written so far.
 */
export async function packTarGz(out: string, cwd: string, names: readonly string[], onBytes: (n: number) => void = () => {}): Promise<void> {
  const tar = await import('tar');
  // portable: no uid, gid, user or group names of this box in the archive
  const pack = tar.create({ cwd, portable: true, gzip: false }, [...names]);
  await pipeline(Readable.from(pack, { objectMode: false }), counter(onBytes), createGzip(), createWriteStream(out, { flags: 'wx', mode: 0o600 }));
}

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

/** gzip's magic number (RFC 1952 §2.3.1): 1f 8b. */
function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * Unpacks a (gzip-compressed or plain) tar into `dir`, which must exist. `onBytes` hears how
 * many bytes of the file were read. Resolves with the paths unpacked (as the archive names them).
 * Settles only once node-tar has closed every file it opened, also on a failure, so the caller
 * may remove `dir` at once.
 */
export async function unpackTarGz(file: string, dir: string, onBytes: (n: number) => void = () => {}): Promise<string[]> {
  const tar = await import('tar');
  const names: string[] = [];
  const refused: string[] = [];
  const unpack = tar.extract({
    cwd: dir,
    strict: true,
    preserveOwner: false,
    filter: (path, entry) => {
      const type = 'type' in entry ? entry.type : 'File';
      if (!ALLOWED.has(type)) {
        refused.push(`${path} (${type})`);
        return false;
      }
      names.push(path);
      return true;
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      let failure: unknown;
      let inputEnded = false;
      const settle = () => (failure === undefined ? resolve() : reject(failure as Error));
      const src = createReadStream(file);
      let input: NodeJS.ReadableStream = src.pipe(counter(onBytes));
      // The first failure is the one reported. Then the input stops (Readable.pipe unpipes from a
      // destination that failed), and its end lets node-tar finish or abandon the files it has
      // open and close. Gunzipped here rather than by node-tar, so that a damaged gzip stream ends
      // the input the same way instead of aborting with files still open.
      const fail = (err: unknown) => {
        failure ??= err;
        if (inputEnded) return;
        inputEnded = true;
        input.unpipe();
        src.destroy();
        unpack.end();
      };
      unpack.on('error', fail);
      unpack.once('close', settle);
      unpack.once('abort', (err: unknown) => {
        fail(err);
        settle();
      });
      src.once('error', fail);
      if (isGzip(file)) {
        const gunzip = createGunzip();
        gunzip.once('error', fail);
        input = input.pipe(gunzip);
      }
      input.once('end', () => (inputEnded = true));
      input.pipe(unpack);
    });
  } catch (err) {
    throw new StreetboxError('E_OPS', `not a readable tar archive: ${errorMessage(err)}`, { cause: err });
  }
  if (refused.length > 0) throw new StreetboxError('E_OPS', `unexpected entries (a backup holds only files and directories): ${refused.join(', ')}`);
  if (names.length === 0) throw new StreetboxError('E_OPS', 'an empty archive');
  return names;
}

/** The size of a file, for progress totals. */
export function fileBytes(path: string): number {
  return statSync(path).size;
}
