/**
 * Every stop is clean: `streetbox start` exits 0 within 5 s of SIGTERM or SIGINT in every state
 * (after an editor login, which leaves a Node-RED session timer behind; during start-up; with
 * every component degraded), a second signal exits at once (128 + signal), a gateway whose
 * only component failed stays up degraded instead of falling off an empty event loop (Node's
 * exit code 13), and its simulator children die with it even when it is SIGKILLed.
 *
 * The process-level cases run the built gateway (bin/streetbox.js, as npm start and the
 * systemd unit do); the signal logic itself is also driven directly with an injected signal
 * source and gateway, so a second signal and a stop that hangs are tested deterministically.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../edge/log.js';
import type { Gateway } from '../../edge/main.js';
import { runUntilSignal } from '../../edge/run.js';
import { spawn } from 'node:child_process';
import { BIN, DEMO, collect, demoConfig, startDemo, type DemoGateway } from '../helpers/demoGateway.js';
import { tempDir } from '../helpers/tmp.js';
import { login } from '../flows/support.js';
import { waitFor } from '../helpers/wait.js';

const log = createLogger({ level: 'silent' });

/** A gateway whose stop resolves when `release` is called (or at once). */
function fakeGateway(hang: boolean): { gateway: Gateway; stops: number; release: () => void } {
  let release = (): void => undefined;
  const state = {
    stops: 0,
    release: () => release(),
    gateway: {
      stop: () => {
        state.stops++;
        return hang ? new Promise<void>((r) => (release = r)) : Promise.resolve();
      },
    } as unknown as Gateway,
  };
  return state;
}

