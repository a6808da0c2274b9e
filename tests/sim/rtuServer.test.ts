/**
 * The RTU simulator on a socat PTY pair, against independent clients: pymodbus over the
 * serial line, and raw frames written to the PTY for the exact bytes of each fault and the
 * wire-time emulation.
 */
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crcOk, withCrc } from '../../edge/drivers/modbus/crc.js';
import { charsMs, startModbusSimulators, t35Ms, type ModbusSimulators, type StreetlightModel } from '../../edge/sim/modbus/index.js';
import { runPyClient } from '../helpers/pyclient.js';
import { waitFor } from '../helpers/wait.js';

let sims: ModbusSimulators;
let master: SerialPort;
let received: Buffer[] = [];

beforeAll(async () => {
  sims = await startModbusSimulators({
    rtu: [
      {
        id: 'line',
        baud: 9600,
        devices: [
          { unit: 1, profile: 'streetlight-controller' },
          { unit: 2, profile: 'streetlight-controller' },
          { unit: 3, profile: 'traffic-controller' },
        ],
      },
      { id: 'timed', baud: 9600, wireTime: true, devices: [{ unit: 1, profile: 'streetlight-controller' }] },
    ],
  });
});
afterAll(async () => {
  if (master?.isOpen) await new Promise<void>((r) => master.close(() => r()));
  await sims.stop();
});

async function openMaster(path: string): Promise<void> {
  if (master?.isOpen) await new Promise<void>((r) => master.close(() => r()));
  master = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => master.open((e) => (e ? reject(e) : resolve())));
  received = [];
  master.on('data', (d: Buffer) => received.push(d));
}

/**
 * Writes one frame and returns what came back, and when its last chunk arrived: as soon as
 * `expectBytes` arrived (`waitMs` then only bounds the wait), or without it everything within
 * the `waitMs` window, which is how a test shows that nothing (more) comes.
 */
async function transact(frame: Buffer, waitMs = 80, expectBytes = Infinity): Promise<{ data: Buffer; ms: number }> {
  received = [];
  const t0 = performance.now();
  let last = t0;
  let got = 0;
  let done: () => void = () => undefined;
  const onData = (d: Buffer): void => {
    last = performance.now();
    got += d.length;
    if (got >= expectBytes) done();
  };
  master.on('data', onData);
  master.write(frame);
  await new Promise<void>((r) => {
    const timer = setTimeout(r, waitMs);
    done = () => {
      clearTimeout(timer);
      r();
    };
  });
  master.off('data', onData);
  // the master's t3.5 of silence before its next request (Modbus over serial line 2.5.1.1), and then some
  if (got >= expectBytes) await new Promise((r) => setTimeout(r, 10));
  return { data: Buffer.concat(received), ms: last - t0 };
}

const read = (unit: number, fc: number, address: number, count: number): Buffer =>
  withCrc(Buffer.from([unit, fc, address >> 8, address & 0xff, count >> 8, count & 0xff]));

describe('RTU simulator with the pymodbus client', () => {
  it('answers each unit on the shared line and ignores units it does not serve', async () => {
    const l2 = sims.model<StreetlightModel>('line', 2);
    const r = await runPyClient({ rtu: sims.bus('line').path! }, [
      { op: 'read_holding', unit: 1, address: 10, count: 3 },
      { op: 'write_register', unit: 2, address: 11, value: 55 },
      { op: 'read_holding', unit: 2, address: 10, count: 3 },
      { op: 'read_input', unit: 3, address: 0, count: 2 },
      { op: 'write_register', unit: 3, address: 5, value: 1 },
      { op: 'read_holding', unit: 7, address: 0, count: 1 },
    ], 1);
    expect(r[0]!.values).toEqual([1, 100, 100]);
    expect(r[1]).toEqual({ ok: true });
    expect(r[2]!.values).toEqual([1, 55, 55]);
    expect(l2.points.get('ch1_dim_level')).toBe(55);
    expect((r[3]!.values as number[])[0]).toBe(3);
    expect(r[4]).toEqual({ ok: false, exception: 2 });
    expect(r[5]!.ok).toBe(false);
    expect(r[5]!.exception).toBeUndefined();
    expect(sims.bus('line').line!.ignored).toBeGreaterThanOrEqual(1);
  });
});

