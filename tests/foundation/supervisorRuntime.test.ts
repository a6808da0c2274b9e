/**
 * The supervised set changing while the gateway runs (a configuration applied live, issue 16):
 * restartNow (a planned restart), insert at a position, remove. They must keep the start order,
 * never start a component twice or overlap its start and stop, and be safe against a pending
 * backoff restart, a start under way and a supervisor that is stopping.
 */
import { describe, expect, it } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import type { Component } from '../../edge/component.js';
import { StreetboxError } from '../../edge/errors.js';
import { silentLogger } from '../../edge/log.js';
import { Supervisor } from '../../edge/supervisor.js';
import { FakeClock, flushMicrotasks } from '../support/fakeClock.js';

interface Fake extends Component {
  /** starts that are left to fail */
  failStarts: number;
  /** while set, start() waits for release() */
  gate: { promise: Promise<void>; release: () => void } | null;
  /** a stop that never ends */
  hangStop: boolean;
  /** set when a start or stop began while another was under way, or a start while running */
  overlap: string | null;
}

function gate(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

/** A component that records what happens to it, and notices a double start or an overlap. */
function fake(log: string[], name: string): Fake {
  let busy = false;
  let running = false;
  const c: Fake = {
    name,
    failStarts: 0,
    gate: null,
    hangStop: false,
    overlap: null,
    async start() {
      log.push(`start ${name}`);
      if (busy) c.overlap = `start of ${name} while busy`;
      if (running) c.overlap = `start of ${name} while running`;
      busy = true;
      try {
        if (c.gate) await c.gate.promise;
        if (c.failStarts > 0) {
          c.failStarts--;
          throw new Error(`${name} cannot start`);
        }
        running = true;
      } finally {
        busy = false;
      }
    },
    async stop() {
      log.push(`stop ${name}`);
      if (busy) c.overlap = `stop of ${name} while busy`;
      running = false;
      if (c.hangStop) await new Promise<void>(() => undefined);
    },
  };
  return c;
}

function setup(opts: { stopTimeoutMs?: number } = {}) {
  const clock = new FakeClock();
  const bus = new EventBus();
  const sup = new Supervisor({ log: silentLogger(), bus, clock, initialBackoffMs: 1000, maxBackoffMs: 8000, stopTimeoutMs: opts.stopTimeoutMs ?? 10_000 });
  const changes: string[] = [];
  bus.on('test', 'component', (c) => changes.push(`${c.name} ${c.state}`));
  const log: string[] = [];
  const state = (name: string) => sup.status().find((s) => s.name === name);
  return { clock, bus, sup, log, changes, state };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe('Supervisor: insert', () => {
  it('starts an inserted component at once, at its position, and stops it in reverse order', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'store'));
    sup.add(fake(log, 'modbus'));
    await sup.startAll();
    await sup.insert(fake(log, 'modbus-sim:A'), { before: 'modbus' });
    await sup.insert(fake(log, 'api'));
    expect(sup.status().map((s) => [s.name, s.state])).toEqual([
      ['store', 'running'],
      ['modbus-sim:A', 'running'],
      ['modbus', 'running'],
      ['api', 'running'],
    ]);
    await sup.stopAll();
    expect(log).toEqual(['start store', 'start modbus', 'start modbus-sim:A', 'start api', 'stop api', 'stop modbus', 'stop modbus-sim:A', 'stop store']);
  });

  it('only adds a component before startAll, which then starts it once, in order', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'a'));
    sup.add(fake(log, 'c'));
    await sup.insert(fake(log, 'b'), { before: 'c' });
    expect(log).toEqual([]);
    await sup.startAll();
    expect(log).toEqual(['start a', 'start b', 'start c']);
    await sup.stopAll();
  });

  it('refuses a name already supervised and an unknown position, changing nothing', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'a'));
    await sup.startAll();
    const dup = await rejection(sup.insert(fake(log, 'a')));
    expect(dup).toBeInstanceOf(StreetboxError);
    expect((dup as StreetboxError).code).toBe('E_COMPONENT');
    const where = await rejection(sup.insert(fake(log, 'b'), { before: 'nope' }));
    expect((where as StreetboxError).code).toBe('E_NOT_FOUND');
    expect(sup.status().map((s) => s.name)).toEqual(['a']);
    expect(log).toEqual(['start a']);
    await sup.stopAll();
  });

  it('leaves a component inserted whose start fails degraded, and retries it with backoff', async () => {
    const { sup, log, clock, state } = setup();
    await sup.startAll();
    const flaky = fake(log, 'flaky');
    flaky.failStarts = 1;
    await sup.insert(flaky);
    expect(state('flaky')).toMatchObject({ state: 'degraded', failures: 1, lastError: 'flaky cannot start' });
    await clock.advance(1000);
    expect(state('flaky')).toMatchObject({ state: 'running', restarts: 1 });
    await sup.stopAll();
  });

  it('does not start twice a component inserted while startAll is still starting the others', async () => {
    const { sup, log } = setup();
    const slow = fake(log, 'slow');
    slow.gate = gate();
    sup.add(slow);
    sup.add(fake(log, 'last'));
    const starting = sup.startAll();
    await flushMicrotasks();
    await sup.insert(fake(log, 'new'), { before: 'last' });
    slow.gate.release();
    await starting;
    expect(log).toEqual(['start slow', 'start new', 'start last']);
    expect(sup.status().map((s) => s.state)).toEqual(['running', 'running', 'running']);
    await sup.stopAll();
  });
});

