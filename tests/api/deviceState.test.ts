/**
 * What a device is doing now (edge/api/deviceState.ts), as the map colours it and /metrics
 * exports it: from the built-in profiles' roles and alarms and the latest values, never from
 * point names. A light at 100 % is on, 1..99 % dimmed, 0 % or switched off is off; an alarm
 * bit of the profile, or a lampFailure point, is an alarm; offline wins over everything.
 */
import { describe, expect, it } from 'vitest';
import { deviceState, lightLevel, profileAlarms } from '../../edge/api/deviceState.js';
import { describeDevice } from '../../edge/profiles/describe.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import type { LatestValue, Value } from '../../edge/store/types.js';

const profiles = loadProfiles([]);
const slc = describeDevice({ profile: 'streetlight-controller' }, profiles);
const slcAlarms = profileAlarms(profiles.get('streetlight-controller'));
const lora = describeDevice({ profile: 'lora-streetlight', devEui: '70b3d57ed0000001' }, profiles);
const tc = describeDevice({ profile: 'traffic-controller' }, profiles);
const tcAlarms = profileAlarms(profiles.get('traffic-controller'));

function latest(values: Record<string, Value | [Value, LatestValue['quality']]>): Map<string, LatestValue> {
  return new Map(
    Object.entries(values).map(([point, v], i) => {
      const [value, quality] = Array.isArray(v) ? v : [v, 'good' as const];
      return [point, { seq: i + 1, ts: 1_000 + i, value, unit: null, quality }];
    }),
  );
}

describe('deviceState', () => {
  it('reads a two-channel Modbus light: the brighter channel, a switched-off channel counts 0', () => {
    expect(deviceState(slc, slcAlarms, latest({ ch1_on: true, ch1_dim_level: 100, ch2_on: true, ch2_dim_level: 40 }), true)).toEqual({ state: 'on', level: 100, alarms: [] });
    expect(deviceState(slc, slcAlarms, latest({ ch1_on: true, ch1_dim_level: 35, ch2_on: false, ch2_dim_level: 80 }), true)).toEqual({ state: 'dimmed', level: 35, alarms: [] });
    expect(deviceState(slc, slcAlarms, latest({ ch1_on: false, ch1_dim_level: 60, ch2_on: false, ch2_dim_level: 60 }), true)).toEqual({ state: 'off', level: 0, alarms: [] });
    // no actual level reported: the commanded one
    expect(lightLevel(slc, latest({ ch1_on: true, ch1_dim_setpoint: 70 }))).toBe(70);
    // nothing reported yet
    expect(deviceState(slc, slcAlarms, latest({}), true)).toEqual({ state: 'unknown', level: null, alarms: [] });
    // a bad reading is no level
    expect(deviceState(slc, slcAlarms, latest({ ch1_dim_level: [null, 'bad'] }), true).state).toBe('unknown');
  });

  it('raises alarm from a profile alarm bit or a lampFailure point, and offline wins', () => {
    // ch1_status bit 1 is ch1_driver_fault (streetlight-controller.yaml)
    const faulty = latest({ ch1_on: true, ch1_dim_level: 50, ch1_status: 0b010 });
    expect(deviceState(slc, slcAlarms, faulty, true)).toEqual({ state: 'alarm', level: 50, alarms: ['ch1_driver_fault'] });
    expect(deviceState(slc, slcAlarms, latest({ ch1_on: true, ch1_dim_level: 50, ch1_status: 0b100 }), true).alarms).toEqual(['ch1_over_temperature']);
    expect(deviceState(slc, slcAlarms, faulty, false)).toEqual({ state: 'offline', level: 50, alarms: ['ch1_driver_fault'] });
    // a LoRaWAN node: its lampFailure point
    expect(deviceState(lora, [], latest({ dimLevel: 80, lampOn: true, lampFailure: true }), true)).toEqual({ state: 'alarm', level: 80, alarms: ['lampFailure'] });
    expect(deviceState(lora, [], latest({ dimLevel: 80, lampOn: true, lampFailure: false }), true)).toEqual({ state: 'dimmed', level: 80, alarms: [] });
  });

  it('says a traffic controller is on while it runs, and names its alarms', () => {
    expect(deviceState(tc, tcAlarms, latest({ mode: 3, faults: 0 }), true)).toEqual({ state: 'on', level: null, alarms: [] });
    expect(deviceState(tc, tcAlarms, latest({ mode: 3, faults: 0 }), null).state).toBe('unknown');
    const alarm = deviceState(tc, tcAlarms, latest({ mode: 1, faults: 0b10 }), true);
    expect(alarm.state).toBe('alarm');
    expect(alarm.alarms).toEqual(['signal_conflict']);
  });
});
