/**
 * FUOTA end to end (issue 18 Tests): the real gateway process (bin/streetbox.js start on the
 * bundle, `npm run build` first; the README's `npm test` builds) is the network server of four
 * LoRaWAN streetlights simulated in this test process (edge/sim/lorawan: a Semtech UDP packet
 * forwarder over real UDP on loopback, class A nodes with their own TS003–TS006 stacks). A
 * technician deploys a signed 10 KiB image to their group through the HTTP API; the gateway's
 * firmware engine runs one FUOTA session for the wave (TS005 group, TS004 fragments in a class C
 * window at 869.525 MHz DR5, status, unicast repair, TS006 reboot and DevVersionAns). Once 40 % of
 * the fragments went out the gateway is SIGKILLed and started again on the same data: the session
 * resumes from its journal and completes.
 *
 * Both sides run on the radio time line every process shares (`RADIO_TIME_ORIGIN`, edge/clock.ts),
 * 10× faster than the wall (`simulate.radioTimeScale: 10`): the 4-minute multicast takes 24 s. The
 * nodes outlive the kill (they are devices of their own): they keep their decoder, their class C
 * window and their counters. The air loses 10 % of the frames at every node, and the forwarder
 * refuses 10 % of the PULL_RESPs with a TX_ACK error (TOO_LATE, COLLISION_PACKET), both drawn from
 * one seed: the seed is in the test's name, and STREETBOX_FUOTA_SEED=<n> replays a run's radio
 * (STREETBOX_FUOTA_TRACE=1: a line per step on stderr).
 *
 * Then: the three honest nodes are confirmed by the version they report (and run it); the lying
 * node fails E_FW_VERIFY with both versions in its reason; the deployment completes (its wave
 * allows one failure in four) and nothing stays in progress (jobs, the session's journal, the
 * driver's queues), each light driven back to its level; the multicast FCnt never repeats across
 * the kill (read at the forwarder); the TX_ACK errors the restarted process met are counted in its
 * /metrics; and the duty-cycle ledger the gateway journals (`lorawan_airtime`, read from the store
 * once it stopped, the rows written before the kill included) never held more than a sub-band's
 * duty cycle over any hour, and kept each multicast fragment's off-time.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { RADIO_TIME_ORIGIN, scaledClock, systemClock } from '../../../edge/clock.js';
import { DATA_FRAGMENT_OVERHEAD } from '../../../edge/drivers/lorawan/app/index.js';
import { airtime } from '../../../edge/drivers/lorawan/downlink/scheduler.js';
import { loraPacket } from '../../../edge/drivers/lorawan/loraPacket.js';
import { DUTY_CYCLE_WINDOW_MS } from '../../../edge/drivers/lorawan/region/dutyCycle.js';
import { EU868_SUB_BANDS, subBandOf } from '../../../edge/drivers/lorawan/region/eu868.js';
import { FRAME_OVERHEAD } from '../../../edge/firmware/methods/fuota/planner.js';
import type { JobRecord } from '../../../edge/firmware/types.js';
import { silentLogger } from '../../../edge/log.js';
import { startLorawanSimulator, type LorawanSimulator } from '../../../edge/sim/lorawan/index.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { airNode } from '../fuotaAir.js';
import { ALL_DAY, dumpOnFailure } from './outcomes.js';
import { api, envelope, freePort, freeUdpPort, keyPair, simImage, startGatewayProcess, TECH_TOKEN, writeGateway, type Api, type GatewayProcess } from './support.js';

/** simulate.radioTimeScale: the radio runs this many times faster than the wall, in the gateway and here */
const K = 10;
const SEED = Number(process.env.STREETBOX_FUOTA_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TRACE = process.env.STREETBOX_FUOTA_TRACE === '1';
const GATEWAY = 'gw-fuota';
const DEPLOYMENT = 'fuota-e2e';
/** the version the simulated nodes run (edge/sim/lorawan NODE_DEFAULTS) and the image's */
const OLD = 0x0100;
const NEW = 0x0203;
const IMAGE_BYTES = 10 * 1024;
/** four class A streetlights of one group, ABP with a GenAppKey; lamp-4 lies about its version */
const NODES = [1, 2, 3, 4].map((i) => ({ ...airNode(i).cfg, class: 'A' as const }));
const LIAR = 'lamp-4';
const HONEST = NODES.map((n) => n.id).filter((id) => id !== LIAR);
/** lorawan.fuota's defaults: DR5 (SF7BW125) on 869.525 MHz, sub-band g3 at 10 % */
const MULTICAST = { dr: 5, freqMHz: 869.525 };
/** the kill comes once this share of the planned multicast went out */
const KILL_AFTER = 0.4;
/**
 * Radio ms a ledger row's instant may be off, both ways: the gateway stores each transmission's
 * instant in wall-clock ms, read from Date.now() in 1 ms steps, which the 10× radio clock makes
 * 10 ms steps; a few ms more for the two clocks read one after the other.
 */
const SLACK_MS = 25;

const rig: { dir: TempDir; sim: LorawanSimulator | null; gp: GatewayProcess | null } = { dir: tempDir('streetbox-fuota-e2e-'), sim: null, gp: null };

afterAll(async () => {
  await rig.gp?.kill();
  await rig.sim?.stop();
  rig.dir.remove();
});

const trace = (line: string): void => {
  if (TRACE) process.stderr.write(`[fuota e2e ${new Date().toISOString().slice(11, 23)}] ${line}\n`);
};

/** devices.yaml's lorawan section: the nodes' keys, the RX settings the nodes are given too, FUOTA's timing on the radio clock */
function lorawanLines(port: number): string[] {
  return [
    `port: ${port}`,
    'bind: 127.0.0.1',
    'rx1Delay: 1',
    'rx1DrOffset: 0',
    'rx2Dr: 0',
    // each request re-sent up to 4 times within 40 s of radio time (4 s of the wall; a class A node answers
    // after its next uplink, every 5 s); a node reboots 5 s after it is asked
    'fuota: { answerTimeout: 40s, rebootDelay: 5s }',
    'devices:',
    ...NODES.map((n) => `  - { devEui: ${n.devEui}, activation: abp, class: A, devAddr: '${n.devAddr}', nwkSKey: '${n.nwkSKey}', appSKey: '${n.appSKey}', genAppKey: '${n.genAppKey}' }`),
  ];
}

// ───────────────────────────── what the API says ─────────────────────────────

interface StoredEvent {
  seq: number;
  kind: string;
  device: string | null;
  detail: Record<string, unknown>;
}

async function events(a: Api, kind: string): Promise<StoredEvent[]> {
  const r = await a.call<{ events: StoredEvent[] }>('GET', `/api/v1/events?limit=10000&kind=${encodeURIComponent(kind)}`);
  if (r.status !== 200) throw new Error(`GET /api/v1/events: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.events;
}

/** The sum of the samples of `name` in GET /metrics whose labels include `labels`. */
async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TECH_TOKEN}` } })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

