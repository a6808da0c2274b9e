/**
 * The report policy (edge/report/policy.ts): per (device, point) the most specific strategy,
 * whole: the device's point override, the device's report, the profile point's report, the role's
 * default (a LoRaWAN radio point's own; LoRaWAN points with an hour's heartbeat), the default; a
 * device's report taken by an alarm input or a lamp failure without deadband and minimum interval.
 * The built-in profiles get the defaults issue 15 asks for; a point the configuration does not
 * know (a forwarder's stat, an unknown point) follows DEFAULT_STRATEGY.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../edge/config/index.js';
import { ROLE_DEFAULTS } from '../../edge/report/defaults.js';
import { describeReport, reportPolicy, type PointReport } from '../../edge/report/policy.js';
import { DEFAULT_STRATEGY, EVERY_POLL_STRATEGY, type ReportStrategy } from '../../edge/report/strategy.js';
import { LORAWAN_HEARTBEAT } from '../../edge/profiles/loraStreetlight.js';
import { POINT_ROLE_NAMES } from '../../edge/profiles/pointRoles.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

const config = (body: string) =>
  parseConfig(
    `gateway: { id: gw }
buses: [{ id: b, type: tcp, host: 10.0.0.2 }]
lorawan:
  devices: [{ devEui: 70b3d57ed0000001, activation: otaa, joinEui: 70b3d57ed0000000, appKey: 000102030405060708090a0b0c0d0e0f }]
${body}`,
    { file: 'devices.yaml', dir: '/tmp', env: {} },
  ).config;

/** The points of a device with their strategy and source, by point name. */
function byPoint(reports: PointReport[]): Map<string, Omit<PointReport, 'point'>> {
  return new Map(reports.map(({ point, ...rest }) => [point, rest]));
}

const change = (extra: Partial<ReportStrategy> = {}): ReportStrategy => ({ ...DEFAULT_STRATEGY, ...extra });

describe('the built-in profiles get the intended defaults', () => {
  const cfg = config(`devices:
  - { id: lamp, bus: b, unit: 1, profile: streetlight-controller }
  - { id: tc, bus: b, unit: 2, profile: traffic-controller }
  - { id: node, devEui: 70b3d57ed0000001, profile: lora-streetlight }
`);

  it('streetlight-controller: setpoints on change, power and voltage 2 %, energy 0.1 kWh, frequency 0.1 Hz, alarm inputs every change', () => {
    const lamp = byPoint(describeReport(cfg, 'lamp'));
    expect(lamp.get('ch1_dim_setpoint')).toEqual({ strategy: change(), from: 'role' });
    expect(lamp.get('ch2_on')).toEqual({ strategy: change(), from: 'role' });
    expect(lamp.get('ch1_power')).toEqual({ strategy: change({ deadbandPercent: 2 }), from: 'role' });
    expect(lamp.get('mains_voltage')).toEqual({ strategy: change({ deadbandPercent: 2 }), from: 'role' });
    expect(lamp.get('ch2_energy')).toEqual({ strategy: change({ deadband: 0.1 }), from: 'role' });
    expect(lamp.get('temperature')).toEqual({ strategy: change({ deadband: 0.5 }), from: 'role' });
    expect(lamp.get('mains_frequency')).toEqual({ strategy: change({ deadband: 0.1 }), from: 'profile' });
    expect(lamp.get('ch1_status')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'default' });
    expect(lamp.get('ch1_lamp_failure')).toEqual({ strategy: change(), from: 'role' });
    expect(lamp.size).toBe(22);
    for (const { strategy } of lamp.values()) expect(strategy.heartbeat).toBe(15 * MIN);
  });

  it('traffic-controller: loop counters beyond 10 vehicles, the request and mode on change', () => {
    const tc = byPoint(describeReport(cfg, 'tc'));
    for (let k = 1; k <= 8; k++) expect(tc.get(`loop${k}_count`)).toEqual({ strategy: change({ deadband: 10 }), from: 'profile' });
    for (const p of ['mode', 'active_program', 'request_status', 'program_request', 'request_expiry']) expect(tc.get(p)).toEqual({ strategy: change(), from: 'role' });
    expect(tc.get('faults')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'default' });
  });

  it('lora-streetlight: the codec points and the radio points, each with an hour\'s heartbeat', () => {
    const node = byPoint(describeReport(cfg, 'node'));
    const hourly = (extra: Partial<ReportStrategy> = {}) => change({ heartbeat: LORAWAN_HEARTBEAT, ...extra });
    expect(LORAWAN_HEARTBEAT).toBe(HOUR);
    expect(node.get('dimLevel')).toEqual({ strategy: hourly(), from: 'role' });
    expect(node.get('power')).toEqual({ strategy: hourly({ deadbandPercent: 2 }), from: 'role' });
    expect(node.get('energy')).toEqual({ strategy: hourly({ deadband: 0.1 }), from: 'role' });
    expect(node.get('temperature')).toEqual({ strategy: hourly({ deadband: 1 }), from: 'profile' });
    expect(node.get('lampOn')).toEqual({ strategy: hourly(), from: 'default' });
    expect(node.get('rssi')).toEqual({ strategy: hourly({ deadband: 6 }), from: 'role' });
    expect(node.get('snr')).toEqual({ strategy: hourly({ deadband: 3 }), from: 'role' });
    expect(node.get('dr')).toEqual({ strategy: hourly(), from: 'role' });
    expect(node.get('gateways')).toEqual({ strategy: hourly(), from: 'role' });
    expect(node.get('txPower')).toEqual({ strategy: hourly(), from: 'role' });
    expect(node.get('battery')).toEqual({ strategy: hourly({ deadband: 5 }), from: 'role' });
    expect(node.get('externalPower')).toEqual({ strategy: hourly(), from: 'role' });
    expect(node.get('margin')).toEqual({ strategy: hourly({ deadband: 3 }), from: 'role' });
    expect(node.size).toBe(18);
  });

  it('the policy answers as describeReport; a forwarder\'s stat, an unknown point or device: DEFAULT_STRATEGY', () => {
    const policy = reportPolicy(cfg);
    for (const device of ['lamp', 'tc', 'node']) {
      for (const r of describeReport(cfg, device)) expect(policy.strategy(device, r.point)).toEqual(r.strategy);
    }
    expect(policy.strategy('gw-0102030405060708', 'rxnb')).toBe(DEFAULT_STRATEGY);
    expect(policy.strategy('lamp', 'no_such_point')).toBe(DEFAULT_STRATEGY);
    expect(policy.strategy('nobody', 'ch1_power')).toBe(DEFAULT_STRATEGY);
    // resolved once: the same object on every call
    expect(policy.strategy('lamp', 'ch1_power')).toBe(policy.strategy('lamp', 'ch1_power'));
    expect(describeReport(cfg, 'nobody')).toEqual([]);
  });

  it('every role has a default with its reason', () => {
    for (const role of POINT_ROLE_NAMES) expect(ROLE_DEFAULTS[role].why.length).toBeGreaterThan(10);
  });

  it('every point of the shipped devices.yaml resolves', () => {
    const shipped = loadConfig(join(import.meta.dirname, '..', '..', 'devices.yaml')).config;
    for (const d of shipped.devices) {
      const reports = describeReport(shipped, d.id);
      expect(reports.length, d.id).toBeGreaterThan(0);
      for (const r of reports) expect(r.strategy.on, `${d.id}.${r.point}`).toBe('change');
    }
  });
});

