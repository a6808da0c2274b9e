import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SCRYPT,
  findToken,
  generateToken,
  hashPassword,
  hashToken,
  isPasswordHash,
  parsePasswordHash,
  verifyPassword,
  verifyToken,
} from '../../edge/control/passwords.js';

// cheap parameters keep the suite fast; one test uses the defaults
const FAST = { N: 1024, r: 8, p: 1 };

describe('passwords: scrypt', () => {
  it('the default hash is self-describing and verifies', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(parsePasswordHash(h)?.params).toEqual(DEFAULT_SCRYPT);
    expect(await verifyPassword('correct horse battery staple', h)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', h)).toBe(false);
  });

  it('salts: the same password hashes differently each time, and each verifies', async () => {
    const [a, b] = await Promise.all([hashPassword('s3cret', FAST), hashPassword('s3cret', FAST)]);
    expect(a).not.toBe(b);
    expect(a.startsWith('scrypt$1024$8$1$')).toBe(true);
    expect(await verifyPassword('s3cret', a)).toBe(true);
    expect(await verifyPassword('s3cret', b)).toBe(true);
    expect(await verifyPassword('S3cret', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('non-ASCII passwords', async () => {
    const h = await hashPassword('Straßenlaterne ☀', FAST);
    expect(await verifyPassword('Straßenlaterne ☀', h)).toBe(true);
    expect(await verifyPassword('Strassenlaterne ☀', h)).toBe(false);
  });

  it('a tampered, malformed or missing hash never verifies', async () => {
    const h = await hashPassword('pw', FAST);
    const parts = h.split('$');
    const flipped = parts[5]![0] === 'A' ? 'B' + parts[5]!.slice(1) : 'A' + parts[5]!.slice(1);
    expect(await verifyPassword('pw', [...parts.slice(0, 5), flipped].join('$'))).toBe(false);
    expect(await verifyPassword('pw', ['scrypt', '2048', ...parts.slice(2)].join('$'))).toBe(false); // other parameters
    for (const bad of ['', 'pw', 'bcrypt$x', 'scrypt$1024$8$1$salt', 'scrypt$1000$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'scrypt$4194304$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA']) {
      expect(isPasswordHash(bad)).toBe(false);
      expect(await verifyPassword('pw', bad)).toBe(false);
    }
    // an unknown user: pass undefined, get false (after the same scrypt work)
    expect(await verifyPassword('pw', undefined)).toBe(false);
  });

  it('refuses parameters that would exhaust a 1 GB box', async () => {
    await expect(hashPassword('pw', { N: 2 ** 22, r: 8, p: 1 })).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(hashPassword('pw', { N: 1000, r: 8, p: 1 })).rejects.toMatchObject({ code: 'E_CONFIG' });
  });

  it('errors never quote the password', async () => {
    const err = await hashPassword('hunter2-secret', { N: 3, r: 8, p: 1 }).catch((e: unknown) => e);
    expect(String((err as Error).message)).not.toContain('hunter2');
  });
});

describe('passwords: API tokens', () => {
  it('sha256 token hashes verify in constant time and find their entry', () => {
    const t1 = generateToken();
    const t2 = generateToken();
    expect(t1).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(t1).not.toBe(t2);
    expect(hashToken('abc')).toBe('sha256$ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'); // FIPS 180-2 test vector
    expect(verifyToken(t1, hashToken(t1))).toBe(true);
    expect(verifyToken(t2, hashToken(t1))).toBe(false);
    expect(verifyToken(t1, 'sha256$nothex')).toBe(false);
    expect(verifyToken(t1, t1)).toBe(false); // a plain token is not a hash
    const entries = [
      { name: 'ops', role: 'central', tokenHash: hashToken(t1) },
      { name: 'view', role: 'viewer', tokenHash: hashToken(t2) },
    ];
    expect(findToken(t2, entries)?.name).toBe('view');
    expect(findToken(t1, entries)?.name).toBe('ops');
    expect(findToken('x'.repeat(43), entries)).toBeUndefined();
    expect(JSON.stringify(entries)).not.toContain(t1);
  });
});
