/**
 * A change that breaks the gateway goes back by itself, end to end (in-process gateway,
 * simulate: false, two Modbus TCP buses served by a simulator process, central on a real
 * mosquitto, gateway.confirmTimeout 3s):
 *  (a) bus `a` pointed at a port nobody listens on: rolled back within the timeout (+ slack),
 *      `rolledBack` E_CONFIG_PROBE naming the bus; the previous text is on disk again, the
 *      previous version runs, bus `a` polls again;
 *  (b) sync.url pointed at a dead port (sent by central): rolled back, and the `rolledBack`
 *      report reaches central once the gateway is connected again (retained, from the outbox);
 *  (c) commit-confirm through the API: not confirmed within 2s → rolledBack
 *      E_CONFIG_CONFIRM_TIMEOUT; confirmed within 30s (POST /api/v1/config/confirm) → confirmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigStageReport, ConfigVersion } from '../../../edge/reconfig/types.js';
import { freePort } from '../../helpers/ports.js';
import { spawnSimulators, type SimProcess } from '../../helpers/simProcess.js';
import { waitFor } from '../../helpers/wait.js';
import { gatewayYaml, readingTimes, startCentral, startRig, type Central, type Rig } from './support.js';

const GW = 'gw-rollback';
const CONFIRM_MS = 3000;
/** what the probe's 200 ms steps, the restore and a loaded machine may add to the timeout */
const SLACK_MS = 2000;
let sim: SimProcess;
let central: Central;
let rig: Rig;

beforeAll(async () => {
  sim = await spawnSimulators({
    tcp: [
      { id: 'a', devices: [{ unit: 1, profile: 'streetlight-controller' }] },
      { id: 'b', devices: [{ unit: 1, profile: 'streetlight-controller' }] },
    ],
  });
  central = await startCentral(GW);
  const yaml = gatewayYaml({
    id: GW,
    buses: [
      { id: 'a', port: sim.bus('a').port!, units: [1] },
      { id: 'b', port: sim.bus('b').port!, units: [1] },
    ],
    confirmTimeout: `${CONFIRM_MS / 1000}s`,
    syncUrl: central.broker.url,
    apiPort: await freePort(),
  });
  rig = await startRig(yaml);
  await central.subscribed();
  await waitFor('both lamps answering', () => rig.gw.built.modbus!.status().every((b) => b.devices.every((d) => d.online)), 15_000);
});

afterAll(async () => {
  await rig?.close();
  await central?.close();
  await sim?.stop();
});

/** A report, as the PUT answer carries it. */
const asReport = (body: Record<string, unknown>) => body as unknown as ConfigStageReport;
const busB = () => rig.gw.built.modbus!.status().find((b) => b.id === 'b')!;
const change = async (id: string) => (await rig.api('GET', `/api/v1/config/changes/${id}`)).body as unknown as ConfigVersion;

