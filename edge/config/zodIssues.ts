/**
 * zod's issues rewritten for a technician: what was expected and what was found, at the
 * field it concerns (the value, the unknown key, or the mapping that lacks a key).
 */
import type { z } from 'zod';
import { didYouMean } from './suggest.js';
import { allowedKeys, describe, discriminatorValues, isMissingKey, literalText, schemaAt, sectionKeys, unionOptionIndex, valueAt } from './schemaWalk.js';

/** Where an issue points: the value at `path`, or the key written last in `path`. */
export interface PlacedIssue {
  path: PropertyKey[];
  at: 'value' | 'key';
  message: string;
}

export interface ExplainContext {
  root: z.core.$ZodType;
  data: unknown;
  /** how the value found at `path` is shown after "got" (secrets are never shown) */
  got: (path: readonly PropertyKey[], value: unknown) => string;
  /** the text of an unquoted scalar YAML read as a number or boolean (never a secret's) */
  plainText?: (path: readonly PropertyKey[]) => string | undefined;
}

function unknownKey(key: string, allowed: readonly string[]): string {
  const hint = didYouMean(key, allowed);
  if (hint !== undefined) return `unknown key "${key}"; did you mean "${hint}"?`;
  const shown = allowed.filter((k) => !k.startsWith('$'));
  return shown.length === 0 ? `unknown key "${key}"` : `unknown key "${key}"; expected one of: ${shown.join(', ')}`;
}

/** The one top-level section (other than the one at `path`) whose keys are all of `keys` (two or more). */
function homeSection(root: z.core.$ZodType, keys: readonly string[], path: readonly PropertyKey[]): string | undefined {
  if (keys.length < 2) return undefined;
  const homes = [...sectionKeys(root)].filter(([name, known]) => name !== path[0] && keys.every((k) => known.has(k)));
  return homes.length === 1 ? homes[0]![0] : undefined;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function isScalarValue(v: unknown): boolean {
  return v === null || ['string', 'number', 'boolean'].includes(typeof v);
}

/** `; did you mean "switch"?` after a misspelt enum value (`role: swich`), else nothing. */
function enumHint(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code !== 'invalid_value' || typeof value !== 'string') return '';
  const hint = didYouMean(value, issue.values.filter((v): v is string => typeof v === 'string'));
  return hint === undefined ? '' : `; did you mean "${hint}"?`;
}

/** One zod issue as zero or more placed issues (unrecognized_keys gives one per key). */
export function explainIssue(issue: z.core.$ZodIssue, ctx: ExplainContext): PlacedIssue[] {
  const path = issue.path as PropertyKey[];
  const value = valueAt(ctx.data, path);
  const schema = schemaAt(ctx.root, ctx.data, path);
  const expected = (): string => (schema === undefined ? 'a valid value' : describe(schema));
  const at = (message: string, p: PropertyKey[] = path): PlacedIssue[] => [{ path: p, at: 'value', message }];
  const got = (): string => ctx.got(path, value);

  switch (issue.code) {
    case 'unrecognized_keys': {
      const home = homeSection(ctx.root, issue.keys, path);
      if (home !== undefined) {
        // `storage:` deleted or misspelt: its keys land in the section above, one issue for the one fix
        const keys = issue.keys.map((k) => `"${k}"`).join(', ');
        return [{ path: [...path, issue.keys[0]!], at: 'key', message: `unknown keys ${keys}: they are keys of "${home}"; is the "${home}:" line above them missing?` }];
      }
      const allowed = allowedKeys(ctx.root, ctx.data, path);
      return issue.keys.map((key) => ({ path: [...path, key], at: 'key' as const, message: unknownKey(key, allowed) }));
    }
    case 'invalid_type':
    case 'invalid_value':
    case 'invalid_union': {
      const disc = issue.code === 'invalid_union' ? (issue as { discriminator?: string }).discriminator : undefined;
      if (isMissingKey(ctx.data, path)) {
        const key = String(path[path.length - 1]);
        const parentSchema = schemaAt(ctx.root, ctx.data, path.slice(0, -1));
        const choices = disc !== undefined && parentSchema ? discriminatorValues(parentSchema) : [];
        const hint = choices.length > 0 ? ` (one of ${choices.map(literalText).join(', ')})` : '';
        return at(`missing required key "${key}"${hint}`, path.slice(0, -1));
      }
      if (disc !== undefined) {
        const parentSchema = schemaAt(ctx.root, ctx.data, path.slice(0, -1));
        const choices = parentSchema ? discriminatorValues(parentSchema) : [];
        return at(`expected one of ${choices.map(literalText).join(', ')}, got ${got()}`);
      }
      // a mapping where a scalar would also do (`report: change` or `report: { … }`): the issues of the mapping's option
      if (issue.code === 'invalid_union' && schema !== undefined) {
        const option = unionOptionIndex(schema, value);
        const inner = option === undefined ? [] : (issue.errors[option] ?? []);
        if (inner.length > 0) return inner.flatMap((i) => explainIssue({ ...i, path: [...path, ...i.path] } as z.core.$ZodIssue, ctx));
      }
      if (issue.code === 'invalid_type' && issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
        // `devAddr: 26011001` is a number to YAML; the hex digits must be quoted (a secret's text is not shown)
        const text = ctx.plainText?.(path);
        return at(`expected ${expected()}, got ${got()} (a ${typeof value} to YAML; put it in quotes${text === undefined ? '' : `: "${text}"`})`);
      }
      return at(`expected ${expected()}, got ${got()}${enumHint(issue, value)}`);
    }
    case 'too_small':
    case 'too_big': {
      const custom = issue.message.startsWith('expected ') ? issue.message : undefined;
      if (issue.origin === 'array' || issue.origin === 'set') {
        const n = Array.isArray(value) ? value.length : 0;
        const bound = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
        const limit = issue.code === 'too_small' ? `at least ${plural(bound, 'item')}` : `at most ${plural(bound, 'item')}`;
        return at(`${custom ?? `expected a list of ${limit}`}, got ${n === 0 ? 'an empty list' : plural(n, 'item')}`);
      }
      if (issue.origin === 'string') return at(`${custom ?? `expected ${expected()}`}, got ${got()}`);
      return at(`expected ${expected()}, got ${got()}`);
    }
    case 'invalid_format': {
      const custom = issue.message.startsWith('expected ') ? issue.message : `expected ${expected()}`;
      return at(`${custom}, got ${got()}`);
    }
    case 'invalid_key': {
      // a name written as a key (`points: { "bad key": … }`): what the name's schema expects, at the key
      const expectedName = issue.issues.find((i) => i.message.startsWith('expected '))?.message ?? 'expected a valid name';
      return [{ path, at: 'key', message: `${expectedName}, got ${JSON.stringify(String(path[path.length - 1]))}` }];
    }
    case 'custom': {
      // cross-checks between sections: their message is already written for a technician
      const withGot = issue.message.startsWith('expected ') && isScalarValue(value) && value !== undefined;
      const message = withGot ? `${issue.message}, got ${got()}` : issue.message;
      // about a whole mapping written under a name (`points: { ch1_pwr: { … } }`): at the name
      const named = typeof path[path.length - 1] === 'string' && value !== null && typeof value === 'object' && !Array.isArray(value);
      return named ? [{ path, at: 'key', message }] : at(message);
    }
    default:
      return at(`expected ${expected()}, got ${got()}`);
  }
}
