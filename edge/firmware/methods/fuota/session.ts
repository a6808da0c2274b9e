/**
 * One FUOTA session: the nodes of one deployment's wave (and turn) updated together (issue 18
 * Deliver 3–5), one linear chain of awaited steps, each journaled before the next frame:
 *
 *   setup      per node: versions, the plan, group, fragmentation session, class C window (setup.ts)
 *   multicast  the fragments (multicast.ts), the class C window reopened when it closes first
 *   per node   status and unicast repair, reboot when the gates and caps let it, the version it
 *              reports after it: done means the node reports the new version (nodeSteps.ts)
 *
 * A refusal or a silence fails that node with its code and reason; the others go on (a step that
 * throws fails its node alone). Every unicast request is re-sent up to ATTEMPTS times within
 * lorawan.fuota.answerTimeout (requests.ts); the session's deadline comes from its plan, and moves
 * to what is left of it on a resume, a new window, the sub-band's turn after a wait. The multicast
 * waits for the sub-band's turn (one session at a time, pacer.ts). A stop (no node short of its end
 * has its member: the gateway stops, the deployment pauses) ends the chain at the next step, its
 * state in the journal; the coordinator loads it again when the nodes' jobs come back, and it goes
 * on where it was: mid-multicast it asks the nodes' status first (they keep their decoder), reopens
 * the class C window when it has closed, and sends the fragments not sent yet.
 *
 * A node that failed (or whose job ended) after it took the group is told to forget it
 * (FragSessionDeleteReq, McGroupDeleteReq: best effort, one frame each); once every node is at its
 * end the session ends and its McKey is wiped from the journal.
 */
import { randomBytes } from 'node:crypto';
import type { AppUplink } from '../../../drivers/lorawan/api.js';
import { encodeFragDown, encodeMulticastDown, FPORT_FRAGMENTATION, FPORT_MULTICAST, type FragVersion } from '../../../drivers/lorawan/app/index.js';
import { unixToGpsMs } from '../../../drivers/lorawan/mac/types.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import type { FirmwareCode } from '../../records.js';
import { eachNode, errorCode, seconds, type SessionCore, type SessionDeps, type Severity } from './core.js';
import { FINAL_NODE_STEPS, type NodePatch, type NodeRecord, type NodeStep, type SessionPatch, type SessionRecord } from './journal.js';
import type { FailureKind } from './metrics.js';
import { FRAG_INDEX, FragmentSource, MAX_TX_ERRORS_IN_A_ROW, runMulticast } from './multicast.js';
import { finishNode, received, status } from './nodeSteps.js';
import { SETUP_STEPS } from './planner.js';
import { ATTEMPTS, NodeRequests, RadioTimers, type AppAnswer } from './requests.js';
import { classC, newWindow, rebound, setUp, windowLead } from './setup.js';
import type { FuotaMember, NodeOutcome } from './types.js';

export type { SessionDeps } from './core.js';

interface Attached {
  member: FuotaMember | null;
  outcome: Promise<NodeOutcome>;
  resolve: (o: NodeOutcome) => void;
}

/** the steps of a node that took the session's multicast group: told to forget it when it fails */
const GROUPED_STEPS: readonly NodeStep[] = ['grouped', 'fragSetup', 'ready', 'received', 'rebooting', 'verifying'];
/** a node's reboot holds a reboot slot (the caps count it) in these steps */
const REBOOT_STEPS: readonly NodeStep[] = ['rebooting', 'verifying'];
/** TX_ACK error events of a session at most this often (radio clock); each carries the count since the last */
const TX_ERROR_EVENT_MS = 60_000;

