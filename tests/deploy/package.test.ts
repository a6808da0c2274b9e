/**
 * The Debian package (`npm run package`, scripts/package.ts): built uncompressed (the real build
 * compresses with xz; the contents are the same), read with dpkg-deb, and installed into a
 * throw-away root with `dpkg --root --force-script-chrootless`: the maintainer scripts run there
 * for real, with DPKG_ROOT set (useradd --prefix, deb-systemd-helper), through install, upgrade,
 * remove and purge. Assumes `npm run build` has made dist/ (npm test does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, readSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PAGE_FILES } from '../../edge/api/routes/page.js';
import { packageRoot } from '../../edge/assets.js';
import { loadConfig } from '../../edge/config/index.js';
import { DEFAULT_FLOW_FILE, NODES_DIR } from '../../edge/flows/settings.js';
import { DEMO_CONFIG, demoSecrets, findDemoSecrets } from '../../edge/ops/demoSecrets.js';
import { BUILTIN_PROFILE_FILES } from '../../edge/profiles/index.js';
import { buildPackage, PREFIX, type BuiltPackage } from '../../scripts/package.js';
import { ROOT } from '../support/cli.js';
import { memoryTmp, tempDir, type TempDir } from '../helpers/tmp.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const NODE = '/usr/bin/node'; // what the unit and /usr/bin/streetbox's `env node` run on a gateway
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IS_ROOT = process.getuid?.() === 0;

let out: TempDir;
let built: BuiltPackage;
/** the paths of the package's files, without the leading "./", and the targets of its links */
let contents: Map<string, string | null>;

