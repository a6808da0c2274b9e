/**
 * ed25519 signatures over a message, checked against configured public keys: what central's
 * signed configuration changes (edge/reconfig/signature.ts) and signed firmware manifests
 * (edge/firmware/manifest.ts) share. Each of them says what its message covers; this file only
 * reads keys, signs and verifies (RFC 8032 §5.1, Ed25519 without prehash: node's `sign(null, …)`).
 */
import { createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import { ed25519PublicKey } from '../config/schema.js';
import { StreetboxError } from '../errors.js';

export type SignatureCheck = { ok: true; key: number } | { ok: false; reason: 'unsigned' | 'malformed signature' | 'no configured key verifies it' };

/** Characters of a key's text an error may show: enough to tell which entry, never the key. */
const SHOWN_CHARS = 12;
/** An ed25519 signature: 64 bytes (RFC 8032 §5.1.6), 88 characters of padded base64. */
const SIGNATURE_BYTES = 64;

/**
 * An ed25519 public key from its text: PEM (SPKI), or base64 of the raw 32-byte key. Anything
 * else throws StreetboxError('E_CONFIG') naming at most the first 12 characters of the text (a
 * private key pasted by mistake must not land in a log).
 */
export function parsePublicKey(text: string): KeyObject {
  if (/PRIVATE KEY/.test(text)) {
    throw new StreetboxError('E_CONFIG', `signing key "${preview(text)}" is a private key: configure its public key (a private key never goes in devices.yaml)`);
  }
  const key = ed25519PublicKey(text);
  if (key === undefined) throw new StreetboxError('E_CONFIG', `signing key "${preview(text)}" is not an ed25519 public key (PEM, or base64 of the raw 32 bytes)`);
  return key;
}

/** An ed25519 private key in PEM (PKCS#8); anything else throws E_CONFIG without showing it. */
export function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new StreetboxError('E_CONFIG', 'the signing key is not a PEM private key (make one with `openssl genpkey -algorithm ed25519`)');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new StreetboxError('E_CONFIG', `the signing key is an ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
  return key;
}

/**
 * Whether one of `keys` (configured entries: PEM or raw base64) verifies `signatureB64` over
 * `message`, and which. Entries that are not keys are skipped (validation refuses them before).
 */
export function verifyEd25519(keys: readonly string[], message: Buffer, signatureB64: string | undefined): SignatureCheck {
  if (signatureB64 === undefined || signatureB64 === '') return { ok: false, reason: 'unsigned' };
  const signature = decodeSignature(signatureB64);
  if (signature === undefined) return { ok: false, reason: 'malformed signature' };
  for (const [i, text] of keys.entries()) {
    const key = ed25519PublicKey(text);
    if (key !== undefined && verify(null, message, key, signature)) return { ok: true, key: i };
  }
  return { ok: false, reason: 'no configured key verifies it' };
}

/** The base64 ed25519 signature of `message` with a private key in PEM (PKCS#8). */
export function signEd25519(privateKeyPem: string, message: Buffer): string {
  return sign(null, message, parsePrivateKey(privateKeyPem)).toString('base64');
}

/** Strict base64 of exactly 64 bytes (padding optional); undefined for anything else. */
export function decodeSignature(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) return undefined;
  const bytes = Buffer.from(trimmed, 'base64');
  return bytes.length === SIGNATURE_BYTES ? bytes : undefined;
}

/** At most the first 12 characters of a key's text, JSON-escaped, for an error message. */
function preview(text: string): string {
  const t = text.trim();
  const shown = JSON.stringify(t.slice(0, SHOWN_CHARS)).slice(1, -1);
  return t.length > SHOWN_CHARS ? `${shown}…` : shown;
}
