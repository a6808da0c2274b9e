/**
 * The attacks of `npm run chaos`, each bounded in count and time, each only on loopback. An
 * attack returns what it tried (load, bad inputs, faults) and anything it checked on the way.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { BIN, DEMO } from '../tests/helpers/demoGateway.js';
import { makeContext } from '../tests/helpers/context.js';
import { createModbusDriver } from '../edge/drivers/modbus/index.js';
import { mulberry32 } from '../edge/sim/modbus/model.js';
import type { ChaosGateway } from './gateway.js';
import { sleep } from './gateway.js';

export interface AttackResult {
  name: string;
  /** what was sent, in words ("5000 POSTs") */
  load: string;
  /** hostile or malformed inputs among it */
  bad: number;
  /** faults injected (kills, outages) */
  faults: number;
  /** what the attack checked, in words; "FAIL …" when a check failed */
  notes: string[];
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const bytes = (r: () => number, n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

/** Runs `jobs` with at most `width` at a time. */
async function pool(count: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await job(next++).catch(() => undefined);
    }),
  );
}

// ------------------------------------------------------------------------------------------
// HTTP

const PATHS = ['/api/v1/health', '/api/v1/status', '/api/v1/devices', '/api/v1/devices/lamp-ctrl-01', '/api/v1/devices/%00', '/api/v1/readings?after=-1&limit=99999999', '/api/v1/readings?after=abc', '/api/v1/events?after=0&limit=5', '/api/v1/commands/nope', '/api/v1/devices/lamp-ctrl-01/commands', '/api/v1/groups/stationsplein/commands', '/api/v1/consumers/x/ack', '/metrics', '/', '/flows/', '/flows/auth/token', '/%2e%2e/%2e%2e/etc/passwd', `/api/v1/${'a'.repeat(8000)}`];

