/**
 * Zod schemas that keep only what they use. Zod 4 makes each `.describe()`, `.meta()` and each
 * check (`.min()`, `.regex()`, `.refine()`, `.int()`) a clone of the schema before, and the clone
 * keeps that schema as its `parent`: for its registries, which let a clone inherit its parent's
 * entries, and for the JSON Schema output, which reads the parent and then keeps only the clone's
 * own keywords. So `z.number().int().min(1).max(247).describe('…')` holds five schemas where one
 * is used, each some 1.4 KB of closures, sets and objects: half of the configuration schema, 0.7 MB
 * of a gateway's heap (bench/footprint.ts).
 *
 * `compactSchemas` runs once on finished schemas: every schema it reaches through their
 * definitions gets, in each registry given and in zod's global one, the entry it inherits (as its
 * own), and forgets its parent; a parent nothing else refers to is then collected. What they
 * parse, their registries' answers and their JSON Schema stay the same, as long as no parent
 * carries an `id` of a registry the JSON Schema is made with (then zod would refer to it): none
 * does here, and devices.schema.json, the README's tables and the OpenAPI document are compared
 * by their tests.
 */
import { z } from 'zod';

type Schema = z.core.$ZodType;

/** A schema's internals, as far as this file touches them. */
interface Internals {
  def: Record<string, unknown>;
  parent?: Schema;
}

/** A registry whose entries clones inherit (zod's `$ZodRegistry`, whatever its metadata). */
export interface InheritingRegistry {
  get(schema: Schema): object | undefined;
  add(schema: Schema, meta: never): unknown;
}

const isSchema = (v: unknown): v is Schema => v !== null && typeof v === 'object' && '_zod' in v;

/**
 * Every schema reachable from `roots` forgets its parent, its registry entries inherited made
 * its own first (`registries`: those read with `.get()` besides zod's global one, e.g. fieldKinds).
 */
export function compactSchemas(roots: readonly Schema[], registries: readonly InheritingRegistry[] = []): void {
  const all: readonly InheritingRegistry[] = [z.globalRegistry, ...registries];
  const seen = new Set<Schema>();
  const pending: Schema[] = [...roots];
  const take = (v: unknown): void => {
    if (isSchema(v) && !seen.has(v)) pending.push(v);
  };
  for (let s = pending.pop(); s !== undefined; s = pending.pop()) {
    if (seen.has(s)) continue;
    seen.add(s);
    const internals = s._zod as unknown as Internals;
    if (internals.parent !== undefined) {
      for (const registry of all) {
        const inherited = registry.get(s);
        if (inherited !== undefined) registry.add(s, inherited as never);
      }
      delete internals.parent;
    }
    // the schemas a definition holds: innerType, in/out, element, options, items, checks… and an object's shape
    for (const [key, v] of Object.entries(internals.def)) {
      if (Array.isArray(v)) v.forEach(take);
      else if (isSchema(v)) take(v);
      else if (key === 'shape' && v !== null && typeof v === 'object') Object.values(v).forEach(take);
    }
  }
}
