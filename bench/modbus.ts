/**
 * `npm run bench modbus` (or standalone: `npx tsx bench/modbus.ts`).
 *
 * (a) TCP: sequential reads of 10 holding registers from the simulator (in its own process):
 *     transactions/s through the full driver (scheduler, codec, ingest into the SQLite store)
 *     versus a bare modbus-serial client loop (connectTCP) and a raw-socket ping-pong of the
 *     same frames, in the same run; rounds alternate the three loops and the ratio is the
 *     median of the per-round ratios. The driver stores every poll (EVERY_POLL, the figure
 *     compared across versions); the same driver with the built-in report strategies
 *     (reportPolicy: the registers hold still, so after the first poll only a heartbeat would
 *     be stored) is measured in the same rounds and reported in the details, as is the driver
 *     with an ingest that stores nothing.
 *     Target: driver >= 0.9 × modbus-serial.
 * (b) RTU on a socat PTY at 9600, 19200 and 115200 baud, the simulator emulating wire time
 *     (8N2: 11-bit characters): the measured poll cycle of 10 devices × 20 registers versus
 *     the physical minimum of the line (frame sizes, 11-bit characters, two t3.5 silences
 *     per transaction). Target: within 1.15× at 9600 and 19200 baud.
 */
import { connect } from 'node:net';
import { loadavg } from 'node:os';
import type { ConfigInput, ProfileConfig } from '../edge/config/schema.js';
import { createModbusDriver } from '../edge/drivers/modbus/index.js';
import { reportPolicy } from '../edge/report/policy.js';
import { t35Ms, transactionMs } from '../edge/sim/modbus/wireTime.js';
import { BatchWriter } from '../edge/store/writer.js';
import { makeContext } from '../tests/helpers/context.js';
import { waitFor } from '../tests/helpers/wait.js';
import { ModbusRTU } from '../tests/helpers/modbusSerial.js';
import { spawnSimulators } from '../tests/helpers/simProcess.js';
import { median, result, runWhenMain, type BenchResult } from './lib.js';

const TCP_TX = Number(process.env.BENCH_MODBUS_TCP_TX ?? 20_000);
const ROUNDS = Number(process.env.BENCH_MODBUS_ROUNDS ?? 5);
const RTU_BAUDS = [9600, 19200, 115200];
const RTU_DEVICES = 10;
const RTU_REGS = 20;
const RTU_CYCLES = Number(process.env.BENCH_MODBUS_RTU_CYCLES ?? 6);
const RTU_WINDOWS = Number(process.env.BENCH_MODBUS_RTU_WINDOWS ?? 3);
const TCP_TARGET = 0.9;
const RTU_TARGET = 1.15;

/** A profile of `n` consecutive uint16 holding registers from address 0: one FC 3 request per poll. */
function blockProfile(name: string, n: number): ProfileConfig {
  return {
    name,
    transport: 'modbus',
    alarms: [],
    points: Array.from({ length: n }, (_, i) => ({
      name: `r${i}`,
      table: 'holding' as const,
      address: i,
      type: 'uint16' as const,
      wordOrder: 'big' as const,
      scale: 1,
      offset: 0,
      access: 'r' as const,
    })),
  };
}

const log = (line: string): void => void process.stderr.write(`  ${line}\n`);

// ---------------------------------------------------------------------------------------
// (a) TCP

async function rawPingPong(port: number, n: number): Promise<number> {
  const s = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  // MBAP (tid, protocol 0, length 6, unit 1) + FC 3, address 0, quantity 10; the answer is 7 + 2 + 20 bytes
  const req = Buffer.from([0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    let done = 0;
    let got = 0;
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      got += d.length;
      while (got >= 29) {
        got -= 29;
        if (++done >= n) return resolve();
        s.write(req);
      }
    });
    s.write(req);
  });
  const rate = n / ((performance.now() - t0) / 1000);
  s.destroy();
  return rate;
}

