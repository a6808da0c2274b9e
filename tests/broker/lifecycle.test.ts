/**
 * The broker's listeners and lifecycle: MQTT over TLS with a certificate made by the test,
 * anonymous clients when the config allows them (as viewers), a bad TLS config, and the
 * retained status going offline on stop.
 *
 * The command pipeline is the small in-test CommandService of tests/api/support/commands.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import type { TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingCommands } from '../api/support/commands.js';
import { GW, KNOWN, gatewayContext } from '../api/support/context.js';
import { connect, connectCode, subscribeCodes } from './support.js';

const cleanups: (() => Promise<void>)[] = [];
/** the config dir of the last broker started (where its certificate files are) */
let lastDir = '';
const cleanupDir = (): string => lastDir;
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startBroker(broker: ConfigInput['broker'], prepare?: (dir: string) => void): Promise<{ t: TestContext; b: BrokerComponent; commands: RecordingCommands }> {
  const t = gatewayContext({ broker });
  cleanups.push(() => t.close());
  lastDir = t.ctx.configDir;
  prepare?.(t.ctx.configDir);
  const commands = new RecordingCommands(t.store, KNOWN);
  const b = createBroker(t.ctx, { commands });
  cleanups.push(() => b.stop());
  await b.start();
  return { t, b, commands };
}

const USERS = [{ username: 'tech', password: 'tech-password-123', role: 'technician' as const }];

/** A self-signed certificate for 127.0.0.1 (EC P-256), valid one day. */
function makeCert(dir: string, cert: string, key: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, key), '-out', join(dir, cert), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
}

describe('broker lifecycle', () => {
  it('serves MQTT over TLS on tlsPort with the configured certificate', async () => {
    const { b } = await startBroker({ host: '127.0.0.1', port: 0, tlsPort: 0, tls: { cert: 'cert.pem', key: 'key.pem' }, users: USERS }, (dir) => {
      makeCert(dir, 'cert.pem', 'key.pem');
    });
    const tlsPort = b.tlsPort()!;
    expect(tlsPort).toBeGreaterThan(0);
    expect(tlsPort).not.toBe(b.port());
    const ca = readFileSync(join(cleanupDir(), 'cert.pem'));
    const c = await connect(tlsPort, 'tech', 'tech-password-123', { ca, rejectUnauthorized: true }, 'mqtts');
    try {
      await c.client.subscribeAsync(`streetbox/${GW}/status`, { qos: 1 });
      const [m] = await c.waitMessages(`streetbox/${GW}/status`);
      expect(m!.payload).toBe('online');
    } finally {
      await c.end();
    }
    // a client that does not trust the certificate cannot connect
    await expect(connect(tlsPort, 'tech', 'tech-password-123', { rejectUnauthorized: true }, 'mqtts')).rejects.toThrow();
  });

  it('refuses to start with tlsPort but no certificate files', async () => {
    const t = gatewayContext({ broker: { host: '127.0.0.1', port: 0, tlsPort: 0, tls: { cert: 'missing.pem', key: 'missing-key.pem' }, users: USERS } });
    cleanups.push(() => t.close());
    const b = createBroker(t.ctx, { commands: new RecordingCommands(t.store, KNOWN) });
    cleanups.push(() => b.stop());
    await expect(b.start()).rejects.toThrow(/broker\.tls\.cert: cannot read missing\.pem/);
    // the supervisor retries: once the files are there, the same component starts
    makeCert(t.ctx.configDir, 'missing.pem', 'missing-key.pem');
    await b.start();
    expect(b.tlsPort()).toBeGreaterThan(0);
    expect(await connectCode(b.port(), 'tech', 'tech-password-123')).toBe(0);
  });

  it('lets anonymous clients in as viewers only when allowAnonymous is true', async () => {
    const { b, commands } = await startBroker({ host: '127.0.0.1', port: 0, allowAnonymous: true, users: USERS });
    const c = await connect(b.port());
    try {
      expect(await subscribeCodes(c, [`streetbox/${GW}/#`, '#'])).toEqual([1, 128]);
      c.client.publish(`streetbox/${GW}/devices/lamp-1/set`, '{"action":"on"}', { qos: 1 });
      await waitFor('anonymous publish refused', () => c.closed, 3000);
      expect(commands.calls).toEqual([]);
    } finally {
      await c.end();
    }
    // a wrong password is still refused
    expect(await connectCode(b.port(), 'tech', 'nope-nope-nope')).toBe(4);
  });

  it('publishes status offline on stop, and can start again', async () => {
    const { b } = await startBroker({ host: '127.0.0.1', port: 0, users: USERS });
    const c = await connect(b.port(), 'tech', 'tech-password-123');
    await c.client.subscribeAsync(`streetbox/${GW}/status`, { qos: 1 });
    await c.waitMessages(`streetbox/${GW}/status`);
    await b.stop();
    await b.stop(); // idempotent
    const ms = await c.waitMessages(`streetbox/${GW}/status`, 2);
    expect(ms.map((m) => m.payload)).toEqual(['online', 'offline']);
    await waitFor('client closed by stop', () => c.closed, 3000);
    await b.start();
    expect(await connectCode(b.port(), 'tech', 'tech-password-123')).toBe(0);
  });
});
