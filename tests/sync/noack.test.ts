/**
 * Brokers that misbehave: one that accepts the connection (CONNACK) but never acknowledges a
 * PUBLISH (a raw TCP server speaking just enough MQTT 3.1.1), and one that is not there at all.
 * The first makes batches time out and go again over a new connection (counted as resent), the
 * second gives one clear error; neither marks anything synced.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createSyncComponent } from '../../cloud-sync/index.js';
import { makeContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/ports.js';
import { GW, captureLog, writeBacklog } from './helpers.js';

interface SeenPublish {
  connection: number;
  topic: string;
  payload: Buffer;
}

/** Answers CONNECT with CONNACK and PINGREQ with PINGRESP; records PUBLISH and never acknowledges it. */
async function silentBroker(): Promise<{ server: Server; port: number; connections: number; publishes: SeenPublish[]; close(): Promise<void> }> {
  const state = { connections: 0, publishes: [] as SeenPublish[] };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const connection = ++state.connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let guard = 0; guard < 10_000; guard++) {
        // MQTT 3.1.1 §2.2.3: remaining length, 1..4 bytes of 7 bits
        let len = 0;
        let mult = 1;
        let i = 1;
        for (; i < 5 && i < buf.length; i++) {
          const b = buf[i] as number;
          len += (b & 0x7f) * mult;
          mult *= 128;
          if ((b & 0x80) === 0) break;
        }
        if (i >= buf.length || buf.length < i + 1 + len) return;
        const header = buf[0] as number;
        const type = header >> 4;
        const body = buf.subarray(i + 1, i + 1 + len);
        buf = buf.subarray(i + 1 + len);
        if (type === 1) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); // §3.2 CONNACK, accepted
        else if (type === 12) socket.write(Buffer.from([0xd0, 0x00])); // §3.13 PINGRESP
        else if (type === 3) {
          // §3.3.2: topic name, then (QoS > 0) the packet identifier, then the payload
          const qos = (header >> 1) & 3;
          const tlen = body.readUInt16BE(0);
          const topic = body.subarray(2, 2 + tlen).toString('utf8');
          const payload = body.subarray(2 + tlen + (qos > 0 ? 2 : 0));
          state.publishes.push({ connection, topic, payload });
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    get connections() {
      return state.connections;
    },
    publishes: state.publishes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('misbehaving brokers', () => {
  it('a broker that never acknowledges: the batch times out and is resent over a new connection; nothing synced', async () => {
    const broker = await silentBroker();
    cleanups.push(() => broker.close());
    const cap = captureLog();
    const t = makeContext(
      { gateway: { id: GW }, sync: { url: `mqtt://127.0.0.1:${broker.port}`, ackTimeout: 300, reconnectMin: 50, reconnectMax: 100, batchSize: 100, inFlight: 2 } },
      { log: cap.log },
    );
    cleanups.push(() => t.close());
    writeBacklog(t.store, 1000, { eventEvery: 0 });
    const sync = createSyncComponent(t.ctx);
    cleanups.push(() => sync.stop());
    await sync.start();
    const firstBatch = (): SeenPublish[] => broker.publishes.filter((p) => p.topic === `streetbox/${GW}/up/readings` && (JSON.parse(p.payload.toString()) as { fromSeq: number }).fromSeq === 1);
    await waitFor('batch 1 sent over three connections', () => new Set(firstBatch().map((p) => p.connection)).size >= 3, 10_000);
    const st = sync.status();
    expect(st.resent).toBeGreaterThanOrEqual(2);
    expect(st.ackedSeq).toBe(0);
    expect(t.store.consumer('upstream')?.ackedSeq).toBe(0);
    // at most inFlight batches went out per connection before the timeout
    const perConnection = new Map<number, number>();
    for (const p of broker.publishes.filter((x) => x.topic.includes('/up/'))) perConnection.set(p.connection, (perConnection.get(p.connection) ?? 0) + 1);
    expect(Math.max(...perConnection.values())).toBeLessThanOrEqual(2);
    expect(st.lastError).toMatch(/did not acknowledge batch 1\.\.100 within 300 ms/);
    // logged once, not once per round; never "connected" (nothing was ever acknowledged)
    expect(cap.count('upstream connection lost; reconnecting')).toBe(1);
    expect(cap.count('upstream connected')).toBe(0);
  });

  it('an unreachable broker: one clear error, retries with growing delays, nothing synced', async () => {
    const port = await freePort();
    const cap = captureLog();
    const t = makeContext({ gateway: { id: GW }, sync: { url: `mqtt://127.0.0.1:${port}`, reconnectMin: 20, reconnectMax: 160 } }, { log: cap.log });
    cleanups.push(() => t.close());
    writeBacklog(t.store, 100, { eventEvery: 0 });
    const sync = createSyncComponent(t.ctx);
    cleanups.push(() => sync.stop());
    await sync.start();
    const retries = () => cap.lines.filter((l) => l.msg === 'upstream retry scheduled');
    await waitFor('six retries', () => retries().length >= 6, 10_000);
    expect(sync.status().lastError).toMatch(/cannot reach mqtt:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(cap.count('upstream unavailable; retrying with backoff')).toBe(1);
    const delays = retries().map((l) => l.delayMs as number);
    // exponential with jitter: each delay within [ceiling/2, ceiling], ceiling doubling up to reconnectMax
    delays.forEach((d, i) => {
      const ceiling = Math.min(160, 20 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    });
    expect(sync.status().ackedSeq).toBe(0);
  });
});
