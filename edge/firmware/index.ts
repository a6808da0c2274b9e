/** Firmware orchestration as the rest of the gateway imports it (DESIGN.md: components talk through edge/<x>/index.ts). */
import { dirname, join } from 'node:path';
import type { GatewayContext } from '../component.js';
import { requestProcessRestart } from '../restart.js';
import { ArtifactStore } from './artifacts.js';
import { FirmwareEngine } from './engine.js';
import { FirmwareJournal } from './journal.js';
import { SelfUpdater } from './selfUpdate.js';

export { FirmwareEngine, type FirmwareParts, type Health } from './engine.js';
export type { FirmwareService, DeploymentReport, DeploymentRequest, JobRecord } from './types.js';

/**
 * The engine over the gateway's store (module `firmware`), its artifacts beside the store
 * (`<dir of storage.path>/artifacts`), and the gateway's own releases when it runs from them.
 * undefined with a store that keeps no module tables (a test double).
 */
export function createFirmware(ctx: GatewayContext): FirmwareEngine | undefined {
  const log = ctx.log.child({ module: 'firmware' });
  const journal = FirmwareJournal.open(ctx.store, log);
  if (!journal) return undefined;
  const fw = ctx.config.firmware;
  const artifacts = new ArtifactStore({ dir: join(dirname(ctx.config.storage.path), 'artifacts'), maxBytes: fw.artifacts.maxBytes, log, clock: ctx.clock });
  let selfUpdate: SelfUpdater | null = null;
  if (fw.selfUpdate.releases) {
    const running = SelfUpdater.runningRelease();
    if (running) {
      selfUpdate = new SelfUpdater({ releases: fw.selfUpdate.releases, healthTimeoutMs: fw.selfUpdate.healthTimeout, log, clock: ctx.clock, runningVersion: running.version });
    } else {
      log.warn({ releases: fw.selfUpdate.releases }, 'firmware.selfUpdate.releases is set, but this process does not run from a release directory: the gateway will not update itself');
    }
  }
  return new FirmwareEngine({ ctx, journal, artifacts, selfUpdate, requestRestart: requestProcessRestart });
}
