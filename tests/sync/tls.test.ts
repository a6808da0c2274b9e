/**
 * TLS and credentials against a real mosquitto: mutual TLS with a CA and certificates made by
 * the test drains normally; a server certificate that does not verify, or a wrong password,
 * gives one clear error (logged once however many retries), keeps retrying and marks nothing
 * synced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncComponent } from '../../cloud-sync/index.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import { makeContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { makePki, type TestPki } from './certs.js';
import { GW, captureLog, outputSeqs, receiverSubscribed, startReceiver, storeSeqs, writeBacklog } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

let dir: TempDir;
let pki: TestPki;
let tlsBroker: Mosquitto;
let authBroker: Mosquitto;

beforeAll(async () => {
  dir = tempDir('streetbox-sync-tls-');
  pki = makePki(dir);
  tlsBroker = await startMosquitto({ tls: { cafile: pki.ca, certfile: pki.serverCert, keyfile: pki.serverKey, requireCertificate: true } });
  authBroker = await startMosquitto({
    users: [
      { username: 'gw', password: 'right-secret' },
      { username: 'central', password: 'central-secret' },
      { username: 'readonly', password: 'ro-secret' },
    ],
    acl: 'user gw\ntopic readwrite streetbox/#\n\nuser central\ntopic readwrite streetbox/#\n\nuser readonly\ntopic read streetbox/#\n',
  });
});
afterAll(async () => {
  await tlsBroker?.close();
  await authBroker?.close();
  dir?.remove();
});

type SyncInput = NonNullable<ConfigInput['sync']>;

/** Runs a sync that cannot connect for a while; returns its status, the log and the cursor. */
async function failingSync(sync: SyncInput) {
  const cap = captureLog();
  const t = makeContext({ gateway: { id: GW }, sync: { reconnectMin: 30, reconnectMax: 60, ...sync } }, { log: cap.log });
  const s = createSyncComponent(t.ctx);
  try {
    writeBacklog(t.store, 500, { eventEvery: 0 });
    await s.start();
    await waitFor('four failed attempts', () => cap.lines.filter((l) => l.msg === 'upstream retry scheduled').length >= 4, 10_000);
    return { status: s.status(), cap, acked: t.store.consumer('upstream')?.ackedSeq };
  } finally {
    await s.stop();
    await t.close();
  }
}

describe('TLS and credentials', () => {
  it("MQTT 5: a publish the broker's ACL refuses (PUBACK 0x87) is not marked synced; one clear error, retries", async () => {
    const { status, cap, acked } = await failingSync({ url: authBroker.url, username: 'readonly', password: 'ro-secret', protocolVersion: 5 });
    expect(acked).toBe(0);
    expect(status.ackedSeq).toBe(0);
    expect(status.lastError).toMatch(/refused batch 1\.\.500: Not authorized \(0x87\) \(check the broker's ACL/);
    expect(cap.count('upstream connection lost; reconnecting')).toBe(1);
  });

  it('drains over mutual TLS with the CA, client certificate and key read from files', async () => {
    const t = makeContext({ gateway: { id: GW }, sync: { url: tlsBroker.url, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    const out = dir.file('tls.jsonl');
    const receiver = startReceiver({ broker: tlsBroker.url, out, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    const s = createSyncComponent(t.ctx);
    try {
      await receiverSubscribed(tlsBroker, receiver);
      writeBacklog(t.store, 3000, { eventEvery: 500 });
      await s.start();
      const total = storeSeqs(t.store).length;
      await receiver.waitItems(total, 15_000);
      await waitFor('cursor caught up', () => s.status().lagSeq === 0, 5000);
      await receiver.stop();
      expect(outputSeqs(out)).toEqual(storeSeqs(t.store));
    } finally {
      await s.stop();
      await receiver.stop();
      await t.close();
    }
  });

  it('refuses a broker certificate that does not verify: one clear error, retries, nothing synced', async () => {
    const { status, cap, acked } = await failingSync({ url: tlsBroker.url, ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey });
    expect(status.connected).toBe(false);
    expect(status.lastError).toMatch(/certificate does not verify/);
    expect(status.ackedSeq).toBe(0);
    expect(status.sentBatches).toBe(0);
    expect(acked).toBe(0);
    expect(cap.count('upstream unavailable; retrying with backoff')).toBe(1);
  });

  it('reports an unreadable CA file as a configuration error, and retries', async () => {
    const { status, cap } = await failingSync({ url: tlsBroker.url, ca: dir.file('missing-ca.crt') });
    expect(status.lastError).toMatch(/sync\.ca: cannot read .*missing-ca\.crt/);
    expect(cap.count('upstream unavailable; retrying with backoff')).toBe(1);
  });

  it('refuses wrong credentials: one clear error, retries, nothing synced; the right ones drain', async () => {
    const { status, cap, acked } = await failingSync({ url: authBroker.url, username: 'gw', password: 'wrong-secret' });
    expect(status.connected).toBe(false);
    expect(status.lastError).toMatch(/refused the login: Not authorized|refused the login: Bad username or password/);
    expect(acked).toBe(0);
    expect(cap.count('upstream unavailable; retrying with backoff')).toBe(1);
    // the password never reaches the log
    expect(JSON.stringify(cap.lines)).not.toContain('wrong-secret');

    const t = makeContext({ gateway: { id: GW }, sync: { url: authBroker.url, username: 'gw', password: 'right-secret', protocolVersion: 5 } });
    const out = dir.file('auth.jsonl');
    const receiver = startReceiver({ broker: authBroker.url, out, username: 'central', password: 'central-secret', protocolVersion: 5 });
    const s = createSyncComponent(t.ctx);
    try {
      await receiverSubscribed(authBroker, receiver);
      writeBacklog(t.store, 2000, { eventEvery: 400 });
      await s.start();
      await receiver.waitItems(storeSeqs(t.store).length, 15_000);
      await receiver.stop();
      expect(outputSeqs(out)).toEqual(storeSeqs(t.store));
    } finally {
      await s.stop();
      await receiver.stop();
      await t.close();
    }
  });
});
