// The RTU transport on a real serial line: a socat PTY pair, serialport on both ends, the
// scripted slave of helpers/rtuResponder.ts. Checks framing, CRC, unit filtering, the t1.5
// rule inside a frame, the t3.5 silence kept before every request, and a missing port.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema, type SerialBusConfig } from '../../edge/config/schema.js';
import { ModbusClient, ModbusCrcError, ModbusExceptionError, ModbusFrameError, ModbusTimeoutError } from '../../edge/drivers/modbus/index.js';
import { serialTiming } from '../../edge/drivers/modbus/framing.js';
import { openPtyPair, type PtyPair } from '../../edge/sim/pty.js';
import { waitFor } from '../helpers/wait.js';
import { RtuResponder } from './helpers/rtuResponder.js';

let pty: PtyPair;
let slave: RtuResponder;
let client: ModbusClient | undefined;

function bus(extra: Record<string, unknown> = {}): SerialBusConfig {
  const cfg = configSchema.parse({
    gateway: { id: 'g' },
    buses: [{ id: 'rs485-1', type: 'serial', path: pty.masterPath, baud: 9600, parity: 'none', timeout: 150, retries: 0, ...extra }],
  });
  return cfg.buses[0] as SerialBusConfig;
}

beforeEach(async () => {
  pty = await openPtyPair();
  slave = new RtuResponder(pty.simPath, 9600);
  await slave.open();
  const t = slave.unit(1);
  t.holding.set([2301, 5000, 215], 0);
  slave.unit(2).holding.set([7, 8], 0);
});

afterEach(async () => {
  await client?.close();
  client = undefined;
  await slave.close();
  await pty.close();
});

async function open(extra: Record<string, unknown> = {}): Promise<ModbusClient> {
  client = new ModbusClient({ bus: bus(extra) });
  await client.open();
  return client;
}

describe('RTU transport over a PTY', () => {
  it('reads and writes, and keeps at least t3.5 of silence before every request', async () => {
    const c = await open();
    for (let i = 0; i < 20; i++) {
      expect(await c.readHoldingRegisters(i % 2 ? 1 : 2, 0, 2)).toEqual(i % 2 ? [2301, 5000] : [7, 8]);
    }
    await c.writeRegister(1, 5, 1234);
    expect(await c.readHoldingRegisters(1, 5, 1)).toEqual([1234]);
    const t35 = serialTiming(9600, 8, 'none', 1).t35Us / 1000;
    const gaps = slave.silenceBefore.slice(1);
    expect(gaps).toHaveLength(21);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(t35);
    expect(c.counters).toMatchObject({ requests: 22, responses: 22, crcErrors: 0, frameErrors: 0 });
  });

  it('a CRC error is reported as such and the next transaction works', async () => {
    const c = await open();
    slave.behaviour.set(1, 'crc');
    await expect(c.readHoldingRegisters(1, 0, 1)).rejects.toThrow(ModbusCrcError);
    slave.behaviour.delete(1);
    expect(await c.readHoldingRegisters(1, 0, 1)).toEqual([2301]);
    expect(c.counters.crcErrors).toBe(1);
  });

  it('an answer from another unit is discarded; the right one is taken', async () => {
    const c = await open();
    slave.behaviour.set(1, 'wrongUnitFirst');
    expect(await c.readHoldingRegisters(1, 0, 2)).toEqual([2301, 5000]);
    expect(c.counters.discardedUnit).toBe(1);
  });

  it('another unit\'s frame and ours in one burst: the other is discarded, ours taken', async () => {
    const c = await open();
    slave.behaviour.set(1, 'sameBurst');
    expect(await c.readHoldingRegisters(1, 0, 2)).toEqual([2301, 5000]);
    expect(c.counters.discardedUnit).toBe(1);
  });

  it('a silence longer than t1.5 inside a frame makes it invalid (2.5.1.1)', async () => {
    const c = await open();
    slave.behaviour.set(1, 'split');
    await expect(c.readHoldingRegisters(1, 0, 3)).rejects.toThrow(ModbusFrameError);
    expect(c.counters.frameErrors).toBeGreaterThanOrEqual(1);
    // the tail of the split frame arrives and is discarded: all 11 bytes of the answer (5 + 3 × 2)
    await waitFor('the tail of the split frame discarded', () => c.counters.discardedBytes >= 11);
    slave.behaviour.delete(1);
    expect(await c.readHoldingRegisters(1, 0, 3)).toEqual([2301, 5000, 215]);
  });

  it('garbage from the asked unit is a frame error; the line recovers', async () => {
    const c = await open();
    slave.behaviour.set(1, 'garbage');
    await expect(c.readHoldingRegisters(1, 0, 1)).rejects.toThrow(/unknown function code 43/);
    slave.behaviour.delete(1);
    expect(await c.readHoldingRegisters(1, 0, 1)).toEqual([2301]);
  });

  it('no answer: a timeout after the timeout plus both frames\' wire time', async () => {
    const c = await open();
    slave.behaviour.set(1, 'silent');
    const t0 = performance.now();
    await expect(c.readHoldingRegisters(1, 0, 10)).rejects.toThrow(ModbusTimeoutError);
    const elapsed = performance.now() - t0;
    // 150 ms + 8 request bytes + 25 response bytes at 10 bits / 9600 baud ≈ 184 ms
    expect(elapsed).toBeGreaterThanOrEqual(183);
    expect(elapsed).toBeLessThan(400);
    // a late answer after the timeout is discarded, not taken for the next request's
    slave.behaviour.set(1, { lateMs: 200 });
    const discarded = c.counters.discardedBytes;
    await expect(c.readHoldingRegisters(1, 0, 1)).rejects.toThrow(ModbusTimeoutError);
    slave.behaviour.delete(1);
    await waitFor('the late answer (7 bytes) discarded', () => c.counters.discardedBytes >= discarded + 7);
    expect(await c.readHoldingRegisters(1, 1, 1)).toEqual([5000]);
  });

  it('exception answers are decoded by name', async () => {
    const c = await open();
    const err = await c.readHoldingRegisters(1, 990, 20).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModbusExceptionError);
    expect((err as ModbusExceptionError).exceptionName).toBe('ILLEGAL DATA ADDRESS');
  });

  it('scans the line', async () => {
    const c = await open();
    expect(await c.scan([1, 2, 3, 4], { timeoutMs: 50 })).toEqual([1, 2]);
  });
});

describe('a serial path that does not exist', () => {
  it('is a clear error naming the bus and the path', async () => {
    const path = join(tmpdir(), 'streetbox-no-such-tty');
    const cfg = configSchema.parse({ gateway: { id: 'g' }, buses: [{ id: 'rs485-7', type: 'serial', path }] });
    const c = new ModbusClient({ bus: cfg.buses[0]! });
    await expect(c.open()).rejects.toThrow(`bus "rs485-7": cannot open serial port ${path}`);
    await c.close();
  });
});
