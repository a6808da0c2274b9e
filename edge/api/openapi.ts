/**
 * The OpenAPI 3.1 document of the HTTP API (GET /api/v1/openapi.json), made from the routes
 * themselves: each route's description (router.ts RouteDoc) with the zod schemas that validate
 * its query and path parameters, the command pipeline's body schemas, and the answers' schemas
 * (answers.ts), converted by zod's own JSON Schema output (draft 2020-12, the dialect of OpenAPI
 * 3.1). A route cannot be added without its description, so nothing is served that is not
 * described, and nothing is described that is not served.
 *
 * The schemas answers.ts names and every JSON body or answer of a route are listed once under
 * components.schemas and referred to; parameters and text answers are inline. The document of an
 * API instance is built at its first request, with the routes' descriptions and the answers'
 * schemas made for it (router.ts RouteSpec.doc, answers.ts), and served from memory with its ETag,
 * gzipped when the client accepts it (page.ts serveFile); the schemas and descriptions are not
 * kept.
 */
import { z } from 'zod';
import { packageVersion } from '../assets.js';
import { ROLE_LIST, can, type Permission } from '../control/roles.js';
import { answerSchemas, type Answers } from './answers.js';
import type { Route, RouteDoc, ResponseDoc, Router } from './router.js';
import { fileResponses, serveFile, served, type Served } from './routes/page.js';
import type { Named } from './schemas.js';

type Json = Record<string, unknown>;

const TARGET = { target: 'draft-2020-12', io: 'input' } as const;
const COMPONENTS = '#/components/schemas/';
const JSON_TYPE = 'application/json';

/** The tags, in the order a reader meets them. */
const TAGS: readonly { name: string; description: string }[] = [
  { name: 'system', description: 'health, status, metrics, this document' },
  { name: 'devices', description: 'the configured devices, their availability and latest values' },
  { name: 'data', description: "the buffer: readings and events by seq, the pull consumers' cursors, history per bucket" },
  { name: 'commands', description: 'commands to devices and groups, through the command pipeline (roles, safety, priorities, audit)' },
  { name: 'live', description: "the status page's live feed" },
  { name: 'config', description: 'configuration versions and changes (validated, applied, probed, confirmed or rolled back)' },
  { name: 'firmware', description: 'firmware deployments and artifacts' },
  { name: 'page', description: 'the status page and its files' },
];

const INFO_DESCRIPTION = [
  "The HTTP API of a streetbox gateway (an edge runtime for street cabinets). Each operation says the permission it needs (`x-streetbox-permission`); a bearer token of `api.tokens` has a role, and the role's permissions decide: technician (all), maintenance (read, lighting commands), central (read, pull, ack, commands, configuration versions, firmware), viewer (read).",
  'No token or an unknown one: 401 with `WWW-Authenticate`; a role that may not: 403. Every refusal and error has the body `{ "status": "error", "code", "error", "transaction" }`, a bad parameter or field named first in `error` (`limit: expected an integer 1..10000, got "x"`). Query parameters are strict: one an operation does not list, or one given twice, is a 400. A method a path does not list answers 405 with `Allow`; HEAD is taken wherever GET is. JSON bodies: at most 64 KiB (413) and 16 levels deep (400), unless an operation says otherwise.',
  "Node-RED's editor and its HTTP nodes are mounted under `/flows` on the same port: they are not routes of this API and are not described here (the editor has its own login, `nodeRed.adminUsers`).",
].join('\n\n');

