/**
 * The gateway updates itself (issue 17 Deliver 6). Releases live side by side:
 *
 *   <releases>/<version>/            package.json (its version), dist/streetbox.mjs, node_modules/
 *                                    (or a link to one), the data files (edge/profiles, …)
 *   <releases>/current -> <version>  the release systemd starts, through deploy/streetbox-launch
 *   <releases>/pending               a release on trial: deployment=, from=, to=, attempts=, deadline=
 *   <releases>/outcome               how the last trial ended: deployment=, version=, from=, result=, reason=
 *
 * The road: install (unpack the artifact into `<version>.tmp`, check it, rename it to
 * `<version>`) → activate (write `pending`, switch `current`) → the engine asks for a restart
 * (edge/restart.ts: exit 3, systemd starts the service again) → the launcher counts the start in
 * `pending` and runs the new release → boot() says `verifying` → the new release reports healthy
 * in time: confirm(); it does not: switchBack(), and another restart runs the previous release.
 * A new release that cannot even get that far (it crashes, refuses the configuration, hangs) is
 * switched back by the launcher alone, which depends on no release's code: after MAX_ATTEMPTS
 * starts, or once the deadline has passed. Either way `outcome` says what happened, and the
 * release that runs next reads it at boot (the engine journals it, then clearOutcome()).
 *
 * `pending` and `outcome` are key=value lines that the launcher reads and writes in POSIX sh;
 * every file here is replaced atomically (a temp file renamed over it, the directory fsynced), and
 * `current` is a new link renamed over the old one: a power cut leaves the old state or the new.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { FirmwareError } from './errors.js';

export { RESTART_EXIT_CODE } from '../restart.js';

/** Starts of a release on trial before the launcher switches back (deploy/streetbox-launch says the same). */
export const MAX_ATTEMPTS = 3;
/** Added to the health timeout in `pending`'s deadline: the stop of the old release, systemd's RestartSec and the new one's start. */
export const RESTART_ALLOWANCE_MS = 60_000;

const CURRENT = 'current';
const PENDING = 'pending';
const OUTCOME = 'outcome';
/** a version names a directory and travels through sh: no slash, no space, no leading dot */
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/;
/** what a release artifact may hold: files, directories and links (node_modules/.bin) */
const ENTRY_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

export interface SelfUpdaterOptions {
  /** firmware.selfUpdate.releases */
  releases: string;
  /** firmware.selfUpdate.healthTimeout */
  healthTimeoutMs: number;
  log: Logger;
  clock: Clock;
  /** the release this process is (SelfUpdater.runningRelease()) */
  runningVersion: string;
  /** default RESTART_ALLOWANCE_MS (tests shorten it) */
  restartAllowanceMs?: number;
}

export interface PendingMarker {
  deployment: string;
  from: string;
  to: string;
  /** starts of `to` so far, counted by the launcher */
  attempts: number;
  /** seconds since the epoch: past it, the launcher switches back */
  deadline: number;
}

export type SelfUpdateResult = 'rolledBack' | 'confirmed';

export interface OutcomeMarker {
  deployment: string;
  /** the release the deployment brought */
  version: string;
  /** the release it came from ('' when the launcher's file did not say) */
  from: string;
  result: SelfUpdateResult;
  reason: string;
}

export type SelfUpdateBoot =
  | { state: 'none' }
  /** this process is the release on trial; `deadline` (ms UTC): its health timeout from now, never past the launcher's */
  | { state: 'verifying'; deployment: string; from: string; to: string; deadline: number }
  | { state: 'outcome'; deployment: string; version: string; result: SelfUpdateResult; reason: string };

export class SelfUpdater {
  readonly releases: string;
  readonly runningVersion: string;
  private readonly log: Logger;

  constructor(private readonly o: SelfUpdaterOptions) {
    this.releases = resolve(o.releases);
    this.runningVersion = o.runningVersion;
    this.log = o.log;
  }

