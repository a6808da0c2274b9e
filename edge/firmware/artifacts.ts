/**
 * The gateway's firmware artifacts (issue 17): files in `<dir of storage.path>/artifacts`, each
 * named by its sha256, within their own quota (firmware.artifacts.maxBytes). An artifact comes
 *   - from a URL of central: downloaded into `<sha256>.part`, resumed with a Range request after
 *     a cut or a restart (artifactDownload.ts), then checked (size, then sha256), fsynced and
 *     renamed to `<sha256>`;
 *   - over MQTT in chunks (`down/artifacts/<sha256>/<index>`): each chunk a file under
 *     `<sha256>.chunks/` (with the expected ref beside them in `ref.json`), so a restart keeps what
 *     came; the last chunk assembles and checks the artifact;
 *   - from a technician (put): stored at once, its sha256 being what it is named by.
 * A file found on disk is trusted only once its sha256 has been checked by this process; a file
 * that fails the check is deleted. The quota counts complete files, part files and chunks, and
 * holds room for what is under way (its declared size) from the moment it starts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { SharedDownloads, abortReason, downloadToPart, withTimeout } from './artifactDownload.js';
import {
  CHUNKS,
  PART,
  chunkGeometry,
  chunkLength,
  concatChunks,
  createChunkSet,
  fsyncDir,
  readChunkSet,
  sha256Of,
  sha256OfFile,
  shaOf,
  writeChunk,
  writeDurably,
  type ChunkGeometry,
} from './artifactFiles.js';
import { FirmwareError } from './errors.js';
import { SHA256_RE } from './manifest.js';
import type { ArtifactRef } from './records.js';

export interface ArtifactStoreOptions {
  /** the engine passes `<dirname(storage.path)>/artifacts`; made when first used */
  dir: string;
  /** firmware.artifacts.maxBytes */
  maxBytes: number;
  log: Logger;
  clock: Clock;
}

export interface FetchOptions {
  signal: AbortSignal;
  /** bytes of the artifact on the gateway so far */
  onProgress?: (bytes: number) => void;
  /** the whole fetch; past it the fetch rejects with E_FW_TIMEOUT (a download under way stops, its part file stays) */
  timeoutMs?: number;
}

/** Bytes on disk for one sha256. */
interface Held {
  file: number;
  part: number;
  chunks: number;
}

/** An artifact expected over MQTT: its ref, how it is cut, the chunks on disk. */
interface Expected extends ChunkGeometry {
  ref: ArtifactRef;
  have: Set<number>;
}

interface Waiter {
  resolve: (path: string) => void;
  reject: (err: Error) => void;
  onProgress: ((bytes: number) => void) | undefined;
}

export class ArtifactStore {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private scanned = false;
  private readonly held = new Map<string, Held>();
  /** room kept for what is under way: its declared size */
  private readonly claims = new Map<string, number>();
  /** complete files whose sha256 this process has checked */
  private readonly verified = new Set<string>();
  private readonly expected = new Map<string, Expected>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly downloads = new SharedDownloads();
  private readonly chunkCounts = { accepted: 0, duplicate: 0, ignored: 0 };

  constructor(o: ArtifactStoreOptions) {
    this.dir = o.dir;
    this.maxBytes = o.maxBytes;
    this.log = o.log;
    this.clock = o.clock;
  }

  /** Whether the complete artifact is on disk (not checked: fetch and read check it). */
  has(sha256: string): boolean {
    return SHA256_RE.test(sha256) && existsSync(this.path(sha256));
  }

  /** Where the complete artifact lives. */
  path(sha256: string): string {
    if (!SHA256_RE.test(sha256)) throw new FirmwareError('E_FW_INVALID', `"${sha256.slice(0, 80)}" is not a sha256 (64 lowercase hex digits)`);
    return join(this.dir, sha256);
  }

