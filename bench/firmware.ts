/**
 * `npm run bench firmware` (or standalone: `npx tsx bench/firmware.ts`): issue 17's benchmark.
 *
 * A 64 KiB image to one streetlight controller (registerBlock: FC 6 enter, then one FC 16 of
 * [index, 120 registers] per block) on an RTU line at 19200 baud, 8N2 (11-bit characters), while
 * the 9 other controllers on the line are polled (every BENCH_FIRMWARE_POLL, default 5 s: one
 * FC 3 of 31 registers each, about 9 % of the line for the 10 devices).
 *
 * The line: a socat PTY pair; the simulators (units 1..10) in a process of their own
 * (edge/sim/modbus/serve.ts), holding every frame for its wire time (wireTime.ts), so the
 * gateway's event loop and the simulator's timers do not share a process. The gateway: its
 * engine in this process (startGateway on a temp devices.yaml, simulate: false, no API, no
 * broker, no Node-RED), lights allowed to update all day (firmware.lights.windows 00:00-12:00 and 12:00-00:00),
 * the artifact handed to gw.firmware.submit as a technician's local one, the manifest signed.
 *
 * - firmware-transfer: the job's `transferring` stage (event firmware.job.transferring →
 *   firmware.job.activating: prepare and every block, with the polls going on) against the
 *   line's physical limit for the same frames (methods/modbus.ts updateFrames, the `enter` and
 *   `block` frames, physicalLineMs at serialTiming(19200, 8N2)). Target ≤ 1.3×.
 * - firmware-poll-cycle: the 9 other devices' poll cycle (DeviceStatus.cycleMs: the period
 *   between the starts of two polls) during the transfer against before it, medians. Target ≤
 *   1.5×. Their poll latency (DeviceStatus.pollMs: queued + on the line) is in the details.
 *
 * The bus's transferShare is BENCH_FIRMWARE_SHARE (default 0.9, the engine's default). Bounded:
 * every wait has a timeout; the gateway, the simulator process and its PTYs are stopped, the
 * temp directory removed, whatever happens.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialTiming } from '../edge/drivers/modbus/framing.js';
import { physicalLineMs, updateFrames } from '../edge/firmware/methods/modbus.js';
import { silentLogger } from '../edge/log.js';
import { startGateway, type Gateway } from '../edge/main.js';
import { loadProfiles } from '../edge/profiles/index.js';
import { firmwareOf } from '../edge/profiles/firmware.js';
import { transactionMs } from '../edge/sim/modbus/wireTime.js';
import { envelope, keyPair, simImage } from '../tests/firmware/e2e/support.js';
import { spawnSimulators, type LineCounters, type SimProcess } from '../tests/helpers/simProcess.js';
import { waitFor } from '../tests/helpers/wait.js';
import { firmwareGatewayYaml, median, result, runWhenMain, type BenchResult } from './lib.js';

const GW = 'gw-bench-firmware';
const BAUD = 19200;
const DEVICES = 10;
const TARGET_UNIT = 1;
const IMAGE_BYTES = Number(process.env.BENCH_FIRMWARE_SIZE ?? 64 * 1024);
const POLL = process.env.BENCH_FIRMWARE_POLL ?? '5s';
const SHARE = Number(process.env.BENCH_FIRMWARE_SHARE ?? 0.9);
/** how long the others' cycle is watched before the deployment is submitted */
const BEFORE_MS = Number(process.env.BENCH_FIRMWARE_BEFORE_MS ?? 20_000);
/** how long the simulated controller is silent after its commit */
const REBOOT_MS = 2000;
const SAMPLE_MS = 50;
const TRANSFER_TARGET = 1.3;
const CYCLE_TARGET = 1.5;
const PROFILE = 'streetlight-controller';
/** one poll of a streetlight controller on RTU: FC 3 of registers 0..30; unit + PDU + CRC */
const POLL_REQUEST_BYTES = 8;
const POLL_RESPONSE_BYTES = 5 + 2 * 31;

const log = (line: string): void => void process.stderr.write(`  ${line}\n`);
const deviceId = (unit: number): string => `lamp-${String(unit).padStart(2, '0')}`;
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

function p95(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] as number;
}

function devicesYaml(linePath: string, publicPem: string): string {
  return [
    `gateway: { id: ${GW}, timezone: UTC }`,
    'storage: { path: data/gw.db }',
    'buses:',
    // 8N2: start + 8 data + 2 stop = 11 bits per character, as the simulator's wire time counts them
    `  - { id: line, type: serial, path: '${linePath}', baud: ${BAUD}, dataBits: 8, parity: none, stopBits: 2, timeout: 500ms, retries: 2, transferShare: ${SHARE} }`,
    'devices:',
    ...Array.from({ length: DEVICES }, (_, i) => `  - { id: ${deviceId(i + 1)}, bus: line, unit: ${i + 1}, profile: ${PROFILE}, poll: ${POLL} }`),
    ...firmwareGatewayYaml(publicPem),
    'simulate: false',
    '',
  ].join('\n');
}

