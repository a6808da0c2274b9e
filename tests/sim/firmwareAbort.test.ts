/**
 * The simulated controllers' `abort` write (edge/sim/modbus/firmware.ts), over Modbus TCP with
 * raw PDUs: in its bootloader the device leaves it, drops the image in progress (blocksReceived 0,
 * the block log kept until the next image) and runs its old version; in its application it answers
 * and does nothing (idempotent); while it reboots it hears nothing. Three declarations: the
 * built-in streetlight-controller (abort on the enter register, 110 = 0), a register-block
 * bootloader with an abort register of its own, file records taken while the device runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema, type ProfileConfig, type ProfileFirmware } from '../../edge/config/schema.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { makeSimImage, startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { activate, blockCount, blockRequest, enter, modbusFirmware, sendBlocks, transfer, writeSizeReadChecksum } from '../helpers/firmwareWire.js';
import { exceptionOf, fileRecords, rawTcpClient, registers, req, type RawTcpClient, type Transact } from '../helpers/rawModbus.js';
import { waitFor } from '../helpers/wait.js';

const REBOOT_MS = 300;
const builtIn = loadProfiles();
const LIGHT = modbusFirmware(builtIn.require('streetlight-controller').firmware);

/** a register-block bootloader whose abort register is its own (enter 10, abort 11), version in input 0 */
const ownRegister: ProfileConfig = profileSchema.parse({
  name: 'fw-abort-own',
  kind: 'other',
  points: [{ name: 'firmware_version', table: 'input', address: 0, type: 'uint16', role: 'firmwareVersion' }],
  firmware: {
    method: 'registerBlock',
    enter: { register: 10, value: 0xb007 },
    abort: { register: 11, value: 0xab07 },
    block: { register: 30, registers: 16 },
    size: 20,
    checksum: 22,
    commit: { register: 24, value: 0xc0de },
  },
});
const OWN = modbusFirmware(ownRegister.firmware);

/** file records taken while the device runs (no enter), an abort at 26 */
const running: ProfileConfig = profileSchema.parse({
  name: 'fw-abort-running',
  kind: 'other',
  points: [{ name: 'firmware_version', table: 'input', address: 0, type: 'uint16', role: 'firmwareVersion' }],
  firmware: { method: 'fileRecord', file: 1, recordRegisters: 50, size: 20, checksum: 22, commit: { register: 24, value: 0xc0de }, abort: { register: 26, value: 0xab07 } },
});
const RUNNING: ProfileFirmware & { method: 'fileRecord' } = running.firmware as ProfileFirmware & { method: 'fileRecord' };

const UNITS = { light: 1, lightBooted: 2, lightRebooting: 3, own: 4, running: 5 } as const;
const PROFILE_OF: Record<number, string> = { 1: 'streetlight-controller', 2: 'streetlight-controller', 3: 'streetlight-controller', 4: 'fw-abort-own', 5: 'fw-abort-running' };
const CUSTOM: Record<string, ProfileConfig> = { 'fw-abort-own': ownRegister, 'fw-abort-running': running };

let sims: ModbusSimulators;
const clients = new Map<number, RawTcpClient>();

