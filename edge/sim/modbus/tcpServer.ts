/**
 * Modbus TCP server for the simulators: raw sockets and our own MBAP framing, so it answers
 * many thousands of requests per second (modbus-serial's ServerTCP manages ~800).
 * // MODBUS Messaging on TCP/IP Implementation Guide V1.0b §3.1.3: MBAP header =
 * transaction id (2), protocol id (2, 0 = Modbus), length (2, unit + PDU), unit id (1).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { garbage } from './faults.js';
import { EXCEPTION, exceptionPdu } from './pdu.js';
import type { UnitRegistry } from './units.js';

export interface TcpSimServerOptions {
  units: UnitRegistry;
  host?: string;
  /** 0 (default) picks a free port */
  port?: number;
  log?: Logger;
  /**
   * A request for a unit the server does not have: answered with exception 0x0B (gateway
   * target failed to respond, default) or ignored.
   */
  unknownUnit?: 'exception' | 'ignore';
}

const MBAP = 7;

export class TcpSimServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly opts: TcpSimServerOptions;
  host = '';
  port = 0;

  constructor(opts: TcpSimServerOptions) {
    this.opts = opts;
  }

  get connections(): number {
    return this.sockets.size;
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) return { host: this.host, port: this.port };
    const server = createServer({ noDelay: true }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.opts.log?.error({ err }, 'modbus tcp simulator error'));
    const addr = server.address() as AddressInfo;
    this.server = server;
    this.host = addr.address;
    this.port = addr.port;
    return { host: this.host, port: this.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Drops every open connection (a device reboot, a cable pulled); the server keeps listening. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    let pending: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = null;
      let off = 0;
      while (buf.length - off >= MBAP) {
        const len = buf.readUInt16BE(off + 4);
        if (buf.readUInt16BE(off + 2) !== 0 || len < 2 || len > 254) {
          // Not Modbus framing: the implementation guide §4.2 lets a server drop the connection.
          this.opts.log?.debug({ len }, 'bad MBAP header; closing connection');
          socket.destroy();
          return;
        }
        if (buf.length - off < 6 + len) break;
        this.handle(socket, buf, off, len);
        off += 6 + len;
      }
      if (off < buf.length) pending = buf.subarray(off);
      buf = Buffer.alloc(0);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private handle(socket: Socket, buf: Buffer, off: number, len: number): void {
    const tid = buf.readUInt16BE(off);
    const unit = buf[off + 6]!;
    const pdu = buf.subarray(off + MBAP, off + 6 + len);
    const units = this.opts.units;
    let frame: Buffer | null;
    let fault;
    if (!units.has(unit)) {
      if (this.opts.unknownUnit === 'ignore') return;
      frame = exceptionPdu(pdu[0] ?? 0, EXCEPTION.gatewayTargetFailed, MBAP, 0);
    } else {
      ({ frame, fault } = units.serve(unit, pdu, MBAP, 0));
    }
    if (!frame) return;
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(0, 2);
    frame.writeUInt16BE(frame.length - 6, 4);
    frame[6] = unit;
    let delay = 0;
    switch (fault?.kind) {
      case 'crc':
        frame.writeUInt16BE(1, 2);
        break;
      case 'garbage':
        frame = garbage(fault);
        break;
      case 'truncated':
        frame = frame.subarray(0, Math.max(1, frame.length >> 1));
        break;
      case 'wrongUnit':
        frame[6] = (unit + 1) & 0xff;
        break;
      case 'wrongTransaction':
        frame.writeUInt16BE((tid + 1) & 0xffff, 0);
        break;
      case 'late':
        delay = fault.ms;
        break;
      default:
        break;
    }
    if (delay > 0) {
      const out = frame;
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!socket.destroyed) socket.write(out);
      }, delay);
      this.timers.add(t);
    } else socket.write(frame);
  }
}
