/**
 * A FUOTA session's setup (issue 18 Deliver 3a), per node at once, each answer journaled:
 *
 *   DevVersionReq (TS006 §3.2): the version before; a node on the new version is done, no transfer
 *   PackageVersionReq on FPort 201 (TS004 §3.1): the version of TS004 it implements
 *   → the session's TS004 version and its plan (planner.ts), the class C window it sizes
 *   McGroupSetupReq (TS005 §4.3): the session's McAddr, its McKey encrypted under the node's GenAppKey
 *   FragSessionSetupReq (TS004 §3.2; v2 §3.3: SessionCnt and the data block's MIC, AckReception)
 *   McClassCSessionReq (TS005 §4.5): the window opens at SessionTime for 2^TimeOut s; the node's
 *              TimeToStart tells whether its clock agrees (else TS003 ForceDeviceResyncReq, once)
 *
 * A refusal or a silence fails that node with its reason; the others go on. Each node's window is
 * journaled: a window planned anew (a resume, a reopening) is sent to every node on another one.
 * Each time the window is planned the session's deadline moves to what is left of its plan from
 * now (planner.ts remainingMs): a pause, an outage or a wait for the sub-band is not the plan's.
 */
import {
  dataBlockIntKey,
  dataBlockMic,
  encodeClockSyncDown,
  encodeFragDown,
  encodeMulticastDown,
  encryptMcKey,
  FPORT_CLOCK_SYNC,
  FPORT_FIRMWARE,
  FPORT_FRAGMENTATION,
  FPORT_MULTICAST,
  PACKAGE_ID,
  type FragUp,
  type FragVersion,
} from '../../../drivers/lorawan/app/index.js';
import { unixToGpsMs } from '../../../drivers/lorawan/mac/types.js';
import { errorMessage } from '../../../errors.js';
import { FirmwareError } from '../../errors.js';
import type { FirmwareCode } from '../../records.js';
import { eachNode, firmwareReq, type SessionCore } from './core.js';
import { FRAG_INDEX } from './multicast.js';
import { planSession, remainingMs, sessionLoss, SETUP_STEPS, timeOutExponent, WINDOW_MARGIN, type FuotaPlan } from './planner.js';

/** the class C window opens at least this long after the McClassCSessionReq (its answers arrive meanwhile) */
export const MIN_START_LEAD_MS = 10_000;
/** TS004 §3.2 FragAlgo 0: the parity of the specification's appendix */
const FRAG_ALGO = 0;
/** TS004 §3.5: a unicast status is answered within 2^(0+4) s: no group's answers to spread */
const BLOCK_ACK_DELAY = 0;
/** TS005 §4.3: the group's FCnt range (the McAddr and McKey are new each session, so counters may start over) */
const MC_FCNT_MAX = 0xffffffff;
/** answers the setup still waits for after the versions: group, fragmentation, class C */
const ANSWERS_AFTER_PLAN = 3;
/** s a node's TimeToStart may differ from ours (whole seconds both, rounded each its way) before its clock is called off */
const CLOCK_TOLERANCE_S = 2;
/** TS003 §3.5 ForceDeviceResyncReq: AppTimeReq the node sends */
const RESYNC_TRANSMISSIONS = 2;
/** a TS004 v2 SessionCnt refused as a replay of another server's: the node's counter is ahead, the next is this far on (twice at most) */
const SESSION_CNT_JUMP = 256;
const SESSION_CNT_JUMPS = 2;

/** The setup from where it is; the session's step becomes `multicast` once every node is ready or failed. */
export async function setUp(c: SessionCore): Promise<void> {
  const clock = c.deps.radio.clock;
  const answerStart = clock.monotonic();
  await eachNode(c, devicesAt(c, ['joined']), (d) => versions(c, d));
  if (c.stopped) return;
  if (c.s.plan === null && !plan(c, clock.monotonic() - answerStart)) return;
  const p = c.s.plan;
  // resumed: a window that closes before the multicast could end is planned anew (the nodes take the new one)
  if (p !== null && (c.s.windowEnd ?? 0) < unixToGpsMs(clock.now()) + p.durationMs) newWindow(c, windowLead(c, ANSWERS_AFTER_PLAN), SETUP_STEPS);
  await eachNode(c, devicesAt(c, ['versioned', 'grouped', 'fragSetup', 'ready']), (d) => nodeSetup(c, d));
  if (c.stopped) return;
  c.patch({ step: 'multicast' });
}

