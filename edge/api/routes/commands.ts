/**
 * Commands over HTTP: POST /api/v1/devices/:id/commands and /api/v1/groups/:g/commands hand
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
 * GET /api/v1/commands/:id, GET /api/v1/commands?limit=&status=.
 */
import type { CommandTargetRef } from '../../control/api.js';
import { commandBody } from '../../jsonLimits.js';
import { COMMAND_STATUSES, isCommandStatus } from '../../store/types.js';
import { notFound, badInput } from '../errors.js';
import { idParam, intParam, parseJson, query, readBody } from '../http.js';
import type { Reply, Router, ApiRequest } from '../router.js';
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

export function commandRoutes(r: Router, env: RouteEnv): void {
  const submit = async (kind: CommandTargetRef['kind'], { req, url, params, principal }: ApiRequest): Promise<Reply> => {
    query(url, []);
    const id = idParam(params['id'], kind === 'device' ? 'device' : 'group')!;
    const raw = await readBody(req);
    const parsed = parseJson(raw, env.metrics);
    // malformed JSON as it is, JSON past the limits as its reason (never the text): recorded either way
    const body = commandBody(raw, parsed);
    const transaction = transactionOf(body);
    // answered at once with the row; its outcome is for GET /api/v1/commands/:id and the live feed
    const { row } = env.deps.commands.submit({ kind, id }, body, principal!);
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

  r.add('POST', '/api/v1/devices/:id/commands', 'authenticated', (req) => submit('device', req));
  r.add('POST', '/api/v1/groups/:id/commands', 'authenticated', (req) => submit('group', req));

  r.add('GET', '/api/v1/commands/:id', 'read', ({ url, params }) => {
    query(url, []);
    const id = params['id']!;
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw badInput('id', 'expected a command id (uuid)');
    const row = env.deps.commands.get(id);
    if (!row) throw notFound(`command ${id}`);
    return { status: 200, body: row };
  });

  r.add('GET', '/api/v1/commands', 'read', ({ url }) => {
    const q = query(url, ['limit', 'status']);
    const limit = intParam(q, 'limit', 100, 1, 10_000);
    const status = q.get('status');
    if (status !== undefined && !isCommandStatus(status)) throw badInput('status', `expected one of ${COMMAND_STATUSES.join(', ')}, got ${JSON.stringify(status.slice(0, 40))}`);
    const commands = env.deps.commands.list({ limit, ...(status !== undefined ? { status } : {}) });
    return { status: 200, body: { commands } };
  });
}
