/** A devices.yaml text with its secrets as `***`, everything else as written. */
import { describe, expect, it } from 'vitest';
import { redactText } from '../../edge/reconfig/redactText.js';

/** The lines of `after` that differ from `before`, as [before, after]; both texts must have the same lines. */
function changedLines(before: string, after: string): [string, string][] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b.length).toBe(a.length);
  return a.flatMap((line, i) => (line === b[i] ? [] : [[line, b[i]!] as [string, string]]));
}

const BLOCK = `# streetbox gateway, cabinet 12
gateway:
  id: gw-12 # do not change
broker:
  users:
    # the operators
    - username: ops
      password: hunter2-hunter2   # the plain one
    - username: meter
      passwordHash: "scrypt$16384$8$1$c2FsdA$aGFzaA"
    - username: env
      password: \${BROKER_PASS}
api:
  tokens:
    - name: ci
      token: 'tok-0123456789abcdef'
nodeRed:
  credentialSecret: nr-secret-value
sync:
  url: mqtts://central.example:8883
  username: gw-12
  password: "sync-pass"
  key: /etc/streetbox/client.key
  configSigningKeys:
    - MCowBQYDK2VwAyEA
lorawan:
  devices:
    - devEui: "0102030405060708"
      activation: abp
      devAddr: "26011BDA"
      nwkSKey: 000102030405060708090A0B0C0D0E0F
      appSKey: 0F0E0D0C0B0A09080706050403020100
    - devEui: "0102030405060709"
      activation: otaa
      joinEui: "70B3D57ED0000000"
      appKey: "00112233445566778899AABBCCDDEEFF"
devices:
  - id: lamp-1 # the key: value here is not a secret
    unit: 1
`;