/** One completed poll of one of the others: when it started (performance.now() ms), its cycle and its latency. */
interface PollSample {
  device: string;
  startedAt: number;
  cycleMs: number;
  pollMs: number;
}

/** Watches the driver's per-device status: every completed poll of the devices `ids`. */
class PollWatch {
  readonly samples: PollSample[] = [];
  /** when a failed poll of one of them was seen (performance.now() ms) */
  readonly failures: number[] = [];
  private readonly seen = new Map<string, { polls: number; failures: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly gw: Gateway,
    private readonly ids: ReadonlySet<string>,
  ) {
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  private sample(): void {
    const now = performance.now();
    for (const bus of this.gw.built.modbus?.status() ?? []) {
      for (const d of bus.devices) {
        if (!this.ids.has(d.id)) continue;
        const before = this.seen.get(d.id);
        this.seen.set(d.id, { polls: d.polls, failures: d.failures });
        // a failed poll has no cycle worth comparing: it is counted apart
        if (before !== undefined && d.failures > before.failures) this.failures.push(now);
        if (before === undefined || d.polls === before.polls || d.failures !== before.failures || d.cycleMs === null || d.pollMs === null) continue;
        this.samples.push({ device: d.id, startedAt: now - d.pollMs, cycleMs: d.cycleMs, pollMs: d.pollMs });
      }
    }
  }

  between(from: number, to: number): PollSample[] {
    return this.samples.filter((s) => s.startedAt >= from && s.startedAt < to);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

interface Figures {
  transferMs: number;
  physicalMs: number;
  cycleBefore: number;
  cycleDuring: number;
  details: Record<string, unknown>;
}

async function measure(): Promise<Figures> {
  const profile = loadProfiles().require(PROFILE);
  const fw = firmwareOf(profile);
  if (!fw || fw.decl.method === 'fuota') throw new Error(`profile ${PROFILE} declares no Modbus firmware method`);
  const timing = serialTiming(BAUD, 8, 'none', 2);
  const frames = updateFrames(fw.decl, IMAGE_BYTES);
  const transferFrames = frames.filter((f) => f.step === 'enter' || f.step === 'block');
  const physicalMs = physicalLineMs(transferFrames, timing);
  const activateMs = physicalLineMs(
    frames.filter((f) => f.step !== 'enter' && f.step !== 'block'),
    timing,
  );
  const blocks = frames.filter((f) => f.step === 'block').length;

  const image = simImage(0x0200, IMAGE_BYTES);
  const keys = keyPair();
  const devices = Array.from({ length: DEVICES }, (_, i) => ({ unit: i + 1, profile: PROFILE }));
  const dir = mkdtempSync(join(tmpdir(), 'bench-firmware-'));
  let sim: SimProcess | null = null;
  let gw: Gateway | null = null;
  let watch: PollWatch | null = null;
  let lines: LineCounters[] = [];
  try {
    sim = await spawnSimulators({
      rtu: [{ id: 'line', baud: BAUD, stopBits: 2, wireTime: { baud: BAUD, bitsPerChar: 11 }, devices }],
      rebootMs: REBOOT_MS,
    });
    writeFileSync(join(dir, 'devices.yaml'), devicesYaml(sim.bus('line').path!, keys.publicPem));
    gw = await startGateway({ configPath: join(dir, 'devices.yaml'), log: silentLogger(), stopBudgetMs: 10_000 });
    const g = gw;
    const engine = g.firmware;
    if (!engine) throw new Error('the gateway runs no firmware engine');
    const target = deviceId(TARGET_UNIT);
    const others = new Set(devices.filter((d) => d.unit !== TARGET_UNIT).map((d) => deviceId(d.unit)));

    // When each stage of the job began (the engine's events, committed as the journal advances).
    const stageAt = new Map<string, number>();
    g.context.bus.on('bench-firmware', 'event', (e) => {
      if (e.kind.startsWith('firmware.job.') && e.device === target && !stageAt.has(e.kind.slice('firmware.job.'.length))) {
        stageAt.set(e.kind.slice('firmware.job.'.length), performance.now());
      }
    });

    watch = new PollWatch(g, new Set(devices.map((d) => deviceId(d.unit))));
    await waitFor('every device polled twice', () => g.built.modbus?.status()[0]?.devices.every((d) => d.polls >= 2 && d.cycleMs !== null), 30_000);
    const beforeFrom = performance.now();
    await new Promise((r) => setTimeout(r, BEFORE_MS));
    const submittedAt = performance.now();
    const submitted = engine.submit({
      source: 'technician',
      principal: 'bench',
      role: 'technician',
      envelope: envelope(keys, GW, { id: 'bench-fw', targets: { devices: [target] } }, image),
      artifact: image.bytes,
    });
    if (submitted.first.status === 'rejected') throw new Error(`deployment refused: ${submitted.first.code} ${submitted.first.reason}`);
    // the transfer at a third of the line's speed, the reboot and the verification: far inside this
    const endTimeout = 3 * physicalMs + 60_000 + REBOOT_MS;
    await waitFor('the job to end', () => ['confirmed', 'failed', 'cancelled', 'rolledBack'].find((s) => stageAt.has(s)), { timeoutMs: endTimeout, intervalMs: 50 });
    const endedAt = performance.now();
    watch.stop();
    const job = engine.jobs('bench-fw')[0];
    if (job?.stage !== 'confirmed') throw new Error(`the job ended ${job?.stage}: ${job?.code} ${job?.reason}`);
    const t = (s: string): number => {
      const at = stageAt.get(s);
      if (at === undefined) throw new Error(`no firmware.job.${s} event`);
      return at;
    };
    const transferMs = t('activating') - t('transferring');
    const metric = (name: string): number => g.built.modbus?.metrics().find((m) => m.name === name && m.labels?.bus === 'line')?.value ?? NaN;
    const bulkLineMs = metric('streetbox_modbus_bulk_seconds_total') * 1000;
    const bulkTransactions = metric('streetbox_modbus_bulk_transactions_total');

    const ofOthers = (xs: PollSample[]): PollSample[] => xs.filter((s) => others.has(s.device));
    const before = ofOthers(watch.between(beforeFrom, submittedAt));
    const during = ofOthers(watch.between(t('transferring'), t('activating')));
    // every poll on the line during the transfer (the target's too: it answers polls in its bootloader)
    const pollsDuring = watch.between(t('transferring'), t('activating')).length;
    const pollLineMs = transactionMs({ baud: BAUD, bitsPerChar: 11 }, POLL_REQUEST_BYTES, POLL_RESPONSE_BYTES);
    const cycles = (xs: PollSample[]): number[] => xs.map((s) => s.cycleMs);
    const latencies = (xs: PollSample[]): number[] => xs.map((s) => s.pollMs);
    if (before.length < others.size || during.length < others.size) {
      throw new Error(`too few polls of the others to compare: ${before.length} before, ${during.length} during the transfer`);
    }
    const cycleBefore = median(cycles(before));
    const cycleDuring = median(cycles(during));

    await g.stop();
    gw = null;
    lines = await sim.stop();
    sim = null;
    const line = lines.find((l) => l.id === 'line');
    const perTx = (x: number | undefined): number => (line && line.timed > 0 ? round((x ?? 0) / line.timed, 3) : NaN);

    const stats = (xs: number[]): Record<string, number> => ({ n: xs.length, median: round(median(xs)), p95: round(p95(xs)), max: round(Math.max(...xs)) });
    return {
      transferMs,
      physicalMs,
      cycleBefore,
      cycleDuring,
      details: {
        setup: `${DEVICES} ${PROFILE} (units 1..${DEVICES}) on one RTU line at ${BAUD} baud 8N2 (11-bit characters), the simulators in their own process with wire-time emulation; unit ${TARGET_UNIT} updated, the others polled every ${POLL}; transferShare ${SHARE}`,
        image: { bytes: IMAGE_BYTES, blocks, blockBytes: 2 * (fw.decl.method === 'registerBlock' ? fw.decl.block.registers : fw.decl.recordRegisters) },
        transfer: {
          ms: round(transferMs),
          physicalMs: round(physicalMs),
          ratio: round(transferMs / physicalMs, 3),
          shareLimitMs: round(physicalMs / SHARE),
          bulkLineMs: round(bulkLineMs),
          bulkTransactions,
          bulkLineVsPhysical: round(bulkLineMs / physicalMs, 3),
          transferVsBulkLine: round(transferMs / bulkLineMs, 3),
          // where the time beside the blocks went: the share's gaps (bulk line × (1/share − 1)) and the polls
          shareGapsMs: round(bulkLineMs * (1 / SHARE - 1)),
          pollsDuring,
          pollsLineMs: round(pollsDuring * pollLineMs),
          besideBlocksMs: round(transferMs - bulkLineMs),
          bytesPerSecond: round(IMAGE_BYTES / (transferMs / 1000), 0),
        },
        stagesMs: {
          submitToTransferring: round(t('transferring') - submittedAt),
          transferring: round(transferMs),
          activating: round(t('verifying') - t('activating')),
          verifying: round(t('confirmed') - t('verifying')),
          activationPhysicalMs: round(activateMs),
          rebootMs: REBOOT_MS,
        },
        totalToConfirmedMs: round(endedAt - submittedAt),
        others: {
          cycleMs: { before: stats(cycles(before)), during: stats(cycles(during)) },
          pollLatencyMs: { before: stats(latencies(before)), during: stats(latencies(during)) },
          worstCycleRatio: round(Math.max(...cycles(during)) / cycleBefore, 3),
          failedPolls: { before: watch.failures.filter((x) => x >= beforeFrom && x < submittedAt).length, during: watch.failures.filter((x) => x >= t('transferring') && x < t('activating')).length },
        },
        line: line ? { timed: line.timed, gapViolations: line.gapViolations, masterIdleMsPerTx: perTx(line.masterIdleMs), simLateMsPerTx: perTx(line.writeLateMs), dropped: line.dropped } : null,
        job: { stage: job.stage, versionBefore: job.versionBefore, versionAfter: job.versionAfter, reason: job.reason },
        loadAverage: loadavg(),
      },
    };
  } finally {
    watch?.stop();
    if (gw) await gw.stop().catch((err: unknown) => log(`gateway stop failed: ${String(err)}`));
    if (sim) await sim.stop().catch((err: unknown) => log(`simulator stop failed: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const f = await measure();
  const transferRatio = f.transferMs / f.physicalMs;
  const cycleRatio = f.cycleDuring / f.cycleBefore;
  const d = f.details as { transfer: Record<string, number>; others: { pollLatencyMs: Record<string, Record<string, number>> }; totalToConfirmedMs: number; line: Record<string, number> | null };
  log(
    `transfer ${(f.transferMs / 1000).toFixed(2)} s vs physical ${(f.physicalMs / 1000).toFixed(2)} s → ${transferRatio.toFixed(3)}× ` +
      `(share limit ${((d.transfer.shareLimitMs ?? NaN) / 1000).toFixed(2)} s; bulk line time ${((d.transfer.bulkLineMs ?? NaN) / 1000).toFixed(2)} s over ${d.transfer.bulkTransactions} transactions; ` +
      `beside the blocks ${((d.transfer.besideBlocksMs ?? NaN) / 1000).toFixed(2)} s: share gaps ${((d.transfer.shareGapsMs ?? NaN) / 1000).toFixed(2)} s, ${d.transfer.pollsDuring} polls ${((d.transfer.pollsLineMs ?? NaN) / 1000).toFixed(2)} s of line)`,
  );
  log(
    `others (poll ${POLL}): cycle ${f.cycleBefore.toFixed(0)} ms before, ${f.cycleDuring.toFixed(0)} ms during → ${cycleRatio.toFixed(3)}×; ` +
      `poll latency median ${d.others.pollLatencyMs.before?.median} → ${d.others.pollLatencyMs.during?.median} ms (p95 ${d.others.pollLatencyMs.before?.p95} → ${d.others.pollLatencyMs.during?.p95} ms)`,
  );
  log(`job confirmed ${(d.totalToConfirmedMs / 1000).toFixed(2)} s after submit; line: ${JSON.stringify(d.line)}`);
  return [
    result({
      name: 'firmware-transfer',
      metric: `${IMAGE_BYTES / 1024} KiB image to one controller, RTU ${BAUD} baud, 9 others polled every ${POLL}`,
      value: round(f.transferMs, 0),
      unit: 'ms',
      baseline: 'physical line time of the same frames',
      baselineValue: round(f.physicalMs, 0),
      ratio: transferRatio,
      target: `ratio <= ${TRANSFER_TARGET}`,
      pass: transferRatio <= TRANSFER_TARGET,
      details: f.details,
    }),
    result({
      name: 'firmware-poll-cycle',
      metric: `poll cycle of the 9 other devices during the transfer (median, poll ${POLL})`,
      value: round(f.cycleDuring, 0),
      unit: 'ms',
      baseline: 'their cycle before the transfer',
      baselineValue: round(f.cycleBefore, 0),
      ratio: cycleRatio,
      target: `ratio <= ${CYCLE_TARGET}`,
      pass: cycleRatio <= CYCLE_TARGET,
      details: { others: (f.details as { others: unknown }).others, setup: (f.details as { setup: unknown }).setup },
    }),
  ];
}

runWhenMain(import.meta.url, 'firmware', run);