describe('Supervisor: restartNow', () => {
  it('stops and starts a running component, announcing its states, without counting a failure or a restart', async () => {
    const { sup, log, changes, state } = setup();
    sup.add(fake(log, 'a'));
    sup.add(fake(log, 'modbus'));
    await sup.startAll();
    changes.length = 0;
    await sup.restartNow('modbus');
    expect(log).toEqual(['start a', 'start modbus', 'stop modbus', 'start modbus']);
    expect(changes).toEqual(['modbus stopping', 'modbus stopped', 'modbus starting', 'modbus running']);
    expect(state('modbus')).toMatchObject({ state: 'running', failures: 0, restarts: 0 });
    expect(sup.status().map((s) => s.name)).toEqual(['a', 'modbus']);
    await sup.stopAll();
  });

  it('restarts a degraded component now and cancels its pending backoff restart', async () => {
    const { sup, log, clock, state } = setup();
    const flaky = fake(log, 'flaky');
    flaky.failStarts = 1;
    sup.add(flaky);
    await sup.startAll();
    expect(state('flaky')!.state).toBe('degraded');
    expect(clock.pendingTimers).toBe(1);
    await sup.restartNow('flaky');
    expect(state('flaky')).toMatchObject({ state: 'running', failures: 1 });
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(60_000);
    expect(log).toEqual(['start flaky', 'stop flaky', 'start flaky']);
    expect(flaky.overlap).toBeNull();
    await sup.stopAll();
  });

  it('resolves when the planned start fails, leaving it degraded and retried with a fresh backoff', async () => {
    const { sup, log, clock, state } = setup();
    const c = fake(log, 'c');
    sup.add(c);
    await sup.startAll();
    c.failStarts = 1;
    await sup.restartNow('c');
    expect(state('c')).toMatchObject({ state: 'degraded', failures: 1, lastError: 'c cannot start' });
    await clock.advance(1000);
    expect(state('c')!.state).toBe('running');
    expect(log).toEqual(['start c', 'stop c', 'start c', 'stop c', 'start c']);
    await sup.stopAll();
  });

  it('waits for a start under way instead of starting the component twice', async () => {
    const { sup, log, state } = setup();
    const slow = fake(log, 'slow');
    sup.add(slow);
    await sup.startAll();
    slow.failStarts = 1;
    // a backoff restart is due; its start hangs until released
    await sup.restartNow('slow');
    slow.gate = gate();
    const first = sup.restartNow('slow');
    const second = sup.restartNow('slow');
    await flushMicrotasks();
    expect(log.filter((l) => l === 'start slow')).toHaveLength(3);
    slow.gate.release();
    slow.gate = null;
    await Promise.all([first, second]);
    expect(slow.overlap).toBeNull();
    expect(log).toEqual(['start slow', 'stop slow', 'start slow', 'stop slow', 'start slow', 'stop slow', 'start slow']);
    expect(state('slow')!.state).toBe('running');
    await sup.stopAll();
  });

  it('throws E_NOT_FOUND for an unknown component', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'a'));
    await sup.startAll();
    const err = await rejection(sup.restartNow('nope'));
    expect(err).toBeInstanceOf(StreetboxError);
    expect((err as StreetboxError).code).toBe('E_NOT_FOUND');
    expect((err as Error).message).toContain('a');
    await sup.stopAll();
  });

  it('does nothing before startAll: the component reads its configuration when it starts', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'a'));
    await sup.restartNow('a');
    expect(log).toEqual([]);
    await sup.startAll();
    expect(log).toEqual(['start a']);
    await sup.stopAll();
  });
});

