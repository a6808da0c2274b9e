/**
 * Each device's MAC state (LoRaWAN 1.0.3 §5), kept in the store (lorawan_mac_state, one JSON
 * document per device) so a restarted driver resumes where it was: the requests still pending
 * (each re-sent in every downlink until answered, at most MAX_MAC_ATTEMPTS downlinks), what the
 * node runs at once it ACKed it (data rate, TX power index, NbTrans, channel mask), the RX
 * settings it ACKed (the scheduler uses them), its duty-cycle limit and extra channels, the ADR
 * SNR history and its last DevStatus. Writes are coalesced (storage/coalesce.ts) like the frame
 * counters: a crash loses at most the last COUNTER_FLUSH_MS of it (and some of the ADR history,
 * which the handler writes only now and then: losing it only delays ADR's next decision).
 *
 * Times in the document are wall ms on the driver's clock; `updated_at` is the gateway's. At load,
 * a time ahead of the driver's clock (written under a faster simulate.radioTimeScale, or before the
 * wall clock was set back) is brought back to now, a pending request that no longer passes
 * mac/validate.ts is dropped, and the rows of devices no longer configured are deleted.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { compactSchemas } from '../../../config/compact.js';
import { CoalescedWrites } from '../storage/coalesce.js';
import { COUNTER_FLUSH_MS } from '../storage/sessions.js';
import { EU868_MAX_TX_POWER_INDEX } from './adr.js';
import type { MacDownlink } from './types.js';
import { macRequestError } from './validate.js';

/** a request goes in at most this many downlinks; unanswered after the last, it failed */
export const MAX_MAC_ATTEMPTS = 4;

/** The commands the network asks of a node (the other two downlink commands answer the node's requests). */
export type MacRequest = Exclude<MacDownlink, { cid: 'LinkCheckAns' } | { cid: 'DeviceTimeAns' }>;
export type MacRequestCid = MacRequest['cid'];

export const MAC_REQUEST_CIDS = ['LinkADRReq', 'DutyCycleReq', 'RXParamSetupReq', 'DevStatusReq', 'NewChannelReq', 'RXTimingSetupReq'] as const satisfies readonly MacRequestCid[];

/** who queued a request: ADR (with its decision, for lorawan.adr.changed), the periodic DevStatusReq, or requestMac */
export type MacOrigin = 'adr' | 'devStatus' | 'api';

export interface PendingMac {
  id: string;
  request: MacRequest;
  /** downlinks planned to carry it so far, sent or not */
  attempts: number;
  /** of those, the ones that could not go (no forwarder, duty cycle, too late) */
  missed?: number;
  /** wall ms on the driver's clock */
  createdAt: number;
  origin: MacOrigin;
  /** ADR's decision: what lorawan.adr.changed reports once the node ACKs */
  adr?: { snrMax: number; requiredSnr: number };
}

/** A channel a NewChannelReq set up (RP002 §2.4.2: EU868 channels 3..15). */
export interface MacChannel {
  chIndex: number;
  frequency: number;
  minDr: number;
  maxDr: number;
}

export interface MacState {
  devEui: string;
  /** what the node runs at, as it ACKed it in LinkADRAns (null: not known yet) */
  dr: number | null;
  txPower: number | null;
  nbTrans: number;
  chMask: number | null;
  /** RX settings it ACKed (RXParamSetupAns, RXTimingSetupAns); null: the network's defaults */
  rx1DrOffset: number | null;
  rx2Dr: number | null;
  /** Hz */
  rx2Frequency: number | null;
  /** seconds */
  rx1Delay: number | null;
  /** DutyCycleReq it ACKed: aggregated duty cycle 1/2^maxDCycle */
  maxDCycle: number | null;
  channels: MacChannel[];
  /** best SNR (dB) of the last uplinks with the ADR bit, oldest first */
  snrHistory: number[];
  /** the last DevStatusAns: battery as sent (0 external power, 1..254, 255 unknown), margin dB, when (wall ms, driver clock) */
  battery: number | null;
  margin: number | null;
  statusAt: number | null;
  /** when the last DevStatusReq was queued (at first: when the network first knew the device); the next is due an interval later */
  statusAskedAt: number;
  pending: PendingMac[];
}

const pendingSchema = z.object({
  id: z.string(),
  request: z.looseObject({ cid: z.enum(MAC_REQUEST_CIDS) }),
  attempts: z.number().int().min(0),
  missed: z.number().int().min(0).optional(),
  createdAt: z.number(),
  origin: z.enum(['adr', 'devStatus', 'api']),
  adr: z.object({ snrMax: z.number(), requiredSnr: z.number() }).optional(),
});

const nullableInt = z.number().int().nullable();

/**
 * The stored document; a row that does not match (a newer or damaged one) starts the device afresh.
 * A data rate or TX power index EU868 does not define (stored before requests were checked against
 * the region) reads as unknown.
 */
const stateSchema = z.object({
  dr: z.number().int().min(0).max(7).nullable().catch(null),
  txPower: z.number().int().min(0).max(EU868_MAX_TX_POWER_INDEX).nullable().catch(null),
  nbTrans: z.number().int().min(1).max(15),
  chMask: nullableInt,
  rx1DrOffset: nullableInt,
  rx2Dr: nullableInt,
  rx2Frequency: nullableInt,
  rx1Delay: nullableInt,
  maxDCycle: nullableInt,
  channels: z.array(z.object({ chIndex: z.number().int(), frequency: z.number().int(), minDr: z.number().int(), maxDr: z.number().int() })),
  snrHistory: z.array(z.number()),
  battery: nullableInt,
  margin: nullableInt,
  statusAt: z.number().nullable(),
  statusAskedAt: z.number(),
  pending: z.array(pendingSchema),
});
// finished: each clone above (a check) forgets the schema it was made from (config/compact.ts)
compactSchemas([stateSchema]);