/** A new session's record: random McAddr and McKey (TS005 §4.3: the key never leaves encrypted). */
export function newSessionRecord(turn: number, deployment: string, wave: number, now: number): SessionRecord {
  return {
    id: `${deployment}/${wave + 1}/${turn + 1}`,
    deployment,
    wave,
    turn,
    step: 'setup',
    fragVersion: null,
    plan: null,
    mcAddr: randomBytes(4).toString('hex'),
    mcKey: randomBytes(16),
    mcFCnt: 0,
    nextFrag: 1,
    resend: [],
    sent: 0,
    highestN: 0,
    sessionTime: null,
    windowEnd: null,
    deadline: null,
    startedAt: now,
    endedAt: null,
  };
}

export class FuotaSession implements SessionCore {
  readonly id: string;
  readonly s: SessionRecord;
  readonly timers: RadioTimers;
  readonly requests: NodeRequests;
  readonly log: Logger;
  readonly blockMic = new Map<string, boolean>();
  readonly fragSetupSends = new Map<string, number>();
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly attached = new Map<string, Attached>();
  private source: FragmentSource | null = null;
  private running: Promise<void> | null = null;
  /** TX_ACK errors since the last txError event, and when that went (radio monotonic) */
  private txErrorsUntold = 0;
  /** this session's TX_ACK errors (the metrics count every session's since start) */
  private txErrors = 0;
  private txErrorToldAt = Number.NEGATIVE_INFINITY;
  private lastTxError: string | null = null;
  /** the radio clock's monotonic instant this object's run began (a resumed session's earlier frames went before it) */
  private ranFrom = 0;

  constructor(
    readonly deps: SessionDeps,
    record: SessionRecord,
    nodes: readonly NodeRecord[],
    readonly image: Buffer,
    readonly versionCode: number,
    /** loaded from the journal (after a restart or a pause), not begun now */
    private readonly resumed: boolean,
  ) {
    this.id = record.id;
    this.s = { ...record };
    for (const n of nodes) this.nodes.set(n.device, { ...n });
    this.log = deps.log.child({ session: record.id });
    this.timers = new RadioTimers(deps.radio);
    this.requests = new NodeRequests(
      deps.radio,
      this.timers,
      deps.settings.answerTimeoutMs,
      (device) => this.nodeFragVersion(device),
      (device, a) => this.unsolicited(device, a),
      (u) => {
        deps.metrics.undecoded++;
        this.log.warn({ device: u.device, fPort: u.fPort, error: u.error }, 'fuota: an uplink did not decode');
      },
    );
  }

  get deployment(): string {
    return this.s.deployment;
  }

  get wave(): number {
    return this.s.wave;
  }

  /** ms on the radio clock's wall time the session must have ended by (its plan's bound), null before its plan */
  get planDeadline(): number | null {
    return this.s.deadline;
  }

  get stopped(): boolean {
    return this.timers.isStopped;
  }

  has(device: string): boolean {
    return this.nodes.has(device);
  }

  /** The node's outcome once its job's runner is back: a final node's at once, else when the session ends it. */
  attach(member: FuotaMember): Promise<NodeOutcome> {
    const a = this.attachment(member.device);
    a.member = member;
    const node = this.nodes.get(member.device);
    if (node) this.resolveIfFinal(node);
    // a node past its reboot request: its job's stage follows the node's (a crash between the two journals)
    if (node?.step === 'rebooting') member.advanced('activating');
    if (node?.step === 'verifying') member.advanced('verifying');
    return a.outcome;
  }

  /**
   * A member's runner stops: `suspend` (the gateway stops, the deployment pauses: the node is
   * taken up again when its job comes back), or `end` (its job was cancelled or timed out: the node
   * is no longer addressed). When no node short of its end has its member, the session stops at
   * its next step (nothing is sent for nodes whose jobs are away).
   */
  detach(device: string, how: 'suspend' | 'end', reason?: { code: FirmwareCode; reason: string }): void {
    const a = this.attached.get(device);
    if (a) a.member = null;
    const node = this.nodes.get(device);
    if (how === 'end' && node && !FINAL_NODE_STEPS.includes(node.step)) {
      this.deps.metrics.node('failed', { code: reason?.code ?? 'E_FW_CANCELLED', kind: 'cancelled' });
      this.setNode(device, { step: 'failed', code: reason?.code ?? 'E_FW_CANCELLED', reason: reason?.reason ?? 'its job ended' });
    }
    if (!this.open().some((n) => this.member(n.device) !== null)) this.stop();
  }

