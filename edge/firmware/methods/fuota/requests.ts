/**
 * A FUOTA session's unicast requests and their answers (TS005 FPort 200, TS004 FPort 201, TS006
 * FPort 203; TS003 FPort 202, whose AppTimeReq the driver answers, heard after a forced resync): a
 * request goes through enqueueApp and is re-sent, up to ATTEMPTS times in all, within
 * lorawan.fuota.answerTimeout, until an uplink of the node carries the answer it waits for. The
 * uplinks of the session's nodes come here decoded (in the TS004 version the node implements); an
 * answer nobody waits for (a late one, a node's own FragDataBlockReceivedReq) goes to the session.
 *
 * Every wait runs on the radio clock and ends when the session stops (then it resolves null), so a
 * stop never leaves a timer or a promise behind.
 */
import type { AppUplink } from '../../../drivers/lorawan/api.js';
import {
  decodeClockSyncUp,
  decodeFirmwareUp,
  decodeFragUp,
  decodeMulticastUp,
  FPORT_CLOCK_SYNC,
  FPORT_FIRMWARE,
  FPORT_FRAGMENTATION,
  FPORT_MULTICAST,
  type ClockSyncUp,
  type FirmwareUp,
  type FragUp,
  type FragVersion,
  type MulticastUp,
} from '../../../drivers/lorawan/app/index.js';
import type { Timer } from '../../../clock.js';
import type { FuotaRadio } from './types.js';

/** a request is sent this many times at most (TS004–TS006 requests are idempotent or told apart, journal.ts) */
export const ATTEMPTS = 4;

/** An answer of a node, by the package it speaks. */
export type AppAnswer =
  | { fPort: typeof FPORT_MULTICAST; cmd: MulticastUp }
  | { fPort: typeof FPORT_FRAGMENTATION; cmd: FragUp }
  | { fPort: typeof FPORT_FIRMWARE; cmd: FirmwareUp }
  | { fPort: typeof FPORT_CLOCK_SYNC; cmd: ClockSyncUp };

/** What an uplink's payload did not decode into (counted by the session). */
export interface UndecodedUplink {
  device: string;
  fPort: number;
  error: string;
}

interface Waiter {
  device: string;
  match: (a: AppAnswer) => unknown;
  resolve: (v: unknown) => void;
}

/** Timers on the radio clock that a stop fires at once (a sleep ends, a wait gives up). */
export class RadioTimers {
  private readonly pending = new Map<Timer, () => void>();
  private readonly onStops = new Set<() => void>();
  private stopped = false;

