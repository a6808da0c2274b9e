/**
 * Signed configuration changes from central (issue 16): when `sync.configSigningKeys` lists
 * ed25519 public keys, a change arriving on `down/config` is taken only with a signature one of
 * them verifies. The signature covers the gateway, the change id, its base version, the force
 * flag and the sha256 of the content, so a signed change cannot be replayed on another gateway,
 * under another id, onto another base, or turned into a forced one. `streetbox config sign` and
 * the tests make signatures with signChange.
 */
import { createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import { ed25519PublicKey } from '../config/schema.js';
import { StreetboxError } from '../errors.js';
import { sha256Hex } from './atomicFile.js';

/** The first line of every signed message: the format's name and version. */
export const SIGNED_MESSAGE_TAG = 'streetbox-config-v1';

/** What of a change the signature covers. */
export interface SignedChange {
  id: string;
  baseVersion: number | null | undefined;
  force?: boolean | undefined;
  content: string;
}

export type SignatureCheck = { ok: true; key: number } | { ok: false; reason: 'unsigned' | 'malformed signature' | 'no configured key verifies it' };

/** Characters of a key's text an error may show: enough to tell which entry, never the key. */
const SHOWN_CHARS = 12;
/** An ed25519 signature: 64 bytes, 88 characters of padded base64. */
const SIGNATURE_BYTES = 64;

/**
 * The bytes signed: `streetbox-config-v1\n<gateway>\n<id>\n<baseVersion or ->\n<1|0>\n<sha256 hex>`
 * in UTF-8. The content is covered through its sha256, so the message stays small.
 */
export function signedMessage(gateway: string, change: SignedChange): Buffer {
  const base = change.baseVersion === null || change.baseVersion === undefined ? '-' : String(change.baseVersion);
  const lines = [SIGNED_MESSAGE_TAG, gateway, change.id, base, change.force === true ? '1' : '0', sha256Hex(change.content)];
  return Buffer.from(lines.join('\n'), 'utf8');
}

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

/**
 * Whether one of `keys` (configSigningKeys entries) verifies `signatureB64` over the change's
 * signedMessage. Entries that are not keys are skipped (validation refuses them before).
 */
export function verifyChangeSignature(keys: readonly string[], gateway: string, change: SignedChange, signatureB64: string | undefined): SignatureCheck {
  if (signatureB64 === undefined || signatureB64 === '') return { ok: false, reason: 'unsigned' };
  const signature = decodeSignature(signatureB64);
  if (signature === undefined) return { ok: false, reason: 'malformed signature' };
  const message = signedMessage(gateway, change);
  for (const [i, text] of keys.entries()) {
    const key = ed25519PublicKey(text);
    if (key !== undefined && verify(null, message, key, signature)) return { ok: true, key: i };
  }
  return { ok: false, reason: 'no configured key verifies it' };
}

/** The base64 signature of a change with an ed25519 private key in PEM (PKCS#8). */
export function signChange(privateKeyPem: string, gateway: string, change: SignedChange): string {
  const key = parsePrivateKey(privateKeyPem);
  return sign(null, signedMessage(gateway, change), key).toString('base64');
}

function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new StreetboxError('E_CONFIG', 'the signing key is not a PEM private key (make one with `openssl genpkey -algorithm ed25519`)');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new StreetboxError('E_CONFIG', `the signing key is an ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
  return key;
}

/** Strict base64 of exactly 64 bytes (padding optional); undefined for anything else. */
function decodeSignature(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) return undefined;
  const bytes = Buffer.from(trimmed, 'base64');
  return bytes.length === SIGNATURE_BYTES ? bytes : undefined;
}

function preview(text: string): string {
  const t = text.trim();
  const shown = JSON.stringify(t.slice(0, SHOWN_CHARS)).slice(1, -1);
  return t.length > SHOWN_CHARS ? `${shown}…` : shown;
}
