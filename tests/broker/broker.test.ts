/**
 * The embedded broker with real clients (mqtt.js here; mosquitto_pub/sub in mosquitto.test.ts):
 * logins, the ACL matrix of every role against every topic, the retained topic API from the bus,
 * and set topics handed to the command pipeline with the outcome on commands/<id>.
 *
 * The command pipeline is a small in-test CommandService (tests/api/support/commands.ts) that
 * records calls and writes real rows to the real store, so the test sees exactly what the broker
 * handed over; tests/broker/e2e.test.ts runs the broker on the real pipeline (createControl).
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import { hashPassword } from '../../edge/control/passwords.js';
import { ROLE_LIST, type Role } from '../../edge/control/roles.js';
import { createLogger } from '../../edge/log.js';
import type { TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingCommands } from '../api/support/commands.js';
import { GW, KNOWN, gatewayContext } from '../api/support/context.js';
import { connect, connectCode, subscribeCodes, type TestClient } from './support.js';

const FAST = { N: 1024, r: 8, p: 1 };
const PASSWORDS: Record<Role, string> = {
  technician: 'tech-secret-pw-1',
  maintenance: 'maint-secret-pw-2',
  central: 'central-secret-pw-3',
  viewer: 'viewer-secret-pw-4',
};
const USER: Record<Role, string> = { technician: 'tech', maintenance: 'maint', central: 'city', viewer: 'view' };

let t: TestContext;
let broker: BrokerComponent;
let commands: RecordingCommands;
let port: number;
const logLines: string[] = [];

beforeAll(async () => {
  const users = [
    // a plain password: hashed by the broker at start (scrypt with the default cost)
    { username: USER.technician, password: PASSWORDS.technician, role: 'technician' as const },
    ...(['maintenance', 'central', 'viewer'] as const).map(async (r) => ({ username: USER[r], passwordHash: await hashPassword(PASSWORDS[r], FAST), role: r })),
  ];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString('utf8'));
        cb();
      },
    }),
  });
  t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, users: await Promise.all(users) } });
  t.ctx.log = log;
  commands = new RecordingCommands(t.store, KNOWN);
  broker = createBroker(t.ctx, { commands, coalesceMs: 150 });
  await broker.start();
  port = broker.port();
});

afterAll(async () => {
  await broker?.stop();
  await t?.close();
});

const login = (r: Role): Promise<TestClient> => connect(port, USER[r], PASSWORDS[r]);
const topic = (rest: string): string => `streetbox/${GW}/${rest}`;

describe('logins', () => {
  it('accepts every configured user with the right password', async () => {
    for (const r of ROLE_LIST) expect(await connectCode(port, USER[r], PASSWORDS[r])).toBe(0);
    await broker.start(); // idempotent
    expect(broker.port()).toBe(port);
  });

  it('refuses a wrong password, an unknown user and a missing password with code 4, anonymous with 5, and counts them', async () => {
    const before = failures();
    expect(await connectCode(port, USER.technician, 'wrong-password-xyz')).toBe(4);
    expect(await connectCode(port, 'nobody', 'whatever-pass')).toBe(4);
    expect(await connectCode(port, USER.viewer)).toBe(4);
    expect(await connectCode(port)).toBe(5);
    expect(failures() - before).toBe(4);
    const refused = logLines.filter((l) => l.includes('mqtt login refused'));
    expect(refused.length).toBeGreaterThanOrEqual(4);
    const all = logLines.join('');
    expect(all).not.toContain('wrong-password-xyz');
    for (const pw of Object.values(PASSWORDS)) expect(all).not.toContain(pw);
  });
});

function failures(): number {
  return broker
    .metrics()
    .filter((m) => m.name === 'streetbox_broker_auth_failures_total')
    .reduce((a, m) => a + m.value, 0);
}

// ---------------------------------------------------------------------------------------
// The ACL matrix, written out (not derived from roles.ts), so a change of the role model
// shows up here. T technician, M maintenance, C central, V viewer.

const SUBSCRIBE: [string, string][] = [
  [topic('status'), 'TMCV'],
  [topic('devices/lamp-1/state'), 'TMCV'],
  [topic('devices/+/availability'), 'TMCV'],
  [topic('events'), 'TMCV'],
  [topic('commands/+'), 'TMCV'],
  [topic('devices/lamp-1/set'), 'TMCV'],
  [topic('#'), 'TMCV'],
  ['streetbox/other-gw/#', 'T'],
  ['streetbox/#', 'T'],
  ['#', 'T'],
  ['$SYS/#', 'T'],
  ['flows/local', 'T'],
];

const PUBLISH: [string, string][] = [
  [topic('devices/lamp-1/set'), 'TMC'],
  [topic('groups/street-a/set'), 'TMC'],
  [topic('devices/tlc-1/set'), 'TC'],
  [topic('status'), ''],
  [topic('devices/lamp-1/state'), ''],
  [topic('devices/lamp-1/availability'), ''],
  [topic('events'), ''],
  [topic('commands/abc'), ''],
  ['streetbox/other-gw/devices/lamp-1/set', ''],
  ['$SYS/foo', ''],
  ['flows/local', 'T'],
];

const LETTER: Record<Role, string> = { technician: 'T', maintenance: 'M', central: 'C', viewer: 'V' };

describe('ACL matrix', () => {
  for (const r of ROLE_LIST) {
    it(`subscribe as ${r}: granted or SUBACK 0x80 per filter`, async () => {
      const c = await login(r);
      try {
        const codes = await subscribeCodes(c, SUBSCRIBE.map(([f]) => f));
        const want = SUBSCRIBE.map(([, who]) => (who.includes(LETTER[r]) ? 1 : 128));
        expect(Object.fromEntries(SUBSCRIBE.map(([f], i) => [f, codes[i]]))).toEqual(Object.fromEntries(SUBSCRIBE.map(([f], i) => [f, want[i]])));
        expect(c.closed).toBe(false);
      } finally {
        await c.end();
      }
    });

    it(`publish as ${r}: allowed ones are delivered, a denied one closes the connection`, async () => {
      const watcher = await login('technician');
      await watcher.client.subscribeAsync(['#'], { qos: 1 });
      try {
        for (const [tp, who] of PUBLISH) {
          const allowed = who.includes(LETTER[r]);
          const c = await login(r);
          const body = JSON.stringify({ action: 'on', transaction: `${r}:${tp}` });
          const calls = commands.calls.length;
          c.client.publish(tp, body, { qos: 1 });
          if (allowed) {
            await waitFor(`${r} publish to ${tp} delivered`, () => watcher.messages.some((m) => m.topic === tp && m.payload === body), 3000);
            expect(c.closed, `${r} on ${tp}`).toBe(false);
            await c.end();
          } else {
            await waitFor(`${r} disconnected after publishing to ${tp}`, () => c.closed, 3000);
            expect(watcher.messages.some((m) => m.topic === tp && m.payload === body), `${r} on ${tp} not delivered`).toBe(false);
            expect(commands.calls.length).toBe(calls);
          }
        }
      } finally {
        await watcher.end();
      }
    });
  }
});

describe('topic API', () => {
  it('publishes a retained status online', async () => {
    const c = await login('viewer');
    try {
      await c.client.subscribeAsync(topic('status'), { qos: 1 });
      const [m] = await c.waitMessages(topic('status'));
      expect(m).toMatchObject({ payload: 'online', retain: true });
    } finally {
      await c.end();
    }
  });

  it('keeps a retained state {ts, values} and availability from readings and comms events', async () => {
    // a watcher subscribed beforehand sees the broker publish them (aedes stores a retained message before it forwards it)
    const watcher = await login('viewer');
    try {
      await watcher.client.subscribeAsync(topic('devices/lamp-2/+'), { qos: 1 });
      t.ctx.ingest.pushMany([
        { ts: 1_700_000_000_000, device: 'lamp-2', point: 'level', value: 40, unit: '%' },
        { ts: 1_700_000_000_100, device: 'lamp-2', point: 'power', value: 61.5, unit: 'W' },
      ]);
      t.ctx.ingest.flush();
      await waitFor('the state of lamp-2 published', () => watcher.messages.some((m) => m.topic === topic('devices/lamp-2/state') && JSON.parse(m.payload).values.power === 61.5));
      await watcher.waitMessages(topic('devices/lamp-2/availability'));
    } finally {
      await watcher.end();
    }

    // a client arriving later gets both retained messages at once
    const c = await login('viewer');
    try {
      await c.client.subscribeAsync([topic('devices/lamp-2/state'), topic('devices/lamp-2/availability')], { qos: 1 });
      const [state] = await c.waitMessages(topic('devices/lamp-2/state'));
      expect(state!.retain).toBe(true);
      expect(JSON.parse(state!.payload)).toEqual({ ts: 1_700_000_000_100, values: { level: 40, power: 61.5 } });
      const [avail] = await c.waitMessages(topic('devices/lamp-2/availability'));
      expect(avail).toMatchObject({ payload: 'online', retain: true });

      t.store.appendEvent({ device: 'lamp-2', kind: 'comms.lost', severity: 'warning', detail: { bus: 'tcp-1', unit: 2, error: 'timeout after 3 retries' } });
      const av = await c.waitMessages(topic('devices/lamp-2/availability'), 2);
      expect(av[1]!.payload).toBe('offline');
    } finally {
      await c.end();
    }
    // and the retained value is now offline for a newcomer
    const late = await login('viewer');
    try {
      await late.client.subscribeAsync(topic('devices/lamp-2/availability'), { qos: 1 });
      const [m] = await late.waitMessages(topic('devices/lamp-2/availability'));
      expect(m).toMatchObject({ payload: 'offline', retain: true });
      t.store.appendEvent({ device: 'lamp-2', kind: 'comms.restored', severity: 'info', detail: { bus: 'tcp-1', unit: 2, offlineMs: 1200 } });
      const ms = await late.waitMessages(topic('devices/lamp-2/availability'), 2);
      expect(ms[1]!.payload).toBe('online');
    } finally {
      await late.end();
    }
  });

  it('coalesces state publishes per device and ends on the latest values', async () => {
    const c = await login('viewer');
    try {
      await c.client.subscribeAsync(topic('devices/lamp-1/state'), { qos: 1 });
      const t0 = Date.now();
      for (let i = 0; i < 30; i++) {
        t.ctx.ingest.push({ ts: 1_700_000_001_000 + i, device: 'lamp-1', point: 'level', value: i });
        t.ctx.ingest.flush();
        // not a wait: the input is a stream of commits 10 ms apart, which coalescing must thin out
        await new Promise((r) => setTimeout(r, 10));
      }
      const elapsed = Date.now() - t0;
      await waitFor('final state', () => c.messages.some((m) => m.topic === topic('devices/lamp-1/state') && JSON.parse(m.payload).values.level === 29), 3000);
      const states = c.messages.filter((m) => m.topic === topic('devices/lamp-1/state') && !m.retain);
      // 30 commits in `elapsed` ms with coalesceMs 150: at most one per 150 ms (+ the first at once)
      expect(states.length).toBeLessThanOrEqual(Math.ceil(elapsed / 150) + 2);
      expect(states.length).toBeLessThan(30);
      expect(JSON.parse(states.at(-1)!.payload)).toEqual({ ts: 1_700_000_001_029, values: { level: 29 } });
    } finally {
      await c.end();
    }
  });

  it('publishes every event as JSON on events', async () => {
    const c = await login('central');
    try {
      await c.client.subscribeAsync(topic('events'), { qos: 1 });
      const e = t.store.appendEvent({ device: 'tlc-1', kind: 'alarm.raised', severity: 'critical', detail: { alarm: 'signal_conflict', point: 'faults', value: 2, bit: 1 } });
      const [m] = await c.waitMessages(topic('events'));
      expect(JSON.parse(m!.payload)).toEqual(e);
      expect(m!.retain).toBe(false);
    } finally {
      await c.end();
    }
  });
});

describe('set topics', () => {
  it('hands a command to the pipeline with the principal and publishes the outcome on commands/<id>', async () => {
    const c = await login('maintenance');
    try {
      await c.client.subscribeAsync(topic('commands/+'), { qos: 1 });
      const before = commands.calls.length;
      await c.client.publishAsync(topic('devices/lamp-1/set'), JSON.stringify({ action: 'dim', level: 40, durationS: 7200, transaction: 'tx-42' }), { qos: 1, retain: true });
      await waitFor('submit', () => commands.calls.length > before, 3000);
      const call = commands.calls.at(-1)!;
      expect(call.target).toEqual({ kind: 'device', id: 'lamp-1' });
      expect(call.who).toEqual({ role: 'maintenance', principal: USER.maintenance });
      expect(call.body).toEqual({ action: 'dim', level: 40, durationS: 7200, transaction: 'tx-42' });
      const id = call.row.id;
      const [queued] = await c.waitMessages(topic(`commands/${id}`));
      expect(JSON.parse(queued!.payload)).toMatchObject({ id, status: 'queued', transaction: 'tx-42', action: 'dim', target: { kind: 'device', id: 'lamp-1' }, source: { role: 'maintenance', principal: USER.maintenance } });

      commands.finish(id, 'sent');
      commands.finish(id, 'verified', { level: 40 });
      const all = await c.waitMessages(topic(`commands/${id}`), 3);
      expect(all.map((m) => JSON.parse(m.payload).status)).toEqual(['queued', 'sent', 'verified']);
      expect(JSON.parse(all[2]!.payload)).toMatchObject({ transaction: 'tx-42', result: { level: 40 } });
    } finally {
      await c.end();
    }
    // a set is never kept as retained (it would replay the command to every later subscriber)
    const late = await login('viewer');
    try {
      // one SUBSCRIBE, the set topic first: aedes sends the retained messages of the filters in
      // their order, so once the retained status has come, anything retained on the set topic has too
      await late.client.subscribeAsync([topic('devices/lamp-1/set'), topic('status')], { qos: 1 });
      await late.waitMessages(topic('status'));
      expect(late.messages.map((m) => m.topic)).toEqual([topic('status')]);
    } finally {
      await late.end();
    }
  });

  it('hands a malformed payload over as it is; the rejection comes back with code, reason and transaction', async () => {
    const c = await login('central');
    try {
      await c.client.subscribeAsync(topic('commands/+'), { qos: 1 });
      const before = commands.calls.length;
      await c.client.publishAsync(topic('groups/street-a/set'), '{"action": "dim", level', { qos: 1 });
      await c.client.publishAsync(topic('groups/street-a/set'), JSON.stringify({ action: 'dim', level: 150, transaction: 7 }), { qos: 1 });
      await waitFor('two submits', () => commands.calls.length >= before + 2, 3000);
      const [bad, high] = commands.calls.slice(before);
      expect(bad!.body).toBe('{"action": "dim", level');
      expect(bad!.who).toEqual({ role: 'central', principal: USER.central });
      expect(high!.target).toEqual({ kind: 'group', id: 'street-a' });
      const [m1] = await c.waitMessages(topic(`commands/${bad!.row.id}`));
      expect(JSON.parse(m1!.payload)).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND' });
      const [m2] = await c.waitMessages(topic(`commands/${high!.row.id}`));
      expect(JSON.parse(m2!.payload)).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND', error: expect.stringContaining('level'), transaction: '7' });
    } finally {
      await c.end();
    }
  });

  it('refuses a set payload over 64 KiB by closing the connection', async () => {
    const c = await login('technician');
    const before = commands.calls.length;
    c.client.publish(topic('devices/lamp-1/set'), JSON.stringify({ action: 'on', pad: 'x'.repeat(70_000) }), { qos: 1 });
    await waitFor('disconnect', () => c.closed, 3000);
    expect(commands.calls.length).toBe(before);
  });
});

describe('metrics', () => {
  it('counts clients, publishes in and out, and refusals', () => {
    const m = Object.fromEntries(broker.metrics().filter((s) => !s.labels).map((s) => [s.name, s.value]));
    expect(m['streetbox_broker_connections_total']).toBeGreaterThan(10);
    expect(m['streetbox_broker_publishes_in_total']).toBeGreaterThan(5);
    expect(m['streetbox_broker_publishes_out_total']).toBeGreaterThan(5);
    expect(m['streetbox_broker_publishes_denied_total']).toBeGreaterThan(5);
    expect(m['streetbox_broker_subscriptions_denied_total']).toBeGreaterThan(5);
    expect(m['streetbox_broker_clients']).toBeGreaterThanOrEqual(0);
  });
});
