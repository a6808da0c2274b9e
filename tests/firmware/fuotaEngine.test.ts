/**
 * FUOTA as the firmware engine's third method (edge/firmware/engine.ts, jobRunner.ts, targets.ts):
 * a signed deployment to LoRaWAN streetlights goes the engine's one road (manifest, targets,
 * journal, artifact, waves, gates, caps) and each job's node through its wave's FUOTA session.
 * The engine, its journal and artifact store are real, in this process, on a real store; the
 * LoRaWAN driver is the FuotaRadio port over simulated nodes of fuotaAir.ts (it stands in for
 * the network server; the lead's end-to-end test covers the real driver).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { scaledClock, systemClock, type Clock } from '../../edge/clock.js';
import type { DeviceOutcome } from '../../edge/control/lightDriver.js';
import { ArtifactStore } from '../../edge/firmware/artifacts.js';
import { FirmwareEngine, type FirmwareParts } from '../../edge/firmware/engine.js';
import { FirmwareJournal } from '../../edge/firmware/journal.js';
import type { DeploymentPolicy, DeploymentRecord, JobRecord } from '../../edge/firmware/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { sampler } from './engineRig.js';
import { envelope, keyPair, simImage } from './e2e/support.js';
import { airNode, fuotaEvents, simAir, type SimAir } from './fuotaAir.js';

const K = 200;
const OLD = 0x0100;
const NEW = 0x0204;
const keys = keyPair();
/** lights may update at any hour */
const ALL_DAY = [
  { from: '00:00', to: '12:00' },
  { from: '12:00', to: '00:00' },
];

interface Rig {
  t: TestContext;
  air: SimAir;
  engine: FirmwareEngine;
  /** the gateway restarted: the engine stopped, a new one on the same store, artifacts and air */
  restart(): Promise<void>;
  close(): Promise<void>;
}

interface RigOptions {
  keyless?: boolean;
  attach?: boolean;
  /** firmware.lights (default: updates at any hour) */
  lights?: Record<string, unknown>;
  /** gateway.lat / lon */
  site?: { lat: number; lon: number };
  /** the gateway's clock (default the system's) */
  clock?: Clock;
  /** lorawan.fuota.rebootDelay (default 10 s) */
  rebootDelay?: string;
  /** the control plane (default none): a stand-in for the lights' commands */
  control?: FirmwareParts['control'];
  /** the store as the engine sees it (a store without module tables) */
  store?: (store: TestContext['store']) => TestContext['store'];
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

/** Three LoRaWAN streetlights of group street-1 (lamp-3 without a GenAppKey when `keyless`), the engine attached to the air. */
function startRig(o: RigOptions = {}): Rig {
  const nodes = [1, 2, 3].map((i) => airNode(i));
  if (o.keyless) delete nodes[2]!.cfg.genAppKey;
  const t = makeContext({
    ...(o.site ? { gateway: { id: 'gw-test', ...o.site } } : {}),
    groups: [{ id: 'street-1' }],
    devices: nodes.map((n) => ({ id: n.cfg.id, devEui: n.cfg.devEui, profile: 'lora-streetlight', groups: ['street-1'] })),
    lorawan: {
      devices: nodes.map(({ cfg }) => ({ devEui: cfg.devEui, activation: 'abp' as const, class: 'C' as const, devAddr: cfg.devAddr, nwkSKey: cfg.nwkSKey, appSKey: cfg.appSKey, ...(cfg.genAppKey ? { genAppKey: cfg.genAppKey } : {}) })),
      fuota: { answerTimeout: '2m', rebootDelay: o.rebootDelay ?? '10s' },
    },
    firmware: { signingKeys: [keys.publicPem], lights: o.lights ?? { windows: ALL_DAY } },
  });
  const clock = scaledClock(systemClock, K);
  // RX2 at DR0 (lorawan.rx2Dr's default): the unicast repair road caps the fragments at 48 bytes
  const air = simAir({ clock, nodes, rx2Dr: 0 });
  const dir = tempDir('streetbox-fuota-artifacts-');
  const log = t.ctx.log;
  const ctx = { ...t.ctx, clock: o.clock ?? t.ctx.clock, store: o.store?.(t.store) ?? t.store };
  const engineOf = () => {
    const e = new FirmwareEngine({
      ctx,
      journal: FirmwareJournal.open(t.store, log)!,
      artifacts: new ArtifactStore({ dir: dir.path, maxBytes: 16 * 1024 * 1024, log, clock: systemClock }),
      tickMs: 50,
    });
    if (o.attach !== false) e.attach({ lorawan: air.radio, control: o.control, health: () => ({ ok: true }) });
    e.start();
    return e;
  };
  let engine = engineOf();
  const rig: Rig = {
    t,
    air,
    get engine() {
      return engine;
    },
    async restart() {
      await engine.stop(1000);
      engine = engineOf();
    },
    async close() {
      await engine.stop(1000);
      air.stop();
      await t.close();
      dir.remove();
    },
  };
  rigs.push(rig);
  return rig;
}

function submit(r: Rig, id: string, image = simImage(NEW, 3000), policy?: DeploymentPolicy) {
  const manifest = { id, targets: { groups: ['street-1'] }, ...(policy ? { policy } : {}) };
  return r.engine.submit({ source: 'technician', principal: 'tech', role: 'technician', envelope: envelope(keys, 'gw-test', manifest, image), artifact: image.bytes });
}

describe('a deployment to LoRaWAN streetlights', () => {
  it('multicasts to the whole group at once, reboots one light at a time (maxPerGroup 1), done when each reports the new version', async () => {
    const r = startRig();
    const image = simImage(NEW, 3000);
    const s = submit(r, 'lora-1', image);
    expect(s.first.status).toBe('running');
    let together = false;
    let rebootingAtOnce = 0;
    const watch = sampler(() => {
      const jobs = r.engine.jobs('lora-1');
      if (jobs.filter((j) => j.stage === 'transferring').length === 3) together = true;
      rebootingAtOnce = Math.max(rebootingAtOnce, jobs.filter((j) => j.stage === 'activating' || j.stage === 'verifying').length);
    });
    const report = await s.outcome;
    watch.stop();
    expect(report.status).toBe('completed');
    // the multicast takes no light out of service: all three transfer together; the reboots do, one at a time
    expect(together).toBe(true);
    expect(rebootingAtOnce).toBe(1);
    const jobs = r.engine.jobs('lora-1');
    for (const j of jobs) {
      expect(j).toMatchObject<Partial<JobRecord>>({ method: 'fuota', stage: 'confirmed', versionBefore: OLD, versionAfter: NEW, bytesAcked: image.bytes.length, code: null });
      expect(r.air.node(j.device).firmwareVersion).toBe(NEW);
    }
    // one session for the wave: 48-byte fragments (RX2 at DR0 carries the repairs), planned in its event
    const planned = fuotaEvents(r.t.events, 'fuota.session', 'planned');
    expect(planned).toHaveLength(1);
    expect(planned[0]!.detail).toMatchObject({ nodes: 3, fragSize: 48, fragments: Math.ceil(3000 / 48) });
    // each stage a firmware.job event, as for every method
    const kinds = r.t.events.filter((e) => e.device === 'lamp-2' && e.kind.startsWith('firmware.job.')).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['firmware.job.fetching', 'firmware.job.transferring', 'firmware.job.activating', 'firmware.job.verifying', 'firmware.job.confirmed']));
    expect(r.engine.metrics()).toContainEqual(expect.objectContaining({ name: 'streetbox_fuota_nodes_total', labels: { outcome: 'confirmed' }, value: 3 }));
  });