function devicesAt(c: SessionCore, steps: readonly string[]): string[] {
  return c
    .open()
    .filter((n) => steps.includes(n.step))
    .map((n) => n.device);
}

/** DevVersionReq and PackageVersionReq (TS006 §3.2, TS004 §3.1). */
async function versions(c: SessionCore, device: string): Promise<void> {
  const version = await c.requests.ask(device, firmwareReq({ cid: 'DevVersionReq' }, 'DevVersionReq'), (a) => (a.fPort === FPORT_FIRMWARE && a.cmd.cid === 'DevVersionAns' ? a.cmd.fwVersion : undefined));
  if (version === null) return c.silent(device, 'DevVersionReq');
  c.member(device)?.versionBefore(version);
  if (version === c.versionCode) {
    c.setNode(device, { step: 'current', versionBefore: version });
    c.deps.metrics.node('current');
    c.emitNode(device, 'current', { version });
    return;
  }
  c.setNode(device, { versionBefore: version });
  const pkg = await c.requests.ask(device, { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'PackageVersionReq' }]), label: 'PackageVersionReq' }, (a) =>
    a.fPort === FPORT_FRAGMENTATION && a.cmd.cid === 'PackageVersionAns' ? a.cmd : undefined,
  );
  if (pkg === null) return c.silent(device, 'PackageVersionReq (TS004)');
  if (pkg.packageIdentifier !== PACKAGE_ID.fragmentation || (pkg.packageVersion !== 1 && pkg.packageVersion !== 2)) {
    return c.fail(device, 'E_FW_TRANSFER', `answers package ${pkg.packageIdentifier} version ${pkg.packageVersion} on FPort 201: this gateway speaks TS004 (package 3) versions 1 and 2`, { kind: 'refused' });
  }
  c.setNode(device, { step: 'versioned', fragVersion: pkg.packageVersion });
  c.emitNode(device, 'versioned', { version, fragmentation: pkg.packageVersion });
}

/**
 * The session's TS004 version (lorawan.fuota.fragmentation, or with `auto` the one most of its
 * nodes implement, the higher on a tie: a node implements one) and its plan. Nodes of the other
 * version go to a session of their own; with a fixed version they fail. False when no plan is made.
 */
function plan(c: SessionCore, answerMs: number): boolean {
  const versioned = c.open().filter((n) => n.step === 'versioned');
  if (versioned.length === 0) return true;
  const st = c.deps.settings;
  const v2 = versioned.filter((n) => n.fragVersion === 2).length;
  const version: FragVersion = st.fragmentation === 'auto' ? (v2 * 2 >= versioned.length ? 2 : 1) : st.fragmentation;
  const others = versioned.filter((n) => n.fragVersion !== version);
  if (st.fragmentation !== 'auto') {
    for (const n of others) c.fail(n.device, 'E_FW_TRANSFER', `implements TS004 v${n.fragVersion}, and lorawan.fuota.fragmentation is ${st.fragmentation}`, { kind: 'refused' });
  } else if (others.length > 0) {
    c.deps.handOver(others.flatMap((n) => c.release(n.device, `implements TS004 v${n.fragVersion}: moved to a session of that version`) ?? []));
  }
  const nodes = c.open().filter((n) => n.step === 'versioned');
  if (nodes.length === 0) return true;
  const losses = c.deps.journal.losses(nodes.map((n) => n.device));
  // three more answers per node (two took answerMs so far) come before the window opens; the
  // multicast starts once they came, so a window open early only costs the nodes' listening
  const startLeadMs = Math.max(MIN_START_LEAD_MS, 1.5 * answerMs);
  let made: FuotaPlan;
  try {
    made = planSession({
      imageBytes: c.image.length,
      dr: st.dr,
      frequency: st.frequency,
      repairDr: st.repairDr,
      loss: sessionLoss(nodes.map((n) => ({ own: losses.get(n.device) ?? null, group: c.deps.groupLoss(n.device) }))),
      minRedundancy: st.minRedundancy,
      answerTimeoutMs: st.answerTimeoutMs,
      startLeadMs,
      radio: c.deps.radio.radio,
    });
  } catch (err) {
    for (const n of nodes) c.fail(n.device, err instanceof FirmwareError ? (err.code as FirmwareCode) : 'E_FW_TRANSFER', errorMessage(err), { kind: 'refused' });
    return false;
  }
  c.patch({ fragVersion: version, plan: made });
  // the deadline: the plan's whole bound from now (setup answers, the window, repairs)
  newWindow(c, startLeadMs, SETUP_STEPS);
  c.emit('planned', { nodes: nodes.length, fragmentation: version, ...planFigures(made) });
  c.log.info({ nodes: nodes.length, fragmentation: version, ...planFigures(made) }, 'fuota: session planned');
  return true;
}

