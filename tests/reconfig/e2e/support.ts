/**
 * The rig of the end-to-end tests of issue 16 (configuration as a transaction): a gateway
 * in-process on a temp devices.yaml (startGateway, the real components on real loopback
 * sockets), central as a plain MQTT client of a real mosquitto (down/config in, the stage
 * reports of up/config/<id> out), Modbus peers in a process of their own (simProcess.ts), and
 * the few questions every test asks: what the file holds, which version runs, whether any
 * component or bus transport was touched, which config.* events were recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { startGateway, type Gateway } from '../../../edge/main.js';
import type { ConfigManager } from '../../../edge/reconfig/manager.js';
import type { ConfigStage, ConfigStageReport, ConfigVersion } from '../../../edge/reconfig/types.js';
import type { StoredEvent } from '../../../edge/store/types.js';
import { BIN } from '../../helpers/demoGateway.js';
import { startScriptEnv } from '../../helpers/startScript.js';
import { tempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { tempGateway } from '../../support/cli.js';
import { observe, testLogger, type Observer } from '../../sync/helpers.js';
import { startMosquitto, type Mosquitto } from '../../sync/mosquitto.js';

export const TECH_TOKEN = 'e2e-technician-token-00000001';

// ───────────────────────────── devices.yaml ─────────────────────────────

export interface BusSpec {
  id: string;
  port: number;
  /** unit ids of the streetlight controllers on it; device ids are `lamp-<bus>-<unit>` */
  units: number[];
}

export interface GatewaySpec {
  id: string;
  buses?: BusSpec[];
  /** poll interval of every device (stored at every poll: `report: poll`) */
  poll?: string;
  /** the level of the one schedule step: the knob of a change that touches no bus */
  level?: number;
  confirmTimeout?: string;
  syncUrl?: string;
  signingKeys?: string[];
  /** the API on 127.0.0.1:<apiPort> with one technician token */
  apiPort?: number;
  simulate?: boolean;
}

/** A devices.yaml, written out line by line so a test can point at a line. */
export function gatewayYaml(s: GatewaySpec): string {
  const poll = s.poll ?? '250ms';
  const buses = s.buses ?? [];
  const lines = [
    `# end-to-end gateway ${s.id} (tests/reconfig/e2e)`,
    `gateway: { id: ${s.id}${s.confirmTimeout ? `, confirmTimeout: ${s.confirmTimeout}` : ''} }`,
    'storage: { path: data/gw.db }',
    ...(buses.length > 0 ? ['buses:', ...buses.map((b) => `  - { id: ${b.id}, type: tcp, host: 127.0.0.1, port: ${b.port}, timeout: 300ms }`)] : []),
    ...(buses.length > 0
      ? ['devices:', ...buses.flatMap((b) => b.units.map((u) => `  - { id: ${deviceId(b.id, u)}, bus: ${b.id}, unit: ${u}, profile: streetlight-controller, poll: ${poll}, report: poll }`))]
      : []),
    'groups:',
    '  - { id: spare }           # no device: a schedule change writes to nobody',
    'schedules:',
    '  - id: night',
    '    groups: [spare]',
    '    steps:',
    `      - { at: '22:00', level: ${s.level ?? 40} }`,
    'broker: { enabled: false }',
    s.apiPort !== undefined ? `api: { host: 127.0.0.1, port: ${s.apiPort}, tokens: [ { name: tech, token: ${TECH_TOKEN}, role: technician } ] }` : 'api: { enabled: false }',
    ...(s.syncUrl !== undefined
      ? [
          `sync:`,
          `  url: '${s.syncUrl}'`,
          '  reconnectMin: 100ms',
          '  reconnectMax: 1s',
          '  linger: 0ms',
          ...(s.signingKeys && s.signingKeys.length > 0 ? ['  configSigningKeys:', ...s.signingKeys.map((k) => `    - '${k}'`)] : []),
        ]
      : []),
    `simulate: ${s.simulate ?? false}`,
  ];
  return `${lines.join('\n')}\n`;
}

export const deviceId = (bus: string, unit: number): string => `lamp-${bus}-${unit}`;

