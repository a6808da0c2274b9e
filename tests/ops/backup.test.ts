import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../../edge/config/index.js';
import { preparePaths } from '../../edge/flows/index.js';
import { createLogger } from '../../edge/log.js';
import { nodeRedUserDir } from '../../edge/ops/backup.js';
import { openStore, openStoreReadOnly, type Reading } from '../../edge/store/index.js';
import { CLI_ARGS, ROOT, collect, runCli, spawnCli, tempGateway, type CliResult } from '../support/cli.js';
import { waitFor } from '../helpers/wait.js';

// A gateway ingesting from simulated Modbus TCP controllers (no PTY), committing every 100 ms.
const CONFIG = `
gateway: { id: backup-test }
storage: { path: data/gw.db, flushInterval: 100ms }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 100ms, report: poll }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 100ms, report: poll }
broker: { enabled: false }
api: { enabled: false }
simulate: true
`;

type Cleanup = () => Promise<void> | void;
/** a test's own files and processes, removed after it */
const cleanups: Cleanup[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
/** what a describe's tests share (made once in its beforeAll), removed after them */
const shared: Cleanup[] = [];
afterAll(async () => {
  for (const c of shared.splice(0).reverse()) await c();
});

function dir(): { dir: string; config: string } {
  const g = tempGateway('');
  cleanups.push(g.cleanup);
  return g;
}

/** Starts a gateway process on `config`; resolves once it runs. Stopped (SIGTERM) at cleanup (`list`'s). */
async function startGateway(config: string, list: Cleanup[] = cleanups): Promise<{ child: ChildProcess; stop: () => Promise<CliResult> }> {
  const child = spawnCli(['start', '--config', config]);
  const done = collect(child, 60_000);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  let stopped: Promise<CliResult> | null = null;
  const stop = () => {
    if (!stopped) {
      child.kill('SIGTERM');
      stopped = done;
    }
    return stopped;
  };
  list.push(async () => void (await stop()));
  await waitFor('the gateway running', () => out.includes('"gateway running"'), 20_000);
  return { child, stop };
}

function allReadings(db: string): Reading[] {
  const view = openStoreReadOnly(db);
  try {
    return view.readings({ after: 0, limit: 1_000_000 }).items;
  } finally {
    view.close();
  }
}

function integrity(db: string): string {
  const d = new Database(db, { readonly: true });
  try {
    return String(d.pragma('integrity_check', { simple: true }));
  } finally {
    d.close();
  }
}

describe('streetbox backup / restore', () => {
  // One ingesting gateway for both backups taken while it runs (the directory one first: the
  // tar.gz test stops it, to see it exit cleanly after a backup and restore beside it).
  let g: ReturnType<typeof tempGateway>;
  let db: string;
  let gw: Awaited<ReturnType<typeof startGateway>>;
  beforeAll(async () => {
    g = tempGateway(CONFIG);
    shared.push(g.cleanup);
    db = join(g.dir, 'data/gw.db');
    gw = await startGateway(g.config, shared);
    await waitFor('more than 50 readings committed', () => existsSync(db) && allReadings(db).length > 50, 15_000);
  });

  it('backs up into a directory, and a restore moves the current database and config aside instead of deleting them', async () => {
    const out = join(g.dir, 'backup-dir');
    const b = await runCli(['backup', '--config', g.config, '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['devices.yaml', 'manifest.json', 'streetbox.db']);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(out)) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
    expect(b.stderr).toContain(`${out} holds secrets`);

    // a target with its own (different) config and database
    const other = dir();
    mkdirSync(join(other.dir, 'data'));
    writeFileSync(other.config, CONFIG.replace('backup-test', 'old-gateway'));
    writeFileSync(join(other.dir, 'data/gw.db'), 'the old database');
    writeFileSync(join(other.dir, 'data/gw.db-wal'), 'its wal');
    const r = await runCli(['restore', '--from', out, '--config', other.config]);
    expect(r.code, r.stderr).toBe(0);
    const aside = readdirSync(join(other.dir, 'data')).filter((f) => f.includes('.before-restore-')).sort();
    expect(aside).toHaveLength(2);
    expect(readFileSync(join(other.dir, 'data', aside.find((f) => f.startsWith('gw.db.'))!), 'utf8')).toBe('the old database');
    expect(readFileSync(join(other.dir, 'data', aside.find((f) => f.startsWith('gw.db-wal.'))!), 'utf8')).toBe('its wal');
    const configAside = readdirSync(other.dir).find((f) => f.startsWith('devices.yaml.before-restore-'))!;
    expect(readFileSync(join(other.dir, configAside), 'utf8')).toContain('old-gateway');
    expect(r.stdout.match(/^moved aside: /gm)).toHaveLength(3);
    expect(integrity(join(other.dir, 'data/gw.db'))).toBe('ok');
    expect(allReadings(join(other.dir, 'data/gw.db')).length).toBeGreaterThan(10);
  });

  it('backs up while the gateway ingests; the restore into a fresh directory has every reading committed before the backup', async () => {
    const before = allReadings(db);
    const out = join(g.dir, 'backup.tar.gz');
    const b = await runCli(['backup', '--config', g.config, '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/backup\.tar\.gz \(tar\.gz\): gateway "backup-test" at .*, last seq \d+, \d+ readings/);
    // it holds secrets: only its owner reads it, and the command says so
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(b.stderr).toContain(`${out} holds secrets: devices.yaml's passwords and tokens, the LoRaWAN session keys in the database`);
    // still ingesting after the backup: the gateway was never paused
    const lastBefore = before.at(-1)!.seq;
    // restore is refused while the gateway runs, and touches nothing (tried while the readings go on)
    const refusing = runCli(['restore', '--from', out, '--config', g.config]);
    await waitFor('20 readings committed after the backup', () => allReadings(db).at(-1)!.seq > lastBefore + 20, 10_000);

    // a standard tar reads it
    const listing = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['manifest.json', 'devices.yaml', 'streetbox.db']);

    const refused = await refusing;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/a gateway \(pid \d+\) is running on .*gw\.db: stop it first/);
    expect(readdirSync(join(g.dir, 'data')).filter((f) => f.includes('before-restore'))).toEqual([]);
    expect((await gw.stop()).code).toBe(0);

    const fresh = dir();
    const r = await runCli(['restore', '--from', out, '--config', fresh.config]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('restored gateway "backup-test"');
    expect(readFileSync(fresh.config, 'utf8')).toBe(CONFIG);
    const restoredDb = join(fresh.dir, 'data/gw.db');
    expect(integrity(restoredDb)).toBe('ok');
    const restored = new Map(allReadings(restoredDb).map((x) => [x.seq, x]));
    for (const x of before) expect(restored.get(x.seq)).toEqual(x);
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', out, 'manifest.json'], { encoding: 'utf8' })) as { lastSeq: number; gateway: string };
    expect(manifest.gateway).toBe('backup-test');
    expect(manifest.lastSeq).toBeGreaterThanOrEqual(lastBefore);
    expect(Math.max(...restored.keys())).toBeLessThanOrEqual(manifest.lastSeq);

    // the restored gateway starts on it and goes on counting after the backup's last seq
    const again = await startGateway(fresh.config);
    await waitFor('a reading past the backup\'s last seq', () => allReadings(restoredDb).at(-1)!.seq > manifest.lastSeq, 10_000);
    expect((await again.stop()).code).toBe(0);
  });

  it('refuses an existing --out, a missing database and a damaged backup', async () => {
    const g = tempGateway(CONFIG);
    cleanups.push(g.cleanup);
    writeFileSync(join(g.dir, 'exists.tar.gz'), 'x');
    // three refusals that touch nothing: at once
    const [noDb, missing, bad] = await Promise.all([
      runCli(['backup', '--config', g.config, '--out', join(g.dir, 'b.tar.gz')]),
      // a backup that is not there is bad input (exit 2), as the README says
      runCli(['restore', '--from', join(g.dir, 'no-such-backup.tar.gz'), '--config', join(g.dir, 'm/devices.yaml')]),
      runCli(['restore', '--from', join(g.dir, 'exists.tar.gz'), '--config', join(g.dir, 'r/devices.yaml')]),
    ]);
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toContain('no database at');

    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no-such-backup.tar.gz does not exist');

    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('is not a readable streetbox backup');
    expect(existsSync(join(g.dir, 'r/devices.yaml'))).toBe(false);
    expect(existsSync(join(g.dir, 'm/devices.yaml'))).toBe(false);
  });
});

// A stopped gateway's files, made without running it: a buffer with readings (the real store) and
// Node-RED's user directory where the gateway keeps it (edge/flows/settings.ts), with flows,
// their encrypted credentials and the runtime's key file.
const NR_CONFIG = `
gateway: { id: nr-test }
storage: { path: data/gw.db }
broker: { enabled: false }
api: { enabled: false }
nodeRed: { enabled: false, credentialSecret: "\${TEST_NR_SECRET}" }
`;
const NR_ENV = { TEST_NR_SECRET: 'a-test-secret-of-this-gateway' };

type StoppedGateway = { dir: string; config: string; userDir: string; nodeRedFiles: Record<string, string> };

function stoppedGateway(list: Cleanup[] = cleanups): StoppedGateway {
  const g = tempGateway(NR_CONFIG);
  list.push(g.cleanup);
  const loaded = loadConfig(g.config, { env: { ...process.env, ...NR_ENV } });
  const store = openStore({ path: loaded.config.storage.path, maxBytes: 64 * 1024 * 1024, durability: 'normal', log: createLogger({ level: 'silent' }) });
  store.appendReadings(Array.from({ length: 5000 }, (_, i) => ({ ts: 1_767_000_000_000 + i * 1000, device: 'lamp-1', point: 'dim_level', value: i % 101 })));
  store.close();
  const { userDir } = preparePaths({ config: loaded.config, configDir: loaded.dir });
  // the rule backup follows is the gateway's own
  expect(nodeRedUserDir(loaded.config, loaded.dir)).toBe(userDir);
  mkdirSync(join(userDir, 'lib/functions'), { recursive: true });
  const nodeRedFiles: Record<string, string> = {
    'flows.json': readFileSync(join(userDir, 'flows.json'), 'utf8'),
    'flows_cred.json': '{"$":"0123456789abcdef-encrypted-credentials"}',
    '.config.runtime.json': '{"instanceId":"abc"}',
    'lib/functions/helper.js': 'return msg;',
  };
  for (const [name, text] of Object.entries(nodeRedFiles)) writeFileSync(join(userDir, name), text);
  return { dir: g.dir, config: g.config, userDir, nodeRedFiles };
}

function expectNodeRed(userDir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) expect(readFileSync(join(userDir, name), 'utf8'), name).toBe(text);
}

const env = { ...NR_ENV };

describe('streetbox backup / restore: Node-RED, GNU tar, progress', () => {
  // One stopped gateway, and one backup of it that the Node-RED test reads and the GNU tar tests
  // re-pack (each restores into a fresh directory of its own; nothing writes into the gateway's).
  let gw: StoppedGateway;
  let out: string;
  let b: CliResult;
  beforeAll(async () => {
    gw = stoppedGateway(shared);
    out = join(gw.dir, 'nr.tar.gz');
    b = await runCli(['backup', '--config', gw.config, '--out', out], { env });
  });

  it('backs up Node-RED\'s user directory (flows and credentials) and restores it, moving the one it replaces aside', async () => {
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/, Node-RED 4 file\(s\)\n$/);
    const listing = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n');
    for (const f of Object.keys(gw.nodeRedFiles)) expect(listing).toContain(`node-red/${f}`);
    for (const line of execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' }).trim().split('\n')) {
      if (line.startsWith('-')) expect(line.slice(0, 10), line).toBe('-rw-------');
    }

    // a cabinet whose Node-RED has other flows
    const fresh = dir();
    writeFileSync(fresh.config, NR_CONFIG);
    mkdirSync(join(fresh.dir, 'data/node-red'), { recursive: true });
    writeFileSync(join(fresh.dir, 'data/node-red/flows.json'), '[]');
    const r = await runCli(['restore', '--from', out, '--config', fresh.config], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(join(fresh.dir, 'data/node-red'));
    expectNodeRed(join(fresh.dir, 'data/node-red'), gw.nodeRedFiles);
    const aside = readdirSync(join(fresh.dir, 'data')).find((f) => f.startsWith('node-red.before-restore-'))!;
    expect(readFileSync(join(fresh.dir, 'data', aside, 'flows.json'), 'utf8')).toBe('[]');
    expect(allReadings(join(fresh.dir, 'data/gw.db'))).toHaveLength(5000);
  });

  it.each([
    ['tar czf x.tgz . (./ names)', (_root: string) => ['-czf', 'X', '.']],
    ['tar czf x.tgz <names> (bare names)', (_root: string) => ['-czf', 'X', 'manifest.json', 'devices.yaml', 'streetbox.db', 'node-red']],
    ['tar czf x.tgz <dir> (one directory around it)', (_root: string) => ['-czf', 'X', '-C', '..', 'unpacked']],
  ])('restores a backup re-packed by GNU tar: %s', async (_name, args) => {
    expect(b.code, b.stderr).toBe(0);
    const work = dir().dir;
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', out, '-C', unpacked]);
    const repacked = join(work, 'repacked.tgz');
    execFileSync('tar', args(unpacked).map((a) => (a === 'X' ? repacked : a)), { cwd: unpacked });

    const fresh = dir();
    const r = await runCli(['restore', '--from', repacked, '--config', fresh.config], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(fresh.config, 'utf8')).toBe(NR_CONFIG);
    expect(integrity(join(fresh.dir, 'data/gw.db'))).toBe('ok');
    expect(allReadings(join(fresh.dir, 'data/gw.db'))).toHaveLength(5000);
    expectNodeRed(join(fresh.dir, 'data/node-red'), gw.nodeRedFiles);
  });

  it('shows progress on stderr, never on stdout: plain lines when piped, a live line on a terminal', async () => {
    // stderr (and stdin) on a pseudo-terminal, stdout a pipe
    const onTerminal = (args: string[]): Promise<CliResult> =>
      collect(spawn('python3', [join(import.meta.dirname, 'ttyRun.py'), process.execPath, ...CLI_ARGS, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }), 60_000);
    // the piped backup and the one on a terminal, at once
    const [piped, tty] = await Promise.all([
      runCli(['backup', '--config', gw.config, '--out', join(gw.dir, 'p.tar.gz')], { env }),
      onTerminal(['backup', '--config', gw.config, '--out', join(gw.dir, 't.tar.gz')]),
    ]);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout.trim().split('\n')).toHaveLength(1);
    expect(piped.stderr).toMatch(/^backup: copying the database \(\d+\.\d MiB\)$/m);
    expect(piped.stderr).toMatch(/^backup: packing \(/m);
    expect(piped.stderr).not.toContain('\r');

    expect(tty.code, tty.stderr).toBe(0);
    expect(tty.stdout.trim().split('\n')).toHaveLength(1);
    expect(tty.stdout).toMatch(/t\.tar\.gz \(tar\.gz\): gateway "nr-test"/);
    expect(tty.stderr).toMatch(/\r\x1b\[Kbackup: copying the database [\d.]+ of [\d.]+ MiB \(\d+ %\)/);
    expect(tty.stderr).toMatch(/\r\x1b\[Kbackup: packing [\d.]+ of [\d.]+ MiB \(\d+ %\)/);
    // the live line is erased before the warning
    expect(tty.stderr).toMatch(/\r\x1b\[K(\x1b\[\d+m)?!.* holds secrets/);

    const fresh = dir();
    const restored = await onTerminal(['restore', '--from', join(gw.dir, 't.tar.gz'), '--config', fresh.config]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/^restored gateway "nr-test"/);
    expect(restored.stderr).toMatch(/\r\x1b\[Krestore: unpacking [\d.]+ of [\d.]+ MiB \(\d+ %\)/);
    expect(restored.stderr).toMatch(/\r\x1b\[Krestore: checking /);
  });
});

