/**
 * Loads devices.yaml: YAML with positions, `${ENV_VAR}` substitution, validation against the
 * zod schema, and every problem reported at once as `file:line:col path: message`. Relative
 * file paths in the result are resolved against the directory of the file.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, formatPath, sortIssues, type ConfigIssue } from './errors.js';
import { configSchema, NOTHING_LEFT_OUT, type Config } from './schema.js';
import { pathKey, toTree, type Tree } from './yamlTree.js';
import { duplicateKeyIssues, duplicateSection, syntaxIssues, YAML_OPTIONS, type Place } from './yamlErrors.js';
import { explainIssue, type PlacedIssue } from './zodIssues.js';
import { crossCheckValidParts, validParts } from './lenient.js';
import { deviceReportCheck } from './deviceReports.js';
import { rangeIssues } from './ranges.js';
import { followsFromMisplaced, misplacedAt, misplacedSections, type Misplaced } from './misplaced.js';
import { isSecretPath } from './redact.js';

export interface LoadedConfig {
  config: Config;
  /** the absolute path of the file that was loaded */
  file: string;
  /** its directory: relative paths in the config are relative to it */
  dir: string;
  /** the text it was parsed from (a byte-order mark left out): a configuration version's content */
  source: string;
}

export interface LoadOptions {
  /** where `${ENV_VAR}` values come from; process.env by default */
  env?: NodeJS.ProcessEnv;
}

export interface ParseOptions extends LoadOptions {
  /** the name the issues carry, as the user gave it ("devices.yaml") */
  file: string;
  /** the directory relative paths are resolved against; dirname(file) by default */
  dir?: string;
}

/** Reads, validates and returns the configuration; throws ConfigError listing every issue. */
export function loadConfig(file: string, opts: LoadOptions = {}): LoadedConfig {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, col: 0, path: '', message: readFailure(err, file) }], { cause: err });
  }
  return parseConfig(source, { ...opts, file });
}

function readFailure(err: unknown, file: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `file not found (looked for ${resolve(file)})`;
  if (code === 'EISDIR') return 'expected a YAML file, got a directory';
  if (code === 'EACCES' || code === 'EPERM') return 'the file cannot be read: permission denied';
  return `the file cannot be read: ${err instanceof Error ? err.message : String(err)}`;
}

/** Validates configuration text as if it had been read from `opts.file`. */
export function parseConfig(source: string, opts: ParseOptions): LoadedConfig {
  const file = opts.file;
  const absolute = resolve(file);
  const dir = opts.dir ?? dirname(absolute);
  const text = source.startsWith('\uFEFF') ? source.slice(1) : source;
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lines });
  const place: Place = (offset, path, message) => {
    const { line, col } = lines.linePos(offset);
    return { file, line, col, path: formatPath(path), message };
  };

  // 1. YAML itself. A duplicate key still leaves a usable document; other errors do not, and
  //    what the parser makes of the rest of a broken section is not reported (yamlErrors.ts).
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new ConfigError(sortIssues(syntaxIssues(doc, text, place)));
  let yamlIssues = duplicateKeyIssues(doc, text, place);

  // 2. The shape of the document.
  if (doc.contents === null) {
    throw new ConfigError(sortIssues([...yamlIssues, place(0, [], 'the file is empty; expected a mapping with at least a "gateway" section')]));
  }
  const tree = toTree(doc, opts.env ?? process.env);
  const treeIssues = tree.issues.map((t) => place(t.offset, t.path, t.message));
  if (tree.refused) throw new ConfigError(sortIssues([...yamlIssues, ...treeIssues]));
  if (tree.data === null || typeof tree.data !== 'object' || Array.isArray(tree.data)) {
    const found = Array.isArray(tree.data) ? 'a list' : showValue(tree.data);
    const notMapping = place(doc.contents.range?.[0] ?? 0, [], `expected a mapping of sections (gateway, storage, buses, devices, …), got ${found}`);
    throw new ConfigError(sortIssues([...yamlIssues, ...treeIssues, notMapping]));
  }

  // 3. The schema, the references between sections, the ranges a devices.yaml keeps to; a
  //    section indented into another is one issue, not one for each key after it (misplaced.ts).
  const misplaced = misplacedSections(tree, text);
  if (misplaced.length > 0) yamlIssues = duplicateKeyIssues(doc, text, place, (_path, offset) => followsFromMisplaced(misplaced, offset));
  const inPlace = misplaced.length === 0 && !duplicateSection(doc, text);
  const result = configSchema.safeParse(tree.data, { reportInput: true });
  const all = [...yamlIssues, ...treeIssues, ...schemaIssues(result, tree, place, { misplaced, inPlace })];
  if (!result.success || all.length > 0) {
    throw new ConfigError(sortIssues(all.length > 0 ? all : [place(0, [], 'the configuration is not valid')]));
  }
  return { config: resolvePaths(result.data, dir), file: absolute, dir, source: text };
}

