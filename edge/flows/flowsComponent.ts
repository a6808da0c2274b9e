/**
 * Embedded Node-RED: the editor and runtime inside the gateway process, on the gateway's own HTTP
 * server (the API component's): the editor and admin API under nodeRed.path (default /flows),
 * HTTP-in nodes under nodeRed.httpNodePath, the editor's websocket on the same server. Start it
 * after the API component (it needs the API's http.Server) and after control.
 *
 * `nodeRed.enabled: false`: start() does nothing and `node-red` is never imported.
 *
 * Node-RED is a process-wide singleton (module state in @node-red/runtime): RED.init() runs once
 * per process; a stop()/start() (the supervisor's restart) stops and restarts the flows on the
 * same runtime. Containment: Node-RED catches what a node throws in its input handler and reports
 * it as a node error; the streetbox nodes guard their own async paths; the settings bound memory
 * (settings.ts).
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Component, GatewayContext } from '../component.js';
import type { CommandService } from '../control/api.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { StreetboxError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { loadBcrypt, loadNodeRed, type ExpressApp, type NodeRedEmbed } from './nodeRed.js';
import { createRuntime, flowGlobals, nightCheck } from './runtime.js';
import { adminUsers, buildSettings, normalisePath, preparePaths, type FlowPaths } from './settings.js';

/** What the flows component needs of the HTTP API component (edge/api ApiComponent). */
export interface FlowsHost {
  /** the gateway's http.Server, once the API has started */
  server(): Server;
  mount(prefix: string, handler: RequestListener): void;
  unmount(prefix: string): void;
}

export interface FlowsDeps {
  api: FlowsHost;
  commands: CommandService;
  modbus?: ModbusDriver | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface FlowsComponent extends Component {
  /** userDir and flowFile in use (after start) */
  paths(): FlowPaths | null;
  /** the Node-RED version running (after start) */
  version(): string | null;
}

export function createFlowsComponent(ctx: GatewayContext, deps: FlowsDeps): FlowsComponent {
  return new Flows(ctx, deps);
}

/** The process's one Node-RED, with the server and settings it was initialised with. */
let embedded: { red: NodeRedEmbed; server: Server; settings: Record<string, unknown> } | null = null;

class Flows implements FlowsComponent {
  readonly name = 'flows';
  private readonly log: Logger;
  private running: { red: NodeRedEmbed; mounts: string[]; upgrade: ((...a: unknown[]) => void)[]; close: () => void; paths: FlowPaths } | null = null;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly deps: FlowsDeps,
  ) {
    this.log = ctx.log.child({ module: 'flows' });
  }

  paths(): FlowPaths | null {
    return this.running?.paths ?? null;
  }

  version(): string | null {
    if (!this.running) return null;
    const v = this.running.red.version;
    return typeof v === 'function' ? v() : v;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const nr = this.ctx.config.nodeRed;
    if (!nr.enabled) {
      this.log.debug('node-red disabled (nodeRed.enabled: false)');
      return;
    }
    const t0 = performance.now();
    const server = this.deps.api.server();
    const paths = preparePaths(this.ctx);
    if (paths.seeded) this.log.info({ flowFile: paths.flowFile }, 'flow file seeded with the default flows');
    const runtime = createRuntime(this.ctx, this.deps, this.log.child({ module: 'flows-nodes' }));
    // 'upgrade' listeners: RED.init() adds some for good (websocket nodes); the editor's comms adds
    // one on every start and never removes it, so the ones a start adds are removed at stop
    let upgradeBefore = new Set(server.listeners('upgrade'));
    let red: NodeRedEmbed;
    let starting: NodeRedEmbed | null = null;
    try {
      const users = nr.editor ? await adminUsers(nr.users, loadBcrypt) : [];
      if (nr.editor && users.length === 0) this.log.warn('nodeRed.users is empty: nobody can log into the editor');
      red = await loadNodeRed();
      const settings = buildSettings({ ctx: this.ctx, paths, users, runtime, globals: flowGlobals(this.ctx, nightCheck(this.ctx)), log: this.log, ...(this.deps.env ? { env: this.deps.env } : {}) });
      if (embedded === null) {
        red.init(server, settings);
        embedded = { red, server, settings };
      } else if (embedded.server !== server) {
        throw new StreetboxError('E_COMPONENT', 'node-red is already initialised on another http server in this process (restart the gateway)');
      } else {
        // a restart: the same runtime; the nodes get the new gateway interfaces
        embedded.settings.streetbox = runtime;
      }
      upgradeBefore = new Set(server.listeners('upgrade'));
      const flowsStarted = whenFlowsStarted(red, FLOWS_START_TIMEOUT_MS);
      starting = red;
      await red.start();
      const outcome = await flowsStarted;
      await new Promise((r) => setImmediate(r));
      if (outcome !== 'started') this.log.warn({ outcome }, 'node-red is running but its flows did not start (see its warnings; fix them in the editor)');
    } catch (err) {
      // a half-started runtime is stopped, so the supervisor's retry starts it from scratch
      if (starting) await starting.stop().catch((e: unknown) => this.log.warn({ err: e }, 'node-red stop after a failed start failed'));
      runtime.close();
      this.removeUpgrade(server, upgradeBefore);
      throw err instanceof StreetboxError ? err : new StreetboxError('E_COMPONENT', `node-red failed to start: ${errorMessage(err)}`, { cause: err });
    }
    const mounts: string[] = [];
    const admin = red.httpAdmin;
    if (nr.editor && admin) {
      const prefix = normalisePath(nr.path);
      this.deps.api.mount(prefix, prefixed(prefix, admin, this.log));
      mounts.push(prefix);
    }
    const node = red.httpNode;
    if (node) {
      const prefix = normalisePath(nr.httpNodePath);
      this.deps.api.mount(prefix, prefixed(prefix, node, this.log));
      mounts.push(prefix);
    }
    const upgrade = server.listeners('upgrade').filter((l) => !upgradeBefore.has(l)) as ((...a: unknown[]) => void)[];
    this.running = { red, mounts, upgrade, close: () => runtime.close(), paths };
    this.log.info({ version: this.version(), editor: nr.editor ? normalisePath(nr.path) : false, httpNode: normalisePath(nr.httpNodePath), userDir: paths.userDir, flowFile: paths.flowFile, ms: Math.round(performance.now() - t0) }, 'node-red running');
  }