  /** The artifact's bytes; checked against its sha256 the first time this process reads it (a file that fails is deleted: E_FW_ARTIFACT). */
  read(sha256: string): Buffer {
    this.scan();
    let data: Buffer;
    try {
      data = readFileSync(this.path(sha256));
    } catch (err) {
      throw new FirmwareError('E_FW_ARTIFACT', `artifact ${sha256} is not in the artifact store`, { cause: err });
    }
    if (!this.verified.has(sha256)) {
      const got = sha256Of(data);
      if (got !== sha256) this.corrupt(sha256, got);
      this.verified.add(sha256);
    }
    return data;
  }

  /** What the quota counts (complete files, part files, chunks) and how many complete artifacts there are. */
  usage(): { bytes: number; files: number } {
    this.scan();
    let bytes = 0;
    let files = 0;
    for (const h of this.held.values()) {
      bytes += h.file + h.part + h.chunks;
      if (h.file > 0) files++;
    }
    return { bytes, files };
  }

  /** MQTT chunks taken, duplicates dropped, and ignored (not expected, wrong index or length). */
  chunkCounters(): { accepted: number; duplicate: number; ignored: number } {
    return { ...this.chunkCounts };
  }

  /** A technician's upload: stored under its sha256 (again if it is there). Throws E_FW_QUOTA past the quota. */
  put(data: Buffer): { sha256: string; size: number } {
    this.scan();
    const sha256 = sha256Of(data);
    this.makeRoom(sha256, data.length, 'the upload');
    const tmp = this.tempPath(sha256);
    writeDurably(tmp, data);
    renameSync(tmp, this.path(sha256));
    fsyncDir(this.dir);
    this.settled(sha256);
    this.log.info({ sha256, size: data.length }, 'firmware: artifact uploaded');
    return { sha256, size: data.length };
  }

  /**
   * The artifact's path once it is on disk and checked: fetched from its URL (resumed from its
   * part file), awaited chunk by chunk over MQTT, or found in the store (`local`). Throws
   * E_FW_ARTIFACT (size or sha256 differs, not fetchable, not in the store), E_FW_QUOTA, or
   * the signal's reason (E_FW_CANCELLED unless the engine aborted with a FirmwareError).
   */
  async fetch(ref: ArtifactRef, o: FetchOptions): Promise<string> {
    this.scan();
    const sha256 = ref.sha256;
    const path = this.path(sha256);
    const { signal, dispose } = withTimeout(this.clock, o.signal, o.timeoutMs);
    try {
      if (signal.aborted) throw abortReason(signal);
      if (existsSync(path) && (await this.check(ref))) {
        o.onProgress?.(ref.size);
        return path;
      }
      if ('local' in ref.source) throw new FirmwareError('E_FW_ARTIFACT', `artifact ${ref.name} ${ref.version} (${sha256}) is not in the gateway's artifact store: upload it first`);
      if ('mqtt' in ref.source) {
        this.expect(ref);
        return await this.awaitChunks(ref, signal, o.onProgress);
      }
      const url = ref.source.url;
      return await this.downloads.join(sha256, (s, emit) => this.runDownload(ref, url, s, emit), signal, o.onProgress);
    } finally {
      dispose();
    }
  }

  /**
   * The engine waits for this artifact over MQTT: its chunks are taken from now on (and across a
   * restart: the chunk directory says so). Throws E_FW_QUOTA when it does not fit.
   */
  expect(ref: ArtifactRef): void {
    this.scan();
    const sha256 = ref.sha256;
    if (!('mqtt' in ref.source)) throw new FirmwareError('E_FW_INVALID', `artifact ${sha256} does not come over MQTT`);
    if (this.expected.has(sha256) || existsSync(this.path(sha256))) return;
    this.makeRoom(sha256, ref.size, `artifact ${ref.name} ${ref.version}`);
    createChunkSet(this.chunkDir(sha256), ref);
    fsyncDir(this.dir);
    this.track(ref, new Set());
    this.log.info({ sha256, size: ref.size, chunks: this.expected.get(sha256)!.count }, 'firmware: artifact expected over MQTT');
  }

