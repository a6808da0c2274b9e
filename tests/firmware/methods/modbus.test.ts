// The Modbus update methods (edge/firmware/methods/modbus.ts) end to end: the real Modbus driver
// (its bus scheduler's bulk share, ModbusDriver.firmwareIo) over real TCP on 127.0.0.1 against a
// tiny in-test controller that takes firmware both ways (registerBlock: a bootloader, FC 16
// blocks; fileRecord: FC 21 / FC 20) and can lie about its checksum, corrupt a read-back, refuse
// with exceptions, fall silent and reboot; and the `abort` write that takes it out of its bootloader.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProfileFirmware } from '../../../edge/config/firmware.js';
import type { PointConfig } from '../../../edge/config/schema.js';
import {
  createModbusDriver,
  decodeRequest,
  encodeExceptionResponse,
  encodeMbap,
  encodeReadFileRecordResponse,
  encodeRegistersResponse,
  encodeWriteFileRecordResponse,
  encodeWriteResponse,
  ModbusExceptionError,
  serialTiming,
  type ModbusDriver,
} from '../../../edge/drivers/modbus/index.js';
import { FirmwareError } from '../../../edge/firmware/errors.js';
import { blockLayout, createModbusUpdater, physicalLineMs, recordAddress, updateFrames, type ModbusFirmwareDecl } from '../../../edge/firmware/methods/modbus.js';
import type { DeviceUpdater } from '../../../edge/firmware/types.js';
import { makeContext, type TestContext } from '../../helpers/context.js';
import { modbusFirmware } from '../../helpers/firmwareWire.js';
import { waitFor } from '../../helpers/wait.js';

const VERSION_REG = 30;
const REBOOT_MS = 1500;

const registerBlock: ModbusFirmwareDecl = {
  method: 'registerBlock',
  enter: { register: 110, value: 0xb007 },
  block: { register: 112, registers: 20 },
  size: 100,
  checksum: 102,
  commit: { register: 104, value: 0xc0de },
  rebootS: 30,
};
const fileRecord: ModbusFirmwareDecl = { method: 'fileRecord', file: 3, recordRegisters: 119, size: 100, checksum: 102, commit: { register: 104, value: 0xc0de }, rebootS: 60 };

/** A simulated image: `SBFW`, the version code (uint16 BE), then filler. */
function image(version: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + 3) & 0xff;
  b.write('SBFW', 0, 'latin1');
  b.writeUInt16BE(version, 4);
  return b;
}

/** One controller that takes firmware the way `decl` says. */
class Controller {
  version = 0x0100;
  bootloader = false;
  readonly mem: Buffer;
  size = 0;
  silentUntil = 0;
  lieChecksum = false;
  corruptReadBack = false;
  /** how long it takes to answer, ms */
  delayMs = 0;
  commits = 0;
  aborts = 0;
  /** answer the abort write with this exception */
  refuseAbort: number | undefined;
  readonly blocksSeen: string[] = [];
  /** every FC 6 it took: `register=value` */
  readonly singleWrites: string[] = [];
  constructor(
    readonly decl: ModbusFirmwareDecl,
    capacity: number,
  ) {
    this.mem = Buffer.alloc(capacity, 0xff);
  }

  /** Byte offset of a file record (the gateway's mapping: 10000 records per file, whole blocks). */
  private offset(file: number, record: number): number {
    if (this.decl.method !== 'fileRecord') return -1;
    const perFile = Math.floor(10_000 / this.decl.recordRegisters);
    return ((file - this.decl.file) * perFile * this.decl.recordRegisters + record) * 2;
  }

