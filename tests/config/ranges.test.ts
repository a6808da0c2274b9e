/**
 * Issue 13, defect 6: values that validated but broke the runtime (`flushInterval:
 * 99999999999999999999d` fired every 1 ms; `poll: 0.0000001ms`, `timeout: 0ms`, port 0).
 * Every duration of a devices.yaml keeps to its field's range, in whole milliseconds a timer
 * can hold; every port is 1..65535, 0 ("any free port") only on a test or bench gateway.
 */
import type { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, parseConfig } from '../../edge/config/index.js';
import { kindOf, MAX_TIMER_MS } from '../../edge/config/scalars.js';
import { forEachField, unwrap } from '../../edge/config/schemaWalk.js';

const parse = (text: string) => parseConfig(text, { file: 'devices.yaml', dir: '/tmp', env: {} });

function issues(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const BUS = "buses: [{ id: b, type: tcp, host: 10.0.0.5 }]\ndevices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller }]";

describe('durations keep to their field’s range, at their line and column', () => {
  it.each([
    // the defect report's values
    ['storage: { flushInterval: 99999999999999999999d }', '2:27 storage.flushInterval: expected a duration 10ms..1h, got "99999999999999999999d"'],
    ['devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller, poll: 0.0000001ms }]\nbuses: [{ id: b, type: tcp, host: h }]', '2:76 devices[0].poll: expected a duration 100ms..1d, got "0.0000001ms"'],
    ['buses: [{ id: b, type: tcp, host: h, timeout: 0ms }]', '2:47 buses[0].timeout: expected a duration 10ms..60s, got "0ms"'],
    ['buses: [{ id: b, type: tcp, host: h, probeInterval: 0ms }]', '2:53 buses[0].probeInterval: expected a duration 1s..1d, got "0ms"'],
    // past what a timer holds, as a number of ms
    ['devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller, poll: 2147483648 }]\nbuses: [{ id: b, type: tcp, host: h }]', '2:76 devices[0].poll: expected a duration 100ms..1d, got 2147483648'],
    // a fraction of a millisecond, inside the range
    ['devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller, poll: 100.5ms }]\nbuses: [{ id: b, type: tcp, host: h }]', '2:76 devices[0].poll: expected a whole number of milliseconds, got "100.5ms"'],
    ['buses: [{ id: b, type: serial, path: /dev/x, interByteSlack: 2s }]', '2:62 buses[0].interByteSlack: expected a duration 0ms..1s, got "2s"'],
    ['sync: { url: "mqtt://h", ackTimeout: 10, reconnectMin: 1ms, reconnectMax: 2d }', '2:38 sync.ackTimeout: expected a duration 1s..1h, got 10'],
    ['storage: { flushInterval: 2h }', '2:27 storage.flushInterval: expected a duration 10ms..1h, got "2h"'],
  ])('%s', (yaml, expected) => {
    expect(issues(`gateway: { id: gw }\n${yaml}`)[0]).toBe(expected);
  });

  it('reports every duration out of range at once, also in a file with other issues', () => {
    expect(issues('gateway: { id: gw }\nsync: { url: "mqtt://h", ackTimeout: 10, reconnectMin: 1ms, reconnectMax: 2d }\nstorage: { durability: fast, flushInterval: 0 }')).toEqual([
      '2:38 sync.ackTimeout: expected a duration 1s..1h, got 10',
      '2:56 sync.reconnectMin: expected a duration 100ms..1h, got "1ms"',
      '2:75 sync.reconnectMax: expected a duration 1s..1d, got "2d"',
      '3:24 storage.durability: expected one of full, normal, got "fast"',
      '3:45 storage.flushInterval: expected a duration 10ms..1h, got 0',
    ]);
  });

  it('takes the ends of each range', () => {
    const { config } = parse(
      'gateway: { id: gw }\nstorage: { flushInterval: 1h }\nbuses: [{ id: b, type: serial, path: /dev/x, timeout: 10ms, probeInterval: 1d, interByteSlack: 0 }]\n' +
        'devices: [{ id: d, bus: b, unit: 1, profile: streetlight-controller, poll: 100ms }]\nlorawan: { dedupWindow: 0ms }\nsync: { url: "mqtt://h", reconnectMin: 1.5s }',
    );
    expect(config.storage.flushInterval).toBe(3_600_000);
    expect(config.buses[0]).toMatchObject({ timeout: 10, probeInterval: 86_400_000, interByteSlack: 0 });
    expect(config.devices[0]!.poll).toBe(100);
    expect(config.lorawan!.dedupWindow).toBe(0);
    expect(config.sync!.reconnectMin).toBe(1500);
  });

  it('every duration and port of the schema has a range a timer can hold, and its default is inside it', () => {
    const found: string[] = [];
    const visitDefaults = (s: z.core.$ZodType, path: string): void => {
      const kind = kindOf(unwrap(s));
      const def = s._zod.def as unknown as { type: string; defaultValue?: unknown; innerType?: z.core.$ZodType; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType; options?: z.core.$ZodType[] };
      if (kind?.range !== undefined) {
        found.push(path);
        expect(kind.range.min, path).toBeGreaterThanOrEqual(kind.port ? 1 : 0);
        expect(kind.range.max, path).toBeLessThanOrEqual(kind.port ? 65535 : MAX_TIMER_MS);
        if (def.type === 'default') {
          const dflt = (s as z.ZodType).parse(undefined) as number;
          expect(dflt, `${path} default`).toBeGreaterThanOrEqual(kind.range.min);
          expect(dflt, `${path} default`).toBeLessThanOrEqual(kind.range.max);
        }
        return;
      }
      const inner = unwrap(s);
      const d = inner._zod.def as unknown as typeof def;
      if (d.type === 'object') for (const [k, v] of Object.entries(d.shape ?? {})) visitDefaults(v, path === '' ? k : `${path}.${k}`);
      if (d.type === 'array' && d.element) visitDefaults(d.element, `${path}[]`);
      if (d.type === 'union') (d.options ?? []).forEach((o) => visitDefaults(o, path));
    };
    visitDefaults(configSchema as z.core.$ZodType, '');
    expect(found).toEqual(expect.arrayContaining(['storage.flushInterval', 'buses[].timeout', 'buses[].probeInterval', 'buses[].interByteSlack', 'buses[].port', 'devices[].poll', 'lorawan.port', 'lorawan.dedupWindow', 'broker.port', 'broker.tlsPort', 'api.port', 'sync.ackTimeout', 'sync.reconnectMin', 'sync.reconnectMax']));
  });

  it('forEachField visits every value with its schema (the walk the range check makes)', () => {
    const seen: string[] = [];
    forEachField(configSchema as z.core.$ZodType, { gateway: { id: 'gw' }, buses: [{ id: 'b', type: 'tcp', host: 'h', port: 502 }] }, (schema, value, path) => {
      if (kindOf(unwrap(schema)) !== undefined) seen.push(`${path.join('.')}=${String(value)}`);
    });
    expect(seen).toEqual(['buses.0.port=502']);
  });
});

describe('ports are 1..65535; 0 (any free port) only on a test or bench gateway', () => {
  it.each([
    ['api: { port: 0 }', '2:14 api.port: expected a port 1..65535 (0, any free port, only with simulate: true), got 0'],
    ['broker: { port: 0 }', '2:17 broker.port: expected a port 1..65535 (0, any free port, only with simulate: true), got 0'],
    ['broker: { tlsPort: 0, tls: { cert: c.pem, key: k.pem } }', '2:20 broker.tlsPort: expected a port 1..65535 (0, any free port, only with simulate: true), got 0'],
    ['lorawan: { port: 0 }', '2:18 lorawan.port: expected a port 1..65535 (0, any free port, only with simulate: true), got 0'],
    ['buses: [{ id: b, type: tcp, host: 10.0.0.5, port: 0 }]', '2:51 buses[0].port: expected a port 1..65535 (0, any free port, only with simulate: true or on a loopback host), got 0'],
    ['api: { port: 65536 }', '2:14 api.port: expected a port 1..65535, got 65536'],
  ])('%s', (yaml, expected) => {
    expect(issues(`gateway: { id: gw }\n${yaml}`)).toEqual([expected]);
  });

  it('takes port 0 with simulate: true, for a disabled service, and for a Modbus TCP device on a loopback host', () => {
    const simulated = parse(`gateway: { id: gw }\n${BUS.replace('10.0.0.5', '10.0.0.5, port: 0')}\napi: { port: 0 }\nbroker: { port: 0 }\nlorawan: { port: 0 }\nsimulate: true`).config;
    expect([simulated.api.port, simulated.broker.port, simulated.lorawan!.port, simulated.buses[0]!.type === 'tcp' && simulated.buses[0]!.port]).toEqual([0, 0, 0, 0]);
    expect(parse('gateway: { id: gw }\napi: { port: 0 }\nsimulate: { speed: 2 }').config.api.port).toBe(0);
    expect(parse('gateway: { id: gw }\nbroker: { enabled: false, port: 0 }\napi: { enabled: false, port: 0 }').config.broker.port).toBe(0);
    expect(parse('gateway: { id: gw }\nbuses: [{ id: b, type: tcp, host: 127.0.0.1, port: 0 }]\nsimulate: false').config.buses).toHaveLength(1);
    // simulate given but switched off is not a test gateway
    expect(issues('gateway: { id: gw }\napi: { port: 0 }\nsimulate: { enabled: false }')).toEqual(['2:14 api.port: expected a port 1..65535 (0, any free port, only with simulate: true), got 0']);
  });
});

describe('the schema itself (for code and tests that build a config) takes what the runtime can hold', () => {
  it('accepts poll 0 (back to back, as a benchmark polls) and port 0, and refuses what no timer holds', () => {
    const config = configSchema.parse({
      gateway: { id: 'gw' },
      buses: [{ id: 'b', type: 'tcp', host: 'h', port: 0, probeInterval: 150 }],
      devices: [{ id: 'd', bus: 'b', unit: 1, profile: 'streetlight-controller', poll: 0 }],
      api: { port: 0 },
    });
    expect([config.devices[0]!.poll, config.api.port]).toEqual([0, 0]);
    expect(configSchema.safeParse({ gateway: { id: 'gw' }, storage: { flushInterval: '99999999999999999999d' } }).success).toBe(false);
    expect(configSchema.safeParse({ gateway: { id: 'gw' }, storage: { flushInterval: MAX_TIMER_MS + 1 } }).success).toBe(false);
    expect(configSchema.safeParse({ gateway: { id: 'gw' }, storage: { flushInterval: 0.5 } }).success).toBe(false);
  });
});
