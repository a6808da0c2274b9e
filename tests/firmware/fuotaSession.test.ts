/**
 * FUOTA sessions (edge/firmware/methods/fuota: coordinator, session, multicast, journal) driven
 * through a FuotaRadio port over simulated nodes in this process (fuotaAir.ts). The port stands in
 * for the network server: the real driver (UDP forwarder, TX_ACKs, class A and C roads) is
 * covered by the end-to-end test the lead adds. Everything else is real: H4's simulated nodes
 * with their own TS003–TS006 stacks, the store (journal tables in SQLite), the duty-cycle ledger.
 *
 * The radio runs on a clock 200× faster than the wall (scaledClock), so a 4-minute multicast
 * takes a second; the tests wait for conditions, never for a time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { scaledClock, systemClock } from '../../edge/clock.js';
import { FuotaCoordinator, type FuotaHandle } from '../../edge/firmware/methods/fuota/coordinator.js';
import { FuotaJournal } from '../../edge/firmware/methods/fuota/journal.js';
import type { FuotaMember, FuotaSettings, NodeOutcome, RebootVerdict } from '../../edge/firmware/methods/fuota/types.js';
import { silentLogger } from '../../edge/log.js';
import type { SimNodeOptions } from '../../edge/sim/lorawan/node.js';
import { makeSimImage } from '../../edge/sim/modbus/firmware.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { airNode, fuotaEvents, simAir, type FuotaDetail, type SimAir } from './fuotaAir.js';

/** the radio's clock runs this many times faster than the wall */
const K = 200;
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
  /** joins `devices` (default all) to the deployment's wave 0 session */
  join(image: Buffer, devices?: string[], deployment?: string, gate?: (device: string) => RebootVerdict): Map<string, { handle: FuotaHandle; outcome: Promise<NodeOutcome> }>;
  /** a coordinator anew on the same store and air (a restarted gateway) */
  restart(): void;
  events(kind: 'fuota.session' | 'fuota.node', step?: string, device?: string): { device: string | null; detail: FuotaDetail }[];
  close(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

function startRig(nodes: SimNodeOptions[], settings: Partial<FuotaSettings> = {}): Rig {
  const t = makeContext({});
  const clock = scaledClock(systemClock, K);
  const air = simAir({ clock, rx2Dr: 5, nodes: nodes.map((opts, i) => airNode(i + 1, { rx2Dr: 5, ...opts })) });
  const journal = FuotaJournal.open(t.store)!;
  const members = new Map<string, MemberLog>();
  const expected = new Map<string, string[]>();
  const coordinatorOf = () =>
    new FuotaCoordinator({
      config: () => t.config,
      store: t.store,
      log: silentLogger(),
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
    join(image, devices = air.nodes.map((n) => n.cfg.id), deployment = DEPLOYMENT, gate = () => ({ ok: true })) {
      expected.set(deployment, devices);
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
          progress: (fragments) => log.progress.push(fragments),
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
    async close() {
      coordinator.stop();
      air.stop();
      await t.close();
    },
  };
  rigs.push(rig);
  return rig;
}

const outcomes = (joined: Map<string, { outcome: Promise<NodeOutcome> }>) => Promise.all([...joined].map(async ([d, j]) => [d, await j.outcome] as const)).then((l) => new Map(l));

describe('a FUOTA session over simulated nodes', () => {
  it('three nodes with 10 % downlink loss take a 10 KiB image: each confirmed by the version it reports after its reboot', async () => {
    const r = startRig([{ downlinkLoss: 0.1 }, { downlinkLoss: 0.1 }, { downlinkLoss: 0.1 }]);
    const image = makeSimImage(NEW, 10 * 1024);
    const done = await outcomes(r.join(image));
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
    const done = await outcomes(r.join(makeSimImage(NEW, 4 * 1024)));
    expect(done.get('lamp-1')).toMatchObject({ stage: 'confirmed', versionAfter: NEW });
    expect(done.get('lamp-2')).toEqual({ stage: 'failed', code: 'E_FW_VERIFY', versionAfter: OLD, reason: `reports version ${OLD} after its reboot, not ${NEW}: it runs its old firmware` });
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
    expect(r.coordinator.metrics()).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_nodes_total', labels: { outcome: 'failed', code: 'E_FW_VERIFY' }, value: 1 }));
  });

  it('a node that misses more than the parity covers is repaired by unicast with fresh parity; the loss it showed sizes the next session', async () => {
    const r = startRig([{}, { downlinkLoss: 0.45 }], { minRedundancy: 0 });
    const done = await outcomes(r.join(makeSimImage(NEW, 6 * 1024)));
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
    const again = await outcomes(r.join(makeSimImage(NEW + 1, 6 * 1024, 7), ['lamp-1', 'lamp-2'], 'fuota-2'));
    expect([...again.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const second = r.events('fuota.session', 'planned').find((e) => e.detail.deployment === 'fuota-2');
    expect(second?.detail).toMatchObject({ lossObserved: true, loss: losses.get('lamp-2') });
    expect(second!.detail.parity).toBeGreaterThan(parity);
  });

  it('a node already on the version is confirmed without a transfer', async () => {
    const r = startRig([{ version: NEW }]);
    const done = await outcomes(r.join(makeSimImage(NEW, 2048)));
    expect(done.get('lamp-1')).toEqual({ stage: 'confirmed', versionAfter: NEW, reason: `already runs version ${NEW}: no transfer` });
    expect(r.air.counts.multicast).toBe(0);
    expect(r.air.node('lamp-1').stats.reboots).toBe(0);
  });

  it('TS004 v2: the data block MIC checked by each node, its FragDataBlockReceivedReq answered', async () => {
    const r = startRig([{ fragVersion: 2 }, { fragVersion: 2 }]);
    const done = await outcomes(r.join(makeSimImage(NEW, 3000)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    expect(r.events('fuota.session', 'planned')[0]?.detail).toMatchObject({ fragmentation: 2 });
    for (const n of r.air.nodes) expect(n.stats.blocks).toEqual([{ fragIndex: 0, size: 3000, micOk: true }]);
    expect(r.events('fuota.node', 'blockReceived').map((e) => e.detail.micOk)).toEqual(expect.arrayContaining([true, true]));
  });

  it('lorawan.fuota.fragmentation auto with nodes of both versions: a session per version, all confirmed', async () => {
    const r = startRig([{ fragVersion: 1 }, { fragVersion: 2 }, { fragVersion: 2 }]);
    const done = await outcomes(r.join(makeSimImage(NEW, 2500)));
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
    const done = await outcomes(r.join(makeSimImage(NEW, 4096)));
    expect([...done.values()].map((o) => o.stage)).toEqual(['confirmed', 'confirmed']);
    const metrics = r.coordinator.metrics();
    const errors = metrics.filter((m) => m.name === 'streetbox_fuota_tx_errors_total');
    expect(errors).toEqual(expect.arrayContaining([expect.objectContaining({ labels: { error: 'TOO_LATE' } }), expect.objectContaining({ labels: { error: 'COLLISION_PACKET' } })]));
    expect(errors.reduce((s, m) => s + m.value, 0)).toBe(r.air.counts.txErrors);
    // every planned fragment went, the refused ones once more
    const planned = r.events('fuota.session', 'planned')[0]!.detail;
    expect(r.air.counts.multicast).toBe(planned.fragments + planned.parity);
    // from the start of one transmission to the next: at least its air time over the duty cycle (10 %);
    // 2 % of slack for the instant between the session's clock reading and the port's, 200× magnified
    const gaps = r.air.multicastAt.slice(1).map((at, i) => at - r.air.multicastAt[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(0.98 * (planned.airtimeMs - 0.1) * 10);
  });

  it("a reboot waits for the gates and caps: the node stays in service (no reboot) while they say no, and says why", async () => {
    const r = startRig([{}]);
    let open = false;
    const joined = r.join(makeSimImage(NEW, 2048), undefined, undefined, () => (open ? { ok: true } : { ok: false, waiting: 'night: lights update by day' }));
    await waitFor('the reboot waits', () => r.members.get('lamp-1')!.waiting.includes('night: lights update by day'), 10_000);
    expect(r.air.node('lamp-1').stats.reboots).toBe(0);
    expect(r.members.get('lamp-1')!.stages).toEqual([]);
    open = true;
    expect(await joined.get('lamp-1')!.outcome).toMatchObject({ stage: 'confirmed' });
    expect(r.members.get('lamp-1')!.waiting.at(-1)).toBeNull();
  });

  it('resumes from the journal mid-multicast: status first, a new class C window once the old one closed, the fragments not sent, never an FCnt twice', async () => {
    const r = startRig([{}, {}, {}]);
    const image = makeSimImage(NEW, 4096);
    const first = r.join(image);
    await waitFor('a third of the multicast sent', () => r.air.counts.multicast >= 8, 10_000);
    // the gateway stops (SIGKILL's journal is the same: each step is written before its frame)
    for (const j of first.values()) j.handle.leave('suspend');
    r.restart();
    const stoppedAt = r.air.multicastFCnts.length;
    const [session] = r.journal.openSessions(DEPLOYMENT, 0);
    expect(session).toMatchObject({ step: 'multicast' });
    const sentBefore = session!.sent;
    expect(sentBefore).toBeGreaterThanOrEqual(8);
    // the nodes keep their decoders while their class C window closes
    await waitFor('the class C windows closed', () => r.air.nodes.every((n) => !n.multicastListening), 20_000);
    const done = await outcomes(r.join(image));
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
