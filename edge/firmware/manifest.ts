/**
 * Signed firmware manifests (issue 17): what the doors carry is an envelope
 * `{ "manifest": "<the manifest's JSON text>", "signature": "<base64 ed25519>" }`. The manifest
 * text is kept exactly as received, since the signature covers it: the signed message is
 * `streetbox-deploy-v1\n<gateway id>\n<sha256 hex of the manifest text>` (UTF-8), so a manifest
 * cannot be replayed on another gateway or changed by one byte. The text parses to `Manifest`
 * (records.ts) through the strict schema below: unknown keys are refused, and every refusal
 * names its field (`manifest.artifact.sha256: expected 64 lowercase hex digits`).
 *
 * This file checks form and signature only; whether the manifest names this gateway, its
 * targets exist and its deadline lies ahead is the engine's to say (engine.ts).
 */
import { z } from 'zod';
import { compactSchemas } from '../config/compact.js';
import { identifier } from '../config/schema.js';
import { didYouMean } from '../config/suggest.js';
import { signEd25519, verifyEd25519 } from '../crypto/ed25519.js';
import { DEVICE_KINDS } from '../profiles/pointRoles.js';
import { sha256Hex } from '../reconfig/atomicFile.js';
import { DEPLOYMENT_ID_RE, MANIFEST_SIGNATURE_TAG, MAX_MANIFEST_BYTES, type Manifest } from './records.js';

/** The largest artifact a manifest may name: 1 GiB. */
export const MAX_ARTIFACT_BYTES = 1024 ** 3;
/** An artifact sent over MQTT comes in at most this many chunks (a chunk is a file on disk until the artifact is whole). */
export const MAX_CHUNKS = 100_000;
/** The largest chunk over MQTT (1 MiB; brokers commonly cap a message well above it). */
export const MAX_CHUNK_BYTES = 1024 * 1024;
/** Refusal reasons list at most this many problems, then how many more there are. */
const MAX_LISTED = 10;

export const SHA256_RE = /^[0-9a-f]{64}$/;
const HHMM_RE = /^([01]\d|2[0-3]):[0-5]\d$/;
const SHARE_RE = /^(100|[1-9]\d?)%$/;
const LOOPBACK_HOST_RE = /^(localhost|\[::1\]|127(\.\d{1,3}){3})$/i;

/** Why `url` may not be an artifact's source, or undefined when it may: https://, or http:// to a loopback host. */
export function artifactUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'expected an https:// URL';
  }
  if (u.username !== '' || u.password !== '') return 'credentials do not belong in the URL (it is logged)';
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:') return LOOPBACK_HOST_RE.test(u.hostname) ? undefined : 'expected an https:// URL (http:// only to a loopback host)';
  return 'expected an https:// URL';
}

// ---------------------------------------------------------------------------------------
// The schema: each field says what it expects, once, for every way a value can miss it

function int(min: number, max: number, expected: string) {
  return z.number({ error: expected }).int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
}

function text(max: number, expected: string) {
  return z.string({ error: expected }).min(1, { error: expected }).max(max, { error: expected });
}

function list<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, { error: `expected a list of ${what}` }).max(10_000, { error: `expected at most 10000 ${what}` });
}

