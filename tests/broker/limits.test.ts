/**
 * Issue 13, defect 3: "Anyone who can reach the broker port can take its memory." The broker's
 * limits with real sockets: a CONNECT announcing 200 MB is cut off at its header (memory of this
 * very process, where the broker runs, stays flat), a socket that never logs in is closed after
 * broker.connectTimeout, connections per address and in all are bounded, the first packet must
 * be a small CONNECT, and a logged-in client may send up to broker.maxPacketSize (a larger packet
 * closes that client only). The same over TLS. The framing itself is a scenario table.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { type IClientOptions } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { PRE_AUTH_MAX_PACKET, type Refusal } from '../../edge/broker/admission.js';
import { PacketFramer, type FramingVerdict } from '../../edge/broker/framing.js';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import { hashPassword } from '../../edge/control/passwords.js';
import { createLogger } from '../../edge/log.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingCommands } from '../api/support/commands.js';
import { KNOWN, gatewayContext } from '../api/support/context.js';
import { connect, type TestClient } from './support.js';

const FAST = { N: 1024, r: 8, p: 1 };
const PASSWORD = 'tech-secret-pw-13';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Started {
  b: BrokerComponent;
  dir: string;
  logs: string[];
}

async function startBroker(broker: Omit<NonNullable<ConfigInput['broker']>, 'users'>, prepare?: (dir: string) => void): Promise<Started> {
  const users = [{ username: 'tech', passwordHash: await hashPassword(PASSWORD, FAST), role: 'technician' as const }];
  const t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, users, ...broker } });
  cleanups.push(() => t.close());
  const logs: string[] = [];
  t.ctx.log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString('utf8'));
        cb();
      },
    }),
  });
  prepare?.(t.ctx.configDir);
  const b = createBroker(t.ctx, { commands: new RecordingCommands(t.store, KNOWN) });
  cleanups.push(() => b.stop());
  await b.start();
  return { b, dir: t.ctx.configDir, logs };
}

/** A raw TCP connection and when it closed (ms after it was opened), for bytes the MQTT clients would not send. */
interface Raw {
  socket: Socket;
  closedAfter: number | null;
  closed: Promise<void>;
}

function raw(port: number, localAddress?: string, useTls = false): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = useTls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : netConnect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    cleanups.push(() => {
      socket.destroy();
    });
    const r: Raw = {
      socket,
      closedAfter: null,
      closed: new Promise((c) => socket.once('close', () => c())),
    };
    socket.once('close', () => {
      r.closedAfter = Date.now() - t0;
    });
    socket.on('error', () => undefined);
    socket.once(useTls ? 'secureConnect' : 'connect', () => resolve(r));
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
}

async function closedWithin(r: Raw, ms: number): Promise<number> {
  await waitFor('the broker to close the connection', () => r.closedAfter !== null, ms);
  return r.closedAfter!;
}

/** Whether an MQTT client's connection is closed before any CONNACK (a refusal at the socket, not a login refusal). */
function closedBeforeConnack(port: number, extra: IClientOptions = {}, protocol: 'mqtt' | 'mqtts' = 'mqtt'): Promise<boolean> {
  return new Promise((resolve) => {
    const client = mqtt.connect(`${protocol}://127.0.0.1:${port}`, { reconnectPeriod: 0, protocolVersion: 4, username: 'tech', password: PASSWORD, ...extra });
    client.on('error', () => undefined);
    client.once('connect', () => {
      client.end(true);
      resolve(false);
    });
    client.once('close', () => {
      client.end(true);
      resolve(true);
    });
  });
}

/** Counters of the broker's metrics by reason. */
function refusals(b: BrokerComponent): Record<Refusal, number> {
  const out: Record<string, number> = {};
  for (const m of b.metrics()) if (m.name === 'streetbox_broker_connections_refused_total') out[m.labels!.reason!] = m.value;
  return out as Record<Refusal, number>;
}

function gauge(b: BrokerComponent, name: string): number {
  return b.metrics().find((m) => m.name === name)!.value;
}

