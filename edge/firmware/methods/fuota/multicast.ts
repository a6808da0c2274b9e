/**
 * The multicast of a FUOTA session (TS004 §3.4 DataFragment on FPort 201, sent to the TS005 group
 * in its class C window): the M uncoded fragments, then the planned parity, each through
 * sendMulticast and each followed by its off-time (airtime / dutyCycle from the start of one
 * transmission to the next), so the sub-band's duty cycle holds per transmission; the driver asks
 * the duty-cycle ledger before each frame and charges it.
 *
 *   sent        → the next fragment after the off-time
 *   txError     → counted by error (TOO_LATE, COLLISION_PACKET, TX_FREQ, …); the air time was refunded;
 *                 the fragment goes again after the others, the next one after the off-time times
 *                 the errors in a row (never a loop hammering a forwarder); MAX_TX_ERRORS_IN_A_ROW
 *                 end the multicast (TX_FREQ, TX_POWER are the forwarder's refusal for good)
 *   dutyCycle   → the same fragment once the ledger has budget (retryAt)
 *   noForwarder → the same fragment after NO_FORWARDER_WAIT_MS; so too when the driver is not
 *                 running (it restarts: sendMulticast throws E_COMPONENT)
 *
 * Each frame first takes its slot of the sub-band (pacer.ts: the other sessions' frames, the
 * repairs, the reserve left to the commands to lights).
 *
 * Before each frame its multicast FCnt is journaled as used (write-ahead: a counter is never sent
 * twice, even across a SIGKILL between the journal and the radio), and after it the fragments sent
 * and the next one. The loop ends when every fragment went, the session stops (resumed later from
 * the journal), or its deadline passes.
 */
import type { MulticastOutcome, MulticastSession } from '../../../drivers/lorawan/api.js';
import { encodeFragDown, fragmentData, FPORT_FRAGMENTATION, mcSessionKeys, parityFragment, type FragVersion } from '../../../drivers/lorawan/app/index.js';
import { StreetboxError } from '../../../errors.js';
import type { FuotaPlan } from './planner.js';
import type { RadioTimers } from './requests.js';
import type { SessionPatch, SessionRecord } from './journal.js';
import type { FuotaRadio } from './types.js';

/** how long the multicast waits when no forwarder can transmit */
export const NO_FORWARDER_WAIT_MS = 5000;
/** TX_ACK errors in a row that end the multicast: the forwarder refuses every frame */
export const MAX_TX_ERRORS_IN_A_ROW = 8;
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
  /** a TX_ACK error: counted, the fragment goes again later (`inARow`: errors since the last frame sent) */
  txError(n: number, error: string, inARow: number): void;
  /** the ledger, the forwarders or the driver (not running) hold the frame */
  held(n: number, why: 'dutyCycle' | 'noForwarder' | 'driverStopped', waitMs: number): void;
  /** the class C window closes before the next frame would end: reopen it (McClassCSessionReq) */
  ensureWindow(nextFrameMs: number): Promise<boolean>;
  /** the sub-band's slot for the next frame (pacer.ts); false when the session stopped meanwhile */
  slot(frameMs: number): Promise<boolean>;
}

/** How the multicast ended: `txErrors` after MAX_TX_ERRORS_IN_A_ROW (the last told through txError). */
export type MulticastEnd = 'done' | 'stopped' | 'deadline' | 'noWindow' | 'txErrors';

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
 * paces it; `timers` cut a wait short when the session stops. `resumedAt`: the radio clock's
 * monotonic instant this run of the session began (after a restart or a pause), when fragments
 * may have gone in an earlier run.
 */
