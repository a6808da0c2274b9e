// RTU framing by silence (Modbus over serial line 2.5.1.1) as its own parser, with a fake clock:
// scenario rows of chunks pushed at given times, and the frames, invalid runs and discarded
// bytes that come out.
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../edge/clock.js';
import { encodeRtuFrame, rtuResponseLength } from '../../edge/drivers/modbus/framing.js';
import { RtuParser, type InvalidReason } from '../../edge/drivers/modbus/rtuParser.js';
import { FakeClock, flushMicrotasks } from '../support/fakeClock.js';

const answer = (unit: number, regs: number[]): Buffer =>
  encodeRtuFrame(unit, Buffer.from([3, regs.length * 2, ...regs.flatMap((r) => [r >> 8, r & 0xff])]));
const INTERVAL = 2;

interface Row {
  name: string;
  /** [ms after the previous chunk, bytes]; `stop` ends the wait when the first frame comes */
  chunks: [number, Buffer][];
  stopOnFrame?: boolean;
  listening?: boolean;
  /** the silence timer never gets to run (a busy event loop) */
  busy?: boolean;
  frames: string[];
  invalid: [InvalidReason, number][];
  discarded: number;
}

const a1 = answer(1, [2301, 5000]);
const a2 = answer(2, [7]);

const ROWS: Row[] = [
  { name: 'a frame in one chunk', chunks: [[0, a1]], frames: [a1.toString('hex')], invalid: [], discarded: 0 },
  { name: 'a frame in chunks within t1.5', chunks: [[0, a1.subarray(0, 3)], [1, a1.subarray(3, 6)], [1, a1.subarray(6)]], frames: [a1.toString('hex')], invalid: [], discarded: 0 },
  {
    name: "another unit's frame and ours in one burst",
    chunks: [[0, Buffer.concat([a2, a1])]],
    frames: [a2.toString('hex'), a1.toString('hex')],
    invalid: [],
    discarded: 0,
  },
  {
    name: 'the answer ends the wait: the rest of the burst is discarded',
    chunks: [[0, Buffer.concat([a1, a2])]],
    stopOnFrame: true,
    frames: [a1.toString('hex')],
    invalid: [],
    discarded: a2.length,
  },
  {
    name: 'a silence longer than t1.5 inside a frame makes it invalid; the tail comes while nobody listens',
    chunks: [[0, a1.subarray(0, 4)], [INTERVAL + 1, a1.subarray(4)]],
    frames: [],
    invalid: [['truncated', 4]],
    discarded: a1.length - 4,
  },
  {
    name: 'the same seen by the next chunk, when the event loop was too busy for the silence timer',
    chunks: [[0, a1.subarray(0, 4)], [INTERVAL + 1, a1.subarray(4)]],
    busy: true,
    frames: [],
    invalid: [['gap', 4]],
    discarded: a1.length - 4,
  },
  { name: 'an unknown function code: nothing after it can be framed', chunks: [[0, Buffer.from([1, 0x2b, 0x99, 0x13])]], frames: [], invalid: [['unknownLength', 4]], discarded: 0 },
  { name: 'bytes while no answer is awaited are discarded', chunks: [[0, a1]], listening: false, frames: [], invalid: [], discarded: a1.length },
  {
    name: 'more bytes than any frame holds (a byte count of 255 and 300 bytes of noise)',
    chunks: [
      [0, Buffer.concat([Buffer.from([1, 3, 255]), Buffer.alloc(253)])],
      [0, Buffer.from([1])],
    ],
    frames: [],
    invalid: [['overflow', 256]],
    discarded: 0,
  },
];

/** A clock whose timers never run: the event loop is busy until the next chunk. */
function busyClock(clock: FakeClock): Clock {
  return { now: () => clock.now(), monotonic: () => clock.monotonic(), setTimeout: () => ({}), clearTimeout: () => undefined };
}

function rig(clock: Clock) {
  const frames: string[] = [];
  const invalid: [InvalidReason, number][] = [];
  let stopOnFrame = false;
  const parser: RtuParser = new RtuParser({
    interval: INTERVAL,
    frameLength: rtuResponseLength,
    clock,
    onFrame: (f) => {
      frames.push(f.toString('hex'));
      if (stopOnFrame) parser.stop();
    },
    onInvalid: (bytes, reason) => {
      invalid.push([reason, bytes.length]);
      // the wait is over, as in the transport when the invalid frame is from the unit asked
      if (reason !== 'overflow') parser.stop();
    },
  });
  return { parser, frames, invalid, stopOnFrame: (on: boolean) => (stopOnFrame = on) };
}

describe('RtuParser', () => {
  it.each(ROWS)('$name', async (row) => {
    const clock = new FakeClock();
    const r = rig(row.busy ? busyClock(clock) : clock);
    r.stopOnFrame(row.stopOnFrame ?? false);
    if (row.listening !== false) r.parser.listen();
    let discarded = 0;
    for (const [after, bytes] of row.chunks) {
      await clock.advance(after);
      discarded += r.parser.push(bytes);
    }
    expect(r.frames).toEqual(row.frames);
    expect(r.invalid).toEqual(row.invalid);
    expect(discarded).toBe(row.discarded);
  });

  it('a frame left incomplete is invalid once the line has been silent for t1.5', async () => {
    const clock = new FakeClock();
    const r = rig(clock);
    r.parser.listen();
    r.parser.push(a1.subarray(0, 5));
    await clock.advance(INTERVAL - 1);
    await flushMicrotasks();
    expect(r.invalid).toEqual([]);
    await clock.advance(1);
    await flushMicrotasks(); // the check runs after the I/O phase (setImmediate)
    expect(r.invalid).toEqual([['truncated', 5]]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps the time of the last byte, from which the master counts its t3.5', async () => {
    const clock = new FakeClock();
    const r = rig(clock);
    await clock.advance(7);
    r.parser.push(Buffer.from([0]));
    expect(r.parser.lastByteAt).toBe(7);
  });

  it('refuses options that cannot frame anything, naming them', () => {
    const clock = new FakeClock();
    const base = { frameLength: rtuResponseLength, clock, onFrame: () => undefined, onInvalid: () => undefined };
    expect(() => new RtuParser({ ...base, interval: 0 })).toThrow('"interval" is not greater than 0');
    expect(() => new RtuParser({ ...base, interval: 1, maxBufferSize: 2 })).toThrow('"maxBufferSize" is not an integer of at least 4');
  });
});