/** McGroupSetupReq, FragSessionSetupReq, McClassCSessionReq: the node is ready for the multicast (a ready node on another window takes the session's). */
async function nodeSetup(c: SessionCore, device: string): Promise<void> {
  const st = c.deps.settings;
  const node = c.node(device)!;
  if (node.fragVersion !== c.s.fragVersion) return c.fail(device, 'E_FW_TRANSFER', `implements TS004 v${node.fragVersion}; this session speaks v${c.s.fragVersion}`, { kind: 'refused' });
  if (node.step === 'versioned') {
    const genAppKey = c.deps.radio.genAppKey(device);
    if (genAppKey === null) return c.fail(device, 'E_FW_TARGET', 'has no GenAppKey: set lorawan.devices[].genAppKey', { kind: 'refused' });
    const setup = { cid: 'McGroupSetupReq' as const, mcGroupId: st.mcGroupId, mcAddr: c.s.mcAddr, mcKeyEncrypted: encryptMcKey(genAppKey, c.s.mcKey), minMcFCnt: 0, maxMcFCnt: MC_FCNT_MAX };
    const ans = await c.requests.ask(device, { fPort: FPORT_MULTICAST, payload: encodeMulticastDown([setup]), label: 'McGroupSetupReq' }, (a) =>
      a.fPort === FPORT_MULTICAST && a.cmd.cid === 'McGroupSetupAns' && a.cmd.mcGroupId === st.mcGroupId ? a.cmd : undefined,
    );
    if (ans === null) return c.silent(device, 'McGroupSetupReq');
    if (ans.idError) return c.fail(device, 'E_FW_TRANSFER', `refused McGroupSetupReq: multicast group ${st.mcGroupId} is not one it has (lorawan.fuota.mcGroupId)`, { kind: 'refused' });
    c.setNode(device, { step: 'grouped' });
  }
  const step = c.node(device)!.step;
  if ((step === 'grouped' || step === 'fragSetup') && !(await fragSetup(c, device))) return;
  const now = c.node(device);
  if (now?.step === 'ready' && now.sessionTime === c.s.sessionTime) return;
  await classC(c, device);
}

