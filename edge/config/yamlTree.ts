/**
 * From a parsed YAML document to plain data, remembering where every value and key was
 * written (so an issue can point at its line and column) and substituting `${ENV_VAR}` in
 * string scalars. Aliases and `<<` merge keys are followed, each resolved once in a single
 * pass over the document (yaml's own `Alias.resolve` walks the whole document for every alias:
 * quadratic); a document whose aliases would expand it past MAX_NODES is refused unexpanded.
 */
import { isAlias, isCollection, isMap, isScalar, isSeq, parse as parseYaml, Scalar, type Alias, type Document, type Node } from 'yaml';

/** Offsets into the source (0-based); the loader turns them into line:col. */
export interface NodePos {
  value: number;
  key?: number;
}

/** A scalar whose text came (partly) from the environment. Its value is a secret. */
export interface Substitution {
  vars: string[];
  value: string;
}

export interface TreeIssue {
  offset: number;
  path: PropertyKey[];
  message: string;
}

export interface Tree {
  data: unknown;
  /** pathKey(path) → where it is written */
  positions: Map<string, NodePos>;
  /** pathKey(path) → the substitution made in that scalar */
  substitutions: Map<string, Substitution>;
  /** pathKey(path) of values already reported (an unset variable, an unknown anchor): their validation issues are moot */
  badPaths: Set<string>;
  /** pathKey(path) → the text of an unquoted scalar read as a number or boolean (for a "quote it" hint) */
  plainText: Map<string, string>;
  issues: TreeIssue[];
  /** the aliases would expand the document past MAX_NODES: nothing was expanded, `data` is undefined */
  refused: boolean;
}

export function pathKey(path: readonly PropertyKey[]): string {
  return JSON.stringify(path.map((s) => (typeof s === 'number' ? s : String(s))));
}

/** values the document may expand to through its aliases (a "billion laughs" document is refused) */
export const MAX_NODES = 100_000;
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REF_RE = /\$(\$?)\{([^}]*)\}/g;
const WHOLE_REF_RE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

interface AliasPlan {
  /** each alias → the node it stands for: the last one anchored with its name before it */
  targets: Map<Alias, Node>;
  /** the values of the document with its aliases expanded (merge keys counted as written) */
  size: number;
  /** the alias at which the expanded document passes MAX_NODES */
  bomb?: Alias;
}

/**
 * One pass in document order: resolves every alias and counts the values the document would
 * expand to, each anchored node's expanded size computed once (linear in the document).
 */
function planAliases(root: Node | null): AliasPlan {
  const anchors = new Map<string, Node>();
  const sizes = new Map<Node, number>();
  const plan: AliasPlan = { targets: new Map(), size: 0 };
  const visit = (node: unknown): number => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) return 1;
      plan.targets.set(node, target);
      // a target still being visited contains this alias: a cycle, reported when converting
      const size = sizes.get(target) ?? 1;
      plan.size += size;
      if (plan.bomb === undefined && plan.size > MAX_NODES) plan.bomb = node;
      return size;
    }
    plan.size += 1;
    if (!isScalar(node) && !isCollection(node)) return 1;
    if (node.anchor) anchors.set(node.anchor, node);
    let size = 1;
    if (isSeq(node)) for (const item of node.items) size += visit(item);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key) && pair.key.anchor) anchors.set(pair.key.anchor, pair.key); // `&k name: …` anchors the key
        size += visit(pair.value);
      }
    }
    sizes.set(node, size);
    return size;
  };
  visit(root);
  return plan;
}

