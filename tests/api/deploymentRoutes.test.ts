/**
 * The firmware routes (edge/api/routes/deployments.ts) over real HTTP: who may use each, what the
 * door hands to the firmware service (the envelope as sent, the token's name and role; an
 * artifact's bytes as sent), the body limits (the manifest's, the artifact quota, read as the
 * bytes come), and the HTTP status of each report and refusal.
 *
 * The firmware service is a fake that records every call and answers with canned reports: the
 * engine (edge/firmware/engine.ts) has its own tests.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentStatus } from '../../edge/api/routes/deployments.js';
import { FirmwareError } from '../../edge/firmware/errors.js';
import {
  JOB_STAGES,
  MAX_MANIFEST_BYTES,
  type DeploymentAction,
  type DeploymentOutbox,
  type DeploymentReport,
  type DeploymentRequest,
  type DeploymentSubmitted,
  type FirmwareCode,
  type FirmwareService,
  type JobRecord,
  type JobStage,
} from '../../edge/firmware/types.js';
import type { MetricSample } from '../../edge/metrics.js';
import { waitFor } from '../helpers/wait.js';
import { TOKENS, accessByCaller, startApi, type Api, type RouteAccess } from './support/http.js';

const QUOTA = 64 * 1024;

class FakeFirmware implements FirmwareService {
  readonly submits: DeploymentRequest[] = [];
  readonly stored: Buffer[] = [];
  readonly controls: { id: string; action: DeploymentAction; principal: string }[] = [];
  /** the next submit's first report: accepted unless set */
  refuse: FirmwareCode | null = null;
  /** the next submit's outcome rejects (a broken engine must not take the API down) */
  failOutcome = false;
  /** storeArtifact throws this once */
  storeError: Error | null = null;
  readonly reports = new Map<string, DeploymentReport>([
    ['dep-1', report('dep-1', 'running')],
    ['dep-done', report('dep-done', 'completed')],
  ]);

  submit(req: DeploymentRequest): DeploymentSubmitted {
    this.submits.push(req);
    const id = `dep-http-${this.submits.length}`;
    const first = this.refuse ? { ...report(id, 'rejected'), code: this.refuse, reason: `refused: ${this.refuse}` } : report(id, 'running');
    this.refuse = null;
    const outcome = this.failOutcome ? Promise.reject(new Error('engine broken')) : Promise.resolve({ ...first, status: 'completed' as const });
    this.failOutcome = false;
    return { id, first, outcome };
  }
  submitCentral(): void {
    throw new Error('not used by the API');
  }
  artifactChunk(): void {
    throw new Error('not used by the API');
  }
  control(id: string, action: DeploymentAction, principal: string): ReturnType<FirmwareService['control']> {
    this.controls.push({ id, action, principal });
    const r = this.reports.get(id);
    if (!r) return { ok: false, code: 'E_NOT_FOUND', reason: `no deployment ${id}` };
    if (r.status === 'completed') return { ok: false, code: 'E_FW_FINAL', reason: `deployment ${id} has ended (completed)` };
    return { ok: true, report: { ...r, status: action === 'pause' ? 'paused' : action === 'cancel' ? 'cancelled' : 'running' } };
  }
  report(id: string): DeploymentReport | undefined {
    return this.reports.get(id);
  }
  list(q?: { limit?: number }): DeploymentReport[] {
    return [...this.reports.values()].slice(0, q?.limit ?? 50);
  }
  jobs(id: string): JobRecord[] {
    return this.reports.has(id) ? [job(id, 'lamp-1')] : [];
  }
  storeArtifact(data: Buffer): { sha256: string; size: number } {
    if (this.storeError) {
      const err = this.storeError;
      this.storeError = null;
      throw err;
    }
    this.stored.push(data);
    return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  outbox(): DeploymentOutbox {
    throw new Error('not used by the API');
  }
  metrics(): MetricSample[] {
    return [];
  }
}

function report(id: string, status: DeploymentReport['status']): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  counts.pending = 1;
  return {
    id,
    gateway: 'gw-test',
    status,
    code: null,
    reason: null,
    artifact: { name: 'slc-2ch', version: '2.4.1', size: 4096, sha256: 'ab'.repeat(32) },
    wave: 0,
    waves: 1,
    counts,
    jobs: [{ device: 'lamp-1', stage: 'pending', wave: 0, bytesAcked: 0, bytes: 4096, waiting: 'night: lights update by day from 08:12', code: null, reason: null, versionBefore: 256, versionAfter: null }],
    at: 1_700_000_000_000,
  };
}

