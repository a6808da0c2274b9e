/**
 * The multicast loop's pacing (edge/firmware/methods/fuota/multicast.ts runMulticast), each fragment
 * followed by its off-time as the duty-cycle ledger records it:
 *  - the off-time counts from the instant the driver hands the frame to the forwarder and charges
 *    the ledger, not from before the frame was built. Found by the end-to-end test
 *    (e2e/fuota.test.ts), where building a frame now and then took a few ms: the next fragment went
 *    that much early against the ledger's own record;
 *  - a session resumed after a restart keeps the off-time of a fragment the earlier process may
 *    have sent just before it died (the instant is not journaled: it counts from the resume).
 * The radio here is a port whose "building" takes the time the test says, on a clock the test moves
 * (FakeClock): a stand-in, as only time is under test.
 */
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../edge/clock.js';
import type { MulticastOutcome } from '../../edge/drivers/lorawan/api.js';
import type { SessionRecord } from '../../edge/firmware/methods/fuota/journal.js';
import { FragmentSource, runMulticast } from '../../edge/firmware/methods/fuota/multicast.js';
import type { FuotaPlan } from '../../edge/firmware/methods/fuota/planner.js';
import { RadioTimers } from '../../edge/firmware/methods/fuota/requests.js';
import type { FuotaRadio } from '../../edge/firmware/methods/fuota/types.js';
import { FakeClock, flushMicrotasks } from '../support/fakeClock.js';

/** 100 ms on air at 10 %: each transmission starts 1000 ms after the one before, at the earliest */
const AIRTIME_MS = 100;
const DUTY_CYCLE = 0.1;
const PLAN = { fragments: 3, parity: 0, fragSize: 10, airtimeMs: AIRTIME_MS, dutyCycle: DUTY_CYCLE, frequency: 869_525_000, dr: 5 } as FuotaPlan;

function session(p: Partial<SessionRecord> = {}): SessionRecord {
  return {
    ...{ id: 'd/1/1', deployment: 'd', wave: 0, turn: 0, step: 'multicast', fragVersion: 1, plan: PLAN, mcAddr: '01020304', mcKey: Buffer.alloc(16, 7), mcFCnt: 0, sessionCnt: 1 },
    ...{ nextFrag: 1, resend: [], sent: 0, highestN: 0, sessionTime: null, windowEnd: null, deadline: null, startedAt: 0, endedAt: null },
    ...p,
  };
}

const noop = () => undefined;
const HOOKS = { journal: noop, sent: noop, txError: noop, held: noop, ensureWindow: () => Promise.resolve(true), slot: () => Promise.resolve(true) };

/** A driver port that charges the ledger at once and says each frame went; `building(n)`: the ms the n-th frame (0-based) takes to build. */
function radioOn(fake: FakeClock, building: (n: number) => number = () => 0): { radio: FuotaRadio; charged: number[] } {
  let spent = 0;
  const clock: Clock = { now: () => fake.now() + spent, monotonic: () => fake.monotonic() + spent, setTimeout: (fn, ms) => fake.setTimeout(fn, ms), clearTimeout: (t) => fake.clearTimeout(t) };
  const charged: number[] = [];
  const sendMulticast = (s: { fCnt: number }): Promise<MulticastOutcome> => {
    spent += building(charged.length);
    charged.push(clock.monotonic());
    const fCnt = s.fCnt++;
    return Promise.resolve({ status: 'sent', airtimeMs: AIRTIME_MS, gateway: 'aa555a0000000001', fCnt });
  };
  return { radio: { clock, sendMulticast } as unknown as FuotaRadio, charged };
}

/** Runs the multicast to its end as the fake clock moves. */
async function run(fake: FakeClock, radio: FuotaRadio, s: SessionRecord, resumedAt?: number): Promise<void> {
  const end = runMulticast({ radio, timers: new RadioTimers(radio), session: s, plan: PLAN, source: new FragmentSource(1, Buffer.alloc(30, 1), PLAN), hooks: HOOKS, ...(resumedAt !== undefined ? { resumedAt } : {}) });
  // the loop reaches its first frame, then its off-times run out
  await flushMicrotasks();
  await fake.advance(5000);
  expect(await end).toBe('done');
}

describe('the multicast of a FUOTA session', () => {
  it('counts each off-time from the hand-over to the forwarder: a frame that took 30 ms to build does not bring the next one 30 ms early', async () => {
    const fake = new FakeClock();
    // the first frame takes 30 ms to build; the others none
    const { radio, charged } = radioOn(fake, (n) => (n === 0 ? 30 : 0));
    await run(fake, radio, session());
    const gaps = charged.slice(1).map((at, i) => at - charged[i]!);
    expect(gaps).toEqual([AIRTIME_MS / DUTY_CYCLE, AIRTIME_MS / DUTY_CYCLE]);
  });

  it('resumed after fragments went in an earlier run (a restart): the first frame keeps the off-time of one sent just before the run began', async () => {
    const fake = new FakeClock();
    const { radio, charged } = radioOn(fake);
    // fragment 1 went in the earlier run; this one began at 0 on the radio clock
    await run(fake, radio, session({ nextFrag: 2, sent: 1, highestN: 1, mcFCnt: 1 }), 0);
    expect(charged).toEqual([1000, 2000]);
    // a multicast that sent nothing before waits for nothing
    const other = new FakeClock();
    const fresh = radioOn(other);
    await run(other, fresh.radio, session(), 0);
    expect(fresh.charged).toEqual([0, 1000, 2000]);
  });
});
