/**
 * Central's bad configurations, end to end (a real mosquitto as central's broker, the gateway
 * in-process): a YAML syntax error, a schema error, an unknown bus, an unset `${ENV}`, a changed
 * gateway.id, a message that is not JSON and the same change id twice are each refused with the
 * reason; for a text the report on `up/config/<id>` carries the problems at line:col of the
 * text central sent; nothing changes (devices.yaml's bytes, the running version, the
 * components and bus transports); every attempt is a `config.rejected` event with principal
 * `upstream`; a second message with an id already seen keeps the first one's retained report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigRefusalCode, ConfigStageReport } from '../../../edge/reconfig/types.js';
import { waitFor } from '../../helpers/wait.js';
import { gatewayYaml, startCentral, startRig, where, type Central, type Rig } from './support.js';

const GW = 'gw-bad';
let central: Central;
let rig: Rig;
let base: string;

beforeAll(async () => {
  central = await startCentral(GW);
  rig = await startRig(gatewayYaml({ id: GW, buses: [{ id: 'net', port: 0, units: [1] }], syncUrl: central.broker.url, simulate: true }));
  base = rig.text();
  await central.subscribed();
  await waitFor('every component running and the lamp answering', () => rig.gw.status().components.every((c) => c.state === 'running') && rig.gw.built.modbus!.status()[0]!.devices[0]!.online, 15_000);
});

afterAll(async () => {
  await rig?.close();
  await central?.close();
});

/** Sends a change, waits for its refusal at central, and checks that nothing changed and that the attempt was recorded. */
async function refused(id: string, content: string, code: ConfigRefusalCode): Promise<ConfigStageReport> {
  const before = { text: rig.text(), running: rig.running().version, snapshot: rig.snapshot() };
  await central.send({ id, baseVersion: before.running, content });
  const report = await central.waitStage(id, 'rejected');
  expect(report).toMatchObject({ id, stage: 'rejected', code, source: 'central', principal: 'upstream', runningVersion: before.running });
  expect(report.reason).toEqual(expect.any(String));
  expect(rig.text()).toBe(before.text);
  expect(rig.running().version).toBe(before.running);
  expect(rig.snapshot()).toEqual(before.snapshot);
  const events = rig.events('config.rejected').filter((e) => (e.detail as { id: string }).id === id);
  expect(events).toHaveLength(1);
  expect(events[0]!.detail).toMatchObject({ id, source: 'central', principal: 'upstream', code });
  return report;
}

describe('a bad text from central is refused at line:col of that text, and nothing changes', () => {
  it('a YAML syntax error', async () => {
    const text = base.replace('broker: { enabled: false }', 'broker: enabled: false');
    const r = await refused('bad-yaml', text, 'E_CONFIG_INVALID');
    expect(r.errors).toContainEqual(expect.objectContaining({ ...where(text, 'broker:', 'enabled'), message: expect.stringMatching(/YAML syntax error/) as string }));
  });

  it('a schema error', async () => {
    const text = base.replace('poll: 250ms', 'poll: fast');
    const r = await refused('bad-schema', text, 'E_CONFIG_INVALID');
    expect(r.errors).toContainEqual(expect.objectContaining({ ...where(text, 'poll: fast', 'fast'), path: 'devices[0].poll' }));
  });

  it('a device on a bus that does not exist', async () => {
    const text = base.replace('bus: net,', 'bus: nowhere,');
    const r = await refused('bad-bus', text, 'E_CONFIG_INVALID');
    expect(r.errors).toContainEqual(expect.objectContaining({ ...where(text, 'bus: nowhere', 'nowhere'), path: 'devices[0].bus', message: expect.stringMatching(/unknown bus "nowhere"/) as string }));
  });

  it('an ${ENV} that is not set on the gateway', async () => {
    const text = base.replace(`id: ${GW}`, `id: ${GW}, site: "\${STREETBOX_E2E_NEVER_SET}"`);
    const r = await refused('bad-env', text, 'E_CONFIG_INVALID');
    expect(r.errors).toContainEqual(expect.objectContaining({ ...where(text, 'site:', '"${'), path: 'gateway.site', message: expect.stringMatching(/STREETBOX_E2E_NEVER_SET is not set/) as string }));
  });

  it("a change of the gateway's id", async () => {
    const text = base.replace(`id: ${GW}`, 'id: gw-other');
    const r = await refused('bad-id', text, 'E_CONFIG_FORBIDDEN');
    expect(r.errors).toContainEqual(expect.objectContaining({ ...where(text, 'gateway:', 'id:'), path: 'gateway.id' }));
  });
});

