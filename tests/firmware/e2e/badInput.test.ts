/**
 * Issue 17 end to end, bad input: the real gateway process (support.ts) and simulated controllers
 * over TCP and an RTU PTY line. Each bad input gets a clear, recorded outcome, and the other
 * devices keep their poll cycle:
 * - a manifest refused at the door (a wrong, missing or stale signature, another gateway's, a target
 *   that does not exist or cannot take firmware, an artifact that is not the one named): a rejected
 *   report with its code, a `firmware.deployment.rejected` event, nothing sent to any device;
 * - a role that may not deploy: 403 before anything is read;
 * - an artifact fetched truncated or corrupted, a device that stops answering mid-transfer, one that
 *   answers with exceptions, a manifest outside any maintenance window: the job fails with its code
 *   within its retries and timeouts, and the deployment ends (halted), nothing left in progress.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEnvelope, signManifest } from '../../../edge/firmware/manifest.js';
import type { DeploymentReport, JobRecord, Manifest } from '../../../edge/firmware/types.js';
import { profileSchema, type ProfileConfig } from '../../../edge/config/schema.js';
import { loadProfiles } from '../../../edge/profiles/index.js';
import { startModbusSimulators, type ModbusSimulators } from '../../../edge/sim/modbus/index.js';
import type { TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { ALL_DAY, dumpOnFailure, firmwareEvents, firmwareState, polledAfter, rejectedEvent, watchPolls } from './outcomes.js';
import { envelope, keyPair, launchGateway, MAINT_TOKEN, simBuses, simImage, type Api, type GatewayProcess, type Image, type KeyPair } from './support.js';

const GW = 'gw-bad';
const ENDED = ['completed', 'halted', 'cancelled', 'rejected'];

/** A meter: a profile that declares no update method. */
const PLAIN_PROFILE = { name: 'plain-meter', kind: 'other', points: [{ name: 'energy', table: 'holding', address: 0, type: 'uint16' }] };

const TCP = [1, 2, 3, 4, 5, 6].map((unit) => ({ id: `lamp-${unit}`, unit }));
const FIRMWARE_UNITS = [...TCP.map((d) => ({ bus: 'a', unit: d.unit })), { bus: 'r', unit: 1 }, { bus: 'a', unit: 20 }, { bus: 'r', unit: 2 }];
/** polled every 200 ms beside the others: they must keep their cycle whatever happens */
const NEIGHBOURS = ['nb-a', 'nb-r'];

let dir: TempDir;
let sims: ModbusSimulators;
let gw: GatewayProcess;
let keys: KeyPair;
let a: Api;
let http: Server;
let httpBase: string;
/** what the artifact server answers, by path */
const served = new Map<string, Buffer>();

beforeAll(async () => {
  const plain = profileSchema.parse(PLAIN_PROFILE) as ProfileConfig;
  const builtins = loadProfiles();
  sims = await startModbusSimulators({
    tcp: [{ id: 'a', devices: [...TCP.map((d) => ({ unit: d.unit, profile: 'streetlight-controller' })), { unit: 9, profile: plain.name }, { unit: 20, profile: 'streetlight-controller' }] }],
    rtu: [{ id: 'r', baud: 115200, devices: [{ unit: 1, profile: 'streetlight-controller' }, { unit: 2, profile: 'streetlight-controller' }] }],
    profiles: (name) => (name === plain.name ? plain : builtins.require(name)),
    rebootMs: 1000,
  });
  http = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  keys = keyPair();
  ({ dir, gw, a } = await launchGateway('fw-e2e-bad-', {
    id: GW,
    keys,
    buses: simBuses(sims, ['a', 'r'], { retries: 1 }),
    devices: [
      ...TCP.map((d) => ({ ...d, bus: 'a' })),
      { id: 'plain-1', bus: 'a', unit: 9, profile: plain.name },
      { id: 'nb-a', bus: 'a', unit: 20, poll: '200ms' },
      { id: 'lamp-r1', bus: 'r', unit: 1 },
      { id: 'nb-r', bus: 'r', unit: 2, poll: '200ms' },
    ],
    firmware: [`lights: { windows: ${ALL_DAY} }`, 'retries: 2', 'timeouts: { fetch: 5s, transfer: 20s, activate: 10s, verify: 10s }'],
    extra: ['profiles:', `  - ${JSON.stringify(PLAIN_PROFILE)}`],
  }));
  await polledAfter(a, NEIGHBOURS, 0, 10_000);
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await sims?.stop();
  await new Promise((r) => (http ? http.close(r) : r(undefined)));
  dir?.remove();
});

