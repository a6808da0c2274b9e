import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { systemClock } from '../../edge/clock.js';
import { createLogger } from '../../edge/log.js';
import { createWatchdog, watchdogIntervalMs } from '../../edge/ops/watchdog.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { collect, oneLampGateway, spawnCli } from '../support/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

// A stand-in for systemd's notification socket: a unix datagram socket (which Node's dgram
// cannot open) under /usr/bin/python3, printing each message on a line; it closes the
// BARRIER=1 fd that systemd-notify sends, as systemd does.
const RECEIVER = `
import socket, sys, os, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds = array.array('i'); fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
            for fd in fds: os.close(fd)
    for line in msg.decode().split("\\n"):
        if line: print(line, flush=True)
`;

const log = createLogger({ level: 'silent' });
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function store(dir: TempDir): SqliteStore {
  const s = openStore({ path: dir.file('gw.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log });
  cleanups.push(() => s.close());
  return s;
}

describe('systemd watchdog', () => {
  it('takes its period from WATCHDOG_USEC, for this process only', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' })).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) })).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' })).toBeNull();
    expect(watchdogIntervalMs({})).toBeNull();
  });

  it('sends READY=1, WATCHDOG=1 and STOPPING=1 through systemd-notify to $NOTIFY_SOCKET', async () => {
    const dir = tempDir('streetbox-wd-');
    cleanups.push(() => dir.remove());
    const socket = join(dir.path, 'notify.sock');
    const py: ChildProcess = spawn('/usr/bin/python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => py.kill('SIGKILL'));
    let got = '';
    py.stdout!.setEncoding('utf8').on('data', (d: string) => (got += d));
    await waitFor('the notify socket listening', () => got.includes('listening'), 5000);

    const env = { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' };
    const wd = createWatchdog({ clock: systemClock, store: store(dir), log }, { env });
    await wd.start();
    await waitFor('three WATCHDOG=1', () => (got.match(/^WATCHDOG=1$/gm) ?? []).length >= 3, 5000);
    await wd.stop();
    await waitFor('STOPPING=1', () => got.includes('STOPPING=1'), 5000);
    const messages = got.split('\n').filter((l) => l !== '' && l !== 'listening' && l !== 'BARRIER=1');
    expect(messages[0]).toBe('READY=1');
    expect(messages.at(-1)).toBe('STOPPING=1');
    expect(new Set(messages.slice(1, -1))).toEqual(new Set(['WATCHDOG=1']));
  });

  it('withholds the ping while the store fails or the event loop is blocked, and resumes when healthy', async () => {
    const dir = tempDir('streetbox-wd-');
    cleanups.push(() => dir.remove());
    const sent: string[] = [];
    let broken: string | null = null;
    const clock = new FakeClock();
    const s = store(dir);
    const wd = createWatchdog({ clock, store: s, log }, { notify: async (m) => void sent.push(m), intervalMs: 1000, healthy: () => broken });
    await wd.start();
    expect(sent).toEqual(['READY=1']);
    await clock.advance(3000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(3);

    broken = 'modbus driver wedged';
    await clock.advance(3000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(3);
    expect(wd.lastProblem).toBe('modbus driver wedged');
    broken = null;
    await clock.advance(1000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(4);

    s.close(); // the store no longer answers
    await clock.advance(2000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(4);
    expect(wd.lastProblem).toMatch(/^store: /);
    await wd.stop();
    expect(sent.at(-1)).toBe('STOPPING=1');
    expect(clock.pendingTimers).toBe(0);
  });

  it('withholds the ping after the event loop was blocked longer than half the period', async () => {
    const dir = tempDir('streetbox-wd-');
    cleanups.push(() => dir.remove());
    const sent: string[] = [];
    const wd = createWatchdog({ clock: systemClock, store: store(dir), log }, { notify: async (m) => void sent.push(m), intervalMs: 400 });
    await wd.start();
    await waitFor('a WATCHDOG=1', () => sent.includes('WATCHDOG=1'), 3000);
    const end = Date.now() + 500;
    while (Date.now() < end) {
      // a blocked event loop
    }
    await waitFor('the blocked loop noticed', () => wd.lastProblem !== null, 3000);
    expect(wd.lastProblem).toMatch(/^event loop blocked for \d+ ms$/);
    await waitFor('healthy again', () => wd.lastProblem === null, 3000);
    await wd.stop();
  });

  it('a gateway started under systemd (NOTIFY_SOCKET set) reports READY=1 once running, pings, and STOPPING=1 on SIGTERM', async () => {
    const g = oneLampGateway('watchdog-test');
    cleanups.push(g.cleanup);
    const socket = join(g.dir, 'notify.sock');
    const py: ChildProcess = spawn('/usr/bin/python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => py.kill('SIGKILL'));
    let got = '';
    py.stdout!.setEncoding('utf8').on('data', (d: string) => (got += d));
    await waitFor('the notify socket listening', () => got.includes('listening'), 5000);
    const child = spawnCli(['start', '--config', g.config], { env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '1000000' } });
    const done = collect(child, 30_000);
    cleanups.push(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('two WATCHDOG=1', () => (got.match(/^WATCHDOG=1$/gm) ?? []).length >= 2, 20_000);
    // READY=1 came after every other component had started
    expect(got.indexOf('READY=1')).toBeLessThan(got.indexOf('WATCHDOG=1'));
    const started = out.split('\n').filter((l) => l.includes('"component started"')).map((l) => (JSON.parse(l) as { component: string }).component);
    expect(started.at(-1)).toBe('watchdog');
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
    await waitFor('STOPPING=1', () => got.includes('STOPPING=1'), 5000);
  });

  it('does nothing outside systemd (no $NOTIFY_SOCKET)', async () => {
    const dir = tempDir('streetbox-wd-');
    cleanups.push(() => dir.remove());
    const clock = new FakeClock();
    const wd = createWatchdog({ clock, store: store(dir), log }, { env: {} });
    await wd.start();
    await clock.advance(60_000);
    expect(wd.pings).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await wd.stop();
  });
});
