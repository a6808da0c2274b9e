/**
 * Limits on JSON that comes from outside the gateway, checked on the text before JSON.parse at
 * every door where it enters: HTTP bodies (edge/api/http.ts), MQTT set topics (edge/broker) and
 * commands from central (cloud-sync/commands.ts).
 *
 * V8's JSON.parse does not recurse, but much of what handles the value afterwards does (the
 * command validator's String() and JSON.stringify, zod, the logger): 60 KB of `[[[[` parses
 * and then overflows the stack there. So the text is measured and its nesting counted in one
 * pass without recursion, and a text past a limit is refused with the reason before it is
 * parsed. Nothing past the doors needs to know about it.
 */

/** Bytes of JSON text accepted: the HTTP body limit (413 past it) and the MQTT set-payload limit. */
export const MAX_JSON_BYTES = 64 * 1024;

/** Arrays and objects nested deeper than this are refused (a command body needs 2; `{}` is 1). */
export const MAX_JSON_DEPTH = 16;

export type JsonLimit = 'bytes' | 'depth';

export interface JsonLimits {
  maxBytes: number;
  maxDepth: number;
}

const DEFAULT_LIMITS: JsonLimits = { maxBytes: MAX_JSON_BYTES, maxDepth: MAX_JSON_DEPTH };

export interface JsonBreach {
  limit: JsonLimit;
  /** `JSON nested deeper than 16 levels`, `JSON larger than 65536 bytes` */
  reason: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * The limit a JSON text breaks, or null. One pass, no recursion: brackets inside strings do not
 * count; unbalanced or otherwise malformed text is left to JSON.parse to report. In UTF-8 every
 * byte of a multi-byte character is ≥ 0x80, so bytes are scanned as they are.
 */
export function jsonBreach(text: string | Uint8Array, limits: JsonLimits = DEFAULT_LIMITS): JsonBreach | null {
  const bytes = typeof text === 'string' ? Buffer.byteLength(text, 'utf8') : text.length;
  if (bytes > limits.maxBytes) return { limit: 'bytes', reason: `JSON larger than ${limits.maxBytes} bytes` };
  const at = typeof text === 'string' ? (i: number): number => text.charCodeAt(i) : (i: number): number => text[i]!;
  const length = text.length;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < length; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limits.maxDepth) return { limit: 'depth', reason: `JSON nested deeper than ${limits.maxDepth} levels` };
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return null;
}

export type JsonParsed = { ok: true; value: unknown } | { ok: false; limit: JsonLimit | null; error: string };

/**
 * Parses JSON text within the limits. Refused: `limit` says which and `error` is the reason;
 * malformed: `limit` is null and `error` is the parser's message.
 */
export function parseJsonWithin(text: string | Uint8Array, limits: JsonLimits = DEFAULT_LIMITS): JsonParsed {
  const breach = jsonBreach(text, limits);
  if (breach) return { ok: false, limit: breach.limit, error: breach.reason };
  try {
    return { ok: true, value: JSON.parse(typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8')) as unknown };
  } catch (err) {
    return { ok: false, limit: null, error: err instanceof Error ? err.message : 'malformed JSON' };
  }
}

/**
 * What a door hands the command pipeline for a command's text: the value it parsed, or else the
 * text itself, which the pipeline's own parse (control/validate.ts parseBody) refuses with the
 * reason, under the same limits, and records. A door never has to dress a refusal up.
 */
export function commandBody(text: string, parsed: JsonParsed = parseJsonWithin(text)): unknown {
  return parsed.ok ? parsed.value : text;
}

/** Members (array items and object properties, all levels) of a value handed over already parsed. */
export const MAX_VALUE_NODES = 4096;

/**
 * The limit a value that arrives already parsed breaks (a Node-RED flow's `msg.payload`), or
 * null: nesting deeper than `maxDepth`, or more than MAX_VALUE_NODES members in all. Walked
 * with an explicit stack, never by recursion; a cycle counts as too deep.
 */
export function valueBreach(value: unknown, limits: JsonLimits = DEFAULT_LIMITS): JsonBreach | null {
  if (value === null || typeof value !== 'object') return null;
  const stack: [object, number][] = [[value, 1]];
  let nodes = 0;
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > limits.maxDepth) return { limit: 'depth', reason: `JSON nested deeper than ${limits.maxDepth} levels` };
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (++nodes > MAX_VALUE_NODES) return { limit: 'bytes', reason: `JSON with more than ${MAX_VALUE_NODES} members` };
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return null;
}
