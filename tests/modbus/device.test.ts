// Readings and events of one device with a fake clock: quality good → stale after three poll
// intervals → bad once per transition; alarms on change only; comms events once per error kind.
// The sinks are in-memory arrays here: this tests what the device pushes, not the store.
import { describe, expect, it } from 'vitest';
import { deviceSchema } from '../../edge/config/schema.js';
import { ModbusDevice } from '../../edge/drivers/modbus/device.js';
import { ModbusTimeoutError, encodeExceptionResponse, encodeRegistersResponse } from '../../edge/drivers/modbus/index.js';
import { silentLogger } from '../../edge/log.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import type { NewEvent, NewReading } from '../../edge/store/types.js';
import { FakeClock } from '../support/fakeClock.js';

/** The alarm an alarm.* event is about. */
const alarmOf = (e: { detail?: object }): string | undefined => (e.detail && 'alarm' in e.detail ? String(e.detail.alarm) : undefined);

function setup() {
  const clock = new FakeClock();
  const pushed: NewReading[] = [];
  const events: NewEvent[] = [];
  const cfg = deviceSchema.parse({ id: 'lamp-1', bus: 'b', unit: 3, profile: 'streetlight-controller', poll: 1000 });
  const device = new ModbusDevice(cfg, loadProfiles([]).require('streetlight-controller'), 'b', 8, {
    push: (r) => pushed.push(r),
    event: (e) => events.push(e),
    clock,
    log: silentLogger(),
  });
  const regs = new Array<number>(31).fill(0);
  regs[0] = 2301;
  const answer = async (pdu: Buffer) => {
    expect([...pdu]).toEqual([3, 0, 0, 0, 31]);
    return encodeRegistersResponse(3, regs);
  };
  return { clock, pushed, events, device, regs, answer };
}

describe('ModbusDevice', () => {
  it('pushes every point on every poll', async () => {
    const { device, pushed, answer } = setup();
    await device.poll(answer);
    await device.poll(answer);
    expect(pushed).toHaveLength(2 * 22);
    expect(pushed[0]).toMatchObject({ device: 'lamp-1', point: 'mains_voltage', value: 230.1, unit: 'V', quality: 'good' });
  });

  it('marks points stale once when their last good value is older than three poll intervals', async () => {
    const { device, pushed, clock, answer } = setup();
    await device.poll(answer);
    pushed.length = 0;
    await clock.advance(3000);
    device.checkStale();
    expect(pushed).toEqual([]);
    await clock.advance(1);
    device.checkStale();
    device.checkStale();
    expect(pushed).toHaveLength(22);
    expect(pushed[0]).toMatchObject({ point: 'mains_voltage', value: 230.1, quality: 'stale' });
    expect(device.quality('mains_voltage')).toBe('stale');
    await device.poll(answer);
    expect(device.quality('mains_voltage')).toBe('good');
  });

  it('the stale timer runs on the injected clock', async () => {
    const { device, pushed, clock, answer } = setup();
    await device.poll(answer);
    device.startStaleTimer();
    pushed.length = 0;
    await clock.advance(4500);
    device.stopStaleTimer();
    expect(pushed.filter((r) => r.quality === 'stale')).toHaveLength(22);
  });

  it('a failed poll pushes bad (value null) once per transition, and one comms.error per kind of error', async () => {
    const { device, pushed, events, answer } = setup();
    await device.poll(answer);
    pushed.length = 0;
    const timeout = new ModbusTimeoutError('no answer');
    device.pollFailed(timeout);
    device.pollFailed(timeout);
    expect(pushed).toHaveLength(22);
    expect(pushed.every((r) => r.quality === 'bad' && r.value === null)).toBe(true);
    expect(events.filter((e) => e.kind === 'comms.error')).toHaveLength(1);
    expect(events[0]).toMatchObject({ device: 'lamp-1', severity: 'warning', detail: { code: 'E_MODBUS_TIMEOUT', bus: 'b', unit: 3 } });
    device.lost(timeout);
    device.restored();
    expect(events.map((e) => e.kind)).toEqual(['comms.error', 'comms.lost', 'comms.restored']);
    expect(events[2]).toMatchObject({ severity: 'info' });
    await device.poll(answer);
    device.pollFailed(timeout);
    expect(events.filter((e) => e.kind === 'comms.error')).toHaveLength(2); // a new failure after recovery is reported
  });

  it('alarms: set bits raised on the first read, then changes only; clear bits on the first read say nothing', async () => {
    const { device, events, regs, answer } = setup();
    regs[18] = 0b001; // ch1 lamp failure
    await device.poll(answer);
    expect(events.map((e) => `${e.kind}:${alarmOf(e)}`)).toEqual(['alarm.raised:ch1_lamp_failure']);
    await device.poll(answer);
    expect(events).toHaveLength(1);
    regs[18] = 0b110;
    regs[28] = 0b100;
    await device.poll(answer);
    expect(events.slice(1).map((e) => `${e.kind}:${alarmOf(e)}:${e.severity}`)).toEqual([
      'alarm.cleared:ch1_lamp_failure:info',
      'alarm.raised:ch1_driver_fault:error',
      'alarm.raised:ch1_over_temperature:warning',
      'alarm.raised:ch2_over_temperature:warning',
    ]);
    expect(events[2]!.detail).toMatchObject({ point: 'ch1_status', bit: 1, value: 6 });
  });

  it('an exception answer marks its block bad with the exception name, once', async () => {
    const { device, pushed, events } = setup();
    const exc = async () => encodeExceptionResponse(3, 4);
    await device.poll(exc);
    await device.poll(exc);
    expect(pushed.filter((r) => r.quality === 'bad')).toHaveLength(22);
    expect(events).toHaveLength(1);
    expect(events[0]!.detail).toMatchObject({ exception: 'SERVER DEVICE FAILURE', exceptionCode: 4, function: 3, address: 0, quantity: 31 });
  });

  it('a comms failure inside a poll propagates to the scheduler', async () => {
    const { device } = setup();
    await expect(device.poll(() => Promise.reject(new ModbusTimeoutError('x')))).rejects.toThrow(ModbusTimeoutError);
    expect([...device.probePdu()]).toEqual([3, 0, 0, 0, 1]);
  });
});
