/**
 * Validation of a command body as it arrives on any door (HTTP, MQTT, central, Node-RED, CLI):
 * JSON text or an already parsed value, checked with zod per action. A bad body gives one clear
 * reason naming the field ("level: expected an integer 0..100, got 150"), never an exception.
 */
import { z } from 'zod';
import { parseJsonWithin, valueBreach } from '../jsonLimits.js';
import { compactSchemas } from '../config/compact.js';
import { identifier } from '../config/schema.js';
import { MIN_CLAIM_PRIORITY } from './roles.js';

export const ACTIONS = ['dim', 'on', 'off', 'override', 'release', 'program', 'write'] as const;
export type Action = (typeof ACTIONS)[number];

/** The longest a claim may hold: 31 days. */
export const MAX_DURATION_S = 31 * 86_400;
/** A ramp is at most one hour. */
export const MAX_RAMP_S = 3600;
/** A program request's dead-man expiry: the controller's register is uint16 seconds. */
export const MAX_EXPIRY_S = 65_535;
export const DEFAULT_EXPIRY_S = 120;

const level = z.number({ error: 'expected an integer 0..100' }).int({ error: 'expected an integer 0..100' }).min(0, { error: 'expected an integer 0..100' }).max(100, { error: 'expected an integer 0..100' });
const rampS = z.number({ error: `expected seconds 0..${MAX_RAMP_S}` }).min(0, { error: `expected seconds 0..${MAX_RAMP_S}` }).max(MAX_RAMP_S, { error: `expected seconds 0..${MAX_RAMP_S}` });
const durationS = z
  .number({ error: `expected seconds more than 0, at most ${MAX_DURATION_S}` })
  .gt(0, { error: `expected seconds more than 0, at most ${MAX_DURATION_S}` })
  .max(MAX_DURATION_S, { error: `expected seconds more than 0, at most ${MAX_DURATION_S}` });
const priority = z.number({ error: `expected an integer ${MIN_CLAIM_PRIORITY}..100` }).int({ error: `expected an integer ${MIN_CLAIM_PRIORITY}..100` }).min(MIN_CLAIM_PRIORITY, { error: `expected an integer ${MIN_CLAIM_PRIORITY}..100` }).max(100, { error: `expected an integer ${MIN_CLAIM_PRIORITY}..100` });
const reason = z.string({ error: 'expected a string of at most 200 characters' }).max(200, { error: 'expected a string of at most 200 characters' });
const transaction = z.union([z.string().max(128), z.number().finite()], { error: 'expected a string of at most 128 characters or a number' });

const common = { transaction: transaction.optional() };
const claimCommon = { ...common, durationS: durationS.optional(), priority: priority.optional(), reason: reason.optional(), rampS: rampS.optional() };

const PROGRAM_EXPECTED = 'expected a program number 1..65535 (0 or "release" releases the request)';
const program = z.union([z.number(), z.string()], { error: PROGRAM_EXPECTED });

const schemas = {
  dim: z.strictObject({ action: z.literal('dim'), level, ...claimCommon }),
  on: z.strictObject({ action: z.literal('on'), level: level.optional(), ...claimCommon }),
  off: z.strictObject({ action: z.literal('off'), ...claimCommon }),
  override: z.strictObject({ action: z.literal('override'), level, ...claimCommon, durationS }),
  release: z.strictObject({ action: z.literal('release'), commandId: z.string({ error: 'expected a command id' }).min(1, { error: 'expected a command id' }).max(64).optional(), ...common }),
  program: z.strictObject({
    action: z.literal('program'),
    program,
    expiresInS: z.number({ error: `expected an integer 1..${MAX_EXPIRY_S}` }).int({ error: `expected an integer 1..${MAX_EXPIRY_S}` }).min(1, { error: `expected an integer 1..${MAX_EXPIRY_S}` }).max(MAX_EXPIRY_S, { error: `expected an integer 1..${MAX_EXPIRY_S}` }).optional(),
    dryRun: z.boolean({ error: 'expected true or false' }).optional(),
    ...common,
  }),
  write: z.strictObject({
    action: z.literal('write'),
    point: identifier,
    value: z.union([z.number(), z.boolean()], { error: 'expected a number or true/false' }),
    ...common,
  }),
} as const;
// finished: each clone above (a check, an optional) forgets the schema it was made from (config/compact.ts)
compactSchemas(Object.values(schemas));

