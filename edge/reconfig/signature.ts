/**
 * Signed configuration changes from central (issue 16): when `sync.configSigningKeys` lists
 * ed25519 public keys, a change arriving on `down/config` is taken only with a signature one of
 * them verifies. The signature covers the gateway, the change id, its base version, the force
 * flag and the sha256 of the content, so a signed change cannot be replayed on another gateway,
 * under another id, onto another base, or turned into a forced one. `streetbox config sign` and
 * the tests make signatures with signChange.
 */
import { parsePublicKey, signEd25519, verifyEd25519, type SignatureCheck } from '../crypto/ed25519.js';
import { sha256Hex } from './atomicFile.js';

export { parsePublicKey, type SignatureCheck };

/** The first line of every signed message: the format's name and version. */
export const SIGNED_MESSAGE_TAG = 'streetbox-config-v1';

/** What of a change the signature covers. */
export interface SignedChange {
  id: string;
  baseVersion: number | null | undefined;
  force?: boolean | undefined;
  content: string;
}

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
 * Whether one of `keys` (configSigningKeys entries) verifies `signatureB64` over the change's
 * signedMessage. Entries that are not keys are skipped (validation refuses them before).
 */
export function verifyChangeSignature(keys: readonly string[], gateway: string, change: SignedChange, signatureB64: string | undefined): SignatureCheck {
  return verifyEd25519(keys, signedMessage(gateway, change), signatureB64);
}

/** The base64 signature of a change with an ed25519 private key in PEM (PKCS#8). */
export function signChange(privateKeyPem: string, gateway: string, change: SignedChange): string {
  return signEd25519(privateKeyPem, signedMessage(gateway, change));
}
