/**
 * A FUOTA session's setup (issue 18 Deliver 3a), per node at once, each answer journaled:
 *
 *   DevVersionReq (TS006 §3.2): the version before; a node on the new version is done, no transfer
 *   PackageVersionReq on FPort 201 (TS004 §3.1): the version of TS004 it implements
 *   → the session's TS004 version and its plan (planner.ts), the class C window it sizes
 *   McGroupSetupReq (TS005 §4.3): the session's McAddr, its McKey encrypted under the node's GenAppKey
 *   FragSessionSetupReq (TS004 §3.2; v2 §3.3: SessionCnt and the data block's MIC, AckReception)
 *   McClassCSessionReq (TS005 §4.5): the window opens at SessionTime for 2^TimeOut s
 *
 * A refusal or a silence fails that node with its reason; the others go on.
 */
import {
  dataBlockIntKey,
  dataBlockMic,
  encodeFragDown,
  encodeMulticastDown,
  encryptMcKey,
  FPORT_FIRMWARE,
  FPORT_FRAGMENTATION,
  FPORT_MULTICAST,
  PACKAGE_ID,
  type FragVersion,
} from '../../../drivers/lorawan/app/index.js';
import { unixToGpsMs } from '../../../drivers/lorawan/mac/types.js';
import { errorMessage } from '../../../errors.js';
import { FirmwareError } from '../../errors.js';
import type { FirmwareCode } from '../../records.js';
import { firmwareReq, type SessionCore } from './core.js';
import { FRAG_INDEX } from './multicast.js';
import { planSession, sessionLoss, timeOutExponent, WINDOW_MARGIN, type FuotaPlan } from './planner.js';

/** the class C window opens at least this long after the McClassCSessionReq (its answers arrive meanwhile) */
export const MIN_START_LEAD_MS = 10_000;
/** TS004 §3.2 FragAlgo 0: the parity of the specification's appendix */
const FRAG_ALGO = 0;
/** TS004 §3.5: a unicast status is answered within 2^(0+4) s: no group's answers to spread */
const BLOCK_ACK_DELAY = 0;
/** TS005 §4.3: the group's FCnt range (the McAddr and McKey are new each session, so counters may start over) */
const MC_FCNT_MAX = 0xffffffff;

/** The setup from where it is; the session's step becomes `multicast` once every node is ready or failed. */
export async function setUp(c: SessionCore): Promise<void> {
  const clock = c.deps.radio.clock;
  const answerStart = clock.monotonic();
  await Promise.all(c.open().filter((n) => n.step === 'joined').map((n) => versions(c, n.device)));
  if (c.stopped) return;
  if (c.s.plan === null && !plan(c, clock.monotonic() - answerStart)) return;
  const p = c.s.plan;
  // resumed: a window that closes before the multicast could end is planned anew (the nodes take the new one)
  if (p !== null && (c.s.windowEnd ?? 0) < unixToGpsMs(clock.now()) + p.durationMs) newWindow(c, MIN_START_LEAD_MS, p.durationMs);
  await Promise.all(c.open().filter((n) => ['versioned', 'grouped', 'fragSetup'].includes(n.step)).map((n) => nodeSetup(c, n.device)));
  if (c.stopped) return;
  c.patch({ step: 'multicast' });
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
    return c.fail(device, 'E_FW_TRANSFER', `answers package ${pkg.packageIdentifier} version ${pkg.packageVersion} on FPort 201: this gateway speaks TS004 (package 3) versions 1 and 2`);
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
    for (const n of others) c.fail(n.device, 'E_FW_TRANSFER', `implements TS004 v${n.fragVersion}, and lorawan.fuota.fragmentation is ${st.fragmentation}`);
  } else if (others.length > 0) {
    const moving = others.flatMap((n) => c.release(n.device, `implements TS004 v${n.fragVersion}: moved to a session of that version`) ?? []);
    c.deps.handOver(moving, `TS004 v${version === 1 ? 2 : 1} nodes`);
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
      nodes: nodes.length,
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
    for (const n of nodes) c.fail(n.device, err instanceof FirmwareError ? (err.code as FirmwareCode) : 'E_FW_TRANSFER', errorMessage(err));
    return false;
  }
  c.patch({ fragVersion: version, plan: made, deadline: c.deps.radio.clock.now() + made.sessionTimeoutMs });
  newWindow(c, startLeadMs, made.durationMs);
  c.emit('planned', { nodes: nodes.length, fragmentation: version, ...planFigures(made) });
  c.log.info({ nodes: nodes.length, fragmentation: version, ...planFigures(made) }, 'fuota: session planned');
  return true;
}

