/**
 * Upstream drain: a backlog of BENCH_SYNC_ROWS readings (default 1,000,000) drained by the sync
 * component to a local mosquitto, with compression, until the broker acknowledged the last seq:
 * readings/s and bytes per reading on the wire (payload plus the MQTT PUBLISH header and topic).
 * Baseline, same run: a bare mqtt.js client publishing the very same batch payloads (built and
 * compressed beforehand, untimed) with QoS 1 and the same number in flight. The ratio says what
 * the store reads, the serialization, the compression and the cursor cost on top of the wire.
 * Target: >= 100,000 readings/s and <= 40 bytes per reading.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Batcher } from '../cloud-sync/batcher.js';
import { createSyncComponent } from '../cloud-sync/index.js';
import { encodePayload } from '../cloud-sync/payload.js';
import { gatewayTopics } from '../cloud-sync/topics.js';
import { EventBus } from '../edge/bus.js';
import { systemClock } from '../edge/clock.js';
import { configSchema } from '../edge/config/schema.js';
import { silentLogger } from '../edge/log.js';
import { BatchWriter, openStore } from '../edge/store/index.js';
import type { NewReading } from '../edge/store/types.js';
import { startMosquitto } from '../tests/sync/mosquitto.js';
import { result, type BenchResult } from './lib.js';

const ROWS = Number(process.env.BENCH_SYNC_ROWS ?? 1_000_000);
const GW = 'gw-bench';
const TARGET_RATE = 100_000;
const TARGET_BYTES = 40;

/** 50 devices × 20 points polled every second: what a cabinet's buffer holds after an outage. */
function fill(store: ReturnType<typeof openStore>): void {
  const t0 = Date.UTC(2026, 0, 1);
  const chunk: NewReading[] = [];
  for (let n = 0; n < ROWS; n++) {
    const round = Math.floor(n / 1000);
    const d = Math.floor(n / 20) % 50;
    const p = n % 20;
    const ts = t0 + round * 1000 + d;
    if (p === 0) chunk.push({ ts, device: `lamp-${d}`, point: 'on', value: (round + d) % 2 === 0 });
    else chunk.push({ ts, device: `lamp-${d}`, point: `p${p}`, value: 230 + ((round * 31 + p * 7 + d) % 100) / 10, unit: 'V' });
    if (chunk.length === 10_000) store.appendReadings(chunk.splice(0));
  }
  if (chunk.length > 0) store.appendReadings(chunk);
}

/** MQTT 3.1.1 §3.3: fixed header (1 + up to 4 bytes), topic (2 + n), packet id (2), payload. */
function wireBytes(payload: number, topic: string): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + payload;
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining;
}

export async function run(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-bench-sync-'));
  const broker = await startMosquitto();
  try {
    const log = silentLogger();
    // linger 0: timed to the last ack, the backlog's open tail must not wait for more readings
    const config = configSchema.parse({ gateway: { id: GW }, storage: { path: join(dir, 'bench.db') }, sync: { url: broker.url, compress: true, linger: 0 } });
    const sync = config.sync!;
    const bus = new EventBus(log);
    const store = openStore({ path: config.storage.path, maxBytes: 2 * 1024 ** 3, durability: 'normal', log, bus, clock: systemClock });
    fill(store);
    const lastSeq = store.stats().lastSeq;
    const topic = gatewayTopics(GW).up('readings');

    // Baseline: the same batches, encoded beforehand, published by a bare client.
    const batcher = new Batcher({ store, gateway: GW, batchSize: sync.batchSize, batchBytes: sync.batchBytes });
    const payloads: Buffer[] = [];
    let plainBytes = 0;
    for (let after = 0, guard = 0; guard < ROWS; guard++) {
      const b = batcher.next(after);
      if (!b) break;
      plainBytes += wireBytes(b.bytes, topic);
      payloads.push(encodePayload(GW, b.fromSeq, b.toSeq, b.itemsJson, true));
      after = b.toSeq;
    }
    const client = await mqtt.connectAsync(broker.url, { clientId: 'bench-baseline', reconnectPeriod: 0 });
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let acked = 0;
      const send = (): void => {
        const i = next++;
        client.publish(topic, payloads[i] as Buffer, { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (++acked === payloads.length) return resolve();
          if (next < payloads.length) send();
        });
      };
      for (let k = 0; k < Math.min(sync.inFlight, payloads.length); k++) send();
    });
    const baseMs = performance.now() - t0;
    await client.endAsync();
    const baselineRate = ROWS / (baseMs / 1000);

    // The sync component, from the cursor at 0 to the broker's ack of the last seq.
    const writer = new BatchWriter({ store, bus, log, clock: systemClock, flushIntervalMs: 200, flushRows: 1000 });
    const component = createSyncComponent({ config, configDir: dir, store, ingest: writer, bus, log, clock: systemClock });
    const t1 = performance.now();
    await component.start();
    for (let guard = 0; component.status().ackedSeq < lastSeq && guard < 600_000; guard++) await new Promise((r) => setTimeout(r, 5));
    const syncMs = performance.now() - t1;
    const st = component.status();
    await component.stop();
    store.close();
    const rate = ROWS / (syncMs / 1000);
    const avgPayload = Math.round(st.sentBytes / Math.max(1, st.sentBatches));
    const bytesPerReading = (st.sentBatches * wireBytes(avgPayload, topic)) / ROWS;
    return result({
      name: 'sync',
      metric: 'upstream drain of a backlog (deflate) to a local mosquitto, until the last PUBACK',
      value: Math.round(rate),
      unit: 'readings/s',
      baseline: 'bare mqtt.js QoS 1 publish of the same pre-built batches',
      baselineValue: Math.round(baselineRate),
      target: `>= ${TARGET_RATE.toLocaleString('en-US')} readings/s and <= ${TARGET_BYTES} bytes/reading on the wire`,
      pass: rate >= TARGET_RATE && bytesPerReading <= TARGET_BYTES,
      details: {
        rows: ROWS,
        batches: st.sentBatches,
        batchSize: sync.batchSize,
        inFlight: sync.inFlight,
        bytesPerReading: Math.round(bytesPerReading * 10) / 10,
        bytesPerReadingUncompressed: Math.round((plainBytes / ROWS) * 10) / 10,
        syncMs: Math.round(syncMs),
        baselineMs: Math.round(baseMs),
        resent: st.resent,
      },
    });
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
