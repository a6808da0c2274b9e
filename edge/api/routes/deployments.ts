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
import { z } from 'zod';
import { errorMessage } from '../../errors.js';
import { FirmwareError } from '../../firmware/errors.js';
import { DEPLOYMENT_ID_RE, MAX_MANIFEST_BYTES, type DeploymentAction, type DeploymentReport, type DeploymentSubmitted, type FirmwareService } from '../../firmware/types.js';
import type { Answers } from '../answers.js';
import { ApiError, badInput, notFound } from '../errors.js';
import { parseBody, parseJson, readBody, readBodyWithin, readBytesWithin } from '../http.js';
import type { Reply, ResponseDoc, RouteRequest, Router } from '../router.js';
import { field, integer, integerWords } from '../schemas.js';
import type { RouteEnv } from './env.js';

const ACTIONS: readonly DeploymentAction[] = ['pause', 'resume', 'cancel'];

const ACTION_WORDS: Record<DeploymentAction, string> = {
  pause: 'no new job starts; a transfer under way stops after its block (resumable)',
  resume: 'jobs start again',
  cancel: 'jobs not past transferring end cancelled',
};

const deploymentId = z.strictObject({
  id: field(z.string().regex(DEPLOYMENT_ID_RE), 'expected a deployment id (letters, digits, "_", ".", ":", "-"; at most 128)', { description: "the deployment's id (the manifest's)", required: true }),
});

const NO_BODY = z.strictObject({});

/** What a deployment's report answers, by its status and code (deploymentStatus). */
const reports = (a: Answers): Readonly<Record<number, ResponseDoc>> => ({
  200: { description: 'completed', schema: a.deploymentReport },
  202: { description: 'accepted: running (the deployment goes on after the answer)', schema: a.deploymentReport, headers: { Location: 'the deployment: /api/v1/deployments/{id}' } },
  400: { description: 'refused: E_FW_INVALID, the manifest does not parse or validate; or a bad request', schema: a.deploymentReport },
  403: { description: 'refused: E_FW_SIGNATURE, E_FW_FORBIDDEN', schema: a.deploymentReport },
  409: { description: 'refused: E_FW_DUPLICATE; or halted, cancelled', schema: a.deploymentReport },
  413: { description: `an envelope over ${MAX_MANIFEST_BYTES} bytes`, schema: a.errorBody },
  415: { description: 'a content type not taken', schema: a.errorBody },
  422: { description: 'refused: E_FW_TARGET, E_FW_GATEWAY, E_FW_ARTIFACT', schema: a.deploymentReport },
  507: { description: 'refused: E_FW_QUOTA, the artifact does not fit', schema: a.deploymentReport },
});

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

  r.add({
    method: 'POST',
    path: '/api/v1/deployments',
    access: 'firmware.deploy',
    doc: (a) => ({
      operationId: 'submitDeployment',
      summary: 'Starts a firmware deployment from a signed manifest',
      description: 'The first report answers; the deployment goes on (GET /api/v1/deployments/{id}). A refusal is a report with its code (recorded).',
      tags: ['firmware'],
      body: { description: 'the signed envelope', content: { 'application/json': a.deploymentEnvelope, 'text/plain': a.deploymentEnvelope } },
      responses: reports(a),
    }),
    handler: (req) => submit(firmware, env, req),
  });

  r.add({
    method: 'POST',
    path: '/api/v1/artifacts',
    access: 'firmware.deploy',
    doc: (a) => ({
      operationId: 'storeArtifact',
      summary: "Stores an artifact's bytes for a manifest with source `{ local: true }`",
      tags: ['firmware'],
      body: { description: "the artifact's bytes, at most firmware.artifacts.maxBytes", content: { 'application/octet-stream': null } },
      responses: {
        201: { description: 'stored under its sha256', schema: a.storedArtifact },
        413: { description: 'larger than the artifact quota', schema: a.errorBody },
        415: { description: 'a content type not taken', schema: a.errorBody },
        422: { description: 'not stored', schema: a.errorBody },
        507: { description: 'does not fit beside the other artifacts', schema: a.errorBody },
      },
    }),
    handler: ({ req }) => storeArtifact(firmware, env, req),
  });

  r.add({
    method: 'GET',
    path: '/api/v1/deployments',
    access: 'firmware.view',
    query: z.strictObject({ limit: field(integer(1, 1000), integerWords(1, 1000), { description: 'at most this many', default: 50 }) }),
    doc: (a) => ({
      operationId: 'listDeployments',
      summary: 'The deployments, newest first',
      tags: ['firmware'],
      responses: { 200: { description: 'their reports', schema: a.deploymentList } },
    }),
    handler: ({ query: { limit } }) => ({ status: 200, body: { deployments: firmware.list({ limit }) } }),
  });

  r.add({
    method: 'GET',
    path: '/api/v1/deployments/:id',
    access: 'firmware.view',
    params: deploymentId,
    doc: (a) => ({
      operationId: 'getDeployment',
      summary: 'A deployment: its report and its jobs',
      tags: ['firmware'],
      responses: {
        200: { description: 'the report and one job per target', schema: a.deploymentDetail },
        404: { description: 'no such deployment', schema: a.errorBody },
      },
    }),
    handler: ({ params: { id } }) => {
      const report = firmware.report(id);
      if (!report) throw notFound(`deployment ${id}`);
      return { status: 200, body: { report, jobs: firmware.jobs(id) } };
    },
  });

  for (const action of ACTIONS) {
    r.add({
      method: 'POST',
      path: `/api/v1/deployments/:id/${action}`,
      access: 'firmware.deploy',
      params: deploymentId,
      doc: (a) => ({
        operationId: `${action}Deployment`,
        summary: `${action[0]!.toUpperCase()}${action.slice(1)}s a deployment: ${ACTION_WORDS[action]}`,
        tags: ['firmware'],
        body: { description: 'empty, or {}', content: { 'application/json': NO_BODY }, required: false },
        responses: {
          200: { description: 'done: the report says what the deployment does now', schema: a.deploymentReport },
          404: { description: 'no such deployment', schema: a.errorBody },
          409: { description: 'the deployment has ended', schema: a.errorBody },
        },
      }),
      handler: async ({ req, params: { id }, principal }) => {
        parseBody(NO_BODY, parseJson(await readBody(req), env.metrics));
        const done = firmware.control(id, action, principal!.principal);
        if (!done.ok) {
          const status = done.code === 'E_NOT_FOUND' ? 404 : 409;
          return { status, body: { status: 'error', code: done.code, error: done.reason, transaction: null } };
        }
        // the action is done (the report says what the deployment does now)
        return { ...reportReply(done.report), status: 200 };
      },
    });
  }
}

// ---- POST /api/v1/deployments ----------------------------------------------------------

async function submit(firmware: FirmwareService, env: RouteEnv, { req, principal }: RouteRequest<unknown, unknown>): Promise<Reply> {
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

async function storeArtifact(firmware: FirmwareService, env: RouteEnv, req: IncomingMessage): Promise<Reply> {
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

/** The report with its status; `Location` when it has an id (an envelope that did not parse may name none). */
function reportReply(report: DeploymentReport): Reply {
  const location = DEPLOYMENT_ID_RE.test(report.id) ? { headers: { Location: `/api/v1/deployments/${encodeURIComponent(report.id)}` } } : {};
  return { status: deploymentStatus(report), ...location, body: report };
}