export async function runMulticast(o: {
  radio: FuotaRadio;
  timers: RadioTimers;
  session: SessionRecord;
  plan: FuotaPlan;
  source: FragmentSource;
  hooks: MulticastHooks;
  resumedAt?: number;
}): Promise<MulticastEnd> {
  const { radio, timers, session: s, plan, source, hooks } = o;
  const total = plan.fragments + plan.parity;
  const keys = mcSessionKeys(s.mcKey, s.mcAddr);
  const clock = radio.clock;
  let errorsInARow = 0;
  // the earlier run's last fragment went before this run began, when is not journaled: its
  // off-time is kept from that instant (a gateway restarted at once must not send within it)
  if (o.resumedAt !== undefined && s.sent > 0) await timers.until(o.resumedAt + plan.airtimeMs / plan.dutyCycle);
  for (let n = nextFragment(s, total); n !== null; n = nextFragment(s, total)) {
    if (timers.isStopped) return 'stopped';
    if (s.deadline !== null && clock.now() > s.deadline) return 'deadline';
    if (!(await hooks.ensureWindow(plan.airtimeMs))) return timers.isStopped ? 'stopped' : 'noWindow';
    if (!(await hooks.slot(plan.airtimeMs))) return 'stopped';
    const fCnt = s.mcFCnt;
    s.mcFCnt = fCnt + 1;
    hooks.journal({ mcFCnt: s.mcFCnt });
    const frame = source.frame(n);
    const sending = send(radio, { mcAddr: s.mcAddr, ...keys, fCnt, frequency: plan.frequency, dr: plan.dr }, frame);
    // the driver hands the frame to the forwarder and charges the ledger within the call: its
    // off-time counts from here, not from before the frame was built (that took time of its own,
    // and the next frame would go early by as much against the ledger's instant)
    const started = clock.monotonic();
    const outcome = await sending;
    // stopped meanwhile: the journal is another session object's now (a fragment gone unrecorded only goes again)
    if (timers.isStopped) return 'stopped';
    switch (outcome.status) {
      case 'sent': {
        errorsInARow = 0;
        Object.assign(s, advanced(s, total, n, true), { sent: s.sent + 1, highestN: Math.max(s.highestN, n) });
        hooks.journal({ nextFrag: s.nextFrag, resend: s.resend, sent: s.sent, highestN: s.highestN });
        hooks.sent(n, outcome);
        // the off-time of this transmission, counted from its start (ETSI EN 300 220-2)
        await timers.until(started + outcome.airtimeMs / plan.dutyCycle);
        break;
      }
      case 'txError':
        errorsInARow++;
        Object.assign(s, advanced(s, total, n, false), { highestN: Math.max(s.highestN, n) });
        hooks.journal({ nextFrag: s.nextFrag, resend: s.resend, highestN: s.highestN });
        hooks.txError(n, outcome.error, errorsInARow);
        if (errorsInARow >= MAX_TX_ERRORS_IN_A_ROW) return 'txErrors';
        // the frame was not transmitted (its air time refunded); the forwarder gets its off-time, once per error in a row
        await timers.until(started + (errorsInARow * outcome.airtimeMs) / plan.dutyCycle);
        break;
      case 'dutyCycle': {
        const wait = Math.max(0, outcome.retryAt - clock.monotonic());
        hooks.held(n, 'dutyCycle', wait);
        await timers.sleep(wait);
        break;
      }
      case 'noForwarder':
      case 'driverStopped':
        hooks.held(n, outcome.status, NO_FORWARDER_WAIT_MS);
        await timers.sleep(NO_FORWARDER_WAIT_MS);
        break;
    }
  }
  return 'done';
}

/** sendMulticast, a driver that is not running (stopped, restarting: E_COMPONENT thrown at once) read as an outcome. */
async function send(radio: FuotaRadio, session: MulticastSession, frame: Buffer): Promise<MulticastOutcome | { status: 'driverStopped' }> {
  try {
    return await radio.sendMulticast(session, FPORT_FRAGMENTATION, frame);
  } catch (err) {
    if (err instanceof StreetboxError && err.code === 'E_COMPONENT') return { status: 'driverStopped' };
    throw err;
  }
}
