/**
 * Reading the zod schema of devices.yaml back: which schema applies at a field path, and
 * what it expects in words a technician understands ("an integer 1..247", "one of full,
 * normal"). The loader rewrites zod's issues with these.
 */
import type { z } from 'zod';
import { kindOf } from './scalars.js';

type Schema = z.core.$ZodType;
interface Def {
  type: string;
  [key: string]: unknown;
}
interface CheckDef {
  check: string;
  [key: string]: unknown;
}

function defOf(s: Schema): Def {
  return s._zod.def as unknown as Def;
}

function checksOf(s: Schema): CheckDef[] {
  const checks = (defOf(s).checks ?? []) as { _zod: { def: unknown } }[];
  return checks.map((c) => c._zod.def as CheckDef);
}

/** The message a check was given in the schema (`regex(re, { message })`), if any. */
function checkMessage(c: CheckDef): string | undefined {
  if (typeof c.error !== 'function') return undefined;
  try {
    const out: unknown = (c.error as (issue: unknown) => unknown)({});
    if (typeof out === 'string') return out;
    if (out !== null && typeof out === 'object' && typeof (out as { message?: unknown }).message === 'string') {
      return (out as { message: string }).message;
    }
  } catch {
    // a message function that needs the issue: no fixed text
  }
  return undefined;
}

/** The schema with optional/default/prefault/readonly wrappers removed (a pipe: its input side;
 * a duration, size or port of scalars.ts: itself). */
export function unwrap(s: Schema): Schema {
  let cur = s;
  for (let i = 0; i < 20; i++) {
    if (kindOf(cur) !== undefined) return cur;
    const def = defOf(cur);
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) {
      cur = def.innerType as Schema;
    } else if (def.type === 'pipe') {
      cur = def.in as Schema;
    } else return cur;
  }
  return cur;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The index of the option of the union at `s` that applies to `value` (a mapping or list), if `s` is a union and one does. */
export function unionOptionIndex(s: Schema, value: unknown): number | undefined {
  const cur = unwrap(s);
  if (defOf(cur).type !== 'union') return undefined;
  const option = pickOption(cur, value);
  const i = option === undefined ? -1 : ((defOf(cur).options ?? []) as Schema[]).indexOf(option);
  return i < 0 ? undefined : i;
}

/** The option of a union that applies to `value` (by discriminator, else by kind of value). */
function pickOption(s: Schema, value: unknown): Schema | undefined {
  const def = defOf(s);
  const options = (def.options ?? []) as Schema[];
  const disc = def.discriminator as string | undefined;
  if (disc !== undefined && isPlainObject(value)) {
    const found = options.find((o) => {
      const shape = (defOf(unwrap(o)).shape ?? {}) as Record<string, Schema>;
      const lit = shape[disc];
      return lit !== undefined && ((defOf(unwrap(lit)).values ?? []) as unknown[]).includes(value[disc]);
    });
    return found; // a discriminated union with no matching option: no branch applies
  }
  const kind = Array.isArray(value) ? 'array' : isPlainObject(value) ? 'object' : undefined;
  if (kind === undefined) return undefined;
  return options.find((o) => defOf(unwrap(o)).type === kind);
}

/** One step down: the schema of `seg` inside `s`, given the data found at `s`. */
function step(s: Schema, seg: PropertyKey, value: unknown): Schema | undefined {
  let cur = unwrap(s);
  if (defOf(cur).type === 'union') {
    const opt = pickOption(cur, value);
    if (opt === undefined) return undefined;
    cur = unwrap(opt);
  }
  const def = defOf(cur);
  if (def.type === 'object') return ((def.shape ?? {}) as Record<string, Schema>)[String(seg)];
  if (def.type === 'array') return def.element as Schema;
  if (def.type === 'record') return def.valueType as Schema;
  return undefined;
}

function child(value: unknown, seg: PropertyKey): unknown {
  if (Array.isArray(value) && typeof seg === 'number') return value[seg];
  if (isPlainObject(value)) return Object.hasOwn(value, seg) ? value[String(seg)] : undefined;
  return undefined;
}

/** The data at a path (undefined when it is not there). */
export function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) cur = child(cur, seg);
  return cur;
}

/** Whether the last key of `path` is absent from a mapping that exists. */
export function isMissingKey(data: unknown, path: readonly PropertyKey[]): boolean {
  if (path.length === 0) return false;
  const parent = valueAt(data, path.slice(0, -1));
  return isPlainObject(parent) && !Object.hasOwn(parent, path[path.length - 1]!);
}

/** The schema that validates the data at `path`, following unions by the data itself. */
export function schemaAt(root: Schema, data: unknown, path: readonly PropertyKey[]): Schema | undefined {
  let s: Schema | undefined = root;
  let value = data;
  for (const seg of path) {
    if (s === undefined) return undefined;
    s = step(s, seg, value);
    value = child(value, seg);
  }
  return s;
}

/** The keys a strict mapping at `path` accepts ([] when the path is not a mapping). */
export function allowedKeys(root: Schema, data: unknown, path: readonly PropertyKey[]): string[] {
  const s = schemaAt(root, data, path);
  if (s === undefined) return [];
  let cur = unwrap(s);
  if (defOf(cur).type === 'union') {
    const opt = pickOption(cur, valueAt(data, path));
    if (opt === undefined) return [];
    cur = unwrap(opt);
  }
  const def = defOf(cur);
  return def.type === 'object' ? Object.keys((def.shape ?? {}) as object) : [];
}

