/**
 * `report:` in devices.yaml (edge/config/report.ts, issue 15): `poll`, `change` or a mapping, on a
 * profile point, on a device and per point of a device, parsed into the whole strategy; every
 * refusal at its file:line:col, with the others of the file; a device's `points:` checked against
 * its profile (a point it lacks, with a did-you-mean; a deadband or minimum interval on a point
 * whose every change is stored; a device's own report is not refused for those, the policy adapts
 * it); storage.minAutonomyDays.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { asset } from '../../edge/assets.js';
import { ConfigError, formatIssue, parseConfig } from '../../edge/config/index.js';
import { loadProfileFile } from '../../edge/profiles/index.js';
import { DEFAULT_STRATEGY, EVERY_POLL_STRATEGY } from '../../edge/report/strategy.js';

const HEAD = `gateway: { id: gw }
buses: [{ id: b, type: tcp, host: 10.0.0.2 }]
lorawan:
  devices: [{ devEui: 70b3d57ed0000001, activation: otaa, joinEui: 70b3d57ed0000000, appKey: 000102030405060708090a0b0c0d0e0f }]
`;
/** the line of devices.yaml after HEAD */
const FIRST = 5;

const parse = (body: string) => parseConfig(HEAD + body, { file: 'devices.yaml', dir: '/tmp', env: {} });

/** The issues of a devices.yaml, each as `line:col path: message`. */
function issues(body: string): string[] {
  try {
    parse(body);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => formatIssue(i).replace(/^devices\.yaml:/, ''));
    throw err;
  }
  return [];
}

/** The report of the one point override of a streetlight controller. */
const strategyOf = (report: string) => parse(`devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller, points: { ch1_power: { report: ${report} } } }]\n`).config.devices[0]!.points!.ch1_power!.report;

describe('report: accepted, as the whole strategy', () => {
  it.each([
    ['change', DEFAULT_STRATEGY],
    ['poll', EVERY_POLL_STRATEGY],
    ['{}', DEFAULT_STRATEGY],
    ['{ deadband: 5 }', { ...DEFAULT_STRATEGY, deadband: 5 }],
    ['{ deadband: 0 }', DEFAULT_STRATEGY],
    ['{ deadband: "2%" }', { ...DEFAULT_STRATEGY, deadbandPercent: 2 }],
    ['{ deadband: "100%", heartbeat: 1h }', { ...DEFAULT_STRATEGY, deadbandPercent: 100, heartbeat: 3_600_000 }],
    ['{ deadband: 0.5, heartbeat: 0 }', { ...DEFAULT_STRATEGY, deadband: 0.5, heartbeat: 0 }],
    ['{ heartbeat: 1d, minInterval: 30s }', { ...DEFAULT_STRATEGY, heartbeat: 86_400_000, minInterval: 30_000 }],
    // without a heartbeat any minimum interval will do
    ['{ heartbeat: 0, minInterval: 1d }', { ...DEFAULT_STRATEGY, heartbeat: 0, minInterval: 86_400_000 }],
    // on: poll has no heartbeat: every poll is stored; with a minimum interval, a sample every so often
    ['{ on: poll }', EVERY_POLL_STRATEGY],
    ['{ on: poll, minInterval: 1m }', { ...EVERY_POLL_STRATEGY, minInterval: 60_000 }],
    ['{ on: poll, heartbeat: 0 }', EVERY_POLL_STRATEGY],
    ['{ on: change, minInterval: 10s }', { ...DEFAULT_STRATEGY, minInterval: 10_000 }],
  ])('%s', (report, expected) => {
    expect(strategyOf(report)).toEqual(expected);
  });

  it('on a device, per point of a device and on a custom profile point; the shipped profiles take theirs', () => {
    const { config } = parse(`devices:
  - id: d
    bus: b
    unit: 1
    profile: acme
    report: { deadband: "1%" }
    points:
      power: { report: poll }
profiles:
  - name: acme
    points:
      - { name: power, table: input, address: 4, report: { deadband: 5 } }
`);
    const d = config.devices[0]!;
    expect(d.report).toEqual({ ...DEFAULT_STRATEGY, deadbandPercent: 1 });
    expect(d.points).toEqual({ power: { report: EVERY_POLL_STRATEGY } });
    expect(config.profiles[0]!.points[0]!.report).toEqual({ ...DEFAULT_STRATEGY, deadband: 5 });
    const builtin = loadProfileFile(asset('edge/profiles/traffic-controller.yaml'));
    expect(builtin.points.find((p) => p.name === 'loop1_count')!.report).toEqual({ ...DEFAULT_STRATEGY, deadband: 10 });
  });

  it('without report, a device and its points have none (the policy decides)', () => {
    const d = parse('devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller }]\n').config.devices[0]!;
    expect(d.report).toBeUndefined();
    expect(d.points).toBeUndefined();
  });
});