async function modbusSerialLoop(port: number, n: number): Promise<number> {
  const c = new ModbusRTU();
  await c.connectTCP('127.0.0.1', { port });
  c.setID(1);
  c.setTimeout(1000);
  for (let i = 0; i < 200; i++) await c.readHoldingRegisters(0, 10); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await c.readHoldingRegisters(0, 10);
  const rate = n / ((performance.now() - t0) / 1000);
  await new Promise<void>((resolve) => c.close(() => resolve()));
  return rate;
}

/**
 * How the driver's readings are ingested: every poll stored (the test context's writer), the
 * built-in report strategies (a writer with reportPolicy of the config), or nothing stored
 * (diagnosis only: an ingest that counts and drops, to split the store's share).
 */
type Ingesting = 'everyPoll' | 'strategies' | 'nothing';

/** Polls per second through createModbusDriver: a device polled back to back (poll: 0), counted by the driver. */
async function driverLoop(config: Omit<ConfigInput, 'gateway'>, polls: number, maxMs: number, ingesting: Ingesting = 'everyPoll'): Promise<{ rate: number; polls: number }> {
  const t = makeContext(config, { flushIntervalMs: 200 });
  t.keepReadings = false;
  const strategies =
    ingesting === 'strategies'
      ? new BatchWriter({ store: t.store, bus: t.ctx.bus, log: t.ctx.log, clock: t.ctx.clock, flushIntervalMs: 200, flushRows: 1000, report: reportPolicy(t.config) })
      : null;
  strategies?.start();
  const ctx =
    ingesting === 'everyPoll'
      ? t.ctx
      : {
          ...t.ctx,
          ingest: strategies ?? {
            push: () => void t.committed++,
            pushMany: (rs: readonly unknown[]) => void (t.committed += rs.length),
            flush: () => null,
            pending: 0,
          },
        };
  const driver = createModbusDriver(ctx);
  try {
    await driver.start();
    // Polls counted by the driver itself (commits come in 200 ms batches, and under report
    // strategies hardly any); the store's commits run on the same event loop, so their cost is in the figure.
    const polled = (): number => driver.status()[0]?.devices[0]?.polls ?? 0;
    await waitFor('first polls', () => polled() >= 50, 10_000);
    const p0 = polled();
    const t0 = performance.now();
    await waitFor('polls', () => polled() - p0 >= polls || performance.now() - t0 > maxMs, maxMs + 5000);
    const elapsed = performance.now() - t0;
    const done = polled() - p0;
    return { rate: done / (elapsed / 1000), polls: done };
  } finally {
    await driver.stop();
    await strategies?.stop();
    await t.close();
  }
}

export interface TcpFigures {
  /** medians, transactions/s */
  driver: number;
  modbusSerial: number;
  raw: number;
  /** driver / modbus-serial: the median of the per-round ratios */
  ratio: number;
  /** the same for the driver under the built-in report strategies */
  strategiesRatio: number;
  rounds: Record<string, number[]>;
}

