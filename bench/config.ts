/**
 * Remote configuration (issue 16), end to end through central's door: an in-process gateway
 * (startGateway, simulate: true, no Node-RED, no broker, no API) whose sync is connected to a
 * real mosquitto standing in for central's broker. Central publishes a whole devices.yaml on
 * `streetbox/<gw>/down/config` and waits for the `confirmed` report on `up/config/<id>`:
 *
 * - config-schedule: a schedule change (no bus touched), BENCH_CONFIG_RUNS times (default 10);
 * - config-device:   a new device on a bus (that bus rewired, its simulator too), as often;
 *   each the median (and p95) of central's publish → the `confirmed` report at central, and the
 *   health probe's own wait (the gateway's `applied` → `confirmed`, on its bus). Baseline, same
 *   run, same broker: a plain QoS 1 publish of a message as large as a change → a subscriber
 *   (a change is one such trip down and one up, plus what the gateway does: validate, record,
 *   write the file, apply, probe, report). Target: confirmed within 1 s plus the probe's own
 *   wait (p95).
 * - config-readings: readings lost while BENCH_CONFIG_APPLIES changes (default 50; schedule
 *   changes and a device added to and removed from one bus, alternately) are applied under
 *   polling. Every device reports `poll`, so every value a driver polled (the writer's `polled`
 *   bus key) must be a stored reading: lost = polled − stored, per device and point, over the
 *   seqs committed meanwhile, which must be gap-free (readings and events share one seq space).
 *   Target: 0 lost, no gap. Also in the details: the longest pause between two polls of a device
 *   on the bus no change touched, and on the bus that was rewired.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../edge/log.js';
import { startGateway, type Gateway } from '../edge/main.js';
import type { ConfigStageReport } from '../edge/reconfig/types.js';
import type { Reading } from '../edge/store/types.js';
import { startMosquitto, type Mosquitto } from '../tests/sync/mosquitto.js';
import { median, result, runWhenMain, type BenchResult } from './lib.js';

const GW = 'gw-bench-config';
const RUNS = Number(process.env.BENCH_CONFIG_RUNS ?? 10);
const APPLIES = Number(process.env.BENCH_CONFIG_APPLIES ?? 50);
/** plain publish → subscriber round trips for the baseline */
const ROUND_TRIPS = 20;
/** how long one change may take to its final report (the probe bound is confirmTimeout, 30 s) */
const CHANGE_TIMEOUT_MS = 40_000;
const POLL = '200ms';
const TARGET_MS = 1000;
const DOWN = `streetbox/${GW}/down/config`;
const UP = `streetbox/${GW}/up/config`;

/** What the gateway runs: two Modbus TCP buses (simulated), schedules, and the devices added so far. */
interface Shape {
  /** the schedule's evening level */
  level: number;
  /** devices on bus net-b beyond the two it always has: [id, unit] */
  extra: [string, number][];
}

function devicesYaml(s: Shape, brokerUrl: string, note: string): string {
  const device = (id: string, bus: string, unit: number): string =>
    `  - { id: ${id}, bus: ${bus}, unit: ${unit}, profile: streetlight-controller, poll: ${POLL}, groups: [main], report: poll }\n`;
  return `# bench: ${note}
gateway: { id: ${GW}, confirmTimeout: 30s, timezone: UTC }
storage: { path: data/gw.db, flushInterval: 100ms }
buses:
  - { id: net-a, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
  - { id: net-b, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
${device('lamp-a1', 'net-a', 1)}${device('lamp-a2', 'net-a', 2)}${device('lamp-b1', 'net-b', 1)}${device('lamp-b2', 'net-b', 2)}${s.extra.map(([id, unit]) => device(id, 'net-b', unit)).join('')}groups:
  - { id: main }
schedules:
  - id: night
    groups: [main]
    steps:
      - { at: '21:00', level: ${s.level} }
      - { at: '06:00', level: 0 }
broker: { enabled: false }
api: { enabled: false }
nodeRed: { enabled: false }
sync: { url: '${brokerUrl}', reconnectMin: 100ms, reconnectMax: 1s, linger: 1s }
simulate: true
`;
}

function p95(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] as number;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** When each stage of each change was seen: at central (MQTT) and on the gateway's bus. */
class StageClock {
  readonly central = new Map<string, Map<string, number>>();
  readonly gateway = new Map<string, Map<string, number>>();
  private readonly waiters = new Set<() => void>();

