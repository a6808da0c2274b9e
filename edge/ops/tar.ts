/**
 * A minimal tar (POSIX.1-1988 ustar) writer and reader for backups: regular files only, flat
 * names under 100 bytes, streamed so a database bigger than the gateway's RAM fits.
 * Layout per POSIX pax(1) "ustar Interchange Format": a 512-byte header, the data padded to a
 * multiple of 512, and two zero blocks at the end of the archive.
 */
import { createReadStream, createWriteStream, closeSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { StreetboxError } from '../errors.js';

const BLOCK = 512;

export interface TarEntry {
  /** the name inside the archive (no directories) */
  name: string;
  /** the file on disk */
  path: string;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** ustar header: name 0..100, mode 100, uid 108, gid 116, size 124, mtime 136, chksum 148, typeflag 156, magic 257, version 263. */
export function tarHeader(name: string, size: number, mtimeS: number): Buffer {
  if (Buffer.byteLength(name) >= 100 || name.includes('/')) throw new StreetboxError('E_USAGE', `tar: unsupported entry name "${name}"`);
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(mtimeS), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // the checksum is computed with its own field as spaces
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

async function* archive(entries: readonly TarEntry[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const st = statSync(e.path);
    yield tarHeader(e.name, st.size, st.mtimeMs / 1000);
    let written = 0;
    for await (const chunk of createReadStream(e.path)) {
      written += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (written !== st.size) throw new StreetboxError('E_STORE', `tar: ${e.path} changed while it was archived`);
    const pad = (BLOCK - (st.size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad, 0);
  }
  yield Buffer.alloc(2 * BLOCK, 0);
}

/** Writes the files into a gzip-compressed tar at `out`. */
export async function writeTarGz(out: string, entries: readonly TarEntry[]): Promise<void> {
  await pipeline(Readable.from(archive(entries)), createGzip(), createWriteStream(out));
}

function parseOctal(buf: Buffer, start: number, len: number): number {
  const text = buf.toString('ascii', start, start + len).replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/** Parses a tar stream, writing each regular file into `dir`; returns the names extracted. */
class TarExtractor extends Writable {
  readonly names: string[] = [];
  private pending = Buffer.alloc(0);
  private fd: number | null = null;
  private remaining = 0;
  private padding = 0;
  private ended = false;

  constructor(private readonly dir: string) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    try {
      this.consume(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.fd !== null || this.remaining > 0) done(new StreetboxError('E_STORE', 'tar: the archive is truncated'));
    else done();
  }

  private consume(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length > 0 && !this.ended) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, buf.length);
        writeSync(this.fd!, buf, 0, n);
        this.remaining -= n;
        buf = buf.subarray(n);
        if (this.remaining === 0) {
          closeSync(this.fd!);
          this.fd = null;
        }
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, buf.length);
        this.padding -= n;
        buf = buf.subarray(n);
      } else {
        if (buf.length < BLOCK) break;
        this.header(buf.subarray(0, BLOCK));
        buf = buf.subarray(BLOCK);
      }
    }
    if (!this.ended && buf.length > 0) this.pending = Buffer.from(buf);
  }

  private header(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (sum !== parseOctal(h, 148, 8)) throw new StreetboxError('E_STORE', 'tar: bad header checksum (not a streetbox backup?)');
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const size = parseOctal(h, 124, 12);
    const type = String.fromCharCode(h[156]!);
    if ((type !== '0' && type !== '\0') || name === '' || name.includes('/') || name === '.' || name === '..') {
      throw new StreetboxError('E_STORE', `tar: unexpected entry "${name}" (type ${type})`);
    }
    this.names.push(name);
    this.fd = openSync(join(this.dir, name), 'w', 0o600);
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    done(err);
  }
}

/** Extracts a gzip-compressed tar into `dir` (which must exist); returns the entry names. */
export async function extractTarGz(file: string, dir: string): Promise<string[]> {
  const x = new TarExtractor(dir);
  await pipeline(createReadStream(file), createGunzip(), x);
  return x.names;
}