describe('the signal logic of streetbox start', () => {
  it('stops the gateway on SIGTERM and exits 0', async () => {
    const signals = new EventEmitter();
    const fake = fakeGateway(false);
    const codes: number[] = [];
    const running = new Promise<void>((onRunning) =>
      void runUntilSignal({ gateway: { configPath: 'x' }, log, signals, exit: (c) => void codes.push(c), start: async () => fake.gateway, onRunning: () => onRunning() }),
    );
    await running;
    expect(codes).toEqual([]);
    signals.emit('SIGTERM', 'SIGTERM');
    await waitFor('exit', () => codes.length > 0, 2000);
    expect(fake.stops).toBe(1);
    expect(codes).toEqual([0]);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('exits at once with %s a second time while the stop is under way (%i)', async (sig, code) => {
    const signals = new EventEmitter();
    const fake = fakeGateway(true);
    const codes: number[] = [];
    await new Promise<void>((onRunning) =>
      void runUntilSignal({ gateway: { configPath: 'x' }, log, signals, duplicateMs: 0, exit: (c) => void codes.push(c), start: async () => fake.gateway, onRunning: () => onRunning() }),
    );
    signals.emit(sig, sig);
    await waitFor('stop called', () => fake.stops === 1, 2000);
    expect(codes).toEqual([]);
    signals.emit(sig, sig);
    expect(codes).toEqual([code]);
    fake.release();
  });

  it('takes the same signal twice within a second as one (Ctrl-C under npm start: from the terminal and forwarded by npm)', async () => {
    const signals = new EventEmitter();
    const fake = fakeGateway(true);
    const codes: number[] = [];
    await new Promise<void>((onRunning) =>
      void runUntilSignal({ gateway: { configPath: 'x' }, log, signals, exit: (c) => void codes.push(c), start: async () => fake.gateway, onRunning: () => onRunning() }),
    );
    signals.emit('SIGINT', 'SIGINT');
    signals.emit('SIGINT', 'SIGINT');
    await waitFor('stop called', () => fake.stops === 1, 2000);
    expect(codes).toEqual([]);
    fake.release();
    await waitFor('exit', () => codes.length > 0, 2000);
    expect(codes).toEqual([0]);
  });

  it('exits 0 at the deadline when the stop does not finish, saying so', async () => {
    const signals = new EventEmitter();
    const fake = fakeGateway(true);
    const codes: number[] = [];
    const lines: string[] = [];
    const logged = createLogger({ level: 'info', format: 'json', destination: { write: (s: string) => void lines.push(s) } });
    await new Promise<void>((onRunning) =>
      void runUntilSignal({ gateway: { configPath: 'x' }, log: logged, signals, deadlineMs: 200, exit: (c) => void codes.push(c), start: async () => fake.gateway, onRunning: () => onRunning() }),
    );
    signals.emit('SIGTERM', 'SIGTERM');
    await waitFor('deadline exit', () => codes.length > 0, 3000);
    expect(codes).toEqual([0]);
    expect(lines.join('')).toContain('stop did not finish in time');
    fake.release();
  });

  it('a signal during start-up stops what started once it has, then exits 0', async () => {
    const signals = new EventEmitter();
    const fake = fakeGateway(false);
    const codes: number[] = [];
    let started = (): void => undefined;
    let onRunning = 0;
    void runUntilSignal({
      gateway: { configPath: 'x' },
      log,
      signals,
      exit: (c) => void codes.push(c),
      start: () => new Promise<Gateway>((r) => (started = () => r(fake.gateway))),
      onRunning: () => void onRunning++,
    });
    await waitFor('handler installed before start-up ends', () => signals.listenerCount('SIGTERM') === 1, 2000);
    signals.emit('SIGTERM', 'SIGTERM');
    started();
    await waitFor('exit', () => codes.length > 0, 2000);
    expect(codes).toEqual([0]);
    expect(fake.stops).toBe(1);
    expect(onRunning).toBe(0);
  });
});

describe('the built gateway on the demo', () => {
  const tmp = tempDir('streetbox-stop-');
  afterAll(() => tmp.remove());
  let gw: DemoGateway | undefined;
  let blocker: Server | undefined;
  afterEach(async () => {
    await gw?.dispose();
    gw = undefined;
    await new Promise<void>((r) => (blocker ? blocker.close(() => r()) : r()));
    blocker = undefined;
  });

  it('exits 0 within 5 s of SIGTERM after someone logged into the Node-RED editor', async () => {
    gw = await startDemo();
    await gw.waitFor(/"msg":"node-red running"/);
    const base = `http://127.0.0.1:${gw.port}`;
    const token = await login(base, DEMO.editor);
    // an editor session exists now: Node-RED has armed its session-expiry timer
    expect((await fetch(`${base}/flows/flows`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    gw.child.kill('SIGTERM');
    const r = await gw.exited(5000);
    expect(r.code, r.stdout.slice(-2000)).toBe(0);
    expect(r.stdout).toContain('"msg":"gateway stopped"');
  }, 90_000);

  it('exits 0 within 5 s of a SIGTERM during start-up, starting nothing more', async () => {
    const child = spawn(process.execPath, [BIN, 'start', '--config', demoConfig(tmp)], { cwd: tmp.path, env: { ...process.env, STREETBOX_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    // as soon as the first component runs, well before Node-RED and the rest
    await waitFor('the first component started', () => out.includes('"msg":"component started"'), 30_000);
    child.kill('SIGTERM');
    const r = await collect(child, 5000);
    expect(r.code, out.slice(-2000)).toBe(0);
    expect(out).toContain('"msg":"gateway stopped"');
    expect(out).not.toContain('"msg":"node-red running"');
  }, 90_000);

  it('exits 0 within 5 s of SIGINT (Ctrl-C)', async () => {
    gw = await startDemo();
    gw.child.kill('SIGINT');
    const r = await gw.exited(5000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"signal":"SIGINT"');
  }, 90_000);

  it('stays up degraded when its only long-lived component fails at start, and still stops cleanly', async () => {
    // the API is the only component besides the clock watch, and its port is taken
    blocker = createServer();
    const taken = await new Promise<number>((r) => blocker!.listen(0, '127.0.0.1', () => r((blocker!.address() as { port: number }).port)));
    gw = await startDemo({
      edit: (cfg) => {
        cfg.buses = [];
        cfg.devices = [];
        cfg.schedules = [];
        cfg.groups = [];
        delete (cfg as Record<string, unknown>).lorawan;
        cfg.broker.enabled = false;
        cfg.nodeRed.enabled = false;
        cfg.simulate = false;
        cfg.api.port = taken;
      },
    });
    // it failed, was retried after its backoff, failed again: and the process is still there
    await gw.waitFor(/"component":"api"[^\n]*"retryInMs":2000/, 20_000);
    expect(gw.child.exitCode).toBeNull();
    gw.child.kill('SIGTERM');
    const r = await gw.exited(5000);
    expect(r.code).toBe(0);
  }, 90_000);

  it('its socat children die with it when it is SIGKILLed', async () => {
    // Node-RED plays no part (and its start is seconds of the demo's)
    gw = await startDemo({ readyMsg: 'gateway running', edit: (cfg) => void (cfg.nodeRed.enabled = false) });
    const pid = gw.child.pid!;
    const kids = childrenOf(pid).filter((c) => c.comm === 'socat');
    expect(kids.length, 'the demo runs its RS-485 line on socat').toBeGreaterThan(0);
    gw.child.kill('SIGKILL');
    await gw.exited(5000);
    await waitFor('socat gone after its gateway was killed', () => kids.every((k) => !alive(k.pid)), 5000);
  }, 90_000);

  it('without socat, only the simulated RS-485 line is down: the TCP traffic controller runs', async () => {
    // an empty PATH: no socat (node is started by its absolute path, setpriv is /usr/bin/setpriv)
    gw = await startDemo({ env: { PATH: '/nonexistent' }, edit: (cfg) => void (cfg.nodeRed.enabled = false) });
    await gw.waitFor(/"component":"modbus-sim:rs485-1"[^\n]*apt-get install socat/);
    const headers = { authorization: `Bearer ${DEMO.technicianToken}` };
    await waitFor(
      'tc-01 online', async () => {
        const r = (await (await fetch(`http://127.0.0.1:${gw!.port}/api/v1/devices/tc-01`, { headers })).json()) as { online?: boolean | null };
        return r.online === true;
      }, 20_000,
    );
    const status = (await (await fetch(`http://127.0.0.1:${gw.port}/api/v1/status`, { headers })).json()) as { components: { name: string; state: string }[] };
    const state = Object.fromEntries(status.components.map((c) => [c.name, c.state]));
    expect(state['modbus-sim:tc-net']).toBe('running');
    expect(state['modbus-sim:rs485-1']).toBe('degraded');
    gw.child.kill('SIGTERM');
    expect((await gw.exited(5000)).code).toBe(0);
  }, 90_000);
});

function childrenOf(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid …
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && Number(m[2]) === pid) out.push({ pid: Number(d), comm: m[1]! });
    } catch {
      // gone
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie is dead, waiting for its reaper
  } catch {
    return false;
  }
}
