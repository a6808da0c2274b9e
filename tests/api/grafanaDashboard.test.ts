/**
 * deploy/grafana/streetbox.json (issue 19, Deliver 6): the dashboard is well formed (unique panel
 * ids, every query panel on the DS_PROMETHEUS datasource with at least one query, panels within
 * the 24 columns and not overlapping, the gateway and group variables), and every metric its
 * queries and variables name is one the gateway exports: the shipped demo (Modbus controllers on
 * simulators, LoRaWAN nodes through the simulated packet forwarder) runs in this process with its
 * ports moved, and /metrics is scraped until every name is there.
 *
 * Metric names come out of the PromQL by a small tokenizer (selectors): strings, label matchers,
 * ranges and durations, `by (…)`-style label lists, functions, aggregations, keywords, numbers and
 * Grafana variables are stepped over; what is left is a series selector's metric name.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../edge/main.js';
import { startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { waitFor } from '../helpers/wait.js';
import { ROOT } from '../support/cli.js';

const DASHBOARD = join(ROOT, 'deploy/grafana/streetbox.json');

// ------------------------------------------------------------------ PromQL

/** One series selector of a PromQL expression: its metric name and its label matchers. */
interface Selector {
  name: string;
  matchers: { label: string; op: string; value: string }[];
}

const AGGREGATIONS = new Set(['sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group', 'limitk', 'limit_ratio']);
/** followed by a parenthesised list of label names */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['bool', 'and', 'or', 'unless', 'atan2', 'inf', 'nan', 'offset']);
const NUMBER_RE = /^(?:0x[0-9a-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)(?:ms|[smhdwy])*/i;
const DURATION_RE = /^-?\s*(?:[0-9]+(?:ms|[smhdwy]))+/;
const MATCHER_RE = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)/y;

/** The index after the string literal that opens at `i` ("…", '…' or `…`). */
function afterString(expr: string, i: number): number {
  const quote = expr[i]!;
  for (let j = i + 1; j < expr.length; j++) {
    if (expr[j] === '\\' && quote !== '`') j++;
    else if (expr[j] === quote) return j + 1;
  }
  throw new Error(`unterminated string in ${expr}`);
}

/** The text between the bracket opening at `i` and its match, and the index after it; strings inside are stepped over. */
function balanced(expr: string, i: number): { body: string; end: number } {
  const open = expr[i]!;
  const close = { '(': ')', '[': ']', '{': '}' }[open]!;
  let depth = 0;
  for (let j = i; j < expr.length; j++) {
    const c = expr[j]!;
    if (c === '"' || c === "'" || c === '`') j = afterString(expr, j) - 1;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return { body: expr.slice(i + 1, j), end: j + 1 };
  }
  throw new Error(`unbalanced ${open} in ${expr}`);
}

function parseMatchers(body: string): Selector['matchers'] {
  const out: Selector['matchers'] = [];
  MATCHER_RE.lastIndex = 0;
  while (MATCHER_RE.lastIndex < body.length && body.slice(MATCHER_RE.lastIndex).trim() !== '') {
    const m = MATCHER_RE.exec(body);
    if (!m) throw new Error(`not label matchers: {${body}}`);
    out.push({ label: m[1]!, op: m[2]!, value: JSON.parse(m[3]!.startsWith('"') ? m[3]! : JSON.stringify(m[3]!.slice(1, -1))) as string });
  }
  return out;
}

/** Every series selector of a PromQL expression (Grafana variables allowed: $name, ${name}, [[name]]). */
function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  const nextChar = (i: number): { c: string | undefined; at: number } => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++;
    return { c: expr[i], at: i };
  };
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '"' || c === "'" || c === '`') i = afterString(expr, i);
    else if (c === '#') i = expr.includes('\n', i) ? expr.indexOf('\n', i) + 1 : expr.length; // a comment
    else if (c === '[') i = balanced(expr, i).end; // a range, a subquery's resolution, or a [[variable]]
    else if (c === '{') {
      // a selector without a name before its braces: {__name__="…"}
      const b = balanced(expr, i);
      const matchers = parseMatchers(b.body);
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
      if (!name) throw new Error(`a selector without a metric name: {${b.body}}`);
      out.push({ name: name.value, matchers: matchers.filter((m) => m !== name) });
      i = b.end;
    } else if (c === '$') {
      i++; // a Grafana variable
      if (expr[i] === '{') i = balanced(expr, i).end;
      else while (i < expr.length && /\w/.test(expr[i]!)) i++;
    } else if (/[0-9.]/.test(c)) {
      const m = NUMBER_RE.exec(expr.slice(i));
      i += m ? Math.max(1, m[0].length) : 1;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))![0];
      i += word.length;
      const lower = word.toLowerCase();
      const next = nextChar(i);
      if (LABEL_LISTS.has(lower)) {
        if (next.c === '(') i = balanced(expr, next.at).end;
      } else if (lower === 'offset') {
        const d = DURATION_RE.exec(expr.slice(next.at));
        if (!d) throw new Error(`offset without a duration in ${expr}`);
        i = next.at + d[0].length;
      } else if (KEYWORDS.has(lower) || AGGREGATIONS.has(lower) || next.c === '(') {
        // a keyword, an aggregation (its argument follows, maybe after `by (…)`), a function call
      } else if (next.c === '{') {
        const b = balanced(expr, next.at);
        out.push({ name: word, matchers: parseMatchers(b.body) });
        i = b.end;
      } else out.push({ name: word, matchers: [] });
    } else i++; // operators, parentheses, commas
  }
  return out;
}

