// The bus scheduler with a fake clock and a scripted line: one transaction in flight, fair
// polling by due time, commands ahead of polls, retry/backoff, offline after N failures with
// slow probing that never slows the other devices, and restoration.
import { afterEach, describe, expect, it } from 'vitest';
import { ModbusTimeoutError, encodeRegistersResponse } from '../../edge/drivers/modbus/index.js';
import { BusScheduler, PROBE_TIMEOUT_MS, type ScheduledDevice, type SchedulerTiming } from '../../edge/drivers/modbus/scheduler.js';
import { silentLogger } from '../../edge/log.js';
import { FakeClock, flushMicrotasks } from '../support/fakeClock.js';
import { scheduledDevice } from './helpers/scheduledDevice.js';

interface Tx {
  at: number;
  unit: number;
  kind: 'poll' | 'cmd';
  timeoutMs: number;
  ok: boolean;
}

/** A line where each unit answers after `latency` ms, or never (dead units time out). */
class ScriptedLine {
  readonly log: Tx[] = [];
  readonly dead = new Set<number>();
  inFlight = 0;
  maxInFlight = 0;
  constructor(
    private readonly clock: FakeClock,
    private readonly latency = 10,
  ) {}

  transact = (unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> => {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const ok = !this.dead.has(unit);
    this.log.push({ at: this.clock.monotonic(), unit, kind: pdu[0] === 6 ? 'cmd' : 'poll', timeoutMs, ok });
    return new Promise((resolve, reject) => {
      this.clock.setTimeout(
        () => {
          this.inFlight--;
          if (ok) resolve(pdu[0] === 6 ? pdu : encodeRegistersResponse(3, [unit]));
          else reject(new ModbusTimeoutError(`unit ${unit}: no answer`));
        },
        ok ? this.latency : timeoutMs,
      );
    });
  };

  polls(unit: number, from = 0, to = Infinity): Tx[] {
    return this.log.filter((t) => t.unit === unit && t.kind === 'poll' && t.at >= from && t.at < to);
  }
}

const timing: SchedulerTiming = { timeout: 1000, retries: 1, offlineAfter: 3, probeInterval: 30_000 };
let scheduler: BusScheduler | undefined;
afterEach(() => scheduler?.stop());

async function setup(devices: ScheduledDevice[], t: SchedulerTiming = timing, latency = 10, dead: number[] = []) {
  const clock = new FakeClock();
  const line = new ScriptedLine(clock, latency);
  for (const u of dead) line.dead.add(u);
  const events: string[] = [];
  scheduler = new BusScheduler({
    busId: 'line1',
    transport: line,
    clock,
    log: silentLogger(),
    timing: t,
    hooks: {
      onPollFailed: (d, _e, n) => events.push(`${clock.monotonic()} failed ${d.id} ${n}`),
      onLost: (d) => events.push(`${clock.monotonic()} lost ${d.id}`),
      onRestored: (d) => events.push(`${clock.monotonic()} restored ${d.id}`),
    },
  });
  for (const d of devices) scheduler.addDevice(d);
  scheduler.start();
  await flushMicrotasks(); // the first polls are due now: let them reach the line at t = 0
  return { clock, line, events, scheduler };
}

describe('BusScheduler', () => {
  it('polls every device at its interval, one transaction in flight', async () => {
    const { clock, line } = await setup([scheduledDevice(1, 1000), scheduledDevice(2, 500)]);
    await clock.advance(10_000);
    expect(line.maxInFlight).toBe(1);
    expect(line.polls(1).length).toBeGreaterThanOrEqual(10);
    expect(line.polls(1).length).toBeLessThanOrEqual(11);
    expect(line.polls(2).length).toBeGreaterThanOrEqual(20);
    expect(line.polls(2).length).toBeLessThanOrEqual(21);
  });

  it('takes turns by due time when the line is saturated', async () => {
    // 3 devices want a poll every 100 ms, each transaction takes 100 ms: the line can serve
    // one poll per 100 ms, so each device gets a third of them, in rotation.
    const { clock, line } = await setup([scheduledDevice(1, 100), scheduledDevice(2, 100), scheduledDevice(3, 100)], timing, 100);
    await clock.advance(9000);
    const counts = [1, 2, 3].map((u) => line.polls(u).length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    const order = line.log.slice(3, 30).map((t) => t.unit);
    for (let i = 3; i < order.length; i++) expect(order[i]).toBe(order[i - 3]);
  });

  it('a command goes ahead of every queued poll', async () => {
    const { clock, line, scheduler } = await setup([scheduledDevice(1, 0), scheduledDevice(2, 0), scheduledDevice(3, 0)], timing, 100);
    await clock.advance(50); // a poll is in flight, the others are queued
    const before = line.log.length;
    const done = scheduler.command('dev3', (tx) => tx(Buffer.from([6, 0, 1, 0, 42])));
    await clock.advance(100); // the poll in flight ends; the command is next
    expect(line.log[before]).toMatchObject({ unit: 3, kind: 'cmd' });
    await clock.advance(100);
    await expect(done).resolves.toEqual(Buffer.from([6, 0, 1, 0, 42]));
    expect(line.maxInFlight).toBe(1);
  });

  it('retries a failed transaction after a backoff, letting other devices in between', async () => {
    const { clock, line } = await setup([scheduledDevice(1, 1000), scheduledDevice(2, 1000)], { ...timing, retries: 2 }, 10, [1]);
    await clock.advance(900);
    const d1 = line.polls(1);
    // first attempt at 0, then retries after 1000 ms timeout + 50 ms, + 100 ms backoff
    expect(d1.length).toBe(1);
    await clock.advance(2500);
    const tries = line.polls(1, 0, 3400).map((t) => t.at);
    expect(tries.slice(0, 3)).toEqual([0, 1050, 2150]);
    // device 2 kept its own 1000 ms cycle meanwhile (its polls sat between the retries)
    expect(line.polls(2, 0, 3400).length).toBeGreaterThanOrEqual(3);
  });

  it('goes offline after offlineAfter failed polls, then probes only every probeInterval with one short attempt', async () => {
    const { clock, line, events, scheduler } = await setup([scheduledDevice(1, 1000), scheduledDevice(2, 1000)]);
    line.dead.add(1);
    await clock.advance(20_000);
    // Polls 1, 2, 3 fail (each: two attempts of 1000 ms), with backoff 1000, 2000 ms between them.
    const lost = events.find((e) => e.endsWith('lost dev1'));
    expect(lost).toBeDefined();
    expect(events.filter((e) => e.includes('failed dev1')).map((e) => e.split(' ').pop())).toEqual(['1', '2', '3']);
    expect(scheduler.state('dev1')).toMatchObject({ online: false, consecutiveFailures: 3 });
    const lostAt = Number(lost!.split(' ')[0]);

    await clock.advance(120_000);
    const probes = line.polls(1, lostAt + 1);
    expect(probes.length).toBe(4);
    for (const p of probes) expect(p.timeoutMs).toBe(PROBE_TIMEOUT_MS);
    const gaps = probes.slice(1).map((p, i) => p.at - probes[i]!.at);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(30_000);

    // the healthy device kept its cycle: one poll per second (±1) over the two minutes
    const healthy = line.polls(2, lostAt + 1, lostAt + 120_001).length;
    expect(healthy).toBeGreaterThanOrEqual(119);
    expect(healthy).toBeLessThanOrEqual(121);
    expect(events.filter((e) => e.includes('failed dev1'))).toHaveLength(3); // probes are not counted as failed polls
  });

  it('backs off exponentially between failed polls before going offline', async () => {
    const { clock, line } = await setup([scheduledDevice(1, 1000)], { ...timing, retries: 0, offlineAfter: 5 }, 10, [1]);
    await clock.advance(40_000);
    const starts = line.polls(1).slice(0, 5).map((t) => t.at);
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    // each attempt times out after 1000 ms, then waits 1000 × 2^(n-1)
    expect(gaps).toEqual([2000, 3000, 5000, 9000]);
  });

  it('reports restored when an offline device answers its probe, and polls it again at once', async () => {
    const { clock, line, events, scheduler } = await setup([scheduledDevice(1, 1000)]);
    line.dead.add(1);
    await clock.advance(15_000);
    expect(scheduler.state('dev1')?.online).toBe(false);
    line.dead.delete(1);
    await clock.advance(40_000);
    const restored = events.find((e) => e.endsWith('restored dev1'));
    expect(restored).toBeDefined();
    const at = Number(restored!.split(' ')[0]);
    const after = line.polls(1, at);
    expect(after[0]!.at - at).toBeLessThan(5);
    expect(after.length).toBeGreaterThanOrEqual(Math.floor((55_000 - at) / 1000) - 1);
    expect(scheduler.state('dev1')).toMatchObject({ online: true, consecutiveFailures: 0 });
  });

  it('a command to an offline device is one short attempt; an answer brings it back', async () => {
    const { clock, line, events, scheduler } = await setup([scheduledDevice(1, 1000)]);
    line.dead.add(1);
    await clock.advance(15_000);
    expect(scheduler.state('dev1')?.online).toBe(false);
    const failed = scheduler.command('dev1', (tx) => tx(Buffer.from([6, 0, 1, 0, 1])));
    failed.catch(() => undefined);
    await clock.advance(PROBE_TIMEOUT_MS + 1);
    await expect(failed).rejects.toThrow(ModbusTimeoutError);
    expect(line.log.at(-1)).toMatchObject({ kind: 'cmd', timeoutMs: PROBE_TIMEOUT_MS });
    line.dead.delete(1);
    const ok = scheduler.command('dev1', (tx) => tx(Buffer.from([6, 0, 1, 0, 1])));
    await clock.advance(20);
    await ok;
    expect(events.at(-1)).toMatch(/restored dev1$/);
    const at = clock.monotonic();
    await clock.advance(3000);
    expect(line.polls(1, at).length).toBeGreaterThanOrEqual(3);
  });

  it('stop rejects queued work and ends the loops', async () => {
    const { clock, scheduler } = await setup([scheduledDevice(1, 0), scheduledDevice(2, 0)], timing, 100);
    await clock.advance(10);
    const pending = scheduler.command('dev2', (tx) => tx(Buffer.from([6, 0, 1, 0, 1])));
    scheduler.stop();
    await expect(pending).rejects.toThrow(/stopped/);
    await clock.advance(1000);
  });
});
