/**
 * One FUOTA session: the nodes of one deployment's wave (and turn) updated together (issue 18
 * Deliver 3–5), one linear chain of awaited steps, each journaled before the next frame:
 *
 *   setup      per node: versions, the plan, group, fragmentation session, class C window (setup.ts)
 *   multicast  the fragments (multicast.ts), the class C window reopened when it closes first
 *   per node   status and unicast repair, reboot when the gates and caps let it, the version it
 *              reports after it: done means the node reports the new version (nodeSteps.ts)
 *
 * A refusal or a silence fails that node with its code and reason; the others go on. Every unicast
 * request is re-sent up to ATTEMPTS times within lorawan.fuota.answerTimeout (requests.ts); the
 * session's deadline comes from its plan. A stop (every member left: the gateway stops, the
 * deployment pauses) ends the chain at the next step, its state in the journal; the coordinator
 * loads it again when the nodes' jobs come back, and it goes on where it was: mid-multicast it asks
 * the nodes' status first (they keep their decoder), reopens the class C window when it has closed,
 * and sends the fragments not sent yet.
 */
import { randomBytes } from 'node:crypto';
import type { AppUplink } from '../../../drivers/lorawan/api.js';
import { encodeFragDown, FPORT_FRAGMENTATION, type FragVersion } from '../../../drivers/lorawan/app/index.js';
import { unixToGpsMs } from '../../../drivers/lorawan/mac/types.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { FirmwareError } from '../../errors.js';
import type { FirmwareCode } from '../../records.js';
import { seconds, type SessionCore, type SessionDeps, type Severity } from './core.js';
import { FINAL_NODE_STEPS, type FuotaJournal, type NodePatch, type NodeRecord, type SessionPatch, type SessionRecord } from './journal.js';
import { FragmentSource, runMulticast } from './multicast.js';
import { finishNode, received, status } from './nodeSteps.js';
import { ATTEMPTS, NodeRequests, RadioTimers, type AppAnswer } from './requests.js';
import { classC, MIN_START_LEAD_MS, newWindow, setUp } from './setup.js';
import type { FuotaMember, NodeOutcome } from './types.js';

export type { SessionDeps } from './core.js';

interface Attached {
  member: FuotaMember | null;
  outcome: Promise<NodeOutcome>;
  resolve: (o: NodeOutcome) => void;
}

