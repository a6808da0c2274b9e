/**
 * The configuration routes (edge/api/routes/config.ts) over real HTTP: who may use each, what the
 * door hands to the configuration service from YAML and JSON bodies, query and body options, the
 * 1 MiB body limit, and the HTTP status of each stage report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigChangeRequest, ConfigRefusalCode, ConfigService, ConfigSource, ConfigStageReport, ConfigSubmitted, ConfigVersion, OutboxPort } from '../../edge/reconfig/types.js';
import { MAX_CONFIG_BODY_BYTES } from '../../edge/api/routes/config.js';
import { waitFor } from '../helpers/wait.js';
import { accessByCaller, startApi, type Api, type RouteAccess } from './support/http.js';

/**
 * Stands in for the configuration manager (edge/reconfig/manager.ts), whose real road (validate,
 * record, apply, probe, confirm or roll back) the integration tests cover: it records every call
 * and answers with canned reports and versions, so the test sees exactly what the door handed
 * over and how it maps each answer.
 */
class FakeConfigService implements ConfigService {
  readonly submits: ConfigChangeRequest[] = [];
  readonly rollbacks: { v: number; principal: string; source: ConfigSource }[] = [];
  readonly confirms: string[] = [];
  readonly versionQueries: ({ limit?: number; before?: number } | undefined)[] = [];
  /** what the next submit or rollback answers: by default staged, then confirmed */
  answer: (id: string) => { first: ConfigStageReport; settled: Promise<ConfigStageReport> } = (id) => ({
    first: report(id, 'staged'),
    settled: Promise.resolve(report(id, 'confirmed', { components: ['control schedules'] })),
  });
  awaiting: { version: number; confirmBy: number } | null = null;
  readonly rows: ConfigVersion[] = [row(1, 'change-1', 'confirmed'), row(2, 'change-2', 'rejected')];

  submit(req: ConfigChangeRequest): ConfigSubmitted {
    this.submits.push(req);
    return this.submitted(`http-${this.submits.length}`);
  }
  submitCentral(): ConfigSubmitted {
    throw new Error('not used by the API');
  }
  reloadFromFile(): ConfigSubmitted {
    throw new Error('not used by the API');
  }
  confirm(principal: string): { ok: true; report: ConfigStageReport } | { ok: false; reason: string } {
    this.confirms.push(principal);
    if (!this.awaiting) return { ok: false, reason: 'no version awaits a confirm' };
    return { ok: true, report: report('change-3', 'confirmed') };
  }
  rollbackTo(v: number, principal: string, source: ConfigSource): ConfigSubmitted {
    this.rollbacks.push({ v, principal, source });
    return this.submitted(`rollback-${this.rollbacks.length}`);
  }
  running(): ConfigVersion | undefined {
    return this.rows[0];
  }
  versions(q?: { limit?: number; before?: number }): ConfigVersion[] {
    this.versionQueries.push(q);
    return [...this.rows].reverse();
  }
  version(v: number): ConfigVersion | undefined {
    return this.rows.find((r) => r.version === v);
  }
  change(id: string): ConfigVersion | undefined {
    return this.rows.find((r) => r.id === id);
  }
  content(v: number): string | undefined {
    return v === 1 ? 'gateway: { id: gw-test }\napi: { tokens: [{ name: t, token: "***", role: technician }] }\n' : undefined;
  }
  diff(a: number, b: number): string | undefined {
    return a === 1 && b === 1 ? '' : undefined;
  }
  awaitingConfirm(): { version: number; confirmBy: number } | null {
    return this.awaiting;
  }
  outbox(): OutboxPort {
    throw new Error('not used by the API');
  }

  private submitted(id: string): ConfigSubmitted {
    const { first, settled } = this.answer(id);
    return { id, first, settled, outcome: settled };
  }
}

function report(id: string, stage: ConfigStageReport['stage'], extra: Partial<ConfigStageReport> = {}): ConfigStageReport {
  return { id, version: 3, stage, at: 1_700_000_000_000, source: 'technician', principal: 'technician-token', runningVersion: stage === 'rejected' ? 1 : 3, ...extra };
}

