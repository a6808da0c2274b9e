/**
 * API tokens swapped while the API runs (issue 16, ChangePlan api `tokens`), over real HTTP on
 * 127.0.0.1: the next request is checked against the new tokens (a removed or replaced token
 * 401, a new one 200, an unchanged one keeps working), on the same keep-alive connection too,
 * a live feed opened with a token that was removed is closed (a revoked token holds nothing open),
 * and one opened with a token that stays keeps streaming.
 * No token reaches the log.
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../edge/config/schema.js';
import { waitFor } from '../helpers/wait.js';
import { TOKENS, startApi, type Api } from './support/http.js';
import { loggerToLines } from '../helpers/logLines.js';

const NEW_TECH = 'tech-token-replaced-00000000001';
const ADDED = 'ops-token-added-000000000000002';

let a: Api;
const logLines: string[] = [];

beforeAll(async () => {
  const log = loggerToLines(logLines);
  a = await startApi({}, {}, log);
});
afterAll(async () => a?.close());

/** A GET on a keep-alive agent: the socket it went over, to tell whether the connection stayed. */
function get(agent: Agent, path: string, token: string): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: a.api.port(), path, agent, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket! }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The live feed, read as it comes: the SSE event names received so far. */
function openLive(token: string): Promise<{ res: IncomingMessage; events: () => string[]; close: () => void }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = request({ host: '127.0.0.1', port: a.api.port(), path: '/api/v1/live', headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('error', () => undefined);
      resolve({ res, events: () => [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]!), close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('ApiComponent.setTokens', () => {
  it('checks the next request against the new tokens, leaves open connections alone, closes the live feed of a removed token', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const live = await openLive(TOKENS.viewer);
    const kept = await openLive(TOKENS.central);
    try {
      expect(live.res.statusCode).toBe(200);
      await waitFor('the live snapshot', () => live.events().includes('snapshot') && kept.events().includes('snapshot'));

      const first = await get(agent, '/api/v1/status', TOKENS.viewer);
      expect(first.status).toBe(200);

      const tokens: Config['api']['tokens'] = [
        // viewer-token removed; technician-token's value replaced; central-token unchanged; ops added
        { name: 'technician-token', token: NEW_TECH, role: 'technician' },
        { name: 'maintenance-token', token: TOKENS.maintenance, role: 'maintenance' },
        { name: 'central-token', token: TOKENS.central, role: 'central' },
        { name: 'ops', token: ADDED, role: 'viewer' },
      ];
      a.api.setTokens(tokens);

      // the same keep-alive connection: its next request is checked against the new tokens
      const after = await get(agent, '/api/v1/status', TOKENS.viewer);
      expect(after.status).toBe(401);
      expect(after.socket).toBe(first.socket);

      expect((await a.call('GET', '/api/v1/status', { token: TOKENS.viewer })).status).toBe(401);
      expect((await a.call('GET', '/api/v1/status', { token: TOKENS.technician })).status).toBe(401);
      expect((await a.call('GET', '/api/v1/status', { token: NEW_TECH })).status).toBe(200);
      expect((await a.call('GET', '/api/v1/status', { token: TOKENS.central })).status).toBe(200);
      expect((await a.call('GET', '/api/v1/status', { token: ADDED })).status).toBe(200);
      // the new token has the role it was given: a viewer may not pull, a central may
      expect((await a.call('GET', '/api/v1/readings', { token: ADDED })).status).toBe(403);
      expect((await a.call('GET', '/api/v1/readings', { token: TOKENS.central })).status).toBe(200);

      // the feed opened with the removed token is closed; the one of a token that stays streams on
      await waitFor('the removed token\'s live feed closed', () => live.res.destroyed || live.res.complete);
      const seen = kept.events().length;
      await waitFor('a live update after the swap', () => kept.events().length > seen, 10_000);
      expect(kept.res.destroyed).toBe(false);

      // names are logged, tokens never
      expect(logLines.some((l) => l.includes('api tokens replaced'))).toBe(true);
      const all = logLines.join('');
      for (const tk of [...Object.values(TOKENS), NEW_TECH, ADDED]) expect(all).not.toContain(tk);
    } finally {
      live.close();
      kept.close();
      agent.destroy();
    }
  });

  it('takes an empty list: every request needing a token is 401, public ones still answer', async () => {
    a.api.setTokens([]);
    expect((await a.call('GET', '/api/v1/status', { token: TOKENS.central })).status).toBe(401);
    expect((await a.call('GET', '/api/v1/health')).status).toBe(200);
    a.api.setTokens([{ name: 'central-token', token: TOKENS.central, role: 'central' }]);
    expect((await a.call('GET', '/api/v1/status', { token: TOKENS.central })).status).toBe(200);
  });
});
