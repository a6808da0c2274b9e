/**
 * The one way streetbox builds the figures of GET /metrics: a registry of counter and gauge
 * families, each with its label names fixed when it is made, as the Prometheus client
 * libraries do. A part of the gateway owns a registry, counts into it as things happen
 * (`inc`), or reads its figures in at scrape time (`onCollect`: store depth, process memory,
 * another component's status), and hands `samples()` to the API, which renders them in the
 * text format (api/metricsText.ts).
 *
 *   const m = new MetricsRegistry();
 *   const refused = m.counter('streetbox_broker_auth_failures_total', 'refused MQTT logins by reason', ['reason']);
 *   refused.labels({ reason: 'credentials' }).inc();
 */
import { StreetboxError } from './errors.js';

export type MetricType = 'counter' | 'gauge';

/** One sample of one metric family, as the registry hands it to the renderer. */
export interface MetricSample {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total` */
  name: string;
  help: string;
  type: MetricType;
  value: number;
  labels?: Record<string, string>;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One series: a family's value for one set of label values. */
export class Series {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }

  set(value: number): void {
    this.value = value;
  }
}

/** A metric family: its series by label values. A family without labels has one series. */
export class Family<L extends string = never> extends Series {
  private readonly series = new Map<string, { labels: Record<L, string>; series: Series }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly L[],
  ) {
    super();
    if (!NAME_RE.test(name)) throw new StreetboxError('E_COMPONENT', `metric name "${name}" is not [a-zA-Z_:][a-zA-Z0-9_:]*`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith('__')) throw new StreetboxError('E_COMPONENT', `label name "${l}" of ${name} is not [a-zA-Z_][a-zA-Z0-9_]* (nor starts with __)`);
    }
  }

  /** The series of these label values, made (at 0) on first use. */
  labels(values: Record<L, string>): Series {
    const key = this.key(values);
    let entry = this.series.get(key);
    if (!entry) {
      const labels = {} as Record<L, string>;
      for (const l of this.labelNames) labels[l] = values[l];
      this.series.set(key, (entry = { labels, series: new Series() }));
    }
    return entry.series;
  }

  /** The value of the series with these label values; 0 if it was never made. */
  get(values: Record<L, string>): number {
    return this.series.get(this.key(values))?.series.value ?? 0;
  }

  /** The series key of these label values; with one label (a reason: counted per frame) its value, no array built. */
  private key(values: Record<L, string>): string {
    const names = this.labelNames;
    return names.length === 1 ? (values[names[0]!] ?? '') : names.map((l) => values[l]).join('\u0000');
  }

  /** The label values and value of every series, in the order they were made. */
  entries(): { labels: Record<L, string>; value: number }[] {
    return [...this.series.values()].map((e) => ({ labels: e.labels, value: e.series.value }));
  }

  /** Forgets every series (for figures read afresh at each scrape: the devices of the moment). */
  clear(): void {
    this.series.clear();
  }

  collect(out: MetricSample[]): void {
    const { name, help, type } = this;
    if (this.labelNames.length === 0) {
      out.push({ name, help, type, value: this.value });
      return;
    }
    for (const { labels, series } of this.series.values()) out.push({ name, help, type, value: series.value, labels: { ...labels } });
  }
}

export class MetricsRegistry {
  private readonly families = new Map<string, Family<string>>();
  private readonly collectors: (() => void)[] = [];

  /** A counter: only goes up (or is read in from something that only goes up). */
  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Family<L> {
    return this.family(name, help, 'counter', labelNames);
  }

  /** A gauge: a level that goes up and down. */
  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Family<L> {
    return this.family(name, help, 'gauge', labelNames);
  }

  /** Runs `fn` before each scrape, to read figures in from elsewhere. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** Every sample, family by family in the order they were made. */
  samples(): MetricSample[] {
    for (const fn of this.collectors) fn();
    const out: MetricSample[] = [];
    for (const f of this.families.values()) f.collect(out);
    return out;
  }

  private family<L extends string>(name: string, help: string, type: MetricType, labelNames: readonly L[]): Family<L> {
    if (this.families.has(name)) throw new StreetboxError('E_COMPONENT', `metric ${name} is made twice`);
    const f = new Family<L>(name, help, type, labelNames);
    this.families.set(name, f as unknown as Family<string>);
    return f;
  }
}
