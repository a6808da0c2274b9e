/**
 * The role matrix of the HTTP API: every role (and no token, and a wrong token) against every
 * endpoint, written out as a table: 200/202 when the role may, 403 when it may not, 401 without
 * a valid token. Commands are decided by the command pipeline, here the small in-test
 * CommandService of support/commands.ts (the real pipeline: tests/broker/e2e.test.ts), which refuses
 * by role like the real one; a refused command is still recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLE_LIST, type Role } from '../../edge/control/roles.js';
import { startApi, type Api } from './support/http.js';

let a: Api;
let commandId = '';

beforeAll(async () => {
  a = await startApi();
  commandId = a.t.store.createCommand({ source: { role: 'technician', principal: 'x' }, target: { kind: 'device', id: 'lamp-1' }, action: 'on' }).id;
  a.t.ctx.ingest.push({ ts: 1, device: 'lamp-1', point: 'level', value: 1 });
  a.t.ctx.ingest.flush();
});
afterAll(async () => a?.close());

type Who = Role | 'none' | 'bad';
interface Row {
  method: 'GET' | 'POST';
  path: () => string;
  body?: unknown;
  /** letters of the roles that may: T technician, M maintenance, C central, V viewer; '*' = public */
  may: string;
  ok: number;
}

const MATRIX: Row[] = [
  { method: 'GET', path: () => '/api/v1/health', may: '*', ok: 200 },
  { method: 'GET', path: () => '/', may: '*', ok: 200 },
  { method: 'GET', path: () => '/api/v1/status', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/api/v1/devices', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/api/v1/devices/lamp-1', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/api/v1/history?device=lamp-1', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/api/v1/commands?limit=5', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => `/api/v1/commands/${commandId}`, may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/metrics', may: 'TMCV', ok: 200 },
  { method: 'GET', path: () => '/api/v1/readings?after=0&limit=10', may: 'TC', ok: 200 },
  { method: 'GET', path: () => '/api/v1/events?after=0', may: 'TC', ok: 200 },
  { method: 'GET', path: () => '/api/v1/consumers', may: 'TC', ok: 200 },
  { method: 'POST', path: () => '/api/v1/consumers/city-pull/ack', body: { seq: 0 }, may: 'TC', ok: 200 },
  { method: 'POST', path: () => '/api/v1/devices/lamp-1/commands', body: { action: 'dim', level: 40 }, may: 'TMC', ok: 202 },
  { method: 'POST', path: () => '/api/v1/groups/street-a/commands', body: { action: 'on' }, may: 'TMC', ok: 202 },
  { method: 'POST', path: () => '/api/v1/devices/tlc-1/commands', body: { action: 'program', program: 2, expiresInS: 60 }, may: 'TC', ok: 202 },
];

const LETTER: Record<Role, string> = { technician: 'T', maintenance: 'M', central: 'C', viewer: 'V' };
const WHO: Who[] = [...ROLE_LIST, 'none', 'bad'];

describe('role matrix', () => {
  for (const row of MATRIX) {
    it(`${row.method} ${row.path().replace(/[0-9a-f-]{36}/, ':id')}`, async () => {
      const got: Record<string, number> = {};
      const want: Record<string, number> = {};
      for (const who of WHO) {
        const token = who === 'none' ? null : who === 'bad' ? 'not-a-valid-token-000000' : undefined;
        const role = who === 'none' || who === 'bad' ? undefined : who;
        const r = await a.call(row.method, row.path(), { ...(token !== undefined ? { token } : {}), ...(role ? { role } : {}), ...(row.body !== undefined ? { body: row.body } : {}) });
        got[who] = r.status;
        want[who] = row.may === '*' ? row.ok : role === undefined ? 401 : row.may.includes(LETTER[role]) ? row.ok : 403;
        if (r.status === 401) expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="streetbox"/);
        if (r.status === 403 || r.status === 401) expect(r.json).toMatchObject({ status: 'error', code: r.status === 401 ? 'E_UNAUTHORIZED' : expect.any(String) });
      }
      expect(got).toEqual(want);
    });
  }

  it('records a refused command with the caller, and says why', async () => {
    const r = await a.call('POST', '/api/v1/devices/tlc-1/commands', { role: 'maintenance', body: { action: 'program', program: 1, transaction: 'm-1' } });
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ status: 'error', code: 'E_FORBIDDEN', transaction: 'm-1', error: expect.stringContaining('maintenance') });
    const row = a.t.store.getCommand(r.json.id as string)!;
    expect(row).toMatchObject({ status: 'rejected', source: { role: 'maintenance', principal: 'maintenance-token' } });
  });

  it('a wrong token gets error="invalid_token" in the challenge; no token does not', async () => {
    expect((await a.call('GET', '/api/v1/status', { token: 'x'.repeat(30) })).headers.get('www-authenticate')).toBe('Bearer realm="streetbox", error="invalid_token"');
    expect((await a.call('GET', '/api/v1/status', { token: null })).headers.get('www-authenticate')).toBe('Bearer realm="streetbox"');
    expect((await a.call('GET', '/api/v1/status', { token: null, headers: { Authorization: 'Basic dXNlcjpwYXNz' } })).status).toBe(401);
  });
});
