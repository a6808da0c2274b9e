/**
 * The engine of a configuration change (edge/reconfig/manager.ts, ConfigManager) at its edge
 * cases: a rollback recorded before the apply-back ends, a change cut short whose previous
 * version no longer validates, a stop during a commit-confirm apply, a store that fails right
 * after the file write, a reload racing a rollback, a signing key removed by the change ahead,
 * a duplicate id, and a stop while an apply hangs.
 *
 * The parts are real (a SqliteStore on a temp file, ConfigVersions.open(store), a temp
 * devices.yaml replaced by the manager's atomic write, the EventBus) but the applier is a small
 * test one implementing ConfigApplier: the real applier (edge/main.ts) needs a whole gateway, and
 * these tests drive what real parts cannot produce on demand — an apply that hangs or throws, a
 * store transition that fails, a stop at a given moment. The real road is covered by
 * tests/reconfig/e2e and tests/reconfig/crash.test.ts.
 *
 * A restart of the gateway is a second ConfigManager on the same store and file, started from
 * the file's text (as main.ts does). Time is a FakeClock moved by `drive`, so a failing probe or
 * a commit-confirm window costs no wall time; nothing sleeps for a fixed time.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import type { GatewayContext } from '../../edge/component.js';
import { parseConfig } from '../../edge/config/loader.js';
import type { Config } from '../../edge/config/schema.js';
import { StreetboxError } from '../../edge/errors.js';
import { silentLogger } from '../../edge/log.js';
import { ConfigManager } from '../../edge/reconfig/manager.js';
import { signChange } from '../../edge/reconfig/signature.js';
import type { ChangePlan, ConfigApplier, ConfigStageReport, ConfigSubmitted, ConfigVersion, ProbeBaseline } from '../../edge/reconfig/types.js';
import { ConfigVersions } from '../../edge/reconfig/versions.js';
import { BatchWriter, openStore, type SqliteStore } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

/** the probe's period, and the step `drive` moves the fake clock by */
const STEP_MS = 100;
/** the most fake time a `drive` moves through before it gives up (every bound in these tests is far below) */
const DRIVE_LIMIT_MS = 10 * 60_000;
const GATEWAY = 'gw-unit';
const log = silentLogger();

// ───────────────────────────── texts ─────────────────────────────

interface Shape {
  /** the evening schedule's level: what makes two texts differ (a change of `control schedules`) */
  level: number;
  /** gateway.site as `${SB_UNIT_SITE}`: a text that validates only while that variable is set */
  siteFromEnv?: boolean;
  /** a Modbus bus `net` with one lamp, and an upstream `sync` section with these signing keys */
  busAndSync?: { keys: string[] };
}

/** A whole devices.yaml. */
function text(s: Shape): string {
  const lines = [
    `# manager test, level ${s.level}`,
    'gateway:',
    `  id: ${GATEWAY}`,
    '  confirmTimeout: 1s',
    ...(s.siteFromEnv ? ['  site: ${SB_UNIT_SITE}'] : []),
    'storage:',
    '  path: unit.db',
    'groups:',
    '  - id: main',
    'schedules:',
    '  - id: evening',
    '    groups: [main]',
    '    steps:',
    `      - { at: "18:00", level: ${s.level} }`,
  ];
  if (s.busAndSync) {
    lines.push(
      'buses:',
      '  - { id: net, type: tcp, host: 127.0.0.1, port: 1 }',
      'devices:',
      '  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, groups: [main] }',
      'sync:',
      '  url: mqtt://127.0.0.1:1',
      ...(s.busAndSync.keys.length === 0 ? ['  configSigningKeys: []'] : ['  configSigningKeys:', ...s.busAndSync.keys.map((k) => `    - ${k}`)]),
    );
  }
  return `${lines.join('\n')}\n`;
}

const A = text({ level: 50 });
const B = text({ level: 60 });
const C = text({ level: 70 });

// ───────────────────────────── the test applier ─────────────────────────────

interface Deferred {
  promise: Promise<void>;
  release(): void;
  fail(err: Error): void;
}

function deferred(): Deferred {
  let release!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { promise, release, fail };
}

/**
 * Stands in for the running gateway: apply makes `next` the declared and ctx.config (as the real
 * one does first) and returns, or waits on a hold the test set for that call; probe answers
 * `probeOk`. It records every apply and every plan probed.
 */
