/**
 * The cross-section checks (unknown bus, duplicate ids, missing LoRaWAN keys, …) run by zod
 * only once the whole file is well-formed. So that a technician sees every issue at once,
 * the loader also runs them on the parts of a malformed file that are valid on their own:
 * each field is kept if it passes its schema, else left out; list items keep their index.
 */
import type { z } from 'zod';
import { configSchema, crossCheck } from './schema.js';
import { unwrap } from './schemaWalk.js';

type Schema = z.core.$ZodType;
const FAIL = Symbol('invalid');

interface Def {
  type: string;
  shape?: Record<string, Schema>;
  element?: Schema;
  options?: Schema[];
}

function defOf(s: Schema): Def {
  return s._zod.def as unknown as Def;
}

/**
 * The value parsed by `schema`; for a mapping that fails, its valid fields (FAIL if a required
 * one is invalid); for a list, its valid items with a hole where an item is invalid (the
 * checks skip holes, and the other items keep their index).
 */
function lenient(schema: Schema, value: unknown): unknown {
  const result = (schema as z.ZodType).safeParse(value);
  if (result.success) return result.data;
  const def = defOf(unwrap(schema));
  if (def.type === 'object' && def.shape && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, fieldSchema] of Object.entries(def.shape)) {
      const v = lenient(fieldSchema, (value as Record<string, unknown>)[key]);
      if (v === FAIL || v === undefined) {
        const required = !(fieldSchema as z.ZodType).safeParse(undefined).success;
        if (required) return FAIL;
      } else out[key] = v;
    }
    return out;
  }
  if (def.type === 'union' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    // the option whose required keys (its discriminator among them) are valid
    for (const option of def.options ?? []) {
      const v = lenient(option, value);
      if (v !== FAIL) return v;
    }
    return FAIL;
  }
  if (def.type === 'array' && def.element && Array.isArray(value)) {
    const out: unknown[] = new Array<unknown>(value.length);
    value.forEach((item, i) => {
      const v = lenient(def.element!, item);
      if (v !== FAIL) out[i] = v;
    });
    return out;
  }
  return FAIL;
}

/** The root: a section that fails (even a required one) is simply left out. */
function lenientRoot(data: unknown): Record<string, unknown> | undefined {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const def = defOf(unwrap(configSchema));
  const out: Record<string, unknown> = {};
  for (const [key, fieldSchema] of Object.entries(def.shape ?? {})) {
    const v = lenient(fieldSchema, (data as Record<string, unknown>)[key]);
    if (v !== FAIL && v !== undefined) out[key] = v;
    else {
      // a section that is invalid as a whole: its defaults, so the checks can still read it
      const fallback = (fieldSchema as z.ZodType).safeParse(undefined);
      if (fallback.success && fallback.data !== undefined) out[key] = fallback.data;
    }
  }
  return out;
}

export interface CrossIssue {
  path: PropertyKey[];
  message: string;
}

/** The cross-check issues of the valid parts of `data` (best effort: never throws). */
export function crossCheckValidParts(data: unknown): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const parts = lenientRoot(data);
  if (parts === undefined) return issues;
  const ctx = {
    addIssue(issue: { path?: PropertyKey[]; message?: string } | string): void {
      if (typeof issue === 'string') issues.push({ path: [], message: issue });
      else issues.push({ path: issue.path ?? [], message: issue.message ?? 'invalid' });
    },
    value: parts,
  };
  try {
    crossCheck(parts as Parameters<typeof crossCheck>[0], ctx as unknown as Parameters<typeof crossCheck>[1]);
  } catch {
    // a part the checks cannot read (a LoRaWAN device without a valid devEui, …): keep what was found
  }
  return issues;
}