  answer(pdu: Buffer): Buffer | undefined {
    if (Date.now() < this.silentUntil) return undefined;
    const { decl } = this;
    const refuse = (code: number) => new ModbusExceptionError(pdu[0]!, code, '');
    const rq = decodeRequest(pdu);
    switch (rq.fc) {
      case 3:
      case 4: {
        const regs = new Array<number>(rq.quantity).fill(0);
        const crc = this.lieChecksum ? 0xdeadbeef : crc32(this.mem.subarray(0, this.size)) >>> 0;
        for (let i = 0; i < rq.quantity; i++) {
          const a = rq.address + i;
          if (a === VERSION_REG) regs[i] = this.version;
          if (a === decl.checksum) regs[i] = crc >>> 16;
          if (a === decl.checksum + 1) regs[i] = crc & 0xffff;
        }
        return encodeRegistersResponse(rq.fc, regs);
      }
      case 6:
        if (decl.abort && rq.address === decl.abort.register && rq.value === decl.abort.value) {
          if (this.refuseAbort !== undefined) throw refuse(this.refuseAbort);
          this.bootloader = false;
          this.aborts++;
        }
        this.singleWrites.push(`${rq.address}=${rq.value}`);
        if (decl.enter && rq.address === decl.enter.register && rq.value === decl.enter.value) this.bootloader = true;
        if (rq.address === decl.commit.register && rq.value === decl.commit.value) {
          if ((decl.enter && !this.bootloader) || this.size === 0 || this.mem.toString('latin1', 0, 4) !== 'SBFW') throw refuse(4);
          this.version = this.mem.readUInt16BE(4);
          this.bootloader = false;
          this.commits++;
          this.silentUntil = Date.now() + REBOOT_MS; // answers the commit, then reboots
        }
        return encodeWriteResponse(pdu);
      case 16:
        if (rq.address === decl.size && rq.values.length === 2) this.size = rq.values[0]! * 0x10000 + rq.values[1]!;
        if (decl.method === 'registerBlock' && rq.address === decl.block.register) {
          if (!this.bootloader) throw refuse(4);
          const [index, ...words] = rq.values;
          const at = index! * 2 * decl.block.registers;
          if (at + 2 * words.length > this.mem.length) throw refuse(2);
          words.forEach((w, i) => this.mem.writeUInt16BE(w, at + 2 * i));
          this.blocksSeen.push(`block ${index}`);
        }
        return encodeWriteResponse(pdu);
      case 20:
      case 21: {
        const record = rq.record;
        const at = this.offset(rq.file, record);
        const bytes = rq.fc === 20 ? 2 * rq.length : rq.data.length;
        if (at < 0 || at + bytes > this.mem.length) throw refuse(2);
        if (rq.fc === 21) {
          rq.data.copy(this.mem, at);
          this.blocksSeen.push(`file ${rq.file} record ${record}`);
          return encodeWriteFileRecordResponse(pdu);
        }
        const data = Buffer.from(this.mem.subarray(at, at + bytes));
        if (this.corruptReadBack) data[5]! ^= 0x01;
        return encodeReadFileRecordResponse(data);
      }
      default:
        throw refuse(1);
    }
  }
}