/** The PromQL in a query variable: label_values(<selector>, <label>) or query_result(<expr>); a label_values(<label>) has none. */
function variableExpr(query: string): string | null {
  const lv = /^\s*label_values\(\s*([\s\S]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.exec(query);
  if (lv) return lv[1]!;
  if (/^\s*label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.test(query)) return null;
  const qr = /^\s*query_result\(([\s\S]*)\)\s*$/.exec(query);
  return qr ? qr[1]! : query;
}

// ------------------------------------------------------------------ the dashboard

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query?: string }; definition?: string; datasource?: { uid?: string } }[] };
}

/** Every panel, those inside collapsed rows too. */
function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard, with where it is (for messages). */
function expressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d.panels)) for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr });
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
    const expr = variableExpr(q);
    if (expr !== null) out.push({ where: `variable ${v.name}`, expr });
  }
  return out;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

// ------------------------------------------------------------------ /metrics

interface Exposition {
  /** family name → type */
  types: Map<string, string>;
  /** family name → the label sets of its samples */
  series: Map<string, Record<string, string>[]>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const series = new Map<string, Record<string, string>[]>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries(parseMatchers(m[2] ?? '').map((l) => [l.label, l.value]));
    const list = series.get(m[1]!) ?? [];
    list.push(labels);
    series.set(m[1]!, list);
  }
  return { types, series };
}

/** The family a name belongs to: itself, or a histogram's (summary's) `_bucket`, `_sum`, `_count`. */
function familyOf(name: string, e: Exposition): string | null {
  if (e.types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return null;
  const t = e.types.get(m[1]!);
  return t === 'histogram' || (t === 'summary' && m[2] !== 'bucket') ? m[1]! : null;
}

// ------------------------------------------------------------------ tests

describe('the PromQL tokenizer', () => {
  const names = (expr: string): string[] => selectors(expr).map((s) => s.name);

  it('finds the metric names and steps over functions, matchers, ranges, label lists, keywords and variables', () => {
    expect(names('up')).toEqual(['up']);
    expect(names('sum by (group, role) (rate(a_total{x="b{c}", d=~"e|f", instance=~"$gateway"}[$__rate_interval] offset 1h)) / on (instance) group_left (device) b > bool 1e3')).toEqual(['a_total', 'b']);
    expect(names('count(c == 0) or vector(0)')).toEqual(['c']);
    expect(names('time() - d and on (instance, device) (e{f="1"} == 0)')).toEqual(['d', 'e']);
    expect(names('histogram_quantile(0.99, sum without (le) (rate(g_bucket[5m:30s])))')).toEqual(['g_bucket']);
    expect(names('SUM(h) BY (x) unless {__name__="i", j="k"} # a comment naming not_a_metric')).toEqual(['h', 'i']);
    expect(names('max_over_time(j[${__range}]) * 100 + .5 - 0x1F')).toEqual(['j']);
  });

  it('reads label matchers, and refuses what it cannot read', () => {
    expect(selectors('a{b="c\\"d", e!~\'f\'}')[0]!.matchers).toEqual([
      { label: 'b', op: '=', value: 'c"d' },
      { label: 'e', op: '!~', value: 'f' },
    ]);
    expect(() => selectors('a{b="c}')).toThrow('unterminated');
    expect(() => selectors('{job="x"}')).toThrow('without a metric name');
  });
});

describe('deploy/grafana/streetbox.json is well formed', () => {
  const panels = allPanels(dashboard.panels);
  const queryPanels = panels.filter((p) => p.type !== 'row');

  it('is a dashboard of schema ~39 with a DS_PROMETHEUS datasource variable, a gateway and a group variable', () => {
    expect(dashboard.uid).toBe('streetbox-gateway');
    expect(dashboard.title).toMatch(/streetbox/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.get('DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.get('gateway')).toMatchObject({ type: 'query', datasource: { uid: '${DS_PROMETHEUS}' } });
    expect(vars.get('gateway')!.definition).toMatch(/, instance\)$/);
    expect(vars.get('group')).toMatchObject({ type: 'query', datasource: { uid: '${DS_PROMETHEUS}' } });
  });

  it('has unique panel ids, and every query panel a datasource and at least one query', () => {
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(queryPanels.length).toBeGreaterThanOrEqual(30);
    for (const p of queryPanels) {
      const where = `panel ${p.id} "${p.title}"`;
      expect(p.title, where).toBeTruthy();
      expect(p.datasource, where).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets?.length, where).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, `${where}: refIds`).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.expr?.trim(), `${where} ${t.refId}`).toBeTruthy();
        expect(t.datasource?.uid ?? '${DS_PROMETHEUS}', `${where} ${t.refId}`).toBe('${DS_PROMETHEUS}');
      }
    }
  });

  it('lays its panels out within 24 columns, none over another', () => {
    const boxes = panels.map((p) => ({ id: p.id, ...p.gridPos! }));
    for (const b of boxes) {
      expect(b.x >= 0 && b.w > 0 && b.h > 0 && b.x + b.w <= 24, `panel ${b.id}`).toBe(true);
    }
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `panels ${a.id} and ${b.id} overlap`).toBe(false);
      }
    }
  });

  it('limits every series selector to the gateways chosen ($gateway)', () => {
    for (const { where, expr } of expressions(dashboard)) {
      if (where === 'variable gateway') continue; // the variable that lists them
      for (const s of selectors(expr)) {
        expect(s.matchers, `${where}: ${s.name}`).toContainEqual({ label: 'instance', op: '=~', value: '$gateway' });
      }
    }
  });
});

