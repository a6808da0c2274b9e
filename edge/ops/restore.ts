/**
 * `streetbox restore`: a backup (edge/ops/backup.ts) back in place. It reads a tar.gz (also one
 * re-packed by GNU tar) or a backup directory, checks the manifest, every checksum and the
 * database's integrity, then writes devices.yaml at --config, the database at the storage.path
 * that configuration names and node-red/ at its Node-RED user directory.
 *
 * It refuses while a gateway holds the data file's pid lock, and moves what it replaces (the
 * database with its -wal and -shm, the Node-RED directory, a different devices.yaml) aside:
 * nothing is ever deleted.
 */
import { chmodSync, chownSync, createReadStream, createWriteStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadConfig, parseConfig } from '../config/index.js';
import { StreetboxError, errorMessage } from '../errors.js';
import { lockHolder } from '../pidLock.js';
import { unpackTarGz } from './archive.js';
import { CONFIG_NAME, DB_NAME, MANIFEST, NODE_RED_DIR, copyTree, describe, nodeRedUserDir, opsError, sha256, type BackupManifest, type OpsOptions } from './backup.js';
import { noProgress, type Progress } from '../progress.js';

export interface RestoreResult {
  manifest: BackupManifest;
  /** the configuration written (the backup's devices.yaml) */
  config: string;
  database: string;
  /** Node-RED's user directory restored, or null when the backup has none */
  nodeRed: string | null;
  /** where the previous files went (never deleted) */
  movedAside: string[];
}

/** A path named by a manifest: relative, inside the backup, `/`-separated. */
function safeName(name: string): boolean {
  return name !== '' && !isAbsolute(name) && !name.includes('\\') && name.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/**
 * The directory of an unpacked archive that holds manifest.json: the top, or the one directory
 * an archive re-packed from outside (`tar czf x.tgz backup-dir`) puts everything in.
 */
function backupRoot(dir: string): string {
  if (existsSync(join(dir, MANIFEST))) return dir;
  const entries = readdirSync(dir);
  if (entries.length === 1 && existsSync(join(dir, entries[0]!, MANIFEST))) return join(dir, entries[0]!);
  return dir;
}

/** Reads and verifies a backup (tar.gz or directory) into `work`; returns where its files are and its manifest. */
async function openBackup(from: string, work: string, progress: Progress): Promise<{ dir: string; manifest: BackupManifest }> {
  let dir = from;
  if (!statSync(from).isDirectory()) {
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked, { mode: 0o700 });
    progress.step('restore: unpacking', statSync(from).size);
    try {
      await unpackTarGz(from, unpacked, (n) => progress.update(n));
    } catch (err) {
      throw opsError(`${from} is not a readable streetbox backup: ${errorMessage(err)}`, err);
    }
    dir = backupRoot(unpacked);
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as BackupManifest;
  } catch (err) {
    throw opsError(`${from} has no readable ${MANIFEST}: ${errorMessage(err)}`, err);
  }
  if (manifest.format !== 'streetbox-backup' || (manifest.version !== 1 && manifest.version !== 2)) throw opsError(`${from}: not a streetbox backup (version 1 or 2)`);
  const entries = Object.entries(manifest.files ?? {});
  for (const need of [CONFIG_NAME, DB_NAME]) if (manifest.files?.[need] === undefined) throw opsError(`${from}: the manifest lists no ${need}`);
  const total = entries.reduce((n, [, f]) => n + f.bytes, 0);
  progress.step('restore: checking', total);
  let checked = 0;
  for (const [name, f] of entries) {
    if (!safeName(name)) throw opsError(`${from}: the manifest names a file outside the backup: ${JSON.stringify(name)}`);
    const p = join(dir, ...name.split('/'));
    if (!existsSync(p) || (await sha256(p, (n) => progress.update(checked + n))) !== f.sha256) throw opsError(`${from}: ${name} is missing or does not match its checksum`);
    checked += f.bytes;
  }
  const info = describe(join(dir, DB_NAME));
  if (info.integrity !== 'ok') throw opsError(`${from}: the database fails integrity_check: ${info.integrity}`);
  return { dir, manifest };
}

/** A name beside `path` that does not exist yet: `<path>.before-restore-<time>`. */
function asideName(path: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  let name = `${path}.before-restore-${stamp}`;
  for (let i = 1; existsSync(name); i++) name = `${path}.before-restore-${stamp}-${i}`;
  return name;
}

function runningGateway(dbPath: string): number | null {
  return lockHolder(`${dbPath}.pid`);
}

/**
 * Puts `from` at `to` (a new name): a rename when `from` is ours to move (unpacked into the work
 * directory) and on the same file system, else a copy (a backup directory is never emptied).
 */
async function placeAt(from: string, to: string, move: boolean, progress: Progress, label: string): Promise<void> {
  if (move) {
    try {
      renameSync(from, to);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    }
  }
  if (statSync(from).isDirectory()) {
    copyTree(from, to);
    return;
  }
  progress.step(label, statSync(from).size);
  let n = 0;
  const src = createReadStream(from);
  src.on('data', (chunk) => progress.update((n += chunk.length)));
  await pipeline(src, createWriteStream(to, { flags: 'wx', mode: 0o600 }));
}

