/**
 * Ed25519 public keys in devices.yaml: sync.configSigningKeys (central's configuration changes,
 * edge/reconfig) and firmware.signingKeys (deployment manifests, edge/firmware). Checked here
 * with node:crypto, so a gateway never starts trusting a key it cannot use. The entry is never
 * shown in the issue: a private key pasted by mistake would otherwise land in the log (so the
 * message does not start with "expected", which the loader follows with the value found:
 * zodIssues.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';

const SIGNING_KEY_EXPECTED = 'expected an ed25519 public key (PEM or base64 of 32 bytes)';

/** One entry of a list of signing keys: an ed25519 public key, PEM SPKI or base64 of the raw 32 bytes. */
export const signingKey = z.string().superRefine((text, ctx) => {
  const problem = signingKeyProblem(text);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** Why a signing key entry is not a usable ed25519 public key, without quoting it; undefined when it is. */
export function signingKeyProblem(text: string): string | undefined {
  if (/PRIVATE KEY/.test(text)) return `a private key (not shown; never put one in devices.yaml): ${SIGNING_KEY_EXPECTED}`;
  return ed25519PublicKey(text) === undefined ? `not a usable key (not shown): ${SIGNING_KEY_EXPECTED}` : undefined;
}

/** The key a signing key entry stands for: PEM SPKI, or base64 of the raw 32 bytes. */
export function ed25519PublicKey(text: string): KeyObject | undefined {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('-----BEGIN PUBLIC KEY-----')) {
      const key = createPublicKey({ key: trimmed, format: 'pem' });
      return key.asymmetricKeyType === 'ed25519' ? key : undefined;
    }
    if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$/.test(trimmed)) return undefined; // 32 bytes, nothing more
    const x = Buffer.from(trimmed, 'base64').toString('base64url');
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    return key.asymmetricKeyType === 'ed25519' ? key : undefined;
  } catch {
    return undefined;
  }
}
