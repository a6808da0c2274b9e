// `streetbox config history | show | diff | sign` and `streetbox reload` as a technician runs
// them (the CLI spawned from the sources, tests/support/cli.ts), offline against a data file
// filled with ConfigVersions while a store keeps it open for writing, as a running gateway
// does: the history newest first in the gateway's zone with the running version marked, texts
// and diffs with every secret as ***, a signed message for down/config whose signature
// verifies over the documented bytes, and the exit codes of bad input (2) and of a reload with
// no gateway running (1). The online commands (apply, confirm, rollback, a reload that
// reaches a gateway) are covered by the gateway's integration tests. Each run is a process of
// its own (~1.3 s of CPU to start): the runs of a test that do not depend on each other go at once.
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { ConfigVersions } from '../../edge/reconfig/versions.js';
import { openStore, type Store } from '../../edge/store/index.js';
import { runCli, tempGateway } from '../support/cli.js';

/** piped, and no colour forced from the test runner's own environment */
const PIPED = { FORCE_COLOR: '', NO_COLOR: '', STREETBOX_TOKEN: '' };
const TOKEN = 'cfg-technician-token-secret-0001';
const PASSWORD = 'broker-password-secret-0002';
const WINTER = Date.UTC(2026, 0, 15, 12, 0, 0); // 13:00 in Amsterdam, +01:00
const SUMMER = Date.UTC(2026, 6, 15, 12, 0, 0); // 14:00 in Amsterdam, +02:00

const V1 = `gateway: { id: cfg-gw, timezone: Europe/Amsterdam }
storage: { path: data/gw.db }
broker:
  users:
    - { username: node-red, password: ${PASSWORD} }
api:
  host: 127.0.0.1
  port: 9
  tokens:
    - { name: tech, token: ${TOKEN}, role: technician }
`;
const V2 = `${V1}schedules: []
`;
const V3 = V2.replace('port: 9', 'port: 10');

let g: ReturnType<typeof tempGateway>;
let store: Store;
let versions: ConfigVersions;

beforeAll(() => {
  g = tempGateway(V1);
  mkdirSync(join(g.dir, 'data'));
  // the store stays open for writing through the tests: the CLI reads beside it, as beside a running gateway
  store = openStore({ path: join(g.dir, 'data/gw.db'), maxBytes: 50e6, durability: 'normal', log: silentLogger() });
  versions = ConfigVersions.open(store)!;
  const v1 = versions.add({ id: 'start-1', content: V1, source: 'file', principal: 'file', at: WINTER, baseVersion: null, stage: 'staged' });
  versions.transition(v1.version, 'applied', { at: WINTER, running: true, components: [] });
  versions.transition(v1.version, 'confirmed', { at: WINTER, reason: 'started from devices.yaml' });
  versions.add({
    id: 'bad-2',
    content: `${V1}bogus: 1\n`,
    source: 'technician',
    principal: 'tech',
    at: SUMMER,
    baseVersion: 1,
    stage: 'rejected',
    reason: 'the configuration is not valid (1 problem)',
    errors: [{ line: 11, col: 1, path: 'bogus', message: 'unknown section "bogus"' }],
  });
  const v3 = versions.add({ id: 'central-3', content: V2, source: 'central', principal: 'upstream', at: SUMMER + 60_000, baseVersion: 1, stage: 'staged' });
  versions.transition(v3.version, 'applied', { at: SUMMER + 61_000, running: true, components: ['control schedules'] });
  versions.transition(v3.version, 'confirmed', { at: SUMMER + 62_000 });
});

afterAll(() => {
  store?.close();
  g?.cleanup();
});

const cli = (...args: string[]) => runCli(args, { env: PIPED });

