/**
 * EU868 duty-cycle accounting per gateway and sub-band (ETSI EN 300 220: the sum of
 * transmission times over a sliding 1 h window stays under dutyCycle · 1 h). A downlink that
 * would break it is delayed or rejected by the caller, never sent. With a journal the
 * transmissions outlive a restart of the gateway.
 */
import { subBandOf, type SubBand } from './eu868.js';

export const DUTY_CYCLE_WINDOW_MS = 3_600_000;

interface Tx {
  at: number;
  airtimeMs: number;
  /** the journal's id of this transmission */
  id: number | null;
}

export type DutyCycleVerdict =
  | { ok: true; band: SubBand }
  | { ok: false; reason: 'no_band'; band: null }
  | { ok: false; reason: 'duty_cycle'; band: SubBand; usedMs: number; budgetMs: number; retryAt: number };

/** A transmission of the ledger, `at` on the caller's (monotonic) time line. */
export interface AirtimeEntry {
  gateway: string;
  band: string;
  at: number;
  airtimeMs: number;
}

/**
 * Where the ledger keeps its transmissions across restarts (storage/airtime.ts): a gateway
 * restarted within the hour must not get a fresh budget, least of all one in a restart loop.
 */
export interface AirtimeJournal {
  /** the transmissions still inside the window, oldest first */
  load(windowMs: number): (AirtimeEntry & { id: number })[];
  /** the id to remove it by, or null when it could not be written */
  add(entry: AirtimeEntry): number | null;
  remove(id: number): void;
}

export class DutyCycleLedger {
  /** gatewayEui → band name → transmissions in the window, oldest first */
  private readonly txs = new Map<string, Map<string, Tx[]>>();
  private readonly windowMs: number;
  private readonly journal: AirtimeJournal | null;

  constructor(windowMs = DUTY_CYCLE_WINDOW_MS, journal: AirtimeJournal | null = null) {
    this.windowMs = windowMs;
    this.journal = journal;
    if (journal) {
      for (const e of journal.load(windowMs)) this.list(e.gateway, e.band, -Infinity).push({ at: e.at, airtimeMs: e.airtimeMs, id: e.id });
    }
  }

  private list(gateway: string, band: string, now: number): Tx[] {
    let byBand = this.txs.get(gateway);
    if (!byBand) this.txs.set(gateway, (byBand = new Map()));
    let list = byBand.get(band);
    if (!list) byBand.set(band, (list = []));
    const from = now - this.windowMs;
    let drop = 0;
    while (drop < list.length && list[drop]!.at + list[drop]!.airtimeMs <= from) drop++;
    if (drop > 0) list.splice(0, drop);
    return list;
  }

  /** Air time used on the band of `freqMHz` by `gateway` within the window ending at `now`. */
  usedMs(gateway: string, freqMHz: number, now: number): number {
    const band = subBandOf(freqMHz);
    if (!band) return 0;
    return this.list(gateway, band.name, now).reduce((s, t) => s + t.airtimeMs, 0);
  }

  /** The forwarders that transmitted within the window (or before, not yet pruned). */
  gateways(): string[] {
    return [...this.txs.keys()];
  }

  /** May `gateway` transmit `airtimeMs` on `freqMHz` at `now`? If not, when at the earliest. */
  check(gateway: string, freqMHz: number, airtimeMs: number, now: number): DutyCycleVerdict {
    const band = subBandOf(freqMHz);
    if (!band) return { ok: false, reason: 'no_band', band: null };
    const list = this.list(gateway, band.name, now);
    const budgetMs = band.dutyCycle * this.windowMs;
    const usedMs = list.reduce((s, t) => s + t.airtimeMs, 0);
    if (usedMs + airtimeMs <= budgetMs) return { ok: true, band };
    let used = usedMs;
    // Earliest time at which enough old transmissions have left the window.
    let retryAt = now;
    for (const t of list) {
      if (used + airtimeMs <= budgetMs) break;
      used -= t.airtimeMs;
      retryAt = t.at + t.airtimeMs + this.windowMs;
    }
    if (used + airtimeMs > budgetMs) retryAt = Number.POSITIVE_INFINITY; // larger than the whole budget
    return { ok: false, reason: 'duty_cycle', band, usedMs, budgetMs, retryAt };
  }

  record(gateway: string, freqMHz: number, airtimeMs: number, at: number): void {
    const band = subBandOf(freqMHz);
    if (!band) return;
    const id = this.journal ? this.journal.add({ gateway, band: band.name, at, airtimeMs }) : null;
    this.list(gateway, band.name, at).push({ at, airtimeMs, id });
  }

  /** Gives back air time of a transmission the forwarder refused (TX_ACK error). */
  refund(gateway: string, freqMHz: number, airtimeMs: number, at: number): void {
    const band = subBandOf(freqMHz);
    if (!band) return;
    const list = this.list(gateway, band.name, at);
    const i = list.findIndex((t) => t.at === at && t.airtimeMs === airtimeMs);
    if (i < 0) return;
    const [tx] = list.splice(i, 1);
    if (tx?.id != null) this.journal?.remove(tx.id);
  }
}