const ID = 'expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/")';
const id = z.string({ error: ID }).refine((v) => identifier.safeParse(v).success, { error: ID });
const OBJECT = { error: 'expected an object' };
const sha256 = z.string({ error: 'expected 64 lowercase hex digits' }).regex(SHA256_RE, { error: 'expected 64 lowercase hex digits' });
const url = z
  .string({ error: 'expected an https:// URL' })
  .max(2048, { error: 'expected a URL of at most 2048 characters' })
  .superRefine((u, ctx) => {
    const problem = artifactUrlProblem(u);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

const source = z.union([
  z.strictObject({ url }, OBJECT),
  z.strictObject({ mqtt: z.strictObject({ chunkBytes: int(1, MAX_CHUNK_BYTES, `expected an integer 1..${MAX_CHUNK_BYTES} (bytes per chunk)`) }, OBJECT) }, OBJECT),
  z.strictObject({ local: z.literal(true, { error: 'expected true' }) }, OBJECT),
]);

const artifact = z
  .strictObject({
    name: text(128, 'expected a name of 1..128 characters'),
    version: text(64, 'expected a version of 1..64 characters'),
    versionCode: int(0, 0xffffffff, 'expected an integer 0..4294967295 (what the version point reads)').optional(),
    size: int(1, MAX_ARTIFACT_BYTES, `expected an integer 1..${MAX_ARTIFACT_BYTES} (bytes)`),
    sha256,
    source,
  }, OBJECT)
  .superRefine((a, ctx) => {
    if (!('mqtt' in a.source)) return;
    const chunks = Math.ceil(a.size / a.source.mqtt.chunkBytes);
    if (chunks > MAX_CHUNKS) {
      const least = Math.ceil(a.size / MAX_CHUNKS);
      ctx.addIssue({ code: 'custom', path: ['source', 'mqtt', 'chunkBytes'], message: `${chunks} chunks, at most ${MAX_CHUNKS}: expected at least ${least} bytes per chunk` });
    }
  });

const targets = z
  .strictObject({
    devices: list(id, 'device ids').optional(),
    groups: list(id, 'group ids').optional(),
    profiles: list(text(128, 'expected a profile name'), 'profile names').optional(),
    kinds: list(z.enum(DEVICE_KINDS, { error: `expected one of ${DEVICE_KINDS.join(', ')}` }), 'kinds').optional(),
    gateway: z.boolean({ error: 'expected true or false' }).optional(),
  }, OBJECT)
  .superRefine((t, ctx) => {
    const devices = (t.devices?.length ?? 0) + (t.groups?.length ?? 0) + (t.profiles?.length ?? 0) + (t.kinds?.length ?? 0);
    if (t.gateway === true && devices > 0) {
      ctx.addIssue({ code: 'custom', path: ['gateway'], message: 'the gateway itself is updated alone: not with devices, groups, profiles or kinds' });
    } else if (t.gateway !== true && devices === 0) {
      ctx.addIssue({ code: 'custom', message: 'expected at least one target (devices, groups, profiles, kinds, or gateway: true)' });
    }
  });

const share = 'expected a number 0..1';
const wave = z.strictObject({
  size: z.custom<number | string>((v) => (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 100_000) || (typeof v === 'string' && SHARE_RE.test(v)), {
    error: 'expected a count (an integer ≥ 1) or a share of the targets ("1%".."100%")',
  }),
  successThreshold: z.number({ error: share }).min(0, { error: share }).max(1, { error: share }).optional(),
  errorThreshold: z.number({ error: share }).min(0, { error: share }).max(1, { error: share }).optional(),
}, OBJECT);

const hhmm = z.string({ error: 'expected a time HH:MM (00:00..23:59)' }).regex(HHMM_RE, { error: 'expected a time HH:MM (00:00..23:59)' });
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const window = z
  .strictObject({
    from: hhmm,
    to: hhmm,
    days: z
      .array(z.enum(DAYS, { error: `expected one of ${DAYS.join(', ')}` }), { error: 'expected a list of days' })
      .min(1, { error: 'expected at least one day (leave days out for every day)' })
      .optional(),
  }, OBJECT);

const policy = z.strictObject({
  waves: z.array(wave, { error: 'expected a list of waves' }).min(1, { error: 'expected at least one wave (leave waves out for one wave of all)' }).max(100, { error: 'expected at most 100 waves' }).optional(),
  windows: z.array(window, { error: 'expected a list of windows' }).max(32, { error: 'expected at most 32 windows' }).optional(),
  maxPerBus: int(1, 64, 'expected an integer 1..64').optional(),
  maxPerGroup: int(1, 10_000, 'expected an integer 1..10000').optional(),
  deadline: int(1, 8.64e15, 'expected a time in ms since the epoch (UTC)').optional(),
}, OBJECT);

export const manifestSchema = z
  .strictObject({
    id: z.string({ error: 'expected a deployment id' }).regex(DEPLOYMENT_ID_RE, { error: 'expected an id of letters, digits, "_", ".", ":", "-" (at most 128, no spaces or "/")' }),
    gateway: id,
    artifact,
    targets,
    policy: policy.optional(),
    description: z.string({ error: 'expected a text' }).max(4096, { error: 'expected at most 4096 characters' }).optional(),
  }, { error: 'expected a JSON object' })
  .superRefine((m, ctx) => {
    // done means verified: a device counts as updated when its version point reads this
    if (m.targets.gateway !== true && m.artifact.versionCode === undefined) {
      ctx.addIssue({ code: 'custom', path: ['artifact', 'versionCode'], message: 'required for device targets: what the version point reads once the device runs the image' });
    }
  });
// finished: each clone above (a check) forgets the schema it was made from (config/compact.ts)
compactSchemas([manifestSchema]);

// The schema and records.ts describe one shape: what the schema puts out is a Manifest (JSON has
// no undefined, so an optional key is absent, never undefined).
type Defined<T> = T extends (infer U)[] ? Defined<U>[] : T extends object ? { [K in keyof T]: Defined<Exclude<T[K], undefined>> } : T;
const _isManifest: Defined<z.output<typeof manifestSchema>> extends Manifest ? true : false = true;
void _isManifest;

// ---------------------------------------------------------------------------------------
// Parsing

export type ManifestRefusal = { ok: false; code: 'E_FW_INVALID'; reason: string; id?: string };
export type ParsedEnvelope = { ok: true; text: string; manifest: Manifest; signature: string } | ManifestRefusal;

/** The manifest's JSON text, checked against the schema. */
export function parseManifestText(text: string): { ok: true; manifest: Manifest } | ManifestRefusal {
  let data: unknown;
  try {
    data = JSON.parse(text) as unknown;
  } catch (err) {
    return refuse(`manifest: not JSON (${(err as Error).message})`);
  }
  const id = readableId(data);
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) return refuse(describeIssues(parsed.error.issues, data), id);
  return { ok: true, manifest: parsed.data as Manifest };
}

/**
 * An envelope as a door received it: at most MAX_MANIFEST_BYTES, JSON, `{ manifest, signature }`
 * with nothing else, the manifest a JSON text of a valid Manifest. A missing signature is not
 * refused here (the signature check says `unsigned`): the result's signature is then ''.
 */
export function parseEnvelope(input: string | Buffer): ParsedEnvelope {
  const bytes = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.length;
  if (bytes > MAX_MANIFEST_BYTES) return refuse(`envelope: ${bytes} bytes, at most ${MAX_MANIFEST_BYTES}`);
  let raw: string;
  try {
    raw = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    return refuse('envelope: not UTF-8 text');
  }
  let envelope: unknown;
  try {
    envelope = JSON.parse(raw) as unknown;
  } catch (err) {
    return refuse(`envelope: not JSON (${(err as Error).message})`);
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) return refuse('envelope: expected a JSON object { "manifest": "<JSON text>", "signature": "<base64>" }');
  const { manifest: text, signature, ...rest } = envelope as Record<string, unknown>;
  const id = typeof text === 'string' ? readableId(tryJson(text)) : undefined;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) return refuse(unknown.map((k) => `${k}: ${unknownKey(k, ['manifest', 'signature'])}`).join('; '), id);
  if (text === undefined) return refuse('manifest: missing: expected the manifest as its JSON text (a string)');
  if (typeof text !== 'string') return refuse(`manifest: expected the manifest as its JSON text (a string, exactly what was signed), got ${kindOf(text)}`);
  if (signature !== undefined && signature !== null && typeof signature !== 'string') return refuse(`signature: expected a base64 string, got ${kindOf(signature)}`, id);
  const parsed = parseManifestText(text);
  if (!parsed.ok) return parsed;
  return { ok: true, text, manifest: parsed.manifest, signature: typeof signature === 'string' ? signature : '' };
}

