/**
 * The rig of the engine tests (engine.test.ts, engineWaves.test.ts): the firmware engine in this
 * process, for speed. Simulated streetlight controllers on real TCP servers (startModbusSimulators,
 * a short reboot), a gateway started in-process (startGateway, simulate: false) on a temp
 * devices.yaml whose buses point at them, manifests signed with a key pair made per rig and
 * submitted through `gw.firmware.submit`. The built-in streetlight profile is replaced by a copy
 * with a short `rebootS`, so the verify stage's timeout (timeouts.verify + rebootS) fits a test.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { FirmwareEngine } from '../../edge/firmware/engine.js';
import type { DeploymentSubmitted, FirmwareEventDetail, JobRecord, Manifest } from '../../edge/firmware/types.js';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { startModbusSimulators, type Fault, type FirmwareRecord, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { envelope, freePort, fwGatewayYaml, keyPair, type Image, type KeyPair } from './e2e/support.js';

const GATEWAY = 'gw-engine';
const PROFILE_FILE = join(import.meta.dirname, '..', '..', 'edge', 'profiles', 'streetlight-controller.yaml');
/** lights may update at any hour (config refuses one window from 00:00 to 00:00) */
export const ALL_DAY = "lights: { windows: [ { from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' } ] }";

export interface LightSpec {
  /** the bus (one simulated TCP server per bus) */
  bus: string;
  groups?: string[];
}

/** A stored `firmware.*` event (its detail: FirmwareEventDetail, `waiting` for firmware.job.waiting). */
export interface FirmwareEvent {
  seq: number;
  ts: number;
  device: string | null;
  kind: string;
  detail: FirmwareEventDetail & { waiting?: string };
}

export interface RigOptions {
  /** lamp-1, lamp-2, … in this order; units count from 1 per bus */
  lights: LightSpec[];
  /** how long a simulated controller is silent after a commit (ms, default 400) */
  rebootMs?: number;
  /** the profile's rebootS (default 1) */
  rebootS?: number;
  /** lines under `firmware:` besides signingKeys (default: lights all day) */
  firmware?: string[];
  lat?: number;
  lon?: number;
}

export interface EngineRig {
  readonly sims: ModbusSimulators;
  readonly gw: Gateway;
  readonly fw: FirmwareEngine;
  readonly keys: KeyPair;
  readonly dir: TempDir;
  /** a signed envelope of this gateway (keys: another key pair, for a bad signature) */
  envelope(m: Partial<Manifest> & { id: string; targets: Manifest['targets'] }, image: Image, keys?: KeyPair): string;
  /** submits as a technician with the artifact attached */
  submit(m: Partial<Manifest> & { id: string; targets: Manifest['targets'] }, image: Image, keys?: KeyPair): DeploymentSubmitted;
  job(deployment: string, device: string): JobRecord;
  /** what the device's simulator received */
  sim(device: string): FirmwareRecord;
  fault(device: string, fault: Fault | null): void;
  /** the store's `firmware.*` events, oldest first */
  events(): FirmwareEvent[];
  /** waits until `device`'s job of `deployment` satisfies pred, returns it */
  waitJob(deployment: string, device: string, what: string, pred: (j: JobRecord) => boolean, timeoutMs?: number): Promise<JobRecord>;
  /** stops the gateway (jobs stop between two steps) and starts it again on the same directory */
  restart(between?: () => void): Promise<void>;
  stop(): Promise<void>;
}

function profileWithReboot(rebootS: number): string {
  const p = parse(readFileSync(PROFILE_FILE, 'utf8')) as { firmware: { rebootS: number } };
  p.firmware.rebootS = rebootS;
  return `profiles: [${JSON.stringify(p)}]`;
}

