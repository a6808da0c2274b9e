/**
 * FUOTA sessions (edge/firmware/methods/fuota: coordinator, session, multicast, journal) driven
 * through a FuotaRadio port over simulated nodes in this process (fuotaAir.ts). The port stands in
 * for the network server: the real driver (UDP forwarder, TX_ACKs, class A and C roads) is
 * covered by the end-to-end test the lead adds. Everything else is real: H4's simulated nodes
 * with their own TS003–TS006 stacks, the store (journal tables in SQLite), the duty-cycle ledger.
 *
 * The radio runs on a clock the test steps (FakeClock.runUntil): each wait jumps to the next timer,
 * so a 4-minute multicast takes what its CPU work takes, in the same order every run (a clock
 * scaled from the wall let whole radio minutes pass in a stall of a loaded machine: flaky); the
 * tests wait for conditions, never for a time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../edge/clock.js';
import { encodeFirmwareUp, FPORT_FIRMWARE } from '../../edge/drivers/lorawan/app/index.js';
import { unixToGpsMs } from '../../edge/drivers/lorawan/mac/types.js';
import { FuotaCoordinator, type FuotaHandle } from '../../edge/firmware/methods/fuota/coordinator.js';
import { FuotaJournal } from '../../edge/firmware/methods/fuota/journal.js';
import type { FuotaMember, FuotaSettings, NodeOutcome, RebootVerdict } from '../../edge/firmware/methods/fuota/types.js';
import { silentLogger } from '../../edge/log.js';
import type { SimNodeOptions } from '../../edge/sim/lorawan/node.js';
import { makeSimImage } from '../../edge/sim/modbus/firmware.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';
import { airNode, fuotaEvents, simAir, type FuotaDetail, type SimAir } from './fuotaAir.js';

/** simulate.radioTimeScale of the backstop test: the gateway's clock reads the radio's deadlines at 1/K */
const K = 100;
const OLD = 0x0100;
const NEW = 0x0203;
const DEPLOYMENT = 'fuota-1';
/** radio-clock settings of the tests: answers within 2 min (each request sent up to 4 times), a 10 s reboot countdown */
const SETTINGS: Partial<FuotaSettings> = { answerTimeoutMs: 120_000, rebootDelayMs: 10_000, verifyTimeoutMs: 120_000, repairDr: 5 };

interface MemberLog {
  stages: string[];
  versionBefore: number | null;
  progress: number[];
  waiting: (string | null)[];
}