describe('rolled back by itself', () => {
  it('(a) a bus pointed at a dead port: rolled back within confirmTimeout, the previous text and version back, the bus polls again', async () => {
    const prev = { text: rig.text(), version: rig.running().version };
    const connectsB = busB().counters.connects;
    const dead = await freePort();
    const text = prev.text.replace(`port: ${sim.bus('a').port!}`, `port: ${dead}`);
    expect(text).not.toBe(prev.text);

    const put = await rig.api('PUT', '/api/v1/config', { content: text, baseVersion: prev.version });
    expect(put.status).toBe(409);
    const r = asReport(put.body);
    expect(r).toMatchObject({ stage: 'rolledBack', code: 'E_CONFIG_PROBE', runningVersion: prev.version });
    expect(r.reason).toMatch(/bus "?a\b/);
    const row = await change(r.id);
    const waited = r.at - row.appliedAt!;
    expect(waited).toBeGreaterThanOrEqual(CONFIRM_MS - 250);
    expect(waited).toBeLessThanOrEqual(CONFIRM_MS + SLACK_MS);

    expect(rig.text()).toBe(prev.text);
    expect(rig.running().version).toBe(prev.version);
    await waitFor('bus a polled again after the rollback', () => readingTimes(rig.gw, 'lamp-a-1').some((t) => t > r.at), 10_000);
    // the driver is healthy again (the lost bus reported back), and bus b was never touched
    await waitFor('the modbus driver running again', () => rig.gw.status().components.find((c) => c.name === 'modbus')?.state === 'running', 10_000);
    expect(busB().counters.connects).toBe(connectsB);
    expect(rig.events('config.rolledBack').at(-1)!.detail).toMatchObject({ id: r.id, code: 'E_CONFIG_PROBE', principal: 'tech' });
  });

  it('(b) the upstream pointed at a dead port: rolled back, and central hears of it once the gateway is back', async () => {
    const prev = { text: rig.text(), version: rig.running().version };
    const subscriptions = central.broker.subscriptions({ filter: `streetbox/${GW}/down/config` });
    const dead = await freePort();
    const text = prev.text.replace(central.broker.url, `mqtt://127.0.0.1:${dead}`);
    expect(text).not.toBe(prev.text);

    await central.send({ id: 'dead-sync', baseVersion: prev.version, content: text });
    const rolled = await central.waitStage('dead-sync', 'rolledBack', CONFIRM_MS + SLACK_MS + 10_000);
    expect(rolled).toMatchObject({ code: 'E_CONFIG_PROBE', runningVersion: prev.version, source: 'central', principal: 'upstream' });
    expect(rolled.reason).toMatch(/upstream/);
    // it went through the restored connection: the gateway subscribed again since
    expect(central.broker.subscriptions({ filter: `streetbox/${GW}/down/config` })).toBeGreaterThan(subscriptions);
    // every stage reached central, in order (one may come twice: sent, then cut by the restart before its PUBACK)
    const stages = [...new Set(central.reports('dead-sync').map((x) => x.stage))];
    expect(stages).toEqual(['staged', 'applied', 'rolledBack']);
    expect(await central.retained('dead-sync')).toMatchObject({ retain: true, report: { stage: 'rolledBack', code: 'E_CONFIG_PROBE' } });

    expect(rig.text()).toBe(prev.text);
    expect(rig.running().version).toBe(prev.version);
    expect(rig.gw.built.sync.status().connected).toBe(true);
    await waitFor('the outbox empty', () => rig.changes.outbox().pending(10).length === 0, 5000);
  });
});

describe('(c) commit-confirm through the API', () => {
  it('not confirmed in time: rolled back with E_CONFIG_CONFIRM_TIMEOUT', async () => {
    const prev = { text: rig.text(), version: rig.running().version };
    const text = prev.text.replace(/level: \d+/, 'level: 61');
    const put = await rig.api('PUT', '/api/v1/config', { content: text, baseVersion: prev.version, confirmWithin: '2s' });
    expect(put.status).toBe(202);
    const applied = asReport(put.body);
    expect(applied).toMatchObject({ stage: 'applied', confirmBy: expect.any(Number) as number, runningVersion: applied.version });
    expect(rig.text()).toBe(text);
    expect(rig.gw.status().config.awaitingConfirm).toMatchObject({ version: applied.version });

    const row = await waitFor('the change rolled back', async () => {
      const v = await change(applied.id);
      return v.stage === 'rolledBack' && v;
    });
    expect(row.endedAt! - row.appliedAt!).toBeLessThanOrEqual(2000 + SLACK_MS);
    expect(rig.events('config.rolledBack').at(-1)!.detail).toMatchObject({ id: applied.id, code: 'E_CONFIG_CONFIRM_TIMEOUT' });
    expect(rig.text()).toBe(prev.text);
    expect(rig.running().version).toBe(prev.version);
    expect(rig.gw.status().config.awaitingConfirm).toBeNull();
  });

  it('confirmed in time: confirmed, and it stays', async () => {
    const prev = { version: rig.running().version };
    const text = rig.text().replace(/level: \d+/, 'level: 62');
    const put = await rig.api('PUT', '/api/v1/config', { content: text, baseVersion: prev.version, confirmWithin: '30s' });
    expect(put.status).toBe(202);
    const applied = asReport(put.body);
    expect(applied.stage).toBe('applied');

    const confirm = await rig.api('POST', '/api/v1/config/confirm', {});
    expect(confirm.status).toBe(200);
    expect(confirm.body).toMatchObject({ id: applied.id, stage: 'confirmed' });
    await waitFor('the change confirmed', async () => (await change(applied.id)).stage === 'confirmed');
    expect(rig.running()).toMatchObject({ version: applied.version, running: true });
    expect(rig.text()).toBe(text);
    expect(rig.gw.status().config.awaitingConfirm).toBeNull();
    // nothing awaits a confirm any more
    expect((await rig.api('POST', '/api/v1/config/confirm', {})).status).toBe(409);
  });
});
