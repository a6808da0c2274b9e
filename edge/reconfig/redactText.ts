/**
 * A devices.yaml text with its secrets shown as `***` (issue 16): what `streetbox config show`,
 * GET /api/v1/config/versions/<v> and the diffs of versions print. Unlike redactConfig (which
 * redacts the parsed config), this keeps the text as written: comments, key order, layout; only
 * the secret scalars change. The secrets are those of edge/config/redact.ts (isSecretPath on the
 * value's YAML path), followed through aliases and `<<` merge keys. A value that is exactly a
 * `${VAR}` reference stays: it names a variable, not a secret. A text that does not parse is
 * redacted line by line, erring towards redacting more.
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, Scalar, type Node } from 'yaml';
import { isSecretKey, isSecretPath } from '../config/redact.js';

export const REDACTED_TEXT = '***';

/** Nodes visited (aliases followed) before the walk gives up and redacts every anchored value too. */
const MAX_VISITS = 100_000;
const WHOLE_REF_RE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** `text` with every secret value replaced by `***`, everything else as written. */
export function redactText(text: string): string {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) return redactLines(text);
  const root = doc.contents as Node | null;
  const walk = new SecretWalk(true);
  walk.visit(root, []);
  if (!walk.gaveUp) return splice(text, walk.ranges);
  // aliases expand past MAX_VISITS (a document the loader refuses anyway): the document as
  // written, aliases not followed, and every anchored value too, since any may stand at a secret path
  const plain = new SecretWalk(false);
  plain.visit(root, []);
  plain.redactAnchored();
  return splice(text, new Map([...walk.ranges, ...plain.ranges]));
}

/** A secret scalar's source range [start, end); a block scalar keeps its header line. */
interface Replacement {
  start: number;
  end: number;
  block: boolean;
}

/**
 * The scalars at secret paths, found by one walk of the document, with aliases and merges
 * followed (at most MAX_VISITS nodes, then it gives up) or not.
 */
class SecretWalk {
  /** start offset → replacement (a scalar reached twice through aliases is replaced once) */
  readonly ranges = new Map<number, Replacement>();
  private readonly anchors = new Map<string, Node>();
  /** alias nodes being followed: an alias inside its own anchor is a cycle */
  private readonly following = new Set<Node>();
  private visits = 0;
  gaveUp = false;

  constructor(private readonly followAliases: boolean) {}

  visit(node: Node | null, path: PropertyKey[]): void {
    if (node === null || this.gaveUp) return;
    if (this.followAliases && ++this.visits > MAX_VISITS) {
      this.gaveUp = true;
      return;
    }
    if (isAlias(node)) {
      if (this.followAliases) this.follow(this.anchors.get(node.source), path);
      return;
    }
    // an alias names the last node anchored before it in the document: anchors count in document order only
    const inOrder = this.following.size === 0;
    if (inOrder && (isScalar(node) || isMap(node) || isSeq(node)) && node.anchor) this.anchors.set(node.anchor, node);
    if (isScalar(node)) return this.scalar(node, path);
    if (isSeq(node)) {
      node.items.forEach((item, i) => this.visit(item as Node | null, [...path, i]));
      return;
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        if (inOrder && isScalar(key) && key.anchor) this.anchors.set(key.anchor, key);
        if (isScalar(key) && key.value === '<<' && key.type === Scalar.PLAIN) {
          if (this.followAliases) this.merge(pair.value as Node | null, path);
          continue;
        }
        const name = isScalar(key) && key.value !== null && typeof key.value !== 'object' ? String(key.value as string | number | boolean) : '';
        this.visit(pair.value as Node | null, [...path, name]);
      }
    }
  }

  /** `<<: *base` (or a list of them): the merged mapping's values land at this mapping's path. */
  private merge(value: Node | null, path: PropertyKey[]): void {
    if (isSeq(value)) for (const item of value.items) this.visit(item as Node | null, path);
    else this.visit(value, path);
  }

  /** An alias stands for its anchored node at the alias's place: walked again at this path. */
  private follow(target: Node | undefined, path: PropertyKey[]): void {
    if (target === undefined || this.following.has(target)) return;
    this.following.add(target);
    try {
      this.visit(target, path);
    } finally {
      this.following.delete(target);
    }
  }

  private scalar(node: Scalar, path: PropertyKey[]): void {
    if (!isSecretPath(path) || node.value === null) return;
    if (typeof node.value === 'string' && WHOLE_REF_RE.test(node.value)) return;
    addRange(node, this.ranges);
  }

  /** Every scalar of every anchored node seen, as a secret. */
  redactAnchored(): void {
    for (const node of this.anchors.values()) redactAll(node, this.ranges);
  }
}