/** (a): `rounds` rounds of the four loops against one simulator (bench/economy.ts runs it too). */
export async function benchTcp(rounds = ROUNDS): Promise<TcpFigures> {
  const profile = blockProfile('bench10', 10);
  const sim = await spawnSimulators({ tcp: [{ id: 'tcp', devices: [{ unit: 1, profile: 'bench10' }] }], profiles: [profile] });
  const port = sim.bus('tcp').port!;
  const config: Omit<ConfigInput, 'gateway'> = {
    profiles: [profile],
    buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port, timeout: 1000 }],
    devices: [{ id: 'dev', bus: 'tcp', unit: 1, profile: 'bench10', poll: 0 }],
  };
  const loops: Record<string, number[]> = { raw: [], modbusSerial: [], driver: [], driverStrategies: [], driverWithoutStore: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      loops.raw!.push(await rawPingPong(port, TCP_TX));
      loops.modbusSerial!.push(await modbusSerialLoop(port, TCP_TX));
      loops.driver!.push((await driverLoop(config, TCP_TX, 15_000)).rate);
      loops.driverStrategies!.push((await driverLoop(config, TCP_TX, 15_000, 'strategies')).rate);
      loops.driverWithoutStore!.push((await driverLoop(config, TCP_TX, 15_000, 'nothing')).rate);
      log(
        `tcp round ${r + 1}: raw ${loops.raw!.at(-1)!.toFixed(0)}/s, modbus-serial ${loops.modbusSerial!.at(-1)!.toFixed(0)}/s, ` +
          `driver ${loops.driver!.at(-1)!.toFixed(0)}/s (report strategies ${loops.driverStrategies!.at(-1)!.toFixed(0)}/s, without the store ${loops.driverWithoutStore!.at(-1)!.toFixed(0)}/s)`,
      );
    }
  } finally {
    await sim.stop();
  }
  // Rounds are paired (the loops run back to back), so the ratio is the median of the
  // per-round ratios: a load spike from elsewhere on the machine hits one round, not one loop.
  const ratioOf = (xs: number[]): number => median(xs.map((d, i) => d / loops.modbusSerial![i]!));
  return {
    driver: median(loops.driver!),
    modbusSerial: median(loops.modbusSerial!),
    raw: median(loops.raw!),
    ratio: ratioOf(loops.driver!),
    strategiesRatio: ratioOf(loops.driverStrategies!),
    rounds: loops,
  };
}

// ---------------------------------------------------------------------------------------
// (b) RTU

interface RtuFigure {
  baud: number;
  measuredCycleMs: number;
  physicalCycleMs: number;
  ratio: number;
  cycles: number;
  /** cycle time of each measurement window, ms */
  windows: number[];
  gapViolations: number;
  /** per transaction: the master's idle time after a response (the line needs t3.5) and the simulator's own write lateness */
  masterIdleMsPerTx: number;
  simLateMsPerTx: number;
}

async function benchRtu(baud: number): Promise<RtuFigure> {
  const profile = blockProfile('bench20', RTU_REGS);
  const devices = Array.from({ length: RTU_DEVICES }, (_, i) => ({ unit: i + 1, profile: 'bench20' }));
  const sim = await spawnSimulators({
    rtu: [{ id: 'line', baud, stopBits: 2, wireTime: { baud, bitsPerChar: 11 }, devices }],
    profiles: [profile],
  });
  // request: unit, FC, address (2), quantity (2), CRC (2) = 8; response: unit, FC, byte count, 2 × 20, CRC (2) = 45
  const physicalCycleMs = RTU_DEVICES * transactionMs({ baud, bitsPerChar: 11 }, 8, 5 + 2 * RTU_REGS);
  const config: Omit<ConfigInput, 'gateway'> = {
    profiles: [profile],
    buses: [{ id: 'line', type: 'serial', path: sim.bus('line').path!, baud, parity: 'none', stopBits: 2, timeout: 1000 }],
    devices: devices.map((d) => ({ id: `dev-${d.unit}`, bus: 'line', unit: d.unit, profile: 'bench20', poll: 0 })),
  };
  const perCycle = RTU_DEVICES * RTU_REGS;
  const t = makeContext(config, { flushIntervalMs: 200 });
  t.keepReadings = false;
  const driver = createModbusDriver(t.ctx);
  let lines: Awaited<ReturnType<typeof sim.stop>> = [];
  try {
    await driver.start();
    await waitFor('a first full cycle', () => t.committed >= perCycle, 20_000);
    // Several windows of RTU_CYCLES cycles each; the median window is the figure.
    const windows: number[] = [];
    let cycles = 0;
    for (let w = 0; w < RTU_WINDOWS; w++) {
      const c0 = t.committed;
      const t0 = performance.now();
      const maxMs = physicalCycleMs * RTU_CYCLES * 3;
      await waitFor('cycles', () => t.committed - c0 >= RTU_CYCLES * perCycle || performance.now() - t0 > maxMs, maxMs + 5000);
      const n = (t.committed - c0) / perCycle;
      cycles += n;
      windows.push((performance.now() - t0) / n);
    }
    const measuredCycleMs = median(windows);
    await driver.stop();
    lines = await sim.stop();
    const line = lines[0];
    const perTx = (x: number | undefined): number => (line && line.timed > 0 ? (x ?? 0) / line.timed : NaN);
    return {
      baud,
      measuredCycleMs,
      physicalCycleMs,
      ratio: measuredCycleMs / physicalCycleMs,
      cycles,
      windows,
      gapViolations: line?.gapViolations ?? 0,
      masterIdleMsPerTx: perTx(line?.masterIdleMs),
      simLateMsPerTx: perTx(line?.writeLateMs),
    };
  } finally {
    await driver.stop();
    await t.close();
    await sim.stop();
  }
}

