/**
 * The rig of the end-to-end tests of issue 17 (firmware orchestration): the real gateway process
 * (bin/streetbox.js start on the bundle; `npm run build` first, the README's `npm test` builds)
 * on a temp devices.yaml with simulate: false, its Modbus peers the real simulators in this test
 * process (edge/sim/modbus startModbusSimulators: TCP servers, or an RTU line on a socat PTY
 * pair), so a test reads what each controller received (`sims.firmware(bus, unit)`); a technician
 * on the HTTP API; manifests signed with a key pair made per run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeEnvelope, signManifest } from '../../../edge/firmware/manifest.js';
import type { DeploymentReport, JobRecord, Manifest } from '../../../edge/firmware/types.js';
import { makeSimImage, type ModbusSimulators } from '../../../edge/sim/modbus/index.js';
import { BIN } from '../../helpers/demoGateway.js';
import { freePort } from '../../helpers/ports.js';
import { startScriptEnv } from '../../helpers/startScript.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';

export const TECH_TOKEN = 'fw-e2e-technician-token-0001';
export const MAINT_TOKEN = 'fw-e2e-maintenance-token-001';

// ───────────────────────────── keys and manifests ─────────────────────────────

export interface KeyPair {
  publicPem: string;
  privatePem: string;
}

export function keyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export interface Image {
  bytes: Buffer;
  sha256: string;
  versionCode: number;
}

/** A simulated controller's image (SBFW header + version, edge/sim/modbus/firmware.ts). */
export function simImage(versionCode: number, size: number): Image {
  const bytes = makeSimImage(versionCode, size);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), versionCode };
}

/** A signed envelope (JSON text) for `gateway`; `manifest.artifact` defaults to a local artifact of `image`. */
export function envelope(keys: KeyPair, gateway: string, m: Partial<Manifest> & { id: string; targets: Manifest['targets'] }, image?: Image): string {
  const full: Manifest = {
    gateway,
    ...(image ? { artifact: { name: 'slc-fw', version: `v${image.versionCode.toString(16)}`, versionCode: image.versionCode, size: image.bytes.length, sha256: image.sha256, source: { local: true } } } : {}),
    ...m,
  } as Manifest;
  const text = JSON.stringify(full);
  return makeEnvelope(text, signManifest(gateway, text, keys.privatePem));
}

// ───────────────────────────── devices.yaml ─────────────────────────────

export interface DeviceSpec {
  id: string;
  /** a Modbus controller: its bus and unit */
  bus?: string;
  unit?: number;
  /** a LoRaWAN node instead (its keys under the spec's `lorawan` lines); its profile defaults to lora-streetlight */
  devEui?: string;
  profile?: 'streetlight-controller' | 'traffic-controller' | 'lora-streetlight' | string;
  groups?: string[];
  allowCommands?: boolean;
  poll?: string;
}

export interface BusSpec {
  id: string;
  /** tcp */
  port?: number;
  /** serial (a PTY end) */
  path?: string;
  baud?: number;
  timeout?: string;
  retries?: number;
  transferShare?: number;
}

export interface FwGatewaySpec {
  id: string;
  apiPort: number;
  buses: BusSpec[];
  devices: DeviceSpec[];
  groups?: string[];
  keys: KeyPair;
  lat?: number;
  lon?: number;
  timezone?: string;
  /** YAML lines under `firmware:` (indented by the builder), besides signingKeys */
  firmware?: string[];
  /** extra top-level YAML lines (profiles:, sync:) */
  extra?: string[];
  /** YAML lines under `lorawan:` (indented by the builder): port, devices with their keys, fuota… */
  lorawan?: string[];
  /** the `simulate:` value (default false): `{ enabled: false, radioTimeScale: 10 }` for a test whose nodes run on a scaled radio clock */
  simulate?: string;
}

