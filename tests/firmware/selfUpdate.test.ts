/**
 * The gateway updates itself (issue 17 Deliver 6): SelfUpdater on real files, and real processes
 * for the rest. Releases side by side in a temp directory run through deploy/streetbox-launch,
 * started again by a stand-in for systemd (releases.ts `Unit`: Restart=on-failure,
 * RestartForceExitStatus=3, RestartPreventExitStatus=2). Their dist/streetbox.mjs is either the
 * fixture release (fixtures/release.ts: run.ts and the real SelfUpdater playing the engine's part),
 * a script that exits at once, or the real gateway bundled from the current sources.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../edge/clock.js';
import { FirmwareError } from '../../edge/firmware/errors.js';
import { RESTART_EXIT_CODE, SelfUpdater, readMarker } from '../../edge/firmware/selfUpdate.js';
import { createLogger } from '../../edge/log.js';
import { RestartRequests } from '../../edge/restart.js';
import { runUntilSignal } from '../../edge/run.js';
import type { Gateway } from '../../edge/main.js';
import { EventEmitter } from 'node:events';
import { ROOT } from '../support/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { Unit, bundle, makeRelease } from './releases.js';

const log = createLogger({ level: 'silent' });
const work = tempDir('streetbox-selfupdate-');
afterAll(() => work.remove());

let dir: TempDir;
let units: Unit[] = [];
afterEach(() => {
  for (const u of units) u.kill();
  units = [];
  dir?.remove();
});

function updater(releases: string, runningVersion: string, clock: Clock = systemClock, healthTimeoutMs = 120_000): SelfUpdater {
  return new SelfUpdater({ releases, healthTimeoutMs, log, clock, runningVersion });
}

/** A release directory to pack: package.json and dist/streetbox.mjs as given. */
function releaseTree(at: string, files: { version?: string; bundle?: boolean; extra?: Record<string, string> }): string {
  mkdirSync(join(at, 'dist'), { recursive: true });
  if (files.version !== undefined) writeFileSync(join(at, 'package.json'), JSON.stringify({ name: 'streetbox', version: files.version }));
  if (files.bundle !== false) writeFileSync(join(at, 'dist/streetbox.mjs'), 'process.exit(0);\n');
  for (const [name, text] of Object.entries(files.extra ?? {})) {
    mkdirSync(join(at, name, '..'), { recursive: true });
    writeFileSync(join(at, name), text);
  }
  return at;
}

async function pack(tree: string, out: string, names = ['.']): Promise<string> {
  await tar.c({ gzip: true, file: out, cwd: tree, portable: true }, names);
  return out;
}

function fixtureRoot(): { root: string; releases: string } {
  dir = tempDir('streetbox-releases-');
  const releases = join(dir.path, 'releases');
  mkdirSync(releases);
  return { root: dir.path, releases };
}

