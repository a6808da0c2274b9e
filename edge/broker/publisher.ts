/**
 * The gateway's side of the topic API: what it publishes, from the bus.
 * - `devices/<id>/state` (retained) `{ ts, values }`: the latest value of every point, from
 *   'polled' (every polled value, stored or not by the report strategies); coalesced to at most
 *   one publish per device per `coalesceMs` (DeviceFeed, which the upstream sync runs too);
 * - `devices/<id>/availability` (retained) online/offline: from comms.lost / comms.restored
 *   events, and `online` from the first usable reading of a device not yet known (DeviceFeed);
 * - `events`: every event as JSON;
 * - `commands/<id>`: every command row as it is created and changes status, with the caller's
 *   `transaction` echoed (and `code`/`error` for a rejected one). Statuses only move forward:
 *   the store commits them in order and the bus carries them so; a copy of a row behind the one
 *   published is never published (api.ts statusRank).
 */
import type { Clock, Timer } from '../clock.js';
import type { EventBus } from '../bus.js';
import { statusRank, type Submitted } from '../control/api.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/api.js';
import type { CommandRecord, CommandStatus, Reading, StoredEvent, Value } from '../store/types.js';
import type { Topics } from './topics.js';

/** The retained per-device topics (the embedded broker's and the upstream's are the same names). */
export interface DeviceTopics {
  state(device: string): string;
  availability(device: string): string;
}

export type PublishFn = (topic: string, payload: string, retain: boolean) => void;

interface DeviceState {
  ts: number;
  values: Record<string, Value>;
  lastPublish: number;
  timer: Timer | null;
}

/** How long a command's transaction is remembered for the status changes that follow. */
const TRANSACTION_TTL_MS = 24 * 3600_000;
const MAX_TRANSACTIONS = 10_000;

export interface DeviceFeedOptions {
  bus: EventBus;
  store: Store;
  clock: Clock;
  topics: DeviceTopics;
  publish: PublishFn;
  /** the values followed: 'polled' (every polled value: the embedded broker) or 'readings' (committed ones: upstream) */
  source: 'polled' | 'readings';
  coalesceMs?: number;
}

/**
 * The retained state and availability of every device, from the bus: a device's state at most
 * once per `coalesceMs` (the first change after a quiet spell at once), its availability at each
 * change. republish() sends the states (from the store) and the availabilities known again: a new
 * connection upstream, where the sync also uses it, unstarted, for the states alone.
 */
export class DeviceFeed {
  private readonly devices = new Map<string, DeviceState>();
  private readonly availability = new Map<string, 'online' | 'offline'>();
  private readonly coalesceMs: number;
  private running = false;

  constructor(private readonly o: DeviceFeedOptions) {
    this.coalesceMs = o.coalesceMs ?? 100;
  }

  /** Publishes the retained state of every device with a latest value, then follows the bus. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.seed();
    this.o.bus.on(this, this.o.source, (rs) => this.onReadings(rs));
    this.o.bus.on(this, 'event', (e) => this.onEvent(e));
  }

  stop(): void {
    this.running = false;
    this.o.bus.off(this);
    for (const st of this.devices.values()) {
      if (st.timer) this.o.clock.clearTimeout(st.timer);
      st.timer = null;
    }
  }

  /** Every device's latest state (from the store) and every availability known, published again. */
  republish(): void {
    this.seed();
    for (const [device, a] of this.availability) this.o.publish(this.o.topics.availability(device), a, true);
  }

  private seed(): void {
    for (const [device, points] of this.o.store.latestAll()) {
      const st = this.state(device);
      for (const [point, v] of points) {
        st.values[point] = v.value;
        st.ts = Math.max(st.ts, v.ts);
      }
      this.flush(device);
    }
  }

  private state(device: string): DeviceState {
    let st = this.devices.get(device);
    if (!st) this.devices.set(device, (st = { ts: 0, values: {}, lastPublish: -Infinity, timer: null }));
    return st;
  }

  private onReadings(rs: readonly Reading[]): void {
    const touched = new Set<string>();
    for (const r of rs) {
      const st = this.state(r.device);
      st.values[r.point] = r.value;
      st.ts = Math.max(st.ts, r.ts);
      touched.add(r.device);
      if (r.quality !== 'bad' && !this.availability.has(r.device)) this.setAvailability(r.device, 'online');
    }
    for (const device of touched) this.schedule(device);
  }

  private schedule(device: string): void {
    const st = this.state(device);
    if (st.timer) return;
    const wait = st.lastPublish + this.coalesceMs - this.o.clock.monotonic();
    if (wait <= 0) {
      this.flush(device);
      return;
    }
    st.timer = this.o.clock.setTimeout(() => {
      st.timer = null;
      if (this.running) this.flush(device);
    }, wait);
    st.timer.unref?.();
  }

  private flush(device: string): void {
    const st = this.state(device);
    st.lastPublish = this.o.clock.monotonic();
    this.o.publish(this.o.topics.state(device), JSON.stringify({ ts: st.ts, values: st.values }), true);
  }

