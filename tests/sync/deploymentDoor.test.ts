/**
 * Central's firmware door against a real mosquitto as central's broker: a message on
 * `down/deployments` reaches the firmware service as sent; an artifact chunk on
 * `down/artifacts/<sha256>/<index>` reaches it with its levels checked (a topic with other levels
 * is counted and dropped); the deployment reports in its outbox go upstream retained on
 * `up/deployments/<id>`, oldest first, each marked delivered at its PUBACK, also after a reconnect
 * and a restart of the sync (the drain's contract: reportDrain.ts). The configuration door,
 * sharing the drain (reportOutbox.ts), keeps its own topics alongside.
 *
 * The firmware service is a fake that records what the door hands over: the engine
 * (edge/firmware/engine.ts) has its own tests, with its real outbox in the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CentralDeploymentDoor } from '../../cloud-sync/deploymentDoor.js';
import { gatewayTopics } from '../../cloud-sync/topics.js';
import { silentLogger } from '../../edge/log.js';
import type { DeploymentOutbox, DeploymentReport, FirmwareService, JobStage } from '../../edge/firmware/types.js';
import { JOB_STAGES } from '../../edge/firmware/records.js';
import type { ConfigService, ConfigStageReport, ConfigSubmitted } from '../../edge/reconfig/types.js';
import { waitFor } from '../helpers/wait.js';
import { doorSync, MemoryOutbox, publishAsCentral, retainedReports, startSubscribed, type DoorSync } from './doorRig.js';
import { GW, observe } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';
import { reportDrainContract } from './reportDrain.js';

const DOWN = `streetbox/${GW}/down/deployments`;
const ARTIFACTS = `streetbox/${GW}/down/artifacts`;
const UP = `streetbox/${GW}/up/deployments`;
const SHA = 'ab'.repeat(32);

/** Records what the door hands over; keeps an outbox in memory. */
class FakeFirmware extends MemoryOutbox<DeploymentReport> implements DeploymentOutbox {
  readonly central: Buffer[] = [];
  readonly chunks: { sha256: string; index: number; data: Buffer }[] = [];
  throwNext = false;

  readonly service = {
    submitCentral: (payload: Buffer): void => {
      this.central.push(payload);
      if (this.throwNext) {
        this.throwNext = false;
        throw new Error('service broken');
      }
    },
    artifactChunk: (sha256: string, index: number, data: Buffer): void => void this.chunks.push({ sha256, index, data }),
    outbox: (): DeploymentOutbox => this,
  } as Partial<FirmwareService> as FirmwareService;

  queue(id: string, status: DeploymentReport['status']): number {
    return this.add(id, (seq) => deploymentReport(id, status, seq));
  }
}

/** A report whose `at` carries the outbox seq, so the order on the wire can be read back. */
function deploymentReport(id: string, status: DeploymentReport['status'], seq: number): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  counts.transferring = 1;
  return {
    id,
    gateway: GW,
    status,
    code: status === 'rejected' ? 'E_FW_SIGNATURE' : null,
    reason: status === 'rejected' ? 'no configured key verifies the signature' : null,
    artifact: { name: 'slc-2ch', version: '2.4.1', size: 4096, sha256: SHA },
    wave: 0,
    waves: 1,
    counts,
    jobs: [{ device: 'lamp-1', stage: 'transferring', wave: 0, bytesAcked: 480, bytes: 4096, waiting: null, code: null, reason: null, versionBefore: 256, versionAfter: null }],
    at: seq,
  };
}

let broker: Mosquitto;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

interface Rig extends DoorSync {
  fake: FakeFirmware;
}

function rig(): Rig {
  const fake = new FakeFirmware();
  return { ...doorSync(broker, { firmware: fake.service }), fake };
}

const started = (r: Rig): Promise<void> => startSubscribed(broker, r.sync, DOWN, 'the sync subscribed to down/deployments');
const centralPublish = (messages: { topic: string; payload: string | Buffer }[]): Promise<void> => publishAsCentral(broker, messages);
const retained = (ids: string[]): Promise<Map<string, { report: DeploymentReport; retain: boolean }>> => retainedReports(broker, UP, ids);

