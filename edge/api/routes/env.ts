/** What every route file gets: the gateway context, the API's deps and its own state. */
import type { Principal } from '../../control/roles.js';
import type { GatewayContext } from '../../component.js';
import type { CommandService } from '../../control/api.js';
import type { ConfigService } from '../../reconfig/types.js';
import type { FirmwareService } from '../../firmware/types.js';
import type { MetricSample } from '../metricsText.js';
import type { ApiMetrics } from '../metrics.js';

/** The live feed's limits (edge/api/routes/live.ts; LIVE_LIMITS there are the defaults). */
export interface LiveLimits {
  /** readers at once; one more is answered 503 */
  maxReaders: number;
  /** a reader whose socket stays backed up this long (ms) is disconnected */
  stallMs: number;
  /** the size (characters of JSON) a page of values is cut at: a snapshot's and a catching-up reader's */
  pageBytes: number;
}

export interface ApiDeps {
  commands: CommandService;
  /** the gateway's status (main.ts `gateway.status()`) */
  status: () => unknown;
  /** per-device rows from the drivers (`{ id, online, lastSeen, failures, … }`) */
  devices?: () => unknown[];
  /** other components' figures for /metrics (broker, sync lag, LoRa rx/tx/rejected) */
  metrics?: () => MetricSample[];
  /** the live feed's limits, where not the defaults (LIVE_LIMITS) */
  live?: Partial<LiveLimits>;
  /** the configuration service (edge/reconfig): with it, the /api/v1/config routes (routes/config.ts) */
  config?: ConfigService;
  /** the firmware service (edge/firmware): with it, the /api/v1/deployments and /api/v1/artifacts routes (routes/deployments.ts) */
  firmware?: FirmwareService;
}

export interface RouteEnv {
  ctx: GatewayContext;
  deps: ApiDeps;
  metrics: ApiMetrics;
  /** online/offline per device from comms.lost / comms.restored since start */
  availability: Map<string, { online: boolean; since: number }>;
  /**
   * Told when api.tokens is replaced (a configuration change): `still(p)` says whether a
   * principal's token is still there with its role. What holds a principal open (the live feed)
   * lets go of those that are not.
   */
  tokenWatchers: ((still: (p: Principal) => boolean) => void)[];
}

/** A driver's row for a device, if it reports one. */
export function driverRow(env: RouteEnv, id: string): Record<string, unknown> | undefined {
  for (const d of safeDevices(env)) {
    if (d !== null && typeof d === 'object' && (d as { id?: unknown }).id === id) return d as Record<string, unknown>;
  }
  return undefined;
}

export function safeDevices(env: RouteEnv): unknown[] {
  try {
    return env.deps.devices?.() ?? [];
  } catch (err) {
    env.ctx.log.warn({ err }, 'devices() of a driver failed');
    return [];
  }
}
