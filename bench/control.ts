/**
 * `npm run bench control` (or standalone: `npx tsx bench/control.ts`).
 *
 * (a) Command latency: CommandService.submit → arbiter → Modbus TCP writes of both channels
 *     (chN_dim_setpoint, chN_on) each read back → row verified → the result on the bus
 *     ('command'), against the TCP simulator in its own process; p50 / p99 over 1,000
 *     commands. Baseline: the same four verified writes through ModbusDriver.write alone.
 *     Target: p99 < 30 ms. (The MQTT leg in front of submit is the broker's.)
 * (b) Group dim of 200 streetlight controllers on 4 simulated RS-485 lines (50 each) at
 *     19200 baud, 8N2, the simulator holding every frame for its time on the wire: time from
 *     submit until the group row is verified, against the line limit computed from the frame
 *     sizes of exactly the transactions the pipeline needs (Modbus over serial line V1.02
 *     §2.5.1.1: 11-bit characters, t3.5 silences).
 */
import type { ConfigInput } from '../edge/config/schema.js';
import { createControl, type ControlComponent } from '../edge/control/index.js';
import { createModbusDriver, type ModbusDriver } from '../edge/drivers/modbus/index.js';
import { t35Ms, transactionMs } from '../edge/sim/modbus/wireTime.js';
import type { CommandRecord } from '../edge/store/types.js';
import { makeContext, type TestContext } from '../tests/helpers/context.js';
import { waitFor } from '../tests/helpers/wait.js';
import { spawnSimulators } from '../tests/helpers/simProcess.js';
import { median, result, runWhenMain, type BenchResult } from './lib.js';

const N = Number(process.env.BENCH_CONTROL_COMMANDS ?? 1000);
const WARMUP = 50;
const TARGET_P99_MS = 30;
const LINES = 4;
const PER_LINE = 50;
const BAUD = 19200;
const GROUP_TARGET = 1.25;
const TECH = { role: 'technician', principal: 'bench' } as const;

const log = (line: string): void => void process.stderr.write(`  ${line}\n`);

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

interface Rig {
  t: TestContext;
  modbus: ModbusDriver;
  control: ControlComponent;
  close(): Promise<void>;
}

async function rig(config: Omit<ConfigInput, 'gateway'>): Promise<Rig> {
  const t = makeContext(config, { flushIntervalMs: 200 });
  t.keepReadings = false;
  const modbus = createModbusDriver(t.ctx);
  await modbus.start();
  const control = createControl(t.ctx, { modbus });
  await control.start();
  return {
    t,
    modbus,
    control,
    async close() {
      await control.stop();
      await modbus.stop();
      await t.close();
    },
  };
}

async function settle(t: TestContext, timeoutMs: number): Promise<void> {
  await waitFor('start asserts', () => t.store.listCommands({ limit: 10_000 }).every((c) => c.status !== 'queued' && c.status !== 'sent'), timeoutMs);
}

// ---------------------------------------------------------------------------------------
// (a) latency over Modbus TCP

async function benchLatency(): Promise<{ p50: number; p90: number; p99: number; max: number; baseP50: number; baseP99: number; failed: number }> {
  const sim = await spawnSimulators({ tcp: [{ id: 'tcp', devices: [{ unit: 1, profile: 'streetlight-controller' }] }] });
  const r = await rig({
    buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port: sim.bus('tcp').port!, timeout: 1000 }],
    devices: [{ id: 'lamp', bus: 'tcp', unit: 1, profile: 'streetlight-controller', poll: 3_600_000, groups: ['g'] }],
  });
  try {
    await settle(r.t, 10_000);
    const lat: number[] = [];
    let failed = 0;
    for (let i = 0; i < WARMUP + N; i++) {
      const level = 10 + (i % 80);
      const t0 = performance.now();
      const done = await r.control.submit({ kind: 'device', id: 'lamp' }, { action: 'dim', level, durationS: 3600 }, TECH).outcome;
      const ms = performance.now() - t0;
      if (done.status !== 'verified') failed++;
      if (i >= WARMUP) lat.push(ms);
    }
    // baseline: the same four verified writes through the driver alone
    const base: number[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      const level = 10 + (i % 80);
      const t0 = performance.now();
      for (const ch of [1, 2]) {
        await r.modbus.write('lamp', `ch${ch}_dim_setpoint`, level);
        await r.modbus.write('lamp', `ch${ch}_on`, true);
      }
      if (i >= WARMUP) base.push(performance.now() - t0);
    }
    return { p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: Math.max(...lat), baseP50: pct(base, 50), baseP99: pct(base, 99), failed };
  } finally {
    await r.close();
    await sim.stop();
  }
}

// ---------------------------------------------------------------------------------------
// (b) group dim over 4 RTU lines

interface GroupFigure {
  /** median of the rounds */
  ms: number;
  rounds: number[];
  /** the same writes through ModbusDriver.write alone */
  driverAloneMs: number;
  limitMs: number;
  status: string;
  verified: number;
  gapViolations: number;
  /** per transaction on the lines, over the simulator's whole run: its own lateness in answering */
  simLateMsPerTx: number;
  t35Ms: number;
}

