/**
 * One polled Modbus device: its profile's blocks, the readings each poll pushes into the
 * common ingest path, point quality (good, stale after three poll intervals without a good
 * value, bad on a failed read: pushed once per transition), alarm bits turned into
 * alarm.raised / alarm.cleared events on change, and comms events (comms.error on a change of
 * error, comms.lost, comms.restored).
 */
import type { Clock, Timer } from '../../clock.js';
import type { DeviceConfig, PointConfig, ProfileConfig } from '../../config/schema.js';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { AlarmDetail, CommsDetail } from '../../store/eventKinds.js';
import type { NewEvent, NewReading, Quality } from '../../store/types.js';
import { planBlocks, type ReadBlock } from './blocks.js';
import { decodeResponse, encodeReadRequest } from './codec.js';
import { ModbusError, ModbusExceptionError } from './errors.js';
import { blockRequest, decodeBlock, type DecodedPoint } from './points.js';
import type { ScheduledDevice, Transact } from './scheduler.js';

export interface DeviceSinks {
  push(reading: NewReading): void;
  /** one call per block read (cheaper than a push per point); default: push each */
  pushMany?(readings: readonly NewReading[]): void;
  event(event: NewEvent): void;
  clock: Clock;
  log: Logger;
}

interface PointState {
  cfg: PointConfig;
  quality: Quality | undefined;
  value: number | boolean | null;
  /** monotonic ms of the last good value */
  goodAt: number | null;
}

type AlarmConfig = ProfileConfig['alarms'][number];

export class ModbusDevice implements ScheduledDevice {
  readonly id: string;
  readonly unit: number;
  readonly pollMs: number;
  readonly blocks: ReadBlock[];
  private readonly requests: Buffer[];
  private readonly points = new Map<string, PointState>();
  private readonly alarms: AlarmConfig[];
  private readonly alarmActive = new Map<string, boolean>();
  private readonly blockError: (string | null)[];
  /** the comms error reported last (code + exception), so a repeat is not reported again */
  private reportedError: string | null = null;
  private lostAt: number | null = null;
  private staleTimer: Timer | undefined;

  constructor(
    readonly config: DeviceConfig,
    readonly profile: ProfileConfig,
    readonly busId: string,
    maxGap: number,
    private readonly sinks: DeviceSinks,
  ) {
    this.id = config.id;
    this.unit = config.unit ?? 1;
    this.pollMs = config.poll;
    this.blocks = planBlocks(profile.points, { maxGap });
    this.requests = this.blocks.map(blockRequest);
    this.blockError = this.blocks.map(() => null);
    for (const p of profile.points) this.points.set(p.name, { cfg: p, quality: undefined, value: null, goodAt: null });
    this.alarms = profile.alarms;
  }

  point(name: string): PointConfig | undefined {
    return this.points.get(name)?.cfg;
  }

  probePdu(): Buffer {
    const b = this.blocks[0];
    return b ? encodeReadRequest(b.fc, b.address, 1) : encodeReadRequest(3, 0, 1);
  }

  async poll(tx: Transact): Promise<void> {
    for (let i = 0; i < this.blocks.length; i++) {
      const block = this.blocks[i]!;
      const request = this.requests[i]!;
      const response = await tx(request); // a comms failure ends the poll: the scheduler counts it
      const ts = this.sinks.clock.now();
      let decoded: DecodedPoint[];
      try {
        decoded = decodeBlock(block, decodeResponse(request, response));
      } catch (err) {
        if (!(err instanceof ModbusExceptionError)) throw err;
        this.blockFailed(i, block, err, ts);
        continue;
      }
      this.blockError[i] = null;
      this.accept(decoded, ts);
    }
    this.reportedError = null;
  }

  private accept(decoded: DecodedPoint[], ts: number): void {
    const mono = this.sinks.clock.monotonic();
    const readings = new Array<NewReading>(decoded.length);
    for (let i = 0; i < decoded.length; i++) {
      const d = decoded[i]!;
      const st = this.points.get(d.point.name)!;
      st.quality = 'good';
      st.value = d.value;
      st.goodAt = mono;
      readings[i] = { ts, device: this.id, point: d.point.name, value: d.value, unit: d.point.unit ?? null, quality: 'good' };
    }
    if (this.sinks.pushMany) this.sinks.pushMany(readings);
    else for (const r of readings) this.sinks.push(r);
    if (this.alarms.length === 0) return;
    const raws = new Map<string, number>();
    for (const d of decoded) raws.set(d.point.name, d.raw);
    for (const a of this.alarms) {
      const raw = raws.get(a.point);
      if (raw === undefined) continue;
      const active = a.bit !== undefined ? (((raw | 0) >>> a.bit) & 1) === 1 : raw !== 0;
      const was = this.alarmActive.get(a.name);
      this.alarmActive.set(a.name, active);
      // The first read after start raises the alarms that are set; after that, changes only.
      if (was === active || (was === undefined && !active)) continue;
      const detail: AlarmDetail = { alarm: a.name, point: a.point, value: raw };
      if (a.bit !== undefined) detail.bit = a.bit;
      this.sinks.event({
        ts,
        device: this.id,
        kind: active ? 'alarm.raised' : 'alarm.cleared',
        severity: active ? a.severity : 'info',
        detail,
      });
    }
  }