function job(deployment: string, device: string): JobRecord {
  return {
    deployment,
    device,
    method: 'registerBlock',
    wave: 0,
    stage: 'pending',
    blocksAcked: 0,
    blocksTotal: 18,
    bytesAcked: 0,
    versionBefore: 256,
    versionAfter: null,
    waiting: 'night: lights update by day from 08:12',
    code: null,
    reason: null,
    attempts: 0,
    stageAt: 1_700_000_000_000,
    startedAt: null,
    endedAt: null,
  };
}

const ENVELOPE = JSON.stringify({ manifest: '{"id":"dep-x","gateway":"gw-test"}', signature: 'c2lnbmF0dXJl' });

let a: Api;
let bare: Api;
let fake: FakeFirmware;

beforeAll(async () => {
  fake = new FakeFirmware();
  a = await startApi({ firmware: { artifacts: { maxBytes: QUOTA } } }, { firmware: fake });
  bare = await startApi();
});
afterAll(async () => {
  await a?.close();
  await bare?.close();
});

/**
 * A body sent in chunks without a Content-Length (chunked transfer), `total` bytes: the answer's
 * status, and how many bytes the client got to write before it came (the server refuses past the
 * limit as the bytes come, not after the end).
 */
function streamed(path: string, total: number): Promise<{ status: number; body: string; written: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    const req = request(
      { host: '127.0.0.1', port: a.api.port(), path, method: 'POST', headers: { Authorization: `Bearer ${TOKENS.technician}`, 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, written }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // the server closed the connection after its answer: the answer already came
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err);
    });
    const chunk = Buffer.alloc(8 * 1024, 7);
    const pump = (): void => {
      while (written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('who may', () => {
  // letters of the roles that may: T technician, M maintenance, C central, V viewer
  const ROUTES: RouteAccess[] = [
    { method: 'POST', path: '/api/v1/deployments', raw: ENVELOPE, may: 'TC', ok: 202 },
    { method: 'GET', path: '/api/v1/deployments', may: 'TMCV', ok: 200 },
    { method: 'GET', path: '/api/v1/deployments/dep-1', may: 'TMCV', ok: 200 },
    { method: 'POST', path: '/api/v1/deployments/dep-1/pause', body: {}, may: 'TC', ok: 200 },
    { method: 'POST', path: '/api/v1/deployments/dep-1/resume', may: 'TC', ok: 200 },
    { method: 'POST', path: '/api/v1/deployments/dep-1/cancel', body: {}, may: 'TC', ok: 200 },
  ];

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: ${route.may}, 401 without a token`, async () => {
      const { got, want } = await accessByCaller(a, route);
      expect(got).toEqual(want);
    });
  }

  it('POST /api/v1/artifacts: technician and central; a refused caller stores nothing', async () => {
    const before = fake.stored.length;
    for (const role of ['maintenance', 'viewer'] as const) {
      const r = await a.send('POST', '/api/v1/artifacts', { role, body: Buffer.from('image'), type: 'application/octet-stream' });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ status: 'error', code: 'E_FORBIDDEN', error: `role ${role} may not firmware.deploy` });
    }
    expect((await a.send('POST', '/api/v1/artifacts', { body: Buffer.from('image') })).status).toBe(401);
    expect(fake.stored.length).toBe(before);
    for (const role of ['technician', 'central'] as const) expect((await a.send('POST', '/api/v1/artifacts', { role, body: Buffer.from('image') })).status).toBe(201);
  });

  it('without a firmware service the routes do not exist', async () => {
    expect((await bare.call('GET', '/api/v1/deployments', { role: 'technician' })).status).toBe(404);
    expect((await bare.call('POST', '/api/v1/deployments', { role: 'technician', raw: ENVELOPE })).status).toBe(404);
    expect((await bare.call('POST', '/api/v1/artifacts', { role: 'technician', raw: 'x' })).status).toBe(404);
    expect(bare.api.routes().some((r) => r.pattern.startsWith('/api/v1/deployments') || r.pattern.startsWith('/api/v1/artifacts'))).toBe(false);
  });
});

describe('POST /api/v1/deployments', () => {
  it('hands the envelope over as sent, with the token name, its role and source technician; 202 with Location', async () => {
    // fetch sends a string as text/plain, bytes with no content type
    for (const type of ['application/json', 'application/json; charset=utf-8', 'text/plain', undefined]) {
      const r = await a.send('POST', '/api/v1/deployments', { role: 'technician', body: type === undefined ? Buffer.from(ENVELOPE) : ENVELOPE, ...(type !== undefined ? { type } : {}) });
      expect(r.status, String(type)).toBe(202);
      const id = `dep-http-${fake.submits.length}`;
      expect(r.json).toEqual(report(id, 'running'));
      expect(r.headers.get('location')).toBe(`/api/v1/deployments/${id}`);
      expect(fake.submits.at(-1)).toEqual({ source: 'technician', principal: 'technician-token', role: 'technician', envelope: ENVELOPE });
    }
    const central = await a.send('POST', '/api/v1/deployments', { role: 'central', body: ENVELOPE, type: 'application/json' });
    expect(central.status).toBe(202);
    expect(fake.submits.at(-1)).toMatchObject({ principal: 'central-token', role: 'central' });
  });

  it('answers each refusal with the status of its code, the report as the body', async () => {
    const rows: [FirmwareCode, number][] = [
      ['E_FW_INVALID', 400],
      ['E_FW_SIGNATURE', 403],
      ['E_FW_FORBIDDEN', 403],
      ['E_FW_DUPLICATE', 409],
      ['E_FW_TARGET', 422],
      ['E_FW_GATEWAY', 422],
      ['E_FW_ARTIFACT', 422],
      ['E_FW_QUOTA', 507],
    ];
    for (const [code, status] of rows) {
      fake.refuse = code;
      const r = await a.send('POST', '/api/v1/deployments', { role: 'technician', body: ENVELOPE, type: 'application/json' });
      expect([code, r.status]).toEqual([code, status]);
      expect(r.json).toMatchObject({ status: 'rejected', code, reason: `refused: ${code}` });
    }
  });

  it('maps every status of a report', () => {
    const statuses: [DeploymentReport['status'], number][] = [
      ['running', 202],
      ['paused', 202],
      ['completed', 200],
      ['halted', 409],
      ['cancelled', 409],
    ];
    for (const [status, http] of statuses) expect(deploymentStatus(report('d', status))).toBe(http);
  });

  it('an outcome that fails later breaks nothing', async () => {
    fake.failOutcome = true;
    const r = await a.send('POST', '/api/v1/deployments', { role: 'technician', body: ENVELOPE, type: 'application/json' });
    expect(r.status).toBe(202);
    expect((await a.send('GET', '/api/v1/deployments/dep-1', { role: 'viewer' })).status).toBe(200);
  });

  it('refuses a body past MAX_MANIFEST_BYTES (413), empty (400), of another type (415), not UTF-8 (400): nothing handed over', async () => {
    const before = fake.submits.length;
    const big = JSON.stringify({ manifest: 'x'.repeat(MAX_MANIFEST_BYTES), signature: '' });
    const r = await a.send('POST', '/api/v1/deployments', { role: 'technician', body: big, type: 'application/json' });
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ status: 'error', code: 'E_USAGE', error: expect.stringContaining(`larger than ${MAX_MANIFEST_BYTES} bytes`) as string });
    expect((await a.send('POST', '/api/v1/deployments', { role: 'technician', body: '  ', type: 'application/json' })).json).toMatchObject({ code: 'E_USAGE', error: expect.stringMatching(/^body: empty/) as string });
    const yaml = await a.send('POST', '/api/v1/deployments', { role: 'technician', body: ENVELOPE, type: 'application/yaml' });
    expect(yaml.status).toBe(415);
    expect((await a.send('POST', '/api/v1/deployments', { role: 'technician', body: Buffer.from([0x7b, 0xff, 0x7d]), type: 'application/json' })).status).toBe(400);
    expect((await a.send('POST', '/api/v1/deployments?wait=1', { role: 'technician', body: ENVELOPE })).status).toBe(400);
    expect(fake.submits.length).toBe(before);
  });
});

describe('POST /api/v1/artifacts', () => {
  it('stores the bytes as sent, binary included: 201 { sha256, size }', async () => {
    const bytes = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7 + 3) & 0xff));
    const r = await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: bytes, type: 'application/octet-stream' });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
    expect(fake.stored.at(-1)!.equals(bytes)).toBe(true);
    // exactly the quota is taken
    const full = Buffer.alloc(QUOTA, 1);
    expect((await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: full })).status).toBe(201);
    expect(fake.stored.at(-1)!.length).toBe(QUOTA);
  });

  it('refuses past the quota: by its Content-Length at once, chunked as the bytes come (413 E_FW_QUOTA)', async () => {
    const before = fake.stored.length;
    const r = await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: Buffer.alloc(QUOTA + 1), type: 'application/octet-stream' });
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ status: 'error', code: 'E_FW_QUOTA', error: expect.stringContaining(`firmware.artifacts.maxBytes: ${QUOTA} bytes`) as string });
    // 64 MiB offered without a length: the answer comes long before the client could write it all
    const s = await streamed('/api/v1/artifacts', 64 * 1024 * 1024);
    expect(s.status).toBe(413);
    expect(JSON.parse(s.body)).toMatchObject({ code: 'E_FW_QUOTA' });
    expect(s.written).toBeLessThan(64 * 1024 * 1024);
    expect(fake.stored.length).toBe(before);
  });

  it('a store without room answers 507 E_FW_QUOTA; an empty body 400; another content type 415', async () => {
    fake.storeError = new FirmwareError('E_FW_QUOTA', 'the artifact store has 100 bytes left of 65536');
    const r = await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: Buffer.from('image') });
    expect(r.status).toBe(507);
    expect(r.json).toMatchObject({ status: 'error', code: 'E_FW_QUOTA', error: 'the artifact store has 100 bytes left of 65536' });
    expect((await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: Buffer.alloc(0) })).status).toBe(400);
    expect((await a.send('POST', '/api/v1/artifacts', { role: 'technician', body: Buffer.from('{}'), type: 'application/json' })).status).toBe(415);
  });
});

describe('reading deployments', () => {
  it('lists reports (limit checked) and answers one with its job rows', async () => {
    const list = await a.call('GET', '/api/v1/deployments?limit=1', { role: 'viewer' });
    expect(list.status).toBe(200);
    expect(list.json).toEqual({ deployments: [report('dep-1', 'running')] });
    expect((await a.call('GET', '/api/v1/deployments?limit=0', { role: 'viewer' })).status).toBe(400);
    expect((await a.call('GET', '/api/v1/deployments?since=1', { role: 'viewer' })).status).toBe(400);
    const one = await a.call('GET', '/api/v1/deployments/dep-1', { role: 'maintenance' });
    expect(one.status).toBe(200);
    expect(one.json).toEqual({ report: report('dep-1', 'running'), jobs: [job('dep-1', 'lamp-1')] });
    expect(await a.call('GET', '/api/v1/deployments/nope', { role: 'viewer' })).toMatchObject({ status: 404, json: { code: 'E_NOT_FOUND' } });
    expect(await a.call('GET', `/api/v1/deployments/${encodeURIComponent('bad id!')}`, { role: 'viewer' })).toMatchObject({ status: 400, json: { code: 'E_USAGE' } });
  });
});

describe('pause, resume, cancel', () => {
  it('hands the action and the token name over; 404 for no such deployment, 409 for one that ended', async () => {
    for (const action of ['pause', 'resume', 'cancel'] as const) {
      const r = await a.call('POST', `/api/v1/deployments/dep-1/${action}`, { role: 'central' });
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ id: 'dep-1', status: action === 'pause' ? 'paused' : action === 'cancel' ? 'cancelled' : 'running' });
      expect(fake.controls.at(-1)).toEqual({ id: 'dep-1', action, principal: 'central-token' });
    }
    expect(await a.call('POST', '/api/v1/deployments/nope/pause', { role: 'technician' })).toMatchObject({ status: 404, json: { status: 'error', code: 'E_NOT_FOUND', error: 'no deployment nope' } });
    expect(await a.call('POST', '/api/v1/deployments/dep-done/cancel', { role: 'technician' })).toMatchObject({ status: 409, json: { code: 'E_FW_FINAL' } });
    const before = fake.controls.length;
    expect(await a.call('POST', '/api/v1/deployments/dep-1/pause', { role: 'technician', body: { reason: 'x' } })).toMatchObject({ status: 400, json: { error: expect.stringMatching(/^reason: unknown field/) as string } });
    expect((await a.call('GET', '/api/v1/deployments/dep-1/pause', { role: 'technician' })).status).toBe(405);
    expect(fake.controls.length).toBe(before);
    await waitFor('the API still answers', async () => (await a.call('GET', '/api/v1/health')).status === 200);
  });
});
