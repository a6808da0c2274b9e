/**
 * The simulated controllers' firmware when things go wrong, over Modbus TCP with raw PDUs:
 * the bootloader's idempotence, the silence of a reboot, a device that lies about its update, a
 * lossy device, the injected faults on firmware registers, and the exceptions a device answers
 * a request it cannot take with (a scenario table: request in, exception code out).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema, type ProfileConfig } from '../../edge/config/schema.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { makeSimImage, startModbusSimulators, type ModbusSimulators, type StreetlightModel } from '../../edge/sim/modbus/index.js';
import { activate, blockCount, blockRequest, enter, modbusFirmware, sendBlocks, transfer, writeSizeReadChecksum } from '../helpers/firmwareWire.js';
import { exceptionOf, fileRecords, rawTcpClient, registers, req, type RawTcpClient, type Transact } from '../helpers/rawModbus.js';
import { waitFor } from '../helpers/wait.js';

const REBOOT_MS = 300;
const builtIn = loadProfiles();
const light = builtIn.require('streetlight-controller');
const traffic = builtIn.require('traffic-controller');
const LIGHT = modbusFirmware(light.firmware);
const TRAFFIC = modbusFirmware(traffic.firmware);
/** any other profile: file records behind a bootloader to enter, version in input 0 */
const generic: ProfileConfig = profileSchema.parse({
  name: 'fw-generic',
  kind: 'other',
  points: [{ name: 'firmware_version', table: 'input', address: 0, type: 'uint16', role: 'firmwareVersion' }],
  firmware: { method: 'fileRecord', enter: { register: 10, value: 0xb007 }, file: 3, recordRegisters: 30, size: 20, checksum: 22, commit: { register: 24, value: 0xc0de } },
});
const GENERIC = modbusFirmware(generic.firmware);

const UNITS = { idempotent: 1, silent: 2, liar: 3, lossy: 4, faulty: 5, lightTable: 6, trafficTable: 7, generic: 8 } as const;
const PROFILE_OF: Record<number, string> = { 1: 'streetlight-controller', 2: 'streetlight-controller', 3: 'streetlight-controller', 4: 'traffic-controller', 5: 'streetlight-controller', 6: 'streetlight-controller', 7: 'traffic-controller', 8: 'fw-generic' };

let sims: ModbusSimulators;
const clients = new Map<number, RawTcpClient>();

beforeAll(async () => {
  sims = await startModbusSimulators({
    tcp: [{ id: 'tcp', devices: Object.entries(PROFILE_OF).map(([unit, profile]) => ({ unit: Number(unit), profile })) }],
    profiles: (name) => (name === 'fw-generic' ? generic : builtIn.require(name)),
    rebootMs: REBOOT_MS,
  });
  const b = sims.bus('tcp');
  for (const unit of Object.keys(PROFILE_OF).map(Number)) clients.set(unit, await rawTcpClient(b.host!, b.port!, unit));
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await sims?.stop();
});

const wire = (unit: number): Transact => clients.get(unit)!.transact;
const lightVersion = async (t: Transact): Promise<number | null> => {
  const res = await t(req.read(3, 30, 1), 50);
  return res === null ? null : registers(res)[0]!;
};

describe('bootloader', () => {
  it('is idempotent: entering again keeps the blocks; entering from the application starts afresh', async () => {
    const t = wire(UNITS.idempotent);
    const image = makeSimImage(0x0201, 2000);
    const n = blockCount(LIGHT, image);
    expect(exceptionOf((await t(blockRequest(LIGHT, image, 0)))!)).toBe(4); // not in its bootloader
    await enter(t, LIGHT);
    await sendBlocks(t, LIGHT, image, 0, 5);
    await enter(t, LIGHT);
    expect(sims.firmware('tcp', UNITS.idempotent)).toMatchObject({ mode: 'bootloader', blocksReceived: 5, blockLog: [0, 1, 2, 3, 4] });
    await sendBlocks(t, LIGHT, image, 5, n);
    await activate(t, LIGHT, image);
    await waitFor('the new version', async () => (await lightVersion(t)) === 0x0201);
    expect(sims.firmware('tcp', UNITS.idempotent).image.equals(image)).toBe(true);
    await enter(t, LIGHT);
    expect(sims.firmware('tcp', UNITS.idempotent)).toMatchObject({ mode: 'bootloader', version: 0x0201, blocksReceived: 0, blockLog: [] });
    expect(sims.firmware('tcp', UNITS.idempotent).image.length).toBe(0);
  });
});

