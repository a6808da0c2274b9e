/**
 * Issue 14 item 7: a command's statuses only move forward, whichever door it came through. The
 * embedded broker (aedes, a real mqtt.js client on loopback) and the HTTP API with its live feed,
 * in front of the real command pipeline, Modbus driver and simulator (tests/controlPipeline rig).
 * Before, a light dimmed over MQTT published `queued, sent, queued, verified` on commands/<id>:
 * the row submit returned was republished after the bus had carried "sent".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import { statusRank } from '../../edge/control/api.js';
import type { CommandStatus } from '../../edge/store/types.js';
import { settled, startRig, waitFor, type Rig } from '../controlPipeline/rig.js';
import { connect } from './support.js';

const GW = 'gw-forward';
const TECH = 'forward-tech-token-0123456789';

let rig: Rig;
let broker: BrokerComponent;
let api: ApiComponent;

beforeAll(async () => {
  rig = await startRig({
    config: {
      gateway: { id: GW },
      broker: { host: '127.0.0.1', port: 0, users: [{ username: 'city', password: 'city-password-1', role: 'central' }] },
      api: { host: '127.0.0.1', port: 0, tokens: [{ name: 'tech', token: TECH, role: 'technician' }] },
    },
  });
  await settled(rig);
  broker = createBroker(rig.t.ctx, { commands: rig.control, deviceKind: (id) => rig.control.deviceKind(id) });
  await broker.start();
  api = createApi(rig.t.ctx, { commands: rig.control, status: () => ({ components: [] }) });
  await api.start();
});

afterAll(async () => {
  await api?.stop();
  await broker?.stop();
  await rig?.close();
});

const FINAL = new Set<string>(['verified', 'failed', 'expired', 'rejected']);
const forward = (statuses: readonly CommandStatus[]): boolean => statuses.every((s, i) => i === 0 || statusRank(s) >= statusRank(statuses[i - 1]!));

describe('command statuses only move forward', () => {
  it.each([
    ['a light dimmed', 'devices/lamp-1/set', { action: 'dim', level: 45, durationS: 600 }],
    ['a group overridden', 'groups/main/set', { action: 'override', level: 65, durationS: 600, reason: 'forward' }],
    ['a traffic program requested', 'devices/tc-1/set', { action: 'program', program: 2, expiresInS: 30 }],
  ])('over MQTT: %s publishes queued, sent, verified on commands/<id>, each once', async (_what, set, body) => {
    const c = await connect(broker.port(), 'city', 'city-password-1');
    try {
      await c.client.subscribeAsync(`streetbox/${GW}/commands/+`, { qos: 1 });
      const transaction = `fwd-${set}`;
      await c.client.publishAsync(`streetbox/${GW}/${set}`, JSON.stringify({ ...body, transaction }), { qos: 1 });
      const mine = (): { status: CommandStatus; id: string }[] =>
        c.messages.map((m) => JSON.parse(m.payload) as { status: CommandStatus; id: string; transaction?: string }).filter((p) => p.transaction === transaction);
      await waitFor('a final status on commands/<id>', () => mine().some((p) => FINAL.has(p.status)), 5000);
      const id = mine()[0]!.id;
      // nothing more comes for it: its row is final in the store and the broker has published what the bus carried
      await waitFor('the row final in the store', () => FINAL.has(rig.t.store.getCommand(id)?.status ?? 'queued'), 5000);
      const statuses = mine().map((p) => p.status);
      expect(forward(statuses)).toBe(true);
      expect(statuses).toEqual(['queued', 'sent', 'verified']);
    } finally {
      await c.end();
    }
  });

  it('over MQTT: a refused command publishes rejected once, and nothing is published for it after', async () => {
    const c = await connect(broker.port(), 'city', 'city-password-1');
    try {
      await c.client.subscribeAsync(`streetbox/${GW}/commands/+`, { qos: 1 });
      await c.client.publishAsync(`streetbox/${GW}/devices/lamp-1/set`, JSON.stringify({ action: 'dim', level: 150, transaction: 'fwd-150' }), { qos: 1 });
      await c.client.publishAsync(`streetbox/${GW}/devices/lamp-1/set`, JSON.stringify({ action: 'dim', level: 50, durationS: 60, transaction: 'fwd-after' }), { qos: 1 });
      // a later command's verified shows the broker has published everything that came before it
      await waitFor('the later command verified', () => c.messages.some((m) => m.payload.includes('fwd-after') && m.payload.includes('"verified"')), 5000);
      const refused = c.messages.map((m) => JSON.parse(m.payload) as { status: string; transaction?: string }).filter((p) => p.transaction === 'fwd-150');
      expect(refused.map((p) => p.status)).toEqual(['rejected']);
    } finally {
      await c.end();
    }
  });

  it('over HTTP: 202 queued, then the live feed and GET /api/v1/commands/:id never show a status behind one already shown', async () => {
    const ac = new AbortController();
    const live = await fetch(`http://127.0.0.1:${api.port()}/api/v1/live`, { headers: { Authorization: `Bearer ${TECH}` }, signal: ac.signal });
    expect(live.status).toBe(200);
    let text = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of live.body as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
      } catch {
        // aborted at the end of the test
      }
    })();
    try {
      await waitFor('the snapshot', () => text.includes('event: snapshot'), 10_000);
      const r = await fetch(`http://127.0.0.1:${api.port()}/api/v1/groups/main/commands`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TECH}` },
        body: JSON.stringify({ action: 'override', level: 25, durationS: 600, reason: 'forward' }),
      });
      expect(r.status).toBe(202);
      const { id, status } = (await r.json()) as { id: string; status: CommandStatus };
      expect(status).toBe('queued');
      const seen: CommandStatus[] = [status];
      await waitFor('verified, polled over HTTP', async () => {
        const got = await fetch(`http://127.0.0.1:${api.port()}/api/v1/commands/${id}`, { headers: { Authorization: `Bearer ${TECH}` } });
        const row = (await got.json()) as { status: CommandStatus };
        seen.push(row.status);
        return row.status === 'verified';
      }, 10_000);
      expect(forward(seen)).toBe(true);

      const fromFeed = (): CommandStatus[] =>
        text
          .split('\n\n')
          .filter((f) => f.startsWith('event: update'))
          .flatMap((f) => ((JSON.parse(/^data: (.*)$/m.exec(f)![1]!) as { commands?: { id: string; status: CommandStatus }[] }).commands ?? []))
          .filter((c) => c.id === id)
          .map((c) => c.status);
      await waitFor('verified on the live feed', () => fromFeed().includes('verified'), 10_000);
      // the feed coalesces to the latest value per command: what it carries only moves forward
      expect(forward(fromFeed())).toBe(true);
    } finally {
      ac.abort();
      await reading;
    }
  });
});
