/**
 * The OpenAPI document (GET /api/v1/openapi.json) over real HTTP: it passes an OpenAPI 3.1
 * validator from npm; it describes every route of the router and nothing else; real answers
 * validate against the schema it gives for their status (JSON Schema 2020-12, with the ajv the
 * validator brings); and each query parameter it documents is refused by the API, 400 naming it,
 * for a value its schema refuses: the document and the validation are one.
 *
 * The API runs as the other API tests start it (support/http.ts: a real store, the in-test command
 * service), not the whole demo gateway, to keep the file fast: the gateway's status, the drivers'
 * rows, the configuration versions and the deployments come from small stand-ins that return rows
 * of the real types (GatewayStatus, ConfigVersion, DeploymentReport, JobRecord).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiPath } from '../../edge/api/openapi.js';
import type { GatewayStatus } from '../../edge/main.js';
import type { ConfigService, ConfigVersion } from '../../edge/reconfig/types.js';
import type { DeploymentReport, FirmwareService, JobRecord } from '../../edge/firmware/types.js';
import { ROOT } from '../support/cli.js';
import { GW } from './support/context.js';
import { startApi, type Api } from './support/http.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Ajv {
  addSchema(schema: object, key: string): void;
  compile(schema: object): { (data: unknown): boolean; errors?: unknown[] | null };
}

/** ajv 8 (JSON Schema 2020-12) as the validator package depends on it (the top-level ajv is eslint's 6). */
function ajv2020(): Ajv {
  const fromValidator = createRequire(createRequire(import.meta.url).resolve('@seriousme/openapi-schema-validator'));
  const Ajv2020 = (fromValidator('ajv/dist/2020') as { default: new (o: object) => Ajv }).default;
  // formats (date-time) and the OpenAPI keywords are annotations here
  return new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
}

const T = 1_700_000_000_000;

const status = (): GatewayStatus => ({
  gateway: GW,
  startedAt: T,
  components: [{ name: 'api', state: 'running', restarts: 0, failures: 0, lastError: null, since: T }],
  store: a.t.store.stats(),
  ingestPending: 0,
  config: { version: 1, sha256: 'ab'.repeat(32), awaitingConfirm: null },
});

const version: ConfigVersion = {
  version: 1,
  id: 'change-1',
  sha256: 'ab'.repeat(32),
  bytes: 40,
  source: 'file',
  principal: 'file',
  at: T,
  baseVersion: null,
  stage: 'confirmed',
  reason: null,
  errors: [],
  components: ['control schedules'],
  appliedAt: T + 10,
  confirmedAt: T + 20,
  endedAt: null,
  rollbackOf: null,
  running: true,
};

const config: Partial<ConfigService> = {
  versions: () => [version],
  version: (v) => (v === 1 ? version : undefined),
  change: (id) => (id === version.id ? version : undefined),
  content: (v) => (v === 1 ? `gateway: { id: ${GW} }\n` : undefined),
  running: () => version,
  awaitingConfirm: () => null,
};

const job: JobRecord = {
  deployment: 'dep-1',
  device: 'lamp-1',
  method: 'fileRecord',
  wave: 0,
  stage: 'transferring',
  blocksAcked: 3,
  blocksTotal: 10,
  bytesAcked: 768,
  versionBefore: 203,
  versionAfter: null,
  waiting: null,
  code: null,
  reason: null,
  attempts: 0,
  stageAt: T,
  startedAt: T,
  endedAt: null,
};

const deployment: DeploymentReport = {
  id: 'dep-1',
  gateway: GW,
  status: 'running',
  code: null,
  reason: null,
  artifact: { name: 'slc-2ch', version: '2.4.1', size: 2560, sha256: 'cd'.repeat(32) },
  wave: 0,
  waves: 1,
  counts: { pending: 0, fetching: 0, transferring: 1, activating: 0, verifying: 0, confirmed: 0, failed: 0, rolledBack: 0, cancelled: 0 },
  jobs: [{ device: 'lamp-1', stage: 'transferring', wave: 0, bytesAcked: 768, bytes: 2560, waiting: null, code: null, reason: null, versionBefore: 203, versionAfter: null }],
  at: T,
};

