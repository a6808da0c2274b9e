/**
 * A simulated Semtech UDP packet forwarder (PROTOCOL.TXT v2) over real UDP: PUSH_DATA with
 * rxpk for each frame its nodes send, PULL_DATA keepalives, PULL_RESP answered with TX_ACK
 * and handed to the nodes on the air, `stat` every statIntervalMs. TX_ACK errors (TOO_LATE,
 * COLLISION_PACKET, TX_FREQ, …) at a seeded rate: a PULL_RESP refused is not transmitted.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { systemClock, type Clock } from '../../clock.js';
import { parseDatagram, pullData, pushData, txAck, type RxPk, type TxPk } from '../../drivers/lorawan/semtech/packet.js';
import { rng } from '../modbus/random.js';

/** A share of PULL_RESPs refused with one of `errors` (PROTOCOL.TXT §6 TX_ACK error values), drawn from a seeded source. */
export interface TxAckErrors {
  /** 0..1 */
  rate: number;
  errors: string[];
}

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
  /** TX_ACK errors at a rate (used when txAckError is not given) */
  txAckErrors?: TxAckErrors;
  /** seed of the TX_ACK errors (default 1) */
  seed?: number;
  /** time of tmst, rxpk `time` and stat (default the system clock) */
  clock?: Clock;
}

/** frames transmitted kept for tests (a FUOTA sends a few hundred) */
const MAX_RECEIVED = 5000;

export const UPLINK_CHANNELS_MHZ = [868.1, 868.3, 868.5] as const;

export class SimForwarder {
  readonly gatewayEui: string;
  private readonly opts: SimForwarderOptions;
  private socket: dgram.Socket | null = null;
  private token = randomInt(0, 0x10000);
  private readonly clock: Clock;
  private readonly t0: number;
  private readonly txAckError: () => string;
  private timers: NodeJS.Timeout[] = [];
  private stats = { rxnb: 0, rxok: 0, rxfw: 0, dwnb: 0, txnb: 0, acked: 0 };
  /** frames transmitted (PULL_RESP with TX_ACK NONE), `at` on the clock's monotonic time */
  readonly received: { txpk: TxPk; at: number }[] = [];
  /** PULL_RESPs refused, by TX_ACK error */
  readonly txAckErrorCounts: Record<string, number> = {};
  onDownlink: ((txpk: TxPk, phy: Buffer) => void) | null = null;
  /** monotonic time each PUSH_DATA was sent, by token (for latency measurements) */
  readonly pushAcks = { count: 0 };

  constructor(opts: SimForwarderOptions) {
    this.opts = opts;
    this.gatewayEui = opts.gatewayEui;
    this.clock = opts.clock ?? systemClock;
    this.t0 = this.clock.monotonic();
    this.txAckError = opts.txAckError ?? txAckErrorSource(opts.txAckErrors, opts.seed ?? 1);
  }

  tmst(): number {
    return ((this.opts.tmstStart ?? 0) + Math.round((this.clock.monotonic() - this.t0) * 1000)) >>> 0;
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
      time: new Date(this.clock.now()).toISOString(),
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
    const stat = { time: new Date(this.clock.now()).toISOString().replace('T', ' ').replace(/\..*/, ' GMT'), rxnb, rxok, rxfw, ackr: 100, dwnb, txnb };
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
    const error = this.txAckError();
    // PROTOCOL.TXT §5.5: TX_ACK with the PULL_RESP's token.
    this.socket?.send(txAck(2, d.token, this.gatewayEui, error), this.opts.port, this.opts.host);
    if (error !== 'NONE') {
      this.txAckErrorCounts[error] = (this.txAckErrorCounts[error] ?? 0) + 1;
      return;
    }
    this.stats.txnb++;
    this.received.push({ txpk: d.txpk, at: this.clock.monotonic() });
    if (this.received.length > MAX_RECEIVED) this.received.shift();
    // Delivered on the air at once (a real concentrator waits for tmst; nodes here accept either window).
    this.onDownlink?.(d.txpk, Buffer.from(d.txpk.data, 'base64'));
  }
}

/** NONE, or at `rate` one of `errors` (uniformly), from a seeded source so a run repeats. */
function txAckErrorSource(spec: TxAckErrors | undefined, seed: number): () => string {
  if (!spec || spec.rate <= 0 || spec.errors.length === 0) return () => 'NONE';
  const random = rng(seed);
  return () => (random() < spec.rate ? spec.errors[Math.floor(random() * spec.errors.length)]! : 'NONE');
}
