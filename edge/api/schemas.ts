/**
 * The zod schemas of what a request may carry: query and path parameters and JSON body fields.
 * A route gives them to the router (router.ts), which parses every request with them (http.ts
 * parseQuery, parseFields) and hands the OpenAPI document (openapi.ts) the same objects, so what
 * is documented is what is checked.
 *
 * A query or path parameter arrives as text; its schema takes the text and says what it is
 * (`limit` is an integer 1..10000, documented as one): the text of an integer becomes a number
 * before the check (a preprocess, which the document does not show). Each field carries the words
 * of its 400 (`expected an integer 1..10000`): the error names the field and the value it got,
 * `limit: expected an integer 1..10000, got "x"`, whichever check refused it.
 */
import { z } from 'zod';
import { compactSchemas } from '../config/compact.js';
import { fieldKinds } from '../config/scalars.js';

/** What a field expects, in words: the text of any 400 about it (before `, got <value>`). */
export interface FieldWords {
  expected: string;
  /** when the field is absent but required, instead of `expected` (`required: a version number`) */
  required?: string;
}

/** The words of each field schema (a registry of its own: they are not JSON Schema keywords, the document never shows them). */
export const fieldWords = z.registry<FieldWords>();

interface FieldOptions {
  /** for the document */
  description: string;
}

/**
 * A field: its schema, the words of its 400 and its description. With `default` the field may be
 * absent (the default is documented, and parsed as if given); with `required` it must be there;
 * else it is optional.
 */
export function field<S extends z.ZodType>(schema: S, expected: string, o: FieldOptions & { default: z.input<S> }): z.ZodPrefault<S>;
export function field<S extends z.ZodType>(schema: S, expected: string, o: FieldOptions & { required: string | true }): S;
export function field<S extends z.ZodType>(schema: S, expected: string, o: FieldOptions): z.ZodOptional<S>;
export function field<S extends z.ZodType>(schema: S, expected: string, o: FieldOptions & { default?: z.input<S>; required?: string | true }): z.ZodType {
  const shaped = o.default !== undefined ? schema.prefault(o.default) : o.required !== undefined ? schema : schema.optional();
  const out = shaped.meta({ description: o.description });
  // it is finished: its clones forget the schemas they were made from (config/compact.ts)
  compactSchemas([out], [fieldKinds]);
  fieldWords.add(out, { expected, ...(typeof o.required === 'string' ? { required: o.required } : {}) });
  return out;
}

/**
 * Names a schema for one OpenAPI document (openapi.ts): the document lists it under
 * components.schemas by this name (PascalCase, unique) and refers to it.
 */
export type Named = <S extends z.ZodType>(id: string, schema: S) => S;

// ---- query and path parameters ---------------------------------------------------------

/** no query parameter at all: any one is refused (the default of a route) */
export const NO_QUERY = z.strictObject({});
/**
 * Query parameters are ignored (the page's files, /metrics, /health, as before: a browser's
 * cache-buster or a scraper's `params` do no harm there).
 */
export const ANY_QUERY = z.looseObject({});
/** a route without path parameters */
export const NO_PARAMS = z.strictObject({});

const INT_TEXT = /^-?\d{1,16}$/;
/** The text of an integer as the number; anything else as it is (refused by the integer schema). */
const intText = (v: unknown): unknown => (typeof v === 'string' && INT_TEXT.test(v) ? Number(v) : v);

/** An integer parameter within min..max, given as its decimal text. */
export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(intText, z.int().min(min).max(max));
}

/** The words of an integer within min..max (`expected an integer 0..` when there is no upper bound). */
export function integerWords(min: number, max: number = Number.MAX_SAFE_INTEGER): string {
  return `expected an integer ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}`;
}

/** The words of an id (device, group, consumer, point): the identifier rule of the config (config/schema.ts `identifier`). */
export const ID_WORDS = 'expected an id of letters, digits, "_", "-", "." (at most 64)';

export const oneOfWords = (values: readonly string[]): string => `expected one of ${values.join(', ')}`;

/** `true`, `1` or the parameter alone (`?force`) are true; `false` and `0` false. */
export const flag = z.preprocess((v) => (v === '' || v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());

// ISO 8601 extended format with an offset: 2026-12-04T13:20, …:05, …:05.250, then Z or ±hh:mm
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;
/** the last instant a JS Date holds (ECMA-262 §21.4.1.1) */
export const MAX_TIME = 8.64e15;

/** An ISO 8601 time with its offset, in ms; NaN for a date or time that does not exist (Feb 30, 25:00). */
export function isoMs(text: string): number {
  const m = ISO.exec(text);
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59 || offH > 23 || offM > 59) return NaN;
  const offset = (m[9] === '-' ? -1 : 1) * (offH * 60 + offM) * 60_000;
  return Date.UTC(y, mo - 1, d, h, mi, s, Number((m[7] ?? '0').padEnd(3, '0'))) - offset;
}

/** A time: ms since the epoch, or ISO 8601 with its offset (documented as either); parsed to ms. */
export const time = z
  .preprocess(intText, z.union([z.int().min(0).max(MAX_TIME), z.string().regex(ISO).meta({ format: 'date-time' })]))
  .transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : isoMs(v);
    if (Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_TIME) return ms;
    ctx.issues.push({ code: 'custom', message: 'no such time', input: v });
    return z.NEVER;
  });

export const TIME_WORDS = 'expected ms since the epoch or an ISO 8601 time with its offset (2026-12-04T13:20:00+01:00)';

/**
 * A comma-separated list (`points=power,level`), at most `max` items of `item`; documented as an
 * array (OpenAPI style form, explode false). The same item given twice counts once.
 */
export function list<I extends z.ZodType>(item: I, max: number) {
  return z.preprocess((v) => (typeof v === 'string' ? [...new Set(v.split(','))] : v), z.array(item).max(max));
}
