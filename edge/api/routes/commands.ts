/**
 * Commands over HTTP: POST /api/v1/devices/:device/commands and /api/v1/groups/:group/commands hand
 * the body to the command pipeline (edge/control CommandService) with the token's principal;
 * any valid token may try, so a refused command is recorded like any other. Answers:
 * - 202 `{ id, status: "queued", transaction? }`: accepted; the outcome follows (GET
 *   /api/v1/commands/:id, MQTT `commands/<id>`);
 * - a rejected command: `{ status: "error", code, error, id, transaction }` with
 *   403 for E_FORBIDDEN and E_INTERLOCK (the caller may not: role, allowCommands, a traffic
 *   controller's signal point), 404 for E_NOT_FOUND (unknown device or group) and 400 for
 *   everything else (E_INVALID_COMMAND: malformed JSON, a bad action, level 150, a negative
 *   duration …). Malformed JSON is handed to the pipeline too, so it is recorded; so is JSON
 *   past the limits of edge/jsonLimits.ts (`body: JSON nested deeper than 16 levels`, counted).
 * GET /api/v1/commands/:id, GET /api/v1/commands?limit=&status=. The body's schema in the OpenAPI
 * document is the pipeline's own (edge/control/validate.ts COMMAND_BODIES).
 */
import { z } from 'zod';
import { identifier } from '../../config/schema.js';
import type { CommandTargetRef } from '../../control/api.js';
import { commandBody as bodyToSubmit } from '../../jsonLimits.js';
import { COMMAND_STATUSES, type CommandStatus } from '../../store/types.js';
import type { Answers } from '../answers.js';
import { notFound } from '../errors.js';
import { parseJson, readBody } from '../http.js';
import type { Reply, Router, RouteRequest } from '../router.js';
import { field, ID_WORDS, integer, integerWords, oneOfWords } from '../schemas.js';
import type { RouteEnv } from './env.js';


/** The HTTP status of a rejected command, by the pipeline's error code. */
export function rejectionStatus(code: string | undefined): number {
  if (code === 'E_FORBIDDEN' || code === 'E_INTERLOCK' || code === 'E_UNAUTHORIZED') return 403;
  if (code === 'E_NOT_FOUND') return 404;
  return 400;
}

function transactionOf(body: unknown): string | number | undefined {
  const t = body !== null && typeof body === 'object' ? (body as { transaction?: unknown }).transaction : undefined;
  return typeof t === 'string' || typeof t === 'number' ? t : undefined;
}

const COMMAND_ID_RE = /^[A-Za-z0-9-]{1,64}$/;

const SUBMIT = `Any valid token may try: the command pipeline decides (roles, allowCommands, the safety rules of traffic controllers, priorities) and records a refusal like any other command. Accepted: 202 with the command's id; its outcome follows (GET /api/v1/commands/{id}, MQTT \`commands/<id>\`). Refused: 403 (E_FORBIDDEN, E_INTERLOCK), 404 (E_NOT_FOUND: no such device or group) or 400 (E_INVALID_COMMAND: malformed JSON, a bad action or field), each with the recorded row's \`id\`.`;

/** What POST …/commands takes (the pipeline's own schemas, answers.ts commandBody) and answers. */
const submitDoc = (a: Answers, what: string) => ({
  body: { description: 'the command: `{ "action": "dim", "level": 40, "durationS": 7200, "priority": 50 }`', content: { 'application/json': a.commandBody } },
  responses: {
    202: { description: 'accepted: queued', schema: a.commandAccepted, headers: { Location: 'the command: /api/v1/commands/{id}' } },
    400: { description: 'refused: a malformed body or a bad field (recorded)', schema: a.errorBody },
    403: { description: 'refused: the role may not, the device takes no commands, a safety rule (recorded)', schema: a.errorBody },
    404: { description: `refused: no such ${what} (recorded)`, schema: a.errorBody },
  },
});

