/**
 * A store outbox of reports, drained upstream: every report retained (QoS 1) on its own topic
 * (`up/config/<id>`, `up/deployments/<id>`), marked delivered at its PUBACK; drained on every
 * connect and whenever the owner says a report was added (its bus key, `configReport`,
 * `deploymentReport`). Used by each of central's doors that reports back (configDoor.ts,
 * deploymentDoor.ts), so the rules live once:
 *
 * One drain at a time, one report in flight, oldest first: the reports of one request go to the
 * same retained topic, so an older one must never land after a newer one. A drain belongs to one
 * connection (its generation): when the link drops it ends (mqtt.js never calls back the QoS 1
 * publishes of a persistent session it closed), and what is not delivered goes at the next
 * connect, by this process or the next (the outbox is in the store).
 */
import type { MqttClient } from 'mqtt';
import { validTopicName } from '../edge/control/roles.js';
import type { Logger } from '../edge/log.js';

/** Reports read from the outbox per round. */
export const REPORT_PAGE = 50;
/** Rounds per drain before it yields to the event loop (and goes on in a new drain). */
const MAX_ROUNDS = 100;
/** A refused report is logged at most this often (a broker's ACL refusing the topic refuses every one). */
const REFUSAL_LOG_MS = 60_000;

/** The store's outbox as the drain sees it (edge/reconfig OutboxPort, edge/firmware DeploymentOutbox). */
export interface ReportOutboxPort<R> {
  /** undelivered reports, oldest first */
  pending(limit: number): { seq: number; topicId: string; report: R }[];
  delivered(seq: number): void;
}

export interface ReportOutboxOptions<R> {
  /** what the reports are about, for the logs: `configuration`, `deployment` */
  what: string;
  /** the outbox, asked at each drain (a service may open its store late) */
  outbox: () => ReportOutboxPort<R>;
  /** the topic of a report's id (`topics.configReport`) */
  topic: (topicId: string) => string;
  log: Logger;
}

type Published = { ok: true } | { ok: false; closed: boolean; err: Error };

export class ReportOutbox<R> {
  /** reports the broker acknowledged */
  delivered = 0;
  private client: MqttClient | undefined;
  private draining = false;
  /** a report was added while a drain ran: it reads the outbox again before it ends */
  private again = false;
  /** bumped at every connect and disconnect: a drain of an earlier connection stops */
  private generation = 0;
  private lastRefusalLog = -Infinity;

  constructor(private readonly opts: ReportOutboxOptions<R>) {}

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

  /** A report was added to the outbox; call it outside the emitter's stack (setImmediate). */
  wake(): void {
    if (!this.client) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    const gen = this.generation;
    void this.drain(this.client, gen)
      .catch((err: unknown) => this.opts.log.error({ err, what: this.opts.what }, `publishing ${this.opts.what} reports failed`))
      .finally(() => {
        if (gen === this.generation) this.draining = false;
      });
  }

  private async drain(client: MqttClient, gen: number): Promise<void> {
    const outbox = this.opts.outbox();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      this.again = false;
      const items = outbox.pending(REPORT_PAGE);
      if (items.length === 0) return;
      for (const item of items) {
        if (gen !== this.generation) return;
        const topic = this.opts.topic(item.topicId);
        if (!validReportTopic(item.topicId, topic)) {
          // it can never be published; kept, it would hold back every report after it
          this.opts.log.error({ seq: item.seq, topicId: item.topicId }, `${this.opts.what} report with an id that is no topic level dropped`);
          outbox.delivered(item.seq);
          continue;
        }
        const r = await publishRetained(client, topic, JSON.stringify(item.report));
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
    this.opts.log.warn({ seq, topic, err: err.message }, `the upstream broker refused a ${this.opts.what} report; it is kept and sent again`);
  }
}

/**
 * A door of central's that reports back (configDoor.ts, deploymentDoor.ts): the link's events
 * and its owner's bus key (`configReport`, `deploymentReport`) go to its report drain.
 */
export abstract class ReportingDoor<R> {
  private readonly reports: ReportOutbox<R>;

  protected constructor(reports: ReportOutboxOptions<R>) {
    this.reports = new ReportOutbox(reports);
  }

  /** reports the broker acknowledged */
  get delivered(): number {
    return this.reports.delivered;
  }

  /** The link is up: undelivered reports go now, oldest first. */
  connected(client: MqttClient): void {
    this.reports.connected(client);
  }

  /** The link is down: the running drain stops; the next connect starts again from the outbox. */
  disconnected(): void {
    this.reports.disconnected();
  }

  /** A report was added to the outbox (the owner's bus key); called outside the emitter's stack. */
  wake(): void {
    this.reports.wake();
  }
}

/** A report's topic level: no separator, no wildcard, and the whole a topic one may publish to. */
function validReportTopic(topicId: string, topic: string): boolean {
  return topicId !== '' && !/[/+#]/.test(topicId) && validTopicName(topic);
}

/** One retained QoS 1 publish, settled at its PUBACK (or at the failure mqtt.js reports). */
function publishRetained(client: MqttClient, topic: string, payload: string): Promise<Published> {
  return new Promise((resolve) => {
    client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (!err) resolve({ ok: true });
      else resolve({ ok: false, closed: /connection closed|disconnecting/i.test(err.message), err });
    });
  });
}

/**
 * One QoS 1 subscription of a door, in the persistent session. A connection that closes fails
 * its pending SUBSCRIBE too (logged at debug): the next connection subscribes again.
 */
export function subscribeDoor(client: MqttClient, filters: string[], what: string, log: Logger): void {
  client.subscribe(filters, { qos: 1 }, (err) => {
    if (!err) return;
    const level = /closed|disconnecting/i.test(err.message) ? 'debug' : 'warn';
    log[level]({ err, topics: filters }, `subscribing to ${what} from central failed`);
  });
}