describe('the most specific strategy wins, whole', () => {
  const cfg = config(`devices:
  - id: plain
    bus: b
    unit: 1
    profile: acme
  - id: wide
    bus: b
    unit: 2
    profile: acme
    report: { deadband: 3, heartbeat: 1h }
  - id: pointed
    bus: b
    unit: 3
    profile: acme
    report: poll
    points:
      power: { report: { minInterval: 1m } }
      level: { report: change }
  - { id: node, devEui: 70b3d57ed0000001, profile: lora-streetlight, points: { rssi: { report: { deadband: 10 } } } }
  - { id: old, bus: b, unit: 4, profile: legacy }
profiles:
  - name: acme
    kind: lighting
    points:
      - { name: level, table: holding, address: 0, access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 0, type: bool, access: rw, role: switch }
      - { name: power, table: input, address: 1, role: activePower, report: { deadband: 5 } }
      - { name: volts, table: input, address: 2, role: supplyVoltage }
      - { name: spare, table: input, address: 3 }
  - name: legacy
    points:
      - { name: ch1_dim_setpoint, table: holding, address: 0, access: rw }
      - { name: ch1_on, table: holding, address: 1, access: rw }
      - { name: volts, table: input, address: 2 }
`);

  it('profile point over role over default', () => {
    const plain = byPoint(describeReport(cfg, 'plain'));
    expect(plain.get('power')).toEqual({ strategy: change({ deadband: 5 }), from: 'profile' });
    expect(plain.get('volts')).toEqual({ strategy: change({ deadbandPercent: 2 }), from: 'role' });
    expect(plain.get('spare')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'default' });
  });

  it("the device's report over the profile's, for every point", () => {
    const wide = byPoint(describeReport(cfg, 'wide'));
    for (const p of ['level', 'relay', 'power', 'volts', 'spare']) expect(wide.get(p)).toEqual({ strategy: change({ deadband: 3, heartbeat: HOUR }), from: 'device' });
  });

  it("a point's override over the device's report; the others keep the device's", () => {
    const pointed = byPoint(describeReport(cfg, 'pointed'));
    // whole: the override's fields left out are the defaults, not the profile's deadband
    expect(pointed.get('power')).toEqual({ strategy: change({ minInterval: MIN }), from: 'device point' });
    expect(pointed.get('level')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'device point' });
    expect(pointed.get('volts')).toEqual({ strategy: EVERY_POLL_STRATEGY, from: 'device' });
    expect(reportPolicy(cfg).strategy('pointed', 'power')).toEqual(change({ minInterval: MIN }));
  });

  it('a LoRaWAN override is taken as written (its heartbeat too); the other radio points keep theirs', () => {
    const node = byPoint(describeReport(cfg, 'node'));
    expect(node.get('rssi')).toEqual({ strategy: change({ deadband: 10 }), from: 'device point' });
    expect(node.get('snr')).toEqual({ strategy: change({ deadband: 3, heartbeat: HOUR }), from: 'role' });
  });

  it('a profile written before roles: the roles read from its point names', () => {
    const old = byPoint(describeReport(cfg, 'old'));
    expect(old.get('ch1_dim_setpoint')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'role' });
    expect(old.get('volts')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'default' });
  });
});

