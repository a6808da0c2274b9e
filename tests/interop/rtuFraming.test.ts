/**
 * The driver's RTU framing against a hand-driven slave on a socat PTY pair: bytes exactly as
 * a line can deliver them. // Modbus over serial line V1.02 §2.5.1.1: frames are told apart by
 * their length and the t3.5 silence; a USB RS-485 adapter (FTDI latency timer, 16 ms) often
 * hands two frames to the host in one read.
 */
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serialBusSchema } from '../../edge/config/schema.js';
import { ModbusClient } from '../../edge/drivers/modbus/index.js';
import { withCrc } from '../../edge/drivers/modbus/crc.js';
import { openPtyPair, type PtyPair } from '../helpers/pty.js';

let pty: PtyPair;
let slave: SerialPort;
let client: ModbusClient;
/** how the slave answers the next request */
let answer: (req: Buffer) => void = () => undefined;

beforeAll(async () => {
  pty = await openPtyPair();
  slave = new SerialPort({ path: pty.simPath, baudRate: 19200, autoOpen: false });
  await new Promise<void>((resolve, reject) => slave.open((e) => (e ? reject(e) : resolve())));
  slave.on('data', (d: Buffer) => answer(d));
  client = new ModbusClient({ bus: serialBusSchema.parse({ id: 'b', type: 'serial', path: pty.masterPath, baud: 19200, parity: 'none', timeout: 300, retries: 0 }) });
  await client.open();
});

afterAll(async () => {
  await client?.close();
  if (slave?.isOpen) await new Promise<void>((r) => slave.close(() => r()));
  await pty?.close();
});

const reg = (unit: number, value: number): Buffer => withCrc(Buffer.from([unit, 3, 2, value >> 8, value & 0xff]));

describe('driver RTU framing', () => {
  it('accepts its answer when another unit\'s late frame precedes it in the same read burst', async () => {
    answer = (req) => slave.write(Buffer.concat([reg(9, 7), reg(req[0]!, 42)]));
    expect(await client.readHoldingRegisters(1, 0, 1)).toEqual([42]);
  });
});