/** Modbus TCP in front of controllers by unit id. */
class ControllerServer {
  readonly units = new Map<number, Controller>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async listen(): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      let rx = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        rx = Buffer.concat([rx, chunk]);
        while (rx.length >= 7 && rx.length >= 6 + rx.readUInt16BE(4)) {
          const adu = rx.subarray(0, 6 + rx.readUInt16BE(4));
          rx = rx.subarray(adu.length);
          const unit = adu[6]!;
          const pdu = adu.subarray(7);
          let response: Buffer | undefined;
          try {
            response = this.units.get(unit)?.answer(pdu);
          } catch (err) {
            if (!(err instanceof ModbusExceptionError)) throw err;
            response = encodeExceptionResponse(pdu[0]!, err.exceptionCode);
          }
          if (!response) continue;
          const frame = encodeMbap(adu.readUInt16BE(0), unit, response);
          const delay = this.units.get(unit)?.delayMs ?? 0;
          if (delay > 0) setTimeout(() => socket.write(frame), delay);
          else socket.write(frame);
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const versionPoint = (table: 'holding' | 'input' = 'holding'): PointConfig =>
  ({ name: 'firmware_version', table, address: VERSION_REG, type: 'uint16', wordOrder: 'big', scale: 1, offset: 0, access: 'r', role: 'firmwareVersion' }) as PointConfig;

let server: ControllerServer | undefined;
let t: TestContext | undefined;
let driver: ModbusDriver | undefined;

afterEach(async () => {
  await driver?.stop();
  driver = undefined;
  await t?.close();
  t = undefined;
  await server?.close();
  server = undefined;
});

/** The driver polling unit 1 (the target) and unit 2 (a neighbour on the line) over TCP. */
async function start(decl: ModbusFirmwareDecl, capacity = 64 * 1024): Promise<{ target: Controller; neighbour: Controller }> {
  server = new ControllerServer();
  await server.listen();
  const target = new Controller(decl, capacity);
  const neighbour = new Controller(registerBlock, 16);
  server.units.set(1, target);
  server.units.set(2, neighbour);
  const profile = (name: string, firmware: ProfileFirmware) => ({
    name,
    kind: 'other' as const,
    points: [{ name: 'firmware_version', table: 'holding' as const, address: VERSION_REG, role: 'firmwareVersion' as const }],
    firmware,
  });
  t = makeContext({
    buses: [{ id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 200, retries: 1, offlineAfter: 2, probeInterval: 400, transferShare: 0.5 }],
    profiles: [profile('fw-target', decl), profile('fw-neighbour', registerBlock)],
    devices: [
      { id: 'target', bus: 'tcp1', unit: 1, profile: 'fw-target', poll: 100 },
      { id: 'neighbour', bus: 'tcp1', unit: 2, profile: 'fw-neighbour', poll: 100 },
    ],
  });
  driver = createModbusDriver(t.ctx);
  await driver.start();
  await waitFor('both devices polled', () => driver!.status()[0]!.devices.every((d) => d.polls >= 1));
  return { target, neighbour };
}

function updater(decl: ModbusFirmwareDecl, img: Buffer): DeviceUpdater {
  // the profile's section as the config parsed it: the declaration the engine hands over
  const fw = modbusFirmware(t!.config.profiles.find((p) => p.name === 'fw-target')!.firmware);
  expect(fw).toEqual(decl);
  return createModbusUpdater({ firmware: fw, versionPoint: versionPoint(), io: driver!.firmwareIo('target'), image: img });
}

async function rejection(p: Promise<unknown>): Promise<FirmwareError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FirmwareError);
  return err as FirmwareError;
}

const bulkMetric = (name: string) => driver!.metrics().find((m) => m.name === name && m.labels?.bus === 'tcp1')?.value ?? 0;

async function runAll(u: DeviceUpdater): Promise<void> {
  await u.prepare();
  for (let i = 0; i < u.blocks; i++) await u.sendBlock(i);
  await u.activate();
}

