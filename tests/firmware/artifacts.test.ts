/**
 * The artifact store over a real HTTP server on 127.0.0.1: downloads resumed with Range after a
 * cut or a restart, a 200 answering a Range, a wrong sha256 or size, the quota; chunks over MQTT
 * in and out of order, duplicates, a restart in the middle; uploads, local artifacts, gc.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../edge/clock.js';
import { ArtifactStore } from '../../edge/firmware/artifacts.js';
import type { ArtifactRef } from '../../edge/firmware/records.js';
import { silentLogger } from '../../edge/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const SIZE = 256 * 1024;
const image = randomBytes(SIZE);
const SHA = sha256(image);

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** What the server does with one request: its n (0-based), the Range it asked for, the response. */
type Behaviour = (n: number, range: number | undefined, req: http.IncomingMessage, res: http.ServerResponse) => void;

/** The body from `from` on as a 206 (RFC 9110 §14.4), or all of it as a 200; `cutAt` bytes of the whole then the socket destroyed; `stallAt`: then silence. */
function serve(body: Buffer, o: { range?: number | undefined; honourRange?: boolean; cutAt?: number; stallAt?: number }, res: http.ServerResponse): void {
  const from = o.honourRange !== false && o.range !== undefined ? o.range : 0;
  if (from > 0) {
    res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
  } else {
    res.writeHead(200, { 'content-length': body.length });
  }
  const stop = o.cutAt ?? o.stallAt;
  if (stop === undefined) {
    res.end(body.subarray(from));
    return;
  }
  res.write(body.subarray(from, Math.max(from, stop)), () => {
    // FIN after what was written: the body ends short of its Content-Length
    if (o.cutAt !== undefined) res.socket?.end();
  });
}

interface Server {
  url: string;
  ranges: (number | undefined)[];
  close(): Promise<void>;
}