/** `/api/v1/devices/:id` → `/api/v1/devices/{id}` */
export const openApiPath = (pattern: string): string => pattern.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** A schema's JSON without the keywords of a standalone document. */
function bare(schema: Json): Json {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/**
 * Every JSON body and answer: one conversion of a registry (zod refers from one to another by
 * $ref), named by answers.ts or after the operation (`AckConsumerBody`, `GetFoo200`).
 */
class Components {
  private readonly registry = z.registry<{ id: string }>();
  private readonly byId = new Map<string, z.ZodType>();

  /** Lists a schema under its name, also one no route refers to directly (the command bodies of a union, the parts of an answer). */
  readonly named: Named = (id, schema) => {
    const other = this.byId.get(id);
    if (other !== undefined && other !== schema) throw new Error(`openapi: two schemas named ${id}`);
    if (other === undefined) {
      this.byId.set(id, schema);
      this.registry.add(schema, { id });
    }
    return schema;
  };

  /** The $ref of a JSON schema, registered under its name (or `fallback`); once per schema. */
  ref(schema: z.ZodType, fallback: string): Json {
    const id = this.registry.get(schema)?.id ?? fallback;
    this.named(id, schema);
    return { $ref: `${COMPONENTS}${id}` };
  }

  schemas(): Json {
    const { schemas } = z.toJSONSchema(this.registry, { ...TARGET, uri: (id) => `${COMPONENTS}${id}` });
    return Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, bare(s as Json)]));
  }
}

const pascal = (s: string): string => s[0]!.toUpperCase() + s.slice(1);

/** A media type's schema: JSON by reference, anything else (text) inline; null: any bytes. */
function media(c: Components, type: string, schema: z.ZodType | null | undefined, name: string): Json {
  if (!schema) return {};
  return { schema: type.startsWith(JSON_TYPE) ? c.ref(schema, name) : bare(z.toJSONSchema(schema, TARGET) as Json) };
}

/** Parameters from an object schema: each property one, its description beside its schema. */
function parameters(schema: z.ZodObject, where: 'query' | 'path'): Json[] {
  const json = z.toJSONSchema(schema, TARGET) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, { description, ...s }]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    ...(typeof description === 'string' ? { description } : {}),
    schema: s,
    // a list is given comma-separated (`points=a,b`)
    ...(s['type'] === 'array' ? { style: 'form', explode: false } : {}),
  }));
}

/** The roles a permission is given to, in words. */
function whoMay(permission: Permission): string {
  return `\`${permission}\` (${ROLE_LIST.filter((r) => can(r, permission)).join(', ')})`;
}

function permissionText(route: Route, d: RouteDoc): string {
  const own = d.auth;
  if (own) return `Permission: ${whoMay(own.permission)}, checked by the operation itself (${own.schemes.join(' or ')}).`;
  if (route.access === 'public') return 'Public: no token.';
  if (route.access === 'authenticated') return 'Permission: any valid token; the command pipeline decides (a refusal is recorded).';
  return `Permission: ${whoMay(route.access)}.`;
}

/** The answers the router gives by itself: 401 and 403 by access, 400 for a route that takes parameters or a body, 413 for a body. */
function routerResponses(route: Route, d: RouteDoc): Record<number, string> {
  const out: Record<number, string> = {};
  const takes = Object.keys(route.query.shape).length > 0 || Object.keys(route.params.shape).length > 0 || d.body !== undefined;
  if (takes) out[400] = 'BadRequest';
  if (route.access !== 'public') out[401] = 'Unauthorized';
  if (route.access !== 'public' && route.access !== 'authenticated') out[403] = 'Forbidden';
  if (d.body?.content[JSON_TYPE] !== undefined) out[413] = 'TooLarge';
  return out;
}

function response(c: Components, r: ResponseDoc, name: string): Json {
  const type = r.contentType ?? JSON_TYPE;
  return {
    description: r.description,
    ...(r.headers ? { headers: Object.fromEntries(Object.entries(r.headers).map(([h, description]) => [h, { description, schema: { type: 'string' } }])) } : {}),
    ...(r.schema ? { content: { [type]: media(c, type, r.schema, name) } } : {}),
  };
}