  it('a node without a GenAppKey is refused E_FW_TARGET naming the key; without the LoRaWAN driver no node is a target', async () => {
    const r = startRig({ keyless: true });
    const s = submit(r, 'lora-2');
    expect(s.first).toMatchObject({ status: 'rejected', code: 'E_FW_TARGET', reason: expect.stringMatching(/device "lamp-3" has no GenAppKey for FUOTA: set lorawan\.devices\[\]\.genAppKey/) });
    const off = startRig({ attach: false });
    expect(submit(off, 'lora-3').first).toMatchObject({ status: 'rejected', code: 'E_FW_TARGET', reason: expect.stringMatching(/LoRaWAN node, and the LoRaWAN driver is not running/) });
  });

  it('the transferring stage times out by the plan, not firmware.timeouts.transfer', async () => {
    const r = startRig();
    const s = submit(r, 'lora-4');
    const job = await waitFor('a job transferring with its plan', () => {
      const planned = fuotaEvents(r.t.events, 'fuota.session', 'planned').length > 0;
      return planned && r.engine.jobs('lora-4').find((j) => j.stage === 'transferring');
    }, 10_000);
    const timeout = (r.engine as unknown as { stageTimeout(j: JobRecord): number }).stageTimeout(job);
    const [planned] = fuotaEvents(r.t.events, 'fuota.session', 'planned');
    expect(timeout).not.toBe(r.t.config.firmware.timeouts.transfer);
    expect(timeout).toBeGreaterThanOrEqual(planned!.detail.sessionTimeoutMs);
    expect((await s.outcome).status).toBe('completed');
  });
});

/** Paris: midnight UTC is night there all year */
const PARIS = { lat: 48.8566, lon: 2.3522 };
const NIGHT = Date.UTC(2026, 0, 15, 0, 0);
/** the gateway's clock from NIGHT on (its timers the system's) */
function nightClock(): Clock {
  const t0 = Date.now();
  return { ...systemClock, now: () => NIGHT + (Date.now() - t0) };
}