describe('reboot', () => {
  it('answers the commit, then nothing at all for rebootMs, then runs the new version', async () => {
    const t = wire(UNITS.silent);
    const image = makeSimImage(0x0202, 1000);
    await transfer(t, LIGHT, image);
    const committed = performance.now();
    const before = sims.stats('tcp', UNITS.silent);
    const asked = [req.read(3, 0, 3), req.writeSingle(11, 50), req.writeSingle(110, 0xb007), blockRequest(LIGHT, image, 0)];
    for (const pdu of asked) expect(await t(pdu, 30)).toBeNull();
    const during = sims.stats('tcp', UNITS.silent);
    expect(during.requests - before.requests).toBe(asked.length);
    expect(during.responses).toBe(before.responses);
    await waitFor('an answer', async () => (await lightVersion(t)) !== null, 5000);
    expect(performance.now() - committed).toBeGreaterThanOrEqual(REBOOT_MS - 5);
    expect(await lightVersion(t)).toBe(0x0202);
    // the writes it never answered were never applied
    expect(sims.model<StreetlightModel>('tcp', UNITS.silent).points.get('ch1_dim_setpoint')).toBe(100);
    expect(sims.firmware('tcp', UNITS.silent)).toMatchObject({ mode: 'app', commits: 1, reboots: 1 });
  });
});

describe('faults', () => {
  it('lies: answers the commit, reboots, and runs its old version', async () => {
    const t = wire(UNITS.liar);
    sims.setFault('tcp', UNITS.liar, { kind: 'lies' });
    try {
      await transfer(t, LIGHT, makeSimImage(0x0300, 1500));
      expect(sims.firmware('tcp', UNITS.liar).mode).toBe('rebooting');
      await waitFor('the device back', () => sims.firmware('tcp', UNITS.liar).reboots === 1 && sims.firmware('tcp', UNITS.liar));
      expect(await lightVersion(t)).toBe(0x0100);
      expect(sims.firmware('tcp', UNITS.liar)).toMatchObject({ version: 0x0100, mode: 'app', commits: 1, reboots: 1 });
    } finally {
      sims.setFault('tcp', UNITS.liar, null);
    }
  });

  it('loss: drops its share of requests, the same ones for the same seed; a retrying transfer still lands byte for byte', async () => {
    const t = wire(UNITS.lossy);
    // which requests the device dropped, as it counted them (a slow answer is no drop)
    const pattern = async (): Promise<boolean[]> => {
      sims.setFault('tcp', UNITS.lossy, { kind: 'loss', rate: 0.25, seed: 42 });
      const out: boolean[] = [];
      for (let i = 0; i < 40; i++) {
        const before = sims.stats('tcp', UNITS.lossy);
        const answer = t(req.read(4, 5, 1), 200);
        const after = await waitFor('the request received', () => sims.stats('tcp', UNITS.lossy).requests > before.requests && sims.stats('tcp', UNITS.lossy));
        const dropped = after.responses === before.responses;
        out.push(dropped);
        if (!dropped) expect(await answer).not.toBeNull();
        else void answer; // resolves null once its timeout passes
      }
      return out;
    };
    try {
      const first = await pattern();
      expect(await pattern()).toEqual(first);
      const share = first.filter(Boolean).length / first.length;
      expect(share).toBeGreaterThan(0.1);
      expect(share).toBeLessThan(0.45);
      const image = makeSimImage(0x0204, 2500);
      await transfer(t, TRAFFIC, image, { tries: 20, timeoutMs: 40 });
      await waitFor('the device back', () => sims.firmware('tcp', UNITS.lossy).reboots === 1);
      expect(sims.firmware('tcp', UNITS.lossy).image.equals(image)).toBe(true);
      expect(sims.firmware('tcp', UNITS.lossy).version).toBe(0x0204);
      const s = sims.stats('tcp', UNITS.lossy);
      expect(s.requests).toBeGreaterThan(s.responses);
    } finally {
      sims.setFault('tcp', UNITS.lossy, null);
    }
  });

  it('noAnswer, exception and late work on the firmware registers too', async () => {
    const t = wire(UNITS.faulty);
    const image = makeSimImage(0x0205, 700);
    await enter(t, LIGHT);
    sims.setFault('tcp', UNITS.faulty, { kind: 'exception', code: 6 }, { count: 1 });
    expect(exceptionOf((await t(blockRequest(LIGHT, image, 0)))!)).toBe(6);
    sims.setFault('tcp', UNITS.faulty, { kind: 'noAnswer' }, { count: 1 });
    expect(await t(blockRequest(LIGHT, image, 0), 50)).toBeNull();
    expect(sims.firmware('tcp', UNITS.faulty).blocksReceived).toBe(0); // neither was applied
    await sendBlocks(t, LIGHT, image);
    sims.setFault('tcp', UNITS.faulty, { kind: 'late', ms: 150 }, { count: 1 });
    const t0 = performance.now();
    await writeSizeReadChecksum(t, LIGHT, image.length);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    await activate(t, LIGHT, image);
    await waitFor('the new version', async () => (await lightVersion(t)) === 0x0205);
  });
});

