/**
 * A standalone Modbus client for one bus, without a store: the CLI (`streetbox scan`, `read`,
 * `write`) and the benchmarks use it. Calls are serialized through a BusScheduler (one
 * transaction in flight); retries and timeouts come from the bus config.
 */
import { systemClock, type Clock } from '../../clock.js';
import type { BusConfig, PointConfig, ProfileConfig } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  decodeResponse,
  encodeReadFileRecord,
  encodeReadRequest,
  encodeWriteFileRecord,
  encodeWriteMultipleCoils,
  encodeWriteMultipleRegisters,
  encodeWriteSingleCoil,
  encodeWriteSingleRegister,
  type ReadFunctionCode,
} from './codec.js';
import { ModbusError, ModbusTransportError } from './errors.js';
import { readPoints, writePoint, type PointValue, type WriteResult } from './points.js';
import { BusScheduler, type Priority, type Transact } from './scheduler.js';
import { createTransport, type TransportDeps } from './transport/index.js';
import type { ModbusTransport } from './transport/types.js';

export interface ModbusClientOptions {
  bus: BusConfig;
  clock?: Clock;
  log?: Logger;
  /** a ready-made transport (tests); default: made from the bus config */
  transport?: ModbusTransport;
  rtu?: TransportDeps['rtu'];
}

export interface CallOptions {
  timeoutMs?: number;
  retries?: number;
}

export const DEFAULT_SCAN_TIMEOUT_MS = 200;

/** Probes `units` one by one; a unit that answers anything valid (even an exception) is there. */
export async function scanUnits(
  request: (unit: number, pdu: Buffer, timeoutMs: number) => Promise<Buffer>,
  units: readonly number[],
  timeoutMs = DEFAULT_SCAN_TIMEOUT_MS,
): Promise<number[]> {
  const found: number[] = [];
  const probe = encodeReadRequest(3, 0, 1);
  for (const unit of units) {
    try {
      const answer = await request(unit, probe, timeoutMs);
      // Modbus application protocol 7: exceptions 0x0A / 0x0B come from a gateway saying the
      // unit behind it is absent or silent: the unit is not there.
      if ((answer[0]! & 0x80) !== 0 && (answer[1] === 0x0a || answer[1] === 0x0b)) continue;
      found.push(unit);
    } catch (err) {
      if (err instanceof ModbusTransportError) throw err;
      if (!(err instanceof ModbusError)) throw err;
    }
  }
  return found;
}

export class ModbusClient {
  readonly bus: BusConfig;
  readonly transport: ModbusTransport;
  private readonly clock: Clock;
  private readonly scheduler: BusScheduler;

  constructor(opts: ModbusClientOptions) {
    this.bus = opts.bus;
    this.clock = opts.clock ?? systemClock;
    const log = opts.log ?? silentLogger();
    const deps: TransportDeps = { clock: this.clock, log };
    if (opts.rtu) deps.rtu = opts.rtu;
    this.transport = opts.transport ?? createTransport(opts.bus, deps);
    this.scheduler = new BusScheduler({
      busId: opts.bus.id,
      transport: this.transport,
      clock: this.clock,
      log,
      timing: {
        timeout: opts.bus.timeout,
        retries: opts.bus.retries,
        offlineAfter: opts.bus.offlineAfter,
        probeInterval: opts.bus.probeInterval,
        transferShare: opts.bus.transferShare,
      },
    });
  }

  /** Opens the serial port or TCP connection once; rejects with an error naming the bus. */
  open(): Promise<void> {
    return this.transport.connect();
  }

  async close(): Promise<void> {
    this.scheduler.stop();
    await this.transport.close();
  }

  get counters() {
    return this.transport.counters;
  }

  /** One raw transaction: the response PDU (an exception response is returned, not thrown). */
  request(unit: number, pdu: Buffer, o: CallOptions & { priority?: Priority } = {}): Promise<Buffer> {
    return this.scheduler.request(unit, pdu, {
      priority: o.priority ?? 'command',
      timeoutMs: o.timeoutMs ?? this.bus.timeout,
      retries: o.retries ?? this.bus.retries,
    });
  }

