// Bad input (issue 5 "Bad input"): each case is answered at once with a `rejected` row naming
// the reason, recorded as a command.rejected event, and nothing reaches any simulated unit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandTargetRef, Principal } from '../../edge/control/index.js';
import { ControlError } from '../../edge/control/index.js';
import { CENTRAL, MAINT, TECH, VIEWER, settled, startRig, waitFor, type Rig } from './rig.js';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig({ poll: 200 });
  await settled(rig);
  await waitFor('the traffic controllers polled once, so their mode is known', () => rig.t.store.latest('tc-1').has('mode') && rig.t.store.latest('tc-2').has('mode'), 3000);
});
afterAll(async () => {
  await rig.close();
});

const dev = (id: string): CommandTargetRef => ({ kind: 'device', id });
/** ch2_dim_setpoint in edge/profiles/streetlight-controller.yaml */
const PROBE_ADDRESS = 21;
const grp = (id: string): CommandTargetRef => ({ kind: 'group', id });

interface Case {
  name: string;
  target: CommandTargetRef;
  body: unknown;
  who: Principal;
  code: string;
  reason: RegExp;
}

const cases: Case[] = [
  { name: 'level 150', target: dev('lamp-1'), body: { action: 'dim', level: 150 }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^level: expected an integer 0\.\.100, got 150$/ },
  { name: 'a negative duration', target: dev('lamp-1'), body: { action: 'override', level: 20, durationS: -60, reason: 'x' }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^durationS: .*got -60/ },
  { name: 'a negative ramp', target: dev('lamp-1'), body: { action: 'dim', level: 20, rampS: -1 }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^rampS:/ },
  { name: 'malformed JSON', target: dev('lamp-1'), body: '{"action": "dim", "level": ', who: TECH, code: 'E_INVALID_COMMAND', reason: /^body: malformed JSON/ },
  { name: 'a body that is not an object', target: dev('lamp-1'), body: [1, 2], who: TECH, code: 'E_INVALID_COMMAND', reason: /^body: expected a JSON object/ },
  { name: 'an unknown action', target: dev('lamp-1'), body: { action: 'explode' }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^action: expected one of .*got "explode"/ },
  { name: 'an unknown field', target: dev('lamp-1'), body: { action: 'dim', level: 10, levle: 5 }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^levle: unknown field/ },
  { name: 'an unknown device', target: dev('lamp-99'), body: { action: 'dim', level: 10 }, who: TECH, code: 'E_NOT_FOUND', reason: /^target: unknown device "lamp-99"/ },
  { name: 'an unknown group', target: grp('nowhere'), body: { action: 'dim', level: 10 }, who: TECH, code: 'E_NOT_FOUND', reason: /^target: unknown group "nowhere"/ },
  { name: 'a viewer dimming', target: dev('lamp-1'), body: { action: 'dim', level: 10 }, who: VIEWER, code: 'E_FORBIDDEN', reason: /role viewer may not command lights/ },
  { name: 'a priority above the role ceiling', target: dev('lamp-1'), body: { action: 'override', level: 10, durationS: 60, priority: 80 }, who: MAINT, code: 'E_FORBIDDEN', reason: /priority 80 is above the ceiling 59/ },
  { name: 'maintenance requesting a traffic program', target: dev('tc-1'), body: { action: 'program', program: 2, expiresInS: 60 }, who: MAINT, code: 'E_FORBIDDEN', reason: /needs command.traffic/ },
  { name: 'a program to a controller without allowCommands', target: dev('tc-2'), body: { action: 'program', program: 2, expiresInS: 60 }, who: TECH, code: 'E_FORBIDDEN', reason: /allowCommands: false/ },
  { name: 'a dim to a traffic controller', target: dev('tc-1'), body: { action: 'dim', level: 10 }, who: TECH, code: 'E_INTERLOCK', reason: /takes only "program" requests/ },
  { name: 'a write to a traffic controller signal point', target: dev('tc-1'), body: { action: 'write', point: 'signal_group_1', value: 1 }, who: TECH, code: 'E_INTERLOCK', reason: /"signal_group_1" of traffic controller tc-1 is never written/ },
  { name: 'a write to a traffic controller status point', target: dev('tc-1'), body: { action: 'write', point: 'active_program', value: 3 }, who: TECH, code: 'E_INTERLOCK', reason: /never written/ },
  { name: 'a raw write of the program register', target: dev('tc-1'), body: { action: 'write', point: 'program_request', value: 3 }, who: TECH, code: 'E_INTERLOCK', reason: /only by a program request/ },
  { name: 'a program to a group', target: grp('main'), body: { action: 'program', program: 2 }, who: TECH, code: 'E_INVALID_COMMAND', reason: /not to a group/ },
  { name: 'a program to a light', target: dev('lamp-1'), body: { action: 'program', program: 2 }, who: CENTRAL, code: 'E_INVALID_COMMAND', reason: /lamp-1 is not one/ },
  { name: 'an unknown program name', target: dev('tc-1'), body: { action: 'program', program: 'rush-hour' }, who: TECH, code: 'E_INVALID_COMMAND', reason: /^program: expected a program number/ },
  { name: 'a raw write by maintenance', target: dev('lamp-1'), body: { action: 'write', point: 'ch1_dim_setpoint', value: 3 }, who: MAINT, code: 'E_FORBIDDEN', reason: /technicians only/ },
  { name: 'a raw write of a read-only point', target: dev('lamp-1'), body: { action: 'write', point: 'ch1_power', value: 3 }, who: TECH, code: 'E_FORBIDDEN', reason: /read-only/ },
];

