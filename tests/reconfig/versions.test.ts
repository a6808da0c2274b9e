/** The configuration versions in a real store file: stages, the running pointer, the outbox, the bounds. */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { sha256Hex } from '../../edge/reconfig/atomicFile.js';
import type { ConfigStageReport, NewConfigVersion } from '../../edge/reconfig/records.js';
import { ConfigVersions, MAX_CONFIG_BYTES, MAX_DELIVERED, MAX_REJECTED_CONTENT } from '../../edge/reconfig/versions.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
let stores: SqliteStore[];

beforeEach(() => {
  dir = tempDir('streetbox-versions-');
  stores = [];
});
afterEach(() => {
  for (const s of stores) s.close();
  dir.remove();
});

function openAt(path = dir.file('streetbox.db')): { store: SqliteStore; versions: ConfigVersions } {
  const store = openStore({ path, maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger() });
  stores.push(store);
  const versions = ConfigVersions.open(store, silentLogger());
  if (versions === null) throw new Error('a SqliteStore has module tables');
  return { store, versions };
}

function change(id: string, content: string, over: Partial<NewConfigVersion> = {}): NewConfigVersion {
  return { id, content, source: 'technician', principal: 'ops', at: 1_000, baseVersion: null, stage: 'staged', ...over };
}

function report(id: string, stage: ConfigStageReport['stage'], version: number): ConfigStageReport {
  return { id, version, stage, at: 5, source: 'central', principal: 'upstream', runningVersion: version };
}

