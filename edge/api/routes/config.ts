/**
 * The technician's door to the configuration (issue 16), over the configuration service
 * (edge/reconfig, ConfigService); registered only when the API is given one (deps.config).
 *
 * - PUT /api/v1/config (admin: the technician): the whole devices.yaml as the body (YAML:
 *   application/yaml, text/yaml, text/plain or no content type), or JSON
 *   `{ content, baseVersion?, force?, confirmWithin?, wait? }` (a program may give
 *   `confirmWithinMs` and `wait: true|false`); query `base`, `force`, `confirmWithin` (`5m`:
 *   commit-confirm, a manual confirm must come within it), `wait=staged|settled` (default
 *   settled), each either in the query or in the body. At most 1 MiB. Answers with the stage
 *   report (reportStatus below) and `Location: /api/v1/config/changes/<id>`.
 * - GET /api/v1/config/versions?limit=&before=, /versions/:v (with its redacted text),
 *   /diff?a=&b= (text/plain unified diff), /changes/:id (config.view: technician and central).
 * - POST /api/v1/config/confirm (commit-confirm; 409 when nothing awaits one), POST
 *   /api/v1/config/rollback `{ version, wait? }` (admin), answered like PUT.
 *
 * The change itself (validate, record, apply, probe, confirm or roll back) is the service's; a
 * refusal of the change is a report with its code, a refusal of the request (a bad parameter, a
 * body past the limit) is the API's error body.
 */
import type { IncomingMessage } from 'node:http';
import { durationIn } from '../../config/scalars.js';
import { parseJsonWithin, MAX_JSON_DEPTH } from '../../jsonLimits.js';
import { CHANGE_ID_RE, MAX_CONFIG_BYTES } from '../../reconfig/records.js';
import type { ConfigChangeRequest, ConfigService, ConfigStageReport, ConfigSubmitted } from '../../reconfig/types.js';
import { ApiError, badInput, notFound } from '../errors.js';
import { intParam, jsonObject, parseJson, query, readBody, readBodyWithin } from '../http.js';
import type { ApiRequest, Reply, Router } from '../router.js';
import type { RouteEnv } from './env.js';

/** the body limit: the largest configuration text a gateway takes (edge/reconfig/records.ts) */
export const MAX_CONFIG_BODY_BYTES = MAX_CONFIG_BYTES;

/** commit-confirm's window: from a few seconds (a script) to a day */
const CONFIRM_MIN_MS = 1000;
const CONFIRM_MAX_MS = 86_400_000;
const confirmWithinSchema = durationIn('1s', '1d');