/** Where `token` is written on the first line containing `marker`: 1-based line:col, as problems are reported. */
export function where(text: string, marker: string, token: string): { line: number; col: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`no line with ${JSON.stringify(marker)}`);
  const col = lines[i]!.indexOf(token);
  if (col < 0) throw new Error(`no ${JSON.stringify(token)} on line ${i + 1}`);
  return { line: i + 1, col: col + 1 };
}

// ───────────────────────────── the gateway ─────────────────────────────

export interface Rig {
  gw: Gateway;
  changes: ConfigManager;
  file: string;
  /** devices.yaml as it is on disk now */
  text(): string;
  running(): ConfigVersion;
  /** everything a change that touches nothing must leave as it was: the components' states and restarts, each bus transport's connects */
  snapshot(): unknown;
  /** config.* (or any) events recorded so far, oldest first */
  events(kind: string): StoredEvent[];
  /** the HTTP API with the technician's token */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startRig(yaml: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Rig> {
  const dir = tempGateway(yaml);
  let gw: Gateway;
  try {
    gw = await startGateway({ configPath: dir.config, log: testLogger(), ...(opts.env ? { env: opts.env } : {}) });
  } catch (err) {
    dir.cleanup();
    throw err;
  }
  const changes = gw.configChanges!;
  return {
    gw,
    changes,
    file: dir.config,
    text: () => readFileSync(dir.config, 'utf8'),
    running: () => changes.running()!,
    snapshot: () => ({
      components: gw.status().components.map((c) => ({ name: c.name, state: c.state, restarts: c.restarts, failures: c.failures, since: c.since })),
      buses: (gw.built.modbus?.status() ?? []).map((b) => ({ id: b.id, connects: b.counters.connects })),
    }),
    events: (kind) => allEvents(gw, kind),
    async api(method, path, body) {
      const port = gw.built.api!.port();
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: { authorization: `Bearer ${TECH_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
    },
    async close() {
      await gw.stop();
      dir.cleanup();
    },
  };
}

function allEvents(gw: Gateway, kind: string): StoredEvent[] {
  const out: StoredEvent[] = [];
  let after = 0;
  for (let page = 0; page < 100; page++) {
    const p = gw.context.store.events({ after, limit: 1000, kind });
    out.push(...p.items);
    if (p.items.length < 1000) break;
    after = p.next;
  }
  return out;
}

/** The seqs missing between the first and the last the store holds (readings and events share one seq space). */
export function seqGaps(gw: Gateway): number[] {
  const seqs: number[] = [];
  for (const q of ['readings', 'events'] as const) {
    let after = 0;
    for (let page = 0; page < 1000; page++) {
      const p = q === 'readings' ? gw.context.store.readings({ after, limit: 10_000 }) : gw.context.store.events({ after, limit: 10_000 });
      for (const it of p.items) seqs.push(it.seq);
      if (p.items.length < 10_000) break;
      after = p.next;
    }
  }
  seqs.sort((a, b) => a - b);
  const missing: number[] = [];
  for (let i = 1; i < seqs.length; i++) for (let s = seqs[i - 1]! + 1; s < seqs[i]! && missing.length < 100; s++) missing.push(s);
  return missing;
}

/** The timestamps of a device's stored readings of one point, oldest first. */
export function readingTimes(gw: Gateway, device: string, point = 'mains_voltage'): number[] {
  const out: number[] = [];
  let after = 0;
  for (let page = 0; page < 1000; page++) {
    const p = gw.context.store.readings({ after, limit: 10_000, device });
    for (const r of p.items) if (r.point === point) out.push(r.ts);
    if (p.items.length < 10_000) break;
    after = p.next;
  }
  return out;
}

// ───────────────────────────── central ─────────────────────────────

export interface Central {
  broker: Mosquitto;
  /** every message on streetbox/<gw>/up/config/#, in arrival order */
  observer: Observer;
  /** publishes on down/config, QoS 1 (an object as JSON, a string as is) */
  send(message: unknown): Promise<void>;
  /** publishes all of them at once over one connection: they arrive in this order */
  sendMany(messages: unknown[]): Promise<void>;
  /** the reports received on up/config/<id>, in arrival order */
  reports(id: string): ConfigStageReport[];
  /** until a report of `id` at `stage` arrived */
  waitStage(id: string, stage: ConfigStage, timeoutMs?: number): Promise<ConfigStageReport>;
  /** what a subscriber arriving now gets on up/config/<id>: the retained report */
  retained(id: string): Promise<{ report: ConfigStageReport; retain: boolean }>;
  /** until the gateway's sync holds its subscription to down/config (count: how many it must have made by now) */
  subscribed(count?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCentral(gatewayId: string): Promise<Central> {
  const broker = await startMosquitto();
  const up = `streetbox/${gatewayId}/up/config`;
  const down = `streetbox/${gatewayId}/down/config`;
  const observer = await observe(broker.url, `${up}/#`);
  const publish = async (messages: unknown[]): Promise<void> => {
    const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      await Promise.all(messages.map((m) => c.publishAsync(down, typeof m === 'string' ? m : JSON.stringify(m), { qos: 1 })));
    } finally {
      await c.endAsync();
    }
  };
  const reports = (id: string): ConfigStageReport[] => observer.messages.filter((m) => m.topic === `${up}/${id}`).map((m) => JSON.parse(m.payload.toString()) as ConfigStageReport);
  return {
    broker,
    observer,
    send: (message) => publish([message]),
    sendMany: (messages) => publish(messages),
    reports,
    waitStage: (id, stage, timeoutMs = 10_000) => waitFor(`report ${stage} of ${id} at central`, () => reports(id).find((r) => r.stage === stage), timeoutMs),
    async retained(id) {
      const o = await observe(broker.url, `${up}/${id}`);
      try {
        const m = await waitFor(`the retained report of ${id}`, () => o.messages[0], 5000);
        return { report: JSON.parse(m.payload.toString()) as ConfigStageReport, retain: m.retain };
      } finally {
        await o.close();
      }
    },
    subscribed: (count = 1) => waitFor(`the gateway subscribed to ${down}`, () => broker.subscriptions({ filter: down }) >= count, 15_000).then(() => undefined),
    async close() {
      await observer.close();
      await broker.close();
    },
  };
}

/** A fresh ed25519 pair: the private key as PEM (for signing), the public one as base64 of its raw 32 bytes (for sync.configSigningKeys). */
export function signingPair(): { privatePem: string; publicRaw: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicRaw: der.subarray(der.length - 32).toString('base64') };
}

// ───────────────────────────── a gateway process ─────────────────────────────

export interface GatewayProcess {
  child: ChildProcess;
  /** devices.yaml of the process */
  file: string;
  /** the HTTP API's port, from its log */
  port: number;
  /** everything it logged on stdout so far */
  out(): string;
  alive(): boolean;
  /** SIGTERM, and SIGKILL if it has not exited 10 s later; removes the temp dir */
  stop(): Promise<void>;
}

/** `bin/streetbox.js start` (the bundle, as `npm start` runs it) on `yaml` written byte for byte to a temp devices.yaml. */
export async function spawnGateway(yaml: string): Promise<GatewayProcess> {
  const dir = tempDir('streetbox-e2e-process-');
  const file = dir.file('devices.yaml');
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], {
    cwd: dir.path,
    env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exited = false;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(kill);
    }
    dir.remove();
  };
  // the process's own end is an answer too: no minute of waiting for a gateway that exited at once
  const started = await waitFor('the gateway process running', () => (exited ? 'exited' : /"msg":"gateway running"/.test(out) && 'running'), 60_000).catch(() => 'timeout');
  if (started !== 'running') {
    await stop();
    throw new Error(`the gateway process ${started === 'exited' ? 'exited' : 'did not run within 60 s'}:\n${out.slice(-3000)}\n${err}`);
  }
  const port = Number(/"port":(\d+)[^\n]*"msg":"http api listening"/.exec(out)?.[1] ?? 0);
  return { child, file, port, out: () => out, alive: () => !exited, stop };
}