/** Converts the document's contents; never throws for bad input (issues are collected). */
export function toTree(doc: Document, env: NodeJS.ProcessEnv): Tree {
  const tree: Tree = { data: undefined, positions: new Map(), substitutions: new Map(), badPaths: new Set(), plainText: new Map(), issues: [], refused: false };
  const aliases = planAliases(doc.contents as Node | null);
  if (aliases.bomb !== undefined) {
    tree.refused = true;
    const at = aliases.bomb;
    tree.issues.push({ offset: at.range?.[0] ?? 0, path: [], message: `alias "*${at.source}" would expand the document to more than ${MAX_NODES} values (aliases of aliases); refused` });
    return tree;
  }
  const stack = new Set<Node>();

  const place = (path: PropertyKey[], node: Node | null, keyNode?: Node | null): void => {
    const k = pathKey(path);
    if (tree.positions.has(k)) return; // an explicit key wins over one merged in later
    const keyOffset = keyNode?.range?.[0];
    let value = node?.range?.[0] ?? keyOffset ?? 0;
    // an empty value (`unit:`) is best pointed at by its key
    if (node && isScalar(node) && node.range && node.range[0] === node.range[1] && keyOffset !== undefined) value = keyOffset;
    tree.positions.set(k, keyOffset === undefined ? { value } : { value, key: keyOffset });
  };

  const substitute = (node: Scalar, text: string, path: PropertyKey[]): unknown => {
    if (!text.includes('${')) return text;
    const vars: string[] = [];
    let unset = false;
    const out = text.replace(REF_RE, (whole, escape: string, name: string) => {
      if (escape === '$') return whole.slice(1); // $${X} is a literal ${X}
      if (!NAME_RE.test(name)) {
        tree.issues.push({ offset: node.range?.[0] ?? 0, path, message: `"\${${name}}" is not an environment variable reference (names are letters, digits and "_"); write "$\${" for a literal "\${"` });
        return whole;
      }
      vars.push(name);
      const value = env[name];
      if (value === undefined) {
        unset = true;
        tree.issues.push({ offset: node.range?.[0] ?? 0, path, message: `environment variable ${name} is not set` });
        return whole;
      }
      return value;
    });
    if (unset) {
      tree.badPaths.add(pathKey(path));
      return out;
    }
    if (vars.length === 0) return out;
    tree.substitutions.set(pathKey(path), { vars, value: out });
    // `port: ${MQTT_PORT}` unquoted: the variable's text is read as a YAML number or boolean
    if (node.type === Scalar.PLAIN && WHOLE_REF_RE.test(text)) {
      try {
        const typed: unknown = parseYaml(out);
        if (typeof typed === 'number' || typeof typed === 'boolean') return typed;
      } catch {
        // not a scalar: keep the string
      }
    }
    return out;
  };

  const convert = (node: Node | null, path: PropertyKey[]): unknown => {
    if (node === null) return null;
    if (isAlias(node)) {
      const target = aliases.targets.get(node);
      if (target === undefined) {
        tree.badPaths.add(pathKey(path));
        tree.issues.push({ offset: node.range?.[0] ?? 0, path, message: `unknown anchor "*${node.source}" (an alias needs a "&${node.source}" earlier in the file)` });
        return null;
      }
      if (stack.has(target)) {
        tree.badPaths.add(pathKey(path));
        tree.issues.push({ offset: node.range?.[0] ?? 0, path, message: `alias "*${node.source}" refers to a value that contains it` });
        return null;
      }
      stack.add(target);
      try {
        return convert(target, path);
      } finally {
        stack.delete(target);
      }
    }
    if (isScalar(node)) {
      if (typeof node.value === 'string') return substitute(node, node.value, path);
      if ((typeof node.value === 'number' || typeof node.value === 'boolean') && node.source !== undefined) {
        tree.plainText.set(pathKey(path), node.source);
      }
      return node.value;
    }
    if (isSeq(node)) {
      return node.items.map((item, i) => {
        const itemPath = [...path, i];
        place(itemPath, item as Node | null);
        return convert(item as Node | null, itemPath);
      });
    }
    if (isMap(node)) {
      const obj: Record<string, unknown> = {};
      const merges: Node[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const valueNode = pair.value as Node | null;
        if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
          tree.issues.push({ offset: keyNode?.range?.[0] ?? node.range?.[0] ?? 0, path, message: 'expected a key name, got a list or mapping as a key' });
          continue;
        }
        if (keyNode.value === '<<' && keyNode.type === Scalar.PLAIN) {
          if (valueNode) merges.push(valueNode);
          continue;
        }
        const key = String(keyNode.value as string | number | boolean);
        if (Object.hasOwn(obj, key)) continue; // written twice (reported): the first, where its issues point, is kept
        const childPath = [...path, key];
        place(childPath, valueNode, keyNode);
        Object.defineProperty(obj, key, { value: convert(valueNode, childPath), enumerable: true, writable: true, configurable: true });
      }
      // YAML merge key: explicit keys win, then earlier merged mappings over later ones
      for (const m of merges) {
        const sources = isSeq(m) ? (m.items as Node[]) : [m];
        for (const src of sources) {
          const merged = convert(src, path);
          if (merged === null || typeof merged !== 'object' || Array.isArray(merged)) {
            tree.issues.push({ offset: src.range?.[0] ?? 0, path, message: 'expected a mapping (or a list of them) after "<<"' });
            continue;
          }
          for (const [k, v] of Object.entries(merged)) {
            if (!Object.hasOwn(obj, k)) Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
          }
        }
      }
      return obj;
    }
    return null;
  };

  place([], doc.contents as Node | null);
  tree.data = convert(doc.contents as Node | null, []);
  return tree;
}

/** A map key as written: its path, name, and where the same key was first written in its map. */
export interface KeyAt {
  path: PropertyKey[];
  name: string;
  first?: number;
}

/** Every scalar map key of the document by its offset (one pass: for the duplicate-key errors). */
export function keysByOffset(doc: Document): Map<number, KeyAt> {
  const out = new Map<number, KeyAt>();
  const walk = (node: unknown, path: PropertyKey[]): void => {
    if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isMap(node)) {
      const firsts = new Map<string, number>();
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        const name = String(pair.key.value);
        const offset = pair.key.range?.[0];
        if (offset !== undefined) {
          const first = firsts.get(name);
          if (first === undefined) firsts.set(name, offset);
          out.set(offset, first === undefined ? { path: [...path, name], name } : { path: [...path, name], name, first });
        }
        walk(pair.value, [...path, name]);
      }
    }
  };
  walk(doc.contents, []);
  return out;
}