/**
 * zod's issues, rewritten and placed; the checks between sections on the valid parts of a
 * malformed file (zod makes them only on a well-formed one); the devices' `points:` against their
 * profiles; the ranges a devices.yaml keeps to.
 */
function schemaIssues(result: z.ZodSafeParseResult<Config>, tree: Tree, place: Place, sections: { misplaced: readonly Misplaced[]; inPlace: boolean }): ConfigIssue[] {
  const { misplaced, inPlace } = sections;
  const out: ConfigIssue[] = [];
  const hideSecrets = secretHider(tree);
  const add = (placed: PlacedIssue): void => {
    if (isMoot(placed, tree)) return;
    const offset = offsetOf(tree, placed);
    const section = placed.at === 'key' ? misplacedAt(misplaced, offset) : undefined;
    if (section) placed = { ...placed, message: section.message };
    else if (followsFromMisplaced(misplaced, offset)) return;
    out.push(place(offset, placed.path, hideSecrets(placed)));
  };
  const ctx = {
    root: configSchema,
    data: tree.data,
    got: gotText(tree),
    plainText: (p: readonly PropertyKey[]) => (isSecretPath(p) ? undefined : tree.plainText.get(pathKey(p))),
  };
  const ours = (path: PropertyKey[], message: string): PlacedIssue[] => explainIssue({ code: 'custom', path, message, input: undefined } as z.core.$ZodIssue, ctx);

  const valid = result.success ? { parts: result.data, leftOut: NOTHING_LEFT_OUT } : validParts(tree.data)!;
  const zodIssues = result.success ? [] : result.error.issues;
  // with a section out of its place, what the checks between sections find follows from that
  const between = new Set(inPlace ? [] : crossCheckValidParts(valid).map((c) => `${segKey(c.path)} ${c.message}`));
  for (const zi of zodIssues) {
    if (followsFromMisplaced(misplaced, undefined, zi.path) || between.has(`${segKey(zi.path)} ${zi.message}`)) continue;
    explainIssue(zi, ctx).forEach(add);
  }
  // an issue inside or around a field already reported would follow from it
  const reported = new PathIndex(zodIssues.flatMap((zi) => (zi.code === 'unrecognized_keys' ? zi.keys.map((k) => [...zi.path, k]) : [zi.path])));
  if (!result.success && inPlace) {
    for (const cross of crossCheckValidParts(valid)) if (!reported.overlaps(cross.path)) ours(cross.path, cross.message).forEach(add);
  }
  // the devices' `points:` against their profiles, not in the schema (deviceReports.ts): on a well-formed file too.
  // It reads only what passed its schema (a refused report, device or profile is left out), so repeats nothing above.
  if (result.success || inPlace) for (const issue of deviceReportCheck(valid)) ours(issue.path, issue.message).forEach(add);
  for (const range of rangeIssues(valid.parts)) if (!reported.overlaps(range.path)) ours(range.path, range.message).forEach(add);
  return out;
}

/** Paths of issues already reported: whether a path leads into one of them, or one into it. */
class PathIndex {
  private readonly paths = new Set<string>();
  private readonly prefixes = new Set<string>();

  constructor(paths: readonly (readonly PropertyKey[])[]) {
    for (const p of paths) {
      this.paths.add(segKey(p));
      for (let n = 0; n <= p.length; n++) this.prefixes.add(segKey(p.slice(0, n)));
    }
  }

  overlaps(path: readonly PropertyKey[]): boolean {
    if (this.prefixes.has(segKey(path))) return true;
    for (let n = 0; n < path.length; n++) if (this.paths.has(segKey(path.slice(0, n)))) return true;
    return false;
  }
}

/** A path as a key where 0 and "0" are the same segment (zod's paths and the data's agree on neither). */
function segKey(path: readonly PropertyKey[]): string {
  return JSON.stringify(path.map(String));
}

/** Issues about a value already reported (an unset variable, an unknown anchor) would only repeat it. */
function isMoot(placed: PlacedIssue, tree: Tree): boolean {
  if (placed.at !== 'value') return false;
  for (let n = placed.path.length; n > 0; n--) {
    if (tree.badPaths.has(pathKey(placed.path.slice(0, n)))) return true;
  }
  return false;
}