  /**
   * Runs the session's steps from where it is (once). A resumed session's deadline is what is left
   * of its plan from now, set before anything awaits (the engine's backstop reads it).
   */
  start(): Promise<void> {
    if (this.resumed && this.running === null) this.reboundOnResume();
    this.running ??= this.run().catch((err: unknown) => {
      this.log.error({ err }, 'fuota: session failed');
      for (const n of this.open()) this.fail(n.device, errorCode(err), errorMessage(err));
    });
    return this.running;
  }

  stop(): void {
    this.timers.stop();
  }

  /** An uplink of one of the session's nodes on FPort 200–203. */
  deliver(u: AppUplink): void {
    if (this.nodes.has(u.device)) this.requests.deliver(u);
  }

  // ------------------------------------------------------------------------------------ the chain

  private async run(): Promise<void> {
    this.ranFrom = this.deps.radio.clock.monotonic();
    this.emit(this.resumed ? 'resumed' : 'started', { at: this.s.step, nodes: this.nodes.size, sent: this.s.sent, nextFragment: this.s.nextFrag });
    if (this.s.step === 'setup') {
      await setUp(this);
      if (this.stopped) return;
    }
    if (this.s.step === 'multicast') {
      if (this.resumed && (this.s.sent > 0 || this.s.resend.length > 0)) await this.statusBeforeResuming();
      await this.multicastInTurn();
      if (this.stopped) return;
    }
    await eachNode(
      this,
      this.open().map((n) => n.device),
      (d) => finishNode(this, d),
    );
    this.endIfDone();
  }

  /** Resumed: the deadline is what is left of the plan from where the session is (an outage is not the plan's). */
  private reboundOnResume(): void {
    const answers = this.s.step === 'setup' ? SETUP_STEPS : this.s.step === 'multicast' ? 2 : 1;
    rebound(this, answers, windowLead(this, 1));
  }

  /**
   * The multicast once the sub-band is this session's (one multicast at a time per sub-band). A
   * session that waits is bounded by the one it comes after: its deadline is that one's, and then
   * what is left of its own plan; once its turn comes, what is left from then.
   */
  private async multicastInTurn(): Promise<void> {
    const plan = this.s.plan;
    if (plan === null || !this.open().some((n) => n.step === 'ready')) {
      this.patch({ step: 'nodes' });
      return;
    }
    let waited = false;
    const release = await this.deps.pacers.of(plan.frequency).multicastTurn(this.id, this.timers, (after) => {
      waited = true;
      this.emit('queued', { behind: after });
      rebound(this, 1, windowLead(this, 1), this.deps.deadlineOf(after) ?? undefined);
    });
    if (release === null) return;
    try {
      if (waited) rebound(this, 1, windowLead(this, 1));
      await this.multicast();
    } finally {
      release();
    }
  }

