/**
 * The simulated devices behave as the built-in profiles document them: addresses come from
 * the profile YAML, writes are validated like a controller does, state evolves with time.
 * Requests go through the same PDU handler the servers use.
 */
import { describe, expect, it } from 'vitest';
import { loadProfiles } from '../../edge/profiles/index.js';
import type { RegisterBank } from '../../edge/sim/modbus/banks.js';
import { respond } from '../../edge/sim/modbus/pdu.js';
import { REQUEST_STATUS, StreetlightModel, TRAFFIC_MODES, TrafficModel } from '../../edge/sim/modbus/index.js';

const profiles = loadProfiles();
const light = profiles.require('streetlight-controller');
const traffic = profiles.require('traffic-controller');

function writeRegs(bank: RegisterBank, address: number, values: number[]): number | null {
  const pdu = Buffer.alloc(6 + values.length * 2);
  pdu[0] = 0x10;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(values.length, 3);
  pdu[5] = values.length * 2;
  values.forEach((v, i) => pdu.writeUInt16BE(v, 6 + i * 2));
  const out = respond(bank, pdu, 0, 0);
  return out[0]! & 0x80 ? out[1]! : null;
}

function readRegs(bank: RegisterBank, fc: 3 | 4, address: number, count: number): number[] | number {
  const pdu = Buffer.from([fc, address >> 8, address & 0xff, 0, count]);
  const out = respond(bank, pdu, 0, 0);
  if (out[0]! & 0x80) return out[1]!;
  return Array.from({ length: count }, (_, i) => out.readUInt16BE(2 + i * 2));
}

describe('streetlight controller model', () => {
  it('serves the profile addresses and derives level and power from on/off and the setpoint', () => {
    const m = new StreetlightModel(light, { ratedW: [100, 50], seed: 3 });
    const at = (name: string) => light.points.find((p) => p.name === name)!.address;
    expect(writeRegs(m.bank, at('ch1_dim_setpoint'), [40])).toBeNull();
    expect(m.points.get('ch1_dim_level')).toBe(40);
    expect(m.points.get('ch1_power')).toBeGreaterThan(40);
    expect(m.points.get('ch1_power')).toBeLessThan(42);
    expect(writeRegs(m.bank, at('ch1_on'), [0])).toBeNull();
    expect(m.points.get('ch1_dim_level')).toBe(0);
    expect(m.points.get('ch1_power')).toBe(0);
    // the whole map in one request, as the driver's block read asks for it
    const regs = readRegs(m.bank, 3, 0, 31);
    expect(Array.isArray(regs) && regs.length).toBe(31);
  });

  it('refuses out-of-range values (exception 3) and writes to read-only registers (exception 2)', () => {
    const m = new StreetlightModel(light);
    const at = (name: string) => light.points.find((p) => p.name === name)!.address;
    expect(writeRegs(m.bank, at('ch2_dim_setpoint'), [101])).toBe(3);
    expect(writeRegs(m.bank, at('ch2_on'), [2])).toBe(3);
    expect(writeRegs(m.bank, at('ch2_power'), [5])).toBe(2);
    expect(writeRegs(m.bank, at('mains_voltage'), [5])).toBe(2);
    expect(readRegs(m.bank, 3, 30, 2)).toBe(2); // past the map
    expect(m.points.get('ch2_dim_setpoint')).toBe(100);
  });

  it('accumulates energy and burning hours while lit, jitters the mains, and reports injected faults', () => {
    const m = new StreetlightModel(light, { ratedW: [100, 50] });
    const e0 = m.points.get('ch1_energy');
    const h0 = m.points.get('ch1_burning_hours');
    const volts = new Set<number>();
    for (let i = 0; i < 10; i++) {
      m.tick(360_000); // 6 minutes of simulated time
      volts.add(m.points.get('mains_voltage'));
    }
    // one hour at ~101.5 W ≈ 0.10 kWh
    expect(m.points.get('ch1_energy') - e0).toBeCloseTo(0.1, 1);
    expect(m.points.get('ch1_burning_hours') - h0).toBe(1);
    expect(volts.size).toBeGreaterThan(1);
    for (const v of volts) expect(Math.abs(v - 230)).toBeLessThanOrEqual(3.1);

    m.inject(2, 'lampFailure');
    expect(m.points.get('ch2_lamp_failure')).toBe(1);
    expect(m.points.get('ch2_status')).toBe(1);
    expect(m.points.get('ch2_power')).toBe(0);
    m.inject(2, 'driverFault');
    expect(m.points.get('ch2_status')).toBe(3);
    expect(m.points.get('ch2_dim_level')).toBe(0);
    m.inject(2, 'lampFailure', false);
    m.inject(2, 'driverFault', false);
    expect(m.points.get('ch2_status')).toBe(0);
    expect(m.points.get('ch2_dim_level')).toBe(100);
  });
});

