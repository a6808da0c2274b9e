/**
 * Central's door to the configuration (issue 16, CONTRACT.md "Configuration from central"):
 * the sync subscribes QoS 1 to `streetbox/<gw>/down/config` in its persistent session (so a change
 * published while the gateway was offline still arrives) and hands every message, as received, to
 * the configuration service (edge/reconfig), which parses, checks and applies it. The stage
 * reports go back from the store's outbox, each retained on `streetbox/<gw>/up/config/<id>` and
 * marked delivered at its PUBACK: on every connect and whenever the bus says a report was added
 * (the drain's rules: reportOutbox.ts).
 */
import type { MqttClient } from 'mqtt';
import { errorMessage } from '../edge/errors.js';
import type { Logger } from '../edge/log.js';
import type { ConfigService, ConfigStageReport, ConfigSubmitted } from '../edge/reconfig/types.js';
import { ReportingDoor, subscribeDoor } from './reportOutbox.js';
import type { GatewayTopics } from './topics.js';

export { REPORT_PAGE } from './reportOutbox.js';

export interface ConfigDoorOptions {
  service: ConfigService;
  topics: GatewayTopics;
  log: Logger;
}

export class CentralConfigDoor extends ReportingDoor<ConfigStageReport> {
  /** messages handed to the service */
  received = 0;

  constructor(private readonly opts: ConfigDoorOptions) {
    super({ what: 'configuration', outbox: () => opts.service.outbox(), topic: (id) => opts.topics.configReport(id), log: opts.log });
  }

  subscribe(client: MqttClient): void {
    subscribeDoor(client, [this.opts.topics.configDown], 'configuration', this.opts.log);
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
}