function row(version: number, id: string, stage: ConfigVersion['stage']): ConfigVersion {
  return {
    version,
    id,
    sha256: 'ab'.repeat(32),
    bytes: 40,
    source: 'file',
    principal: 'file',
    at: 1_700_000_000_000 + version,
    baseVersion: null,
    stage,
    reason: stage === 'rejected' ? 'devices[0].bus: unknown bus' : null,
    errors: [],
    components: [],
    appliedAt: null,
    confirmedAt: null,
    endedAt: null,
    rollbackOf: null,
    running: version === 1,
  };
}

const YAML = 'gateway: { id: gw-test }\n# a comment: kept as sent\n';

let a: Api;
let bare: Api;
let fake: FakeConfigService;

beforeAll(async () => {
  fake = new FakeConfigService();
  a = await startApi({}, { config: fake });
  bare = await startApi();
});
afterAll(async () => {
  await a?.close();
  await bare?.close();
});

function resetAnswer(): void {
  fake.answer = (id) => ({ first: report(id, 'staged'), settled: Promise.resolve(report(id, 'confirmed')) });
}

describe('who may', () => {
  // letters of the roles that may: T technician, M maintenance, C central, V viewer
  const ROUTES: RouteAccess[] = [
    { method: 'PUT', path: '/api/v1/config', body: { content: YAML }, may: 'T', ok: 200 },
    { method: 'GET', path: '/api/v1/config/versions', may: 'TC', ok: 200 },
    { method: 'GET', path: '/api/v1/config/versions/1', may: 'TC', ok: 200 },
    { method: 'GET', path: '/api/v1/config/diff?a=1&b=1', may: 'TC', ok: 200 },
    { method: 'GET', path: '/api/v1/config/changes/change-1', may: 'TC', ok: 200 },
    { method: 'POST', path: '/api/v1/config/confirm', body: {}, may: 'T', ok: 409 },
    { method: 'POST', path: '/api/v1/config/rollback', body: { version: 1 }, may: 'T', ok: 200 },
  ];

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: ${route.may}, 401 without a token`, async () => {
      const { got, want } = await accessByCaller(a, route);
      expect(got).toEqual(want);
    });
  }

  it('a refused caller hands nothing to the service', async () => {
    const before = fake.submits.length;
    for (const role of ['maintenance', 'central', 'viewer'] as const) {
      const r = await a.send('PUT', '/api/v1/config', { role, body: YAML, type: 'application/yaml' });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ status: 'error', code: 'E_FORBIDDEN', error: `role ${role} may not admin` });
    }
    expect((await a.send('PUT', '/api/v1/config', { body: YAML })).status).toBe(401);
    expect(fake.submits.length).toBe(before);
  });

  it('without a configuration service the routes do not exist', async () => {
    expect((await bare.call('GET', '/api/v1/config/versions', { role: 'technician' })).status).toBe(404);
    expect((await bare.call('PUT', '/api/v1/config', { role: 'technician', body: { content: YAML } })).status).toBe(404);
    expect(bare.api.routes().some((r) => r.pattern.startsWith('/api/v1/config'))).toBe(false);
  });
});

describe('PUT /api/v1/config', () => {
  it('takes the YAML text as sent, for each YAML content type and for none, with the token name as principal', async () => {
    resetAnswer();
    for (const type of ['application/yaml', 'text/yaml', 'text/plain; charset=utf-8', undefined]) {
      const r = await a.send('PUT', '/api/v1/config', { role: 'technician', body: YAML, ...(type !== undefined ? { type } : {}) });
      expect(r.status, String(type)).toBe(200);
      const id = `http-${fake.submits.length}`;
      expect(r.json).toEqual(report(id, 'confirmed'));
      expect(r.headers.get('location')).toBe(`/api/v1/config/changes/${id}`);
      expect(fake.submits.at(-1)).toEqual({ source: 'technician', principal: 'technician-token', content: YAML });
    }
  });

  it('takes JSON { content, baseVersion, force, confirmWithin } and the same options in the query', async () => {
    resetAnswer();
    let r = await a.call('PUT', '/api/v1/config', { role: 'technician', body: { content: YAML, baseVersion: 4, force: true, confirmWithin: '5m' } });
    expect(r.status).toBe(200);
    expect(fake.submits.at(-1)).toEqual({ source: 'technician', principal: 'technician-token', content: YAML, baseVersion: 4, force: true, confirmWithinMs: 300_000 });

    r = await a.call('PUT', '/api/v1/config', { role: 'technician', body: { content: YAML, baseVersion: null, confirmWithinMs: 90_000, wait: true } });
    expect(r.status).toBe(200);
    expect(fake.submits.at(-1)).toMatchObject({ baseVersion: null, confirmWithinMs: 90_000 });

    r = await a.send('PUT', '/api/v1/config?base=7&force&confirmWithin=30s', { role: 'technician', body: YAML, type: 'application/yaml' });
    expect(r.status).toBe(200);
    expect(fake.submits.at(-1)).toEqual({ source: 'technician', principal: 'technician-token', content: YAML, baseVersion: 7, force: true, confirmWithinMs: 30_000 });

    r = await a.send('PUT', '/api/v1/config?force=false', { role: 'technician', body: YAML });
    expect(fake.submits.at(-1)?.force).toBe(false);
  });

  it('wait=staged answers the first report at once; by default the answer waits for the change to settle', async () => {
    // a change that never settles: wait=staged must not wait for it
    fake.answer = (id) => ({ first: report(id, 'staged'), settled: new Promise<ConfigStageReport>(() => undefined) });
    const staged = await a.send('PUT', '/api/v1/config?wait=staged', { role: 'technician', body: YAML });
    expect(staged.status).toBe(202);
    expect(staged.json).toMatchObject({ stage: 'staged', version: 3, runningVersion: 3 });
    const jsonStaged = await a.call('PUT', '/api/v1/config', { role: 'technician', body: { content: YAML, wait: 'staged' } });
    expect(jsonStaged.status).toBe(202);

    // settled later: applied, awaiting the technician's confirm
    let settle: (r: ConfigStageReport) => void = () => undefined;
    fake.answer = (id) => ({ first: report(id, 'staged'), settled: new Promise<ConfigStageReport>((resolve) => (settle = resolve)) });
    const before = fake.submits.length;
    let answered = false;
    const pending = a.send('PUT', '/api/v1/config?confirmWithin=5m', { role: 'technician', body: YAML }).then((r) => {
      answered = true;
      return r;
    });
    await waitFor('the change handed over', () => fake.submits.length === before + 1);
    expect(answered).toBe(false);
    settle(report(`http-${before + 1}`, 'applied', { confirmBy: 1_700_000_300_000, components: ['sync'] }));
    const r = await pending;
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ stage: 'applied', confirmBy: 1_700_000_300_000, components: ['sync'] });
    resetAnswer();
  });

  it('answers each stage with its status, the report as the body', async () => {
    const cases: { settled: Partial<ConfigStageReport> & { stage: ConfigStageReport['stage'] }; status: number }[] = [
      { settled: { stage: 'confirmed' }, status: 200 },
      { settled: { stage: 'applied', confirmBy: 1 }, status: 202 },
      { settled: { stage: 'rolledBack', code: 'E_CONFIG_PROBE', reason: 'bus rtu1: no device online' }, status: 409 },
      { settled: { stage: 'rolledBack', code: 'E_CONFIG_CONFIRM_TIMEOUT', reason: 'no confirm within 5m' }, status: 409 },
    ];
    const refusals: [ConfigRefusalCode, number][] = [
      ['E_CONFIG_INVALID', 422],
      ['E_CONFIG_STALE', 409],
      ['E_CONFIG_DUPLICATE', 409],
      ['E_CONFIG_BUSY', 409],
      ['E_CONFIG_RESTART', 409],
      ['E_CONFIG_UNCHANGED', 409],
      ['E_CONFIG_FORBIDDEN', 403],
      ['E_CONFIG_SIGNATURE', 403],
      ['E_CONFIG_TOO_LARGE', 413],
    ];
    for (const [code, status] of refusals) cases.push({ settled: { stage: 'rejected', code, reason: `refused: ${code}`, version: null }, status });
    for (const c of cases) {
      const rejected = c.settled.stage === 'rejected';
      fake.answer = (id) => {
        const settled = report(id, c.settled.stage, c.settled);
        // a refusal is the first report; the settled promise then never matters
        return { first: rejected ? settled : report(id, 'staged'), settled: rejected ? new Promise<ConfigStageReport>(() => undefined) : Promise.resolve(settled) };
      };
      const r = await a.send('PUT', '/api/v1/config', { role: 'technician', body: YAML });
      expect(r.status, `${c.settled.stage} ${c.settled.code ?? ''}`).toBe(c.status);
      expect(r.json).toEqual(report(`http-${fake.submits.length}`, c.settled.stage, c.settled));
      expect(r.headers.get('location')).toBe(`/api/v1/config/changes/http-${fake.submits.length}`);
    }
    resetAnswer();
  });

  it('a rejected text comes back with its problems at line:col', async () => {
    const errors = [
      { line: 4, col: 12, path: 'devices[0].bus', message: 'unknown bus "rtu9"' },
      { line: 9, col: 3, path: 'schedules[1].at', message: 'expected HH:MM' },
    ];
    fake.answer = (id) => ({ first: report(id, 'rejected', { code: 'E_CONFIG_INVALID', reason: '2 problems', errors, version: 4 }), settled: new Promise(() => undefined) });
    const r = await a.send('PUT', '/api/v1/config', { role: 'technician', body: YAML, type: 'text/yaml' });
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ stage: 'rejected', code: 'E_CONFIG_INVALID', reason: '2 problems', errors, runningVersion: 1 });
    resetAnswer();
  });

  it('refuses a bad request before the service sees it, naming the field', async () => {
    const before = fake.submits.length;
    const bad: [string, { body?: string; type?: string }, number, RegExp][] = [
      ['/api/v1/config?nope=1', { body: YAML }, 400, /^nope: unknown query parameter/],
      ['/api/v1/config?wait=forever', { body: YAML }, 400, /^wait: expected staged or settled/],
      ['/api/v1/config?confirmWithin=5', { body: YAML }, 400, /^confirmWithin: expected a duration 1s\.\.1d/],
      ['/api/v1/config?confirmWithin=2d', { body: YAML }, 400, /^confirmWithin: expected a duration/],
      ['/api/v1/config?base=-1', { body: YAML }, 400, /^base: expected an integer/],
      ['/api/v1/config?force=maybe', { body: YAML }, 400, /^force: expected true or false/],
      ['/api/v1/config?base=2', { body: JSON.stringify({ content: YAML, baseVersion: 2 }), type: 'application/json' }, 400, /^base: given both in the query and in the body/],
      ['/api/v1/config', { body: '', type: 'application/yaml' }, 400, /^body: empty/],
      ['/api/v1/config', { body: YAML, type: 'application/xml' }, 415, /^content-type: unsupported content type "application\/xml"/],
      ['/api/v1/config', { body: '{ "content": ', type: 'application/json' }, 400, /^body: malformed JSON/],
      ['/api/v1/config', { body: JSON.stringify({ content: YAML, extra: 1 }), type: 'application/json' }, 400, /^extra: unknown field/],
      ['/api/v1/config', { body: JSON.stringify({ content: 42 }), type: 'application/json' }, 400, /^content: expected the whole devices\.yaml/],
      ['/api/v1/config', { body: JSON.stringify({ content: YAML, force: 'yes' }), type: 'application/json' }, 400, /^force: expected true or false/],
      ['/api/v1/config', { body: JSON.stringify({ content: YAML, baseVersion: 1.5 }), type: 'application/json' }, 400, /^baseVersion: expected a version number or null/],
      ['/api/v1/config', { body: JSON.stringify({ content: YAML, confirmWithin: '1m', confirmWithinMs: 60_000 }), type: 'application/json' }, 400, /^confirmWithinMs: give confirmWithin or confirmWithinMs/],
      ['/api/v1/config', { body: JSON.stringify([YAML]), type: 'application/json' }, 400, /^body: expected a JSON object/],
    ];
    for (const [path, opts, status, error] of bad) {
      const r = await a.send('PUT', path, { role: 'technician', ...opts });
      expect(r.status, path).toBe(status);
      expect(r.json.status).toBe('error');
      expect(r.json.error, path).toMatch(error);
    }
    expect(fake.submits.length).toBe(before);
  });

  it('takes a body of 1 MiB and refuses one byte more with 413 and the reason, YAML or JSON', async () => {
    resetAnswer();
    const before = fake.submits.length;
    const fill = (n: number) => `# ${'x'.repeat(n - 3)}\n`;
    expect(Buffer.byteLength(fill(MAX_CONFIG_BODY_BYTES))).toBe(1024 * 1024);
    const ok = await a.send('PUT', '/api/v1/config', { role: 'technician', body: fill(MAX_CONFIG_BODY_BYTES), type: 'application/yaml' });
    expect(ok.status).toBe(200);
    expect(fake.submits.length).toBe(before + 1);
    expect(fake.submits.at(-1)?.content.length).toBe(MAX_CONFIG_BODY_BYTES);

    const big = await a.send('PUT', '/api/v1/config', { role: 'technician', body: fill(MAX_CONFIG_BODY_BYTES + 1), type: 'application/yaml' });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ status: 'error', code: 'E_CONFIG_TOO_LARGE', error: 'body: larger than 1048576 bytes (1 MiB): a devices.yaml that large is not taken' });
    const bigJson = await a.call('PUT', '/api/v1/config', { role: 'technician', body: { content: fill(MAX_CONFIG_BODY_BYTES) } });
    expect(bigJson.status).toBe(413);
    expect(fake.submits.length).toBe(before + 1);
    // a JSON body past the API's usual 64 KiB limit but within 1 MiB is taken
    const mid = await a.call('PUT', '/api/v1/config', { role: 'technician', body: { content: fill(200_000) } });
    expect(mid.status).toBe(200);
    expect(fake.submits.at(-1)?.content.length).toBe(200_000);
  });
});

