/**
 * Semtech UDP protocol server (PROTOCOL.TXT v1/v2) on lorawan.port: answers PUSH_DATA with
 * PUSH_ACK and PULL_DATA with PULL_ACK, remembers each forwarder's downlink address by
 * gateway EUI for as long as its PULL_DATA keepalives come, sends PULL_RESP and routes TX_ACK.
 * Only admitted forwarders are served (forwarders.ts): another EUI's datagram is counted under
 * its refusal, answered with nothing and leaves nothing behind.
 */
import dgram from 'node:dgram';
import type { Clock } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import { ForwarderRefusedError, ProtocolError, TxError } from '../errors.js';
import type { ForwarderInfo, GatewayBackend, GatewayBackendHandlers } from './backend.js';
import { ForwarderTable, type Forwarder, type ForwarderRefusal } from './forwarders.js';
import { ack, parseDatagram, PULL_ACK, PUSH_ACK, pullResp, type TxPk } from './packet.js';

export interface UdpBackendOptions {
  host: string;
  port: number;
  clock: Clock;
  log: Logger;
  /** a forwarder's downlink address is forgotten this long after its last PULL_DATA (default 3 min; keepalives come every 10 s) */
  forwarderTimeoutMs?: number;
  /** which forwarders are served (default: at most 8 at a time, none configured) */
  forwarders?: ForwarderTable;
}

/** Refused forwarders are logged at most this often (a flood of forged EUIs must not flood the log). */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

const NOOP_HANDLERS: GatewayBackendHandlers = { datagram() {}, uplink() {}, stat() {}, txAck() {}, rejected() {} };

export class UdpGatewayBackend implements GatewayBackend {
  private readonly opts: UdpBackendOptions;
  private socket: dgram.Socket | null = null;
  private handlers: GatewayBackendHandlers = NOOP_HANDLERS;
  private readonly fwd: ForwarderTable;
  private refusals = { since: 0, loggedAt: -Infinity };
  private nextToken = Math.floor(Math.random() * 0x10000);

  constructor(opts: UdpBackendOptions) {
    this.opts = opts;
    this.fwd = opts.forwarders ?? new ForwarderTable();
  }

  async start(handlers: GatewayBackendHandlers): Promise<void> {
    if (this.socket) return;
    this.handlers = handlers;
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

  /** The admitted forwarder of a PUSH_DATA / PULL_DATA, or null when refused (counted, logged now and then). */
  private forwarder(eui: string, now: number): Forwarder | null {
    const f = this.fwd.admit(eui, now);
    if (typeof f !== 'string') return f;
    this.refuse(f, eui, now);
    return null;
  }

  private refuse(reason: ForwarderRefusal, eui: string, now: number): void {
    this.handlers.rejected(reason, new ForwarderRefusedError(reason, eui));
    this.refusals.since++;
    if (now - this.refusals.loggedAt < REFUSAL_LOG_INTERVAL_MS) return;
    const refused = this.refusals.since;
    this.refusals = { since: 0, loggedAt: now };
    if (reason === 'unknown_forwarder') {
      this.opts.log.warn({ gatewayEui: eui, reason, refused }, 'datagrams of packet forwarders not in lorawan.forwarders refused');
    } else {
      this.opts.log.warn({ gatewayEui: eui, reason, refused, max: this.fwd.max }, 'packet forwarders refused: every slot is taken; list yours under lorawan.forwarders');
    }
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
          const f = this.forwarder(d.gatewayEui, now);
          if (!f) return;
          // PROTOCOL.TXT §3.3: acknowledge at once, echoing version and token.
          this.reply(ack(d.version, d.token, PUSH_ACK), rinfo);
          f.lastPushAt = now;
          if (d.stat) this.handlers.stat(d.gatewayEui, d.stat);
          for (const rxpk of d.rxpk) this.handlers.uplink({ gatewayEui: d.gatewayEui, rxpk, receivedAt: now });
          return;
        }
        case 'pull_data': {
          // §5.3: PULL_ACK; the source address is where PULL_RESP must go.
          const f = this.forwarder(d.gatewayEui, now);
          if (!f) return;
          f.address = rinfo.address;
          f.port = rinfo.port;
          f.family = rinfo.family;
          f.version = d.version;
          f.lastPullAt = now;
          this.reply(ack(d.version, d.token, PULL_ACK), rinfo);
          return;
        }
        case 'tx_ack':
          // §5.5: only a forwarder we sent a PULL_RESP to can acknowledge it.
          if (!this.fwd.get(d.gatewayEui)) {
            this.refuse('unknown_forwarder', d.gatewayEui, now);
            return;
          }
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
    return this.fwd.list(this.opts.clock.monotonic()).map((f) => {
      this.canSend(f.gatewayEui);
      const info: ForwarderInfo = { gatewayEui: f.gatewayEui, address: f.address, port: f.port, version: f.version, lastPullAt: f.lastPullAt, lastPushAt: f.lastPushAt };
      if (f.name !== undefined) info.name = f.name;
      return info;
    });
  }
}
