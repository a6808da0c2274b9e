/**
 * The editor's admin API answers a malformed request as the client's error (400, 415), never
 * 500 "internal error" (chaos's HTTP fuzzer found bodies that did), and without a log line each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlowsRig, type FlowsRig } from './rig.js';
import { login } from './support.js';

let rig: FlowsRig;
beforeAll(async () => {
  rig = await startFlowsRig();
}, 60_000);
afterAll(async () => {
  await rig?.close();
});

describe('bad requests to the editor', () => {
  it.each([
    ['malformed JSON', 'application/json', '{"flows": [', 400],
    ['random bytes as JSON', 'application/json', Buffer.from([0xff, 0x00, 0x7b, 0x22, 0xfe]), 400],
    ['an unknown charset', 'application/json; charset=latin1', '{"flows":[]}', 415],
  ] as const)('%s: %i', async (_what, type, body, status) => {
    const token = await login(rig.base);
    for (const method of ['POST', 'PUT']) {
      const r = await fetch(`${rig.base}/flows/flows`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': type, 'Node-RED-API-Version': 'v2' }, body });
      expect(r.status, method).toBe(status);
    }
    expect(rig.logLines.filter((l) => l.includes('node-red request failed'))).toEqual([]);
  });
});
