/**
 * Central's configuration door against a real mosquitto: a message on `down/config` reaches the
 * configuration service as sent, and the stage reports in its outbox go upstream retained on
 * `up/config/<id>`, oldest first, each marked delivered at its PUBACK; what could not go while
 * the link was down (or the sync was restarted) goes at the next connect (the drain's contract,
 * shared with the deployment door: reportDrain.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigService, ConfigStageReport, ConfigSubmitted, OutboxPort } from '../../edge/reconfig/types.js';
import { waitFor } from '../helpers/wait.js';
import { doorSync, MemoryOutbox, publishAsCentral, startSubscribed, type DoorSync } from './doorRig.js';
import { GW } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';
import { reportDrainContract } from './reportDrain.js';

const DOWN = `streetbox/${GW}/down/config`;
const UP = `streetbox/${GW}/up/config`;

/**
 * Stands in for the configuration manager (edge/reconfig/manager.ts), whose real road (validate,
 * record, apply, confirm, its outbox in the store) the integration tests cover: it records what
 * the door hands over, keeps an outbox in memory and answers with canned reports.
 */
class FakeConfigService extends MemoryOutbox<ConfigStageReport> implements OutboxPort {
  readonly payloads: Buffer[] = [];
  /** the next submitCentral throws (a broken service must not break the sync) */
  throwNext = false;

  readonly service = {
    submitCentral: (payload: Buffer): ConfigSubmitted => {
      this.payloads.push(payload);
      if (this.throwNext) {
        this.throwNext = false;
        throw new Error('service broken');
      }
      const id = `c-${this.payloads.length}`;
      const first = report(id, 1, 'staged');
      // never settles: the door must not wait for it (a change may take minutes)
      const never = new Promise<ConfigStageReport>(() => undefined);
      return { id, first, settled: never, outcome: never };
    },
    outbox: (): OutboxPort => this,
  } as Partial<ConfigService> as ConfigService;

  queue(topicId: string, stage: ConfigStageReport['stage']): number {
    return this.add(topicId, (seq) => report(topicId, seq, stage));
  }
}

function report(id: string, version: number, stage: ConfigStageReport['stage']): ConfigStageReport {
  return { id, version, stage, at: Date.now(), source: 'central', principal: 'upstream', runningVersion: version };
}

let broker: Mosquitto;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

interface Rig extends DoorSync {
  fake: FakeConfigService;
}

function rig(): Rig {
  const fake = new FakeConfigService();
  return { ...doorSync(broker, { config: fake.service }), fake };
}

const centralPublish = (payload: string): Promise<void> => publishAsCentral(broker, [{ topic: DOWN, payload }]);

describe('configuration from central (down/config)', () => {
  it('hands every message to the service as sent, without waiting for its outcome; a failing service breaks nothing', async () => {
    const r = rig();
    try {
      await startSubscribed(broker, r.sync, DOWN, 'the sync subscribed to down/config');
      const first = JSON.stringify({ id: 'cfg-1', baseVersion: 3, content: 'gateway: { id: gw-test }\n', force: false });
      await centralPublish(first);
      await waitFor('the first message at the service', () => r.fake.payloads.length === 1);
      expect(r.fake.payloads[0]!.toString()).toBe(first);
      // its outcome never settles, and a second message still gets through; so does one that is not JSON
      r.fake.throwNext = true;
      await centralPublish('{ not json');
      await centralPublish(JSON.stringify({ id: 'cfg-2', baseVersion: null, content: 'x: 1\n' }));
      await waitFor('three messages at the service', () => r.fake.payloads.length === 3);
      expect(r.fake.payloads.map((p) => p.toString())).toEqual([first, '{ not json', JSON.stringify({ id: 'cfg-2', baseVersion: null, content: 'x: 1\n' })]);
      expect(r.sync.status().connected).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('a change published while the gateway was away arrives when it comes back (persistent session)', async () => {
    const r = rig();
    try {
      await startSubscribed(broker, r.sync, DOWN, 'subscribed');
      await r.sync.stop();
      const msg = JSON.stringify({ id: 'cfg-away', baseVersion: 1, content: 'a: 1\n' });
      await centralPublish(msg);
      await r.sync.start();
      await waitFor('the message queued while away', () => r.fake.payloads.some((p) => p.toString() === msg), 10_000);
    } finally {
      await r.close();
    }
  });
});

describe('stage reports (up/config/<id>)', () => {
  reportDrainContract<ConfigStageReport, ConfigStageReport['stage']>({
    broker: () => broker,
    up: UP,
    rig,
    states: ['staged', 'applied', 'confirmed'],
    rejected: 'rejected',
    announce: (t, id, seq, stage) => t.ctx.bus.emit('configReport', report(id, seq, stage)),
    // the fake's reports carry their outbox seq as their version
    seqOf: (r) => r.version ?? -1,
    expected: (id, stage) => ({ id, stage }),
  });
});