/** The envelope the doors carry. */
export function makeEnvelope(text: string, signature: string): string {
  return JSON.stringify({ manifest: text, signature });
}

// ---------------------------------------------------------------------------------------
// Signatures

/** The bytes signed: `streetbox-deploy-v1\n<gateway>\n<sha256 hex of the manifest text>` in UTF-8. */
export function signedManifestMessage(gateway: string, text: string): Buffer {
  return Buffer.from([MANIFEST_SIGNATURE_TAG, gateway, sha256Hex(text)].join('\n'), 'utf8');
}

/** Whether one of `keys` (firmware.signingKeys) verifies `signature` over the manifest text for `gateway`, and which. */
export function verifyManifestSignature(keys: readonly string[], gateway: string, text: string, signature: string | undefined): { ok: true; key: number } | { ok: false; reason: string } {
  const check = verifyEd25519(keys, signedManifestMessage(gateway, text), signature);
  if (!check.ok && check.reason === 'no configured key verifies it' && keys.length === 0) {
    return { ok: false, reason: 'no signing keys are configured (firmware.signingKeys): every manifest is refused' };
  }
  return check;
}

/** The base64 signature of a manifest text for `gateway` with an ed25519 private key in PEM (PKCS#8). */
export function signManifest(gateway: string, text: string, privateKeyPem: string): string {
  return signEd25519(privateKeyPem, signedManifestMessage(gateway, text));
}

