/**
 * Loads devices.yaml: YAML with positions, `${ENV_VAR}` substitution, validation against the
 * zod schema, and every problem reported at once as `file:line:col path: message`. Relative
 * file paths in the result are resolved against the directory of the file.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, formatPath, sortIssues, type ConfigIssue } from './errors.js';
import { configSchema, type Config } from './schema.js';
import { keyAt, pathKey, toTree, type Tree } from './yamlTree.js';
import { explainIssue, type PlacedIssue } from './zodIssues.js';
import { crossCheckValidParts } from './lenient.js';
import { isSecretKey } from './redact.js';

export interface LoadedConfig {
  config: Config;
  /** the absolute path of the file that was loaded */
  file: string;
  /** its directory: relative paths in the config are relative to it */
  dir: string;
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

type Place = (offset: number, path: readonly PropertyKey[], message: string) => ConfigIssue;

/** Validates configuration text as if it had been read from `opts.file`. */
export function parseConfig(source: string, opts: ParseOptions): LoadedConfig {
  const file = opts.file;
  const absolute = resolve(file);
  const dir = opts.dir ?? dirname(absolute);
  const text = source.startsWith('\uFEFF') ? source.slice(1) : source;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const place: Place = (offset, path, message) => {
    const { line, col } = lines.linePos(offset);
    return { file, line, col, path: formatPath(path), message };
  };

  // 1. YAML itself. A duplicate key still leaves a usable document; other errors do not.
  const yamlIssues = yamlErrors(doc, text, place);
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new ConfigError(sortIssues(yamlIssues));

  // 2. The shape of the document.
  if (doc.contents === null) {
    throw new ConfigError(sortIssues([...yamlIssues, place(0, [], 'the file is empty; expected a mapping with at least a "gateway" section')]));
  }
  const tree = toTree(doc, opts.env ?? process.env);
  const treeIssues = tree.issues.map((t) => place(t.offset, t.path, t.message));
  if (tree.data === null || typeof tree.data !== 'object' || Array.isArray(tree.data)) {
    const found = Array.isArray(tree.data) ? 'a list' : showValue(tree.data);
    const notMapping = place(doc.contents.range?.[0] ?? 0, [], `expected a mapping of sections (gateway, storage, buses, devices, …), got ${found}`);
    throw new ConfigError(sortIssues([...yamlIssues, ...treeIssues, notMapping]));
  }

  // 3. The schema, then the references between sections.
  const result = configSchema.safeParse(tree.data, { reportInput: true });
  const all = [...yamlIssues, ...treeIssues, ...(result.success ? [] : schemaIssues(result.error.issues, tree, place))];
  if (!result.success || all.length > 0) {
    throw new ConfigError(sortIssues(all.length > 0 ? all : [place(0, [], 'the configuration is not valid')]));
  }
  return { config: resolvePaths(result.data, dir), file: absolute, dir };
}

/** zod's issues, rewritten and placed; plus the cross-section checks of the valid parts. */
function schemaIssues(zodIssues: readonly z.core.$ZodIssue[], tree: Tree, place: Place): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const add = (placed: PlacedIssue): void => {
    if (!isMoot(placed, tree)) out.push(place(offsetOf(tree, placed), placed.path, hideSecrets(placed, tree)));
  };
  const ctx = { root: configSchema, data: tree.data, got: gotText(tree), plainText: (p: readonly PropertyKey[]) => tree.plainText.get(pathKey(p)) };
  for (const zi of zodIssues) explainIssue(zi, ctx).forEach(add);
  // zod runs the cross-section checks only on a well-formed file; run them on its valid parts
  const reported = zodIssues.flatMap((zi) => (zi.code === 'unrecognized_keys' ? zi.keys.map((k) => [...zi.path, k]) : [zi.path]));
  for (const cross of crossCheckValidParts(tree.data)) {
    if (!reported.some((p) => overlaps(p, cross.path))) add({ path: cross.path, at: 'value', message: cross.message });
  }
  return out;
}

