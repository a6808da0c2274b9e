/**
 * Kinds and point roles (edge/profiles/pointRoles.ts): a bad role is a config error at its
 * file:line:col, reported with every other issue; describeDevice (edge/profiles/describe.ts)
 * answers what a device is from the roles, or, for a profile written before roles, from the old
 * point names with a deprecation hint.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deviceKindFromConfig } from '../../edge/broker/index.js';
import { parseConfig } from '../../edge/config/index.js';
import { profilesCheck } from '../../edge/ops/doctor.js';
import { describeDevice, describeProfile } from '../../edge/profiles/describe.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { configIssues, withNamedProfile } from '../helpers/configText.js';

/** The same with a vendor profile acme-lc200. */
const withProfile = (body: string): string => withNamedProfile('acme-lc200', 'l1', body);

/** The issues of a devices.yaml, each as `line:col path: message`. */
const issues = (text: string): string[] => configIssues(text);

function described(text: string) {
  const { config } = parseConfig(text, { file: 'devices.yaml' });
  return describeDevice(config.devices[0]!, loadProfiles(config.profiles));
}

const ALL_ROLES =
  'targetLightLevel, switch, rampTime, actualLightLevel, activePower, activeEnergy, operatingHours, lampFailure, supplyVoltage, temperature, firmwareVersion, programRequest, requestExpiry, mode, activeProgram, requestStatus';