describe('SelfUpdater on files', () => {
  it('knows the release it runs from only at <releases>/<version>/dist/streetbox.mjs with that version in package.json', () => {
    const { releases } = fixtureRoot();
    const d = makeRelease(releases, '1.0.0', { script: '' });
    expect(SelfUpdater.runningRelease(join(d, 'dist/streetbox.mjs'))).toEqual({ dir: d, version: '1.0.0' });
    // through the `current` link: the real directory
    symlinkSync('1.0.0', join(releases, 'current'));
    expect(SelfUpdater.runningRelease(join(releases, 'current/dist/streetbox.mjs'))).toEqual({ dir: d, version: '1.0.0' });
    // the sources (tsx), a checkout whose directory is not its version
    expect(SelfUpdater.runningRelease()).toBeNull();
    expect(SelfUpdater.runningRelease(join(ROOT, 'dist/streetbox.mjs'))).toBeNull();
    makeRelease(releases, '9.9.9', { script: '' });
    writeFileSync(join(releases, '9.9.9/package.json'), JSON.stringify({ version: '1.0.0' }));
    expect(SelfUpdater.runningRelease(join(releases, '9.9.9/dist/streetbox.mjs'))).toBeNull();
  });

  it('installs a tar.gz artifact beside the running release (sharing its node_modules), idempotently', async () => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    const artifact = await pack(releaseTree(join(root, 'src2'), { version: '2.0.0', extra: { 'edge/profiles/x.yaml': 'a: 1\n' } }), join(root, 'r2.tgz'));
    const su = updater(releases, '1.0.0');
    await su.install(artifact, '2.0.0');
    expect(JSON.parse(readFileSync(join(releases, '2.0.0/package.json'), 'utf8'))).toMatchObject({ version: '2.0.0' });
    expect(readFileSync(join(releases, '2.0.0/edge/profiles/x.yaml'), 'utf8')).toBe('a: 1\n');
    expect(readlinkSync(join(releases, '2.0.0/node_modules'))).toBe(join(ROOT, 'node_modules'));
    expect(existsSync(join(releases, '2.0.0.tmp'))).toBe(false);
    await su.install(artifact, '2.0.0'); // again: nothing to do
    expect(su.installed()).toEqual(['1.0.0', '2.0.0']);

    // as npm pack makes it: everything in one directory
    releaseTree(join(root, 'src3/package'), { version: '3.0.0' });
    await su.install(await pack(join(root, 'src3'), join(root, 'r3.tgz'), ['package']), '3.0.0');
    expect(existsSync(join(releases, '3.0.0/dist/streetbox.mjs'))).toBe(true);
  });

  it.each([
    ['a package.json of another version', { version: '2.0.1' }, /package\.json says version 2\.0\.1/],
    ['no package.json', {}, /package\.json is missing/],
    ['no dist/streetbox.mjs', { version: '2.0.0', bundle: false }, /dist\/streetbox\.mjs is missing/],
  ])('refuses an artifact with %s (E_FW_ARTIFACT) and leaves nothing behind', async (_name, files, message) => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    const artifact = await pack(releaseTree(join(root, 'src'), files), join(root, 'bad.tgz'));
    const err = await updater(releases, '1.0.0').install(artifact, '2.0.0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FirmwareError);
    expect((err as FirmwareError).code).toBe('E_FW_ARTIFACT');
    expect((err as FirmwareError).message).toMatch(message);
    expect(existsSync(join(releases, '2.0.0'))).toBe(false);
    expect(existsSync(join(releases, '2.0.0.tmp'))).toBe(false);
  });

  it('refuses a truncated or foreign file as an artifact, and a version that cannot name a directory', async () => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    const good = readFileSync(await pack(releaseTree(join(root, 'src'), { version: '2.0.0' }), join(root, 'r.tgz')));
    writeFileSync(join(root, 'cut.tgz'), good.subarray(0, Math.floor(good.length / 2)));
    writeFileSync(join(root, 'text.tgz'), 'not an archive at all\n'.repeat(40));
    const su = updater(releases, '1.0.0');
    for (const f of ['cut.tgz', 'text.tgz']) {
      await expect(su.install(join(root, f), '2.0.0')).rejects.toMatchObject({ code: 'E_FW_ARTIFACT' });
      expect(existsSync(join(releases, '2.0.0'))).toBe(false);
    }
    for (const v of ['../x', 'current', '.hidden', 'a b', '2.0.0.tmp']) {
      await expect(su.install(join(root, 'r.tgz'), v)).rejects.toMatchObject({ code: 'E_FW_INVALID' });
    }
  });

  it('activates, boots the new release as verifying, confirms; the outcome lasts until cleared', async () => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    symlinkSync('1.0.0', join(releases, 'current'));
    const now = 1_800_000_000_000;
    const clock: Clock = { ...systemClock, now: () => now };
    const old = updater(releases, '1.0.0', clock, 30_000);
    await old.install(await pack(releaseTree(join(root, 'src'), { version: '2.0.0' }), join(root, 'r.tgz')), '2.0.0');
    expect(() => old.activate('dep-1', '1.0.0')).toThrow(/runs already/);
    expect(() => old.activate('dep-1', '7.0.0')).toThrow(FirmwareError);
    old.activate('dep-1', '2.0.0');
    expect(readlinkSync(join(releases, 'current'))).toBe('2.0.0');
    // what the launcher reads in sh
    expect(readFileSync(join(releases, 'pending'), 'utf8')).toBe(`deployment=dep-1\nfrom=1.0.0\nto=2.0.0\nattempts=0\ndeadline=${(now + 30_000 + 60_000) / 1000}\n`);
    expect(old.boot()).toMatchObject({ state: 'outcome', result: 'rolledBack' }); // (the old release booting now: the switch did not take effect)
    // set the trial up again, and boot as the new release
    old.activate('dep-2', '2.0.0');
    const fresh = updater(releases, '2.0.0', clock, 30_000);
    expect(fresh.boot()).toEqual({ state: 'verifying', deployment: 'dep-2', from: '1.0.0', to: '2.0.0', deadline: now + 30_000 });
    fresh.confirm();
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(readMarker(join(releases, 'outcome'))).toEqual({ deployment: 'dep-2', version: '2.0.0', from: '1.0.0', result: 'confirmed', reason: 'release 2.0.0 reported healthy' });
    expect(fresh.boot()).toEqual({ state: 'outcome', deployment: 'dep-2', version: '2.0.0', result: 'confirmed', reason: 'release 2.0.0 reported healthy' });
    expect(() => fresh.confirm()).toThrow(/not on trial/);
    fresh.clearOutcome();
    expect(fresh.boot()).toEqual({ state: 'none' });
    expect(readlinkSync(join(releases, 'current'))).toBe('2.0.0');
  });

  it('switches back: current to the previous release, the outcome rolled back with the reason, no trial left', async () => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    symlinkSync('1.0.0', join(releases, 'current'));
    const old = updater(releases, '1.0.0');
    await old.install(await pack(releaseTree(join(root, 'src'), { version: '2.0.0' }), join(root, 'r.tgz')), '2.0.0');
    old.activate('dep-1', '2.0.0');
    const fresh = updater(releases, '2.0.0');
    expect(fresh.boot().state).toBe('verifying');
    fresh.switchBack('upstream unreachable\nfor 120 s');
    expect(readlinkSync(join(releases, 'current'))).toBe('1.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(updater(releases, '1.0.0').boot()).toEqual({ state: 'outcome', deployment: 'dep-1', version: '2.0.0', result: 'rolledBack', reason: 'upstream unreachable for 120 s' });
  });

  it('a trial met by the release it came from ends rolled back (the switch did not take effect)', () => {
    const { releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { script: '' });
    makeRelease(releases, '2.0.0', { script: '' });
    symlinkSync('1.0.0', join(releases, 'current'));
    const old = updater(releases, '1.0.0');
    old.activate('dep-1', '2.0.0');
    // a third release knows nothing of it and leaves it
    expect(updater(releases, '3.0.0').boot()).toEqual({ state: 'none' });
    expect(existsSync(join(releases, 'pending'))).toBe(true);
    const boot = updater(releases, '1.0.0').boot();
    expect(boot).toMatchObject({ state: 'outcome', deployment: 'dep-1', version: '2.0.0', result: 'rolledBack' });
    expect(readlinkSync(join(releases, 'current'))).toBe('1.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
  });

  it('gc keeps the running release, the one before it, current, a trial and shared node_modules; removes the rest', () => {
    const { releases } = fixtureRoot();
    for (const v of ['0.9.0', '1.0.0', '1.2.0', '1.10.0', '2.0.0']) makeRelease(releases, v, { script: '' });
    mkdirSync(join(releases, '3.0.0.tmp'));
    // 1.10.0 shares 0.9.0's node_modules
    rmSync(join(releases, '0.9.0/node_modules'));
    mkdirSync(join(releases, '0.9.0/node_modules'));
    rmSync(join(releases, '1.10.0/node_modules'));
    symlinkSync(join(releases, '0.9.0/node_modules'), join(releases, '1.10.0/node_modules'));
    symlinkSync('1.10.0', join(releases, 'current'));
    const su = updater(releases, '1.10.0');
    expect(su.installed()).toEqual(['0.9.0', '1.0.0', '1.2.0', '1.10.0', '2.0.0']);
    expect(su.gc(2).sort()).toEqual(['1.0.0', '2.0.0']);
    expect(su.installed()).toEqual(['0.9.0', '1.2.0', '1.10.0']);
    expect(existsSync(join(releases, '3.0.0.tmp'))).toBe(false);
  });
});