describe('deployments from central (down/deployments)', () => {
  it('hands every message to the service as sent; a failing service breaks nothing', async () => {
    const r = rig();
    try {
      await started(r);
      const envelope = JSON.stringify({ manifest: '{"id":"d-1"}', signature: 'c2lnbmF0dXJl' });
      const pause = JSON.stringify({ action: 'pause', id: 'd-1' });
      r.fake.throwNext = true;
      await centralPublish([
        { topic: DOWN, payload: envelope },
        { topic: DOWN, payload: '{ not json' },
        { topic: DOWN, payload: pause },
      ]);
      await waitFor('three messages at the service', () => r.fake.central.length === 3);
      expect(r.fake.central.map((p) => p.toString())).toEqual([envelope, '{ not json', pause]);
      expect(r.sync.status().connected).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('a deployment published while the gateway was away arrives when it comes back (persistent session)', async () => {
    const r = rig();
    try {
      await started(r);
      await r.sync.stop();
      const msg = JSON.stringify({ manifest: '{"id":"d-away"}', signature: 'eA==' });
      await centralPublish([{ topic: DOWN, payload: msg }]);
      await r.sync.start();
      await waitFor('the message queued while away', () => r.fake.central.some((p) => p.toString() === msg), 10_000);
    } finally {
      await r.close();
    }
  });
});

describe('artifact chunks (down/artifacts/<sha256>/<index>)', () => {
  it('hands valid chunks over byte for byte; a topic with other levels is counted and dropped', async () => {
    const r = rig();
    try {
      await started(r);
      await waitFor('subscribed to the chunks', () => broker.subscriptions({ filter: `${ARTIFACTS}/+/+` }) > 0, 10_000);
      const bytes = (i: number) => Buffer.from(Array.from({ length: 300 }, (_, k) => (i * 31 + k) & 0xff));
      const bad = [
        `${ARTIFACTS}/${SHA.toUpperCase()}/0`, // upper case hex
        `${ARTIFACTS}/${SHA.slice(2)}/0`, // 62 digits
        `${ARTIFACTS}/${SHA}/01`, // a leading zero
        `${ARTIFACTS}/${SHA}/-1`,
        `${ARTIFACTS}/${SHA}/1.5`,
        `${ARTIFACTS}/${'g'.repeat(64)}/2`,
        `${ARTIFACTS}/${SHA}/99999999999999999999`, // past a safe integer
      ];
      await centralPublish([
        { topic: `${ARTIFACTS}/${SHA}/0`, payload: bytes(0) },
        ...bad.map((topic) => ({ topic, payload: bytes(9) })),
        { topic: `${ARTIFACTS}/${SHA}/1`, payload: bytes(1) },
        { topic: `${ARTIFACTS}/${SHA}/12`, payload: Buffer.alloc(0) },
      ]);
      await waitFor('the valid chunks at the service', () => r.fake.chunks.length === 3);
      expect(r.fake.chunks.map((c) => [c.sha256, c.index, c.data.length])).toEqual([
        [SHA, 0, 300],
        [SHA, 1, 300],
        [SHA, 12, 0],
      ]);
      expect(r.fake.chunks[0]!.data.equals(bytes(0))).toBe(true);
      expect(r.fake.chunks[1]!.data.equals(bytes(1))).toBe(true);
      // the broker delivers in order on one subscription: the bad ones came before the last two, all dropped
      expect(r.fake.central).toEqual([]);
      expect(r.sync.status().connected).toBe(true);
    } finally {
      await r.close();
    }
  });
});

describe('the door alone: which topics are its, what is counted', () => {
  it('owns down/deployments and this gateway\'s chunk topics; counts chunks handed over and dropped', () => {
    const fake = new FakeFirmware();
    const door = new CentralDeploymentDoor({ service: fake.service, gateway: GW, topics: gatewayTopics(GW), log: silentLogger() });
    expect(door.owns(DOWN)).toBe(true);
    expect(door.owns(`${ARTIFACTS}/${SHA}/0`)).toBe(true);
    expect(door.owns(`streetbox/other-gw/down/artifacts/${SHA}/0`)).toBe(false);
    expect(door.owns(`streetbox/${GW}/down/config`)).toBe(false);
    const rows: [string, boolean][] = [
      [`${ARTIFACTS}/${SHA}/0`, true],
      [`${ARTIFACTS}/${SHA}/9007199254740991`, true],
      [`${ARTIFACTS}/${SHA}/9007199254740992`, false],
      [`${ARTIFACTS}/${SHA}/`, false],
      [`${ARTIFACTS}//0`, false],
      [`${ARTIFACTS}/${SHA}/0/extra`, false],
      [`${ARTIFACTS}/${SHA}`, false],
      [`${ARTIFACTS}/${SHA} /0`, false],
    ];
    for (const [topic] of rows) door.handle(topic, Buffer.from('x'));
    door.handle(DOWN, Buffer.from('{}'));
    expect(fake.chunks.map((c) => c.index)).toEqual([0, 9007199254740991]);
    expect(door.chunks).toBe(rows.filter(([, ok]) => ok).length);
    expect(door.droppedChunks).toBe(rows.filter(([, ok]) => !ok).length);
    expect(door.received).toBe(1);
  });
});

describe('deployment reports (up/deployments/<id>)', () => {
  reportDrainContract<DeploymentReport, DeploymentReport['status']>({
    broker: () => broker,
    up: UP,
    rig,
    states: ['running', 'paused', 'completed'],
    rejected: 'rejected',
    announce: (t, id, seq, status) => t.ctx.bus.emit('deploymentReport', deploymentReport(id, status, seq)),
    seqOf: (report) => report.at,
    expected: (id, status) => ({ id, status, gateway: GW, code: status === 'rejected' ? 'E_FW_SIGNATURE' : null, jobs: [{ device: 'lamp-1', bytesAcked: 480 }] }),
  });

  it('beside the configuration door: each door gets its own messages and publishes its own reports', async () => {
    const fake = new FakeFirmware();
    const configPayloads: Buffer[] = [];
    const configDelivered: number[] = [];
    const never = new Promise<ConfigStageReport>(() => undefined);
    const configReport: ConfigStageReport = { id: 'cfg-1', version: 2, stage: 'applied', at: 1, source: 'central', principal: 'upstream', runningVersion: 2 };
    let configSent = false;
    const config = {
      submitCentral: (payload: Buffer): ConfigSubmitted => {
        configPayloads.push(payload);
        return { id: 'cfg-1', first: configReport, settled: never, outcome: never };
      },
      outbox: () => ({
        pending: () => (configSent ? [] : [{ seq: 1, topicId: 'cfg-1', report: configReport }]),
        delivered: (seq: number) => {
          configSent = true;
          configDelivered.push(seq);
        },
      }),
    } as Partial<ConfigService> as ConfigService;
    const both = doorSync(broker, { config, firmware: fake.service });
    try {
      const seq = fake.queue('dep-both', 'running');
      await startSubscribed(broker, both.sync, DOWN, 'subscribed');
      await centralPublish([
        { topic: `streetbox/${GW}/down/config`, payload: 'config-message' },
        { topic: DOWN, payload: 'deployment-message' },
      ]);
      await waitFor('each message at its service', () => configPayloads.length === 1 && fake.central.length === 1);
      expect(configPayloads[0]!.toString()).toBe('config-message');
      expect(fake.central[0]!.toString()).toBe('deployment-message');
      await waitFor('both outboxes delivered', () => configDelivered.length === 1 && fake.deliveredSeqs.includes(seq), 10_000);
      expect((await retained(['dep-both'])).get('dep-both')?.report).toMatchObject({ id: 'dep-both' });
      const o = await observe(broker.url, `streetbox/${GW}/up/config/cfg-1`);
      try {
        await waitFor('the retained configuration report', () => o.messages.length === 1);
        expect(JSON.parse(o.messages[0]!.payload.toString())).toMatchObject({ id: 'cfg-1', stage: 'applied' });
      } finally {
        await o.close();
      }
    } finally {
      await both.close();
    }
  });

  it('without a firmware service the sync takes no deployment topics', async () => {
    const bare = doorSync(broker, {}, 'gw-nofw');
    try {
      await startSubscribed(broker, bare.sync, 'streetbox/gw-nofw/down/commands', 'subscribed to commands');
      expect(broker.subscriptions({ filter: 'streetbox/gw-nofw/down/deployments' })).toBe(0);
      expect(broker.subscriptions({ filter: 'streetbox/gw-nofw/down/artifacts/+/+' })).toBe(0);
    } finally {
      await bare.close();
    }
  });
});