  /**
   * Chunk `index` of an artifact sent over MQTT, durable on disk when this returns. A chunk of an
   * artifact not expected, beyond its chunks or of the wrong length is ignored (counted), a
   * duplicate dropped. The last chunk assembles the artifact and checks its sha256: complete is
   * true once it is in place; a mismatch deletes the chunks and fails the fetches waiting for it.
   */
  addChunk(sha256: string, index: number, data: Buffer, ref?: ArtifactRef): { complete: boolean } {
    this.scan();
    if (!SHA256_RE.test(sha256)) return this.ignore(sha256, index, 'not a sha256');
    if (ref !== undefined) this.expect(ref);
    const e = this.expected.get(sha256);
    if (e === undefined) {
      const done = existsSync(this.path(sha256));
      this.ignore(sha256, index, done ? 'the artifact is complete' : 'not expected');
      return { complete: done };
    }
    if (!Number.isInteger(index) || index < 0 || index >= e.count) return this.ignore(sha256, index, `beyond its ${e.count} chunks`);
    const length = chunkLength(e, index);
    if (data.length !== length) return this.ignore(sha256, index, `${data.length} bytes, expected ${length}`);
    if (e.have.has(index)) {
      this.chunkCounts.duplicate++;
      return { complete: false };
    }
    writeChunk(this.chunkDir(sha256), index, data);
    e.have.add(index);
    this.holding(sha256).chunks += data.length;
    this.chunkCounts.accepted++;
    const received = this.holding(sha256).chunks;
    for (const w of this.waiters.get(sha256) ?? []) w.onProgress?.(received);
    return { complete: e.have.size === e.count && this.assemble(e) };
  }

  /** Removes every artifact, part file and chunk set whose sha256 is not in `keep` (a fetch under way keeps its own). */
  gc(keep: ReadonlySet<string>): void {
    this.scan();
    const removed: string[] = [];
    const before = this.usage().bytes;
    for (const name of readdirSync(this.dir)) {
      const sha256 = shaOf(name);
      if (sha256 === undefined || keep.has(sha256) || this.downloads.has(sha256) || this.waiters.has(sha256)) continue;
      rmSync(join(this.dir, name), { recursive: true, force: true });
      this.forget(sha256);
      removed.push(name);
    }
    if (removed.length > 0) this.log.info({ removed, bytes: before - this.usage().bytes }, 'firmware: artifacts no deployment needs removed');
  }

  // ───────────────────────────── fetching ─────────────────────────────

  /**
   * Whether the complete file is this artifact: its sha256 checked (once per process); one that
   * is not what its name says is deleted (false). The right bytes under another size than the
   * manifest's: E_FW_ARTIFACT.
   */
  private async check(ref: ArtifactRef): Promise<boolean> {
    const path = this.path(ref.sha256);
    const size = statSync(path).size;
    const got = this.verified.has(ref.sha256) ? ref.sha256 : await sha256OfFile(path);
    if (got !== ref.sha256) {
      this.log.error({ sha256: ref.sha256, got, size }, 'firmware: an artifact on disk is not what its name says; deleted');
      rmSync(path, { force: true });
      this.holding(ref.sha256).file = 0;
      return false;
    }
    this.verified.add(ref.sha256);
    if (size !== ref.size) throw new FirmwareError('E_FW_ARTIFACT', `the artifact's size differs: the manifest says ${ref.size} bytes, the artifact with its sha256 has ${size}`);
    return true;
  }

