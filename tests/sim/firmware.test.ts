/**
 * The simulated controllers take firmware both ways their built-in profiles declare, over
 * Modbus TCP and over an RTU line (a socat PTY), driven with raw PDUs written from the shared
 * decisions (tests/helpers/firmwareWire.ts): registerBlock (streetlight: enter, FC 16 windows)
 * and fileRecord (traffic controller: FC 21, FC 20 read-back). After the commit the device is
 * silent while it reboots, then runs the image's version; a streetlight is dark while it reboots
 * and comes up at 100 %, a traffic controller flashes and comes back in its mode.
 */
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCrc } from '../../edge/drivers/modbus/crc.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import {
  makeSimImage,
  startModbusSimulators,
  TRAFFIC_MODES,
  type ModbusSimulators,
  type StreetlightModel,
  type TrafficModel,
} from '../../edge/sim/modbus/index.js';
import { rtuRequestLength } from '../../edge/sim/modbus/pdu.js';
import { blockCount, modbusFirmware, transfer } from '../helpers/firmwareWire.js';
import { rawRtuMaster, rawTcpClient, registers, req, type RawRtuMaster, type RawTcpClient, type Transact } from '../helpers/rawModbus.js';
import { waitFor } from '../helpers/wait.js';

const REBOOT_MS = 300;
const profiles = loadProfiles();
const light = profiles.require('streetlight-controller');
const traffic = profiles.require('traffic-controller');

let sims: ModbusSimulators;
let rtu: RawRtuMaster;
const tcp = new Map<number, RawTcpClient>();

beforeAll(async () => {
  const devices = [
    { unit: 1, profile: 'streetlight-controller' },
    { unit: 2, profile: 'traffic-controller' },
    { unit: 3, profile: 'streetlight-controller' },
  ];
  sims = await startModbusSimulators({ tcp: [{ id: 'tcp', devices }], rtu: [{ id: 'rtu', baud: 19200, devices }], rebootMs: REBOOT_MS });
  const b = sims.bus('tcp');
  for (const unit of [1, 2, 3]) tcp.set(unit, await rawTcpClient(b.host!, b.port!, unit));
  rtu = await rawRtuMaster(sims.bus('rtu').path!);
});

afterAll(async () => {
  for (const c of tcp.values()) c.close();
  await rtu?.close();
  await sims?.stop();
});

function wire(bus: 'tcp' | 'rtu', unit: number): Transact {
  return bus === 'tcp' ? tcp.get(unit)!.transact : (pdu, ms) => rtu.transact(unit, pdu, ms);
}

/** The version point: holding 30 on a streetlight, input 5 on a traffic controller. */
async function version(t: Transact, unit: number): Promise<number | null> {
  const res = await t(unit === 2 ? req.read(4, 5, 1) : req.read(3, 30, 1), 100);
  return res === null ? null : registers(res)[0]!;
}

const rows = [
  { bus: 'tcp', unit: 1, method: 'registerBlock' },
  { bus: 'tcp', unit: 2, method: 'fileRecord' },
  { bus: 'rtu', unit: 1, method: 'registerBlock' },
  { bus: 'rtu', unit: 2, method: 'fileRecord' },
] as const;

describe.each(rows)('$method over $bus (unit $unit)', ({ bus, unit, method }) => {
  it('takes the image, reboots silently and comes back with its version', async () => {
    const t = wire(bus, unit);
    const fw = modbusFirmware((unit === 2 ? traffic : light).firmware);
    expect(fw.method).toBe(method);
    const image = makeSimImage(0x0203, 3001, unit);
    expect(await version(t, unit)).toBe(0x0100);
    if (unit === 1) await t(req.writeSingle(11, 40)); // ch1 dimmed to 40 % before the update

    const commit = await transfer(t, fw, image);
    expect(commit).toEqual(req.writeSingle(fw.commit.register, fw.commit.value)); // the commit's answer: an echo

    // rebooting: no answer at all, the outputs dark (a light) or flashing (a traffic controller)
    expect(sims.firmware(bus, unit).mode).toBe('rebooting');
    expect(await t(req.read(3, fw.size, 2), 50)).toBeNull();
    if (unit === 1) expect(sims.model<StreetlightModel>(bus, 1).points.get('ch1_dim_level')).toBe(0);
    else expect(sims.model<TrafficModel>(bus, 2).mode).toBe(TRAFFIC_MODES.flashing);

    await waitFor('the new version', async () => (await version(t, unit)) === 0x0203, 5000);
    const rec = sims.firmware(bus, unit);
    expect(rec).toMatchObject({ method, version: 0x0203, mode: 'app', commits: 1, reboots: 1, blocksReceived: blockCount(fw, image) });
    expect(rec.image.equals(image)).toBe(true);
    expect(rec.blockLog).toEqual(Array.from({ length: blockCount(fw, image) }, (_, i) => i));
    expect(crc32(rec.image) >>> 0).toBe(crc32(image) >>> 0);
    if (unit === 1) {
      const m = sims.model<StreetlightModel>(bus, 1).points;
      expect([m.get('ch1_dim_setpoint'), m.get('ch1_dim_level'), m.get('ch2_dim_level'), m.get('ch1_on')]).toEqual([100, 100, 100, 1]);
    } else {
      expect(sims.model<TrafficModel>(bus, 2).mode).toBe(TRAFFIC_MODES.actuated);
    }
    // the other controller on the line kept its firmware and its answers
    expect(await waitFor('unit 3 answering', () => version(wire(bus, 3), 3))).toBe(0x0100);
    expect(sims.firmware(bus, 3)).toMatchObject({ version: 0x0100, mode: 'app', blocksReceived: 0, commits: 0 });
  });
});

describe('RTU framing of FC 20 / FC 21', () => {
  it('knows a request frame is complete from its byte count (MODBUS Application Protocol V1.1b3 §6.14, §6.15)', () => {
    const frames = [
      req.readFileRecord([{ file: 1, record: 0, length: 100 }]),
      req.readFileRecord([{ file: 1, record: 0, length: 10 }, { file: 2, record: 5, length: 10 }]),
      req.writeFileRecord([{ file: 1, record: 100, data: Buffer.alloc(200) }]),
    ].map((pdu) => withCrc(Buffer.concat([Buffer.from([7]), pdu])));
    for (const f of frames) {
      expect(rtuRequestLength(f, 0, 2)).toBeUndefined();
      expect(rtuRequestLength(f, 0, 3)).toBe(f.length);
    }
  });
});