describe('traffic controller model', () => {
  const at = (name: string) => traffic.points.find((p) => p.name === name)!.address;

  it('runs its own plan, counts vehicles and reports faults and the cabinet door', () => {
    const m = new TrafficModel(traffic, { plan: () => 2, now: () => 0 });
    expect(m.points.get('mode')).toBe(TRAFFIC_MODES.actuated);
    expect(m.points.get('active_program')).toBe(2);
    const before = m.points.get('loop1_count') + m.points.get('loop8_count');
    m.tick(60_000);
    expect(m.points.get('loop1_count') + m.points.get('loop8_count')).toBeGreaterThan(before);
    m.setFault('lampFailure', true, 2);
    m.setFault('signalConflict');
    expect(m.points.get('faults')).toBe(0b11);
    expect(m.points.get('lamp_failures')).toBe(2);
    m.setDoorOpen(true);
    expect(m.points.get('cabinet_door_open')).toBe(1);
  });

  it('accepts a known program, refuses an unknown one (3) and refuses requests in flashing mode (6)', () => {
    const m = new TrafficModel(traffic, { programs: [1, 2, 5], plan: () => 1, now: () => 0 });
    expect(writeRegs(m.bank, at('program_request'), [4])).toBe(3);
    expect(m.points.get('request_status')).toBe(REQUEST_STATUS.rejected);
    expect(m.points.get('active_program')).toBe(1);
    expect(writeRegs(m.bank, at('program_request'), [5, 30])).toBeNull();
    expect(m.points.get('active_program')).toBe(5);
    expect(m.points.get('request_status')).toBe(REQUEST_STATUS.active);
    m.setMode(TRAFFIC_MODES.flashing);
    expect(m.points.get('active_program')).toBe(0);
    expect(writeRegs(m.bank, at('program_request'), [2, 30])).toBe(6);
  });

  it('reverts to its own plan when the dead-man expiry counts down to 0, unless renewed', () => {
    const m = new TrafficModel(traffic, { plan: () => 1, now: () => 0 });
    expect(writeRegs(m.bank, at('request_expiry'), [10])).toBeNull();
    expect(writeRegs(m.bank, at('program_request'), [3])).toBeNull();
    expect(m.points.get('active_program')).toBe(3);
    m.tick(6_000);
    expect(m.points.get('request_expiry')).toBe(4);
    expect(writeRegs(m.bank, at('request_expiry'), [10])).toBeNull(); // renewed
    m.tick(9_000);
    expect(m.points.get('active_program')).toBe(3);
    m.tick(1_000);
    expect(m.points.get('active_program')).toBe(1);
    expect(m.points.get('request_status')).toBe(REQUEST_STATUS.expired);
    expect(m.points.get('program_request')).toBe(0);
  });

  it('never lets anything but the program request and its expiry be written', () => {
    const m = new TrafficModel(traffic);
    expect(writeRegs(m.bank, 2, [1])).toBe(2);
    expect(writeRegs(m.bank, at('program_request'), [1, 10, 1])).toBe(2);
    const coil = respond(m.bank, Buffer.from([0x05, 0, 0, 0xff, 0]), 0, 0);
    expect(coil[0]).toBe(0x85);
    expect(coil[1]).toBe(2);
    // input registers and discrete inputs have no write function at all
    expect(readRegs(m.bank, 4, 0, 26)).toHaveLength(26);
  });
});