describe("a device's report on the points whose every change is stored", () => {
  const cfg = config(`devices:
  - id: lamp
    bus: b
    unit: 1
    profile: streetlight-controller
    report: { deadband: "2%", minInterval: 1m, heartbeat: 1h }
    points:
      ch2_status: { report: poll }
  - { id: polled, bus: b, unit: 2, profile: streetlight-controller, report: poll }
  - { id: node, devEui: 70b3d57ed0000001, profile: lora-streetlight, report: { on: poll, minInterval: 1m } }
`);
  const everyChange = (reason: string) => `every change, without the device's deadband and minimum interval (${reason})`;

  it('an alarm input and a lamp failure take it without deadband and minimum interval, keeping on and heartbeat', () => {
    const lamp = byPoint(describeReport(cfg, 'lamp'));
    const adjusted = change({ heartbeat: HOUR });
    expect(lamp.get('ch1_status')).toEqual({
      strategy: adjusted,
      from: 'device',
      note: everyChange('alarms are always stored: ch1_status feeds alarms ch1_lamp_failure, ch1_driver_fault, ch1_over_temperature'),
    });
    // a bool: its deadband would hide nothing, but the rule is one: every change
    expect(lamp.get('ch2_lamp_failure')).toEqual({ strategy: adjusted, from: 'device', note: everyChange('lamp failures are always stored: ch2_lamp_failure has role lampFailure') });
    expect(lamp.get('ch1_power')).toEqual({ strategy: change({ deadbandPercent: 2, minInterval: MIN, heartbeat: HOUR }), from: 'device' });
    expect(lamp.get('ch2_status')).toEqual({ strategy: EVERY_POLL_STRATEGY, from: 'device point' });
    const policy = reportPolicy(cfg);
    expect(policy.strategy('lamp', 'ch1_status')).toEqual(adjusted);
    expect(policy.strategy('lamp', 'ch1_power')).toEqual(change({ deadbandPercent: 2, minInterval: MIN, heartbeat: HOUR }));
  });

  it('a report that skips no change is taken as written, without a note', () => {
    const polled = byPoint(describeReport(cfg, 'polled'));
    expect(polled.get('ch1_status')).toEqual({ strategy: EVERY_POLL_STRATEGY, from: 'device' });
    expect(polled.get('ch1_lamp_failure')).toEqual({ strategy: EVERY_POLL_STRATEGY, from: 'device' });
  });

  it("a LoRaWAN node's lamp failure: every poll, without the sampling interval", () => {
    const node = byPoint(describeReport(cfg, 'node'));
    expect(node.get('lampFailure')).toEqual({ strategy: EVERY_POLL_STRATEGY, from: 'device', note: everyChange('lamp failures are always stored: lampFailure has role lampFailure') });
    expect(node.get('power')).toEqual({ strategy: { ...EVERY_POLL_STRATEGY, minInterval: MIN }, from: 'device' });
    expect(reportPolicy(cfg).strategy('node', 'lampFailure')).toEqual(EVERY_POLL_STRATEGY);
  });
});

describe("a role's default on a point an alarm reads", () => {
  it('is taken without its deadband: the value that clears the alarm is stored like the one that raised it', () => {
    const cfg = config(`profiles:
  - name: cabinet-probe
    kind: other
    points:
      - { name: temp, table: input, address: 0, type: int16, scale: 0.1, unit: °C, role: temperature }
      - { name: humidity, table: input, address: 1, unit: '%' }
    alarms:
      - { name: overheat, point: temp, severity: warning }
devices:
  - { id: probe, bus: b, unit: 3, profile: cabinet-probe }
`);
    const probe = byPoint(describeReport(cfg, 'probe'));
    expect(probe.get('temp')).toEqual({
      strategy: change(),
      from: 'role',
      note: "every change, without its role's deadband and minimum interval (alarms are always stored: temp feeds alarm overheat)",
    });
    expect(reportPolicy(cfg).strategy('probe', 'temp')).toEqual(change());
    // the role's deadband stays where no alarm reads the point
    expect(ROLE_DEFAULTS.temperature.strategy.deadband).toBe(0.5);
    expect(probe.get('humidity')).toEqual({ strategy: DEFAULT_STRATEGY, from: 'default' });
  });
});