function manifestText(gateway: string, id: string, targets: Manifest['targets'], img: Image, extra: Partial<Manifest> = {}): string {
  const m: Manifest = {
    id,
    gateway,
    artifact: { name: 'slc-fw', version: `v${img.versionCode.toString(16)}`, versionCode: img.versionCode, size: img.bytes.length, sha256: img.sha256, source: { local: true } },
    targets,
    ...extra,
  };
  return JSON.stringify(m);
}

/**
 * Submits `env` and checks the outcome a user needs: the HTTP status and the rejected report with
 * `code`, the deployment recorded as rejected (GET), a firmware.deployment.rejected event,
 * nothing sent to any device, every neighbour polled since.
 */
async function expectRefused(id: string, env: string, status: number, code: string, reason: RegExp): Promise<DeploymentReport> {
  const before = firmwareState(sims, FIRMWARE_UNITS);
  const t0 = Date.now();
  const r = await a.call<DeploymentReport>('POST', '/api/v1/deployments', env);
  expect([r.status, r.body.status, r.body.code], JSON.stringify(r.body)).toEqual([status, 'rejected', code]);
  expect(r.body.reason).toMatch(reason);
  expect(r.body.jobs).toEqual([]);
  expect(r.body.id).toBe(id);
  const recorded = await a.deployment(id);
  expect([recorded?.report.status, recorded?.report.code, recorded?.jobs.length]).toEqual(['rejected', code, 0]);
  const ev = await rejectedEvent(a, id);
  expect([ev.detail.code, ev.detail.status]).toEqual([code, 'rejected']);
  expect(ev.detail.reason).toMatch(reason);
  expect(firmwareState(sims, FIRMWARE_UNITS), 'nothing sent to any device').toEqual(before);
  await polledAfter(a, [...NEIGHBOURS, 'lamp-1', 'lamp-r1'], t0);
  return r.body;
}

/** Until deployment `id` ended. */
function ended(id: string, timeoutMs = 30_000): Promise<{ report: DeploymentReport; jobs: JobRecord[] }> {
  return a.waitFor(id, 'ended', (r) => ENDED.includes(r.status), timeoutMs);
}