describe('point roles in devices.yaml', () => {
  it('a vendor light with its own register names is valid, and is a dimmable light', () => {
    const text = withProfile(`    kind: lighting
    points:
      - { name: lamp_level, table: holding, address: 100, scale: 0.1, unit: '%', access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 0, type: bool, access: rw, role: switch }
      - { name: fade_s, table: holding, address: 101, unit: s, access: rw, role: rampTime }
      - { name: power, table: input, address: 4, type: float32, wordOrder: little, unit: W, role: activePower }
`);
    expect(issues(text)).toEqual([]);
    const d = described(text);
    expect(d).toMatchObject({ kind: 'lighting', transport: 'modbus', channels: [{ n: 1, setpoint: 'lamp_level', on: 'relay', onBool: true, ramp: 'fade_s' }] });
    expect(d.traffic).toBeUndefined();
    expect(d.legacyHint).toBeUndefined();
    expect(d.roles).toContainEqual({ role: 'activePower', channel: 1, point: 'power' });
  });

  it("the README's vendor example is valid as written and is a dimmable light", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const after = readme.slice(readme.indexOf("A technician adds a vendor's device without code:"));
    const block = /```yaml\n([\s\S]*?)```/.exec(after)![1]!;
    expect(block).toContain('name: acme-lc200');
    const text = `gateway: { id: gw }\nbuses:\n  - { id: rs485-1, type: serial, path: /dev/ttyUSB0 }\n${block}`;
    expect(issues(text)).toEqual([]);
    expect(described(text)).toMatchObject({ kind: 'lighting', channels: [{ n: 1, setpoint: 'lamp_level', on: 'relay', onBool: true, ramp: 'fade_s' }] });
  });

  it('a two-channel light with a register switch: channels in order, the switch written 1/0', () => {
    const d = described(
      withProfile(`    kind: lighting
    points:
      - { name: out_b, table: holding, address: 3, access: rw, role: switch, channel: 2 }
      - { name: lvl_b, table: holding, address: 2, access: rw, role: targetLightLevel, channel: 2 }
      - { name: out_a, table: holding, address: 1, access: rw, role: switch }
      - { name: lvl_a, table: holding, address: 0, access: rw, role: targetLightLevel, channel: 1 }
`),
    );
    expect(d.channels).toEqual([
      { n: 1, setpoint: 'lvl_a', on: 'out_a', onBool: false },
      { n: 2, setpoint: 'lvl_b', on: 'out_b', onBool: false },
    ]);
  });

  it('every bad role is reported at once, each at its line and column', () => {
    const text = withProfile(`    kind: lighting
    points:
      - { name: lamp_level, table: holding, address: 100, access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 0, type: bool, role: switch }
      - { name: relay2, table: coil, address: 1, type: bool, access: rw, role: swich }
      - { name: level2, table: holding, address: 102, access: rw, role: targetLightLevel }
      - { name: ok_bit, table: holding, address: 7, bit: 3, type: bool, access: rw, role: targetLightLevel, channel: 2 }
      - { name: volts, table: input, address: 2, role: supplyVoltage, channel: 2 }
      - { name: fault, table: input, address: 3, role: lampFailure }
      - { name: req, table: holding, address: 0, access: rw, role: programRequest }
      - { name: note, table: input, address: 9, channel: 3 }
      - { name: bad, table: holding, address: -1 }
`);
    expect(issues(text)).toEqual([
      '8:11 profiles[0].kind: channel 2 of this lighting profile lacks role "switch" (every channel needs "targetLightLevel" and "switch")',
      '11:67 profiles[0].points[1].role: role "switch" is written by the gateway: its point needs access: rw (a coil or a holding register)',
      `12:80 profiles[0].points[2].role: expected one of ${ALL_ROLES}, got "swich"; did you mean "switch"?`,
      '13:73 profiles[0].points[3].role: duplicate role "targetLightLevel" on channel 1: point "lamp_level" (points[0]) already has it',
      '14:91 profiles[0].points[4].role: role "targetLightLevel" is a number: expected a register point (int16, uint16, int32, uint32, float32, no bit), got bit 3 of a register',
      '15:80 profiles[0].points[5].channel: role "supplyVoltage" is one per device: it takes no "channel"',
      '16:56 profiles[0].points[6].role: role "lampFailure" is true or false: expected a bool point (type: bool, a coil, a discrete input or a bit), got uint16',
      '17:68 profiles[0].points[7].role: role "programRequest" belongs to a "traffic" profile; this one is kind "lighting"',
      '18:58 profiles[0].points[8].channel: "channel" goes with a per-channel role (targetLightLevel, switch, rampTime, actualLightLevel, activePower, activeEnergy, operatingHours, lampFailure); this point has no role',
      '19:47 profiles[0].points[9].address: expected an integer 0..65535, got -1',
    ]);
  });

  it('roles need a kind; a lighting profile needs a dimmable channel; a program request needs its dead-man', () => {
    expect(
      issues(
        withProfile(`    points:
      - { name: lamp_level, table: holding, address: 100, access: rw, role: targetLightLevel }
`),
      ),
    ).toEqual(['7:5 profiles[0]: profile "acme-lc200" gives its points roles but no kind: add kind: lighting | traffic | other']);
    expect(
      issues(
        withProfile(`    kind: lighting
    points:
      - { name: power, table: input, address: 4, role: activePower }
`),
      ),
    ).toEqual([
      '8:11 profiles[0].kind: a lighting profile needs a dimmable channel: give one point role "targetLightLevel" (the dim level, access rw) and one role "switch" (on/off, access rw); add channel: N to each for a multi-channel controller',
    ]);
    expect(
      issues(
        withProfile(`    kind: traffic
    points:
      - { name: plan, table: holding, address: 0, access: rw, role: programRequest }
`),
      ),
    ).toEqual(['10:69 profiles[0].points[0].role: a program request needs its dead-man: give the expiry register (seconds) role "requestExpiry"']);
  });

  it('a vendor traffic controller: its own names are the only points a program request writes', () => {
    const d = described(
      withProfile(`    kind: traffic
    points:
      - { name: state, table: input, address: 0, role: mode }
      - { name: plan_req, table: holding, address: 40, access: rw, role: programRequest }
      - { name: plan_ttl, table: holding, address: 41, unit: s, access: rw, role: requestExpiry }
`),
    );
    expect(d).toMatchObject({ kind: 'traffic', channels: [], traffic: { request: 'plan_req', expiry: 'plan_ttl', mode: 'state' } });
    // a monitored-only controller is still a traffic controller: nothing of it is written
    const watched = described(withProfile('    kind: traffic\n    points:\n      - { name: state, table: input, address: 0, role: mode }\n'));
    expect(watched.kind).toBe('traffic');
    expect(watched.traffic).toBeUndefined();
  });
});

/** A custom profile named traffic-controller (it replaces the built-in). */
const withTrafficController = (body: string): string => withNamedProfile('traffic-controller', 'tc', body);

