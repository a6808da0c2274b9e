/**
 * Issue 13, defect 5: "deep JSON answers 500". 60 KB of nested brackets reached the command
 * validator, which overflowed the stack: 500 over HTTP, "command submit failed" on an MQTT set
 * topic, an outcome of `error` for central, and no refusal recorded. Every door now checks the
 * size and nesting of the text (edge/jsonLimits.ts) before it is parsed: HTTP answers 400 with
 * the reason and counts it, MQTT and central get the refusal published, and each is recorded.
 *
 * A real gateway in this process: the HTTP API, the embedded broker, the upstream sync to a real
 * mosquitto, a simulated streetlight controller, the real command pipeline.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonBreach, MAX_JSON_DEPTH } from '../../edge/jsonLimits.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import { connect } from '../broker/support.js';
import { waitFor } from '../helpers/wait.js';
import { tempGateway } from '../support/cli.js';
import { captureLog, observe, type LogCapture, type Observer } from '../sync/helpers.js';
import { startMosquitto, type Mosquitto } from '../sync/mosquitto.js';

const GW = 'deep-gw';
const TOKEN = 'deep-technician-token-000001';
const REASON = `JSON nested deeper than ${MAX_JSON_DEPTH} levels`;

/** 60 KB of text in each shape */
const ARRAYS = '['.repeat(30_000) + ']'.repeat(30_000);
const OBJECTS = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
/** a command whose one field is 60 KB of arrays: reaches the validator's field checks */
const LEVEL = `{"action":"dim","level":${'['.repeat(29_000)}40${']'.repeat(29_000)},"transaction":"t-deep"}`;
const DEEP = { ARRAYS, OBJECTS, LEVEL };

let upstream: Mosquitto;
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let capture: LogCapture;
let base: string;

beforeAll(async () => {
  upstream = await startMosquitto();
  dir = tempGateway(`
gateway: { id: ${GW} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 1s, groups: [main] }
broker:
  host: 127.0.0.1
  port: 0
  users:
    - { username: tech, password: tech-password-0001, role: technician }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TOKEN}, role: technician }
sync: { url: '${upstream.url}', reconnectMin: 100ms, reconnectMax: 1s }
simulate: true
`);
  capture = captureLog();
  gw = await startGateway({ configPath: dir.config, log: capture.log });
  base = `http://127.0.0.1:${gw.built.api!.port()}`;
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
  dir?.cleanup();
});

async function refusedCount(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  return Number(/^streetbox_http_json_refused_total\{limit="depth"\} (\d+)$/m.exec(text)?.[1]);
}

describe('the limits (edge/jsonLimits.ts)', () => {
  it('counts nesting without recursion; brackets in strings do not count', () => {
    const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    expect(jsonBreach(nested(MAX_JSON_DEPTH))).toBeNull();
    expect(jsonBreach(nested(MAX_JSON_DEPTH + 1))).toEqual({ limit: 'depth', reason: REASON });
    expect(jsonBreach(JSON.stringify({ text: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', quoted: '\\"[[[[[[[[[[[[[[[[[[[[' }))).toBeNull();
    expect(jsonBreach(Buffer.from(OBJECTS))).toMatchObject({ limit: 'depth' });
    expect(jsonBreach('"' + 'x'.repeat(70_000) + '"')).toEqual({ limit: 'bytes', reason: 'JSON larger than 65536 bytes' });
  });
});

describe('HTTP: POST /api/v1/devices/:id/commands', () => {
  it.each(Object.entries(DEEP))('60 KB of nesting (%s) is 400 with the reason, recorded and counted', async (_name, text) => {
    const before = await refusedCount();
    const r = await fetch(`${base}/api/v1/devices/lamp-1/commands`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: text });
    const body = (await r.json()) as { status: string; code: string; error: string; field: string; id: string };
    expect(r.status).toBe(400);
    expect(body).toMatchObject({ status: 'error', code: 'E_INVALID_COMMAND', error: `body: ${REASON}`, field: 'body' });
    const row = gw.context.store.getCommand(body.id);
    expect(row?.status).toBe('rejected');
    expect(row?.result).toMatchObject({ code: 'E_INVALID_COMMAND', error: expect.stringContaining(REASON) });
    expect(await refusedCount()).toBe(before + 1);
  });

  it('nesting at the limit goes on to the validator', async () => {
    const body = JSON.stringify({ action: 'dim', level: 40, extra: JSON.parse('['.repeat(MAX_JSON_DEPTH - 1) + ']'.repeat(MAX_JSON_DEPTH - 1)) as unknown });
    const r = await fetch(`${base}/api/v1/devices/lamp-1/commands`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` }, body });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toMatch(/^extra: unknown field/);
  });
});

describe('MQTT: devices/<id>/set on the embedded broker', () => {
  it('publishes the refusal with the reason on commands/<id>; no "command submit failed"', async () => {
    const c = await connect(gw.built.broker!.port(), 'tech', 'tech-password-0001');
    try {
      await c.client.subscribeAsync(`streetbox/${GW}/commands/+`, { qos: 1 });
      for (const text of Object.values(DEEP)) await c.client.publishAsync(`streetbox/${GW}/devices/lamp-1/set`, text, { qos: 1 });
      const refusals = (): Record<string, unknown>[] => c.messages.map((m) => JSON.parse(m.payload) as Record<string, unknown>).filter((p) => p['status'] === 'rejected');
      await waitFor('three refusals on commands/<id>', () => refusals().length >= 3, 5000);
      for (const p of refusals()) expect(p).toMatchObject({ status: 'rejected', target: { kind: 'device', id: 'lamp-1' }, result: { code: 'E_INVALID_COMMAND', error: expect.stringContaining(REASON) } });
      expect(capture.lines.filter((l) => l['msg'] === 'command submit failed')).toEqual([]);
      expect(c.closed).toBe(false);
    } finally {
      await c.end();
    }
  });
});

describe('central: down/commands over the upstream link', () => {
  let outcomes: Observer;
  beforeAll(async () => {
    outcomes = await observe(upstream.url, `streetbox/${GW}/commands/#`);
    // the sync publishes its status after subscribing to down/commands: then the subscription holds
    const status = await observe(upstream.url, `streetbox/${GW}/status`);
    try {
      await waitFor('the sync online upstream', () => status.messages.some((m) => m.payload.toString() === 'online'), 10_000);
    } finally {
      await status.close();
    }
  });
  afterAll(async () => {
    await outcomes?.close();
  });

  it('rejects deep messages with the reason and records them', async () => {
    const c = await mqtt.connectAsync(upstream.url, { reconnectPeriod: 0 });
    try {
      for (const text of Object.values(DEEP)) await c.publishAsync(`streetbox/${GW}/down/commands`, text, { qos: 1 });
    } finally {
      await c.endAsync();
    }
    const got = (): Record<string, unknown>[] => outcomes.messages.map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
    await waitFor('three outcomes from central commands', () => got().length >= 3, 15_000);
    for (const o of got()) expect(o).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND', error: `malformed command: ${REASON}` });
    const recorded = gw.context.store.events({ after: 0, limit: 10_000 }).items.filter((e) => isEvent(e, 'command.rejected')).filter((e) => e.detail.error === `malformed command: ${REASON}`);
    expect(recorded).toHaveLength(3);
  });
});