function yamlErrors(doc: Document, text: string, issue: Place): ConfigIssue[] {
  const seen = new Set<number>();
  const out: ConfigIssue[] = [];
  for (const err of doc.errors) {
    const offset = err.pos[0];
    if (seen.has(offset)) continue; // one error per position: the rest are echoes of the first
    seen.add(offset);
    if (err.code === 'DUPLICATE_KEY') {
      const key = keyAt(doc, offset);
      if (key) {
        const first = key.first === undefined ? '' : ` (first written at line ${issue(key.first, [], '').line})`;
        out.push(issue(offset, key.path, `duplicate key "${key.name}"${first}`));
        continue;
      }
    }
    if (err.code === 'MISSING_CHAR' && /closing ["']quote/.test(err.message)) {
      // yaml reports an unclosed quote where the file ends; point at where it was opened
      const quote = err.message.includes('"quote') ? '"' : "'";
      out.push(issue(openingQuote(text, offset, quote), [], `YAML syntax error: a quoted string is never closed (missing closing ${quote})`));
      continue;
    }
    const msg = err.code === 'TAB_AS_INDENT' ? 'a tab used for indentation; indent with spaces' : lowerFirst(err.message);
    out.push(issue(offset, [], `YAML syntax error: ${msg}`));
  }
  return out;
}

/** The quote that opens a string left unclosed at `end`: the last one before it not escaped. */
function openingQuote(text: string, end: number, quote: string): number {
  for (let i = Math.min(end, text.length) - 1; i >= 0; i--) {
    if (text[i] !== quote) continue;
    if (quote === "'" && text[i - 1] === "'") {
      i--; // '' is an escaped single quote
      continue;
    }
    let slashes = 0;
    while (quote === '"' && text[i - 1 - slashes] === '\\') slashes++;
    if (slashes % 2 === 0) return i;
  }
  return end;
}

function lowerFirst(s: string): string {
  return s.length > 1 && /^[A-Z][a-z]/.test(s) ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/** Whether one path leads into the other (an issue there would be a consequence of the other). */
function overlaps(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (String(a[i]) !== String(b[i])) return false;
  return true;
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

/** What follows "got": the value as written, but never a secret or a substituted value. */
function gotText(tree: Tree): (path: readonly PropertyKey[], value: unknown) => string {
  return (path, value) => {
    const sub = tree.substitutions.get(pathKey(path));
    if (sub) return `the value of ${sub.vars.map((v) => `\${${v}}`).join(', ')} (not shown)`;
    const last = path[path.length - 1];
    if (typeof last === 'string' && isSecretKey(last) && typeof value === 'string') {
      return `a value of ${value.length} characters (not shown)`;
    }
    return showValue(value);
  };
}

export function showValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN - 2)}…"` : s;
  }
  return String(value);
}

/** A cross-check message may quote a value; a substituted one is replaced by its ${VAR}. */
function hideSecrets(placed: PlacedIssue, tree: Tree): string {
  let message = placed.message;
  const own = pathKey(placed.path);
  for (const [k, sub] of tree.substitutions) {
    if (sub.value === '') continue;
    const ref = sub.vars.map((v) => `\${${v}}`).join('');
    if (k === own || k.startsWith(`${own.slice(0, -1)},`)) {
      message = message.split(JSON.stringify(sub.value)).join(`"${ref}"`);
      if (sub.value.length >= 3) message = message.split(sub.value).join(ref);
    } else if (sub.value.length >= 6) {
      message = message.split(sub.value).join(ref);
    }
  }
  return message;
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
  const sync = config.sync;
  if (sync) {
    out.sync = {
      ...sync,
      ...(sync.ca !== undefined ? { ca: abs(sync.ca) } : {}),
      ...(sync.cert !== undefined ? { cert: abs(sync.cert) } : {}),
      ...(sync.key !== undefined ? { key: abs(sync.key) } : {}),
    };
  }
  const nr = config.nodeRed;
  out.nodeRed = {
    ...nr,
    ...(nr.userDir !== undefined ? { userDir: abs(nr.userDir) } : {}),
    ...(nr.flowFile !== undefined ? { flowFile: abs(nr.flowFile) } : {}),
  };
  return out;
}