/** MQTT 3.1.1 §2.2.3: the remaining length as a variable byte integer. */
function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/**
 * Writes `total` bytes (header first) as fast as the socket takes them, respecting its
 * backpressure so the sender's own buffers stay small; stops when the peer closes.
 */
async function stream(r: Raw, header: Buffer, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let sent = 0;
  const s = r.socket;
  if (!s.write(header)) await Promise.race([new Promise((d) => s.once('drain', d)), r.closed]);
  while (sent < total && r.closedAfter === null && !s.destroyed) {
    sent += chunk.length;
    if (!s.write(chunk)) await Promise.race([new Promise((d) => s.once('drain', d)), r.closed]);
  }
  return s.bytesWritten;
}

/** MQTT 3.1.1 §1.5.3: a UTF-8 string with its two-byte length. */
function str(v: string): number[] {
  const b = Buffer.from(v, 'utf8');
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** MQTT 3.1.1 §3.1: a CONNECT with username and password, clean session, keepalive 60 s. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const body = [...str('MQTT'), 4, 0xc2, 0, 60, ...str(clientId), ...str(username), ...str(password)];
  return Buffer.from([0x10, ...remainingLength(body.length), ...body]);
}

/** MQTT 3.1.1 §3.3: a QoS 0 PUBLISH. */
function publishPacket(topic: string, payload: string): Buffer {
  const body = [...str(topic), ...Buffer.from(payload, 'utf8')];
  return Buffer.from([0x30, ...remainingLength(body.length), ...body]);
}

function received(r: Raw): Buffer[] {
  const got: Buffer[] = [];
  r.socket.on('data', (d: Buffer) => got.push(d));
  return got;
}

const MB = 1024 * 1024;
const HUGE = 200_000_000;

function memory(): { rss: number; buffered: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, buffered: m.heapUsed + m.arrayBuffers };
}

