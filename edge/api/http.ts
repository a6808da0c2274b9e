/**
 * Request and response plumbing of the API on node:http: JSON bodies with a size limit and a
 * nesting limit (edge/jsonLimits.ts), query and path parameters and body fields parsed by their
 * zod schemas (schemas.ts) with the field named, security headers on every answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { MAX_JSON_BYTES, parseJsonWithin, type JsonLimit } from '../jsonLimits.js';
import { ApiError, badInput } from './errors.js';
import { fieldWords } from './schemas.js';

/** Larger request bodies are refused with 413 before they are read to the end. */
export const MAX_BODY_BYTES = MAX_JSON_BYTES;

/** Headers on every API answer: nothing is cached, nothing is sniffed or framed. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
};

export function send(res: ServerResponse, status: number, body: string | Buffer, contentType: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify(body), 'application/json; charset=utf-8', headers);
}

/** The raw body as text, at most MAX_BODY_BYTES (413 past that). */
export function readBody(req: IncomingMessage): Promise<string> {
  return readBodyWithin(req, { maxBytes: MAX_BODY_BYTES, tooLarge });
}

/**
 * The raw body as text, at most `maxBytes` (`tooLarge()` past it, before it is read to the end).
 * `strictUtf8`: bytes that are not UTF-8 are refused (400), never turned into U+FFFD.
 */
export async function readBodyWithin(req: IncomingMessage, opts: { maxBytes: number; tooLarge: () => ApiError; strictUtf8?: boolean }): Promise<string> {
  const bytes = await readBytesWithin(req, opts);
  if (!opts.strictUtf8) return bytes.toString('utf8');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, 'E_USAGE', 'the body is not UTF-8 text', { field: 'body' });
  }
}

/**
 * The raw body, at most `maxBytes` (`tooLarge()` past it, from the Content-Length or as soon as the
 * bytes read pass it, before the body is read to the end).
 */
export function readBytesWithin(req: IncomingMessage, opts: { maxBytes: number; tooLarge: () => ApiError }): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > opts.maxBytes) return Promise.reject(opts.tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > opts.maxBytes) {
        done = true;
        chunks.length = 0;
        reject(opts.tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

function tooLarge(): ApiError {
  return new ApiError(413, 'E_USAGE', `larger than ${MAX_BODY_BYTES} bytes`, { field: 'body', headers: { Connection: 'close' } });
}

/**
 * A parsed body, or why not: `limit` null for malformed JSON, else the limit it is past; `error`
 * is the reason after `body: ` (`malformed JSON (…)`, `JSON nested deeper than 16 levels`).
 */
export type ParsedBody = { ok: true; value: unknown } | { ok: false; raw: string; limit: JsonLimit | null; error: string };

/** Where refusals by the JSON limits are counted (ApiMetrics). */
export interface JsonRefusals {
  jsonRefused(limit: JsonLimit): void;
}

/**
 * Parses a JSON body within the limits of edge/jsonLimits.ts (before anything recurses into it);
 * an empty body is `{}`. Malformed or refused JSON is returned, not thrown, for the callers that
 * record it; a refusal is counted in `refusals`.
 */
export function parseJson(raw: string, refusals?: JsonRefusals): ParsedBody {
  if (raw.trim() === '') return { ok: true, value: {} };
  const parsed = parseJsonWithin(raw);
  if (parsed.ok) return parsed;
  if (parsed.limit !== null) {
    refusals?.jsonRefused(parsed.limit);
    return { ok: false, raw, limit: parsed.limit, error: parsed.error };
  }
  return { ok: false, raw, limit: null, error: `malformed JSON (${parsed.error})` };
}

/** A JSON object body, or 400 naming `body`. */
export function jsonObject(parsed: ParsedBody): Record<string, unknown> {
  if (!parsed.ok) throw badInput('body', parsed.error);
  const v = parsed.value;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badInput('body', 'expected a JSON object');
  return v as Record<string, unknown>;
}

/** How a value shows in a 400: a string as JSON (its first 80 characters), anything else as JSON (cut at 80), absent: `nothing`. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 80));
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Values (query parameters, path parameters, a body's fields) parsed by their object schema
 * (schemas.ts): the first issue is a 400 naming its field, in the field's words, with the value
 * it got (`limit: expected an integer 1..10000, got "x"`); absent and required: its `required`
 * words when it has them.
 */
export function parseFields<S extends z.ZodObject>(schema: S, values: Record<string, unknown>): z.output<S> {
  const r = schema.safeParse(values);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const name = issue.path.length > 0 ? String(issue.path[0]) : 'body';
  const value = values[name];
  const words = name in schema.shape ? fieldWords.get(schema.shape[name]!) : undefined;
  if (value === undefined && words?.required !== undefined) throw badInput(name, words.required);
  throw badInput(name, `${words?.expected ?? issue.message}, got ${shown(value)}`);
}

/** A loose object schema (schemas.ts ANY_QUERY) takes keys it does not name. */
function takesAny(schema: z.ZodObject): boolean {
  const rest = schema.def.catchall;
  return rest !== undefined && rest._zod.def.type !== 'never';
}

/**
 * The query parameters parsed by the route's schema: one it does not name is refused (unless the
 * schema takes any), so is one given twice; then parseFields.
 */
export function parseQuery<S extends z.ZodObject>(schema: S, url: URL): z.output<S> {
  const known = Object.keys(schema.shape);
  const values: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (!known.includes(k)) {
      if (takesAny(schema)) continue;
      throw badInput(k, `unknown query parameter (known: ${known.join(', ') || 'none'})`);
    }
    if (Object.hasOwn(values, k)) throw badInput(k, 'given more than once');
    values[k] = v;
  }
  return parseFields(schema, values);
}

/** A JSON object body parsed by its schema: a field it does not name is refused first, then parseFields. */
export function parseBody<S extends z.ZodObject>(schema: S, parsed: ParsedBody): z.output<S> {
  const body = jsonObject(parsed);
  const known = Object.keys(schema.shape);
  for (const k of Object.keys(body)) if (!known.includes(k)) throw badInput(k, `unknown field (expected ${known.join(', ') || 'an empty body or {}'})`);
  return parseFields(schema, body);
}