  /** The download of `ref` into its part file, checked and renamed into place (shared by the fetches that want it). */
  private async runDownload(ref: ArtifactRef, url: string, signal: AbortSignal, emit: (bytes: number) => void): Promise<string> {
    const sha256 = ref.sha256;
    if (signal.aborted) throw abortReason(signal);
    this.makeRoom(sha256, ref.size, `artifact ${ref.name} ${ref.version}`);
    this.claims.set(sha256, ref.size);
    const part = this.path(sha256) + PART;
    try {
      await downloadToPart({
        url,
        part,
        size: ref.size,
        signal,
        clock: this.clock,
        log: this.log,
        onBytes: (have) => {
          this.holding(sha256).part = have;
          emit(have);
        },
      });
      // the size is right (downloadToPart stops at it): the sha256 decides
      const fh = await open(part, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const got = await sha256OfFile(part);
      if (got !== sha256) {
        rmSync(part, { force: true });
        this.holding(sha256).part = 0;
        throw new FirmwareError('E_FW_ARTIFACT', `the artifact's sha256 differs: the manifest says ${sha256}, the download is ${got} (deleted)`);
      }
      renameSync(part, this.path(sha256));
      fsyncDir(this.dir);
      this.settled(sha256);
      this.log.info({ sha256, size: ref.size }, 'firmware: artifact fetched');
      return this.path(sha256);
    } catch (err) {
      // uploaded by a technician meanwhile
      if (this.verified.has(sha256) && existsSync(this.path(sha256))) return this.path(sha256);
      throw err;
    } finally {
      this.claims.delete(sha256);
      if (!existsSync(part)) this.holding(sha256).part = 0;
    }
  }

  // ───────────────────────────── chunks ─────────────────────────────

  private awaitChunks(ref: ArtifactRef, signal: AbortSignal, onProgress: ((bytes: number) => void) | undefined): Promise<string> {
    const sha256 = ref.sha256;
    return new Promise<string>((resolve, reject) => {
      const set = this.waiters.get(sha256) ?? new Set<Waiter>();
      this.waiters.set(sha256, set);
      const leave = (): void => {
        set.delete(w);
        if (set.size === 0 && this.waiters.get(sha256) === set) this.waiters.delete(sha256);
        signal.removeEventListener('abort', onAbort);
      };
      const w: Waiter = {
        resolve: (path) => {
          leave();
          resolve(path);
        },
        reject: (err) => {
          leave();
          reject(err);
        },
        onProgress,
      };
      const onAbort = (): void => w.reject(abortReason(signal));
      set.add(w);
      signal.addEventListener('abort', onAbort, { once: true });
      onProgress?.(this.holding(sha256).chunks);
    });
  }

  /** All chunks are in: the artifact assembled in a temp file, checked, renamed into place; the chunks removed either way. */
  private assemble(e: Expected): boolean {
    const sha256 = e.ref.sha256;
    const dir = this.chunkDir(sha256);
    const tmp = this.tempPath(sha256);
    const got = concatChunks(dir, e.count, tmp);
    const waiting = [...(this.waiters.get(sha256) ?? [])];
    if (got !== sha256) {
      rmSync(tmp, { force: true });
      rmSync(dir, { recursive: true, force: true });
      this.forget(sha256);
      const err = new FirmwareError('E_FW_ARTIFACT', `the artifact's sha256 differs: the manifest says ${sha256}, its ${e.count} chunks make ${got} (deleted: central must send them again)`);
      this.log.error({ sha256, got, chunks: e.count }, 'firmware: artifact sent over MQTT does not match its sha256; chunks deleted');
      for (const w of waiting) w.reject(err);
      return false;
    }
    renameSync(tmp, this.path(sha256));
    fsyncDir(this.dir);
    this.settled(sha256);
    this.log.info({ sha256, size: e.ref.size, chunks: e.count }, 'firmware: artifact received over MQTT');
    return true;
  }

  private ignore(sha256: string, index: number, why: string): { complete: false } {
    this.chunkCounts.ignored++;
    this.log.debug({ sha256: sha256.slice(0, 80), index, why, ignored: this.chunkCounts.ignored }, 'firmware: artifact chunk ignored');
    return { complete: false };
  }

  // ───────────────────────────── the directory ─────────────────────────────

  /** Once per process: makes the directory, counts what is on disk, resumes the chunk sets, removes temp files. */
  private scan(): void {
    if (this.scanned) return;
    mkdirSync(this.dir, { recursive: true });
    for (const name of readdirSync(this.dir)) {
      const full = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(full, { recursive: true, force: true });
        continue;
      }
      const sha256 = shaOf(name);
      if (sha256 === undefined) continue;
      if (name === sha256) this.holding(sha256).file = statSync(full).size;
      else if (name.endsWith(PART)) this.holding(sha256).part = statSync(full).size;
    }
    for (const name of readdirSync(this.dir)) {
      const sha256 = shaOf(name);
      if (sha256 !== undefined && name.endsWith(CHUNKS)) this.resumeChunks(sha256);
    }
    this.scanned = true;
  }

