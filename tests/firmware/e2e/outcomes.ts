/**
 * What the end-to-end tests of issue 17 read back beside a deployment's report (support.ts is the
 * rig): the firmware events of GET /api/v1/events, whether the other devices of a line kept their
 * poll cycle (their `lastSeen` in GET /api/v1/devices, sampled while a job is in a stage), and what
 * each simulated controller's firmware received, to say "nothing was sent to any device".
 */
import { onTestFailed } from 'vitest';
import type { FirmwareEventDetail } from '../../../edge/firmware/types.js';
import type { ModbusSimulators } from '../../../edge/sim/modbus/index.js';
import { waitFor } from '../../helpers/wait.js';
import type { Api, GatewayProcess } from './support.js';

/** Lights and traffic controllers may update at any time of day (two windows: `from` = `to` is refused). */
export const ALL_DAY = "[ { from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' } ]";

export interface FirmwareEvent {
  seq: number;
  ts: number;
  kind: string;
  device: string | null;
  detail: FirmwareEventDetail;
}

/** The `firmware.*` events recorded (GET /api/v1/events), of `kind` when given, oldest first. */
export async function firmwareEvents(a: Api, kind?: string): Promise<FirmwareEvent[]> {
  const r = await a.call<{ events: FirmwareEvent[] }>('GET', `/api/v1/events?limit=10000${kind ? `&kind=${encodeURIComponent(kind)}` : ''}`);
  if (r.status !== 200) throw new Error(`GET /api/v1/events: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.events.filter((e) => e.kind.startsWith('firmware.'));
}

/** The `firmware.deployment.rejected` event of deployment `id` (waits for it). */
export async function rejectedEvent(a: Api, id: string): Promise<FirmwareEvent> {
  return waitFor(`a firmware.deployment.rejected event of ${id}`, async () => (await firmwareEvents(a, 'firmware.deployment.rejected')).find((e) => e.detail.deployment === id), 5000);
}

/** Each device's `lastSeen` (ms UTC of its last answered poll; null before the first). */
export async function lastSeen(a: Api): Promise<Map<string, number | null>> {
  const r = await a.call<{ devices: { id: string; lastSeen: number | null }[] }>('GET', '/api/v1/devices');
  if (r.status !== 200) throw new Error(`GET /api/v1/devices: ${r.status} ${JSON.stringify(r.body)}`);
  return new Map(r.body.devices.map((d) => [d.id, d.lastSeen]));
}

/** Until every device of `devices` answered a poll after `since` (ms UTC): they keep their cycle. */
export async function polledAfter(a: Api, devices: readonly string[], since: number, timeoutMs = 5000): Promise<void> {
  await waitFor(`${devices.join(', ')} polled after ${new Date(since).toISOString()}`, async () => {
    const seen = await lastSeen(a);
    return devices.every((d) => (seen.get(d) ?? 0) > since);
  }, { timeoutMs, intervalMs: 50 });
}

export interface PollWatch {
  /** ends the sampling (waits for the sample under way) */
  stop(): Promise<void>;
  /** how many different polls of `device` were seen while the phase read `phase` */
  polls(device: string, phase: string): number;
  /** the phases seen, in order, without repeats */
  phases(): string[];
}

/**
 * Samples, every `intervalMs`, `phase()` (a job's stage, say) and the `lastSeen` of `devices`:
 * `polls(device, 'transferring')` is then how many polls of a neighbour answered while the job
 * was transferring.
 */
export function watchPolls(a: Api, devices: readonly string[], phase: () => Promise<string>, intervalMs = 50): PollWatch {
  const seen = new Map<string, Set<number>>();
  const order: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const p = await phase();
        if (order[order.length - 1] !== p) order.push(p);
        const ls = await lastSeen(a);
        for (const d of devices) {
          const t = ls.get(d);
          if (typeof t !== 'number') continue;
          const k = `${d}\0${p}`;
          const s = seen.get(k) ?? new Set<number>();
          s.add(t);
          seen.set(k, s);
        }
      } catch {
        // the API busy or restarting: the next sample
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
    polls: (device, p) => seen.get(`${device}\0${p}`)?.size ?? 0,
    phases: () => [...order],
  };
}

export interface FirmwareState {
  blocksReceived: number;
  commits: number;
  reboots: number;
  mode: string;
  version: number;
}

/** What the firmware of each simulated unit received so far, by `bus/unit`. */
export function firmwareState(sims: ModbusSimulators, units: readonly { bus: string; unit: number }[]): Map<string, FirmwareState> {
  return new Map(
    units.map(({ bus, unit }) => {
      const f = sims.firmware(bus, unit);
      return [`${bus}/${unit}`, { blocksReceived: f.blocksReceived, commits: f.commits, reboots: f.reboots, mode: f.mode, version: f.version }];
    }),
  );
}

/** When the running test fails, the tail of what the gateway process wrote goes to stderr. */
export function dumpOnFailure(gw: () => GatewayProcess, chars = 8000): void {
  onTestFailed(() => void process.stderr.write(`--- gateway output (tail) ---\n${gw().output().slice(-chars)}\n`));
}
