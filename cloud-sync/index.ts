/** Upstream sync as the rest of the gateway imports it (edge/main.ts, edge/cli.ts). */
export { createSyncComponent, UPSTREAM_CONSUMER, type SyncComponent, type SyncOptions, type SyncStatus } from './sync.js';
export type { CentralCommand, CommandHandler, CommandOutcome } from './commands.js';
export { runReceiver, type ReceiverOptions, type ReceiverReport, type OutputLine } from './receiver.js';
export { decodePayload, type Batch, type BatchKind, type CompressedBatch, type WireItem } from './payload.js';
export { gatewayTopics, type GatewayTopics } from './topics.js';
export { SyncError, type SyncFailure } from './errors.js';