  mark(side: 'central' | 'gateway', r: ConfigStageReport): void {
    const at = performance.now();
    const byId = side === 'central' ? this.central : this.gateway;
    let stages = byId.get(r.id);
    if (!stages) byId.set(r.id, (stages = new Map()));
    if (!stages.has(r.stage)) stages.set(r.stage, at);
    for (const w of this.waiters) w();
  }

  /** Resolves with the final stage central saw for `id` (confirmed, rolledBack or rejected). */
  final(id: string, timeoutMs: number): Promise<{ stage: string; at: number }> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const stages = this.central.get(id);
        for (const stage of ['confirmed', 'rolledBack', 'rejected']) {
          const at = stages?.get(stage);
          if (at !== undefined) {
            done();
            resolve({ stage, at });
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no final report for change ${id} within ${timeoutMs} ms (stages seen: ${[...(this.central.get(id)?.keys() ?? [])].join(', ') || 'none'})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

interface Timed {
  /** central's publish → the confirmed report at central */
  totalMs: number;
  /** the gateway's applied → confirmed (the health probe) */
  probeMs: number;
  /** central's publish → the change staged on the gateway (down the broker, validated, recorded) */
  downMs: number;
  /** staged → applied on the gateway (the file written, the components reconfigured) */
  applyMs: number;
  /** confirmed on the gateway → its report at central (the outbox, up the broker) */
  upMs: number;
}

/** Central: its client on the upstream broker, publishing whole texts and reading the reports. */
class Central {
  private n = 0;
  constructor(
    private readonly client: MqttClient,
    private readonly gw: Gateway,
    private readonly stages: StageClock,
  ) {}

  /** One change through down/config, timed to its confirmed report; anything else throws. */
  async change(text: string): Promise<Timed> {
    const id = `bench-${++this.n}`;
    // what central knows from the last report's runningVersion
    const base = this.gw.configChanges!.running()?.version ?? null;
    const final = this.stages.final(id, CHANGE_TIMEOUT_MS);
    const t0 = performance.now();
    await this.client.publishAsync(DOWN, JSON.stringify({ id, baseVersion: base, content: text }), { qos: 1 });
    const end = await final;
    if (end.stage !== 'confirmed') {
      const why = this.gw.configChanges!.change(id)?.reason ?? '';
      throw new Error(`change ${id} ended ${end.stage}: ${why}`);
    }
    const g = this.stages.gateway.get(id);
    const staged = g?.get('staged');
    const applied = g?.get('applied');
    const confirmed = g?.get('confirmed');
    if (staged === undefined || applied === undefined || confirmed === undefined) throw new Error(`change ${id}: a stage of the gateway was not seen on its bus`);
    return { totalMs: end.at - t0, probeMs: confirmed - applied, downMs: staged - t0, applyMs: applied - staged, upMs: end.at - confirmed };
  }
}

/**
 * The baseline: a plain QoS 1 publish by central → another client's subscription, on the same
 * broker, of a message as large as a change (the same JSON envelope around the same text).
 */
async function roundTrips(pub: MqttClient, sub: MqttClient, sample: string): Promise<number[]> {
  const topic = `bench/${GW}/rtt`;
  await sub.subscribeAsync(topic, { qos: 1 });
  const out: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const payload = JSON.stringify({ id: `rtt-${i}`, baseVersion: 1, content: sample });
    const arrived = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a round-trip message did not arrive within 5 s')), 5000);
      const on = (t: string, m: Buffer): void => {
        if (t !== topic || m.toString() !== payload) return;
        clearTimeout(timer);
        sub.off('message', on);
        resolve(performance.now());
      };
      sub.on('message', on);
    });
    const t0 = performance.now();
    await pub.publishAsync(topic, payload, { qos: 1 });
    out.push((await arrived) - t0);
  }
  await sub.unsubscribeAsync(topic);
  return out;
}

/** The polled values seen on the bus while the changes ran, and the pauses between polls per device. */
class PollWatch {
  readonly polled = new Map<string, number>();
  unstored = 0;
  private readonly lastTs = new Map<string, number>();
  readonly maxGap = new Map<string, number>();