interface Rig {
  t: TestContext;
  air: SimAir;
  journal: FuotaJournal;
  coordinator: FuotaCoordinator;
  members: Map<string, MemberLog>;
  /**
   * joins `devices` (default all) to the deployment's wave 0 session; `o.expected`: the wave's jobs
   * (default `devices`), `o.progress`: a member's progress callback's own work (it may throw)
   */
  join(
    image: Buffer,
    devices?: string[],
    deployment?: string,
    gate?: (device: string) => RebootVerdict,
    o?: { expected?: string[]; progress?: (device: string) => void },
  ): Map<string, { handle: FuotaHandle; outcome: Promise<NodeOutcome> }>;
  /** a coordinator anew on the same store and air (a restarted gateway) */
  restart(): void;
  events(kind: 'fuota.session' | 'fuota.node', step?: string, device?: string): { device: string | null; detail: FuotaDetail }[];
  /** runs the radio's clock (it moves only then) until `cond` holds (FakeClock.runUntil; `stepMs`: time passes in such steps with no timer due), returns what it returned */
  until<T>(what: string, cond: () => T | undefined | null | false, stepMs?: number): Promise<T>;
  /** runs the radio's clock until `p` settles */
  settle<T>(p: Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

function startRig(nodes: SimNodeOptions[], settings: Partial<FuotaSettings> = {}): Rig {
  const t = makeContext({});
  const clock = new FakeClock();
  const air = simAir({ clock, rx2Dr: 5, nodes: nodes.map((opts, i) => airNode(i + 1, { rx2Dr: 5, ...opts })) });
  const journal = FuotaJournal.open(t.store)!;
  const members = new Map<string, MemberLog>();
  const expected = new Map<string, string[]>();
  const coordinatorOf = () =>
    new FuotaCoordinator({
      config: () => t.config,
      store: t.store,
      log: silentLogger(),
      clock: systemClock,
      radio: air.radio,
      journal,
      expected: (deployment) => expected.get(deployment) ?? [],
      settings: { ...SETTINGS, ...settings },
    });
  let coordinator = coordinatorOf();
  coordinator.start();
  const rig: Rig = {
    t,
    air,
    journal,
    get coordinator() {
      return coordinator;
    },
    members,
    join(image, devices = air.nodes.map((n) => n.cfg.id), deployment = DEPLOYMENT, gate = () => ({ ok: true }), o = {}) {
      expected.set(deployment, o.expected ?? devices);
      // the version the image brings: its SBFW header's (edge/sim/modbus/firmware.ts makeSimImage)
      const versionCode = image.readUInt16BE(4);
      const out = new Map<string, { handle: FuotaHandle; outcome: Promise<NodeOutcome> }>();
      for (const device of devices) {
        const log: MemberLog = members.get(device) ?? { stages: [], versionBefore: null, progress: [], waiting: [] };
        members.set(device, log);
        const member: FuotaMember = {
          device,
          versionCode,
          versionBefore: (v) => (log.versionBefore = v),
          progress: (fragments) => {
            o.progress?.(device);
            log.progress.push(fragments);
          },
          advanced: (stage) => log.stages.push(stage),
          mayReboot: () => gate(device),
          waiting: (w) => log.waiting.push(w),
        };
        const handle = coordinator.join({ deployment, wave: 0, image, member }, versionCode);
        out.set(device, { handle, outcome: handle.outcome });
      }
      return out;
    },
    restart() {
      coordinator.stop();
      coordinator = coordinatorOf();
      coordinator.start();
    },
    events: (kind, step, device) => fuotaEvents(t.events, kind, step, device),
    until: (what, cond, stepMs) => clock.runUntil(what, cond, stepMs === undefined ? {} : { stepMs }),
    settle: (p) => clock.settle('the outcome', p),
    async close() {
      coordinator.stop();
      air.stop();
      await t.close();
    },
  };
  rigs.push(rig);
  return rig;
}

/** every joined node's outcome, the radio's clock run until all are in */
const outcomes = (r: Rig, joined: Map<string, { outcome: Promise<NodeOutcome> }>) => r.settle(Promise.all([...joined].map(async ([d, j]) => [d, await j.outcome] as const)).then((l) => new Map(l)));

describe('a FUOTA session over simulated nodes', () => {
  it('three nodes with 10 % downlink loss take a 10 KiB image: each confirmed by the version it reports after its reboot', async () => {
    const r = startRig([{ downlinkLoss: 0.1 }, { downlinkLoss: 0.1 }, { downlinkLoss: 0.1 }]);
    const image = makeSimImage(NEW, 10 * 1024);
    const done = await outcomes(r, r.join(image));
    for (const [device, o] of done) {
      expect(o, device).toEqual({ stage: 'confirmed', versionAfter: NEW, reason: `reports version ${NEW} after its reboot` });
      expect(r.air.node(device).firmwareVersion).toBe(NEW);
      expect(r.members.get(device)).toMatchObject({ versionBefore: OLD, stages: ['activating', 'verifying'] });
    }
    // the plan in the session's event: 47 fragments of 219 bytes and their parity, paced under 10 %
    const [planned] = r.events('fuota.session', 'planned');
    expect(planned?.detail).toMatchObject({ fragSize: 219, fragments: 47, parity: 16, timeOut: 9, nodes: 3, fragmentation: 1 });
    // every multicast FCnt once, rising
    expect(new Set(r.air.multicastFCnts).size).toBe(r.air.multicastFCnts.length);
    expect([...r.air.multicastFCnts].sort((a, b) => a - b)).toEqual(r.air.multicastFCnts);
    // the ledger never held more than the sub-band's hour budget (10 % of 1 h)
    expect(r.air.peakUsedMs).toBeLessThanOrEqual(360_000);
    const metrics = r.coordinator.metrics();
    expect(metrics).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_nodes_total', labels: { outcome: 'confirmed' }, value: 3 }));
    expect(metrics).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_fragments_total', value: r.air.counts.multicast }));
    expect(r.events('fuota.session', 'ended')[0]?.detail).toMatchObject({ confirmed: 3, failed: 0 });
  });

  it('a node that lies about its version fails E_FW_VERIFY; a node without memory and a mute node fail with their reasons; the others are confirmed', async () => {
    const r = startRig([{}, { lies: true }, { memoryBytes: 1024 }, { mute: true }]);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 4 * 1024)));
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed', versionAfter: NEW });
    expect(done.get('lamp-2')).toEqual({ stage: 'failed', code: 'E_FW_VERIFY', versionAfter: OLD, reason: `reports version ${OLD} after its reboot, not ${NEW}: it runs its old firmware (asked for 120 s)` });
    expect(done.get('lamp-3')).toMatchObject({ stage: 'failed', code: 'E_FW_TRANSFER', reason: expect.stringMatching(/^refused FragSessionSetupReq: not enough memory for 19 fragments of 219 bytes/) });
    expect(done.get('lamp-4')).toMatchObject({ stage: 'failed', code: 'E_FW_TIMEOUT', reason: 'did not answer FragSessionStatusReq within 120 s' });
    // the refusing node never rebooted, the mute one neither; the liar did
    expect(r.air.node('lamp-2').stats.reboots).toBe(1);
    expect(r.air.node('lamp-3').stats.reboots).toBe(0);
    expect(r.air.node('lamp-4').stats.reboots).toBe(0);
    expect(r.events('fuota.node', 'failed').map((e) => [e.device, e.detail.code])).toEqual(
      expect.arrayContaining([
        ['lamp-2', 'E_FW_VERIFY'],
        ['lamp-3', 'E_FW_TRANSFER'],
        ['lamp-4', 'E_FW_TIMEOUT'],
      ]),
    );
    // each failure counted by code and by a reason of a fixed set (memory, silence, verify, …)
    const failures = r.coordinator.metrics().filter((m) => m.name === 'streetbox_fuota_nodes_total' && m.labels?.outcome === 'failed');
    expect(failures.map((m) => [m.labels, m.value])).toEqual(
      expect.arrayContaining([
        [{ outcome: 'failed', code: 'E_FW_VERIFY', reason: 'verify' }, 1],
        [{ outcome: 'failed', code: 'E_FW_TRANSFER', reason: 'memory' }, 1],
        [{ outcome: 'failed', code: 'E_FW_TIMEOUT', reason: 'silence' }, 1],
      ]),
    );
  });

