/**
 * The independent firmware peer (tests/fixtures/firmware_peer.py, pymodbus 3.0) against raw
 * FC 20/21 PDUs over a real TCP socket: the fileRecord method as the shared decisions of
 * issue 17 describe it, written twice (the peer in Python, the requests here), so either can
 * check streetbox's own side (edge/firmware's methods, edge/sim's controllers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileFirmware } from '../../edge/config/schema.js';
import { makeSimImage } from '../../edge/sim/modbus/index.js';
import { activate, blockCount, sendBlocks, transfer, writeSizeReadChecksum } from '../helpers/firmwareWire.js';
import { PYTHON } from '../helpers/pymodbus.js';
import { exceptionOf, fileRecords, rawTcpClient, registers, req, type RawTcpClient } from '../helpers/rawModbus.js';

const PEER = fileURLToPath(new URL('../fixtures/firmware_peer.py', import.meta.url));
/** the peer's layout: the built-in traffic-controller's fileRecord declaration */
const FW: ProfileFirmware = { method: 'fileRecord', file: 1, recordRegisters: 100, size: 100, checksum: 102, commit: { register: 104, value: 0xc0de }, rebootS: 30 };

let peer: ChildProcess;
let exited: Promise<void>;
let client: RawTcpClient;

beforeAll(async () => {
  peer = spawn(PYTHON, [PEER, '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
  exited = new Promise((resolve) => peer.once('exit', () => resolve()));
  let err = '';
  peer.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    peer.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    peer.once('exit', (code) => reject(new Error(`firmware peer exited with ${code}: ${err}`)));
  });
  client = await rawTcpClient('127.0.0.1', port, 1);
});

afterAll(async () => {
  client?.close();
  peer?.stdin!.end(); // the peer exits when its stdin closes
  await exited;
});

const version = async (): Promise<number> => registers((await client.transact(req.read(4, 5, 1)))!)[0]!;

describe('firmware peer (pymodbus)', () => {
  it('takes an image as file records, reads them back, checks it and runs its version', async () => {
    const t = client.transact;
    const image = makeSimImage(0x0207, 5001);
    expect(await version()).toBe(0x0100);
    expect(blockCount(FW, image)).toBe(26);
    const commit = await transfer(t, FW, image); // FC 21 + FC 20 read-back per block, size, checksum = zlib.crc32, commit
    expect(commit).toEqual(req.writeSingle(104, 0xc0de));
    expect(await version()).toBe(0x0207);
  });

  it('reads 0xFF where nothing was written; several sub-requests in one PDU', async () => {
    const t = client.transact;
    const a = Buffer.alloc(60, 0x5a);
    const written = req.writeFileRecord([
      { file: 9, record: 10, data: a },
      { file: 9, record: 40, data: a },
    ]);
    expect(await t(written)).toEqual(written);
    const back = await t(req.readFileRecord([{ file: 9, record: 10, length: 30 }, { file: 9, record: 70, length: 3 }]));
    expect(fileRecords(back!)).toEqual([a, Buffer.alloc(6, 0xff)]);
  });

  it.each([
    { name: 'reference type 7', pdu: req.writeFileRecord([{ file: 1, record: 0, data: Buffer.alloc(4), refType: 7 }]), code: 2 },
    { name: 'records past 9999', pdu: req.readFileRecord([{ file: 1, record: 9999, length: 2 }]), code: 2 },
    { name: 'beyond its 1 MiB', pdu: req.writeFileRecord([{ file: 53, record: 4200, data: Buffer.alloc(200) }]), code: 2 },
    { name: 'a byte count that is no sub-request', pdu: Buffer.from([0x14, 6, 6, 0, 1, 0, 0, 0]), code: 3 },
    { name: 'a wrong commit value', pdu: req.writeSingle(104, 0x1234), code: 3 },
  ])('$name: exception $code', async ({ pdu, code }) => {
    const res = await client.transact(pdu);
    expect(exceptionOf(res!)).toBe(code);
  });

  it('refuses a commit of an image without its header (exception 4) and keeps its version', async () => {
    const t = client.transact;
    const before = await version();
    const image = makeSimImage(0x0300, 900);
    image.write('XXXX', 0, 'latin1');
    await sendBlocks(t, FW, image);
    await writeSizeReadChecksum(t, FW, image.length);
    expect(exceptionOf((await t(req.writeSingle(104, 0xc0de)))!)).toBe(4);
    expect(await version()).toBe(before);
    // a good image over it commits
    const good = makeSimImage(0x0301, 900);
    await sendBlocks(t, FW, good);
    await activate(t, FW, good);
    expect(await version()).toBe(0x0301);
  });
});
