/**
 * A small router: a method and a path pattern (`/api/v1/devices/:id`) per route, each with
 * the permission it needs (roles.ts) or `public`. Matching is by whole segments; a path that
 * exists with another method answers 405 with `Allow`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Permission, Principal } from '../control/roles.js';
import { ApiError } from './errors.js';

/**
 * public: no token; authenticated: any valid token (the handler or the command pipeline
 * decides, so a refused command is still recorded); otherwise the permission needed.
 */
export type Access = 'public' | 'authenticated' | Permission;

export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** null on public routes without a token */
  principal: Principal | null;
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

export interface Route {
  method: 'GET' | 'POST' | 'PUT';
  pattern: string;
  access: Access;
  handler: Handler;
}

interface Compiled extends Route {
  segments: string[];
}

export type Match = { route: Route; params: Record<string, string> } | { allow: string[] } | null;

export class Router {
  private readonly routes: Compiled[] = [];

  add(method: Route['method'], pattern: string, access: Access, handler: Handler): this {
    this.routes.push({ method, pattern, access, handler, segments: pattern.split('/').slice(1) });
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
