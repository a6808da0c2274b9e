/** Counters of the embedded broker, rendered on /metrics by the API (via main.ts). */
import type { MetricSample } from '../api/metricsText.js';
import { REFUSALS, type Refusal } from './admission.js';

export class BrokerMetrics {
  connections = 0;
  publishesIn = 0;
  publishesOut = 0;
  publishesDenied = 0;
  subscriptionsDenied = 0;
  commandsSubmitted = 0;
  private readonly authFailures = new Map<string, number>();
  private readonly refusals = new Map<Refusal, number>();

  authFailure(reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
  }

  refused(reason: Refusal): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  authFailuresTotal(): number {
    let n = 0;
    for (const v of this.authFailures.values()) n += v;
    return n;
  }

  /** `clients`: connected (authenticated) MQTT clients; `sockets`: TCP connections open, authenticated or not */
  samples(clients: number, sockets: number): MetricSample[] {
    const c = (name: string, help: string, value: number, labels?: Record<string, string>): MetricSample =>
      labels ? { name, help, type: 'counter', value, labels } : { name, help, type: 'counter', value };
    return [
      { name: 'streetbox_broker_clients', help: 'MQTT clients connected to the embedded broker', type: 'gauge', value: clients },
      { name: 'streetbox_broker_sockets', help: 'TCP connections open to the embedded broker, logged in or not', type: 'gauge', value: sockets },
      c('streetbox_broker_connections_total', 'MQTT connections accepted (authenticated)', this.connections),
      c('streetbox_broker_publishes_in_total', 'PUBLISH packets accepted from clients', this.publishesIn),
      c('streetbox_broker_publishes_out_total', 'PUBLISH packets forwarded to clients', this.publishesOut),
      c('streetbox_broker_publishes_denied_total', 'client publishes refused by the ACL (the client is disconnected)', this.publishesDenied),
      c('streetbox_broker_subscriptions_denied_total', 'subscriptions refused by the ACL (SUBACK 0x80)', this.subscriptionsDenied),
      c('streetbox_broker_commands_total', 'commands submitted through set topics', this.commandsSubmitted),
      ...['credentials', 'anonymous', 'busy'].map((reason) =>
        c('streetbox_broker_auth_failures_total', 'refused MQTT logins by reason', this.authFailures.get(reason) ?? 0, { reason }),
      ),
      ...REFUSALS.map((reason) =>
        c('streetbox_broker_connections_refused_total', 'connections closed by the broker limits, by reason (too many, connect timeout, packet framing or size)', this.refusals.get(reason) ?? 0, { reason }),
      ),
    ];
  }
}