export async function httpFuzz(gw: ChaosGateway, n = 3000): Promise<AttackResult> {
  const r = mulberry32(1);
  const statuses = new Map<number, number>();
  const fiveSamples: string[] = [];
  let deep = 0;
  await pool(n, 16, async (i) => {
    const kind = r();
    let body: string | Buffer | undefined;
    if (kind < 0.15) {
      deep++;
      body = r() < 0.5 ? '['.repeat(60_000) : '{"a":'.repeat(12_000);
    } else if (kind < 0.4) body = bytes(r, Math.floor(r() * 4096));
    else if (kind < 0.6) body = JSON.stringify({ action: pick(r, ['dim', 'on', 'off', 'program', 'write', 'x']), level: pick(r, [-1, 0, 50, 101, 'x', null, 1e308]), durationS: pick(r, [0, -5, 1e12, 'x']) });
    const token = pick(r, [DEMO.technicianToken, DEMO.viewerToken, 'garbage-token-xxxxxxxxxxxx', '']);
    const headers: Record<string, string> = token ? auth(token) : {};
    if (r() < 0.3) headers['content-type'] = pick(r, ['application/json', 'text/plain', 'application/json; charset=latin1', '']);
    const path = pick(r, PATHS);
    const method = body !== undefined ? pick(r, ['POST', 'PUT', 'PATCH']) : pick(r, ['GET', 'DELETE', 'HEAD', 'OPTIONS']);
    const res = await fetch(`${gw.base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(10_000) });
    const text = await res.text().catch(() => '');
    if (res.status >= 500 && fiveSamples.length < 3) {
      const b = body === undefined ? 'none' : typeof body === 'string' ? JSON.stringify(body.slice(0, 20)) : `${body.length} random bytes`;
      fiveSamples.push(`${method} ${path.slice(0, 50)} (${headers['content-type'] ?? 'no content-type'}, body ${b}) → ${res.status} ${text.slice(0, 120)}`);
    }
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (i % 500 === 0) await sleep(1);
  });
  const five = [...statuses].filter(([s]) => s >= 500).reduce((a, [, c]) => a + c, 0);
  return {
    name: 'http fuzz',
    load: `${n} requests (${deep} deep JSON)`,
    bad: n,
    faults: 0,
    notes: [`statuses ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, c]) => `${s}×${c}`).join(' ')}`, five > 0 ? `FAIL ${five} answers 5xx, e.g. ${fiveSamples.join(' | ')}` : 'no 5xx'],
  };
}

/** A viewer floods the command endpoint: every POST is refused; the buffer and the audit trail must survive. */
export async function refusedFlood(gw: ChaosGateway, n = 5000): Promise<AttackResult> {
  const tech = auth(DEMO.technicianToken);
  const firstEvent = async (): Promise<number | null> => {
    const r = (await (await fetch(`${gw.base}/api/v1/events?after=0&limit=1`, { headers: tech })).json()) as { events: { seq: number }[] };
    return r.events[0]?.seq ?? null;
  };
  const oldestReading = async (): Promise<number | null> =>
    ((await (await fetch(`${gw.base}/api/v1/status`, { headers: tech })).json()) as { store: { oldestReadingSeq: number | null } }).store.oldestReadingSeq;
  const before = await firstEvent();
  const readingsBefore = await oldestReading();
  let refused = 0;
  await pool(n, 16, async () => {
    const res = await fetch(`${gw.base}/api/v1/groups/stationsplein/commands`, {
      method: 'POST',
      headers: { ...auth(DEMO.viewerToken), 'content-type': 'application/json' },
      body: '{"action":"dim","level":0}',
    });
    await res.arrayBuffer();
    if (res.status === 403) refused++;
  });
  const after = await firstEvent();
  const readingsAfter = await oldestReading();
  return {
    name: 'refused commands',
    load: `${n} POSTs by a viewer`,
    bad: n,
    faults: 0,
    notes: [
      `${refused} refused`,
      before === after ? `first event kept (seq ${before})` : `FAIL first event evicted (${before} → ${after})`,
      readingsBefore === readingsAfter ? `oldest reading kept (seq ${readingsBefore})` : `FAIL readings evicted (oldest ${readingsBefore} → ${readingsAfter})`,
    ],
  };
}

/** Live-feed readers that connect and never read: they must cost bounded memory and never stall ingest. */
export function stalledReaders(gw: ChaosGateway, n = 4): { close: () => void; result: AttackResult } {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(gw.ports.api, '127.0.0.1', () => {
      s.write(`GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${DEMO.viewerToken}\r\nAccept: text/event-stream\r\n\r\n`);
      s.pause(); // never reads: the kernel buffers fill, then the gateway sees backpressure
    });
    s.on('error', () => undefined);
    sockets.push(s);
  }
  return {
    close: () => sockets.forEach((s) => s.destroy()),
    result: { name: 'stalled live readers', load: `${n} SSE readers that never read, for the rest of the run`, bad: n, faults: 0, notes: [] },
  };
}

// ------------------------------------------------------------------------------------------
// MQTT

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** Writes until the peer closes or `limit` bytes went out; returns the bytes it took. */
function stream(port: number, head: Buffer, limit: number, chunk: Buffer): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    const s = connect(port, '127.0.0.1');
    const finish = (): void => {
      s.destroy();
      resolve(sent);
    };
    const timer = setTimeout(finish, 20_000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(sent);
    });
    s.on('connect', () => {
      s.write(head);
      const pump = (): void => {
        while (sent < limit && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        if (sent >= limit) finish();
      };
      pump();
    });
  });
}

export async function mqttAttacks(gw: ChaosGateway): Promise<AttackResult> {
  const r = mulberry32(2);
  const port = gw.ports.broker;
  const notes: string[] = [];
  // a CONNECT announcing 200 MB, without credentials
  const huge = await stream(port, Buffer.concat([Buffer.from([0x10]), varint(200 * 1024 * 1024)]), 64 * 1024 * 1024, Buffer.alloc(1024 * 1024, 0x61));
  notes.push(huge >= 64 * 1024 * 1024 ? `FAIL a 200 MB CONNECT was taken up to the attack's own limit (${huge >> 20} MB)` : `200 MB CONNECT cut after ${Math.round(huge / 1024)} KB`);
  // garbage, and sockets that never speak
  await pool(300, 16, async () => {
    await stream(port, bytes(r, 1 + Math.floor(r() * 512)), 0, Buffer.alloc(0));
  });
  // wrong passwords
  let refusedLogins = 0;
  await pool(200, 8, async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: 'technician', password: `wrong-${r()}`, reconnectPeriod: 0, connectTimeout: 5000 }).catch(() => null);
    if (c) await c.endAsync();
    else refusedLogins++;
  });
  notes.push(`${refusedLogins}/200 wrong passwords refused`);
  // deep and malformed JSON on a set topic, by an authenticated technician
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: DEMO.editor.username, password: DEMO.editor.password, reconnectPeriod: 0 });
  for (let i = 0; i < 100; i++) {
    const payload = i % 3 === 0 ? '['.repeat(60_000) : i % 3 === 1 ? bytes(r, 200) : '{"action":"dim","level":"x"}';
    await c.publishAsync('streetbox/demo-cabinet-01/groups/nowhere/set', payload, { qos: 0 }).catch(() => undefined);
  }
  await c.endAsync();
  return { name: 'mqtt', load: '1 huge CONNECT, 300 garbage, 200 bad logins, 100 bad set payloads', bad: 601, faults: 0, notes };
}

// ------------------------------------------------------------------------------------------
// LoRaWAN