  private onEvent(e: StoredEvent): void {
    if (e.device === null) return;
    if (e.kind === 'comms.lost') this.setAvailability(e.device, 'offline');
    else if (e.kind === 'comms.restored') this.setAvailability(e.device, 'online');
  }

  private setAvailability(device: string, a: 'online' | 'offline'): void {
    if (this.availability.get(device) === a) return;
    this.availability.set(device, a);
    this.o.publish(this.o.topics.availability(device), a, true);
  }
}

export interface PublisherOptions {
  bus: EventBus;
  store: Store;
  clock: Clock;
  log: Logger;
  topics: Topics;
  publish: PublishFn;
  coalesceMs?: number;
}

export class Publisher {
  private readonly feed: DeviceFeed;
  private readonly transactions = new Map<string, { transaction: string; at: number }>();
  private running = false;

  constructor(private readonly o: PublisherOptions) {
    this.feed = new DeviceFeed({ bus: o.bus, store: o.store, clock: o.clock, topics: o.topics, publish: o.publish, source: 'polled', ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}) });
  }

  /** Publishes the retained state of every device with a latest value, then follows the bus. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.o.bus.on(this, 'event', (e) => this.o.publish(this.o.topics.events, JSON.stringify(e), false));
    this.o.bus.on(this, 'command', (c) => this.onCommand(c));
    this.feed.start();
  }

  stop(): void {
    this.running = false;
    this.o.bus.off(this);
    this.feed.stop();
  }

  /** Remembers the `transaction` of a command submitted through the broker, for its results. */
  rememberTransaction(commandId: string, transaction: string): void {
    const now = this.o.clock.monotonic();
    this.transactions.set(commandId, { transaction, at: now });
    if (this.transactions.size > MAX_TRANSACTIONS) {
      for (const [id, t] of this.transactions) {
        if (this.transactions.size <= MAX_TRANSACTIONS && now - t.at < TRANSACTION_TTL_MS) break;
        this.transactions.delete(id);
      }
    }
  }

  /**
   * Runs `submit` (the pipeline's synchronous submit) so that a row it announces on the bus
   * before returning already carries `transaction`. Each status is published from the bus as it
   * is committed; the returned row only when the bus never carried it (a refusal that was only
   * counted is not stored, refusals.ts). By the time submit returns, the bus may have carried
   * the row further (`sent`): the returned `queued` copy is then not published again.
   */
  submitWith(transaction: string | undefined, submit: () => Submitted): Submitted {
    this.pendingTransaction = transaction;
    let submitted: Submitted;
    try {
      submitted = submit();
    } finally {
      this.pendingTransaction = undefined;
    }
    const { row } = submitted;
    if (!this.lastCommand.has(row.id)) {
      if (transaction !== undefined) this.rememberTransaction(row.id, transaction);
      this.onCommand(row);
    }
    return submitted;
  }

  private pendingTransaction: string | undefined;
  /** per command: the last change published, and its status */
  private readonly lastCommand = new Map<string, { key: string; status: CommandStatus }>();

  private onCommand(c: CommandRecord): void {
    if (this.pendingTransaction !== undefined && !this.lastCommand.has(c.id)) {
      this.rememberTransaction(c.id, this.pendingTransaction);
      this.pendingTransaction = undefined;
    }
    // publish each change once, and never a status behind the one published
    const key = `${c.status}@${c.updatedAt}:${JSON.stringify(c.result ?? null)}`;
    const last = this.lastCommand.get(c.id);
    if (last && (last.key === key || statusRank(c.status) < statusRank(last.status))) return;
    this.lastCommand.set(c.id, { key, status: c.status });
    if (this.lastCommand.size > MAX_TRANSACTIONS) this.lastCommand.delete(this.lastCommand.keys().next().value!);
    this.o.publish(this.o.topics.command(c.id), JSON.stringify(this.commandPayload(c)), false);
  }

  private commandPayload(c: CommandRecord): Record<string, unknown> {
    const fromParams = c.params['transaction'];
    const transaction = this.transactions.get(c.id)?.transaction ?? (typeof fromParams === 'string' ? fromParams : undefined);
    const out: Record<string, unknown> = {
      id: c.id,
      status: c.status,
      ts: c.ts,
      updatedAt: c.updatedAt,
      source: c.source,
      target: c.target,
      action: c.action,
      params: c.params,
      priority: c.priority,
      expiresAt: c.expiresAt,
      result: c.result ?? null,
    };
    if (transaction !== undefined) out['transaction'] = transaction;
    const r = c.result as { code?: unknown; error?: unknown; field?: unknown } | null | undefined;
    if ((c.status === 'rejected' || c.status === 'failed' || c.status === 'expired') && r && typeof r === 'object') {
      if (typeof r.code === 'string') out['code'] = r.code;
      if (typeof r.error === 'string') out['error'] = r.error;
      if (typeof r.field === 'string') out['field'] = r.field;
    }
    if (c.status === 'verified' || c.status === 'failed' || c.status === 'expired' || c.status === 'rejected') {
      this.transactions.delete(c.id);
    }
    return out;
  }
}
