// `npm run package`: streetbox as a Debian package, build/streetbox_<version>_<arch>.deb, made by
// dpkg-deb from what `npm run build` made and what node_modules holds (nothing is fetched, so the
// native modules are this machine's: build on the gateway's architecture):
//
//   /usr/lib/streetbox/               package.json (its runtime fields), bin/, dist/ (the bundle and
//                                     its map), the files the runtime reads by path (edge/ but its
//                                     TypeScript and notes: profiles, default flows, Node-RED nodes,
//                                     the page; the demo devices.yaml that `doctor` compares
//                                     against), devices.schema.json, README.md, deploy/setup.sh
//   /usr/lib/streetbox/node_modules/  what the bundle leaves outside (GATEWAY_BUILD.external) and
//                                     reads files of (the page's uPlot, Leaflet), with every package
//                                     they need; without docs, tests, source maps, type packages,
//                                     native build sources and other platforms' binaries, and npm
//                                     as its package.json alone (MANIFEST_ONLY)
//   /usr/bin/streetbox                -> ../lib/streetbox/bin/streetbox.js
//   /lib/systemd/system/streetbox.service   deploy/streetbox.service, /opt/streetbox read as /usr/lib/streetbox
//   /etc/streetbox/env                deploy/env.example: the one conffile (devices.yaml is generated
//                                     by the postinst, never shipped)
//
// and the maintainer scripts of deploy/debian/ (README "Deployment on a gateway").
//
//   npm run package -- [--out build] [--compress xz|gzip|none] [--level 0-9]
//
// The default is dpkg-deb's, xz at level 6: 13.7 MB for 0.1.0 on amd64, against 12.8 MB with
// --level 9 for half as much CPU again, and 20.9 MB with --compress gzip --level 9 for a sixth
// of it (about 6 s of CPU instead of 55: the quick build on a small ARM board). Tests build with
// --compress none (tests/deploy/package.test.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { GATEWAY_BUILD } from './bundle.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the package installs streetbox; the unit, /usr/bin/streetbox and the README say the same. */
export const PREFIX = '/usr/lib/streetbox';
/** The one path deploy/streetbox.service names for a checkout (deploy/install.sh). */
const CHECKOUT_PREFIX = '/opt/streetbox';

export type Compression = 'xz' | 'gzip' | 'none';

export interface PackageOptions {
  /** where the .deb goes (created if need be) */
  outDir: string;
  compression: Compression;
  /** the compressor's level; undefined: its default */
  level?: number | undefined;
  /** the checkout to package (default: this one) */
  from?: string;
}

export interface BuiltPackage {
  deb: string;
  version: string;
  arch: string;
  /** the control file's Installed-Size, KiB */
  installedKiB: number;
  /** the .deb's size in bytes */
  bytes: number;
  /** how long the build took, ms */
  ms: number;
}