describe('RTU simulator frames and faults (raw bytes)', () => {
  beforeAll(async () => openMaster(sims.bus('line').path!));

  it('answers a read with a CRC-valid frame, drops a request with a bad CRC, and applies a broadcast write to every unit silently', async () => {
    const ok = await transact(read(1, 3, 0, 2), 1000, 9);
    expect(ok.data.length).toBe(9);
    expect(crcOk(ok.data)).toBe(true);
    const bad = read(1, 3, 0, 2);
    bad[7] = bad[7]! ^ 0xff;
    const dropped = sims.bus('line').line!.dropped;
    expect((await transact(bad)).data.length).toBe(0);
    expect(sims.bus('line').line!.dropped).toBe(dropped + 1);
    // broadcast (unit 0) FC 6: channel 2 setpoint on every streetlight, no answer
    const bc = await transact(withCrc(Buffer.from([0, 6, 0, 21, 0, 20])));
    expect(bc.data.length).toBe(0);
    await waitFor('the broadcast applied', () => sims.model<StreetlightModel>('line', 2).points.get('ch2_dim_setpoint') === 20);
    expect(sims.model<StreetlightModel>('line', 1).points.get('ch2_dim_setpoint')).toBe(20);
    expect(sims.model<StreetlightModel>('line', 2).points.get('ch2_dim_setpoint')).toBe(20);
  });

  it('answers an unknown function code with exception 1 once the line goes silent', async () => {
    const r = await transact(withCrc(Buffer.from([2, 0x2b, 0x0e, 1, 0])), 1000, 5);
    expect([...r.data.subarray(0, 3)]).toEqual([2, 0xab, 1]);
    expect(crcOk(r.data)).toBe(true);
  });

  it('injects each fault on one unit while its neighbours answer normally', async () => {
    // with the bytes each fault answers (then the neighbour's exact answer shows that nothing more came); none: a window shows silence
    const cases: [Parameters<ModbusSimulators['setFault']>[2], (d: Buffer) => void, number?][] = [
      [{ kind: 'noAnswer' }, (d) => expect(d.length).toBe(0)],
      [{ kind: 'crc' }, (d) => {
        expect(d.length).toBe(9);
        expect(crcOk(d)).toBe(false);
      }, 9],
      [{ kind: 'exception', code: 4 }, (d) => expect([...d.subarray(0, 3)]).toEqual([2, 0x83, 4]), 5],
      [{ kind: 'garbage', bytes: 13 }, (d) => expect(d.length).toBe(13), 13],
      [{ kind: 'truncated' }, (d) => expect(d.length).toBe(4), 4],
      [{ kind: 'wrongUnit' }, (d) => {
        expect(d[0]).toBe(3);
        expect(crcOk(d)).toBe(true);
      }, 9],
    ];
    for (const [fault, check, bytes] of cases) {
      sims.setFault('line', 2, fault);
      check((await (bytes === undefined ? transact(read(2, 3, 0, 2)) : transact(read(2, 3, 0, 2), 1000, bytes))).data);
      const neighbour = await transact(read(1, 3, 0, 2), 1000, 9);
      expect(neighbour.data.length).toBe(9);
      expect(crcOk(neighbour.data)).toBe(true);
    }
    sims.setFault('line', 2, null);
    expect((await transact(read(2, 3, 0, 2), 1000, 9)).data.length).toBe(9);
  });

  it('answers late by the given ms', async () => {
    sims.setFault('line', 1, { kind: 'late', ms: 150 }, { count: 1 });
    const r = await transact(read(1, 3, 0, 2), 1000, 9);
    expect(r.data.length).toBe(9);
    expect(r.ms).toBeGreaterThanOrEqual(145);
  });
});

describe('RTU wire-time emulation', () => {
  beforeAll(async () => openMaster(sims.bus('timed').path!));

  it('holds a 20-register read for request + t3.5 + response wire time at 9600 baud', async () => {
    const w = { baud: 9600, bitsPerChar: 11 };
    const expected = charsMs(w, 8) + t35Ms(w) + charsMs(w, 5 + 40); // ≈ 64.7 ms
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await transact(read(1, 3, 0, 20), 1000, 45);
      expect(r.data.length).toBe(45);
      times.push(r.ms);
    }
    // Never earlier than the wire allows; the fastest of five is close to it (the others may
    // be delayed by other test files sharing the two cores).
    expect(Math.min(...times)).toBeGreaterThanOrEqual(expected - 0.5);
    expect(Math.min(...times)).toBeLessThan(expected * 1.15);
  });

  it('counts a request sent without the t3.5 silence after the previous response', async () => {
    const line = sims.bus('timed').line!;
    const before = line.gapViolations;
    // The second request follows the first at once: it is on the wire while the first answer is.
    const r = await transact(Buffer.concat([read(1, 3, 0, 1), read(1, 3, 1, 1)]), 1000, 14);
    expect(r.data.length).toBe(14);
    expect(line.gapViolations).toBe(before + 1);
  });
});