  add(rows: readonly Reading[]): void {
    for (const r of rows) {
      const key = `${r.device}\u0000${r.point}`;
      this.polled.set(key, (this.polled.get(key) ?? 0) + 1);
      if (r.seq === 0) this.unstored++;
      const last = this.lastTs.get(r.device);
      if (last !== undefined && r.ts > last) this.maxGap.set(r.device, Math.max(this.maxGap.get(r.device) ?? 0, r.ts - last));
      if (last === undefined || r.ts > last) this.lastTs.set(r.device, r.ts);
    }
  }

  total(): number {
    let n = 0;
    for (const v of this.polled.values()) n += v;
    return n;
  }
}

interface Stored {
  perPoint: Map<string, number>;
  seqs: number;
  distinct: number;
}

/** Readings per device and point, and every seq handed out in (from, to], read from the data file. */
function storedBetween(dbPath: string, from: number, to: number): Stored {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('SELECT p.device AS device, p.point AS point, count(*) AS n FROM reading r JOIN point p ON p.id = r.point_id WHERE r.seq > ? AND r.seq <= ? GROUP BY p.device, p.point')
      .all(from, to) as { device: string; point: string; n: number }[];
    const perPoint = new Map(rows.map((r) => [`${r.device}\u0000${r.point}`, r.n]));
    const seqs = db
      .prepare(
        `SELECT count(*) AS n, count(DISTINCT seq) AS d FROM (
           SELECT seq FROM reading WHERE seq > @from AND seq <= @to
           UNION ALL SELECT seq FROM event WHERE seq > @from AND seq <= @to
           UNION ALL SELECT seq FROM refusal_event WHERE seq > @from AND seq <= @to)`,
      )
      .get({ from, to }) as { n: number; d: number };
    return { perPoint, seqs: seqs.n, distinct: seqs.d };
  } finally {
    db.close();
  }
}

/** Phase (a) or (b): `RUNS` changes made by `make(i)`, each timed. */
async function timedRuns(central: Central, make: (i: number) => string): Promise<Timed[]> {
  const out: Timed[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await central.change(make(i)));
  return out;
}

