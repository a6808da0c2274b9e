import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { startGateway, type Gateway } from '../../edge/main.js';
import { tempGateway } from '../support/cli.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';
import { decodePayload } from '../../cloud-sync/payload.js';
import { statusRank } from '../../edge/control/api.js';
import type { CommandHandler, CommandOutcome } from '../../cloud-sync/index.js';
import type { CommandService } from '../../edge/control/api.js';
import { centralCommandHandler } from '../../edge/control/central.js';
import type { Store } from '../../edge/store/api.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import type { CommandRecord, CommandStatus, StoredEvent } from '../../edge/store/types.js';
import { FakeClock } from '../support/fakeClock.js';
import { waitFor } from '../helpers/wait.js';
import { observe, testLogger, type Observer } from './helpers.js';

// Commands from central arrive on the real upstream broker (mosquitto), go through the
// gateway's control path with role `central`, reach the simulated controller, and the final
// outcome is published back upstream.
let broker: Mosquitto;
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let outcomes: Observer;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempGateway(`
gateway: { id: gw-central }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms, groups: [main] }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 200ms }
broker: { enabled: false }
api: { enabled: false }
sync: { url: '${broker.url}', reconnectMin: 100ms, reconnectMax: 1s }
simulate: true
`);
  gw = await startGateway({ configPath: dir.config, log: testLogger() });
  outcomes = await observe(broker.url, 'streetbox/gw-central/commands/#');
  // a command published before the gateway subscribed would reach nobody
  await waitFor('the gateway subscribed to commands from central', () => broker.subscriptions({ filter: 'streetbox/gw-central/down/commands' }) > 0, 10_000);
});

afterAll(async () => {
  await outcomes?.close();
  await gw?.stop();
  await broker?.close();
  dir?.cleanup();
});

async function outcome(id: string, ms = 15_000): Promise<Record<string, unknown>> {
  const m = await waitFor(`the outcome of ${id}`, () => outcomes.messages.find((x) => x.topic === `streetbox/gw-central/commands/${id}`), ms);
  return JSON.parse(m.payload.toString()) as Record<string, unknown>;
}

async function send(message: unknown): Promise<void> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  await c.publishAsync('streetbox/gw-central/down/commands', typeof message === 'string' ? message : JSON.stringify(message), { qos: 1 });
  await c.endAsync();
}

