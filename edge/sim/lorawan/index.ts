/**
 * The LoRaWAN simulator for the demo and the tests: one or more packet forwarders over real
 * UDP and N streetlight nodes (ABP, or OTAA: they join first) sending status uplinks every
 * uplinkIntervalMs, applying downlink commands and reporting them in their next uplink, and
 * answering the network's MAC and application-layer requests soon after (node.ts). Every frame
 * a forwarder transmits goes on the air to every node (each takes what is addressed to it or to
 * one of its multicast groups, and misses it with its `downlinkLoss`). All timing runs on
 * `clock` (uplink interval, answer delay, class C sessions, reboots).
 */
import { systemClock, type Clock, type Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import { SimForwarder, type TxAckErrors } from './forwarder.js';
import { SimNode, type SimNodeConfig, type SimNodeOptions } from './node.js';

export { SimForwarder, type TxAckErrors } from './forwarder.js';
export { SimNode, type SimNodeConfig, type SimNodeOptions, type SimNodeStats } from './node.js';

/** The air between the forwarders and the nodes. */
export interface SimRadioOptions {
  /** every node misses each frame with this probability (a node's own `downlinkLoss` overrides it) */
  downlinkLoss?: number;
  /** PULL_RESPs refused by the forwarders with a TX_ACK error (not transmitted) */
  txAckErrors?: TxAckErrors;
  /** seed of the loss and the TX_ACK errors (default 1): the same seed, the same run */
  seed?: number;
}

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
  /** the simulator's time (default the system clock; the gateway passes its scaled radio clock) */
  clock?: Clock;
  /** options of every node */
  nodeOptions?: SimNodeOptions;
  /** options (faults) of single nodes by device id, over nodeOptions */
  perNode?: Record<string, SimNodeOptions>;
  radio?: SimRadioOptions;
}

export interface LorawanSimulator {
  stop(): Promise<void>;
  nodes: SimNode[];
  forwarders: SimForwarder[];
  /** the node of a device id */
  node(id: string): SimNode | undefined;
  /** sends one uplink of `node` now */
  uplink(node: SimNode): void;
}

/** The seed of node i: the radio's seed spread over the nodes (so each has its own loss pattern). */
function nodeSeed(radioSeed: number, i: number): number {
  return (Math.imul(radioSeed, 0x9e3779b1) + i * 0x85ebca6b) >>> 0;
}

export async function startLorawanSimulator(opts: LorawanSimulatorOptions): Promise<LorawanSimulator> {
  const log = opts.log.child({ module: 'sim-lorawan' });
  const clock = opts.clock ?? systemClock;
  const seed = opts.radio?.seed ?? 1;
  const euis = opts.gatewayEuis ?? ['aa555a0000000001'];
  const forwarders = euis.map(
    (gatewayEui, i) =>
      new SimForwarder({
        gatewayEui,
        host: opts.host,
        port: opts.port,
        keepaliveMs: opts.keepaliveMs ?? 5_000,
        statIntervalMs: opts.statIntervalMs ?? 30_000,
        clock,
        seed: seed + i,
        ...(opts.radio?.txAckErrors ? { txAckErrors: opts.radio.txAckErrors } : {}),
      }),
  );
  const nodes = opts.devices.map(
    (d, i) =>
      new SimNode(d, {
        seed: nodeSeed(seed, i),
        ...(opts.radio?.downlinkLoss !== undefined ? { downlinkLoss: opts.radio.downlinkLoss } : {}),
        ...opts.nodeOptions,
        ...opts.perNode?.[d.id],
        clock,
      }),
  );
  const timers = new Map<SimNode, { timer: Timer; at: number }>();
  const lastAt = new Map<SimNode, number>();
  let stopped = false;

  const uplink = (node: SimNode): void => {
    if (stopped || node.silent) return;
    const now = clock.monotonic();
    const elapsedH = (now - (lastAt.get(node) ?? now)) / 3_600_000;
    lastAt.set(node, now);
    const confirmed = Math.random() < (opts.confirmedShare ?? 0);
    const phy = node.nextUplink({ confirmed, elapsedH });
    const radio = node.uplinkRadio();
    forwarders.forEach((f, i) =>
      f.uplink(phy, { freq: radio.freq, datr: radio.datr, rssi: radio.rssi - i * 8 - Math.floor(Math.random() * 5), lsnr: radio.lsnr - i * 3 }),
    );
  };

  /** The node's next uplink in `ms`; `soonerOnly` keeps an earlier one already planned (an answer does not delay a report). */
  const schedule = (node: SimNode, ms: number, soonerOnly = false): void => {
    if (stopped) return;
    const at = clock.monotonic() + ms;
    const old = timers.get(node);
    if (old && soonerOnly && old.at <= at) return;
    if (old) clock.clearTimeout(old.timer);
    const t = clock.setTimeout(() => {
      timers.delete(node);
      try {
        uplink(node);
      } catch (err) {
        log.error({ err, node: node.cfg.id }, 'simulated uplink failed');
      }
      // OTAA nodes retry a join sooner than they report.
      schedule(node, node.joined ? opts.uplinkIntervalMs : Math.min(opts.uplinkIntervalMs, 3_000));
    }, ms);
    t.unref?.();
    timers.set(node, { timer: t, at });
  };

  for (const f of forwarders) {
    f.onDownlink = (txpk, phy) => {
      for (const n of nodes) n.hear(phy, txpk);
    };
    await f.start();
  }
  for (const n of nodes) {
    n.onCommand = (c) => {
      log.info({ node: n.cfg.id, command: c }, 'simulated node applied a command');
      schedule(n, opts.reportDelayMs ?? 1_000);
    };
    n.onUplinkWanted = (delayMs) => schedule(n, delayMs, true);
  }
  // Spread the first uplinks over the interval so the nodes do not all talk at once.
  nodes.forEach((n, i) => schedule(n, Math.round(((i + 1) * Math.min(opts.uplinkIntervalMs, 2_000)) / (nodes.length + 1))));
  log.info({ nodes: nodes.length, forwarders: forwarders.length, port: opts.port }, 'lorawan simulator started');

  return {
    nodes,
    forwarders,
    node: (id) => nodes.find((n) => n.cfg.id === id),
    uplink,
    async stop() {
      stopped = true;
      for (const { timer } of timers.values()) clock.clearTimeout(timer);
      timers.clear();
      for (const n of nodes) n.stop();
      await Promise.all(forwarders.map((f) => f.stop()));
    },
  };
}
