/**
 * Errors of the configuration loader. A bad devices.yaml is reported as one ConfigError
 * carrying every issue found, each with the file, 1-based line and column, the field path
 * and a message that says what was expected and what was found.
 */
import { StreetboxError } from '../errors.js';

export interface ConfigIssue {
  /** the file as it was given to the loader (usually relative: "devices.yaml") */
  file: string;
  /** 1-based; 0 when the issue concerns the whole file (it could not be read) */
  line: number;
  /** 1-based; 0 when the issue concerns the whole file */
  col: number;
  /** the field path, like `devices[3].unit`; "" for the document itself */
  path: string;
  message: string;
}

export class ConfigError extends StreetboxError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super('E_CONFIG', formatIssues(issues), options);
    this.issues = issues;
  }
}

/** One issue: `devices.yaml:42:7 devices[3].unit: expected an integer 1..247, got "x"`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.col}` : issue.file;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where} ${issue.path}: ${issue.message}`;
}

/** Every issue on its own line, in the order given (the loader sorts them by position). */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** Orders issues by position (issues at one position keep their order); drops duplicates. */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return [...issues]
    .sort((a, b) => a.line - b.line || a.col - b.col)
    .filter((issue) => {
      const text = formatIssue(issue);
      if (seen.has(text)) return false;
      seen.add(text);
      return true;
    });
}

/** A field path as a technician reads it: `devices[3].unit`, `broker.users[0]["odd key"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}
