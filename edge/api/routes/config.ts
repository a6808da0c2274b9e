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
import { z } from 'zod';
import { durationIn } from '../../config/scalars.js';
import { parseJsonWithin, MAX_JSON_DEPTH } from '../../jsonLimits.js';
import { CHANGE_ID_RE, MAX_CONFIG_BYTES } from '../../reconfig/records.js';
import type { ConfigChangeRequest, ConfigService, ConfigStageReport, ConfigSubmitted } from '../../reconfig/types.js';
import type { Answers } from '../answers.js';
import { ApiError, badInput, notFound } from '../errors.js';
import { parseBody, parseJson, readBody, readBodyWithin } from '../http.js';
import type { Reply, ResponseDoc, RouteRequest, Router } from '../router.js';
import { field, flag, integer, integerWords } from '../schemas.js';
import type { RouteEnv } from './env.js';

/** the body limit: the largest configuration text a gateway takes (edge/reconfig/records.ts) */
export const MAX_CONFIG_BODY_BYTES = MAX_CONFIG_BYTES;

/** commit-confirm's window: from a few seconds (a script) to a day */
const CONFIRM_MIN_MS = 1000;
const CONFIRM_MAX_MS = 86_400_000;
const CONFIRM_WORDS = 'expected a duration 1s..1d like "30s" or "5m"';
/** `5m`, `30s` (or a number of ms in JSON) within 1s..1d */
const confirmWithin = durationIn('1s', '1d').refine((ms) => ms >= CONFIRM_MIN_MS && ms <= CONFIRM_MAX_MS);

/** In the query a duration is text only (`5m`): a number there is no duration. */
const confirmWithinText = z.string().transform((s, ctx) => {
  const r = confirmWithin.safeParse(s);
  if (r.success) return r.data;
  ctx.issues.push({ code: 'custom', message: CONFIRM_WORDS, input: s });
  return z.NEVER;
});