export async function loraFuzz(gw: ChaosGateway, n = 6000): Promise<AttackResult> {
  const r = mulberry32(3);
  const since = ((await (await fetch(`${gw.base}/api/v1/status`, { headers: auth(DEMO.technicianToken) })).json()) as { store: { lastSeq: number } }).store.lastSeq;
  const sock = createSocket('udp4');
  let forged = 0;
  for (let i = 0; i < n; i++) {
    const k = r();
    let msg: Buffer;
    const eui = bytes(r, 8);
    if (k < 0.35) msg = bytes(r, Math.floor(r() * 600));
    else if (k < 0.65) msg = Buffer.concat([Buffer.from([2, Math.floor(r() * 256), Math.floor(r() * 256), 0]), eui, Buffer.from(pick(r, ['{', '{"rxpk":[{"data":"!!"}]}', '{"rxpk":[{"tmst":1,"data":"QAEQASaAAAAB"}]}', 'null', '[]', '{"stat":5}']))]);
    else {
      forged++;
      msg = Buffer.concat([Buffer.from([2, Math.floor(r() * 256), Math.floor(r() * 256), 0]), eui, Buffer.from(JSON.stringify({ stat: { time: '2026-12-04 12:00:00 GMT', rxnb: 1, rxok: 1, rxfw: 1, ackr: 100, dwnb: 0, txnb: 0 } }))]);
    }
    await new Promise<void>((done) => sock.send(msg, gw.ports.lorawan, '127.0.0.1', () => done()));
    if (i % 200 === 0) await sleep(5);
  }
  sock.close();
  await sleep(1000); // the last stats are committed
  // every forwarder whose stat was stored since the attack began
  const gwIds = new Set<string>();
  let after = since;
  for (let page = 0; page < 200; page++) {
    const r = (await (await fetch(`${gw.base}/api/v1/readings?after=${after}&limit=5000`, { headers: auth(DEMO.technicianToken) })).json()) as { readings: { device: string }[]; next: number };
    // the demo's simulated forwarder is a real one (its nodes' frames pass their MIC)
    for (const x of r.readings) if (x.device.startsWith('gw-') && x.device !== 'gw-aa555a0000000001') gwIds.add(x.device);
    if (r.readings.length === 0 || r.next === after) break;
    after = r.next;
  }
  const gws = gwIds.size;
  return { name: 'lorawan fuzz', load: `${n} datagrams (${forged} forged stat)`, bad: n, faults: 0, notes: [gws === 0 ? 'no forwarder device made by forged stat' : `FAIL ${gws} forwarder devices made by forged stat`] };
}

// ------------------------------------------------------------------------------------------
// Modbus: the driver against a server that answers garbage (in this process: a real driver and store)

export async function modbusFuzz(seconds = 8): Promise<AttackResult> {
  const r = mulberry32(4);
  let answers = 0;
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (req) => {
      answers++;
      const k = r();
      if (k < 0.1) return s.destroy();
      const tid = req.subarray(0, 2);
      // half: an MBAP header of the right transaction with a wrong length or body; half: noise
      const body = k < 0.55 ? Buffer.concat([tid, Buffer.from([0, 0]), Buffer.from([0, Math.floor(r() * 260)]), bytes(r, Math.floor(r() * 300))]) : bytes(r, Math.floor(r() * 300));
      s.write(body);
    });
  });
  const port = await new Promise<number>((res) => server.listen(0, '127.0.0.1', () => res((server.address() as { port: number }).port)));
  const t = makeContext({
    // offline only after 100 failures in a row: most polls meet the garbage
    buses: [{ id: 'fuzz', type: 'tcp', host: '127.0.0.1', port, timeout: 100, retries: 0, offlineAfter: 100, probeInterval: 1000 }],
    devices: Array.from({ length: 8 }, (_, i) => ({ id: `fz-${i + 1}`, bus: 'fuzz', unit: i + 1, profile: i % 2 === 0 ? 'streetlight-controller' : 'traffic-controller', poll: 100 })),
  });
  const driver = createModbusDriver(t.ctx);
  await driver.start();
  await sleep(seconds * 1000);
  await driver.stop();
  await t.close();
  await new Promise<void>((res) => server.close(() => res()));
  return { name: 'modbus fuzz', load: `${seconds} s of polls against a garbage server`, bad: answers, faults: 0, notes: ['driver in this process: a real driver and store'] };
}

// ------------------------------------------------------------------------------------------
// devices.yaml

export function yamlAttacks(): AttackResult {
  const dir = mkdtempSync(join(tmpdir(), 'streetbox-chaos-yaml-'));
  const notes: string[] = [];
  const validate = (name: string, text: string): { ms: number; lines: number; code: number | null } => {
    writeFileSync(join(dir, name), text);
    const t0 = performance.now();
    const res = spawnSync(process.execPath, [BIN, 'validate', name], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    return { ms: performance.now() - t0, lines: (res.stdout + res.stderr).split('\n').filter((l) => l.startsWith(name)).length, code: res.status };
  };
  try {
    const aliases = (n: number): string => `gateway: { id: x }\ngroups:\n${Array.from({ length: n }, (_, i) => (i === 0 ? '  - &g { id: g0 }' : '  - *g')).join('\n')}\n`;
    const a2 = validate('a2.yaml', aliases(2000));
    const a8 = validate('a8.yaml', aliases(8000));
    notes.push(`aliases 2000: ${Math.round(a2.ms)} ms, 8000: ${Math.round(a8.ms)} ms`);
    const laughs = `a: &a ["x","x","x","x","x","x","x","x","x","x"]\n${Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`).join('\n')}\n`;
    const bl = validate('laughs.yaml', laughs);
    notes.push(`billion laughs: exit ${bl.code} in ${Math.round(bl.ms)} ms`);
    return { name: 'devices.yaml', load: '2000 and 8000 aliases, a billion laughs', bad: 3, faults: 0, notes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