beforeAll(async () => {
  sims = await startModbusSimulators({
    tcp: [{ id: 'tcp', devices: Object.entries(PROFILE_OF).map(([unit, profile]) => ({ unit: Number(unit), profile })) }],
    profiles: (name) => CUSTOM[name] ?? builtIn.require(name),
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
const record = (unit: number) => sims.firmware('tcp', unit);
const abortOf = (fw: ProfileFirmware): Buffer => req.writeSingle(fw.abort!.register, fw.abort!.value);
/** one holding register, or the version (input 0 / holding 30) */
const holding = async (t: Transact, address: number): Promise<number> => registers((await t(req.read(3, address, 1)))!)[0]!;
const inputVersion = async (t: Transact): Promise<number> => registers((await t(req.read(4, 0, 1)))!)[0]!;

describe('abort in the bootloader (the streetlight: 0 to the enter register)', () => {
  it('leaves the bootloader, drops the blocks, runs the old version; the log keeps what it had until the next image', async () => {
    const t = wire(UNITS.light);
    const image = makeSimImage(0x0201, 2000);
    await enter(t, LIGHT);
    await sendBlocks(t, LIGHT, image, 0, 5);
    await writeSizeReadChecksum(t, LIGHT, image.length);
    expect(record(UNITS.light)).toMatchObject({ mode: 'bootloader', blocksReceived: 5, aborts: 0 });
    const pdu = abortOf(LIGHT);
    expect(await t(pdu)).toEqual(pdu); // MODBUS Application Protocol V1.1b3 §6.6: the echo
    expect(record(UNITS.light)).toMatchObject({ mode: 'app', version: 0x0100, blocksReceived: 0, blockLog: [0, 1, 2, 3, 4], commits: 0, aborts: 1, reboots: 0 });
    expect(record(UNITS.light).image.length).toBe(0);
    expect(await holding(t, 30)).toBe(0x0100);
    expect(await holding(t, 110)).toBe(0);
    expect([await holding(t, 100), await holding(t, 101)]).toEqual([0, 0]); // the size went with the image
    // out of the bootloader: blocks, size and commit are refused as before it was entered
    expect(exceptionOf((await t(blockRequest(LIGHT, image, 5)))!)).toBe(4);
    expect(exceptionOf((await t(req.writeMultiple(100, [0, 2000])))!)).toBe(4);
    expect(exceptionOf((await t(req.writeSingle(104, 0xc0de)))!)).toBe(4);
    // entering again starts a new image: nothing of the dropped one is kept
    await enter(t, LIGHT);
    expect(record(UNITS.light)).toMatchObject({ mode: 'bootloader', blocksReceived: 0, blockLog: [] });
    await sendBlocks(t, LIGHT, image, 5, blockCount(LIGHT, image));
    await writeSizeReadChecksum(t, LIGHT, image.length);
    expect(exceptionOf((await t(req.writeSingle(104, 0xc0de)))!)).toBe(4); // blocks 0..4 are gone
    // a whole transfer after it lands
    await must(t, pdu);
    await transfer(t, LIGHT, image);
    await waitFor('the new version', async () => record(UNITS.light).mode === 'app' && (await holding(t, 30)) === 0x0201);
    expect(record(UNITS.light)).toMatchObject({ version: 0x0201, commits: 1, aborts: 2, reboots: 1 });
  });

  it('is idempotent: in the application it answers and does nothing, twice over; a booted image stays', async () => {
    const t = wire(UNITS.lightBooted);
    const pdu = abortOf(LIGHT);
    expect(await t(pdu)).toEqual(pdu);
    expect(await t(pdu)).toEqual(pdu);
    expect(record(UNITS.lightBooted)).toMatchObject({ mode: 'app', version: 0x0100, blocksReceived: 0, blockLog: [], aborts: 2 });
    const image = makeSimImage(0x0202, 700);
    await transfer(t, LIGHT, image);
    await waitFor('the new version', async () => record(UNITS.lightBooted).mode === 'app' && (await holding(t, 30)) === 0x0202);
    expect(await t(pdu)).toEqual(pdu);
    const after = record(UNITS.lightBooted);
    expect(after).toMatchObject({ mode: 'app', version: 0x0202, blocksReceived: blockCount(LIGHT, image), commits: 1, aborts: 3 });
    expect(after.image.equals(image)).toBe(true);
  });

  it('is not heard while the device reboots', async () => {
    const t = wire(UNITS.lightRebooting);
    await transfer(t, LIGHT, makeSimImage(0x0203, 500));
    expect(await t(abortOf(LIGHT), 50)).toBeNull();
    expect(record(UNITS.lightRebooting)).toMatchObject({ mode: 'rebooting', aborts: 0 });
    await waitFor('the new version', async () => record(UNITS.lightRebooting).mode === 'app' && (await holding(t, 30)) === 0x0203);
    expect(record(UNITS.lightRebooting)).toMatchObject({ version: 0x0203, aborts: 0 });
  });
});

describe('abort on a register of its own', () => {
  it('leaves the bootloader (the enter register reads 0 again); any other value is exception 3; a write across it exception 2', async () => {
    const t = wire(UNITS.own);
    const image = makeSimImage(0x0301, 300);
    await enter(t, OWN);
    await sendBlocks(t, OWN, image, 0, 3);
    expect(await holding(t, 10)).toBe(0xb007);
    expect(exceptionOf((await t(req.writeSingle(11, 0x1234)))!)).toBe(3);
    expect(exceptionOf((await t(req.writeMultiple(10, [0xb007, 0xab07])))!)).toBe(2);
    expect(record(UNITS.own)).toMatchObject({ mode: 'bootloader', blocksReceived: 3, aborts: 0 });
    expect(await t(abortOf(OWN))).toEqual(abortOf(OWN));
    expect(record(UNITS.own)).toMatchObject({ mode: 'app', version: 0x0100, blocksReceived: 0, blockLog: [0, 1, 2], aborts: 1 });
    expect([await holding(t, 10), await holding(t, 11)]).toEqual([0, 0xab07]);
    expect(await inputVersion(t)).toBe(0x0100);
    await transfer(t, OWN, image);
    await waitFor('the new version', async () => record(UNITS.own).mode === 'app' && (await inputVersion(t)) === 0x0301);
  });
});

describe('abort on a device that takes records while it runs (no enter)', () => {
  it('drops the records in progress (they read 0xFF), stays in its application; the next record starts a new image', async () => {
    const t = wire(UNITS.running);
    const image = makeSimImage(0x0401, 450); // 5 blocks of 100 bytes
    await sendBlocks(t, RUNNING, image, 0, 3);
    expect(record(UNITS.running)).toMatchObject({ mode: 'app', blocksReceived: 3, blockLog: [0, 1, 2] });
    expect(await t(abortOf(RUNNING))).toEqual(abortOf(RUNNING));
    expect(record(UNITS.running)).toMatchObject({ mode: 'app', version: 0x0100, blocksReceived: 0, blockLog: [0, 1, 2], aborts: 1 });
    const back = await t(req.readFileRecord([{ file: 1, record: 50, length: 50 }]));
    expect(fileRecords(back!)[0]).toEqual(Buffer.alloc(100, 0xff));
    await writeSizeReadChecksum(t, RUNNING, image.length);
    expect(exceptionOf((await t(req.writeSingle(24, 0xc0de)))!)).toBe(4); // nothing to boot
    await sendBlocks(t, RUNNING, image, 3, 4);
    expect(record(UNITS.running)).toMatchObject({ blocksReceived: 1, blockLog: [3] });
    await sendBlocks(t, RUNNING, image);
    await activate(t, RUNNING, image);
    await waitFor('the new version', async () => record(UNITS.running).mode === 'app' && (await inputVersion(t)) === 0x0401);
    expect(record(UNITS.running)).toMatchObject({ version: 0x0401, commits: 1, aborts: 1 });
  });
});

/** The request answered normally (no exception). */
async function must(t: Transact, pdu: Buffer): Promise<void> {
  const res = await t(pdu);
  expect(res).not.toBeNull();
  expect(exceptionOf(res!)).toBeNull();
}