/** A device's MAC state before it answered anything: the network's defaults apply. */
export function freshMacState(devEui: string, now: number): MacState {
  return {
    devEui,
    dr: null,
    txPower: null,
    nbTrans: 1,
    chMask: null,
    rx1DrOffset: null,
    rx2Dr: null,
    rx2Frequency: null,
    rx1Delay: null,
    maxDCycle: null,
    channels: [],
    snrHistory: [],
    battery: null,
    margin: null,
    statusAt: null,
    statusAskedAt: now,
    pending: [],
  };
}

export interface MacStateStoreOptions {
  db: BetterSqlite3.Database;
  /** wall ms on the driver's clock: the times in the document */
  now: () => number;
  /** wall ms on the gateway's clock: updated_at */
  wallNow: () => number;
  /** a write failed (it is tried again later) */
  onError: (err: unknown) => void;
}

/** What load() left out. */
export interface MacStateLoad {
  /** devices whose row did not parse: they start afresh */
  unreadable: string[];
  /** pending requests that do not pass mac/validate.ts: dropped */
  dropped: { devEui: string; cid: string; error: string }[];
  /** rows of devices no longer configured: deleted */
  removed: string[];
}

export class MacStateStore {
  private readonly db: BetterSqlite3.Database;
  private readonly byEui = new Map<string, MacState>();
  private readonly writes: CoalescedWrites<MacState>;
  private readonly now: () => number;

  constructor(o: MacStateStoreOptions) {
    this.db = o.db;
    this.now = o.now;
    const upsert = o.db.prepare(
      `INSERT INTO lorawan_mac_state (dev_eui, state, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (dev_eui) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
    );
    this.writes = new CoalescedWrites<MacState>({
      db: o.db,
      write: (s) => {
        const { devEui, ...doc } = s;
        upsert.run(devEui, JSON.stringify(doc), o.wallNow());
      },
      delayMs: COUNTER_FLUSH_MS,
      retryMs: COUNTER_FLUSH_MS * 50,
      onError: o.onError,
    });
  }

  /** Loads the stored states of the `configured` devices (DevEUIs); see MacStateLoad for what it leaves out. */
  load(configured: ReadonlySet<string>): MacStateLoad {
    const out: MacStateLoad = { unreadable: [], dropped: [], removed: [] };
    const remove = this.db.prepare('DELETE FROM lorawan_mac_state WHERE dev_eui = ?');
    const now = this.now();
    for (const row of this.db.prepare('SELECT dev_eui, state FROM lorawan_mac_state').all() as { dev_eui: string; state: string }[]) {
      if (!configured.has(row.dev_eui)) {
        remove.run(row.dev_eui);
        out.removed.push(row.dev_eui);
        continue;
      }
      const parsed = parseState(row.state);
      if (!parsed) {
        out.unreadable.push(row.dev_eui);
        continue;
      }
      const s: MacState = { devEui: row.dev_eui, ...parsed };
      if (this.repair(s, now, out.dropped)) this.touch(s);
      this.byEui.set(row.dev_eui, s);
    }
    return out;
  }

  /** Times ahead of `now` brought back to it, requests that cannot go dropped; true when anything changed. */
  private repair(s: MacState, now: number, dropped: MacStateLoad['dropped']): boolean {
    let changed = false;
    const notAhead = (t: number): number => {
      if (t <= now) return t;
      changed = true;
      return now;
    };
    s.statusAskedAt = notAhead(s.statusAskedAt);
    if (s.statusAt !== null) s.statusAt = notAhead(s.statusAt);
    const kept = s.pending.filter((p) => {
      const error = macRequestError(p.request);
      if (error !== null) dropped.push({ devEui: s.devEui, cid: p.request.cid, error });
      return error === null;
    });
    for (const p of kept) p.createdAt = notAhead(p.createdAt);
    changed ||= kept.length !== s.pending.length;
    s.pending = kept;
    return changed;
  }

  /** The device's state (its defaults when it has none yet: stored at once, so that a restart keeps when the network first knew it). */
  get(devEui: string): MacState {
    let s = this.byEui.get(devEui);
    if (!s) {
      this.byEui.set(devEui, (s = freshMacState(devEui, this.now())));
      this.touch(s);
    }
    return s;
  }

  all(): MacState[] {
    return [...this.byEui.values()];
  }

  /** The state changed: written within COUNTER_FLUSH_MS. */
  touch(s: MacState): void {
    this.writes.touch(s);
  }

  /**
   * A new session (an OTAA join): the node starts from its defaults again (LoRaWAN 1.0.3 §6.2.5),
   * so does what the network knows of it; its last DevStatus is kept. Returns the old state, which
   * is no longer written: the caller may read it, never touch it.
   */
  reset(devEui: string): MacState {
    const old = this.get(devEui);
    const s: MacState = { ...freshMacState(devEui, this.now()), battery: old.battery, margin: old.margin, statusAt: old.statusAt };
    this.writes.forget(old);
    this.byEui.set(devEui, s);
    this.touch(s);
    return old;
  }

  /** Writes what changed now (on stop); throws when the database does. */
  flush(): void {
    this.writes.flush();
  }
}

function parseState(text: string): Omit<MacState, 'devEui'> | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const r = stateSchema.safeParse(json);
  if (!r.success) return null;
  const { pending, ...rest } = r.data;
  return {
    ...rest,
    pending: pending.map(({ adr, missed, request, ...p }) => ({ ...p, request: request as unknown as MacRequest, ...(adr ? { adr } : {}), ...(missed !== undefined ? { missed } : {}) })),
  };
}