describe('a bad message from central', () => {
  it('one that is not JSON is refused on a report of its own and recorded', async () => {
    const before = { text: rig.text(), running: rig.running().version, snapshot: rig.snapshot(), rejected: rig.events('config.rejected').length };
    await central.send('{ not json');
    const m = await waitFor('the refusal of the malformed message at central', () =>
      central.observer.messages.map((x) => JSON.parse(x.payload.toString()) as ConfigStageReport).find((r) => r.stage === 'rejected' && /malformed/.test(r.reason ?? '')),
    );
    expect(m).toMatchObject({ version: null, code: 'E_CONFIG_INVALID', source: 'central', principal: 'upstream', runningVersion: before.running });
    expect(rig.text()).toBe(before.text);
    expect(rig.running().version).toBe(before.running);
    expect(rig.snapshot()).toEqual(before.snapshot);
    const events = rig.events('config.rejected');
    expect(events).toHaveLength(before.rejected + 1);
    expect(events.at(-1)!.detail).toMatchObject({ id: m.id, version: null, principal: 'upstream', code: 'E_CONFIG_INVALID' });
  });

  it('one with a good id but no text is refused on its topic and recorded', async () => {
    const before = { text: rig.text(), running: rig.running().version };
    await central.send({ id: 'bad-shape', baseVersion: before.running, content: 42 });
    const r = await central.waitStage('bad-shape', 'rejected');
    expect(r).toMatchObject({ version: null, code: 'E_CONFIG_INVALID', principal: 'upstream', runningVersion: before.running });
    expect(r.reason).toMatch(/"content"/);
    expect(rig.text()).toBe(before.text);
    expect(rig.events('config.rejected').filter((e) => (e.detail as { id: string }).id === 'bad-shape')).toHaveLength(1);
  });

  it('the same id again is refused as a duplicate and the first one keeps its retained report', async () => {
    // a good change first: confirmed
    const good = base.replace('level: 40', 'level: 55');
    await central.send({ id: 'dup-1', baseVersion: rig.running().version, content: good });
    const confirmed = await central.waitStage('dup-1', 'confirmed', 15_000);
    expect(rig.text()).toBe(good);

    const before = { text: rig.text(), running: rig.running().version, snapshot: rig.snapshot() };
    await central.send({ id: 'dup-1', baseVersion: before.running, content: base.replace('level: 40', 'level: 66') });
    // the original's stage is published again: the topic still says confirmed, never "duplicate"
    await waitFor('the original report published again', () => central.reports('dup-1').filter((r) => r.stage === 'confirmed').length === 2);
    expect(central.reports('dup-1').map((r) => r.stage)).toEqual(['staged', 'applied', 'confirmed', 'confirmed']);
    const kept = await central.retained('dup-1');
    expect(kept.retain).toBe(true);
    expect(kept.report).toMatchObject({ id: 'dup-1', version: confirmed.version, stage: 'confirmed' });
    expect(kept.report.code).toBeUndefined();

    expect(rig.text()).toBe(before.text);
    expect(rig.running().version).toBe(before.running);
    expect(rig.snapshot()).toEqual(before.snapshot);
    const dup = rig.events('config.rejected').filter((e) => (e.detail as { id: string }).id === 'dup-1');
    expect(dup).toHaveLength(1);
    expect(dup[0]!.detail).toMatchObject({ code: 'E_CONFIG_DUPLICATE', principal: 'upstream', source: 'central' });
  });

  it("the id of a refused text again: the retained report stays the first refusal, with its problems", async () => {
    const first = await central.retained('bad-schema');
    await central.send({ id: 'bad-schema', baseVersion: rig.running().version, content: base.replace('level: 40', 'level: 77') });
    await waitFor('the refusal published again', () => central.reports('bad-schema').length === 2);
    const again = central.reports('bad-schema')[1]!;
    expect(again).toMatchObject({ stage: 'rejected', code: first.report.code, errors: first.report.errors });
    // no text of it ran
    expect(rig.text()).not.toContain('level: 77');
    expect((await central.retained('bad-schema')).report).toMatchObject({ stage: 'rejected', errors: first.report.errors });
  });
});
