/**
 * A node's steps after the multicast (issue 18 Deliver 3c–d), each node on its own:
 *
 *   status     FragSessionStatusReq (TS004 §3.5): whole (v2: its MIC holds) → received; missing
 *              fragments → unicast repair with parity of its own, numbered after the multicast's
 *              and its earlier rounds', each frame in the sub-band's next slot (pacer.ts), then
 *              status again, up to REPAIR_ROUNDS rounds; silent → E_FW_TIMEOUT
 *   reboot     once the gates and caps let it (asked again at the gate's retry, or when a reboot
 *              ends anywhere): DevRebootCountdownReq (TS006 §3.4) → activating; its answer is
 *              journaled, and sent again on resume when none came
 *   verify     after the countdown, DevVersionReq → verifying; the new version → done (confirmed);
 *              an old one is asked again until verifyTimeout (a late answer of before the reboot),
 *              then E_FW_VERIFY; silence → E_FW_TIMEOUT
 *
 * Nothing stays in progress: each step either moves the node on or fails it with its reason, but
 * a stop (every member left), which leaves the node where the journal has it.
 */
import { encodeFragDown, FPORT_FIRMWARE, FPORT_FRAGMENTATION, MAX_FRAG_N } from '../../../drivers/lorawan/app/index.js';
import { EU868_RX2_FREQ_MHZ } from '../../../drivers/lorawan/region/eu868.js';
import { firmwareReq, seconds, type SessionCore } from './core.js';
import { FINAL_NODE_STEPS } from './journal.js';
import { FRAG_INDEX } from './multicast.js';
import { repairCount, repairRoundMs, REPAIR_ROUNDS, type FuotaPlan } from './planner.js';
import { ATTEMPTS } from './requests.js';

/** a node whose reboot waits for a gate that does not say when it opens asks again this long after (the gateway's time), or when a reboot ends first */
const GATE_POLL_MS = 60_000;
/** a node answers DevVersionReq this long after its countdown at the earliest (it boots) */
const BOOT_MS = 1000;
/** the unicast repair road: class C downlinks go on RX2 (EU868 869.525 MHz, sub-band g3) */
const REPAIR_FREQUENCY_HZ = EU868_RX2_FREQ_MHZ * 1e6;

/** A node from where it is to its end: status and repair, reboot, version. */
export async function finishNode(c: SessionCore, device: string): Promise<void> {
  const step = c.node(device)?.step;
  if (step !== 'ready' && step !== 'received' && step !== 'rebooting' && step !== 'verifying') {
    // never left in progress: a node the setup did not take this far
    return c.fail(device, 'E_FW_TRANSFER', `was not set up for the multicast (it stopped at ${step ?? 'nothing'})`);
  }
  if (c.node(device)?.step === 'ready' && !(await repair(c, device))) return;
  if (c.node(device)?.step === 'received' && !(await reboot(c, device))) return;
  const node = c.node(device);
  // a restart between the journaled reboot and its answer: the request goes again
  if (node?.step === 'rebooting' && !node.rebootAcked && !(await countdown(c, device, true))) return;
  if (c.node(device)?.step === 'rebooting') await afterCountdown(c, device);
  if (c.node(device)?.step === 'verifying') await verify(c, device);
}

/** FragSessionStatusReq, then unicast repair with fresh parity, up to REPAIR_ROUNDS rounds. True once the node holds the block. */
async function repair(c: SessionCore, device: string): Promise<boolean> {
  const plan = c.s.plan!;
  for (;;) {
    if (ended(c, device) || pastDeadline(c, device)) return false;
    const ans = await status(c, device);
    if (c.stopped) return false;
    if (ans === 'silent') {
      c.fail(device, 'E_FW_TIMEOUT', `did not answer FragSessionStatusReq within ${seconds(c.deps.settings.answerTimeoutMs)} s`, { kind: 'silence' });
      return false;
    }
    if (ans === null) return false; // failed with its reason
    if (ans.missing === 0) return received(c, device);
    if (c.node(device)!.rounds >= REPAIR_ROUNDS) {
      c.fail(device, 'E_FW_TRANSFER', `still misses ${ans.missing} fragments after ${REPAIR_ROUNDS} rounds of repair`, { kind: 'repair' });
      return false;
    }
    if (!(await repairRound(c, device, ans.missing, plan))) return false;
    if (c.stopped) return false;
  }
}

