// File records (FC 20/21, MODBUS Application Protocol V1.1b3 §6.14/§6.15) through the RTU
// transport on a real serial line (a socat PTY pair, serialport on both ends): the transport
// frames the answers by their data length, waits for the longest frames the functions allow
// (250 bytes), and the standalone client's readFileRecord / writeFileRecord round-trip.
import { SerialPort } from 'serialport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema, type SerialBusConfig } from '../../edge/config/schema.js';
import {
  ModbusClient,
  ModbusExceptionError,
  MAX_READ_FILE_REGISTERS,
  MAX_WRITE_FILE_REGISTERS,
  decodeRequest,
  encodeExceptionResponse,
  encodeReadFileRecordResponse,
  encodeWriteFileRecordResponse,
} from '../../edge/drivers/modbus/index.js';
import { crcOk } from '../../edge/drivers/modbus/crc.js';
import { encodeRtuFrame, rtuRequestLength } from '../../edge/drivers/modbus/framing.js';
import { openPtyPair, type PtyPair } from '../../edge/sim/pty.js';

const BAUD = 19200;
const RECORDS = 10_000;

/** An RTU slave (unit 1) with files 1..2 of 10000 registers each; FC 20/21 only. */
class FileSlave {
  readonly files = new Map<number, Buffer>([
    [1, Buffer.alloc(2 * RECORDS)],
    [2, Buffer.alloc(2 * RECORDS)],
  ]);
  readonly seen: number[] = [];
  private port: SerialPort | undefined;
  private rx = Buffer.alloc(0);

  constructor(private readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: BAUD, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    this.port = port;
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private onData(chunk: Buffer): void {
    this.rx = Buffer.concat([this.rx, chunk]);
    for (;;) {
      const need = rtuRequestLength(this.rx);
      if (need === undefined || this.rx.length < need) return;
      if (need === -1) {
        this.rx = Buffer.alloc(0);
        return;
      }
      const frame = this.rx.subarray(0, need);
      this.rx = this.rx.subarray(need);
      this.seen.push(frame.length);
      if (crcOk(frame) && frame[0] === 1) this.port?.write(encodeRtuFrame(1, this.answer(frame.subarray(1, need - 2))));
    }
  }

  private answer(pdu: Buffer): Buffer {
    try {
      const rq = decodeRequest(pdu);
      if (rq.fc !== 20 && rq.fc !== 21) throw new ModbusExceptionError(rq.fc, 1, 'ILLEGAL FUNCTION');
      const file = this.files.get(rq.file);
      if (!file) throw new ModbusExceptionError(rq.fc, 2, 'ILLEGAL DATA ADDRESS');
      if (rq.fc === 21) {
        rq.data.copy(file, 2 * rq.record);
        return encodeWriteFileRecordResponse(pdu);
      }
      return encodeReadFileRecordResponse(file.subarray(2 * rq.record, 2 * (rq.record + rq.length)));
    } catch (err) {
      if (!(err instanceof ModbusExceptionError)) throw err;
      return encodeExceptionResponse(pdu[0]!, err.exceptionCode);
    }
  }
}

let pty: PtyPair;
let slave: FileSlave;
let client: ModbusClient | undefined;

beforeEach(async () => {
  pty = await openPtyPair();
  slave = new FileSlave(pty.simPath);
  await slave.open();
});

afterEach(async () => {
  await client?.close();
  client = undefined;
  await slave.close();
  await pty.close();
});

async function open(): Promise<ModbusClient> {
  const cfg = configSchema.parse({
    gateway: { id: 'g' },
    buses: [{ id: 'rs485-1', type: 'serial', path: pty.masterPath, baud: BAUD, parity: 'none', timeout: 300, retries: 0 }],
  });
  client = new ModbusClient({ bus: cfg.buses[0] as SerialBusConfig });
  await client.open();
  return client;
}

describe('file records over RTU', () => {
  it('the longest frames both ways: FC 21 of 119 registers (250 bytes), FC 20 of 121 registers (249 bytes)', async () => {
    const c = await open();
    const data = Buffer.from(Array.from({ length: 2 * MAX_WRITE_FILE_REGISTERS }, (_, i) => (i * 13 + 1) & 0xff));
    await c.writeFileRecord(1, 2, 9_000, data);
    expect(slave.seen).toEqual([250]);
    expect(slave.files.get(2)!.subarray(18_000, 18_000 + data.length).equals(data)).toBe(true);
    const back = await c.readFileRecord(1, 2, 9_000, MAX_READ_FILE_REGISTERS);
    expect(back.subarray(0, data.length).equals(data)).toBe(true);
    expect(back.length).toBe(2 * MAX_READ_FILE_REGISTERS);
    expect(c.counters).toMatchObject({ requests: 2, responses: 2, timeouts: 0, crcErrors: 0, frameErrors: 0, discardedBytes: 0 });
  });

  it('blocks of a transfer in a row, across the last record of a file', async () => {
    const c = await open();
    for (let i = 0; i < 10; i++) {
      const block = Buffer.alloc(200, i + 1);
      const file = i < 5 ? 1 : 2;
      const record = i < 5 ? 9_500 + i * 100 : (i - 5) * 100;
      await c.writeFileRecord(1, file, record, block);
      expect((await c.readFileRecord(1, file, record, 100)).equals(block)).toBe(true);
    }
    expect(slave.files.get(1)!.subarray(2 * 9_900, 2 * RECORDS).every((b) => b === 5)).toBe(true);
    expect(c.counters).toMatchObject({ requests: 20, responses: 20, frameErrors: 0 });
  });

  it('an exception answer (a file the device does not have) is thrown as such', async () => {
    const c = await open();
    await expect(c.writeFileRecord(1, 7, 0, Buffer.alloc(4))).rejects.toMatchObject({ exceptionCode: 2, functionCode: 21 });
    await expect(c.readFileRecord(1, 7, 0, 2)).rejects.toBeInstanceOf(ModbusExceptionError);
    expect(await c.readFileRecord(1, 1, 0, 2)).toEqual(Buffer.alloc(4));
  });
});
