/**
 * `streetbox backup` and `streetbox restore`: the configuration and a consistent copy of the
 * SQLite buffer, taken while the gateway runs.
 *
 * The copy is `VACUUM INTO` on a read-only connection: one read transaction, so it is the
 * database exactly as of one commit (WAL lets the gateway keep writing meanwhile), compacted,
 * and checked with `PRAGMA integrity_check` before it is packed. A backup is a gzip-compressed
 * tar (`--out x.tar.gz` / `.tgz`) or a plain directory (any other `--out`), holding
 * manifest.json, devices.yaml and streetbox.db. Secrets given as ${ENV_VAR} are not in it.
 *
 * Restore refuses while a gateway holds the data file's pid lock, and moves the current
 * database (with its -wal and -shm) aside: nothing is ever deleted.
 */
import { createHash } from 'node:crypto';
import { chownSync, copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../config/index.js';
import { StreetboxError, errorMessage } from '../errors.js';
import { lockHolder } from '../pidLock.js';
import { extractTarGz, writeTarGz } from './tar.js';

export const MANIFEST = 'manifest.json';
export const DB_NAME = 'streetbox.db';
export const CONFIG_NAME = 'devices.yaml';

export interface BackupManifest {
  format: 'streetbox-backup';
  version: 1;
  gateway: string;
  /** when the copy was taken (ISO 8601, UTC) */
  createdAt: string;
  /** the highest seq in the copy: every reading and event up to it is in the backup */
  lastSeq: number;
  readings: number;
  events: number;
  commands: number;
  /** where the database lived on the gateway, for the record */
  sourcePath: string;
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface BackupResult {
  out: string;
  kind: 'tar.gz' | 'directory';
  manifest: BackupManifest;
}

const opsError = (msg: string, cause?: unknown) => new StreetboxError('E_OPS', msg, cause === undefined ? undefined : { cause });

export function isTarGz(path: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(path);
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function integrity(db: Database.Database): string {
  const rows = db.pragma('integrity_check') as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).join('; ');
}

/** Counts and the last seq of a database copy. */
function describe(path: string): { lastSeq: number; readings: number; events: number; commands: number; integrity: string } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const one = (sql: string): number => (db.prepare(sql).pluck().get() as number | null) ?? 0;
    const meta = (db.prepare("SELECT value FROM meta WHERE key = 'last_seq'").pluck().get() as number | undefined) ?? 0;
    return {
      lastSeq: Math.max(meta, one('SELECT max(seq) FROM reading'), one('SELECT max(seq) FROM event')),
      readings: one('SELECT count(*) FROM reading'),
      events: one('SELECT count(*) FROM event'),
      commands: one('SELECT count(*) FROM command'),
      integrity: integrity(db),
    };
  } finally {
    db.close();
  }
}