  it('a node that misses more than the parity covers is repaired by unicast with fresh parity; the loss it showed sizes the next session', async () => {
    const r = startRig([{}, { downlinkLoss: 0.45 }], { minRedundancy: 0 });
    const done = await outcomes(r, r.join(makeSimImage(NEW, 6 * 1024)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const repairs = r.events('fuota.node', 'repair', 'lamp-2');
    expect(repairs.length).toBeGreaterThan(0);
    const [planned] = r.events('fuota.session', 'planned');
    const { fragments, parity } = planned!.detail;
    // repair parity is numbered after every fragment the multicast sent
    expect(repairs[0]!.detail.from).toBeGreaterThan(fragments + parity);
    expect(r.events('fuota.node', 'repair', 'lamp-1')).toEqual([]);
    expect(r.coordinator.metrics()).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_repair_rounds_total', value: repairs.length }));
    // the loss lamp-2 showed is journaled (about 45 %); lamp-1 completed the block, so it stopped
    // counting: its received / sent only bounds its loss, and nothing is recorded for it
    const losses = r.journal.losses(['lamp-1', 'lamp-2']);
    expect(losses.has('lamp-1')).toBe(false);
    expect(losses.get('lamp-2')).toBeGreaterThan(0.3);
    // a second deployment to the same nodes plans for the worst loss observed
    const again = await outcomes(r, r.join(makeSimImage(NEW + 1, 6 * 1024, 7), ['lamp-1', 'lamp-2'], 'fuota-2'));
    expect([...again.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const second = r.events('fuota.session', 'planned').find((e) => e.detail.deployment === 'fuota-2');
    expect(second?.detail).toMatchObject({ lossObserved: true, loss: losses.get('lamp-2') });
    expect(second!.detail.parity).toBeGreaterThan(parity);
  });

  it('a node already on the version is confirmed without a transfer', async () => {
    const r = startRig([{ version: NEW }]);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 2048)));
    expect(done.get('lamp-1')).toEqual({ stage: 'confirmed', versionAfter: NEW, reason: `already runs version ${NEW}: no transfer` });
    expect(r.air.counts.multicast).toBe(0);
    expect(r.air.node('lamp-1').stats.reboots).toBe(0);
  });

  it('TS004 v2: the data block MIC checked by each node, its FragDataBlockReceivedReq answered', async () => {
    const r = startRig([{ fragVersion: 2 }, { fragVersion: 2 }]);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 3000)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    expect(r.events('fuota.session', 'planned')[0]?.detail).toMatchObject({ fragmentation: 2 });
    for (const n of r.air.nodes) expect(n.stats.blocks).toEqual([{ fragIndex: 0, size: 3000, micOk: true }]);
    expect(r.events('fuota.node', 'blockReceived').map((e) => e.detail.micOk)).toEqual(expect.arrayContaining([true, true]));
  });

