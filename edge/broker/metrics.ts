/** Counters of the embedded broker, rendered on /metrics by the API (via main.ts). */
import type { MetricSample } from '../api/metricsText.js';

export class BrokerMetrics {
  connections = 0;
  publishesIn = 0;
  publishesOut = 0;
  publishesDenied = 0;
  subscriptionsDenied = 0;
  commandsSubmitted = 0;
  private readonly authFailures = new Map<string, number>();

  authFailure(reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
  }

  authFailuresTotal(): number {
    let n = 0;
    for (const v of this.authFailures.values()) n += v;
    return n;
  }

  samples(clients: number): MetricSample[] {
    const c = (name: string, help: string, value: number, labels?: Record<string, string>): MetricSample =>
      labels ? { name, help, type: 'counter', value, labels } : { name, help, type: 'counter', value };
    return [
      { name: 'streetbox_broker_clients', help: 'MQTT clients connected to the embedded broker', type: 'gauge', value: clients },
      c('streetbox_broker_connections_total', 'MQTT connections accepted (authenticated)', this.connections),
      c('streetbox_broker_publishes_in_total', 'PUBLISH packets accepted from clients', this.publishesIn),
      c('streetbox_broker_publishes_out_total', 'PUBLISH packets forwarded to clients', this.publishesOut),
      c('streetbox_broker_publishes_denied_total', 'client publishes refused by the ACL (the client is disconnected)', this.publishesDenied),
      c('streetbox_broker_subscriptions_denied_total', 'subscriptions refused by the ACL (SUBACK 0x80)', this.subscriptionsDenied),
      c('streetbox_broker_commands_total', 'commands submitted through set topics', this.commandsSubmitted),
      ...['credentials', 'anonymous', 'busy'].map((reason) =>
        c('streetbox_broker_auth_failures_total', 'refused MQTT logins by reason', this.authFailures.get(reason) ?? 0, { reason }),
      ),
    ];
  }
}
