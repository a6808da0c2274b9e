/**
 * Shared pieces of the sync tests: a backlog writer, the reference receiver run in-process
 * with a live report, the JSON-lines check (every seq once, in order), a log capture and an
 * observer client that records what the broker delivers.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger, type Logger } from '../../edge/log.js';
import type { Store } from '../../edge/store/api.js';
import type { NewReading } from '../../edge/store/types.js';
import { runReceiver, type ReceiverOptions, type ReceiverReport } from '../../cloud-sync/receiver.js';
import { waitFor } from '../helpers/wait.js';
import type { Mosquitto } from './mosquitto.js';

export const GW = 'gw-test';

/** Appends `n` readings (10 devices × 3 points) with an event every `eventEvery` readings; returns the last seq. */
export function writeBacklog(store: Store, n: number, opts: { eventEvery?: number; chunk?: number; t0?: number } = {}): number {
  const eventEvery = opts.eventEvery ?? 100;
  const chunk = Math.min(opts.chunk ?? 1000, eventEvery > 0 ? eventEvery : Infinity);
  const t0 = opts.t0 ?? Date.now() - n;
  let i = 0;
  let last = 0;
  while (i < n) {
    const rows: NewReading[] = [];
    for (let k = 0; k < chunk && i < n; k++, i++) rows.push(reading(i, t0 + i));
    last = store.appendReadings(rows).lastSeq;
    if (eventEvery > 0 && i % eventEvery === 0) {
      last = store.appendEvent({ kind: 'alarm.raised', severity: 'warning', device: `lamp-${i % 10}`, detail: { alarm: 'ch1_lamp_failure', point: 'ch1_status', value: 1, bit: 0 } }).seq;
    }
  }
  return last;
}

export function reading(i: number, ts: number): NewReading {
  const points = ['level', 'power', 'on'] as const;
  const point = points[i % 3] as (typeof points)[number];
  const value = point === 'on' ? i % 2 === 0 : point === 'level' ? i % 101 : Math.round((i % 1000) * 1.7 * 10) / 10;
  return { ts, device: `lamp-${i % 10}`, point, value, unit: point === 'on' ? null : point === 'level' ? '%' : 'W', quality: 'good' };
}

export interface RunningReceiver {
  /** its MQTT client id, e.g. to wait for its subscription at the broker (Mosquitto.subscriptions) */
  readonly clientId: string;
  readonly report: ReceiverReport | null;
  waitItems(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<ReceiverReport>;
}

export function startReceiver(opts: Omit<ReceiverOptions, 'log' | 'signal'> & { log?: Logger }): RunningReceiver {
  const ac = new AbortController();
  let report: ReceiverReport | null = null;
  const clientId = opts.clientId ?? `receiver-${Math.random().toString(36).slice(2, 8)}`;
  const done = runReceiver({
    reconnectMs: 100,
    ...opts,
    clientId,
    log: opts.log ?? testLogger(),
    signal: ac.signal,
    onProgress: (r) => (report = r),
  });
  let final: Promise<ReceiverReport> | null = null;
  return {
    clientId,
    get report() {
      return report;
    },
    waitItems: async (n, timeoutMs = 30_000) => void (await waitFor(`${n} items at the receiver (has ${report?.items ?? 0})`, () => (report?.items ?? 0) >= n, timeoutMs)),
    stop() {
      final ??= (async () => {
        ac.abort();
        return done;
      })();
      return final;
    },
  };
}

/** Until the broker holds the receiver's subscription (it subscribes once connected). */
export async function receiverSubscribed(broker: Mosquitto, receiver: RunningReceiver, timeoutMs = 10_000): Promise<void> {
  await waitFor(`receiver ${receiver.clientId} subscribed`, () => broker.subscriptions({ clientId: receiver.clientId }) > 0, timeoutMs);
}

/** Seqs of the receiver's output file, checked: strictly rising (each once, in order). */
export function outputSeqs(path: string): number[] {
  const seqs: number[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    const o = JSON.parse(line) as { seq: number };
    seqs.push(o.seq);
  }
  for (let i = 1; i < seqs.length; i++) {
    if ((seqs[i] as number) <= (seqs[i - 1] as number)) throw new Error(`output out of order at line ${i + 1}: ${seqs[i - 1]} then ${seqs[i]}`);
  }
  return seqs;
}

/** Every seq the store holds (readings and events), in order. */
export function storeSeqs(store: Store): number[] {
  const out: number[] = [];
  for (const q of ['readings', 'events'] as const) {
    let after = 0;
    for (let guard = 0; guard < 10_000; guard++) {
      const page = q === 'readings' ? store.readings({ after, limit: 10_000 }) : store.events({ after, limit: 10_000 });
      if (page.items.length === 0) break;
      for (const it of page.items) out.push(it.seq);
      after = page.next;
    }
  }
  return out.sort((a, b) => a - b);
}

export interface LogCapture {
  log: Logger;
  lines: Record<string, unknown>[];
  count(msg: string): number;
}

export function captureLog(): LogCapture {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'debug',
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { log, lines, count: (msg) => lines.filter((l) => l.msg === msg && (l.level as number) >= 30).length };
}

export function testLogger(): Logger {
  return createLogger({ level: process.env.STREETBOX_TEST_LOG ?? 'silent' });
}

export interface Observer {
  client: MqttClient;
  messages: { topic: string; payload: Buffer; retain: boolean }[];
  close(): Promise<void>;
}

/** A plain mqtt.js subscriber recording every message of `filter`, in arrival order. */
export async function observe(url: string, filter: string, extra: mqtt.IClientOptions = {}): Promise<Observer> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...extra });
  const messages: Observer['messages'] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload, retain: packet.retain }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages, close: async () => void (await client.endAsync(true)) };
}
