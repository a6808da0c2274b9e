/** The upstream topics of DESIGN.md "Upstream", under `streetbox/<gatewayId>/`. */
import type { BatchKind } from './payload.js';

export const TOPIC_ROOT = 'streetbox';

export interface GatewayTopics {
  /** `online` / `offline`, retained; `offline` is the last will */
  status: string;
  up(kind: BatchKind): string;
  /** latest values of one device, retained */
  deviceState(device: string): string;
  /** `online` / `offline` of one device, retained (from comms.lost / comms.restored) */
  deviceAvailability(device: string): string;
  /** where a device takes commands upstream (Home Assistant, `sync.homeAssistant`) */
  deviceSet(device: string): string;
  /** the filter of every device's set topic */
  deviceSets: string;
  /** commands from central */
  commandsDown: string;
  /** the outcome of one command from central */
  commandOutcome(id: string): string;
  /** configuration changes from central (edge/reconfig, cloud-sync/configDoor.ts) */
  configDown: string;
  /** the stage reports of one configuration change, retained: the latest stage stays */
  configReport(id: string): string;
  /** firmware deployments from central: an envelope, or `{ action, id }` (edge/firmware, cloud-sync/deploymentDoor.ts) */
  deploymentsDown: string;
  /** the filter of the chunks of artifacts sent over MQTT: `down/artifacts/<sha256>/<index>` */
  artifactChunks: string;
  /** the latest report of one deployment, retained */
  deploymentReport(id: string): string;
}

export function gatewayTopics(gateway: string): GatewayTopics {
  const base = `${TOPIC_ROOT}/${gateway}`;
  return {
    status: `${base}/status`,
    up: (kind) => `${base}/up/${kind}`,
    deviceState: (device) => `${base}/devices/${device}/state`,
    deviceAvailability: (device) => `${base}/devices/${device}/availability`,
    deviceSet: (device) => `${base}/devices/${device}/set`,
    deviceSets: `${base}/devices/+/set`,
    commandsDown: `${base}/down/commands`,
    commandOutcome: (id) => `${base}/commands/${id}`,
    configDown: `${base}/down/config`,
    configReport: (id) => `${base}/up/config/${id}`,
    deploymentsDown: `${base}/down/deployments`,
    artifactChunks: `${base}/down/artifacts/+/+`,
    deploymentReport: (id) => `${base}/up/deployments/${id}`,
  };
}

/**
 * `streetbox/<gw>/down/artifacts/<sha256>/<index>` of gateway `gw` → its levels after
 * `down/artifacts/` as sent (the door checks them), or null for any other topic.
 */
export function artifactChunkLevels(gateway: string, topic: string): string[] | null {
  const prefix = `${TOPIC_ROOT}/${gateway}/down/artifacts/`;
  return topic.startsWith(prefix) ? topic.slice(prefix.length).split('/') : null;
}

/** `streetbox/<gw>/devices/<id>/set` of gateway `gw` → the device id as sent (the door checks it), or null. */
export function deviceSetLevel(gateway: string, topic: string): string | null {
  const prefix = `${TOPIC_ROOT}/${gateway}/devices/`;
  if (!topic.startsWith(prefix) || !topic.endsWith('/set')) return null;
  const id = topic.slice(prefix.length, -'/set'.length);
  return id.length > 0 && !id.includes('/') ? id : null;
}

/** `streetbox/<gw>/up/<kind>` → { gateway, kind }, or null for any other topic. */
export function parseUpTopic(topic: string): { gateway: string; kind: BatchKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== TOPIC_ROOT || parts[2] !== 'up') return null;
  const kind = parts[3];
  if (kind !== 'readings' && kind !== 'events') return null;
  return { gateway: parts[1] as string, kind };
}
