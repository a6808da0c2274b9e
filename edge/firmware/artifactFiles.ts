/**
 * The files of the artifact directory (artifacts.ts keeps the store): `<sha256>` a complete
 * artifact, `<sha256>.part` a download under way, `<sha256>.chunks/` the chunks of an artifact
 * sent over MQTT (`ref.json`, the artifact expected, and one file per chunk, named by its index),
 * `.<sha256>.<pid>.<random>.tmp` a file being written (removed at the next start). Every write
 * that must survive a power cut is fsynced, and so is the directory that names it.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ArtifactRef } from './records.js';

export const PART = '.part';
export const CHUNKS = '.chunks';
const REF_FILE = 'ref.json';

/** The sha256 a directory entry belongs to: `<sha256>`, `<sha256>.part`, `<sha256>.chunks`. */
export function shaOf(name: string): string | undefined {
  const m = /^([0-9a-f]{64})(\.part|\.chunks)?$/.exec(name);
  return m === null ? undefined : m[1];
}

export function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file's sha256, read as a stream (an artifact may be large). */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `data` in `path`, fsynced (the caller fsyncs the directory once the name matters). */
export function writeDurably(path: string, data: Buffer): void {
  const fd = openSync(path, 'w');
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Filesystems that cannot fsync a directory say so with these: the rename is as durable as they allow. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF', 'EPERM', 'EACCES']);

/** fsyncs a directory, so a file it now names (or no longer names) stays so after a power cut. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------
// Chunk sets

/** How an artifact sent over MQTT is cut: `count` chunks of `chunkBytes`, the last one shorter. */
export interface ChunkGeometry {
  size: number;
  chunkBytes: number;
  count: number;
}

export function chunkGeometry(ref: ArtifactRef): ChunkGeometry {
  const chunkBytes = 'mqtt' in ref.source ? ref.source.mqtt.chunkBytes : ref.size;
  return { size: ref.size, chunkBytes, count: Math.ceil(ref.size / chunkBytes) };
}

export function chunkLength(g: ChunkGeometry, index: number): number {
  return index === g.count - 1 ? g.size - index * g.chunkBytes : g.chunkBytes;
}

/** Makes the chunk directory with the ref it expects, whole or not at all (the caller fsyncs the artifact directory). */
export function createChunkSet(dir: string, ref: ArtifactRef): void {
  const made = `${dir}.${process.pid}.tmp`;
  rmSync(made, { recursive: true, force: true });
  mkdirSync(made);
  writeDurably(join(made, REF_FILE), Buffer.from(JSON.stringify(ref)));
  fsyncDir(made);
  rmSync(dir, { recursive: true, force: true });
  renameSync(made, dir);
}

/**
 * The chunk set a previous run left: its ref and the chunks of the right name and length (bytes
 * by index); any other file in it is removed. Undefined when its ref is unreadable or names
 * another artifact.
 */
export function readChunkSet(dir: string, sha256: string): { ref: ArtifactRef; chunks: Map<number, number> } | undefined {
  let ref: ArtifactRef;
  try {
    ref = JSON.parse(readFileSync(join(dir, REF_FILE), 'utf8')) as ArtifactRef;
  } catch {
    return undefined;
  }
  if (ref.sha256 !== sha256 || !('mqtt' in ref.source)) return undefined;
  const g = chunkGeometry(ref);
  const chunks = new Map<number, number>();
  for (const name of readdirSync(dir)) {
    if (name === REF_FILE) continue;
    const index = /^\d+$/.test(name) ? Number(name) : -1;
    const size = statSync(join(dir, name)).size;
    if (index < 0 || index >= g.count || size !== chunkLength(g, index)) rmSync(join(dir, name), { force: true });
    else chunks.set(index, size);
  }
  return { ref, chunks };
}

/** Chunk `index`, durable when this returns (MQTT has acknowledged it: it will not come again). */
export function writeChunk(dir: string, index: number, data: Buffer): void {
  writeDurably(join(dir, String(index)), data);
  fsyncDir(dir);
}

/** The chunks 0 … count-1 one after the other into `tmp` (fsynced); their sha256. */
export function concatChunks(dir: string, count: number, tmp: string): string {
  const hash = createHash('sha256');
  const fd = openSync(tmp, 'w');
  try {
    for (let i = 0; i < count; i++) {
      const chunk = readFileSync(join(dir, String(i)));
      hash.update(chunk);
      writeSync(fd, chunk);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
