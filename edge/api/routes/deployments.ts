/**
 * The technician's door to firmware deployments (issue 17), over the firmware service
 * (edge/firmware, FirmwareService); registered only when the API is given one (deps.firmware).
 *
 * - POST /api/v1/deployments (firmware.deploy): the envelope `{ manifest, signature }` as JSON
 *   (application/json, text/plain or no content type), at most MAX_MANIFEST_BYTES. Answers with the first
 *   report and `Location: /api/v1/deployments/<id>`: 202 accepted (running), or the refusal by its
 *   code (deploymentStatus below); the deployment goes on after the answer.
 * - POST /api/v1/artifacts (firmware.deploy): the artifact's bytes (application/octet-stream or no
 *   content type), read as they come and refused past firmware.artifacts.maxBytes (413) before
 *   the end; stored by the service under its sha256 (507 when it does not fit beside the others):
 *   201 `{ sha256, size }`. A manifest with source `{ local: true }` then finds it.
 * - GET /api/v1/deployments?limit=, /api/v1/deployments/:id (report and job rows) (firmware.view).
 * - POST /api/v1/deployments/:id/pause | resume | cancel (firmware.deploy): 200 with the report;
 *   404 for no such deployment, 409 for one that has ended.
 *
 * A refusal of the deployment is a report with its code (the service recorded it); a refusal of
 * the request (a bad parameter, a body past the limit) is the API's error body.
 */
import type { IncomingMessage } from 'node:http';
import { errorMessage } from '../../errors.js';
import { FirmwareError } from '../../firmware/errors.js';
import { DEPLOYMENT_ID_RE, MAX_MANIFEST_BYTES, type DeploymentAction, type DeploymentReport, type DeploymentSubmitted, type FirmwareService } from '../../firmware/types.js';
import { ApiError, badInput, notFound } from '../errors.js';
import { intParam, jsonObject, parseJson, query, readBody, readBodyWithin, readBytesWithin } from '../http.js';
import type { ApiRequest, Reply, Router } from '../router.js';
import type { RouteEnv } from './env.js';

const ACTIONS: readonly DeploymentAction[] = ['pause', 'resume', 'cancel'];

/**
 * The HTTP status of a deployment's report: under way 202, completed 200, ended otherwise 409,
 * refused by its code (400 invalid, 403 signature or forbidden, 409 duplicate, 422 a target, the
 * gateway or the artifact, 507 the artifact quota).
 */
export function deploymentStatus(report: DeploymentReport): number {
  switch (report.status) {
    case 'running':
    case 'paused':
    case 'ending':
      return 202;
    case 'completed':
      return 200;
    case 'halted':
    case 'cancelled':
      return 409;
    case 'rejected':
      return refusalStatus(report.code);
  }
}

function refusalStatus(code: DeploymentReport['code']): number {
  switch (code) {
    case 'E_FW_INVALID':
      return 400;
    case 'E_FW_SIGNATURE':
    case 'E_FW_FORBIDDEN':
      return 403;
    case 'E_FW_DUPLICATE':
      return 409;
    case 'E_FW_QUOTA':
      return 507;
    default:
      // E_FW_TARGET, E_FW_GATEWAY, E_FW_ARTIFACT, and a refusal without a code: the manifest is what is wrong
      return 422;
  }
}

export function deploymentRoutes(r: Router, env: RouteEnv): void {
  const firmware = env.deps.firmware;
  if (!firmware) return;

  r.add('POST', '/api/v1/deployments', 'firmware.deploy', (req) => submit(firmware, env, req));

  r.add('POST', '/api/v1/artifacts', 'firmware.deploy', ({ req, url }) => storeArtifact(firmware, env, req, url));

  r.add('GET', '/api/v1/deployments', 'firmware.view', ({ url }) => {
    const q = query(url, ['limit']);
    const limit = intParam(q, 'limit', 50, 1, 1000);
    return { status: 200, body: { deployments: firmware.list({ limit }) } };
  });

  r.add('GET', '/api/v1/deployments/:id', 'firmware.view', ({ url, params }) => {
    query(url, []);
    const id = idParam(params['id']);
    const report = firmware.report(id);
    if (!report) throw notFound(`deployment ${id}`);
    return { status: 200, body: { report, jobs: firmware.jobs(id) } };
  });

  for (const action of ACTIONS) {
    r.add('POST', `/api/v1/deployments/:id/${action}`, 'firmware.deploy', async ({ req, url, params, principal }) => {
      query(url, []);
      const id = idParam(params['id']);
      const body = jsonObject(parseJson(await readBody(req), env.metrics));
      const extra = Object.keys(body)[0];
      if (extra !== undefined) throw badInput(extra, 'unknown field (the body is empty or {})');
      const done = firmware.control(id, action, principal!.principal);
      if (!done.ok) {
        const status = done.code === 'E_NOT_FOUND' ? 404 : 409;
        return { status, body: { status: 'error', code: done.code, error: done.reason, transaction: null } };
      }
      // the action is done (the report says what the deployment does now)
      return { ...reportReply(done.report), status: 200 };
    });
  }
}