/**
 * The node's FragSessionStatusAns: its missing count (0: the block is whole and, v2, its MIC
 * holds), 'silent', or null when it failed (no session, memory, MIC) with its reason.
 */
export async function status(c: SessionCore, device: string): Promise<{ missing: number } | 'silent' | null> {
  const plan = c.s.plan!;
  const req = { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragSessionStatusReq', fragIndex: FRAG_INDEX, participants: true }], c.s.fragVersion!), label: 'FragSessionStatusReq' };
  const ans = await c.requests.ask(device, req, (a) =>
    a.fPort === FPORT_FRAGMENTATION && a.cmd.cid === 'FragSessionStatusAns' && (a.cmd.fragIndex === FRAG_INDEX || a.cmd.sessionDoesNotExist === true) ? a.cmd : undefined,
  );
  if (ans === null) return 'silent';
  if (ans.sessionDoesNotExist === true) {
    c.fail(device, 'E_FW_TRANSFER', 'has no fragmentation session any more (it rebooted or dropped it)', { kind: 'refused' });
    return null;
  }
  if (ans.notEnoughMemory) {
    c.fail(device, 'E_FW_TRANSFER', `ran out of memory decoding the block (${plan.fragments} fragments of ${plan.fragSize} bytes)`, { kind: 'memory' });
    return null;
  }
  if (ans.micError === true || (ans.missingFrag === 0 && c.blockMic.get(device) === false)) {
    c.fail(device, 'E_FW_VERIFY', 'reassembled the block, but its MIC differs: the image it holds is not the one sent', { kind: 'mic' });
    return null;
  }
  if (c.node(device)!.received === null) observeLoss(c, device, ans.nbFragReceived, ans.missingFrag);
  c.setNode(device, { received: ans.nbFragReceived, missing: ans.missingFrag });
  const held = plan.fragments - Math.min(plan.fragments, ans.missingFrag);
  c.member(device)?.progress(held, plan.fragments, Math.min(c.image.length, held * plan.fragSize));
  c.emitNode(device, 'status', { received: ans.nbFragReceived, missing: ans.missingFrag });
  return { missing: ans.missingFrag };
}

/**
 * The loss a node showed in its first status after (or during) the multicast, journaled for the
 * next session's plan. A node still missing fragments counted every one it got (TS004 §3.5
 * NbFragReceived): its loss is 1 − received / sent. A node that completed the block stopped
 * counting there, so received / sent only bounds its loss from above: an earlier, higher
 * observation is lowered to that bound, and nothing is made up.
 */
function observeLoss(c: SessionCore, device: string, received: number, missing: number): void {
  const sent = c.s.sent;
  if (sent === 0) return;
  const got = Math.min(received, sent);
  const before = c.deps.journal.losses([device]).get(device);
  if (missing > 0 || (before !== undefined && before > 1 - got / sent)) c.deps.journal.recordLoss(device, sent, got, c.deps.radio.clock.now());
}

/**
 * Parity of the node's own by unicast (only it hears them: numbered after the multicast's highest
 * and its own earlier rounds', never past TS004's 14 bits): as many as the node misses and more,
 * sized for the loss it showed (its frames are lost as the multicast's were), never more than the
 * multicast sent (a node that needs more hears next to nothing: it fails rather than take the
 * sub-band for a multicast of its own by unicast). Each frame takes the sub-band's next slot. False
 * when it failed or the session stopped.
 */
async function repairRound(c: SessionCore, device: string, missing: number, plan: FuotaPlan): Promise<boolean> {
  const loss = c.deps.journal.losses([device]).get(device) ?? plan.loss;
  const count = repairCount(missing, loss);
  if (count > plan.fragments + plan.parity) {
    c.fail(device, 'E_FW_TRANSFER', `misses ${missing} of ${plan.fragments} fragments and loses ${Math.round(loss * 100)} % of them: its repair would take more than the multicast sent`, { kind: 'repair' });
    return false;
  }
  const node = c.node(device)!;
  const first = c.s.highestN + node.repairs + 1;
  if (first + count - 1 > MAX_FRAG_N) {
    c.fail(device, 'E_FW_TRANSFER', `its repair would number fragments past ${MAX_FRAG_N} (TS004 §3.4: N has 14 bits)`, { kind: 'repair' });
    return false;
  }
  // numbers taken before a frame goes: the node's next round never reuses them
  c.setNode(device, { rounds: node.rounds + 1, repairs: node.repairs + count });
  c.deps.metrics.repairRounds++;
  c.emitNode(device, 'repair', { round: node.rounds, missing, fragments: count, from: first, plannedMs: repairRoundMs(plan, count) });
  const pacer = c.deps.pacers.of(REPAIR_FREQUENCY_HZ);
  const airtimeMs = c.deps.radio.radio.downlinkAirtimeMs(plan.phyBytes, plan.repairDr);
  for (let n = first; n < first + count; n++) {
    if (ended(c, device) || pastDeadline(c, device)) return false;
    if (!(await pacer.slot(airtimeMs, c.timers, (why) => c.deps.metrics.hold(why)))) return false;
    const payload = c.fragments().frame(n);
    if (await c.requests.tell(device, { fPort: FPORT_FRAGMENTATION, payload, label: 'DataFragment' })) c.deps.metrics.repairFragments++;
  }
  return !c.stopped;
}

/** The node holds the whole block: next, its reboot. */
export function received(c: SessionCore, device: string): boolean {
  c.setNode(device, { step: 'received', missing: 0 });
  c.emitNode(device, 'received');
  return true;
}

/** Waits for the gates and caps, then DevRebootCountdownReq (TS006 §3.4): activating. False when it stops or fails. */
async function reboot(c: SessionCore, device: string): Promise<boolean> {
  for (;;) {
    if (c.stopped || c.node(device)?.step !== 'received') return false;
    // a node whose runner is away waits for it (its job comes back, or ends and fails the node)
    const member = c.member(device);
    const v = member?.mayReboot() ?? { ok: false, waiting: 'its job is away' };
    if (v.ok) {
      member?.waiting(null);
      break;
    }
    member?.waiting(v.waiting);
    // until the gate's own retry (the day begins), else a poll; a reboot ending anywhere wakes it (a cap may have room)
    const waitMs = (v.retryInMs !== undefined ? Math.max(0, v.retryInMs) : GATE_POLL_MS) * c.deps.settings.radioTimeScale;
    await c.deps.rebootWaits.sleep(c.timers, waitMs);
  }
  // the caps count the node from here, before the request goes
  c.setNode(device, { step: 'rebooting', rebootAt: c.deps.radio.clock.now() + c.deps.settings.rebootDelayMs, rebootAcked: false });
  c.member(device)?.advanced('activating');
  return countdown(c, device, false);
}

/**
 * DevRebootCountdownReq (TS006 §3.4), its answer journaled. `again`: the request may have gone
 * before a restart; a node that now says it cannot reboot may have rebooted on it already (its
 * version decides), not refused it.
 */
async function countdown(c: SessionCore, device: string, again: boolean): Promise<boolean> {
  const clock = c.deps.radio.clock;
  const countdownS = Math.round(c.deps.settings.rebootDelayMs / 1000);
  const req = firmwareReq({ cid: 'DevRebootCountdownReq', countdown: countdownS }, 'DevRebootCountdownReq');
  if (countdownS === 0) {
    // TS006 §3.4: a countdown of 0 reboots at once, unanswered (LoRaMac-node answers none)
    const went = await c.requests.tell(device, req);
    if (c.stopped) return false;
    if (!went) {
      c.fail(device, 'E_FW_TRANSFER', 'DevRebootCountdownReq (countdown 0) did not go out: the network server did not transmit it', { kind: 'other' });
      return false;
    }
    c.setNode(device, { rebootAt: clock.now(), rebootAcked: true });
  } else {
    const ans = await c.requests.ask(device, req, (a) => (a.fPort === FPORT_FIRMWARE && a.cmd.cid === 'DevRebootCountdownAns' ? a.cmd.countdown : undefined));
    if (c.stopped) return false;
    if (ans === null) {
      c.silent(device, 'DevRebootCountdownReq');
      return false;
    }
    // TS006 §3.4 (LoRaMac-node): 0 answers a reboot the node cannot make; all ones, one it cancelled
    const refused = ans === 0 || ans === 0xffffff;
    if (refused && !again) {
      c.fail(device, 'E_FW_VERIFY', `refused to reboot (DevRebootCountdownAns ${ans}): it holds no image it can reboot into`, { kind: 'verify' });
      return false;
    }
    c.setNode(device, { rebootAt: clock.now() + (refused ? 0 : ans * 1000), rebootAcked: true });
  }
  c.emitNode(device, 'rebooting', { countdownS, ...(again ? { again } : {}) });
  return true;
}

async function afterCountdown(c: SessionCore, device: string): Promise<void> {
  await c.timers.sleep((c.node(device)!.rebootAt ?? 0) + BOOT_MS - c.deps.radio.clock.now());
  if (c.stopped) return;
  c.setNode(device, { step: 'verifying' });
  c.member(device)?.advanced('verifying');
}

/**
 * DevVersionReq after the reboot, until verifyTimeout: done means the node reports the new
 * version (TS006 §3.2). An old version may be a late answer or a node still booting: it is asked
 * again (ATTEMPTS times at most over the timeout) before it fails E_FW_VERIFY.
 */
async function verify(c: SessionCore, device: string): Promise<void> {
  const clock = c.deps.radio.clock;
  const within = c.deps.settings.verifyTimeoutMs;
  const until = clock.now() + within;
  let old: number | null = null;
  for (let left = within; left > 0 && !c.stopped; left = until - clock.now()) {
    const version = await c.requests.ask(device, firmwareReq({ cid: 'DevVersionReq' }, 'DevVersionReq'), (a) => (a.fPort === FPORT_FIRMWARE && a.cmd.cid === 'DevVersionAns' ? a.cmd.fwVersion : undefined), left);
    if (c.stopped) return;
    if (version === c.versionCode) {
      c.setNode(device, { step: 'done' });
      c.deps.metrics.node('confirmed');
      c.emitNode(device, 'done', { version });
      return;
    }
    if (version === null) break; // silent for the rest of the time
    old = version;
    await c.timers.sleep(Math.min(until - clock.now(), within / ATTEMPTS));
  }
  if (c.stopped) return;
  if (old === null) return c.fail(device, 'E_FW_TIMEOUT', `did not answer DevVersionReq within ${seconds(within)} s of its reboot`, { kind: 'silence' });
  c.fail(device, 'E_FW_VERIFY', `reports version ${old} after its reboot, not ${c.versionCode}: it runs its old firmware (asked for ${seconds(within)} s)`, { kind: 'verify', versionAfter: old });
}

/** The node is at its end (its job ended while its step was under way): nothing more is sent to it. */
function ended(c: SessionCore, device: string): boolean {
  const step = c.node(device)?.step;
  return step === undefined || FINAL_NODE_STEPS.includes(step);
}

/** The session's plan bounds its repairs: past its deadline the node fails E_FW_TIMEOUT. */
function pastDeadline(c: SessionCore, device: string): boolean {
  if (c.s.deadline === null || c.deps.radio.clock.now() <= c.s.deadline) return false;
  c.fail(device, 'E_FW_TIMEOUT', `the session did not end within its plan's ${seconds(c.s.plan?.sessionTimeoutMs ?? 0)} s`, { kind: 'deadline' });
  return true;
}
