/**
 * One day of the shipped demo (devices.yaml), simulated in accelerated time on a virtual
 * clock: the simulator's device models (edge/sim/modbus) ticked every second as the simulator
 * ticks them, each Modbus device polled at its `poll` interval by the driver's own ModbusDevice
 * (block plan, response decoding, the readings it pushes) against the simulator's PDU server
 * on the model's RegisterBank; the LoRaWAN nodes and forwarder of loraDay.ts; and the demo's
 * dimming schedules, their steps computed by the gateway's Scheduler for the date, written
 * into the controllers through the driver's writePoint (setpoint, then on/off, as
 * edge/control/lightDriver.ts does) and sent to the nodes as their downlink commands.
 *
 * Every reading and event goes to `sinks` at its virtual time; the clock's timers (the
 * writer's flushes, the store's) fire in between, at their own times.
 */
import type { Config, DeviceConfig, ProfileConfig } from '../../edge/config/schema.js';
import { createScheduler, type Transition } from '../../edge/control/schedule.js';
import type { CalendarDate } from '../../edge/control/sun.js';
import { ModbusDevice } from '../../edge/drivers/modbus/device.js';
import { writePoint } from '../../edge/drivers/modbus/points.js';
import type { Transact } from '../../edge/drivers/modbus/scheduler.js';
import { StreetboxError } from '../../edge/errors.js';
import type { Logger } from '../../edge/log.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import type { DeviceModel } from '../../edge/sim/modbus/model.js';
import { respond } from '../../edge/sim/modbus/pdu.js';
import { StreetlightModel } from '../../edge/sim/modbus/streetlight.js';
import { TrafficModel } from '../../edge/sim/modbus/traffic.js';
import { transactionMs } from '../../edge/sim/modbus/wireTime.js';
import type { NewEvent, NewReading } from '../../edge/store/types.js';
import type { VirtualClock } from './clock.js';
import { loraDay } from './loraDay.js';

const DAY_MS = 86_400_000;
/** edge/sim/modbus: the simulator advances its models every second */
const MODEL_TICK_MS = 1000;

/** Something that happens at `next` (virtual ms) and says when it happens again. */
export interface Source {
  next: number;
  fire(now: number): void | Promise<void>;
}

export interface DaySinks {
  /** the readings of one poll or uplink, as the driver pushes them into the ingest */
  readings(rs: NewReading[]): void;
  event(e: NewEvent): void;
}

/** A schedule step that fired, and the group it dimmed. */
export type Step = Transition & { group: string };

export interface DayOutcome {
  start: number;
  end: number;
  /** the schedule steps that fired during the day */
  steps: Step[];
}

/** The virtual instant the simulated day starts: local midnight of `date` in the gateway's zone. */
export function dayStart(config: Config, date: CalendarDate): number {
  return createScheduler(config.schedules, config.gateway).zone.toUtc(date, 0).at;
}

interface ModbusUnit {
  device: DeviceConfig;
  profile: ProfileConfig;
  model: DeviceModel;
  tx: Transact;
}

/** The simulator's model for a built-in profile (edge/sim/modbus createModel), on the virtual clock. */
function modelFor(profile: ProfileConfig, seed: number, clock: VirtualClock): DeviceModel {
  if (profile.name === 'streetlight-controller') return new StreetlightModel(profile, { seed });
  // its time-of-day plan reads the local hours of the host's zone, as the simulator does
  if (profile.name === 'traffic-controller') return new TrafficModel(profile, { seed, now: () => clock.now() });
  throw new StreetboxError('E_CONFIG', `the economy bench simulates the built-in controllers only, not profile "${profile.name}"`);
}

/** Polls of one device on the driver's ModbusDevice. */
class PollSource implements Source {
  constructor(
    public next: number,
    private readonly device: ModbusDevice,
    private readonly tx: Transact,
  ) {}

  async fire(now: number): Promise<void> {
    await this.device.poll(this.tx);
    this.next = now + this.device.pollMs;
  }
}

