/**
 * The ranges a devices.yaml keeps to (scalars.ts): every duration within its field's range,
 * every port 1..65535. Port 0 ("any free port", chosen when the gateway starts) is for test and
 * bench gateways: a port the gateway listens on may be 0 only with `simulate: true`; a Modbus
 * TCP device's port also on a loopback host (nothing listens there: a test's unreachable
 * device). A disabled service's port is not checked.
 */
import type { z } from 'zod';
import { kindOf } from './scalars.js';
import { configSchema } from './schema.js';
import { forEachField, unwrap } from './schemaWalk.js';

export interface RangeIssue {
  path: PropertyKey[];
  /** "expected …", without what was found (the loader adds it, secrets hidden) */
  message: string;
}

const LOOPBACK = /^(localhost|::1|127(\.\d{1,3}){3})$/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function simulating(config: unknown): boolean {
  const sim = isObject(config) ? config.simulate : undefined;
  return sim === true || (isObject(sim) && sim.enabled !== false);
}

/** The out-of-range values of a parsed config (or of its valid parts: see lenient.ts). */
export function rangeIssues(config: unknown): RangeIssue[] {
  const issues: RangeIssue[] = [];
  const simulate = simulating(config);
  forEachField(configSchema as z.core.$ZodType, config, (schema, value, path, parent) => {
    const kind = kindOf(unwrap(schema));
    if (kind?.range === undefined || typeof value !== 'number') return;
    if (value === 0 && kind.port !== undefined) {
      if (simulate || (isObject(parent) && parent.enabled === false)) return;
      if (kind.port === 'connect' && isObject(parent) && typeof parent.host === 'string' && LOOPBACK.test(parent.host)) return;
      const only = kind.port === 'listen' ? 'only with simulate: true' : 'only with simulate: true or on a loopback host';
      issues.push({ path, message: `${kind.range.message} (0, any free port, ${only})` });
      return;
    }
    if (value < kind.range.min || value > kind.range.max) issues.push({ path, message: kind.range.message });
  });
  return issues;
}