/** A control plane stand-in: the LoRaWAN command road (lighting over the real driver) cannot run over the test's radio port. */
function lightsThat(take: (device: string) => boolean): NonNullable<FirmwareParts['control']> {
  return {
    reassert: (device: string) =>
      Promise.resolve<DeviceOutcome>(
        take(device) ? { device, status: 'verified', level: 40, via: 'lorawan' } : { device, status: 'failed', level: 40, reason: 'lorawan: no acknowledgement after the retries', via: 'lorawan' },
      ),
    firmwareHold: () => null,
    wanted: () => null,
  } as unknown as NonNullable<FirmwareParts['control']>;
}

describe('LoRaWAN streetlights under the city-safety gates', () => {
  it("are lights: at night (no windows) a node's reboot waits for the day, and the multicast does not", async () => {
    const r = startRig({ lights: { byDay: true, windows: [] }, site: PARIS, clock: nightClock() });
    submit(r, 'lora-night');
    const waiting = await waitFor('a reboot waiting for the day', () => r.engine.jobs('lora-night').find((j) => j.waiting?.startsWith('night: lights update by day')), 10_000);
    expect(waiting.stage).toBe('transferring');
    // the block is whole on every node, none rebooted
    await waitFor('every node holds the block', () => fuotaEvents(r.t.events, 'fuota.node', 'received').length === 3, 10_000);
    for (const n of r.air.nodes) expect(n.stats.reboots).toBe(0);
  });

  it('are lights: firmware.lights.maxGroupShare caps their reboots (3 of a group of 3 allowed by the manifest, 1 by the share)', async () => {
    const r = startRig();
    let rebootingAtOnce = 0;
    const s = submit(r, 'lora-share', simImage(NEW, 3000), { maxPerGroup: 3 });
    const watch = sampler(() => {
      const jobs = r.engine.jobs('lora-share');
      rebootingAtOnce = Math.max(rebootingAtOnce, jobs.filter((j) => j.stage === 'activating' || j.stage === 'verifying').length);
    }, 1);
    expect((await s.outcome).status).toBe('completed');
    watch.stop();
    expect(rebootingAtOnce).toBe(1);
  });

  it("the gateway's own update waits while a FUOTA session transfers (a restart would cut it short)", async () => {
    const r = startRig();
    const s = submit(r, 'lora-busy');
    const job = await waitFor('a fuota job transferring', () => r.engine.jobs('lora-busy').find((j) => j.stage === 'transferring'), 10_000);
    const gatewayJob: JobRecord = { ...job, deployment: 'gw-release', device: 'gw-test', method: 'gateway', stage: 'pending' };
    expect(r.engine.mayStart({} as DeploymentRecord, gatewayJob, null)).toMatchObject({ ok: false, waiting: expect.stringMatching(/^other updates under way \(lamp-/) });
    await s.outcome;
  });
});

describe('a LoRaWAN streetlight after its reboot', () => {
  it('is confirmed once it reports the new version and takes its wanted level again (the functional probe)', async () => {
    const r = startRig({ control: lightsThat(() => true) });
    expect((await submit(r, 'lora-probe').outcome).status).toBe('completed');
    for (const j of r.engine.jobs('lora-probe')) expect(j.reason).toMatch(/; probe: took its wanted level 40 % and acknowledged it$/);
  });

  it('fails E_FW_PROBE when it runs the new version but does not take its level', async () => {
    const r = startRig({ control: lightsThat((device) => device !== 'lamp-2') });
    await submit(r, 'lora-probe-2').outcome;
    const j = r.engine.jobs('lora-probe-2').find((x) => x.device === 'lamp-2')!;
    expect(j).toMatchObject({ stage: 'failed', code: 'E_FW_PROBE', versionAfter: NEW, reason: expect.stringMatching(/^runs version 516, but the functional probe failed: .*no acknowledgement/) });
  });

  it('a restart while a node reboots: its job is journaled activating once', async () => {
    const r = startRig({ rebootDelay: '2m' });
    const s = submit(r, 'lora-restart');
    await waitFor('a node rebooting', () => r.engine.jobs('lora-restart').some((j) => j.stage === 'activating'), 10_000);
    await r.restart();
    await waitFor('every job ended', () => r.engine.jobs('lora-restart').every((j) => j.stage === 'confirmed'), 20_000);
    void s;
    for (const n of r.air.nodes) {
      const activating = r.t.events.filter((e) => e.device === n.cfg.id && e.kind === 'firmware.job.activating');
      expect(activating, n.cfg.id).toHaveLength(1);
    }
  });
});

describe('where FUOTA cannot run', () => {
  it("a store without module tables (no journal for the sessions) refuses LoRaWAN nodes, saying why", () => {
    const hide = (store: TestContext['store']) =>
      new Proxy(store, { get: (target, p) => (p === 'migrate' || p === 'sqlite' ? undefined : Reflect.get(target, p, target) as unknown) });
    const r = startRig({ store: hide });
    expect(submit(r, 'lora-none').first).toMatchObject({ status: 'rejected', code: 'E_FW_TARGET', reason: expect.stringMatching(/LoRaWAN node, and this gateway's store keeps no module tables/) });
  });
});