/** FragSessionSetupReq (TS004 §3.2, v2 §3.3); true once the node took it. */
async function fragSetup(c: SessionCore, device: string): Promise<boolean> {
  const p = c.s.plan!;
  const version = c.s.fragVersion!;
  const genAppKey = c.deps.radio.genAppKey(device);
  if (version === 2 && !genAppKey) {
    c.fail(device, 'E_FW_TARGET', 'has no GenAppKey for the data block MIC of TS004 v2', { kind: 'refused' });
    return false;
  }
  for (let jumps = 0; ; jumps++) {
    // journaled as sent before this process (a resume): a replay of that counter is our own
    const sentBefore = jumps === 0 && c.node(device)!.step === 'fragSetup';
    const sessionCnt = version === 2 ? sessionCntOf(c, device) : null;
    c.setNode(device, { step: 'fragSetup' });
    c.fragSetupSends.delete(device);
    const ans = await askFragSetup(c, device, sessionCnt, genAppKey);
    if (ans === null) {
      c.silent(device, 'FragSessionSetupReq');
      return false;
    }
    // v2 §3.3: a counter not above the node's last; after a send of ours before, that was ours
    const ownReplay = ans.sessionCntReplay === true && (sentBefore || (c.fragSetupSends.get(device) ?? 0) > 1);
    const replay = ans.sessionCntReplay === true && !ownReplay;
    const others = [
      ans.encodingUnsupported && 'the fragmentation algorithm (FragAlgo 0) is unsupported',
      ans.notEnoughMemory && `not enough memory for ${p.fragments} fragments of ${p.fragSize} bytes (${p.fragments * p.fragSize} bytes)`,
      ans.fragIndexUnsupported && `FragIndex ${FRAG_INDEX} is unsupported`,
      ans.wrongDescriptor && 'the descriptor is wrong',
    ].filter((x): x is string => typeof x === 'string');
    if (replay && others.length === 0 && jumps < SESSION_CNT_JUMPS && sessionCnt !== null) {
      // another server (or a journal lost) took counters past ours: jump ahead, journaled before it goes
      setSessionCnt(c, device, (sessionCnt + SESSION_CNT_JUMP) & 0xffff);
      continue;
    }
    const refusal = [...others, ...(replay ? [`SessionCnt ${sessionCnt} is not above the last it took`] : [])];
    if (refusal.length > 0) {
      c.fail(device, 'E_FW_TRANSFER', `refused FragSessionSetupReq: ${refusal.join('; ')}`, { kind: ans.notEnoughMemory ? 'memory' : 'refused' });
      return false;
    }
    c.emitNode(device, 'fragSetup', { fragments: p.fragments, fragSize: p.fragSize, fragmentation: version, ...(sessionCnt !== null ? { sessionCnt } : {}) });
    return true;
  }
}

async function askFragSetup(c: SessionCore, device: string, sessionCnt: number | null, genAppKey: Buffer | null): Promise<Extract<FragUp, { cid: 'FragSessionSetupAns' }> | null> {
  const p = c.s.plan!;
  const version = c.s.fragVersion!;
  // the image's version: the node can tell which image the block is (TS004 §3.2: the Descriptor is free)
  const descriptor = c.versionCode >>> 0;
  const v2 =
    genAppKey && sessionCnt !== null ? { sessionCnt, ackReception: true, mic: dataBlockMic(dataBlockIntKey(genAppKey), { sessionCnt, fragIndex: FRAG_INDEX, descriptor, data: c.image }) } : {};
  const req = { cid: 'FragSessionSetupReq' as const, fragIndex: FRAG_INDEX, mcGroupBitMask: 1 << c.deps.settings.mcGroupId, nbFrag: p.fragments, fragSize: p.fragSize, fragAlgo: FRAG_ALGO, blockAckDelay: BLOCK_ACK_DELAY, padding: p.padding, descriptor, ...v2 };
  return c.requests.ask(
    device,
    { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([req], version), label: 'FragSessionSetupReq' },
    (a) => (a.fPort === FPORT_FRAGMENTATION && a.cmd.cid === 'FragSessionSetupAns' && a.cmd.fragIndex === FRAG_INDEX ? a.cmd : undefined),
    undefined,
    () => c.fragSetupSends.set(device, (c.fragSetupSends.get(device) ?? 0) + 1),
  );
}

/** The node's TS004 v2 SessionCnt in this session: journaled, else the one after the last it took (per node: TS004 v2 §3.3). */
function sessionCntOf(c: SessionCore, device: string): number {
  const journaled = c.node(device)!.sessionCnt;
  if (journaled !== null) return journaled;
  const next = ((c.deps.journal.lastSessionCnt(device) ?? 0) + 1) & 0xffff;
  setSessionCnt(c, device, next);
  return next;
}