describe('ConfigVersions', () => {
  it('is null for a store without module tables', () => {
    expect(ConfigVersions.open({ appendReadings: () => undefined })).toBeNull();
    expect(ConfigVersions.open(null)).toBeNull();
  });

  it('records a version with its sha256, size and text, numbered from 1', () => {
    const { versions } = openAt();
    const text = 'gateway:\n  id: gw-é\n';
    const v = versions.add(change('c1', text, { baseVersion: null, rollbackOf: null }));
    expect(v).toMatchObject({
      version: 1,
      id: 'c1',
      sha256: sha256Hex(text),
      bytes: Buffer.byteLength(text),
      source: 'technician',
      principal: 'ops',
      at: 1_000,
      baseVersion: null,
      stage: 'staged',
      reason: null,
      errors: [],
      components: [],
      appliedAt: null,
      confirmedAt: null,
      endedAt: null,
      rollbackOf: null,
      running: false,
    });
    expect(versions.content(1)).toBe(text);
    expect(versions.byId('c1')?.version).toBe(1);
    expect(versions.get(2)).toBeUndefined();
    expect(versions.byId('nope')).toBeUndefined();
    expect(versions.content(2)).toBeUndefined();
  });

  it('refuses a second change with the same id, and a text over 1 MiB', () => {
    const { versions } = openAt();
    versions.add(change('c1', 'a: 1\n'));
    expect(() => versions.add(change('c1', 'a: 2\n'))).toThrow(expect.objectContaining({ code: 'E_CONFIG_DUPLICATE' }));
    expect(() => versions.add(change('big', 'x'.repeat(MAX_CONFIG_BYTES + 1)))).toThrow(expect.objectContaining({ code: 'E_CONFIG_TOO_LARGE' }));
    expect(versions.list().map((v) => v.id)).toEqual(['c1']);
  });

  it('a rejected version ends at once and keeps its problems', () => {
    const { versions } = openAt();
    const errors = [{ line: 3, col: 5, path: 'devices[0].unit', message: 'expected a number' }];
    const v = versions.add(change('bad', 'devices: [\n', { stage: 'rejected', reason: 'invalid', errors, at: 7 }));
    expect(v).toMatchObject({ stage: 'rejected', reason: 'invalid', errors, endedAt: 7 });
    expect(versions.unfinished()).toEqual([]);
  });

  it('moves stages forward only, with the times each stage implies', () => {
    const { versions } = openAt();
    const v1 = versions.add(change('c1', 'a: 1\n')).version;
    const applied = versions.transition(v1, 'applied', { at: 2_000, components: ['modbus bus rtu1', 'sync'], running: true });
    expect(applied).toMatchObject({ stage: 'applied', appliedAt: 2_000, components: ['modbus bus rtu1', 'sync'], running: true, endedAt: null });
    const confirmed = versions.transition(v1, 'confirmed', { at: 3_000 });
    expect(confirmed).toMatchObject({ stage: 'confirmed', appliedAt: 2_000, confirmedAt: 3_000, components: ['modbus bus rtu1', 'sync'], running: true });

    for (const stage of ['staged', 'applied', 'rejected', 'rolledBack', 'confirmed'] as const) {
      expect(() => versions.transition(v1, stage, { at: 4_000 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    }
    expect(versions.get(v1)).toMatchObject({ stage: 'confirmed', confirmedAt: 3_000 });

    const v2 = versions.add(change('c2', 'a: 2\n')).version;
    expect(() => versions.transition(v2, 'confirmed', { at: 5_000 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    expect(() => versions.transition(v2, 'staged', { at: 5_000 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    const rejected = versions.transition(v2, 'rejected', { at: 5_000, reason: 'stale', code: 'E_CONFIG_STALE' });
    expect(rejected).toMatchObject({ stage: 'rejected', reason: 'stale', endedAt: 5_000, running: false });
    expect(versions.code(v2)).toBe('E_CONFIG_STALE');
    expect(() => versions.transition(v2, 'applied', { at: 6_000 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));

    const v3 = versions.add(change('c3', 'a: 3\n')).version;
    expect(versions.transition(v3, 'rolledBack', { at: 7_000, reason: 'apply failed' })).toMatchObject({ stage: 'rolledBack', endedAt: 7_000, appliedAt: null });
    const v4 = versions.add(change('c4', 'a: 4\n')).version;
    versions.transition(v4, 'applied', { at: 8_000 });
    expect(versions.transition(v4, 'rolledBack', { at: 9_000, reason: 'probe', code: 'E_CONFIG_PROBE' })).toMatchObject({ stage: 'rolledBack', appliedAt: 8_000, endedAt: 9_000, reason: 'probe' });
    expect(() => versions.transition(99, 'applied', { at: 1 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));
  });

  it('moves the running pointer in the same transaction as the stage, ending the version that ran', () => {
    const { versions } = openAt();
    const v1 = versions.add(change('c1', 'a: 1\n')).version;
    versions.transition(v1, 'applied', { at: 1_000, running: true });
    versions.transition(v1, 'confirmed', { at: 1_100 });
    const v2 = versions.add(change('c2', 'a: 2\n')).version;
    versions.transition(v2, 'applied', { at: 2_000, running: true });
    expect(versions.running()?.version).toBe(v2);
    expect(versions.get(v1)).toMatchObject({ running: false, endedAt: 2_000, stage: 'confirmed' });
    expect(versions.list().map((v) => [v.version, v.running])).toEqual([
      [v2, true],
      [v1, false],
    ]);

    // a failing transition changes neither the stage nor the pointer
    const v3 = versions.add(change('c3', 'a: 3\n')).version;
    versions.transition(v3, 'rejected', { at: 2_500 });
    expect(() => versions.transition(v3, 'applied', { at: 2_600, running: true })).toThrow();
    expect(versions.running()?.version).toBe(v2);

    // rolled back: the previous version runs again, its end cleared
    versions.transition(v2, 'rolledBack', { at: 3_000, reason: 'probe failed' });
    versions.setRunning(v1, 3_000);
    expect(versions.running()?.version).toBe(v1);
    expect(versions.get(v1)).toMatchObject({ running: true, endedAt: null });
    expect(versions.get(v2)).toMatchObject({ running: false, endedAt: 3_000, stage: 'rolledBack' });
    expect(() => versions.setRunning(v3)).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    expect(() => versions.setRunning(42)).toThrow(expect.objectContaining({ code: 'E_STORE' }));
  });

  it('lists newest first in pages, finds unfinished versions and versions by sha', () => {
    const { versions } = openAt();
    for (let i = 1; i <= 7; i++) versions.add(change(`c${i}`, `a: ${i}\n`));
    expect(versions.list({ limit: 3 }).map((v) => v.version)).toEqual([7, 6, 5]);
    expect(versions.list({ limit: 3, before: 5 }).map((v) => v.version)).toEqual([4, 3, 2]);
    expect(versions.list({ limit: 3, before: 2 }).map((v) => v.version)).toEqual([1]);
    expect(versions.list({ limit: undefined }).length).toBe(7);
    expect(versions.list({ limit: 0 })).toEqual([]);

    versions.transition(1, 'applied', { at: 1, running: true });
    versions.transition(1, 'confirmed', { at: 2 });
    versions.transition(2, 'rejected', { at: 3 });
    versions.transition(3, 'applied', { at: 4 });
    versions.transition(4, 'rolledBack', { at: 5 });
    expect(versions.unfinished().map((v) => [v.version, v.stage])).toEqual([
      [3, 'applied'],
      [5, 'staged'],
      [6, 'staged'],
      [7, 'staged'],
    ]);

    // the same text twice: the latest applied or confirmed one
    const text = 'a: same\n';
    const s1 = versions.add(change('s1', text)).version;
    versions.transition(s1, 'applied', { at: 6 });
    versions.transition(s1, 'confirmed', { at: 7 });
    const s2 = versions.add(change('s2', text)).version;
    expect(versions.findBySha(sha256Hex(text))?.version).toBe(s1);
    versions.transition(s2, 'applied', { at: 8 });
    expect(versions.findBySha(sha256Hex(text))?.version).toBe(s2);
    versions.transition(s2, 'rolledBack', { at: 9 });
    expect(versions.findBySha(sha256Hex(text))?.version).toBe(s1);
    expect(versions.findBySha(sha256Hex('a: 2\n'))).toBeUndefined(); // rejected
  });

  it('keeps everything across a reopen, and never reuses a version number', () => {
    const path = dir.file('keep.db');
    const first = openAt(path);
    const v1 = first.versions.add(change('c1', 'a: 1\n')).version;
    first.versions.transition(v1, 'applied', { at: 1, running: true, components: ['sync'] });
    first.versions.transition(v1, 'confirmed', { at: 2 });
    const v2 = first.versions.add(change('c2', 'a: 2\n')).version;
    const seq = first.versions.queueReport(report('c2', 'staged', v2));
    // the last row removed: its number is still not given again (AUTOINCREMENT)
    first.store.sqlite.prepare('DELETE FROM config_versions WHERE version = ?').run(v2);
    first.store.close();

    const again = openAt(path);
    expect(again.versions.running()).toMatchObject({ version: v1, stage: 'confirmed', components: ['sync'], running: true });
    expect(again.versions.content(v1)).toBe('a: 1\n');
    expect(again.versions.pendingReports(10)).toEqual([{ seq, topicId: 'c2', report: report('c2', 'staged', v2) }]);
    expect(again.versions.add(change('c3', 'a: 3\n')).version).toBe(v2 + 1);
  });

  it('queues reports in order until delivered', () => {
    const { versions } = openAt();
    const seqs = [report('a', 'staged', 1), report('a', 'applied', 1), report('b', 'rejected', 2), report('a', 'confirmed', 1)].map((r) => versions.queueReport(r));
    expect(versions.pendingReports(10).map((p) => [p.topicId, p.report.stage])).toEqual([
      ['a', 'staged'],
      ['a', 'applied'],
      ['b', 'rejected'],
      ['a', 'confirmed'],
    ]);
    expect(versions.pendingReports(2).map((p) => p.seq)).toEqual(seqs.slice(0, 2));
    versions.markDelivered(seqs[1]!);
    versions.markDelivered(seqs[0]!);
    expect(versions.pendingReports(10).map((p) => p.seq)).toEqual(seqs.slice(2));
    versions.markDelivered(seqs[2]!);
    versions.markDelivered(seqs[3]!);
    expect(versions.pendingReports(10)).toEqual([]);
    expect(versions.queueReport(report('c', 'staged', 3))).toBeGreaterThan(seqs[3]!);
  });

  it('drops a queued report that is not JSON any more, keeping the others', () => {
    const { store, versions } = openAt();
    const bad = versions.queueReport(report('a', 'staged', 1));
    const good = versions.queueReport(report('b', 'staged', 2));
    store.sqlite.prepare('UPDATE config_outbox SET report = ? WHERE seq = ?').run('{not json', bad);
    expect(versions.pendingReports(10).map((p) => p.seq)).toEqual([good]);
    expect(versions.pendingReports(10).map((p) => p.seq)).toEqual([good]);
  });

  it('bounds the kept texts of rejected versions and the delivered reports', () => {
    const { store, versions } = openAt();
    const accepted = versions.add(change('ok', 'a: ok\n')).version;
    const n = MAX_REJECTED_CONTENT + 5;
    store.sqlite.transaction(() => {
      for (let i = 1; i <= n; i++) versions.add(change(`r${i}`, `bad ${i}: [\n`, { stage: 'rejected', errors: [{ line: 1, col: 1, path: '', message: 'broken' }] }));
    })();
    const rejected = versions.list({ limit: 1000 }).filter((v) => v.stage === 'rejected');
    expect(rejected.length).toBe(n);
    const kept = rejected.filter((v) => versions.content(v.version) !== undefined).map((v) => v.id);
    expect(kept.length).toBe(MAX_REJECTED_CONTENT);
    expect(kept).toContain(`r${n}`);
    expect(kept).not.toContain('r5');
    // the oldest keep their row, sha256 and problems; only the text is gone
    expect(versions.byId('r1')).toMatchObject({ sha256: sha256Hex('bad 1: [\n'), errors: [{ message: 'broken' }] });
    expect(versions.content(accepted)).toBe('a: ok\n');
    // a staged version rejected later counts too
    const late = versions.add(change('late', 'late: [\n')).version;
    versions.transition(late, 'rejected', { at: 1 });
    expect(versions.content(late)).toBe('late: [\n');
    expect(versions.content(versions.byId('r6')!.version)).toBeUndefined();

    const total = MAX_DELIVERED + 20;
    const seqs: number[] = [];
    store.sqlite.transaction(() => {
      for (let i = 0; i < total; i++) seqs.push(versions.queueReport(report(`o${i}`, 'staged', 1)));
    })();
    for (const seq of seqs.slice(0, total - 3)) versions.markDelivered(seq);
    const rows = store.sqlite.prepare('SELECT delivered, count(*) AS n FROM config_outbox GROUP BY delivered ORDER BY delivered').all();
    expect(rows).toEqual([
      { delivered: 0, n: 3 },
      { delivered: 1, n: MAX_DELIVERED },
    ]);
    expect(versions.pendingReports(10).map((p) => p.topicId)).toEqual([`o${total - 3}`, `o${total - 2}`, `o${total - 1}`]);
  });

  it('reads a data file read-only, with or without the tables', () => {
    const path = dir.file('ro.db');
    const store = openStore({ path, maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger() });
    stores.push(store);
    // a file from before this version of the gateway: no config tables
    const before = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const ro = ConfigVersions.readOnly(before);
      expect(ro.list()).toEqual([]);
      expect(ro.running()).toBeUndefined();
      expect(ro.get(1)).toBeUndefined();
      expect(ro.byId('x')).toBeUndefined();
      expect(ro.content(1)).toBeUndefined();
      expect(ro.unfinished()).toEqual([]);
      expect(ro.findBySha('00')).toBeUndefined();
      expect(ro.pendingReports(5)).toEqual([]);

      // the gateway makes the tables and a version while the view is open
      const versions = ConfigVersions.open(store)!;
      const v = versions.add(change('c1', 'a: 1\n')).version;
      versions.transition(v, 'applied', { at: 1, running: true });
      expect(ro.running()).toMatchObject({ version: v, running: true });
      expect(ro.content(v)).toBe('a: 1\n');
      expect(ro.list().map((x) => x.id)).toEqual(['c1']);
      expect(() => ro.add(change('c2', 'a: 2\n'))).toThrow(expect.objectContaining({ code: 'E_STORE' }));
      expect(() => ro.transition(v, 'confirmed', { at: 2 })).toThrow(expect.objectContaining({ code: 'E_STORE' }));
      expect(() => ro.queueReport(report('c1', 'applied', v))).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    } finally {
      before.close();
    }
  });
});