  it('lorawan.fuota.fragmentation auto with nodes of both versions: a session per version, all confirmed', async () => {
    const r = startRig([{ fragVersion: 1 }, { fragVersion: 2 }, { fragVersion: 2 }]);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 2500)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    const planned = r.events('fuota.session', 'planned').map((e) => e.detail);
    expect(planned).toEqual(expect.arrayContaining([expect.objectContaining({ fragmentation: 2, nodes: 2 }), expect.objectContaining({ fragmentation: 1, nodes: 1 })]));
    // the v1 node left the first session (moved, not failed) and went through its own, rebooted once
    expect(r.events('fuota.node', 'failed')).toEqual([]);
    for (const n of r.air.nodes) expect([n.firmwareVersion, n.stats.reboots]).toEqual([NEW, 1]);
    expect(r.members.get('lamp-1')!.stages).toEqual(['activating', 'verifying']);
  });

  it('TX_ACK errors are counted by error and their fragments sent again; fragments keep the off-time of the duty cycle', async () => {
    const r = startRig([{}, {}]);
    r.air.txError = (n) => (n % 5 === 2 ? 'TOO_LATE' : n % 11 === 4 ? 'COLLISION_PACKET' : null);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 4096)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const metrics = r.coordinator.metrics();
    const errors = metrics.filter((m) => m.name === 'streetbox_fuota_tx_errors_total');
    expect(errors).toEqual(expect.arrayContaining([expect.objectContaining({ labels: { error: 'TOO_LATE' } }), expect.objectContaining({ labels: { error: 'COLLISION_PACKET' } })]));
    expect(errors.reduce((s, m) => s + m.value, 0)).toBe(r.air.counts.txErrors);
    // every planned fragment went, the refused ones once more
    const planned = r.events('fuota.session', 'planned')[0]!.detail;
    expect(r.air.counts.multicast).toBe(planned.fragments + planned.parity);
    // from the start of one transmission to the next: at least its air time over the duty cycle (10 %);
    // (airtimeMs is rounded to 0.1 ms; the stepped clock reads the same instant in the session and the port: no slack)
    const gaps = r.air.multicastAt.slice(1).map((at, i) => at - r.air.multicastAt[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual((planned.airtimeMs - 0.1) * 10);
  });

  it("a reboot waits for the gates and caps: the node stays in service (no reboot) while they say no, and says why", async () => {
    const r = startRig([{}]);
    let open = false;
    const joined = r.join(makeSimImage(NEW, 2048), undefined, undefined, () => (open ? { ok: true } : { ok: false, waiting: 'night: lights update by day' }));
    await r.until('the reboot waits', () => r.members.get('lamp-1')!.waiting.includes('night: lights update by day'));
    expect(r.air.node('lamp-1').stats.reboots).toBe(0);
    expect(r.members.get('lamp-1')!.stages).toEqual([]);
    open = true;
    expect(await r.settle(joined.get('lamp-1')!.outcome)).toMatchObject({ stage: 'confirmed' });
    expect(r.members.get('lamp-1')!.waiting.at(-1)).toBeNull();
  });

  it('resumes from the journal mid-multicast: status first, a new class C window once the old one closed, the fragments not sent, never an FCnt twice', async () => {
    const r = startRig([{}, {}, {}]);
    const image = makeSimImage(NEW, 4096);
    const first = r.join(image);
    await r.until('a third of the multicast sent', () => r.air.counts.multicast >= 8);
    // the gateway stops (SIGKILL's journal is the same: each step is written before its frame)
    for (const j of first.values()) j.handle.leave('suspend');
    r.restart();
    const stoppedAt = r.air.multicastFCnts.length;
    const [session] = r.journal.openSessions(DEPLOYMENT, 0);
    expect(session).toMatchObject({ step: 'multicast' });
    const sentBefore = session!.sent;
    expect(sentBefore).toBeGreaterThanOrEqual(8);
    // the nodes keep their decoders while their class C window closes
    await r.until('the class C windows closed', () => r.air.nodes.every((n) => !n.multicastListening), 1000);
    const done = await outcomes(r, r.join(image));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    expect(r.events('fuota.session', 'resumed')).toHaveLength(1);
    const steps = fuotaEvents(r.t.events, null).map((e) => e.detail.step);
    const resumedAt = steps.indexOf('resumed');
    // after the resume: each node's status, then a window reopened (the old one closed), then the rest of the multicast
    const after = steps.slice(resumedAt);
    expect(after.indexOf('status')).toBeGreaterThan(0);
    expect(after.indexOf('status')).toBeLessThan(after.indexOf('window'));
    expect(after.indexOf('window')).toBeLessThan(after.indexOf('multicastEnded'));
    const planned = r.events('fuota.session', 'planned')[0]!.detail;
    // the multicast went on where it was, it did not start over
    expect(r.air.counts.multicast).toBe(planned.fragments + planned.parity);
    expect(r.air.multicastFCnts.length - stoppedAt).toBe(planned.fragments + planned.parity - sentBefore);
    expect(new Set(r.air.multicastFCnts).size).toBe(r.air.multicastFCnts.length);
    expect(r.journal.openSessions(DEPLOYMENT, 0)).toEqual([]);
  });
});

/** The coordinator's sessions in memory (a session leaves it when its chain returns: stopped or ended). */
const liveSessions = (r: Rig) => (r.coordinator as unknown as { sessions: Set<unknown> }).sessions.size;
const node = (r: Rig, device: string) => r.journal.nodes(r.journal.openSessions(DEPLOYMENT, 0)[0]?.id ?? '').find((n) => n.device === device);
const gpsNowMs = (r: Rig) => unixToGpsMs(r.air.radio.clock.now());

