// Traffic-controller program requests against the simulated controller (edge/sim/modbus/traffic.ts):
// program_request then request_expiry (the dead-man), renewal, lapse, release, dry runs, refusals.
import { afterEach, describe, expect, it } from 'vitest';
import { REQUEST_STATUS, TRAFFIC_MODES } from '../../edge/sim/modbus/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { CENTRAL, TECH, settled, startRig, waitFor, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const tc1 = { kind: 'device', id: 'tc-1' } as const;

/** `clock`: the control plane on it, and the simulated controllers' time moved only by the test */
async function ready(clock?: FakeClock): Promise<Rig> {
  const r = await startRig({ poll: 200, ...(clock ? { clock, simTime: 'manual' as const } : {}) });
  await settled(r);
  await waitFor('the first traffic poll', () => r.t.store.latest('tc-1').has('mode'), 3000);
  return r;
}

describe('traffic-controller program requests', () => {
  it('writes program_request then request_expiry; the controller runs it; the source is recorded', async () => {
    rig = await ready();
    const mark = rig.writes.length;
    const row = rig.control.submit(tc1, { action: 'program', program: 2, expiresInS: 30 }, CENTRAL).row;
    expect(row.status).toBe('queued');
    const done = await rig.final(row.id);
    expect(done.status).toBe('verified');
    expect(done.source).toEqual(CENTRAL);
    expect(done.result).toMatchObject({ device: 'tc-1', program: 2, expiresInS: 30 });
    const w = rig.writes.slice(mark).filter((x) => x.unit === 10);
    expect(w.map((x) => [x.address, x.values[0]])).toEqual([
      [0, 2],
      [1, 30],
    ]);
    const tc = rig.tc(10);
    expect(tc.points.get('active_program')).toBe(2);
    expect(tc.points.get('request_status')).toBe(REQUEST_STATUS.active);
    expect(rig.t.events.filter((e) => 'commandId' in e.detail && e.detail.commandId === row.id).map((e) => e.kind)).toEqual(['command.queued', 'command.sent', 'command.verified']);
  });

  it('lapses when not renewed: the controller resumes its own plan and the row turns expired', async () => {
    rig = await ready();
    const tc = rig.tc(10);
    const own = tc.points.get('active_program');
    const pick = own === 4 ? 3 : 4;
    const row = await rig.final(rig.control.submit(tc1, { action: 'program', program: pick, expiresInS: 2 }, TECH).row.id);
    expect(row.status).toBe('verified');
    expect(tc.points.get('active_program')).toBe(pick);
    await waitFor('the dead-man to lapse', () => rig!.t.store.getCommand(row.id)?.status === 'expired', 6000);
    await waitFor('the controller to drop the request', () => tc.points.get('request_status') === REQUEST_STATUS.expired, 3000);
    expect(tc.points.get('active_program')).toBe(own);
    expect(rig.t.store.getCommand(row.id)!.result).toMatchObject({ request: 'lapsed' });
    expect(rig.t.events.some((e) => e.kind === 'command.expired' && e.detail.commandId === row.id)).toBe(true);
  });

  it('a new request renews the dead-man before it lapses', async () => {
    const clock = new FakeClock();
    rig = await ready(clock);
    const tc = rig.tc(10);
    /** the gateway's clock and the controller's time move together */
    const pass = async (ms: number): Promise<void> => {
      rig!.sims.tick(ms);
      await clock.advance(ms);
    };
    const first = await rig.final(rig.control.submit(tc1, { action: 'program', program: 3, expiresInS: 2 }, TECH).row.id);
    await pass(1200);
    const second = await rig.final(rig.control.submit(tc1, { action: 'program', program: 3, expiresInS: 3 }, TECH).row.id);
    expect(second.status).toBe('verified');
    expect(second.result).toMatchObject({ renews: first.id });
    // past the first expiry: still running
    await pass(1500);
    expect(tc.points.get('request_status')).toBe(REQUEST_STATUS.active);
    expect(tc.points.get('active_program')).toBe(3);
    expect(rig.t.store.getCommand(first.id)!.status).toBe('verified');
    expect(rig.t.store.getCommand(first.id)!.result).toMatchObject({ request: 'renewed', by: second.id });
    await pass(1500);
    await waitFor('the renewed request to lapse', () => rig!.t.store.getCommand(second.id)?.status === 'expired', 5000);
    expect(tc.points.get('request_status')).toBe(REQUEST_STATUS.expired);
  });

  it('release (or program 0) hands control back to the controller at once', async () => {
    rig = await ready();
    const tc = rig.tc(10);
    const req = await rig.final(rig.control.submit(tc1, { action: 'program', program: 2, expiresInS: 60 }, TECH).row.id);
    const rel = await rig.final(rig.control.submit(tc1, { action: 'release' }, TECH).row.id);
    expect(rel.status).toBe('verified');
    expect(rel.result).toMatchObject({ program: 0, released: req.id });
    expect(tc.points.get('request_status')).toBe(REQUEST_STATUS.none);
    expect(tc.points.get('program_request')).toBe(0);
    expect(rig.t.store.getCommand(req.id)!.result).toMatchObject({ request: 'released' });
  });

  it('after a restart: a request that lapsed meanwhile is recorded expired, a running one can be renewed', async () => {
    const clock = new FakeClock();
    rig = await ready(clock);
    const short = await rig.final(rig.control.submit(tc1, { action: 'program', program: 2, expiresInS: 1 }, TECH).row.id);
    const tc2 = { kind: 'device', id: 'tc-1' } as const;
    await rig.control.stop();
    // the gateway is down past the request's expiry; the controller drops it meanwhile
    rig.sims.tick(1300);
    await clock.advance(1300);
    expect(rig.tc(10).points.get('request_status')).toBe(REQUEST_STATUS.expired);
    await rig.startControl(clock);
    expect(rig.t.store.getCommand(short.id)!.status).toBe('expired');
    const long = await rig.final(rig.control.submit(tc2, { action: 'program', program: 3, expiresInS: 30 }, TECH).row.id);
    await rig.control.stop();
    await rig.startControl(clock);
    const renew = await rig.final(rig.control.submit(tc2, { action: 'program', program: 3, expiresInS: 30 }, TECH).row.id);
    expect(renew.result).toMatchObject({ renews: long.id });
  });

  it('a program the controller does not know fails with the controller\'s reason', async () => {
    rig = await ready();
    const row = await rig.final(rig.control.submit(tc1, { action: 'program', program: 9, expiresInS: 30 }, TECH).row.id);
    expect(row.status).toBe('failed');
    expect((row.result as { error: string }).error).toMatch(/does not know program 9/);
  });

  it('dry run: says whether it would be accepted and sends nothing', async () => {
    rig = await ready();
    const mark = rig.writes.length;
    const ok = rig.control.submit(tc1, { action: 'program', program: 2, dryRun: true }, CENTRAL).row;
    expect(ok.status).toBe('verified');
    expect(ok.result).toMatchObject({ dryRun: true, accepted: true, mode: { value: TRAFFIC_MODES.actuated }, online: true });
    rig.tc(10).setMode(TRAFFIC_MODES.flashing);
    await waitFor('the mode poll', () => rig!.t.store.latest('tc-1').get('mode')?.value === TRAFFIC_MODES.flashing, 3000);
    const no = rig.control.submit(tc1, { action: 'program', program: 2, dryRun: true }, CENTRAL).row;
    expect(no.status).toBe('rejected');
    expect(no.result).toMatchObject({ code: 'E_INTERLOCK' });
    expect((no.result as { error: string }).error).toMatch(/mode 1 \(flashing amber\)/);
    expect(rig.writes.length).toBe(mark);
  });

  it('a controller that switched to manual since its last poll is caught by the live mode read: rejected, nothing written', async () => {
    rig = await startRig({ poll: 60_000 });
    await settled(rig);
    await waitFor('the first traffic poll', () => rig!.t.store.latest('tc-1').has('mode'), 3000);
    rig.tc(10).setMode(TRAFFIC_MODES.manual);
    const mark = rig.writes.length;
    const row = rig.control.submit(tc1, { action: 'program', program: 2, expiresInS: 30 }, TECH).row;
    expect(row.status).toBe('queued');
    const done = await rig.final(row.id);
    expect(done.status).toBe('rejected');
    expect((done.result as { error: string }).error).toMatch(/mode 4 \(manual/);
    expect(rig.writes.length).toBe(mark);
  });
});

describe('a custom traffic-controller profile with roles (it replaces the built-in)', () => {
  it("a technician's raw write to its request points is refused E_INTERLOCK; only a program request writes them", async () => {
    rig = await startRig({
      poll: 200,
      config: {
        profiles: [
          {
            name: 'traffic-controller',
            kind: 'traffic',
            points: [
              { name: 'mode', table: 'input', address: 0, type: 'uint16', role: 'mode' },
              { name: 'active_program', table: 'input', address: 1, type: 'uint16', role: 'activeProgram' },
              { name: 'temp', table: 'input', address: 2, type: 'uint16', role: 'temperature' },
              { name: 'program_request', table: 'holding', address: 0, type: 'uint16', access: 'rw', role: 'programRequest' },
              { name: 'request_expiry', table: 'holding', address: 1, type: 'uint16', access: 'rw', role: 'requestExpiry' },
            ],
          },
        ],
      },
    });
    await settled(rig);
    await waitFor('the first traffic poll', () => rig!.t.store.latest('tc-1').has('mode'), 3000);
    const mark = rig.writes.length;
    for (const point of ['program_request', 'request_expiry']) {
      const row = rig.control.submit(tc1, { action: 'write', point, value: 3 }, TECH).row;
      expect(row.status).toBe('rejected');
      expect(row.result).toMatchObject({ code: 'E_INTERLOCK', field: 'point', error: expect.stringMatching(new RegExp(`"${point}" of traffic controller tc-1 is written only by a program request`)) });
    }
    expect(rig.writes.length).toBe(mark);
    // the roled points are the ones a program request writes, with its dead-man
    const done = await rig.final(rig.control.submit(tc1, { action: 'program', program: 2, expiresInS: 30 }, CENTRAL).row.id);
    expect(done.status).toBe('verified');
    expect(rig.writes.slice(mark).filter((x) => x.unit === 10).map((x) => [x.address, x.values[0]])).toEqual([
      [0, 2],
      [1, 30],
    ]);
  });
});