const YAML_TYPES = new Set(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain']);
const JSON_FIELDS = ['content', 'baseVersion', 'force', 'confirmWithin', 'confirmWithinMs', 'wait'] as const;
const PUT_QUERY = ['base', 'force', 'confirmWithin', 'wait'] as const;


/**
 * The HTTP status of a stage report: on its way (staged, or applied awaiting a manual confirm)
 * 202; confirmed 200; rolled back 409; rejected by its code.
 */
export function reportStatus(report: ConfigStageReport): number {
  switch (report.stage) {
    case 'staged':
    case 'applied':
      return 202;
    case 'confirmed':
      return 200;
    case 'rolledBack':
      return 409;
    case 'rejected':
      return rejectionStatus(report.code);
  }
}

function rejectionStatus(code: ConfigStageReport['code']): number {
  switch (code) {
    case 'E_CONFIG_FORBIDDEN':
    case 'E_CONFIG_SIGNATURE':
      return 403;
    case 'E_CONFIG_TOO_LARGE':
      return 413;
    case 'E_CONFIG_STALE':
    case 'E_CONFIG_DUPLICATE':
    case 'E_CONFIG_BUSY':
    case 'E_CONFIG_RESTART':
    case 'E_CONFIG_UNCHANGED':
    case 'E_CONFIG_PROBE':
    case 'E_CONFIG_CONFIRM_TIMEOUT':
    case 'E_CONFIG_APPLY':
      return 409;
    default:
      // E_CONFIG_INVALID, and a refusal without a code: the text is what is wrong
      return 422;
  }
}

export function configRoutes(r: Router, env: RouteEnv): void {
  const config = env.deps.config;
  if (!config) return;

  r.add('PUT', '/api/v1/config', 'admin', (req) => putConfig(config, env, req));

  r.add('GET', '/api/v1/config/versions', 'config.view', ({ url }) => {
    const q = query(url, ['limit', 'before']);
    const limit = intParam(q, 'limit', 50, 1, 1000);
    const before = q.has('before') ? intParam(q, 'before', 0, 1, Number.MAX_SAFE_INTEGER) : undefined;
    const versions = config.versions({ limit, ...(before !== undefined ? { before } : {}) });
    return { status: 200, body: { versions, running: config.running()?.version ?? null, awaitingConfirm: config.awaitingConfirm() } };
  });

  r.add('GET', '/api/v1/config/versions/:v', 'config.view', ({ url, params }) => {
    query(url, []);
    const v = versionParam(params['v'], 'v');
    const version = config.version(v);
    if (!version) throw notFound(`configuration version ${v}`);
    // already redacted by the service: every secret is `***`
    return { status: 200, body: { version, content: config.content(v) ?? null } };
  });

  r.add('GET', '/api/v1/config/diff', 'config.view', ({ url }) => {
    const q = query(url, ['a', 'b']);
    const a = versionParam(q.get('a'), 'a');
    const b = versionParam(q.get('b'), 'b');
    for (const [name, v] of [['a', a], ['b', b]] as const) if (!config.version(v)) throw new ApiError(404, 'E_NOT_FOUND', `no configuration version ${v}`, { field: name });
    const diff = config.diff(a, b);
    if (diff === undefined) throw notFound(`text of configuration version ${a} or ${b} (a change refused before it became a text)`);
    return { status: 200, text: diff, contentType: 'text/plain; charset=utf-8' };
  });

  r.add('GET', '/api/v1/config/changes/:id', 'config.view', ({ url, params }) => {
    query(url, []);
    const id = params['id']!;
    if (!CHANGE_ID_RE.test(id)) throw badInput('id', 'expected a change id (letters, digits, "_", ".", ":", "-"; at most 128)');
    const version = config.change(id);
    if (!version) throw notFound(`configuration change ${id}`);
    return { status: 200, body: version };
  });

  r.add('POST', '/api/v1/config/confirm', 'admin', async ({ req, url, principal }) => {
    query(url, []);
    const body = jsonObject(parseJson(await readBody(req), env.metrics));
    onlyFields(body, []);
    const r = config.confirm(principal!.principal);
    if (!r.ok) return { status: 409, body: { status: 'error', code: 'E_USAGE', error: r.reason, reason: r.reason, transaction: null } };
    return reportReply(r.report);
  });

  r.add('POST', '/api/v1/config/rollback', 'admin', async ({ req, url, principal }) => {
    query(url, []);
    const body = jsonObject(parseJson(await readBody(req), env.metrics));
    onlyFields(body, ['version', 'wait']);
    const v = body['version'];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw badInput('version', `expected a version number >= 1, got ${JSON.stringify(v) ?? 'nothing'}`);
    const wait = body['wait'] === undefined ? 'settled' : waitOf(body['wait']);
    if (!config.version(v)) throw notFound(`configuration version ${v}`);
    return answer(config.rollbackTo(v, principal!.principal, 'technician'), wait);
  });
}

// ---- PUT /api/v1/config ----------------------------------------------------------------

type Wait = 'staged' | 'settled';

/** What a PUT asks for, from its query and its body (a field given in both is refused). */
interface PutFields {
  content: string;
  baseVersion?: number | null;
  force?: boolean;
  confirmWithinMs?: number;
  wait?: Wait;
}

type Options = Omit<PutFields, 'content'>;

/** Each option's name in the query, for the error of one given twice. */
const QUERY_NAME: Record<keyof Options, string> = { baseVersion: 'base', force: 'force', confirmWithinMs: 'confirmWithin', wait: 'wait' };

async function putConfig(config: ConfigService, env: RouteEnv, { req, url, principal }: ApiRequest): Promise<Reply> {
  const fromQuery = queryFields(query(url, PUT_QUERY));
  // the content type first: a body of a type not taken is not read
  const json = isJson(req);
  const raw = await readConfigBody(req);
  const fromBody = json ? jsonFields(raw, env) : { content: raw };
  for (const k of Object.keys(QUERY_NAME) as (keyof Options)[]) {
    if (fromQuery[k] !== undefined && fromBody[k] !== undefined) throw badInput(QUERY_NAME[k], 'given both in the query and in the body');
  }
  const fields: PutFields = { ...fromQuery, ...fromBody };
  if (fields.content.trim() === '') throw badInput('body', 'empty; expected the whole devices.yaml');
  const request: ConfigChangeRequest = {
    source: 'technician',
    principal: principal!.principal,
    content: fields.content,
    ...(fields.baseVersion !== undefined ? { baseVersion: fields.baseVersion } : {}),
    ...(fields.force !== undefined ? { force: fields.force } : {}),
    ...(fields.confirmWithinMs !== undefined ? { confirmWithinMs: fields.confirmWithinMs } : {}),
  };
  return answer(config.submit(request), fields.wait ?? 'settled');
}

/** The first report (`wait=staged`) or the settled one; a change refused at once settles with that refusal. */
async function answer(submitted: ConfigSubmitted, wait: Wait): Promise<Reply> {
  const report = wait === 'staged' || submitted.first.stage === 'rejected' ? submitted.first : await submitted.settled;
  return reportReply(report);
}

function queryFields(q: Map<string, string>): Options {
  const out: Options = {};
  if (q.has('base')) out.baseVersion = intParam(q, 'base', 0, 0, Number.MAX_SAFE_INTEGER);
  const force = q.get('force');
  if (force !== undefined) {
    // `?force` alone is force=true
    if (force === '' || force === 'true' || force === '1') out.force = true;
    else if (force === 'false' || force === '0') out.force = false;
    else throw badInput('force', `expected true or false, got ${JSON.stringify(force.slice(0, 40))}`);
  }
  const within = q.get('confirmWithin');
  if (within !== undefined) out.confirmWithinMs = confirmWithinMs(within, 'confirmWithin');
  const wait = q.get('wait');
  if (wait !== undefined) out.wait = waitOf(wait);
  return out;
}

/**
 * The JSON envelope `{ content, baseVersion?, force?, confirmWithin?, wait? }`; a program may
 * give `confirmWithinMs` (ms) instead of `confirmWithin`, and `wait` as a boolean (true: settled).
 */
function jsonFields(raw: string, env: RouteEnv): PutFields {
  // the nesting limit of every JSON door; the size limit is this door's (a devices.yaml in a string)
  const parsed = parseJsonWithin(raw, { maxBytes: MAX_CONFIG_BODY_BYTES, maxDepth: MAX_JSON_DEPTH });
  if (!parsed.ok) {
    if (parsed.limit !== null) env.metrics.jsonRefused(parsed.limit);
    throw badInput('body', parsed.limit === null ? `malformed JSON (${parsed.error})` : parsed.error);
  }
  const body = jsonObject(parsed);
  onlyFields(body, JSON_FIELDS);
  const content = body['content'];
  if (typeof content !== 'string') throw badInput('content', 'expected the whole devices.yaml as a string');
  const out: PutFields = { content };
  const base = body['baseVersion'];
  if (base !== undefined) {
    if (base !== null && (typeof base !== 'number' || !Number.isSafeInteger(base) || base < 0)) throw badInput('baseVersion', `expected a version number or null, got ${JSON.stringify(base)}`);
    out.baseVersion = base;
  }
  const force = body['force'];
  if (force !== undefined) {
    if (typeof force !== 'boolean') throw badInput('force', `expected true or false, got ${JSON.stringify(force)}`);
    out.force = force;
  }
  if (body['confirmWithin'] !== undefined && body['confirmWithinMs'] !== undefined) throw badInput('confirmWithinMs', 'give confirmWithin or confirmWithinMs, not both');
  if (body['confirmWithin'] !== undefined) out.confirmWithinMs = confirmWithinMs(body['confirmWithin'], 'confirmWithin');
  if (body['confirmWithinMs'] !== undefined) out.confirmWithinMs = confirmWithinMs(body['confirmWithinMs'], 'confirmWithinMs');
  if (body['wait'] !== undefined) out.wait = waitOf(body['wait']);
  return out;
}

function onlyFields(body: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(body)) if (!known.includes(k)) throw badInput(k, `unknown field (expected ${known.join(', ')})`);
}

