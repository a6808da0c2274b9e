/** An API under test: a real store, the in-test CommandService, and fetch on 127.0.0.1. */
import { createApi, type ApiComponent, type ApiDeps } from '../../../edge/api/index.js';
import type { ConfigInput } from '../../../edge/config/schema.js';
import type { Role } from '../../../edge/control/roles.js';
import type { Logger } from '../../../edge/log.js';
import type { TestContext } from '../../helpers/context.js';
import { RecordingCommands } from './commands.js';
import { KNOWN, gatewayContext } from './context.js';

export const TOKENS: Record<Role, string> = {
  technician: 'tech-token-0123456789abcdef',
  maintenance: 'maint-token-0123456789abcdef',
  central: 'central-token-0123456789abcdef',
  viewer: 'viewer-token-0123456789abcdef',
};

export interface Api {
  t: TestContext;
  api: ApiComponent;
  commands: RecordingCommands;
  call(method: string, path: string, opts?: { token?: string | null; role?: Role; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<Res>;
  /** A request with any body and content type (call() sends JSON): the body as given, no Content-Type unless `type`. */
  send(method: string, path: string, opts?: { role?: Role; body?: string | Buffer; type?: string }): Promise<Res>;
  close(): Promise<void>;
}

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function startApi(extra: Omit<ConfigInput, 'gateway'> = {}, deps: Partial<ApiDeps> = {}, log?: Logger): Promise<Api> {
  const t = gatewayContext({
    api: { host: '127.0.0.1', port: 0, tokens: (Object.keys(TOKENS) as Role[]).map((role) => ({ name: `${role}-token`, token: TOKENS[role], role })), ...(extra.api ?? {}) },
    ...extra,
  });
  if (log) t.ctx.log = log;
  const commands = new RecordingCommands(t.store, KNOWN);
  const api = createApi(t.ctx, { commands, status: () => ({ components: [{ name: 'api', state: 'running', lastError: null }] }), ...deps });
  await api.start();
  return {
    t,
    api,
    commands,
    async call(method, path, opts = {}) {
      const token = opts.token !== undefined ? opts.token : opts.role ? TOKENS[opts.role] : null;
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (token !== null) headers['Authorization'] = `Bearer ${token}`;
      let body: string | undefined;
      if (opts.raw !== undefined) body = opts.raw;
      else if (opts.body !== undefined) body = JSON.stringify(opts.body);
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      return res(await fetch(`http://127.0.0.1:${api.port()}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) }));
    },
    async send(method, path, opts = {}) {
      const headers: Record<string, string> = {};
      if (opts.role) headers['Authorization'] = `Bearer ${TOKENS[opts.role]}`;
      if (opts.type !== undefined) headers['Content-Type'] = opts.type;
      return res(await fetch(`http://127.0.0.1:${api.port()}${path}`, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) }));
    },
    async close() {
      await api.stop();
      await t.close();
    },
  };
}

/** An answer read in full; `json` when its text parses (not: metrics, a page, a diff). */
async function res(r: Response): Promise<Res> {
  const text = await r.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** A route's access rule: the letters of the roles that may (T technician, M maintenance, C central, V viewer), and its status for them. */
export interface RouteAccess {
  method: string;
  path: string;
  /** sent as JSON */
  body?: unknown;
  /** sent as it is, as application/json */
  raw?: string;
  may: string;
  ok: number;
}

const LETTER: Record<Role, string> = { technician: 'T', maintenance: 'M', central: 'C', viewer: 'V' };

/** The status every role and a caller without a token get from `route` (`got`), and what its rule says they should (`want`: ok, 403, 401). */
export async function accessByCaller(api: Api, route: RouteAccess): Promise<{ got: Record<string, number>; want: Record<string, number> }> {
  const got: Record<string, number> = {};
  const want: Record<string, number> = {};
  for (const who of ['technician', 'maintenance', 'central', 'viewer', 'none'] as const) {
    const r = await api.call(route.method, route.path, { ...(who !== 'none' ? { role: who } : {}), ...(route.body !== undefined ? { body: route.body } : {}), ...(route.raw !== undefined ? { raw: route.raw } : {}) });
    got[who] = r.status;
    want[who] = who === 'none' ? 401 : route.may.includes(LETTER[who]) ? route.ok : 403;
  }
  return { got, want };
}