/** Takes a backup of the configuration at `configPath` and its database into `out`. */
export async function backup(configPath: string, out: string, now: () => number = Date.now): Promise<BackupResult> {
  const loaded = loadConfig(configPath);
  const dbPath = loaded.config.storage.path;
  if (!existsSync(dbPath)) throw opsError(`no database at ${dbPath} (storage.path): nothing to back up`);
  const asTar = isTarGz(out);
  if (existsSync(out) && (asTar || !isEmptyDir(out))) throw opsError(`${out} exists: choose a new name (a backup never overwrites)`);

  const staging = asTar ? mkdtempSync(join(dirname(resolve(out)), '.streetbox-backup-')) : (mkdirSync(out, { recursive: true }), out);
  try {
    const copy = join(staging, DB_NAME);
    const src = new Database(dbPath, { readonly: true, fileMustExist: true, timeout: 5000 });
    try {
      // SQLite VACUUM INTO: "the generated output database is a consistent snapshot of the original"
      src.prepare('VACUUM INTO ?').run(copy);
    } catch (err) {
      throw opsError(`cannot copy ${dbPath}: ${errorMessage(err)}`, err);
    } finally {
      src.close();
    }
    const info = describe(copy);
    if (info.integrity !== 'ok') throw opsError(`the copy of ${dbPath} fails integrity_check: ${info.integrity}`);
    copyFileSync(loaded.file, join(staging, CONFIG_NAME));

    const files: BackupManifest['files'] = {};
    for (const name of [CONFIG_NAME, DB_NAME]) {
      const p = join(staging, name);
      files[name] = { bytes: statSync(p).size, sha256: await sha256(p) };
    }
    const manifest: BackupManifest = {
      format: 'streetbox-backup',
      version: 1,
      gateway: loaded.config.gateway.id,
      createdAt: new Date(now()).toISOString(),
      lastSeq: info.lastSeq,
      readings: info.readings,
      events: info.events,
      commands: info.commands,
      sourcePath: resolve(dbPath),
      files,
    };
    writeFileSync(join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    if (asTar) {
      const tmp = `${out}.partial`;
      await writeTarGz(tmp, [MANIFEST, CONFIG_NAME, DB_NAME].map((name) => ({ name, path: join(staging, name) })));
      renameSync(tmp, out);
    }
    return { out, kind: asTar ? 'tar.gz' : 'directory', manifest };
  } catch (err) {
    if (!asTar) rmSync(out, { recursive: true, force: true });
    throw err;
  } finally {
    if (asTar) rmSync(staging, { recursive: true, force: true });
  }
}

function isEmptyDir(path: string): boolean {
  try {
    return statSync(path).isDirectory() && readdirSync(path).length === 0;
  } catch {
    return false;
  }
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** the configuration written (the backup's devices.yaml) */
  config: string;
  database: string;
  /** where the previous files went (never deleted) */
  movedAside: string[];
}

/** Reads and verifies a backup (tar.gz or directory) into `work`; returns its manifest. */
async function openBackup(from: string, work: string): Promise<{ dir: string; manifest: BackupManifest }> {
  if (!existsSync(from)) throw opsError(`${from} does not exist`);
  let dir = from;
  if (!statSync(from).isDirectory()) {
    try {
      await extractTarGz(from, work);
    } catch (err) {
      throw opsError(`${from} is not a readable streetbox backup: ${errorMessage(err)}`, err);
    }
    dir = work;
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as BackupManifest;
  } catch (err) {
    throw opsError(`${from} has no readable ${MANIFEST}: ${errorMessage(err)}`, err);
  }
  if (manifest.format !== 'streetbox-backup' || manifest.version !== 1) throw opsError(`${from}: not a streetbox backup (version 1)`);
  for (const [name, f] of Object.entries(manifest.files)) {
    const p = join(dir, basename(name));
    if (!existsSync(p) || (await sha256(p)) !== f.sha256) throw opsError(`${from}: ${name} is missing or does not match its checksum`);
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
 * Restores a backup: writes its devices.yaml at `configPath` and its database at the
 * storage.path that configuration names. Refuses while a gateway runs on either the current
 * or the restored data file; moves every file it replaces aside.
 */
export async function restore(from: string, configPath: string, now: () => number = Date.now): Promise<RestoreResult> {
  // unpacked beside the target (same file system: the database is then renamed into place)
  mkdirSync(dirname(resolve(configPath)), { recursive: true });
  const work = mkdtempSync(join(dirname(resolve(configPath)), '.streetbox-restore-'));
  try {
    const { dir, manifest } = await openBackup(from, work);
    const current = existsSync(configPath) ? tryStoragePath(configPath) : null;
    // where the restored config will put the database: its storage.path, relative to configPath's directory
    const staged = join(work, 'staged');
    mkdirSync(staged);
    const stagedConfig = join(staged, basename(configPath));
    copyFileSync(join(dir, CONFIG_NAME), stagedConfig);
    const relative = loadConfig(stagedConfig).config.storage.path;
    const target = resolve(dirname(resolve(configPath)), relativeTo(staged, relative));

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
    mkdirSync(dirname(target), { recursive: true });
    const tmpDb = `${target}.restoring`;
    copyFileSync(join(dir, DB_NAME), tmpDb);
    for (const suffix of ['', '-wal', '-shm']) moveAside(`${target}${suffix}`);
    renameSync(tmpDb, target);
    // restored by root for a gateway that runs as its own user: the file belongs to the data directory's owner
    if (process.getuid?.() === 0) {
      const owner = statSync(dirname(target));
      chownSync(target, owner.uid, owner.gid);
    }

    const backupConfig = readFileSync(join(dir, CONFIG_NAME));
    if (!existsSync(configPath) || !readFileSync(configPath).equals(backupConfig)) {
      moveAside(configPath);
      mkdirSync(dirname(resolve(configPath)), { recursive: true });
      writeFileSync(configPath, backupConfig);
    }
    return { manifest, config: configPath, database: target, movedAside };
  } finally {
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

/** The loader resolved `abs` against `base`; the same path relative to `base` again. */
function relativeTo(base: string, abs: string): string {
  return abs.startsWith(`${base}/`) ? abs.slice(base.length + 1) : abs;
}