async function startServer(behave: Behaviour): Promise<Server> {
  const ranges: (number | undefined)[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const range = m === null ? undefined : Number(m[1]);
    ranges.push(range);
    behave(ranges.length - 1, range, req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/fw/a.bin`,
    ranges,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

let dir: TempDir;
let servers: Server[];
let aborts: AbortController[];

beforeEach(() => {
  dir = tempDir('streetbox-artifacts-');
  servers = [];
  aborts = [];
});
afterEach(async () => {
  for (const a of aborts) a.abort();
  for (const s of servers) await s.close();
  dir.remove();
});

async function server(behave: Behaviour): Promise<Server> {
  const s = await startServer(behave);
  servers.push(s);
  return s;
}

function store(maxBytes = 4 * SIZE): ArtifactStore {
  return new ArtifactStore({ dir: join(dir.path, 'artifacts'), maxBytes, log: silentLogger(), clock: systemClock });
}

function urlRef(url: string, over: Partial<ArtifactRef> = {}): ArtifactRef {
  return { name: 'slc', version: '2.4.1', versionCode: 0x0241, size: SIZE, sha256: SHA, source: { url }, ...over };
}

function signal(): AbortSignal {
  const a = new AbortController();
  aborts.push(a);
  return a.signal;
}

function files(): string[] {
  const d = join(dir.path, 'artifacts');
  return existsSync(d) ? readdirSync(d).sort() : [];
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('ArtifactStore: fetching from a URL', () => {
  it('downloads, checks and keeps the artifact under its sha256', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range }, res));
    const artifacts = store();
    const seen: number[] = [];
    const path = await artifacts.fetch(urlRef(s.url), { signal: signal(), onProgress: (b) => seen.push(b) });
    expect(path).toBe(join(dir.path, 'artifacts', SHA));
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(files()).toEqual([SHA]);
    expect(seen.at(-1)).toBe(SIZE);
    expect(artifacts.usage()).toEqual({ bytes: SIZE, files: 1 });
    expect(artifacts.has(SHA)).toBe(true);
    expect(artifacts.read(SHA).equals(image)).toBe(true);
    // there already: no second request
    await artifacts.fetch(urlRef(s.url), { signal: signal() });
    expect(s.ranges).toEqual([undefined]);
  });

  it('resumes with Range from where a connection cut mid-body left it', async () => {
    const cut = Math.floor(SIZE * 0.4);
    const s = await server((n, range, _req, res) => serve(image, { range, ...(n === 0 ? { cutAt: cut } : {}) }, res));
    const path = await store().fetch(urlRef(s.url), { signal: signal() });
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(s.ranges).toHaveLength(2);
    expect(s.ranges[0]).toBeUndefined();
    // never from the start again: from the bytes that arrived, at most what was sent
    expect(s.ranges[1]).toBeGreaterThan(0);
    expect(s.ranges[1]).toBeLessThanOrEqual(cut);
  });

  it('resumes from its part file after a restart', async () => {
    const stall = Math.floor(SIZE * 0.6);
    const s = await server((n, range, _req, res) => serve(image, { range, ...(n === 0 ? { stallAt: stall } : {}) }, res));
    const first = store();
    const abort = new AbortController();
    let have = 0;
    const fetching = first.fetch(urlRef(s.url), { signal: abort.signal, onProgress: (b) => (have = b) });
    await waitFor('the first 60% on disk', () => have === stall);
    abort.abort();
    expect(await rejection(fetching)).toMatchObject({ code: 'E_FW_CANCELLED' });
    await waitFor('the part file closed at 60%', () => files().includes(`${SHA}.part`) && statSync(join(dir.path, 'artifacts', `${SHA}.part`)).size === stall);
    expect(first.usage().bytes).toBe(stall);

    const second = store();
    expect(second.usage()).toEqual({ bytes: stall, files: 0 });
    const path = await second.fetch(urlRef(s.url), { signal: signal() });
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(s.ranges).toEqual([undefined, stall]);
    expect(files()).toEqual([SHA]);
  });

  it('starts the file over when a Range is answered with 200', async () => {
    const s = await server((n, range, _req, res) => serve(image, { range, honourRange: false, ...(n === 0 ? { cutAt: SIZE / 2 } : {}) }, res));
    const path = await store().fetch(urlRef(s.url), { signal: signal() });
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(s.ranges[1]).toBeGreaterThan(0);
  });

  it('starts over when a 206 begins elsewhere than asked', async () => {
    const s = await server((n, range, _req, res) => {
      if (n === 0) serve(image, { cutAt: SIZE / 2 }, res);
      else if (n === 1) {
        res.writeHead(206, { 'content-range': `bytes 0-${SIZE - 1}/${SIZE}`, 'content-length': SIZE });
        res.end(image);
      } else serve(image, { range }, res);
    });
    const path = await store().fetch(urlRef(s.url), { signal: signal() });
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(s.ranges).toEqual([undefined, expect.any(Number), undefined]);
  });

  it('starts over when the server has nothing from the part file on (416)', async () => {
    const s = await server((_n, range, _req, res) => {
      if (range !== undefined) {
        res.writeHead(416, { 'content-range': `bytes */${SIZE}` });
        res.end();
      } else serve(image, {}, res);
    });
    const artifacts = store();
    artifacts.usage(); // makes the directory
    writeFileSync(join(dir.path, 'artifacts', `${SHA}.part`), image.subarray(0, SIZE / 2));
    expect(readFileSync(await artifacts.fetch(urlRef(s.url), { signal: signal() })).equals(image)).toBe(true);
    expect(s.ranges).toEqual([SIZE / 2, undefined]);
  });

  it('gives up after its retries bring no byte, keeping what came for the next try', async () => {
    const s = await server((n, range, _req, res) => (n === 0 ? serve(image, { range, cutAt: 5000 }, res) : res.socket?.destroy()));
    // the backoff's pauses pass at once
    const clock = { ...systemClock, setTimeout: (fn: () => void) => setTimeout(fn, 0) };
    const artifacts = new ArtifactStore({ dir: join(dir.path, 'artifacts'), maxBytes: 4 * SIZE, log: silentLogger(), clock });
    const err = await rejection(artifacts.fetch(urlRef(s.url), { signal: signal() }));
    expect(err).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringMatching(/^the artifact could not be fetched: .* \(6 attempts in a row without a byte; \d+ of 262144 bytes are kept for the next try\)$/) });
    expect(s.ranges).toHaveLength(7);
    expect(artifacts.usage().bytes).toBeGreaterThan(0);
  });

  it('refuses an artifact whose sha256 differs, deleting what came', async () => {
    const other = randomBytes(SIZE);
    const s = await server((_n, range, _req, res) => serve(other, { range }, res));
    const err = await rejection(store().fetch(urlRef(s.url), { signal: signal() }));
    expect(err).toMatchObject({ code: 'E_FW_ARTIFACT', message: `the artifact's sha256 differs: the manifest says ${SHA}, the download is ${sha256(other)} (deleted)` });
    expect(files()).toEqual([]);
  });

  it('refuses an artifact of another size: announced, sent longer, or ended short', async () => {
    const longer = Buffer.concat([image, Buffer.from('x')]);
    const announced = await server((_n, range, _req, res) => serve(longer, { range }, res));
    expect(await rejection(store().fetch(urlRef(announced.url), { signal: signal() }))).toMatchObject({
      code: 'E_FW_ARTIFACT',
      message: `the artifact's size differs: the manifest says ${SIZE} bytes, the server has ${SIZE + 1}`,
    });
    const chunked = await server((_n, _range, _req, res) => {
      res.writeHead(200); // no length: chunked
      res.end(longer);
    });
    expect(await rejection(store().fetch(urlRef(chunked.url), { signal: signal() }))).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringContaining('the server sent more') });
    const short = await server((_n, _range, _req, res) => {
      res.writeHead(200);
      res.end(image.subarray(0, 1000));
    });
    expect(await rejection(store().fetch(urlRef(short.url), { signal: signal() }))).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringContaining('the server sent 1000') });
    expect(files()).toEqual([]);
  });

  it('gives up at once on a 404, keeping nothing', async () => {
    const s = await server((_n, _range, _req, res) => {
      res.writeHead(404);
      res.end();
    });
    expect(await rejection(store().fetch(urlRef(s.url), { signal: signal() }))).toMatchObject({ code: 'E_FW_ARTIFACT', message: 'the artifact could not be fetched: HTTP 404 Not Found' });
    expect(s.ranges).toHaveLength(1);
  });

  it('stops at its timeout with E_FW_TIMEOUT, keeping the part file', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range, stallAt: 1000 }, res));
    expect(await rejection(store().fetch(urlRef(s.url), { signal: signal(), timeoutMs: 300 }))).toMatchObject({ code: 'E_FW_TIMEOUT' });
    await waitFor('the part file', () => files().includes(`${SHA}.part`));
  });

  it('shares one download between fetches of the same artifact', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range }, res));
    const artifacts = store();
    const [a, b] = await Promise.all([artifacts.fetch(urlRef(s.url), { signal: signal() }), artifacts.fetch(urlRef(s.url), { signal: signal() })]);
    expect(a).toBe(b);
    expect(s.ranges).toHaveLength(1);
  });

  it('follows a redirect on the loopback, never to http:// elsewhere', async () => {
    const target = await server((_n, range, _req, res) => serve(image, { range }, res));
    const redirect = await server((n, _range, _req, res) => {
      res.writeHead(302, { location: n === 0 ? target.url : 'http://central.example/a.bin' });
      res.end();
    });
    expect(readFileSync(await store().fetch(urlRef(redirect.url), { signal: signal() })).equals(image)).toBe(true);
    const again = store();
    again.gc(new Set());
    expect(await rejection(again.fetch(urlRef(redirect.url), { signal: signal() }))).toMatchObject({
      code: 'E_FW_ARTIFACT',
      message: "the artifact's URL redirects where it may not: expected an https:// URL (http:// only to a loopback host)",
    });
  });
});

