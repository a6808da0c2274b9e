/** Counters of the embedded broker, in its own registry (edge/metrics.ts), rendered on /metrics by the API. */
import { MetricsRegistry, type MetricSample } from '../metrics.js';
import { REFUSALS, type Refusal } from './admission.js';

const AUTH_FAILURES = ['credentials', 'anonymous', 'busy'] as const;

export class BrokerMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly m = {
    clients: this.registry.gauge('streetbox_broker_clients', 'MQTT clients connected to the embedded broker'),
    sockets: this.registry.gauge('streetbox_broker_sockets', 'TCP connections open to the embedded broker, logged in or not'),
    connections: this.registry.counter('streetbox_broker_connections_total', 'MQTT connections accepted (authenticated)'),
    publishesIn: this.registry.counter('streetbox_broker_publishes_in_total', 'PUBLISH packets accepted from clients'),
    publishesOut: this.registry.counter('streetbox_broker_publishes_out_total', 'PUBLISH packets forwarded to clients'),
    publishesDenied: this.registry.counter('streetbox_broker_publishes_denied_total', 'client publishes refused by the ACL (the client is disconnected)'),
    subscriptionsDenied: this.registry.counter('streetbox_broker_subscriptions_denied_total', 'subscriptions refused by the ACL (SUBACK 0x80)'),
    commandsSubmitted: this.registry.counter('streetbox_broker_commands_total', 'commands submitted through set topics'),
    authFailures: this.registry.counter('streetbox_broker_auth_failures_total', 'refused MQTT logins by reason', ['reason']),
    refusals: this.registry.counter(
      'streetbox_broker_connections_refused_total',
      'connections closed by the broker limits, by reason (too many, connect timeout, packet framing or size)',
      ['reason'],
    ),
  };

  constructor() {
    for (const reason of AUTH_FAILURES) this.m.authFailures.labels({ reason });
    for (const reason of REFUSALS) this.m.refusals.labels({ reason });
  }

  get connections(): number {
    return this.m.connections.value;
  }

  set connections(n: number) {
    this.m.connections.set(n);
  }

  get publishesIn(): number {
    return this.m.publishesIn.value;
  }

  set publishesIn(n: number) {
    this.m.publishesIn.set(n);
  }

  get publishesOut(): number {
    return this.m.publishesOut.value;
  }

  set publishesOut(n: number) {
    this.m.publishesOut.set(n);
  }

  get publishesDenied(): number {
    return this.m.publishesDenied.value;
  }

  set publishesDenied(n: number) {
    this.m.publishesDenied.set(n);
  }

  get subscriptionsDenied(): number {
    return this.m.subscriptionsDenied.value;
  }

  set subscriptionsDenied(n: number) {
    this.m.subscriptionsDenied.set(n);
  }

  get commandsSubmitted(): number {
    return this.m.commandsSubmitted.value;
  }

  set commandsSubmitted(n: number) {
    this.m.commandsSubmitted.set(n);
  }

  authFailure(reason: (typeof AUTH_FAILURES)[number]): void {
    this.m.authFailures.labels({ reason }).inc();
  }

  refused(reason: Refusal): void {
    this.m.refusals.labels({ reason }).inc();
  }

  authFailuresTotal(): number {
    return this.m.authFailures.entries().reduce((n, e) => n + e.value, 0);
  }

  /** `clients`: connected (authenticated) MQTT clients; `sockets`: TCP connections open, authenticated or not */
  samples(clients: number, sockets: number): MetricSample[] {
    this.m.clients.set(clients);
    this.m.sockets.set(sockets);
    return this.registry.samples();
  }
}