  async stop(): Promise<void> {
    const r = this.running;
    if (!r) return;
    this.running = null;
    for (const m of r.mounts) this.deps.api.unmount(m);
    try {
      await r.red.stop();
    } finally {
      r.close();
      if (embedded) for (const l of r.upgrade) embedded.server.off('upgrade', l);
      this.log.info('node-red stopped');
    }
  }

  private removeUpgrade(server: Server, before: Set<unknown>): void {
    for (const l of server.listeners('upgrade')) if (!before.has(l)) server.off('upgrade', l as (...a: unknown[]) => void);
  }
}

const FLOWS_START_TIMEOUT_MS = 15_000;

/** Resolves once the flows run ('started'), Node-RED stopped them (missing node types, safe mode), or on timeout. */
function whenFlowsStarted(red: NodeRedEmbed, timeoutMs: number): Promise<'started' | 'stopped' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (how: 'started' | 'stopped' | 'timeout'): void => {
      clearTimeout(timer);
      red.events.off('flows:started', onStarted);
      red.events.off('runtime-event', onEvent);
      resolve(how);
    };
    const onStarted = (): void => done('started');
    const onEvent = (e: { id?: string; payload?: { state?: string } }): void => {
      if (e.id === 'runtime-state' && e.payload?.state === 'stop') done('stopped');
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    timer.unref();
    red.events.on('flows:started', onStarted);
    red.events.on('runtime-event', onEvent);
  });
}

/** The 4xx status an express error carries (http-errors' `status`/`statusCode`), or null. */
function clientErrorStatus(err: unknown): number | null {
  if (err === null || typeof err !== 'object') return null;
  const e = err as { status?: unknown; statusCode?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : null;
  return status !== null && status >= 400 && status < 500 ? status : null;
}

/**
 * An express app mounted under `prefix`, as express's own app.use(prefix, app) does: the app sees
 * the path below the prefix, `originalUrl` keeps the whole one (the editor redirects /flows to /flows/).
 */
function prefixed(prefix: string, app: ExpressApp, log: Logger): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const original = req.url ?? '/';
    const rest = original.slice(prefix.length);
    const r = req as IncomingMessage & { originalUrl?: string };
    r.originalUrl ??= original;
    req.url = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
    try {
      app(req, res, (err?: unknown) => {
        // a bad request (malformed JSON, an unknown charset: body-parser's http-errors with a 4xx
        // status) is the client's: that status, at debug level (a flood must not flood the log)
        const status = clientErrorStatus(err);
        if (err && status === null) log.warn({ err, path: original.split('?')[0] }, 'node-red request failed');
        else if (err) log.debug({ status, path: original.split('?')[0] }, 'node-red refused a bad request');
        if (!res.headersSent) {
          res.statusCode = err ? (status ?? 500) : 404;
          res.setHeader('Content-Type', 'text/plain; charset=utf-8');
          res.end(err ? (status !== null ? 'bad request' : 'internal error') : 'not found');
        }
      });
    } catch (err) {
      log.error({ err, path: original.split('?')[0] }, 'node-red request threw');
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end('internal error');
      } else res.destroy();
    }
  };
}