describe('manifests refused at the door', () => {
  const img = simImage(0x0401, 4800);
  beforeAll(async () => {
    // the artifact is there: what refuses each manifest is what the test names
    expect((await a.call('POST', '/api/v1/artifacts', img.bytes)).status).toBe(201);
  });

  it('signed by another key: E_FW_SIGNATURE (403)', async () => {
    dumpOnFailure(() => gw);
    await expectRefused('b-wrongkey', envelope(keyPair(), GW, { id: 'b-wrongkey', targets: { devices: ['lamp-1'] } }, img), 403, 'E_FW_SIGNATURE', /signature/);
  });

  it('unsigned (no signature, or an empty one): E_FW_SIGNATURE (403)', async () => {
    dumpOnFailure(() => gw);
    const text = manifestText(GW, 'b-unsigned', { devices: ['lamp-1'] }, img);
    await expectRefused('b-unsigned', JSON.stringify({ manifest: text }), 403, 'E_FW_SIGNATURE', /signature/);
    const text2 = manifestText(GW, 'b-unsigned2', { devices: ['lamp-1'] }, img);
    await expectRefused('b-unsigned2', makeEnvelope(text2, ''), 403, 'E_FW_SIGNATURE', /signature/);
  });

  it("another gateway's manifest: signed for it E_FW_SIGNATURE (403); naming it under this gateway's signature E_FW_GATEWAY (422)", async () => {
    dumpOnFailure(() => gw);
    // signed by central's key for gw-other: the signature covers the gateway id, so it does not verify here
    await expectRefused('b-othergw', envelope(keys, 'gw-other', { id: 'b-othergw', targets: { devices: ['lamp-1'] } }, img), 403, 'E_FW_SIGNATURE', /signature/);
    const text = manifestText('gw-other', 'b-othergw2', { devices: ['lamp-1'] }, img);
    await expectRefused('b-othergw2', makeEnvelope(text, signManifest(GW, text, keys.privatePem)), 422, 'E_FW_GATEWAY', /gw-other/);
  });

  it('manifest text changed after signing: E_FW_SIGNATURE (403)', async () => {
    dumpOnFailure(() => gw);
    const good = JSON.parse(envelope(keys, GW, { id: 'b-tampered', targets: { devices: ['lamp-1'] } }, img)) as { manifest: string; signature: string };
    const tampered = good.manifest.replace('"lamp-1"', '"lamp-2"');
    expect(tampered).not.toBe(good.manifest);
    await expectRefused('b-tampered', makeEnvelope(tampered, good.signature), 403, 'E_FW_SIGNATURE', /signature/);
  });

  it('a target that does not exist, a device whose profile declares no update method: E_FW_TARGET (422)', async () => {
    dumpOnFailure(() => gw);
    await expectRefused('b-nodevice', envelope(keys, GW, { id: 'b-nodevice', targets: { devices: ['lamp-1', 'lamp-99'] } }, img), 422, 'E_FW_TARGET', /lamp-99/);
    await expectRefused('b-nogroup', envelope(keys, GW, { id: 'b-nogroup', targets: { groups: ['nowhere'] } }, img), 422, 'E_FW_TARGET', /nowhere/);
    await expectRefused('b-nomethod', envelope(keys, GW, { id: 'b-nomethod', targets: { devices: ['plain-1'] } }, img), 422, 'E_FW_TARGET', /plain-1.*no update method/);
  });

  it('an artifact whose sha256 differs from the manifest (other bytes uploaded): E_FW_ARTIFACT (422)', async () => {
    dumpOnFailure(() => gw);
    const named = simImage(0x0402, 4800);
    const other = simImage(0x0403, 4800);
    const up = await a.call<{ sha256: string }>('POST', '/api/v1/artifacts', other.bytes);
    expect([up.status, up.body.sha256]).toEqual([201, other.sha256]);
    await expectRefused('b-sha', envelope(keys, GW, { id: 'b-sha', targets: { devices: ['lamp-1'] } }, named), 422, 'E_FW_ARTIFACT', new RegExp(`sha256|${named.sha256}`));
  });

  it('a maintenance token may not deploy: 403 E_FORBIDDEN, nothing recorded or sent', async () => {
    dumpOnFailure(() => gw);
    const before = firmwareState(sims, FIRMWARE_UNITS);
    const env = envelope(keys, GW, { id: 'b-maint', targets: { devices: ['lamp-1'] } }, img);
    const r = await a.call<{ code: string; error: string }>('POST', '/api/v1/deployments', env, MAINT_TOKEN);
    expect([r.status, r.body.code]).toEqual([403, 'E_FORBIDDEN']);
    expect(r.body.error).toMatch(/maintenance.*firmware\.deploy/);
    const upload = await a.call<{ code: string }>('POST', '/api/v1/artifacts', simImage(0x0404, 100).bytes, MAINT_TOKEN);
    expect([upload.status, upload.body.code]).toEqual([403, 'E_FORBIDDEN']);
    // it may see deployments, not act on them
    expect((await a.call('GET', '/api/v1/deployments', undefined, MAINT_TOKEN)).status).toBe(200);
    expect((await a.call('GET', '/api/v1/deployments/b-maint')).status).toBe(404);
    expect(firmwareState(sims, FIRMWARE_UNITS)).toEqual(before);
  });
});

