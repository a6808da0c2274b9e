/**
 * Validation of a submitted devices.yaml (issue 16), before anything changes: the whole of
 * `streetbox validate` (the schema, the references between sections, the profiles, every
 * `${ENV_VAR}` resolving here), each problem at line:col of the submitted text; and, for a change
 * from central, what a remote change may not touch (the gateway's id, where its store lives).
 *
 * Secrets are never in a problem: the loader keeps them out of its issues (loader.ts), and the
 * checks here quote nothing but the gateway's id.
 */
import { isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Node } from 'yaml';
import { parseConfig } from '../config/loader.js';
import { ConfigError, type ConfigIssue } from '../config/errors.js';
import { YAML_OPTIONS } from '../config/yamlErrors.js';
import type { Config } from '../config/schema.js';
import { MAX_CONFIG_BYTES, type ConfigProblem, type ConfigSource } from './records.js';
import type { ValidationResult } from './types.js';

/** The largest devices.yaml taken (a real one is a few tens of KiB); a larger text is not even parsed. */
export { MAX_CONFIG_BYTES };

export interface ValidateOptions {
  /** the running devices.yaml, as the issues name it */
  file: string;
  /** its directory: relative paths in the text are relative to it */
  dir: string;
  /** where `${ENV_VAR}` values come from; process.env by default */
  env?: NodeJS.ProcessEnv;
  /** the configuration the gateway runs now, as declared (parsed from its text) */
  running: Config;
  source: ConfigSource;
}

/** Validates `text` as the next devices.yaml: `{ ok: true, config }` (paths resolved) or the problems at line:col. */
export function validateChange(text: string, opts: ValidateOptions): ValidationResult {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_CONFIG_BYTES) {
    return invalid([{ line: 0, col: 0, path: '', message: `the configuration is ${bytes} bytes; at most 1 MiB` }]);
  }
  let config: Config;
  try {
    config = parseConfig(text, { file: opts.file, dir: opts.dir, ...(opts.env !== undefined ? { env: opts.env } : {}) }).config;
  } catch (err) {
    if (err instanceof ConfigError) return invalid(err.issues.map(toProblem));
    // not a problem of the text the loader could name: said without quoting anything of the text
    const what = err instanceof Error ? err.name : typeof err;
    return invalid([{ line: 0, col: 0, path: '', message: `the configuration could not be checked (${what})` }]);
  }
  if (opts.source === 'central') {
    const problems = forbiddenRemotely(text, config, opts);
    if (problems.length > 0) return { ok: false, code: 'E_CONFIG_FORBIDDEN', problems };
  }
  return { ok: true, config };
}

function invalid(problems: ConfigProblem[]): ValidationResult {
  return { ok: false, code: 'E_CONFIG_INVALID', problems };
}

/** A loader issue as a problem of the submitted text (the file is the running one's name: left out). */
function toProblem(issue: ConfigIssue): ConfigProblem {
  return { line: issue.line, col: issue.col, path: issue.path, message: issue.message };
}

/**
 * What central may not change: the gateway's id (its topics, its records upstream, the broker's
 * client id), where its store lives (a remote change must never strand the buffered readings),
 * and the keys that sign firmware manifests. A technician changes them on site.
 */
function forbiddenRemotely(text: string, next: Config, opts: ValidateOptions): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const locate = keyLocator(text);
  if (next.gateway.id !== opts.running.gateway.id) {
    problems.push({
      ...locate(['gateway', 'id']),
      path: 'gateway.id',
      message: `a change from central may not change the gateway's id (it is "${opts.running.gateway.id}"); a technician changes it on the gateway, with a restart`,
    });
  }
  if (storeFile(next.storage.path, opts.dir) !== storeFile(opts.running.storage.path, opts.dir)) {
    problems.push({
      ...locate(['storage', 'path']),
      path: 'storage.path',
      message: 'a change from central may not move the store; a technician moves it on the gateway, with a restart',
    });
  }
  // the keys that sign what changes devices: trust is given on the gateway, never by the party it trusts
  const sameKeys = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((k, i) => k.trim() === b[i]?.trim());
  if (!sameKeys(next.firmware.signingKeys, opts.running.firmware.signingKeys)) {
    problems.push({
      ...locate(['firmware', 'signingKeys']),
      path: 'firmware.signingKeys',
      message: 'a change from central may not change the keys that sign firmware manifests; a technician changes them on the gateway',
    });
  }
  return problems;
}

/** The store's file as the gateway opens it: relative to the devices.yaml's directory (`:memory:` as is). */
function storeFile(path: string, dir: string): string {
  if (path === ':memory:') return path;
  return isAbsolute(path) ? resolve(path) : resolve(dir, path);
}

/**
 * Where a key is written in the text, 1-based: the key itself, else the nearest enclosing key
 * that is written (a default left out: `storage:`), else 0:0.
 */
function keyLocator(text: string): (path: readonly string[]) => { line: number; col: number } {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text; // as the loader reads it
  const lines = new LineCounter();
  const doc = parseDocument(source, { ...YAML_OPTIONS, lineCounter: lines });
  return (path) => {
    let node: unknown = doc.contents;
    let offset: number | undefined;
    for (const seg of path) {
      if (!isMap(node)) break;
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === seg);
      const start = pair && isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      if (pair === undefined || start === undefined) break;
      offset = start;
      node = pair.value as Node | null;
    }
    return offset === undefined ? { line: 0, col: 0 } : lines.linePos(offset);
  };
}
