/** Signed changes from central: ed25519 over the gateway, id, base version, force flag and content hash. */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../edge/reconfig/atomicFile.js';
import { parsePublicKey, signChange, signedMessage, verifyChangeSignature, type SignedChange } from '../../edge/reconfig/signature.js';

function keyPair(): { publicPem: string; privatePem: string; raw: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { publicPem, privatePem, raw: der.subarray(der.length - 32).toString('base64') };
}

const central = keyPair();
const other = keyPair();
const change: SignedChange = { id: 'chg-42', baseVersion: 7, force: false, content: 'gateway:\n  id: gw-1\n' };

describe('signedMessage', () => {
  it('is the tag, gateway, id, base version, force flag and the content sha256, one per line', () => {
    expect(signedMessage('gw-1', change).toString('utf8')).toBe(`streetbox-config-v1\ngw-1\nchg-42\n7\n0\n${sha256Hex(change.content)}`);
    expect(signedMessage('gw-1', { ...change, baseVersion: null, force: true }).toString('utf8')).toBe(`streetbox-config-v1\ngw-1\nchg-42\n-\n1\n${sha256Hex(change.content)}`);
    expect(signedMessage('gw-1', { id: 'x', baseVersion: undefined, content: '' }).toString('utf8')).toBe(`streetbox-config-v1\ngw-1\nx\n-\n0\n${sha256Hex('')}`);
  });
});

describe('verifyChangeSignature', () => {
  const signature = signChange(central.privatePem, 'gw-1', change);

  it('accepts a signature a configured key verifies, naming which key', () => {
    expect(signature).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(verifyChangeSignature([central.publicPem], 'gw-1', change, signature)).toEqual({ ok: true, key: 0 });
    expect(verifyChangeSignature([other.publicPem, central.publicPem], 'gw-1', change, signature)).toEqual({ ok: true, key: 1 });
    // force: undefined signs like false
    expect(verifyChangeSignature([central.publicPem], 'gw-1', { id: change.id, baseVersion: 7, content: change.content }, signature)).toEqual({ ok: true, key: 0 });
  });

  it('accepts the raw base64 form of the public key', () => {
    expect(verifyChangeSignature([central.raw], 'gw-1', change, signature)).toEqual({ ok: true, key: 0 });
  });

  it('refuses a signature over anything else: content, id, base version, force, gateway', () => {
    const refused = { ok: false, reason: 'no configured key verifies it' };
    const keys = [central.publicPem];
    expect(verifyChangeSignature(keys, 'gw-1', { ...change, content: `${change.content} ` }, signature)).toEqual(refused);
    expect(verifyChangeSignature(keys, 'gw-1', { ...change, id: 'chg-43' }, signature)).toEqual(refused);
    expect(verifyChangeSignature(keys, 'gw-1', { ...change, baseVersion: 8 }, signature)).toEqual(refused);
    expect(verifyChangeSignature(keys, 'gw-1', { ...change, baseVersion: null }, signature)).toEqual(refused);
    expect(verifyChangeSignature(keys, 'gw-1', { ...change, force: true }, signature)).toEqual(refused);
    expect(verifyChangeSignature(keys, 'gw-2', change, signature)).toEqual(refused);
    // signed by a key that is not configured
    expect(verifyChangeSignature([other.publicPem], 'gw-1', change, signature)).toEqual(refused);
    expect(verifyChangeSignature([], 'gw-1', change, signature)).toEqual(refused);
    // a flipped bit
    const bytes = Buffer.from(signature, 'base64');
    bytes[10] = bytes[10]! ^ 1;
    expect(verifyChangeSignature(keys, 'gw-1', change, bytes.toString('base64'))).toEqual(refused);
  });

  it('says unsigned and malformed apart', () => {
    const keys = [central.publicPem];
    expect(verifyChangeSignature(keys, 'gw-1', change, undefined)).toEqual({ ok: false, reason: 'unsigned' });
    expect(verifyChangeSignature(keys, 'gw-1', change, '')).toEqual({ ok: false, reason: 'unsigned' });
    for (const bad of ['not base64!', 'AAAA', signature.slice(0, 40), `${signature}AAAA`]) {
      expect(verifyChangeSignature(keys, 'gw-1', change, bad)).toEqual({ ok: false, reason: 'malformed signature' });
    }
  });

  it('skips a configured entry that is not a key', () => {
    expect(verifyChangeSignature(['junk', central.publicPem], 'gw-1', change, signature)).toEqual({ ok: true, key: 1 });
  });
});

describe('parsePublicKey', () => {
  it('reads PEM (SPKI) and base64 of the raw 32 bytes', () => {
    expect(parsePublicKey(central.publicPem).asymmetricKeyType).toBe('ed25519');
    expect(parsePublicKey(`  ${central.raw}\n`).asymmetricKeyType).toBe('ed25519');
    const fromRaw = parsePublicKey(central.raw).export({ type: 'spki', format: 'pem' }).toString();
    expect(fromRaw).toBe(central.publicPem);
  });

  it('refuses anything else with E_CONFIG, showing at most 12 characters of it', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const secretish = 'hunter2-hunter2-hunter2-hunter2';
    const cases = [central.privatePem, rsa, secretish, Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), ''];
    for (const text of cases) {
      let error: unknown;
      try {
        parsePublicKey(text);
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({ code: 'E_CONFIG' });
      const message = (error as Error).message;
      // no run of 13 characters of the input in the message
      const t = text.trim();
      for (let i = 0; i + 13 <= t.length; i++) expect(message).not.toContain(t.slice(i, i + 13));
    }
    expect(() => parsePublicKey(central.privatePem)).toThrow(/private key/);
    expect(() => parsePublicKey(secretish)).toThrow(/"hunter2-hunt…" is not an ed25519 public key/);
  });
});

describe('signChange', () => {
  it('refuses a key that is not an ed25519 private key, without showing it', () => {
    expect(() => signChange('nope', 'gw-1', change)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => signChange(rsa, 'gw-1', change)).toThrow(/rsa key, not ed25519/);
  });
});
