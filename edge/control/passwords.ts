/**
 * Credentials: scrypt password hashes for broker users (Node-RED's editor checks bcrypt hashes of
 * its own: `isBcryptHash`), SHA-256 hashes for API bearer tokens. Comparisons are constant-time
 * (crypto.timingSafeEqual). Nothing here logs, and no error message contains a password, a token
 * or a hash. `streetbox hash-password` makes both kinds of password hash.
 *
 * Password hash format (self-describing, so parameters can be raised later without breaking old
 * hashes): `scrypt$N$r$p$salt$hash`, salt and hash in base64url without padding. scrypt is RFC 7914;
 * the defaults N=2^15, r=8, p=1 cost 32 MiB and ~0.1 s per verification on one desktop core (a
 * few tenths of a second on a Raspberry Pi class box), off the event loop: fine for a login, too
 * slow for guessing. The broker should cache a successful verification per connection, not per packet.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { ControlError } from './errors.js';

export interface ScryptParams {
  /** CPU/memory cost, a power of two */
  N: number;
  /** block size */
  r: number;
  /** parallelism */
  p: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = { N: 2 ** 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read from a stored hash, so a crafted hash in devices.yaml cannot exhaust the box. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEM = 256 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: Math.min(MAX_MEM, 128 * params.N * params.r * 2 + 1024 * 1024) };
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function checkParams(p: ScryptParams): string | null {
  if (!Number.isInteger(p.N) || p.N < 2 || p.N > MAX_N || (p.N & (p.N - 1)) !== 0) return `N must be a power of two 2..${MAX_N}`;
  if (!Number.isInteger(p.r) || p.r < 1 || p.r > MAX_R) return `r must be 1..${MAX_R}`;
  if (!Number.isInteger(p.p) || p.p < 1 || p.p > MAX_P) return `p must be 1..${MAX_P}`;
  if (128 * p.N * p.r > MAX_MEM) return 'N and r need too much memory';
  return null;
}

export interface ParsedPasswordHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Parses `scrypt$N$r$p$salt$hash`; null if it is not one (the reason is not given: it would quote the hash). */
export function parsePasswordHash(stored: string): ParsedPasswordHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  if (![n, r, p].every((x) => /^\d{1,8}$/.test(x)) || !B64URL.test(salt) || !B64URL.test(hash)) return null;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (checkParams(params) !== null) return null;
  const saltBuf = Buffer.from(salt, 'base64url');
  const hashBuf = Buffer.from(hash, 'base64url');
  if (saltBuf.length < 8 || hashBuf.length < 16 || hashBuf.length > 64) return null;
  return { params, salt: saltBuf, hash: hashBuf };
}

export function isPasswordHash(stored: string): boolean {
  return parsePasswordHash(stored) !== null;
}

/**
 * A bcrypt hash as Node-RED's editor login checks it (nodeRed.users[].passwordHash):
 * `$2a$`/`$2b$`/`$2y$`, a two-digit cost 4..31, then 22 characters of salt and 31 of hash in
 * bcrypt's own base64 alphabet (60 characters in all).
 */
export function isBcryptHash(stored: string): boolean {
  const m = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/.exec(stored);
  return m !== null && Number(m[1]) >= 4 && Number(m[1]) <= 31;
}

/** Hashes a password with a fresh random salt: `scrypt$32768$8$1$<salt>$<hash>`. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const bad = checkParams(params);
  if (bad !== null) throw new ControlError('E_CONFIG', `scrypt parameters: ${bad}`);
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

let dummy: Promise<ParsedPasswordHash> | null = null;
/** A hash to verify against when the user is unknown, so timing does not tell which usernames exist. */
function dummyHash(): Promise<ParsedPasswordHash> {
  dummy ??= hashPassword(randomBytes(16).toString('hex')).then((h) => parsePasswordHash(h)!);
  return dummy;
}

/**
 * True if `password` matches `stored`. A malformed or missing stored hash (an unknown user: pass
 * undefined) costs the same scrypt work and returns false.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const parsed = stored === undefined ? null : parsePasswordHash(stored);
  const target = parsed ?? (await dummyHash());
  const key = await scrypt(password, target.salt, target.hash.length, target.params);
  return timingSafeEqual(key, target.hash) && parsed !== null;
}

// ---------------------------------------------------------------------------------------
// API tokens: long random strings, so one SHA-256 is enough (no guessing to slow down); the
// stored form is `sha256$<hex>`, and only that is kept in memory after start.

/** `sha256$<64 hex digits>` of a token. */
export function hashToken(token: string): string {
  return `sha256$${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

function tokenDigest(stored: string): Buffer | null {
  const m = /^sha256\$([0-9a-f]{64})$/.exec(stored);
  return m ? Buffer.from(m[1]!, 'hex') : null;
}

/** True if `token` hashes to `stored` (constant-time compare of the digests). */
export function verifyToken(token: string, stored: string): boolean {
  const want = tokenDigest(stored);
  const got = createHash('sha256').update(token, 'utf8').digest();
  if (want === null) {
    timingSafeEqual(got, got);
    return false;
  }
  return timingSafeEqual(got, want);
}

/**
 * The entry whose tokenHash matches a presented bearer token, comparing against every entry (no
 * early exit), or undefined.
 */
export function findToken<T extends { tokenHash: string }>(token: string, entries: readonly T[]): T | undefined {
  let found: T | undefined;
  for (const e of entries) if (verifyToken(token, e.tokenHash) && found === undefined) found = e;
  return found;
}

/** A new random API token: 32 bytes, base64url (43 characters). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}
