/**
 * A node's steps after the multicast (issue 18 Deliver 3c–d), each node on its own:
 *
 *   status     FragSessionStatusReq (TS004 §3.5): whole (v2: its MIC holds) → received; missing
 *              fragments → unicast repair with parity numbered after every fragment sent so far,
 *              then status again, up to REPAIR_ROUNDS rounds; silent → E_FW_TIMEOUT
 *   reboot     once the gates and caps let it: DevRebootCountdownReq (TS006 §3.4) → activating
 *   verify     after the countdown, DevVersionReq → verifying; the new version → done (confirmed),
 *              an old one → E_FW_VERIFY, silence → E_FW_TIMEOUT
 *
 * Nothing stays in progress: each step either moves the node on or fails it with its reason, but
 * a stop (every member left), which leaves the node where the journal has it.
 */
import { encodeFragDown, FPORT_FIRMWARE, FPORT_FRAGMENTATION } from '../../../drivers/lorawan/app/index.js';
import { firmwareReq, seconds, type SessionCore } from './core.js';
import { FRAG_INDEX } from './multicast.js';
import { repairCount, repairRoundMs, REPAIR_ROUNDS, type FuotaPlan } from './planner.js';

/** how often a node whose reboot waits for a gate asks again (radio clock) */
const GATE_RETRY_MS = 5000;
/** a node answers DevVersionReq this long after its countdown at the earliest (it boots) */
const BOOT_MS = 1000;

/** A node from where it is to its end: status and repair, reboot, version. */
export async function finishNode(c: SessionCore, device: string): Promise<void> {
  const step = c.node(device)?.step;
  if (step !== 'ready' && step !== 'received' && step !== 'rebooting' && step !== 'verifying') {
    // never left in progress: a node the setup did not take this far
    return c.fail(device, 'E_FW_TRANSFER', `was not set up for the multicast (it stopped at ${step ?? 'nothing'})`);
  }
  if (c.node(device)?.step === 'ready' && !(await repair(c, device))) return;
  if (c.node(device)?.step === 'received' && !(await reboot(c, device))) return;
  if (c.node(device)?.step === 'rebooting') await afterCountdown(c, device);
  if (c.node(device)?.step === 'verifying') await verify(c, device);
}