// ---------------------------------------------------------------------------------------
// Refusals a technician can act on

function refuse(reason: string, id?: string): ManifestRefusal {
  return id === undefined ? { ok: false, code: 'E_FW_INVALID', reason } : { ok: false, code: 'E_FW_INVALID', reason, id };
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The manifest's id when it is one (a refusal is then reported under it). */
function readableId(data: unknown): string | undefined {
  const v = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).id : undefined;
  return typeof v === 'string' && DEPLOYMENT_ID_RE.test(v) ? v : undefined;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], data: unknown): string {
  const lines = issues.flatMap((issue) => explain(issue, [], data));
  const shown = lines.slice(0, MAX_LISTED);
  if (lines.length > shown.length) shown.push(`and ${lines.length - shown.length} more`);
  return shown.join('; ');
}

/** One issue as `manifest.<path>: <message>` lines; a union's issues are those of the branch the value's keys choose. */
function explain(issue: z.core.$ZodIssue, base: readonly PropertyKey[], data: unknown): string[] {
  const path = [...base, ...issue.path];
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = keysAt(path);
      return issue.keys.map((k) => `${formatPath([...path, k])}: ${unknownKey(k, allowed)}`);
    }
    case 'invalid_union': {
      // the branch without an unknown key or a wrong type at the union's own level is the one meant
      const fitting = issue.errors.filter((branch) => !branch.some((i) => i.path.length === 0 || (i.code === 'invalid_type' && i.path.length === 1 && valueAt(value, i.path) === undefined)));
      if (fitting.length === 1) return fitting[0]!.flatMap((i) => explain(i, path, data));
      return [`${formatPath(path)}: ${value === undefined ? 'missing: ' : ''}expected one of { "url": "https://…" }, { "mqtt": { "chunkBytes": N } }, { "local": true }${got(path, value)}`];
    }
    default:
      if (value === undefined && issue.code === 'invalid_type') return [`${formatPath(path)}: missing: ${issue.message}`];
      // a rule across fields (`the same time as from`) says itself what is wrong; an expectation shows what came
      const selfSaid = issue.code === 'custom' && (!issue.message.startsWith('expected') || (typeof value === 'object' && value !== null));
      return [`${formatPath(path)}: ${issue.message}${selfSaid ? '' : got(path, value)}`];
  }
}

/** `, got 0`, `, got "ABC…"`, `, got an object`; never the URL (it may carry a token). */
function got(path: readonly PropertyKey[], value: unknown): string {
  if (value === undefined || path[path.length - 1] === 'url') return '';
  return `, got ${kindOf(value)}`;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function unknownKey(key: string, allowed: readonly string[]): string {
  const hint = didYouMean(key, allowed);
  if (hint !== undefined) return `unknown key, did you mean "${hint}"?`;
  return allowed.length === 0 ? 'unknown key' : `unknown key, expected one of: ${allowed.join(', ')}`;
}

/** `manifest.policy.waves[1].size` */
function formatPath(path: readonly PropertyKey[]): string {
  let out = 'manifest';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : `.${String(seg)}`;
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** The keys the schema allows at `path` (for an unknown key's hint). */
function keysAt(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType | undefined = manifestSchema;
  for (const seg of path) {
    schema = schema === undefined ? undefined : step(unwrap(schema), seg);
  }
  const s = schema === undefined ? undefined : unwrap(schema);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
  return schema instanceof z.ZodOptional ? unwrap(schema.unwrap() as z.ZodType) : schema;
}

function step(schema: z.ZodType, seg: PropertyKey): z.ZodType | undefined {
  if (schema instanceof z.ZodArray) return typeof seg === 'number' ? (schema.element as z.ZodType) : undefined;
  if (schema instanceof z.ZodObject) return (schema.shape as Record<string, z.ZodType>)[String(seg)];
  if (schema instanceof z.ZodUnion) {
    for (const option of schema.options as z.ZodType[]) {
      const next = option instanceof z.ZodObject ? (option.shape as Record<string, z.ZodType>)[String(seg)] : undefined;
      if (next !== undefined) return next;
    }
  }
  return undefined;
}
