/**
 * HTTPS for the API, the status page and the Node-RED editor (api.tls), and the plain-HTTP port
 * that only redirects (api.redirectPort), on the demo gateway in this process, read with real curl
 * against a CA made here with openssl (tests/sync/certs.ts): the CA verifies the gateway, nothing
 * else does; answers carry HSTS; plain HTTP on the TLS port gets no API answer; the redirect keeps
 * the path and the request's host; bad files are start errors naming the key, never the key's
 * bytes; the CLI talks to the gateway over TLS, trusting api.tls.ca or, without one, exactly the
 * certificate (pinned).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bannerInfoOf, startupBanner } from '../../edge/banner.js';
import { apiCall, apiEndpoint } from '../../edge/cliApi.js';
import { DEMO, demoConfig, startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { loggerToLines } from '../helpers/logLines.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { makePki, type TestPki } from '../sync/certs.js';
import { runCli } from '../support/cli.js';
import { createApi } from '../../edge/api/index.js';
import { RecordingCommands } from './support/commands.js';
import { KNOWN, gatewayContext } from './support/context.js';

let dir: TempDir;
let pki: TestPki;
let demo: InProcessDemo;
let port: number;
let redirectPort: number;
const logLines: string[] = [];

interface Curl {
  code: number;
  out: string;
  err: string;
}

/** Real curl, never longer than 5 s; `code` is curl's exit code (0: an answer came). */
function curl(...args: string[]): Promise<Curl> {
  return new Promise((done) =>
    execFile('curl', ['-sS', '--max-time', '5', ...args], (err, out, errOut) => done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out, err: errOut })),
  );
}

/** `curl -i`'s answer: status, headers (lower-case names) and body. */
function answer(c: Curl): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = c.out.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

beforeAll(async () => {
  dir = tempDir('streetbox-tls-');
  pki = makePki(dir);
  demo = await startDemoInProcess({
    log: loggerToLines(logLines, 'info'),
    edit: (c) => {
      c.api.tls = { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca };
      c.api.redirectPort = 0;
    },
  });
  port = demo.gw.built.api!.port();
  const listening = logLines.find((l) => l.includes('"msg":"http api listening"'))!;
  redirectPort = Number(/"redirectPort":(\d+)/.exec(listening)?.[1]);
}, 30_000);
afterAll(async () => {
  await demo?.stop();
  dir?.remove();
});

