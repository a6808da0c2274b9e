/**
 * Fault injection on Modbus TCP: a simulated gateway serving a traffic controller (unit 1) and
 * a streetlight controller (unit 2) on one connection. Each broken behaviour of unit 2 gives a
 * clear event and an offline state (or, for an exception, a named error while online), never a
 * wrong value for unit 1; a dropped connection is re-established; a serial path that does not
 * exist degrades its bus with an error naming it while the TCP bus runs on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { startModbusSimulators, type Fault, type ModbusSimulators, type TrafficModel } from '../../edge/sim/modbus/index.js';
import { isEvent, type EventKind } from '../../edge/store/eventKinds.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';

let sims: ModbusSimulators;
let t: TestContext;
let driver: ModbusDriver;

const eventsOf = <K extends EventKind>(device: string, kind: K) => t.events.filter((e) => isEvent(e, kind)).filter((e) => e.device === device);
const tcpBus = () => driver.status().find((b) => b.id === 'tc-net')!;
const device = (id: string) => tcpBus().devices.find((d) => d.id === id)!;

beforeAll(async () => {
  sims = await startModbusSimulators({
    tcp: [{ id: 'tc-net', devices: [{ unit: 1, profile: 'traffic-controller' }, { unit: 2, profile: 'streetlight-controller' }] }],
  });
  t = makeContext({
    buses: [
      { id: 'tc-net', type: 'tcp', host: '127.0.0.1', port: sims.bus('tc-net').port!, timeout: 100, retries: 1, offlineAfter: 2, probeInterval: 400 },
      { id: 'rs485-missing', type: 'serial', path: '/dev/streetbox-no-such-port', baud: 9600, parity: 'none' },
    ],
    devices: [
      { id: 'tc-1', bus: 'tc-net', unit: 1, profile: 'traffic-controller', poll: 100 },
      { id: 'lamp-2', bus: 'tc-net', unit: 2, profile: 'streetlight-controller', poll: 100 },
      { id: 'lamp-9', bus: 'rs485-missing', unit: 9, profile: 'streetlight-controller', poll: 100 },
    ],
  });
  driver = createModbusDriver(t.ctx);
  await driver.start();
  await waitFor('first polls', () => device('tc-1').polls >= 3 && device('lamp-2').polls >= 3, 10_000);
});

afterAll(async () => {
  await driver?.stop();
  await t?.close();
  await sims?.stop();
});

const lossRows: { name: string; fault: Fault }[] = [
  { name: 'no answer', fault: { kind: 'noAnswer' } },
  { name: 'wrong transaction id', fault: { kind: 'wrongTransaction' } },
  { name: 'wrong unit id', fault: { kind: 'wrongUnit' } },
  { name: 'garbage bytes', fault: { kind: 'garbage', bytes: 11 } },
  { name: 'truncated frame', fault: { kind: 'truncated' } },
  { name: 'bad MBAP protocol id', fault: { kind: 'crc' } },
  { name: 'late answer past the timeout', fault: { kind: 'late', ms: 250 } },
];

describe('one broken unit behind a Modbus TCP gateway', () => {
  it.each(lossRows)('$name: lamp-2 goes offline with comms.lost and returns with comms.restored; tc-1 keeps polling with right values', async ({ fault }) => {
    const lost0 = eventsOf('lamp-2', 'comms.lost').length;
    const restored0 = eventsOf('lamp-2', 'comms.restored').length;
    const tcLost0 = eventsOf('tc-1', 'comms.lost').length;
    const tcPolls0 = device('tc-1').polls;
    sims.setFault('tc-net', 2, fault);
    try {
      await waitFor('comms.lost', () => eventsOf('lamp-2', 'comms.lost').length > lost0, 5000);
      expect(device('lamp-2').online).toBe(false);
      expect(t.store.latest('lamp-2').get('mains_voltage')?.quality).toBe('bad');
      // tc-1 kept being polled, and what it stored is its own: mode 3 (actuated)
      await waitFor('tc-1 polls', () => device('tc-1').polls >= tcPolls0 + 10, 3000);
      expect(eventsOf('tc-1', 'comms.lost').length, 'tc-1 went offline too').toBe(tcLost0);
      // its latest value good again: under load a poll may come late and mark it stale for a moment
      await waitFor('tc-1 mode 3, good', () => {
        const mode = t.store.latest('tc-1').get('mode');
        return mode?.quality === 'good' && mode;
      }, 3000);
      expect(t.store.latest('tc-1').get('mode')).toMatchObject({ value: 3 });
      sims.setFault('tc-net', 2, null);
      await waitFor('comms.restored', () => eventsOf('lamp-2', 'comms.restored').length > restored0, 5000);
      expect(device('lamp-2').online).toBe(true);
    } finally {
      // Leave the bus healthy for the next row, whatever happened in this one.
      sims.setFault('tc-net', 2, null);
      await waitFor('both online again', () => device('lamp-2').online && device('tc-1').online, 8000).catch(() => undefined);
    }
  });

  it('an exception response keeps the device online and is reported by name', async () => {
    sims.setFault('tc-net', 2, { kind: 'exception', code: 6 });
    await waitFor('comms.error with exception 6', () => eventsOf('lamp-2', 'comms.error').some((e) => e.detail.exceptionCode === 6), 3000);
    const e = eventsOf('lamp-2', 'comms.error').find((x) => x.detail.exceptionCode === 6)!;
    expect(String(e.detail.exception)).toMatch(/BUSY/i);
    expect(device('lamp-2').online).toBe(true);
    sims.setFault('tc-net', 2, null);
  });

  it('re-establishes a dropped connection and polls on', async () => {
    // Drop every connection from the server side: a controller rebooting.
    const polls0 = device('tc-1').polls;
    sims.dropConnections('tc-net');
    await waitFor('polls after the reconnect', () => device('tc-1').polls >= polls0 + 5, 10_000);
    expect(tcpBus().state).toBe('connected');
    expect(tcpBus().counters.connects).toBeGreaterThanOrEqual(2);
  });

  it('program requests go through the traffic controller\'s own checks', async () => {
    const tc = sims.model<TrafficModel>('tc-net', 1);
    const refused = await driver.write('tc-1', 'program_request', 9);
    expect(refused.status).toBe('failed');
    expect(refused.reason).toMatch(/ILLEGAL.?DATA.?VALUE/i);
    expect(await driver.write('tc-1', 'request_expiry', 30)).toMatchObject({ status: 'verified' });
    expect(await driver.write('tc-1', 'program_request', 2)).toMatchObject({ status: 'verified', readBack: 2 });
    expect(tc.points.get('active_program')).toBe(2);
    await driver.write('tc-1', 'program_request', 0);
  });

  it('a serial path that does not exist degrades its bus with an error naming it; the TCP bus runs on', () => {
    const serial = driver.status().find((b) => b.id === 'rs485-missing')!;
    expect(serial.state).not.toBe('connected');
    expect(serial.lastError).toMatch(/rs485-missing/);
    expect(serial.lastError).toMatch(/streetbox-no-such-port/);
    expect(tcpBus().state).toBe('connected');
  });
});
