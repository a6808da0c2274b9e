/**
 * Validation of a submitted devices.yaml (edge/reconfig/validate.ts): the whole of `streetbox
 * validate` at line:col of the submitted text, what central may not change (gateway.id,
 * storage.path), the size limit, and the two keys of issue 16 (gateway.confirmTimeout,
 * sync.configSigningKeys). No secret is ever in a problem.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../edge/config/index.js';
import { MAX_CONFIG_BYTES, validateChange, type ValidateOptions } from '../../edge/reconfig/validate.js';
import type { ConfigProblem, ValidationResult } from '../../edge/reconfig/types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHIPPED = readFileSync(join(ROOT, 'devices.yaml'), 'utf8');
const RUNNING: Config = parseConfig(SHIPPED, { file: 'devices.yaml', dir: ROOT, env: {} }).config;

function validate(text: string, opts: Partial<ValidateOptions> = {}): ValidationResult {
  return validateChange(text, { file: 'devices.yaml', dir: ROOT, env: {}, running: RUNNING, source: 'technician', ...opts });
}

function problems(r: ValidationResult): ConfigProblem[] {
  if (r.ok) throw new Error('expected the change to be refused');
  return r.problems;
}

/** the shipped text with one line replaced (the line must be there) */
function edit(from: string, to: string, text = SHIPPED): string {
  if (!text.includes(from)) throw new Error(`not in the text: ${from}`);
  return text.replace(from, to);
}

/** the 1-based line of the first line containing `s` */
function lineOf(text: string, s: string): number {
  return text.split('\n').findIndex((l) => l.includes(s)) + 1;
}

const withSync = (extra: string): string => `${SHIPPED}\nsync:\n  url: mqtts://central.example:8883\n${extra}`;

describe('validateChange: the whole of `streetbox validate`', () => {
  it('the shipped devices.yaml is valid, from any door', () => {
    for (const source of ['file', 'technician', 'central'] as const) {
      const r = validate(SHIPPED, { source });
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.config).toEqual(RUNNING);
    }
  });

  it('bad YAML: problems at line:col, without the file name', () => {
    const text = edit('  timezone: Europe/Amsterdam\n', '  timezone: [Europe/Amsterdam\n');
    const r = validate(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe('E_CONFIG_INVALID');
    expect(r.problems.length).toBeGreaterThan(0);
    for (const p of r.problems) {
      expect(p.line).toBeGreaterThan(0);
      expect(p.col).toBeGreaterThan(0);
      expect(p).not.toHaveProperty('file');
    }
    expect(r.problems[0]!.line).toBe(lineOf(text, 'timezone: [Europe'));
  });

  it('an unknown bus, at the device', () => {
    const text = edit('bus: tc-net, unit: 1', 'bus: tc-nett, unit: 1');
    expect(problems(validate(text))).toEqual([
      { line: lineOf(text, 'tc-nett'), col: expect.any(Number), path: 'devices[4].bus', message: expect.stringContaining('unknown bus "tc-nett"') },
    ]);
  });

  it('an unknown profile, at the device', () => {
    const text = edit('unit: 3, profile: streetlight-controller', 'unit: 3, profile: streetlite-controller');
    const [p, ...rest] = problems(validate(text));
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ line: lineOf(text, 'streetlite-controller'), path: 'devices[2].profile' });
    expect(p!.message).toContain('unknown profile "streetlite-controller"');
  });

  it('an unset ${ENV_VAR} is a problem here, at its line:col, and a set one is not shown', () => {
    // quoted: `{` starts a flow mapping in YAML
    const text = edit('password: demo-central-password', 'password: "${CENTRAL_MQTT_PASSWORD}"');
    const [p, ...rest] = problems(validate(text, { env: {} }));
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ line: lineOf(text, 'CENTRAL_MQTT_PASSWORD'), path: 'broker.users[2].password' });
    expect(p!.message).toContain('CENTRAL_MQTT_PASSWORD');
    const r = validate(text, { env: { CENTRAL_MQTT_PASSWORD: 'from-the-environment-42' } });
    expect(r.ok).toBe(true);
  });

  it('an invalid secret is never echoed', () => {
    const text = edit('appKey: 000102030405060708090a0b0c0d0e0f', 'appKey: 000102030405060708090a0b0c0d0eZZ');
    const ps = problems(validate(text));
    expect(ps).toHaveLength(1);
    expect(JSON.stringify(ps)).not.toContain('0d0eZZ');
  });

  it('too large: refused without parsing, at 0:0', () => {
    const text = `${SHIPPED}\n#${'x'.repeat(MAX_CONFIG_BYTES)}\n`;
    const bytes = Buffer.byteLength(text);
    expect(validate(text)).toEqual({ ok: false, code: 'E_CONFIG_INVALID', problems: [{ line: 0, col: 0, path: '', message: `the configuration is ${bytes} bytes; at most 1 MiB` }] });
  });

  it('exactly 1 MiB is still taken', () => {
    const pad = MAX_CONFIG_BYTES - Buffer.byteLength(SHIPPED) - 2;
    const text = `${SHIPPED}#${'x'.repeat(pad)}\n`;
    expect(Buffer.byteLength(text)).toBe(MAX_CONFIG_BYTES);
    expect(validate(text).ok).toBe(true);
  });
});

