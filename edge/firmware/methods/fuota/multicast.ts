/**
 * The multicast of a FUOTA session (TS004 §3.4 DataFragment on FPort 201, sent to the TS005 group
 * in its class C window): the M uncoded fragments, then the planned parity, each through
 * sendMulticast and each followed by its off-time (airtime / dutyCycle from the start of one
 * transmission to the next), so the sub-band's duty cycle holds per transmission; the driver asks
 * the duty-cycle ledger before each frame and charges it.
 *
 *   sent        → the next fragment after the off-time
 *   txError     → counted by error (TOO_LATE, COLLISION_PACKET, TX_FREQ, …); the air time was refunded;
 *                 the fragment goes again after the others
 *   dutyCycle   → the same fragment once the ledger has budget (retryAt)
 *   noForwarder → the same fragment after NO_FORWARDER_WAIT_MS
 *
 * Before each frame its multicast FCnt is journaled as used (write-ahead: a counter is never sent
 * twice, even across a SIGKILL between the journal and the radio), and after it the fragments sent
 * and the next one. The loop ends when every fragment went, the session stops (resumed later from
 * the journal), or its deadline passes.
 */
import type { MulticastOutcome } from '../../../drivers/lorawan/api.js';
import { encodeFragDown, fragmentData, FPORT_FRAGMENTATION, mcSessionKeys, parityFragment, type FragVersion } from '../../../drivers/lorawan/app/index.js';
import type { FuotaPlan } from './planner.js';
import type { RadioTimers } from './requests.js';
import type { SessionPatch, SessionRecord } from './journal.js';
import type { FuotaRadio } from './types.js';

/** how long the multicast waits when no forwarder can transmit */
export const NO_FORWARDER_WAIT_MS = 5000;
/** FragIndex of the session's fragmentation session on its nodes (TS004 §3.2: 0..3) */
export const FRAG_INDEX = 0;

/** The image cut as the plan says, and any fragment N of it (1..M uncoded, above M parity). */
export class FragmentSource {
  private readonly uncoded: Buffer[];

  constructor(
    private readonly version: FragVersion,
    image: Buffer,
    plan: Pick<FuotaPlan, 'fragSize'>,
  ) {
    this.uncoded = fragmentData(image, plan.fragSize).fragments;
  }

  get m(): number {
    return this.uncoded.length;
  }

  /** The DataFragment frame of fragment `n` (TS004 §3.4). */
  frame(n: number): Buffer {
    const payload = n <= this.m ? this.uncoded[n - 1]! : parityFragment(this.version, this.uncoded, n - this.m);
    return encodeFragDown([{ cid: 'DataFragment', fragIndex: FRAG_INDEX, n, payload }], this.version);
  }
}

/** What the multicast reports as it goes. */
export interface MulticastHooks {
  /** journals the session's patch (before the next frame) */
  journal(patch: SessionPatch): void;
  /** a frame went (TX_ACK without error) */
  sent(n: number, outcome: Extract<MulticastOutcome, { status: 'sent' }>): void;
  /** a TX_ACK error: counted, the fragment goes again later */
  txError(n: number, error: string): void;
  /** the ledger or the forwarders hold the frame */
  held(n: number, why: 'dutyCycle' | 'noForwarder', waitMs: number): void;
  /** the class C window closes before the next frame would end: reopen it (McClassCSessionReq) */
  ensureWindow(nextFrameMs: number): Promise<boolean>;
}

export type MulticastEnd = 'done' | 'stopped' | 'deadline' | 'noWindow';

/** The fragment to send next: the planned sequence first, then those a TX_ACK error sent back. */
function nextFragment(s: Pick<SessionRecord, 'nextFrag' | 'resend'>, total: number): number | null {
  if (s.nextFrag <= total) return s.nextFrag;
  return s.resend[0] ?? null;
}

/** `s` after fragment `n` went (ok) or came back (a TX_ACK error). */
function advanced(s: Pick<SessionRecord, 'nextFrag' | 'resend'>, total: number, n: number, ok: boolean): Pick<SessionRecord, 'nextFrag' | 'resend'> {
  const fromSequence = s.nextFrag <= total && n === s.nextFrag;
  const resend = fromSequence ? [...s.resend] : s.resend.slice(1);
  if (!ok) resend.push(n);
  return { nextFrag: fromSequence ? s.nextFrag + 1 : s.nextFrag, resend };
}

/**
 * Sends what is left of the multicast of `session` (mutated as it is journaled). The radio's clock
 * paces it; `timers` cut a wait short when the session stops.
 */
export async function runMulticast(o: {
  radio: FuotaRadio;
  timers: RadioTimers;
  session: SessionRecord;
  plan: FuotaPlan;
  source: FragmentSource;
  hooks: MulticastHooks;
}): Promise<MulticastEnd> {
  const { radio, timers, session: s, plan, source, hooks } = o;
  const total = plan.fragments + plan.parity;
  const keys = mcSessionKeys(s.mcKey, s.mcAddr);
  const clock = radio.clock;
  for (let n = nextFragment(s, total); n !== null; n = nextFragment(s, total)) {
    if (timers.isStopped) return 'stopped';
    if (s.deadline !== null && clock.now() > s.deadline) return 'deadline';
    if (!(await hooks.ensureWindow(plan.airtimeMs))) return timers.isStopped ? 'stopped' : 'noWindow';
    const fCnt = s.mcFCnt;
    s.mcFCnt = fCnt + 1;
    hooks.journal({ mcFCnt: s.mcFCnt });
    const frame = source.frame(n);
    // the transmission starts now: its off-time counts from here
    const started = clock.monotonic();
    const outcome = await radio.sendMulticast({ mcAddr: s.mcAddr, ...keys, fCnt, frequency: plan.frequency, dr: plan.dr }, FPORT_FRAGMENTATION, frame);
    // stopped meanwhile: the journal is another session object's now (a fragment gone unrecorded only goes again)
    if (timers.isStopped) return 'stopped';
    switch (outcome.status) {
      case 'sent': {
        Object.assign(s, advanced(s, total, n, true), { sent: s.sent + 1, highestN: Math.max(s.highestN, n) });
        hooks.journal({ nextFrag: s.nextFrag, resend: s.resend, sent: s.sent, highestN: s.highestN });
        hooks.sent(n, outcome);
        // the off-time of this transmission, counted from its start (ETSI EN 300 220-2)
        await timers.until(started + outcome.airtimeMs / plan.dutyCycle);
        break;
      }
      case 'txError':
        Object.assign(s, advanced(s, total, n, false), { highestN: Math.max(s.highestN, n) });
        hooks.journal({ nextFrag: s.nextFrag, resend: s.resend, highestN: s.highestN });
        hooks.txError(n, outcome.error);
        break;
      case 'dutyCycle': {
        const wait = Math.max(0, outcome.retryAt - clock.monotonic());
        hooks.held(n, 'dutyCycle', wait);
        await timers.sleep(wait);
        break;
      }
      case 'noForwarder':
        hooks.held(n, 'noForwarder', NO_FORWARDER_WAIT_MS);
        await timers.sleep(NO_FORWARDER_WAIT_MS);
        break;
    }
  }
  return 'done';
}