describe('report: refused at its line and column, every issue at once', () => {
  it('a bad strategy, each at the key that is wrong', () => {
    expect(
      issues(`devices:
  - id: d
    bus: b
    unit: 1
    profile: streetlight-controller
    points:
      ch1_power: { report: { on: pol } }
      ch1_energy: { report: { deadbnd: 1 } }
      ch1_on: { report: { heartbeat: 2d } }
      ch2_on: { report: { minInterval: 20m } }
      ch2_power: { report: { on: poll, deadband: 1, heartbeat: 1m } }
      ch2_energy: { report: { deadband: "0%" } }
      ch2_burning_hours: { report: { deadband: -1 } }
      ch2_dim_level: { report: { deadband: "2 percent" } }
      ch2_dim_setpoint: { report: sometimes }
      ch1_dim_level: { report: { heartbeat: 1m, minInterval: 1m } }
      ch1_dim_setpoint: { report: { deadbandPercent: 2 } }
      mains_voltage: { report: { heartbeat: 90000000 } }
`),
    ).toEqual([
      `${FIRST + 6}:34 devices[0].points.ch1_power.report.on: expected one of poll, change, got "pol"; did you mean "poll"?`,
      `${FIRST + 7}:31 devices[0].points.ch1_energy.report.deadbnd: unknown key "deadbnd"; did you mean "deadband"?`,
      `${FIRST + 8}:38 devices[0].points.ch1_on.report.heartbeat: expected a duration 0ms..1d, got "2d"`,
      `${FIRST + 9}:40 devices[0].points.ch2_on.report.minInterval: a heartbeat must be longer than the minimum interval: minInterval 20m is not shorter than the default heartbeat, 15m`,
      `${FIRST + 10}:50 devices[0].points.ch2_power.report.deadband: a deadband goes with on: change; on: poll stores every polled value`,
      `${FIRST + 10}:64 devices[0].points.ch2_power.report.heartbeat: a heartbeat goes with on: change; on: poll stores every polled value`,
      `${FIRST + 11}:41 devices[0].points.ch2_energy.report.deadband: expected a percent above 0% and at most 100%, got "0%"`,
      `${FIRST + 12}:48 devices[0].points.ch2_burning_hours.report.deadband: expected a deadband of 0 or more in the point's units (0.5) or a percent of the last stored value ("2%"), got -1`,
      `${FIRST + 13}:44 devices[0].points.ch2_dim_level.report.deadband: expected a deadband of 0 or more in the point's units (0.5) or a percent of the last stored value ("2%"), got "2 percent"`,
      `${FIRST + 14}:35 devices[0].points.ch2_dim_setpoint.report: expected one of poll, change or a mapping, got "sometimes"`,
      `${FIRST + 15}:62 devices[0].points.ch1_dim_level.report.minInterval: a heartbeat must be longer than the minimum interval: minInterval 1m is not shorter than heartbeat 1m`,
      `${FIRST + 16}:37 devices[0].points.ch1_dim_setpoint.report.deadbandPercent: unknown key "deadbandPercent"; did you mean "deadband"?`,
      `${FIRST + 17}:45 devices[0].points.mains_voltage.report.heartbeat: expected a duration 0ms..1d, got 90000000`,
    ]);
  });

  it('a point the profile lacks: at its name, with a did-you-mean or the list; a bad name at its key', () => {
    expect(
      issues(`devices:
  - id: d
    bus: b
    unit: 1
    profile: streetlight-controller
    points:
      ch1_pwr:
        report: change
      "bad key": { report: change }
  - { id: t, bus: b, unit: 2, profile: traffic-controller, points: { zzz: { report: poll } } }
  - { id: p, devEui: 70b3d57ed0000001, profile: lora-streetlight, points: { rssi: { report: poll }, rsi: { report: poll } } }
`),
    ).toEqual([
      `${FIRST + 6}:7 devices[0].points.ch1_pwr: profile "streetlight-controller" has no point "ch1_pwr"; did you mean "ch1_power"?`,
      `${FIRST + 8}:7 devices[0].points["bad key"]: expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/"), got "bad key"`,
      `${FIRST + 9}:70 devices[1].points.zzz: profile "traffic-controller" has no point "zzz"; its points: mode, active_program, faults, lamp_failures, request_status, firmware_version, loop1_count, loop2_count, loop3_count, loop4_count, loop5_count, loop6_count, loop7_count, loop8_count, program_request, request_expiry, cabinet_door_open`,
      `${FIRST + 10}:101 devices[2].points.rsi: profile "lora-streetlight" has no point "rsi"; did you mean "rssi"?`,
    ]);
  });

  it('a deadband or minimum interval on an alarm input or a lamp failure: in a device override, a profile', () => {
    expect(
      issues(`devices:
  - id: d
    bus: b
    unit: 1
    profile: streetlight-controller
    points:
      ch1_status: { report: { deadband: 1, minInterval: 5s } }
      ch1_lamp_failure: { report: { deadband: 1 } }
      ch2_lamp_failure: { report: { minInterval: 5s } }
  - { id: p, devEui: 70b3d57ed0000001, profile: lora-streetlight, points: { lampFailure: { report: { minInterval: 1m } } } }
  - { id: a, bus: b, unit: 3, profile: acme }
profiles:
  - name: acme
    points:
      - { name: status, table: input, address: 1, report: { deadband: 2 } }
    alarms:
      - { name: hot, point: status, bit: 3 }
`),
    ).toEqual([
      `${FIRST + 6}:41 devices[0].points.ch1_status.report.deadband: a deadband would hide changes of ch1_status, and alarms are always stored: ch1_status feeds alarms ch1_lamp_failure, ch1_driver_fault, ch1_over_temperature`,
      `${FIRST + 6}:57 devices[0].points.ch1_status.report.minInterval: a minimum interval would delay changes of ch1_status, and alarms are always stored: ch1_status feeds alarms ch1_lamp_failure, ch1_driver_fault, ch1_over_temperature`,
      // a deadband never hides a bool's change: ch1_lamp_failure's is harmless
      `${FIRST + 8}:50 devices[0].points.ch2_lamp_failure.report.minInterval: a minimum interval would delay changes of ch2_lamp_failure, and lamp failures are always stored: ch2_lamp_failure has role lampFailure`,
      `${FIRST + 9}:115 devices[1].points.lampFailure.report.minInterval: a minimum interval would delay changes of lampFailure, and lamp failures are always stored: lampFailure has role lampFailure`,
      `${FIRST + 14}:71 profiles[0].points[0].report.deadband: a deadband would hide changes of status, and alarms are always stored: status feeds alarm hot`,
    ]);
  });

  it("a device's report with a deadband or minimum interval, on a device with alarm inputs or lamp failures: accepted (they take it without either)", () => {
    const { config } = parse(`devices:
  - { id: t, bus: b, unit: 2, profile: traffic-controller, report: { deadband: "5%", minInterval: 1m } }
  - { id: p, devEui: 70b3d57ed0000001, profile: lora-streetlight, report: { minInterval: 1m } }
  - { id: a, bus: b, unit: 3, profile: acme, report: { deadband: 2 } }
profiles:
  - name: acme
    points:
      - { name: status, table: input, address: 1 }
    alarms:
      - { name: hot, point: status, bit: 3 }
`);
    expect(config.devices.map((d) => d.report)).toEqual([
      { ...DEFAULT_STRATEGY, deadbandPercent: 5, minInterval: 60_000 },
      { ...DEFAULT_STRATEGY, minInterval: 60_000 },
      { ...DEFAULT_STRATEGY, deadband: 2 },
    ]);
  });

  it('in a file with other issues, the checks against the profile still run on its valid parts', () => {
    expect(
      issues(`devices:
  - { id: d, bus: b, unit: 1, profile: streetlight-controller, poll: fast, points: { ch1_pwr: { report: change }, ch1_power: { report: { on: pol } } } }
  - { id: e, bus: b, unit: 2, profile: streetlight-controller, points: { ch2_status: { report: { minInterval: 1s } } } }
`),
    ).toEqual([
      `${FIRST + 1}:70 devices[0].poll: expected a duration like "500ms", "5s", "2m", "1h" (100ms..1d), got "fast"`,
      `${FIRST + 1}:86 devices[0].points.ch1_pwr: profile "streetlight-controller" has no point "ch1_pwr"; did you mean "ch1_power"?`,
      `${FIRST + 1}:142 devices[0].points.ch1_power.report.on: expected one of poll, change, got "pol"; did you mean "poll"?`,
      `${FIRST + 2}:111 devices[1].points.ch2_status.report.minInterval: a minimum interval would delay changes of ch2_status, and alarms are always stored: ch2_status feeds alarms ch2_lamp_failure, ch2_driver_fault, ch2_over_temperature`,
    ]);
  });

  it('beside the other checks between sections, in their order', () => {
    expect(
      issues(`devices:
  - { id: d, bus: nobus, unit: 1, profile: streetlight-controller, points: { ch1_pwr: { report: change } } }
  - { id: d, bus: b, unit: 2, profile: streetlight-controller, points: { ch1_status: { report: { deadband: 1 } } } }
`),
    ).toEqual([
      `${FIRST + 1}:19 devices[0].bus: unknown bus "nobus"; buses are: b`,
      `${FIRST + 1}:78 devices[0].points.ch1_pwr: profile "streetlight-controller" has no point "ch1_pwr"; did you mean "ch1_power"?`,
      `${FIRST + 2}:11 devices[1].id: duplicate device id "d" (first used at index 0)`,
      `${FIRST + 2}:108 devices[1].points.ch1_status.report.deadband: a deadband would hide changes of ch1_status, and alarms are always stored: ch1_status feeds alarms ch1_lamp_failure, ch1_driver_fault, ch1_over_temperature`,
    ]);
  });

  it('a built-in profile file with a deadband on an alarm input does not load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streetbox-report-'));
    try {
      const file = join(dir, 'p.yaml');
      writeFileSync(file, 'name: p\npoints:\n  - { name: s, table: input, address: 0, report: { minInterval: 1s } }\nalarms:\n  - { name: a, point: s }\n');
      expect(() => loadProfileFile(file)).toThrow('points.0.report.minInterval: a minimum interval would delay changes of s, and alarms are always stored: s feeds alarm a');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('storage.minAutonomyDays', () => {
  it('defaults to 7; 0 turns the check off; refused outside 0..3650', () => {
    expect(parse('').config.storage.minAutonomyDays).toBe(7);
    expect(parse('storage: { minAutonomyDays: 0 }\n').config.storage.minAutonomyDays).toBe(0);
    expect(parse('storage: { minAutonomyDays: 30.5 }\n').config.storage.minAutonomyDays).toBe(30.5);
    expect(issues('storage: { minAutonomyDays: -1 }\n')).toEqual([`${FIRST}:29 storage.minAutonomyDays: expected a number 0..3650, got -1`]);
    expect(issues('storage: { minAutonomyDays: 3651 }\n')).toEqual([`${FIRST}:29 storage.minAutonomyDays: expected a number 0..3650, got 3651`]);
  });
});