describe('validateChange: what central may not change', () => {
  const newId = edit('  id: demo-cabinet-01\n', '  id: demo-cabinet-02\n');

  it('a different gateway.id from central: E_CONFIG_FORBIDDEN at the gateway.id key', () => {
    const r = validate(newId, { source: 'central' });
    expect(r).toEqual({
      ok: false,
      code: 'E_CONFIG_FORBIDDEN',
      problems: [{ line: 12, col: 3, path: 'gateway.id', message: expect.stringContaining("may not change the gateway's id") }],
    });
  });

  it('a technician may (the plan refuses it later: it takes a restart)', () => {
    const r = validate(newId, { source: 'technician' });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.gateway.id).toBe('demo-cabinet-02');
    expect(validate(newId, { source: 'file' }).ok).toBe(true);
  });

  it('a different storage.path from central: forbidden at its key', () => {
    const text = edit('  path: data/streetbox.db ', '  path: data/elsewhere.db ');
    expect(problems(validate(text, { source: 'central' }))).toEqual([
      { line: lineOf(text, 'data/elsewhere.db'), col: 3, path: 'storage.path', message: expect.stringContaining('may not move the store') },
    ]);
    expect(validate(text, { source: 'technician' }).ok).toBe(true);
  });

  it('firmware.signingKeys from central: forbidden at its key (trust is given on the gateway); a technician may', () => {
    const der = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
    const key = der.subarray(der.length - 32).toString('base64');
    const text = edit('  signingKeys: []', `  signingKeys: ['${key}']`);
    expect(problems(validate(text, { source: 'central' }))).toEqual([
      { line: lineOf(text, key), col: expect.any(Number), path: 'firmware.signingKeys', message: expect.stringContaining('may not change the keys that sign firmware manifests') },
    ]);
    expect(validate(text, { source: 'technician' }).ok).toBe(true);
  });

  it('the same store written another way is no change', () => {
    for (const written of ['./data/streetbox.db', 'data/../data/streetbox.db', join(ROOT, 'data', 'streetbox.db')]) {
      const text = edit('  path: data/streetbox.db ', `  path: ${written} `);
      expect(validate(text, { source: 'central' }).ok, written).toBe(true);
    }
  });

  it('storage.path left out (its default) while the gateway runs another: at the storage key', () => {
    const running = { ...structuredClone(RUNNING), storage: { ...RUNNING.storage, path: join(ROOT, 'data', 'other.db') } };
    const text = edit('  path: data/streetbox.db          # relative to this file\n', '');
    expect(problems(validate(text, { source: 'central', running }))).toEqual([{ line: lineOf(text, 'storage:'), col: 1, path: 'storage.path', message: expect.any(String) }]);
  });

  it('both at once: two problems; an invalid text is E_CONFIG_INVALID first', () => {
    const both = edit('  path: data/streetbox.db ', '  path: data/elsewhere.db ', newId);
    expect(problems(validate(both, { source: 'central' })).map((p) => p.path)).toEqual(['gateway.id', 'storage.path']);
    const broken = edit('bus: tc-net, unit: 1', 'bus: tc-nett, unit: 1', newId);
    const r = validate(broken, { source: 'central' });
    expect(r.ok === false && r.code).toBe('E_CONFIG_INVALID');
  });

  it('a change central may make', () => {
    const text = edit('      - { at: \'23:00\', level: 60 }', '      - { at: \'23:00\', level: 50 }');
    const r = validate(text, { source: 'central' });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.schedules[0]!.steps[1]!.level).toBe(50);
  });
});

