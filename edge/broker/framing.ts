/**
 * MQTT framing checked at the socket, before aedes sees a byte. aedes' parser (mqtt-packet 9)
 * buffers a packet until all of it has arrived, whatever length its header announces, so a
 * CONNECT announcing 200 MB made the broker hold 200 MB for an unauthenticated client. Here the
 * fixed header of every packet is read from the raw stream and its size judged before the packet
 * is passed on: the first packet must be a CONNECT no larger than the pre-authentication limit;
 * what follows it is not read until the CONNECT is authenticated (a client cannot queue packets
 * behind a pending login), then packets pass up to broker.maxPacketSize. A packet over the limit
 * closes the connection; its bytes never reach aedes.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

// MQTT 3.1.1 §2.2.1 control packet type 1 (CONNECT), §2.2.2 its flags are 0000
const CONNECT_BYTE = 0x10;

export const FRAMING_REFUSALS = ['not-connect', 'connect-too-large', 'packet-too-large', 'malformed-length'] as const;
export type FramingRefusal = (typeof FRAMING_REFUSALS)[number];

export interface FramingVerdict {
  reason: FramingRefusal;
  /** the limit in force, in bytes */
  limit: number;
  /** the size the packet announced (fixed header + remaining length), when it got that far */
  size?: number;
}

export interface PacketLimits {
  /** the largest CONNECT */
  connect: number;
  /** the largest packet once the CONNECT is authenticated */
  packet: number;
}

/**
 * Follows packet boundaries through the byte stream: the fixed header of each packet is read
 * (across chunks if need be) and the rest of the packet skipped without being looked at. Sizes
 * are whole packets: fixed header + remaining length. Until `authenticate()`, it stops at the
 * end of the CONNECT.
 */
export class PacketFramer {
  /** bytes of the current packet's variable header and payload still to come */
  private body = 0;
  /** fixed-header bytes of the next packet read so far: 0, then 1 (type), then 2–5 (length) */
  private header = 0;
  private length = 0;
  private packets = 0;
  private authenticated = false;
  private verdict: FramingVerdict | null = null;

  constructor(private readonly limits: PacketLimits) {}

  /** From now on the packets after the CONNECT pass, up to the packet limit. */
  authenticate(): void {
    this.authenticated = true;
  }

  /**
   * Reads `chunk`: how many of its bytes may pass now (all of them, or fewer when the CONNECT
   * ends inside it and is not authenticated yet: the rest is to be checked again after
   * `authenticate()`), or why the connection must close (and so on for every later chunk).
   */
  check(chunk: Uint8Array): FramingVerdict | number {
    if (this.verdict) return this.verdict;
    let i = 0;
    while (i < chunk.length) {
      if (this.body > 0) {
        const n = Math.min(this.body, chunk.length - i);
        this.body -= n;
        i += n;
        continue;
      }
      if (this.packets > 0 && !this.authenticated) return i;
      const byte = chunk[i++]!;
      if (this.header === 0) {
        // [MQTT-3.1.0-1] the first packet sent from the client to the server MUST be a CONNECT
        if (this.packets === 0 && byte !== CONNECT_BYTE) return this.refuse({ reason: 'not-connect', limit: this.limit() });
        this.header = 1;
        this.length = 0;
        continue;
      }
      // MQTT 3.1.1 §2.2.3 remaining length: 7 bits a byte, least significant first, bit 7 = more follows
      this.length += (byte & 0x7f) * 128 ** (this.header - 1);
      this.header++;
      if (byte & 0x80) {
        if (this.header === 5) return this.refuse({ reason: 'malformed-length', limit: this.limit() });
        continue;
      }
      const size = this.header + this.length;
      const limit = this.limit();
      if (size > limit) return this.refuse({ reason: this.packets === 0 ? 'connect-too-large' : 'packet-too-large', limit, size });
      this.body = this.length;
      this.header = 0;
      this.packets++;
    }
    return chunk.length;
  }

  private limit(): number {
    return this.packets === 0 ? this.limits.connect : this.limits.packet;
  }

  private refuse(verdict: FramingVerdict): FramingVerdict {
    this.verdict = verdict;
    return verdict;
  }
}

export interface GuardHooks {
  /** the framing of a packet was refused; the connection is being destroyed */
  refused(verdict: FramingVerdict): void;
  /** the CONNECT was authenticated */
  authenticated(): void;
}

/**
 * The stream aedes reads and writes instead of the socket: bytes from the socket pass only once
 * their framing is accepted, and nothing after the CONNECT before it is authenticated (the socket
 * is paused meanwhile); writes go to the socket with its backpressure. Destroying either side
 * destroys both.
 */
export class GuardedConnection extends Duplex {
  /** bytes after the CONNECT, not checked yet, waiting for the login */
  private held: Buffer | null = null;
  /** the client closed its side while bytes were held: the end follows them */
  private endAfterHeld = false;

  constructor(
    private readonly socket: Socket,
    private readonly framer: PacketFramer,
    private readonly hooks: GuardHooks,
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      if (this.held) this.endAfterHeld = true;
      else this.push(null);
    });
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /** the client's address, as on the socket (aedes and the broker's logs read it) */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** The CONNECT was authenticated: the larger packet limit applies and the connect deadline ends. */
  authenticated(): void {
    this.framer.authenticate();
    this.hooks.authenticated();
    const held = this.held;
    this.held = null;
    if (held) this.onData(held);
    if (this.destroyed) return;
    if (this.endAfterHeld) this.push(null);
    else if (this.readableLength < this.readableHighWaterMark) this.socket.resume();
  }

  override _read(): void {
    if (!this.held && !this.destroyed) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) done();
    else this.socket.once('drain', () => done());
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    // mqtt-packet corks for the pieces of one packet: they leave in one segment
    this.socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c.chunk);
    this.socket.uncork();
    if (ok) done();
    else this.socket.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.socket.destroy();
    done(err);
  }

  private onData(chunk: Buffer): void {
    if (this.held) {
      // paused: only what was already on its way
      this.held = Buffer.concat([this.held, chunk]);
      return;
    }
    const passing = this.framer.check(chunk);
    if (typeof passing !== 'number') {
      this.socket.pause();
      this.hooks.refused(passing);
      this.destroy();
      return;
    }
    const more = passing === 0 || this.push(passing === chunk.length ? chunk : chunk.subarray(0, passing));
    if (passing < chunk.length) this.held = chunk.subarray(passing);
    if (!more || this.held) this.socket.pause();
  }
}