describe("a traffic controller's names are refused under another kind, roles or not", () => {
  it('a custom traffic-controller of kind other with a role and unroled request points is refused', () => {
    const text = withTrafficController(`    kind: other
    points:
      - { name: temp, table: input, address: 2, role: temperature }
      - { name: program_request, table: holding, address: 0, access: rw }
      - { name: request_expiry, table: holding, address: 1, access: rw }
`);
    expect(issues(text)).toEqual([
      '8:11 profiles[0].kind: profile "traffic-controller" replaces the built-in traffic controller, but says kind "other": declare kind: traffic (a traffic controller is never written, except by a program request with its dead-man)',
      '11:17 profiles[0].points[1].name: a "program_request" point is a traffic controller\'s program request register, but the profile says kind "other": declare kind: traffic and give the point role: programRequest, so that only a program request with its dead-man writes it',
      '12:17 profiles[0].points[2].name: a "request_expiry" point is a traffic controller\'s request\'s dead-man timer, but the profile says kind "other": declare kind: traffic and give the point role: requestExpiry, so that only a program request with its dead-man writes it',
    ]);
  });

  it('a light with roles and an unroled program_request point is refused', () => {
    expect(
      issues(
        withProfile(`    kind: lighting
    points:
      - { name: lamp_level, table: holding, address: 100, access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 3, type: bool, access: rw, role: switch }
      - { name: program_request, table: holding, address: 0, access: rw }
`),
      ),
    ).toEqual([
      '12:17 profiles[0].points[2].name: a "program_request" point is a traffic controller\'s program request register, but the profile says kind "lighting": declare kind: traffic and give the point role: programRequest, so that only a program request with its dead-man writes it',
    ]);
  });

  it('a custom traffic-controller profile is kind traffic: another kind, or roles without a kind, is refused', () => {
    // before roles: old light channel names do not make the built-in's name a light
    expect(
      issues(
        withTrafficController(`    kind: lighting
    points:
      - { name: ch1_dim_setpoint, table: holding, address: 11, access: rw }
      - { name: ch1_on, table: holding, address: 10, access: rw }
`),
      ),
    ).toEqual([
      '8:11 profiles[0].kind: profile "traffic-controller" replaces the built-in traffic controller, but says kind "lighting": declare kind: traffic (a traffic controller is never written, except by a program request with its dead-man)',
    ]);
    expect(
      issues(
        withTrafficController(`    points:
      - { name: temp, table: input, address: 2, role: temperature }
`),
      ),
    ).toEqual([
      '7:5 profiles[0]: profile "traffic-controller" gives its points roles but no kind: add kind: lighting | traffic | other',
      '7:11 profiles[0].name: profile "traffic-controller" replaces the built-in traffic controller, but declares no kind: declare kind: traffic (a traffic controller is never written, except by a program request with its dead-man)',
    ]);
    // without kind and roles it is read as a traffic controller, as before roles
    const legacy = withTrafficController('    points:\n      - { name: temp, table: input, address: 2 }\n');
    expect(issues(legacy)).toEqual([]);
    expect(described(legacy).kind).toBe('traffic');
  });

  it('in a traffic profile with roles, program_request and request_expiry carry their roles', () => {
    const text = withTrafficController(`    kind: traffic
    points:
      - { name: state, table: input, address: 0, role: mode }
      - { name: program_request, table: holding, address: 0, access: rw }
      - { name: request_expiry, table: holding, address: 1, access: rw, role: activeProgram }
`);
    expect(issues(text)).toEqual([
      '11:17 profiles[0].points[1].name: the "program_request" point of a traffic controller is its program request register: give it role: programRequest, so that only a program request with its dead-man writes it',
      '12:79 profiles[0].points[2].role: the "request_expiry" point of a traffic controller is its request\'s dead-man timer: give it role: requestExpiry (not "activeProgram"), so that only a program request with its dead-man writes it',
    ]);
    // as declared: valid, and the request points are the ones a program request writes
    const fixed = text.replace('access: rw }\n      - { name: request_expiry', 'access: rw, role: programRequest }\n      - { name: request_expiry').replace('role: activeProgram', 'role: requestExpiry');
    expect(issues(fixed)).toEqual([]);
    expect(described(fixed)).toMatchObject({ kind: 'traffic', traffic: { request: 'program_request', expiry: 'request_expiry', mode: 'state' } });
  });

  it('a traffic role in a profile of another kind is already refused', () => {
    expect(
      issues(
        withProfile(`    kind: other
    points:
      - { name: plan, table: holding, address: 0, access: rw, role: programRequest }
      - { name: ttl, table: holding, address: 1, access: rw, role: requestExpiry }
`),
      ),
    ).toEqual([
      '10:69 profiles[0].points[0].role: role "programRequest" belongs to a "traffic" profile; this one is kind "other"',
      '11:68 profiles[0].points[1].role: role "requestExpiry" belongs to a "traffic" profile; this one is kind "other"',
    ]);
  });

  it('a profile that escaped the check is read as a traffic controller that nothing writes', () => {
    const unchecked = { name: 'acme', kind: 'lighting' as const, transport: 'modbus' as const, alarms: [], points: [{ name: 'program_request', table: 'holding' as const, address: 0, type: 'uint16' as const, wordOrder: 'big' as const, scale: 1, offset: 0, access: 'rw' as const }] };
    expect(describeProfile(unchecked)).toEqual({ kind: 'traffic', transport: 'modbus', channels: [], roles: [] });
  });
});

