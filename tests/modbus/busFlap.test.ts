// A flapping bus, on a fake clock: a serial port that opens and closes again at once (a peer
// that accepts and drops). The connection retries it with growing delays (its backoff is reset
// only by a channel that stayed open STABLE_MS), the driver keeps it reported lost until it has
// stayed open that long, and 'modbus bus lost' is logged at most once a minute with the count
// left out; so five minutes of flapping make a handful of log lines and one component change,
// not thousands. When the port stays open, the component is running again after STABLE_MS.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { ComponentStateChange } from '../../edge/bus.js';
import { createModbusDriver } from '../../edge/drivers/modbus/index.js';
import type { SerialLike } from '../../edge/drivers/modbus/transport/rtu.js';
import { STABLE_MS } from '../../edge/drivers/modbus/transport/connection.js';
import { createLogger } from '../../edge/log.js';
import { Supervisor } from '../../edge/supervisor.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { FakeClock } from '../support/fakeClock.js';

interface Line {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A serial port that opens, and closes by itself right after while `flapping` says so. */
function fakePorts(clock: FakeClock) {
  const opens: number[] = [];
  const state = { flapping: true, current: undefined as FakePort | undefined };
  class FakePort implements SerialLike {
    isOpen = false;
    private handlers = new Map<string, ((...args: never[]) => void)[]>();
    open(cb: (err: Error | null) => void): void {
      opens.push(clock.monotonic());
      this.isOpen = true;
      state.current = this;
      cb(null);
      if (state.flapping) setImmediate(() => this.drop());
    }
    drop(): void {
      if (!this.isOpen) return;
      this.isOpen = false;
      for (const fn of this.handlers.get('close') ?? []) fn();
    }
    close(cb?: (err: Error | null) => void): void {
      this.isOpen = false;
      cb?.(null);
    }
    write(_data: Buffer, cb?: (err: Error | null | undefined) => void): boolean {
      cb?.(null);
      return true;
    }
    on(event: string, fn: (...args: never[]) => void): unknown {
      this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
      return this;
    }
    removeAllListeners(): unknown {
      this.handlers.clear();
      return this;
    }
  }
  return { opens, state, createPort: () => new FakePort() };
}

let t: TestContext | undefined;
let supervisor: Supervisor | undefined;
afterEach(async () => {
  await supervisor?.stopAll();
  await t?.close();
  supervisor = undefined;
  t = undefined;
});

describe('a flapping bus', () => {
  it('is retried with growing delays and logged a bounded number of times; running again once it stays open', async () => {
    const clock = new FakeClock();
    const lines: Line[] = [];
    const log = createLogger({
      level: 'info',
      format: 'json',
      destination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Line);
          cb();
        },
      }),
    });
    t = makeContext({ buses: [{ id: 'rs485-1', type: 'serial', path: '/dev/ttyFAKE', baud: 9600, parity: 'none' }], devices: [] }, { log });
    const ctx = { ...t.ctx, clock, log };
    const ports = fakePorts(clock);
    const changes: ComponentStateChange[] = [];
    ctx.bus.on('test', 'component', (c) => {
      if (c.name === 'modbus') changes.push(c);
    });
    supervisor = new Supervisor({ log, bus: ctx.bus, clock });
    supervisor.add(createModbusDriver(ctx, { rtu: { createPort: ports.createPort } }));
    await supervisor.startAll();
    await clock.advance(0); // the first open, and its loss, at 0
    const modbus = () => supervisor!.status().find((s) => s.name === 'modbus')!;
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;

    // five minutes of a port that closes as soon as it is open
    for (let s = 0; s < 300; s++) await clock.advance(1000);

    const gaps = ports.opens.slice(1).map((at, i) => at - ports.opens[i]!);
    expect(gaps.slice(0, 7)).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000]);
    expect(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!)).toBe(true);
    expect(ports.opens.length).toBe(15);
    expect(modbus()).toMatchObject({ state: 'degraded', restarts: 0, failures: 0 });
    expect(modbus().lastError).toMatch(/serial port \/dev\/ttyFAKE closed/);
    // one degraded report for the whole flapping, never running in between
    expect(changes.map((c) => c.state).filter((s) => s !== 'starting' && s !== 'running')).toEqual(['degraded']);
    expect(changes.at(-1)!.state).toBe('degraded');
    expect(count('component degraded; it restores what it lost by itself')).toBe(1);
    expect(count('component recovered')).toBe(0);
    // 'bus lost' once a minute at most (at 0, 61.5, 121.5, 181.5, 241.5 s), with the flaps left out counted
    const lost = lines.filter((l) => l.msg === 'modbus bus lost');
    expect(lost.length).toBe(5);
    expect(lost.slice(1).map((l) => l.suppressed)).toEqual([6, 1, 1, 1]);
    expect(count('modbus rtu port open')).toBe(ports.opens.length);
    expect(lines.length).toBeLessThan(30);

    // the peer stops dropping: the next open stays, and STABLE_MS later the component is running
    ports.state.flapping = false;
    const openedBefore = ports.opens.length;
    for (let i = 0; i < 310 && ports.opens.length === openedBefore; i++) await clock.advance(100);
    expect(ports.opens.length).toBe(openedBefore + 1);
    const back = ports.opens.at(-1)!;
    expect(modbus().state).toBe('degraded');
    await clock.advance(back + STABLE_MS - clock.monotonic() - 1);
    expect(modbus().state).toBe('degraded');
    await clock.advance(1);
    expect(modbus().state).toBe('running');
    expect(count('component recovered')).toBe(1);
    expect(changes.at(-1)!.state).toBe('running');

    // lost after it stayed open: reopened after the first delay again
    ports.state.current!.drop();
    await clock.advance(0);
    expect(modbus().state).toBe('degraded');
    await clock.advance(500);
    expect(ports.opens.at(-1)! - ports.opens.at(-2)!).toBeGreaterThanOrEqual(STABLE_MS);
    expect(ports.opens.at(-1)).toBe(clock.monotonic());
    expect(modbus()).toMatchObject({ restarts: 0, failures: 0 });
  });
});