describe('unauthenticated clients cannot take the memory', () => {
  it('cuts off a CONNECT announcing 200 MB at its header, without growing the broker', async () => {
    const { b, logs } = await startBroker({});
    const before = memory();
    const r = await raw(b.port());
    const written = await stream(r, Buffer.from([0x10, ...remainingLength(HUGE)]), HUGE);
    await closedWithin(r, 2000);
    const after = memory();
    // what the kernel's socket buffers held before the reset, not what the broker accepted
    expect(written).toBeLessThan(32 * MB);
    expect(refusals(b)['connect-too-large']).toBe(1);
    expect((after.buffered - before.buffered) / MB).toBeLessThan(8);
    expect((after.rss - before.rss) / MB).toBeLessThan(40);
    const line = logs.find((l) => l.includes('mqtt connection refused'))!;
    expect(JSON.parse(line)).toMatchObject({ reason: 'connect-too-large', remote: '127.0.0.1', size: HUGE + 5, limit: PRE_AUTH_MAX_PACKET });
  });

  it('closes a connection whose first packet is not CONNECT, before reading its body', async () => {
    const { b } = await startBroker({});
    const r = await raw(b.port());
    // a PUBLISH announcing 200 MB as the first packet [MQTT-3.1.0-1]
    const written = await stream(r, Buffer.from([0x30, ...remainingLength(HUGE)]), HUGE);
    await closedWithin(r, 2000);
    expect(written).toBeLessThan(32 * MB);
    expect(refusals(b)['not-connect']).toBe(1);
  });

  it('refuses a well-formed CONNECT over the pre-authentication limit (a large will), and logs no credentials', async () => {
    const { b, logs } = await startBroker({});
    expect(await closedBeforeConnack(b.port(), { will: { topic: 'site/will', payload: Buffer.alloc(PRE_AUTH_MAX_PACKET, 0x42), qos: 0, retain: false } })).toBe(true);
    expect(refusals(b)['connect-too-large']).toBe(1);
    expect(logs.join('')).not.toContain(PASSWORD);
    // the same client with a small will is welcome
    const c = await connect(b.port(), 'tech', PASSWORD, { will: { topic: 'site/will', payload: Buffer.from('gone'), qos: 0, retain: false } });
    await c.end();
  });

  it('reads nothing behind a CONNECT until its login succeeds, then passes it on', async () => {
    const { b } = await startBroker({});
    const watcher = await connect(b.port(), 'tech', PASSWORD);
    cleanups.push(() => watcher.end());
    await watcher.client.subscribeAsync('site/#', { qos: 1 });
    const r = await raw(b.port());
    const got = received(r);
    r.socket.write(Buffer.concat([connectPacket('pipelined', 'tech', PASSWORD), publishPacket('site/pipelined', 'behind the connect')]));
    const [m] = await watcher.waitMessages('site/pipelined');
    expect(m!.payload).toBe('behind the connect');
    expect([...Buffer.concat(got).subarray(0, 4)]).toEqual([0x20, 2, 0, 0]); // CONNACK accepted
  });

  it('closes a client with a wrong password that streams 200 MB behind its CONNECT, without buffering it', async () => {
    const { b } = await startBroker({});
    const before = memory();
    const r = await raw(b.port());
    const got = received(r);
    const written = await stream(r, Buffer.concat([connectPacket('greedy', 'tech', 'wrong-password'), Buffer.from([0x30, ...remainingLength(HUGE)])]), HUGE);
    await closedWithin(r, 5000);
    expect(written).toBeLessThan(32 * MB);
    expect((memory().buffered - before.buffered) / MB).toBeLessThan(8);
    expect([...Buffer.concat(got).subarray(0, 4)]).toEqual([0x20, 2, 0, 4]); // CONNACK bad username or password
  });

  it('closes a socket that has not completed CONNECT within connectTimeout; a logged-in client stays', async () => {
    const { b } = await startBroker({ connectTimeout: '300ms' });
    const silent = await raw(b.port());
    const partial = await raw(b.port());
    partial.socket.write(Buffer.from([0x10, 40, 0x00, 0x04])); // a CONNECT's first 4 of 42 bytes, then nothing
    const clientOpened = Date.now();
    const client = await connect(b.port(), 'tech', PASSWORD);
    cleanups.push(() => client.end());
    for (const r of [silent, partial]) {
      const ms = await closedWithin(r, 3000);
      expect(ms).toBeGreaterThanOrEqual(250);
    }
    expect(refusals(b)['connect-timeout']).toBe(2);
    // no condition shows a close that does not happen: stay until the client's own connectTimeout
    // (300 ms from its socket) has passed, with 100 ms to spare, and see it still open
    await new Promise((r) => setTimeout(r, Math.max(0, clientOpened + 300 + 100 - Date.now())));
    expect(client.closed).toBe(false);
    await client.client.publishAsync('site/alive', 'yes', { qos: 1 });
    await waitFor('only the logged-in client left', () => gauge(b, 'streetbox_broker_sockets') === 1, 2000);
  });

  it('refuses the N+1th connection from one address and the connection past maxConnections, and logs them rate-limited', async () => {
    const { b, logs } = await startBroker({ maxConnectionsPerAddress: 3, maxConnections: 4 });
    const held = [await raw(b.port()), await raw(b.port()), await raw(b.port())];
    await waitFor('three admitted', () => gauge(b, 'streetbox_broker_sockets') === 3, 2000);

    const fourth = await raw(b.port());
    await closedWithin(fourth, 2000);
    expect(await closedBeforeConnack(b.port())).toBe(true);
    for (let i = 0; i < 5; i++) await closedWithin(await raw(b.port()), 2000);
    expect(refusals(b)['max-per-address']).toBe(7);
    // one line for the burst of seven
    expect(logs.filter((l) => l.includes('"max-per-address"'))).toHaveLength(1);

    // another address is still welcome: connections that never logged in hold at most 3 of the
    // 4 slots, and the oldest of them makes room for a newcomer
    const other = await raw(b.port(), '127.0.0.2');
    await closedWithin(held[0]!, 2000);
    expect(refusals(b)['max-pending']).toBe(1);
    expect(other.closedAfter).toBeNull();

    // a client that logs in is never the one evicted, however many sockets come and idle
    const c = await connect(b.port(), 'tech', PASSWORD);
    for (let i = 0; i < 6; i++) await raw(b.port(), `127.0.0.${10 + i}`);
    await waitFor('idle sockets evicted', () => (refusals(b)['max-pending'] ?? 0) >= 5 && gauge(b, 'streetbox_broker_sockets') <= 4, 2000);
    expect(c.client.connected).toBe(true);
    await c.client.publishAsync('site/still-here', 'x', { qos: 1 });
    await c.end();
  });

  it('closes connections that never logged in when the broker stops', async () => {
    const { b } = await startBroker({ connectTimeout: '30s' });
    const r = await raw(b.port());
    const t0 = Date.now();
    await b.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    await closedWithin(r, 1000);
  });
});

