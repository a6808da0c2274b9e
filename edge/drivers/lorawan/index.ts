/**
 * The LoRaWAN driver as the rest of the gateway sees it: main.ts creates it with
 * createLorawanDriver(ctx); the control plane calls enqueueDownlink; the API reads status()
 * and metrics().
 */
import type { GatewayContext } from '../../component.js';
import type { LorawanDriver, LorawanDriverOptions } from './api.js';
import { LorawanNetworkServer } from './driver.js';

export type { DownlinkCommand, DownlinkOutcome, LorawanDriver, LorawanDriverOptions, LorawanStatus, QueuedDownlink } from './api.js';
export { LorawanMetrics, type LorawanMetricsSnapshot } from './metrics.js';
export type { GatewayBackend, GatewayBackendHandlers, ForwarderInfo, UplinkRx } from './semtech/backend.js';

export function createLorawanDriver(ctx: GatewayContext, opts: LorawanDriverOptions = {}): LorawanDriver {
  return new LorawanNetworkServer(ctx, opts);
}