function latencyResult(name: string, what: string, runs: Timed[], rtt: number[]): BenchResult {
  const totals = runs.map((r) => r.totalMs);
  const probes = runs.map((r) => r.probeMs);
  const beyondProbe = runs.map((r) => r.totalMs - r.probeMs);
  const value = median(totals);
  return result({
    name,
    metric: `${what}: central's publish on down/config → the confirmed report on up/config/<id> (median)`,
    value: round1(value),
    unit: 'ms',
    baseline: 'MQTT trip of a plain QoS 1 publish of the same size → a subscriber, same broker (median)',
    baselineValue: round1(median(rtt)),
    target: `p95 of (time − the probe's own wait) < ${TARGET_MS} ms`,
    pass: p95(beyondProbe) < TARGET_MS,
    details: {
      runs: runs.length,
      p95Ms: round1(p95(totals)),
      probeWaitMedianMs: round1(median(probes)),
      probeWaitP95Ms: round1(p95(probes)),
      beyondProbeMedianMs: round1(median(beyondProbe)),
      beyondProbeP95Ms: round1(p95(beyondProbe)),
      roundTripP95Ms: round1(p95(rtt)),
      // where the time goes (medians): down to the gateway and staged, applied, probed, the report up
      downMedianMs: round1(median(runs.map((r) => r.downMs))),
      applyMedianMs: round1(median(runs.map((r) => r.applyMs))),
      upMedianMs: round1(median(runs.map((r) => r.upMs))),
      totalsMs: totals.map(round1),
    },
  });
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-config-'));
  let broker: Mosquitto | undefined;
  let gw: Gateway | undefined;
  let client: MqttClient | undefined;
  let subscriber: MqttClient | undefined;
  try {
    broker = await startMosquitto();
    const file = join(dir, 'devices.yaml');
    let shape: Shape = { level: 50, extra: [] };
    let n = 0;
    const text = (s: Shape): string => devicesYaml(s, broker!.url, `change ${++n}`);
    writeFileSync(file, text(shape));
    gw = await startGateway({ configPath: file, log: silentLogger() });
    const stages = new StageClock();
    const owner = {};
    gw.context.bus.on(owner, 'configReport', (r) => stages.mark('gateway', r));

    client = await mqtt.connectAsync(broker.url, { clientId: 'bench-central', reconnectPeriod: 0 });
    client.on('message', (topic, payload) => {
      if (!topic.startsWith(`${UP}/`)) return;
      try {
        stages.mark('central', JSON.parse(payload.toString()) as ConfigStageReport);
      } catch {
        // not a report: not ours to time
      }
    });
    await client.subscribeAsync(`${UP}/+`, { qos: 1 });
    // a change published before the gateway subscribed would wait in no session
    for (let i = 0; broker.subscriptions({ filter: DOWN }) === 0; i++) {
      if (i >= 500) throw new Error('the gateway did not subscribe to down/config within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const central = new Central(client, gw, stages);

    // one change untimed: the first of anything (code paths, statements) is not what is measured
    await central.change(text({ ...shape, level: 49 }));
    subscriber = await mqtt.connectAsync(broker.url, { clientId: 'bench-subscriber', reconnectPeriod: 0 });
    const rtt = await roundTrips(client, subscriber, text(shape));

    // (a) schedule changes: control swaps its schedules, no bus is touched
    const schedule = await timedRuns(central, (i) => text((shape = { ...shape, level: 10 + (i % 40) })));
    // (b) a new device on bus net-b each time: that bus and its simulator are rewired
    const device = await timedRuns(central, (i) => text((shape = { ...shape, extra: [...shape.extra, [`lamp-n${i + 1}`, 10 + i]] })));

    // (c) readings under polling while changes are applied: from a seq boundary taken with the listener
    const watch = new PollWatch();
    const from = gw.context.store.stats().lastSeq;
    gw.context.bus.on(owner, 'polled', (rows) => watch.add(rows));
    const base = shape.extra;
    const applied: Timed[] = [];
    for (let i = 0; i < APPLIES; i++) {
      // even: a schedule change; odd: lamp-x added to net-b, then removed again
      shape = i % 2 === 0 ? { ...shape, level: 60 + (i % 30) } : { ...shape, extra: i % 4 === 1 ? [...base, ['lamp-x', 40]] : base };
      applied.push(await central.change(text(shape)));
    }
    // the boundary at the end: everything committed up to here went out on `polled` in the same tick
    gw.context.bus.off(owner);
    const to = gw.context.store.stats().lastSeq;
    await gw.stop();
    gw = undefined;
    const stored = storedBetween(join(dir, 'data', 'gw.db'), from, to);
    let lost = 0;
    let extra = 0;
    for (const [key, polled] of watch.polled) {
      const s = stored.perPoint.get(key) ?? 0;
      if (s < polled) lost += polled - s;
      else extra += s - polled;
    }
    for (const [key, s] of stored.perPoint) if (!watch.polled.has(key)) extra += s;
    const gaps = to - from - stored.distinct;
    const duplicates = stored.seqs - stored.distinct;
    const polledTotal = watch.total();
    const gapOf = (ids: string[]): number => Math.max(0, ...ids.map((id) => watch.maxGap.get(id) ?? 0));

    return [
      latencyResult('config-schedule', 'a schedule change', schedule, rtt),
      latencyResult('config-device', 'a new device on a bus (the bus rewired)', device, rtt),
      result({
        name: 'config-readings',
        metric: `readings lost while ${APPLIES} changes were applied under polling (every device report: poll)`,
        value: lost,
        unit: 'readings lost',
        baseline: "values polled meanwhile (the writer's polled bus key)",
        baselineValue: polledTotal,
        target: '0 lost, seqs gap-free',
        pass: lost === 0 && gaps === 0 && duplicates === 0 && polledTotal > 0,
        details: {
          applies: APPLIES,
          polled: polledTotal,
          polledNotCommitted: watch.unstored,
          storedNotPolled: extra,
          seqRange: [from + 1, to],
          seqGaps: gaps,
          seqDuplicates: duplicates,
          applyMedianMs: round1(median(applied.map((a) => a.totalMs))),
          applyP95Ms: round1(p95(applied.map((a) => a.totalMs))),
          pollInterval: POLL,
          maxPollPauseUntouchedBusMs: gapOf(['lamp-a1', 'lamp-a2']),
          maxPollPauseRewiredBusMs: gapOf(['lamp-b1', 'lamp-b2']),
        },
      }),
    ];
  } finally {
    await client?.endAsync().catch(() => undefined);
    await subscriber?.endAsync().catch(() => undefined);
    await gw?.stop().catch(() => undefined);
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runWhenMain(import.meta.url, 'config', run);