describe('run.ts: a restart request', () => {
  it('stops the gateway cleanly and exits RESTART_EXIT_CODE; a signal during that stop makes it a stop (0)', async () => {
    expect(RESTART_EXIT_CODE).toBe(3);
    for (const signalDuring of [false, true]) {
      const signals = new EventEmitter();
      const restarts = new RestartRequests();
      const codes: number[] = [];
      let stops = 0;
      let release = (): void => undefined;
      const gateway = {
        stop: () => {
          stops++;
          return new Promise<void>((r) => (release = r));
        },
      } as unknown as Gateway;
      await new Promise<void>((onRunning) => void runUntilSignal({ gateway: { configPath: 'x' }, log, signals, restarts, exit: (c) => void codes.push(c), start: () => Promise.resolve(gateway), onRunning: () => onRunning() }));
      expect(restarts.request('release 2.0.0 switched in')).toBe(true);
      expect(restarts.request('again')).toBe(true); // one stop
      await waitFor('stop called', () => stops === 1, 2000);
      if (signalDuring) signals.emit('SIGTERM', 'SIGTERM');
      expect(codes).toEqual([]);
      release();
      await waitFor('exit', () => codes.length > 0, 2000);
      expect(codes).toEqual([signalDuring ? 0 : RESTART_EXIT_CODE]);
      expect(stops).toBe(1);
      expect(restarts.request('after')).toBe(false); // nobody listens any more
    }
  });
});