/** Builds the .deb; see the top of this file for what goes in. */
export function buildPackage(opts: PackageOptions): BuiltPackage {
  const started = Date.now();
  const from = opts.from ?? root;
  const pkg = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as Record<string, unknown> & { version: string; description: string };
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  if (!existsSync(join(from, 'dist/streetbox.mjs'))) throw new Error(`${from}/dist/streetbox.mjs is missing: run npm run build first`);

  mkdirSync(opts.outDir, { recursive: true });
  const stage = mkdtempSync(join(opts.outDir, '.stage-'));
  try {
    const app = join(stage, PREFIX.slice(1));
    stageApp(from, app, pkg);
    for (const dir of runtimePackages(from, [...GATEWAY_BUILD.external, ...pathPackages(join(from, 'dist/streetbox.mjs'))])) copyPackage(dir, join(app, relative(from, dir)));
    stageSystem(from, stage);
    const installedKiB = installedSize(stage);
    stageControl(from, stage, {
      Version: pkg.version,
      Architecture: arch,
      Maintainer: maintainer(),
      'Installed-Size': String(installedKiB),
      'shlibs:Depends': shlibsDepends(app),
      Summary: pkg.description.slice(pkg.description.indexOf(':') + 1).trim(),
    });
    // whatever the umask and node_modules said: readable by all, written by root alone, executables
    // kept executable ("./" too: it is the root directory's mode); the configuration directory is
    // the service group's to write (the postinst gives it to them), env root's
    execFileSync('chmod', ['-R', 'u=rwX,go=rX', stage]);
    chmodSync(join(stage, 'etc/streetbox'), 0o770);
    chmodSync(join(stage, 'etc/streetbox/env'), 0o640);
    const deb = join(opts.outDir, `streetbox_${pkg.version}_${arch}.deb`);
    const level = opts.compression !== 'none' && opts.level !== undefined ? [`-z${opts.level}`] : [];
    execFileSync('dpkg-deb', ['--root-owner-group', `-Z${opts.compression}`, ...level, '--build', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
    return { deb, version: pkg.version, arch, installedKiB, bytes: statSync(deb).size, ms: Date.now() - started };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * The packages the bundle reads files of by path, as `node_modules/<name>/…` (the page's uPlot and
 * Leaflet: PAGE_FILES in edge/api/routes/page.ts).
 */
function pathPackages(bundle: string): string[] {
  const names = new Set<string>();
  for (const m of readFileSync(bundle, 'utf8').matchAll(/["'`]node_modules\/((?:@[\w.-]+\/)?[\w.-]+)\//g)) names.add(m[1]!);
  return [...names];
}

/** The application itself: what bin/streetbox.js runs and what it reads by path (edge/assets.ts). */
function stageApp(from: string, app: string, pkg: Record<string, unknown>): void {
  mkdirSync(app, { recursive: true });
  // the package root edge/assets.ts looks for; `type: module` makes bin/streetbox.js an ES module
  const runtimeFields = ['name', 'version', 'description', 'type', 'license', 'private', 'engines', 'bin'];
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(Object.fromEntries(runtimeFields.filter((k) => k in pkg).map((k) => [k, pkg[k]])), null, 2)}\n`);
  for (const file of ['bin/streetbox.js', 'devices.yaml', 'devices.schema.json', 'README.md', 'deploy/setup.sh']) {
    mkdirSync(dirname(join(app, file)), { recursive: true });
    copyFileSync(join(from, file), join(app, file));
  }
  cpSync(join(from, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(from, 'edge'), join(app, 'edge'), { recursive: true, filter: (src) => !/\.(ts|md)$/.test(src) });
  pruneEmptyDirs(join(app, 'edge'));
}

/** The unit, the command on the PATH, the conffile and the documentation. */
function stageSystem(from: string, stage: string): void {
  const unit = readFileSync(join(from, 'deploy/streetbox.service'), 'utf8').replaceAll(CHECKOUT_PREFIX, PREFIX);
  put(stage, 'lib/systemd/system/streetbox.service', unit);
  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  symlinkSync(relative('/usr/bin', `${PREFIX}/bin/streetbox.js`), join(stage, 'usr/bin/streetbox'));
  put(stage, 'etc/streetbox/env', readFileSync(join(from, 'deploy/env.example'), 'utf8'));
  put(stage, 'usr/share/doc/streetbox/copyright', readFileSync(join(from, 'deploy/debian/copyright'), 'utf8'));
}

/** DEBIAN/: the control file from its template, the conffiles and the maintainer scripts. */
function stageControl(from: string, stage: string, fields: Record<string, string>): void {
  const debian = join(from, 'deploy/debian');
  const control = readFileSync(join(debian, 'control'), 'utf8')
    .replace(', ${shlibs:Depends}', fields['shlibs:Depends'] ? ', ${shlibs:Depends}' : '')
    .replace(/^ \$\{Summary\}\.$/m, wrap(`${fields['Summary']!}.`))
    .replace(/\$\{([A-Za-z:-]+)\}/g, (all, name: string) => {
      const value = fields[name];
      if (value === undefined) throw new Error(`deploy/debian/control: no value for ${all}`);
      return value;
    });
  put(stage, 'DEBIAN/control', control);
  put(stage, 'DEBIAN/conffiles', readFileSync(join(debian, 'conffiles'), 'utf8'));
  for (const script of ['postinst', 'prerm', 'postrm']) put(stage, `DEBIAN/${script}`, readFileSync(join(debian, script), 'utf8'), 0o755);
}

/** An extended description's paragraph: lines of at most 79 characters, each after a space. */
function wrap(text: string): string {
  const lines: string[] = [];
  for (const word of text.split(/\s+/)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last]!.length + 1 + word.length <= 79) lines[last] += ` ${word}`;
    else lines.push(` ${word}`);
  }
  return lines.join('\n');
}

function put(stage: string, file: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(join(stage, file)), { recursive: true });
  writeFileSync(join(stage, file), text, { mode });
}

/** The Maintainer field: DEBFULLNAME and DEBEMAIL as dch reads them, or the project's. */
function maintainer(): string {
  const name = process.env['DEBFULLNAME'];
  const email = process.env['DEBEMAIL'];
  return name && email ? `${name} <${email}>` : 'streetbox maintainers <maintainers@streetbox.invalid>';
}

/**
 * Packages of which the runtime reads nothing but their package.json, shipped as that (and their
 * licence) alone: Node-RED resolves npm/package.json when it loads, to run npm for palette installs,
 * which streetbox turns off (edge/flows/settings.ts, externalModules: nothing is installed on a
 * cabinet). npm is 1,800 files, 17 MB.
 */
export const MANIFEST_ONLY: readonly string[] = ['npm'];

/**
 * The package directories the runtime needs: `names` as node resolves them from `from`, and what
 * each needs in turn (dependencies, optional ones that are installed, peers that are not optional),
 * in node's lookup order from the dependent's directory. Never a dev dependency; a required
 * dependency that is not installed is an error (an incomplete node_modules makes a broken package).
 */
export function runtimePackages(from: string, names: readonly string[]): string[] {
  const found = new Set<string>();
  const visit = (dir: string): void => {
    // type declarations only (mqtt depends on some): nothing loads them at run time
    if (found.has(dir) || relative(from, dir).split(sep).includes('@types')) return;
    found.add(dir);
    if (MANIFEST_ONLY.includes(packageName(dir))) return;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    const required = Object.keys(pkg.dependencies ?? {}).filter((n) => !(n in (pkg.optionalDependencies ?? {})));
    const optional = [...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => !pkg.peerDependenciesMeta?.[n]?.optional)];
    for (const name of required) {
      const at = resolvePackage(name, dir, from);
      if (at === null) throw new Error(`${relative(from, dir) || 'streetbox'} needs ${name}, which is not installed: run npm ci`);
      visit(at);
    }
    for (const name of optional) {
      const at = resolvePackage(name, dir, from);
      if (at !== null) visit(at);
    }
  };
  for (const name of names) {
    const at = resolvePackage(name, from, from);
    if (at === null) throw new Error(`${name} is not installed: run npm ci`);
    visit(at);
  }
  return [...found].sort();
}

/** node's lookup of a package from `dir`: dir/node_modules/name, then each parent's, up to `top`. */
function resolvePackage(name: string, dir: string, top: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const at = join(d, 'node_modules', name);
    if (existsSync(join(at, 'package.json'))) return at;
    if (d === top || dirname(d) === d) return null;
  }
}

/** The name of the package in a node_modules directory: `name` or `@scope/name`. */
function packageName(dir: string): string {
  const parts = dir.split(sep);
  const name = parts[parts.length - 1]!;
  const scope = parts[parts.length - 2]!;
  return scope.startsWith('@') ? `${scope}/${name}` : name;
}

/** Copies a package without its own node_modules (those are packages of their own) and without what the runtime never reads. */
function copyPackage(src: string, dest: string): void {
  const native = existsSync(join(src, 'binding.gyp'));
  const manifestOnly = MANIFEST_ONLY.includes(packageName(src));
  const walk = (rel: string): void => {
    mkdirSync(join(dest, rel), { recursive: true });
    for (const entry of readdirSync(join(src, rel), { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (manifestOnly && !(entry.isFile() && (entry.name === 'package.json' || LICENCE.test(entry.name)))) continue;
      if (entry.name === 'node_modules' || dropped(path, entry.isDirectory(), native)) continue;
      if (entry.isDirectory()) walk(path);
      else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(join(src, path)), join(dest, path));
      else if (entry.isFile()) copyFileSync(join(src, path), join(dest, path));
    }
  };
  walk('');
  pruneEmptyDirs(dest);
}

const PLATFORM = `${process.platform}-${process.arch}`;
const LICENCE = /^(licen[cs]e|copying|notice|authors)/i;

/**
 * What a package keeps out of the .deb, by its path in the package: docs (Markdown but the
 * licence), tests, source maps (read only with --enable-source-maps; the gateway's own map stays),
 * and of a native module (binding.gyp) its C/C++ sources and build intermediates (only
 * build/Release/*.node loads) and the prebuilt binaries of other platforms and of musl (Debian is glibc).
 */
function dropped(path: string, isDir: boolean, native: boolean): boolean {
  const parts = path.split('/');
  const name = parts[parts.length - 1]!;
  if (parts.length === 1 && isDir && ['test', 'tests', '__tests__', '.github'].includes(name)) return true;
  if (!isDir && (name.endsWith('.map') || (/\.(md|markdown)$/i.test(name) && !LICENCE.test(name)))) return true;
  if (parts[0] === 'prebuilds' && parts.length >= 2 && (parts[1] !== PLATFORM || /musl/.test(name))) return true;
  if (!native) return false;
  if (parts.length === 1 && isDir && (name === 'deps' || name === 'src')) return true;
  if (parts[0] === 'build') return isDir ? parts.length > 2 || (parts.length === 2 && name !== 'Release') : !(parts.length === 3 && parts[1] === 'Release' && name.endsWith('.node'));
  return false;
}

function pruneEmptyDirs(dir: string): boolean {
  let empty = true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && pruneEmptyDirs(join(dir, entry.name))) rmSync(join(dir, entry.name), { recursive: true });
    else empty = false;
  }
  return empty;
}

/** Installed-Size as dpkg-gencontrol counts it: each file's KiB rounded up, 1 for anything else. */
function installedSize(stage: string): number {
  let kib = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      kib += entry.isFile() ? Math.ceil(lstatSync(path).size / 1024) : 1;
      if (entry.isDirectory()) walk(path);
    }
  };
  for (const entry of readdirSync(stage)) if (entry !== 'DEBIAN') walk(join(stage, entry));
  return kib;
}

/** The libraries the native modules link against, as dpkg-shlibdeps names them; '' without dpkg-dev (nodejs needs them too). */
function shlibsDepends(app: string): string {
  const modules: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.isFile() && entry.name.endsWith('.node')) modules.push(join(dir, entry.name));
    }
  };
  walk(join(app, 'node_modules'));
  // dpkg-shlibdeps wants a source package around it: a control file of two lines is enough
  const work = mkdtempSync(join(tmpdir(), 'streetbox-shlibs-'));
  try {
    mkdirSync(join(work, 'debian'));
    writeFileSync(join(work, 'debian/control'), 'Source: streetbox\n\nPackage: streetbox\nArchitecture: any\n');
    const r = spawnSync('dpkg-shlibdeps', ['-O', '--warnings=0', ...modules.map((m) => `-e${m}`)], { cwd: work, encoding: 'utf8' });
    if (r.error || r.status !== 0) return '';
    return /^shlibs:Depends=(.*)$/m.exec(r.stdout)?.[1]?.trim() ?? '';
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: join(root, 'build') },
      compress: { type: 'string', default: 'xz' },
      level: { type: 'string' },
    },
  });
  if (!['xz', 'gzip', 'none'].includes(values.compress)) throw new Error(`--compress: expected xz, gzip or none, got "${values.compress}"`);
  const level = values.level === undefined ? undefined : Number(values.level);
  if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 9)) throw new Error(`--level: expected 0 to 9, got "${values.level}"`);
  const built = buildPackage({ outDir: values.out, compression: values.compress as Compression, level });
  const mb = (n: number): string => (n / 1048576).toFixed(1);
  process.stdout.write(`${relative(process.cwd(), built.deb) || basename(built.deb)}: ${mb(built.bytes)} MB, installed ${mb(built.installedKiB * 1024)} MB, built in ${(built.ms / 1000).toFixed(1)} s\n`);
}