  /** Pushes quality bad (value null) for `points`, once per transition. */
  private markBad(points: Iterable<PointConfig>, ts: number): void {
    for (const p of points) {
      const st = this.points.get(p.name)!;
      if (st.quality === 'bad') continue;
      st.quality = 'bad';
      this.sinks.push({ ts, device: this.id, point: p.name, value: null, unit: p.unit ?? null, quality: 'bad' });
    }
  }

  private blockFailed(i: number, block: ReadBlock, err: ModbusExceptionError, ts: number): void {
    this.markBad(block.points, ts);
    if (this.blockError[i] === err.exceptionName) return;
    this.blockError[i] = err.exceptionName;
    this.sinks.event({
      ts,
      device: this.id,
      kind: 'comms.error',
      severity: 'warning',
      detail: {
        bus: this.busId,
        unit: this.unit,
        code: err.code,
        exception: err.exceptionName,
        exceptionCode: err.exceptionCode,
        function: block.fc,
        table: block.table,
        address: block.address,
        quantity: block.quantity,
        error: `${block.table} ${block.address}..${block.address + block.quantity - 1}: ${err.exceptionName}`,
      },
    });
  }

  /** A poll failed after its retries (timeout, CRC, frame, transport): points bad, one event per kind of error. */
  pollFailed(err: unknown): void {
    const ts = this.sinks.clock.now();
    this.markBad(this.profile.points, ts);
    const code = err instanceof ModbusError ? err.code : 'E_MODBUS_TRANSPORT';
    if (this.reportedError === code) return;
    this.reportedError = code;
    this.sinks.event({ ts, device: this.id, kind: 'comms.error', severity: 'warning', detail: { bus: this.busId, unit: this.unit, code, error: errorMessage(err) } });
  }

  lost(err: unknown): void {
    const ts = this.sinks.clock.now();
    this.lostAt = ts;
    this.sinks.log.warn({ device: this.id, bus: this.busId, unit: this.unit, err: errorMessage(err) }, 'modbus device offline');
    this.sinks.event({ ts, device: this.id, kind: 'comms.lost', severity: 'warning', detail: { bus: this.busId, unit: this.unit, error: errorMessage(err) } });
  }

  restored(): void {
    const ts = this.sinks.clock.now();
    const detail: CommsDetail & { offlineMs?: number } = { bus: this.busId, unit: this.unit };
    if (this.lostAt !== null) detail.offlineMs = ts - this.lostAt;
    this.lostAt = null;
    this.reportedError = null;
    this.sinks.log.info({ device: this.id, bus: this.busId, unit: this.unit }, 'modbus device back online');
    this.sinks.event({ ts, device: this.id, kind: 'comms.restored', severity: 'info', detail });
  }

  /** Quality stale for good points whose last good value is older than three poll intervals. */
  checkStale(): void {
    if (this.pollMs <= 0) return;
    const mono = this.sinks.clock.monotonic();
    const ts = this.sinks.clock.now();
    for (const st of this.points.values()) {
      if (st.quality !== 'good' || st.goodAt === null || mono - st.goodAt <= 3 * this.pollMs) continue;
      st.quality = 'stale';
      this.sinks.push({ ts, device: this.id, point: st.cfg.name, value: st.value, unit: st.cfg.unit ?? null, quality: 'stale' });
    }
  }

  startStaleTimer(): void {
    if (this.pollMs <= 0 || this.staleTimer) return;
    const tick = () => {
      this.checkStale();
      this.staleTimer = this.sinks.clock.setTimeout(tick, Math.max(this.pollMs, 1000));
      this.staleTimer.unref?.();
    };
    this.staleTimer = this.sinks.clock.setTimeout(tick, Math.max(this.pollMs, 1000));
    this.staleTimer.unref?.();
  }

  stopStaleTimer(): void {
    if (this.staleTimer) this.sinks.clock.clearTimeout(this.staleTimer);
    this.staleTimer = undefined;
  }

  /** Current quality of a point (for tests and status). */
  quality(point: string): Quality | undefined {
    return this.points.get(point)?.quality;
  }
}
