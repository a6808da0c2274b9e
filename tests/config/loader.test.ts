/**
 * The devices.yaml loader: defaults, `${ENV_VAR}` substitution (and secrets kept out of every
 * error), paths resolved against the file's directory, unreadable files, redaction.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, formatIssues, loadConfig, parseConfig, redactConfig, type ConfigIssue } from '../../edge/config/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(HERE, 'fixtures');
const REPO_CONFIG = join(HERE, '..', '..', 'devices.yaml');

const FULL_ENV = {
  TEST_NWKSKEY: '2B7E151628AED2A6ABF7158809CF4F3C',
  TEST_MQTT_PORT: '1884',
  TEST_TECH_PASSWORD: 'correct horse battery staple',
  TEST_SYNC_PASSWORD: 'sync-secret-42',
};

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'streetbox-config-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function issuesOf(fn: () => unknown): ConfigIssue[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const parse = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfig(text, { file: 'devices.yaml', dir: tmp, env });

describe('a valid file', () => {
  it('loads the full example with defaults applied', () => {
    const { config, file, dir } = loadConfig(join(FIXTURES, 'good-full.yaml'), { env: FULL_ENV });
    expect(file).toBe(join(FIXTURES, 'good-full.yaml'));
    expect(dir).toBe(FIXTURES);
    expect(config.gateway).toEqual({ id: 'cabinet-17', site: 'Main Street / Station Road', lat: 52.09, lon: 5.12, timezone: 'Europe/Amsterdam', confirmTimeout: 120_000 });
    // units converted once, here: "64MB", "500ms", "2m"
    expect(config.storage).toEqual({ path: join(FIXTURES, 'data/streetbox.db'), maxBytes: 64_000_000, durability: 'full', flushInterval: 200, flushRows: 1000, minAutonomyDays: 7 });
    expect(config.buses[0]).toMatchObject({ id: 'rs485', type: 'serial', baud: 19200, timeout: 500, parity: 'even', dataBits: 8, stopBits: 1, retries: 1 });
    expect(config.buses[1]).toMatchObject({ id: 'traffic', type: 'tcp', port: 5020, timeout: 1000 });
    expect(config.devices.map((d) => [d.id, d.poll, d.allowCommands, d.groups])).toEqual([
      ['lamp-1', 5000, false, ['main-street']],
      ['lamp-2', 120_000, false, []],
      ['tc-1', 5000, true, []],
      ['lora-1', 5000, false, []],
    ]);
    expect(config.profiles[0]!.points[0]).toMatchObject({ type: 'uint16', wordOrder: 'big', scale: 1, offset: 0, access: 'rw' });
    expect(config.lorawan).toMatchObject({ enabled: true, port: 1700, region: 'EU868' });
    expect(config.api).toMatchObject({ enabled: true, host: '0.0.0.0', port: 8081 });
    expect(config.nodeRed).toMatchObject({ enabled: true, editor: true, path: '/flows', users: [] });
    expect(config.sync).toMatchObject({ enabled: true, batchSize: 500, batchBytes: 262_144, protocolVersion: 4, rejectUnauthorized: true });
    expect(config.simulate).toBe(true);
  });

  it('substitutes ${ENV_VAR}: an unquoted whole reference is typed, $${X} is a literal ${X}', () => {
    const { config } = loadConfig(join(FIXTURES, 'good-full.yaml'), { env: FULL_ENV });
    expect(config.broker.port).toBe(1884);
    expect(config.broker.users[0]!.password).toBe(FULL_ENV.TEST_TECH_PASSWORD);
    expect(config.lorawan!.devices[0]!.nwkSKey).toBe(FULL_ENV.TEST_NWKSKEY);
    expect(config.sync!.password).toBe(FULL_ENV.TEST_SYNC_PASSWORD);
    expect(config.nodeRed.credentialSecret).toBe('${NOT_A_VARIABLE}');
  });

  it('resolves relative file paths against the directory of the file; absolute ones are kept', () => {
    const { config } = loadConfig(join(FIXTURES, 'good-full.yaml'), { env: FULL_ENV });
    expect(config.broker.tls).toEqual({ cert: join(FIXTURES, 'certs/broker.crt'), key: '/etc/streetbox/broker.key' });
    expect(config.sync!.ca).toBe(join(FIXTURES, 'certs/ca.pem'));
    expect(config.sync!.key).toBe(join(FIXTURES, 'certs/client.key'));
    expect(config.nodeRed.userDir).toBe(join(FIXTURES, 'node-red'));
    // the default storage path too
    expect(parse('gateway: { id: gw }').config.storage.path).toBe(join(tmp, 'data/streetbox.db'));
    expect(parse('gateway: { id: gw }\nstorage: { path: ":memory:" }').config.storage.path).toBe(':memory:');
  });

  it('reads ${ENV_VAR} from process.env by default', () => {
    const file = join(tmp, 'env-default.yaml');
    writeFileSync(file, 'gateway:\n  id: ${STREETBOX_TEST_GATEWAY_ID}\n');
    process.env.STREETBOX_TEST_GATEWAY_ID = 'from-env';
    try {
      expect(loadConfig(file).config.gateway.id).toBe('from-env');
    } finally {
      delete process.env.STREETBOX_TEST_GATEWAY_ID;
    }
    expect(issuesOf(() => loadConfig(file)).map((i) => i.message)).toEqual(['environment variable STREETBOX_TEST_GATEWAY_ID is not set']);
  });

  it('follows anchors and merge keys', () => {
    const { config } = parse(
      [
        'gateway: { id: gw }',
        'buses:',
        '  - &rs485 { id: a, type: serial, path: /dev/ttyUSB0, baud: 19200 }',
        '  - { <<: *rs485, id: b, path: /dev/ttyUSB1 }',
      ].join('\n'),
    );
    expect(config.buses.map((b) => (b.type === 'serial' ? [b.id, b.path, b.baud] : []))).toEqual([
      ['a', '/dev/ttyUSB0', 19200],
      ['b', '/dev/ttyUSB1', 19200],
    ]);
  });

  it('loads the repository devices.yaml without issues', { skip: !existsSync(REPO_CONFIG) }, () => {
    const { config } = loadConfig(REPO_CONFIG);
    expect(config.gateway.id).toMatch(/\S/);
  });
});

describe('secrets from the environment', () => {
  const env = {
    API_TOKEN: 'tooShort-x9Q',
    BROKER_PORT: 'port-k7Zp2',
    ROLE_SECRET: 'r0le-Zz81',
    MQTT_USER: 'user-s3cret-Yq',
    MQTT_PASS: 'pass-s3cret-Wv',
  };
  const leaks = (err: ConfigError): string[] => {
    const text = `${err.message}\n${JSON.stringify(err.issues)}\n${err.stack ?? ''}`;
    return Object.values(env).filter((v) => text.includes(v));
  };

  it('a substituted value that fails validation is never echoed', () => {
    const err = errorOf(() =>
      parse(
        [
          'gateway: { id: gw }',
          'broker:',
          '  port: "${BROKER_PORT}"',
          '  users:',
          '    - { username: tech, password: "${MQTT_PASS}", role: "${ROLE_SECRET}" }',
          'api:',
          '  tokens:',
          '    - { name: central, token: "${API_TOKEN}", role: central }',
        ].join('\n'),
        env,
      ),
    );
    expect(leaks(err)).toEqual([]);
    expect(err.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`)).toEqual([
      '3:9 broker.port: expected a port 1..65535, got the value of ${BROKER_PORT} (not shown)',
      '5:57 broker.users[0].role: expected one of technician, maintenance, central, viewer, got the value of ${ROLE_SECRET} (not shown)',
      '8:31 api.tokens[0].token: expected a token of at least 16 characters, got the value of ${API_TOKEN} (not shown)',
    ]);
  });

  it('a cross-check that quotes a substituted value names the variable instead', () => {
    const err = errorOf(() =>
      parse(
        [
          'gateway: { id: gw }',
          'broker:',
          '  users:',
          '    - { username: "${MQTT_USER}", password: "${MQTT_PASS}", role: viewer }',
          '    - { username: "${MQTT_USER}", password: "${MQTT_PASS}", role: viewer }',
        ].join('\n'),
        env,
      ),
    );
    expect(leaks(err)).toEqual([]);
    expect(formatIssues(err.issues)).toBe('devices.yaml:5:19 broker.users[1].username: duplicate username "${MQTT_USER}" (first used at index 0)');
  });

  it('a malformed reference is an issue, not silently kept', () => {
    expect(issuesOf(() => parse('gateway:\n  id: gw\n  site: "${not-a-name}"\n')).map((i) => [i.line, i.col, i.path, i.message])).toEqual([
      [3, 9, 'gateway.site', '"${not-a-name}" is not an environment variable reference (names are letters, digits and "_"); write "$${" for a literal "${"'],
    ]);
  });
});

describe('bounds that protect the radio', () => {
  it('a LoRaWAN dedupWindow past 500 ms is refused at its line: the class A answer waits for it and RX1 opens at 1 s', () => {
    const text = 'gateway:\n  id: gw\nlorawan:\n  dedupWindow: 900ms\n';
    expect(issuesOf(() => parse(text)).map((i) => [i.line, i.path, i.message])).toEqual([
      [4, 'lorawan.dedupWindow', 'expected at most 500 ms: the answer waits for the window and RX1 opens 1 s after the uplink, got "900ms"'],
    ]);
    expect(parse('gateway:\n  id: gw\nlorawan:\n  dedupWindow: 300ms\n').config.lorawan?.dedupWindow).toBe(300);
  });
});

describe('files that cannot be used', () => {
  it('a missing file is one issue for the whole file, code E_CONFIG', () => {
    const missing = join(tmp, 'nope', 'devices.yaml');
    const err = errorOf(() => loadConfig(missing));
    expect(err.code).toBe('E_CONFIG');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(err.issues).toEqual([{ file: missing, line: 0, col: 0, path: '', message: `file not found (looked for ${missing})` }]);
    expect(err.message).toBe(`${missing}: file not found (looked for ${missing})`);
  });

  it('a directory is not a file', () => {
    expect(issuesOf(() => loadConfig(tmp)).map((i) => i.message)).toEqual(['expected a YAML file, got a directory']);
  });

  it('a file of only comments is empty; a scalar is not a mapping', () => {
    expect(issuesOf(() => parse('# nothing here\n')).map((i) => i.message)).toEqual(['the file is empty; expected a mapping with at least a "gateway" section']);
    expect(issuesOf(() => parse('\n\ngw-1\n')).map((i) => [i.line, i.col, i.message])).toEqual([
      [3, 1, 'expected a mapping of sections (gateway, storage, buses, devices, …), got "gw-1"'],
    ]);
  });

  it('a duplicate key does not hide the other issues of the file', () => {
    const text = 'gateway:\n  id: a\n  id: b\nstorage:\n  durability: x\n';
    expect(formatIssues(issuesOf(() => parse(text)))).toBe(
      ['devices.yaml:3:3 gateway.id: duplicate key "id" (first written at line 2)', 'devices.yaml:5:15 storage.durability: expected one of full, normal, got "x"'].join('\n'),
    );
  });

  it('positions count lines the same with CRLF line ends and a byte-order mark', () => {
    const text = '\uFEFFgateway:\r\n  id: gw\r\nstorage:\r\n  durability: fast\r\n';
    expect(issuesOf(() => parse(text)).map((i) => [i.line, i.col, i.path])).toEqual([[4, 15, 'storage.durability']]);
  });

  it('an alias bomb is refused before anything is expanded, at the alias that would pass the limit', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const started = Date.now();
    const issues = issuesOf(() => parse(lines.join('\n')));
    // a3 stands for 11,111 values: the eighth *a3 in a4 (line 5) takes the document past 100,000
    expect(issues.map((i) => [i.line, i.col, i.message])).toEqual([[5, 45, 'alias "*a3" would expand the document to more than 100000 values (aliases of aliases); refused']]);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('redactConfig', () => {
  it('replaces every secret and leaves the rest and the original alone', () => {
    const { config } = loadConfig(join(FIXTURES, 'good-full.yaml'), { env: FULL_ENV });
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    for (const secret of [...Object.values(FULL_ENV).filter((v) => v !== '1884'), '000102030405060708090A0B0C0D0E0F', '0123456789abcdef0123', 'scrypt$1024$8$1$fC4V20fwkZ8AKfIePCW_ew$f88Eg-I5kPRhEsnjy3k93HRwAnMHWjjwSFiI3G8Wj4I', '${NOT_A_VARIABLE}']) {
      expect(text).not.toContain(secret);
    }
    expect(redacted.broker.users).toEqual([
      { username: 'tech', password: '[redacted]', role: 'technician' },
      { username: 'viewer', passwordHash: '[redacted]', role: 'viewer' },
    ]);
    expect(redacted.api.tokens[0]).toEqual({ name: 'central', token: '[redacted]', role: 'central' });
    expect(redacted.lorawan!.devices[0]).toMatchObject({ devAddr: '26011BDA', nwkSKey: '[redacted]', appSKey: '[redacted]' });
    expect(redacted.nodeRed.credentialSecret).toBe('[redacted]');
    expect(redacted.sync).toMatchObject({ password: '[redacted]', key: '[redacted]', ca: join(FIXTURES, 'certs/ca.pem') });
    expect(redacted.broker.tls!.key).toBe('/etc/streetbox/broker.key');
    expect(config.broker.users[0]!.password).toBe(FULL_ENV.TEST_TECH_PASSWORD);
  });
});
