/**
 * The TCP simulator against independent clients: pymodbus (Debian's python3-pymodbus) for
 * the protocol, a raw socket for the exact bytes of each injected fault.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModbusSimulators, type ModbusSimulators, type StreetlightModel, type TrafficModel } from '../../edge/sim/modbus/index.js';
import { runPyClient } from '../helpers/pyclient.js';
import { waitFor } from '../helpers/wait.js';

let sims: ModbusSimulators;
let port: number;

beforeAll(async () => {
  sims = await startModbusSimulators({
    tcp: [
      {
        id: 'tcp',
        devices: [
          { unit: 1, profile: 'traffic-controller' },
          { unit: 2, profile: 'streetlight-controller' },
        ],
      },
    ],
  });
  port = sims.bus('tcp').port!;
});
afterAll(async () => sims.stop());

/**
 * A raw Modbus TCP client: sends frames and collects what comes back until `bytes` arrived or
 * the server closed the connection; or, with `windowMs`, everything that comes within that
 * window, which is how a test shows that nothing (more) comes: a fault's answer is all there is.
 */
async function raw(frames: Buffer[], until: { bytes: number } | { windowMs: number } | 'close'): Promise<{ data: Buffer; closed: boolean }> {
  const s: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  let closed = false;
  s.on('data', (d) => chunks.push(d));
  s.on('close', () => (closed = true));
  for (const f of frames) s.write(f);
  if (until === 'close') await waitFor('the server to close the connection', () => closed);
  else if ('bytes' in until) await waitFor(`${until.bytes} bytes`, () => closed || chunks.reduce((n, c) => n + c.length, 0) >= until.bytes);
  else await new Promise((r) => setTimeout(r, until.windowMs));
  s.destroy();
  return { data: Buffer.concat(chunks), closed };
}

function readHolding(tid: number, unit: number, address: number, count: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(tid, 0);
  b.writeUInt16BE(0, 2);
  b.writeUInt16BE(6, 4);
  b[6] = unit;
  b[7] = 0x03;
  b.writeUInt16BE(address, 8);
  b.writeUInt16BE(count, 10);
  return b;
}

describe('TCP simulator with the pymodbus client', () => {
  it('serves both device models, validates writes and answers exception 11 for a unit it does not have', async () => {
    const light = sims.model<StreetlightModel>('tcp', 2);
    const traffic = sims.model<TrafficModel>('tcp', 1);
    light.inject(1, 'lampFailure');
    traffic.setDoorOpen(true);
    const r = await runPyClient({ tcp: port }, [
      { op: 'read_holding', unit: 2, address: 0, count: 29 },
      { op: 'write_register', unit: 2, address: 21, value: 35 },
      { op: 'read_holding', unit: 2, address: 20, count: 3 },
      { op: 'write_register', unit: 2, address: 21, value: 180 },
      { op: 'read_input', unit: 1, address: 0, count: 26 },
      { op: 'write_registers', unit: 1, address: 0, values: [4, 60] },
      { op: 'read_input', unit: 1, address: 1, count: 1 },
      { op: 'write_register', unit: 1, address: 0, value: 77 },
      { op: 'read_discrete', unit: 1, address: 0, count: 1 },
      { op: 'read_holding', unit: 9, address: 0, count: 1 },
    ]);
    const map = r[0]!.values as number[];
    expect(Math.abs(map[0]! - 2300)).toBeLessThanOrEqual(30); // mains voltage, 0.1 V, jittering around 230 V
    expect(map[18]).toBe(1); // ch1_status: lamp failure bit
    expect(r[1]).toEqual({ ok: true });
    expect(r[2]!.values).toEqual([1, 35, 35]);
    expect(r[3]).toEqual({ ok: false, exception: 3 });
    expect((r[4]!.values as number[])[0]).toBe(3); // mode: vehicle-actuated
    expect(r[5]).toEqual({ ok: true });
    expect(r[6]!.values).toEqual([4]);
    expect(r[7]).toEqual({ ok: false, exception: 3 });
    expect(r[8]!.values).toEqual([true]);
    expect(r[9]).toEqual({ ok: false, exception: 11 });
  });
});

describe('TCP simulator fault injection (raw bytes)', () => {
  it('answers pipelined requests in order with their transaction ids', async () => {
    const { data } = await raw([Buffer.concat([readHolding(1, 2, 0, 1), readHolding(2, 2, 1, 2), readHolding(3, 2, 10, 1)])], { bytes: 11 + 13 + 11 });
    expect(data.length).toBe(11 + 13 + 11);
    expect([data.readUInt16BE(0), data.readUInt16BE(11), data.readUInt16BE(24)]).toEqual([1, 2, 3]);
  });

  it('injects each fault, for `count` requests when given', async () => {
    const cases: [Parameters<ModbusSimulators['setFault']>[2], (d: Buffer) => void][] = [
      [{ kind: 'noAnswer' }, (d) => expect(d.length).toBe(0)],
      [{ kind: 'exception', code: 6 }, (d) => expect([...d.subarray(7)]).toEqual([0x83, 6])],
      [{ kind: 'crc' }, (d) => expect(d.readUInt16BE(2)).toBe(1)],
      [{ kind: 'garbage', bytes: 5 }, (d) => expect(d.length).toBe(5)],
      [{ kind: 'truncated' }, (d) => expect(d.length).toBe(6)],
      [{ kind: 'wrongUnit' }, (d) => expect(d[6]).toBe(3)],
      [{ kind: 'wrongTransaction' }, (d) => expect(d.readUInt16BE(0)).toBe(0x1235)],
    ];
    for (const [fault, check] of cases) {
      sims.setFault('tcp', 2, fault, { count: 1 });
      const { data } = await raw([readHolding(0x1234, 2, 0, 2)], { windowMs: 60 });
      check(data);
      // the fault was for one request only
      const again = await raw([readHolding(7, 2, 0, 2)], { bytes: 13 });
      expect(again.data.length).toBe(13);
    }
  });

  it('answers late by the given ms', async () => {
    sims.setFault('tcp', 2, { kind: 'late', ms: 120 });
    const early = await raw([readHolding(1, 2, 0, 1)], { windowMs: 60 }); // half the delay: nothing yet
    expect(early.data.length).toBe(0);
    const late = await raw([readHolding(1, 2, 0, 1)], { bytes: 11 });
    expect(late.data.length).toBe(11);
    sims.setFault('tcp', 2, null);
  });

  it('counts requests per unit and closes a connection that sends no Modbus framing', async () => {
    const before = sims.stats('tcp', 1).requests;
    await raw([readHolding(1, 1, 0, 1), readHolding(2, 1, 0, 1)], { bytes: 22 });
    expect(sims.stats('tcp', 1).requests).toBe(before + 2);
    const junk = await raw([Buffer.from('GET / HTTP/1.1\r\n\r\n')], 'close');
    expect(junk.closed).toBe(true);
    expect(junk.data.length).toBe(0);
  });
});