  /**
   * The release this code runs from: the bundle at `<releases>/<version>/dist/streetbox.mjs`
   * whose package.json says `<version>`; null otherwise (the sources under tsx, a plain checkout).
   */
  static runningRelease(bundlePath: string = fileURLToPath(import.meta.url)): { dir: string; version: string } | null {
    let file: string;
    try {
      file = realpathSync(bundlePath);
    } catch {
      return null;
    }
    if (basename(file) !== 'streetbox.mjs' || basename(dirname(file)) !== 'dist') return null;
    const dir = dirname(dirname(file));
    const version = packageVersion(dir);
    return version !== null && version === basename(dir) ? { dir, version } : null;
  }

  /**
   * Unpacks a release artifact (a tar.gz of a release directory, its files at the top or in one
   * directory, as `npm pack` makes it) into `<releases>/<version>`. Refused (E_FW_ARTIFACT) when
   * its package.json does not say `version` or it has no dist/streetbox.mjs. An artifact without
   * node_modules gets a link to the running release's. Nothing to do when it is installed already.
   */
  /** One unpack per version at a time: a resumed job joins the one under way. */
  private readonly installing = new Map<string, Promise<void>>();

  install(artifactPath: string, version: string): Promise<void> {
    let p = this.installing.get(version);
    if (!p) {
      p = this.installOnce(artifactPath, version).finally(() => this.installing.delete(version));
      this.installing.set(version, p);
    }
    return p;
  }