const YAML_TYPES = new Set(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain']);

const WAIT = ['staged', 'settled'] as const;
const WAIT_WORDS = 'expected staged or settled';
const VERSION_WORDS = 'expected a version number >= 1';
const version = integer(1);

/** PUT's query: each option may be given here or in a JSON body, not both */
const putQuery = z.strictObject({
  base: field(integer(0), integerWords(0), { description: 'the version the text was edited from: an older one than the running one is refused as stale unless `force`' }),
  force: field(flag, 'expected true or false', { description: 'apply over a newer running version (`?force` alone is true)' }),
  confirmWithin: field(confirmWithinText, CONFIRM_WORDS, { description: 'commit-confirm: unless POST /api/v1/config/confirm comes within this (`5m`), the change rolls back' }),
  wait: field(z.enum(WAIT), WAIT_WORDS, { description: 'answer when the change is staged, or when it has settled (default)' }),
});

/** PUT's JSON envelope; a program may give `confirmWithinMs` (ms) and `wait` as a boolean (true: settled) */
const putEnvelope = z.strictObject({
  content: field(z.string(), 'expected the whole devices.yaml as a string', { description: 'the whole devices.yaml', required: true }),
  baseVersion: field(z.int().min(0).nullable(), 'expected a version number or null', { description: 'as `base`' }),
  force: field(z.boolean(), 'expected true or false', { description: 'as `force`' }),
  confirmWithin: field(confirmWithin, CONFIRM_WORDS, { description: 'as `confirmWithin` (a number: ms)' }),
  confirmWithinMs: field(confirmWithin, CONFIRM_WORDS, { description: 'as `confirmWithin`, in ms; not with it' }),
  wait: field(z.union([z.enum(WAIT), z.boolean()]), WAIT_WORDS, { description: 'as `wait` (true: settled, false: staged)' }),
});

const rollbackBody = z.strictObject({
  version: field(z.int().min(1), VERSION_WORDS, { description: 'the version whose text is applied again', required: true }),
  wait: field(z.union([z.enum(WAIT), z.boolean()]), WAIT_WORDS, { description: 'as PUT\'s `wait`' }),
});

const NO_BODY = z.strictObject({});

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

/** The answers of a change (PUT, confirm, rollback): its stage report, by its stage and code. */
const reports = (a: Answers): Readonly<Record<number, ResponseDoc>> => ({
  200: { description: 'confirmed', schema: a.configReport, headers: { Location: 'the change: /api/v1/config/changes/{id}' } },
  202: { description: 'staged, or applied awaiting a manual confirm', schema: a.configReport, headers: { Location: 'the change' } },
  403: { description: 'refused: E_CONFIG_FORBIDDEN (a change the role may not make)', schema: a.configReport },
  409: { description: 'rolled back, or refused: stale, duplicate, busy, unchanged, needs a restart, the probe failed', schema: a.configReport },
  413: { description: 'a text over 1 MiB (E_CONFIG_TOO_LARGE)', schema: a.errorBody },
  422: { description: 'refused: E_CONFIG_INVALID, with the problems at line:col', schema: a.configReport },
});

export function configRoutes(r: Router, env: RouteEnv): void {
  const config = env.deps.config;
  if (!config) return;

  r.add({
    method: 'PUT',
    path: '/api/v1/config',
    access: 'admin',
    query: putQuery,
    doc: (a) => ({
      operationId: 'putConfig',
      summary: 'Applies a new devices.yaml',
      description:
        'Validated in full, applied to the components it touches, confirmed by a health probe or rolled back by itself. The body is the whole text (YAML, or text/plain, or no content type) or the JSON envelope; each option in the query or in the envelope, not both.',
      tags: ['config'],
      body: {
        description: 'the whole devices.yaml, at most 1 MiB',
        content: { 'application/yaml': z.string(), 'text/plain': z.string(), 'application/json': putEnvelope },
      },
      responses: { ...reports(a), 415: { description: 'a content type not taken', schema: a.errorBody } },
    }),
    handler: (req) => putConfig(config, env, req),
  });

  r.add({
    method: 'GET',
    path: '/api/v1/config/versions',
    access: 'config.view',
    query: z.strictObject({
      limit: field(integer(1, 1000), integerWords(1, 1000), { description: 'at most this many', default: 50 }),
      before: field(integer(1), integerWords(1), { description: 'only versions before this one (paging)' }),
    }),
    doc: (a) => ({
      operationId: 'listConfigVersions',
      summary: 'The configuration versions, newest first',
      tags: ['config'],
      responses: { 200: { description: 'the versions, the running one and one awaiting a confirm', schema: a.configVersionList } },
    }),
    handler: ({ query: { limit, before } }) => {
      const versions = config.versions({ limit, ...(before !== undefined ? { before } : {}) });
      return { status: 200, body: { versions, running: config.running()?.version ?? null, awaitingConfirm: config.awaitingConfirm() } };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/config/versions/:v',
    access: 'config.view',
    params: z.strictObject({ v: field(version, VERSION_WORDS, { description: 'the version', required: true }) }),
    doc: (a) => ({
      operationId: 'getConfigVersion',
      summary: 'A configuration version with its text',
      description: 'Every secret of the text is `***`.',
      tags: ['config'],
      responses: {
        200: { description: 'the version and its redacted text', schema: a.configVersionText },
        404: { description: 'no such version', schema: a.errorBody },
      },
    }),
    handler: ({ params: { v } }) => {
      const found = config.version(v);
      if (!found) throw notFound(`configuration version ${v}`);
      // already redacted by the service: every secret is `***`
      return { status: 200, body: { version: found, content: config.content(v) ?? null } };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/config/diff',
    access: 'config.view',
    query: z.strictObject({
      a: field(version, VERSION_WORDS, { description: 'the version diffed from', required: 'required: a version number' }),
      b: field(version, VERSION_WORDS, { description: 'the version diffed to', required: 'required: a version number' }),
    }),
    doc: (a) => ({
      operationId: 'diffConfigVersions',
      summary: 'The unified diff between two versions',
      tags: ['config'],
      responses: {
        200: { description: 'the diff', contentType: 'text/plain; charset=utf-8', schema: z.string() },
        404: { description: 'no such version, or one without a text (refused before it became one)', schema: a.errorBody },
      },
    }),
    handler: ({ query: { a, b } }) => {
      for (const [name, v] of [['a', a], ['b', b]] as const) if (!config.version(v)) throw new ApiError(404, 'E_NOT_FOUND', `no configuration version ${v}`, { field: name });
      const diff = config.diff(a, b);
      if (diff === undefined) throw notFound(`text of configuration version ${a} or ${b} (a change refused before it became a text)`);
      return { status: 200, text: diff, contentType: 'text/plain; charset=utf-8' };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/config/changes/:id',
    access: 'config.view',
    params: z.strictObject({
      id: field(z.string().regex(CHANGE_ID_RE), 'expected a change id (letters, digits, "_", ".", ":", "-"; at most 128)', { description: "the change's id", required: true }),
    }),
    doc: (a) => ({
      operationId: 'getConfigChange',
      summary: 'The version a change became',
      tags: ['config'],
      responses: {
        200: { description: 'the version', schema: a.configVersion },
        404: { description: 'no such change', schema: a.errorBody },
      },
    }),
    handler: ({ params: { id } }) => {
      const found = config.change(id);
      if (!found) throw notFound(`configuration change ${id}`);
      return { status: 200, body: found };
    },
  });

  r.add({
    method: 'POST',
    path: '/api/v1/config/confirm',
    access: 'admin',
    doc: (a) => ({
      operationId: 'confirmConfig',
      summary: 'Confirms a change applied with commit-confirm',
      tags: ['config'],
      body: { description: 'empty, or {}', content: { 'application/json': NO_BODY }, required: false },
      responses: {
        200: reports(a)[200]!,
        409: { description: 'nothing awaits a confirm', schema: a.errorBody },
      },
    }),
    handler: async ({ req, principal }) => {
      parseBody(NO_BODY, parseJson(await readBody(req), env.metrics));
      const done = config.confirm(principal!.principal);
      if (!done.ok) return { status: 409, body: { status: 'error', code: 'E_USAGE', error: done.reason, reason: done.reason, transaction: null } };
      return reportReply(done.report);
    },
  });

  r.add({
    method: 'POST',
    path: '/api/v1/config/rollback',
    access: 'admin',
    doc: (a) => ({
      operationId: 'rollbackConfig',
      summary: 'Applies the text of an earlier version again',
      description: 'A change like any other (validated, applied, probed), answered like PUT.',
      tags: ['config'],
      body: { description: 'the version to go back to', content: { 'application/json': rollbackBody } },
      responses: { ...reports(a), 404: { description: 'no such version', schema: a.errorBody } },
    }),
    handler: async ({ req, principal }) => {
      const body = parseBody(rollbackBody, parseJson(await readBody(req), env.metrics));
      if (!config.version(body.version)) throw notFound(`configuration version ${body.version}`);
      return answer(config.rollbackTo(body.version, principal!.principal, 'technician'), waitOf(body.wait));
    },
  });
}

// ---- PUT /api/v1/config ----------------------------------------------------------------

type Wait = (typeof WAIT)[number];

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

async function putConfig(config: ConfigService, env: RouteEnv, { req, query, principal }: RouteRequest<z.output<typeof putQuery>, unknown>): Promise<Reply> {
  const fromQuery = defined({ baseVersion: query.base, force: query.force, confirmWithinMs: query.confirmWithin, wait: query.wait });
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

/** The fields that are set (exactOptionalPropertyTypes: an absent option is no key at all). */
function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The JSON envelope (putEnvelope), within the nesting limit of every JSON door and this door's size limit. */
function jsonFields(raw: string, env: RouteEnv): PutFields {
  const parsed = parseJsonWithin(raw, { maxBytes: MAX_CONFIG_BODY_BYTES, maxDepth: MAX_JSON_DEPTH });
  if (!parsed.ok) {
    if (parsed.limit !== null) env.metrics.jsonRefused(parsed.limit);
    throw badInput('body', parsed.limit === null ? `malformed JSON (${parsed.error})` : parsed.error);
  }
  const e = parseBody(putEnvelope, parsed);
  if (e.confirmWithin !== undefined && e.confirmWithinMs !== undefined) throw badInput('confirmWithinMs', 'give confirmWithin or confirmWithinMs, not both');
  return {
    content: e.content,
    ...defined({ baseVersion: e.baseVersion, force: e.force, confirmWithinMs: e.confirmWithin ?? e.confirmWithinMs }),
    ...(e.wait !== undefined ? { wait: waitOf(e.wait) } : {}),
  };
}

/** `staged` or `settled` (in JSON also false or true); absent: settled. */
function waitOf(value: Wait | boolean | undefined): Wait {
  return value === 'staged' || value === false ? 'staged' : 'settled';
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

function reportReply(report: ConfigStageReport): Reply {
  return { status: reportStatus(report), headers: { Location: `/api/v1/config/changes/${encodeURIComponent(report.id)}` }, body: report };
}