describe('ArtifactStore: the quota', () => {
  it('refuses a fetch that does not fit, before asking the server', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range }, res));
    expect(await rejection(store(SIZE - 1).fetch(urlRef(s.url), { signal: signal() }))).toMatchObject({
      code: 'E_FW_QUOTA',
      message: `artifact slc 2.4.1 needs ${SIZE} bytes; the artifact store holds 0 of ${SIZE - 1} (firmware.artifacts.maxBytes)`,
    });
    expect(s.ranges).toEqual([]);
  });

  it('counts complete files, part files and chunks, and what is under way', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range, stallAt: 1000 }, res));
    const artifacts = store(2 * SIZE + 100);
    const upload = randomBytes(SIZE);
    artifacts.put(upload);
    // a download under way holds its whole size
    const abort = new AbortController();
    let have = 0;
    const fetching = artifacts.fetch(urlRef(s.url), { signal: abort.signal, onProgress: (b) => (have = b) });
    await waitFor('the first 1000 bytes', () => have === 1000);
    expect(() => artifacts.put(randomBytes(200))).toThrow(expect.objectContaining({ code: 'E_FW_QUOTA' }));
    abort.abort();
    await rejection(fetching);
    // stopped: its part file still counts, its room for the rest is given back
    expect(artifacts.usage().bytes).toBe(SIZE + 1000);
    expect(() => artifacts.put(randomBytes(SIZE - 900 + 1))).toThrow(expect.objectContaining({ code: 'E_FW_QUOTA' }));
    artifacts.put(randomBytes(SIZE - 900));
    // an MQTT artifact expected holds its size too
    const small = randomBytes(50);
    artifacts.gc(new Set());
    const mqtt: ArtifactRef = { ...urlRef(''), size: 2 * SIZE, sha256: sha256(small), source: { mqtt: { chunkBytes: 1024 } } };
    artifacts.expect(mqtt);
    expect(() => artifacts.put(randomBytes(101))).toThrow(expect.objectContaining({ code: 'E_FW_QUOTA' }));
    artifacts.put(randomBytes(100));
  });
});

