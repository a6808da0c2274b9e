/**
 * Central's door to the configuration (issue 16, CONTRACT.md "Configuration from central"):
 * the sync subscribes QoS 1 to `streetbox/<gw>/down/config` in its persistent session (so a change
 * published while the gateway was offline still arrives) and hands every message, as received, to
 * the configuration service (edge/reconfig), which parses, checks and applies it. The stage
 * reports go back from the store's outbox, each retained on `streetbox/<gw>/up/config/<id>` and
 * marked delivered at its PUBACK: on every connect and whenever the bus says a report was added.
 *
 * One drain at a time, one report in flight, oldest first: the stages of one change go to the
 * same retained topic, so an older stage must never land after a newer one. A drain belongs to
 * one connection: when the link drops it ends (mqtt.js never calls back the QoS 1 publishes of a
 * persistent session it closed), and what is not delivered goes at the next connect, by this
 * process or the next (the outbox is in the store).
 */
import type { MqttClient } from 'mqtt';
import { validTopicName } from '../edge/control/roles.js';
import { errorMessage } from '../edge/errors.js';
import type { Logger } from '../edge/log.js';
import type { ConfigService, ConfigSubmitted } from '../edge/reconfig/types.js';
import type { GatewayTopics } from './topics.js';

/** Reports read from the outbox per round. */
export const REPORT_PAGE = 50;
/** Rounds per drain before it yields to the event loop (and goes on in a new drain). */
const MAX_ROUNDS = 100;
/** A refused report is logged at most this often (a broker's ACL refusing up/config refuses every one). */
const REFUSAL_LOG_MS = 60_000;

export interface ConfigDoorOptions {
  service: ConfigService;
  topics: GatewayTopics;
  log: Logger;
}

type Published = { ok: true } | { ok: false; closed: boolean; err: Error };

export class CentralConfigDoor {
  /** messages handed to the service */
  received = 0;
  /** reports the broker acknowledged */
  delivered = 0;
  private client: MqttClient | undefined;
  private draining = false;
  /** a report was added while a drain ran: it reads the outbox again before it ends */
  private again = false;
  /** bumped at every connect and disconnect: a drain of an earlier connection stops */
  private generation = 0;
  private lastRefusalLog = -Infinity;

  constructor(private readonly opts: ConfigDoorOptions) {}

  subscribe(client: MqttClient): void {
    const topic = this.opts.topics.configDown;
    client.subscribe(topic, { qos: 1 }, (err) => {
      if (!err) return;
      // a connection that closes fails its pending SUBSCRIBE too: the next connection subscribes again
      const level = /closed|disconnecting/i.test(err.message) ? 'debug' : 'warn';
      this.opts.log[level]({ err, topic }, 'subscribing to configuration from central failed');
    });
  }

  /**
   * One message of `down/config`, handed over as received. Never awaits the change (validating
   * and applying it may take minutes, while more messages arrive) and never throws.
   */
  handle(payload: Buffer): void {
    this.received++;
    let submitted: ConfigSubmitted;
    try {
      submitted = this.opts.service.submitCentral(payload);
    } catch (err) {
      this.opts.log.error({ err, bytes: payload.length }, 'handing a configuration change from central over failed');
      return;
    }
    this.opts.log.debug({ id: submitted.id, stage: submitted.first.stage, code: submitted.first.code }, 'configuration change from central');
    // the outcome goes upstream through the outbox; these promises are watched only so a failure is logged
    const failed = (err: unknown): void => this.opts.log.error({ err, id: submitted.id }, `configuration change from central failed: ${errorMessage(err)}`);
    submitted.settled.catch(failed);
    submitted.outcome.catch(failed);
  }

  /** The link is up: undelivered reports go now, oldest first. */
  connected(client: MqttClient): void {
    this.client = client;
    this.generation++;
    this.draining = false;
    this.wake();
  }

  /** The link is down: the running drain stops; the next connect starts again from the outbox. */
  disconnected(): void {
    this.client = undefined;
    this.generation++;
    this.draining = false;
    this.again = false;
  }

  /** A report was added to the outbox (the bus's `configReport`); called outside the emitter's stack. */
  wake(): void {
    if (!this.client) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    const gen = this.generation;
    void this.drain(this.client, gen)
      .catch((err: unknown) => this.opts.log.error({ err }, 'publishing configuration reports failed'))
      .finally(() => {
        if (gen === this.generation) this.draining = false;
      });
  }

  private async drain(client: MqttClient, gen: number): Promise<void> {
    const outbox = this.opts.service.outbox();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      this.again = false;
      const items = outbox.pending(REPORT_PAGE);
      if (items.length === 0) return;
      for (const item of items) {
        if (gen !== this.generation) return;
        const topic = this.opts.topics.configReport(item.topicId);
        if (!validReportTopic(item.topicId, topic)) {
          // it can never be published; kept, it would hold back every report after it
          this.opts.log.error({ seq: item.seq, topicId: item.topicId }, 'configuration report with an id that is no topic level dropped');
          outbox.delivered(item.seq);
          continue;
        }
        const r = await publish(client, topic, JSON.stringify(item.report));
        if (!r.ok) {
          if (!r.closed) this.refused(item.seq, topic, r.err);
          // the next connect, or the next report, tries again from this one
          return;
        }
        this.delivered++;
        outbox.delivered(item.seq);
      }
      if (items.length < REPORT_PAGE && !this.again) return;
    }
    // a long outbox: go on after what else waits in the event loop
    if (gen === this.generation) setImmediate(() => this.wake());
  }

  private refused(seq: number, topic: string, err: Error): void {
    const now = Date.now();
    if (now - this.lastRefusalLog < REFUSAL_LOG_MS) return;
    this.lastRefusalLog = now;
    this.opts.log.warn({ seq, topic, err: err.message }, 'the upstream broker refused a configuration report; it is kept and sent again');
  }
}

/** A report's topic level: no separator, no wildcard, and the whole a topic one may publish to. */
function validReportTopic(topicId: string, topic: string): boolean {
  return topicId !== '' && !/[/+#]/.test(topicId) && validTopicName(topic);
}

/** One retained QoS 1 publish, settled at its PUBACK (or at the failure mqtt.js reports). */
function publish(client: MqttClient, topic: string, payload: string): Promise<Published> {
  return new Promise((resolve) => {
    client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (!err) resolve({ ok: true });
      else resolve({ ok: false, closed: /connection closed|disconnecting/i.test(err.message), err });
    });
  });
}