class TestApplier implements ConfigApplier {
  readonly applied: { next: Config; plan: ChangePlan }[] = [];
  readonly probed: ChangePlan[] = [];
  probeOk = true;
  private readonly holds = new Map<number, Deferred>();

  constructor(
    private readonly ctx: GatewayContext,
    public declared: Config,
  ) {}

  current(): Config {
    return this.declared;
  }

  async apply(next: Config, plan: ChangePlan): Promise<void> {
    const n = this.applied.push({ next, plan });
    this.declared = next;
    this.ctx.config = next;
    await this.holds.get(n)?.promise;
  }

  probe(plan: ChangePlan): { ok: true } | { ok: false; reason: string } {
    this.probed.push(plan);
    return this.probeOk ? { ok: true } : { ok: false, reason: 'bus net: no device answered (test)' };
  }

  baseline(): ProbeBaseline {
    return { running: [], since: this.ctx.clock.now(), busesOnline: [], buses: [], upstream: false };
  }

  /** the apply call number `n` (1-based) does not return until the test releases or fails it */
  hold(n: number): Deferred {
    const d = deferred();
    this.holds.set(n, d);
    return d;
  }

  /** the schedule level of each configuration applied, in order */
  levels(): number[] {
    return this.applied.map((a) => a.next.schedules[0]?.steps[0]?.level ?? -1);
  }
}

// ───────────────────────────── one gateway's life ─────────────────────────────

let dir: TempDir;
let file: string;
let store: SqliteStore;
let clock: FakeClock;
let bus: EventBus;
let reports: ConfigStageReport[];
let managers: ConfigManager[];