/** The position of the value (or key) an issue concerns, else of its nearest ancestor. */
function offsetOf(tree: Tree, placed: PlacedIssue): number {
  const own = tree.positions.get(pathKey(placed.path));
  if (placed.at === 'key' && own?.key !== undefined) return own.key;
  for (let n = placed.path.length; n >= 0; n--) {
    const pos = tree.positions.get(pathKey(placed.path.slice(0, n)));
    if (pos) return pos.value;
  }
  return 0;
}

const MAX_SHOWN = 60;

/** What follows "got": the value as written, but never a secret (of any type) or a substituted value. */
function gotText(tree: Tree): (path: readonly PropertyKey[], value: unknown) => string {
  return (path, value) => {
    const sub = tree.substitutions.get(pathKey(path));
    if (sub) return `the value of ${sub.vars.map((v) => `\${${v}}`).join(', ')} (not shown)`;
    if (isSecretPath(path)) {
      if (typeof value === 'string') return `a value of ${value.length} characters (not shown)`;
      if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `a ${typeof value === 'bigint' ? 'number' : typeof value} (not shown)`;
    }
    return showValue(value);
  };
}

export function showValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    // a password inside a URL ("mqtt://user:secret@host") is a secret wherever the URL stands
    const s = JSON.stringify(value.replace(URL_PASSWORD, '$1:***@'));
    return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN - 2)}…"` : s;
  }
  return String(value);
}

/** "scheme://user:password@": the password part of a URL */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s/@]*@/gi;

/**
 * A cross-check message may quote a value; a substituted one is replaced by its ${VAR}: one at
 * the issue's own path or under it even when short, any other when it has 6 characters or more.
 * Built once per file, so aliases that repeat a substituted value cost nothing per issue.
 */
function secretHider(tree: Tree): (placed: PlacedIssue) => string {
  const subs = [...tree.substitutions]
    .filter(([, sub]) => sub.value !== '')
    .map(([key, sub]) => ({ key, value: sub.value, ref: sub.vars.map((v) => `\${${v}}`).join('') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const keys = subs.map((s) => s.key);
  const long = [...new Map(subs.filter((s) => s.value.length >= 6).map((s) => [`${s.ref} ${s.value}`, s])).values()];
  return (placed) => {
    let message = placed.message;
    const prefix = pathKey(placed.path).slice(0, -1); // `["a",1` : the path itself ends "]", a path under it ","
    for (let i = lowerBound(keys, prefix); i < keys.length && keys[i]!.startsWith(prefix); i++) {
      const next = keys[i]![prefix.length];
      if (next !== ']' && next !== ',') continue;
      const sub = subs[i]!;
      message = message.split(JSON.stringify(sub.value)).join(`"${sub.ref}"`);
      if (sub.value.length >= 3) message = message.split(sub.value).join(sub.ref);
    }
    for (const sub of long) message = message.split(sub.value).join(sub.ref);
    return message;
  };
}

/** The first index of a sorted array whose string is not below `s`. */
function lowerBound(sorted: readonly string[], s: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** File paths in the config, resolved against the directory of the devices.yaml. */
function resolvePaths(config: Config, dir: string): Config {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  const storagePath = config.storage.path === ':memory:' ? config.storage.path : abs(config.storage.path);
  const out: Config = { ...config, storage: { ...config.storage, path: storagePath } };
  const tls = config.broker.tls;
  if (tls) {
    out.broker = { ...config.broker, tls: { ...tls, cert: abs(tls.cert), key: abs(tls.key), ...(tls.ca !== undefined ? { ca: abs(tls.ca) } : {}) } };
  }
  const apiTls = config.api.tls;
  if (apiTls) {
    out.api = { ...config.api, tls: { ...apiTls, cert: abs(apiTls.cert), key: abs(apiTls.key), ...(apiTls.ca !== undefined ? { ca: abs(apiTls.ca) } : {}) } };
  }
  const sync = config.sync;
  if (sync) {
    out.sync = {
      ...sync,
      ...(sync.ca !== undefined ? { ca: abs(sync.ca) } : {}),
      ...(sync.cert !== undefined ? { cert: abs(sync.cert) } : {}),
      ...(sync.key !== undefined ? { key: abs(sync.key) } : {}),
    };
  }
  const releases = config.firmware.selfUpdate.releases;
  if (releases !== null) out.firmware = { ...config.firmware, selfUpdate: { ...config.firmware.selfUpdate, releases: abs(releases) } };
  const nr = config.nodeRed;
  out.nodeRed = {
    ...nr,
    ...(nr.userDir !== undefined ? { userDir: abs(nr.userDir) } : {}),
    ...(nr.flowFile !== undefined ? { flowFile: abs(nr.flowFile) } : {}),
  };
  return out;
}
