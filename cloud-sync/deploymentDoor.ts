/**
 * Central's door to firmware deployments (issue 17, CONTRACT.md "Firmware deployments from
 * central"): the sync subscribes QoS 1, in its persistent session, to
 *
 * - `streetbox/<gw>/down/deployments`: an envelope (a signed manifest), or `{ action, id }` to
 *   pause, resume or cancel one; handed as received to the firmware service (edge/firmware),
 *   which checks, records and runs it;
 * - `streetbox/<gw>/down/artifacts/<sha256>/<index>`: chunk `index` of an artifact whose manifest
 *   says it comes over MQTT; the levels are checked here (64 lowercase hex digits; a non-negative
 *   integer), a topic with others is counted and dropped, a valid chunk handed over as received.
 *
 * The deployment reports go back from the store's outbox, each retained on
 * `streetbox/<gw>/up/deployments/<id>` and marked delivered at its PUBACK, on every connect and
 * whenever the bus says a report was added (`deploymentReport`; the drain: reportOutbox.ts).
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../edge/log.js';
import type { DeploymentReport, FirmwareService } from '../edge/firmware/types.js';
import { ReportingDoor, subscribeDoor } from './reportOutbox.js';
import { artifactChunkLevels, type GatewayTopics } from './topics.js';

/** An artifact's sha256 as a topic level: lowercase hex, as the manifest gives it. */
const SHA256_LEVEL = /^[0-9a-f]{64}$/;
/** A chunk's index: 0, or digits without a leading zero. */
const INDEX_LEVEL = /^(0|[1-9][0-9]{0,15})$/;
/** A dropped chunk topic is logged at most this often (a misconfigured central sends thousands). */
const DROP_LOG_MS = 60_000;

export interface DeploymentDoorOptions {
  service: FirmwareService;
  gateway: string;
  topics: GatewayTopics;
  log: Logger;
}

export class CentralDeploymentDoor extends ReportingDoor<DeploymentReport> {
  /** `down/deployments` messages handed to the service */
  received = 0;
  /** artifact chunks handed to the service */
  chunks = 0;
  /** chunks on a topic whose levels are not a sha256 and an index */
  droppedChunks = 0;
  private lastDropLog = -Infinity;

  constructor(private readonly opts: DeploymentDoorOptions) {
    super({ what: 'deployment', outbox: () => opts.service.outbox(), topic: (id) => opts.topics.deploymentReport(id), log: opts.log });
  }

  subscribe(client: MqttClient): void {
    subscribeDoor(client, [this.opts.topics.deploymentsDown, this.opts.topics.artifactChunks], 'firmware deployments', this.opts.log);
  }

  /** Whether a message's topic is this door's (`down/deployments` or an artifact chunk of this gateway). */
  owns(topic: string): boolean {
    return topic === this.opts.topics.deploymentsDown || artifactChunkLevels(this.opts.gateway, topic) !== null;
  }

  /** One message of one of the door's topics, handed over as received. Never awaits the service, never throws. */
  handle(topic: string, payload: Buffer): void {
    if (topic === this.opts.topics.deploymentsDown) return this.deployment(payload);
    const levels = artifactChunkLevels(this.opts.gateway, topic);
    if (levels !== null) this.chunk(topic, levels, payload);
  }

  private deployment(payload: Buffer): void {
    this.received++;
    try {
      // a refusal is a `rejected` report in the outbox, which goes upstream like any other
      this.opts.service.submitCentral(payload);
    } catch (err) {
      this.opts.log.error({ err, bytes: payload.length }, 'handing a deployment from central over failed');
    }
  }

  private chunk(topic: string, levels: string[], payload: Buffer): void {
    const [sha256, index] = levels;
    if (levels.length !== 2 || sha256 === undefined || index === undefined || !SHA256_LEVEL.test(sha256) || !INDEX_LEVEL.test(index) || !Number.isSafeInteger(Number(index))) {
      this.droppedChunks++;
      this.droppedLog(topic, payload.length);
      return;
    }
    this.chunks++;
    try {
      this.opts.service.artifactChunk(sha256, Number(index), payload);
    } catch (err) {
      this.opts.log.error({ err, sha256, index: Number(index), bytes: payload.length }, 'handing an artifact chunk from central over failed');
    }
  }

  private droppedLog(topic: string, bytes: number): void {
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_MS) return;
    this.lastDropLog = now;
    this.opts.log.warn({ topic: topic.slice(0, 200), bytes, dropped: this.droppedChunks }, 'artifact chunk on a topic that is not down/artifacts/<sha256>/<index> dropped');
  }
}
