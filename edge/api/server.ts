/**
 * The HTTP API on node:http (no framework): bearer tokens with roles, the routes of
 * routes/*.ts, /metrics and the status page. The http.Server is exposed (`server()`) and
 * other handlers can be mounted under a prefix (`mount()`), so Node-RED's editor and HTTP
 * nodes share the port. With api.tls the server is HTTPS (node:https, the same handler), and
 * api.redirectPort a plain-HTTP server beside it that only redirects there (tls.ts).
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Component, GatewayContext } from '../component.js';
import type { Principal } from '../control/roles.js';
import type { Config } from '../config/schema.js';
import { can } from '../control/roles.js';
import { StreetboxError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { TokenTable } from './auth.js';
import { ApiError } from './errors.js';
import { send, sendJson } from './http.js';
import { ApiMetrics } from './metrics.js';
import { Router, type Reply, type Route } from './router.js';
import { commandRoutes } from './routes/commands.js';
import { configRoutes } from './routes/config.js';
import { consumerRoutes } from './routes/consumers.js';
import { dataRoutes } from './routes/data.js';
import { deploymentRoutes } from './routes/deployments.js';
import { deviceRoutes } from './routes/devices.js';
import { historyRoutes } from './routes/history.js';
import type { ApiDeps, RouteEnv } from './routes/env.js';
import { pageRoutes } from './routes/page.js';
import { systemRoutes } from './routes/system.js';
import { HSTS, SERVER_OPTIONS, httpsOptions, readApiTls, redirectListener } from './tls.js';

export type { ApiDeps };

export interface ApiComponent extends Component {
  /** the bound port, once started (api.port 0 binds a free one) */
  port(): number;
  /** the http.Server (an https.Server with api.tls), once started: Node-RED attaches its WebSocket upgrade handler to it */
  server(): Server;
  /** Sends requests under `prefix` (say "/flows") that no API route matches to `handler`. */
  mount(prefix: string, handler: RequestListener): void;
  unmount(prefix: string): void;
  routes(): readonly Route[];
  /**
   * Replaces the bearer tokens (a config change, issue 16): the next request is checked against
   * them; requests under way and open connections (the live feed) are left as they are.
   */
  setTokens(tokens: Config['api']['tokens']): void;
}

export function createApi(ctx: GatewayContext, deps: ApiDeps): ApiComponent {
  return new HttpApi(ctx, deps);
}

class HttpApi implements ApiComponent {
  readonly name = 'api';
  private readonly log: Logger;
  private readonly router = new Router();
  private readonly env: RouteEnv;
  private readonly mounts = new Map<string, RequestListener>();
  private tokens: TokenTable;
  private http: Server | null = null;
  /** api.redirectPort's plain-HTTP server */
  private redirect: Server | null = null;
  private boundPort: number | null = null;

  constructor(
    private readonly ctx: GatewayContext,
    deps: ApiDeps,
  ) {
    this.log = ctx.log.child({ module: 'api' });
    this.env = { ctx, deps, metrics: new ApiMetrics(ctx.bus), availability: new Map(), tokenWatchers: [] };
    this.tokens = new TokenTable(ctx.config.api.tokens);
    // configRoutes adds nothing without deps.config, deploymentRoutes nothing without deps.firmware
    for (const add of [systemRoutes, deviceRoutes, dataRoutes, historyRoutes, consumerRoutes, commandRoutes, configRoutes, deploymentRoutes, pageRoutes]) add(this.router, this.env);
  }

  port(): number {
    if (this.boundPort === null) throw new StreetboxError('E_COMPONENT', 'api not started');
    return this.boundPort;
  }

  server(): Server {
    if (!this.http) throw new StreetboxError('E_COMPONENT', 'api not started');
    return this.http;
  }

  mount(prefix: string, handler: RequestListener): void {
    this.mounts.set(prefix.replace(/\/+$/, '') || '/', handler);
  }

  unmount(prefix: string): void {
    this.mounts.delete(prefix.replace(/\/+$/, '') || '/');
  }

  routes(): readonly Route[] {
    return this.router.list();
  }

  setTokens(tokens: Config['api']['tokens']): void {
    this.tokens = new TokenTable(tokens);
    // a removed token, or one whose role changed, no longer holds anything open (the live feed)
    const still = (p: Principal): boolean => tokens.some((t) => t.name === p.principal && t.role === p.role);
    for (const watch of this.env.tokenWatchers) watch(still);
    // the tokens' names only, never a token
    this.log.info({ tokens: this.tokens.size, names: tokens.map((t) => t.name) }, 'api tokens replaced');
  }