/** Simulates 24 hours from the clock's time (dayStart of the day wanted). */
export async function simulateDemoDay(config: Config, clock: VirtualClock, sinks: DaySinks, log: Logger): Promise<DayOutcome> {
  const start = clock.now();
  const end = start + DAY_MS;
  const profiles = loadProfiles(config.profiles);
  const deviceSinks = {
    push: (r: NewReading) => sinks.readings([r]),
    pushMany: (rs: readonly NewReading[]) => sinks.readings([...rs]),
    event: (e: NewEvent) => sinks.event(e),
    clock,
    log,
  };

  // Modbus: the devices of each bus, polled one after another (on a serial line a transaction's wire time apart)
  const units = new Map<string, ModbusUnit>();
  const modbusSources: Source[] = [];
  for (const bus of config.buses) {
    const onBus = config.devices.filter((d) => d.bus === bus.id);
    onBus.forEach((d, k) => {
      const profile = profiles.require(d.profile);
      const model = modelFor(profile, d.unit ?? 1, clock);
      const tx: Transact = async (pdu) => respond(model.bank, pdu, 0, 0);
      units.set(d.id, { device: d, profile, model, tx });
      const device = new ModbusDevice(d, profile, bus.id, bus.maxGap, deviceSinks);
      const wire = bus.type === 'serial' ? transactionMs({ baud: bus.baud, bitsPerChar: 11 }, 8, 5 + 2 * (device.blocks[0]?.quantity ?? 0)) : 1;
      modbusSources.push(new PollSource(start + Math.round(k * wire), device, tx));
    });
  }
  const models = [...units.values()].map((u) => u.model);
  const ticker: Source = {
    next: start + MODEL_TICK_MS,
    fire(now) {
      for (const m of models) m.tick(MODEL_TICK_MS);
      this.next = now + MODEL_TICK_MS;
    },
  };

  const lora = loraDay(config, start, (rs) => sinks.readings(rs));

  // The schedules: the level in force at midnight, then every step of the day.
  const scheduler = createScheduler(config.schedules, config.gateway);
  const setLevel = async (group: string, level: number, now: number): Promise<void> => {
    for (const d of config.devices.filter((x) => x.groups.includes(group))) {
      const unit = units.get(d.id);
      if (unit) await driveChannels(unit, level);
      else lora.nodes.get(d.id)?.command(level, now);
    }
  };
  const steps: Step[] = [];
  for (const group of scheduler.groups()) {
    const atMidnight = scheduler.levelAt(group, start);
    if (atMidnight) await setLevel(group, atMidnight.level, start);
    steps.push(...scheduler.transitions(group, start, end).map((t) => ({ ...t, group })));
  }
  steps.sort((a, b) => a.at - b.at);
  const stepSource: Source = {
    next: steps[0]?.at ?? Infinity,
    async fire() {
      const due = steps.filter((s) => s.at === this.next);
      for (const s of due) await setLevel(s.group, s.level, s.at);
      this.next = steps.find((s) => s.at > this.next)?.at ?? Infinity;
    },
  };

  // Sources in this order at the same instant: schedule, model tick, polls, LoRaWAN.
  const sources: Source[] = [stepSource, ticker, ...modbusSources, ...lora.sources];
  for (;;) {
    let due: Source | undefined;
    for (const s of sources) if (!due || s.next < due.next) due = s;
    if (!due || due.next >= end) break;
    const now = due.next;
    clock.advanceTo(now);
    await due.fire(now);
  }
  clock.advanceTo(end);
  return { start, end, steps };
}

/** lightDriver.ts writeLevel: every channel's setpoint, then its on/off, each write read back. */
async function driveChannels(unit: ModbusUnit, level: number): Promise<void> {
  for (let n = 1; ; n++) {
    const setpoint = unit.profile.points.find((p) => p.name === `ch${n}_dim_setpoint`);
    const on = unit.profile.points.find((p) => p.name === `ch${n}_on`);
    if (!setpoint || !on) return;
    for (const [p, v] of [
      [setpoint, level],
      [on, level > 0],
    ] as const) {
      const r = await writePoint(unit.tx, p, v);
      if (r.status !== 'verified') throw new StreetboxError('E_MODBUS_VERIFY', `${unit.device.id}: writing ${p.name} = ${String(v)} failed: ${r.reason ?? ''}`);
    }
  }
}
