/**
 * FUOTA as the firmware engine's third method (edge/firmware/engine.ts, jobRunner.ts, targets.ts):
 * a signed deployment to LoRaWAN streetlights goes the engine's one road (manifest, targets,
 * journal, artifact, waves, gates, caps) and each job's node through its wave's FUOTA session.
 * The engine, its journal and artifact store are real, in this process, on a real store; the
 * LoRaWAN driver is the FuotaRadio port over simulated nodes of fuotaAir.ts (it stands in for
 * the network server; the lead's end-to-end test covers the real driver).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { scaledClock, systemClock } from '../../edge/clock.js';
import { ArtifactStore } from '../../edge/firmware/artifacts.js';
import { FirmwareEngine } from '../../edge/firmware/engine.js';
import { FirmwareJournal } from '../../edge/firmware/journal.js';
import type { JobRecord } from '../../edge/firmware/types.js';
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
  close(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

/** Three LoRaWAN streetlights of group street-1 (lamp-3 without a GenAppKey when `keyless`), the engine attached to the air. */
function startRig(o: { keyless?: boolean; attach?: boolean } = {}): Rig {
  const nodes = [1, 2, 3].map((i) => airNode(i));
  if (o.keyless) delete nodes[2]!.cfg.genAppKey;
  const t = makeContext({
    groups: [{ id: 'street-1' }],
    devices: nodes.map((n) => ({ id: n.cfg.id, devEui: n.cfg.devEui, profile: 'lora-streetlight', groups: ['street-1'] })),
    lorawan: {
      devices: nodes.map(({ cfg }) => ({ devEui: cfg.devEui, activation: 'abp' as const, class: 'C' as const, devAddr: cfg.devAddr, nwkSKey: cfg.nwkSKey, appSKey: cfg.appSKey, ...(cfg.genAppKey ? { genAppKey: cfg.genAppKey } : {}) })),
      fuota: { answerTimeout: '2m', rebootDelay: '10s' },
    },
    firmware: { signingKeys: [keys.publicPem], lights: { windows: ALL_DAY } },
  });
  const clock = scaledClock(systemClock, K);
  // RX2 at DR0 (lorawan.rx2Dr's default): the unicast repair road caps the fragments at 48 bytes
  const air = simAir({ clock, nodes, rx2Dr: 0 });
  const dir = tempDir('streetbox-fuota-artifacts-');
  const log = t.ctx.log;
  const engine = new FirmwareEngine({
    ctx: t.ctx,
    journal: FirmwareJournal.open(t.store, log)!,
    artifacts: new ArtifactStore({ dir: dir.path, maxBytes: 16 * 1024 * 1024, log, clock: systemClock }),
    tickMs: 50,
  });
  if (o.attach !== false) engine.attach({ lorawan: air.radio, health: () => ({ ok: true }) });
  engine.start();
  const rig: Rig = {
    t,
    air,
    engine,
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

function submit(r: Rig, id: string, image = simImage(NEW, 3000)) {
  return r.engine.submit({ source: 'technician', principal: 'tech', role: 'technician', envelope: envelope(keys, 'gw-test', { id, targets: { groups: ['street-1'] } }, image), artifact: image.bytes });
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
