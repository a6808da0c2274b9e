// The bus scheduler's bulk priority (firmware blocks), with a fake clock and a scripted line:
// bulk goes after commands and due polls, never takes more than the bus's transferShare of the
// line (after a bulk transaction of d ms the next waits d × (1/share − 1)), polls and commands
// use the gaps, retries are the bus's even for an offline device, and the line time is counted.
import { afterEach, describe, expect, it } from 'vitest';
import { ModbusTimeoutError, encodeRegistersResponse, encodeWriteMultipleRegisters } from '../../edge/drivers/modbus/index.js';
import { BusScheduler, type ScheduledDevice, type SchedulerTiming } from '../../edge/drivers/modbus/scheduler.js';
import { StreetboxError } from '../../edge/errors.js';
import { silentLogger } from '../../edge/log.js';
import { FakeClock, flushMicrotasks } from '../support/fakeClock.js';
import { scheduledDevice } from './helpers/scheduledDevice.js';

type Kind = 'poll' | 'cmd' | 'bulk';

interface Tx {
  kind: Kind;
  unit: number;
  start: number;
  end: number;
  timeoutMs: number;
  /** jobs waiting in the scheduler when it started */
  queued: number;
}

const KIND: Record<number, Kind> = { 3: 'poll', 6: 'cmd', 16: 'bulk' };

/** A line where a poll takes `poll` ms, a command `cmd` ms, a bulk block `bulk` ms; dead units time out. */
class ScriptedLine {
  readonly log: Tx[] = [];
  readonly dead = new Set<number>();
  scheduler: BusScheduler | undefined;
  constructor(
    private readonly clock: FakeClock,
    private readonly ms: Record<Kind, number>,
  ) {}

