/**
 * A top-level section indented by mistake (`  storage:` under `gateway:`) is still YAML: the
 * section, and everything written after it up to the next top-level key, become part of the
 * section above. One broken line then reads as unknown and duplicate keys, list items of the
 * wrong list, a missing section, and references to what that section declared. All of these
 * are folded into one issue at the section's key.
 */
import type { z } from 'zod';
import { formatPath } from './errors.js';
import { configSchema } from './schema.js';
import { allowedKeys } from './schemaWalk.js';
import { nextTopLevelLine } from './yamlErrors.js';
import { pathKey, type Tree } from './yamlTree.js';

export interface Misplaced {
  /** where the section was written: [...the mapping that took it, its name] */
  path: PropertyKey[];
  /** the offset of its key, and of the next top-level key after it (the text it misplaces) */
  offset: number;
  end: number;
  message: string;
}

const SECTIONS = new Set(Object.keys(configSchema.shape).filter((k) => !k.startsWith('$')));

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Keys named like a top-level section in a mapping (other than the root) that does not take them. */
export function misplacedSections(tree: Tree, text: string): Misplaced[] {
  const out: Misplaced[] = [];
  const walk = (value: unknown, path: PropertyKey[]): void => {
    if (Array.isArray(value)) {
      value.forEach((item, i) => walk(item, [...path, i]));
      return;
    }
    if (!isObject(value)) return;
    const names = Object.keys(value);
    const suspects = path.length === 0 ? [] : names.filter((k) => SECTIONS.has(k));
    const allowed = suspects.length === 0 ? [] : allowedKeys(configSchema as z.core.$ZodType, tree.data, path);
    for (const name of names) {
      const at = [...path, name];
      const offset = tree.positions.get(pathKey(at))?.key;
      if (suspects.includes(name) && !allowed.includes(name) && offset !== undefined) {
        const message = `"${name}" is a top-level section: indented, it and what follows it read as part of "${formatPath(path)}"; top-level keys start at column 1`;
        out.push({ path: at, offset, end: nextTopLevelLine(text, offset) ?? Infinity, message });
      } else walk(value[name], at);
    }
  };
  walk(tree.data, []);
  return out;
}

/** The misplaced section whose key is at `offset`. */
export function misplacedAt(misplaced: readonly Misplaced[], offset: number | undefined): Misplaced | undefined {
  return misplaced.find((m) => m.offset === offset);
}

/**
 * Whether an issue follows from a misplaced section: it is written after the section's key, up
 * to the next top-level key, or it is zod's issue (at `path`) that the section is missing.
 */
export function followsFromMisplaced(misplaced: readonly Misplaced[], offset: number | undefined, path?: readonly PropertyKey[]): boolean {
  return misplaced.some((m) => (offset !== undefined && offset > m.offset && offset < m.end) || (path?.length === 1 && path[0] === m.path[m.path.length - 1]));
}
