/**
 * Reading and writing a device's points through any `Transact` (the driver's scheduler or the
 * standalone client): block reads decoded into values, and writes verified by reading back.
 */
import type { PointConfig } from '../../config/schema.js';
import type { Quality } from '../../store/types.js';
import { errorMessage, type ErrorCode } from '../../errors.js';
import { planBlocks, pointBlock, type ReadBlock } from './blocks.js';
import {
  decodeResponse,
  encodeReadRequest,
  encodeWriteMultipleRegisters,
  encodeWriteSingleCoil,
  encodeWriteSingleRegister,
  type ResponseData,
} from './codec.js';
import { ModbusError, ModbusExceptionError, ModbusFrameError } from './errors.js';
import type { Transact } from './scheduler.js';
import { applyBit, decodeRegisters, encodeRegisters, rawFromRegisters, toBool, type PointValueType } from './values.js';

export interface PointValue {
  point: string;
  value: number | boolean | null;
  unit: string | null;
  quality: Quality;
  /** ms since the epoch */
  ts: number;
  /** why the value is bad (an exception name, for instance) */
  error?: string;
}

export interface WriteResult {
  status: 'verified' | 'failed';
  point: string;
  value: number | boolean;
  /** the value read back after the write */
  readBack?: number | boolean;
  reason?: string;
  code?: ErrorCode;
}

/** A decoded point: its engineering value and the raw number alarms look at. */
export interface DecodedPoint {
  point: PointConfig;
  value: PointValueType;
  raw: number;
}

/** The request PDU of a block (cache it: polls send the same bytes every cycle). */
export function blockRequest(block: ReadBlock): Buffer {
  return encodeReadRequest(block.fc, block.address, block.quantity);
}

/** The points of `block` from a decoded response. */
export function decodeBlock(block: ReadBlock, data: ResponseData): DecodedPoint[] {
  const out: DecodedPoint[] = [];
  if (data.kind === 'bits') {
    for (const p of block.points) {
      const bit = data.bits[p.address - block.address] ?? false;
      out.push({ point: p, value: bit, raw: bit ? 1 : 0 });
    }
  } else if (data.kind === 'registers') {
    for (const p of block.points) {
      const at = p.address - block.address;
      out.push({ point: p, value: decodeRegisters(p, data.registers, at), raw: rawFromRegisters(p, data.registers, at) });
    }
  } else {
    throw new ModbusFrameError('a write acknowledgement in answer to a read');
  }
  return out;
}

/** Sends a block read and decodes it; an exception answer throws ModbusExceptionError. */
export async function readBlock(tx: Transact, block: ReadBlock, request = blockRequest(block)): Promise<DecodedPoint[]> {
  const response = await tx(request);
  return decodeBlock(block, decodeResponse(request, response));
}

/**
 * Reads `points` in as few requests as possible. Points of a block answered with an exception
 * come back with quality bad and the exception's name; a comms failure throws.
 */
export async function readPoints(tx: Transact, points: readonly PointConfig[], maxGap: number, now: () => number): Promise<PointValue[]> {
  const byName = new Map<string, PointValue>();
  for (const block of planBlocks(points, { maxGap })) {
    try {
      for (const d of await readBlock(tx, block)) {
        byName.set(d.point.name, { point: d.point.name, value: d.value, unit: d.point.unit ?? null, quality: 'good', ts: now() });
      }
    } catch (err) {
      if (!(err instanceof ModbusExceptionError)) throw err;
      for (const p of block.points) {
        byName.set(p.name, { point: p.name, value: null, unit: p.unit ?? null, quality: 'bad', ts: now(), error: err.exceptionName });
      }
    }
  }
  return points.map((p) => byName.get(p.name)!);
}

function failed(p: PointConfig, value: number | boolean, reason: string, code: ErrorCode, readBack?: number | boolean): WriteResult {
  const r: WriteResult = { status: 'failed', point: p.name, value, reason, code };
  if (readBack !== undefined) r.readBack = readBack;
  return r;
}

/**
 * Writes a point (FC 5 for a coil, FC 6 for one register, FC 16 for two, read-modify-write
 * for a bit of a register), then reads it back and compares. Never throws for a device's
 * refusal or silence: the result says failed, with the reason and the error code.
 */
export async function writePoint(tx: Transact, p: PointConfig, value: number | boolean): Promise<WriteResult> {
  if (p.access !== 'rw') return failed(p, value, `point "${p.name}" is read-only`, 'E_FORBIDDEN');
  if (p.table === 'discrete' || p.table === 'input') return failed(p, value, `point "${p.name}" is in the read-only ${p.table} table`, 'E_FORBIDDEN');
  let expected: number;
  try {
    if (p.table === 'coil' || p.bit !== undefined || p.type === 'bool') {
      expected = toBool(value, p.name) ? 1 : 0;
    } else {
      encodeRegisters(p, value); // range check before anything goes on the wire
      expected = NaN;
    }
  } catch (err) {
    return failed(p, value, errorMessage(err), 'E_INVALID_COMMAND');
  }
  const block = pointBlock(p);
  try {
    if (p.table === 'coil') {
      const wr = encodeWriteSingleCoil(p.address, expected === 1);
      decodeResponse(wr, await tx(wr));
    } else if (p.bit !== undefined) {
      // Read-modify-write of one bit: the other bits of the register keep their value.
      const rq = encodeReadRequest(3, p.address, 1);
      const current = decodeResponse(rq, await tx(rq));
      if (current.kind !== 'registers') throw new ModbusFrameError('unexpected answer to a register read');
      const word = applyBit(current.registers[0]!, p.bit, expected === 1);
      const wr = encodeWriteSingleRegister(p.address, word);
      decodeResponse(wr, await tx(wr));
    } else {
      const words = encodeRegisters(p, value);
      const wr = words.length === 1 ? encodeWriteSingleRegister(p.address, words[0]!) : encodeWriteMultipleRegisters(p.address, words);
      decodeResponse(wr, await tx(wr));
    }
    const [back] = await readBlock(tx, block);
    if (!back) throw new ModbusFrameError('empty read-back');
    const want = p.table === 'coil' || p.bit !== undefined || p.type === 'bool' ? expected : rawOf(p, value);
    if (back.raw !== want) {
      return failed(p, value, `read back ${String(back.value)}, expected ${String(value)}`, 'E_MODBUS_VERIFY', back.value);
    }
    return { status: 'verified', point: p.name, value, readBack: back.value };
  } catch (err) {
    if (err instanceof ModbusExceptionError) return failed(p, value, `device refused: ${err.exceptionName}`, err.code);
    if (err instanceof ModbusError) return failed(p, value, err.message, err.code);
    return failed(p, value, errorMessage(err), 'E_MODBUS_TRANSPORT');
  }
}

/** The raw number a register point holds after writing `value` (what the read-back must show). */
function rawOf(p: PointConfig, value: number | boolean): number {
  return rawFromRegisters(p, encodeRegisters(p, value), 0);
}
