/**
 * A small router: a method and a path pattern (`/api/v1/devices/:id`) per route, each with
 * the permission it needs (roles.ts) or `public`. Matching is by whole segments; a path that
 * exists with another method answers 405 with `Allow`.
 *
 * A route is added with the zod schemas of its query and path parameters and its description
 * (RouteSpec): summary, tags, its body, its answers. The router parses the query and the path
 * parameters with those schemas before the handler runs (http.ts parseQuery: an unknown
 * parameter, one given twice or a bad value is a 400 naming it), and the OpenAPI document
 * (openapi.ts) is made from the same schemas and descriptions: it cannot say other than what is
 * checked. The description is a function, called only when a document is made, with the schemas
 * of the answers (answers.ts): until someone asks for the document, no route holds its words or
 * its answers' schemas (bench/footprint.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Permission, Principal } from '../control/roles.js';
import { ApiError } from './errors.js';
import { parseFields, parseQuery } from './http.js';
import type { Answers } from './answers.js';
import { NO_PARAMS, NO_QUERY } from './schemas.js';

/**
 * public: no token; authenticated: any valid token (the handler or the command pipeline
 * decides, so a refused command is still recorded); otherwise the permission needed.
 */
export type Access = 'public' | 'authenticated' | Permission;

/** What the server hands a route: the path parameters as decoded text. */
export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** null on public routes without a token */
  principal: Principal | null;
}

/** What a route's handler gets: the query and path parameters parsed by the route's schemas. */
export interface RouteRequest<Q = Record<string, never>, P = Record<string, never>> extends Omit<ApiRequest, 'params'> {
  query: Q;
  params: P;
}

export interface Reply {
  status: number;
  /** JSON-encoded unless `text` is given */
  body?: unknown;
  text?: string;
  /** bytes sent as they are (a static file, maybe gzipped: its headers say so); before `text` */
  bytes?: Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export type Handler = (r: ApiRequest) => Reply | Promise<Reply>;

/** One answer of a route, for the document. */
export interface ResponseDoc {
  description: string;
  /** the body's schema: JSON unless `contentType` says otherwise (a text: z.string()) */
  schema?: z.ZodType;
  contentType?: string;
  /** headers it carries: name → what it says */
  headers?: Record<string, string>;
}

/** A request body, for the document: each media type taken with its schema (null: any bytes of that type). */
export interface BodyDoc {
  description: string;
  content: Record<string, z.ZodType | null>;
  /** false: the body may be empty (default true) */
  required?: boolean;
}

/** A public route that checks a credential itself (the live feed: a ticket or a bearer token). */
export interface OwnAuth {
  /** security schemes of the document (openapi.ts): `bearer`, `ticket` */
  schemes: readonly ('bearer' | 'ticket')[];
  /** what the credential's role must be allowed */
  permission: Permission;
}

/** What the document says of a route, besides its parameters. */
export interface RouteDoc {
  /** unique, for generated clients: `listReadings`, `getDevice` */
  operationId: string;
  summary: string;
  description?: string;
  tags: readonly string[];
  body?: BodyDoc;
  /** by HTTP status; the router's own (401 and 403 by access, 400 for a route with parameters or a body) are added by the document */
  responses: Readonly<Record<number, ResponseDoc>>;
  auth?: OwnAuth;
}

/** A route as added: its parameters' schemas, its handler, which gets them parsed, and its description. */
export interface RouteSpec<Q extends z.ZodObject, P extends z.ZodObject> {
  method: Route['method'];
  path: string;
  access: Access;
  /** the query parameters (default: none, any is refused) */
  query?: Q;
  /** one schema per `:name` of the path, required when it has any */
  params?: P;
  handler: (r: RouteRequest<z.output<Q>, z.output<P>>) => Reply | Promise<Reply>;
  /** the description, made only for the document (openapi.ts), with that document's schemas of the answers */
  doc: (answers: Answers) => RouteDoc;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT';
  pattern: string;
  access: Access;
  handler: Handler;
  query: z.ZodObject;
  params: z.ZodObject;
  doc: (answers: Answers) => RouteDoc;
}

interface Compiled extends Route {
  segments: string[];
}

export type Match = { route: Route; params: Record<string, string> } | { allow: string[] } | null;

export class Router {
  private readonly routes: Compiled[] = [];

  /** Adds a route; throws when its params schema does not name exactly the `:name`s of its path (a bug, found at start). */
  add<Q extends z.ZodObject = typeof NO_QUERY, P extends z.ZodObject = typeof NO_PARAMS>(spec: RouteSpec<Q, P>): this {
    const { method, path, access, handler, query, params, doc } = spec;
    const segments = path.split('/').slice(1);
    const q: z.ZodObject = query ?? NO_QUERY;
    const p: z.ZodObject = params ?? NO_PARAMS;
    const named = segments.filter((s) => s.startsWith(':')).map((s) => s.slice(1));
    const schemaNames = Object.keys(p.shape);
    if (named.length !== schemaNames.length || named.some((n) => !schemaNames.includes(n))) {
      throw new Error(`route ${method} ${path}: the params schema names ${schemaNames.join(', ') || 'nothing'}, the path ${named.join(', ') || 'nothing'}`);
    }
    const parsed: Handler = (r) =>
      handler({ req: r.req, res: r.res, url: r.url, principal: r.principal, query: parseQuery(q, r.url) as z.output<Q>, params: parseFields(p, r.params) as z.output<P> });
    this.routes.push({ method, pattern: path, access, handler: parsed, query: q, params: p, doc, segments });
    return this;
  }

  /** The route for a method and path; `{ allow }` when only other methods match; null: 404. */
  match(method: string, path: string): Match {
    const parts = path.split('/').slice(1);
    const allow: string[] = [];
    for (const r of this.routes) {
      const params = matchSegments(r.segments, parts);
      if (!params) continue;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params };
      allow.push(r.method);
    }
    return allow.length > 0 ? { allow } : null;
  }

  list(): readonly Route[] {
    return this.routes;
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) {
      if (v === '') return null;
      let decoded: string;
      try {
        decoded = decodeURIComponent(v);
      } catch {
        throw new ApiError(400, 'E_USAGE', 'malformed percent-encoding', { field: p.slice(1) });
      }
      params[p.slice(1)] = decoded;
    } else if (p !== v) return null;
  }
  return params;
}
