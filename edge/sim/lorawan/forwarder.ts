/**
 * A simulated Semtech UDP packet forwarder (PROTOCOL.TXT v2) over real UDP: PUSH_DATA with
 * rxpk for each frame its nodes send, PULL_DATA keepalives, PULL_RESP answered with TX_ACK
 * and handed to the nodes on the air, `stat` every statIntervalMs.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parseDatagram, pullData, pushData, txAck, type RxPk, type TxPk } from '../../drivers/lorawan/semtech/packet.js';

export interface SimForwarderOptions {
  gatewayEui: string;
  host: string;
  port: number;
  keepaliveMs?: number;
  statIntervalMs?: number;
  /** starting value of the 32-bit µs counter (to test the wrap) */
  tmstStart?: number;
  /** answer PULL_RESP with this TX_ACK error (default NONE) */
  txAckError?: () => string;
}

export const UPLINK_CHANNELS_MHZ = [868.1, 868.3, 868.5] as const;

export class SimForwarder {
  readonly gatewayEui: string;
  private readonly opts: SimForwarderOptions;
  private socket: dgram.Socket | null = null;
  private token = randomInt(0, 0x10000);
  private readonly t0 = performance.now();
  private timers: NodeJS.Timeout[] = [];
  private stats = { rxnb: 0, rxok: 0, rxfw: 0, dwnb: 0, txnb: 0, acked: 0 };
  /** frames received from the server (PULL_RESP) */
  readonly received: { txpk: TxPk; at: number }[] = [];
  onDownlink: ((txpk: TxPk, phy: Buffer) => void) | null = null;
  /** monotonic time each PUSH_DATA was sent, by token (for latency measurements) */
  readonly pushAcks = { count: 0 };

  constructor(opts: SimForwarderOptions) {
    this.opts = opts;
    this.gatewayEui = opts.gatewayEui;
  }

  tmst(): number {
    return ((this.opts.tmstStart ?? 0) + Math.round((performance.now() - this.t0) * 1000)) >>> 0;
  }

  async start(): Promise<void> {
    const socket = dgram.createSocket(this.opts.host.includes(':') ? 'udp6' : 'udp4');
    socket.on('message', (msg) => this.onMessage(msg));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.bind(0, this.opts.host, () => resolve()));
    this.socket = socket;
    this.keepalive();
    const k = setInterval(() => this.keepalive(), this.opts.keepaliveMs ?? 10_000);
    k.unref();
    this.timers.push(k);
    if (this.opts.statIntervalMs) {
      const s = setInterval(() => this.sendStat(), this.opts.statIntervalMs);
      s.unref();
      this.timers.push(s);
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const s = this.socket;
    this.socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private nextToken(): number {
    this.token = (this.token + 1) & 0xffff;
    return this.token;
  }

  keepalive(): void {
    this.socket?.send(pullData(2, this.nextToken(), this.gatewayEui), this.opts.port, this.opts.host);
  }

  /** Sends one frame as heard by this forwarder. */
  uplink(phy: Buffer, radio: { freq?: number; datr?: string; rssi?: number; lsnr?: number } = {}): number {
    const rxpk: RxPk = {
      time: new Date().toISOString(),
      tmst: this.tmst(),
      chan: 0,
      rfch: 0,
      freq: radio.freq ?? UPLINK_CHANNELS_MHZ[randomInt(0, UPLINK_CHANNELS_MHZ.length)]!,
      stat: 1,
      modu: 'LORA',
      datr: radio.datr ?? 'SF7BW125',
      codr: '4/5',
      rssi: radio.rssi ?? -60 - randomInt(0, 40),
      lsnr: radio.lsnr ?? Math.round((9 - Math.random() * 12) * 10) / 10,
      size: phy.length,
      data: phy.toString('base64'),
    };
    this.stats.rxnb++;
    this.stats.rxok++;
    this.stats.rxfw++;
    const token = this.nextToken();
    this.socket?.send(pushData(2, token, this.gatewayEui, { rxpk: [rxpk] }), this.opts.port, this.opts.host);
    return token;
  }

  sendStat(): void {
    const { rxnb, rxok, rxfw, dwnb, txnb } = this.stats;
    const stat = { time: new Date().toISOString().replace('T', ' ').replace(/\..*/, ' GMT'), rxnb, rxok, rxfw, ackr: 100, dwnb, txnb };
    this.socket?.send(pushData(2, this.nextToken(), this.gatewayEui, { stat }), this.opts.port, this.opts.host);
  }

  private onMessage(msg: Buffer): void {
    let d;
    try {
      d = parseDatagram(msg);
    } catch {
      return;
    }
    if (d.kind === 'push_ack' || d.kind === 'pull_ack') {
      this.pushAcks.count++;
      return;
    }
    if (d.kind !== 'pull_resp') return;
    this.stats.dwnb++;
    const error = this.opts.txAckError?.() ?? 'NONE';
    // PROTOCOL.TXT §5.5: TX_ACK with the PULL_RESP's token.
    this.socket?.send(txAck(2, d.token, this.gatewayEui, error), this.opts.port, this.opts.host);
    if (error !== 'NONE') return;
    this.stats.txnb++;
    this.received.push({ txpk: d.txpk, at: performance.now() });
    if (this.received.length > 1000) this.received.shift();
    // Delivered on the air at once (a real concentrator waits for tmst; nodes here accept either window).
    this.onDownlink?.(d.txpk, Buffer.from(d.txpk.data, 'base64'));
  }
}