describe('releases run by deploy/streetbox-launch under a stand-in for systemd', () => {
  const fixture = join(work.path, 'fixture.mjs');
  beforeAll(async () => {
    // run.ts loads the gateway (main.js) only when no start is given: the fixture gives one
    await bundle(join(ROOT, 'tests/firmware/fixtures/release.ts'), fixture, { externals: /^\.\/main\.js$/ });
  });

  interface Line {
    version: string;
    pid: number;
    boot?: { state: string; result?: string; reason?: string; deployment?: string };
    confirmed?: boolean;
    switchedBack?: boolean;
    activated?: string;
    restart?: boolean;
    running?: boolean;
    stopped?: boolean;
    error?: string;
  }

  const journal = (root: string): Line[] =>
    existsSync(join(root, 'journal.jsonl'))
      ? readFileSync(join(root, 'journal.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Line)
      : [];

  /** releases 1.0.0 (current) and `others`; 1.0.0 activates `to` at its first start. */
  function setup(to: string, others: Record<string, object | { exit: number }>, first: object = {}): { root: string; releases: string; unit: Unit } {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { bundleFile: fixture }, first);
    for (const [v, b] of Object.entries(others)) {
      if ('exit' in b) makeRelease(releases, v, { script: `process.exit(${(b as { exit: number }).exit});\n` });
      else makeRelease(releases, v, { bundleFile: fixture }, b);
    }
    symlinkSync('1.0.0', join(releases, 'current'));
    writeFileSync(join(root, 'activate'), `dep-1 ${to}`);
    const unit = new Unit(releases, ['start']);
    units.push(unit);
    return { root, releases, unit };
  }

  it('a good release: activated, restarted (exit 3), on trial as the launcher\'s child, confirmed; then run in the launcher\'s place', async () => {
    const { root, releases, unit } = setup('2.0.0', { '2.0.0': { verify: 'confirm' } });
    unit.start();
    await waitFor('2.0.0 confirmed', () => journal(root).some((l) => l.version === '2.0.0' && l.confirmed), 15_000);
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE]);
    const lines = journal(root);
    const old = lines.find((l) => l.version === '1.0.0' && l.activated)!;
    expect(old.restart).toBe(true);
    expect(old.pid).toBe(unit.exits[0]!.pid); // no trial: node in the launcher's place
    expect(lines.find((l) => l.version === '2.0.0')!.pid).not.toBe(unit.pid); // on trial: the launcher's child
    expect(readMarker(join(releases, 'outcome'))).toMatchObject({ deployment: 'dep-1', version: '2.0.0', from: '1.0.0', result: 'confirmed' });
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(readlinkSync(join(releases, 'current'))).toBe('2.0.0');
    expect(unit.stderr).toContain('release 2.0.0 on trial: start 1 of 3');

    // systemctl stop reaches the release through the launcher: a clean stop, exit 0, no restart
    await unit.stop();
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE, 0]);
    expect(journal(root).filter((l) => l.version === '2.0.0' && l.stopped)).toHaveLength(1);

    // started again: the confirmed release, exec'd, reads its outcome and clears it
    unit.start();
    await waitFor('2.0.0 started again', () => journal(root).filter((l) => l.version === '2.0.0' && l.boot).length === 2, 10_000);
    const again = journal(root).filter((l) => l.version === '2.0.0' && l.boot)[1]!;
    expect(again.boot).toMatchObject({ state: 'outcome', result: 'confirmed', deployment: 'dep-1' });
    expect(again.pid).toBe(unit.pid);
    await waitFor('outcome cleared', () => !existsSync(join(releases, 'outcome')));
    await unit.stop();
  });

  it('a release that is not healthy switches back itself (exit 3); the previous release runs and reads the outcome', async () => {
    const { root, releases, unit } = setup('2.0.0', { '2.0.0': { verify: 'switchBack' } });
    unit.start();
    await waitFor('1.0.0 again with the outcome', () => journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome'), 15_000);
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE, RESTART_EXIT_CODE]);
    const outcome = journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome')!;
    expect(outcome.boot).toMatchObject({ deployment: 'dep-1', result: 'rolledBack', reason: 'release 2.0.0 was not healthy (fixture)' });
    expect(readlinkSync(join(releases, 'current'))).toBe('1.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    await unit.stop();
    expect(unit.exits.at(-1)!.code).toBe(0);
  });

  it.each([1, 2])('a release that exits %i at once is started 3 times, then the launcher switches back by itself', async (code) => {
    const { root, releases, unit } = setup('3.0.0', { '3.0.0': { exit: code } });
    unit.start();
    await waitFor('1.0.0 again with the outcome', () => journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome'), 20_000);
    // exit 2 (a refused devices.yaml) would stop the unit for good: on trial it is a failure
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE, 1, 1, 1]);
    const outcome = journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome')!;
    expect(outcome.boot).toMatchObject({ deployment: 'dep-1', result: 'rolledBack', reason: 'release 3.0.0 did not report healthy (3 starts)' });
    expect(readlinkSync(join(releases, 'current'))).toBe('1.0.0');
    expect(existsSync(join(releases, 'pending'))).toBe(false);
    expect(unit.stderr).toContain('rolled back: release 3.0.0 did not report healthy (3 starts)');
    expect(journal(root).at(-1)!.pid).toBe(unit.pid); // the previous release, exec'd
    await unit.stop();
  });

  it('a release that hangs on trial is stopped at its deadline and switched back by the launcher', async () => {
    const { root, releases, unit } = setup('4.0.0', { '4.0.0': { verify: 'hang' } }, { healthTimeoutMs: 3000, restartAllowanceMs: 0 });
    unit.start();
    await waitFor('4.0.0 on trial', () => journal(root).some((l) => l.version === '4.0.0' && l.boot?.state === 'verifying'), 10_000);
    await waitFor('1.0.0 again with the outcome', () => journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome'), 15_000);
    // the hung release got SIGTERM and stopped cleanly (0); still on trial past its deadline: 1
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE, 1]);
    expect(journal(root).some((l) => l.version === '4.0.0' && l.stopped)).toBe(true);
    const outcome = journal(root).find((l) => l.version === '1.0.0' && l.boot?.state === 'outcome')!;
    expect(outcome.boot).toMatchObject({ result: 'rolledBack', reason: 'release 4.0.0 did not report healthy (deadline passed)' });
    expect(readlinkSync(join(releases, 'current'))).toBe('1.0.0');
    await unit.stop();
  });

  it('a stop during a trial is a stop (0); the next start counts the attempt', async () => {
    const { root, releases, unit } = setup('2.0.0', { '2.0.0': { verify: 'hang' } });
    unit.start();
    await waitFor('2.0.0 on trial', () => journal(root).some((l) => l.version === '2.0.0' && l.boot?.state === 'verifying'), 10_000);
    await unit.stop();
    expect(unit.exits.map((e) => e.code)).toEqual([RESTART_EXIT_CODE, 0]);
    expect(readMarker(join(releases, 'pending'))).toMatchObject({ to: '2.0.0', attempts: '1' });
    unit.start();
    await waitFor('2.0.0 on trial again', () => journal(root).filter((l) => l.version === '2.0.0' && l.boot?.state === 'verifying').length === 2, 10_000);
    expect(readMarker(join(releases, 'pending'))).toMatchObject({ attempts: '2' });
    await unit.stop();
  });
});