/** Every scalar in `node` (no alias followed), as a secret. */
function redactAll(root: Node, ranges: Map<number, Replacement>): void {
  const stack: (Node | null)[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() ?? null;
    if (isScalar(node) && node.value !== null) {
      addRange(node, ranges);
    } else if (isSeq(node)) {
      stack.push(...(node.items as (Node | null)[]));
    } else if (isMap(node)) {
      for (const pair of node.items) stack.push(pair.value as Node | null);
    }
  }
}

function addRange(node: Scalar, ranges: Map<number, Replacement>): void {
  if (!node.range) return;
  const [start, end] = node.range;
  if (end > start) ranges.set(start, { start, end, block: node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED });
}

/** The text with the ranges replaced, from the end so earlier offsets stay valid. */
function splice(text: string, ranges: Map<number, Replacement>): string {
  const sorted = [...ranges.values()].sort((x, y) => y.start - x.start);
  let out = text;
  let limit = text.length;
  for (const r of sorted) {
    if (r.end > limit) continue; // overlaps one already replaced (cannot happen for scalars)
    const source = out.slice(r.start, r.end);
    out = out.slice(0, r.start) + (r.block ? redactBlock(source) : REDACTED_TEXT) + out.slice(r.end);
    limit = r.start;
  }
  return out;
}

/**
 * A block scalar (`|`, `>-`, …) keeps its header line with its comment; its content becomes one
 * line `***` at the content's indentation, and the newlines after it stay.
 */
function redactBlock(source: string): string {
  const nl = source.indexOf('\n');
  if (nl < 0) return source;
  const header = source.slice(0, nl + 1);
  const body = source.slice(nl + 1);
  const firstContent = body.split('\n').find((l) => l.trim() !== '');
  if (firstContent === undefined) return source;
  const indent = /^[ \t]*/.exec(firstContent)?.[0] ?? '';
  const trailing = /\n*$/.exec(body)?.[0] ?? '';
  return `${header}${indent}${REDACTED_TEXT}${trailing === '' ? '' : trailing}`;
}

// ---- the fallback for a text that does not parse ----

