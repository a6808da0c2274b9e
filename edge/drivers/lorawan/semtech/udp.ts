/**
 * Semtech UDP protocol server (PROTOCOL.TXT v1/v2) on lorawan.port: answers PUSH_DATA with
 * PUSH_ACK and PULL_DATA with PULL_ACK, remembers each forwarder's downlink address by
 * gateway EUI for as long as its PULL_DATA keepalives come, sends PULL_RESP and routes TX_ACK.
 */
import dgram from 'node:dgram';
import type { Clock } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import { ProtocolError, TxError } from '../errors.js';
import type { ForwarderInfo, GatewayBackend, GatewayBackendHandlers } from './backend.js';
import { ack, parseDatagram, PULL_ACK, PUSH_ACK, pullResp, type TxPk } from './packet.js';

export interface UdpBackendOptions {
  host: string;
  port: number;
  clock: Clock;
  log: Logger;
  /** a forwarder's downlink address is forgotten this long after its last PULL_DATA (default 3 min; keepalives come every 10 s) */
  forwarderTimeoutMs?: number;
}

interface Forwarder extends ForwarderInfo {
  family: string;
}

/** A cabinet has one or a few concentrators; past this, the least recently heard is forgotten (bounded memory under garbage). */
const MAX_FORWARDERS = 64;

const NOOP_HANDLERS: GatewayBackendHandlers = { datagram() {}, uplink() {}, stat() {}, txAck() {}, rejected() {} };

export class UdpGatewayBackend implements GatewayBackend {
  private readonly opts: UdpBackendOptions;
  private socket: dgram.Socket | null = null;
  private handlers: GatewayBackendHandlers = NOOP_HANDLERS;
  private readonly fwd = new Map<string, Forwarder>();
  private nextToken = Math.floor(Math.random() * 0x10000);

  constructor(opts: UdpBackendOptions) {
    this.opts = opts;
  }

  setHandlers(h: GatewayBackendHandlers): void {
    this.handlers = h;
  }

  async start(): Promise<void> {
    if (this.socket) return;
    const type = this.opts.host.includes(':') ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type, recvBufferSize: 4 * 1024 * 1024 });
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => this.opts.log.error({ err }, 'lorawan udp socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.opts.port, this.opts.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    if (!s) return;
    this.socket = null;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  port(): number {
    return this.socket?.address().port ?? 0;
  }

  private timeoutMs(): number {
    return this.opts.forwarderTimeoutMs ?? 180_000;
  }

  private forwarder(eui: string): Forwarder {
    let f = this.fwd.get(eui);
    if (!f) {
      if (this.fwd.size >= MAX_FORWARDERS) this.evictOldest();
      f = { gatewayEui: eui, address: null, port: null, family: 'IPv4', version: 2, lastPullAt: null, lastPushAt: null };
      this.fwd.set(eui, f);
    }
    return f;
  }

  private evictOldest(): void {
    let oldest: Forwarder | null = null;
    for (const f of this.fwd.values()) {
      const seen = Math.max(f.lastPullAt ?? -Infinity, f.lastPushAt ?? -Infinity);
      const o = oldest ? Math.max(oldest.lastPullAt ?? -Infinity, oldest.lastPushAt ?? -Infinity) : Infinity;
      if (seen < o) oldest = f;
    }
    if (oldest) this.fwd.delete(oldest.gatewayEui);
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.handlers.datagram();
    let d;
    try {
      d = parseDatagram(msg);
    } catch (err) {
      this.handlers.rejected(err instanceof ProtocolError ? err.reason : 'malformed', err);
      return;
    }
    const now = this.opts.clock.monotonic();
    try {
      switch (d.kind) {
        case 'push_data': {
          // PROTOCOL.TXT §3.3: acknowledge at once, echoing version and token.
          this.reply(ack(d.version, d.token, PUSH_ACK), rinfo);
          const f = this.forwarder(d.gatewayEui);
          f.lastPushAt = now;
          if (d.stat) this.handlers.stat(d.gatewayEui, d.stat);
          for (const rxpk of d.rxpk) this.handlers.uplink({ gatewayEui: d.gatewayEui, rxpk, receivedAt: now });
          return;
        }
        case 'pull_data': {
          // §5.3: PULL_ACK; the source address is where PULL_RESP must go.
          const f = this.forwarder(d.gatewayEui);
          f.address = rinfo.address;
          f.port = rinfo.port;
          f.family = rinfo.family;
          f.version = d.version;
          f.lastPullAt = now;
          this.reply(ack(d.version, d.token, PULL_ACK), rinfo);
          return;
        }
        case 'tx_ack':
          this.handlers.txAck(d.gatewayEui, d.token, d.error);
          return;
        default:
          // PUSH_ACK, PULL_ACK, PULL_RESP travel server → forwarder only.
          this.handlers.rejected('unexpected_identifier', new ProtocolError('unexpected_identifier', `${d.kind} sent to the server`));
      }
    } catch (err) {
      // A handler bug must not take the socket down; count it like a rejected datagram.
      this.handlers.rejected('handler_error', err);
    }
  }

  private reply(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.socket?.send(buf, rinfo.port, rinfo.address);
  }

  canSend(gatewayEui: string): boolean {
    const f = this.fwd.get(gatewayEui);
    if (!f || f.address === null || f.lastPullAt === null) return false;
    if (this.opts.clock.monotonic() - f.lastPullAt > this.timeoutMs()) {
      f.address = null;
      f.port = null;
      return false;
    }
    return true;
  }

  send(gatewayEui: string, txpk: TxPk): number {
    if (!this.socket) throw new TxError('stopped', 'the LoRaWAN UDP server is stopped');
    if (!this.canSend(gatewayEui)) throw new TxError('no_forwarder', `no PULL_DATA from gateway ${gatewayEui} within ${this.timeoutMs()} ms`);
    const f = this.fwd.get(gatewayEui)!;
    this.nextToken = (this.nextToken + 1) & 0xffff;
    const token = this.nextToken;
    this.socket.send(pullResp(f.version, token, txpk), f.port!, f.address!);
    return token;
  }

  forwarders(): ForwarderInfo[] {
    return [...this.fwd.values()].map((f) => {
      this.canSend(f.gatewayEui);
      return { gatewayEui: f.gatewayEui, address: f.address, port: f.port, version: f.version, lastPullAt: f.lastPullAt, lastPushAt: f.lastPushAt };
    });
  }
}