/** `staged` or `settled` (in JSON also false or true). */
function waitOf(value: unknown): Wait {
  if (value === 'staged' || value === false) return 'staged';
  if (value === 'settled' || value === true) return 'settled';
  throw badInput('wait', `expected staged or settled, got ${JSON.stringify(value)?.slice(0, 40) ?? 'nothing'}`);
}

/** `5m`, `30s` (or a number of ms in JSON) within 1s..1d. */
function confirmWithinMs(value: unknown, field: string): number {
  const parsed = confirmWithinSchema.safeParse(value);
  if (!parsed.success || parsed.data < CONFIRM_MIN_MS || parsed.data > CONFIRM_MAX_MS) {
    throw badInput(field, `expected a duration 1s..1d like "30s" or "5m", got ${JSON.stringify(value)?.slice(0, 40) ?? 'nothing'}`);
  }
  return parsed.data;
}

/** JSON by its content type; YAML for the YAML and text types and for none; anything else 415. */
function isJson(req: IncomingMessage): boolean {
  const header = req.headers['content-type'];
  if (header === undefined || header.trim() === '') return false;
  const type = header.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return true;
  if (YAML_TYPES.has(type)) return false;
  throw new ApiError(415, 'E_USAGE', `unsupported content type ${JSON.stringify(type.slice(0, 60))} (expected application/yaml, text/plain or application/json)`, {
    field: 'content-type',
  });
}

/** The body as text, at most MAX_CONFIG_BODY_BYTES (413 past it); exactly the text sent, or refused (not UTF-8). */
function readConfigBody(req: IncomingMessage): Promise<string> {
  return readBodyWithin(req, { maxBytes: MAX_CONFIG_BODY_BYTES, tooLarge, strictUtf8: true });
}

function tooLarge(): ApiError {
  return new ApiError(413, 'E_CONFIG_TOO_LARGE', `larger than ${MAX_CONFIG_BODY_BYTES} bytes (1 MiB): a devices.yaml that large is not taken`, {
    field: 'body',
    headers: { Connection: 'close' },
  });
}

// ---- answers ---------------------------------------------------------------------------

function versionParam(raw: string | undefined, field: string): number {
  if (raw === undefined) throw badInput(field, 'required: a version number');
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw badInput(field, `expected a version number >= 1, got ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}

function reportReply(report: ConfigStageReport): Reply {
  return { status: reportStatus(report), headers: { Location: `/api/v1/config/changes/${encodeURIComponent(report.id)}` }, body: report };
}