/** McGroupSetupReq, FragSessionSetupReq, McClassCSessionReq: the node is ready for the multicast. */
async function nodeSetup(c: SessionCore, device: string): Promise<void> {
  const st = c.deps.settings;
  const node = c.node(device)!;
  if (node.fragVersion !== c.s.fragVersion) return c.fail(device, 'E_FW_TRANSFER', `implements TS004 v${node.fragVersion}; this session speaks v${c.s.fragVersion}`);
  if (node.step === 'versioned') {
    const genAppKey = c.deps.radio.genAppKey(device);
    if (genAppKey === null) return c.fail(device, 'E_FW_TARGET', 'has no GenAppKey: set lorawan.devices[].genAppKey');
    const setup = { cid: 'McGroupSetupReq' as const, mcGroupId: st.mcGroupId, mcAddr: c.s.mcAddr, mcKeyEncrypted: encryptMcKey(genAppKey, c.s.mcKey), minMcFCnt: 0, maxMcFCnt: MC_FCNT_MAX };
    const ans = await c.requests.ask(device, { fPort: FPORT_MULTICAST, payload: encodeMulticastDown([setup]), label: 'McGroupSetupReq' }, (a) =>
      a.fPort === FPORT_MULTICAST && a.cmd.cid === 'McGroupSetupAns' && a.cmd.mcGroupId === st.mcGroupId ? a.cmd : undefined,
    );
    if (ans === null) return c.silent(device, 'McGroupSetupReq');
    if (ans.idError) return c.fail(device, 'E_FW_TRANSFER', `refused McGroupSetupReq: multicast group ${st.mcGroupId} is not one it has (lorawan.fuota.mcGroupId)`);
    c.setNode(device, { step: 'grouped' });
  }
  const step = c.node(device)!.step;
  if ((step === 'grouped' || step === 'fragSetup') && !(await fragSetup(c, device))) return;
  await classC(c, device);
}