function setSessionCnt(c: SessionCore, device: string, sessionCnt: number): void {
  c.deps.journal.useSessionCnt(device, sessionCnt);
  c.setNode(device, { sessionCnt });
}

/**
 * McClassCSessionReq (TS005 §4.5): the session's class C window (as planned, or reopened). The
 * node's TimeToStart must agree with our clock: a node whose clock is off would listen at another
 * time than the multicast goes; it is resynchronised once (TS003 ForceDeviceResyncReq: the driver
 * answers its AppTimeReq), and fails when it still disagrees. True once the node took the window.
 */
export async function classC(c: SessionCore, device: string): Promise<boolean> {
  for (let resynced = false; ; resynced = true) {
    const took = await askClassC(c, device);
    if (took === null) return false;
    if (took.offS === 0) {
      c.setNode(device, { step: 'ready', sessionTime: took.sessionTime });
      c.emitNode(device, 'ready', { timeToStart: took.timeToStart });
      return true;
    }
    const why = `its clock is off by ${Math.abs(took.offS)} s (McClassCSessionAns TimeToStart ${took.timeToStart} s, expected ${took.expected})`;
    if (resynced) {
      c.fail(device, 'E_FW_TRANSFER', `${why}, still after a TS003 resync: it would not listen when the multicast goes`, { kind: 'clock' });
      return false;
    }
    c.emitNode(device, 'clockOff', { offS: took.offS, timeToStart: took.timeToStart }, 'warning');
    if (!(await resync(c, device))) {
      c.fail(device, 'E_FW_TIMEOUT', `${why}, and it did not ask the time (TS003 AppTimeReq) after ForceDeviceResyncReq`, { kind: 'clock' });
      return false;
    }
  }
}

/** The window asked of one node: its TimeToStart against ours (offS 0: within CLOCK_TOLERANCE_S); null when it failed. */
async function askClassC(c: SessionCore, device: string): Promise<{ sessionTime: number; timeToStart: number | null; offS: number; expected: string } | null> {
  const st = c.deps.settings;
  const sessionTime = c.s.sessionTime!;
  const gpsS = () => unixToGpsMs(c.deps.radio.clock.now()) / 1000;
  const timeOut = Math.round(Math.log2((c.s.windowEnd! - sessionTime * 1000) / 1000));
  const req = { cid: 'McClassCSessionReq' as const, mcGroupId: st.mcGroupId, sessionTime: sessionTime >>> 0, timeOut, frequency: st.frequency, dr: st.dr };
  const sentS = gpsS();
  const ans = await c.requests.ask(device, { fPort: FPORT_MULTICAST, payload: encodeMulticastDown([req]), label: 'McClassCSessionReq' }, (a) =>
    a.fPort === FPORT_MULTICAST && a.cmd.cid === 'McClassCSessionAns' && a.cmd.mcGroupId === st.mcGroupId ? a.cmd : undefined,
  );
  if (ans === null) {
    c.silent(device, 'McClassCSessionReq');
    return null;
  }
  const errors = [ans.drError && `data rate ${st.dr}`, ans.freqError && `frequency ${st.frequency} Hz`, ans.mcGroupUndefined && `group ${st.mcGroupId} undefined or the window past`].filter(
    (x): x is string => typeof x === 'string',
  );
  if (errors.length > 0) {
    c.fail(device, 'E_FW_TRANSFER', `refused McClassCSessionReq: ${errors.join('; ')}`, { kind: 'refused' });
    return null;
  }
  // TS005 §4.5: TimeToStart counts from the end of the answer's uplink; the node may have reckoned
  // it any time between our request and its answer (whole seconds)
  const earliest = Math.max(0, Math.floor(sessionTime - gpsS()));
  const latest = Math.max(0, Math.ceil(sessionTime - sentS));
  const t = ans.timeToStart;
  const offS = t === null ? 0 : t < earliest - CLOCK_TOLERANCE_S ? t - earliest : t > latest + CLOCK_TOLERANCE_S ? t - latest : 0;
  return { sessionTime, timeToStart: t, offS, expected: `${earliest}..${latest} s` };
}

