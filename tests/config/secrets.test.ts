/**
 * Issue 13, defect 7: a numeric secret was echoed in a validation error (`password: 12345678`
 * → `got 12345678`, and again in the "put it in quotes" hint). Whatever is written at a secret
 * field, of whatever type, no error shows it: every secret path of the schema is tried with a
 * number, a boolean, null, a list and a mapping.
 */
import type { z } from 'zod';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, parseConfig } from '../../edge/config/index.js';
import { isSecretPath } from '../../edge/config/redact.js';
import { unwrap } from '../../edge/config/schemaWalk.js';

type Schema = z.core.$ZodType;
interface Def {
  type: string;
  shape?: Record<string, Schema>;
  element?: Schema;
  options?: Schema[];
}

/** Every path of the schema whose value is a secret (list items as index 0). */
function secretPaths(root: Schema): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (s: Schema, path: (string | number)[]): void => {
    if (path.length > 0 && isSecretPath(path)) {
      out.push(path);
      return;
    }
    const def = unwrap(s)._zod.def as unknown as Def;
    if (def.type === 'object') for (const [k, v] of Object.entries(def.shape ?? {})) walk(v, [...path, k]);
    else if (def.type === 'array' && def.element) walk(def.element, [...path, 0]);
    else if (def.type === 'union') (def.options ?? []).forEach((o) => walk(o, path));
  };
  walk(root, []);
  return out.filter((p, i) => out.findIndex((q) => q.join('.') === p.join('.')) === i);
}

/** A document with `value` at `path` (and a gateway). */
function documentWith(path: (string | number)[], value: unknown): string {
  const root: Record<string, unknown> = { gateway: { id: 'gw' } };
  let cur: Record<string | number, unknown> = root;
  path.forEach((seg, i) => {
    const last = i === path.length - 1;
    const next = path[i + 1];
    if (last) cur[seg] = value;
    else {
      cur[seg] ??= typeof next === 'number' ? [] : {};
      cur = cur[seg] as Record<string | number, unknown>;
    }
  });
  return stringify(root);
}

function errorText(text: string): string {
  try {
    parseConfig(text, { file: 'devices.yaml', dir: '/tmp', env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return `${err.message}\n${JSON.stringify(err.issues)}`;
    throw err;
  }
  return '';
}

const SECRET_PATHS = secretPaths(configSchema as Schema);

// each value written where a secret goes, and the texts that must never be shown
const VALUES: [string, unknown, string[]][] = [
  ['a number', 86421357, ['86421357']],
  ['a long number', 123456789012345678901234567890, ['123456789012345678901234567890', '1.2345678901234568e+29', '1.2345678901234568e29']],
  ['a boolean', true, ['true']],
  ['null', null, ['null']],
  ['a list', [86421357, 's3cr3t-in-a-list'], ['86421357', 's3cr3t-in-a-list']],
  ['a mapping', { k: 86421357, s3cr3tKey: 's3cr3t-in-a-map' }, ['86421357', 's3cr3t-in-a-map', 's3cr3tKey']],
  ['a string', 's3cr3t-string-value-0', ['s3cr3t-string-value-0']],
];

describe('secrets are never shown in an error, whatever their type', () => {
  it('finds the secret fields of the schema', () => {
    expect(SECRET_PATHS.map((p) => p.join('.'))).toEqual(
      expect.arrayContaining([
        'lorawan.devices.0.nwkSKey',
        'lorawan.devices.0.appSKey',
        'lorawan.devices.0.appKey',
        'broker.users.0.password',
        'broker.users.0.passwordHash',
        'api.tokens.0.token',
        'nodeRed.credentialSecret',
        'nodeRed.users.0.password',
        'nodeRed.users.0.passwordHash',
        'sync.password',
        'sync.key',
      ]),
    );
  });

  for (const path of SECRET_PATHS) {
    it.each(VALUES)(`${path.join('.')}: %s`, (_what, value, hidden) => {
      const text = errorText(documentWith(path, value));
      for (const h of hidden) expect(text).not.toContain(h);
    });
  }

  it('still says what to do: a number or boolean to YAML goes in quotes', () => {
    const text = errorText('gateway: { id: gw }\nbroker:\n  users: [{ username: tech, role: technician, password: 12345678 }]\n');
    expect(text.split('\n')[0]).toBe('devices.yaml:3:57 broker.users[0].password: expected a non-empty string, got a number (not shown) (a number to YAML; put it in quotes)');
  });

  it('the text yaml quotes from a broken line is left out of a syntax error', () => {
    const text = errorText('gateway: { id: gw }\nsync:\n  url: mqtt://h\n  password: |x s3cr3t-after-a-header\n    abc\n');
    expect(text).not.toContain('s3cr3t-after-a-header');
    expect(text.split('\n')[0]).toBe('devices.yaml:4:14: YAML syntax error: block scalar header includes extra characters (and 1 later error, which follows from it)');
  });

  it('an unquoted ${VAR} that reads as a number gets the hint, not its value', () => {
    let err: unknown;
    try {
      parseConfig('gateway: { id: gw }\nsync:\n  url: mqtt://h\n  password: ${SYNC_PASS}\n', { file: 'devices.yaml', env: { SYNC_PASS: '24681357' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe('devices.yaml:4:13 sync.password: expected a string, got the value of ${SYNC_PASS} (not shown) (a number to YAML; put it in quotes)');
  });
});

describe('a password inside a URL', () => {
  it('is never shown in an error about that URL', () => {
    let text = '';
    try {
      parseConfig('gateway: { id: gw }\nsync: { url: "ftp://user:s3cretpass@host:1883" }\n', { file: 'devices.yaml', dir: '/tmp', env: {} });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      text = err.message + JSON.stringify(err.issues);
    }
    expect(text).toContain('sync.url');
    expect(text).not.toContain('s3cretpass');
  });
});
