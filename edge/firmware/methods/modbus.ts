/**
 * The two ways a Modbus controller takes a firmware image, as its profile declares them
 * (`firmware:`, edge/config/firmware.ts), behind one DeviceUpdater (types.ts):
 *
 *   registerBlock: prepare = FC 6 `enter` (the bootloader); block i = ONE FC 16 at
 *     `block.register` carrying [i, window of `block.registers` registers]; no read-back.
 *   fileRecord: prepare = FC 6 `enter` when declared; block i = FC 21 Write File Record at
 *     file `file` + floor(i / blocksPerFile), record (i % blocksPerFile) × recordRegisters
 *     (blocksPerFile = floor(10000 / recordRegisters)), then FC 20 Read File Record of the same
 *     record, compared byte for byte (MODBUS Application Protocol V1.1b3 §6.14, §6.15).
 *   both, activate: FC 16 `size` (uint32, high word first) → FC 3 `checksum` (2 registers) must
 *     equal zlib.crc32(image) → FC 6 `commit`: the device answers, then reboots into the image.
 *   both, abort (a job that ends before its commit): FC 6 `abort` when the profile declares it:
 *     the device leaves its bootloader, drops what it received and runs its old firmware.
 *
 * Every block goes full: the last one is padded with 0xFF (the device's CRC-32 covers exactly
 * `size` bytes). Blocks go at the bus's bulk priority (io.bulk), everything else at command
 * priority (io.command). What goes wrong is a FirmwareError: E_FW_TRANSFER (no answer, a
 * transport or frame error), E_FW_EXCEPTION (an exception answer: which, to what, where),
 * E_FW_VERIFY (a read-back or the checksum differs).
 */
import { crc32 } from 'node:zlib';
import type { ProfileFirmware } from '../../config/firmware.js';
import type { PointConfig } from '../../config/schema.js';
import { errorMessage } from '../../errors.js';
import { pointBlock } from '../../drivers/modbus/blocks.js';
import {
  decodeResponse,
  encodeReadFileRecord,
  encodeReadRequest,
  encodeWriteFileRecord,
  encodeWriteMultipleRegisters,
  encodeWriteSingleRegister,
  expectedResponseLength,
  MAX_FILE_RECORD,
  type ResponseData,
} from '../../drivers/modbus/codec.js';
import { ModbusError, ModbusExceptionError } from '../../drivers/modbus/errors.js';
import { wireMs, type SerialTiming } from '../../drivers/modbus/framing.js';
import { readBlock } from '../../drivers/modbus/points.js';
import { FirmwareError } from '../errors.js';
import type { DeviceUpdater, FirmwareIo, FirmwareTransact } from '../types.js';

/** A profile's `firmware:` section (the config's own type: both methods, discriminated by `method`). */
export type ModbusFirmwareDecl = ProfileFirmware;

export interface ModbusUpdaterOptions {
  firmware: ModbusFirmwareDecl;
  /** the profile's point of role firmwareVersion */
  versionPoint: PointConfig;
  io: FirmwareIo;
  image: Buffer;
}

export interface BlockLayout {
  /** bytes per block on the wire (the last block is padded to it) */
  blockBytes: number;
  blocks: number;
}

/** Where block `index` of a fileRecord transfer goes. */
export interface RecordAddress {
  file: number;
  record: number;
  /** registers */
  length: number;
}

/** One transaction of an update: its PDUs' sizes (no RTU address/CRC, no MBAP header). */
export interface UpdateFrame {
  step: 'enter' | 'block' | 'readBack' | 'size' | 'checksum' | 'commit';
  priority: 'bulk' | 'command';
  requestBytes: number;
  responseBytes: number;
}

/** Exception answers that say "not now" (§7: ACKNOWLEDGE, SERVER DEVICE BUSY): a rebooting device may give them. */
const NOT_NOW = new Set([5, 6]);

/** Block size and count of an image of `size` bytes. */
export function blockLayout(decl: ModbusFirmwareDecl, size: number): BlockLayout {
  const blockBytes = 2 * (decl.method === 'registerBlock' ? decl.block.registers : decl.recordRegisters);
  return { blockBytes, blocks: Math.ceil(size / blockBytes) };
}

/** The file and record of block `index` (fileRecord): record numbers 0..9999 per file (§6.14). */
export function recordAddress(decl: { file: number; recordRegisters: number }, index: number): RecordAddress {
  const perFile = Math.floor((MAX_FILE_RECORD + 1) / decl.recordRegisters);
  return { file: decl.file + Math.floor(index / perFile), record: (index % perFile) * decl.recordRegisters, length: decl.recordRegisters };
}

