/**
 * Broker users swapped while the broker runs (issue 16, ChangePlan broker `users`): real mqtt.js
 * clients on 127.0.0.1. A user declared as before keeps its connection (same socket, its
 * subscription still delivers); a removed user is disconnected and cannot log in again; an added
 * user can log in; a user whose role or password changed is disconnected and logs in with the new
 * declaration; anonymous clients go when anonymous is no longer allowed. No password is logged.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerUsers } from '../../edge/broker/auth.js';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import type { Config } from '../../edge/config/schema.js';
import { hashPassword } from '../../edge/control/passwords.js';
import { createLogger } from '../../edge/log.js';
import type { TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingCommands } from '../api/support/commands.js';
import { GW, KNOWN, gatewayContext } from '../api/support/context.js';
import { connect, connectCode, type TestClient } from './support.js';

const FAST = { N: 1024, r: 8, p: 1 };
const PW = {
  tech: 'tech-plain-password-1',
  maint: 'maint-password-2',
  city: 'city-password-3',
  view: 'view-old-password-4',
  viewNew: 'view-new-password-5',
  hashed: 'hashed-user-password-6',
  newbie: 'newbie-password-7',
};
type Users = Config['broker']['users'];

const topic = (rest: string): string => `streetbox/${GW}/${rest}`;

describe('BrokerComponent.setAuth on a running broker', () => {
  let t: TestContext;
  let broker: BrokerComponent;
  let commands: RecordingCommands;
  let port: number;
  let before: Users;
  let hashedHash: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    hashedHash = await hashPassword(PW.hashed, FAST);
    before = [
      // a plain password: hashed at start; declared the same again, it is not a change
      { username: 'tech', password: PW.tech, role: 'technician' },
      { username: 'maint', passwordHash: await hashPassword(PW.maint, FAST), role: 'maintenance' },
      { username: 'city', passwordHash: await hashPassword(PW.city, FAST), role: 'viewer' },
      { username: 'view', passwordHash: await hashPassword(PW.view, FAST), role: 'viewer' },
      { username: 'hashed', passwordHash: hashedHash, role: 'viewer' },
    ];
    t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, allowAnonymous: true, users: before } });
    t.ctx.log = createLogger({
      level: 'debug',
      destination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(chunk.toString('utf8'));
          cb();
        },
      }),
    });
    commands = new RecordingCommands(t.store, KNOWN);
    broker = createBroker(t.ctx, { commands, coalesceMs: 10 });
    await broker.start();
    port = broker.port();
  });

  afterAll(async () => {
    await broker?.stop();
    await t?.close();
  });

  it('keeps unchanged users connected, closes removed and changed ones, and checks new logins against the new users', async () => {
    const tech = await connect(port, 'tech', PW.tech);
    const hashed = await connect(port, 'hashed', PW.hashed);
    const maint = await connect(port, 'maint', PW.maint);
    const city = await connect(port, 'city', PW.city);
    const view = await connect(port, 'view', PW.view);
    const anon = await connect(port);
    const clients = [tech, hashed, maint, city, view, anon];
    try {
      const techStream = tech.client.stream;
      const hashedStream = hashed.client.stream;
      let reconnects = 0;
      for (const c of [tech, hashed]) c.client.on('connect', () => reconnects++);
      await tech.client.subscribeAsync(topic('devices/lamp-1/state'), { qos: 1 });
      await hashed.client.subscribeAsync(topic('devices/lamp-1/state'), { qos: 1 });
      const connectionsBefore = connectionsTotal(broker);

      const after: Users = [
        { username: 'tech', password: PW.tech, role: 'technician' }, // unchanged (plain)
        { username: 'hashed', passwordHash: hashedHash, role: 'viewer' }, // unchanged (hash)
        // maint removed
        { username: 'city', passwordHash: before[2]!.passwordHash!, role: 'central' }, // role changed
        { username: 'view', password: PW.viewNew, role: 'viewer' }, // password changed
        { username: 'newbie', password: PW.newbie, role: 'viewer' }, // added
      ];
      const { closed } = await broker.setAuth({ users: after, allowAnonymous: false });
      expect(closed).toBe(4); // maint, city, view, anonymous

      await waitFor('removed and changed users disconnected', () => maint.closed && city.closed && view.closed && anon.closed);
      expect(tech.closed).toBe(false);
      expect(hashed.closed).toBe(false);

      // the connections that stayed are the same sockets, and their subscriptions still deliver
      t.ctx.ingest.pushMany([{ ts: Date.now(), device: 'lamp-1', point: 'level', value: 42, unit: '%' }]);
      t.ctx.ingest.flush();
      const delivered = (c: TestClient): boolean => c.messages.some((m) => m.topic === topic('devices/lamp-1/state') && JSON.parse(m.payload).values.level === 42);
      await waitFor('the state delivered to the connections that stayed', () => delivered(tech) && delivered(hashed));
      expect(tech.client.stream).toBe(techStream);
      expect(hashed.client.stream).toBe(hashedStream);
      expect(reconnects).toBe(0);
      expect(connectionsTotal(broker)).toBe(connectionsBefore);

      // new logins: against the new users at once
      expect(await connectCode(port, 'maint', PW.maint)).toBe(4);
      expect(await connectCode(port, 'newbie', PW.newbie)).toBe(0);
      expect(await connectCode(port, 'view', PW.view)).toBe(4);
      expect(await connectCode(port, 'view', PW.viewNew)).toBe(0);
      expect(await connectCode(port)).toBe(5);
      expect(await connectCode(port, 'tech', PW.tech)).toBe(0);

      // the changed role holds on the next login: a central may command a light, a viewer may not
      const city2 = await connect(port, 'city', PW.city);
      clients.push(city2);
      const calls = commands.calls.length;
      city2.client.publish(topic('devices/lamp-1/set'), JSON.stringify({ action: 'on' }), { qos: 1 });
      await waitFor('the central command handed to the pipeline', () => commands.calls.length > calls && commands.calls.at(-1));
      expect(commands.calls.at(-1)!.who).toEqual({ role: 'central', principal: 'city' });
      expect(city2.closed).toBe(false);

      // usernames are logged, passwords and hashes never
      const replaced = logLines.filter((l) => l.includes('mqtt users replaced'));
      expect(replaced).toHaveLength(1);
      expect(JSON.parse(replaced[0]!)).toMatchObject({ added: ['newbie'], removed: ['maint'], changed: ['city', 'view'], closed: 4, allowAnonymous: false });
      const all = logLines.join('');
      for (const pw of Object.values(PW)) expect(all).not.toContain(pw);
      expect(all).not.toContain(hashedHash);
    } finally {
      for (const c of clients) await c.end();
    }
  });

  it('leaves the users as they were when a new one cannot be loaded', async () => {
    const tech = await connect(port, 'tech', PW.tech);
    try {
      const bad: Users = [
        { username: 'tech', password: PW.tech, role: 'technician' },
        { username: 'broken', passwordHash: 'not-a-scrypt-hash', role: 'viewer' },
      ];
      await expect(broker.setAuth({ users: bad, allowAnonymous: false })).rejects.toMatchObject({ code: 'E_CONFIG' });
      expect(tech.closed).toBe(false);
      expect(await connectCode(port, 'newbie', PW.newbie)).toBe(0);
      // the broker still runs and answers in turn after a failed swap
      expect((await broker.setAuth({ users: [{ username: 'tech', password: PW.tech, role: 'technician' }], allowAnonymous: false })).closed).toBe(0);
      expect(await connectCode(port, 'newbie', PW.newbie)).toBe(4);
      expect(tech.closed).toBe(false);
    } finally {
      await tech.end();
    }
  });
});

describe('BrokerComponent.setAuth when not running', () => {
  it('does nothing before start and after stop; a start reads the users of ctx.config', async () => {
    const t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, users: [{ username: 'a', password: 'a-password-1', role: 'viewer' }] } });
    const broker = createBroker(t.ctx, { commands: new RecordingCommands(t.store, KNOWN) });
    try {
      expect(await broker.setAuth({ users: [], allowAnonymous: true })).toEqual({ closed: 0 });
      await broker.start();
      expect(await connectCode(broker.port(), 'a', 'a-password-1')).toBe(0);
      await broker.stop();
      expect(await broker.setAuth({ users: [], allowAnonymous: true })).toEqual({ closed: 0 });
    } finally {
      await broker.stop();
      await t.close();
    }
  });
});

describe('BrokerUsers.update', () => {
  it('keeps the entry of a user declared as before, so its login still holds; a removed or changed one does not', async () => {
    const users = new BrokerUsers(false);
    const hash = await hashPassword('hash-pass-1', FAST);
    await users.load([
      { username: 'plain', password: 'plain-pass-1', role: 'viewer' },
      { username: 'hashed', passwordHash: hash, role: 'viewer' },
      { username: 'gone', password: 'gone-pass-1', role: 'viewer' },
      { username: 'promoted', password: 'promo-pass-1', role: 'viewer' },
      { username: 'toHash', password: 'hash-pass-1', role: 'viewer' },
    ]);
    const login = async (u: string, p: string) => {
      const r = await users.login(u, Buffer.from(p));
      if (!r.ok) throw new Error(`login ${u} refused`);
      return r.login;
    };
    const logins = {
      plain: await login('plain', 'plain-pass-1'),
      hashed: await login('hashed', 'hash-pass-1'),
      gone: await login('gone', 'gone-pass-1'),
      promoted: await login('promoted', 'promo-pass-1'),
      toHash: await login('toHash', 'hash-pass-1'),
    };
    const change = await users.update(
      [
        { username: 'plain', password: 'plain-pass-1', role: 'viewer' },
        { username: 'hashed', passwordHash: hash, role: 'viewer' },
        { username: 'promoted', password: 'promo-pass-1', role: 'central' },
        // the same password, now given as a hash: a different declaration
        { username: 'toHash', passwordHash: hash, role: 'viewer' },
        { username: 'fresh', password: 'fresh-pass-1', role: 'viewer' },
      ],
      true,
    );
    expect(change).toEqual({ added: ['fresh'], removed: ['gone'], changed: ['promoted', 'toHash'] });
    expect(users.holds(logins.plain)).toBe(true);
    expect(users.holds(logins.hashed)).toBe(true);
    expect(users.holds(logins.gone)).toBe(false);
    expect(users.holds(logins.promoted)).toBe(false);
    expect(users.holds(logins.toHash)).toBe(false);
    expect(users.holds({ entry: null })).toBe(true); // anonymous now allowed
    expect(await users.login('promoted', Buffer.from('promo-pass-1'))).toMatchObject({ ok: true, principal: { role: 'central' } });
    expect(await users.login('gone', Buffer.from('gone-pass-1'))).toMatchObject({ ok: false });
    expect(await users.login(undefined, undefined)).toMatchObject({ ok: true, principal: { role: 'viewer', principal: 'anonymous' } });
  });
});

function connectionsTotal(b: BrokerComponent): number {
  return b
    .metrics()
    .filter((m) => m.name === 'streetbox_broker_connections_total')
    .reduce((a, m) => a + m.value, 0);
}