  constructor(private readonly radio: Pick<FuotaRadio, 'clock'>) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Calls `fn` after `ms` on the radio clock, or at once when stopped; returns the cancel. */
  after(ms: number, fn: () => void): () => void {
    if (this.stopped) {
      fn();
      return () => undefined;
    }
    const timer = this.radio.clock.setTimeout(() => {
      this.pending.delete(timer);
      fn();
    }, Math.max(0, ms));
    timer.unref?.();
    this.pending.set(timer, fn);
    return () => {
      this.radio.clock.clearTimeout(timer);
      this.pending.delete(timer);
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /**
   * Resolves once the radio clock's monotonic time reaches `at` (or at once when stopped). A timer
   * may fire a little early (the event loop's cached time): a pacing that must hold waits again.
   */
  async until(at: number): Promise<void> {
    for (let left = at - this.radio.clock.monotonic(); left > 0 && !this.stopped; left = at - this.radio.clock.monotonic()) await this.sleep(left);
  }

  /** Calls `fn` when stopped (at once when already); returns the cancel. */
  onStop(fn: () => void): () => void {
    if (this.stopped) {
      fn();
      return () => undefined;
    }
    this.onStops.add(fn);
    return () => this.onStops.delete(fn);
  }

  /** Sleeps `ms`, or less when `wake` is called first (another node's reboot ended, a gate may be open). */
  sleepOrWake(ms: number, wakers: Set<() => void>): Promise<void> {
    return new Promise((resolve) => {
      // a stopped session's `after` calls done at once, before it returns its cancel
      let cancel: () => void = () => undefined;
      const done = () => {
        wakers.delete(done);
        cancel();
        resolve();
      };
      wakers.add(done);
      cancel = this.after(ms, done);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const [timer, fn] of [...this.pending]) {
      this.radio.clock.clearTimeout(timer);
      this.pending.delete(timer);
      fn();
    }
    for (const fn of [...this.onStops]) fn();
    this.onStops.clear();
  }
}

export class NodeRequests {
  private readonly waiters = new Set<Waiter>();
  private slowest: number | null = null;

  constructor(
    private readonly radio: FuotaRadio,
    private readonly timers: RadioTimers,
    private readonly answerTimeoutMs: number,
    /** the TS004 version each node implements (its FragSessionStatusAns layout differs) */
    private readonly fragVersionOf: (device: string) => FragVersion,
    /** an answer no request waits for */
    private readonly unsolicited: (device: string, a: AppAnswer) => void,
    private readonly undecoded: (u: UndecodedUplink) => void,
  ) {}

  /** An uplink of one of the session's nodes on FPort 200–203. */
  deliver(u: AppUplink): void {
    for (const a of this.decode(u)) {
      const w = [...this.waiters].find((x) => x.device === u.device && x.match(a) !== undefined);
      if (w) {
        this.waiters.delete(w);
        w.resolve(w.match(a));
      } else this.unsolicited(u.device, a);
    }
  }

  private decode(u: AppUplink): AppAnswer[] {
    const decoded =
      u.fPort === FPORT_MULTICAST
        ? tag(FPORT_MULTICAST, decodeMulticastUp(u.payload))
        : u.fPort === FPORT_FRAGMENTATION
          ? tag(FPORT_FRAGMENTATION, decodeFragUp(u.payload, this.fragVersionOf(u.device)))
          : u.fPort === FPORT_FIRMWARE
            ? tag(FPORT_FIRMWARE, decodeFirmwareUp(u.payload))
            : u.fPort === FPORT_CLOCK_SYNC
              ? tag(FPORT_CLOCK_SYNC, decodeClockSyncUp(u.payload))
              : { answers: [], error: `FPort ${u.fPort} is no FUOTA package's` };
    if (decoded.error !== null) this.undecoded({ device: u.device, fPort: u.fPort, error: decoded.error });
    return decoded.answers;
  }

  /** ms the slowest answer of this process took from its request's first send (null: none came yet): the window's lead is sized from it */
  get slowestAnswerMs(): number | null {
    return this.slowest;
  }

  /**
   * Sends `payload` to `device` and waits for the answer `match` picks out (its value), re-sending
   * it up to ATTEMPTS times in all within `withinMs` (default answerTimeout); null when none came
   * or the session stopped. A request the driver refuses at once (unknown device, full queue,
   * driver stopped) counts as an attempt. `onSend` hears of each send.
   */
  async ask<T>(
    device: string,
    req: { fPort: number; payload: Buffer; label: string },
    match: (a: AppAnswer) => T | undefined,
    withinMs = this.answerTimeoutMs,
    onSend?: (attempt: number) => void,
  ): Promise<T | null> {
    const perAttempt = withinMs / ATTEMPTS;
    const first = this.radio.clock.monotonic();
    for (let attempt = 1; attempt <= ATTEMPTS && !this.timers.isStopped; attempt++) {
      const answer = this.wait(device, match, perAttempt);
      onSend?.(attempt);
      this.send(device, { ...req, expiresAt: this.radio.clock.now() + perAttempt });
      const v = await answer;
      if (v !== null) {
        this.slowest = Math.max(this.slowest ?? 0, this.radio.clock.monotonic() - first);
        return v;
      }
    }
    return null;
  }

  /** Sends without waiting for an answer (DataFragment repairs, FragDataBlockReceivedAns); the outcome: whether the forwarder transmitted it. */
  async tell(device: string, req: { fPort: number; payload: Buffer; label: string }, withinMs = this.answerTimeoutMs): Promise<boolean> {
    try {
      const q = this.radio.enqueueApp(device, { ...req, expiresAt: this.radio.clock.now() + withinMs });
      const o = await q.outcome;
      return o.status === 'sent' || o.status === 'verified';
    } catch {
      return false;
    }
  }

  /** Resolves with the first answer of `device` that `match` picks out within `ms`, else null. */
  wait<T>(device: string, match: (a: AppAnswer) => T | undefined, ms: number): Promise<T | null> {
    return new Promise<T | null>((resolve) => {
      const w: Waiter = {
        device,
        match,
        resolve: (v) => {
          cancel();
          resolve(v as T);
        },
      };
      this.waiters.add(w);
      const cancel = this.timers.after(ms, () => {
        if (this.waiters.delete(w)) resolve(null);
      });
    });
  }

  private send(device: string, req: { fPort: number; payload: Buffer; label: string; expiresAt: number }): void {
    try {
      // the outcome only says the frame went; the answer is what counts
      void this.radio.enqueueApp(device, req).outcome.catch(() => undefined);
    } catch {
      // refused at once (full queue, unknown device, driver stopped): the next attempt tries again
    }
  }
}

function tag<P extends AppAnswer['fPort']>(fPort: P, d: { commands: Extract<AppAnswer, { fPort: P }>['cmd'][]; error: string | null }): { answers: AppAnswer[]; error: string | null } {
  return { answers: d.commands.map((cmd) => ({ fPort, cmd }) as AppAnswer), error: d.error };
}
