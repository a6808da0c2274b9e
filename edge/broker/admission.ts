/**
 * Who may hold a connection to the broker, and for how long without logging in. Every TCP
 * connection (plain, or the one under TLS before its handshake) is admitted here or closed at
 * once: at most broker.maxConnections in all and broker.maxConnectionsPerAddress from one
 * address. An admitted connection has broker.connectTimeout to complete an authenticated CONNECT
 * (TLS handshake included), then it is closed. The stream aedes gets is framing-checked
 * (framing.ts). Each refusal is counted by reason; at most one log line per reason every
 * LOG_EVERY_MS says so, with the address and sizes, never anything the client sent.
 */
import type { Socket } from 'node:net';
import type { Clock, Timer } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { FRAMING_REFUSALS, GuardedConnection, PacketFramer, type FramingVerdict } from './framing.js';

/** The largest CONNECT: client id, credentials and a small will fit. Nothing after it is read before the login. */
export const PRE_AUTH_MAX_PACKET = 8 * 1024;

export const REFUSALS = ['max-connections', 'max-pending', 'max-per-address', 'connect-timeout', ...FRAMING_REFUSALS] as const;
export type Refusal = (typeof REFUSALS)[number];

const LOG_EVERY_MS = 10_000;

export type AdmissionLimits = Pick<Config['broker'], 'maxConnections' | 'maxConnectionsPerAddress' | 'connectTimeout' | 'maxPacketSize'>;

export interface AdmissionContext {
  limits: AdmissionLimits;
  clock: Clock;
  log: Logger;
  /** counts a refusal (BrokerMetrics) */
  refused(reason: Refusal): void;
}

/** An admitted connection that has not authenticated yet. */
interface Pending {
  raw: Socket;
  address: string;
  deadline: Timer;
}

export class Admission {
  private readonly open = new Set<Socket>();
  private readonly perAddress = new Map<string, number>();
  /** by TCP 4-tuple: the TLS socket of a connection finds its raw socket (and deadline) here */
  private readonly pending = new Map<string, Pending>();
  private readonly logged = new Map<Refusal, { at: number; suppressed: number }>();
  /** pending connections evicted whose 'close' has not come yet (still in `open`) */
  private closing = 0;

  constructor(private readonly ctx: AdmissionContext) {}

  /** TCP connections open now, authenticated or not. */
  get size(): number {
    return this.open.size;
  }

  /** A new TCP connection: counted and given its connect deadline, or closed (false). */
  admit(raw: Socket): boolean {
    const { maxConnections, maxConnectionsPerAddress, connectTimeout } = this.ctx.limits;
    if (raw.remoteAddress === undefined) {
      raw.destroy(); // gone before it was accepted
      return false;
    }
    const address = clientAddress(raw.remoteAddress);
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (fromAddress >= maxConnectionsPerAddress) return this.turnAway(raw, 'max-per-address', address, { limit: maxConnectionsPerAddress });
    // Connections that have not logged in yet hold at most three quarters of the slots, and
    // when they hold all they may, the oldest of them makes room for the newcomer (a client
    // completes its CONNECT in milliseconds; sockets that never log in, from however many
    // addresses, cannot keep the broker's clients out). Logged-in clients are never evicted.
    const maxPending = Math.max(1, maxConnections - Math.floor(maxConnections / 4));
    if (this.pending.size >= maxPending || (this.open.size - this.closing >= maxConnections && this.pending.size > 0)) {
      const oldest = this.pending.values().next().value!;
      this.pending.delete(tcpKey(oldest.raw));
      this.closing++;
      oldest.raw.once('close', () => this.closing--);
      this.refused('max-pending', oldest.address, { limit: maxPending });
      oldest.raw.destroy();
    }
    if (this.open.size - this.closing >= maxConnections) return this.turnAway(raw, 'max-connections', address, { limit: maxConnections });

    this.open.add(raw);
    this.perAddress.set(address, fromAddress + 1);
    const key = tcpKey(raw);
    const entry: Pending = {
      raw,
      address,
      deadline: this.ctx.clock.setTimeout(() => {
        this.refused('connect-timeout', address, { limit: connectTimeout });
        raw.destroy();
      }, connectTimeout),
    };
    entry.deadline.unref?.();
    this.pending.set(key, entry);
    raw.once('close', () => {
      this.ctx.clock.clearTimeout(entry.deadline);
      if (this.pending.get(key) === entry) this.pending.delete(key);
      this.open.delete(raw);
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n > 0) this.perAddress.set(address, n);
      else this.perAddress.delete(address);
    });
    return true;
  }

  /**
   * The stream aedes is to read for an admitted connection (the socket itself, or its TLS
   * socket), framing-checked; null when the connection has closed in the meantime.
   */
  guard(stream: Socket): GuardedConnection | null {
    const key = tcpKey(stream);
    const entry = this.pending.get(key);
    if (!entry || entry.raw.destroyed) {
      stream.destroy();
      return null;
    }
    const { maxPacketSize } = this.ctx.limits;
    const framer = new PacketFramer({ connect: Math.min(PRE_AUTH_MAX_PACKET, maxPacketSize), packet: maxPacketSize });
    return new GuardedConnection(stream, framer, {
      refused: (v: FramingVerdict) => this.refused(v.reason, entry.address, { limit: v.limit, ...(v.size !== undefined ? { size: v.size } : {}) }),
      authenticated: () => {
        this.ctx.clock.clearTimeout(entry.deadline);
        if (this.pending.get(key) === entry) this.pending.delete(key);
      },
    });
  }

  /** Closes every connection still open: at stop, aedes closes only the clients that completed CONNECT. */
  closeAll(): void {
    for (const raw of this.open) raw.destroy();
  }

  private turnAway(raw: Socket, reason: Refusal, address: string, detail: { limit: number }): false {
    this.refused(reason, address, detail);
    raw.destroy();
    return false;
  }

  private refused(reason: Refusal, address: string, detail: { limit: number; size?: number }): void {
    this.ctx.refused(reason);
    const now = this.ctx.clock.monotonic();
    const last = this.logged.get(reason);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    this.logged.set(reason, { at: now, suppressed: 0 });
    // `suppressed`: refusals for the same reason since the last line, not logged one by one
    this.ctx.log.warn({ reason, remote: address, ...detail, suppressed: last?.suppressed ?? 0 }, 'mqtt connection refused');
  }
}

/** An IPv4 client on a dual-stack socket is counted by its IPv4 address. */
function clientAddress(remote: string): string {
  return remote.startsWith('::ffff:') ? remote.slice(7) : remote;
}

/** The TCP 4-tuple: the same on a raw socket and on the TLS socket over it. */
function tcpKey(s: Socket): string {
  return `${s.localAddress}|${s.localPort}|${s.remoteAddress}|${s.remotePort}`;
}