/** A request and the exception it gets; `enter` first where the row needs the bootloader (idempotent). */
interface Row {
  name: string;
  unit: number;
  enter?: boolean;
  pdu: Buffer;
  exception: number | null;
}

const words = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const record = (file: number, record: number, registers: number) => ({ file, record, data: Buffer.alloc(2 * registers, 0xab) });

const table: Row[] = [
  { name: 'a block outside the bootloader', unit: UNITS.lightTable, pdu: req.writeMultiple(112, [0, ...words(120)]), exception: 4 },
  { name: 'the size outside the bootloader', unit: UNITS.lightTable, pdu: req.writeMultiple(100, [0, 100]), exception: 4 },
  { name: 'a commit outside the bootloader', unit: UNITS.lightTable, pdu: req.writeSingle(104, 0xc0de), exception: 4 },
  { name: 'a wrong enter value', unit: UNITS.lightTable, pdu: req.writeSingle(110, 0x1234), exception: 3 },
  { name: 'a block of the wrong length', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(112, [0, ...words(10)]), exception: 3 },
  { name: 'a write inside the block window', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(113, words(10)), exception: 2 },
  { name: 'a write to the checksum', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(102, [1, 2]), exception: 2 },
  { name: 'a write across size and checksum', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(101, [1, 2]), exception: 2 },
  { name: 'a size beyond the capacity', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(100, [0x10, 1]), exception: 3 },
  { name: 'the last block within the capacity (1 MiB)', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(112, [4368, ...words(120)]), exception: null },
  { name: 'a block beyond the capacity', unit: UNITS.lightTable, enter: true, pdu: req.writeMultiple(112, [4369, ...words(120)]), exception: 2 },
  { name: 'a wrong commit value', unit: UNITS.lightTable, enter: true, pdu: req.writeSingle(104, 0x1111), exception: 3 },
  { name: 'file records to a register-block device', unit: UNITS.lightTable, pdu: req.readFileRecord([{ file: 1, record: 0, length: 1 }]), exception: 1 },
  { name: 'reference type 7', unit: UNITS.trafficTable, pdu: req.writeFileRecord([{ ...record(1, 0, 100), refType: 7 }]), exception: 2 },
  { name: 'file 0', unit: UNITS.trafficTable, pdu: req.readFileRecord([{ file: 0, record: 0, length: 1 }]), exception: 2 },
  { name: 'records past 9999', unit: UNITS.trafficTable, pdu: req.readFileRecord([{ file: 1, record: 9950, length: 100 }]), exception: 2 },
  { name: 'a byte count that is no sub-request', unit: UNITS.trafficTable, pdu: Buffer.from([0x14, 6, 6, 0, 1, 0, 0, 0]), exception: 3 },
  { name: 'a read longer than a PDU', unit: UNITS.trafficTable, pdu: req.readFileRecord([{ file: 1, record: 0, length: 119 }, { file: 1, record: 200, length: 10 }]), exception: 3 },
  { name: 'the last block within the capacity', unit: UNITS.trafficTable, pdu: req.writeFileRecord([record(53, 4100, 100)]), exception: null },
  { name: 'a block beyond the capacity', unit: UNITS.trafficTable, pdu: req.writeFileRecord([record(53, 4200, 100)]), exception: 2 },
  { name: 'a commit of an incomplete image', unit: UNITS.trafficTable, pdu: req.writeSingle(104, 0xc0de), exception: 4 },
  { name: 'records outside the bootloader', unit: UNITS.generic, pdu: req.writeFileRecord([record(3, 0, 30)]), exception: 4 },
  { name: 'records in the bootloader', unit: UNITS.generic, enter: true, pdu: req.writeFileRecord([record(3, 0, 30)]), exception: null },
  { name: 'a file before the first', unit: UNITS.generic, enter: true, pdu: req.writeFileRecord([record(2, 0, 30)]), exception: 2 },
  // 30 registers a block: 333 blocks a file, records 0..9989; 9990..9999 hold none
  { name: 'the last block of a file', unit: UNITS.generic, pdu: req.readFileRecord([{ file: 3, record: 9960, length: 30 }]), exception: null },
  { name: 'records past the last block of a file', unit: UNITS.generic, pdu: req.readFileRecord([{ file: 3, record: 9990, length: 5 }]), exception: 2 },
];