describe('api.tls', () => {
  it('answers over HTTPS to a client that trusts the CA, with HSTS; the status page and the editor too', async () => {
    const base = `https://127.0.0.1:${port}`;
    const [health, page, editor, byName] = await Promise.all([
      curl('-i', '--cacert', pki.ca, `${base}/api/v1/health`),
      curl('-i', '--cacert', pki.ca, `${base}/`),
      curl('-i', '--cacert', pki.ca, `${base}/flows/`),
      // the certificate's other name, as a browser on the cabinet's laptop would ask
      curl('-i', '--cacert', pki.ca, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/api/v1/health`),
    ]);
    for (const c of [health, page, editor, byName]) expect(c.code, c.err).toBe(0);
    expect(answer(health)).toMatchObject({ status: 200, body: '{"status":"ok"}' });
    expect(answer(health).headers['strict-transport-security']).toBe('max-age=31536000');
    expect(answer(byName).status).toBe(200);
    expect(answer(page).status).toBe(200);
    expect(answer(page).headers['content-type']).toMatch(/^text\/html/);
    expect(answer(page).headers['strict-transport-security']).toBe('max-age=31536000');
    // Node-RED's editor, mounted on the same HTTPS server
    expect(answer(editor).status).toBe(200);
    expect(answer(editor).body).toContain('<div id="red-ui-editor">');
    expect(answer(editor).headers['strict-transport-security']).toBe('max-age=31536000');
  });

  it("upgrades the editor's websocket over the same TLS port", async () => {
    const head = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(pki.ca) }, () => {
        s.write(`GET /flows/comms HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      let got = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n\r\n')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toMatch(/^Upgrade: websocket$/im);
  });

  it('is refused by a client that does not trust the CA, and plain HTTP on the TLS port gets no API answer', async () => {
    const [untrusted, otherCa, plain] = await Promise.all([
      curl(`https://127.0.0.1:${port}/api/v1/health`),
      curl('--cacert', pki.otherCa, `https://127.0.0.1:${port}/api/v1/health`),
      curl('-i', `http://127.0.0.1:${port}/api/v1/health`),
    ]);
    // 60: the peer's certificate cannot be verified
    expect(untrusted.code).toBe(60);
    expect(otherCa.code).toBe(60);
    expect(plain.code).not.toBe(0);
    expect(plain.out).not.toContain('"status"');
  });

  it('redirects every request on api.redirectPort to https:// on the API port, with the path and the host asked for', async () => {
    expect(redirectPort).toBeGreaterThan(0);
    const at = `http://127.0.0.1:${redirectPort}`;
    const [get, post, named, followed, noHost, badHost] = await Promise.all([
      curl('-i', `${at}/api/v1/devices?limit=2`),
      curl('-i', '-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{"level":40}', `${at}/api/v1/devices/lamp-ctrl-01/commands`),
      curl('-i', '-H', 'Host: cabinet-17.city.example:80', `${at}/flows/`),
      curl('-i', '-L', '--cacert', pki.ca, `${at}/api/v1/health`),
      curl('-i', '-H', 'Host:', `${at}/`),
      curl('-i', '-H', 'Host: evil.example/path', `${at}/`),
    ]);
    expect(answer(get)).toMatchObject({ status: 308, headers: { location: `https://127.0.0.1:${port}/api/v1/devices?limit=2` }, body: `https://127.0.0.1:${port}/api/v1/devices?limit=2\n` });
    // nothing of the API answers here: no 401 for the missing token, no command
    expect(answer(post)).toMatchObject({ status: 308, headers: { location: `https://127.0.0.1:${port}/api/v1/devices/lamp-ctrl-01/commands` } });
    expect(answer(named).headers.location).toBe(`https://cabinet-17.city.example:${port}/flows/`);
    expect(followed.code, followed.err).toBe(0);
    expect(followed.out).toMatch(/\r\n\r\n\{"status":"ok"\}$/);
    expect(answer(noHost).status).toBe(400);
    expect(answer(badHost).status).toBe(400);
    expect(answer(badHost).headers.location).toBeUndefined();
  });

  it('names https:// URLs in the banner and logs where the API listens, never the key', () => {
    const { fields } = startupBanner(demo.gw.config, bannerInfoOf(demo.gw));
    expect(fields.statusPage).toBe(`https://127.0.0.1:${port}/`);
    expect(fields.editor).toBe(`https://127.0.0.1:${port}/flows/`);
    const listening = JSON.parse(logLines.find((l) => l.includes('"msg":"http api listening"'))!) as Record<string, unknown>;
    expect(listening).toMatchObject({ port, tls: true, redirectPort, certificate: 'CN=localhost' });
    const key = readFileSync(pki.serverKey, 'utf8');
    const keyBody = key.split('\n').find((l) => l.length > 40)!;
    expect(logLines.join('')).not.toContain(keyBody);
  });

  it('the CLI reaches the gateway over TLS: with api.tls.ca, and pinned to api.tls.cert without one; another certificate is refused', async () => {
    // the technician's devices.yaml on the cabinet: the same files, relative to it (no key needed)
    const config = demoConfig(dir, (cfg) => {
      cfg.api.port = port;
      cfg.api.tls = { cert: 'server.crt', key: 'server.key', ca: 'ca.crt' };
    });
    const cli = runCli(['dim', 'lamp-ctrl-01', '40', '--no-wait', '-c', config, '--token', DEMO.technicianToken]);

    // the CA-signed certificate pinned, no CA configured
    const pinned = apiEndpoint({ host: '0.0.0.0', port, tls: { cert: 'server.crt', key: 'server.key' } }, dir.path);
    expect(pinned.base).toBe(`https://127.0.0.1:${port}`);
    const viaPin = await apiCall({ ...pinned, token: DEMO.viewerToken }, 'GET', '/api/v1/status');
    expect(viaPin.status).toBe(200);
    // a certificate that is not the gateway's: refused before the request (and its token) is sent
    const other = apiEndpoint({ host: '127.0.0.1', port, tls: { cert: 'client.crt', key: 'client.key' } }, dir.path);
    await expect(apiCall({ ...other, token: DEMO.viewerToken }, 'GET', '/api/v1/status')).rejects.toThrow(/presented another certificate than api\.tls\.cert \(CN=gw-test\)/);
    // a CA that did not sign it
    const wrongCa = apiEndpoint({ host: '127.0.0.1', port, tls: { cert: 'server.crt', key: 'server.key', ca: 'other-ca.crt' } }, dir.path);
    await expect(apiCall({ ...wrongCa, token: DEMO.viewerToken }, 'GET', '/api/v1/status')).rejects.toThrow(/the gateway at 127\.0\.0\.1:\d+ is not trusted: SELF_SIGNED_CERT_IN_CHAIN \(its certificate checked against api\.tls\.ca\)/);

    const r = await cli;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const id = /^command (\S+) queued: dim device lamp-ctrl-01/m.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    const got = await apiCall({ ...apiEndpoint({ ...demo.gw.config.api, port }, dir.path), token: DEMO.viewerToken }, 'GET', `/api/v1/commands/${id!}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ action: 'dim', params: { level: 40 }, target: { kind: 'device', id: 'lamp-ctrl-01' }, source: { principal: 'demo-technician' } });
  });

  it('refuses to start on a missing or mismatched file, naming its key and never its bytes', async () => {
    const missing = dir.file('missing.key');
    const bad = [
      [{ cert: pki.serverCert, key: missing }, /^api\.tls\.key: cannot read .*missing\.key: ENOENT/],
      [{ cert: dir.file('nope.crt'), key: pki.serverKey }, /^api\.tls\.cert: cannot read .*nope\.crt: ENOENT/],
      [{ cert: pki.serverCert, key: pki.clientKey }, /^api\.tls\.key: .*client\.key is not the private key of api\.tls\.cert \(.*server\.crt\)$/],
      [{ cert: pki.serverKey, key: pki.serverKey }, /^api\.tls\.cert: .*server\.key holds no PEM certificate/],
      [{ cert: pki.serverCert, key: pki.serverCert }, /^api\.tls\.key: .*server\.crt holds no unencrypted PEM private key/],
    ] as const;
    const t = gatewayContext({ api: { host: '127.0.0.1', port: 0 } });
    try {
      const api = createApi(t.ctx, { commands: new RecordingCommands(t.store, KNOWN), status: () => ({}) });
      for (const [tls, message] of bad) {
        t.ctx.config.api.tls = tls;
        const err = await api.start().then(() => null, (e: unknown) => e as Error & { code: string });
        expect(err?.code).toBe('E_CONFIG');
        expect(err?.message).toMatch(message);
        expect(err?.message).not.toContain('PRIVATE KEY');
        expect(() => api.port()).toThrow(/api not started/);
      }
    } finally {
      await t.close();
    }
  });
});