beforeEach(() => {
  dir = tempDir('streetbox-manager-');
  file = dir.file('devices.yaml');
  store = openStore({ path: dir.file('streetbox.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log });
  clock = new FakeClock();
  bus = new EventBus(log);
  reports = [];
  bus.on('manager-test', 'configReport', (r) => reports.push(r));
  managers = [];
});

afterEach(async () => {
  for (const m of managers) await m.stop(10);
  bus.off('manager-test');
  store.close();
  dir.remove();
});

function parse(content: string, env: NodeJS.ProcessEnv): Config {
  return parseConfig(content, { file, dir: dir.path, env }).config;
}

interface Booted {
  m: ConfigManager;
  applier: TestApplier;
  versions: ConfigVersions;
  /** what reconcile() found running */
  current: ConfigVersion;
}

/** A gateway (re)starting from devices.yaml as it is on disk: reconcile(), not yet start(). */
function boot(env: NodeJS.ProcessEnv = {}): Booted {
  const startText = readFileSync(file, 'utf8');
  const config = parse(startText, env);
  const ctx: GatewayContext = {
    config,
    configDir: dir.path,
    store,
    ingest: new BatchWriter({ store, log, flushIntervalMs: 1000, flushRows: 100 }),
    bus,
    log,
    clock,
  };
  const versions = ConfigVersions.open(store, log);
  if (!versions) throw new Error('a SqliteStore has module tables');
  const applier = new TestApplier(ctx, config);
  const m = new ConfigManager({ ctx, file, dir: dir.path, env, versions, applier, startText, probeEveryMs: STEP_MS });
  managers.push(m);
  return { m, applier, versions, current: m.reconcile() };
}

/** Moves the fake clock, STEP_MS at a time, until `done()` holds. */
async function drive(what: string, done: () => boolean): Promise<void> {
  for (let t = 0; !done(); t += STEP_MS) {
    if (t > DRIVE_LIMIT_MS) throw new Error(`${what}: not reached within ${DRIVE_LIMIT_MS} ms of fake time`);
    await clock.advance(STEP_MS);
  }
}

/** Moves the fake clock until `p` settles; its value. */
async function driveTo<T>(what: string, p: Promise<T>): Promise<T> {
  let settled = false;
  const watched = p.finally(() => (settled = true));
  await drive(what, () => settled);
  return watched;
}

/** Both promises of a submitted change, once they settle. */
function bothOf(s: ConfigSubmitted): Promise<[ConfigStageReport, ConfigStageReport]> {
  return Promise.all([s.settled, s.outcome]);
}

function onDisk(): string {
  return readFileSync(file, 'utf8');
}

/** The change's stage, the running version and devices.yaml's bytes, together. */
function expectRecord(versions: ConfigVersions, version: number, stage: ConfigVersion['stage'], running: number, fileText: string): void {
  expect({ stage: versions.get(version)?.stage, running: versions.running()?.version, sameFile: onDisk() === fileText }).toEqual({ stage, running, sameFile: true });
}

function technician(content: string, baseVersion: number, extra: { id?: string; confirmWithinMs?: number } = {}): Parameters<ConfigManager['submit']>[0] {
  return { source: 'technician', principal: 'tech', content, baseVersion, ...extra };
}

// ───────────────────────────── the scenarios ─────────────────────────────

describe('ConfigManager at its edge cases', () => {
  it('records a rollback as soon as the old text is on disk: a restart during the apply-back finds the previous version running', async () => {
    writeFileSync(file, A);
    const g = boot();
    expect(g.current).toMatchObject({ version: 1, source: 'file', stage: 'confirmed' });
    g.m.start();
    g.applier.probeOk = false;
    const applyBack = g.applier.hold(2);
    const s = g.m.submit(technician(B, 1));
    expect(s.first).toMatchObject({ stage: 'staged', version: 2 });

    await drive('the apply-back begins', () => g.applier.applied.length === 2);
    // the apply-back hangs (the gateway would die here): the record already says what is on disk
    expectRecord(g.versions, 2, 'rolledBack', 1, A);
    expect(g.versions.code(2)).toBe('E_CONFIG_PROBE');

    // the restart: the file is the previous version's, so that version runs; nothing new is minted
    const r = boot();
    expect(r.current).toMatchObject({ version: 1, stage: 'confirmed' });
    expect(r.versions.list().map((v) => `${v.version}:${v.source}:${v.stage}`)).toEqual(['2:technician:rolledBack', '1:file:confirmed']);
    r.m.start();
    await driveTo('the restarted road is idle', r.m.idle());
    expectRecord(r.versions, 2, 'rolledBack', 1, A);
    expect(r.applier.applied).toHaveLength(0);

    // the first life's apply-back returns: its door's promises settle with the rollback
    applyBack.release();
    const [settled, outcome] = await driveTo('the first change settles', bothOf(s));
    expect(settled).toMatchObject({ id: s.id, version: 2, stage: 'rolledBack', code: 'E_CONFIG_PROBE', runningVersion: 1 });
    expect(outcome).toEqual(settled);
    expectRecord(r.versions, 2, 'rolledBack', 1, A);
    expect(r.versions.list()).toHaveLength(2);
  });

  it('judges a change cut short whose previous version no longer validates on everything, and restores the newest earlier version that validates', async () => {
    const T0 = text({ level: 50, busAndSync: { keys: [] } });
    const T1 = text({ level: 60, siteFromEnv: true, busAndSync: { keys: [] } });
    const T2 = text({ level: 70, busAndSync: { keys: [] } });
    writeFileSync(file, T0);
    const g = boot({ SB_UNIT_SITE: 'north' });
    g.m.start();
    const s1 = g.m.submit(technician(T1, 1));
    const [settled1, outcome1] = await driveTo('version 2 is confirmed', bothOf(s1));
    expect(settled1).toMatchObject({ version: 2, stage: 'confirmed' });
    expect(outcome1).toEqual(settled1);

    // version 3's apply never returns: the gateway dies with T2 on disk and version 3 staged
    const lost = g.applier.hold(2);
    const s2 = g.m.submit(technician(T2, 2));
    await drive('version 3 is being applied', () => g.applier.applied.length === 2);
    expect(g.versions.get(3)?.stage).toBe('staged');
    expect(onDisk()).toBe(T2);

    // it starts again without SB_UNIT_SITE: version 2 (its previous one) no longer validates
    const r = boot({});
    expect(r.current).toMatchObject({ version: 3, stage: 'applied' });
    r.applier.probeOk = false;
    r.m.start();
    await driveTo('the interrupted change has proved itself', r.m.idle());

    // what changed is unknown, so everything was judged: every bus and the upstream
    expect(r.applier.probed.length).toBeGreaterThan(0);
    for (const plan of r.applier.probed) expect(plan).toMatchObject({ empty: false, buses: ['net'], sync: true });
    // version 2 is skipped; version 1 (T0) is what runs again, on disk and in the components
    expectRecord(r.versions, 3, 'rolledBack', 1, T0);
    expect(r.versions.code(3)).toBe('E_CONFIG_PROBE');
    expect(r.applier.levels()).toEqual([50]);
    expect(r.versions.get(2)?.stage).toBe('confirmed');

    // the first life's worker, let go, only settles its door's promises (the record has moved on): the file stays
    lost.release();
    const [settled2, outcome2] = await driveTo('the lost change settles', bothOf(s2));
    expect(settled2).toMatchObject({ version: 3, stage: 'rolledBack' });
    expect(outcome2).toEqual(settled2);
    expectRecord(r.versions, 3, 'rolledBack', 1, T0);
  });

  describe('stop() during the apply of a commit-confirm change', () => {
    /** version 2 (B, confirm within 60 s) is being applied when the gateway stops; how its apply ends is the test's */
    async function stopDuringApply(end: (hold: Deferred) => void): Promise<{ g: Booted; confirmBy: number }> {
      writeFileSync(file, A);
      const g = boot();
      g.m.start();
      const hold = g.applier.hold(1);
      const s = g.m.submit(technician(B, 1, { confirmWithinMs: 60_000 }));
      await drive('version 2 is being applied', () => g.applier.applied.length === 1);
      const confirmBy = clock.now() + 60_000;
      const stopped = g.m.stop();
      end(hold);
      await stopped;
      const [settled, outcome] = await bothOf(s);
      // no rollback on the way out: B stays on disk and applied, and the deadline stays in the store
      expect(settled).toMatchObject({ version: 2, stage: 'applied', runningVersion: 2 });
      expect(outcome).toMatchObject({ version: 2, stage: 'applied' });
      expectRecord(g.versions, 2, 'applied', 2, B);
      expect(g.applier.applied).toHaveLength(1);
      expect(g.versions.state('awaiting')).toEqual({ version: 2, confirmBy });
      return { g, confirmBy };
    }

    it('keeps the change applied, and the next start re-arms the rest of its window: a confirm then confirms it', async () => {
      const { confirmBy } = await stopDuringApply((hold) => hold.release());
      await clock.advance(20_000); // the gateway is down for 20 s

      const r = boot();
      expect(r.current).toMatchObject({ version: 2, stage: 'applied' });
      r.m.start();
      await drive('the window is re-armed', () => r.m.awaitingConfirm() !== null);
      expect(r.m.awaitingConfirm()).toEqual({ version: 2, confirmBy });
      // the rest of the window, not a new one: one ms before the original deadline it still waits
      await clock.advance(confirmBy - clock.now() - 1);
      expect(r.m.awaitingConfirm()).toEqual({ version: 2, confirmBy });
      expect(r.m.confirm('tech')).toMatchObject({ ok: true, report: { version: 2, stage: 'confirmed' } });
      await driveTo('the confirm is recorded', r.m.idle());

      expectRecord(r.versions, 2, 'confirmed', 2, B);
      expect(r.versions.state('awaiting')).toBeUndefined();
      expect(r.applier.applied).toHaveLength(0);
    });

    it('rolls the change back when the rest of its window ends after the restart without a confirm', async () => {
      const { confirmBy } = await stopDuringApply((hold) => hold.release());
      await clock.advance(20_000);

      const r = boot();
      r.m.start();
      await drive('the window is re-armed', () => r.m.awaitingConfirm() !== null);
      await clock.advance(confirmBy - clock.now() - 1);
      expectRecord(r.versions, 2, 'applied', 2, B);
      // at the deadline itself, with no more time passing, it is rolled back
      await clock.advance(1);
      expectRecord(r.versions, 2, 'rolledBack', 1, A);
      await r.m.idle();
      expect(r.versions.code(2)).toBe('E_CONFIG_CONFIRM_TIMEOUT');
      expect(r.versions.state('awaiting')).toBeUndefined();
      expect(r.applier.levels()).toEqual([50]);
    });

    it('keeps the change applied when its apply throws after the stop; a window that ended while the gateway was down rolls it back at the next start', async () => {
      const { confirmBy } = await stopDuringApply((hold) => hold.fail(new Error('bus net: port busy')));
      await clock.advance(confirmBy - clock.now() + 1);

      const r = boot();
      expect(r.current).toMatchObject({ version: 2, stage: 'applied' });
      r.m.start();
      await driveTo('the expired change is rolled back', r.m.idle());

      expectRecord(r.versions, 2, 'rolledBack', 1, A);
      expect(r.versions.code(2)).toBe('E_CONFIG_CONFIRM_TIMEOUT');
      expect(r.versions.state('awaiting')).toBeUndefined();
      expect(r.applier.levels()).toEqual([50]);
      expect(r.m.awaitingConfirm()).toBeNull();
    });
  });

  it('keeps the commit-confirm deadline in the store when the gateway stops while the change waits for its confirm', async () => {
    writeFileSync(file, A);
    const g = boot();
    g.m.start();
    const s = g.m.submit(technician(B, 1, { confirmWithinMs: 60_000 }));
    const settled = await driveTo('the change awaits its confirm', s.settled);
    expect(settled).toMatchObject({ version: 2, stage: 'applied', runningVersion: 2, confirmBy: expect.any(Number) });
    expect(g.m.awaitingConfirm()).toEqual({ version: 2, confirmBy: settled.confirmBy });

    await g.m.stop();
    const outcome = await s.outcome;
    expect(outcome).toMatchObject({ version: 2, stage: 'applied' });
    expectRecord(g.versions, 2, 'applied', 2, B);
    expect(g.versions.state('awaiting')).toEqual({ version: 2, confirmBy: settled.confirmBy });
    expect(g.applier.applied).toHaveLength(1);
  });

  it('takes the way back when the store fails right after the file write, not a refusal', async () => {
    writeFileSync(file, A);
    const g = boot();
    g.m.start();
    const transition = g.versions.transition.bind(g.versions);
    let failed = false;
    vi.spyOn(g.versions, 'transition').mockImplementation((version, stage, fields) => {
      if (stage === 'applied' && !failed) {
        failed = true;
        throw new StreetboxError('E_STORE', 'disk I/O error (test)');
      }
      return transition(version, stage, fields);
    });

    const s = g.m.submit(technician(B, 1));
    const [settled, outcome] = await driveTo('the change settles', bothOf(s));

    expect(failed).toBe(true);
    expect(settled).toMatchObject({ version: 2, stage: 'rolledBack', code: 'E_CONFIG_APPLY', runningVersion: 1 });
    expect(settled.reason).toContain('disk I/O error (test)');
    expect(outcome).toEqual(settled);
    expectRecord(g.versions, 2, 'rolledBack', 1, A);
    // B was applied, then A again: the components run what the file says
    expect(g.applier.levels()).toEqual([60, 50]);
  });

  it('refuses a reload made while another change was applied and then rolled back as stale, and never applies it', async () => {
    writeFileSync(file, A);
    const g = boot();
    g.m.start();
    g.applier.probeOk = false;
    const hold = g.applier.hold(1);
    const tech = g.m.submit(technician(B, 1));
    await drive('version 2 is being applied', () => g.applier.applied.length === 1);

    // SIGHUP now: the file holds B, the text of the change under way
    expect(onDisk()).toBe(B);
    const reload = g.m.reloadFromFile();
    expect(reload.first).toMatchObject({ version: 3, stage: 'staged', source: 'file' });
    expect(g.versions.get(3)?.baseVersion).toBe(2);

    hold.release();
    const [techSettled, techOutcome, reloadSettled, reloadOutcome] = await driveTo('both changes settle', Promise.all([tech.settled, tech.outcome, reload.settled, reload.outcome]));
    expect(techSettled).toMatchObject({ version: 2, stage: 'rolledBack', code: 'E_CONFIG_PROBE' });
    expect(techOutcome).toEqual(techSettled);
    expect(reloadSettled).toMatchObject({ version: 3, stage: 'rejected', code: 'E_CONFIG_STALE', runningVersion: 1 });
    expect(reloadOutcome).toEqual(reloadSettled);
    expectRecord(g.versions, 3, 'rejected', 1, A);
    // B, then A back: the reload's B was never applied again
    expect(g.applier.levels()).toEqual([60, 50]);
  });

  it('refuses at run time a central change whose signing key a change ahead of it in the queue removed', async () => {
    const k1 = generateKeyPairSync('ed25519');
    const k2 = generateKeyPairSync('ed25519');
    writeFileSync(file, text({ level: 50, busAndSync: { keys: [rawPublic(k1.publicKey)] } }));
    const g = boot();
    // not started yet: both changes pass the door (signed with k1, the key in force) and wait in the queue
    const rotate = text({ level: 60, busAndSync: { keys: [rawPublic(k2.publicKey)] } });
    const late = text({ level: 70, busAndSync: { keys: [rawPublic(k2.publicKey)] } });
    const first = g.m.submitCentral(central('rotate-key', rotate, 1, false, k1.privateKey));
    const second = g.m.submitCentral(central('signed-with-old-key', late, 1, true, k1.privateKey));
    expect(first.first).toMatchObject({ version: 2, stage: 'staged', source: 'central' });
    expect(second.first).toMatchObject({ version: 3, stage: 'staged', source: 'central' });

    g.m.start();
    const [s1, o1, s2, o2] = await driveTo('both changes settle', Promise.all([first.settled, first.outcome, second.settled, second.outcome]));
    expect(s1).toMatchObject({ version: 2, stage: 'confirmed' });
    expect(o1).toEqual(s1);
    expect(s2).toMatchObject({ version: 3, stage: 'rejected', code: 'E_CONFIG_SIGNATURE', runningVersion: 2 });
    expect(s2.reason).toContain('no configured key verifies it');
    expect(o2).toEqual(s2);
    expectRecord(g.versions, 3, 'rejected', 2, rotate);
    expect(g.applier.levels()).toEqual([60]);
  });

  it('answers a duplicate id by publishing the original report again, with its code', async () => {
    writeFileSync(file, A);
    const g = boot();
    g.m.start();
    g.applier.probeOk = false;
    const original = g.m.submit(technician(B, 1, { id: 'change-7' }));
    const [settled, outcome] = await driveTo('the original settles', bothOf(original));
    expect(settled).toMatchObject({ id: 'change-7', version: 2, stage: 'rolledBack', code: 'E_CONFIG_PROBE' });
    expect(outcome).toEqual(settled);

    const seen = reports.length;
    const pendingBefore = g.m.outbox().pending(1000).length;
    const again = g.m.submit(technician(B, 1, { id: 'change-7' }));
    expect(again.first).toMatchObject({ id: 'change-7', version: null, stage: 'rejected', code: 'E_CONFIG_DUPLICATE' });
    expect(await again.settled).toEqual(again.first);
    expect(await again.outcome).toEqual(again.first);

    // on up/config/change-7 the retained report stays the original's outcome, never "duplicate"
    const republished = { id: 'change-7', version: 2, stage: 'rolledBack', code: 'E_CONFIG_PROBE', reason: settled.reason };
    expect(reports.slice(seen)).toEqual([expect.objectContaining(republished)]);
    const pending = g.m.outbox().pending(1000);
    expect(pending).toHaveLength(pendingBefore + 1);
    expect(pending.at(-1)).toMatchObject({ topicId: 'change-7', report: republished });
    expectRecord(g.versions, 2, 'rolledBack', 1, A);
    expect(g.versions.list()).toHaveLength(2);
  });

  // a stop that waits for the hung apply must fail here, not at the suite's 60 s timeout
  it('stops within its bound while an apply hangs, and refuses a change after the stop as busy', { timeout: 5000 }, async () => {
    writeFileSync(file, A);
    const g = boot();
    g.m.start();
    g.applier.probeOk = false;
    const hold = g.applier.hold(1);
    const s = g.m.submit(technician(B, 1));
    await drive('version 2 is being applied', () => g.applier.applied.length === 1);

    const bound = 200;
    const began = performance.now();
    await g.m.stop(bound);
    expect(performance.now() - began).toBeLessThan(bound + 1000);

    const refused = g.m.submit(technician(C, 1));
    expect(refused.first).toMatchObject({ version: null, stage: 'rejected', code: 'E_CONFIG_BUSY' });
    expect(await refused.settled).toEqual(refused.first);
    expect(await refused.outcome).toEqual(refused.first);
    expect(g.versions.list()).toHaveLength(2);

    // the hung apply returns after the stop: no rollback on the way out, the change waits for the next start
    hold.release();
    const [settled, outcome] = await driveTo('the change under way settles', bothOf(s));
    expect(settled).toMatchObject({ version: 2, stage: 'applied', runningVersion: 2 });
    expect(outcome).toEqual(settled);
    expectRecord(g.versions, 2, 'applied', 2, B);
    expect(g.applier.levels()).toEqual([60]);
  });
});

// ───────────────────────────── central's messages ─────────────────────────────

/** an ed25519 public key as sync.configSigningKeys takes it: base64 of the raw 32 bytes */
function rawPublic(key: KeyObject): string {
  return key.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
}

/** A `down/config` message signed with `key`. */
function central(id: string, content: string, baseVersion: number, force: boolean, key: KeyObject): Buffer {
  const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const signature = signChange(pem, GATEWAY, { id, baseVersion, force, content });
  return Buffer.from(JSON.stringify({ id, baseVersion, content, force, signature }));
}