describe('Supervisor: remove', () => {
  it('stops a component and takes it out of the set and of status()', async () => {
    const { sup, log, changes } = setup();
    sup.add(fake(log, 'a'));
    sup.add(fake(log, 'b'));
    sup.add(fake(log, 'c'));
    await sup.startAll();
    await sup.remove('b');
    expect(sup.has('b')).toBe(false);
    expect(sup.has('a')).toBe(true);
    expect(sup.status().map((s) => s.name)).toEqual(['a', 'c']);
    expect(changes.slice(-2)).toEqual(['b stopping', 'b stopped']);
    await sup.stopAll();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop b', 'stop c', 'stop a']);
  });

  it('cancels a pending backoff restart: the removed component never starts again', async () => {
    const { sup, log, clock, bus } = setup();
    sup.add(fake(log, 'a'));
    await sup.startAll();
    bus.emit('component', { name: 'a', state: 'degraded', error: 'lost its socket' });
    expect(clock.pendingTimers).toBe(1);
    await sup.remove('a');
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(60_000);
    expect(log).toEqual(['start a', 'stop a']);
    expect(sup.status()).toEqual([]);
    await sup.stopAll();
  });

  it('waits for a start under way, then stops it; a failing start is not retried', async () => {
    const { sup, log, clock } = setup();
    const slow = fake(log, 'slow');
    slow.gate = gate();
    slow.failStarts = 1;
    sup.add(slow);
    const starting = sup.startAll();
    await flushMicrotasks();
    const removing = sup.remove('slow');
    await flushMicrotasks();
    expect(log).toEqual(['start slow']);
    slow.gate.release();
    await Promise.all([starting, removing]);
    expect(log).toEqual(['start slow', 'stop slow']);
    expect(slow.overlap).toBeNull();
    await clock.advance(60_000);
    expect(log).toEqual(['start slow', 'stop slow']);
    await sup.stopAll();
  });

  it('abandons a stop that hangs after stopTimeoutMs', async () => {
    const { sup, log } = setup({ stopTimeoutMs: 30 });
    const hang = fake(log, 'hang');
    hang.hangStop = true;
    sup.add(hang);
    await sup.startAll();
    await sup.remove('hang');
    expect(sup.has('hang')).toBe(false);
    await sup.stopAll();
  });

  it('lets a restartNow waiting for the same component give up once it is removed', async () => {
    const { sup, log } = setup();
    const slow = fake(log, 'slow');
    sup.add(slow);
    await sup.startAll();
    slow.gate = gate();
    const restarting = sup.restartNow('slow');
    await flushMicrotasks();
    const again = sup.restartNow('slow');
    const removing = sup.remove('slow');
    slow.gate.release();
    await Promise.all([restarting, again, removing]);
    expect(log).toEqual(['start slow', 'stop slow', 'start slow', 'stop slow']);
    expect(slow.overlap).toBeNull();
    await sup.stopAll();
  });

  it('throws E_NOT_FOUND for an unknown component', async () => {
    const { sup } = setup();
    await sup.startAll();
    expect(((await rejection(sup.remove('nope'))) as StreetboxError).code).toBe('E_NOT_FOUND');
    await sup.stopAll();
  });
});

describe('Supervisor: changes while stopping', () => {
  it('makes insert, restartNow and remove no-ops once stopAll has begun', async () => {
    const { sup, log } = setup();
    sup.add(fake(log, 'a'));
    await sup.startAll();
    await sup.stopAll();
    await sup.insert(fake(log, 'b'));
    await sup.restartNow('a');
    await sup.restartNow('unknown');
    await sup.remove('a');
    expect(log).toEqual(['start a', 'stop a']);
    expect(sup.status().map((s) => [s.name, s.state])).toEqual([['a', 'stopped']]);
  });

  it('does not restart a component whose planned restart was waiting when stopAll began', async () => {
    const { sup, log } = setup();
    const slow = fake(log, 'slow');
    sup.add(slow);
    await sup.startAll();
    slow.gate = gate();
    const restarting = sup.restartNow('slow');
    await flushMicrotasks();
    const again = sup.restartNow('slow');
    const stopping = sup.stopAll();
    slow.gate.release();
    await Promise.all([restarting, again, stopping]);
    expect(log).toEqual(['start slow', 'stop slow', 'start slow', 'stop slow']);
    expect(sup.status()[0]!.state).toBe('stopped');
  });
});
