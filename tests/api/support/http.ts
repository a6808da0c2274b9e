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
      const r = await fetch(`http://127.0.0.1:${api.port()}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await r.text();
      let json: unknown = undefined;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON (metrics, page)
      }
      return { status: r.status, headers: r.headers, text, json };
    },
    async close() {
      await api.stop();
      await t.close();
    },
  };
}
