/**
 * Fuzz: 12,000 random and mutated datagrams over real UDP on 127.0.0.1 against the network
 * server. No crash, no unhandled rejection, every datagram accounted for, memory flat, and
 * the server still accepts a good frame afterwards.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullData, pushData, txAck } from '../../edge/drivers/lorawan/semtech/packet.js';
import { ABP, GW, RawForwarder, dataUp, rxpk, startDriver, waitFor, type Harness } from './support.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let h: Harness;
let fwd: RawForwarder;
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  h = await startDriver({ leadMs: 20 });
  h.t.keepReadings = false;
  fwd = await new RawForwarder(h.port).bind();
  fwd.pull();
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
  await fwd.close();
  await h.close();
});

const good = () => pushData(2, randomInt(0, 0x10000), GW, { rxpk: [rxpk(dataUp(ABP, randomInt(0, 0x10000)))] });

function mutate(buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  const n = randomInt(1, 6);
  for (let i = 0; i < n; i++) {
    const op = randomInt(0, 4);
    const at = randomInt(0, b.length);
    if (op === 0) b[at] = randomInt(0, 256);
    else if (op === 1) b[at] = b[at]! ^ (1 << randomInt(0, 8));
    else if (op === 2) return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + randomInt(1, 8)))]);
    else return Buffer.concat([b.subarray(0, at), randomBytes(randomInt(1, 8)), b.subarray(at)]);
  }
  return b;
}

const WEIRD_JSON = [
  '{"rxpk":{}}',
  '{"rxpk":[null]}',
  '{"rxpk":[{"tmst":"x"}]}',
  '{"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","rssi":-1,"size":1,"data":"%%%"}]}',
  '{"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF99BW1","rssi":-1,"size":1,"data":"QAAAAAAAAAAAAAAAAAAA"}]}',
  '{"rxpk":[{"tmst":4294967296,"freq":1e308,"stat":1,"modu":"LORA","datr":7,"rssi":-1,"size":1,"data":""}]}',
  '{"stat":[]}',
  '{"stat":{"rxnb":"many","lati":1e400}}',
  '[]',
  'null',
  '{"__proto__":{"polluted":1},"rxpk":[]}',
  '{"rxpk":[' + '{},'.repeat(500) + '{}]}',
];

function datagram(): Buffer {
  switch (randomInt(0, 9)) {
    case 0:
      return randomBytes(randomInt(0, 300));
    case 1: // a plausible header, then garbage
      return Buffer.concat([Buffer.from([randomInt(0, 4), randomInt(0, 256), randomInt(0, 256), randomInt(0, 7)]), randomBytes(randomInt(0, 200))]);
    case 2:
    case 3:
      return mutate(good());
    case 4: // a valid datagram carrying a bit-flipped frame (MIC, DevAddr, MType, length)
      return pushData(2, 1, GW, { rxpk: [rxpk(mutate(dataUp(ABP, randomInt(0, 0x10000))))] });
    case 5:
      return Buffer.concat([Buffer.from([2, 0, 1, 0]), Buffer.from(GW, 'hex'), Buffer.from(WEIRD_JSON[randomInt(0, WEIRD_JSON.length)]!)]);
    case 6:
      return pullData(randomInt(1, 3), randomInt(0, 0x10000), randomBytes(8).toString('hex'));
    case 7:
      return txAck(2, randomInt(0, 0x10000), GW, ['NONE', 'TOO_LATE', 'X'.repeat(randomInt(0, 50))][randomInt(0, 3)]);
    default:
      return good(); // replays of random counters: mostly rejected, some accepted
  }
}

/** Sends n datagrams in bursts of 100, letting the server catch up between bursts. */
async function blast(n: number): Promise<void> {
  const base = h.driver.metrics().datagrams;
  for (let i = 0; i < n; i += 100) {
    for (let j = 0; j < 100 && i + j < n; j++) fwd.send(datagram());
    // Only paces the bursts: loopback may drop datagrams, which never arrive, so running out of time is no failure.
    await waitFor('the previous burst', () => h.driver.metrics().datagrams - base >= i, { timeoutMs: 200, intervalMs: 1 }).catch(() => undefined);
  }
}

/**
 * The server has judged whatever reached it: its datagram counter stood still for 100 ms, past
 * the de-duplication window. (No exact count to wait for: loopback may drop under a burst.)
 */
async function caughtUp(): Promise<void> {
  let last = -1;
  await waitFor(
    'the server to catch up',
    () => {
      const n = h.driver.metrics().datagrams;
      const still = n === last;
      last = n;
      return still;
    },
    { timeoutMs: 5000, intervalMs: 100 },
  );
}

describe('fuzz: random and mutated datagrams', () => {
  it('survives 12,000 datagrams with flat memory and keeps serving', async () => {
    await blast(2_000); // warm-up: JIT, statement caches, forwarder table
    await caughtUp();
    gc();
    const before = process.memoryUsage().heapUsed;
    const m0 = h.driver.metrics();
    await blast(10_000);
    await caughtUp();
    h.t.writer.flush();
    gc();
    const after = process.memoryUsage().heapUsed;
    const m1 = h.driver.metrics();
    // Loopback UDP may drop under a burst; most datagrams must have been received and judged.
    expect(m1.datagrams - m0.datagrams).toBeGreaterThan(9_000);
    const rejected = (m: typeof m0) => Object.values(m.rejected).reduce((a, b) => a + b, 0);
    expect(rejected(m1) - rejected(m0)).toBeGreaterThan(6_000);
    expect(m1.rejected.internal ?? 0).toBe(0);
    expect(m1.rejected.handler_error ?? 0).toBe(0);
    expect(unhandled).toEqual([]);
    if (process.env.STREETBOX_TEST_LOG) process.stderr.write(`heap ${((after - before) / 1e6).toFixed(2)} MB ${JSON.stringify(m1)}\n`);
    expect(after - before, `heap grew by ${((after - before) / 1e6).toFixed(1)} MB`).toBeLessThan(8 * 1024 * 1024);
    expect(Object.prototype).not.toHaveProperty('polluted');

    // Still serving: a fresh uplink with a counter ahead of everything is accepted.
    const up0 = h.driver.metrics().uplinks;
    const last = h.driver.status().devices.find((d) => d.id === 'lamp-abp')!.fCntUp ?? 0;
    fwd.push(rxpk(dataUp(ABP, last + 1)));
    await waitFor('good frame after the fuzz', () => h.driver.metrics().uplinks === up0 + 1, 2000);
  });
});
