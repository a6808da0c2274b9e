/**
 * Where a YAML syntax error was really made. yaml reports a wrong indent or a missing
 * character where it notices it, often on the line after the one to fix: these rules move the
 * first error of a section to the line a technician should edit, and say what is wrong there.
 * Each rule matches one pattern of yaml's errors; none matching, yaml's own error stands.
 */
import type { Document } from 'yaml';

/** One error of yaml: its code and where it is reported. */
export interface RawError {
  offset: number;
  code: string;
  message: string;
}

/** Where to look instead, and why. */
export interface Hint {
  offset: number;
  message: string;
}

/** The source by line, for looking at indents. */
class Lines {
  private readonly lines: string[];
  private readonly starts: number[] = [];

  constructor(text: string) {
    this.lines = text.split('\n');
    let at = 0;
    for (const line of this.lines) {
      this.starts.push(at);
      at += line.length + 1;
    }
  }

  /** 0-based line of an offset */
  lineOf(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  text(i: number): string {
    return this.lines[i]?.replace(/\r$/, '') ?? '';
  }

  start(i: number): number {
    return this.starts[i] ?? 0;
  }

  indent(i: number): number {
    const t = this.text(i);
    return t.length - t.trimStart().length;
  }

  /** the column (0-based) where the line's key starts, after any "- " list dashes */
  keyColumn(i: number): number {
    return /^\s*(?:-\s+)*/.exec(this.text(i))![0].length;
  }

  isContent(i: number): boolean {
    const t = this.text(i).trim();
    return t !== '' && !t.startsWith('#');
  }

  /** the next (by 1) or previous (by −1) line with content; −1 or past the end when none */
  step(from: number, by: 1 | -1): number {
    let i = from + by;
    while (i >= 0 && i < this.lines.length && !this.isContent(i)) i += by;
    return i;
  }

  /** `key:` or `key: value` (a mapping entry, maybe after list dashes) */
  isKeyLine(i: number): boolean {
    return /^\s*(?:-\s+)*[^\s#\-[{][^#]*?:(\s|$)/.test(this.text(i)) || /^\s*(?:-\s+)*["'][^"']*["']\s*:(\s|$)/.test(this.text(i));
  }
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

const SAME_COLUMN = 'all keys of a mapping start at the same column';
const SAME_ITEMS = 'all items of a list start at the same column';

/** The first error of a section, explained at the line to fix (undefined: yaml's error stands). */
export function hintFor(first: RawError, errors: readonly RawError[], text: string, doc: Document | undefined): Hint | undefined {
  const lines = new Lines(text);
  return (
    (doc && indentedRoot(doc, lines)) ??
    oddFirstKey(first, errors, lines) ??
    missingColon(first, lines) ??
    unclosedFlow(first, text) ??
    overIndentedKey(first, lines) ??
    oddItem(first, lines) ??
    oddItemKey(first, lines)
  );
}

/**
 * yaml places some errors in the indent before a line's first token, or on the blank line
 * before it: the token is where to look. (A tab is left alone: it is what TAB_AS_INDENT is about.)
 */
export function atToken(offset: number, text: string): number {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  if (!/^ *$/.test(text.slice(lineStart, offset))) return offset;
  let i = offset;
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r')) i++;
  return i < text.length ? i : offset;
}

/** Whether the mapping that holds the key on `line` starts there: the content line before is its parent, or the line is a list item. */
function startsMapping(line: number, lines: Lines): boolean {
  if (lines.keyColumn(line) !== lines.indent(line)) return true;
  const parent = lines.step(line, -1);
  return parent < 0 || lines.keyColumn(parent) < lines.keyColumn(line);
}

/**
 * The first key of the file indented while a later top-level key is not: yaml reads the file as
 * a mapping at that indent and reports every line after the first unindented one.
 */
function indentedRoot(doc: Document, lines: Lines): Hint | undefined {
  const start = doc.contents?.range?.[0];
  if (start === undefined) return undefined;
  const line = lines.lineOf(start);
  const indent = start - lines.start(line);
  if (indent === 0 || lines.indent(line) !== indent) return undefined;
  let i = lines.step(line, 1);
  while (lines.isContent(i) && lines.indent(i) > 0) i = lines.step(i, 1);
  if (!lines.isContent(i)) return undefined;
  return { offset: start, message: `the first key is indented ${plural(indent, 'space')} and the top-level keys after it are not; top-level keys start at column 1` };
}

/**
 * yaml takes a mapping's column from its first key and reports each later key at another
 * column (BAD_INDENT). When it reports the two lines after the first key, and they agree on
 * their column, the first key is the one out of line.
 */
function oddFirstKey(first: RawError, errors: readonly RawError[], lines: Lines): Hint | undefined {
  if (first.code !== 'BAD_INDENT' || !/same column/.test(first.message)) return undefined;
  const line = lines.lineOf(first.offset);
  const next = lines.step(line, 1);
  const reported = errors.some((e) => e.code === 'BAD_INDENT' && lines.lineOf(e.offset) === next);
  const key = lines.step(line, -1);
  if (!reported || key < 0 || lines.indent(next) !== lines.indent(line) || lines.indent(key) === lines.indent(line)) return undefined;
  const parent = lines.step(key, -1);
  if (parent >= 0 && lines.indent(parent) >= Math.min(lines.indent(key), lines.indent(line))) return undefined;
  if (lines.keyColumn(key) !== lines.indent(key)) return undefined; // a list item: its own rules
  return {
    offset: lines.start(key) + lines.indent(key),
    message: `this key is indented ${plural(lines.indent(key), 'space')} and the keys after it ${lines.indent(line)}; ${SAME_COLUMN}`,
  };
}

/** A line of a mapping without its ":" (`path data/x.db`): yaml reports the key after it. */
function missingColon(first: RawError, lines: Lines): Hint | undefined {
  if (first.code !== 'BAD_INDENT' || !/same column/.test(first.message)) return undefined;
  const line = lines.lineOf(first.offset);
  const before = lines.step(line, -1);
  if (before < 0 || lines.indent(before) !== lines.indent(line) || lines.isKeyLine(before) || !lines.isKeyLine(line)) return undefined;
  if (/^[-{[\]}"'&*!|>]/.test(lines.text(before).trimStart())) return undefined; // a list item, a flow collection, …: not a plain `key value`
  return { offset: lines.start(before) + lines.keyColumn(before), message: 'expected "key: value" here, like the lines around it (a missing ":"?)' };
}

/** A flow mapping or list left open (`{ id: a, unit: 1`): yaml reports the line after it. */
function unclosedFlow(first: RawError, text: string): Hint | undefined {
  const m = /in block collection must be sufficiently indented and end with a ([}\]])/.exec(first.message);
  if (m === null) return undefined;
  const close = m[1]!;
  const open = close === '}' ? '{' : '[';
  let depth = 0;
  for (let i = Math.min(first.offset, text.length) - 1; i >= 0; i--) {
    const c = text[i];
    if (c === '}' || c === ']') depth++;
    else if (c === '{' || c === '[') {
      if (depth === 0) return c === open ? { offset: i, message: `a "${open}" is never closed (missing "${close}")` } : undefined;
      depth--;
    }
  }
  return undefined;
}

/**
 * A key indented further than the key before it: yaml reads it as the rest of that key's value
 * and reports the key before it ("nested mappings are not allowed in compact mappings").
 */
function overIndentedKey(first: RawError, lines: Lines): Hint | undefined {
  if (first.code !== 'BLOCK_AS_IMPLICIT_KEY' && first.code !== 'MULTILINE_IMPLICIT_KEY') return undefined;
  const line = lines.lineOf(first.offset);
  const next = lines.step(line, 1);
  if (!lines.isKeyLine(line) || !lines.isKeyLine(next) || lines.keyColumn(next) <= lines.keyColumn(line)) return undefined;
  if (/:\s*(#.*)?$/.test(lines.text(line))) return undefined; // `key:` with its value below: a nested mapping is fine
  const after = lines.step(next, 1);
  if (startsMapping(line, lines) && lines.isKeyLine(after) && lines.keyColumn(after) === lines.keyColumn(next)) {
    // the keys after it agree: the first key of the mapping is the one out of line
    return {
      offset: lines.start(line) + lines.keyColumn(line),
      message: `this key is indented ${plural(lines.keyColumn(line), 'space')} and the keys after it ${lines.keyColumn(next)}; ${SAME_COLUMN}`,
    };
  }
  return {
    offset: lines.start(next) + lines.keyColumn(next),
    message: `this key is indented ${plural(lines.keyColumn(next), 'space')}, more than the key before it (${lines.keyColumn(line)}), so it reads as part of that key's value; ${SAME_COLUMN}`,
  };
}

/**
 * A list item indented unlike the one before it: yaml reports the second ("all sequence items
 * must start at the same column", or "a block sequence may not be used as an implicit map
 * key"). When the items after it agree with it, the first item is the one out of line.
 */
function oddItem(first: RawError, lines: Lines): Hint | undefined {
  const sequence = first.code === 'BAD_INDENT' && /sequence items must start at the same column/.test(first.message);
  if (!sequence && !(first.code === 'BLOCK_AS_IMPLICIT_KEY' && /block sequence/.test(first.message))) return undefined;
  const line = lines.lineOf(first.offset);
  const item = lines.step(line, -1);
  const next = lines.step(line, 1);
  const isItem = (i: number): boolean => /^\s*-(\s|$)/.test(lines.text(i));
  if (item < 0 || !isItem(item) || !isItem(line) || lines.indent(item) === lines.indent(line)) return undefined;
  const parent = lines.step(item, -1);
  const firstOfList = parent < 0 || lines.indent(parent) < Math.min(lines.indent(item), lines.indent(line));
  if (firstOfList && isItem(next) && lines.indent(next) === lines.indent(line)) {
    return {
      offset: lines.start(item) + lines.indent(item),
      message: `this list item is indented ${plural(lines.indent(item), 'space')} and the items after it ${lines.indent(line)}; ${SAME_ITEMS}`,
    };
  }
  return {
    offset: lines.start(line) + lines.indent(line),
    message: `this list item is indented ${plural(lines.indent(line), 'space')} and the item before it ${lines.indent(item)}; ${SAME_ITEMS}`,
  };
}

/**
 * A list item whose first key is indented further than its next key (`   - id: a` over
 * `    type: tcp`): yaml reports the next key ("sequence item without - indicator").
 */
function oddItemKey(first: RawError, lines: Lines): Hint | undefined {
  if (first.code !== 'MISSING_CHAR' || !/without - indicator/.test(first.message)) return undefined;
  const line = lines.lineOf(first.offset);
  const item = lines.step(line, -1);
  const next = lines.step(line, 1);
  if (item < 0 || !/^\s*-\s/.test(lines.text(item)) || lines.keyColumn(item) <= lines.indent(line)) return undefined;
  if (!lines.isKeyLine(next) || lines.keyColumn(next) !== lines.keyColumn(line)) return undefined;
  return {
    offset: lines.start(item) + lines.indent(item),
    message: `this list item's first key is at column ${lines.keyColumn(item) + 1} and its keys after it at column ${lines.keyColumn(line) + 1}; ${SAME_COLUMN}`,
  };
}