const firmware: Partial<FirmwareService> = {
  list: () => [deployment],
  report: (id) => (id === deployment.id ? deployment : undefined),
  jobs: (id) => (id === deployment.id ? [job] : []),
};

const METHODS = ['get', 'post', 'put'] as const;

let a: Api;
let doc: Json;
let etag: string;
let ajv: Ajv;

const call = (method: string, path: string, opts: Parameters<Api['call']>[2] = { role: 'technician' }): ReturnType<Api['call']> => a.call(method, path, opts);

/** The document's schema of an operation's answer for a status (a shared response followed), or undefined. */
function answerSchema(path: string, method: string, status: number): Json | undefined {
  let r = doc.paths[path]?.[method]?.responses?.[String(status)] as Json | undefined;
  if (r?.$ref) r = doc.components.responses[(r.$ref as string).split('/').pop()!] as Json;
  const content = r?.content as Record<string, { schema?: Json }> | undefined;
  return content ? Object.values(content)[0]?.schema : undefined;
}

const compiled = new Map<string, ReturnType<Ajv['compile']>>();

/** Whether an answer validates against the document's schema for its status; the errors otherwise. */
function conforms(path: string, method: string, res: { status: number; json: unknown }): { status: number; errors: unknown } {
  const schema = answerSchema(path, method, res.status);
  if (!schema) return { status: res.status, errors: `the document has no schema for ${method.toUpperCase()} ${path} ${res.status}` };
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) compiled.set(key, (validate = ajv.compile(schema.$ref ? { $ref: `openapi.json${String(schema.$ref)}` } : schema)));
  return { status: res.status, errors: validate(res.json) ? null : validate.errors };
}

beforeAll(async () => {
  a = await startApi({}, { status, devices: () => [{ id: 'lamp-1', online: true, lastSeen: T + 500, failures: 2, bus: 'tcp-1' }], config: config as ConfigService, firmware: firmware as FirmwareService });
  a.t.ctx.ingest.pushMany([
    { ts: T, device: 'lamp-1', point: 'level', value: 40, unit: '%' },
    { ts: T + 100, device: 'lamp-1', point: 'lamp_ok', value: true },
    { ts: T + 200, device: 'lamp-2', point: 'power', value: null, quality: 'bad' },
  ]);
  a.t.ctx.ingest.flush();
  a.t.store.appendEvent({ device: 'lamp-2', kind: 'comms.lost', severity: 'warning', detail: { bus: 'tcp-1', unit: 2, error: 'timeout' } });
  const res = await call('GET', '/api/v1/openapi.json', {});
  expect(res.status).toBe(200);
  etag = res.headers.get('etag')!;
  doc = res.json as Json;
  ajv = ajv2020();
  // the answers refer to #/components/schemas/…: those are all ajv needs of the document
  ajv.addSchema({ components: { schemas: doc.components.schemas } }, 'openapi.json');
});
afterAll(async () => a?.close());

