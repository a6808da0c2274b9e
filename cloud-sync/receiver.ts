/**
 * The reference receiver (`streetbox receive`): what a central system does with the upstream
 * contract (CONTRACT.md), in one file. It subscribes with QoS 1 in a persistent session to
 * `streetbox/+/up/#` (or the given gateways), de-duplicates by (gateway, seq), appends each new
 * item once and in seq order to a JSON-lines file (written before the PUBACK goes back, so a
 * crash re-delivers rather than loses), and reports gaps and duplicates. It runs until `signal`
 * aborts and resolves with its report.
 */
import { appendFileSync, closeSync, createReadStream, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import mqtt, { type IClientOptions } from 'mqtt';
import { errorMessage } from '../edge/errors.js';
import type { Logger } from '../edge/log.js';
import { GatewayTrack, type DeliveredItem, type Gap, type GatewayCounters } from './dedup.js';
import { decodePayload } from './payload.js';
import { TOPIC_ROOT, parseUpTopic } from './topics.js';

export interface ReceiverOptions {
  /** mqtt://host:port or mqtts://host:port */
  broker: string;
  /** JSON-lines output; without it items are only counted */
  out?: string;
  /** only these gateways (default: every gateway, `streetbox/+/up/#`) */
  gateways?: string[];
  username?: string;
  password?: string;
  /** paths of PEM files */
  ca?: string;
  cert?: string;
  key?: string;
  /** default `streetbox-receiver-<hostname>`; keep it stable: it names the persistent session */
  clientId?: string;
  protocolVersion?: 4 | 5;
  /** how long an out-of-order batch waits for the hole before it to fill (default 5000 ms) */
  reorderWindowMs?: number;
  reconnectMs?: number;
  log: Logger;
  signal?: AbortSignal;
  /** called after each batch (tests, progress displays) */
  onProgress?: (report: ReceiverReport) => void;
}

export interface ReceiverReport {
  items: number;
  duplicates: number;
  batches: number;
  absent: number;
  late: number;
  /** payloads that are not batches of the contract */
  invalid: number;
  gaps: Gap[];
  gateways: Record<string, GatewayCounters>;
}

/** The line written per item: the item with its gateway and type (reading or event) in front. */
export interface OutputLine {
  gateway: string;
  type: 'reading' | 'event';
  seq: number;
  [field: string]: unknown;
}

export async function runReceiver(opts: ReceiverOptions): Promise<ReceiverReport> {
  const log = opts.log.child({ module: 'receiver' });
  const reorderMs = opts.reorderWindowMs ?? 5000;
  const floors = opts.out ? await readFloors(opts.out) : new Map<string, number>();
  const tracks = new Map<string, GatewayTrack>();
  const wanted = opts.gateways && opts.gateways.length > 0 ? new Set(opts.gateways) : null;
  let invalid = 0;

  const report = (): ReceiverReport => {
    const r: ReceiverReport = { items: 0, duplicates: 0, batches: 0, absent: 0, late: 0, invalid, gaps: [], gateways: {} };
    for (const [gw, t] of tracks) {
      const c = t.counters;
      r.items += c.items;
      r.duplicates += c.duplicates;
      r.batches += c.batches;
      r.absent += c.absent;
      r.late += c.late;
      r.gaps.push(...c.gaps);
      r.gateways[gw] = { ...c, gaps: [...c.gaps] };
    }
    return r;
  };
  const track = (gw: string): GatewayTrack => {
    let t = tracks.get(gw);
    if (!t) tracks.set(gw, (t = new GatewayTrack(gw, floors.get(gw) ?? 0)));
    return t;
  };
  const write = (gateway: string, delivered: DeliveredItem[]): void => {
    if (delivered.length === 0 || !opts.out) return;
    let text = '';
    for (const d of delivered) {
      text += `${JSON.stringify({ gateway, type: d.kind === 'readings' ? 'reading' : 'event', ...d.item })}\n`;
    }
    appendFileSync(opts.out, text);
  };
  const reportGaps = (gw: string, before: number): void => {
    const gaps = tracks.get(gw)?.counters.gaps ?? [];
    for (const g of gaps.slice(before)) log.warn(g, 'gap: seqs missing upstream');
  };

  const clientOptions: IClientOptions = {
    clientId: opts.clientId ?? `streetbox-receiver-${hostname()}`,
    clean: false,
    protocolVersion: opts.protocolVersion ?? 4,
    reconnectPeriod: opts.reconnectMs ?? 1000,
    connectTimeout: 10_000,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
    ...(opts.cert ? { cert: readFileSync(opts.cert) } : {}),
    ...(opts.key ? { key: readFileSync(opts.key) } : {}),
    ...(opts.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 7 * 24 * 3600 } } : {}),
  };
  const filters = wanted ? [...wanted].map((gw) => `${TOPIC_ROOT}/${gw}/up/#`) : [`${TOPIC_ROOT}/+/up/#`];
  const client = mqtt.connect(opts.broker, clientOptions);
  let lastError = '';
  client.on('connect', (connack) => {
    lastError = '';
    log.info({ broker: opts.broker, sessionPresent: connack.sessionPresent }, 'receiver connected');
    client.subscribe(filters, { qos: 1 }, (err) => {
      if (err) log.error({ err }, 'subscribe failed');
    });
  });
  client.on('error', (err) => {
    const msg = errorMessage(err);
    if (msg !== lastError) log.error({ err: msg }, 'receiver connection failed; retrying');
    lastError = msg;
  });
  // MQTT 3.1.1 §4.3.2: the PUBACK is sent after this handler returns, i.e. after the write.
  client.on('message', (topic, payload) => {
    const up = parseUpTopic(topic);
    if (!up || (wanted && !wanted.has(up.gateway))) return;
    let batch;
    try {
      batch = decodePayload(payload);
    } catch (err) {
      invalid++;
      log.warn({ topic, err: errorMessage(err) }, 'not a batch of the contract; ignored');
      return;
    }
    if (batch.gateway !== up.gateway) {
      invalid++;
      log.warn({ topic, gateway: batch.gateway }, 'batch gateway does not match its topic; ignored');
      return;
    }
    const t = track(up.gateway);
    const gaps = t.counters.gaps.length;
    write(up.gateway, t.accept(up.kind, batch, Date.now()));
    reportGaps(up.gateway, gaps);
    opts.onProgress?.(report());
  });

  const tick = setInterval(() => {
    for (const [gw, t] of tracks) {
      if (t.pendingBatches === 0) continue;
      const gaps = t.counters.gaps.length;
      write(gw, t.expire(Date.now(), reorderMs));
      reportGaps(gw, gaps);
    }
  }, Math.max(50, reorderMs / 4));
  tick.unref();

  await new Promise<void>((resolve) => {
    if (!opts.signal) return; // runs until the process ends
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(tick);
  await client.endAsync(false).catch(() => client.end(true));
  for (const [gw, t] of tracks) {
    const gaps = t.counters.gaps.length;
    write(gw, t.expire(Date.now(), 0, true));
    reportGaps(gw, gaps);
  }
  const final = report();
  log.info({ items: final.items, duplicates: final.duplicates, gaps: final.gaps.length, absent: final.absent }, 'receiver stopped');
  return final;
}

/** The highest seq per gateway already in the output file, so a restarted receiver appends only new items. */
async function readFloors(path: string): Promise<Map<string, number>> {
  const floors = new Map<string, number>();
  if (!existsSync(path)) return floors;
  if (!endsWithNewline(path)) appendFileSync(path, '\n'); // a torn last line stays a line of its own
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    try {
      const o = JSON.parse(line) as Partial<OutputLine>;
      if (typeof o.gateway === 'string' && typeof o.seq === 'number' && o.seq > (floors.get(o.gateway) ?? 0)) floors.set(o.gateway, o.seq);
    } catch {
      // a torn last line (killed mid-write): ignored
    }
  }
  return floors;
}

function endsWithNewline(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