describe('logged-in clients', () => {
  it('publish and subscribe packets above the pre-auth limit; a packet above maxPacketSize closes only its sender', async () => {
    const { b } = await startBroker({ maxPacketSize: '32KiB' });
    const watcher = await connect(b.port(), 'tech', PASSWORD);
    const sender = await connect(b.port(), 'tech', PASSWORD);
    cleanups.push(() => watcher.end(), () => sender.end());
    await watcher.client.subscribeAsync('site/#', { qos: 1 });

    const big = 'x'.repeat(20 * 1024); // over 8 KiB, under 32 KiB
    await sender.client.publishAsync('site/big', big, { qos: 1 });
    const [m] = await watcher.waitMessages('site/big');
    expect(m!.payload).toHaveLength(big.length);

    sender.client.publish('site/huge', 'y'.repeat(40 * 1024), { qos: 0 });
    await waitFor('the sender to be closed', () => sender.closed, 3000);
    expect(refusals(b)['packet-too-large']).toBe(1);

    // the watcher is untouched and still gets what others send
    const other: TestClient = await connect(b.port(), 'tech', PASSWORD);
    cleanups.push(() => other.end());
    await other.client.publishAsync('site/after', 'ok', { qos: 1 });
    await watcher.waitMessages('site/after');
    expect(watcher.closed).toBe(false);
    expect(watcher.messages.some((x) => x.topic === 'site/huge')).toBe(false);
  });
});

/** A self-signed certificate for 127.0.0.1 (EC P-256), valid one day. */
function makeCert(dir: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
}

describe('the TLS listener', () => {
  it('has the same limits: a huge CONNECT is cut off, a silent TCP connection times out, connections count per address', async () => {
    const { b, dir } = await startBroker({ tlsPort: 0, tls: { cert: 'cert.pem', key: 'key.pem' }, connectTimeout: '500ms', maxConnectionsPerAddress: 2 }, makeCert);
    const tlsPort = b.tlsPort()!;

    const huge = await raw(tlsPort, undefined, true);
    const before = memory();
    const written = await stream(huge, Buffer.from([0x10, ...remainingLength(HUGE)]), HUGE);
    await closedWithin(huge, 2000);
    expect(written).toBeLessThan(32 * MB);
    expect((memory().buffered - before.buffered) / MB).toBeLessThan(8);
    expect(refusals(b)['connect-too-large']).toBe(1);

    // TCP only, no handshake: the deadline counts from accept
    const silent = await raw(tlsPort);
    expect(await closedWithin(silent, 3000)).toBeGreaterThanOrEqual(400);
    expect(refusals(b)['connect-timeout']).toBe(1);

    // a failed handshake frees its slot
    const garbage = await raw(tlsPort);
    garbage.socket.write(connectPacket('not-tls', 'tech', PASSWORD));
    await closedWithin(garbage, 2000);
    await waitFor('the slot freed', () => gauge(b, 'streetbox_broker_sockets') === 0, 2000);

    // one plain and one TLS connection from 127.0.0.1 fill its two slots
    const plain = await raw(b.port());
    const tls = await raw(tlsPort, undefined, true);
    await waitFor('two admitted', () => gauge(b, 'streetbox_broker_sockets') === 2, 2000);
    const ca = readFileSync(join(dir, 'cert.pem'));
    expect(await closedBeforeConnack(tlsPort, { ca, rejectUnauthorized: true }, 'mqtts')).toBe(true);
    expect(refusals(b)['max-per-address']).toBe(1);
    plain.socket.destroy();
    tls.socket.destroy();
    await waitFor('both closed', () => gauge(b, 'streetbox_broker_sockets') === 0, 2000);
    const c = await connect(tlsPort, 'tech', PASSWORD, { ca, rejectUnauthorized: true }, 'mqtts');
    await c.client.publishAsync('site/tls', 'ok', { qos: 1 });
    await c.end();
  });
});

