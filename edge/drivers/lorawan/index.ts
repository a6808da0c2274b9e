/**
 * The LoRaWAN driver as the rest of the gateway sees it: main.ts creates it with
 * createLorawanDriver(ctx); the control plane calls enqueueDownlink; FUOTA enqueueApp,
 * onAppUplink, sendMulticast; the API reads status() and metrics().
 */
import type { GatewayContext } from '../../component.js';
import type { LorawanDriver, LorawanDriverOptions } from './api.js';
import { LorawanNetworkServer } from './driver.js';

export type {
  AppDownlink,
  AppUplink,
  DownlinkCommand,
  DownlinkOutcome,
  LorawanDriver,
  LorawanDriverOptions,
  LorawanStatus,
  MacOutcome,
  MulticastOutcome,
  MulticastSession,
  QueuedDownlink,
  RadioFacts,
} from './api.js';
export { LorawanMetrics, type LorawanMetricsSnapshot } from './metrics.js';
export type { GatewayBackend, GatewayBackendHandlers, ForwarderInfo, UplinkRx } from './semtech/backend.js';

export function createLorawanDriver(ctx: GatewayContext, opts: LorawanDriverOptions = {}): LorawanDriver {
  return new LorawanNetworkServer(ctx, opts);
}