describe('a FUOTA session across outages and restarts', () => {
  it('resumed after an outage longer than its plan: the deadline is what is left of the plan from now, and every node is confirmed', async () => {
    const r = startRig([{}, {}]);
    const image = makeSimImage(NEW, 4096);
    const first = r.join(image);
    await r.until('a third of the multicast sent', () => r.air.counts.multicast >= 8);
    for (const j of first.values()) j.handle.leave('suspend');
    r.restart();
    // the gateway was down past the journaled deadline (a SIGKILL's downtime, a long pause)
    const [session] = r.journal.openSessions(DEPLOYMENT, 0);
    r.journal.patchSession(session!.id, { deadline: r.air.radio.clock.now() - 1 });
    const done = await outcomes(r, r.join(image));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    expect(r.events('fuota.node', 'failed')).toEqual([]);
  });

  it("the engine's backstop is on the gateway's clock: the radio's deadline over radioTimeScale, plus the stage's time so far", async () => {
    const r = startRig([{}], { radioTimeScale: K });
    const joined = r.join(makeSimImage(NEW, 2048));
    await r.until('planned', () => r.events('fuota.session', 'planned').length > 0);
    const [session] = r.journal.openSessions(DEPLOYMENT, 0);
    const job = { deployment: DEPLOYMENT, wave: 0, device: 'lamp-1', stage: 'transferring' as const, stageAt: systemClock.now() - 1000 };
    const left = (session!.deadline! - r.air.radio.clock.now()) / K;
    const timeout = r.coordinator.stageTimeout(job);
    // a second of the stage gone, the plan's rest at 1/K of the radio's time, answerTimeout's grace likewise
    expect(timeout).toBeGreaterThanOrEqual(1000 + left - 50);
    expect(timeout).toBeLessThanOrEqual(1000 + left + SETTINGS.answerTimeoutMs! / K + 50);
    await outcomes(r, joined);
  });

  it('resumed in setup after its window closed: a node already ready takes the new window (McClassCSessionReq again) and hears the multicast', async () => {
    // answers slower than the 10 s lead of old (and quicker than the 10 s reboot countdown)
    const ANSWER_DELAY = 8_000;
    const r = startRig([{ answerDelayMs: ANSWER_DELAY }, { answerDelayMs: ANSWER_DELAY }]);
    const image = makeSimImage(NEW, 3000);
    // lamp-2 never hears its McGroupSetupReq: the session stays in setup while lamp-1 is ready
    r.air.drop = (device, label) => device === 'lamp-2' && label === 'McGroupSetupReq';
    const first = r.join(image);
    await r.until('lamp-1 ready, the session in setup', () => node(r, 'lamp-1')?.step === 'ready');
    expect(r.journal.openSessions(DEPLOYMENT, 0)[0]).toMatchObject({ step: 'setup' });
    for (const j of first.values()) j.handle.leave('suspend');
    r.restart();
    const [session] = r.journal.openSessions(DEPLOYMENT, 0);
    // lamp-1's window closes before the multicast could end in it
    await r.until('the window too short for the multicast', () => gpsNowMs(r) + session!.plan!.durationMs > session!.windowEnd!, 1000);
    r.air.drop = () => false;
    const done = await outcomes(r, r.join(image));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    expect(r.air.unicastLabels.filter((l) => l === 'lamp-1 McClassCSessionReq')).toHaveLength(2);
    // it heard the whole multicast in the new window: no repair
    expect(r.events('fuota.node', 'repair', 'lamp-1')).toEqual([]);
    // the new window's lead covers what the answers took (the plan's, from the answers observed): not a fixed 10 s
    const windows = r.events('fuota.session', 'window');
    expect(windows).toHaveLength(2);
    expect(windows[1]!.detail.leadMs).toBeGreaterThanOrEqual(2 * ANSWER_DELAY);
  });

  it('a restart between the journaled reboot and its answer sends DevRebootCountdownReq again: the node reboots and is confirmed', async () => {
    const r = startRig([{}]);
    const image = makeSimImage(NEW, 2048);
    r.air.drop = (_device, label) => label === 'DevRebootCountdownReq';
    const first = r.join(image);
    await r.until('rebooting, unanswered', () => node(r, 'lamp-1')?.step === 'rebooting');
    expect(node(r, 'lamp-1')).toMatchObject({ rebootAcked: false });
    for (const j of first.values()) j.handle.leave('suspend');
    r.restart();
    r.air.drop = () => false;
    const done = await outcomes(r, r.join(image));
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed', versionAfter: NEW });
    expect(r.air.node('lamp-1').stats.reboots).toBe(1);
  });

  it('nodes whose jobs are away get nothing: a paused node in repair stops the session when no other node short of its end has a member', async () => {
    // lamp-1 fails at once (no memory): at its end, its member still attached; lamp-2 misses half the multicast
    const r = startRig([{ memoryBytes: 512 }, {}], { minRedundancy: 0 });
    r.air.dropMulticast = (device, n) => device === 'lamp-2' && n % 2 === 0;
    const joined = r.join(makeSimImage(NEW, 6 * 1024));
    expect(await r.settle(joined.get('lamp-1')!.outcome)).toMatchObject({ stage: 'failed' });
    await r.until('lamp-2 in repair', () => r.events('fuota.node', 'repair', 'lamp-2').length > 0);
    // the deployment pauses: lamp-2's runner suspends
    joined.get('lamp-2')!.handle.leave('suspend');
    await r.until('the session stopped', () => liveSessions(r) === 0);
    const sent = r.air.unicastLabels.length;
    expect(r.journal.openSessions(DEPLOYMENT, 0)).toHaveLength(1);
    expect(node(r, 'lamp-2')?.step).toBe('ready');
    expect(r.air.unicastLabels.length).toBe(sent);
  });

  it('a node whose job ends mid-repair stays failed: nothing more goes to it, it never reboots, and the session ends', async () => {
    const r = startRig([{}, {}], { minRedundancy: 0 });
    r.air.dropMulticast = (device, n) => device === 'lamp-2' && n % 2 === 0;
    const joined = r.join(makeSimImage(NEW, 6 * 1024));
    await r.until('lamp-2 in repair', () => r.events('fuota.node', 'repair', 'lamp-2').length > 0);
    joined.get('lamp-2')!.handle.leave('end', { code: 'E_FW_CANCELLED', reason: 'cancelled by tech' });
    expect(await r.settle(joined.get('lamp-1')!.outcome)).toMatchObject({ stage: 'confirmed' });
    await r.until('the session ended', () => r.events('fuota.session', 'ended').length > 0);
    const [n2] = r.journal.nodes(`${DEPLOYMENT}/1/1`).filter((n) => n.device === 'lamp-2');
    expect(n2).toMatchObject({ step: 'failed', code: 'E_FW_CANCELLED', reason: 'cancelled by tech' });
    expect(r.air.node('lamp-2').stats.reboots).toBe(0);
    // it was told to forget the session's block and group
    expect(r.air.unicastLabels).toEqual(expect.arrayContaining(['lamp-2 FragSessionDeleteReq', 'lamp-2 McGroupDeleteReq']));
  });

  it("each node's repair parity is its own, numbered after the multicast's highest fragment", async () => {
    const r = startRig([{}, {}], { minRedundancy: 0 });
    // each misses a share of the multicast, unicast reaches them: both need repairs, their own
    r.air.dropMulticast = (device, n) => (device === 'lamp-1' ? n % 3 === 0 : n % 2 === 0);
    const done = await outcomes(r, r.join(makeSimImage(NEW, 6 * 1024)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const highest = r.journal.session(`${DEPLOYMENT}/1/1`)!.highestN;
    for (const device of ['lamp-1', 'lamp-2']) {
      const rounds = r.events('fuota.node', 'repair', device).map((e) => e.detail as unknown as { from: number; fragments: number });
      expect(rounds.length, device).toBeGreaterThan(0);
      expect(rounds[0]!.from, device).toBe(highest + 1);
      for (let i = 1; i < rounds.length; i++) expect(rounds[i]!.from).toBe(rounds[i - 1]!.from + rounds[i - 1]!.fragments);
    }
  });

  it('a step that throws for one node fails that node alone; the others are confirmed', async () => {
    const r = startRig([{}, {}]);
    const done = await outcomes(
      r,
      r.join(makeSimImage(NEW, 2048), undefined, undefined, undefined, {
        progress: (device) => {
          if (device === 'lamp-2') throw new Error('the firmware journal is full');
        },
      }),
    );
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed' });
    expect(done.get('lamp-2')).toMatchObject({ stage: 'failed', code: 'E_FW_TRANSFER', reason: 'the firmware journal is full' });
  });

  it('a session that cannot start (the journal refuses it) fails the jobs that joined it instead of leaving them waiting', async () => {
    const r = startRig([{}, {}, {}]);
    r.journal.addSession = () => {
      throw new Error('database or disk is full');
    };
    // lamp-3's job has not joined: the session starts from the gather timer
    const joined = r.join(makeSimImage(NEW, 2048), ['lamp-1', 'lamp-2'], undefined, undefined, { expected: ['lamp-1', 'lamp-2', 'lamp-3'] });
    const done = await outcomes(r, joined);
    for (const o of done.values()) expect(o).toEqual({ stage: 'failed', code: 'E_FW_TRANSFER', reason: 'its FUOTA session did not start: database or disk is full' });
  });

  it("a reboot's gate asked again at its own retry, not every few seconds", async () => {
    const r = startRig([{}]);
    const asked: number[] = [];
    let closedUntil: number | null = null;
    const radio = r.air.radio.clock;
    const joined = r.join(makeSimImage(NEW, 2048), undefined, undefined, () => {
      asked.push(radio.now());
      closedUntil ??= radio.now() + 60_000;
      return radio.now() < closedUntil ? { ok: false, waiting: 'night: lights update by day', retryInMs: closedUntil - radio.now() } : { ok: true };
    });
    expect(await r.settle(joined.get('lamp-1')!.outcome)).toMatchObject({ stage: 'confirmed' });
    // closed for a minute of radio time: asked when closed, then at the retry
    expect(asked).toHaveLength(2);
    expect(asked[1]! - asked[0]!).toBeGreaterThanOrEqual(60_000 - 5);
  });

  it('verify asks again after an old version (a late answer of before the reboot) until verifyTimeout', async () => {
    const r = startRig([{}]);
    let injected = false;
    let rebootAsked = false;
    r.air.onUnicast = (device, label) => {
      rebootAsked ||= label === 'DevRebootCountdownReq';
      if (label !== 'DevVersionReq' || injected || !rebootAsked) return;
      injected = true;
      r.air.uplinkAs(device, FPORT_FIRMWARE, encodeFirmwareUp([{ cid: 'DevVersionAns', fwVersion: OLD, hwVersion: 1 }]));
    };
    const done = await outcomes(r, r.join(makeSimImage(NEW, 2048)));
    expect(injected).toBe(true);
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed', versionAfter: NEW });
  });
});

describe('a FUOTA session and the radio', () => {
  it('a forwarder that refuses every frame (TX_FREQ) fails the nodes with that reason after a bounded number, each after its off-time, the event rate-limited', async () => {
    const r = startRig([{}, {}]);
    r.air.txError = () => 'TX_FREQ';
    const done = await outcomes(r, r.join(makeSimImage(NEW, 2048)));
    for (const o of done.values()) expect(o).toMatchObject({ stage: 'failed', code: 'E_FW_TRANSFER', reason: expect.stringMatching(/refused 8 fragments in a row \(TX_ACK TX_FREQ\)/) });
    expect(r.air.counts.txErrors).toBe(8);
    // no hot loop: the attempts are paced (the FCnts were reserved one per attempt)
    expect(r.air.multicastFCnts).toHaveLength(8);
    expect(r.events('fuota.session', 'txError').length).toBeLessThanOrEqual(2);
    expect(r.coordinator.metrics()).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_nodes_total', labels: { outcome: 'failed', code: 'E_FW_TRANSFER', reason: 'tx_error' }, value: 2 }));
  });

  it('a driver that is not running (restarting) holds the multicast like a missing forwarder; it goes on once the driver is back', async () => {
    const r = startRig([{}]);
    r.air.driverStopped = true;
    const joined = r.join(makeSimImage(NEW, 2048));
    await r.until('held: driver stopped', () => r.coordinator.metrics().some((m) => m.name === 'streetbox_fuota_fragments_held_total' && m.labels?.reason === 'driverStopped'));
    r.air.driverStopped = false;
    expect(await r.settle(joined.get('lamp-1')!.outcome)).toMatchObject({ stage: 'confirmed' });
  });

  it('one multicast at a time on a sub-band: a second session waits for the first, and the frames of both keep the full duty cycle', async () => {
    const r = startRig([{}, {}]);
    const a = r.join(makeSimImage(NEW, 3000), ['lamp-1'], 'fuota-a');
    const b = r.join(makeSimImage(NEW, 3000), ['lamp-2'], 'fuota-b');
    const done = await outcomes(r, new Map([...a, ...b]));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const steps = fuotaEvents(r.t.events, 'fuota.session').map((e) => `${e.detail.deployment} ${e.detail.step}`);
    expect(steps).toContain('fuota-b queued');
    const span = (d: string) => [steps.indexOf(`${d} multicast`), steps.indexOf(`${d} multicastEnded`)] as const;
    const [a0, a1] = span('fuota-a');
    const [b0, b1] = span('fuota-b');
    expect(a1 < b0 || b1 < a0).toBe(true);
    const airtimeMs = r.events('fuota.session', 'planned')[0]!.detail.airtimeMs;
    const gaps = r.air.multicastAt.slice(1).map((at, i) => at - r.air.multicastAt[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual((airtimeMs - 0.1) * 10);
  });

  it('the multicast leaves the last 10 % of the sub-band hour to the commands to lights: it holds there, and a command still goes', async () => {
    const r = startRig([{}]);
    const budget = r.air.radio.radio.budgetMs(869_525_000);
    // the sub-band's hour nearly at the reserve line already (other downlinks, an earlier session)
    r.air.ledger.record('aa555a0000000001', 869.525, 0.9 * budget - 1500, r.air.radio.clock.monotonic());
    const joined = r.join(makeSimImage(NEW, 10 * 1024));
    await r.until('held at the reserve', () => r.coordinator.metrics().some((m) => m.name === 'streetbox_fuota_fragments_held_total' && m.labels?.reason === 'reserve'));
    const used = r.air.radio.radio.usedMs(869_525_000);
    expect(used).toBeLessThanOrEqual(0.9 * budget + 200);
    expect(r.air.counts.multicast).toBeLessThan(8);
    // a command to a light on RX2 (the same sub-band) goes at once
    const cmd = r.air.radio.enqueueApp('lamp-1', { fPort: 10, payload: Buffer.from([1, 40]), label: 'dim' });
    expect(await r.settle(cmd.outcome)).toMatchObject({ status: 'sent' });
    for (const j of joined.values()) j.handle.leave('suspend');
  });

  it("a node whose clock is off is resynchronised (TS003 ForceDeviceResyncReq) and takes the window; one that stays off fails 'clock off'", async () => {
    const r = startRig([{ clockOffsetMs: 30_000 }, { clockOffsetMs: -40_000 }]);
    // lamp-2 never hears the AppTimeAns: its clock stays off
    r.air.drop = (device, label) => device === 'lamp-2' && label === 'AppTimeAns';
    const done = await outcomes(r, r.join(makeSimImage(NEW, 2048)));
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed' });
    // TS003 §3.3: whole seconds, reckoned from the uplink's own time
    const [correction, ...more] = r.air.node('lamp-1').stats.appTimeCorrections;
    expect(more).toEqual([]);
    expect(Math.abs(correction! + 30)).toBeLessThanOrEqual(1);
    expect(r.events('fuota.node', 'clockOff', 'lamp-1')).toHaveLength(1);
    expect(done.get('lamp-2')).toMatchObject({ stage: 'failed', code: 'E_FW_TRANSFER', reason: expect.stringMatching(/^its clock is off by (39|40|41) s .*still after a TS003 resync/) });
    expect(r.coordinator.metrics()).toContainEqual(expect.objectContaining({ labels: { outcome: 'failed', code: 'E_FW_TRANSFER', reason: 'clock' } }));
  });
});

describe('the journal of FUOTA sessions', () => {
  it('TS004 v2 SessionCnt is per node, and jumps past a counter the node took elsewhere', async () => {
    const r = startRig([{ fragVersion: 2 }, { fragVersion: 2 }]);
    // lamp-1 took counters up to 300 before (another server, a store lost)
    r.journal.useSessionCnt('lamp-1', 299);
    expect([...(await outcomes(r, r.join(makeSimImage(NEW, 2048)))).values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const counters = (deployment: string) => new Map(r.events('fuota.node', 'fragSetup').filter((e) => e.detail.deployment === deployment).map((e) => [e.device, (e.detail as unknown as { sessionCnt: number }).sessionCnt]));
    expect(counters(DEPLOYMENT)).toEqual(new Map([['lamp-1', 300], ['lamp-2', 1]]));
    // the gateway's own counter of lamp-1 lost: 1 is a replay for it, the session jumps ahead
    (r.t.store as unknown as { sqlite: { exec(sql: string): void } }).sqlite.exec("DELETE FROM fuota_counters WHERE device = 'lamp-1'");
    expect([...(await outcomes(r, r.join(makeSimImage(NEW + 1, 2048, 3), undefined, 'fuota-2'))).values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    expect(counters('fuota-2')).toEqual(new Map([['lamp-1', 1 + 2 * 256], ['lamp-2', 2]]));
    expect(r.journal.lastSessionCnt('lamp-1')).toBe(513);
  });

  it('a session whose nodes all ended is ended, and its McKey wiped; so is one whose jobs all ended', async () => {
    const r = startRig([{}, {}]);
    await outcomes(r, r.join(makeSimImage(NEW, 2048)));
    expect(r.journal.session(`${DEPLOYMENT}/1/1`)).toMatchObject({ step: 'ended', mcKey: Buffer.alloc(0) });
    const joined = r.join(makeSimImage(NEW + 1, 2048, 5), undefined, 'fuota-2');
    await r.until('planned', () => r.events('fuota.session', 'planned').length === 2);
    for (const j of joined.values()) j.handle.leave('end', { code: 'E_FW_CANCELLED', reason: 'cancelled' });
    expect(r.journal.openSessions('fuota-2', 0)).toEqual([]);
    expect(r.journal.session('fuota-2/1/1')).toMatchObject({ step: 'ended', mcKey: Buffer.alloc(0) });
  });
});