/** A device's line under `devices:`: a Modbus controller by bus and unit, a LoRaWAN node by DevEUI. */
function deviceLine(d: DeviceSpec): string {
  const where = d.devEui !== undefined ? `devEui: ${d.devEui}, profile: ${d.profile ?? 'lora-streetlight'}` : `bus: ${d.bus}, unit: ${d.unit}, profile: ${d.profile ?? 'streetlight-controller'}, poll: ${d.poll ?? '500ms'}`;
  return `  - { id: ${d.id}, ${where}${d.groups && d.groups.length > 0 ? `, groups: [${d.groups.join(', ')}]` : ''}${d.allowCommands ? ', allowCommands: true' : ''} }`;
}

export function fwGatewayYaml(s: FwGatewaySpec): string {
  const pos = [s.lat !== undefined ? `lat: ${s.lat}` : '', s.lon !== undefined ? `lon: ${s.lon}` : '', `timezone: ${s.timezone ?? 'UTC'}`].filter(Boolean).join(', ');
  const groups = s.groups ?? [...new Set(s.devices.flatMap((d) => d.groups ?? []))];
  return [
    `gateway: { id: ${s.id}, ${pos} }`,
    'storage: { path: data/gw.db }',
    s.buses.length > 0 ? 'buses:' : 'buses: []',
    ...s.buses.map((b) =>
      b.path !== undefined
        ? `  - { id: ${b.id}, type: serial, path: '${b.path}', baud: ${b.baud ?? 115200}, parity: none, stopBits: 1, timeout: ${b.timeout ?? '300ms'}, retries: ${b.retries ?? 2}${b.transferShare !== undefined ? `, transferShare: ${b.transferShare}` : ''} }`
        : `  - { id: ${b.id}, type: tcp, host: 127.0.0.1, port: ${b.port}, timeout: ${b.timeout ?? '300ms'}, retries: ${b.retries ?? 2}${b.transferShare !== undefined ? `, transferShare: ${b.transferShare}` : ''} }`,
    ),
    'devices:',
    ...s.devices.map(deviceLine),
    ...(groups.length > 0 ? ['groups:', ...groups.map((g) => `  - { id: ${g} }`)] : []),
    'broker: { enabled: false }',
    `api: { host: 127.0.0.1, port: ${s.apiPort}, tokens: [ { name: tech, token: ${TECH_TOKEN}, role: technician }, { name: maint, token: ${MAINT_TOKEN}, role: maintenance } ] }`,
    'firmware:',
    '  signingKeys:',
    '    - |',
    ...s.keys.publicPem
      .split('\n')
      .filter(Boolean)
      .map((l) => `      ${l}`),
    ...(s.firmware ?? []).map((l) => `  ${l}`),
    ...(s.lorawan ? ['lorawan:', ...s.lorawan.map((l) => `  ${l}`)] : []),
    ...(s.extra ?? []),
    `simulate: ${s.simulate ?? 'false'}`,
    '',
  ].join('\n');
}

// ───────────────────────────── the gateway process ─────────────────────────────

export interface GatewayProcess {
  child: ChildProcess;
  /** everything it wrote (bounded tail) */
  output(): string;
  exited: Promise<number | null>;
  /** SIGTERM and wait (SIGKILL after 10 s) */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const OUTPUT_TAIL = 40_000;

export async function startGatewayProcess(dir: string, apiPort: number, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', join(dir, 'devices.yaml')], {
    cwd: dir,
    env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const add = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > OUTPUT_TAIL) out = out.slice(-OUTPUT_TAIL);
  };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const gp: GatewayProcess = {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor(
      'the gateway API answers',
      async () => {
        if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${out}`);
        try {
          const r = await fetch(`http://127.0.0.1:${apiPort}/api/v1/health`);
          return r.status < 500;
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000 },
    );
  } catch (err) {
    await gp.kill();
    throw err;
  }
  return gp;
}

/** A temp gateway directory with its devices.yaml. */
export function writeGateway(dir: string, spec: FwGatewaySpec): void {
  writeFileSync(join(dir, 'devices.yaml'), fwGatewayYaml(spec));
}

export { freePort };