describe('packet framing (MQTT 3.1.1 §2.2)', () => {
  const LIMITS = { connect: 100, packet: 1000 };
  const connect10 = [0x10, 8, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2]; // a CONNECT's first 10 bytes (remaining length 8)
  const zeros = (n: number): number[] => Array<number>(n).fill(0);
  /** `passes`: bytes let through in all; `verdict`: why the connection closes */
  const rows: { name: string; chunks: number[][]; authenticateAfter?: number; passes?: number; verdict?: Partial<FramingVerdict> }[] = [
    { name: 'a small CONNECT', chunks: [connect10], passes: 10 },
    { name: 'a CONNECT fed one byte at a time', chunks: connect10.map((b) => [b]), passes: 10 },
    { name: 'the first packet is a PUBLISH [MQTT-3.1.0-1]', chunks: [[0x30, 2, 0, 0]], verdict: { reason: 'not-connect' } },
    { name: 'a CONNECT with reserved flags set [MQTT-2.2.2-2]', chunks: [[0x12, 0]], verdict: { reason: 'not-connect' } },
    { name: 'a CONNECT announcing 200 MB', chunks: [[0x10, ...remainingLength(HUGE)]], verdict: { reason: 'connect-too-large', size: HUGE + 5, limit: 100 } },
    { name: 'a CONNECT whose length bytes arrive one by one', chunks: [[0x10], [0x80], [0x80], [0x01]], verdict: { reason: 'connect-too-large', size: 16384 + 4 } },
    { name: 'a fifth length byte (§2.2.3: four at most)', chunks: [[0x10, 0xff, 0xff, 0xff, 0xff]], verdict: { reason: 'malformed-length' } },
    { name: 'nothing after the CONNECT before it is authenticated, however small', chunks: [[...connect10, 0xc0, 0x00], [0x30, 120]], passes: 10 },
    { name: 'what follows the CONNECT once it is authenticated', chunks: [connect10, [0xc0, 0x00, 0x30, 120]], authenticateAfter: 1, passes: 14 },
    { name: 'a PUBLISH over maxPacketSize after', chunks: [connect10, [0x30, ...remainingLength(2000)]], authenticateAfter: 1, verdict: { reason: 'packet-too-large', size: 2003, limit: 1000 } },
    { name: 'the largest remaining length, 268,435,455', chunks: [connect10, [0x30, 0xff, 0xff, 0xff, 0x7f]], authenticateAfter: 1, verdict: { reason: 'packet-too-large', size: 268_435_460 } },
    { name: 'a packet body that spans chunks is skipped, the next header read', chunks: [connect10, [0x30, 200, 1], zeros(150), zeros(50), [0x30, 0x7f]], authenticateAfter: 1, passes: 10 + 3 + 200 + 2 },
    { name: 'a header right after a spanning body is judged', chunks: [connect10, [0x30, 10], zeros(10), [0x30, 0xe8, 0x07]], authenticateAfter: 1, verdict: { reason: 'packet-too-large', size: 1003 } },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const framer = new PacketFramer(LIMITS);
      let passed = 0;
      let verdict: FramingVerdict | null = null;
      row.chunks.forEach((c, i) => {
        if (i === row.authenticateAfter) framer.authenticate();
        if (verdict) return;
        const r = framer.check(Uint8Array.from(c));
        if (typeof r === 'number') passed += r;
        else verdict = r;
      });
      if (row.verdict) expect(verdict).toMatchObject(row.verdict);
      else {
        expect(verdict).toBeNull();
        expect(passed).toBe(row.passes);
      }
    });
  }
});
