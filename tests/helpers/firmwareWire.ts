/**
 * A firmware transfer written from the shared decisions of issue 17 with raw PDUs
 * (rawModbus.ts), for tests of the simulated controllers and the firmware peer: enter, blocks
 * (FC 16 windows or FC 21 records read back with FC 20), size, checksum, commit. Independent of
 * edge/firmware's methods, so each side checks the other.
 */
import { crc32 } from 'node:zlib';
import type { FirmwareDecl, ProfileFirmware } from '../../edge/config/schema.js';
import { exceptionOf, fileRecords, registers, req, type Transact } from './rawModbus.js';

/** A Modbus profile's firmware section (registerBlock or fileRecord); throws for none or FUOTA. */
export function modbusFirmware(decl: FirmwareDecl | undefined): ProfileFirmware {
  if (!decl || decl.method === 'fuota') throw new Error(`not a Modbus firmware method: ${decl?.method ?? 'none'}`);
  return decl;
}

/** How hard to try: requests per step (a lossy device) and how long to wait for each answer. */
export interface Retry {
  tries?: number;
  timeoutMs?: number;
}

/** The request's response; throws on no answer (after `tries`) or an exception. */
export async function must(t: Transact, pdu: Buffer, what: string, { tries = 1, timeoutMs = 500 }: Retry = {}): Promise<Buffer> {
  for (let i = 0; i < tries; i++) {
    const res = await t(pdu, timeoutMs);
    if (res === null) continue;
    const code = exceptionOf(res);
    if (code !== null) throw new Error(`${what}: exception ${code}`);
    return res;
  }
  throw new Error(`${what}: no answer (${tries} tries)`);
}

export function blockBytes(fw: ProfileFirmware): number {
  return 2 * (fw.method === 'registerBlock' ? fw.block.registers : fw.recordRegisters);
}

export function blockCount(fw: ProfileFirmware, image: Buffer): number {
  return Math.ceil(image.length / blockBytes(fw));
}

/** Block `i` of the image, padded with 0xFF to the full block. */
export function blockOf(fw: ProfileFirmware, image: Buffer, i: number): Buffer {
  const n = blockBytes(fw);
  const out = Buffer.alloc(n, 0xff);
  image.copy(out, 0, i * n, Math.min(image.length, (i + 1) * n));
  return out;
}

/** Where block i lives in the files: MODBUS Application Protocol V1.1b3 §6.14, the shared mapping. */
export function recordOf(fw: ProfileFirmware & { method: 'fileRecord' }, i: number): { file: number; record: number } {
  const perFile = Math.floor(10000 / fw.recordRegisters);
  return { file: fw.file + Math.floor(i / perFile), record: (i % perFile) * fw.recordRegisters };
}

/** The request that carries block `i`. */
export function blockRequest(fw: ProfileFirmware, image: Buffer, i: number): Buffer {
  const data = blockOf(fw, image, i);
  if (fw.method === 'registerBlock') {
    const words = Array.from({ length: data.length / 2 }, (_, k) => data.readUInt16BE(2 * k));
    return req.writeMultiple(fw.block.register, [i, ...words]);
  }
  return req.writeFileRecord([{ ...recordOf(fw, i), data }]);
}

/** Sends blocks [from, to); file records are read back and compared. `retry` per request (a lossy device). */
export async function sendBlocks(t: Transact, fw: ProfileFirmware, image: Buffer, from = 0, to = blockCount(fw, image), retry: Retry = {}): Promise<void> {
  for (let i = from; i < to; i++) {
    await must(t, blockRequest(fw, image, i), `block ${i}`, retry);
    if (fw.method !== 'fileRecord') continue;
    const back = await must(t, req.readFileRecord([{ ...recordOf(fw, i), length: fw.recordRegisters }]), `read-back ${i}`, retry);
    if (!fileRecords(back)[0]!.equals(blockOf(fw, image, i))) throw new Error(`block ${i}: read-back differs`);
  }
}

export async function enter(t: Transact, fw: ProfileFirmware, retry: Retry = {}): Promise<void> {
  if (fw.enter) await must(t, req.writeSingle(fw.enter.register, fw.enter.value), 'enter', retry);
}

/** The device's CRC-32 after writing the size. */
export async function writeSizeReadChecksum(t: Transact, fw: ProfileFirmware, size: number, retry: Retry = {}): Promise<number> {
  await must(t, req.writeMultiple(fw.size, [Math.floor(size / 65536), size & 0xffff]), 'size', retry);
  const [hi, lo] = registers(await must(t, req.read(3, fw.checksum, 2), 'checksum', retry));
  return (hi! * 65536 + lo!) >>> 0;
}

/** Size, checksum (compared with zlib.crc32 of the image), commit; resolves with the commit's response. */
export async function activate(t: Transact, fw: ProfileFirmware, image: Buffer, retry: Retry = {}): Promise<Buffer> {
  const crc = await writeSizeReadChecksum(t, fw, image.length, retry);
  if (crc !== crc32(image) >>> 0) throw new Error(`checksum ${crc.toString(16)} != ${(crc32(image) >>> 0).toString(16)}`);
  return must(t, req.writeSingle(fw.commit.register, fw.commit.value), 'commit', retry);
}

/** The whole transfer: enter, every block, activate. */
export async function transfer(t: Transact, fw: ProfileFirmware, image: Buffer, retry: Retry = {}): Promise<Buffer> {
  await enter(t, fw, retry);
  await sendBlocks(t, fw, image, 0, blockCount(fw, image), retry);
  return activate(t, fw, image, retry);
}