/** A free UDP port on the loopback interface (the gateway's `lorawan.port`: its packet forwarders talk to it). */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * The buses of `sims` as the gateway reaches them: a TCP server by its port, an RTU line by its
 * PTY end (at the builder's default, 115200 baud); `extra` (retries, timeout…) on each.
 */
export function simBuses(sims: ModbusSimulators, ids: readonly string[], extra: Omit<BusSpec, 'id' | 'port' | 'path'> = {}): BusSpec[] {
  return ids.map((id) => {
    const b = sims.bus(id);
    return b.kind === 'tcp' ? { id, port: b.port!, ...extra } : { id, path: b.path!, ...extra };
  });
}

export interface LaunchedGateway {
  /** the gateway's directory; the test removes it */
  dir: TempDir;
  apiPort: number;
  gw: GatewayProcess;
  /** the technician's API */
  a: Api;
}

/**
 * A temp gateway directory (named from `prefix`) with the devices.yaml of `spec` on a free API
 * port, the gateway process started on it, and the technician's API.
 */
export async function launchGateway(prefix: string, spec: Omit<FwGatewaySpec, 'apiPort'>): Promise<LaunchedGateway> {
  const dir = tempDir(prefix);
  try {
    const apiPort = await freePort();
    writeGateway(dir.path, { ...spec, apiPort });
    const gw = await startGatewayProcess(dir.path, apiPort);
    return { dir, apiPort, gw, a: api(apiPort) };
  } catch (err) {
    dir.remove();
    throw err;
  }
}

// ───────────────────────────── the technician's API ─────────────────────────────

export interface Api {
  call<T = unknown>(method: string, path: string, body?: string | Buffer, token?: string): Promise<{ status: number; body: T }>;
  deploy(envelopeText: string, artifact?: Buffer): Promise<{ status: number; body: DeploymentReport & { error?: string } }>;
  deployment(id: string): Promise<{ report: DeploymentReport; jobs: JobRecord[] } | null>;
  /** waits until the deployment's report satisfies `pred`, returns it */
  waitFor(id: string, what: string, pred: (r: DeploymentReport, jobs: JobRecord[]) => boolean, timeoutMs?: number): Promise<{ report: DeploymentReport; jobs: JobRecord[] }>;
}

export function api(port: number, token = TECH_TOKEN): Api {
  const base = `http://127.0.0.1:${port}`;
  const a: Api = {
    async call<T>(method: string, path: string, body?: string | Buffer, tk = token) {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${tk}`, ...(Buffer.isBuffer(body) ? { 'content-type': 'application/octet-stream' } : body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body } : {}),
      });
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: r.status, body: parsed as T };
    },
    async deploy(envelopeText, artifact) {
      if (artifact) {
        const up = await a.call('POST', '/api/v1/artifacts', artifact);
        if (up.status !== 201) throw new Error(`artifact upload: ${up.status} ${JSON.stringify(up.body)}`);
      }
      const r = await a.call<DeploymentReport & { report?: DeploymentReport; error?: string }>('POST', '/api/v1/deployments', envelopeText);
      return { status: r.status, body: (r.body.report ?? r.body) as DeploymentReport & { error?: string } };
    },
    async deployment(id) {
      const r = await a.call<{ report: DeploymentReport; jobs: JobRecord[] }>('GET', `/api/v1/deployments/${encodeURIComponent(id)}`);
      return r.status === 200 ? r.body : null;
    },
    async waitFor(id, what, pred, timeoutMs = 60_000) {
      return waitFor(
        `deployment ${id}: ${what}`,
        async () => {
          try {
            const d = await a.deployment(id);
            return d && pred(d.report, d.jobs) ? d : false;
          } catch {
            return false; // the gateway restarting
          }
        },
        { timeoutMs, intervalMs: 100 },
      );
    },
  };
  return a;
}

/** Longitude at which local mean solar time is `hour` now (at the equator: day 6..18 h). */
export function longitudeAtSolarHour(hour: number, now = Date.now()): number {
  const utcHours = (now % 86_400_000) / 3_600_000;
  let lon = (hour - utcHours) * 15;
  while (lon > 180) lon -= 360;
  while (lon < -180) lon += 360;
  return Math.round(lon * 100) / 100;
}