/** Refuses an image the declared method cannot address (a block index or file number past 65535). */
function checkCapacity(decl: ModbusFirmwareDecl, layout: BlockLayout, size: number): void {
  if (size < 1) throw new FirmwareError('E_FW_ARTIFACT', 'an empty image cannot be transferred');
  if (size > 0xffffffff) throw new FirmwareError('E_FW_TARGET', `an image of ${size} bytes does not fit the uint32 size register`);
  if (decl.method === 'registerBlock' && layout.blocks > 0x10000) {
    throw new FirmwareError('E_FW_TARGET', `an image of ${size} bytes takes ${layout.blocks} blocks; registerBlock indexes at most 65536 (one register)`);
  }
  if (decl.method === 'fileRecord' && recordAddress(decl, layout.blocks - 1).file > 0xffff) {
    throw new FirmwareError('E_FW_TARGET', `an image of ${size} bytes runs past file 65535 (first file ${decl.file}, ${decl.recordRegisters} registers per record)`);
  }
}

/**
 * The PDUs a whole update sends, in order (prepare, every block, activate): for a benchmark to
 * put the transfer's time beside the line's physical limit for the same frames.
 */
export function updateFrames(decl: ModbusFirmwareDecl, size: number): UpdateFrame[] {
  const layout = blockLayout(decl, size);
  const frames: UpdateFrame[] = [];
  const add = (step: UpdateFrame['step'], priority: UpdateFrame['priority'], pdu: Buffer): void => {
    frames.push({ step, priority, requestBytes: pdu.length, responseBytes: expectedResponseLength(pdu) });
  };
  if (decl.enter) add('enter', 'command', encodeWriteSingleRegister(decl.enter.register, decl.enter.value));
  const data = Buffer.alloc(layout.blockBytes, 0xff);
  for (let i = 0; i < layout.blocks; i++) {
    if (decl.method === 'registerBlock') {
      add('block', 'bulk', encodeWriteMultipleRegisters(decl.block.register, new Array<number>(decl.block.registers + 1).fill(0)));
    } else {
      const at = recordAddress(decl, i);
      add('block', 'bulk', encodeWriteFileRecord(at.file, at.record, data));
      add('readBack', 'bulk', encodeReadFileRecord(at.file, at.record, at.length));
    }
  }
  add('size', 'command', encodeWriteMultipleRegisters(decl.size, [0, 0]));
  add('checksum', 'command', encodeReadRequest(3, decl.checksum, 2));
  add('commit', 'command', encodeWriteSingleRegister(decl.commit.register, decl.commit.value));
  return frames;
}

/**
 * The least time an RTU line needs for `frames`, ms: each request and each answer on the wire
 * (unit + PDU + CRC-16) with the t3.5 silence before it (Modbus over serial line 2.5.1.1); the
 * device's own turnaround is not counted.
 */
export function physicalLineMs(frames: readonly UpdateFrame[], timing: SerialTiming): number {
  let ms = 0;
  for (const f of frames) ms += wireMs(timing, f.requestBytes + 3) + wireMs(timing, f.responseBytes + 3) + (2 * timing.t35Us) / 1000;
  return ms;
}

/** One transaction, its answer decoded; every failure a FirmwareError saying `what`. */
async function exchange(tx: FirmwareTransact, pdu: Buffer, what: string): Promise<ResponseData> {
  try {
    return decodeResponse(pdu, await tx(pdu));
  } catch (err) {
    if (err instanceof ModbusExceptionError) {
      throw new FirmwareError(
        'E_FW_EXCEPTION',
        `${what}: the device answered exception ${err.exceptionCode} (${err.exceptionName}) to function ${err.functionCode}`,
        { cause: err },
      );
    }
    throw new FirmwareError('E_FW_TRANSFER', `${what}: ${errorMessage(err)}`, { cause: err });
  }
}

