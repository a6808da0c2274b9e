/**
 * Central adds a device on one bus, end to end: a gateway (in-process, simulate: false) with two
 * Modbus TCP buses whose peers are served by a simulator process of their own, both polled every
 * 250 ms; central (a real mosquitto) sends the text with a second lamp on bus `a` from the
 * running version. Proves: the reports staged → applied → confirmed arrive in that order on
 * `up/config/<id>`; only bus `a` is touched (the report's components name it and not `b`); bus
 * `b`'s transport never reconnects and its readings show no gap longer than ~3 polls around the
 * apply; the store's seqs have no gap; the new lamp's readings arrive; devices.yaml on disk is
 * exactly the text sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSimulators, type SimProcess } from '../../helpers/simProcess.js';
import { waitFor } from '../../helpers/wait.js';
import { deviceId, gatewayYaml, readingTimes, seqGaps, startCentral, startRig, type Central, type Rig } from './support.js';

const GW = 'gw-device';
const POLL_MS = 250;
let sim: SimProcess;
let central: Central;
let rig: Rig;

beforeAll(async () => {
  sim = await spawnSimulators({
    tcp: [
      { id: 'a', devices: [1, 2].map((unit) => ({ unit, profile: 'streetlight-controller' })) },
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
    poll: `${POLL_MS}ms`,
    syncUrl: central.broker.url,
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

const busB = () => rig.gw.built.modbus!.status().find((b) => b.id === 'b')!;

describe('central adds a device on bus a', () => {
  it('touches bus a only: bus b keeps its connection and its readings, the store keeps every seq', async () => {
    const before = rig.text();
    const connectsB = busB().counters.connects;
    const lampA1 = deviceId('a', 1);
    const text = before.replace(/^(.*id: lamp-a-1,.*)$/m, (line) => `${line}\n${line.replace('lamp-a-1', 'lamp-a-2').replace('unit: 1', 'unit: 2')}`);
    expect(text).toContain('id: lamp-a-2, bus: a, unit: 2');

    await central.send({ id: 'add-a2', baseVersion: rig.running().version, content: text });
    const confirmed = await central.waitStage('add-a2', 'confirmed', 20_000);
    const reports = central.reports('add-a2');
    expect(reports.map((r) => r.stage)).toEqual(['staged', 'applied', 'confirmed']);
    const applied = reports[1]!;
    expect(applied.components).toContain('modbus bus a');
    expect(applied.components!.some((c) => /\bbus b\b/.test(c))).toBe(false);
    expect(confirmed).toMatchObject({ version: applied.version, runningVersion: applied.version, source: 'central', principal: 'upstream' });

    // the file on disk is the text sent, byte for byte
    expect(rig.text()).toBe(text);
    expect(rig.running()).toMatchObject({ version: confirmed.version, stage: 'confirmed', running: true });

    // the new lamp answers and is stored; lamp a-1 polls again on the rewired bus
    await waitFor('readings of the new lamp', () => readingTimes(rig.gw, 'lamp-a-2').length > 0, 10_000);
    await waitFor('lamp a-1 stored again after the change', () => readingTimes(rig.gw, lampA1).some((t) => t > confirmed.at), 10_000);

    // bus b: the same connection all along, and a reading every poll around the apply
    const until = confirmed.at + 4 * POLL_MS;
    await waitFor('bus b polled past the change', () => readingTimes(rig.gw, deviceId('b', 1)).some((t) => t > until), 10_000);
    expect(busB().counters.connects).toBe(connectsB);
    expect(busB().state).toBe('connected');
    const around = readingTimes(rig.gw, deviceId('b', 1)).filter((t) => t >= reports[0]!.at - 4 * POLL_MS && t <= until);
    const gaps = around.slice(1).map((t, i) => t - around[i]!);
    expect(around.length).toBeGreaterThan(4);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(3 * POLL_MS);

    expect(seqGaps(rig.gw)).toEqual([]);
  });
});
