/**
 * Secrets never reach a log line: passwords, tokens and LoRaWAN keys are redacted wherever they
 * sit in a logged object (a config section, a list of users, a detail inside an event), and the
 * objects the caller logged are left as they were.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactSecrets } from '../../edge/log.js';

function capture(): { lines: () => Record<string, unknown>[]; text: () => string; stream: Writable } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text, lines: () => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('log redaction', () => {
  it('redacts secret fields at any depth, inside arrays too, and keeps everything else', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out.stream });
    const config = {
      gateway: { id: 'gw-1' },
      sync: { url: 'mqtts://city.example:8883', username: 'gw-1', password: 'sync-pass-1', key: '/etc/streetbox/client.key' },
      api: { tokens: [{ name: 'central', token: 'tok-secret-0000000001', role: 'central' }] },
      broker: { users: [{ username: 'tech', password: 'broker-pass-1', role: 'technician' }] },
      lorawan: { devices: [{ devEui: '0011223344556677', abp: { devAddr: '26011bda', nwkSKey: 'a'.repeat(32), appSKey: 'b'.repeat(32) } }] },
      deep: { a: { b: { c: { d: { password: 'five-levels-down' } } } } },
      nodeRed: { credentialSecret: 'nr-secret-1', users: [{ username: 'anna', passwordHash: '$2b$10$abcdefghijklmnopqrstuv' }] },
    };
    const before = JSON.stringify(config);
    log.info({ config, headers: { authorization: 'Bearer tok-secret-0000000001' } }, 'configuration loaded');
    const text = out.text();
    for (const secret of ['sync-pass-1', 'tok-secret-0000000001', 'broker-pass-1', 'a'.repeat(32), 'b'.repeat(32), 'five-levels-down', 'nr-secret-1', '$2b$10$', 'client.key']) {
      expect(text, secret).not.toContain(secret);
    }
    const [line] = out.lines();
    const logged = line!.config as typeof config;
    expect(logged.sync).toEqual({ url: 'mqtts://city.example:8883', username: 'gw-1', password: '[redacted]', key: '[redacted]' });
    expect(logged.broker.users).toEqual([{ username: 'tech', password: '[redacted]', role: 'technician' }]);
    expect(logged.lorawan.devices[0]!.abp).toEqual({ devAddr: '26011bda', nwkSKey: '[redacted]', appSKey: '[redacted]' });
    expect(line!.headers).toEqual({ authorization: '[redacted]' });
    // the caller's object is untouched
    expect(JSON.stringify(config)).toBe(before);
  });

  it('copies nothing without a secret, and survives cycles and class instances', () => {
    const plain = { device: 'lamp-1', values: [1, 2, { point: 'dim', value: 40 }] };
    expect(redactSecrets(plain)).toBe(plain);
    const cyclic: Record<string, unknown> = { name: 'loop', token: 'tok-1' };
    cyclic.self = cyclic;
    const r = redactSecrets(cyclic);
    expect(r).toMatchObject({ name: 'loop', token: '[redacted]', self: '[circular]' });
    expect(cyclic.token).toBe('tok-1');
    const withObjects = { buf: Buffer.from('x'), when: new Date(0) };
    expect(redactSecrets(withObjects)).toBe(withObjects);
  });

  it('redacts a shared object each time it appears, cycles, any casing of secret names, URL passwords, errors and deep records', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out.stream });
    const shared = { password: 'SHARED-1' };
    const node: Record<string, unknown> = { password: 'CYCLE-1' };
    node.children = [{ parent: node }];
    log.info({ a: shared, b: shared, list: [shared, shared], node }, 'shared');
    log.info({ Authorization: 'Bearer HDRAUTH-1', 'x-api-key': 'APIKEY-1', privateKey: 'PRIV-1', AppKey: 'APPKEY-1', accessToken: 'ACCESS-1', client_secret: 'CSECRET-1', passwd: 'PASSWD-1', 'set-cookie': 'COOKIE-1' }, 'names');
    log.info({ url: 'mqtts://gw-1:URLPASS-1@city.example:8883', note: 'see https://example.org/a:b@c' }, 'url');
    const err = Object.assign(new Error('connect failed'), { code: 'E_SYNC', details: { password: 'ERRPASS-1' }, config: { headers: { authorization: 'ERRAUTH-1' } } });
    log.error({ err }, 'err key');
    log.error({ error: err }, 'error key');
    let deep: Record<string, unknown> = { password: 'DEEP-1' };
    for (let i = 0; i < 12; i++) deep = { next: deep };
    log.info({ deep }, 'deep');
    const text = out.text();
    for (const secret of ['SHARED-1', 'CYCLE-1', 'HDRAUTH-1', 'APIKEY-1', 'PRIV-1', 'APPKEY-1', 'ACCESS-1', 'CSECRET-1', 'PASSWD-1', 'COOKIE-1', 'URLPASS-1', 'ERRPASS-1', 'ERRAUTH-1', 'DEEP-1']) {
      expect(text, secret).not.toContain(secret);
    }
    const lines = out.lines();
    expect(lines[0]).toMatchObject({ a: { password: '[redacted]' }, b: { password: '[redacted]' }, list: [{ password: '[redacted]' }, { password: '[redacted]' }] });
    expect(lines[2]).toMatchObject({ url: 'mqtts://gw-1:[redacted]@city.example:8883' });
    // the error is still an error in the log: type, message, stack, its own fields
    expect(lines[3]!.err).toMatchObject({ type: 'Error', message: 'connect failed', code: 'E_SYNC', details: { password: '[redacted]' } });
    expect(String((lines[3]!.err as { stack: string }).stack)).toContain('connect failed');
    expect(lines[4]!.error).toMatchObject({ message: 'connect failed', config: { headers: { authorization: '[redacted]' } } });
    expect(JSON.stringify(lines[5])).toContain('[too deep]');
  });

  it('redaction of a large record stays linear', () => {
    const big = { rows: Array.from({ length: 200_000 }, (_, i) => ({ i, v: i * 2 })) };
    const t0 = performance.now();
    expect(redactSecrets(big)).toBe(big);
    // bounded, not timed: a quadratic walk of 200k objects takes seconds (measured before the fix)
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});
