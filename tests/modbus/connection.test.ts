// The lifecycle of a bus connection (transport/connection.ts), once for both transports, with a
// fake clock and a scripted channel: reopen with doubling backoff, reset by a channel that stayed
// open STABLE_MS (not by one that is lost at once: a flapping peer), a loss reported and
// reopened, close cancelling everything. The real RTU and TCP transports
// run through it in rtu.pty.test.ts, driver.tcp.test.ts and busLoss.test.ts.
import { describe, expect, it } from 'vitest';
import { BusConnection, STABLE_MS } from '../../edge/drivers/modbus/transport/connection.js';
import type { TransportState } from '../../edge/drivers/modbus/transport/types.js';
import { silentLogger } from '../../edge/log.js';
import { Series } from '../../edge/metrics.js';
import { FakeClock } from '../support/fakeClock.js';

interface Channel {
  id: number;
  lost: (reason: string) => void;
  closed: boolean;
}

function rig(failFirst: number) {
  const clock = new FakeClock();
  const attempts: number[] = [];
  const states: string[] = [];
  let failures = failFirst;
  let next = 1;
  const connects = new Series();
  const conn = new BusConnection<Channel>({
    busId: 'b1',
    clock,
    log: silentLogger(),
    notOpen: 'not connected',
    opened: { message: 'open', fields: {} },
    connects,
    open: async (lost) => {
      attempts.push(clock.monotonic());
      if (failures > 0) {
        failures--;
        throw new Error('refused');
      }
      return { id: next++, lost, closed: false };
    },
    close: async (ch) => {
      ch.closed = true;
    },
    onState: (s: TransportState, err?: string) => states.push(err ? `${s}: ${err}` : s),
  });
  return { clock, conn, attempts, states, connects, fail: (n: number) => (failures = n) };
}

describe('BusConnection', () => {
  it('reopens with doubling backoff until it opens, and starts over once it stayed open', async () => {
    const r = rig(3);
    r.conn.start();
    await r.clock.advance(0);
    await r.clock.advance(500 + 1000 + 2000);
    expect(r.attempts).toEqual([0, 500, 1500, 3500]);
    expect(r.conn.state).toBe('connected');
    expect(r.connects.value).toBe(1);
    // lost after STABLE_MS open: reopened after the first delay again
    await r.clock.advance(STABLE_MS);
    r.fail(1);
    r.conn.channel!.lost('peer gone');
    expect(r.conn.state).toBe('degraded');
    expect(r.conn.lastError).toBe('peer gone');
    await expect(r.conn.ready()).rejects.toThrow('bus "b1": not connected (peer gone)');
    await r.clock.advance(500);
    expect(r.attempts.at(-1)).toBe(3500 + STABLE_MS + 500);
    await r.clock.advance(1000);
    expect(r.conn.channel?.id).toBe(2);
    expect(r.states).toEqual([
      'connecting',
      'degraded: refused',
      'connecting',
      'degraded: refused',
      'connecting',
      'degraded: refused',
      'connecting',
      'connected',
      'degraded: peer gone',
      'connecting',
      'degraded: refused',
      'connecting',
      'connected',
    ]);
    await r.conn.close();
    expect(r.clock.pendingTimers).toBe(0);
  });

  it('a channel lost soon after it opened (a flapping peer) is reopened with growing delays', async () => {
    const r = rig(0);
    r.conn.start();
    await r.clock.advance(0);
    for (let i = 0; i < 8; i++) {
      await r.clock.advance(1000);
      // open for a second, then dropped: the delays go on growing
      r.conn.channel!.lost('dropped');
      while (r.conn.channel === undefined) await r.clock.advance(100);
    }
    const gaps = r.attempts.slice(1).map((at, i) => at - r.attempts[i]!);
    // (each gap: a second open, then the delay)
    expect(gaps).toEqual([1500, 2000, 3000, 5000, 9000, 17_000, 31_000, 31_000]);
    expect(r.connects.value).toBe(9);
    await r.conn.close();
    expect(r.clock.pendingTimers).toBe(0);
  });

  it('close cancels the reopen, closes the channel and ignores its late loss', async () => {
    const r = rig(0);
    r.conn.start();
    await r.clock.advance(0);
    const ch = r.conn.channel!;
    await r.conn.close();
    expect(ch.closed).toBe(true);
    ch.lost('closed by us');
    expect(r.conn.state).toBe('closed');
    await r.clock.advance(60_000);
    expect(r.attempts).toEqual([0]);
    expect(r.clock.pendingTimers).toBe(0);
  });

  it('a channel that opens after close() is closed at once', async () => {
    const r = rig(0);
    const opening = r.conn.connect();
    await r.conn.close();
    await expect(opening).rejects.toThrow('bus "b1": closed while opening');
    expect(r.conn.state).toBe('closed');
    expect(r.conn.channel).toBeUndefined();
  });

  it('ready() waits for an open under way', async () => {
    const r = rig(0);
    r.conn.start();
    const ch = await r.conn.ready();
    expect(ch.id).toBe(1);
    await r.conn.close();
  });
});
