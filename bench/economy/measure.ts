/**
 * One simulated demo day through the real ingest path, once per report policy ("lane"): every
 * poll's readings go into each lane's BatchWriter (the report filter at its door) over its own
 * SQLite store in `dir`, all on the one virtual clock, so every lane sees the very same day. Then
 * what the day cost each lane: readings stored, the reading table's bytes per row and the
 * autonomy the store computes from them (edge/store/autonomy.ts), the sync's payloads online and
 * as a backlog, and (optionally) the reconstruction check of the stored series.
 */
import { join } from 'node:path';
import { EventBus } from '../../edge/bus.js';
import type { Config } from '../../edge/config/schema.js';
import type { CalendarDate } from '../../edge/control/sun.js';
import type { Logger } from '../../edge/log.js';
import type { ReportPolicy } from '../../edge/report/strategy.js';
import { autonomyOf, spaceUse, type SpaceUse } from '../../edge/store/autonomy.js';
import type { Store } from '../../edge/store/api.js';
import { openStore, type SqliteStore } from '../../edge/store/store.js';
import type { Autonomy, NewEvent, NewReading, Reading } from '../../edge/store/types.js';
import { BatchWriter } from '../../edge/store/writer.js';
import { VirtualClock } from './clock.js';
import { dayStart, simulateDemoDay, type DayOutcome } from './demoDay.js';
import { PolledRecorder, type ReconstructionReport } from './reconstruction.js';
import { UpstreamCounter, type SyncSettings, type UpstreamTally } from './upstream.js';

export interface LaneSpec {
  name: string;
  policy: ReportPolicy;
  /** record every polled value and check the stored series against it */
  check: boolean;
}

export interface LaneFigures {
  name: string;
  polled: number;
  stored: number;
  /** commits that stored at least one reading */
  commits: number;
  events: number;
  space: SpaceUse;
  autonomy: Autonomy;
  /** the sync's batches as they go out while connected: an open readings batch lingers (sync.linger) */
  online: UpstreamTally;
  /** the same day sent as a backlog after an outage: full batches */
  backlog: UpstreamTally;
  /** stored readings per point name, over all devices, most first */
  storedByPoint: [string, number][];
  reconstruction?: ReconstructionReport;
}

export interface DayOptions {
  date: CalendarDate;
  dir: string;
  sync: SyncSettings;
  log: Logger;
}

/** One policy's writer, store and counters. */
class Lane {
  readonly store: SqliteStore;
  readonly writer: BatchWriter;
  private readonly bus: EventBus;
  private readonly online: UpstreamCounter;
  private readonly recorder: PolledRecorder | null;
  private readonly byPoint = new Map<string, number>();
  private polled = 0;
  private commits = 0;
  private events = 0;

  constructor(
    readonly spec: LaneSpec,
    private readonly config: Config,
    clock: VirtualClock,
    private readonly opts: DayOptions,
  ) {
    const { storage } = config;
    const log = opts.log;
    this.bus = new EventBus(log);
    // the latest values written every minute, not every 5 s: a row per point either way (no
    // figure here changes), 17 280 writes a day fewer in a bench that must finish in minutes
    this.store = openStore({ path: join(opts.dir, `${spec.name}.db`), maxBytes: storage.maxBytes, durability: storage.durability, log, clock, bus: this.bus, latestPersistMs: 60_000 });
    this.writer = new BatchWriter({ store: this.store, bus: this.bus, log, clock, flushIntervalMs: storage.flushInterval, flushRows: storage.flushRows, report: spec.policy });
    this.online = new UpstreamCounter(this.store, config.gateway.id, opts.sync, clock);
    this.recorder = spec.check ? new PolledRecorder() : null;
    // the sync looks after each commit; here at once, inside the listener (what lingers waits on the day's clock)
    this.bus.on(this, 'readings', (rs) => {
      if (rs.length === 0) return;
      this.commits++;
      for (const r of rs) this.byPoint.set(r.point, (this.byPoint.get(r.point) ?? 0) + 1);
      this.online.pump(rs[rs.length - 1]!.seq);
    });
    this.bus.on(this, 'event', (e) => {
      this.events++;
      this.online.pump(e.seq);
    });
    this.writer.start();
  }

  readings(rs: NewReading[]): void {
    this.polled += rs.length;
    this.recorder?.record(rs);
    this.writer.pushMany(rs);
  }

  event(e: NewEvent): void {
    this.store.appendEvent(e);
  }

  /** After the day: the last flush, then the figures. */
  async finish(day: DayOutcome): Promise<LaneFigures> {
    await this.writer.stop();
    this.bus.off(this);
    // every reading of the day is one a driver would push: a rejected one is a bug of the simulation
    if (this.writer.rejected > 0) throw new Error(`${this.spec.name}: the writer rejected ${this.writer.rejected} readings of the simulated day`);
    this.online.pump();
    const stored = this.writer.committed;
    const space = spaceUse(this.store.sqlite, stored);
    const backlog = new UpstreamCounter(this.store, this.config.gateway.id, this.opts.sync);
    backlog.pump();
    const figures: LaneFigures = {
      name: this.spec.name,
      polled: this.polled,
      stored,
      commits: this.commits,
      events: this.events,
      space,
      autonomy: autonomyOf(space, this.config.storage.maxBytes, stored, day.start),
      online: this.online.tally,
      backlog: backlog.tally,
      storedByPoint: [...this.byPoint].sort((a, b) => b[1] - a[1]),
    };
    if (this.recorder) figures.reconstruction = this.recorder.check(allReadings(this.store), this.spec.policy);
    return figures;
  }
}

/** Simulates the day of `opts.date` once, into every lane; the figures of each, in order. */
export async function measureDay(config: Config, specs: readonly LaneSpec[], opts: DayOptions): Promise<{ day: DayOutcome; lanes: LaneFigures[] }> {
  const clock = new VirtualClock(dayStart(config, opts.date));
  const lanes: Lane[] = [];
  try {
    for (const spec of specs) lanes.push(new Lane(spec, config, clock, opts));
    const day = await simulateDemoDay(
      config,
      clock,
      {
        readings(rs) {
          for (const lane of lanes) lane.readings(rs);
        },
        event(e) {
          for (const lane of lanes) lane.event(e);
        },
      },
      opts.log,
    );
    const figures: LaneFigures[] = [];
    for (const lane of lanes) figures.push(await lane.finish(day));
    return { day, lanes: figures };
  } finally {
    for (const lane of lanes) lane.store.close();
  }
}

/** Every stored reading, in seq order, through the store's reading pages. */
function* allReadings(store: Store): Generator<Reading> {
  for (let after = 0; ; ) {
    const page = store.readings({ after, limit: 10_000 });
    if (page.items.length === 0) return;
    yield* page.items;
    after = page.next;
  }
}