export async function startRig(o: RigOptions): Promise<EngineRig> {
  const busIds = [...new Set(o.lights.map((l) => l.bus))];
  const units = new Map<string, number>();
  const where = o.lights.map((l, i) => {
    const unit = (units.get(l.bus) ?? 0) + 1;
    units.set(l.bus, unit);
    return { id: `lamp-${i + 1}`, bus: l.bus, unit, groups: l.groups ?? [] };
  });
  const byDevice = new Map(where.map((w) => [w.id, w]));
  const sims = await startModbusSimulators({
    tcp: busIds.map((id) => ({ id, devices: where.filter((w) => w.bus === id).map((w) => ({ unit: w.unit, profile: 'streetlight-controller' })) })),
    rebootMs: o.rebootMs ?? 400,
  });
  const dir = tempDir('streetbox-fwengine-');
  const keys = keyPair();
  const config = dir.file('devices.yaml');
  let gw: Gateway | null = null;
  try {
    const yaml = fwGatewayYaml({
      id: GATEWAY,
      apiPort: await freePort(),
      keys,
      ...(o.lat !== undefined ? { lat: o.lat } : {}),
      ...(o.lon !== undefined ? { lon: o.lon } : {}),
      buses: busIds.map((id) => ({ id, port: sims.bus(id).port!, timeout: '150ms', retries: 1 })),
      devices: where.map((w) => ({ id: w.id, bus: w.bus, unit: w.unit, groups: w.groups })),
      firmware: o.firmware ?? [ALL_DAY],
      extra: [profileWithReboot(o.rebootS ?? 1)],
    });
    writeFileSync(config, yaml);
    gw = await startGateway({ configPath: config, log: silentLogger() });
  } catch (err) {
    await sims.stop();
    dir.remove();
    throw err;
  }
  const at = (device: string) => {
    const w = byDevice.get(device);
    if (!w) throw new Error(`no light ${device}`);
    return w;
  };
  let current: Gateway = gw;
  let stopped = false;
  const rig: EngineRig = {
    sims,
    get gw() {
      return current;
    },
    get fw() {
      return current.firmware!;
    },
    keys,
    dir,
    envelope: (m, image, k = keys) => envelope(k, GATEWAY, m, image),
    submit: (m, image, k = keys) => current.firmware!.submit({ source: 'technician', principal: 'tech', role: 'technician', envelope: envelope(k, GATEWAY, m, image), artifact: image.bytes }),
    job(deployment, device) {
      const j = current.firmware!.jobs(deployment).find((x) => x.device === device);
      if (!j) throw new Error(`no job of ${device} in ${deployment}`);
      return j;
    },
    sim: (device) => sims.firmware(at(device).bus, at(device).unit),
    fault: (device, fault) => sims.setFault(at(device).bus, at(device).unit, fault),
    events() {
      const out: FirmwareEvent[] = [];
      let after = 0;
      for (;;) {
        const page = current.context.store.events({ after, limit: 500 });
        for (const e of page.items) if (e.kind.startsWith('firmware.')) out.push({ seq: e.seq, ts: e.ts, device: e.device, kind: e.kind, detail: e.detail as FirmwareEvent['detail'] });
        if (page.items.length < 500) return out;
        after = page.next;
      }
    },
    waitJob(deployment, device, what, pred, timeoutMs = 15_000) {
      return waitFor(`${device} in ${deployment}: ${what}`, () => pred(rig.job(deployment, device)) && rig.job(deployment, device), { timeoutMs });
    },
    async restart(between) {
      await current.stop();
      between?.();
      current = await startGateway({ configPath: config, log: silentLogger() });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await current.stop();
      } finally {
        await sims.stop();
        dir.remove();
      }
    },
  };
  return rig;
}

/** Calls `sample` every `everyMs` until stopped; what it throws is kept and thrown by stop(). */
export function sampler(sample: () => void, everyMs = 10): { stop(): void } {
  let error: unknown;
  const t = setInterval(() => {
    try {
      sample();
    } catch (err) {
      error ??= err;
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(t);
      if (error !== undefined) throw error instanceof Error ? error : new Error(String(error));
    },
  };
}

/** Holds `check` true for `ms` (sampled every 10 ms): for what must NOT happen over a span (a paused transfer). */
export async function holds(what: string, ms: number, check: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!check()) throw new Error(`${what}: no longer true after ${ms - (end - Date.now())} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Why a device's block log is not one transfer that only ever went forward (null when it is): it
 * starts at block 0, takes block 0 once, has no gap, and goes back at most to the block that was
 * in flight when it was interrupted (sent, not yet journaled: resent from the journal's count).
 */
export function transferFault(log: readonly number[], blocks: number): string | null {
  if (log[0] !== 0) return `starts at block ${log[0]}`;
  let top = 0;
  for (let i = 1; i < log.length; i++) {
    const b = log[i]!;
    if (b === 0) return `block 0 again at position ${i}`;
    if (b > top + 1) return `a gap: block ${b} after block ${top}`;
    if (b < top) return `went back from block ${top} to block ${b}`;
    top = Math.max(top, b);
  }
  if (top !== blocks - 1) return `ends at block ${top}, not ${blocks - 1}`;
  return null;
}