export async function run(): Promise<BenchResult> {
  // Timing figures mean little on a busy machine: the load is kept with the result.
  const loadBefore = loadavg();
  const only = process.env.BENCH_MODBUS_ONLY; // "tcp" or "rtu": a partial run, for diagnosis
  const tcp: TcpFigures = only === 'rtu' ? { driver: NaN, modbusSerial: NaN, raw: NaN, ratio: NaN, strategiesRatio: NaN, rounds: {} } : await benchTcp();
  const rtu: RtuFigure[] = [];
  for (const baud of only === 'tcp' ? [] : RTU_BAUDS) {
    const f = await benchRtu(baud);
    rtu.push(f);
    log(`rtu ${baud} baud: cycle ${f.measuredCycleMs.toFixed(1)} ms vs physical ${f.physicalCycleMs.toFixed(1)} ms → ${f.ratio.toFixed(3)}× (master idle ${f.masterIdleMsPerTx.toFixed(2)} ms/tx vs t3.5 ${t35Ms({ baud, bitsPerChar: 11 }).toFixed(2)} ms, sim late ${f.simLateMsPerTx.toFixed(3)} ms/tx, gap violations ${f.gapViolations})`);
  }
  const tcpRatio = tcp.ratio;
  const rtuPass = rtu.filter((f) => f.baud <= 19200).every((f) => f.ratio <= RTU_TARGET);
  log(`tcp: driver ${tcp.driver.toFixed(0)}/s, modbus-serial ${tcp.modbusSerial.toFixed(0)}/s (ratio ${tcpRatio.toFixed(3)}), raw socket ${tcp.raw.toFixed(0)}/s (driver/raw ${(tcp.driver / tcp.raw).toFixed(3)})`);
  return result({
    name: 'modbus',
    metric: 'TCP reads of 10 holding registers through the driver (scheduler + store)',
    value: Math.round(tcp.driver),
    unit: 'transactions/s',
    baseline: 'bare modbus-serial client loop',
    baselineValue: Math.round(tcp.modbusSerial),
    ratio: tcpRatio,
    target: `TCP ratio >= ${TCP_TARGET}; RTU cycle <= ${RTU_TARGET}x physical at 9600 and 19200`,
    pass: tcpRatio >= TCP_TARGET && rtuPass,
    details: {
      tcp: {
        driver: Math.round(tcp.driver),
        modbusSerial: Math.round(tcp.modbusSerial),
        rawSocket: Math.round(tcp.raw),
        driverStrategies: Math.round(median(tcp.rounds.driverStrategies ?? [])),
        driverStrategiesRatio: tcp.strategiesRatio,
        driverWithoutStore: Math.round(median(tcp.rounds.driverWithoutStore ?? [])),
        driverVsRaw: tcp.driver / tcp.raw,
        transactionsPerRound: TCP_TX,
        rounds: tcp.rounds,
      },
      rtu: rtu.map((f) => ({ ...f, target: f.baud <= 19200 ? RTU_TARGET : null })),
      loadAverage: { before: loadBefore, after: loadavg() },
      rtuSetup: `${RTU_DEVICES} devices x ${RTU_REGS} holding registers, 8N2 (11-bit characters), poll 0, simulator wire-time emulation`,
    },
  });
}

runWhenMain(import.meta.url, 'modbus', run);