function run(cmd: string, args: string[]): string {
  // dpkg needs ldconfig and start-stop-daemon on the PATH; --contents lists some 10,000 files
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env['PATH'] ?? ''}` } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.error?.message}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  return r.stdout + r.stderr;
}

describe.skipIf(!has('dpkg-deb'))('npm run package: the Debian package', () => {
  beforeAll(() => {
    out = tempDir('streetbox-deb-', memoryTmp());
    built = buildPackage({ outDir: out.path, compression: 'none' });
    contents = new Map();
    for (const line of run('dpkg-deb', ['--contents', built.deb]).split('\n')) {
      const m = /^\S+ \S+\s+\d+ \S+ \S+ \.\/(\S*?)\/?(?: -> (\S+))?$/.exec(line);
      if (m && m[1]) contents.set(m[1], m[2] ?? null);
    }
  });
  afterAll(() => out?.remove());

  it('is streetbox_<version>_<arch>.deb, and its control file says what it needs and how large it is', () => {
    const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    expect(relative(out.path, built.deb)).toBe(`streetbox_${VERSION}_${arch}.deb`);
    const info = run('dpkg-deb', ['--info', built.deb]);
    const field = (name: string): string | undefined => new RegExp(`^ ${name}: (.*)$`, 'm').exec(info)?.[1];
    expect(field('Package')).toBe('streetbox');
    expect(field('Version')).toBe(VERSION);
    expect(field('Architecture')).toBe(arch);
    expect(field('Section')).toBe('net');
    expect(field('Priority')).toBe('optional');
    expect(field('Maintainer')).toMatch(/^.+ <[^@\s]+@[^@\s]+>$/);
    expect(field('Description')).toMatch(/street-cabinet/);
    // Node 20.19 is the oldest the engines field takes; useradd is passwd's
    const depends = field('Depends')!.split(', ');
    expect(depends).toEqual(expect.arrayContaining(['nodejs (>= 20.19)', 'passwd']));
    if (has('dpkg-shlibdeps')) expect(depends.some((d) => d.startsWith('libc6 '))).toBe(true); // the native modules' libraries
    expect(Number(field('Installed-Size'))).toBe(built.installedKiB);
    expect(built.installedKiB).toBeGreaterThan(10 * 1024);
    // the maintainer scripts, executable; env the one conffile (devices.yaml is generated, never shipped)
    for (const script of ['postinst', 'prerm', 'postrm']) expect(info).toMatch(new RegExp(`\\d+ lines\\s+\\*\\s+${script}\\s+#!/bin/sh`));
    expect(run('dpkg-deb', ['--info', built.deb, 'conffiles']).trim()).toBe('/etc/streetbox/env');
  });

  it('holds the bundle, what it reads by path, the unit, the command and native modules, and no dev dependency, test or TypeScript source', () => {
    const app = PREFIX.slice(1);
    for (const file of ['dist/streetbox.mjs', 'dist/streetbox.mjs.map', 'bin/streetbox.js', 'package.json', 'deploy/setup.sh']) expect(contents.has(`${app}/${file}`), file).toBe(true);
    // every file the runtime reads from the package directory (edge/assets.ts)
    const assets = [...Object.values(PAGE_FILES).map((p) => p.file), ...BUILTIN_PROFILE_FILES, ...[DEFAULT_FLOW_FILE, DEMO_CONFIG, join(NODES_DIR, 'streetbox-command.js')].map((p) => relative(packageRoot, p))];
    for (const file of assets) expect(contents.has(`${app}/${file}`), file).toBe(true);
    expect(contents.get('usr/bin/streetbox')).toBe('../lib/streetbox/bin/streetbox.js');
    expect(contents.has('lib/systemd/system/streetbox.service')).toBe(true);
    expect(contents.has('etc/streetbox/env')).toBe(true);
    expect(contents.has('etc/streetbox/devices.yaml')).toBe(false);
    expect(contents.has('usr/share/doc/streetbox/copyright')).toBe(true);
    // the native modules, built or prebuilt for this machine, and no other platform's
    expect(contents.has(`${app}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`)).toBe(true);
    const serial = [...contents.keys()].filter((p) => p.startsWith(`${app}/node_modules/@serialport/bindings-cpp/prebuilds/`) && p.endsWith('.node'));
    expect(serial.length).toBeGreaterThan(0);
    for (const p of serial) expect(p).toContain(`/prebuilds/${process.platform}-${process.arch}/`);

    const paths = [...contents.keys()];
    const shippedPackages = new Set(paths.flatMap((p) => /^usr\/lib\/streetbox\/(.*node_modules\/(?:@[^/]+\/)?[^/]+)\/package\.json$/.exec(p)?.[1] ?? []));
    for (const name of ['node-red', 'mqtt', 'better-sqlite3', '@serialport/bindings-cpp', 'uplot', 'leaflet']) expect(shippedPackages.has(`node_modules/${name}`), name).toBe(true);
    // no dev dependency: every package shipped is one the lockfile installs without the dev ones
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
    const dev = [...shippedPackages].filter((p) => !lock.packages[p] || lock.packages[p].dev || lock.packages[p].devOptional);
    expect(dev).toEqual([]);
    for (const name of ['vitest', 'typescript', 'esbuild', 'tsx', 'eslint', 'modbus-serial', 'playwright-core']) expect(shippedPackages.has(`node_modules/${name}`), name).toBe(false);
    // no tests, no sources: the gateway runs the bundle
    expect(paths.filter((p) => p.startsWith(`${app}/tests/`) || p.startsWith(`${app}/scripts/`) || /^usr\/lib\/streetbox\/(edge|cloud-sync)\/.*\.ts$/.test(p))).toEqual([]);
    // nor what the runtime never reads from the dependencies: native build sources and intermediates,
    // source maps, type declarations, npm but its package.json (palette installs are off)
    expect(paths.filter((p) => /node_modules\/better-sqlite3\/(deps|src)\/|\/obj(\.target)?\/|node_modules\/.*\.map$|node_modules\/@types\//.test(p))).toEqual([]);
    expect(paths.filter((p) => p.startsWith(`${app}/node_modules/npm/`) && !/\/npm\/(package\.json|LICENSE)$/.test(p))).toEqual([]);
  });

  it.skipIf(!has('lintian'))(`lintian finds no error${has('lintian') ? '' : ' (skipped: lintian is not installed here)'}`, () => {
    const r = spawnSync('lintian', ['--no-tag-display-limit', built.deb], { encoding: 'utf8' });
    expect(r.stdout.split('\n').filter((l) => l.startsWith('E: '))).toEqual([]);
  });

  // dpkg --root installs need root: the scripts give files to the streetbox user and create it with useradd --prefix
  describe.skipIf(!IS_ROOT || !existsSync(NODE))(`installed into a throw-away root${IS_ROOT ? '' : ' (skipped: needs root for useradd --prefix and chown)'}`, () => {
    let target: TempDir;
    const at = (p: string): string => join(target.path, p);
    const dpkg = (...args: string[]): string => run('dpkg', [`--root=${target.path}`, '--force-script-chrootless', '--force-depends', '--force-unsafe-io', ...args]);
    const credential = (name: string, root = target.path): string => new RegExp(`^${name}=(\\S+)$`, 'm').exec(readFileSync(join(root, 'etc/streetbox/credentials'), 'utf8'))?.[1] ?? '';
    const passwd = (): string => readFileSync(at('etc/passwd'), 'utf8');
    const idOf = (file: 'passwd' | 'group', name: string): number => Number(new RegExp(`^${name}:[^:]*:(\\d+):`, 'm').exec(readFileSync(at(`etc/${file}`), 'utf8'))?.[1]);
    let installOutput: string;

    beforeAll(() => {
      target = emptyRoot('streetbox-root-');
      installOutput = dpkg('--install', built.deb);
    });
    afterAll(() => target?.remove());

    it('makes the streetbox user in dialout, /var/lib/streetbox its own, devices.yaml with fresh secrets (mode 0600), credentials for root alone, and enables the unit', () => {
      const uid = idOf('passwd', 'streetbox');
      const gid = idOf('group', 'streetbox');
      expect(uid).toBeGreaterThan(0);
      expect(passwd()).toMatch(/^streetbox:x:\d+:\d+::\/var\/lib\/streetbox:\/usr\/sbin\/nologin$/m);
      expect(readFileSync(at('etc/group'), 'utf8')).toMatch(/^dialout:x:20:streetbox$/m);
      const config = at('etc/streetbox/devices.yaml');
      const mode = (p: string): [number, number, number] => [statSync(at(p)).mode & 0o777, statSync(at(p)).uid, statSync(at(p)).gid];
      expect(mode('etc/streetbox/devices.yaml')).toEqual([0o600, uid, gid]);
      expect(mode('etc/streetbox/credentials')).toEqual([0o600, 0, 0]);
      expect(mode('etc/streetbox/env')).toEqual([0o640, 0, gid]);
      expect(mode('etc/streetbox')).toEqual([0o770, 0, gid]);
      expect(mode('var/lib/streetbox')).toEqual([0o750, uid, gid]);
      // the paths in it are the gateway's, not the throw-away root's
      const loaded = loadConfig(config).config;
      expect(loaded.storage.path).toBe('/var/lib/streetbox/streetbox.db');
      expect(loaded.api.tokens[0]!.token).toBe(credential('STREETBOX_TOKEN'));
      const text = readFileSync(config, 'utf8');
      for (const secret of demoSecrets().keys()) expect(text.toLowerCase()).not.toContain(secret);
      expect(findDemoSecrets(loaded, demoSecrets())).toEqual([]);
      expect(installOutput).toContain('/etc/streetbox/credentials (root only)');
      expect(installOutput).not.toContain(credential('STREETBOX_TOKEN'));
      // the packaged unit: deploy/streetbox.service with the package's paths, enabled (deb-systemd-helper, in the root)
      const unit = readFileSync(at('lib/systemd/system/streetbox.service'), 'utf8');
      expect(unit).toBe(readFileSync(join(ROOT, 'deploy/streetbox.service'), 'utf8').replaceAll('/opt/streetbox', PREFIX));
      expect(unit).toContain(`ExecStart=/usr/bin/node ${PREFIX}/bin/streetbox.js start --config /etc/streetbox/devices.yaml`);
      if (has('deb-systemd-helper')) expect(readlinkSync(at('etc/systemd/system/multi-user.target.wants/streetbox.service'))).toBe('/lib/systemd/system/streetbox.service');
      if (has('systemd-analyze')) {
        const r = spawnSync('systemd-analyze', ['verify', at('lib/systemd/system/streetbox.service')], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr.split('\n').filter((l) => l.includes('streetbox.service'))).toEqual([]);
      }
    });

    it("another gateway's first install makes other secrets", () => {
      // the installed postinst, in a second root that shares the installed files
      const other = emptyRoot('streetbox-root2-');
      try {
        mkdirSync(join(other.path, 'usr/lib'), { recursive: true });
        symlinkSync(at(PREFIX.slice(1)), join(other.path, PREFIX.slice(1)));
        run('env', [`DPKG_ROOT=${other.path}`, 'sh', at('var/lib/dpkg/info/streetbox.postinst'), 'configure']);
        expect(credential('STREETBOX_TOKEN', other.path)).toMatch(/\S{20,}/);
        expect(credential('STREETBOX_TOKEN', other.path)).not.toBe(credential('STREETBOX_TOKEN'));
        expect(credential('BROKER_TECHNICIAN_PASSWORD', other.path)).not.toBe(credential('BROKER_TECHNICIAN_PASSWORD'));
      } finally {
        other.remove();
      }
    });

    it('runs: the installed streetbox validates the installed devices.yaml and prints the package version; its native modules load', () => {
      const cli = at('usr/bin/streetbox');
      expect(run(NODE, [cli, 'validate', at('etc/streetbox/devices.yaml')])).toMatch(/: ok/);
      expect(run(NODE, [cli, '--version']).trim()).toBe(VERSION);
      // what the bundle leaves to node_modules, as the gateway loads it (better-sqlite3 opens a database, Node-RED's bcryptjs hashes)
      const probe = `
        const { createRequire } = require('node:module');
        const req = createRequire(${JSON.stringify(at(`${PREFIX.slice(1)}/`))});
        const Database = req('better-sqlite3');
        const db = new Database(':memory:');
        if (db.prepare('select 1 + 1 as two').get().two !== 2) throw new Error('better-sqlite3');
        if (typeof req('@serialport/bindings-cpp').autoDetect().list !== 'function') throw new Error('serialport');
        const fromNodeRed = createRequire(req.resolve('node-red'));
        fromNodeRed('bcryptjs');
        fromNodeRed('@node-red/registry'); // resolves npm/package.json, all the package keeps of npm
        req.resolve('mqtt');
        console.log('loaded');`;
      expect(run(NODE, ['-e', probe]).trim()).toBe('loaded');
      // better-sqlite3's binary is for the machine node runs on (ELF e_machine)
      expect(elfMachine(at(`${PREFIX.slice(1)}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`))).toBe(elfMachine(NODE));
    });

    it('an upgrade keeps an edited devices.yaml and env; remove keeps configuration, data and user; purge removes them', () => {
      const token = credential('STREETBOX_TOKEN');
      appendFileSync(at('etc/streetbox/devices.yaml'), '# edited by the technician\n');
      appendFileSync(at('etc/streetbox/env'), 'SYNC_PASSWORD=edited\n');
      writeFileSync(at('var/lib/streetbox/streetbox.db'), 'data');
      const edited = readFileSync(at('etc/streetbox/devices.yaml'), 'utf8');

      expect(dpkg('--install', built.deb)).toContain('kept /etc/streetbox/devices.yaml');
      expect(readFileSync(at('etc/streetbox/devices.yaml'), 'utf8')).toBe(edited);
      expect(readFileSync(at('etc/streetbox/env'), 'utf8')).toContain('SYNC_PASSWORD=edited');
      expect(credential('STREETBOX_TOKEN')).toBe(token);

      dpkg('--remove', 'streetbox');
      expect(existsSync(at(PREFIX.slice(1)))).toBe(false);
      expect(existsSync(at('lib/systemd/system/streetbox.service'))).toBe(false);
      expect(readFileSync(at('etc/streetbox/devices.yaml'), 'utf8')).toBe(edited);
      expect(readFileSync(at('etc/streetbox/env'), 'utf8')).toContain('SYNC_PASSWORD=edited');
      expect(readFileSync(at('var/lib/streetbox/streetbox.db'), 'utf8')).toBe('data');
      expect(passwd()).toMatch(/^streetbox:/m);

      dpkg('--purge', 'streetbox');
      expect(existsSync(at('etc/streetbox'))).toBe(false);
      expect(existsSync(at('var/lib/streetbox'))).toBe(false);
      expect(passwd()).not.toMatch(/^streetbox:/m);
      expect(readFileSync(at('etc/group'), 'utf8')).not.toMatch(/streetbox/);
      expect(lstatSync(at('etc/systemd/system/multi-user.target.wants/streetbox.service'), { throwIfNoEntry: false })).toBeUndefined();
    });
  });
});

/** A root as dpkg and useradd need one: the admin directory, the users and groups root and dialout. */
function emptyRoot(prefix: string): TempDir {
  const dir = tempDir(prefix, memoryTmp());
  for (const sub of ['etc', 'var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/log']) mkdirSync(dir.file(sub), { recursive: true });
  for (const file of ['var/lib/dpkg/status', 'var/lib/dpkg/available']) writeFileSync(dir.file(file), '');
  writeFileSync(dir.file('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(dir.file('etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(dir.file('etc/group'), 'root:x:0:\ndialout:x:20:\n');
  writeFileSync(dir.file('etc/gshadow'), 'root:*::\ndialout:*::\n', { mode: 0o640 });
  return dir;
}

/** The ELF class, byte order and machine (e_machine, bytes 18-19) of a binary: the architecture it runs on. */
function elfMachine(file: string): string {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return `${header[4]}/${header[5]}/${header.subarray(18, 20).toString('hex')}`;
}