const hex = (n: number, digits = 4): string => `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;

class ModbusUpdater implements DeviceUpdater {
  readonly method: ModbusFirmwareDecl['method'];
  readonly blockBytes: number;
  readonly blocks: number;
  private readonly decl: ModbusFirmwareDecl;
  private readonly versionPoint: PointConfig;
  private readonly io: FirmwareIo;
  private readonly image: Buffer;
  private crc: number | undefined;

  constructor(o: ModbusUpdaterOptions) {
    this.decl = o.firmware;
    this.method = o.firmware.method;
    this.versionPoint = o.versionPoint;
    this.io = o.io;
    this.image = o.image;
    const layout = blockLayout(o.firmware, o.image.length);
    checkCapacity(o.firmware, layout, o.image.length);
    this.blockBytes = layout.blockBytes;
    this.blocks = layout.blocks;
  }

  async prepare(): Promise<void> {
    const enter = this.decl.enter;
    if (!enter) return;
    const what = `enter the bootloader (FC 6 register ${enter.register} = ${hex(enter.value)})`;
    await exchange(this.io.command, encodeWriteSingleRegister(enter.register, enter.value), what);
  }

  /** Block `index`, padded with 0xFF to whole blocks. */
  private blockData(index: number): Buffer {
    const data = Buffer.alloc(this.blockBytes, 0xff);
    this.image.copy(data, 0, index * this.blockBytes, Math.min(this.image.length, (index + 1) * this.blockBytes));
    return data;
  }

  async sendBlock(index: number): Promise<void> {
    if (!Number.isInteger(index) || index < 0 || index >= this.blocks) throw new RangeError(`block ${index} outside 0..${this.blocks - 1}`);
    const data = this.blockData(index);
    const decl = this.decl;
    if (decl.method === 'registerBlock') {
      const values = [index];
      for (let i = 0; i < data.length; i += 2) values.push(data.readUInt16BE(i));
      await exchange(this.io.bulk, encodeWriteMultipleRegisters(decl.block.register, values), `block ${index} (FC 16 register ${decl.block.register})`);
      return;
    }
    const at = recordAddress(decl, index);
    const where = `block ${index} (file ${at.file} record ${at.record})`;
    await exchange(this.io.bulk, encodeWriteFileRecord(at.file, at.record, data), `${where}: FC 21 write`);
    const back = await exchange(this.io.bulk, encodeReadFileRecord(at.file, at.record, at.length), `${where}: FC 20 read-back`);
    if (back.kind !== 'file') throw new FirmwareError('E_FW_TRANSFER', `${where}: FC 20 read-back: not a file record answer`);
    if (!back.data.equals(data)) {
      let k = 0;
      while (k < data.length && back.data[k] === data[k]) k++;
      throw new FirmwareError(
        'E_FW_VERIFY',
        `${where}: read back differs at byte ${k} of the block (wrote ${hex(data[k] ?? 0, 2)}, read ${hex(back.data[k] ?? 0, 2)})`,
      );
    }
  }

  async activate(): Promise<void> {
    await this.checkImage();
    await this.commit();
  }

  async commit(): Promise<void> {
    const { decl } = this;
    await exchange(this.io.command, encodeWriteSingleRegister(decl.commit.register, decl.commit.value), `commit (FC 6 register ${decl.commit.register} = ${hex(decl.commit.value)})`);
  }

  /** FC 6 `abort` at command priority; false without one declared (nothing sent). */
  async abort(): Promise<boolean> {
    const abort = this.decl.abort;
    if (!abort) return false;
    const what = `abort (FC 6 register ${abort.register} = ${hex(abort.value)})`;
    await exchange(this.io.command, encodeWriteSingleRegister(abort.register, abort.value), what);
    return true;
  }

  async checkImage(): Promise<void> {
    const { decl, image } = this;
    const size = image.length;
    await exchange(this.io.command, encodeWriteMultipleRegisters(decl.size, [Math.floor(size / 0x10000), size & 0xffff]), `size (FC 16 registers ${decl.size}..${decl.size + 1} = ${size})`);
    const what = `checksum (FC 3 registers ${decl.checksum}..${decl.checksum + 1})`;
    const r = await exchange(this.io.command, encodeReadRequest(3, decl.checksum, 2), what);
    if (r.kind !== 'registers') throw new FirmwareError('E_FW_TRANSFER', `${what}: not a register answer`);
    const device = ((r.registers[0]! << 16) | r.registers[1]!) >>> 0;
    this.crc ??= crc32(image) >>> 0;
    if (device !== this.crc) {
      throw new FirmwareError('E_FW_VERIFY', `${what}: the device's CRC-32 ${hex(device, 8)} differs from the image's ${hex(this.crc, 8)} (${size} bytes)`);
    }
  }

  /**
   * The version point as a number; null when the device does not answer (timeout, transport,
   * CRC or frame error) or answers "not now" (exception 5 or 6): it may be rebooting. Any other
   * exception is E_FW_EXCEPTION (a profile whose version point the device does not have).
   */
  async readVersion(): Promise<number | null> {
    const p = this.versionPoint;
    try {
      const [d] = await readBlock(this.io.command, pointBlock(p));
      return d === undefined ? null : Number(d.value);
    } catch (err) {
      if (err instanceof ModbusExceptionError) {
        if (NOT_NOW.has(err.exceptionCode)) return null;
        throw new FirmwareError('E_FW_EXCEPTION', `version point "${p.name}" (${p.table} ${p.address}): exception ${err.exceptionCode} (${err.exceptionName})`, {
          cause: err,
        });
      }
      if (err instanceof ModbusError) return null;
      throw err;
    }
  }
}

/** The updater of one device over one image; throws FirmwareError when the method cannot address the image. */
export function createModbusUpdater(o: ModbusUpdaterOptions): DeviceUpdater {
  return new ModbusUpdater(o);
}