describe('the real gateway, bundled from the current sources, as a release', () => {
  const gatewayBundle = join(work.path, 'gateway.mjs');
  beforeAll(async () => {
    await bundle(join(ROOT, 'edge/cli.ts'), gatewayBundle);
  }, 120_000);

  it('runs in the launcher\'s place, then on trial as its child, and stops cleanly on SIGTERM both ways', async () => {
    const { root, releases } = fixtureRoot();
    makeRelease(releases, '1.0.0', { bundleFile: gatewayBundle });
    makeRelease(releases, '2.0.0', { bundleFile: gatewayBundle });
    symlinkSync('1.0.0', join(releases, 'current'));
    const config = join(root, 'devices.yaml');
    writeFileSync(config, `gateway: { id: gw-selfupdate }\nstorage: { path: ${join(root, 'data/gw.db')} }\n`);
    const unit = new Unit(releases, ['start', '--config', config, '--log-format', 'json']);
    units.push(unit);

    const runningPid = async (n: number): Promise<number> => {
      const line = await waitFor(
        'gateway running',
        () => unit.stdout.split('\n').filter((l) => l.includes('"msg":"gateway running"'))[n],
        30_000,
      );
      return (JSON.parse(line) as { pid: number }).pid;
    };
    unit.start();
    expect(await runningPid(0)).toBe(unit.pid);
    await unit.stop();
    expect(unit.exits.map((e) => e.code)).toEqual([0]);

    updater(releases, '1.0.0').activate('dep-real', '2.0.0');
    unit.start();
    const pid = await runningPid(1);
    expect(pid).not.toBe(unit.pid);
    expect(readMarker(join(releases, 'pending'))).toMatchObject({ to: '2.0.0', attempts: '1' });
    await unit.stop();
    expect(unit.exits.map((e) => e.code)).toEqual([0, 0]);
    expect(unit.stdout.split('\n').filter((l) => l.includes('"msg":"gateway stopped"'))).toHaveLength(2);
  }, 90_000);
});
