/** The firmware journal in a real store file: deployments and jobs, forward-only moves, durable progress (across a reopen and a SIGKILL), the outbox. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FirmwareJournal, MAX_REJECTED, MAX_REJECTED_TEXT } from '../../edge/firmware/journal.js';
import { JOB_STAGES, type DeploymentRecord, type DeploymentReport, type JobRecord, type JobStage } from '../../edge/firmware/records.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { loggerToLines } from '../helpers/logLines.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'progressChild.ts');
const ROOT = join(import.meta.dirname, '..', '..');

let dir: TempDir;
let stores: SqliteStore[];
const children = new Set<ChildProcess>();

beforeEach(() => {
  dir = tempDir('streetbox-fwjournal-');
  stores = [];
});
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const s of stores) s.close();
  dir.remove();
});

function openAt(path = dir.file('streetbox.db'), log = silentLogger()): { store: SqliteStore; journal: FirmwareJournal } {
  const store = openStore({ path, maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger() });
  stores.push(store);
  const journal = FirmwareJournal.open(store, log);
  if (journal === null) throw new Error('a SqliteStore has module tables');
  return { store, journal };
}

const artifact = { name: 'slc', version: '2.4.1', versionCode: 0x0241, size: 4800, sha256: 'b'.repeat(64), source: { url: 'https://central.example/a' } };

function deployment(id: string, over: Partial<DeploymentRecord> = {}): DeploymentRecord {
  return { id, source: 'central', principal: 'upstream', role: 'central', manifest: `{"id":"${id}"}`, artifact, status: 'running', reason: null, code: null, wave: 0, acceptedAt: 1_000, deadline: 9_000, endedAt: null, ...over };
}

function job(deploymentId: string, device: string, wave = 0, over: Partial<JobRecord> = {}): JobRecord {
  return {
    deployment: deploymentId, device, method: 'registerBlock', wave, stage: 'pending', blocksAcked: 0, blocksTotal: 20, bytesAcked: 0,
    versionBefore: null, versionAfter: null, waiting: null, code: null, reason: null, attempts: 0, stageAt: 1_000, startedAt: null, endedAt: null, ...over,
  };
}

function report(id: string, status: DeploymentReport['status'], at: number): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  return { id, gateway: 'gw-1', status, code: null, reason: null, artifact: { name: 'slc', version: '2.4.1', size: 4800, sha256: artifact.sha256 }, wave: 0, waves: 1, counts, jobs: [], at };
}

describe('FirmwareJournal: deployments', () => {
  it('is null for a store without module tables', () => {
    expect(FirmwareJournal.open({ appendReadings: () => undefined }, silentLogger())).toBeNull();
  });

  it('records a deployment with its jobs, in wave then given order, and lists newest first', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-9', 1), job('d1', 'lamp-3', 0), job('d1', 'lamp-1', 1), job('d1', 'lamp-7', 0)]);
    journal.addDeployment(deployment('d2', { acceptedAt: 2_000 }), [job('d2', 'lamp-1')]);
    expect(journal.deployment('d1')).toEqual(deployment('d1'));
    expect(journal.jobs('d1').map((j) => `${j.wave}:${j.device}`)).toEqual(['0:lamp-3', '0:lamp-7', '1:lamp-9', '1:lamp-1']);
    expect(journal.job('d1', 'lamp-9')).toEqual(job('d1', 'lamp-9', 1));
    expect(journal.job('d1', 'nope')).toBeUndefined();
    expect(journal.deployments({ limit: 10 }).map((d) => d.id)).toEqual(['d2', 'd1']);
    expect(journal.deployments({ limit: 1 }).map((d) => d.id)).toEqual(['d2']);
  });

  it('refuses a duplicate id with E_FW_DUPLICATE, writing nothing of it', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1')]);
    expect(() => journal.addDeployment(deployment('d1', { principal: 'other' }), [job('d1', 'lamp-2')])).toThrow(expect.objectContaining({ code: 'E_FW_DUPLICATE' }));
    expect(journal.jobs('d1').map((j) => j.device)).toEqual(['lamp-1']);
    expect(journal.deployment('d1')?.principal).toBe('upstream');
  });

  it('records refusals, also under an id that exists (a duplicate), and keeps the accepted one as the id\'s deployment', () => {
    const { journal } = openAt();
    journal.reject(deployment('bad', { status: 'rejected', code: 'E_FW_SIGNATURE', reason: 'unsigned' }));
    expect(journal.deployment('bad')).toMatchObject({ status: 'rejected', code: 'E_FW_SIGNATURE', endedAt: 1_000 });
    journal.addDeployment(deployment('d1'), []);
    journal.reject(deployment('d1', { status: 'rejected', code: 'E_FW_DUPLICATE', reason: 'recorded already', acceptedAt: 3_000 }));
    expect(journal.deployment('d1')?.status).toBe('running');
    expect(journal.deployments({ limit: 10 }).map((d) => `${d.id}:${d.status}`)).toEqual(['d1:rejected', 'd1:running', 'bad:rejected']);
    expect(journal.deployments({ limit: 10, active: true }).map((d) => d.id)).toEqual(['d1']);
    // a refused id may be sent again, fixed
    journal.addDeployment(deployment('bad'), []);
    expect(journal.deployment('bad')?.status).toBe('running');
  });

  it('keeps the newest refusals only, their texts fewer still, and says so in the log', () => {
    const lines: string[] = [];
    const { journal } = openAt(dir.file('streetbox.db'), loggerToLines(lines));
    const n = MAX_REJECTED + 7;
    for (let i = 0; i < n; i++) journal.reject(deployment(`r${i}`, { status: 'rejected', acceptedAt: i }));
    const kept = journal.deployments({ limit: 1000 });
    expect(kept).toHaveLength(MAX_REJECTED);
    expect(kept[0]!.id).toBe(`r${n - 1}`);
    expect(kept.at(-1)!.id).toBe(`r${n - MAX_REJECTED}`);
    expect(kept.filter((d) => d.manifest !== '')).toHaveLength(MAX_REJECTED_TEXT);
    expect(journal.deployment('r0')).toBeUndefined();
    const dropped = lines.map((l) => JSON.parse(l) as { msg: string; droppedSinceStart?: number }).filter((l) => l.msg.includes('refused deployments deleted'));
    expect(dropped.at(-1)!.droppedSinceStart).toBe(7);
  });

  it('moves a status running ↔ paused and to one final status, never from it', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), []);
    expect(journal.setStatus('d1', 'paused', { reason: 'paused by tech' })).toMatchObject({ status: 'paused', reason: 'paused by tech', endedAt: null });
    // back to running clears why it was paused
    expect(journal.setStatus('d1', 'running')).toMatchObject({ status: 'running', reason: null });
    expect(journal.setStatus('d1', 'halted', { code: 'E_FW_HALTED', reason: 'wave 1: 2 of 4 failed', endedAt: 5_000 })).toMatchObject({
      status: 'halted', code: 'E_FW_HALTED', reason: 'wave 1: 2 of 4 failed', endedAt: 5_000,
    });
    for (const s of ['running', 'paused', 'cancelled', 'completed', 'halted'] as const) {
      expect(() => journal.setStatus('d1', s)).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
    }
    expect(journal.deployment('d1')).toMatchObject({ status: 'halted', endedAt: 5_000 });
    journal.addDeployment(deployment('d2'), []);
    expect(() => journal.setStatus('d2', 'rejected')).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
    expect(() => journal.setStatus('nope', 'paused')).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
    journal.reject(deployment('r1', { status: 'rejected' }));
    expect(() => journal.setStatus('r1', 'running')).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
  });

  it('an ending deployment (halted or cancelled while jobs finish) only ends: never back to running or paused', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d3'), []);
    expect(journal.setStatus('d3', 'ending', { code: 'E_FW_CANCELLED', reason: 'cancelled by tech' })).toMatchObject({ status: 'ending', code: 'E_FW_CANCELLED', endedAt: null });
    expect(journal.deployments({ limit: 10, active: true }).map((d) => d.id)).toContain('d3');
    for (const s of ['running', 'paused', 'ending'] as const) {
      expect(() => journal.setStatus('d3', s)).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
    }
    expect(journal.setStatus('d3', 'cancelled', { code: 'E_FW_CANCELLED', reason: 'cancelled by tech', endedAt: 7_000 })).toMatchObject({ status: 'cancelled', endedAt: 7_000 });
  });

  it('moves the wave forward only', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), []);
    journal.setWave('d1', 2);
    journal.setWave('d1', 1);
    expect(journal.deployment('d1')?.wave).toBe(2);
    journal.setStatus('d1', 'completed', { endedAt: 3 });
    expect(() => journal.setWave('d1', 3)).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
  });
});

describe('FirmwareJournal: jobs', () => {
  it('advances forward only, stamping stage, start and end times', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1', 0, { waiting: 'night: lights update by day from 08:12' })]);
    const fetching = journal.advance('d1', 'lamp-1', 'fetching', { versionBefore: 256 }, 2_000);
    expect(fetching).toMatchObject({ stage: 'fetching', stageAt: 2_000, startedAt: 2_000, endedAt: null, waiting: null, versionBefore: 256 });
    journal.patchJob('d1', 'lamp-1', { attempts: 3 });
    const transferring = journal.advance('d1', 'lamp-1', 'transferring', { blocksTotal: 20 }, 3_000);
    expect(transferring).toMatchObject({ stage: 'transferring', stageAt: 3_000, startedAt: 2_000, attempts: 0, blocksTotal: 20, versionBefore: 256 });
    // the same stage again: its timeout and attempts count anew
    journal.patchJob('d1', 'lamp-1', { attempts: 2 });
    expect(journal.advance('d1', 'lamp-1', 'transferring', {}, 3_500)).toMatchObject({ stageAt: 3_500, attempts: 0 });
    expect(() => journal.advance('d1', 'lamp-1', 'fetching', {}, 4_000)).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
    journal.advance('d1', 'lamp-1', 'activating', {}, 4_000);
    journal.advance('d1', 'lamp-1', 'verifying', {}, 5_000);
    const confirmed = journal.advance('d1', 'lamp-1', 'confirmed', { versionAfter: 0x0241 }, 6_000);
    expect(confirmed).toMatchObject({ stage: 'confirmed', stageAt: 6_000, startedAt: 2_000, endedAt: 6_000, versionBefore: 256, versionAfter: 0x0241 });
    // a final stage never moves, not even "forward" or to itself
    for (const s of ['failed', 'cancelled', 'confirmed'] as const) {
      expect(() => journal.advance('d1', 'lamp-1', s, {}, 7_000)).toThrow(expect.objectContaining({ code: 'E_FW_FINAL' }));
    }
    expect(journal.job('d1', 'lamp-1')).toEqual(confirmed);
    expect(() => journal.advance('d1', 'nope', 'fetching', {}, 1)).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
  });

  it('ends a job that never started without a start time, with its code and reason', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1')]);
    expect(journal.advance('d1', 'lamp-1', 'failed', { code: 'E_FW_EXPIRED', reason: 'not started before the deadline' }, 9_000)).toMatchObject({
      stage: 'failed', startedAt: null, endedAt: 9_000, code: 'E_FW_EXPIRED', reason: 'not started before the deadline',
    });
  });

  it('keeps versions as numbers or strings', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'gw-1', 0, { method: 'gateway', versionBefore: '0.1.0' })]);
    journal.advance('d1', 'gw-1', 'confirmed', { versionAfter: '0.2.0' }, 2);
    expect(journal.job('d1', 'gw-1')).toMatchObject({ versionBefore: '0.1.0', versionAfter: '0.2.0' });
  });

  it('patches what it is given, clearing with null, keeping the rest', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1')]);
    journal.patchJob('d1', 'lamp-1', { waiting: 'window', attempts: 2, versionBefore: 256, code: 'E_FW_TIMEOUT', reason: 'slow' });
    expect(journal.job('d1', 'lamp-1')).toMatchObject({ waiting: 'window', attempts: 2, versionBefore: 256, code: 'E_FW_TIMEOUT', reason: 'slow', stage: 'pending' });
    journal.patchJob('d1', 'lamp-1', { waiting: null });
    expect(journal.job('d1', 'lamp-1')).toMatchObject({ waiting: null, attempts: 2, code: 'E_FW_TIMEOUT' });
    expect(() => journal.patchJob('d1', 'nope', { attempts: 1 })).toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
  });

  it('lists the jobs a restart resumes: not ended, of deployments not ended', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'a'), job('d1', 'b'), job('d1', 'c', 1)]);
    journal.addDeployment(deployment('d2'), [job('d2', 'x')]);
    journal.addDeployment(deployment('d3'), [job('d3', 'y')]);
    journal.advance('d1', 'b', 'confirmed', {}, 5);
    journal.setStatus('d2', 'paused');
    journal.setStatus('d3', 'cancelled', { endedAt: 6 });
    expect(journal.activeJobs().map((j) => `${j.deployment}/${j.device}`)).toEqual(['d1/a', 'd1/c', 'd2/x']);
  });

  it('journals progress forward only, and not on an ended job', () => {
    const { journal } = openAt();
    journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1')]);
    journal.advance('d1', 'lamp-1', 'transferring', {}, 2);
    journal.progress('d1', 'lamp-1', 5, 1200);
    journal.progress('d1', 'lamp-1', 3, 720);
    journal.progress('d1', 'lamp-1', 5, 1);
    expect(journal.job('d1', 'lamp-1')).toMatchObject({ blocksAcked: 5, bytesAcked: 1200 });
    journal.progress('d1', 'nope', 9, 9);
    journal.advance('d1', 'lamp-1', 'failed', { code: 'E_FW_TRANSFER' }, 3);
    journal.progress('d1', 'lamp-1', 8, 1920);
    expect(journal.job('d1', 'lamp-1')).toMatchObject({ blocksAcked: 5, bytesAcked: 1200 });
  });

  it('keeps progress across a reopened store', () => {
    const path = dir.file('streetbox.db');
    const first = openAt(path);
    first.journal.addDeployment(deployment('d1'), [job('d1', 'lamp-1')]);
    first.journal.advance('d1', 'lamp-1', 'transferring', {}, 2);
    for (let b = 1; b <= 300; b++) first.journal.progress('d1', 'lamp-1', b, b * 240);
    first.store.close();
    stores = stores.filter((s) => s !== first.store);
    const second = openAt(path);
    expect(second.journal.job('d1', 'lamp-1')).toMatchObject({ stage: 'transferring', blocksAcked: 300, bytesAcked: 72_000 });
    expect(second.journal.activeJobs()).toHaveLength(1);
  });
});

/** Runs the fixture until it exits (killed); the acked counts it printed, complete lines only. */
async function runChild(path: string, from: number, kill: { self: number } | { afterMs: number }): Promise<number[]> {
  const args = [FIXTURE, path, String(from), ...('self' in kill ? ['self-kill', String(kill.self)] : [])];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if ('afterMs' in kill && out.startsWith('ready\n') && !child.killed) {
      setTimeout(() => child.kill('SIGKILL'), kill.afterMs);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
  children.delete(child);
  await new Promise((resolve) => setImmediate(resolve));
  expect(signal, err).toBe('SIGKILL');
  return out.split('\n').slice(0, -1).flatMap((l) => (/^acked (\d+)$/.exec(l) ? [Number(l.slice(6))] : []));
}

describe('FirmwareJournal: progress under SIGKILL', () => {
  it('has every block progress() returned for on disk when the process dies right after', async () => {
    const path = dir.file('kill.db');
    const acked = await runChild(path, 0, { self: 137 });
    expect(acked.at(-1)).toBe(137);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare("SELECT blocks_acked, bytes_acked FROM firmware_jobs WHERE deployment = 'dep-kill'").get()).toEqual({ blocks_acked: 137, bytes_acked: 137 * 240 });
    } finally {
      db.close();
    }
  }, 30_000);

  it('never loses an acknowledged block over kills at random moments, resuming from the journal each time', async () => {
    const path = dir.file('kill.db');
    let from = 0;
    for (let run = 0; run < 8 && from < 300; run++) {
      const acked = await runChild(path, from, { afterMs: Math.random() * 120 });
      const { journal } = openAt(path);
      const j = journal.job('dep-kill', 'lamp-1')!;
      // at least what was reported; at most one block the kill caught between commit and print
      const reported = acked.at(-1) ?? from;
      expect(j.blocksAcked).toBeGreaterThanOrEqual(reported);
      expect(j.blocksAcked).toBeLessThanOrEqual(Math.min(300, reported + 1));
      expect(j.bytesAcked).toBe(j.blocksAcked * 240);
      stores.pop()!.close();
      from = j.blocksAcked;
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      db.close();
    }
  }, 60_000);
});

