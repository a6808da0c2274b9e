/**
 * Prometheus text exposition format 0.0.4: one `# HELP` and one `# TYPE` line per metric
 * family, then its samples `name{label="value"} number`. Components build their figures in a
 * registry (edge/metrics.ts) and hand its samples over; this file renders them, grouping rows of
 * one family together.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

import type { MetricSample, MetricType } from '../metrics.js';

/** Samples come from registries (edge/metrics.ts): components hand theirs over from `metrics()`. */
export type { MetricSample, MetricType };

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** HELP text: backslash and newline escaped. */
function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

const LABEL_SPECIAL = /[\\"\n]/;
const LABEL_SPECIALS = /[\\"\n]/g;

/** Label values: backslash, double quote and newline escaped (most have none: one test, no copy). */
function escapeLabel(s: string): string {
  return LABEL_SPECIAL.test(s) ? s.replace(LABEL_SPECIALS, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : s;
}

/** `{name="value",…}`, '' without labels; null when a label name is not valid (the sample is skipped). */
function labelText(labels: Readonly<Record<string, string>> | undefined): string | null {
  let out = '';
  for (const k in labels) {
    if (!LABEL_RE.test(k) || k.startsWith('__')) return null;
    out += `${out === '' ? '{' : ','}${k}="${escapeLabel(labels[k]!)}"`;
  }
  return out === '' ? '' : `${out}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * Renders samples in the text format. Samples with an invalid name or label name are skipped
 * (a bad row from one component must not break the scrape); the first HELP/TYPE seen for a
 * family wins.
 */
export function renderMetrics(samples: readonly MetricSample[]): string {
  const families = new Map<string, { help: string; type: MetricType; lines: string[] }>();
  for (const s of samples) {
    let f = families.get(s.name);
    if (!f && !NAME_RE.test(s.name)) continue;
    const l = labelText(s.labels);
    if (l === null) continue;
    if (!f) families.set(s.name, (f = { help: s.help, type: s.type, lines: [] }));
    f.lines.push(`${s.name}${l} ${formatValue(s.value)}`);
  }
  let out = '';
  for (const [name, f] of families) {
    out += `# HELP ${name} ${escapeHelp(f.help)}\n# TYPE ${name} ${f.type}\n${f.lines.join('\n')}\n`;
  }
  return out;
}
