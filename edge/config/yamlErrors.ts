/**
 * The errors of the YAML parser in a technician's words, placed where to look. One broken line
 * can make the parser misread the rest of its section, or of the file (an indent off by one
 * near the top gave 630 errors): the errors after the first one of a section follow from it and
 * are folded into it. The file is then read again from the next top-level key, as if the lines
 * before it were blank, so an independent error further down is still reported.
 */
import { parseDocument, type Document, type ParseOptions, type DocumentOptions, type YAMLError } from 'yaml';
import { keysByOffset } from './yamlTree.js';
import { atToken, hintFor, type RawError } from './yamlHints.js';
import type { ConfigIssue } from './errors.js';

export type Place = (offset: number, path: readonly PropertyKey[], message: string) => ConfigIssue;

/** How the loader parses: positions for every node, duplicate keys reported. */
export const YAML_OPTIONS: ParseOptions & DocumentOptions = { prettyErrors: false, uniqueKeys: true };

/** Broken sections reported at most (each a parse of the file). */
const MAX_SECTIONS = 10;

/** A line that starts a top-level key: not indented, not a comment, a list item, a document marker or a flow collection's end. */
const TOP_LEVEL_LINE = /^[^\s#\-.,\]}]/;

interface Placed extends RawError {
  issue: ConfigIssue;
}

/**
 * Duplicate keys (the document is still usable): one issue each, at the key written again;
 * none for a key `skip` says follows from another issue.
 */
export function duplicateKeyIssues(doc: Document, text: string, place: Place, skip?: (path: readonly PropertyKey[], offset: number) => boolean): ConfigIssue[] {
  const dups = doc.errors.filter((e) => e.code === 'DUPLICATE_KEY');
  if (dups.length === 0) return [];
  const keys = keysByOffset(doc);
  return dups.flatMap((err) => {
    const offset = atToken(err.pos[0], text);
    const key = keys.get(offset);
    if (key === undefined) return [place(offset, [], `YAML syntax error: ${yamlMessage(err)}`)];
    if (skip?.(key.path, offset)) return [];
    const first = key.first === undefined ? '' : ` (first written at line ${place(key.first, [], '').line})`;
    return [place(offset, key.path, `duplicate key "${key.name}"${first}`)];
  });
}

/** Whether a top-level key is written twice (its sections are not where the checks between them expect). */
export function duplicateSection(doc: Document, text: string): boolean {
  const dups = doc.errors.filter((e) => e.code === 'DUPLICATE_KEY');
  if (dups.length === 0) return false;
  const keys = keysByOffset(doc);
  return dups.some((err) => keys.get(atToken(err.pos[0], text))?.path.length === 1);
}

/**
 * The syntax errors of a document that has some (anything but a duplicate key): the first
 * of each broken section, with how many errors after it were folded into it; duplicate keys
 * written before the first syntax error too (they are errors of their own).
 */
export function syntaxIssues(doc: Document, text: string, place: Place): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  let current = doc;
  let source = text;
  for (let round = 0; round < MAX_SECTIONS; round++) {
    const errors = syntaxErrors(current, source, place);
    if (errors.length === 0) break;
    const earliest = firstOf(errors);
    const hint = hintFor(earliest, errors, source, round === 0 ? doc : undefined);
    const first = hint === undefined ? earliest : { ...earliest, offset: hint.offset, issue: place(hint.offset, [], `YAML syntax error: ${hint.message}`) };
    if (round === 0) out.push(...duplicateKeyIssues(doc, text, place).filter((d) => d.line < first.issue.line));
    const resync = nextTopLevelLine(text, first.offset);
    const folded = errors.filter((e) => e !== earliest && (resync === undefined || e.offset < resync)).length;
    const upTo = resync === undefined ? '' : ` before line ${place(resync, [], '').line}`;
    out.push(folded === 0 ? first.issue : { ...first.issue, message: `${first.issue.message} (and ${folded} later error${folded === 1 ? '' : 's'}${upTo}, which follow${folded === 1 ? 's' : ''} from it)` });
    if (resync === undefined) break;
    source = blankBefore(text, resync);
    current = parseDocument(source, YAML_OPTIONS);
  }
  return out;
}

/** The error a section is reported by: the earliest, or a tab in the indent at most a line after it (a tab is unambiguous). */
function firstOf(errors: readonly Placed[]): Placed {
  const earliest = errors.reduce((a, b) => (b.offset < a.offset ? b : a));
  const tab = errors.find((e) => e.code === 'TAB_AS_INDENT' && e.issue.line <= earliest.issue.line + 1);
  return tab ?? earliest;
}

/** The errors of one parse other than duplicate keys, placed; one per position (the rest echo it). */
function syntaxErrors(doc: Document, source: string, place: Place): Placed[] {
  const seen = new Set<number>();
  const out: Placed[] = [];
  for (const err of doc.errors) {
    if (err.code === 'DUPLICATE_KEY') continue;
    const offset = atToken(err.pos[0], source);
    if (seen.has(offset)) continue;
    seen.add(offset);
    if (err.code === 'MISSING_CHAR' && /closing ["']quote/.test(err.message)) {
      // yaml reports an unclosed quote where the file ends; point at where it was opened
      const quote = err.message.includes('"quote') ? '"' : "'";
      const at = openingQuote(source, offset, quote);
      out.push({ offset: at, code: err.code, message: err.message, issue: place(at, [], `YAML syntax error: a quoted string is never closed (missing closing ${quote})`) });
      continue;
    }
    out.push({ offset, code: err.code, message: err.message, issue: place(offset, [], `YAML syntax error: ${yamlMessage(err)}`) });
  }
  return out;
}

/**
 * yaml's message, without the text it sometimes quotes from the file ("unexpected scalar token
 * in YAML stream: "…""): that text may be a secret, and line:col already points at it.
 */
function yamlMessage(err: YAMLError): string {
  if (err.code === 'TAB_AS_INDENT') return 'a tab used for indentation; indent with spaces';
  if (err.code === 'MULTIPLE_DOCS') return 'a second document ("---") in the file; devices.yaml is one document';
  const msg = err.message
    .replace(/(token in YAML (?:stream|document)): [^]*$/, '$1')
    .replace(/^(Not a YAML token|Block scalar header includes extra characters): [^]*$/, '$1');
  return lowerFirst(msg);
}

/** The offset of the first top-level key after the line of `offset`. */
export function nextTopLevelLine(text: string, offset: number): number | undefined {
  let at = text.indexOf('\n', offset);
  while (at !== -1) {
    const start = at + 1;
    if (TOP_LEVEL_LINE.test(text.slice(start, start + 1))) return start;
    at = text.indexOf('\n', start);
  }
  return undefined;
}

/** `text` with everything before `end` blanked (line ends kept): offsets and lines stay the same. */
function blankBefore(text: string, end: number): string {
  return text.slice(0, end).replace(/[^\r\n]/g, ' ') + text.slice(end);
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
