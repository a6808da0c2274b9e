/**
 * Every endpoint of the HTTP API with a real store and real sockets: what each answers, the
 * 400s naming the field, 404/405/413, security headers, the status page, a mounted handler
 * (as Node-RED will be), and that no token reaches the log. The command pipeline is the small
 * in-test CommandService of support/commands.ts, so the test sees exactly what the door
 * handed over; tests/broker/e2e.test.ts runs the same doors on the real pipeline (createControl).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GW } from './support/context.js';
import { TOKENS, startApi, type Api } from './support/http.js';
import { loggerToLines } from '../helpers/logLines.js';

let a: Api;
const logLines: string[] = [];

beforeAll(async () => {
  // the API's logger writes here (debug: every request is logged)
  const log = loggerToLines(logLines);
  a = await startApi({}, { devices: () => [{ id: 'lamp-1', online: true, lastSeen: 1_700_000_000_500, failures: 2 }] }, log);
  await a.api.stop();
  await a.api.start(); // restartable, on a new free port
  a.t.ctx.ingest.pushMany([
    { ts: 1_700_000_000_000, device: 'lamp-1', point: 'level', value: 40, unit: '%' },
    { ts: 1_700_000_000_100, device: 'lamp-2', point: 'level', value: 70, unit: '%' },
    { ts: 1_700_000_000_200, device: 'lamp-1', point: 'power', value: 61.5, unit: 'W' },
  ]);
  a.t.ctx.ingest.flush();
  a.t.store.appendEvent({ device: 'lamp-2', kind: 'comms.lost', severity: 'warning', detail: { bus: 'tcp-1', unit: 2, error: 'timeout' } });
});
afterAll(async () => a?.close());

describe('endpoints', () => {
  it('GET /api/v1/health answers {status: ok} and nothing else, without a token', async () => {
    const r = await a.call('GET', '/api/v1/health');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: 'ok' });
  });

  it('GET /api/v1/status has the gateway, its components, the store and the devices', async () => {
    const r = await a.call('GET', '/api/v1/status', { role: 'viewer' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ gateway: GW, components: [{ name: 'api', state: 'running' }], store: { readings: 3, events: 1 }, devices: [{ id: 'lamp-1', online: true }] });
  });

  it('GET /api/v1/devices lists the configured devices with availability', async () => {
    const r = await a.call('GET', '/api/v1/devices', { role: 'viewer' });
    expect(r.status).toBe(200);
    const byId = Object.fromEntries((r.json.devices as { id: string }[]).map((d) => [d.id, d]));
    expect(Object.keys(byId)).toEqual(['lamp-1', 'lamp-2', 'tlc-1']);
    expect(byId['lamp-1']).toMatchObject({ profile: 'streetlight-controller', groups: ['street-a'], online: true, lastSeen: 1_700_000_000_500, transport: 'modbus', bus: 'tcp-1', unit: 1 });
    expect(byId['lamp-2']).toMatchObject({ online: false, lastSeen: 1_700_000_000_100 }); // from comms.lost and its last value
    expect(byId['tlc-1']).toMatchObject({ online: null, lastSeen: null, allowCommands: true });
  });

  it('GET /api/v1/devices/:id has config, latest values and availability; 404 for an unknown one', async () => {
    const r = await a.call('GET', '/api/v1/devices/lamp-1', { role: 'viewer' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      id: 'lamp-1',
      config: { id: 'lamp-1', bus: 'tcp-1', unit: 1, profile: 'streetlight-controller' },
      online: true,
      values: { level: { value: 40, unit: '%', quality: 'good', ts: 1_700_000_000_000 }, power: { value: 61.5, unit: 'W' } },
      driver: { failures: 2 },
    });
    const missing = await a.call('GET', '/api/v1/devices/lamp-9', { role: 'viewer' });
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ status: 'error', code: 'E_NOT_FOUND', error: 'no device lamp-9' });
    expect((await a.call('GET', '/api/v1/devices/bad%20id', { role: 'viewer' })).json.error).toMatch(/^id: /);
  });

  it('GET /api/v1/readings and /events page by seq', async () => {
    const r = await a.call('GET', '/api/v1/readings?after=0&limit=2', { role: 'central' });
    expect(r.status).toBe(200);
    expect(r.json.readings.map((x: { value: number }) => x.value)).toEqual([40, 70]);
    const next = await a.call('GET', `/api/v1/readings?after=${r.json.next}&limit=2`, { role: 'central' });
    expect(next.json.readings.map((x: { value: number }) => x.value)).toEqual([61.5]);
    const lamp2 = await a.call('GET', '/api/v1/readings?device=lamp-2', { role: 'central' });
    expect(lamp2.json.readings).toHaveLength(1);
    const ev = await a.call('GET', '/api/v1/events?after=0&kind=comms.lost', { role: 'central' });
    expect(ev.json.events).toMatchObject([{ kind: 'comms.lost', device: 'lamp-2' }]);
    expect(ev.json.next).toBe(ev.json.events[0].seq);
  });

  it('POST a command answers 202 {id, status}; GET /api/v1/commands/:id and the list follow it', async () => {
    const r = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'maintenance', body: { action: 'dim', level: 30, transaction: 'abc' } });
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ id: expect.any(String), status: 'queued', transaction: 'abc' });
    expect(r.headers.get('location')).toBe(`/api/v1/commands/${r.json.id}`);
    const call = a.commands.calls.at(-1)!;
    expect(call).toMatchObject({ target: { kind: 'device', id: 'lamp-1' }, who: { role: 'maintenance', principal: 'maintenance-token' }, body: { action: 'dim', level: 30, transaction: 'abc' } });
    a.commands.finish(r.json.id, 'verified', { level: 30 });
    const got = await a.call('GET', `/api/v1/commands/${r.json.id}`, { role: 'viewer' });
    expect(got.json).toMatchObject({ id: r.json.id, status: 'verified', result: { level: 30 } });
    const g = await a.call('POST', '/api/v1/groups/street-a/commands', { role: 'central', body: { action: 'off' } });
    expect(g.status).toBe(202);
    expect(a.commands.calls.at(-1)!.target).toEqual({ kind: 'group', id: 'street-a' });
    const list = await a.call('GET', '/api/v1/commands?limit=10', { role: 'viewer' });
    expect(list.json.commands.map((c: { id: string }) => c.id)).toEqual(expect.arrayContaining([r.json.id, g.json.id]));
    const verified = await a.call('GET', '/api/v1/commands?status=verified', { role: 'viewer' });
    expect(verified.json.commands.every((c: { status: string }) => c.status === 'verified')).toBe(true);
    expect((await a.call('GET', '/api/v1/commands/00000000-0000-0000-0000-000000000000', { role: 'viewer' })).status).toBe(404);
  });

  it('maps rejected commands: 400 bad input (malformed JSON recorded too), 404 unknown target, 403 forbidden', async () => {
    const level = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', body: { action: 'dim', level: 150, transaction: 't-150' } });
    expect(level.status).toBe(400);
    expect(level.json).toMatchObject({ status: 'error', code: 'E_INVALID_COMMAND', error: expect.stringContaining('level'), transaction: 't-150', id: expect.any(String) });
    const bad = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', raw: '{"action": "on",' });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ status: 'error', code: 'E_INVALID_COMMAND', error: expect.stringMatching(/^body: malformed JSON/), transaction: null });
    expect(a.t.store.getCommand(bad.json.id)?.status).toBe('rejected');
    expect(a.commands.calls.at(-1)!.body).toBe('{"action": "on",');
    const unknown = await a.call('POST', '/api/v1/groups/nowhere/commands', { role: 'technician', body: { action: 'on' } });
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('E_NOT_FOUND');
    const viewer = await a.call('POST', '/api/v1/groups/street-a/commands', { role: 'viewer', body: { action: 'on' } });
    expect(viewer.status).toBe(403);
  });

  it('GET / serves the status page: data only with a token that may read', async () => {
    const shell = await a.call('GET', '/');
    expect(shell.status).toBe(200);
    expect(shell.headers.get('content-type')).toMatch(/^text\/html/);
    expect(shell.text).toContain('<script src="/status.js"></script>');
    expect(shell.text).not.toContain('lamp-1');
    expect(shell.text).not.toMatch(/https?:\/\//); // no CDN
    const page = await a.call('GET', '/', { role: 'viewer' });
    expect(page.text).toContain(GW);
    for (const d of ['lamp-1', 'lamp-2', 'tlc-1']) expect(page.text).toContain(d);
    expect(page.text).toContain('<span class="on">online</span>');
    const js = await a.call('GET', '/status.js');
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.text).toContain("fetch(path");
  });
});

describe('input validation', () => {
  const cases: [string, string, string | RegExp][] = [
    ['/api/v1/readings?after=-1', 'after', /after: expected an integer 0\.\./],
    ['/api/v1/readings?after=abc', 'after', 'after'],
    ['/api/v1/readings?after=1.5', 'after', 'after'],
    ['/api/v1/readings?limit=0', 'limit', 'limit: expected an integer 1..10000, got "0"'],
    ['/api/v1/readings?limit=10001', 'limit', 'limit: expected an integer 1..10000, got "10001"'],
    ['/api/v1/events?limit=', 'limit', 'limit'],
    ['/api/v1/readings?device=a/b', 'device', 'device'],
    ['/api/v1/readings?foo=1', 'foo', 'foo: unknown query parameter'],
    ['/api/v1/readings?limit=1&limit=2', 'limit', 'limit: given more than once'],
    ['/api/v1/commands?status=done', 'status', 'status: expected one of'],
  ];
  for (const [path, field, msg] of cases) {
    it(`400 naming ${field}: ${path}`, async () => {
      const r = await a.call('GET', path, { role: 'technician' });
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ status: 'error', code: 'E_USAGE' });
      if (typeof msg === 'string') expect(r.json.error.startsWith(msg) || r.json.error.startsWith(`${field}:`)).toBe(true);
      else expect(r.json.error).toMatch(msg);
      expect(r.json.error.startsWith(`${field}: `)).toBe(true);
    });
  }

  it('400 for a malformed or wrong ack body, naming the field', async () => {
    const ack = (raw: string): Promise<{ status: number; json: { error: string } }> => a.call('POST', '/api/v1/consumers/c-val/ack', { role: 'central', raw });
    expect((await ack('{"seq": ')).json.error).toMatch(/^body: malformed JSON/);
    expect((await ack('[1]')).json.error).toBe('body: expected a JSON object');
    expect((await ack('{"seq": -1}')).json.error).toMatch(/^seq: expected an integer >= 0/);
    expect((await ack('{"seq": "3"}')).json.error).toMatch(/^seq: /);
    expect((await ack('{}')).json.error).toMatch(/^seq: expected an integer >= 0, got nothing/);
    expect((await ack('{"seq": 99999}')).json.error).toMatch(/^seq: 99999 is past the last seq/);
    expect((await ack('{"seq": 1, "x": 2}')).json.error).toMatch(/^x: unknown field/);
    expect((await ack('{"seq": 1}')).status).toBe(200);
    expect((await a.call('POST', '/api/v1/consumers/upstream/ack', { role: 'technician', body: { seq: 1 } })).status).toBe(403);
  });

  it('413 for a body over 64 KiB, 404 for an unknown path, 405 with Allow for a wrong method', async () => {
    const calls = a.commands.calls.length;
    const big = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', raw: JSON.stringify({ action: 'on', pad: 'x'.repeat(70_000) }) });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ status: 'error', error: 'body: larger than 65536 bytes' });
    expect(a.commands.calls.length).toBe(calls); // nothing submitted
    expect((await a.call('GET', '/api/v1/nothing', { role: 'technician' })).status).toBe(404);
    const wrong = await a.call('DELETE', '/api/v1/devices', { role: 'technician' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
  });
});

describe('hygiene', () => {
  it('sends no-store and nosniff on API answers', async () => {
    for (const [path, role] of [['/api/v1/health', undefined], ['/api/v1/status', 'viewer'], ['/api/v1/nothing', undefined]] as const) {
      const r = await a.call('GET', path, role ? { role } : {});
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('hands unmatched paths under a mounted prefix to its handler (as Node-RED will be)', async () => {
    a.api.mount('/flows', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('node-red here');
    });
    expect((await a.call('GET', '/flows/editor')).text).toBe('node-red here');
    expect((await a.call('GET', '/flowsX')).status).toBe(404);
    expect(a.api.server().listening).toBe(true);
    a.api.unmount('/flows');
    expect((await a.call('GET', '/flows/editor')).status).toBe(404);
  });

  it('never logs a token', () => {
    const all = logLines.join('');
    expect(logLines.some((l) => l.includes('"msg":"http"'))).toBe(true);
    for (const tok of Object.values(TOKENS)) expect(all).not.toContain(tok);
  });
});
