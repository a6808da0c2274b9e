/**
 * The gateway context the broker and API tests share: a real store in a temp dir, the batched
 * writer, the bus; a config with one lighting controller, one traffic controller and a group.
 */
import type { ConfigInput } from '../../../edge/config/schema.js';
import { makeContext, type TestContext } from '../../helpers/context.js';

export const GW = 'gw-test';

export const DEVICES = {
  buses: [{ id: 'tcp-1', type: 'tcp' as const, host: '127.0.0.1', port: 1 }],
  devices: [
    { id: 'lamp-1', bus: 'tcp-1', unit: 1, profile: 'streetlight-controller', groups: ['street-a'] },
    { id: 'lamp-2', bus: 'tcp-1', unit: 2, profile: 'streetlight-controller', groups: ['street-a'] },
    { id: 'tlc-1', bus: 'tcp-1', unit: 3, profile: 'traffic-controller', allowCommands: true },
  ],
  groups: [{ id: 'street-a' }],
};

export const KNOWN = { devices: { 'lamp-1': 'lighting', 'lamp-2': 'lighting', 'tlc-1': 'traffic' } as Record<string, 'lighting' | 'traffic'>, groups: ['street-a'] };

export function gatewayContext(extra: Omit<ConfigInput, 'gateway'>): TestContext {
  return makeContext({ gateway: { id: GW }, ...DEVICES, ...extra }, { flushIntervalMs: 10 });
}