describe('versions, diff, changes', () => {
  it('GET /api/v1/config/versions lists the versions with the running one and what awaits a confirm', async () => {
    fake.awaiting = { version: 3, confirmBy: 1_700_000_300_000 };
    const r = await a.call('GET', '/api/v1/config/versions?limit=10&before=5', { role: 'central' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ versions: [fake.rows[1], fake.rows[0]], running: 1, awaitingConfirm: { version: 3, confirmBy: 1_700_000_300_000 } });
    expect(fake.versionQueries.at(-1)).toEqual({ limit: 10, before: 5 });
    await a.call('GET', '/api/v1/config/versions', { role: 'technician' });
    expect(fake.versionQueries.at(-1)).toEqual({ limit: 50 });
    fake.awaiting = null;
    expect((await a.call('GET', '/api/v1/config/versions', { role: 'technician' })).json.awaitingConfirm).toBeNull();
    for (const path of ['/api/v1/config/versions?limit=0', '/api/v1/config/versions?limit=1001', '/api/v1/config/versions?before=x', '/api/v1/config/versions?page=2']) {
      expect((await a.call('GET', path, { role: 'technician' })).status, path).toBe(400);
    }
  });

  it('GET /api/v1/config/versions/:v has the version and its text as the service redacted it; 404 for an unknown one', async () => {
    const r = await a.call('GET', '/api/v1/config/versions/1', { role: 'technician' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ version: fake.rows[0], content: fake.content(1) });
    expect(r.text).toContain('token: \\"***\\"');
    const refused = await a.call('GET', '/api/v1/config/versions/2', { role: 'technician' });
    expect(refused.json).toEqual({ version: fake.rows[1], content: null });
    expect((await a.call('GET', '/api/v1/config/versions/99', { role: 'technician' })).status).toBe(404);
    expect((await a.call('GET', '/api/v1/config/versions/abc', { role: 'technician' })).status).toBe(400);
    expect((await a.call('GET', '/api/v1/config/versions/0', { role: 'technician' })).status).toBe(400);
  });

  it('GET /api/v1/config/diff is the unified diff as text; 404 naming an unknown version, 400 without one', async () => {
    fake.diff = (x: number, y: number) => (x === 1 && y === 2 ? '--- version 1\n+++ version 2\n@@ -1 +1 @@\n-a: 1\n+a: 2\n' : undefined);
    const r = await a.call('GET', '/api/v1/config/diff?a=1&b=2', { role: 'central' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(r.text).toBe('--- version 1\n+++ version 2\n@@ -1 +1 @@\n-a: 1\n+a: 2\n');
    const unknown = await a.call('GET', '/api/v1/config/diff?a=1&b=99', { role: 'technician' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toBe('b: no configuration version 99');
    expect((await a.call('GET', '/api/v1/config/diff?a=2&b=1', { role: 'technician' })).status).toBe(404);
    expect((await a.call('GET', '/api/v1/config/diff?a=1', { role: 'technician' })).json.error).toMatch(/^b: required/);
  });

  it('GET /api/v1/config/changes/:id is the version of that change; 404 unknown, 400 for no change id', async () => {
    const r = await a.call('GET', '/api/v1/config/changes/change-2', { role: 'technician' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual(fake.rows[1]);
    expect((await a.call('GET', '/api/v1/config/changes/nope', { role: 'technician' })).status).toBe(404);
    expect((await a.call('GET', `/api/v1/config/changes/${'x'.repeat(200)}`, { role: 'technician' })).status).toBe(400);
    expect((await a.call('GET', '/api/v1/config/changes/a%20b', { role: 'technician' })).status).toBe(400);
  });
});

describe('confirm and rollback', () => {
  it('POST /api/v1/config/confirm confirms what awaits a confirm, else 409 with the reason', async () => {
    fake.awaiting = null;
    const none = await a.call('POST', '/api/v1/config/confirm', { role: 'technician' });
    expect(none.status).toBe(409);
    expect(none.json).toMatchObject({ reason: 'no version awaits a confirm' });
    fake.awaiting = { version: 3, confirmBy: 1_700_000_300_000 };
    const r = await a.call('POST', '/api/v1/config/confirm', { role: 'technician', body: {} });
    expect(r.status).toBe(200);
    expect(r.json).toEqual(report('change-3', 'confirmed'));
    expect(fake.confirms.at(-1)).toBe('technician-token');
    expect((await a.call('POST', '/api/v1/config/confirm', { role: 'technician', body: { version: 3 } })).status).toBe(400);
    fake.awaiting = null;
  });

  it('POST /api/v1/config/rollback restores a version as a technician change, answered like PUT', async () => {
    resetAnswer();
    const r = await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 1 } });
    expect(r.status).toBe(200);
    expect(r.json).toEqual(report(`rollback-${fake.rollbacks.length}`, 'confirmed'));
    expect(r.headers.get('location')).toBe(`/api/v1/config/changes/rollback-${fake.rollbacks.length}`);
    expect(fake.rollbacks.at(-1)).toEqual({ v: 1, principal: 'technician-token', source: 'technician' });

    fake.answer = (id) => ({ first: report(id, 'staged'), settled: Promise.resolve(report(id, 'rolledBack', { code: 'E_CONFIG_PROBE', reason: 'sync not connected' })) });
    const back = await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 1 } });
    expect(back.status).toBe(409);
    expect(back.json).toMatchObject({ stage: 'rolledBack', reason: 'sync not connected' });
    fake.answer = (id) => ({ first: report(id, 'staged'), settled: new Promise(() => undefined) });
    expect((await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 1, wait: false } })).status).toBe(202);
    resetAnswer();

    const calls = fake.rollbacks.length;
    expect((await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 99 } })).status).toBe(404);
    expect((await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 'one' } })).status).toBe(400);
    expect((await a.call('POST', '/api/v1/config/rollback', { role: 'technician', body: { version: 1, why: 'x' } })).status).toBe(400);
    expect((await a.call('POST', '/api/v1/config/rollback', { role: 'technician' })).status).toBe(400);
    expect(fake.rollbacks.length).toBe(calls);
  });
});
