/**
 * The LoRaWAN simulator for the demo and the tests: one or more packet forwarders over real
 * UDP and N streetlight nodes (ABP, or OTAA: they join first) sending status uplinks every
 * uplinkIntervalMs, applying downlink commands and reporting them in their next uplink.
 */
import type { Logger } from '../../log.js';
import { SimForwarder } from './forwarder.js';
import { SimNode, type SimNodeConfig } from './node.js';

export { SimForwarder } from './forwarder.js';
export { SimNode, type SimNodeConfig } from './node.js';

export interface LorawanSimulatorOptions {
  port: number;
  host: string;
  /** the lorawan.devices entries, each with its devices.yaml id */
  devices: SimNodeConfig[];
  uplinkIntervalMs: number;
  log: Logger;
  /** forwarders hearing every node (default one); several exercise de-duplication */
  gatewayEuis?: string[];
  keepaliveMs?: number;
  statIntervalMs?: number;
  /** after applying a command a node reports within this long (default 1 s) */
  reportDelayMs?: number;
  /** share of uplinks sent as confirmed (0..1, default 0) */
  confirmedShare?: number;
}

export interface LorawanSimulator {
  stop(): Promise<void>;
  nodes: SimNode[];
  forwarders: SimForwarder[];
  /** sends one uplink of `node` now */
  uplink(node: SimNode): void;
}

export async function startLorawanSimulator(opts: LorawanSimulatorOptions): Promise<LorawanSimulator> {
  const log = opts.log.child({ module: 'sim-lorawan' });
  const euis = opts.gatewayEuis ?? ['aa555a0000000001'];
  const forwarders = euis.map(
    (gatewayEui) =>
      new SimForwarder({
        gatewayEui,
        host: opts.host,
        port: opts.port,
        keepaliveMs: opts.keepaliveMs ?? 5_000,
        statIntervalMs: opts.statIntervalMs ?? 30_000,
      }),
  );
  const nodes = opts.devices.map((d) => new SimNode(d));
  const timers = new Map<SimNode, NodeJS.Timeout>();
  const lastAt = new Map<SimNode, number>();
  let stopped = false;

  const uplink = (node: SimNode): void => {
    if (stopped) return;
    const now = performance.now();
    const elapsedH = (now - (lastAt.get(node) ?? now)) / 3_600_000;
    lastAt.set(node, now);
    const confirmed = Math.random() < (opts.confirmedShare ?? 0);
    const phy = node.nextUplink({ confirmed, elapsedH });
    forwarders.forEach((f, i) => f.uplink(phy, { rssi: -70 - i * 8 - Math.floor(Math.random() * 5), lsnr: 7 - i * 3 }));
  };

  const schedule = (node: SimNode, ms: number): void => {
    const old = timers.get(node);
    if (old) clearTimeout(old);
    if (stopped) return;
    const t = setTimeout(() => {
      try {
        uplink(node);
      } catch (err) {
        log.error({ err, node: node.cfg.id }, 'simulated uplink failed');
      }
      // OTAA nodes retry a join sooner than they report.
      schedule(node, node.joined ? opts.uplinkIntervalMs : Math.min(opts.uplinkIntervalMs, 3_000));
    }, ms);
    t.unref();
    timers.set(node, t);
  };

  for (const f of forwarders) {
    f.onDownlink = (_txpk, phy) => {
      for (const n of nodes) if (n.receive(phy)) break;
    };
    await f.start();
  }
  for (const n of nodes) {
    n.onCommand = (c) => {
      log.info({ node: n.cfg.id, command: c }, 'simulated node applied a command');
      schedule(n, opts.reportDelayMs ?? 1_000);
    };
  }
  // Spread the first uplinks over the interval so the nodes do not all talk at once.
  nodes.forEach((n, i) => schedule(n, Math.round(((i + 1) * Math.min(opts.uplinkIntervalMs, 2_000)) / (nodes.length + 1))));
  log.info({ nodes: nodes.length, forwarders: forwarders.length, port: opts.port }, 'lorawan simulator started');

  return {
    nodes,
    forwarders,
    uplink,
    async stop() {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await Promise.all(forwarders.map((f) => f.stop()));
    },
  };
}