  private async multicast(): Promise<void> {
    const plan = this.s.plan!;
    let firstFrameAt: number | null = null;
    this.emit('multicast', { from: this.s.nextFrag, of: plan.fragments + plan.parity });
    const end = await runMulticast({
      radio: this.deps.radio,
      timers: this.timers,
      session: this.s,
      plan,
      source: this.fragments(),
      ...(this.resumed ? { resumedAt: this.ranFrom } : {}),
      hooks: {
        journal: (patch) => this.deps.journal.patchSession(this.id, patch),
        sent: () => {
          firstFrameAt ??= this.deps.radio.clock.now();
          this.deps.metrics.fragments++;
        },
        txError: (n, error, inARow) => this.txError(n, error, inARow),
        held: (n, why, waitMs) => {
          this.deps.metrics.hold(why);
          this.log.debug({ fragment: n, why, waitMs }, 'fuota: fragment held');
        },
        ensureWindow: (frameMs) => this.ensureWindow(frameMs),
        slot: (frameMs) =>
          this.deps.pacers.of(plan.frequency).slot(frameMs, this.timers, (why, waitMs) => {
            this.deps.metrics.hold(why);
            this.log.debug({ why, waitMs }, 'fuota: fragment held');
          }),
      },
    });
    if (end === 'stopped') return;
    const ready = this.open().filter((n) => n.step === 'ready');
    const failAll = (code: FirmwareCode, reason: string, kind: FailureKind) => {
      for (const n of ready) this.fail(n.device, code, reason, { kind });
    };
    if (end === 'deadline') failAll('E_FW_TIMEOUT', `the multicast did not end within its plan's ${seconds(plan.sessionTimeoutMs)} s`, 'deadline');
    if (end === 'noWindow') failAll('E_FW_TRANSFER', 'no node took the class C window again: the multicast could not go on', 'refused');
    if (end === 'txErrors') failAll('E_FW_TRANSFER', `the forwarder refused ${MAX_TX_ERRORS_IN_A_ROW} fragments in a row (TX_ACK ${this.lastTxError}): the multicast could not go on`, 'tx_error');
    // from the first frame to the end of the last, against the plan and the duty-cycle minimum (the benchmark's figures)
    const durationMs = firstFrameAt === null ? 0 : this.deps.radio.clock.now() - firstFrameAt;
    this.emit('multicastEnded', { end, sent: this.s.sent, txErrors: this.txErrors, durationMs, plannedMs: plan.durationMs, dutyCycleMinimumMs: plan.dutyCycleMinimumMs });
    this.patch({ step: 'nodes' });
  }

  /**
   * A TX_ACK error: counted by error, logged, and told in a `txError` event at most every
   * TX_ERROR_EVENT_MS (with the count since the last), so a refusing forwarder cannot flood the
   * store's events.
   */
  private txError(n: number, error: string, inARow: number): void {
    this.deps.metrics.txError(error);
    this.lastTxError = error;
    this.txErrors++;
    this.txErrorsUntold++;
    this.log.warn({ fragment: n, error, inARow }, 'fuota: TX_ACK error, the fragment goes again');
    const now = this.deps.radio.clock.monotonic();
    if (now - this.txErrorToldAt < TX_ERROR_EVENT_MS) return;
    this.emit('txError', { fragment: n, error, count: this.txErrorsUntold, inARow }, 'warning');
    this.txErrorToldAt = now;
    this.txErrorsUntold = 0;
  }

  /**
   * The class C window, open for the next frame: waits for it to open; reopens it (a new
   * McClassCSessionReq to the nodes still receiving, its lead from the answers observed) when it
   * has closed or closes first. False when no node took the new window.
   */
  private async ensureWindow(frameMs: number): Promise<boolean> {
    const gps = () => unixToGpsMs(this.deps.radio.clock.now());
    if (this.s.windowEnd === null || gps() + frameMs > this.s.windowEnd) {
      newWindow(this, windowLead(this, 1), 1);
      const ready = this.open().filter((n) => n.step === 'ready');
      await eachNode(
        this,
        ready.map((n) => n.device),
        (d) => classC(this, d),
      );
      if (this.stopped || !ready.some((n) => this.node(n.device)?.step === 'ready')) return false;
    }
    await this.timers.sleep(this.s.sessionTime! * 1000 - gps());
    return !this.stopped;
  }

  /** Resumed mid-multicast: each node's status first (it kept its decoder); one that holds the block goes on to its reboot. */
  private async statusBeforeResuming(): Promise<void> {
    const ready = this.open().filter((n) => n.step === 'ready');
    await eachNode(
      this,
      ready.map((n) => n.device),
      async (d) => {
        const ans = await status(this, d);
        // silent: the multicast and the status after it decide
        if (ans !== 'silent' && ans !== null && ans.missing === 0 && !this.stopped) received(this, d);
      },
    );
  }