describe('gateway.confirmTimeout', () => {
  it('defaults to 2 minutes and takes a duration 1s..1h', () => {
    expect(RUNNING.gateway.confirmTimeout).toBe(120_000);
    const at = (v: string): ValidationResult => validate(edit('  timezone: Europe/Amsterdam\n', `  timezone: Europe/Amsterdam\n  confirmTimeout: ${v}\n`));
    const ok = at('5m');
    expect(ok.ok && ok.config.gateway.confirmTimeout).toBe(300_000);
    for (const bad of ['500ms', '2h', 'soon']) {
      const [p, ...rest] = problems(at(bad));
      expect(rest).toEqual([]);
      expect(p).toMatchObject({ line: lineOf(SHIPPED, 'timezone: Europe/Amsterdam') + 1, col: 19, path: 'gateway.confirmTimeout', message: expect.stringContaining('1s..1h') });
    }
  });
});

describe('sync.configSigningKeys', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
  const block = (text: string): string => `    - |\n${text.trimEnd().split('\n').map((l) => `      ${l}`).join('\n')}\n`;

  it('defaults to none', () => {
    const r = validate(withSync(''));
    expect(r.ok && r.config.sync?.configSigningKeys).toEqual([]);
  });

  it('takes PEM (SPKI) and base64 of the raw 32 bytes', () => {
    const r = validate(withSync(`  configSigningKeys:\n${block(pem)}    - ${raw}\n`));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.sync?.configSigningKeys).toEqual([pem, raw]);
  });

  it('a bad key is a problem at its line:col, never echoed', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const shortRaw = Buffer.alloc(31, 7).toString('base64');
    const text = withSync(`  configSigningKeys:\n    - ${shortRaw}\n${block(rsa)}${block(privatePem)}    - not-a-key-at-all-0123456789\n`);
    const ps = problems(validate(text));
    expect(ps.map((p) => [p.line, p.col, p.path])).toEqual([
      [lineOf(text, shortRaw), 7, 'sync.configSigningKeys[0]'],
      [lineOf(text, '- |') , 7, 'sync.configSigningKeys[1]'],
      [lineOf(text, '- |') + rsa.trimEnd().split('\n').length + 1, 7, 'sync.configSigningKeys[2]'],
      [lineOf(text, 'not-a-key-at-all'), 7, 'sync.configSigningKeys[3]'],
    ]);
    for (const p of ps) expect(p.message).toContain('expected an ed25519 public key (PEM or base64 of 32 bytes)');
    expect(ps[2]!.message).toContain('a private key');
    const shown = JSON.stringify(ps);
    for (const secret of [shortRaw, 'MII', 'not-a-key-at-all', privatePem.split('\n')[1]!.slice(0, 20)]) expect(shown).not.toContain(secret);
  });
});