describe('FirmwareJournal: the outbox', () => {
  it('keeps the latest report per deployment under a new seq, oldest first, until delivered', () => {
    const { journal } = openAt();
    journal.queueReport(report('d1', 'running', 1));
    journal.queueReport(report('d2', 'running', 2));
    const [a, b] = journal.pendingReports(10);
    expect([a!.topicId, b!.topicId]).toEqual(['d1', 'd2']);
    journal.queueReport(report('d1', 'completed', 3));
    const pending = journal.pendingReports(10);
    expect(pending.map((p) => `${p.topicId}:${p.report.status}`)).toEqual(['d2:running', 'd1:completed']);
    expect(pending[1]!.seq).toBeGreaterThan(b!.seq);
    // delivering the replaced report's seq leaves the newer one
    journal.reportDelivered(a!.seq);
    expect(journal.pendingReports(10)).toHaveLength(2);
    const outbox = journal.outbox();
    outbox.delivered(pending[0]!.seq);
    expect(outbox.pending(10).map((p) => p.report)).toEqual([report('d1', 'completed', 3)]);
    expect(journal.pendingReports(0)).toEqual([]);
  });

  it('survives a reopened store', () => {
    const path = dir.file('streetbox.db');
    const first = openAt(path);
    first.journal.queueReport(report('d1', 'running', 1));
    first.store.close();
    stores = stores.filter((s) => s !== first.store);
    expect(openAt(path).journal.pendingReports(5).map((p) => p.topicId)).toEqual(['d1']);
  });
});