describe('ArtifactStore: uploads and local artifacts', () => {
  it('stores an upload under its sha256; local fetches find it; a corrupt file is found out and deleted', async () => {
    const artifacts = store();
    expect(artifacts.put(image)).toEqual({ sha256: SHA, size: SIZE });
    const local = urlRef('', { source: { local: true } });
    expect(await artifacts.fetch(local, { signal: signal() })).toBe(artifacts.path(SHA));
    expect(await rejection(artifacts.fetch({ ...local, size: SIZE + 1 }, { signal: signal() }))).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringContaining('size differs') });

    // after a restart a file is trusted only once checked
    const flipped = Buffer.from(image);
    flipped[100] = flipped[100]! ^ 1;
    writeFileSync(artifacts.path(SHA), flipped);
    expect(() => store().read(SHA)).toThrow(expect.objectContaining({ code: 'E_FW_ARTIFACT' }));
    expect(files()).toEqual([]);
    writeFileSync(artifacts.path(SHA), flipped);
    expect(await rejection(store().fetch(local, { signal: signal() }))).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringContaining('is not in the gateway\'s artifact store') });
    expect(files()).toEqual([]);
  });

  it('refuses a path that is not a sha256', () => {
    expect(() => store().path('../etc/passwd')).toThrow(expect.objectContaining({ code: 'E_FW_INVALID' }));
    expect(store().has('../x')).toBe(false);
  });
});