/** FragSessionStatusReq, then unicast repair with fresh parity, up to REPAIR_ROUNDS rounds. True once the node holds the block. */
async function repair(c: SessionCore, device: string): Promise<boolean> {
  const plan = c.s.plan!;
  for (;;) {
    if (pastDeadline(c, device)) return false;
    const ans = await status(c, device);
    if (c.stopped) return false;
    if (ans === 'silent') {
      c.fail(device, 'E_FW_TIMEOUT', `did not answer FragSessionStatusReq within ${seconds(c.deps.settings.answerTimeoutMs)} s`);
      return false;
    }
    if (ans === null) return false; // failed with its reason
    if (ans.missing === 0) return received(c, device);
    if (c.node(device)!.rounds >= REPAIR_ROUNDS) {
      c.fail(device, 'E_FW_TRANSFER', `still misses ${ans.missing} fragments after ${REPAIR_ROUNDS} rounds of repair`);
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
  const fail = (code: 'E_FW_TRANSFER' | 'E_FW_VERIFY', reason: string): null => {
    c.fail(device, code, reason);
    return null;
  };
  if (ans.sessionDoesNotExist === true) return fail('E_FW_TRANSFER', 'has no fragmentation session any more (it rebooted or dropped it)');
  if (ans.notEnoughMemory) return fail('E_FW_TRANSFER', `ran out of memory decoding the block (${plan.fragments} fragments of ${plan.fragSize} bytes)`);
  if (ans.micError === true || (ans.missingFrag === 0 && c.blockMic.get(device) === false)) {
    return fail('E_FW_VERIFY', 'reassembled the block, but its MIC differs: the image it holds is not the one sent');
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
 * Parity numbered after every fragment sent so far (fresh equations), by unicast: as many as the
 * node misses and more, sized for the loss it showed (its frames are lost as the multicast's were),
 * never more than the multicast sent (a node that needs more hears next to nothing: it fails rather
 * than take the sub-band for a multicast of its own by unicast). False when it failed.
 */
async function repairRound(c: SessionCore, device: string, missing: number, plan: FuotaPlan): Promise<boolean> {
  const loss = c.deps.journal.losses([device]).get(device) ?? plan.loss;
  const count = repairCount(missing, loss);
  if (count > plan.fragments + plan.parity) {
    c.fail(device, 'E_FW_TRANSFER', `misses ${missing} of ${plan.fragments} fragments and loses ${Math.round(loss * 100)} % of them: its repair would take more than the multicast sent`);
    return false;
  }
  const first = c.s.highestN + 1;
  // numbers taken before a frame goes: another node's repair never reuses them
  c.patch({ highestN: c.s.highestN + count });
  const node = c.node(device)!;
  c.setNode(device, { rounds: node.rounds + 1, repairs: node.repairs + count });
  c.deps.metrics.repairRounds++;
  c.emitNode(device, 'repair', { round: node.rounds, missing, fragments: count, from: first, plannedMs: repairRoundMs(plan, count) });
  const clock = c.deps.radio.clock;
  for (let n = first; n < first + count && !c.stopped; n++) {
    if (pastDeadline(c, device)) return false;
    const payload = c.fragments().frame(n);
    const started = clock.monotonic();
    if (await c.requests.tell(device, { fPort: FPORT_FRAGMENTATION, payload, label: 'DataFragment' })) c.deps.metrics.repairFragments++;
    // the repair road's off-time (its sub-band's duty cycle), from the start of this frame
    await c.timers.until(started + plan.repairIntervalMs);
  }
  return true;
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
    await c.timers.sleep(GATE_RETRY_MS);
  }
  const clock = c.deps.radio.clock;
  const delay = c.deps.settings.rebootDelayMs;
  const countdown = Math.round(delay / 1000);
  // the caps count the node from here, before the request goes
  c.setNode(device, { step: 'rebooting', rebootAt: clock.now() + delay });
  c.member(device)?.advanced('activating');
  const req = firmwareReq({ cid: 'DevRebootCountdownReq', countdown }, 'DevRebootCountdownReq');
  if (countdown === 0) {
    // TS006 §3.4: a countdown of 0 reboots at once, unanswered (LoRaMac-node answers none)
    await c.requests.tell(device, req);
  } else {
    const ans = await c.requests.ask(device, req, (a) => (a.fPort === FPORT_FIRMWARE && a.cmd.cid === 'DevRebootCountdownAns' ? a.cmd.countdown : undefined));
    if (c.stopped) return false;
    if (ans === null) {
      c.silent(device, 'DevRebootCountdownReq');
      return false;
    }
    // TS006 §3.4 (LoRaMac-node): 0 answers a reboot the node cannot make; all ones, one it cancelled
    if (ans === 0 || ans === 0xffffff) {
      c.fail(device, 'E_FW_VERIFY', `refused to reboot (DevRebootCountdownAns ${ans}): it holds no image it can reboot into`);
      return false;
    }
    c.setNode(device, { rebootAt: clock.now() + ans * 1000 });
  }
  c.emitNode(device, 'rebooting', { countdownS: countdown });
  return true;
}

async function afterCountdown(c: SessionCore, device: string): Promise<void> {
  await c.timers.sleep((c.node(device)!.rebootAt ?? 0) + BOOT_MS - c.deps.radio.clock.now());
  if (c.stopped) return;
  c.setNode(device, { step: 'verifying' });
  c.member(device)?.advanced('verifying');
}

/** DevVersionReq after the reboot: done means the node reports the new version (TS006 §3.2). */
async function verify(c: SessionCore, device: string): Promise<void> {
  const within = c.deps.settings.verifyTimeoutMs;
  const version = await c.requests.ask(device, firmwareReq({ cid: 'DevVersionReq' }, 'DevVersionReq'), (a) => (a.fPort === FPORT_FIRMWARE && a.cmd.cid === 'DevVersionAns' ? a.cmd.fwVersion : undefined), within);
  if (c.stopped) return;
  if (version === null) return c.fail(device, 'E_FW_TIMEOUT', `did not answer DevVersionReq within ${seconds(within)} s of its reboot`);
  if (version !== c.versionCode) return c.fail(device, 'E_FW_VERIFY', `reports version ${version} after its reboot, not ${c.versionCode}: it runs its old firmware`, version);
  c.setNode(device, { step: 'done' });
  c.deps.metrics.node('confirmed');
  c.emitNode(device, 'done', { version });
}

/** The session's plan bounds its repairs: past its deadline the node fails E_FW_TIMEOUT. */
function pastDeadline(c: SessionCore, device: string): boolean {
  if (c.s.deadline === null || c.deps.radio.clock.now() <= c.s.deadline) return false;
  c.fail(device, 'E_FW_TIMEOUT', `the session did not end within its plan's ${seconds(c.s.plan?.sessionTimeoutMs ?? 0)} s`);
  return true;
}