describe('exceptions', () => {
  it.each(table)('$name: exception $exception', async ({ unit, enter: needsEnter, pdu, exception }) => {
    const t = wire(unit);
    if (needsEnter) await enter(t, unit === UNITS.generic ? GENERIC : LIGHT);
    const res = await t(pdu);
    expect(res).not.toBeNull();
    expect(exceptionOf(res!)).toBe(exception);
  });

  it('a commit with a block missing, or of an image without its header, is refused and the device stays in its bootloader', async () => {
    const t = wire(UNITS.lightTable);
    await enter(t, LIGHT);
    const image = makeSimImage(0x0400, 700); // 3 blocks
    for (const i of [0, 2]) expect(exceptionOf((await t(blockRequest(LIGHT, image, i)))!)).toBeNull();
    await writeSizeReadChecksum(t, LIGHT, image.length);
    expect(exceptionOf((await t(req.writeSingle(104, 0xc0de)))!)).toBe(4);
    const headless = Buffer.from(image);
    headless.write('XXXX', 0, 'latin1');
    await sendBlocks(t, LIGHT, headless);
    expect(exceptionOf((await t(req.writeSingle(104, 0xc0de)))!)).toBe(4);
    expect(sims.firmware('tcp', UNITS.lightTable)).toMatchObject({ mode: 'bootloader', version: 0x0100, commits: 0 });
    expect(await lightVersion(t)).toBe(0x0100);
  });

  it('FC 21 and FC 20 carry several sub-requests: one request, several blocks', async () => {
    const t = wire(UNITS.trafficTable);
    // two half blocks: 2 + 2 × (7 + 100) bytes fit a PDU
    const a = Buffer.alloc(100, 0x11);
    const b = Buffer.alloc(100, 0x22);
    const written = req.writeFileRecord([
      { file: 1, record: 300, data: a },
      { file: 2, record: 0, data: b },
    ]);
    expect(await t(written)).toEqual(written); // §6.15: the echo
    const back = await t(req.readFileRecord([{ file: 1, record: 300, length: 50 }, { file: 2, record: 0, length: 50 }]));
    expect(fileRecords(back!)).toEqual([a, b]);
    expect(sims.firmware('tcp', UNITS.trafficTable).blockLog.slice(-2)).toEqual([3, 100]);
  });
});
