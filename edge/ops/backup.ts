/**
 * `streetbox backup`: the configuration, a consistent copy of the SQLite buffer taken while the
 * gateway runs, and Node-RED's user directory (flows and their encrypted credentials).
 *
 * The copy is `VACUUM INTO` on a read-only connection (in a worker thread, so progress can be
 * shown): one read transaction, so it is the database exactly as of one commit (WAL lets the
 * gateway keep writing meanwhile), compacted, and checked with `PRAGMA integrity_check` before
 * it is packed. A backup is a gzip-compressed tar (`--out x.tar.gz` / `.tgz`, edge/ops/archive.ts)
 * or a plain directory (any other `--out`), holding manifest.json, devices.yaml, streetbox.db and
 * node-red/. It holds secrets (devices.yaml's passwords and tokens, the LoRaWAN session keys in
 * the database, Node-RED's credentials): every file is written mode 0600, directories 0700.
 * Secrets given as ${ENV_VAR} are not in it. Restoring is edge/ops/restore.ts.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { loadConfig, type Config } from '../config/index.js';
import { StreetboxError, errorMessage } from '../errors.js';
import { packTarGz } from './archive.js';
import { noProgress, type Progress } from '../progress.js';

export const MANIFEST = 'manifest.json';
export const DB_NAME = 'streetbox.db';
export const CONFIG_NAME = 'devices.yaml';
export const NODE_RED_DIR = 'node-red';

/** What a backup holds that must be kept like a password; the CLI says it after every backup. */
export const SECRETS_WARNING =
  "holds secrets: devices.yaml's passwords and tokens, the LoRaWAN session keys in the database and Node-RED's flow credentials; keep it like a password (it is mode 0600)";

export interface BackupManifest {
  format: 'streetbox-backup';
  /** 1: no node-red/ (older backups, still restored); 2: with node-red/ when the gateway had one */
  version: 1 | 2;
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
  /** where Node-RED's user directory was, when it is in the backup (as node-red/) */
  nodeRedPath?: string;
  /** every file of the backup but the manifest, by its path inside the backup (`/`-separated) */
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface BackupResult {
  out: string;
  kind: 'tar.gz' | 'directory';
  manifest: BackupManifest;
}

export interface OpsOptions {
  now?: () => number;
  progress?: Progress;
}

export const opsError = (msg: string, cause?: unknown) => new StreetboxError('E_OPS', msg, cause === undefined ? undefined : { cause });

export function isTarGz(path: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(path);
}

/**
 * Node-RED's user directory as edge/flows/settings.ts (preparePaths) chooses it: nodeRed.userDir,
 * else `node-red/` beside the SQLite file (under the config's directory for `:memory:`).
 */
export function nodeRedUserDir(config: Config, configDir: string): string {
  if (config.nodeRed.userDir !== undefined) return config.nodeRed.userDir;
  const storage = config.storage.path;
  return join(storage === ':memory:' ? resolve(configDir, 'data') : dirname(storage), 'node-red');
}

export async function sha256(path: string, onBytes: (n: number) => void = () => {}): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    onBytes((n += (chunk as Buffer).length));
  }
  return h.digest('hex');
}

function integrity(db: Database.Database): string {
  const rows = db.pragma('integrity_check') as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).join('; ');
}

