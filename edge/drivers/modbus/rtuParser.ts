/**
 * RTU framing by silence, a small parser of its own in the manner of node-serialport's
 * inter-byte-timeout parser: bytes go in as the port delivers them; frames come out.
 * // Modbus over serial line V1.02 §2.5.1.1: a frame is a continuous stream of characters;
 * a silence longer than t1.5 inside it makes it invalid. A frame ends as soon as its length,
 * known from its first bytes, is reached (waiting for t3.5 after each answer would cost the
 * line that much per transaction); a burst may hold several frames. §2.5.1: a frame is at most
 * 256 bytes. The CRC is the receiver's to check.
 *
 * The parser listens only while an answer is awaited (`listen` / `stop`); bytes at any other
 * time, or after the frame that ended the wait, are returned by `push` as discarded. It keeps
 * the time of the last byte received, from which the master counts the t3.5 silence it owes
 * before its next request.
 */
import type { Clock, Timer } from '../../clock.js';
import { StreetboxError } from '../../errors.js';

/** Why bytes are not a frame. */
export type InvalidReason =
  /** a silence longer than `interval` before more bytes of the frame */
  | 'gap'
  /** a silence longer than `interval` and nothing more: the frame stays incomplete */
  | 'truncated'
  /** more bytes than any frame holds without one completing */
  | 'overflow'
  /** the first bytes give no length (an unknown function code): nothing after them can be framed */
  | 'unknownLength';

export interface RtuParserOptions {
  /** the longest silence inside a frame, ms (t1.5 plus slack for user-space timing); > 0 */
  interval: number;
  /** the frame length from its first `length` bytes: a number, undefined (more bytes needed) or -1 (cannot tell) */
  frameLength: (buf: Uint8Array, length: number) => number | undefined;
  /** bytes after which the buffer is taken for no frame; default 256 */
  maxBufferSize?: number;
  clock: Clock;
  /** a complete frame (a view, valid during the call only) */
  onFrame: (frame: Buffer) => void;
  /** bytes that are no frame (a view, valid during the call only) */
  onInvalid: (bytes: Buffer, reason: InvalidReason) => void;
}

/** Modbus over serial line 2.5.1: an RTU frame is at most 256 bytes. */
export const MAX_RTU_FRAME = 256;

export class RtuParser {
  /** monotonic ms of the last byte received */
  lastByteAt = -Infinity;
  private readonly opts: RtuParserOptions;
  private readonly buf: Buffer;
  private len = 0;
  private listening = false;
  private pushing = false;
  private timer: Timer | undefined;

  constructor(opts: RtuParserOptions) {
    if (!(opts.interval > 0)) throw new StreetboxError('E_CONFIG', `"interval" is not greater than 0 (got ${opts.interval})`);
    const max = opts.maxBufferSize ?? MAX_RTU_FRAME;
    if (!Number.isInteger(max) || max < 4) throw new StreetboxError('E_CONFIG', `"maxBufferSize" is not an integer of at least 4 (got ${max})`);
    this.opts = opts;
    this.buf = Buffer.alloc(max);
  }

  /** Starts waiting for a frame; what was buffered is dropped. */
  listen(): void {
    this.len = 0;
    this.clearTimer();
    this.listening = true;
  }

  /** Stops waiting (the answer came, or the wait is over); what is buffered is dropped. */
  stop(): void {
    this.listening = false;
    this.clearTimer();
    // Inside push() the rest of the burst is counted there as discarded.
    if (!this.pushing) this.len = 0;
  }

  /** Bytes from the port. Returns how many of them, or of those buffered, were discarded unframed. */
  push(chunk: Buffer): number {
    const now = this.opts.clock.monotonic();
    this.pushing = true;
    try {
      if (this.len > 0 && now - this.lastByteAt > this.opts.interval) this.invalidate('gap');
      this.lastByteAt = now;
      if (!this.listening) return chunk.length;
      let offset = 0;
      while (offset < chunk.length && this.listening) {
        const n = Math.min(chunk.length - offset, this.buf.length - this.len);
        if (n === 0) {
          this.invalidate('overflow');
          continue;
        }
        chunk.copy(this.buf, this.len, offset, offset + n);
        this.len += n;
        offset += n;
        while (this.listening && this.len > 0 && this.takeFrame());
      }
      if (!this.listening) {
        const rest = chunk.length - offset + this.len;
        this.len = 0;
        return rest;
      }
      if (this.len > 0) this.armTimer();
      else this.clearTimer();
      return 0;
    } finally {
      this.pushing = false;
    }
  }

  /** Takes one frame off the front of the buffer; false when more bytes are needed. */
  private takeFrame(): boolean {
    const need = this.opts.frameLength(this.buf, this.len);
    if (need === undefined || this.len < need) return false;
    if (need < 0) {
      this.invalidate('unknownLength');
      return true;
    }
    this.opts.onFrame(this.buf.subarray(0, need));
    // The view is spent: the rest moves up (stop() inside onFrame leaves it for push() to count).
    this.buf.copyWithin(0, need, this.len);
    this.len -= need;
    return true;
  }

  /** Everything buffered is no frame. */
  private invalidate(reason: InvalidReason): void {
    const bytes = this.buf.subarray(0, this.len);
    this.len = 0;
    this.clearTimer();
    this.opts.onInvalid(bytes, reason);
  }

  private armTimer(): void {
    this.clearTimer();
    const at = this.lastByteAt;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      // Let the I/O phase deliver bytes already read before calling it a silence.
      setImmediate(() => {
        if (this.lastByteAt === at && this.len > 0 && this.listening) this.invalidate('truncated');
      });
    }, Math.ceil(this.opts.interval));
  }

  private clearTimer(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