describe('streetbox config history', () => {
  it('lists the versions newest first, in the gateway zone, the running one marked', async () => {
    const r = await cli('config', 'history', '-c', g.config);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ {2}VERSION +STAGE +SOURCE +PRINCIPAL +WHEN +SHA256 +REASON$/);
    const sha = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 12);
    expect(lines[1]).toMatch(new RegExp(`^\\* 3 +confirmed +central +upstream +2026-07-15T14:01:00\\+02:00 +${sha(V2)}$`));
    expect(lines[2]).toMatch(new RegExp(`^ {2}2 +rejected +technician +tech +2026-07-15T14:00:00\\+02:00 +${sha(`${V1}bogus: 1\n`)} +the configuration is not valid \\(1 problem\\)$`));
    expect(lines[3]).toMatch(new RegExp(`^ {2}1 +confirmed +file +file +2026-01-15T13:00:00\\+01:00 +${sha(V1)} +started from devices.yaml$`));
    expect(lines[4]).toBe('* runs now');
    expect(r.stdout).not.toMatch(/\x1b\[/);
  });

  it('--limit and --json; a version recorded meanwhile shows at once (read beside the writer)', async () => {
    const v4 = versions.add({ id: 'tech-4', content: V3, source: 'technician', principal: 'tech', at: SUMMER + 120_000, baseVersion: 3, stage: 'staged' });
    versions.transition(v4.version, 'applied', { at: SUMMER + 121_000, running: true, components: ['api restart'] });
    versions.transition(v4.version, 'rolledBack', { at: SUMMER + 122_000, reason: 'health probe: api not running', code: 'E_CONFIG_PROBE' });
    versions.setRunning(3, SUMMER + 122_000);
    const [r, j] = await Promise.all([cli('config', 'history', '-c', g.config, '--limit', '2'), cli('config', 'history', '-c', g.config, '--json')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4); // header, two rows, the legend
    expect(lines[1]).toMatch(/^ {2}4 +rolled back +technician +tech +2026-07-15T14:02:00\+02:00 +\w{12} +health probe: api not running \(E_CONFIG_PROBE\)$/);
    expect(lines[2]).toMatch(/^\* 3 +confirmed/);
    const json = JSON.parse(j.stdout) as { version: number; running: boolean; at: number; code?: string }[];
    expect(json.map((v) => v.version)).toEqual([4, 3, 2, 1]);
    expect(json.find((v) => v.running)?.version).toBe(3);
    expect(json[0]).toMatchObject({ at: SUMMER + 120_000, code: 'E_CONFIG_PROBE' }); // machines keep epoch ms
  });

  it('a data file the gateway never wrote versions to: none; no data file at all: exit 2', async () => {
    const empty = tempGateway('gateway: { id: fresh }\nstorage: { path: fresh.db }\n');
    const none = tempGateway('gateway: { id: never }\nstorage: { path: never.db }\n');
    try {
      openStore({ path: join(empty.dir, 'fresh.db'), maxBytes: 10e6, durability: 'normal', log: silentLogger() }).close();
      const [r, n] = await Promise.all([cli('config', 'history', '-c', empty.config), cli('config', 'history', '-c', none.config)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('no configuration versions recorded yet\n');
      expect(n.code).toBe(2);
      expect(n.stderr).toMatch(/no data file at .*never\.db/);
    } finally {
      none.cleanup();
      empty.cleanup();
    }
  });

  it('a devices.yaml that does not validate still names its data file', async () => {
    const broken = join(g.dir, 'broken.yaml');
    writeFileSync(broken, 'gateway: { id: cfg-gw, timezone: Europe/Amsterdam }\nstorage: { path: data/gw.db }\ndevices: 12\n');
    const r = await cli('config', 'history', '-c', broken);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\* 3 +confirmed/m);
  });
});

describe('streetbox config show and diff', () => {
  it('show prints a version with every secret as ***', async () => {
    const r = await cli('config', 'show', '1', '-c', g.config);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('- { username: node-red, password: *** }');
    expect(r.stdout).toContain('- { name: tech, token: ***, role: technician }');
    expect(r.stdout).toContain('gateway: { id: cfg-gw, timezone: Europe/Amsterdam }');
    for (const secret of [TOKEN, PASSWORD]) expect(r.stdout + r.stderr).not.toContain(secret);
  });

  it('show --secrets prints the text exactly as stored (to put it back by hand)', async () => {
    const r = await cli('config', 'show', '1', '--secrets', '-c', g.config);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(TOKEN);
    expect(r.stdout).not.toContain('***');
  });

  it('diff prints a unified diff of the redacted texts', async () => {
    const [r, same] = await Promise.all([cli('config', 'diff', '1', '4', '-c', g.config), cli('config', 'diff', '3', '3', '-c', g.config)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^--- version 1\n\+\+\+ version 4\n@@ /);
    expect(r.stdout).toContain('\n-  port: 9\n+  port: 10\n');
    expect(r.stdout).toContain('\n+schedules: []\n');
    expect(r.stdout).toContain('token: ***');
    for (const secret of [TOKEN, PASSWORD]) expect(r.stdout).not.toContain(secret);
    expect(same.code).toBe(0);
    expect(same.stdout).toBe('');
    expect(same.stderr).toContain('versions 3 and 3 have the same text');
  });

  it('an unknown version, or one that is not a number: exit 2', async () => {
    const [unknown, diff, word] = await Promise.all([
      cli('config', 'show', '99', '-c', g.config),
      cli('config', 'diff', '1', '99', '-c', g.config),
      cli('config', 'show', 'latest', '-c', g.config),
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no version 99 in the data file');
    expect(diff.code).toBe(2);
    expect(diff.stdout).toBe('');
    expect(word.code).toBe(2);
    expect(word.stderr).toContain('"version" must be an integer >= 1, got "latest"');
  });
});

describe('streetbox config sign', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');

  /** The bytes the gateway verifies, written out here from the documented format, not taken from the code under test. */
  const message = (gw: string, id: string, base: string, force: string, content: string) =>
    Buffer.from(['streetbox-config-v1', gw, id, base, force, createHash('sha256').update(content, 'utf8').digest('hex')].join('\n'), 'utf8');

  it("prints central's down/config message, signed for the gateway of devices.yaml", async () => {
    const key = join(g.dir, 'central.pem');
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const file = join(g.dir, 'next.yaml');
    writeFileSync(file, V3);
    const [r, forced] = await Promise.all([
      cli('config', 'sign', file, '--key', key, '--id', 'chg-2026-07-15', '--base', '3', '-c', g.config),
      cli('config', 'sign', file, '--key', key, '--id', 'chg-2', '--force', '--gateway', 'gw-elsewhere'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.endsWith('}\n')).toBe(true);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1); // one line: ready for mosquitto_pub -s
    const m = JSON.parse(r.stdout) as { id: string; baseVersion: number | null; force?: boolean; content: string; signature: string };
    expect(Object.keys(m).sort()).toEqual(['baseVersion', 'content', 'id', 'signature']);
    expect(m).toMatchObject({ id: 'chg-2026-07-15', baseVersion: 3, content: V3 });
    expect(verify(null, message('cfg-gw', 'chg-2026-07-15', '3', '0', V3), publicKey, Buffer.from(m.signature, 'base64'))).toBe(true);
    // the signature covers the gateway, the base and the force flag
    expect(verify(null, message('other-gw', 'chg-2026-07-15', '3', '0', V3), publicKey, Buffer.from(m.signature, 'base64'))).toBe(false);
    expect(verify(null, message('cfg-gw', 'chg-2026-07-15', '3', '1', V3), publicKey, Buffer.from(m.signature, 'base64'))).toBe(false);

    expect(forced.code, forced.stderr).toBe(0);
    const f = JSON.parse(forced.stdout) as { baseVersion: number | null; force?: boolean; signature: string };
    expect(f).toMatchObject({ baseVersion: null, force: true });
    expect(verify(null, message('gw-elsewhere', 'chg-2', '-', '1', V3), publicKey, Buffer.from(f.signature, 'base64'))).toBe(true);
  });

  it('a key that is not an ed25519 private key, or no key file: exit 2, no key text shown', async () => {
    const file = join(g.dir, 'next.yaml');
    writeFileSync(file, V3);
    const pub = join(g.dir, 'central.pub.pem');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const [r, missing] = await Promise.all([
      cli('config', 'sign', file, '--key', pub, '--id', 'x1', '-c', g.config),
      cli('config', 'sign', file, '--key', join(g.dir, 'nope.pem'), '--id', 'x1', '-c', g.config),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a PEM private key');
    expect(r.stdout).toBe('');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the private key .*nope\.pem: ENOENT/);
  });
});

describe('the online commands without a gateway', () => {
  it('reload with no gateway running: exit 1, saying so', async () => {
    const r = await cli('reload', '-c', g.config, '--timeout', '5s');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no gateway runs on .*gw\.db \(no live pid in .*gw\.db\.pid\)/);
  });

  it('apply without a token: exit 2; with the gateway unreachable: exit 1', async () => {
    const file = join(g.dir, 'next.yaml');
    writeFileSync(file, V3);
    const [unbased, none, away] = await Promise.all([
      cli('config', 'apply', file, '-c', g.config, '--token', TOKEN),
      cli('config', 'apply', file, '-c', g.config, '--base', '2'),
      cli('config', 'apply', file, '-c', g.config, '--token', TOKEN, '--base', '2'),
    ]);
    // a change must say what it was made from (no silent lost update), before anything else
    expect(unbased.code).toBe(2);
    expect(unbased.stderr).toContain('--base <version>');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no API token: give --token or set STREETBOX_TOKEN');
    // api.port 9 (discard) on the loopback: nothing listens
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/gateway unreachable at http:\/\/127\.0\.0\.1:9/);
    expect(away.stderr + away.stdout).not.toContain(TOKEN);
  });
});