export function commandRoutes(r: Router, env: RouteEnv): void {
  const submit = async (target: CommandTargetRef, { req, principal }: RouteRequest<unknown, unknown>): Promise<Reply> => {
    const raw = await readBody(req);
    const parsed = parseJson(raw, env.metrics);
    // malformed JSON as it is, JSON past the limits as its reason (never the text): recorded either way
    const body = bodyToSubmit(raw, parsed);
    const transaction = transactionOf(body);
    // answered at once with the row; its outcome is for GET /api/v1/commands/:id and the live feed
    const { row } = env.deps.commands.submit(target, body, principal!);
    if (row.status === 'rejected') {
      const result = (row.result ?? {}) as { code?: unknown; error?: unknown; field?: unknown };
      const code = typeof result.code === 'string' ? result.code : 'E_INVALID_COMMAND';
      const error = parsed.ok ? (typeof result.error === 'string' ? result.error : 'rejected') : `body: ${parsed.error}`;
      const field = parsed.ok ? (typeof result.field === 'string' ? result.field : null) : 'body';
      return { status: rejectionStatus(code), body: { status: 'error', code, error, field, id: row.id, transaction: transaction ?? null } };
    }
    // `queued`: the status at acceptance, the first of this door's sequence (GET /api/v1/commands/:id
    // continues it forwards); the live feed is a sequence of its own
    return {
      status: 202,
      headers: { Location: `/api/v1/commands/${row.id}` },
      body: { id: row.id, status: row.status, ...(transaction !== undefined ? { transaction } : {}) },
    };
  };

  r.add({
    method: 'POST',
    path: '/api/v1/devices/:device/commands',
    access: 'authenticated',
    params: z.strictObject({ device: field(identifier, ID_WORDS, { description: 'the device id', required: true }) }),
    doc: (a) => ({
      operationId: 'commandDevice',
      summary: 'Sends a command to a device',
      description: SUBMIT,
      tags: ['commands'],
      ...submitDoc(a, 'device'),
    }),
    handler: (req) => submit({ kind: 'device', id: req.params.device }, req),
  });

  r.add({
    method: 'POST',
    path: '/api/v1/groups/:group/commands',
    access: 'authenticated',
    params: z.strictObject({ group: field(identifier, ID_WORDS, { description: 'the group id', required: true }) }),
    doc: (a) => ({
      operationId: 'commandGroup',
      summary: 'Sends a command to every device of a group',
      description: SUBMIT,
      tags: ['commands'],
      ...submitDoc(a, 'group'),
    }),
    handler: (req) => submit({ kind: 'group', id: req.params.group }, req),
  });

  r.add({
    method: 'GET',
    path: '/api/v1/commands/:id',
    access: 'read',
    params: z.strictObject({ id: field(z.string().regex(COMMAND_ID_RE), 'expected a command id (uuid)', { description: "the command's id", required: true }) }),
    doc: (a) => ({
      operationId: 'getCommand',
      summary: 'A command and its outcome',
      description: 'Its status only moves forward: queued, sent, then verified, failed, expired or rejected.',
      tags: ['commands'],
      responses: {
        200: { description: 'the command', schema: a.command },
        404: { description: 'no such command', schema: a.errorBody },
      },
    }),
    handler: ({ params: { id } }) => {
      const row = env.deps.commands.get(id);
      if (!row) throw notFound(`command ${id}`);
      return { status: 200, body: row };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/commands',
    access: 'read',
    query: z.strictObject({
      limit: field(integer(1, 10_000), integerWords(1, 10_000), { description: 'at most this many', default: 100 }),
      status: field(z.enum(COMMAND_STATUSES as [CommandStatus, ...CommandStatus[]]), oneOfWords(COMMAND_STATUSES), { description: 'only commands in this status' }),
    }),
    doc: (a) => ({
      operationId: 'listCommands',
      summary: 'The newest commands',
      tags: ['commands'],
      responses: { 200: { description: 'the commands, newest first', schema: a.commandList } },
    }),
    handler: ({ query: { limit, status } }) => {
      const commands = env.deps.commands.list({ limit, ...(status !== undefined ? { status } : {}) });
      return { status: 200, body: { commands } };
    },
  });
}