  async start(): Promise<void> {
    if (this.http) return;
    const cfg = this.ctx.config.api;
    // the files first: a bad one is a start error naming its key, with nothing started yet
    const tls = cfg.tls === undefined ? null : readApiTls(cfg.tls, this.ctx.configDir);
    this.env.metrics.start();
    this.ctx.bus.on(this, 'event', (e) => {
      if (e.device === null) return;
      if (e.kind === 'comms.lost') this.env.availability.set(e.device, { online: false, since: e.ts });
      else if (e.kind === 'comms.restored') this.env.availability.set(e.device, { online: true, since: e.ts });
    });
    const listener: RequestListener = (req, res) => {
      // on every HTTPS answer, the mounted handlers' (Node-RED's editor) too
      if (tls) res.setHeader('Strict-Transport-Security', HSTS);
      void this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err }, 'api request failed');
        if (!res.headersSent) sendJson(res, 500, { status: 'error', code: 'E_COMPONENT', error: 'internal error', transaction: null });
        else res.destroy();
      });
    };
    const server = tls ? createHttpsServer(httpsOptions(tls), listener) : createServer(SERVER_OPTIONS, listener);
    const redirectAt = cfg.redirectPort;
    const redirect = redirectAt === undefined ? null : createServer(SERVER_OPTIONS, redirectListener(() => this.boundPort ?? cfg.port));
    let redirectPort: number | undefined;
    try {
      this.boundPort = await listen(server, cfg.port, cfg.host, 'api');
      if (redirect && redirectAt !== undefined) redirectPort = await listen(redirect, redirectAt, cfg.host, 'api.redirectPort');
    } catch (err) {
      this.boundPort = null;
      await closeServer(server);
      this.ctx.bus.off(this);
      this.env.metrics.stop();
      throw err;
    }
    this.http = server;
    this.redirect = redirect;
    const tlsFields = tls ? { tls: true, redirectPort, certificate: tls.certificate.subject, validTo: tls.certificate.validTo } : { tls: false };
    this.log.info({ host: cfg.host, port: this.boundPort, ...tlsFields, tokens: this.tokens.size, metricsAuth: cfg.metricsAuth }, 'http api listening');
  }

  async stop(): Promise<void> {
    const server = this.http;
    if (!server) return;
    const redirect = this.redirect;
    this.http = null;
    this.redirect = null;
    this.boundPort = null;
    this.ctx.bus.off(this);
    this.env.metrics.stop();
    await Promise.all([closeServer(server), redirect && closeServer(redirect)]);
    this.log.info('http api stopped');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return this.finish(req, res, started, null, { status: 400, body: { status: 'error', code: 'E_USAGE', error: 'malformed request URL', transaction: null } });
    }
    let reply: Reply;
    let who: string | null = null;
    try {
      const match = this.router.match(req.method ?? 'GET', url.pathname);
      if (match === null) {
        const mounted = this.mounted(url.pathname);
        if (mounted) {
          mounted(req, res);
          return;
        }
        throw new ApiError(404, 'E_NOT_FOUND', `no route ${url.pathname}`);
      }
      if ('allow' in match) throw new ApiError(405, 'E_USAGE', `${req.method ?? ''} is not allowed on ${url.pathname}`, { headers: { Allow: match.allow.join(', ') } });
      const check = this.tokens.check(req);
      const principal = check.kind === 'ok' ? check.principal : null;
      who = principal?.principal ?? null;
      const access = match.route.access;
      if (access !== 'public') {
        if (check.kind !== 'ok') {
          const challenge = check.kind === 'invalid' ? 'Bearer realm="streetbox", error="invalid_token"' : 'Bearer realm="streetbox"';
          throw new ApiError(401, 'E_UNAUTHORIZED', check.kind === 'invalid' ? 'invalid bearer token' : 'a bearer token is required', { headers: { 'WWW-Authenticate': challenge } });
        }
        if (access !== 'authenticated' && !can(check.principal.role, access)) {
          throw new ApiError(403, 'E_FORBIDDEN', `role ${check.principal.role} may not ${access}`);
        }
      }
      reply = await match.route.handler({ req, res, url, params: match.params, principal });
    } catch (err) {
      reply = this.errorReply(err, req, url);
    }
    this.finish(req, res, started, who, reply);
  }

  private mounted(path: string): RequestListener | undefined {
    for (const [prefix, handler] of this.mounts) {
      if (prefix === '/' || path === prefix || path.startsWith(`${prefix}/`)) return handler;
    }
    return undefined;
  }

  private errorReply(err: unknown, req: IncomingMessage, url: URL): Reply {
    if (err instanceof ApiError) {
      // the field a 400 is about, for a client to point at (the message names it too)
      return { status: err.httpStatus, headers: err.headers, body: { status: 'error', code: err.code, error: err.message, ...(err.field !== undefined ? { field: err.field } : {}), transaction: null } };
    }
    if (err instanceof StreetboxError && (err.code === 'E_NOT_FOUND' || err.code === 'E_USAGE')) {
      return { status: err.code === 'E_NOT_FOUND' ? 404 : 400, body: { status: 'error', code: err.code, error: err.message, transaction: null } };
    }
    this.log.error({ err, method: req.method, path: url.pathname }, 'api handler failed');
    return { status: 500, body: { status: 'error', code: 'E_COMPONENT', error: 'internal error', transaction: null } };
  }

  private finish(req: IncomingMessage, res: ServerResponse, started: number, who: string | null, reply: Reply): void {
    this.env.metrics.request(reply.status);
    const text = reply.bytes ?? reply.text ?? JSON.stringify(reply.body ?? null);
    const type = reply.contentType ?? 'application/json; charset=utf-8';
    if (req.method === 'HEAD') {
      send(res, reply.status, '', type, reply.headers ?? {});
    } else {
      send(res, reply.status, text, type, reply.headers ?? {});
    }
    // never the Authorization header or the query's values: the path, the token's name, the status
    this.log.debug({ method: req.method, path: req.url?.split('?')[0], status: reply.status, principal: who, ms: Math.round(performance.now() - started) }, 'http');
  }
}

/** Listens; resolves with the bound port, or rejects with an E_COMPONENT error saying where it could not. */
function listen(server: Server, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new StreetboxError('E_COMPONENT', `${what}: cannot listen on ${host}:${port}: ${errorMessage(err)}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops listening and ends every connection, idle or not (the live feed's too). */
function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  return closed;
}