/**
 * The body of each action as a zod schema: the API's OpenAPI document describes command bodies
 * with these (edge/api/routes/commands.ts); validateCommand below is what checks a body.
 */
export const COMMAND_BODIES = schemas;

export type DimCommand = z.output<(typeof schemas)['dim']>;
export type OnCommand = z.output<(typeof schemas)['on']>;
export type OffCommand = z.output<(typeof schemas)['off']>;
export type OverrideCommand = z.output<(typeof schemas)['override']>;
export type ReleaseCommand = z.output<(typeof schemas)['release']>;
export type ProgramCommand = Omit<z.output<(typeof schemas)['program']>, 'program' | 'expiresInS'> & { program: number; expiresInS: number };
export type WriteCommand = z.output<(typeof schemas)['write']>;
export type ClaimCommand = DimCommand | OnCommand | OffCommand | OverrideCommand;
export type ParsedCommand = ClaimCommand | ReleaseCommand | ProgramCommand | WriteCommand;

export type Validated = { ok: true; command: ParsedCommand } | { ok: false; error: string; field: string | null; action: string };

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

function at(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/**
 * Parses JSON text (a string or bytes) or takes an already parsed value, within the JSON limits
 * of edge/jsonLimits.ts either way: whichever door a body came through (one that checked it
 * already, or a flow's msg.payload), nothing deeper or larger reaches the validator.
 */
export function parseBody(body: unknown): { ok: true; value: unknown } | { ok: false; error: string } {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const r = parseJsonWithin(body);
    if (r.ok) return r;
    return { ok: false, error: r.limit !== null ? `body: ${r.error}` : `body: malformed JSON (${r.error})` };
  }
  const breach = valueBreach(body);
  if (breach) return { ok: false, error: `body: ${breach.reason}` };
  return { ok: true, value: body };
}

/** Validates a command body; the reason names the field and the value it got. */
export function validateCommand(body: unknown): Validated {
  const parsed = parseBody(body);
  if (!parsed.ok) return { ok: false, error: parsed.error, field: 'body', action: 'unknown' };
  const value = parsed.value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: `body: expected a JSON object like {"action":"dim","level":40}, got ${show(value)}`, field: 'body', action: 'unknown' };
  }
  const action = (value as Record<string, unknown>).action;
  if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
    return { ok: false, error: `action: expected one of ${ACTIONS.join(', ')}, got ${show(action)}`, field: 'action', action: typeof action === 'string' ? action.slice(0, 32) : 'unknown' };
  }
  const r = schemas[action as Action].safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => `"${k}"`).join(', ');
      return { ok: false, error: `${issue.keys[0]}: unknown field ${keys} for action "${action}"`, field: issue.keys[0] ?? null, action };
    }
    const field = issue.path.map(String).join('.') || 'body';
    return { ok: false, error: `${field}: ${issue.message}, got ${show(at(value, issue.path))}`, field, action };
  }
  if (action === 'program') {
    const p = r.data as z.output<(typeof schemas)['program']>;
    const program = p.program === 'release' ? 0 : typeof p.program === 'string' && /^\d{1,5}$/.test(p.program) ? Number(p.program) : p.program;
    if (typeof program !== 'number' || !Number.isInteger(program) || program < 0 || program > 65_535) {
      return { ok: false, error: `program: ${PROGRAM_EXPECTED}, got ${show(p.program)}`, field: 'program', action };
    }
    return { ok: true, command: { ...p, program, expiresInS: p.expiresInS ?? DEFAULT_EXPIRY_S } };
  }
  return { ok: true, command: r.data as ParsedCommand };
}