/** Gives a file or a tree to `uid:gid` (a restore run by root, for the gateway's own user). */
function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/**
 * Restores a backup: writes its devices.yaml at `configPath`, its database at the storage.path
 * that configuration names, and its node-red/ at that configuration's Node-RED user directory.
 * Refuses while a gateway runs on either the current or the restored data file; moves every
 * file it replaces aside.
 */
export interface RestoreOptions extends OpsOptions {
  /**
   * Let the backup put its database or Node-RED directory outside the configuration's directory
   * and the current data directory (`--anywhere`). Without it such a backup is refused: a
   * crafted archive run by root must not write over /root/.ssh or /etc.
   */
  anywhere?: boolean;
}

/** Whether `p` is `root` or inside it. */
function within(p: string, root: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

export async function restore(from: string, configPath: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const now = opts.now ?? Date.now;
  const progress = opts.progress ?? noProgress;
  if (!existsSync(from)) throw new StreetboxError('E_USAGE', `--from ${from} does not exist`);
  const configDir = dirname(resolve(configPath));
  // unpacked beside the target, on its file system: the files are then renamed into place
  mkdirSync(configDir, { recursive: true });
  const work = mkdtempSync(join(configDir, '.streetbox-restore-'));
  try {
    const { dir, manifest } = await openBackup(from, work, progress);
    const unpacked = dir !== from;
    const backupConfig = readFileSync(join(dir, CONFIG_NAME));
    // the backup's configuration as it will be read at configPath: its relative paths resolve there
    const restored = parseConfig(backupConfig.toString('utf8'), { file: `${CONFIG_NAME} in ${from}`, dir: configDir }).config;
    const current = existsSync(configPath) ? tryStoragePath(configPath) : null;
    const target = restored.storage.path;
    const roots = [configDir, ...(current !== null && current !== ':memory:' ? [dirname(current)] : [])];
    const places = [target, ...(existsSync(join(dir, NODE_RED_DIR)) ? [nodeRedUserDir(restored, configDir)] : [])];
    const outside = places.filter((p) => !roots.some((r) => within(resolve(p), resolve(r))));
    if (outside.length > 0 && opts.anywhere !== true) {
      throw new StreetboxError(
        'E_USAGE',
        `the backup would write ${outside.join(' and ')}, outside ${roots.join(' and ')}: check that it is yours and where it writes, then give --anywhere`,
      );
    }
    for (const db of [current, target]) {
      const pid = db === null ? null : runningGateway(db);
      if (pid !== null) throw opsError(`a gateway (pid ${pid}) is running on ${db}: stop it first (sudo systemctl stop streetbox)`);
    }

    const t = now();
    const movedAside: string[] = [];
    const moveAside = (p: string) => {
      if (!existsSync(p)) return;
      const to = asideName(p, t);
      renameSync(p, to);
      movedAside.push(to);
    };
    // run by root for a gateway that runs as its own user: what is restored belongs to the data directory's owner
    const asRoot = process.getuid?.() === 0;

    mkdirSync(dirname(target), { recursive: true });
    const tmpDb = `${target}.restoring`;
    rmSync(tmpDb, { force: true });
    await placeAt(join(dir, DB_NAME), tmpDb, unpacked, progress, 'restore: copying the database');
    chmodSync(tmpDb, 0o600);
    for (const suffix of ['', '-wal', '-shm']) moveAside(`${target}${suffix}`);
    renameSync(tmpDb, target);
    const owner = statSync(dirname(target));
    if (asRoot) chownSync(target, owner.uid, owner.gid);

    let nodeRed: string | null = null;
    if (existsSync(join(dir, NODE_RED_DIR))) {
      nodeRed = nodeRedUserDir(restored, configDir);
      mkdirSync(dirname(nodeRed), { recursive: true });
      const tmpDir = `${nodeRed}.restoring`;
      rmSync(tmpDir, { recursive: true, force: true });
      await placeAt(join(dir, NODE_RED_DIR), tmpDir, unpacked, progress, 'restore: copying Node-RED');
      moveAside(nodeRed);
      renameSync(tmpDir, nodeRed);
      if (asRoot) {
        const o = statSync(dirname(nodeRed));
        chownTree(nodeRed, o.uid, o.gid);
      }
    }

    if (!existsSync(configPath) || !readFileSync(configPath).equals(backupConfig)) {
      const previous = existsSync(configPath) ? statSync(configPath) : owner;
      moveAside(configPath);
      writeFileSync(configPath, backupConfig, { mode: 0o600 });
      if (asRoot) chownSync(configPath, previous.uid, previous.gid);
    }
    return { manifest, config: configPath, database: target, nodeRed, movedAside };
  } finally {
    progress.end();
    rmSync(work, { recursive: true, force: true });
  }
}

/** storage.path of an existing configuration, or null when it does not load. */
function tryStoragePath(configPath: string): string | null {
  try {
    return loadConfig(configPath).config.storage.path;
  } catch {
    return null;
  }
}