// ───────────────────────────── what the forwarder transmitted ─────────────────────────────

/** DevAddr and the 16 FCnt bits of every frame the simulated forwarder transmitted (TX_ACK NONE), in order. */
function transmitted(sim: LorawanSimulator): { devAddr: string; fCnt: number }[] {
  return sim.forwarders.flatMap((f) =>
    f.received.map(({ txpk }) => {
      const p = loraPacket.fromWire(Buffer.from(txpk.data, 'base64'));
      return { devAddr: p.DevAddr!.toString('hex'), fCnt: p.FCnt!.readUInt16BE(0) };
    }),
  );
}

/** PULL_RESPs the simulated forwarder refused with a TX_ACK error. */
function txAckErrors(sim: LorawanSimulator): number {
  return sim.forwarders.reduce((s, f) => s + Object.values(f.txAckErrorCounts).reduce((a, b) => a + b, 0), 0);
}

// ───────────────────────────── the store, once the gateway stopped ─────────────────────────────

interface AirtimeRow {
  gateway: string;
  band: string;
  /** wall ms of the radio clock */
  at: number;
  airtimeMs: number;
}

function readStore<T>(dir: TempDir, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir.path, 'data', 'gw.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/**
 * Hours in which a sub-band of a forwarder carried more than its duty cycle (ETSI EN 300 220: the
 * sum of transmission times over any hour): each row starts a window, the rows of the hour from it
 * are summed. Empty: none.
 */
function dutyCycleProblems(rows: readonly AirtimeRow[]): string[] {
  const problems: string[] = [];
  for (const key of new Set(rows.map((r) => `${r.gateway} ${r.band}`))) {
    const list = rows.filter((r) => `${r.gateway} ${r.band}` === key);
    const budgetMs = EU868_SUB_BANDS.find((b) => b.name === list[0]!.band)!.dutyCycle * DUTY_CYCLE_WINDOW_MS;
    for (const start of list) {
      const used = list.filter((r) => r.at >= start.at && r.at < start.at + DUTY_CYCLE_WINDOW_MS).reduce((s, r) => s + r.airtimeMs, 0);
      if (used > budgetMs) problems.push(`${key}: ${Math.round(used)} ms on air in the hour from ${start.at}, more than ${budgetMs}`);
    }
  }
  return problems;
}

/**
 * Multicast fragments (the rows of a fragment's air time on its band) followed by another
 * transmission on that band before their off-time ended: airtime / dutyCycle from the start of one
 * to the start of the next, less SLACK_MS. Empty: none.
 */
function offTimeProblems(rows: readonly AirtimeRow[], band: string, dutyCycle: number, fragmentAirtimeMs: number): string[] {
  const list = rows.filter((r) => r.band === band);
  const problems: string[] = [];
  list.forEach((r, i) => {
    const next = list[i + 1];
    if (next === undefined || Math.abs(r.airtimeMs - fragmentAirtimeMs) > 1e-6) return;
    const interval = r.airtimeMs / dutyCycle;
    if (next.at - r.at < interval - SLACK_MS) {
      problems.push(`the fragment at ${r.at} is followed ${next.at - r.at} ms after its start by a transmission of ${next.airtimeMs.toFixed(1)} ms; its off-time ends ${interval.toFixed(1)} ms after its start`);
    }
  });
  return problems;
}

// ───────────────────────────── the scenario ─────────────────────────────

describe('FUOTA through the real gateway process', () => {
  it(`a 10 KiB image to 4 nodes (one lies), 10 % downlink loss, TX_ACK errors, a SIGKILL mid-multicast: resumed, 3 confirmed, the liar failed, the duty cycle kept (seed ${SEED})`, async () => {
    const keys = keyPair();
    const apiPort = await freePort();
    const udpPort = await freeUdpPort();
    writeGateway(rig.dir.path, {
      id: GATEWAY,
      apiPort,
      buses: [],
      keys,
      devices: NODES.map((n) => ({ id: n.id, devEui: n.devEui, groups: ['street-1'] })),
      // lights may update at any hour, two of the four out of service (rebooting) at once; a node reports
      // its version within answerTimeout of its reboot (40 s of radio time, the longer of it and timeouts.verify)
      firmware: [`lights: { windows: ${ALL_DAY}, maxGroupShare: 0.5 }`, 'timeouts: { verify: 10s }'],
      lorawan: lorawanLines(udpPort),
      simulate: `{ enabled: false, radioTimeScale: ${K} }`,
    });
    const a = api(apiPort);
    rig.gp = await startGatewayProcess(rig.dir.path, apiPort);
    dumpOnFailure(() => rig.gp!);

    // the nodes, on the radio time line the gateway's clock runs on
    rig.sim = await startLorawanSimulator({
      port: udpPort,
      host: '127.0.0.1',
      devices: NODES,
      uplinkIntervalMs: 5_000,
      keepaliveMs: 200,
      log: silentLogger(),
      clock: scaledClock(systemClock, K, RADIO_TIME_ORIGIN),
      // ABP nodes listen where the server sends (lorawanLines)
      nodeOptions: { rx1DrOffset: 0, rx2Dr: 0, rx1Delay: 1 },
      perNode: { [LIAR]: { lies: true } },
      radio: { downlinkLoss: 0.1, seed: SEED, txAckErrors: { rate: 0.1, errors: ['TOO_LATE', 'COLLISION_PACKET'] } },
    });
    const sim = rig.sim;
    // the server knows each node's data rate: it sizes the unicast repair road, and so the fragments
    await waitFor('an uplink of every node heard', async () => {
      const r = await a.call<{ devices: { id: string; lastSeen: number | null }[] }>('GET', '/api/v1/devices');
      return r.status === 200 && NODES.every((n) => typeof r.body.devices.find((d) => d.id === n.id)?.lastSeen === 'number');
    }, 10_000);

    // ── the deployment, and a SIGKILL once 40 % of the multicast went out
    const image = simImage(NEW, IMAGE_BYTES);
    // one failure in four allowed; two lights of the group rebooting at once
    const policy = { waves: [{ size: '100%', errorThreshold: 0.25, successThreshold: 0.75 }], maxPerGroup: 2 };
    const sent = await a.deploy(envelope(keys, GATEWAY, { id: DEPLOYMENT, targets: { groups: ['street-1'] }, policy }, image), image.bytes);
    expect(sent, 'the deployment').toMatchObject({ status: 202, body: { status: 'running' } });
    const planned = await waitFor('the session planned', async () => (await events(a, 'fuota.session')).find((e) => e.detail.step === 'planned'), 30_000);
    const plan = planned.detail as { fragments: number; parity: number; fragSize: number; nodes: number };
    trace(`planned: ${JSON.stringify(plan)}`);
    expect(plan, 'the plan: one session for the four nodes, 219-byte fragments (DR5 carries 222 bytes)').toMatchObject({ nodes: 4, fragSize: 219, fragments: Math.ceil(IMAGE_BYTES / 219) });
    const total = plan.fragments + plan.parity;
    await waitFor(`${KILL_AFTER * 100} % of the ${total} fragments multicast`, async () => (await metric(apiPort, 'streetbox_fuota_fragments_total')) >= KILL_AFTER * total, { timeoutMs: 60_000, intervalMs: 50 });
    // every TX_ACK error the forwarder sent so far counted in /metrics (read at a moment none is on its way)
    const countedBeforeKill = await waitFor('the TX_ACK errors so far counted in /metrics', async () => {
      const errors = txAckErrors(sim);
      return (await metric(apiPort, 'streetbox_lorawan_tx_ack_errors_total')) === errors && { errors };
    }, 5000);
    await rig.gp.kill();
    const errorsBeforeRestart = txAckErrors(sim);
    const [atKill, ...more] = readStore(rig.dir, (db) => db.prepare('SELECT step, sent FROM fuota_sessions WHERE deployment = ?').all(DEPLOYMENT) as { step: string; sent: number }[]);
    trace(`killed: ${JSON.stringify(atKill)}`);
    expect(more, 'sessions beside the first').toEqual([]);
    expect(atKill?.step, 'the journal at the kill: mid-multicast').toBe('multicast');
    expect(atKill!.sent, 'fragments the journal holds as sent').toBeGreaterThanOrEqual(KILL_AFTER * total);
    expect(atKill!.sent, 'fragments the journal holds as sent').toBeLessThan(total);

    // ── started again on the same data: the session resumes where it was and completes
    rig.gp = await startGatewayProcess(rig.dir.path, apiPort);
    const done = await a.waitFor(DEPLOYMENT, 'ended', (rep) => rep.status !== 'running' && rep.status !== 'paused', 90_000);
    trace(`ended: ${done.report.status}`);
    const jobs = new Map<string, JobRecord>(done.jobs.map((j) => [j.device, j]));
    expect(done.report.status, `the deployment's end (${JSON.stringify(done.jobs.map((j) => [j.device, j.stage, j.code, j.reason]))})`).toBe('completed');
    for (const id of HONEST) {
      expect(jobs.get(id), `${id}'s job`).toMatchObject({ method: 'fuota', stage: 'confirmed', code: null, versionBefore: OLD, versionAfter: NEW, bytesAcked: IMAGE_BYTES, reason: expect.stringMatching(new RegExp(`^reports version ${NEW} after its reboot`)) });
      expect(sim.node(id)!.firmwareVersion, `the version ${id} runs`).toBe(NEW);
    }
    expect(jobs.get(LIAR), `${LIAR}'s job`).toMatchObject({ stage: 'failed', code: 'E_FW_VERIFY', versionAfter: OLD, reason: expect.stringContaining(`reports version ${OLD} after its reboot, not ${NEW}: it runs its old firmware`) });
    expect(sim.node(LIAR)!.firmwareVersion, `the version ${LIAR} runs`).toBe(OLD);
    const session = (await events(a, 'fuota.session')).map((e) => e.detail);
    trace(`session: ${session.map((d) => d.step).join(' ')}`);
    expect(session.filter((d) => d.step === 'resumed'), 'the session resumed once, mid-multicast, from the fragments the journal held').toEqual([expect.objectContaining({ at: 'multicast', sent: atKill!.sent })]);
    expect(session.filter((d) => d.step === 'planned'), 'plans: the one before the kill').toHaveLength(1);
    expect(session.find((d) => d.step === 'ended'), 'the session ended').toMatchObject({ confirmed: 3, failed: 1 });

    // each light lit at its wanted level (the group's default, 100 %), nothing waiting in the driver's queues, no command expired
    for (const n of NODES) expect(sim.node(n.id)!.state, `${n.id}'s light`).toMatchObject({ dimLevel: 100, lampOn: true });
    await waitFor("the driver's queues empty", async () => {
      const r = await a.call<{ lorawan?: { devices: { id: string; queued: number }[] } }>('GET', '/api/v1/status');
      return r.body.lorawan?.devices.every((d) => d.queued === 0);
    }, 10_000);
    const commandExpired = (await events(a, 'lorawan.downlink.failed')).filter((e) => e.detail.reason === 'expired' && ['dim', 'on', 'off'].includes(e.detail.action as string));
    expect(commandExpired, 'commands to lights expired').toEqual([]);

    // ── the multicast at the forwarder: each planned fragment once (one more when the kill fell between the air and the journal), no FCnt twice
    const mcAddr = readStore(rig.dir, (db) => db.prepare('SELECT mc_addr FROM fuota_sessions WHERE deployment = ?').pluck().get(DEPLOYMENT) as string);
    const fCnts = transmitted(sim)
      .filter((f) => f.devAddr === mcAddr)
      .map((f) => f.fCnt);
    trace(`${fCnts.length} multicast frames transmitted (${total} planned)`);
    expect(fCnts.length, 'multicast frames transmitted').toBeGreaterThanOrEqual(total);
    expect(fCnts.length, 'multicast frames transmitted').toBeLessThanOrEqual(total + 1);
    expect(new Set(fCnts).size, 'multicast FCnts: each once').toBe(fCnts.length);
    expect([...fCnts].sort((x, y) => x - y), 'multicast FCnts: rising, across the kill').toEqual(fCnts);

    // ── TX_ACK errors: the restarted process counted each it met, as the first did (10 % of some 150 PULL_RESPs: none at all is a one-in-a-million draw)
    const errorsSinceRestart = txAckErrors(sim) - errorsBeforeRestart;
    trace(`TX_ACK errors: ${txAckErrors(sim)} of ${transmitted(sim).length + txAckErrors(sim)} PULL_RESPs, ${countedBeforeKill.errors} counted before the kill, ${errorsSinceRestart} since the restart`);
    expect(txAckErrors(sim), `TX_ACK errors the forwarder sent (seed ${SEED})`).toBeGreaterThan(0);
    await waitFor('the TX_ACK errors since the restart counted in /metrics', async () => (await metric(apiPort, 'streetbox_lorawan_tx_ack_errors_total')) === errorsSinceRestart, 5000);
    // the multicast's own, counted by FUOTA (by error) as by the driver (by outcome)
    expect(await metric(apiPort, 'streetbox_fuota_tx_errors_total'), 'multicast TX_ACK errors since the restart, as FUOTA counts them').toBe(await metric(apiPort, 'streetbox_lorawan_multicast_total', { outcome: 'txError' }));

    // ── SIGTERM stops it within seconds
    const stopping = Date.now();
    await rig.gp.stop();
    expect(rig.gp.child.exitCode, 'exit code after SIGTERM').toBe(0);
    expect(Date.now() - stopping, 'ms from SIGTERM to exit').toBeLessThan(5000);

    // ── the journal: nothing in progress
    const open = readStore(rig.dir, (db) => ({
      sessions: db.prepare("SELECT id, step FROM fuota_sessions WHERE step <> 'ended'").all(),
      nodes: db.prepare("SELECT device, step FROM fuota_nodes WHERE step NOT IN ('done', 'current', 'failed', 'moved')").all(),
    }));
    expect(open, 'sessions and nodes of the journal left in progress').toEqual({ sessions: [], nodes: [] });

    // ── the duty-cycle ledger, the rows written before the kill included
    const rows = readStore(rig.dir, (db) => db.prepare('SELECT gateway, band, at, airtime_ms AS airtimeMs FROM lorawan_airtime ORDER BY at, rowid').all() as AirtimeRow[]);
    const band = subBandOf(MULTICAST.freqMHz)!;
    const fragmentAirtimeMs = airtime(plan.fragSize + DATA_FRAGMENT_OVERHEAD + FRAME_OVERHEAD, MULTICAST.dr);
    const fragmentRows = rows.filter((r) => r.band === band.name && Math.abs(r.airtimeMs - fragmentAirtimeMs) < 1e-6);
    trace(`${rows.length} ledger rows, ${fragmentRows.length} of a fragment's air time on ${band.name}`);
    expect(fragmentRows.length, 'ledger rows of multicast fragments: one per fragment transmitted').toBeGreaterThanOrEqual(fCnts.length);
    expect(dutyCycleProblems(rows), 'hours over a sub-band duty cycle').toEqual([]);
    expect(offTimeProblems(rows, band.name, band.dutyCycle, fragmentAirtimeMs), 'multicast fragments followed by a transmission within their off-time').toEqual([]);
  }, 150_000);
});
