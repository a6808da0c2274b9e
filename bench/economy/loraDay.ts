/**
 * The demo's LoRaWAN side on the virtual clock: the simulator's streetlight nodes (SimNode,
 * edge/sim/lorawan) sending a status uplink every 15 s as the demo's `simulate: true` starts
 * them (edge/components.ts), each status through the profile's codec (encodeStatus on the node,
 * decodeStatus in the driver) and stored as the driver stores it (statusReadings, radioReadings);
 * and the simulated packet forwarder's `stat` every 30 s (gatewayReadings). The radio layer
 * (encryption, MIC, FCnt) changes no reading and is left out: it would cost a millisecond an uplink.
 */
import type { Config } from '../../edge/config/schema.js';
import { parseDatr, drIndex } from '../../edge/drivers/lorawan/region/eu868.js';
import { gatewayReadings, radioReadings, statusReadings } from '../../edge/drivers/lorawan/readings.js';
import { decodeStatus, encodeStatus, type StreetlightCommand } from '../../edge/profiles/loraStreetlight.js';
import { SimNode } from '../../edge/sim/lorawan/node.js';
import { rng } from '../../edge/sim/modbus/model.js';
import type { NewReading } from '../../edge/store/types.js';
import type { Source } from './demoDay.js';

/** edge/components.ts: the demo's simulated nodes report every 15 s */
export const DEMO_UPLINK_MS = 15_000;
/** edge/sim/lorawan/index.ts: the forwarder's stat every 30 s, a command reported 1 s after it is applied */
const STAT_MS = 30_000;
const REPORT_DELAY_MS = 1_000;
/** LoRaWAN 1.0.3 §3.3.1: a class A node hears a downlink only in RX1, RECEIVE_DELAY1 (1 s) after its uplink */
const RX1_DELAY_MS = 1_000;
/** the simulated forwarder's EUI and data rate (edge/sim/lorawan/forwarder.ts) */
const GATEWAY_EUI = 'aa555a0000000001';
const DATR = 'SF7BW125';

/** What the forwarder counts (its `stat` object; the simulator's counters are totals since it started). */
interface ForwarderCounts {
  rxnb: number;
  dwnb: number;
}

/** One node: its uplinks, and the schedule's dim commands it receives. */
class LoraNodeSource implements Source {
  next: number;
  private readonly node: SimNode;
  private readonly random: () => number;
  private lastUplink: number | null = null;
  /** a command waiting for a class A node's next receive window */
  private queued: StreetlightCommand | null = null;
  /** EU868 DR of the simulated forwarder's data rate, as the driver derives it */
  private readonly dr = drIndex(parseDatr(DATR)!);

  constructor(
    readonly device: string,
    private readonly cls: 'A' | 'C',
    node: SimNode,
    first: number,
    seed: number,
    private readonly counts: ForwarderCounts,
    private readonly out: (rs: NewReading[]) => void,
  ) {
    this.node = node;
    this.next = first;
    this.random = rng(seed);
  }

  /** The schedule's level for this node (lightDriver.ts: 0 is "off", anything else "dim"). */
  command(level: number, now: number): void {
    const c: StreetlightCommand = level === 0 ? { action: 'off' } : { action: 'dim', level };
    if (this.cls === 'A') {
      this.queued = c;
      return;
    }
    this.apply(c, now);
  }

  fire(now: number): void {
    const state = this.node.state;
    // SimNode.nextUplink: the energy drawn since the last uplink, then the status frame
    if (this.lastUplink !== null) state.energy += (state.power * (now - this.lastUplink)) / 3_600_000 / 1000;
    this.lastUplink = now;
    this.counts.rxnb++;
    const status = decodeStatus(encodeStatus(state));
    // one forwarder, as the demo simulates it: RSSI −70 … −74 dBm, SNR 7 dB
    const best = { gatewayEui: GATEWAY_EUI, rssi: -70 - Math.floor(this.random() * 5), snr: 7, up: { gatewayEui: GATEWAY_EUI, tmst: 0, freq: 868.1, datr: DATR, receivedAt: 0 } };
    this.out([...statusReadings(this.device, status, now), ...radioReadings(this.device, now, best, this.dr, 1)]);
    this.next = now + DEMO_UPLINK_MS;
    if (this.queued) {
      const c = this.queued;
      this.queued = null;
      this.apply(c, now + RX1_DELAY_MS);
    }
  }

  private apply(c: StreetlightCommand, at: number): void {
    this.counts.dwnb++;
    this.node.apply(c);
    this.next = at + REPORT_DELAY_MS;
  }
}

class ForwarderStatSource implements Source {
  next: number;

  constructor(
    start: number,
    private readonly counts: ForwarderCounts,
    private readonly out: (rs: NewReading[]) => void,
  ) {
    this.next = start + STAT_MS;
  }

  fire(now: number): void {
    const { rxnb, dwnb } = this.counts;
    const stat = { time: new Date(now).toISOString(), rxnb, rxok: rxnb, rxfw: rxnb, ackr: 100, dwnb, txnb: dwnb };
    const rows = gatewayReadings(GATEWAY_EUI, stat, now);
    if (rows.length > 0) this.out(rows);
    this.next = now + STAT_MS;
  }
}

export interface LoraDay {
  sources: Source[];
  /** the node of a devices.yaml id, to receive the schedule's commands */
  nodes: Map<string, { command(level: number, now: number): void }>;
}

/** The demo's nodes and forwarder from `config.lorawan` (OTAA nodes start the day joined). */
export function loraDay(config: Config, start: number, out: (rs: NewReading[]) => void): LoraDay {
  const counts: ForwarderCounts = { rxnb: 0, dwnb: 0 };
  const sources: Source[] = [new ForwarderStatSource(start, counts, out)];
  const nodes = new Map<string, LoraNodeSource>();
  const lorawan = config.lorawan;
  if (!lorawan) return { sources: [], nodes };
  const ids = new Map(config.devices.filter((d) => d.devEui).map((d) => [d.devEui!.toLowerCase(), d.id]));
  lorawan.devices.forEach((d, i) => {
    const id = ids.get(d.devEui.toLowerCase()) ?? d.devEui;
    const node = new SimNode({ ...d, id });
    // edge/sim/lorawan/index.ts spreads the first uplinks over 2 s
    const first = start + Math.round(((i + 1) * Math.min(DEMO_UPLINK_MS, 2_000)) / (lorawan.devices.length + 1));
    const source = new LoraNodeSource(id, d.class, node, first, 0x10a + i, counts, out);
    nodes.set(id, source);
    sources.push(source);
  });
  return { sources, nodes };
}