  /** An answer no request waits for. */
  private unsolicited(device: string, a: AppAnswer): void {
    if (a.fPort === FPORT_FRAGMENTATION && a.cmd.cid === 'FragDataBlockReceivedReq') {
      // TS004 v2 §3.5: the node has the block and says whether its MIC held; it repeats it until acknowledged
      this.blockMic.set(device, a.cmd.micOk);
      this.emitNode(device, 'blockReceived', { micOk: a.cmd.micOk }, a.cmd.micOk ? 'info' : 'warning');
      void this.requests.tell(device, { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragDataBlockReceivedAns', fragIndex: a.cmd.fragIndex }], 2), label: 'FragDataBlockReceivedAns' });
      return;
    }
    this.log.debug({ device, fPort: a.fPort, cid: a.cmd.cid }, 'fuota: an answer no request waits for');
  }

  // ------------------------------------------------------------------------------------ state (SessionCore)

  node(device: string): NodeRecord | undefined {
    return this.nodes.get(device);
  }

  open(): NodeRecord[] {
    return [...this.nodes.values()].filter((n) => !FINAL_NODE_STEPS.includes(n.step));
  }

  member(device: string): FuotaMember | null {
    return this.attached.get(device)?.member ?? null;
  }

  fragments(): FragmentSource {
    this.source ??= new FragmentSource(this.s.fragVersion!, this.image, this.s.plan!);
    return this.source;
  }

  /** Sets and journals `p`; an ended session's step stays ended. */
  patch(p: SessionPatch): void {
    const { step, ...rest } = p;
    const next = this.s.step === 'ended' || step === undefined ? rest : p;
    Object.assign(this.s, next);
    this.deps.journal.patchSession(this.id, next);
  }

  /**
   * Sets and journals a node's patch. A node at its end keeps its step (a step that was under way
   * when it failed cannot move it on); one that reaches its end resolves its job, forgets the group
   * it took, frees its reboot slot, and may end the session.
   */
  setNode(device: string, p: NodePatch): void {
    const node = this.nodes.get(device);
    if (!node) return;
    const before = node.step;
    const wasFinal = FINAL_NODE_STEPS.includes(before);
    const { step, ...rest } = p;
    const next = wasFinal || step === undefined ? rest : p;
    Object.assign(node, next);
    this.deps.journal.patchNode(this.id, device, next);
    if (wasFinal || !FINAL_NODE_STEPS.includes(node.step)) return;
    this.resolveIfFinal(node);
    if (GROUPED_STEPS.includes(before) && node.step === 'failed') this.forget(device);
    if (REBOOT_STEPS.includes(before)) this.deps.rebootWaits.wake();
    this.endIfDone();
  }

  fail(device: string, code: FirmwareCode, reason: string, o: { kind?: FailureKind; versionAfter?: number } = {}): void {
    if (this.stopped) return; // a stop is no failure: the node goes on when its job comes back
    const node = this.nodes.get(device);
    if (!node || FINAL_NODE_STEPS.includes(node.step)) return;
    const { versionAfter } = o;
    this.deps.metrics.node('failed', { code, kind: o.kind ?? (code === 'E_FW_TIMEOUT' ? 'silence' : code === 'E_FW_VERIFY' ? 'verify' : 'other') });
    this.emitNode(device, 'failed', { code, reason, ...(versionAfter !== undefined ? { version: versionAfter } : {}) }, 'warning');
    this.log.warn({ device, code, reason }, 'fuota: node failed');
    // the version it reports goes with the outcome (resolved before the journal's own resolution)
    if (versionAfter !== undefined) this.attached.get(device)?.resolve({ stage: 'failed', code, reason, versionAfter });
    this.setNode(device, { step: 'failed', code, reason });
  }

  silent(device: string, what: string): void {
    this.fail(device, 'E_FW_TIMEOUT', `did not answer ${what} within ${seconds(this.deps.settings.answerTimeoutMs)} s (sent up to ${ATTEMPTS} times)`, { kind: 'silence' });
  }

  /** Every node at its end: the session ends (once), its McKey wiped from the journal and from memory. */
  private endIfDone(): void {
    if (this.s.step === 'ended' || this.open().length > 0) return;
    const at = this.deps.radio.clock.now();
    this.deps.journal.endSession(this.id, at);
    Object.assign(this.s, { step: 'ended', endedAt: at, mcKey: Buffer.alloc(0) });
    const count = (step: string) => [...this.nodes.values()].filter((n) => n.step === step).length;
    this.emit('ended', { confirmed: count('done'), current: count('current'), failed: count('failed'), moved: count('moved') });
  }

  /**
   * A node that failed (or whose job ended) forgets the session's fragmentation session and
   * multicast group (TS004 §3.3 FragSessionDeleteReq, TS005 §4.4 McGroupDeleteReq): it frees the
   * block's memory and stops listening. Best effort, one frame each, expiring after answerTimeout;
   * the answers are not awaited. Both are queued now, so a next session's setup (queued after
   * them, the driver's queue is in order) never meets a late delete. A node that is done rebooted
   * into its new image, which ended its fragmentation session; its group (a McAddr and McKey of
   * this session only) is never sent to again, and two frames per node of a fleet at RX2's DR0 are
   * minutes of the sub-band's hour: it is left as it is.
   */
  private forget(device: string): void {
    const frag = { fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragSessionDeleteReq', fragIndex: FRAG_INDEX }], this.nodeFragVersion(device)), label: 'FragSessionDeleteReq' };
    const group = { fPort: FPORT_MULTICAST, payload: encodeMulticastDown([{ cid: 'McGroupDeleteReq', mcGroupId: this.deps.settings.mcGroupId }]), label: 'McGroupDeleteReq' };
    void Promise.all([this.requests.tell(device, frag), this.requests.tell(device, group)]);
  }

  release(device: string, reason: string): FuotaMember | null {
    const member = this.member(device);
    // its outcome comes from the session it goes to
    this.attached.delete(device);
    this.setNode(device, { step: 'moved', reason });
    this.nodes.delete(device);
    return member;
  }

  emit(step: string, extra: Record<string, unknown> = {}, severity: Severity = 'info'): void {
    this.deps.events.session(this.s.deployment, this.id, step, extra, severity);
  }

  emitNode(device: string, step: string, extra: Record<string, unknown> = {}, severity: Severity = 'info'): void {
    this.deps.events.node(this.s.deployment, this.id, device, step, extra, severity);
  }

  private attachment(device: string): Attached {
    let a = this.attached.get(device);
    if (!a) {
      let resolve!: (o: NodeOutcome) => void;
      const outcome = new Promise<NodeOutcome>((res) => (resolve = res));
      a = { member: null, outcome, resolve };
      this.attached.set(device, a);
    }
    return a;
  }

  private nodeFragVersion(device: string): FragVersion {
    const v = this.s.fragVersion ?? this.nodes.get(device)?.fragVersion;
    return v === 2 ? 2 : 1;
  }

  /** A node at its end resolves its job; its member is gone from here on (its runner ends with the outcome). */
  private resolveIfFinal(node: NodeRecord): void {
    if (!FINAL_NODE_STEPS.includes(node.step) || node.step === 'moved') return;
    const a = this.attached.get(node.device);
    if (!a) return;
    a.member = null;
    if (node.step === 'failed') a.resolve({ stage: 'failed', code: node.code ?? 'E_FW_TRANSFER', reason: node.reason ?? 'failed' });
    else a.resolve({ stage: 'confirmed', versionAfter: this.versionCode, reason: node.step === 'current' ? `already runs version ${this.versionCode}: no transfer` : `reports version ${this.versionCode} after its reboot` });
  }
}