  /** A chunk set left by the last run: kept unless the artifact is complete or its ref unreadable; chunks of a wrong name or length removed. */
  private resumeChunks(sha256: string): void {
    const dir = this.chunkDir(sha256);
    const set = readChunkSet(dir, sha256);
    if (set === undefined || existsSync(this.path(sha256))) {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    const e = this.track(set.ref, new Set(set.chunks.keys()));
    this.holding(sha256).chunks = [...set.chunks.values()].reduce((a, b) => a + b, 0);
    this.log.info({ sha256, have: e.have.size, chunks: e.count }, 'firmware: artifact chunks kept from before the restart');
    // every chunk came before the restart, the assembly did not
    if (e.have.size === e.count) this.assemble(e);
  }

  private track(ref: ArtifactRef, have: Set<number>): Expected {
    const e: Expected = { ...chunkGeometry(ref), ref, have };
    this.expected.set(ref.sha256, e);
    this.claims.set(ref.sha256, ref.size);
    return e;
  }

  /** Throws E_FW_QUOTA unless `size` more bytes for `sha256` fit beside everything else held or under way. */
  private makeRoom(sha256: string, size: number, what: string): void {
    let others = 0;
    for (const key of new Set([...this.held.keys(), ...this.claims.keys()])) {
      if (key === sha256) continue;
      const h = this.held.get(key);
      others += Math.max(h === undefined ? 0 : h.file + h.part + h.chunks, this.claims.get(key) ?? 0);
    }
    if (others + size > this.maxBytes) {
      throw new FirmwareError('E_FW_QUOTA', `${what} needs ${size} bytes; the artifact store holds ${others} of ${this.maxBytes} (firmware.artifacts.maxBytes)`);
    }
  }

  /** The complete file is in place and checked: its part file and chunks go, the fetches waiting for its chunks have it. */
  private settled(sha256: string): void {
    rmSync(this.path(sha256) + PART, { force: true });
    rmSync(this.chunkDir(sha256), { recursive: true, force: true });
    this.expected.delete(sha256);
    this.claims.delete(sha256);
    this.verified.add(sha256);
    const h = this.holding(sha256);
    h.file = statSync(this.path(sha256)).size;
    h.part = 0;
    h.chunks = 0;
    for (const w of [...(this.waiters.get(sha256) ?? [])]) w.resolve(this.path(sha256));
  }

  private forget(sha256: string): void {
    this.held.delete(sha256);
    this.expected.delete(sha256);
    this.claims.delete(sha256);
    this.verified.delete(sha256);
  }

  /** A file named `sha256` whose bytes are not: deleted, E_FW_ARTIFACT. */
  private corrupt(sha256: string, got: string): never {
    this.log.error({ sha256, got }, 'firmware: an artifact on disk is not what its name says; deleted');
    rmSync(this.path(sha256), { force: true });
    this.holding(sha256).file = 0;
    throw new FirmwareError('E_FW_ARTIFACT', `artifact ${sha256} on disk has the sha256 ${got}: deleted`);
  }

  private holding(sha256: string): Held {
    let h = this.held.get(sha256);
    if (h === undefined) {
      h = { file: 0, part: 0, chunks: 0 };
      this.held.set(sha256, h);
    }
    return h;
  }

  private chunkDir(sha256: string): string {
    return this.path(sha256) + CHUNKS;
  }

  private tempPath(sha256: string): string {
    return join(this.dir, `.${sha256}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  }
}

