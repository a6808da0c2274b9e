import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStoreReadOnly, type Reading } from '../../edge/store/index.js';
import { collect, runCli, spawnCli, tempGateway, type CliResult } from '../support/cli.js';

// A gateway ingesting from simulated Modbus TCP controllers (no PTY), committing every 100 ms.
const CONFIG = `
gateway: { id: backup-test }
storage: { path: data/gw.db, flushInterval: 100ms }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 100ms }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 100ms }
broker: { enabled: false }
api: { enabled: false }
simulate: true
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function dir(): { dir: string; config: string } {
  const g = tempGateway('');
  cleanups.push(g.cleanup);
  return g;
}

/** Starts a gateway process on `config`; resolves once it runs. Stopped (SIGTERM) at cleanup. */
async function startGateway(config: string): Promise<{ child: ChildProcess; stop: () => Promise<CliResult> }> {
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
  cleanups.push(async () => void (await stop()));
  await waitFor(() => out.includes('"gateway running"'), 20_000);
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
  it('backs up while the gateway ingests; the restore into a fresh directory has every reading committed before the backup', async () => {
    const g = tempGateway(CONFIG);
    cleanups.push(g.cleanup);
    const db = join(g.dir, 'data/gw.db');
    const gw = await startGateway(g.config);
    await waitFor(() => existsSync(db) && allReadings(db).length > 50, 15_000);

    const before = allReadings(db);
    const out = join(g.dir, 'backup.tar.gz');
    const b = await runCli(['backup', '--config', g.config, '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/backup\.tar\.gz \(tar\.gz\): gateway "backup-test" at .*, last seq \d+, \d+ readings/);
    // still ingesting after the backup: the gateway was never paused
    const lastBefore = before.at(-1)!.seq;
    await waitFor(() => allReadings(db).at(-1)!.seq > lastBefore + 20, 10_000);

    // a standard tar reads it
    const listing = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['manifest.json', 'devices.yaml', 'streetbox.db']);

    // restore is refused while the gateway runs, and touches nothing
    const refused = await runCli(['restore', '--from', out, '--config', g.config]);
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
    await waitFor(() => allReadings(restoredDb).at(-1)!.seq > manifest.lastSeq, 10_000);
    expect((await again.stop()).code).toBe(0);
  });

  it('backs up into a directory, and a restore moves the current database and config aside instead of deleting them', async () => {
    const g = tempGateway(CONFIG);
    cleanups.push(g.cleanup);
    const gw = await startGateway(g.config);
    const db = join(g.dir, 'data/gw.db');
    await waitFor(() => existsSync(db) && allReadings(db).length > 10, 15_000);
    const out = join(g.dir, 'backup-dir');
    const b = await runCli(['backup', '--config', g.config, '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['devices.yaml', 'manifest.json', 'streetbox.db']);
    await gw.stop();

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

  it('refuses an existing --out, a missing database and a damaged backup', async () => {
    const g = tempGateway(CONFIG);
    cleanups.push(g.cleanup);
    const noDb = await runCli(['backup', '--config', g.config, '--out', join(g.dir, 'b.tar.gz')]);
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toContain('no database at');

    writeFileSync(join(g.dir, 'exists.tar.gz'), 'x');
    const bad = await runCli(['restore', '--from', join(g.dir, 'exists.tar.gz'), '--config', join(g.dir, 'r/devices.yaml')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('is not a readable streetbox backup');
    expect(existsSync(join(g.dir, 'r/devices.yaml'))).toBe(false);
  });
});
