/**
 * Scalars of devices.yaml a technician can read: durations ("5s", "250ms"), sizes ("256MB")
 * and ports. Each is registered in `fieldKinds` with how an error describes it and, for
 * durations and ports, the range a devices.yaml must keep to.
 *
 * The schema itself takes any value the runtime can hold (whole milliseconds that fit Node's
 * timers, ports 0..65535), because code and tests build configs with it too (a benchmark polls
 * back to back, a test broker listens on a free port). The range is checked where a file is
 * loaded (ranges.ts), so a devices.yaml never starts a gateway that polls every 0 ms.
 */
import { z } from 'zod';

/** Node's timers hold at most 2^31−1 ms (24.8 days); a longer delay fires after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface FieldKind {
  /** what the field expects, in an error's words: "a duration 100ms..1d", "a port 1..65535" */
  expected: string;
  /** the range a devices.yaml must keep to; `message` is the error without its "got …" */
  range?: { min: number; max: number; message: string };
  /** a port the gateway listens on, or one it connects to (port 0 is checked apart: ranges.ts) */
  port?: 'listen' | 'connect';
  /** a value as a technician writes it ("2m", "256MiB"): the defaults in devices.schema.json and the README */
  text?: (value: number) => string;
}

/** Kinds of the scalars above; `.refine()` and other clones inherit their schema's entry. */
export const fieldKinds = z.registry<FieldKind>();

export function kindOf(schema: z.core.$ZodType): FieldKind | undefined {
  return fieldKinds.get(schema);
}

// ---------------------------------------------------------------------------------------
// Durations: a number of ms, or "500ms", "5s", "2m", "1h", "1d"

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/** The milliseconds a duration string stands for (possibly fractional or past any timer). */
function durationMs(text: string): number {
  const m = DURATION_RE.exec(text);
  if (m === null) throw new TypeError(`not a duration: ${text}`);
  return Number(m[1]) * DURATION_UNITS[m[2]!]!;
}

/** A whole number of ms, allowing for binary fractions ("1.1s" is 1100.0000000000002). */
function wholeMs(ms: number): number | undefined {
  const whole = Math.round(ms);
  return Math.abs(ms - whole) <= 1e-9 * Math.max(1, ms) ? whole : undefined;
}

/** A duration as a technician writes it in devices.yaml: "15m", "1h", "1500ms", "0ms". */
export function durationText(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * A duration in whole ms, within `min..max` in a devices.yaml (`durationIn('100ms', '1d')`).
 * The schema refuses what no timer can hold (a fraction of a ms, more than MAX_TIMER_MS).
 */
export function durationIn(min: string, max: string) {
  const range = { min: durationMs(min), max: durationMs(max), message: `expected a duration ${min}..${max}` };
  if (range.min > range.max || range.max > MAX_TIMER_MS || wholeMs(range.min) === undefined) throw new RangeError(`bad duration range ${min}..${max}`);
  const schema = z
    .union([
      // an editor checks a number against the range (devices.schema.json); the schema only against what a timer holds
      z.number().int().min(0).max(MAX_TIMER_MS).meta({ minimum: range.min, maximum: range.max }),
      z.string().regex(DURATION_RE, { message: `expected a duration like "500ms", "5s", "2m", "1h" (${min}..${max})` }),
    ])
    .transform((v, ctx) => {
      if (typeof v === 'number') return v;
      const ms = durationMs(v);
      const whole = wholeMs(ms);
      if (whole === undefined || whole > MAX_TIMER_MS) {
        const outside = ms < range.min || ms > range.max;
        ctx.addIssue({ code: 'custom', input: v, message: outside ? range.message : 'expected a whole number of milliseconds' });
        return z.NEVER;
      }
      return whole;
    });
  fieldKinds.add(schema, { expected: `a duration ${min}..${max}`, range, text: durationText });
  return schema;
}

/** A duration with no range of its own (0ms..1d); prefer `durationIn` with the field's range. */
export const duration = durationIn('0ms', '1d');

// ---------------------------------------------------------------------------------------
// Sizes: a number of bytes, or "64MB", "1GiB"

const BYTE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)$/i;

/** A size in bytes: a number, or a string like "64MB", "1GiB". */
export const byteSize = z
  .union([
    z.number().int().positive(),
    z.string().regex(BYTES_RE, { message: 'expected a size like "64MB" or "1GiB"' }),
  ])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = BYTES_RE.exec(v)!;
    return Math.round(Number(m[1]) * BYTE_UNITS[m[2]!.toUpperCase()]!);
  });
fieldKinds.add(byteSize, { expected: 'a size like "64MB", "1GiB" or a number of bytes', text: byteText });

/** A size as a technician writes it: "256MiB", "64MB", "1500B" (the largest unit it is a whole number of). */
export function byteText(bytes: number): string {
  for (const unit of ['GiB', 'GB', 'MiB', 'MB', 'KiB', 'KB'] as const) {
    const size = BYTE_UNITS[unit.toUpperCase()]!;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

// ---------------------------------------------------------------------------------------
// Ports: 1..65535 in a devices.yaml; 0 ("any free port") only on a test or bench gateway

const PORT_RANGE = { min: 1, max: 65535, message: 'expected a port 1..65535' };

/** A port the gateway listens on (API, broker, LoRaWAN UDP). */
export const port = z.number().int().min(0).max(65535);
fieldKinds.add(port, { expected: 'a port 1..65535', range: PORT_RANGE, port: 'listen' });

/** A port the gateway connects to (a Modbus TCP device). */
export const remotePort = z.number().int().min(0).max(65535);
fieldKinds.add(remotePort, { expected: 'a port 1..65535', range: PORT_RANGE, port: 'connect' });