describe('Modbus update methods against a controller over TCP', () => {
  it('registerBlock: enter, blocks (the last padded with 0xFF), size, checksum, commit, reboot into the new version', async () => {
    const { target } = await start(registerBlock);
    target.delayMs = 5; // 26 blocks at a transferShare of 0.5: some 300 ms, past the neighbour's poll period
    const img = image(0x0203, 1001);
    const u = updater(registerBlock, img);
    expect({ method: u.method, blockBytes: u.blockBytes, blocks: u.blocks }).toEqual({ method: 'registerBlock', blockBytes: 40, blocks: 26 });
    expect(await u.readVersion()).toBe(0x0100);
    const neighbourPolls = driver!.status()[0]!.devices.find((d) => d.id === 'neighbour')!.polls;
    await runAll(u);
    expect(target.blocksSeen).toEqual(Array.from({ length: 26 }, (_, i) => `block ${i}`));
    expect(target.mem.subarray(0, 1001).equals(img)).toBe(true);
    expect(target.mem.subarray(1001, 26 * 40).every((b) => b === 0xff)).toBe(true);
    expect(target.size).toBe(1001);
    expect(target.commits).toBe(1);
    // the neighbour kept being polled during the transfer
    expect(driver!.status()[0]!.devices.find((d) => d.id === 'neighbour')!.polls).toBeGreaterThan(neighbourPolls);
    expect(bulkMetric('streetbox_modbus_bulk_transactions_total')).toBe(26);
    expect(bulkMetric('streetbox_modbus_bulk_seconds_total')).toBeGreaterThan(0);
    // rebooting: silent, then the new version
    expect(await u.readVersion()).toBeNull();
    await waitFor('the new version', async () => (await u.readVersion()) === 0x0203, 5000);
  });

  it('fileRecord: FC 21 + FC 20 read-back per block across two files, then the same finish', async () => {
    const { target } = await start(fileRecord);
    const blockBytes = 2 * 119;
    const img = image(0x0300, blockBytes * 90 + 17); // 91 blocks; 84 records per file
    const u = updater(fileRecord, img);
    expect(u.blocks).toBe(91);
    await runAll(u);
    expect(target.blocksSeen[0]).toBe('file 3 record 0');
    expect(target.blocksSeen[83]).toBe(`file 3 record ${83 * 119}`);
    expect(target.blocksSeen[84]).toBe('file 4 record 0');
    expect(target.blocksSeen).toHaveLength(91);
    expect(target.mem.subarray(0, img.length).equals(img)).toBe(true);
    expect(target.mem.subarray(img.length, 91 * blockBytes).every((b) => b === 0xff)).toBe(true);
    expect(bulkMetric('streetbox_modbus_bulk_transactions_total')).toBe(2 * 91);
    await waitFor('the new version', async () => (await u.readVersion()) === 0x0300, 5000);
  });

  it('a device whose CRC-32 differs: E_FW_VERIFY, and no commit', async () => {
    const { target } = await start(registerBlock);
    target.lieChecksum = true;
    const u = updater(registerBlock, image(0x0203, 100));
    await u.prepare();
    for (let i = 0; i < u.blocks; i++) await u.sendBlock(i);
    const err = await rejection(u.activate());
    expect(err.code).toBe('E_FW_VERIFY');
    expect(err.message).toMatch(/CRC-32 0xDEADBEEF differs from the image's 0x[0-9A-F]{8} \(100 bytes\)/);
    expect(target.commits).toBe(0);
    expect(await u.readVersion()).toBe(0x0100);
  });

  it('a read-back that differs: E_FW_VERIFY naming the block, file, record and byte', async () => {
    const { target } = await start(fileRecord);
    target.corruptReadBack = true;
    const u = updater(fileRecord, image(0x0300, 500));
    await u.prepare();
    const err = await rejection(u.sendBlock(1));
    expect(err.code).toBe('E_FW_VERIFY');
    expect(err.message).toMatch(/^block 1 \(file 3 record 119\): read back differs at byte 5 of the block/);
  });

  it('a block before the bootloader: E_FW_EXCEPTION saying which exception, to what, where', async () => {
    await start(registerBlock);
    const u = updater(registerBlock, image(0x0203, 100));
    const err = await rejection(u.sendBlock(0));
    expect(err.code).toBe('E_FW_EXCEPTION');
    expect(err.message).toBe('block 0 (FC 16 register 112): the device answered exception 4 (SERVER DEVICE FAILURE) to function 16');
  });

  it('a block past the device capacity, and a commit of an image without its header: E_FW_EXCEPTION', async () => {
    const { target } = await start(fileRecord, 600);
    const big = updater(fileRecord, image(0x0300, 1000));
    expect((await rejection(big.sendBlock(2))).message).toMatch(/^block 2 \(file 3 record 238\): FC 21 write: the device answered exception 2 \(ILLEGAL DATA ADDRESS\)/);
    const noHeader = Buffer.alloc(300, 0x55);
    const u = createModbusUpdater({ firmware: fileRecord, versionPoint: versionPoint(), io: driver!.firmwareIo('target'), image: noHeader });
    for (let i = 0; i < u.blocks; i++) await u.sendBlock(i);
    const err = await rejection(u.activate());
    expect(err.code).toBe('E_FW_EXCEPTION');
    expect(err.message).toMatch(/^commit \(FC 6 register 104 = 0xC0DE\): the device answered exception 4/);
    expect(target.commits).toBe(0);
  });

  it('a device that stops answering: E_FW_TRANSFER for a block, null for the version', async () => {
    const { target } = await start(registerBlock);
    const u = updater(registerBlock, image(0x0203, 100));
    await u.prepare();
    target.silentUntil = Infinity;
    const err = await rejection(u.sendBlock(0));
    expect(err.code).toBe('E_FW_TRANSFER');
    expect(err.message).toMatch(/^block 0 \(FC 16 register 112\): bus "tcp1" unit 1: no answer within 200 ms/);
    expect(await u.readVersion()).toBeNull();
    await expect(u.prepare()).rejects.toMatchObject({ code: 'E_FW_TRANSFER' });
  });

  describe('abort: the profile\'s way out of the bootloader', () => {
    const withAbort: ModbusFirmwareDecl = { ...registerBlock, abort: { register: 110, value: 0 } };

    it('none declared: false, and nothing is sent', async () => {
      const { target } = await start(registerBlock);
      const u = updater(registerBlock, image(0x0203, 100));
      await u.prepare();
      expect(await u.abort()).toBe(false);
      expect(target.singleWrites).toEqual(['110=45063']); // the enter alone
      expect(target.bootloader).toBe(true);
    });

    it('declared (0 to the enter register): FC 6 at command priority, true once answered; the device is out of its bootloader', async () => {
      const { target } = await start(withAbort);
      const u = updater(withAbort, image(0x0203, 200));
      await u.prepare();
      await u.sendBlock(0);
      await u.sendBlock(1);
      const bulk = bulkMetric('streetbox_modbus_bulk_transactions_total');
      expect(await u.abort()).toBe(true);
      expect(bulkMetric('streetbox_modbus_bulk_transactions_total')).toBe(bulk); // not a block: command priority
      expect(target.singleWrites).toEqual(['110=45063', '110=0']);
      expect({ bootloader: target.bootloader, aborts: target.aborts, commits: target.commits }).toEqual({ bootloader: false, aborts: 1, commits: 0 });
      // idempotent on our side too: sent again, answered again
      expect(await u.abort()).toBe(true);
      expect(target.aborts).toBe(2);
      expect((await rejection(u.sendBlock(2))).message).toMatch(/exception 4 \(SERVER DEVICE FAILURE\)/);
      expect(await u.readVersion()).toBe(0x0100);
    });

    it('on file records, a register of its own', async () => {
      const decl: ModbusFirmwareDecl = { ...fileRecord, abort: { register: 106, value: 0xdead } };
      const { target } = await start(decl);
      const u = updater(decl, image(0x0300, 300));
      await u.sendBlock(0);
      expect(await u.abort()).toBe(true);
      expect(target.singleWrites).toEqual(['106=57005']);
      expect(target.aborts).toBe(1);
    });

    it('refused: E_FW_EXCEPTION saying which exception, to what', async () => {
      const { target } = await start(withAbort);
      target.refuseAbort = 4;
      const u = updater(withAbort, image(0x0203, 100));
      const err = await rejection(u.abort());
      expect(err.code).toBe('E_FW_EXCEPTION');
      expect(err.message).toBe('abort (FC 6 register 110 = 0x0000): the device answered exception 4 (SERVER DEVICE FAILURE) to function 6');
    });

    it('no answer: E_FW_TRANSFER', async () => {
      const { target } = await start(withAbort);
      const u = updater(withAbort, image(0x0203, 100));
      target.silentUntil = Infinity;
      const err = await rejection(u.abort());
      expect(err.code).toBe('E_FW_TRANSFER');
      expect(err.message).toMatch(/^abort \(FC 6 register 110 = 0x0000\): bus "tcp1" unit 1: no answer within 200 ms/);
      expect(target.aborts).toBe(0);
    });
  });

  it('firmwareIo of a device the driver does not poll: E_NOT_FOUND', async () => {
    await start(registerBlock);
    expect(() => driver!.firmwareIo('ghost')).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }) as Error);
  });
});