  private async installOnce(artifactPath: string, version: string): Promise<void> {
    checkVersion(version);
    const target = join(this.releases, version);
    if (existsSync(target)) {
      checkRelease(target, version);
      this.log.info({ version }, 'self-update: release installed already');
      return;
    }
    mkdirSync(this.releases, { recursive: true });
    const tmp = `${target}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    try {
      await unpack(artifactPath, tmp);
      const root = releaseRoot(tmp);
      checkRelease(root, version);
      if (!lexists(join(root, 'node_modules'))) this.shareNodeModules(root);
      // the files on disk before the name that says they are there
      await syncDisks().catch((err: unknown) => this.log.warn({ err }, 'self-update: sync failed'));
      renameSync(root, target);
      if (root !== tmp) rmSync(tmp, { recursive: true, force: true });
      fsyncDir(this.releases);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (err instanceof FirmwareError) throw err;
      throw new FirmwareError('E_FW_ARTIFACT', `release ${version}: cannot unpack ${artifactPath}: ${errorMessage(err)}`, { cause: err });
    }
    this.log.info({ version, dir: target }, 'self-update: release installed');
  }

  /**
   * Puts `version` (installed) on trial: `pending` says from whom to whom, with attempts 0 and a
   * deadline of now + the health timeout + RESTART_ALLOWANCE_MS, and `current` points at it. The
   * caller then asks for a restart (edge/restart.ts).
   */
  activate(deployment: string, version: string): void {
    checkVersion(version);
    if (version === this.runningVersion) throw new FirmwareError('E_FW_TARGET', `release ${version} runs already`);
    checkRelease(join(this.releases, version), version);
    if (!isRelease(join(this.releases, this.runningVersion), this.runningVersion)) {
      throw new FirmwareError('E_FW_TARGET', `the running release ${this.runningVersion} is not in ${this.releases}: there would be nothing to switch back to`);
    }
    const deadline = Math.ceil((this.o.clock.now() + this.o.healthTimeoutMs + (this.o.restartAllowanceMs ?? RESTART_ALLOWANCE_MS)) / 1000);
    const marker: PendingMarker = { deployment: oneLine(deployment), from: this.runningVersion, to: version, attempts: 0, deadline };
    rmSync(join(this.releases, OUTCOME), { force: true });
    writeMarker(join(this.releases, PENDING), marker);
    this.switchCurrent(version);
    this.log.info({ deployment, from: marker.from, to: version, deadline: deadline * 1000 }, 'self-update: release switched in, on trial until it reports healthy');
  }

  /**
   * What the previous process left, read at start. `verifying` when this process is the release on
   * trial. A trial of another release that this process, its previous release, runs under means
   * the switch did not take effect (or was undone): it ends as rolled back here. `outcome` for a
   * trial that ended (until clearOutcome()).
   */
  boot(): SelfUpdateBoot {
    const pending = this.pending();
    if (pending) {
      if (pending.to === this.runningVersion) {
        const deadline = Math.min(pending.deadline * 1000, this.o.clock.now() + this.o.healthTimeoutMs);
        this.log.info({ deployment: pending.deployment, from: pending.from, to: pending.to, attempts: pending.attempts, deadline }, 'self-update: this release is on trial');
        return { state: 'verifying', deployment: pending.deployment, from: pending.from, to: pending.to, deadline };
      }
      if (pending.from === this.runningVersion) {
        const earlier = this.outcome();
        const reason =
          earlier && earlier.deployment === pending.deployment && earlier.result === 'rolledBack'
            ? earlier.reason
            : `release ${pending.to} did not run: release ${pending.from} was started instead`;
        this.end(pending, 'rolledBack', reason, () => {
          if (this.current() !== pending.from) this.switchCurrent(pending.from);
        });
      } else {
        this.log.warn({ ...pending, running: this.runningVersion }, 'self-update: a trial of another release is pending; this release is neither: left as it is');
      }
    }
    const outcome = this.outcome();
    if (!outcome) return { state: 'none' };
    return { state: 'outcome', deployment: outcome.deployment, version: outcome.version, result: outcome.result, reason: outcome.reason };
  }

  /** This release, on trial, is healthy: the outcome says confirmed and the trial ends. */
  confirm(): void {
    const pending = this.trial('confirm');
    this.end(pending, 'confirmed', `release ${pending.to} reported healthy`);
  }

  /** This release, on trial, was not healthy in time: `current` goes back to the previous release (the caller asks for a restart). */
  switchBack(reason: string): void {
    const pending = this.trial('switch back');
    if (!isRelease(join(this.releases, pending.from), pending.from)) {
      throw new FirmwareError('E_FW_TARGET', `cannot switch back: release ${pending.from} is not in ${this.releases}`);
    }
    this.end(pending, 'rolledBack', reason, () => this.switchCurrent(pending.from));
  }

  /**
   * The release that made the switch (activate()) undoes it, because nothing will restart the
   * process into the new one: `current` back to this release, the trial removed, no outcome.
   */
  undoSwitch(reason: string): void {
    const pending = this.pending();
    if (!pending || pending.from !== this.runningVersion) return;
    if (this.current() !== pending.from) this.switchCurrent(pending.from);
    rmSync(join(this.releases, PENDING), { force: true });
    fsyncDir(this.releases);
    this.log.warn({ deployment: pending.deployment, from: pending.from, to: pending.to, reason }, 'self-update: switch undone');
  }

  /** The engine has journaled the outcome. */
  clearOutcome(): void {
    rmSync(join(this.releases, OUTCOME), { force: true });
  }

  /**
   * Removes releases beyond `keep` (at least 2). Never removed: the running release, the one
   * before it (the highest version below it), `current`'s, a trial's two, and a release whose
   * node_modules a kept one links to. The rest are kept newest version first. Also removes
   * unpacks left half done (`*.tmp`). Returns the versions removed.
   */
  gc(keep = 2): string[] {
    const versions = this.installed();
    const kept = new Set<string>([this.runningVersion]);
    const below = versions.filter((v) => compareVersions(v, this.runningVersion) < 0);
    if (below.length > 0) kept.add(below[below.length - 1]!);
    const current = this.current();
    if (current !== null) kept.add(current);
    const pending = this.pending();
    if (pending) kept.add(pending.from).add(pending.to);
    for (const v of [...versions].reverse()) if (kept.size < Math.max(2, keep)) kept.add(v);
    const holders = new Set([...kept].map((v) => this.nodeModulesHolder(v)).filter((v): v is string => v !== null));
    const removed: string[] = [];
    for (const v of versions) {
      if (kept.has(v) || holders.has(v)) continue;
      rmSync(join(this.releases, v), { recursive: true, force: true });
      removed.push(v);
    }
    for (const name of safeReaddir(this.releases)) {
      if (name.endsWith('.tmp') && !name.startsWith('.')) rmSync(join(this.releases, name), { recursive: true, force: true });
    }
    if (removed.length > 0) this.log.info({ removed, kept: [...kept] }, 'self-update: old releases removed');
    return removed;
  }

  /** The release `current` points at, or null. */
  current(): string | null {
    try {
      return basename(readlinkSync(join(this.releases, CURRENT)));
    } catch {
      return null;
    }
  }

  /** The trial under way, or null. */
  pending(): PendingMarker | null {
    const m = readMarker(join(this.releases, PENDING));
    if (!m || !m.deployment || !m.from || !m.to) return null;
    return { deployment: m.deployment, from: m.from, to: m.to, attempts: Number(m.attempts) || 0, deadline: Number(m.deadline) || 0 };
  }

  /** How the last trial ended, or null. */
  outcome(): OutcomeMarker | null {
    const m = readMarker(join(this.releases, OUTCOME));
    if (!m || !m.deployment || (m.result !== 'rolledBack' && m.result !== 'confirmed')) return null;
    return { deployment: m.deployment, version: m.version ?? '', from: m.from ?? '', result: m.result, reason: m.reason ?? '' };
  }

  /** The versions installed, lowest first. */
  installed(): string[] {
    return safeReaddir(this.releases)
      .filter((name) => VERSION_RE.test(name) && !name.endsWith('.tmp') && name !== CURRENT && name !== PENDING && name !== OUTCOME)
      .filter((name) => isRelease(join(this.releases, name), name))
      .sort(compareVersions);
  }

  private trial(what: string): PendingMarker {
    const pending = this.pending();
    if (!pending || pending.to !== this.runningVersion) {
      throw new FirmwareError('E_NOT_FOUND', `nothing to ${what}: release ${this.runningVersion} is not on trial`);
    }
    return pending;
  }

  /**
   * Writes the outcome, then does `then` (the switch back), then removes `pending`: a cut in
   * between leaves the trial to be ended again, never an ended trial without its outcome.
   */
  private end(pending: PendingMarker, result: SelfUpdateResult, reason: string, then?: () => void): void {
    writeMarker(join(this.releases, OUTCOME), { deployment: pending.deployment, version: pending.to, from: pending.from, result, reason: oneLine(reason) });
    then?.();
    rmSync(join(this.releases, PENDING), { force: true });
    fsyncDir(this.releases);
    const level = result === 'confirmed' ? 'info' : 'warn';
    this.log[level]({ deployment: pending.deployment, from: pending.from, to: pending.to, result, reason }, `self-update: release ${pending.to} ${result === 'confirmed' ? 'confirmed' : 'rolled back'}`);
  }

  /** `current` → `version`: a new link renamed over the old one (rename(2) replaces the link, never follows it). */
  private switchCurrent(version: string): void {
    const tmp = join(this.releases, `.${CURRENT}.${process.pid}.tmp`);
    rmSync(tmp, { force: true });
    symlinkSync(version, tmp);
    renameSync(tmp, join(this.releases, CURRENT));
    fsyncDir(this.releases);
  }

  /** A release without node_modules uses the running release's (its real directory, not a chain of links). */
  private shareNodeModules(root: string): void {
    const own = join(this.releases, this.runningVersion, 'node_modules');
    let real: string;
    try {
      real = realpathSync(own);
    } catch {
      this.log.warn({ own }, 'self-update: the artifact has no node_modules and the running release has none to share');
      return;
    }
    symlinkSync(real, join(root, 'node_modules'));
  }

  /** The installed release whose directory holds the node_modules `version` uses, when not its own. */
  private nodeModulesHolder(version: string): string | null {
    try {
      const real = realpathSync(join(this.releases, version, 'node_modules'));
      const releasesReal = realpathSync(this.releases);
      if (dirname(dirname(real)) !== releasesReal) return null;
      const holder = basename(dirname(real));
      return holder === version ? null : holder;
    } catch {
      return null;
    }
  }
}

// ------------------------------------------------------------------------------------- helpers

function checkVersion(version: string): void {
  if (!VERSION_RE.test(version) || version.endsWith('.tmp') || [CURRENT, PENDING, OUTCOME].includes(version)) {
    throw new FirmwareError('E_FW_INVALID', `artifact.version: "${version}" cannot name a release directory (letters, digits, . _ + -)`);
  }
}

function packageVersion(dir: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

function isRelease(dir: string, version: string): boolean {
  return packageVersion(dir) === version && existsSync(join(dir, 'dist', 'streetbox.mjs'));
}

/** Throws E_FW_ARTIFACT unless `dir` holds release `version`. */
function checkRelease(dir: string, version: string): void {
  const found = packageVersion(dir);
  if (found !== version) {
    throw new FirmwareError('E_FW_ARTIFACT', `release ${version}: package.json ${found === null ? 'is missing or has no version' : `says version ${found}`}`);
  }
  if (!existsSync(join(dir, 'dist', 'streetbox.mjs'))) throw new FirmwareError('E_FW_ARTIFACT', `release ${version}: dist/streetbox.mjs is missing`);
}

/** The unpacked release: the directory itself, or the one directory it holds (`package/` of `npm pack`). */
function releaseRoot(dir: string): string {
  if (existsSync(join(dir, 'package.json'))) return dir;
  const names = readdirSync(dir);
  const only = names.length === 1 ? join(dir, names[0]!) : null;
  return only !== null && lstatSync(only).isDirectory() ? only : dir;
}

/**
 * Unpacks with node-tar (a dependency already, edge/ops/archive.ts; gzip found by its magic
 * number). node-tar strips `..` and leading `/` and never writes through a link; entries other
 * than files, directories and links (devices, fifos) fail the artifact.
 */
async function unpack(file: string, dir: string): Promise<void> {
  const tar = await import('tar');
  const refused: string[] = [];
  let entries = 0;
  await tar.x({
    file,
    cwd: dir,
    strict: true,
    preserveOwner: false,
    filter: (path, entry) => {
      const type = 'type' in entry ? entry.type : 'File';
      if (!ENTRY_TYPES.has(type)) {
        refused.push(`${path} (${type})`);
        return false;
      }
      entries++;
      return true;
    },
  });
  if (refused.length > 0) throw new FirmwareError('E_FW_ARTIFACT', `the artifact holds entries a release cannot: ${refused.join(', ')}`);
  if (entries === 0) throw new FirmwareError('E_FW_ARTIFACT', 'the artifact is an empty archive');
}

/** Whether a path exists as an entry (a dangling link too). */
function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The directories (or links to one) in `dir`; none when it is missing. */
function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => statSync(join(dir, name), { throwIfNoEntry: false })?.isDirectory() === true);
  } catch {
    return [];
  }
}

/** `sync(1)`: the unpacked files reach the disk before the rename that makes them a release (fsync of each of thousands of files would take minutes on an SD card). */
function syncDisks(): Promise<void> {
  return new Promise((done, fail) => {
    execFile('sync', [], { timeout: 120_000 }, (err) => (err ? fail(err) : done()));
  });
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  try {
    fsyncFile(dir);
  } catch {
    // some file systems cannot fsync a directory; the rename is still atomic
  }
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}

/** key=value lines (the launcher's sh reads them with sed); a value runs to the end of its line. */
export function readMarker(path: string): Record<string, string> | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Replaces `path` atomically: a temp file beside it, fsynced, renamed over it, the directory fsynced. */
export function writeMarker(path: string, fields: object): void {
  const text = Object.entries(fields)
    .map(([k, v]) => `${k}=${oneLine(String(v))}\n`)
    .join('');
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  fsyncFile(tmp);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** Orders versions by their dotted parts, numbers as numbers (`1.10.0` after `1.9.2`). */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