/** `key:` at the start of a line (after indentation and `- `), or after `{` / `,` in a flow mapping; the key possibly quoted. */
const KEY_RE = /(^[ \t]*(?:-[ \t]+)*|[{,][ \t]*)(["']?)([A-Za-z_][A-Za-z0-9_-]*)\2[ \t]*:(?=[ \t]|$)/g;

/**
 * Line by line: the value after every secret key is replaced, and so are the lines indented
 * under a secret key (a block scalar, a nested list or mapping: all of it is secret). A secret
 * written as an alias (`password: *pw`) has its anchored value (`&pw …`) replaced too.
 */
function redactLines(text: string): string {
  const lines = text.split('\n');
  const aliases = new Set<string>();
  let section = ''; // the top-level key the line is in: `key` is a secret in `sync`
  redactIndented(lines, (line, indent) => {
    if (indent === 0) section = /^["']?([A-Za-z_][A-Za-z0-9_-]*)/.exec(line)?.[1] ?? '';
    return redactLine(line, section, aliases);
  });
  if (aliases.size > 0) redactIndented(lines, (line) => redactAnchored(line, aliases));
  return lines.join('\n');
}

/**
 * Applies `redact` to each line that is not blank or a comment; when it says a secret value
 * continues below (`opensBlock`), the lines indented deeper are replaced by `***` whole.
 */
function redactIndented(lines: string[], redact: (line: string, indent: number) => { text: string; opensBlock: boolean }): void {
  let underIndent = -1; // lines indented deeper than this belong to a secret value
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    const indent = /^[ \t]*/.exec(line)?.[0].length ?? 0;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    if (underIndent >= 0 && indent > underIndent) {
      lines[n] = line.slice(0, indent) + REDACTED_TEXT;
      continue;
    }
    underIndent = -1;
    const { text, opensBlock } = redact(line, indent);
    lines[n] = text;
    if (opensBlock) underIndent = indent;
  }
}

/** One line with the values of its secret keys replaced; opensBlock when a secret key's value continues on the lines below. */
function redactLine(line: string, section: string, aliases: Set<string>): { text: string; opensBlock: boolean } {
  let out = '';
  let from = 0;
  let opensBlock = false;
  KEY_RE.lastIndex = 0;
  for (let m = KEY_RE.exec(line); m !== null; m = KEY_RE.exec(line)) {
    if (m.index < from) continue;
    const key = m[3]!;
    const valueStart = m.index + m[0].length;
    if (!isSecretKey(key) && !(section === 'sync' && key === 'key')) continue;
    const flow = m[1]!.startsWith('{') || m[1]!.startsWith(',');
    const value = valueSpan(line, valueStart, flow);
    out += line.slice(from, value.start) + redactValue(line.slice(value.start, value.end), aliases);
    if (opensValue(line.slice(value.start, value.end))) opensBlock = true;
    from = value.end;
    KEY_RE.lastIndex = Math.max(KEY_RE.lastIndex, value.end);
  }
  return { text: out + line.slice(from), opensBlock };
}

/** `&name value` of an anchor some secret key refers to: the value replaced. */
function redactAnchored(line: string, aliases: Set<string>): { text: string; opensBlock: boolean } {
  const m = /&([^\s,[\]{}]+)/.exec(line);
  if (m === null || !aliases.has(m[1]!)) return { text: line, opensBlock: false };
  const after = m.index + m[0].length;
  const value = valueSpan(line, after, /[{[]/.test(line.slice(0, m.index)));
  const written = line.slice(value.start, value.end);
  return { text: line.slice(0, value.start) + redactValue(written, new Set()) + line.slice(value.end), opensBlock: opensValue(written) };
}

/** A secret value as written, replaced; kept when empty, a block indicator, or a whole `${VAR}`; an alias is noted for its anchor. */
function redactValue(written: string, aliases: Set<string>): string {
  if (written === '' || BLOCK_INDICATOR_RE.test(written) || WHOLE_REF_RE.test(unquote(written))) return written;
  const alias = /^\*([^\s,[\]{}]+)$/.exec(written);
  if (alias) {
    aliases.add(alias[1]!);
    return written;
  }
  return REDACTED_TEXT;
}

const BLOCK_INDICATOR_RE = /^[|>][-+0-9]*$/;

/** The value continues on the lines below: nothing after the colon, or a block scalar's indicator. */
function opensValue(written: string): boolean {
  return written === '' || BLOCK_INDICATOR_RE.test(written);
}

/** Where the value after a key's colon is written: a quoted string to its closing quote (or the line's end), else up to a comment, or in a flow mapping up to `,` `}` `]`. */
function valueSpan(line: string, after: number, flow: boolean): { start: number; end: number } {
  let start = after;
  while (start < line.length && (line[start] === ' ' || line[start] === '\t')) start++;
  const quote = line[start];
  if (quote === '"' || quote === "'") return { start, end: closingQuote(line, start, quote) };
  let end = start;
  while (end < line.length) {
    const c = line[end]!;
    if (flow && (c === ',' || c === '}' || c === ']')) break;
    if (c === '#' && end > start && (line[end - 1] === ' ' || line[end - 1] === '\t')) break;
    end++;
  }
  while (end > start && (line[end - 1] === ' ' || line[end - 1] === '\t' || line[end - 1] === '\r')) end--;
  return { start, end };
}

/** The offset after the quote closing the string opened at `open` (`''` and `\"` escapes skipped); the line's end when unclosed. */
function closingQuote(line: string, open: number, quote: string): number {
  for (let k = open + 1; k < line.length; k++) {
    const c = line[k];
    if (quote === '"' && c === '\\') {
      k++;
      continue;
    }
    if (c === quote) {
      if (quote === "'" && line[k + 1] === "'") {
        k++;
        continue;
      }
      return k + 1;
    }
  }
  return line.length;
}

function unquote(written: string): string {
  const q = written[0];
  return (q === '"' || q === "'") && written.length >= 2 && written.endsWith(q) ? written.slice(1, -1) : written;
}