function operation(c: Components, route: Route, d: RouteDoc): Json {
  const op = pascal(d.operationId);
  const own = d.auth;
  const responses: Record<string, Json> = {};
  for (const [status, ref] of Object.entries(routerResponses(route, d))) responses[status] = { $ref: `#/components/responses/${ref}` };
  for (const [status, r] of Object.entries(d.responses)) responses[status] = response(c, r, `${op}${status}`);
  const params = [...parameters(route.params, 'path'), ...parameters(route.query, 'query')];
  return {
    operationId: d.operationId,
    summary: d.summary,
    description: [d.description, permissionText(route, d)].filter((s) => s !== undefined).join('\n\n'),
    tags: d.tags,
    'x-streetbox-permission': own?.permission ?? route.access,
    security: own ? own.schemes.map((s) => ({ [s]: [] })) : route.access === 'public' ? [] : [{ bearer: [] }],
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(d.body
      ? {
          requestBody: {
            description: d.body.description,
            required: d.body.required ?? true,
            content: Object.fromEntries(Object.entries(d.body.content).map(([type, s]) => [type, media(c, type, s, `${op}Body`)])),
          },
        }
      : {}),
    responses,
  };
}

/** The error answers every operation may refer to. */
function sharedResponses(c: Components, errorBody: Answers['errorBody']): Json {
  const error = (description: string, headers?: Json): Json => ({
    description,
    ...(headers ? { headers } : {}),
    content: { [JSON_TYPE]: { schema: c.ref(errorBody, 'Error') } },
  });
  const challenge = { description: '`Bearer realm="streetbox"`, with `error="invalid_token"` when a token was given', schema: { type: 'string' } };
  return {
    BadRequest: error('a bad parameter or body field, named first in `error` (and in `field` where the operation sets it)'),
    Unauthorized: error('no bearer token, or an unknown one', { 'WWW-Authenticate': challenge }),
    Forbidden: error("the token's role lacks the permission"),
    TooLarge: error('a body over 64 KiB (the connection is closed)'),
  };
}

/** The document of these routes. */
export function openApiDocument(routes: readonly Route[], version: string = packageVersion()): Json {
  const c = new Components();
  const answers = answerSchemas(c.named);
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const path = (paths[openApiPath(route.pattern)] ??= {});
    path[route.method.toLowerCase()] = operation(c, route, route.doc(answers));
  }
  const responses = sharedResponses(c, answers.errorBody);
  return {
    openapi: '3.1.0',
    info: { title: 'streetbox', version, description: INFO_DESCRIPTION, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } },
    servers: [{ url: '/', description: 'the gateway that serves this document' }],
    tags: TAGS,
    paths,
    components: {
      schemas: c.schemas(),
      responses,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: "a token of `api.tokens` in devices.yaml; its role's permissions decide" },
        ticket: { type: 'apiKey', in: 'query', name: 'ticket', description: 'a single-use ticket of POST /api/v1/live/ticket (EventSource cannot send a header)' },
      },
    },
  };
}

/**
 * GET /api/v1/openapi.json. Public: it describes the routes, it holds no data of the gateway (no
 * device, no gateway id, no token), and the tools that read it (Postman, code generators, Swagger
 * UI) fetch it without a token; the version it names is the release's, which the status page's
 * public files already give away by their ETags.
 */
export function openApiRoute(r: Router): void {
  let document: Served | null = null;
  const type = 'application/json; charset=utf-8';
  r.add({
    method: 'GET',
    path: '/api/v1/openapi.json',
    access: 'public',
    doc: (a) => ({
      operationId: 'getOpenApi',
      summary: 'This document',
      description: 'OpenAPI 3.1, made from the routes and the zod schemas that validate their requests. Served with its ETag, gzipped when the request accepts it.',
      tags: ['system'],
      responses: { ...fileResponses('the document', type), 200: { ...fileResponses('', type)[200]!, description: 'the document', schema: a.openApiDocument } },
    }),
    // built at the first request, when every route of this instance is there
    handler: ({ req }) => serveFile(req, (document ??= served(Buffer.from(JSON.stringify(openApiDocument(r.list())), 'utf8'))), type),
  });
}