// ---- POST /api/v1/deployments ----------------------------------------------------------

async function submit(firmware: FirmwareService, env: RouteEnv, { req, url, principal }: ApiRequest): Promise<Reply> {
  query(url, []);
  // the content type first: a body of a type not taken is not read
  contentType(req, ['application/json', 'text/plain'], 'application/json');
  const envelope = await readBodyWithin(req, {
    maxBytes: MAX_MANIFEST_BYTES,
    tooLarge: () => tooLarge(`larger than ${MAX_MANIFEST_BYTES} bytes: a manifest envelope that large is not taken`, 'E_USAGE'),
    strictUtf8: true,
  });
  if (envelope.trim() === '') throw badInput('body', 'empty; expected the envelope { "manifest": "<json text>", "signature": "<base64>" }');
  // the service parses and checks it, and records a refusal with its code
  const submitted: DeploymentSubmitted = firmware.submit({ source: 'technician', principal: principal!.principal, role: principal!.role, envelope });
  // the deployment outlives the request: its outcome is watched only so a failure is logged
  submitted.outcome.catch((err: unknown) => env.ctx.log.error({ err, id: submitted.id }, `deployment from the API failed: ${errorMessage(err)}`));
  return reportReply(submitted.first);
}

// ---- POST /api/v1/artifacts ------------------------------------------------------------

async function storeArtifact(firmware: FirmwareService, env: RouteEnv, req: IncomingMessage, url: URL): Promise<Reply> {
  query(url, []);
  contentType(req, ['application/octet-stream'], 'application/octet-stream');
  const quota = env.ctx.config.firmware.artifacts.maxBytes;
  const data = await readBytesWithin(req, { maxBytes: quota, tooLarge: () => tooLarge(`larger than the artifact quota (firmware.artifacts.maxBytes: ${quota} bytes)`, 'E_FW_QUOTA') });
  if (data.length === 0) throw badInput('body', "empty; expected the artifact's bytes");
  try {
    const stored = firmware.storeArtifact(data);
    return { status: 201, body: stored };
  } catch (err) {
    if (err instanceof FirmwareError) {
      throw new ApiError(err.code === 'E_FW_QUOTA' ? 507 : 422, err.code, err.message, { cause: err });
    }
    throw err;
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** The request's content type is one of `types`, or absent; anything else 415. */
function contentType(req: IncomingMessage, types: readonly string[], expected: string): void {
  const header = req.headers['content-type'];
  if (header === undefined || header.trim() === '') return;
  const type = header.split(';')[0]!.trim().toLowerCase();
  if (types.includes(type)) return;
  throw new ApiError(415, 'E_USAGE', `unsupported content type ${JSON.stringify(type.slice(0, 60))} (expected ${expected})`, { field: 'content-type' });
}

function tooLarge(message: string, code: 'E_USAGE' | 'E_FW_QUOTA'): ApiError {
  return new ApiError(413, code, message, { field: 'body', headers: { Connection: 'close' } });
}

function idParam(raw: string | undefined): string {
  if (raw === undefined || !DEPLOYMENT_ID_RE.test(raw)) throw badInput('id', 'expected a deployment id (letters, digits, "_", ".", ":", "-"; at most 128)');
  return raw;
}

/** The report with its status; `Location` when it has an id (an envelope that did not parse may name none). */
function reportReply(report: DeploymentReport): Reply {
  const location = DEPLOYMENT_ID_RE.test(report.id) ? { headers: { Location: `/api/v1/deployments/${encodeURIComponent(report.id)}` } } : {};
  return { status: deploymentStatus(report), ...location, body: report };
}