/** The values a discriminated union at `path` accepts for its discriminator. */
export function discriminatorValues(s: Schema): unknown[] {
  const def = defOf(unwrap(s));
  const disc = def.discriminator as string | undefined;
  if (def.type !== 'union' || disc === undefined) return [];
  return ((def.options ?? []) as Schema[]).flatMap((o) => {
    const lit = ((defOf(unwrap(o)).shape ?? {}) as Record<string, Schema>)[disc];
    return lit === undefined ? [] : ((defOf(unwrap(lit)).values ?? []) as unknown[]);
  });
}

export function literalText(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

function numberText(s: Schema): string {
  let int = false;
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  for (const c of checksOf(s)) {
    if (c.check === 'number_format' && typeof c.format === 'string' && /int/.test(c.format)) int = true;
    if (c.check === 'greater_than') min = { value: c.value as number, inclusive: c.inclusive === true };
    if (c.check === 'less_than') max = { value: c.value as number, inclusive: c.inclusive === true };
  }
  const noun = int ? 'an integer' : 'a number';
  if (min && max && min.inclusive && max.inclusive) return `${noun} ${min.value}..${max.value}`;
  const parts: string[] = [];
  if (min) parts.push(min.inclusive ? `at least ${min.value}` : `greater than ${min.value}`);
  if (max) parts.push(max.inclusive ? `at most ${max.value}` : `less than ${max.value}`);
  return parts.length === 0 ? noun : `${noun} ${parts.join(' and ')}`;
}

function stringText(s: Schema): string {
  for (const c of checksOf(s)) {
    const msg = checkMessage(c);
    if (msg?.startsWith('expected ')) return msg.slice('expected '.length);
  }
  const minCheck = checksOf(s).find((c) => c.check === 'min_length');
  const minimum = (minCheck?.minimum as number | undefined) ?? 0;
  if (minimum === 1) return 'a non-empty string';
  if (minimum > 1) return `a string of at least ${minimum} characters`;
  return 'a string';
}

/** The literal values a schema accepts, or undefined if it accepts more than literals. */
function literalsOf(s: Schema): unknown[] | undefined {
  const cur = unwrap(s);
  const def = defOf(cur);
  if (def.type === 'literal') return [...((def.values ?? []) as unknown[])];
  if (def.type === 'enum') return Object.values((def.entries ?? {}) as Record<string, unknown>);
  if (def.type === 'union') {
    const all = ((def.options ?? []) as Schema[]).map(literalsOf);
    return all.every((a) => a !== undefined) ? all.flat() : undefined;
  }
  return undefined;
}

/** What a schema expects, in words: "an integer 1..247", "one of full, normal", "a mapping". */
export function describe(s: Schema): string {
  const cur = unwrap(s);
  const kind = kindOf(cur);
  if (kind !== undefined) return kind.expected;
  const literals = literalsOf(cur);
  if (literals !== undefined) {
    return literals.length === 1 ? JSON.stringify(literals[0]) : `one of ${literals.map(literalText).join(', ')}`;
  }
  const def = defOf(cur);
  switch (def.type) {
    case 'string':
      return stringText(cur);
    case 'number':
      return numberText(cur);
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    case 'union': {
      if (def.discriminator !== undefined) return 'a mapping';
      const texts = [...new Set(((def.options ?? []) as Schema[]).map(describe))];
      return texts.length <= 2 ? texts.join(' or ') : `${texts.slice(0, -1).join(', ')} or ${texts[texts.length - 1]}`;
    }
    default:
      return def.type;
  }
}

/**
 * Calls `visit` for every value of `data` (the root included) with the schema that validates
 * it, following unions by the data; list holes (left by lenient.ts) are skipped.
 */
export function forEachField(root: Schema, data: unknown, visit: (schema: Schema, value: unknown, path: PropertyKey[], parent: unknown) => void): void {
  const walk = (s: Schema, value: unknown, path: PropertyKey[], parent: unknown): void => {
    visit(s, value, path, parent);
    if (kindOf(unwrap(s)) !== undefined) return;
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        const inner = step(s, i, value);
        if (inner !== undefined) walk(inner, item, [...path, i], value);
      });
    } else if (isPlainObject(value)) {
      for (const [key, v] of Object.entries(value)) {
        const inner = step(s, key, value);
        if (inner !== undefined) walk(inner, v, [...path, key], value);
      }
    }
  };
  walk(root, data, [], undefined);
}

const sectionKeysOf = new WeakMap<Schema, Map<string, Set<string>>>();

/** The keys of each top-level section's mappings (of a list's items; of every option of a union). */
export function sectionKeys(root: Schema): Map<string, Set<string>> {
  const known = sectionKeysOf.get(root);
  if (known !== undefined) return known;
  const out = new Map<string, Set<string>>();
  sectionKeysOf.set(root, out);
  const shape = (defOf(unwrap(root)).shape ?? {}) as Record<string, Schema>;
  for (const [name, section] of Object.entries(shape)) {
    const keys = new Set<string>();
    const collect = (s: Schema): void => {
      const def = defOf(unwrap(s));
      if (def.type === 'object') Object.keys((def.shape ?? {}) as object).forEach((k) => keys.add(k));
      else if (def.type === 'array') collect(def.element as Schema);
      else if (def.type === 'union') ((def.options ?? []) as Schema[]).forEach(collect);
    };
    collect(section);
    if (keys.size > 0) out.set(name, keys);
  }
  return out;
}