/** TS003 §3.5 ForceDeviceResyncReq; true once the node asked the time (AppTimeReq, which the driver answers). */
async function resync(c: SessionCore, device: string): Promise<boolean> {
  const req = { fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'ForceDeviceResyncReq', nbTransmissions: RESYNC_TRANSMISSIONS }]), label: 'ForceDeviceResyncReq' };
  const asked = await c.requests.ask(device, req, (a) => (a.fPort === FPORT_CLOCK_SYNC && a.cmd.cid === 'AppTimeReq' ? true : undefined));
  return asked !== null;
}

/**
 * ms from now to a window's opening when `answers` answers of the slowest node come first: each as
 * long as the slowest this process has seen (the plan's own lead until one came), at least
 * MIN_START_LEAD_MS.
 */
export function windowLead(c: SessionCore, answers: number): number {
  const observed = c.requests.slowestAnswerMs;
  return Math.max(MIN_START_LEAD_MS, observed === null ? (c.s.plan?.startLeadMs ?? MIN_START_LEAD_MS) : answers * observed);
}

/**
 * A class C window opening `leadMs` from now, long enough for the fragments left with the plan's
 * margin (journaled), and the session's deadline from it: `answers` unicast answers before the
 * multicast, the window, the repairs (planner.ts remainingMs).
 */
export function newWindow(c: SessionCore, leadMs: number, answers: number): void {
  const p = c.s.plan!;
  const sessionTime = Math.ceil((unixToGpsMs(c.deps.radio.clock.now()) + leadMs) / 1000);
  const timeOut = timeOutExponent(leadMs + fragmentsLeft(c) * (p.airtimeMs + p.offTimeMs) * WINDOW_MARGIN);
  c.patch({ sessionTime, windowEnd: (sessionTime + 2 ** timeOut) * 1000 });
  rebound(c, answers, leadMs);
  c.emit('window', { sessionTime, timeOut, leadMs: Math.round(leadMs) });
}

/**
 * The session's deadline anew: what is left of its plan from now (a resume, a new window, the
 * sub-band's turn after a wait), or from `from` (radio wall ms: the end of the session whose
 * multicast it waits for).
 */
export function rebound(c: SessionCore, answers: number, leadMs: number, from = c.deps.radio.clock.now()): void {
  const p = c.s.plan;
  if (p === null) return;
  const left = remainingMs(p, { answers, leadMs, fragmentsLeft: fragmentsLeft(c), answerTimeoutMs: c.deps.settings.answerTimeoutMs });
  c.patch({ deadline: Math.max(from, c.deps.radio.clock.now()) + left });
}

/** Multicast fragments not sent yet (none once the multicast is over). */
function fragmentsLeft(c: SessionCore): number {
  const p = c.s.plan;
  if (p === null || (c.s.step !== 'setup' && c.s.step !== 'multicast')) return 0;
  return Math.max(0, p.fragments + p.parity - c.s.nextFrag + 1) + c.s.resend.length;
}

/** The plan's figures for an event or a log line (rounded ms). */
export function planFigures(p: FuotaPlan): Record<string, number | boolean> {
  return {
    fragSize: p.fragSize,
    fragments: p.fragments,
    parity: p.parity,
    loss: p.loss,
    lossObserved: p.lossObserved,
    decodeProbability: Math.round(p.decodeProbability * 10_000) / 10_000,
    airtimeMs: Math.round(p.airtimeMs * 10) / 10,
    offTimeMs: Math.round(p.offTimeMs),
    totalAirtimeMs: Math.round(p.totalAirtimeMs),
    dutyCycleMinimumMs: Math.round(p.dutyCycleMinimumMs),
    durationMs: Math.round(p.durationMs),
    timeOut: p.timeOut,
    sessionTimeoutMs: Math.round(p.sessionTimeoutMs),
  };
}
