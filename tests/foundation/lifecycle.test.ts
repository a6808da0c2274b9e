import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { openStoreReadOnly } from '../../edge/store/index.js';
import { waitFor } from '../helpers/wait.js';
import { collect, spawnCli, tempGateway } from '../support/cli.js';

// A gateway on simulated Modbus TCP devices (no PTY needed). Nothing is committed before the
// stop (flushInterval 1 h, flushRows 1e5): what the store holds afterwards was flushed by the
// graceful stop.
const CONFIG = `
gateway: { id: lifecycle-test }
storage: { path: data/gw.db, flushInterval: 1h, flushRows: 100000 }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 100ms, report: poll }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 100ms }
broker: { enabled: false }
api: { enabled: false }
simulate: true
`;

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

describe('gateway lifecycle', () => {
  // the two signals' gateways run side by side (each in a directory of its own)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it.concurrent(`stops in reverse order on ${signal}, flushing the buffer, and exits 0`, async ({ onTestFinished }) => {
      const g = tempGateway(CONFIG);
      onTestFinished(g.cleanup);
      const child = spawnCli(['start', '--config', g.config]);
      const done = collect(child, 30_000);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor('the gateway running', () => out.includes('"gateway running"'), 20_000);
      await waitFor('five components started', () => (out.match(/"msg":"component started"/g) ?? []).length >= 5, 5_000);
      // let a few polls happen (every 100 ms). A fixed wait, as no condition is visible from
      // outside: nothing is committed before the stop (that is what this test proves) and a
      // poll does not log. 800 ms is eight poll periods; the assert below needs three.
      await new Promise((r) => setTimeout(r, 800));
      child.kill(signal);
      const r = await done;
      expect(r.code, r.stderr).toBe(0);

      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; component?: string });
      const started = lines.filter((l) => l.msg === 'component started').map((l) => l.component);
      expect(started).toEqual(['ingest', 'clock-watch', 'modbus-sim:net', 'modbus', 'control', 'sync']);
      const stopped = lines.filter((l) => l.msg === 'component stopped').map((l) => l.component);
      expect(stopped).toEqual(['sync', 'control', 'modbus', 'modbus-sim:net', 'clock-watch', 'ingest']);
      expect(lines.at(-1)!.msg).toBe('gateway stopped');
      expect(existsSync(join(g.dir, 'data/gw.db.pid'))).toBe(false);

      const view = openStoreReadOnly(join(g.dir, 'data/gw.db'));
      try {
        const readings = view.readings({ after: 0, limit: 100_000 }).items;
        const devices = new Set(readings.map((x) => x.device));
        expect(devices).toEqual(new Set(['lamp-1', 'tc-1']));
        // several poll cycles of both devices were buffered and flushed at the stop
        expect(readings.filter((x) => x.device === 'lamp-1' && x.point === 'mains_voltage').length).toBeGreaterThan(2);
        const kinds = view.events({ after: 0, limit: 100 }).items.map((e) => e.kind);
        expect(kinds[0]).toBe('gateway.started');
        expect(kinds.at(-1)).toBe('gateway.stopped');
        // the stop event comes after every reading: nothing was written after it
        expect(view.events({ after: 0, limit: 100 }).items.at(-1)!.seq).toBeGreaterThan(readings.at(-1)!.seq);
      } finally {
        view.close();
      }
    });
  }

  it('refuses a second gateway on the same data file', async () => {
    const g = tempGateway(CONFIG);
    cleanup = g.cleanup;
    const first = spawnCli(['start', '--config', g.config]);
    const firstDone = collect(first, 30_000);
    let out = '';
    first.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the gateway running', () => out.includes('"gateway running"'), 20_000);
    const second = await collect(spawnCli(['start', '--config', g.config]), 20_000);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/another streetbox \(pid \d+\) is using this data file/);
    first.kill('SIGTERM');
    expect((await firstDone).code).toBe(0);
  });

  it('keeps running with a serial bus whose port does not exist, and says which bus', async () => {
    const g = tempGateway(`
gateway: { id: degraded-test }
storage: { path: data/gw.db }
buses:
  - { id: missing-line, type: serial, path: /dev/does-not-exist-0, parity: none }
  - { id: net, type: tcp, host: 127.0.0.1, port: 0 }
devices:
  - { id: lamp-rtu, bus: missing-line, unit: 1, profile: streetlight-controller, poll: 200ms }
  - { id: lamp-tcp, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms }
broker: { enabled: false }
api: { enabled: false }
simulate: false
`);
    cleanup = g.cleanup;
    const child = spawnCli(['start', '--config', g.config]);
    const done = collect(child, 30_000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the gateway running', () => out.includes('"gateway running"'), 20_000);
    await waitFor('the missing line reported', () => out.includes('missing-line') && out.includes('/dev/does-not-exist-0'), 10_000);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(0);
  });
});
