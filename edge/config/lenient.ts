/**
 * The cross-section checks (unknown bus, duplicate ids, missing LoRaWAN keys, …) run by zod
 * only once the whole file is well-formed. So that a technician sees every issue at once,
 * the loader also runs them on the parts of a malformed file that are valid on their own:
 * each field is kept if it passes its schema, else left out; list items keep their index.
 * (ranges.ts checks the same valid parts.)
 */
import type { z } from 'zod';
import { configSchema, crossCheck, type LeftOut } from './schema.js';
import { unwrap } from './schemaWalk.js';
import { didYouMean } from './suggest.js';

type Schema = z.core.$ZodType;
const FAIL = Symbol('invalid');

interface Def {
  type: string;
  shape?: Record<string, Schema>;
  element?: Schema;
  options?: Schema[];
  keyType?: Schema;
  valueType?: Schema;
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
  if (def.type === 'record' && def.valueType && isObject(value)) {
    // the entries that are valid (`points: { ch1_power: { report: … } }`)
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const v = lenient(def.valueType, item);
      if (v !== FAIL && def.keyType && (def.keyType as z.ZodType).safeParse(key).success) out[key] = v;
    }
    return out;
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

export interface ValidParts {
  parts: Record<string, unknown>;
  /** what the file wrote that `parts` lacks, for the checks between sections */
  leftOut: LeftOut;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

type Section = Parameters<LeftOut['has']>[0];

/**
 * What the valid parts lack of what the file wrote: the names of list entries left out, a
 * section left out whole, a position written but invalid. A reference to a name left out (or
 * close to one: `rs485-1"` for `rs485-1`) is not reported; the invalid entry already is.
 */
function leftOutOf(data: Record<string, unknown>, parts: Record<string, unknown>): LeftOut {
  const whole = new Set<Section>();
  const names = new Map<Section, string[]>();
  const name = (section: Section, v: unknown): void => {
    if (typeof v === 'string') names.set(section, [...(names.get(section) ?? []), section === 'lorawan' ? v.toLowerCase() : v]);
  };
  const entries = (section: Section, raw: unknown, valid: unknown, field: string): void => {
    if (raw === undefined) return;
    if (!Array.isArray(raw) || !Array.isArray(valid)) return void whole.add(section);
    raw.forEach((item, i) => {
      if (!(i in valid) && isObject(item)) name(section, item[field]);
    });
  };
  entries('buses', data.buses, parts.buses, 'id');
  entries('groups', data.groups, parts.groups, 'id');
  entries('profiles', data.profiles, parts.profiles, 'name');
  const lorawan = isObject(data.lorawan) ? data.lorawan : undefined;
  if (data.lorawan !== undefined && !isObject(parts.lorawan)) whole.add('lorawan');
  else if (lorawan) entries('lorawan', lorawan.devices, (parts.lorawan as Record<string, unknown>).devices, 'devEui');
  // groups are declared by devices too
  if (Array.isArray(data.devices)) {
    const valid = Array.isArray(parts.devices) ? parts.devices : [];
    data.devices.forEach((d, i) => {
      const kept = valid[i] as Record<string, unknown> | undefined;
      if (isObject(d) && Array.isArray(d.groups) && !Array.isArray(kept?.groups)) d.groups.forEach((g) => name('groups', g));
    });
  } else if (data.devices !== undefined) whole.add('groups');
  const gw = isObject(data.gateway) ? data.gateway : {};
  const kept = isObject(parts.gateway) ? parts.gateway : {};
  return {
    has: (section, n) => whole.has(section) || (names.get(section) ?? []).includes(n) || didYouMean(n, names.get(section) ?? []) !== undefined,
    position: (gw.lat !== undefined && kept.lat === undefined) || (gw.lon !== undefined && kept.lon === undefined),
  };
}

/** The valid parts of `data`: a section that fails (even a required one) is left out, or
 * replaced by its defaults. Undefined when `data` is not a mapping. */
export function validParts(data: unknown): ValidParts | undefined {
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
  return { parts: out, leftOut: leftOutOf(data as Record<string, unknown>, out) };
}

export interface CrossIssue {
  path: PropertyKey[];
  message: string;
}

/** The cross-check issues of the valid parts of a file (best effort: never throws). */
export function crossCheckValidParts({ parts, leftOut }: ValidParts): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const ctx = {
    addIssue(issue: { path?: PropertyKey[]; message?: string } | string): void {
      if (typeof issue === 'string') issues.push({ path: [], message: issue });
      else issues.push({ path: issue.path ?? [], message: issue.message ?? 'invalid' });
    },
    value: parts,
  };
  try {
    crossCheck(parts as Parameters<typeof crossCheck>[0], ctx as unknown as Parameters<typeof crossCheck>[1], leftOut);
  } catch {
    // a part the checks cannot read (a LoRaWAN device without a valid devEui, …): keep what was found
  }
  return issues;
}
