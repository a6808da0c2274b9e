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
    expect(r.token).toBe('[redacted]');
    expect(cyclic.token).toBe('tok-1');
    const err = Object.assign(new Error('boom'), { code: 'E_X' });
    const withErr = { err, buf: Buffer.from('x'), when: new Date(0) };
    expect(redactSecrets(withErr)).toBe(withErr);
  });
});