async function benchGroup(): Promise<GroupFigure> {
  const wire = { baud: BAUD, bitsPerChar: 11 };
  const lines = Array.from({ length: LINES }, (_, l) => ({
    id: `rs485-${l + 1}`,
    baud: BAUD,
    stopBits: 2 as const,
    wireTime: wire,
    devices: Array.from({ length: PER_LINE }, (_, u) => ({ unit: u + 1, profile: 'streetlight-controller' })),
  }));
  const sim = await spawnSimulators({ rtu: lines }, 30_000);
  // per channel: FC 6 write (request 8, response 8 bytes) + FC 3 read-back of 1 register (8, 7), for chN_dim_setpoint and chN_on
  const perDevice = 2 * 2 * (transactionMs(wire, 8, 8) + transactionMs(wire, 8, 7));
  const limitMs = PER_LINE * perDevice;
  const r = await rig({
    buses: lines.map((l) => ({ id: l.id, type: 'serial' as const, path: sim.bus(l.id).path!, baud: BAUD, parity: 'none' as const, stopBits: 2 as const, timeout: 500 })),
    devices: lines.flatMap((l) => l.devices.map((d) => ({ id: `${l.id}-lamp-${d.unit}`, bus: l.id, unit: d.unit, profile: 'streetlight-controller', poll: 3_600_000, groups: ['city'] }))),
    groups: [{ id: 'city', defaultLevel: 100 }],
  });
  let counters: Awaited<ReturnType<typeof sim.stop>> = [];
  try {
    // the first poll of every device and the start asserts, then a quiet line
    await settle(r.t, 120_000);
    await waitFor('first polls', () => r.modbus.status().every((b) => b.devices.every((d) => d.polls >= 1)), 60_000);
    const rounds: number[] = [];
    let done: CommandRecord | null = null;
    let verified = Infinity;
    for (const [i, level] of [40, 70, 30].entries()) {
      const t0 = performance.now();
      const final = await r.control.submit({ kind: 'group', id: 'city' }, { action: 'dim', level, durationS: 3600 }, TECH).outcome;
      done = final;
      rounds.push(performance.now() - t0);
      verified = Math.min(verified, Object.values((final.result as { devices: Record<string, { status: string }> }).devices).filter((d) => d.status === 'verified').length);
      log(`group round ${i + 1}: ${rounds.at(-1)!.toFixed(0)} ms, ${final.status}`);
    }
    const ms = median(rounds);
    // reference: the same writes through the Modbus driver alone (no pipeline), all devices at once
    const ids = lines.flatMap((l) => l.devices.map((d) => `${l.id}-lamp-${d.unit}`));
    const d0 = performance.now();
    await Promise.all(
      ids.map(async (id) => {
        for (const ch of [1, 2]) {
          await r.modbus.write(id, `ch${ch}_dim_setpoint`, 60);
          await r.modbus.write(id, `ch${ch}_on`, true);
        }
      }),
    );
    const driverAloneMs = performance.now() - d0;
    await r.close();
    counters = await sim.stop();
    const timed = counters.reduce((a, c) => a + c.timed, 0);
    const sum = (k: 'writeLateMs' | 'gapViolations') => counters.reduce((a, c) => a + c[k], 0);
    return {
      ms,
      limitMs,
      driverAloneMs,
      status: done!.status,
      rounds,
      verified,
      gapViolations: sum('gapViolations'),
      simLateMsPerTx: timed > 0 ? sum('writeLateMs') / timed : NaN,
      t35Ms: t35Ms(wire),
    };
  } finally {
    await r.close();
    await sim.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  if (process.env.BENCH_CONTROL_ONLY !== 'group') {
    const l = await benchLatency();
    log(`latency over ${N} commands: p50 ${l.p50.toFixed(2)} ms, p90 ${l.p90.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, max ${l.max.toFixed(1)} ms; driver alone p50 ${l.baseP50.toFixed(2)} ms, p99 ${l.baseP99.toFixed(2)} ms; failed ${l.failed}`);
    out.push(
      result({
        name: 'control',
        metric: 'command latency p99: submit → Modbus TCP writes (2 channels) → read-back verified → result on the bus',
        value: Number(l.p99.toFixed(3)),
        unit: 'ms',
        baseline: 'the same 4 verified writes via ModbusDriver.write alone, p99',
        baselineValue: Number(l.baseP99.toFixed(3)),
        target: `p99 < ${TARGET_P99_MS} ms`,
        pass: l.p99 < TARGET_P99_MS && l.failed === 0,
        details: { commands: N, p50: l.p50, p90: l.p90, p99: l.p99, max: l.max, baselineP50: l.baseP50, baselineP99: l.baseP99, failed: l.failed },
      }),
    );
  }
  if (process.env.BENCH_CONTROL_ONLY !== 'latency') {
    const g = await benchGroup();
    log(`group dim of ${LINES * PER_LINE} controllers on ${LINES} lines at ${BAUD} baud: ${g.ms.toFixed(0)} ms vs line limit ${g.limitMs.toFixed(0)} ms → ${(g.ms / g.limitMs).toFixed(3)}× (the same writes through the driver alone: ${g.driverAloneMs.toFixed(0)} ms); ${g.verified} verified, row ${g.status}, gap violations ${g.gapViolations}; sim late ${g.simLateMsPerTx.toFixed(2)} ms/tx; t3.5 ${g.t35Ms.toFixed(2)} ms`);
    out.push(
      result({
        name: 'control-group',
        metric: `group dim of ${LINES * PER_LINE} streetlight controllers on ${LINES} RS-485 lines at ${BAUD} baud until all verified`,
        value: Math.round(g.ms),
        unit: 'ms',
        baseline: 'line limit from frame sizes (50 devices x 4 writes x (FC6 8+8 B + FC3 read-back 8+7 B), 11-bit chars, 2 x t3.5 per transaction)',
        baselineValue: Math.round(g.limitMs),
        target: `ratio <= ${GROUP_TARGET}, all ${LINES * PER_LINE} verified`,
        pass: g.ms / g.limitMs <= GROUP_TARGET && g.verified === LINES * PER_LINE && g.status === 'verified',
        details: { lines: LINES, perLine: PER_LINE, baud: BAUD, ...g, transactionsPerDevice: 8 },
      }),
    );
  }
  return out;
}

runWhenMain(import.meta.url, 'control', run);