describe('every metric the dashboard names is exported by the demo gateway', () => {
  let demo: InProcessDemo;
  let gw: Gateway;
  let base: string;
  let token: string;

  const scrape = async (): Promise<Exposition> => {
    const r = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    return parseExposition(await r.text());
  };

  beforeAll(async () => {
    demo = await startDemoInProcess({ nodeRed: false }); // Node-RED: no metrics of its own; seconds of start-up spared
    ({ gw, base, token } = demo);
    // Families counted per label exist once something is counted. Through the gateway's own doors:
    // a MAC request (the demo's nodes answer DevStatusReq), a frame the network server rejects, and a
    // pulling consumer's first acknowledgement.
    void gw.built.lorawan!.requestMac('park-light-01', { cid: 'DevStatusReq' }).outcome.catch(() => undefined);
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => udp.send(Buffer.from([0x02]), gw.built.lorawan!.port(), '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    udp.close();
    const ack = await fetch(`${base}/api/v1/consumers/grafana-test/ack`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ seq: 0 }),
    });
    expect(ack.status).toBe(200);
  });

  afterAll(async () => {
    await demo?.stop();
  });

  it("names only metrics of /metrics (a histogram's _bucket, _sum, _count as its own), on labels they have; its device values are the demo's", async () => {
    const wanted = new Map<string, string[]>();
    for (const { where, expr } of expressions(dashboard)) {
      for (const s of selectors(expr)) wanted.set(s.name, [...(wanted.get(s.name) ?? []), where]);
    }
    expect(wanted.size).toBeGreaterThanOrEqual(30);
    const devices = gw.config.devices.map((d) => d.id);
    // the device values the dashboard picks by point or role (whatever a vendor calls them)
    const picks = expressions(dashboard).flatMap(({ where, expr }) =>
      selectors(expr)
        .filter((s) => s.name === 'streetbox_device_value')
        .map((s) => ({ where, on: s.matchers.filter((m) => m.label === 'point' || m.label === 'role') })),
    );
    const picked = (l: Record<string, string>, on: Selector['matchers']): boolean =>
      on.every((m) => (m.op === '=' ? l[m.label] === m.value : m.op === '=~' ? new RegExp(`^(?:${m.value})$`).test(l[m.label] ?? '') : true));
    /** what the scrape lacks: names the dashboard uses, devices without values, device values it picks */
    const lacking = (e: Exposition): string[] => {
      const values = e.series.get('streetbox_device_value') ?? [];
      const heard = new Set(values.map((l) => l['device']!));
      return [
        ...[...wanted.keys()].filter((n) => familyOf(n, e) === null).map((n) => `not exported: ${n} (${wanted.get(n)!.join('; ')})`),
        ...devices.filter((d) => !heard.has(d)).map((d) => `no values of device ${d}`),
        ...picks.filter((p) => !values.some((l) => picked(l, p.on))).map((p) => `no device value ${JSON.stringify(p.on)} (${p.where})`),
      ];
    };
    let last: Exposition | null = null;
    await waitFor(
      'every name the dashboard uses, every device\'s values, every device value it picks',
      async () => {
        last = await scrape();
        return lacking(last).length === 0;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${last ? lacking(last).join('\n') : 'no scrape'}`);
    });
    const e = last!;

    // the labels each selector matches on are labels of its metric's series
    for (const { where, expr } of expressions(dashboard)) {
      for (const s of selectors(expr)) {
        const family = familyOf(s.name, e)!;
        const labelNames = new Set((e.series.get(s.name) ?? e.series.get(family) ?? []).flatMap((l) => Object.keys(l)));
        for (const m of s.matchers) {
          if (m.label === 'instance') continue; // added by Prometheus at scrape
          expect(labelNames.has(m.label), `${where}: ${s.name} has no label ${m.label}`).toBe(true);
        }
      }
    }
  });
});