describe('the document', () => {
  it('is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(doc.info).toMatchObject({ title: 'streetbox', version: pkg.version });
    expect(doc.info.description).toContain('/flows');
    expect(doc.servers).toEqual([expect.objectContaining({ url: '/' })]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('describes every route of the router, and no route that is not one', () => {
    const routes = a.api.routes().map((r) => `${r.method} ${openApiPath(r.pattern)}`);
    const described = Object.entries(doc.paths as Record<string, Json>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(described.sort()).toEqual([...routes].sort());
    // with the configuration and firmware services, their routes are there
    expect(routes).toEqual(expect.arrayContaining(['PUT /api/v1/config', 'POST /api/v1/deployments', 'GET /api/v1/openapi.json', 'GET /metrics', 'GET /', 'GET /status.js']));
  });

  it('says of each operation its id, its permission and its security', () => {
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const method of METHODS) {
        const op = ops[method] as Json | undefined;
        if (!op) continue;
        const where = `${method} ${path}`;
        expect(ids.has(op.operationId), `${op.operationId} twice`).toBe(false);
        ids.add(op.operationId);
        const permission = op['x-streetbox-permission'] as string;
        if (permission === 'public') expect(op.security, where).toEqual([]);
        else {
          expect(op.security, where).toContainEqual({ bearer: [] });
          expect(op.description, where).toContain(permission === 'authenticated' ? 'any valid token' : `\`${permission}\``);
        }
        if (permission !== 'public' && !op.security.some((s: Json) => 'ticket' in s)) expect(op.responses['401'], where).toBeDefined();
      }
    }
    expect(doc.paths['/api/v1/readings'].get).toMatchObject({ 'x-streetbox-permission': 'pull', responses: { '403': { $ref: '#/components/responses/Forbidden' } } });
    expect(doc.paths['/api/v1/openapi.json'].get).toMatchObject({ 'x-streetbox-permission': 'public', security: [] });
    expect(doc.paths['/api/v1/live'].get).toMatchObject({ 'x-streetbox-permission': 'read', security: [{ ticket: [] }, { bearer: [] }] });
    // the command bodies are the pipeline's own schemas, one per action
    const body = doc.paths['/api/v1/devices/{device}/commands'].post.requestBody.content['application/json'].schema;
    expect(doc.components.schemas[body.$ref.split('/').pop()].oneOf).toHaveLength(7);
    expect(doc.components.schemas.DimCommand).toMatchObject({ required: expect.arrayContaining(['action', 'level']), additionalProperties: false });
  });

  it('is served from memory with its ETag, gzipped when asked', async () => {
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect((await call('GET', '/api/v1/openapi.json', { headers: { 'If-None-Match': etag } })).status).toBe(304);
    const gz = await call('GET', '/api/v1/openapi.json', { headers: { 'Accept-Encoding': 'gzip' } });
    // fetch decodes it: the body is the same document
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    expect(gz.json).toEqual(doc);
  });
});

describe('real answers', () => {
  it('validate against the schema the document gives for their status', async () => {
    const sent = await call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', body: { action: 'dim', level: 40, transaction: 't-1' } });
    expect(conforms('/api/v1/devices/{device}/commands', 'post', sent)).toEqual({ status: 202, errors: null });
    const refused = await call('POST', '/api/v1/groups/street-a/commands', { role: 'technician', body: { action: 'dance' } });
    expect(conforms('/api/v1/groups/{group}/commands', 'post', refused)).toEqual({ status: 400, errors: null });
    const id = (sent.json as Json).id as string;
    expect(conforms('/api/v1/consumers/{name}/ack', 'post', await call('POST', '/api/v1/consumers/c-1/ack', { role: 'central', body: { seq: 1 } }))).toEqual({ status: 200, errors: null });
    expect(conforms('/api/v1/live/ticket', 'post', await call('POST', '/api/v1/live/ticket'))).toEqual({ status: 200, errors: null });
    const samples: [string, string][] = [
      ['/api/v1/health', '/api/v1/health'],
      ['/api/v1/status', '/api/v1/status'],
      ['/api/v1/devices', '/api/v1/devices'],
      ['/api/v1/devices/{id}', '/api/v1/devices/lamp-1'],
      ['/api/v1/devices/{id}', '/api/v1/devices/ghost'],
      ['/api/v1/readings', '/api/v1/readings'],
      ['/api/v1/readings', '/api/v1/readings?limit=x'],
      ['/api/v1/events', '/api/v1/events'],
      ['/api/v1/commands', '/api/v1/commands'],
      ['/api/v1/commands/{id}', `/api/v1/commands/${id}`],
      ['/api/v1/consumers', '/api/v1/consumers'],
      ['/api/v1/history', `/api/v1/history?device=lamp-1&from=${T - 1000}&to=${T + 60_000}&buckets=6`],
      ['/api/v1/config/versions', '/api/v1/config/versions'],
      ['/api/v1/config/versions/{v}', '/api/v1/config/versions/1'],
      ['/api/v1/config/changes/{id}', '/api/v1/config/changes/change-1'],
      ['/api/v1/deployments', '/api/v1/deployments'],
      ['/api/v1/deployments/{id}', '/api/v1/deployments/dep-1'],
      ['/api/v1/openapi.json', '/api/v1/openapi.json'],
    ];
    for (const [path, url] of samples) {
      const res = await call('GET', url);
      const got = conforms(path, 'get', res);
      expect({ url, ...got }).toEqual({ url, status: got.status, errors: null });
      expect(got.status, url).toBeLessThan(500);
    }
    // the answers had something in them
    const history = (await call('GET', samples[11]![1])).json as Json;
    expect(history.series.map((s: Json) => s.point).sort()).toEqual(['lamp_ok', 'level']);
    // without a token: the shared 401; a role that may not: the shared 403
    expect(conforms('/api/v1/status', 'get', await call('GET', '/api/v1/status', {}))).toEqual({ status: 401, errors: null });
    expect(conforms('/api/v1/readings', 'get', await call('GET', '/api/v1/readings', { role: 'viewer' }))).toEqual({ status: 403, errors: null });
  });

  it('a wrong answer does not validate (the check checks)', () => {
    expect(conforms('/api/v1/readings', 'get', { status: 200, json: { readings: [{ seq: 1 }], next: 1 } }).errors).not.toBeNull();
    expect(conforms('/api/v1/health', 'get', { status: 200, json: { status: 'ok', extra: 1 } }).errors).not.toBeNull();
  });

  it('refuse each documented query parameter for a value its schema refuses: 400 naming it', async () => {
    /** values the other required parameters take */
    const valid: Record<string, string> = { device: 'lamp-1', a: '1', b: '1' };
    /** a value the parameter's schema refuses, by its type; undefined: it takes any text */
    const refused = (s: Json): string | undefined => {
      if (s.enum || s.const) return 'no-such-value';
      if (s.anyOf) return 'yesterday';
      if (s.type === 'integer') return 'x';
      if (s.type === 'boolean') return 'maybe';
      if (s.type === 'array') return 'bad id';
      if (s.type === 'string' && s.pattern) return 'bad id/';
      return undefined;
    };
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const method of METHODS) {
        const params = ((ops[method]?.parameters ?? []) as Json[]).filter((p) => p.in === 'query');
        if (path.includes('{')) continue;
        for (const p of params) {
          const bad = refused(p.schema as Json);
          if (bad === undefined) continue;
          const q = new URLSearchParams(params.filter((o) => o.required && o.name !== p.name).map((o): [string, string] => [o.name, valid[o.name] ?? '1']));
          q.set(p.name, bad);
          const res = await call(method.toUpperCase(), `${path}?${q.toString()}`, { role: 'technician', ...(method === 'get' ? {} : { body: {} }) });
          const body = res.json as Json;
          expect({ path, param: p.name, status: res.status, code: body.code }).toEqual({ path, param: p.name, status: 400, code: 'E_USAGE' });
          expect(body.error, `${path} ${p.name}=${bad}`).toMatch(new RegExp(`^${p.name}: .*got ${JSON.stringify(bad)}`));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(15);
    expect((await call('GET', '/api/v1/readings?limit=x')).json).toMatchObject({ status: 'error', code: 'E_USAGE', error: 'limit: expected an integer 1..10000, got "x"' });
    expect(doc.paths['/api/v1/readings'].get.parameters).toContainEqual({
      name: 'limit',
      in: 'query',
      required: false,
      description: expect.any(String),
      schema: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 10_000, default: 1000 }),
    });
  });
});