describe('jobs that fail: a clear code, the deployment ends, the line keeps its cycle', () => {
  /** The job's failure and the deployment's halt (`haltCode`) are events. */
  async function expectFailedEvent(id: string, device: string, code: string, haltCode = 'E_FW_HALTED'): Promise<void> {
    const events = (await firmwareEvents(a)).filter((e) => e.detail.deployment === id);
    expect(events.filter((e) => e.kind === 'firmware.job.failed').map((e) => [e.device, e.detail.code])).toEqual([[device, code]]);
    expect(events.filter((e) => e.kind === 'firmware.deployment.halted').map((e) => e.detail.code)).toEqual([haltCode]);
  }

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length >> 1)],
    ['corrupted', (b: Buffer) => Buffer.from(b.map((x, i) => (i % 1000 === 999 ? x ^ 0xff : x)))],
  ])('an artifact served %s over HTTP: the job fails E_FW_ARTIFACT, the deployment halts, no block sent', async (what, spoil) => {
    dumpOnFailure(() => gw);
    const img = simImage(what === 'truncated' ? 0x0411 : 0x0412, 24_000);
    served.set(`/${what}.bin`, spoil(img.bytes));
    const id = `b-http-${what}`;
    const artifact = { name: 'slc-fw', version: 'v411', versionCode: img.versionCode, size: img.bytes.length, sha256: img.sha256, source: { url: `${httpBase}/${what}.bin` } };
    const before = firmwareState(sims, FIRMWARE_UNITS);
    const t0 = Date.now();
    const r = await a.deploy(envelope(keys, GW, { id, targets: { devices: ['lamp-3', 'lamp-4'] }, artifact }));
    expect(r.status).toBe(202);
    const done = await ended(id);
    expect([done.report.status, done.report.code]).toEqual(['halted', 'E_FW_HALTED']);
    expect(done.jobs.map((j) => [j.device, j.stage, j.code])).toEqual([
      ['lamp-3', 'failed', 'E_FW_ARTIFACT'],
      ['lamp-4', 'cancelled', 'E_FW_HALTED'],
    ]);
    expect(done.jobs[0]!.reason).toMatch(/artifact/);
    expect(firmwareState(sims, FIRMWARE_UNITS), 'nothing sent to any device').toEqual(before);
    await expectFailedEvent(id, 'lamp-3', 'E_FW_ARTIFACT');
    await polledAfter(a, [...NEIGHBOURS, 'lamp-3', 'lamp-4'], t0);
  });

  it('a device that stops answering mid-transfer (RTU): E_FW_TRANSFER within the retries, its neighbour on the line polled throughout', async () => {
    dumpOnFailure(() => gw);
    const img = simImage(0x0421, 60_000);
    const r = await a.deploy(envelope(keys, GW, { id: 'b-silent', targets: { devices: ['lamp-r1'] } }, img), img.bytes);
    expect(r.status).toBe(202);
    let silent = false;
    // the neighbour's polls while lamp-r1 is silent and its job still transferring
    const watch = watchPolls(a, ['nb-r'], async () => {
      const j = (await a.deployment('b-silent'))?.jobs[0];
      return silent && j?.stage === 'transferring' ? 'silent' : (j?.stage ?? 'none');
    });
    try {
      await waitFor('20 blocks at lamp-r1', () => sims.firmware('r', 1).blocksReceived >= 20, 20_000);
      sims.setFault('r', 1, { kind: 'noAnswer' });
      silent = true;
      const silentAt = Date.now();
      const done = await ended('b-silent', 20_000);
      await watch.stop();
      expect(watch.polls('nb-r', 'silent'), 'polls of nb-r answered while lamp-r1 was silent mid-transfer').toBeGreaterThanOrEqual(2);
      const j = done.jobs[0]!;
      expect([done.report.status, j.stage, j.code]).toEqual(['halted', 'failed', 'E_FW_TRANSFER']);
      expect(j.reason).toMatch(/block \d+/);
      // its retries (2) of a block, each with the bus's timeout and retry: seconds, not the 20 s transfer timeout
      expect(Date.now() - silentAt).toBeLessThan(10_000);
      const fw = sims.firmware('r', 1);
      expect(fw.commits).toBe(0);
      expect(j.blocksAcked).toBeGreaterThanOrEqual(20);
      expect(j.blocksAcked).toBeLessThan(j.blocksTotal);
      await expectFailedEvent('b-silent', 'lamp-r1', 'E_FW_TRANSFER');
      await polledAfter(a, NEIGHBOURS, silentAt);
      await polledAfter(a, NEIGHBOURS, Date.now());
    } finally {
      await watch.stop();
      sims.setFault('r', 1, null);
    }
  });

  it('a device answering its firmware writes with exception 4: E_FW_EXCEPTION', async () => {
    dumpOnFailure(() => gw);
    const img = simImage(0x0431, 100_000);
    const r = await a.deploy(envelope(keys, GW, { id: 'b-exception', targets: { devices: ['lamp-5'] } }, img), img.bytes);
    expect(r.status).toBe(202);
    try {
      await waitFor('5 blocks at lamp-5', () => sims.firmware('a', 5).blocksReceived >= 5, 20_000);
      sims.setFault('a', 5, { kind: 'exception', code: 4 });
      const t0 = Date.now();
      const done = await ended('b-exception', 20_000);
      const j = done.jobs[0]!;
      expect([done.report.status, j.stage, j.code]).toEqual(['halted', 'failed', 'E_FW_EXCEPTION']);
      expect(j.reason).toMatch(/exception 4/);
      expect(sims.firmware('a', 5).commits).toBe(0);
      await expectFailedEvent('b-exception', 'lamp-5', 'E_FW_EXCEPTION');
      await polledAfter(a, NEIGHBOURS, t0);
    } finally {
      sims.setFault('a', 5, null);
    }
  });

  it('a manifest outside any maintenance window: the job waits naming the window, never starts, ends E_FW_EXPIRED at the deadline', async () => {
    dumpOnFailure(() => gw);
    const h = new Date().getUTCHours();
    const hh = (x: number): string => `${String(x % 24).padStart(2, '0')}:00`;
    const window = { from: hh(h + 2), to: hh(h + 3) };
    const img = simImage(0x0441, 4800);
    const before = firmwareState(sims, FIRMWARE_UNITS);
    const deadline = Date.now() + 4000;
    const r = await a.deploy(envelope(keys, GW, { id: 'b-window', targets: { devices: ['lamp-6'] }, policy: { windows: [window], deadline } }, img), img.bytes);
    expect(r.status).toBe(202);
    const waiting = await a.waitFor('b-window', 'the job waiting', (_r, jobs) => jobs[0]?.waiting !== null && jobs[0]?.waiting !== undefined, 5000);
    expect(waiting.jobs[0]!.waiting).toContain(`${window.from}-${window.to}`);
    expect(waiting.report.jobs[0]!.waiting).toContain('maintenance window');
    const done = await ended('b-window', 15_000);
    const j = done.jobs[0]!;
    expect([j.stage, j.code, j.startedAt]).toEqual(['failed', 'E_FW_EXPIRED', null]);
    expect(j.reason).toContain(`${window.from}-${window.to}`);
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    // it ends (its one wave failed past the threshold 0, every failure an expiry): nothing in progress
    expect([done.report.status, done.report.code]).toEqual(['halted', 'E_FW_EXPIRED']);
    expect(done.report.counts.pending + done.report.counts.transferring + done.report.counts.fetching).toBe(0);
    expect(firmwareState(sims, FIRMWARE_UNITS), 'nothing sent to any device').toEqual(before);
    await expectFailedEvent('b-window', 'lamp-6', 'E_FW_EXPIRED', 'E_FW_EXPIRED');
  });
});
