/**
 * Firmware on a simulated controller (issue 17): the device's side of the two ways a profile's
 * `firmware` section declares (README "Firmware"), attached to a unit by createModel.
 *
 * - registerBlock: FC 6 `enter.value` to `enter.register` puts the device in its bootloader (a
 *   device already in it keeps the blocks it received; one entering from its application erases
 *   them, as a bootloader erases its flash); block i is one FC 16 at `block.register` carrying
 *   [i, `block.registers` registers of image], at image byte offset i × 2 × block.registers.
 * - fileRecord: FC 21 writes records, FC 20 reads them back (MODBUS Application Protocol V1.1b3
 *   §6.14, §6.15; fileRecord.ts). blocksPerFile = floor(10000 / recordRegisters); record r of file
 *   `file + k` is image byte offset (k × blocksPerFile × recordRegisters + r) × 2. Without an
 *   `enter` the device takes records while it runs; the first block after a reboot starts a new image.
 * - both: FC 16 `size` (uint32, high word first); FC 3 `checksum` (uint32, high word first): zlib's
 *   CRC-32 of the image bytes [0, size), 0xFF where nothing was written; FC 6 `commit.value` to
 *   `commit.register`: the device checks the image (every byte of [0, size) written, the header
 *   `SBFW` + uint16 version), answers, is silent (no answer at all) for `rebootMs`, then runs the
 *   new version: its version point (role firmwareVersion) reads it. A lying device (fault `lies`)
 *   does all that and boots its old version. FC 6 `abort.value` to `abort.register` (when declared;
 *   it may be `enter`'s register): the device leaves its bootloader, drops the image in progress
 *   (blocksReceived 0; blockLog keeps its indices until the next image starts) and runs its old
 *   version; in its application with nothing in progress it answers and does nothing.
 *
 * Refusals (exception codes, §7): 4 when the profile declares `enter` and the device is not in
 * its bootloader (block, size, commit), and for a commit of an incomplete or headerless image (the
 * device stays where it was); 2 for a block or record beyond its capacity (default 1 MiB) and for a
 * write to the checksum or across its registers; 3 for a wrong enter, abort or commit value, a block
 * of the wrong length, a size beyond the capacity.
 */
import { crc32 } from 'node:zlib';
import type { ProfileFirmware } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import type { RegisterBank, Table } from './banks.js';
import { RECORDS_PER_FILE } from './fileRecord.js';
import { rng } from './random.js';
import { EXCEPTION, HANDLED, type FileRecordRef, type FileRecordStore, type FileRecordWrite, type UnitHandler } from './pdu.js';
import type { ProfilePoints } from './points.js';

/** What a reboot does to the device's outputs: the model's outputs go `down`, then come `up` (model.ts DeviceModel.reboot). */
export type RebootPhase = 'down' | 'up';

/** The part of a device model (model.ts DeviceModel) the firmware sits on; structural, so model.ts may name FirmwareModel without a cycle. */
export interface FirmwareHost {
  readonly bank: RegisterBank;
  readonly points: ProfilePoints;
  reboot?(phase: RebootPhase): void;
}

/** The profile's `firmware` section (edge/config/firmware.ts). */
export type SimFirmwareDecl = ProfileFirmware;

export type FirmwareMode = 'app' | 'bootloader' | 'rebooting';

/** What a test reads back of one unit's firmware. */
export interface FirmwareRecord {
  method: SimFirmwareDecl['method'];
  /** the version it runs (its version point) */
  version: number;
  mode: FirmwareMode;
  /** the image bytes [0, size) once the size is written, else [0, end of what was received) */
  image: Buffer;
  /** blocks (file-record sub-requests) taken since the image was started */
  blocksReceived: number;
  /** their indices, in the order received (after an abort: those of the image it dropped, until the next one starts) */
  blockLog: number[];
  /** commits accepted */
  commits: number;
  /** abort writes answered (in the bootloader or not) */
  aborts: number;
  /** reboots completed */
  reboots: number;
}

export interface FirmwareSimOptions {
  /** how long the device is silent after a commit (ms, default 2000) */
  rebootMs?: number;
  /** bytes of image it can take (default 1 MiB) */
  capacity?: number;
  /** the version it runs at start (default 0x0100) */
  version?: number;
}

export const SIM_IMAGE_MAGIC = 'SBFW';
const HEADER_BYTES = 6;
const DEFAULT_CAPACITY = 1024 * 1024;

/**
 * A simulated firmware image: `SBFW`, the version code (uint16 big-endian), then `size - 6`
 * pseudo-random bytes (seeded, default: the version code), so an image is made again byte for byte.
 */
