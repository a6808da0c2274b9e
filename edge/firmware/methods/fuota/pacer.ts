/**
 * The sub-bands FUOTA transmits on, shared by every session of the gateway: one forwarder's
 * sub-band (EU868 g3, 869.4–869.65 MHz, 10 %) carries the multicast of every session, each node's
 * unicast repair (RX2, 869.525 MHz) and the commands to the lights (class C on RX2). So:
 *
 *   - one multicast at a time per sub-band: a session whose turn has not come waits (in the order
 *     they asked); two sessions side by side would each pace at the full duty cycle, and the
 *     ledger would hold the frames of both, late for the windows they were planned for;
 *   - each FUOTA frame (a fragment of a multicast, a node's repair fragment) takes the sub-band's
 *     next slot, its air time over the sub-band's duty cycle (ETSI EN 300 220-2), so the repairs
 *     of many nodes and a multicast interleave instead of adding up;
 *   - no FUOTA frame takes the last RESERVE_SHARE of the sub-band's hourly budget (the driver's
 *     duty-cycle ledger, usedMs / budgetMs): it stays for the commands to the lights, which must be
 *     commandable during a FUOTA that lasts hours. Below that line the pacing is the full duty cycle.
 */
import { subBandOf } from '../../../drivers/lorawan/region/eu868.js';
import type { RadioTimers } from './requests.js';
import type { FuotaRadio } from './types.js';

/** the share of a sub-band's hourly budget FUOTA leaves to the other downlinks (commands to lights) */
export const RESERVE_SHARE = 0.1;

/** Why a FUOTA frame is held before the radio is asked. */
export type PaceHold = 'reserve';

/** One sub-band: its multicast turn and its slots. */
export class SubBandPacer {
  /** monotonic ms (radio clock) the sub-band's next slot starts */
  private nextFree = Number.NEGATIVE_INFINITY;
  private holder: string | null = null;
  private readonly queue: { id: string; grant: () => void }[] = [];

  constructor(
    private readonly radio: Pick<FuotaRadio, 'clock' | 'radio'>,
    /** a frequency of the sub-band (Hz): the ledger's figures are the sub-band's */
    private readonly frequencyHz: number,
    private readonly dutyCycle: number,
  ) {}

  /** the session whose multicast has the sub-band, null when none */
  get busyWith(): string | null {
    return this.holder;
  }

  /**
   * The sub-band's multicast turn for session `id`: resolves with the release once it has it (at
   * once when free), or null when `timers` stop first. `queued` hears of a wait, with the session
   * it comes after (the last one queued, else the one multicasting).
   */
  multicastTurn(id: string, timers: RadioTimers, queued: (after: string) => void): Promise<(() => void) | null> {
    return new Promise((resolve) => {
      const release = () => this.release(id);
      if (this.holder === null) {
        this.holder = id;
        return resolve(release);
      }
      queued(this.queue.at(-1)?.id ?? this.holder);
      const entry = {
        id,
        grant: () => {
          cancelStop();
          this.holder = id;
          resolve(release);
        },
      };
      this.queue.push(entry);
      const cancelStop = timers.onStop(() => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        resolve(null);
      });
    });
  }

  /**
   * Waits for the sub-band's next slot for a frame of `airtimeMs` and takes it: the slot is the
   * frame's air time over the duty cycle. Past the reserve line (the ledger's last hour with this
   * frame above (1 − RESERVE_SHARE) of the budget) it waits a slot's length and asks again,
   * telling `held`. False when `timers` stop first.
   */
  async slot(airtimeMs: number, timers: RadioTimers, held: (why: PaceHold, waitMs: number) => void): Promise<boolean> {
    const clock = this.radio.clock;
    const slotMs = airtimeMs / this.dutyCycle;
    for (;;) {
      if (timers.isStopped) return false;
      if (this.nextFree > clock.monotonic()) {
        await timers.until(this.nextFree);
        continue;
      }
      const { usedMs, budgetMs } = this.radio.radio;
      if (usedMs(this.frequencyHz) + airtimeMs > (1 - RESERVE_SHARE) * budgetMs(this.frequencyHz)) {
        held('reserve', slotMs);
        await timers.sleep(slotMs);
        continue;
      }
      this.nextFree = clock.monotonic() + slotMs;
      return true;
    }
  }

  private release(id: string): void {
    if (this.holder !== id) return;
    this.holder = null;
    this.queue.shift()?.grant();
  }
}

/** The pacer of each sub-band FUOTA transmits on (by EU868 sub-band; a frequency in none has its own, at the radio's duty cycle for it). */
export class SubBandPacers {
  private readonly bands = new Map<string, SubBandPacer>();

  constructor(private readonly radio: Pick<FuotaRadio, 'clock' | 'radio'>) {}

  of(frequencyHz: number): SubBandPacer {
    const key = subBandOf(frequencyHz / 1e6)?.name ?? `${frequencyHz}`;
    let p = this.bands.get(key);
    if (!p) {
      // a frequency in no sub-band plans nothing (planner.ts): 1 % stands for it, never used
      p = new SubBandPacer(this.radio, frequencyHz, this.radio.radio.dutyCycleAt(frequencyHz) ?? 0.01);
      this.bands.set(key, p);
    }
    return p;
  }
}
