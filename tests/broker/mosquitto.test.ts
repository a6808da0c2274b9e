/**
 * Debian's mosquitto_pub / mosquitto_sub against the embedded broker: a command sent by
 * mosquitto_pub reaches the pipeline with its principal and its outcome reaches mosquitto_sub;
 * retained state is read by a fresh mosquitto_sub; a wrong password and a refused subscription
 * are reported by the tools as such.
 *
 * The command pipeline is the small in-test CommandService of tests/api/support/commands.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import type { TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingCommands } from '../api/support/commands.js';
import { GW, KNOWN, gatewayContext } from '../api/support/context.js';
import { connect } from './support.js';

const USERS = [
  { username: 'tech', password: 'tech-password-123', role: 'technician' as const },
  { username: 'maint', password: 'maint-password-123', role: 'maintenance' as const },
  { username: 'view', password: 'view-password-123', role: 'viewer' as const },
];

let t: TestContext;
let broker: BrokerComponent;
let commands: RecordingCommands;
let port: number;

beforeAll(async () => {
  t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, users: USERS } });
  commands = new RecordingCommands(t.store, KNOWN);
  broker = createBroker(t.ctx, { commands });
  await broker.start();
  port = broker.port();
});

afterAll(async () => {
  await broker?.stop();
  await t?.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 8000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const auth = (u: string, p: string): string[] => ['-h', '127.0.0.1', '-p', String(port), '-u', u, '-P', p, '-V', 'mqttv311'];
const topic = (rest: string): string => `streetbox/${GW}/${rest}`;
const publishesDenied = (): number => broker.metrics().find((m) => m.name === 'streetbox_broker_publishes_denied_total')!.value;

describe('mosquitto clients', () => {
  it('mosquitto_pub sends a command; mosquitto_sub receives its outcome', async () => {
    // a subscriber for the outcome, running while the command is sent; -d reports its SUBACK
    // (stdbuf: mosquitto_sub flushes the messages it prints, not its debug lines)
    const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...auth('view', 'view-password-123'), '-t', topic('commands/+'), '-C', '2', '-W', '8', '-v', '-d'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => sub.on('exit', (code) => r(code)));
    try {
      await waitFor('mosquitto_sub to receive its SUBACK', () => out.includes('received SUBACK'));
      const before = commands.calls.length;
      const pub = await run('mosquitto_pub', [...auth('maint', 'maint-password-123'), '-q', '1', '-t', topic('devices/lamp-1/set'), '-m', JSON.stringify({ action: 'dim', level: 30, transaction: 'mosq-1' })]);
      expect(pub.code, pub.stderr).toBe(0);
      await waitFor('submit', () => commands.calls.length > before, 3000);
      const call = commands.calls.at(-1)!;
      expect(call.who).toEqual({ role: 'maintenance', principal: 'maint' });
      expect(call.body).toEqual({ action: 'dim', level: 30, transaction: 'mosq-1' });
      commands.finish(call.row.id, 'verified', { level: 30 });
      expect(await exited).toBe(0);
      const lines = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith(topic(''))); // the messages, not -d's lines
      expect(lines).toHaveLength(2);
      const [t1, ...rest1] = lines[0]!.split(' ');
      expect(t1).toBe(topic(`commands/${call.row.id}`));
      expect(JSON.parse(rest1.join(' '))).toMatchObject({ status: 'queued', transaction: 'mosq-1' });
      expect(JSON.parse(lines[1]!.split(' ').slice(1).join(' '))).toMatchObject({ status: 'verified', transaction: 'mosq-1' });
    } finally {
      sub.kill();
    }
  });

  it('a fresh mosquitto_sub gets the retained state and availability', async () => {
    // a watcher subscribed beforehand sees the broker publish them (aedes stores a retained message before it forwards it)
    const watcher = await connect(port, 'view', 'view-password-123');
    try {
      await watcher.client.subscribeAsync(topic('devices/tlc-1/+'), { qos: 1 });
      t.ctx.ingest.pushMany([{ ts: 1_700_000_000_000, device: 'tlc-1', point: 'program', value: 3 }]);
      t.ctx.ingest.flush();
      await watcher.waitMessages(topic('devices/tlc-1/state'));
      await watcher.waitMessages(topic('devices/tlc-1/availability'));
    } finally {
      await watcher.end();
    }
    const r = await run('mosquitto_sub', [...auth('view', 'view-password-123'), '-t', topic('devices/tlc-1/#'), '-C', '2', '-W', '5', '-v', '--retained-only']);
    expect(r.code, r.stderr).toBe(0);
    const byTopic = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.split(' ')[0], l.split(' ').slice(1).join(' ')]));
    expect(JSON.parse(byTopic[topic('devices/tlc-1/state')]!)).toEqual({ ts: 1_700_000_000_000, values: { program: 3 } });
    expect(byTopic[topic('devices/tlc-1/availability')]).toBe('online');
  });

  it('a wrong password is refused; a viewer cannot subscribe to # or publish a command', async () => {
    const bad = await run('mosquitto_sub', [...auth('view', 'not-the-password'), '-t', topic('status'), '-C', '1', '-W', '3']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.toLowerCase()).toMatch(/bad user name or password|not authori[sz]ed/);

    const hash = await run('mosquitto_sub', [...auth('view', 'view-password-123'), '-t', '#', '-C', '1', '-W', '3']);
    // mosquitto_sub 2.0 reports a SUBACK 0x80 and exits
    expect(hash.stderr).toContain('All subscription requests were denied');
    expect(hash.stdout).toBe('');

    const before = commands.calls.length;
    const denied = publishesDenied();
    await run('mosquitto_pub', [...auth('view', 'view-password-123'), '-q', '1', '-t', topic('devices/lamp-1/set'), '-m', '{"action":"off"}'], 3000);
    // the broker decides on the PUBLISH before it would hand it over: once it counts it denied, no command can follow
    await waitFor('the publish denied', () => publishesDenied() > denied);
    expect(commands.calls.length).toBe(before);
  });
});
