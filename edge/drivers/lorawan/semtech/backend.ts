/**
 * The radio side behind a port (as ChirpStack's `gateway/backend`): the network server hands
 * a txpk to a GatewayBackend and learns about uplinks, gateway stats and TX_ACKs through the
 * handlers it starts it with. `UdpGatewayBackend` (udp.ts) speaks the Semtech UDP protocol;
 * tests may implement this interface to read back the frames that would have been sent.
 */
import type { RxPk, Stat, TxPk } from './packet.js';

export interface UplinkRx {
  gatewayEui: string;
  rxpk: RxPk;
  /** monotonic ms when the datagram arrived: class A timing is measured from here */
  receivedAt: number;
}

/**
 * What a backend reports. It reports datagrams of admitted forwarders only (semtech/forwarders.ts):
 * anything the driver keeps per forwarder (readings of gw-<EUI>, routes, de-duplication) is
 * bounded by that set; others go to `rejected`.
 */
export interface GatewayBackendHandlers {
  /** every datagram received, before it is parsed */
  datagram(): void;
  uplink(rx: UplinkRx): void;
  stat(gatewayEui: string, stat: Stat): void;
  /** a TX_ACK for the PULL_RESP sent with `token` (error is 'NONE' on success) */
  txAck(gatewayEui: string, token: number, error: string): void;
  /** a datagram was rejected; `reason` is the metric key */
  rejected(reason: string, err: unknown): void;
}

export interface ForwarderInfo {
  gatewayEui: string;
  /** its name in lorawan.forwarders, if it has one */
  name?: string;
  /** where PULL_RESP goes, as learnt from the last PULL_DATA; null when forgotten */
  address: string | null;
  port: number | null;
  version: number;
  lastPullAt: number | null;
  lastPushAt: number | null;
}

export interface GatewayBackend {
  /** Starts serving; what it hears goes to `handlers` from then on. */
  start(handlers: GatewayBackendHandlers): Promise<void>;
  stop(): Promise<void>;
  /** the bound port (useful with port 0) */
  port(): number;
  /** true while the forwarder's PULL_DATA keepalives come (its downlink address is known) */
  canSend(gatewayEui: string): boolean;
  /** Sends a PULL_RESP; returns its token, matched by the TX_ACK. Throws TxError if the forwarder is unreachable. */
  send(gatewayEui: string, txpk: TxPk): number;
  forwarders(): ForwarderInfo[];
}