  transact = (unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> => {
    const kind = KIND[pdu[0]!]!;
    const tx: Tx = { kind, unit, start: this.clock.monotonic(), end: NaN, timeoutMs, queued: this.scheduler?.queued ?? 0 };
    this.log.push(tx);
    const ok = !this.dead.has(unit);
    return new Promise((resolve, reject) => {
      this.clock.setTimeout(
        () => {
          tx.end = this.clock.monotonic();
          if (!ok) reject(new ModbusTimeoutError(`unit ${unit}: no answer`));
          else resolve(kind === 'poll' ? encodeRegistersResponse(3, [unit]) : pdu.subarray(0, 5));
        },
        ok ? this.ms[kind] : timeoutMs,
      );
    });
  };

  of(kind: Kind): Tx[] {
    return this.log.filter((t) => t.kind === kind);
  }
}

const block = (i: number) => encodeWriteMultipleRegisters(112, [i, 0xffff, 0xffff]);
const timing: SchedulerTiming = { timeout: 1000, retries: 1, offlineAfter: 3, probeInterval: 30_000 };

let scheduler: BusScheduler | undefined;
afterEach(() => scheduler?.stop());

async function setup(o: { devices: ScheduledDevice[]; ms: Record<Kind, number>; timing?: SchedulerTiming; onBulk?: (ms: number) => void }) {
  const clock = new FakeClock();
  const line = new ScriptedLine(clock, o.ms);
  scheduler = new BusScheduler({
    busId: 'line1',
    transport: line,
    clock,
    log: silentLogger(),
    timing: o.timing ?? timing,
    ...(o.onBulk ? { onBulk: o.onBulk } : {}),
  });
  line.scheduler = scheduler;
  for (const d of o.devices) scheduler.addDevice(d);
  scheduler.start();
  await flushMicrotasks();
  return { clock, line, scheduler };
}

/** Sends `n` blocks to `deviceId` one after the other, as a transfer does; resolves with the count sent. */
function transfer(s: BusScheduler, deviceId: string, n: number): Promise<number> {
  return s.bulk(deviceId, async (tx) => {
    for (let i = 0; i < n; i++) await tx(block(i));
    return n;
  });
}

/** Every gap between two bulk transactions is at least d × (1/share − 1) of the first one. */
function expectShareBound(line: ScriptedLine, share: number): void {
  const bulks = line.of('bulk');
  expect(bulks.length).toBeGreaterThan(2);
  for (let i = 1; i < bulks.length; i++) {
    const prev = bulks[i - 1]!;
    expect(bulks[i]!.start - prev.end).toBeGreaterThanOrEqual((prev.end - prev.start) * (1 / share - 1) - 1e-9);
  }
}

describe('BusScheduler bulk priority', () => {
  it('a bulk transaction never starts while a poll or a command waits', async () => {
    const { clock, line, scheduler } = await setup({ devices: [scheduledDevice(1, 100), scheduledDevice(2, 100), scheduledDevice(3, 250)], ms: { poll: 20, cmd: 5, bulk: 40 } });
    const done = transfer(scheduler, 'dev3', 200);
    const commands: Promise<Buffer>[] = [];
    for (let t = 0; t < 3000; t += 137) {
      await clock.advance(137);
      commands.push(scheduler.command('dev2', (tx) => tx(Buffer.from([6, 0, 1, 0, t & 0xff]))));
    }
    await clock.advance(20_000);
    await expect(done).resolves.toBe(200);
    await Promise.all(commands);
    expect(line.of('bulk')).toHaveLength(200);
    // what waited when a block went on the line: nothing (the transfer's own next block is not queued yet)
    for (const t of line.of('bulk')) expect(t.queued).toBe(0);
    // and there was contention: polls and commands that waited behind a block went right after it
    const ends = new Set(line.of('bulk').map((t) => t.end));
    expect(line.of('poll').filter((t) => ends.has(t.start)).length).toBeGreaterThan(5);
    expect(line.of('cmd').filter((t) => ends.has(t.start)).length).toBeGreaterThan(0);
    expect(line.of('cmd').length).toBe(commands.length);
  });

  it('polls keep their cycle during a transfer: a due poll waits at most the block in flight', async () => {
    const { clock, line, scheduler } = await setup({
      devices: [scheduledDevice(1, 100), scheduledDevice(2, 100), scheduledDevice(3, 1000)],
      ms: { poll: 15, cmd: 5, bulk: 50 },
      timing: { ...timing, transferShare: 0.9 },
    });
    await clock.advance(1000);
    const before = line.of('poll').filter((t) => t.unit === 1).length;
    const done = transfer(scheduler, 'dev3', 100);
    await clock.advance(1000);
    const during = line.of('poll').filter((t) => t.unit === 1 && t.start >= 1000 && t.start < 2000);
    expect(during.length).toBeGreaterThanOrEqual(before - 1);
    // cycle of dev1: starts at most one poll of dev2 + one block late
    for (let i = 1; i < during.length; i++) expect(during[i]!.start - during[i - 1]!.start).toBeLessThanOrEqual(100 + 15 + 50);
    expect(scheduler.state('dev1')!.cycleMs!).toBeLessThanOrEqual(165);
    await clock.advance(20_000);
    await expect(done).resolves.toBe(100);
  });

  it.each([0.9, 0.5, 0.2, 0.05])('share %f: the gaps after each block hold, and polls and commands use them', async (share) => {
    const { clock, line, scheduler } = await setup({
      devices: [scheduledDevice(1, 30), scheduledDevice(2, 1_000_000)],
      ms: { poll: 10, cmd: 5, bulk: 100 },
      timing: { ...timing, transferShare: share },
    });
    const done = transfer(scheduler, 'dev2', 30);
    await clock.advance(150); // a block in flight or a gap: the command goes next either way
    const cmd = scheduler.command('dev1', (tx) => tx(Buffer.from([6, 0, 1, 0, 1])));
    await clock.advance(100 * 30 * (1 / share) + 1000);
    await expect(done).resolves.toBe(30);
    await cmd;
    expectShareBound(line, share);
    const bulks = line.of('bulk');
    const first = bulks[0]!.start;
    const lastBulk = bulks.at(-1)!;
    const last = lastBulk.end;
    // over the blocks and the gap each leaves (the last one's included), bulk holds at most its share
    const busy = bulks.reduce((s, t) => s + (t.end - t.start), 0);
    expect(busy / (last + (lastBulk.end - lastBulk.start) * (1 / share - 1) - first)).toBeLessThanOrEqual(share + 1e-9);
    // polls went on between the blocks, and the command too
    expect(line.of('poll').filter((t) => t.start > first && t.start < last).length).toBeGreaterThan(10);
    expect(line.of('cmd')).toHaveLength(1);
    expect(scheduler.bulkUsage).toEqual({ transactions: 30, lineMs: 3000 });
  });

  it('share 1: blocks back to back when nothing else waits', async () => {
    const { clock, line, scheduler } = await setup({ devices: [scheduledDevice(1, 1_000_000)], ms: { poll: 10, cmd: 5, bulk: 100 }, timing: { ...timing, transferShare: 1 } });
    await clock.advance(100);
    const done = transfer(scheduler, 'dev1', 10);
    await clock.advance(1000);
    await expect(done).resolves.toBe(10);
    const bulks = line.of('bulk');
    expect(bulks[0]!.start).toBe(100);
    expect(bulks.at(-1)!.end).toBe(1100);
  });

  it('counts line time and transactions (retries and timeouts included) and tells onBulk', async () => {
    const told: number[] = [];
    const { clock, line, scheduler } = await setup({
      devices: [scheduledDevice(1, 1_000_000), scheduledDevice(2, 1_000_000)],
      ms: { poll: 10, cmd: 5, bulk: 100 },
      timing: { ...timing, retries: 2, transferShare: 0.5 },
      onBulk: (ms) => told.push(ms),
    });
    await clock.advance(100);
    line.dead.add(2);
    const failed = transfer(scheduler, 'dev2', 1);
    const caught = failed.catch((e: unknown) => e);
    await clock.advance(20_000);
    expect(await caught).toBeInstanceOf(ModbusTimeoutError);
    // the bus's retries with its full timeout, even to a device that does not answer
    const tries = line.of('bulk');
    expect(tries.map((t) => t.timeoutMs)).toEqual([1000, 1000, 1000]);
    // the share holds after failed blocks too
    expectShareBound(line, 0.5);
    line.dead.delete(2);
    const ok = transfer(scheduler, 'dev1', 2);
    await clock.advance(20_000);
    await ok;
    expect(told).toEqual([1000, 1000, 1000, 100, 100]);
    expect(scheduler.bulkUsage).toEqual({ transactions: 5, lineMs: 3200 });
  });

  it('a bulk transfer to an offline device still goes (the engine decides when to stop)', async () => {
    const { clock, line, scheduler } = await setup({ devices: [scheduledDevice(1, 100)], ms: { poll: 10, cmd: 5, bulk: 50 }, timing: { ...timing, retries: 0, offlineAfter: 1 } });
    line.dead.add(1);
    await clock.advance(2000);
    expect(scheduler.state('dev1')!.online).toBe(false);
    line.dead.delete(1);
    const done = transfer(scheduler, 'dev1', 3);
    await clock.advance(2000);
    await expect(done).resolves.toBe(3);
    expect(line.of('bulk').map((t) => t.timeoutMs)).toEqual([1000, 1000, 1000]);
  });

  it('stop() rejects blocks waiting out their gap, and leaves no timer', async () => {
    const { clock, scheduler } = await setup({ devices: [scheduledDevice(1, 1_000_000)], ms: { poll: 10, cmd: 5, bulk: 100 }, timing: { ...timing, transferShare: 0.05 } });
    await clock.advance(100);
    const done = transfer(scheduler, 'dev1', 5).catch((e: unknown) => e);
    await clock.advance(150); // the first block is done; the second waits 1900 ms
    scheduler.stop();
    await flushMicrotasks();
    expect(await done).toMatchObject({ code: 'E_MODBUS_TRANSPORT', message: expect.stringMatching(/stopped/) });
    await clock.advance(5000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses a transferShare outside 0.05..1, naming it', () => {
    const make = (share: number) =>
      new BusScheduler({ busId: 'b', transport: { transact: () => Promise.reject(new Error('no')) }, clock: new FakeClock(), log: silentLogger(), timing: { ...timing, transferShare: share } });
    expect(() => make(0.01)).toThrow(StreetboxError);
    expect(() => make(1.5)).toThrow(/"transferShare" is not within 0.05..1/);
    expect(() => make(0.05)).not.toThrow();
  });

  it('bulk() for an unknown device rejects', async () => {
    const { scheduler } = await setup({ devices: [], ms: { poll: 10, cmd: 5, bulk: 100 } });
    await expect(transfer(scheduler, 'nope', 1)).rejects.toThrow(/no device "nope"/);
  });
});