describe('commands from central', () => {
  it('a dim reaches the controller and comes back verified, recorded with source central', async () => {
    await send({ id: 'c-dim-1', target: { kind: 'group', id: 'main' }, action: 'dim', level: 35 });
    const o = await outcome('c-dim-1');
    expect(o).toMatchObject({ id: 'c-dim-1', status: 'verified' });
    const commandId = (o.result as { commandId: string }).commandId;
    const row = gw.context.store.getCommand(commandId)!;
    expect(row.source).toEqual({ role: 'central', principal: 'upstream' });
    expect(row.target).toEqual({ kind: 'group', id: 'main' });
    // the verified read-back is a reading like any other, committed with the next batch
    await expect.poll(() => gw.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value, { timeout: 3000 }).toBe(35);
  });

  it('statuses only move forward: one outcome upstream, and the command.* events upstream in order queued, sent, verified', async () => {
    const up = await observe(broker.url, 'streetbox/gw-central/up/events');
    try {
      await send({ id: 'c-fwd-1', target: { kind: 'device', id: 'lamp-1' }, action: 'override', level: 45, durationS: 600, reason: 'forward' });
      const o = await outcome('c-fwd-1');
      expect(o).toMatchObject({ id: 'c-fwd-1', status: 'verified' });
      const commandId = (o.result as { commandId: string }).commandId;
      const upstream = (): StoredEvent[] =>
        up.messages
          .flatMap((m) => decodePayload(m.payload).items as StoredEvent[])
          .filter((e) => e.kind.startsWith('command.') && 'commandId' in e.detail && e.detail.commandId === commandId);
      await waitFor('command.verified upstream', () => upstream().some((e) => e.kind === 'command.verified'), 10_000);
      const statuses = upstream().map((e) => e.kind.slice('command.'.length) as CommandStatus);
      expect(statuses.every((s, i) => i === 0 || statusRank(s) >= statusRank(statuses[i - 1]!))).toBe(true);
      expect(statuses).toEqual(['queued', 'sent', 'verified']);
      // the outcome is published once, final
      expect(outcomes.messages.filter((m) => m.topic === 'streetbox/gw-central/commands/c-fwd-1')).toHaveLength(1);
    } finally {
      await up.close();
    }
  });

  it('a malformed or forbidden command is rejected with a reason and recorded with source central', async () => {
    await send({ id: 'c-bad-1', action: 'dim', level: 35 });
    expect(await outcome('c-bad-1')).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND' });

    await send({ id: 'c-bad-2', target: { kind: 'device', id: 'lamp-1' }, action: 'dim', level: 150 });
    const o2 = await outcome('c-bad-2');
    expect(o2.status).toBe('rejected');
    expect(String(o2.error)).toMatch(/level/);

    // a traffic controller without allowCommands: refused, never written
    await send({ id: 'c-bad-3', target: { kind: 'device', id: 'tc-1' }, action: 'program', program: 2, expiresInS: 60 });
    expect(await outcome('c-bad-3')).toMatchObject({ status: 'rejected', code: 'E_FORBIDDEN' });

    await send('{ not json');
    const rejected = () => gw.context.store.events({ after: 0, limit: 1000, kind: 'command.rejected' }).items;
    await expect.poll(() => rejected().length, { timeout: 5000 }).toBe(4);
    expect(rejected().every((e) => isEvent(e, 'command.rejected') && e.detail.source.role === 'central')).toBe(true);
  });
});

describe('the central handler awaits the outcome, on the gateway clock', () => {
  // the pipeline is a stand-in here: a row that stays `sent` until the test settles it
  const row = (status: CommandStatus): CommandRecord => ({
    id: 'cmd-1',
    ts: 0,
    source: { role: 'central', principal: 'upstream' },
    target: { kind: 'device', id: 'lamp-1' },
    action: 'dim',
    params: { level: 10 },
    priority: 60,
    expiresAt: null,
    status,
    result: null,
    updatedAt: 0,
  });
  function rigHandler(clock: FakeClock, waitMs: number): { handler: CommandHandler; settle: (r: CommandRecord) => void } {
    let settle: (r: CommandRecord) => void = () => undefined;
    const commands: CommandService = {
      submit: () => ({ row: row('queued'), outcome: new Promise<CommandRecord>((resolve) => (settle = resolve)) }),
      get: () => row('sent'),
      list: () => [],
    };
    const store = { appendEvent: () => undefined } as unknown as Store;
    return { handler: centralCommandHandler({ commands, store, clock, waitMs }), settle: (r) => settle(r) };
  }
  const message = { id: 'c-1', message: { id: 'c-1', target: { kind: 'device', id: 'lamp-1' }, action: 'dim', level: 10 }, topic: 't', receivedAt: 0 };

  it('publishes the final row as soon as the outcome comes', async () => {
    const clock = new FakeClock();
    const { handler, settle } = rigHandler(clock, 60_000);
    const pending = handler(message);
    settle(row('verified'));
    expect(await pending).toMatchObject({ id: 'c-1', status: 'verified', result: { commandId: 'cmd-1' } });
    expect(clock.pendingTimers).toBe(0);
  });

  it('publishes the status of the moment once waitMs has passed on the gateway clock', async () => {
    const clock = new FakeClock();
    const { handler } = rigHandler(clock, 60_000);
    let done: CommandOutcome | undefined;
    void handler(message).then((o) => (done = o));
    await clock.advance(59_999);
    expect(done).toBeUndefined();
    await clock.advance(1);
    expect(done).toMatchObject({ id: 'c-1', status: 'sent' });
  });
});