describe('layout and frames', () => {
  it('blocks and their file records', () => {
    expect(blockLayout(registerBlock, 1001)).toEqual({ blockBytes: 40, blocks: 26 });
    expect(blockLayout({ ...fileRecord, recordRegisters: 100 }, 64 * 1024)).toEqual({ blockBytes: 200, blocks: 328 });
    const decl = { file: 1, recordRegisters: 100 };
    expect(recordAddress(decl, 0)).toEqual({ file: 1, record: 0, length: 100 });
    expect(recordAddress(decl, 99)).toEqual({ file: 1, record: 9900, length: 100 });
    expect(recordAddress(decl, 100)).toEqual({ file: 2, record: 0, length: 100 });
    expect(recordAddress({ file: 1, recordRegisters: 119 }, 84)).toEqual({ file: 2, record: 0, length: 119 });
  });

  it('the PDUs of a whole update, and the line time they need at 19200 8N1', () => {
    const rb = updateFrames({ ...registerBlock, block: { register: 112, registers: 120 } }, 64 * 1024);
    expect(rb[0]).toEqual({ step: 'enter', priority: 'command', requestBytes: 5, responseBytes: 5 });
    const blocks = rb.filter((f) => f.step === 'block');
    expect(blocks).toHaveLength(Math.ceil(65536 / 240));
    expect(blocks[0]).toEqual({ step: 'block', priority: 'bulk', requestBytes: 6 + 2 * 121, responseBytes: 5 });
    expect(rb.slice(-3).map((f) => [f.step, f.requestBytes, f.responseBytes])).toEqual([
      ['size', 10, 5],
      ['checksum', 5, 6],
      ['commit', 5, 5],
    ]);
    const fr = updateFrames({ ...fileRecord, recordRegisters: 100 }, 64 * 1024);
    expect(fr[0]!.step).toBe('block'); // no enter declared
    expect(fr.slice(0, 2)).toEqual([
      { step: 'block', priority: 'bulk', requestBytes: 9 + 200, responseBytes: 9 + 200 },
      { step: 'readBack', priority: 'bulk', requestBytes: 9, responseBytes: 4 + 200 },
    ]);
    // 19200 8N1: 10 bits a character; per transaction 2 × t3.5 (2 × 3.5 characters)
    const timing = serialTiming(19200, 8, 'none', 1);
    const one = physicalLineMs([{ step: 'commit', priority: 'command', requestBytes: 5, responseBytes: 5 }], timing);
    expect(one).toBeCloseTo(((8 + 8 + 7) * 10 * 1000) / 19200, 6);
    const total = physicalLineMs(rb, timing);
    expect(total).toBeGreaterThan(((65536 * 10) / 19200) * 1000); // at least the image's own bytes on the wire
  });

  it('refuses an image the method cannot address', () => {
    const io = { bulk: () => Promise.reject(new Error('unused')), command: () => Promise.reject(new Error('unused')) };
    const tiny = { ...registerBlock, block: { register: 112, registers: 1 } };
    expect(() => createModbusUpdater({ firmware: tiny, versionPoint: versionPoint(), io, image: Buffer.alloc(2 * 65536) })).not.toThrow();
    expect(() => createModbusUpdater({ firmware: tiny, versionPoint: versionPoint(), io, image: Buffer.alloc(2 * 65536 + 1) })).toThrow(
      expect.objectContaining({ code: 'E_FW_TARGET' }) as Error,
    );
    const lastFile = { ...fileRecord, file: 65535, recordRegisters: 1 };
    expect(() => createModbusUpdater({ firmware: lastFile, versionPoint: versionPoint(), io, image: Buffer.alloc(20_001) })).toThrow(/runs past file 65535/);
    expect(() => createModbusUpdater({ firmware: registerBlock, versionPoint: versionPoint(), io, image: Buffer.alloc(0) })).toThrow(
      expect.objectContaining({ code: 'E_FW_ARTIFACT' }) as Error,
    );
  });
});