describe('rejected commands send nothing', () => {
  it.each(cases)('$name', (c) => {
    const writes = rig.writes.length;
    const row = rig.control.submit(c.target, c.body, c.who).row;
    expect(row.status).toBe('rejected');
    const result = row.result as { code: string; error: string };
    expect(result.code).toBe(c.code);
    expect(result.error).toMatch(c.reason);
    // recorded: the row in the store, the event with the source
    expect(rig.t.store.getCommand(row.id)?.status).toBe('rejected');
    const ev = rig.t.events.find((e) => e.kind === 'command.rejected' && e.detail.commandId === row.id);
    expect(ev?.detail).toMatchObject({ source: c.who, code: c.code });
    expect(row.source).toEqual(c.who);
    expect(rig.writes.length).toBe(writes);
  });

  it('nothing was written to any unit by all of the above, even later', async () => {
    const writes = rig.writes.length;
    for (const c of cases) rig.control.submit(c.target, c.body, c.who);
    // then a command that is not refused, on the same bus: by its outcome, anything queued before it has reached the wire
    const probe = rig.control.submit(dev('lamp-2'), { action: 'write', point: 'ch2_dim_setpoint', value: 17 }, TECH);
    expect((await probe.outcome).status).toBe('verified');
    expect(rig.writes.slice(writes)).toEqual([{ unit: 2, table: 'holding', address: PROBE_ADDRESS, values: [17] }]);
  });

  it('guardWrite refuses every traffic-controller point but the request registers, and needs allowCommands', () => {
    expect(() => rig.control.guardWrite('tc-1', 'mode')).toThrow(ControlError);
    try {
      rig.control.guardWrite('tc-1', 'signal_group_3');
    } catch (err) {
      expect((err as ControlError).code).toBe('E_INTERLOCK');
    }
    expect(() => rig.control.guardWrite('tc-1', 'program_request')).not.toThrow();
    expect(() => rig.control.guardWrite('tc-2', 'program_request')).toThrow(/allowCommands/);
    expect(() => rig.control.guardWrite('lamp-1', 'ch1_dim_setpoint')).not.toThrow();
    expect(() => rig.control.guardWrite('nope', 'x')).toThrow(/unknown device/);
    expect(rig.control.deviceKind('tc-1')).toBe('traffic');
    expect(rig.control.deviceKind('lamp-1')).toBe('lighting');
  });

  it('a technician raw write of a light point is verified by read-back', async () => {
    const row = rig.control.submit(dev('lamp-3'), { action: 'write', point: 'ch2_dim_setpoint', value: 33 }, TECH).row;
    const done = await rig.final(row.id);
    expect(done.status).toBe('verified');
    expect(rig.level(3, 2).setpoint).toBe(33);
  });

  it('the transaction id of a rejected command is echoed', () => {
    const row = rig.control.submit(dev('lamp-1'), { action: 'dim', level: 101, transaction: 'abc-1' }, TECH).row;
    expect(row.status).toBe('rejected');
    expect(row.result).toMatchObject({ transaction: 'abc-1', code: 'E_INVALID_COMMAND' });
    expect(rig.control.submit(dev('lamp-1'), '{"action":"dim","level":-1,"transaction":42}', TECH).row.result).toMatchObject({ transaction: 42 });
    const bad = rig.control.submit(dev('nope'), { action: 'dim', level: 10, transaction: 'abc-2' }, TECH).row;
    expect(bad.result).toMatchObject({ transaction: 'abc-2', code: 'E_NOT_FOUND' });
  });
});