/** A new session's record: random McAddr and McKey (TS005 §4.3: the key never leaves encrypted), the next SessionCnt. */
export function newSessionRecord(journal: FuotaJournal, deployment: string, wave: number, now: number): SessionRecord {
  const turn = journal.turns(deployment, wave);
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
    sessionCnt: (journal.lastSessionCnt() + 1) & 0xffff,
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
   * is no longer addressed). When no member is left the session stops at its next step.
   */
  detach(device: string, how: 'suspend' | 'end', reason?: { code: FirmwareCode; reason: string }): void {
    const a = this.attached.get(device);
    if (a) a.member = null;
    const node = this.nodes.get(device);
    if (how === 'end' && node && !FINAL_NODE_STEPS.includes(node.step)) {
      this.setNode(device, { step: 'failed', code: reason?.code ?? 'E_FW_CANCELLED', reason: reason?.reason ?? 'its job ended' });
    }
    if (![...this.attached.values()].some((x) => x.member !== null)) this.stop();
  }

  /** Runs the session's steps from where it is (once). */
  start(): Promise<void> {
    this.running ??= this.run().catch((err: unknown) => {
      this.log.error({ err }, 'fuota: session failed');
      for (const n of this.open()) this.fail(n.device, err instanceof FirmwareError && err.code.startsWith('E_FW_') ? (err.code as FirmwareCode) : 'E_FW_TRANSFER', errorMessage(err));
    });
    return this.running;
  }

  stop(): void {
    this.timers.stop();
  }

  /** An uplink of one of the session's nodes on FPort 200, 201 or 203. */
  deliver(u: AppUplink): void {
    if (this.nodes.has(u.device)) this.requests.deliver(u);
  }

  // ------------------------------------------------------------------------------------ the chain

  private async run(): Promise<void> {
    this.emit(this.resumed ? 'resumed' : 'started', { at: this.s.step, nodes: this.nodes.size, sent: this.s.sent, nextFragment: this.s.nextFrag });
    if (this.s.step === 'setup') {
      await setUp(this);
      if (this.stopped) return;
    }
    if (this.s.step === 'multicast') {
      if (this.resumed && (this.s.sent > 0 || this.s.resend.length > 0)) await this.statusBeforeResuming();
      await this.multicast();
      if (this.stopped) return;
    }
    await Promise.all(this.open().map((n) => finishNode(this, n.device)));
    if (this.stopped || this.open().length > 0) return;
    this.patch({ step: 'ended', endedAt: this.deps.radio.clock.now() });
    const count = (step: string) => [...this.nodes.values()].filter((n) => n.step === step).length;
    this.emit('ended', { confirmed: count('done'), current: count('current'), failed: count('failed') });
  }

  private async multicast(): Promise<void> {
    const plan = this.s.plan;
    if (plan === null || !this.open().some((n) => n.step === 'ready')) {
      this.patch({ step: 'nodes' });
      return;
    }
    let firstFrameAt: number | null = null;
    this.emit('multicast', { from: this.s.nextFrag, of: plan.fragments + plan.parity });
    const end = await runMulticast({
      radio: this.deps.radio,
      timers: this.timers,
      session: this.s,
      plan,
      source: this.fragments(),
      hooks: {
        journal: (patch) => this.deps.journal.patchSession(this.id, patch),
        sent: () => {
          firstFrameAt ??= this.deps.radio.clock.now();
          this.deps.metrics.fragments++;
        },
        txError: (n, error) => {
          this.deps.metrics.txError(error);
          this.log.warn({ fragment: n, error }, 'fuota: TX_ACK error, the fragment goes again');
          this.emit('txError', { fragment: n, error }, 'warning');
        },
        held: (n, why, waitMs) => {
          this.deps.metrics.hold(why);
          this.log.debug({ fragment: n, why, waitMs }, 'fuota: fragment held');
        },
        ensureWindow: (frameMs) => this.ensureWindow(frameMs),
      },
    });
    if (end === 'stopped') return;
    const ready = this.open().filter((n) => n.step === 'ready');
    if (end === 'deadline') for (const n of ready) this.fail(n.device, 'E_FW_TIMEOUT', `the multicast did not end within its plan's ${seconds(plan.sessionTimeoutMs)} s`);
    if (end === 'noWindow') for (const n of ready) this.fail(n.device, 'E_FW_TRANSFER', 'no node took the class C window again: the multicast could not go on');
    // from the first frame to the end of the last, against the plan and the duty-cycle minimum (the benchmark's figures)
    const durationMs = firstFrameAt === null ? 0 : this.deps.radio.clock.now() - firstFrameAt;
    let txErrors = 0;
    for (const n of this.deps.metrics.txErrors.values()) txErrors += n;
    this.emit('multicastEnded', { end, sent: this.s.sent, txErrors, durationMs, plannedMs: plan.durationMs, dutyCycleMinimumMs: plan.dutyCycleMinimumMs });
    this.patch({ step: 'nodes' });
  }

  /**
   * The class C window, open for the next frame: waits for it to open; reopens it (a new
   * McClassCSessionReq to the nodes still receiving) when it has closed or closes first. False
   * when no node took the new window.
   */
  private async ensureWindow(frameMs: number): Promise<boolean> {
    const gps = () => unixToGpsMs(this.deps.radio.clock.now());
    if (this.s.windowEnd === null || gps() + frameMs > this.s.windowEnd) {
      const plan = this.s.plan!;
      const left = (plan.fragments + plan.parity - this.s.nextFrag + 1 + this.s.resend.length) * (plan.airtimeMs + plan.offTimeMs);
      newWindow(this, MIN_START_LEAD_MS, left);
      const took = await Promise.all(this.open().filter((n) => n.step === 'ready').map((n) => classC(this, n.device)));
      if (this.stopped || !took.some(Boolean)) return false;
    }
    await this.timers.sleep(this.s.sessionTime! * 1000 - gps());
    return !this.stopped;
  }

  /** Resumed mid-multicast: each node's status first (it kept its decoder); one that holds the block goes on to its reboot. */
  private async statusBeforeResuming(): Promise<void> {
    const ready = this.open().filter((n) => n.step === 'ready');
    await Promise.all(
      ready.map(async (n) => {
        const ans = await status(this, n.device);
        // silent: the multicast and the status after it decide
        if (ans !== 'silent' && ans !== null && ans.missing === 0 && !this.stopped) received(this, n.device);
      }),
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

  patch(p: SessionPatch): void {
    Object.assign(this.s, p);
    this.deps.journal.patchSession(this.id, p);
  }

  setNode(device: string, p: NodePatch): void {
    const node = this.nodes.get(device);
    if (!node) return;
    Object.assign(node, p);
    this.deps.journal.patchNode(this.id, device, p);
    this.resolveIfFinal(node);
  }

  fail(device: string, code: FirmwareCode, reason: string, versionAfter?: number): void {
    if (this.stopped) return; // a stop is no failure: the node goes on when its job comes back
    const node = this.nodes.get(device);
    if (!node || FINAL_NODE_STEPS.includes(node.step)) return;
    this.deps.metrics.node('failed', code);
    this.emitNode(device, 'failed', { code, reason, ...(versionAfter !== undefined ? { version: versionAfter } : {}) }, 'warning');
    this.log.warn({ device, code, reason }, 'fuota: node failed');
    // the version it reports goes with the outcome (resolved before the journal's own resolution)
    if (versionAfter !== undefined) this.attached.get(device)?.resolve({ stage: 'failed', code, reason, versionAfter });
    this.setNode(device, { step: 'failed', code, reason });
  }

  silent(device: string, what: string): void {
    this.fail(device, 'E_FW_TIMEOUT', `did not answer ${what} within ${seconds(this.deps.settings.answerTimeoutMs)} s (sent up to ${ATTEMPTS} times)`);
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

  private resolveIfFinal(node: NodeRecord): void {
    if (!FINAL_NODE_STEPS.includes(node.step) || node.step === 'moved') return;
    const a = this.attached.get(node.device);
    if (!a) return;
    if (node.step === 'failed') a.resolve({ stage: 'failed', code: node.code ?? 'E_FW_TRANSFER', reason: node.reason ?? 'failed' });
    else a.resolve({ stage: 'confirmed', versionAfter: this.versionCode, reason: node.step === 'current' ? `already runs version ${this.versionCode}: no transfer` : `reports version ${this.versionCode} after its reboot` });
  }
}
