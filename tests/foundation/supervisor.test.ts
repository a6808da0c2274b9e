import { describe, expect, it } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import type { Component } from '../../edge/component.js';
import { silentLogger } from '../../edge/log.js';
import { Supervisor } from '../../edge/supervisor.js';
import { FakeClock } from '../support/fakeClock.js';

function recorder(log: string[], name: string, opts: { failStarts?: number } = {}): Component {
  let failures = opts.failStarts ?? 0;
  return {
    name,
    async start() {
      log.push(`start ${name}`);
      if (failures > 0) {
        failures--;
        throw new Error(`${name} cannot start`);
      }
    },
    async stop() {
      log.push(`stop ${name}`);
    },
  };
}

function setup() {
  const clock = new FakeClock();
  const bus = new EventBus();
  const sup = new Supervisor({ log: silentLogger(), bus, clock, initialBackoffMs: 1000, maxBackoffMs: 8000 });
  return { clock, bus, sup };
}

describe('Supervisor', () => {
  it('starts components in order and stops them in reverse', async () => {
    const { sup } = setup();
    const log: string[] = [];
    for (const n of ['store', 'driver', 'api']) sup.add(recorder(log, n));
    await sup.startAll();
    await sup.stopAll();
    expect(log).toEqual(['start store', 'start driver', 'start api', 'stop api', 'stop driver', 'stop store']);
  });

  it('keeps going when one component fails to start, and restarts it with doubling backoff', async () => {
    const { sup, clock } = setup();
    const log: string[] = [];
    sup.add(recorder(log, 'a'));
    sup.add(recorder(log, 'flaky', { failStarts: 3 }));
    sup.add(recorder(log, 'c'));
    await sup.startAll();
    expect(log).toEqual(['start a', 'start flaky', 'start c']);
    const flaky = () => sup.status().find((s) => s.name === 'flaky')!;
    expect(flaky().state).toBe('degraded');
    expect(flaky().lastError).toBe('flaky cannot start');

    await clock.advance(999);
    expect(log.filter((l) => l === 'start flaky')).toHaveLength(1);
    await clock.advance(1); // 1 s: second attempt (fails)
    expect(log.filter((l) => l === 'start flaky')).toHaveLength(2);
    await clock.advance(1999);
    expect(log.filter((l) => l === 'start flaky')).toHaveLength(2);
    await clock.advance(1); // +2 s: third attempt (fails)
    expect(log.filter((l) => l === 'start flaky')).toHaveLength(3);
    await clock.advance(4000); // +4 s: fourth attempt succeeds
    expect(flaky()).toMatchObject({ state: 'running', failures: 3, restarts: 3 });
    expect(sup.status().map((s) => s.state)).toEqual(['running', 'running', 'running']);
    await sup.stopAll();
  });

  it('restarts a running component that reports itself degraded', async () => {
    const { sup, clock, bus } = setup();
    const log: string[] = [];
    sup.add(recorder(log, 'driver'));
    await sup.startAll();
    bus.emit('component', { name: 'driver', state: 'degraded', error: 'serial port vanished' });
    expect(sup.status()[0]).toMatchObject({ state: 'degraded', lastError: 'serial port vanished' });
    await clock.advance(1000);
    expect(log).toEqual(['start driver', 'stop driver', 'start driver']);
    expect(sup.status()[0]!.state).toBe('running');
    await sup.stopAll();
  });

  it('shows a component degraded while a part it restores by itself is lost, without restarting it', async () => {
    const { sup, clock, bus } = setup();
    const log: string[] = [];
    const changes: string[] = [];
    bus.on('test', 'component', (c) => changes.push(`${c.state}${c.error ? ` (${c.error})` : ''}`));
    sup.add(recorder(log, 'modbus'));
    await sup.startAll();
    bus.emit('health', { name: 'modbus', part: 'bus rs485-1', ok: false, error: 'serial port gone' });
    bus.emit('health', { name: 'modbus', part: 'bus tcp1', ok: false, error: 'connection closed' });
    expect(sup.status()[0]).toMatchObject({ state: 'degraded', lastError: 'serial port gone; connection closed', restarts: 0, failures: 0 });
    await clock.advance(60_000);
    expect(log).toEqual(['start modbus']);
    bus.emit('health', { name: 'modbus', part: 'bus rs485-1', ok: true });
    expect(sup.status()[0]).toMatchObject({ state: 'degraded', lastError: 'connection closed' });
    bus.emit('health', { name: 'modbus', part: 'bus tcp1', ok: true });
    expect(sup.status()[0]!.state).toBe('running');
    expect(changes).toEqual(['starting', 'running', 'degraded (serial port gone)', 'running']);
    expect(clock.pendingTimers).toBe(0);
    await sup.stopAll();
  });

  it('still restarts a component that reports itself failed while it is degraded by a lost part', async () => {
    const { sup, clock, bus } = setup();
    const log: string[] = [];
    sup.add(recorder(log, 'modbus'));
    await sup.startAll();
    bus.emit('health', { name: 'modbus', part: 'bus tcp1', ok: false, error: 'connection closed' });
    bus.emit('component', { name: 'modbus', state: 'degraded', error: 'poll loop ended' });
    expect(sup.status()[0]).toMatchObject({ state: 'degraded', lastError: 'poll loop ended', failures: 1 });
    await clock.advance(1000);
    expect(log).toEqual(['start modbus', 'stop modbus', 'start modbus']);
    // the new run starts clean: what the old one reported lost is forgotten
    expect(sup.status()[0]).toMatchObject({ state: 'running', restarts: 1 });
    await sup.stopAll();
  });

  it('does not restart anything after stopAll', async () => {
    const { sup, clock } = setup();
    const log: string[] = [];
    sup.add(recorder(log, 'flaky', { failStarts: 5 }));
    await sup.startAll();
    await sup.stopAll();
    await clock.advance(60_000);
    expect(log).toEqual(['start flaky', 'stop flaky']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('abandons a stop that hangs, and stops the rest', async () => {
    const clock = new FakeClock();
    const sup = new Supervisor({ log: silentLogger(), bus: new EventBus(), clock, stopTimeoutMs: 50 });
    const log: string[] = [];
    sup.add(recorder(log, 'store'));
    sup.add({ name: 'hang', start: async () => undefined, stop: () => new Promise<void>(() => undefined) });
    await sup.startAll();
    await sup.stopAll();
    expect(log).toEqual(['start store', 'stop store']);
    expect(sup.status().map((s) => s.state)).toEqual(['stopped', 'stopped']);
  });
});