describe('profiles written before roles', () => {
  it('old channel names still make a light, with a hint naming the roles to declare', () => {
    const text = withProfile(`    points:
      - { name: ch1_dim_setpoint, table: holding, address: 11, access: rw }
      - { name: ch1_on, table: coil, address: 0, type: bool, access: rw }
      - { name: ch2_dim_setpoint, table: holding, address: 21, access: rw }
      - { name: ch2_on, table: holding, address: 20, access: rw }
`);
    expect(issues(text)).toEqual([]);
    const d = described(text);
    expect(d.kind).toBe('lighting');
    expect(d.channels).toEqual([
      { n: 1, setpoint: 'ch1_dim_setpoint', on: 'ch1_on', onBool: true },
      { n: 2, setpoint: 'ch2_dim_setpoint', on: 'ch2_on', onBool: false },
    ]);
    expect(d.legacyHint).toBe(
      'profile "acme-lc200" has no point roles: it is read as a lighting device from its point names, which is deprecated; declare kind: lighting, and on its points ch1_dim_setpoint { role: targetLightLevel }, ch1_on { role: switch }, ch2_dim_setpoint { role: targetLightLevel, channel: 2 }, ch2_on { role: switch, channel: 2 }',
    );
  });

  it('streetbox doctor warns about them with the roles to declare; nothing for declared profiles', () => {
    const legacy = parseConfig(withProfile('    points:\n      - { name: ch1_dim_setpoint, table: holding, address: 11, access: rw }\n      - { name: ch1_on, table: holding, address: 10, access: rw }\n'), { file: 'devices.yaml' });
    expect(profilesCheck(legacy.config)).toMatchObject({ name: 'profiles', status: 'warn', detail: expect.stringContaining('declare kind: lighting, and on its points ch1_dim_setpoint { role: targetLightLevel }') });
    const declared = parseConfig(withProfile('    kind: other\n    points:\n      - { name: power, table: input, address: 4, role: activePower }\n'), { file: 'devices.yaml' });
    expect(profilesCheck(declared.config)).toBeUndefined();
  });

  it('a program_request point still makes a traffic controller; a kind it contradicts is refused', () => {
    const text = withProfile(`    points:
      - { name: program_request, table: holding, address: 0, access: rw }
      - { name: request_expiry, table: holding, address: 1, access: rw }
`);
    expect(described(text)).toMatchObject({ kind: 'traffic', traffic: { request: 'program_request', expiry: 'request_expiry' } });
    expect(described(text).legacyHint).toMatch(/declare kind: traffic, and on its points program_request \{ role: programRequest \}/);
    expect(issues(text.replace('    points:', '    kind: lighting\n    points:'))).toEqual([
      '10:17 profiles[0].points[0].name: a "program_request" point is a traffic controller\'s program request register, but the profile says kind "lighting": declare kind: traffic and give the point role: programRequest, so that only a program request with its dead-man writes it',
      '11:17 profiles[0].points[1].name: a "request_expiry" point is a traffic controller\'s request\'s dead-man timer, but the profile says kind "lighting": declare kind: traffic and give the point role: requestExpiry, so that only a program request with its dead-man writes it',
    ]);
  });

  it('a request_expiry point alone also makes a traffic controller (never a writable light or other)', () => {
    const text = withProfile(`    points:
      - { name: request_expiry, table: holding, address: 1, access: rw }
      - { name: ch1_dim_setpoint, table: holding, address: 11, access: rw }
      - { name: ch1_on, table: holding, address: 10, access: rw }
`);
    expect(issues(text)).toEqual([]);
    expect(described(text)).toMatchObject({ kind: 'traffic', channels: [] });
    expect(described(text).traffic).toBeUndefined();
    expect(issues(text.replace('    points:', '    kind: other\n    points:'))).toEqual([expect.stringMatching(/^10:17 profiles\[0\]\.points\[0\]\.name: a "request_expiry" point is a traffic controller's/)]);
  });

  it('the README\'s old example (no kind, no roles, no old names) stays valid and is read only; kind: lighting on it is refused', () => {
    const old = withProfile(`    points:
      - { name: dim, table: holding, address: 100, type: uint16, unit: '%', access: rw }
      - { name: power, table: input, address: 4, type: float32, wordOrder: little, unit: W }
`);
    expect(issues(old)).toEqual([]);
    expect(described(old)).toEqual({ kind: 'other', transport: 'modbus', channels: [], roles: [] });
    expect(issues(old.replace('    points:', '    kind: lighting\n    points:'))).toEqual([
      '8:11 profiles[0].kind: a lighting profile needs a dimmable channel: give one point role "targetLightLevel" (the dim level, access rw) and one role "switch" (on/off, access rw); add channel: N to each for a multi-channel controller',
    ]);
  });
});

describe('the built-in profiles declare their roles', () => {
  const builtin = loadProfiles();

  it('streetlight-controller: two channels through chN_dim_setpoint and chN_on, no hint', () => {
    const d = describeProfile(builtin.require('streetlight-controller'));
    expect(d.kind).toBe('lighting');
    expect(d.legacyHint).toBeUndefined();
    expect(d.channels).toEqual([
      { n: 1, setpoint: 'ch1_dim_setpoint', on: 'ch1_on', onBool: true },
      { n: 2, setpoint: 'ch2_dim_setpoint', on: 'ch2_on', onBool: true },
    ]);
    expect(d.roles).toContainEqual({ role: 'lampFailure', channel: 2, point: 'ch2_lamp_failure' });
    expect(d.roles).toContainEqual({ role: 'supplyVoltage', point: 'mains_voltage' });
  });

  it('traffic-controller: program_request, request_expiry and mode', () => {
    const d = describeProfile(builtin.require('traffic-controller'));
    expect(d).toMatchObject({ kind: 'traffic', channels: [], traffic: { request: 'program_request', expiry: 'request_expiry', mode: 'mode' } });
    expect(d.legacyHint).toBeUndefined();
  });

  it('a LoRaWAN node of lora-streetlight is a light; an unknown profile is nothing to write', () => {
    expect(describeDevice({ profile: 'lora-streetlight', devEui: '0011223344556677' }, builtin)).toMatchObject({ kind: 'lighting', transport: 'lorawan', channels: [] });
    expect(describeDevice({ profile: 'nope', devEui: undefined }, builtin)).toEqual({ kind: 'other', transport: 'modbus', channels: [], roles: [] });
  });
});

describe('the broker\'s default ACL kind comes from the same answer', () => {
  it('a vendor light is lighting, a vendor traffic controller traffic, anything else has no kind', () => {
    const { config } = parseConfig(
      `gateway: { id: gw }
buses:
  - { id: b, type: tcp, host: 10.0.0.2 }
devices:
  - { id: light, bus: b, unit: 1, profile: acme-lc200 }
  - { id: junction, bus: b, unit: 2, profile: acme-tc }
  - { id: meter, bus: b, unit: 3, profile: acme-meter }
  - { id: lamp, bus: b, unit: 4, profile: streetlight-controller }
profiles:
  - name: acme-lc200
    kind: lighting
    points:
      - { name: lamp_level, table: holding, address: 100, access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 3, type: bool, access: rw, role: switch }
  - name: acme-tc
    kind: traffic
    points:
      - { name: state, table: input, address: 0, role: mode }
  - name: acme-meter
    points:
      - { name: kwh, table: input, address: 0, type: uint32, role: activeEnergy }
    kind: other
`,
      { file: 'devices.yaml' },
    );
    const kind = deviceKindFromConfig(config);
    expect(['light', 'junction', 'meter', 'lamp'].map(kind)).toEqual(['lighting', 'traffic', undefined, 'lighting']);
  });
});