  /** A Transact bound to `unit`, for readPoints/writePoint and friends. */
  tx(unit: number, o: CallOptions = {}): Transact {
    return (pdu) => this.request(unit, pdu, o);
  }

  private async read(fc: ReadFunctionCode, unit: number, address: number, quantity: number, o?: CallOptions) {
    const pdu = encodeReadRequest(fc, address, quantity);
    return decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  async readCoils(unit: number, address: number, quantity: number, o?: CallOptions): Promise<boolean[]> {
    const r = await this.read(1, unit, address, quantity, o);
    return r.kind === 'bits' ? r.bits : [];
  }

  async readDiscreteInputs(unit: number, address: number, quantity: number, o?: CallOptions): Promise<boolean[]> {
    const r = await this.read(2, unit, address, quantity, o);
    return r.kind === 'bits' ? r.bits : [];
  }

  async readHoldingRegisters(unit: number, address: number, quantity: number, o?: CallOptions): Promise<number[]> {
    const r = await this.read(3, unit, address, quantity, o);
    return r.kind === 'registers' ? r.registers : [];
  }

  async readInputRegisters(unit: number, address: number, quantity: number, o?: CallOptions): Promise<number[]> {
    const r = await this.read(4, unit, address, quantity, o);
    return r.kind === 'registers' ? r.registers : [];
  }

  async writeCoil(unit: number, address: number, value: boolean, o?: CallOptions): Promise<void> {
    const pdu = encodeWriteSingleCoil(address, value);
    decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  async writeRegister(unit: number, address: number, value: number, o?: CallOptions): Promise<void> {
    const pdu = encodeWriteSingleRegister(address, value);
    decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  async writeCoils(unit: number, address: number, values: boolean[], o?: CallOptions): Promise<void> {
    const pdu = encodeWriteMultipleCoils(address, values);
    decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  async writeRegisters(unit: number, address: number, values: number[], o?: CallOptions): Promise<void> {
    const pdu = encodeWriteMultipleRegisters(address, values);
    decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  /** MODBUS Application Protocol V1.1b3 §6.14: `registers` registers of `file` from record `record`, as bytes. */
  async readFileRecord(unit: number, file: number, record: number, registers: number, o?: CallOptions): Promise<Buffer> {
    const pdu = encodeReadFileRecord(file, record, registers);
    const r = decodeResponse(pdu, await this.request(unit, pdu, o));
    return r.kind === 'file' ? r.data : Buffer.alloc(0);
  }

  /** MODBUS Application Protocol V1.1b3 §6.15: `data` (whole registers) at record `record` of `file`. */
  async writeFileRecord(unit: number, file: number, record: number, data: Buffer, o?: CallOptions): Promise<void> {
    const pdu = encodeWriteFileRecord(file, record, data);
    decodeResponse(pdu, await this.request(unit, pdu, o));
  }

  /** The values of a profile's points (all, or those named), in as few requests as possible. */
  readPoints(unit: number, profile: ProfileConfig, names?: readonly string[]): Promise<PointValue[]> {
    const points = names ? names.map((n) => pointOf(profile, n)) : profile.points;
    return readPoints(this.tx(unit), points, this.bus.maxGap, () => this.clock.now());
  }

  /** Writes a point and reads it back; never throws for the device's refusal or silence. */
  writePoint(unit: number, profile: ProfileConfig, name: string, value: number | boolean): Promise<WriteResult> {
    return writePoint(this.tx(unit), pointOf(profile, name), value);
  }

  /** The unit ids among `units` that answer (one short attempt each, no retries). */
  scan(units: readonly number[], opts: { timeoutMs?: number } = {}): Promise<number[]> {
    return scanUnits((unit, pdu, timeoutMs) => this.request(unit, pdu, { timeoutMs, retries: 0 }), units, opts.timeoutMs);
  }
}

export function pointOf(profile: ProfileConfig, name: string): PointConfig {
  const p = profile.points.find((x) => x.name === name);
  if (!p) {
    throw new StreetboxError('E_NOT_FOUND', `profile "${profile.name}" has no point "${name}"; points: ${profile.points.map((x) => x.name).join(', ')}`);
  }
  return p;
}