export function makeSimImage(versionCode: number, size: number, seed = versionCode): Buffer {
  if (!(Number.isInteger(versionCode) && versionCode >= 0 && versionCode <= 0xffff)) {
    throw new StreetboxError('E_USAGE', `"versionCode" must be an integer 0..65535, got ${versionCode}`);
  }
  if (!(Number.isInteger(size) && size >= HEADER_BYTES)) throw new StreetboxError('E_USAGE', `"size" must be an integer >= ${HEADER_BYTES}, got ${size}`);
  const out = Buffer.alloc(size);
  out.write(SIM_IMAGE_MAGIC, 0, 'latin1');
  out.writeUInt16BE(versionCode, 4);
  const random = rng(seed);
  for (let i = HEADER_BYTES; i < size; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** fileRecord: the first file and the registers per block */
interface Files {
  first: number;
  rr: number;
}

/** What an FC 6 value to one of the declaration's single registers does. */
type Trigger = 'enter' | 'abort' | 'commit';

interface Span {
  what: 'trigger' | 'block' | 'size' | 'checksum';
  from: number;
  count: number;
  /** trigger: what each value does (`enter` and `abort` may share a register) */
  does?: Map<number, Trigger>;
}

/** The declaration's FC 6 registers, one span each, with what each value written there does. */
function triggerSpans(decl: SimFirmwareDecl): Span[] {
  const byRegister = new Map<number, Map<number, Trigger>>();
  const add = (what: Trigger, w: { register: number; value: number } | undefined): void => {
    if (!w) return;
    const does = byRegister.get(w.register) ?? new Map<number, Trigger>();
    does.set(w.value, what);
    byRegister.set(w.register, does);
  };
  add('enter', decl.enter);
  add('abort', decl.abort);
  add('commit', decl.commit);
  return [...byRegister].map(([from, does]) => ({ what: 'trigger', from, count: 1, does }));
}

export class FirmwareModel implements UnitHandler {
  readonly decl: SimFirmwareDecl;
  readonly capacity: number;
  /** bytes per block: 2 × block.registers or 2 × recordRegisters */
  readonly blockBytes: number;
  readonly files: FileRecordStore | undefined = undefined;
  /** set by the unit registry before each request it answers: the unit's fault is `lies` */
  lying = false;
  private readonly bank: RegisterBank;
  private readonly points: ProfilePoints;
  private readonly versionPoint: string;
  private readonly rebootMs: number;
  private readonly onReboot: (phase: RebootPhase) => void;
  private readonly spans: Span[];
  private mode: FirmwareMode = 'app';
  private version: number;
  /** the image received, 0xFF where not written; grows up to the capacity */
  private image = Buffer.alloc(0);
  /** per register (2 bytes) of the image: 1 once written */
  private written = new Uint8Array(0);
  private received = 0;
  private size: number | null = null;
  /** the image was booted or dropped (abort): the next one starts afresh */
  private stale = false;
  private crcFresh = false;
  private blocks = 0;
  private log: number[] = [];
  private commits = 0;
  private aborts = 0;
  private reboots = 0;
  private bootVersion = 0;
  private upAt = 0;
  private timer: NodeJS.Timeout | null = null;

  /** The firmware of `model` when its profile declares one; sizes its bank to cover the firmware registers. */
  static attach(model: FirmwareHost, opts: FirmwareSimOptions = {}): FirmwareModel | undefined {
    const decl = model.points.profile.firmware;
    return decl && decl.method !== 'fuota' ? new FirmwareModel(decl, model, opts) : undefined;
  }

  constructor(decl: SimFirmwareDecl, model: FirmwareHost, opts: FirmwareSimOptions = {}) {
    this.decl = decl;
    this.bank = model.bank;
    this.points = model.points;
    this.onReboot = (phase) => model.reboot?.(phase);
    this.capacity = opts.capacity ?? DEFAULT_CAPACITY;
    this.rebootMs = opts.rebootMs ?? 2000;
    this.version = opts.version ?? 0x0100;
    const profile = model.points.profile;
    const point = profile.points.find((p) => p.role === 'firmwareVersion');
    if (!point) throw new StreetboxError('E_CONFIG', `profile "${profile.name}" declares firmware but no point with role firmwareVersion`);
    this.versionPoint = point.name;
    this.blockBytes = 2 * (decl.method === 'registerBlock' ? decl.block.registers : decl.recordRegisters);
    this.spans = [
      ...triggerSpans(decl),
      ...(decl.method === 'registerBlock' ? [{ what: 'block' as const, from: decl.block.register, count: 1 + decl.block.registers }] : []),
      { what: 'size', from: decl.size, count: 2 },
      { what: 'checksum', from: decl.checksum, count: 2 },
    ];
    for (const s of this.spans) this.bank.size.holding = Math.max(this.bank.size.holding, s.from + s.count);
    const width = point.type === 'int32' || point.type === 'uint32' || point.type === 'float32' ? 2 : 1;
    this.bank.size[point.table] = Math.max(this.bank.size[point.table], point.address + width);
    this.points.set(this.versionPoint, this.version);
    if (decl.method === 'fileRecord') {
      const files = { first: decl.file, rr: decl.recordRegisters };
      this.files = { readFileRecords: (refs) => this.readRecords(files, refs), writeFileRecords: (writes) => this.writeRecords(files, writes) };
    }
  }

  /** Rebooting: the device answers nothing. Ends a reboot that is due. */
  /**
   * The controller lost power (tests): what its bootloader held is gone, it runs the firmware it
   * booted last. Not counted as an abort.
   */
  powerLoss(): void {
    if (!this.stale) {
      const log = this.log;
      this.erase();
      this.log = log;
      this.stale = true;
    }
    if (this.mode === 'bootloader') {
      this.mode = 'app';
      if (this.decl.enter) this.bank.holding[this.decl.enter.register] = 0;
    }
  }

  silent(): boolean {
    if (this.mode !== 'rebooting') return false;
    if (performance.now() < this.upAt) return true;
    this.wake();
    return false;
  }

  record(): FirmwareRecord {
    this.silent();
    return {
      method: this.decl.method,
      version: this.version,
      mode: this.mode,
      image: this.size !== null ? this.bytes(this.size) : Buffer.from(this.image.subarray(0, this.received)),
      blocksReceived: this.blocks,
      blockLog: [...this.log],
      commits: this.commits,
      aborts: this.aborts,
      reboots: this.reboots,
    };
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  interceptWrite(table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined {
    if (table !== 'holding') return undefined;
    const end = address + values.length;
    const hit = this.spans.filter((s) => address < s.from + s.count && s.from < end);
    const s = hit[0];
    if (!s) return undefined;
    if (hit.length > 1 || address < s.from || end > s.from + s.count) return EXCEPTION.illegalDataAddress;
    switch (s.what) {
      case 'trigger': {
        const value = values[0]!;
        switch (s.does?.get(value)) {
          case 'enter':
            return this.enter(s.from, value);
          case 'abort':
            return this.abort(s.from, value);
          case 'commit':
            return this.commit();
          default:
            return EXCEPTION.illegalDataValue;
        }
      }
      case 'checksum':
        return EXCEPTION.illegalDataAddress; // read only
      case 'size':
        return this.writeSize(address - s.from, values);
      case 'block':
        if (address !== s.from) return EXCEPTION.illegalDataAddress;
        if (values.length !== s.count) return EXCEPTION.illegalDataValue;
        return this.writeBlock(values[0]!, values.slice(1));
    }
  }

  beforeRead(table: Table, address: number, count: number): void {
    const c = this.decl.checksum;
    if (table !== 'holding' || this.crcFresh || address >= c + 2 || address + count <= c) return;
    const crc = crc32(this.bytes(this.size ?? 0)) >>> 0;
    this.bank.holding[c] = crc >>> 16;
    this.bank.holding[c + 1] = crc & 0xffff;
    this.crcFresh = true;
  }

  /** A device already in its bootloader keeps what it received; one entering from its application starts afresh. */
  private enter(register: number, value: number): number {
    if (this.mode === 'app') this.erase();
    this.mode = 'bootloader';
    this.bank.holding[register] = value;
    return HANDLED;
  }

  /**
   * Out of the bootloader, the image in progress dropped (a booted one is kept to be read back),
   * the old version running on. Idempotent: in the application with nothing in progress, nothing.
   */
  private abort(register: number, value: number): number {
    this.aborts++;
    if (!this.stale) {
      const log = this.log;
      this.erase();
      this.log = log; // kept to be read back until the next image starts
      this.stale = true;
    }
    if (this.mode === 'bootloader') {
      this.mode = 'app';
      if (this.decl.enter) this.bank.holding[this.decl.enter.register] = 0;
    }
    this.bank.holding[register] = value;
    return HANDLED;
  }

  /** Exception 4 where the profile declares a bootloader the device is not in. */
  private notReady(): number | undefined {
    return this.decl.enter && this.mode !== 'bootloader' ? EXCEPTION.serverDeviceFailure : undefined;
  }

  private writeSize(offset: number, values: readonly number[]): number {
    const refused = this.notReady();
    if (refused !== undefined) return refused;
    const at = this.decl.size;
    const words = [this.bank.holding[at]!, this.bank.holding[at + 1]!];
    values.forEach((v, i) => (words[offset + i] = v & 0xffff));
    const size = words[0]! * 65536 + words[1]!;
    if (size > this.capacity) return EXCEPTION.illegalDataValue;
    this.bank.holding[at] = words[0]!;
    this.bank.holding[at + 1] = words[1]!;
    this.size = size;
    this.crcFresh = false;
    return HANDLED;
  }

  private writeBlock(index: number, words: readonly number[]): number {
    const refused = this.notReady();
    if (refused !== undefined) return refused;
    const offset = index * this.blockBytes;
    if (offset + this.blockBytes > this.capacity) return EXCEPTION.illegalDataAddress;
    if (this.stale) this.erase();
    const data = Buffer.alloc(this.blockBytes);
    words.forEach((w, i) => data.writeUInt16BE(w, 2 * i));
    this.store(offset, data);
    this.blocks++;
    this.log.push(index);
    return HANDLED;
  }

  private readRecords(files: Files, refs: readonly FileRecordRef[]): Buffer[] | number {
    const out: Buffer[] = [];
    for (const r of refs) {
      const offset = this.recordOffset(files, r);
      if (offset === undefined) return EXCEPTION.illegalDataAddress;
      const data = Buffer.alloc(2 * r.length, 0xff);
      if (offset < this.image.length) this.image.copy(data, 0, offset, Math.min(offset + data.length, this.image.length));
      out.push(data);
    }
    return out;
  }

  private writeRecords(files: Files, writes: readonly FileRecordWrite[]): number | undefined {
    const refused = this.notReady();
    if (refused !== undefined) return refused;
    const offsets = writes.map((w) => this.recordOffset(files, w));
    if (offsets.some((o) => o === undefined)) return EXCEPTION.illegalDataAddress;
    if (this.stale) this.erase();
    const perFile = Math.floor(RECORDS_PER_FILE / files.rr);
    writes.forEach((w, i) => {
      this.store(offsets[i]!, w.data);
      this.blocks++;
      this.log.push((w.file - files.first) * perFile + Math.floor(w.record / files.rr));
    });
    return undefined;
  }

  /** Image byte offset of a file-record reference, or undefined when the device maps no image there. */
  private recordOffset(files: Files, r: FileRecordRef): number | undefined {
    const rr = files.rr;
    const perFile = Math.floor(RECORDS_PER_FILE / rr);
    const k = r.file - files.first;
    if (k < 0 || r.record + r.length > perFile * rr) return undefined;
    const offset = (k * perFile * rr + r.record) * 2;
    return offset + 2 * r.length <= this.capacity ? offset : undefined;
  }

  private commit(): number {
    const refused = this.notReady();
    if (refused !== undefined) return refused;
    const size = this.size;
    if (size === null || size < HEADER_BYTES || size > this.received) return EXCEPTION.serverDeviceFailure;
    if (this.written.subarray(0, (size + 1) >> 1).includes(0)) return EXCEPTION.serverDeviceFailure;
    if (this.image.toString('latin1', 0, 4) !== SIM_IMAGE_MAGIC) return EXCEPTION.serverDeviceFailure;
    this.commits++;
    this.bootVersion = this.lying ? this.version : this.image.readUInt16BE(4);
    this.mode = 'rebooting';
    this.upAt = performance.now() + this.rebootMs;
    this.onReboot('down');
    this.timer = setTimeout(() => this.wake(), this.rebootMs);
    this.timer.unref();
    return HANDLED;
  }

  private wake(): void {
    if (this.mode !== 'rebooting') return;
    this.stop();
    this.mode = 'app';
    this.version = this.bootVersion;
    this.points.set(this.versionPoint, this.version);
    if (this.decl.enter) this.bank.holding[this.decl.enter.register] = 0;
    this.reboots++;
    this.stale = true;
    this.onReboot('up');
  }

  private store(offset: number, data: Buffer): void {
    const end = offset + data.length;
    if (end > this.image.length) this.grow(end);
    data.copy(this.image, offset);
    this.written.fill(1, offset >> 1, (end + 1) >> 1);
    this.received = Math.max(this.received, end);
    this.crcFresh = false;
  }

  private grow(atLeast: number): void {
    const length = Math.min(this.capacity, Math.max(atLeast, 2 * this.image.length, 4096));
    const image = Buffer.alloc(length, 0xff);
    this.image.copy(image);
    const written = new Uint8Array((length + 1) >> 1);
    written.set(this.written);
    this.image = image;
    this.written = written;
  }

  /** A new image: nothing received, no size. */
  private erase(): void {
    this.image = Buffer.alloc(0);
    this.written = new Uint8Array(0);
    this.received = 0;
    this.size = null;
    this.bank.holding[this.decl.size] = this.bank.holding[this.decl.size + 1] = 0;
    this.stale = false;
    this.crcFresh = false;
    this.blocks = 0;
    this.log = [];
  }

  /** A copy of the image bytes [0, n), 0xFF beyond what was received. */
  private bytes(n: number): Buffer {
    const out = Buffer.alloc(n, 0xff);
    this.image.copy(out, 0, 0, Math.min(n, this.image.length));
    return out;
  }
}