/** Counts and the last seq of a database copy. */
export function describe(path: string): { lastSeq: number; readings: number; events: number; commands: number; integrity: string } {
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

// A worker runs the one long SQLite statement, so the main thread can report progress meanwhile.
// Eval'd CommonJS: it loads better-sqlite3 by the absolute path this module resolves (also from
// the bundle, which leaves better-sqlite3 in node_modules).
const VACUUM_WORKER = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.src, { readonly: true, fileMustExist: true, timeout: 5000 });
try {
  // SQLite VACUUM INTO: "the generated output database is a consistent snapshot of the original"
  db.prepare('VACUUM INTO ?').run(workerData.dest);
} finally {
  db.close();
}
`;

/** VACUUM INTO `dest`; reports the bytes written so far against the source's used pages. */
async function vacuumInto(src: string, dest: string, progress: Progress): Promise<void> {
  const db = new Database(src, { readonly: true, fileMustExist: true, timeout: 5000 });
  let expected: number;
  try {
    const pages = (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number);
    expected = pages * (db.pragma('page_size', { simple: true }) as number);
  } finally {
    db.close();
  }
  progress.step('backup: copying the database', expected);
  const worker = new Worker(VACUUM_WORKER, { eval: true, workerData: { sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), src, dest } });
  const poll = setInterval(() => {
    try {
      progress.update(statSync(dest).size);
    } catch {
      // not created yet
    }
  }, 200);
  try {
    await new Promise<void>((done, fail) => {
      worker.once('error', fail);
      worker.once('exit', (code) => (code === 0 ? done() : fail(new Error(`the copy stopped (exit ${code})`))));
    });
  } finally {
    clearInterval(poll);
  }
  progress.update(expected);
}

/** Copies a directory tree (regular files and directories; not node_modules, not links), files 0600, directories 0700. */
export function copyTree(from: string, to: string): void {
  mkdirSync(to, { mode: 0o700 });
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    const st = lstatSync(src);
    if (st.isDirectory()) {
      if (name !== 'node_modules') copyTree(src, join(to, name));
    } else if (st.isFile()) {
      copyFileSync(src, join(to, name));
      chmodSync(join(to, name), 0o600);
    }
  }
}

/** Every regular file under `dir`, as `/`-separated paths relative to `base`. */
function filesUnder(dir: string, base: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) out.push(...filesUnder(p, base));
    else out.push(relative(base, p).split(sep).join('/'));
  }
  return out;
}

/** Takes a backup of the configuration at `configPath`, its database and Node-RED's directory into `out`. */
export async function backup(configPath: string, out: string, opts: OpsOptions = {}): Promise<BackupResult> {
  const now = opts.now ?? Date.now;
  const progress = opts.progress ?? noProgress;
  const loaded = loadConfig(configPath);
  const dbPath = loaded.config.storage.path;
  if (!existsSync(dbPath)) throw opsError(`no database at ${dbPath} (storage.path): nothing to back up`);
  const asTar = isTarGz(out);
  if (existsSync(out) && (asTar || !isEmptyDir(out))) throw opsError(`${out} exists: choose a new name (a backup never overwrites)`);
  const nodeRed = nodeRedUserDir(loaded.config, loaded.dir);

  let staging: string;
  if (asTar) staging = mkdtempSync(join(dirname(resolve(out)), '.streetbox-backup-'));
  else {
    mkdirSync(out, { recursive: true, mode: 0o700 });
    chmodSync(out, 0o700);
    staging = out;
  }
  try {
    const copy = join(staging, DB_NAME);
    try {
      await vacuumInto(dbPath, copy, progress);
    } catch (err) {
      throw opsError(`cannot copy ${dbPath}: ${errorMessage(err)}`, err);
    }
    chmodSync(copy, 0o600);
    progress.step('backup: checking the copy');
    const info = describe(copy);
    if (info.integrity !== 'ok') throw opsError(`the copy of ${dbPath} fails integrity_check: ${info.integrity}`);
    copyFileSync(loaded.file, join(staging, CONFIG_NAME));
    chmodSync(join(staging, CONFIG_NAME), 0o600);
    const withNodeRed = existsSync(nodeRed) && statSync(nodeRed).isDirectory();
    if (withNodeRed) copyTree(nodeRed, join(staging, NODE_RED_DIR));

    const names = [CONFIG_NAME, DB_NAME, ...(withNodeRed ? filesUnder(join(staging, NODE_RED_DIR), staging) : [])];
    const total = names.reduce((n, name) => n + statSync(join(staging, name)).size, 0);
    progress.step('backup: checksums', total);
    const files: BackupManifest['files'] = {};
    let hashed = 0;
    for (const name of names) {
      const p = join(staging, name);
      const bytes = statSync(p).size;
      files[name] = { bytes, sha256: await sha256(p, (n) => progress.update(hashed + n)) };
      hashed += bytes;
    }
    const manifest: BackupManifest = {
      format: 'streetbox-backup',
      version: 2,
      gateway: loaded.config.gateway.id,
      createdAt: new Date(now()).toISOString(),
      lastSeq: info.lastSeq,
      readings: info.readings,
      events: info.events,
      commands: info.commands,
      sourcePath: resolve(dbPath),
      ...(withNodeRed ? { nodeRedPath: resolve(nodeRed) } : {}),
      files,
    };
    writeFileSync(join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    if (asTar) {
      const tmp = `${out}.partial`;
      rmSync(tmp, { force: true });
      progress.step('backup: packing', total);
      try {
        await packTarGz(tmp, staging, [MANIFEST, CONFIG_NAME, DB_NAME, ...(withNodeRed ? [NODE_RED_DIR] : [])], (n) => progress.update(n));
        renameSync(tmp, out);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw err;
      }
    }
    return { out, kind: asTar ? 'tar.gz' : 'directory', manifest };
  } catch (err) {
    if (!asTar) rmSync(out, { recursive: true, force: true });
    throw err;
  } finally {
    progress.end();
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