describe('redactText', () => {
  it('replaces every secret value of block-style YAML and nothing else', () => {
    const out = redactText(BLOCK);
    expect(changedLines(BLOCK, out)).toEqual([
      ['      password: hunter2-hunter2   # the plain one', '      password: ***   # the plain one'],
      ['      passwordHash: "scrypt$16384$8$1$c2FsdA$aGFzaA"', '      passwordHash: ***'],
      ["      token: 'tok-0123456789abcdef'", '      token: ***'],
      ['  credentialSecret: nr-secret-value', '  credentialSecret: ***'],
      ['  password: "sync-pass"', '  password: ***'],
      ['  key: /etc/streetbox/client.key', '  key: ***'],
      ['      nwkSKey: 000102030405060708090A0B0C0D0E0F', '      nwkSKey: ***'],
      ['      appSKey: 0F0E0D0C0B0A09080706050403020100', '      appSKey: ***'],
      ['      appKey: "00112233445566778899AABBCCDDEEFF"', '      appKey: ***'],
    ]);
    // comments, ${VAR} references and everything else as written
    expect(out).toContain('# streetbox gateway, cabinet 12\n');
    expect(out).toContain('      password: ${BROKER_PASS}\n');
    expect(out).toContain('    - MCowBQYDK2VwAyEA\n');
  });

  it('replaces secrets in flow mappings and sequences', () => {
    const text = [
      'broker:',
      '  users: [{ username: ops, password: "a, b}", role: x }, {username: b, password: plain}]',
      'api: { tokens: [ { name: ci, token: tok-0123456789abcdef } ] }',
      // in a flow mapping a ${VAR} is quoted (a plain `}` would close the mapping)
      'sync: { url: "mqtt://h", key: /k.pem, password: "${SYNC_PASS}" }',
      '',
    ].join('\n');
    expect(redactText(text)).toBe(
      [
        'broker:',
        '  users: [{ username: ops, password: ***, role: x }, {username: b, password: ***}]',
        'api: { tokens: [ { name: ci, token: *** } ] }',
        'sync: { url: "mqtt://h", key: ***, password: "${SYNC_PASS}" }',
        '',
      ].join('\n'),
    );
  });

  it('keeps the header and comment of a block scalar, its text replaced', () => {
    const text = 'sync:\n  password: |  # multi-line\n    line one\n    line two\n\n  username: gw\nnodeRed:\n  credentialSecret: >-\n    folded\n    text\n';
    expect(redactText(text)).toBe('sync:\n  password: |  # multi-line\n    ***\n\n  username: gw\nnodeRed:\n  credentialSecret: >-\n    ***\n');
  });

  it('replaces a secret given as a list or mapping, and a number', () => {
    const text = 'api:\n  tokens:\n    - name: a\n      token:\n        - one\n        - two\nnodeRed:\n  users:\n    - password: 123456\n';
    expect(redactText(text)).toBe('api:\n  tokens:\n    - name: a\n      token:\n        - ***\n        - ***\nnodeRed:\n  users:\n    - password: ***\n');
  });

  it('follows aliases and merge keys to the secret they put in place', () => {
    const text = [
      'shared:',
      '  pw: &pw alias-secret',
      '  base: &base',
      '    username: from-base',
      '    password: base-secret',
      '  sync: &s { key: /merged.key, url: "mqtt://h" }',
      'broker:',
      '  users:',
      '    - password: *pw',
      '    - <<: *base',
      'sync:',
      '  <<: *s',
      '',
    ].join('\n');
    expect(changedLines(text, redactText(text))).toEqual([
      ['  pw: &pw alias-secret', '  pw: &pw ***'],
      ['    password: base-secret', '    password: ***'],
      ['  sync: &s { key: /merged.key, url: "mqtt://h" }', '  sync: &s { key: ***, url: "mqtt://h" }'],
    ]);
  });

  it('leaves a text without secrets, an empty value and a null as they are', () => {
    const text = 'gateway:\n  id: gw-1\nbroker:\n  users:\n    - username: a\n      password:\n    - username: b\n      password: ~\n';
    expect(redactText(text)).toBe(text);
    expect(redactText('')).toBe('');
    expect(redactText('# only a comment\n')).toBe('# only a comment\n');
  });

  it('redacts line by line a text that does not parse', () => {
    const text = [
      'broker:',
      '  users:',
      '    - username: ops',
      '      password: hunter2 # plain',
      '    - { username: b, password: "x, y", role: admin }',
      '    - username: env',
      '      password: "${PASS}"',
      'sync:',
      '  key: /etc/k.pem',
      '  password: |',
      '    secret line',
      '  username: gw',
      'anchors: { pw: &p anchored }',
      'nodeRed:',
      '  users:',
      '    - password: *p',
      'devices: [ broken',
      '  key: not-in-sync',
      '',
    ].join('\n');
    expect(changedLines(text, redactText(text))).toEqual([
      ['      password: hunter2 # plain', '      password: *** # plain'],
      ['    - { username: b, password: "x, y", role: admin }', '    - { username: b, password: ***, role: admin }'],
      ['  key: /etc/k.pem', '  key: ***'],
      ['    secret line', '    ***'],
      ['anchors: { pw: &p anchored }', 'anchors: { pw: &p *** }'],
    ]);
  });

  it('bounds the walk of a document whose aliases expand exponentially', () => {
    const levels = ['a0: &a0 [x, y]'];
    for (let i = 1; i <= 20; i++) levels.push(`a${i}: &a${i} [*a${i - 1}, *a${i - 1}, *a${i - 1}]`);
    levels.push('broker: { users: [ { password: *a20 } ] }', 'sync: { password: after-the-bomb, url: "mqtt://h" }', 'gateway: { id: gw-1 }', '');
    const text = levels.join('\n');
    const started = Date.now();
    const out = redactText(text).split('\n');
    expect(Date.now() - started).toBeLessThan(5_000);
    // the anchored values may stand at a secret path: they are redacted; the rest as usual
    expect(out[0]).toBe('a0: &a0 [***, ***]');
    expect(out.slice(-4)).toEqual(['broker: { users: [ { password: *a20 } ] }', 'sync: { password: ***, url: "mqtt://h" }', 'gateway: { id: gw-1 }', '']);
  });
});