/** FragSessionSetupReq (TS004 §3.2, v2 §3.3); true once the node took it. */
async function fragSetup(c: SessionCore, device: string): Promise<boolean> {
  const p = c.s.plan!;
  const version = c.s.fragVersion!;
  const genAppKey = c.deps.radio.genAppKey(device);
  if (version === 2 && !genAppKey) {
    c.fail(device, 'E_FW_TARGET', 'has no GenAppKey for the data block MIC of TS004 v2');
    return false;
  }
  const sentBefore = c.node(device)!.step === 'fragSetup';
  c.setNode(device, { step: 'fragSetup' });
  // the image's version: the node can tell which image the block is (TS004 §3.2: the Descriptor is free)
  const descriptor = c.versionCode >>> 0;
  const v2 = genAppKey && version === 2 ? { sessionCnt: c.s.sessionCnt, ackReception: true, mic: dataBlockMic(dataBlockIntKey(genAppKey), { sessionCnt: c.s.sessionCnt, fragIndex: FRAG_INDEX, descriptor, data: c.image }) } : {};
  const req = { cid: 'FragSessionSetupReq' as const, fragIndex: FRAG_INDEX, mcGroupBitMask: 1 << c.deps.settings.mcGroupId, nbFrag: p.fragments, fragSize: p.fragSize, fragAlgo: FRAG_ALGO, blockAckDelay: BLOCK_ACK_DELAY, padding: p.padding, descriptor, ...v2 };
  const ans = await c.requests.ask(
    device,
    { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([req], version), label: 'FragSessionSetupReq' },
    (a) => (a.fPort === FPORT_FRAGMENTATION && a.cmd.cid === 'FragSessionSetupAns' && a.cmd.fragIndex === FRAG_INDEX ? a.cmd : undefined),
    undefined,
    () => c.fragSetupSends.set(device, (c.fragSetupSends.get(device) ?? 0) + 1),
  );
  if (ans === null) {
    c.silent(device, 'FragSessionSetupReq');
    return false;
  }
  // v2 §3.3: a counter not above the node's last; after a send of ours before, that was ours
  const ownReplay = ans.sessionCntReplay === true && (sentBefore || (c.fragSetupSends.get(device) ?? 0) > 1);
  const refusal = [
    ans.encodingUnsupported && 'the fragmentation algorithm (FragAlgo 0) is unsupported',
    ans.notEnoughMemory && `not enough memory for ${p.fragments} fragments of ${p.fragSize} bytes (${p.fragments * p.fragSize} bytes)`,
    ans.fragIndexUnsupported && `FragIndex ${FRAG_INDEX} is unsupported`,
    ans.wrongDescriptor && 'the descriptor is wrong',
    ans.sessionCntReplay === true && !ownReplay && `SessionCnt ${c.s.sessionCnt} is not above the last it took`,
  ].filter((x): x is string => typeof x === 'string');
  if (refusal.length > 0) {
    c.fail(device, 'E_FW_TRANSFER', `refused FragSessionSetupReq: ${refusal.join('; ')}`);
    return false;
  }
  c.emitNode(device, 'fragSetup', { fragments: p.fragments, fragSize: p.fragSize, fragmentation: version });
  return true;
}

/** McClassCSessionReq (TS005 §4.5): the session's class C window (as planned, or reopened). True once the node took it. */
export async function classC(c: SessionCore, device: string): Promise<boolean> {
  const st = c.deps.settings;
  const sessionTime = c.s.sessionTime!;
  const timeOut = Math.round(Math.log2((c.s.windowEnd! - sessionTime * 1000) / 1000));
  const req = { cid: 'McClassCSessionReq' as const, mcGroupId: st.mcGroupId, sessionTime: sessionTime >>> 0, timeOut, frequency: st.frequency, dr: st.dr };
  const ans = await c.requests.ask(device, { fPort: FPORT_MULTICAST, payload: encodeMulticastDown([req]), label: 'McClassCSessionReq' }, (a) =>
    a.fPort === FPORT_MULTICAST && a.cmd.cid === 'McClassCSessionAns' && a.cmd.mcGroupId === st.mcGroupId ? a.cmd : undefined,
  );
  if (ans === null) {
    c.silent(device, 'McClassCSessionReq');
    return false;
  }
  const errors = [ans.drError && `data rate ${st.dr}`, ans.freqError && `frequency ${st.frequency} Hz`, ans.mcGroupUndefined && `group ${st.mcGroupId} undefined or the window past`].filter(
    (x): x is string => typeof x === 'string',
  );
  if (errors.length > 0) {
    c.fail(device, 'E_FW_TRANSFER', `refused McClassCSessionReq: ${errors.join('; ')}`);
    return false;
  }
  c.setNode(device, { step: 'ready' });
  c.emitNode(device, 'ready', { timeToStart: ans.timeToStart });
  return true;
}

/** A class C window opening `leadMs` from now, long enough for `multicastMs` of fragments with the plan's margin (journaled). */
export function newWindow(c: SessionCore, leadMs: number, multicastMs: number): void {
  const sessionTime = Math.ceil((unixToGpsMs(c.deps.radio.clock.now()) + leadMs) / 1000);
  const timeOut = timeOutExponent(leadMs + multicastMs * WINDOW_MARGIN);
  c.patch({ sessionTime, windowEnd: (sessionTime + 2 ** timeOut) * 1000 });
  c.emit('window', { sessionTime, timeOut });
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