describe('ArtifactStore: chunks over MQTT', () => {
  const CHUNK = 10_000;
  const COUNT = Math.ceil(SIZE / CHUNK);
  const mqttRef: ArtifactRef = { name: 'slc', version: '2.4.1', versionCode: 1, size: SIZE, sha256: SHA, source: { mqtt: { chunkBytes: CHUNK } } };
  const chunk = (i: number): Buffer => image.subarray(i * CHUNK, Math.min(SIZE, (i + 1) * CHUNK));

  it('assembles chunks that come out of order and twice; ignores strays', async () => {
    const artifacts = store();
    expect(artifacts.addChunk(SHA, 0, chunk(0))).toEqual({ complete: false }); // not expected yet
    const fetching = artifacts.fetch(mqttRef, { signal: signal() });
    const order = [...Array(COUNT).keys()].reverse();
    for (const i of order.slice(0, -1)) expect(artifacts.addChunk(SHA, i, chunk(i))).toEqual({ complete: false });
    expect(artifacts.addChunk(SHA, 5, chunk(5))).toEqual({ complete: false }); // duplicate
    expect(artifacts.addChunk(SHA, COUNT, chunk(0))).toEqual({ complete: false }); // beyond
    expect(artifacts.addChunk(SHA, 1, chunk(1).subarray(1))).toEqual({ complete: false }); // short
    expect(artifacts.addChunk('f'.repeat(64), 0, chunk(0))).toEqual({ complete: false }); // another artifact
    expect(artifacts.addChunk('../../x', 0, chunk(0))).toEqual({ complete: false });
    expect(artifacts.usage().bytes).toBe(SIZE - chunk(0).length);
    expect(artifacts.addChunk(SHA, 0, chunk(0))).toEqual({ complete: true });
    const path = await fetching;
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(files()).toEqual([SHA]);
    expect(artifacts.chunkCounters()).toEqual({ accepted: COUNT, duplicate: 1, ignored: 5 });
    // a chunk of the finished artifact: ignored
    expect(artifacts.addChunk(SHA, 3, chunk(3))).toEqual({ complete: true });
    expect(artifacts.usage()).toEqual({ bytes: SIZE, files: 1 });
  });

  it('keeps the chunks across a restart and finishes with the rest', async () => {
    const first = store();
    first.expect(mqttRef);
    for (let i = 0; i < COUNT; i += 2) first.addChunk(SHA, i, chunk(i));
    const second = store();
    expect(second.usage().bytes).toBe([...Array(COUNT).keys()].filter((i) => i % 2 === 0).reduce((n, i) => n + chunk(i).length, 0));
    const fetching = second.fetch(mqttRef, { signal: signal() });
    for (let i = 1; i < COUNT; i += 2) second.addChunk(SHA, i, chunk(i));
    expect(readFileSync(await fetching).equals(image)).toBe(true);
  });

  it('assembles at the start when every chunk came before a restart', async () => {
    const first = store();
    first.expect(mqttRef);
    for (let i = 0; i < COUNT - 1; i++) first.addChunk(SHA, i, chunk(i));
    // the last chunk written, the process killed before it assembled them
    writeFileSync(join(dir.path, 'artifacts', `${SHA}.chunks`, String(COUNT - 1)), chunk(COUNT - 1));
    expect(await store().fetch(mqttRef, { signal: signal() })).toBe(join(dir.path, 'artifacts', SHA));
    expect(files()).toEqual([SHA]);
  });

  it('drops the chunks of an artifact whose sha256 differs and fails who waits', async () => {
    const artifacts = store();
    const wrong: ArtifactRef = { ...mqttRef, sha256: 'e'.repeat(64) };
    const fetching = artifacts.fetch(wrong, { signal: signal() });
    let last: { complete: boolean } = { complete: false };
    for (let i = 0; i < COUNT; i++) last = artifacts.addChunk(wrong.sha256, i, chunk(i));
    expect(last).toEqual({ complete: false });
    expect(await rejection(fetching)).toMatchObject({ code: 'E_FW_ARTIFACT', message: expect.stringContaining(`its ${COUNT} chunks make ${SHA}`) });
    expect(files()).toEqual([]);
    expect(artifacts.usage().bytes).toBe(0);
  });

  it('ends the wait for chunks when a technician uploads the artifact', async () => {
    const artifacts = store();
    const fetching = artifacts.fetch(mqttRef, { signal: signal() });
    artifacts.addChunk(SHA, 0, chunk(0));
    artifacts.put(image);
    expect(await fetching).toBe(artifacts.path(SHA));
    expect(files()).toEqual([SHA]);
    expect(artifacts.usage()).toEqual({ bytes: SIZE, files: 1 });
  });

  it('stops waiting when the signal fires', async () => {
    const abort = new AbortController();
    const fetching = store().fetch(mqttRef, { signal: abort.signal });
    abort.abort();
    expect(await rejection(fetching)).toMatchObject({ code: 'E_FW_CANCELLED' });
  });
});

describe('ArtifactStore: gc', () => {
  it('removes artifacts, part files and chunk sets not kept', async () => {
    const s = await server((_n, range, _req, res) => serve(image, { range, stallAt: 500 }, res));
    const artifacts = store(10 * SIZE);
    const kept = artifacts.put(randomBytes(100)).sha256;
    const dropped = artifacts.put(randomBytes(100)).sha256;
    const abort = new AbortController();
    let have = 0;
    const fetching = artifacts.fetch(urlRef(s.url), { signal: abort.signal, onProgress: (b) => (have = b) });
    await waitFor('the first 500 bytes', () => have === 500);
    abort.abort();
    await rejection(fetching);
    const mqtt = randomBytes(10);
    artifacts.expect({ ...urlRef(''), size: 10, sha256: sha256(mqtt), source: { mqtt: { chunkBytes: 4 } } });
    artifacts.addChunk(sha256(mqtt), 0, mqtt.subarray(0, 4));
    expect(files()).toEqual([kept, dropped, `${SHA}.part`, `${sha256(mqtt)}.chunks`].sort());
    artifacts.gc(new Set([kept]));
    expect(files()).toEqual([kept]);
    expect(artifacts.usage()).toEqual({ bytes: 100, files: 1 });
    expect(artifacts.has(dropped)).toBe(false);
  });
});
