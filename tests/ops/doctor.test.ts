import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { stripAnsi } from '../../edge/cliStyle.js';
import { DEMO_SECRET_HASHES, secretHash, demoSecrets } from '../../edge/ops/demoSecrets.js';
import { formatReport, isLoopback, runDoctor } from '../../edge/ops/doctor.js';
import { CLI_ARGS, ROOT, collect, runCli, tempGateway } from '../support/cli.js';
import { openPtyPair, type PtyPair } from '../helpers/pty.js';
import { freePort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';
import { makePki } from '../sync/certs.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listening(): Promise<number> {
  const server: Server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function gateway(yaml: string): { dir: string; config: string } {
  const g = tempGateway(yaml);
  cleanups.push(g.cleanup);
  return g;
}

/** The checklist line of a check, e.g. `ok bus net: …` (piped: the marks are words). */
function line(out: string, name: string): string {
  const l = out.split('\n').find((x) => !x.startsWith(' ') && x.slice(x.indexOf(' ') + 1).startsWith(`${name}:`));
  if (l === undefined) throw new Error(`no line for "${name}" in:\n${out}`);
  return l;
}

/** The `fix:` line right under a check's line. */
function fixOf(out: string, name: string): string {
  const lines = out.split('\n');
  const i = lines.indexOf(line(out, name));
  const fix = lines.slice(i + 1).find((l) => l.startsWith('    fix: '));
  return fix ?? '';
}

describe('streetbox doctor', () => {
  it('passes a healthy setup: a real PTY serial line, a listening Modbus TCP peer and upstream, a writable data dir', async () => {
    const pty: PtyPair = await openPtyPair();
    cleanups.push(() => pty.close());
    const modbusPort = await listening();
    const upstreamPort = await listening();
    const g = gateway(`
gateway: { id: healthy }
storage: { path: data/gw.db, maxBytes: 1MB }
buses:
  - { id: line-1, type: serial, path: ${pty.masterPath} }
  - { id: net, type: tcp, host: 127.0.0.1, port: ${modbusPort} }
sync: { url: "mqtt://127.0.0.1:${upstreamPort}" }
broker: { enabled: false }
api: { enabled: false }
`);
    const r = await runCli(['doctor', '--config', g.config]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(line(r.stdout, 'config')).toBe(`ok config: ${g.config} is valid: gateway "healthy", 2 bus(es), 0 device(s)`);
    expect(line(r.stdout, 'bus line-1')).toBe(`ok bus line-1: ${pty.masterPath} is a serial port, readable and writable`);
    expect(line(r.stdout, 'bus net')).toBe(`ok bus net: 127.0.0.1:${modbusPort} accepts TCP connections`);
    expect(line(r.stdout, 'upstream')).toBe(`ok upstream: 127.0.0.1:${upstreamPort} accepts TCP connections`);
    expect(line(r.stdout, 'data directory')).toMatch(/^ok data directory: .*\/data is writable/);
    expect(line(r.stdout, 'disk')).toMatch(/^(ok|warn) disk: \d+ MiB free \(\d+ %\)/);
    // no timedatectl answer in a container: a warning, never a failure
    expect(line(r.stdout, 'clock')).toMatch(/^(ok|warn) clock: /);
    expect(line(r.stdout, 'gateway')).toBe('warn gateway: not running');
    expect(fixOf(r.stdout, 'gateway')).toContain('systemctl start streetbox');
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^all checks passed/);
  });

  it('says a gateway is running when one holds the pid lock, and reports as JSON', async () => {
    const port = await listening();
    const g = gateway(`
gateway: { id: running }
storage: { path: data/gw.db, maxBytes: 1MB }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: ${port} }
broker: { enabled: false }
api: { enabled: false }
`);
    mkdirSync(join(g.dir, 'data'));
    // this test process stands for the gateway: a live pid in the lock file
    writeFileSync(join(g.dir, 'data/gw.db.pid'), `${process.pid}\n`);
    const r = await runCli(['doctor', '--config', g.config, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { exitCode: number; checks: { name: string; status: string; detail: string }[] };
    expect(report.exitCode).toBe(0);
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    expect(byName.get('gateway')).toMatchObject({ status: 'ok', detail: `running (pid ${process.pid})` });
    expect(byName.get('bus net')!.status).toBe('ok');
    expect(byName.get('upstream')).toMatchObject({ status: 'skip' });
  });

  it('fails a broken setup with the fix for each failure, and exits 1', async () => {
    const closed = await freePort();
    const g = gateway(`
gateway: { id: broken }
storage: { path: not-a-dir/data/gw.db, maxBytes: 1MB }
buses:
  - { id: missing, type: serial, path: /dev/streetbox-no-such-port }
  - { id: plain-file, type: serial, path: PLAIN }
  - { id: dead, type: tcp, host: 127.0.0.1, port: ${closed} }
sync: { url: "mqtt://127.0.0.1:${closed}" }
broker: { enabled: false }
api: { enabled: false }
`);
    // the data directory lies under a regular file: unwritable even for root
    writeFileSync(join(g.dir, 'not-a-dir'), 'x');
    writeFileSync(join(g.dir, 'plain.txt'), 'x');
    writeFileSync(g.config, readFileSync(g.config, 'utf8').replace('PLAIN', join(g.dir, 'plain.txt')));
    const r = await runCli(['doctor', '--config', g.config, '--timeout', '500']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(line(r.stdout, 'config')).toMatch(/^ok config: /);
    expect(line(r.stdout, 'bus missing')).toBe('FAIL bus missing: /dev/streetbox-no-such-port does not exist');
    expect(fixOf(r.stdout, 'bus missing')).toContain('/dev/serial/by-id/');
    expect(line(r.stdout, 'bus plain-file')).toBe(`FAIL bus plain-file: ${join(g.dir, 'plain.txt')} is not a character device (a serial port)`);
    expect(line(r.stdout, 'bus dead')).toMatch(new RegExp(`^FAIL bus dead: 127\\.0\\.0\\.1:${closed} is not reachable: .*ECONNREFUSED`));
    expect(fixOf(r.stdout, 'bus dead')).toContain(`nc -vz 127.0.0.1 ${closed}`);
    expect(line(r.stdout, 'upstream')).toMatch(new RegExp(`^FAIL upstream: 127\\.0\\.0\\.1:${closed} is not reachable`));
    expect(fixOf(r.stdout, 'upstream')).toContain('firewall');
    expect(line(r.stdout, 'data directory')).toMatch(/^FAIL data directory: .*not-a-dir\/data is not writable: .*ENOTDIR/);
    expect(fixOf(r.stdout, 'data directory')).toContain('sudo install -d');
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^5 check\(s\) failed/);
    expect(r.stderr).toContain('streetbox: 5 check(s) failed');
  });

  // as root every file is accessible: the permission check is seen from an unprivileged user
  it.skipIf(process.getuid?.() !== 0)('tells a user who may not open the serial port to join dialout', async () => {
    const pty: PtyPair = await openPtyPair(); // /dev/pts/N, mode 0600, owned by root
    cleanups.push(() => pty.close());
    const g = gateway(`
gateway: { id: perms }
storage: { path: data/gw.db, maxBytes: 1MB }
buses:
  - { id: line-1, type: serial, path: ${pty.masterPath} }
broker: { enabled: false }
api: { enabled: false }
`);
    chmodSync(g.dir, 0o777);
    chmodSync(g.config, 0o644);
    const child = spawn(process.execPath, [...CLI_ARGS, 'doctor', '--config', g.config], { cwd: ROOT, uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(child, 30_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(line(r.stdout, 'bus line-1')).toMatch(new RegExp(`^FAIL bus line-1: ${pty.masterPath} is not readable and writable by \\S+ \\(mode 0600, owner uid 0`));
    expect(fixOf(r.stdout, 'bus line-1')).toMatch(/^    fix: sudo usermod -aG dialout \S+ /);
    expect(line(r.stdout, 'data directory')).toMatch(/^ok /);
  });

  it('reports a bad configuration with file:line:col and exits 2', async () => {
    const g = gateway(`
gateway: { id: bad }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 99999 }
`);
    const r = await runCli(['doctor', '--config', g.config]);
    expect(r.code).toBe(2);
    expect(line(r.stdout, 'config')).toBe(`FAIL config: ${g.config} is invalid:`);
    expect(r.stdout).toMatch(new RegExp(`^    ${g.config.replace(/[.\\/]/g, '\\$&')}:4:\\d+ buses\\[0\\]\\.port: `, 'm'));
    expect(fixOf(r.stdout, 'config')).toContain('streetbox validate');
    // nothing else is checked against a configuration that does not load
    expect(r.stdout).not.toContain('bus net');
    expect(r.stderr).toContain('invalid configuration');
  });

  it('fails a configuration that holds any of the shipped demo\'s secrets, naming where (never the value) and how to replace them', async () => {
    // the demo's secrets, read from the shipped devices.yaml: every password, token and key in it
    const demo = demoSecrets();
    const shipped = readFileSync(join(ROOT, 'devices.yaml'), 'utf8');
    for (const v of ['demo-technician-password', 'demo-technician-token-0001', 'demo-viewer-token-00000001', 'demo-node-red-credential-secret', '2b7e151628aed2a6abf7158809cf4f3c', '000102030405060708090a0b0c0d0e0f']) {
      expect(shipped).toContain(v);
      expect(demo.has(v)).toBe(true);
    }
    expect(demo.size).toBe(13);
    // the doctor's frozen list is exactly the shipped file's secrets (it never reads the file: on
    // a bench that file is the config a technician edits)
    expect(new Map([...demo].map(([v, where]) => [secretHash(v), where]))).toEqual(DEMO_SECRET_HASHES);

    // the shipped demo as a technician might copy it to a cabinet
    const cfg = parse(shipped) as Record<string, Record<string, unknown>>;
    cfg.storage!.path = 'data/gw.db';
    const g = gateway(stringify(cfg));
    // one demo secret left anywhere, in any case, under any key, is still found
    const one = gateway(`
gateway: { id: one-left }
storage: { path: data/gw.db, maxBytes: 1MB }
sync: { enabled: false, url: "mqtt://127.0.0.1:1", password: DEMO-TECHNICIAN-PASSWORD }
api: { tokens: [{ name: t, token: fresh-token-0123456789abcdef, role: technician }] }
broker: { enabled: false }
`);
    // the two doctors at once (each is a process of its own, ~1.3 s of CPU to start)
    const [r, o] = await Promise.all([runCli(['doctor', '--config', g.config, '--timeout', '200']), runCli(['doctor', '--config', one.config, '--timeout', '200'])]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const l = line(r.stdout, 'secrets');
    expect(l).toMatch(/^FAIL secrets: 14 value\(s\) are the demo's own secrets, known to everyone: /);
    for (const where of ['broker.users[0].password', 'api.tokens[0].token', 'nodeRed.credentialSecret', 'nodeRed.users[0].password', 'lorawan.devices[0].nwkSKey', 'lorawan.devices[2].appKey']) expect(l).toContain(where);
    for (const v of demo.keys()) expect(r.stdout.toLowerCase()).not.toContain(v);
    expect(fixOf(r.stdout, 'secrets')).toContain('streetbox hash-password');
    expect(fixOf(r.stdout, 'secrets')).toContain('streetbox init');

    expect(o.code).toBe(1);
    expect(line(o.stdout, 'secrets')).toBe('FAIL secrets: 1 value(s) are the demo\'s own secrets, known to everyone: sync.password');
  });

  it('passes the secrets of a devices.yaml written by init, and marks checks ✔ ! - on a terminal (words when piped)', async () => {
    const dir = gateway('');
    const out = join(dir.dir, 'etc/devices.yaml');
    const init = await runCli(['init', '--skip-serial', '--out', out, '--gateway-id', 'fresh']);
    expect(init.code, init.stderr).toBe(0);
    // piped, and on a terminal (FORCE_COLOR stands for one: edge/cliStyle.ts), at once
    const [piped, tty] = await Promise.all([runCli(['doctor', '--config', out]), runCli(['doctor', '--config', out], { env: { FORCE_COLOR: '1' } })]);
    expect(line(piped.stdout, 'secrets')).toBe('ok secrets: none of the demo\'s 13 secrets is used');
    expect(piped.stdout).not.toMatch(/\x1b\[/);
    expect(tty.stdout).toMatch(/\x1b\[/);
    const plain = stripAnsi(tty.stdout).split('\n');
    expect(plain).toContain(`✔ config: ${out} is valid: gateway "fresh", 0 bus(es), 0 device(s)`);
    expect(plain.find((x) => x.startsWith('! gateway: not running'))).toBeDefined();
    expect(plain.find((x) => x.startsWith('- upstream: '))).toBeDefined();
  });
});

describe('streetbox doctor: the API and TLS', () => {
  const DAY = 86_400_000;
  /** runDoctor in this process, on a gateway with this api section; the `api tls` check's line and fix */
  async function apiCheck(api: string, now = Date.now()): Promise<{ line: string; fix: string; status: string }> {
    const g = gateway(`
gateway: { id: tls }
storage: { path: data/gw.db, maxBytes: 1MB }
broker: { enabled: false }
api: ${api}
`);
    const report = await runDoctor(g.config, { timeoutMs: 200, ntpSynchronized: async () => 'yes', now });
    const out = formatReport(report);
    return { line: line(out, 'api tls'), fix: fixOf(out, 'api tls'), status: report.checks.find((c) => c.name === 'api tls')!.status };
  }

  it('tells loopback addresses from those beyond', () => {
    for (const h of ['127.0.0.1', '127.3.2.1', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.7', '128.0.0.1', 'cabinet-17.city.example', 'fe80::1', '']) expect(isLoopback(h), h).toBe(false);
  });

  it('warns when the API listens beyond the loopback without TLS; not on the loopback, not with the API off', async () => {
    const [open, v6, loop, off] = await Promise.all([apiCheck('{ host: 0.0.0.0, port: 8080 }'), apiCheck("{ host: '::', port: 8080 }"), apiCheck('{ host: 127.0.0.1 }'), apiCheck('{ enabled: false }')]);
    expect(open.line).toBe("warn api tls: the API listens on 0.0.0.0:8080 without TLS: bearer tokens and the editor's passwords cross the network in clear");
    expect(open.fix).toMatch(/^ {4}fix: set api\.tls: \{ cert, key \}/);
    expect(v6.line).toMatch(/^warn api tls: the API listens on \[::\]:8080 without TLS/);
    expect(loop.line).toBe('ok api tls: no TLS, none needed: the API listens on 127.0.0.1:8080, this machine only');
    expect(off.line).toBe('skip api tls: the HTTP API is off (api.enabled: false)');
  });

  it('passes the API beyond the loopback with TLS; says when the certificate expires within 30 days or has expired; fails files the API cannot start with', async () => {
    const dir = tempDir('streetbox-doctor-tls-');
    cleanups.push(() => dir.remove());
    // a CA-signed certificate for 2 days, and a self-signed one for a year
    const pki = makePki(dir);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', dir.file('year.key'), '-out', dir.file('year.crt'), '-days', '365', '-subj', '/CN=cabinet-17'], { stdio: 'ignore' });
    const now = Date.now();
    const [year, soon, expired, noKey, wrongKey] = await Promise.all([
      apiCheck(`{ host: 0.0.0.0, port: 8443, redirectPort: 8080, tls: { cert: ${dir.file('year.crt')}, key: ${dir.file('year.key')} } }`, now),
      apiCheck(`{ host: 0.0.0.0, tls: { cert: ${pki.serverCert}, key: ${pki.serverKey}, ca: ${pki.ca} } }`, now),
      apiCheck(`{ host: 0.0.0.0, tls: { cert: ${pki.serverCert}, key: ${pki.serverKey} } }`, now + 3 * DAY),
      apiCheck(`{ host: 0.0.0.0, tls: { cert: ${pki.serverCert}, key: ${dir.file('gone.key')} } }`, now),
      apiCheck(`{ host: 127.0.0.1, tls: { cert: ${pki.serverCert}, key: ${pki.clientKey} } }`, now),
    ]);
    expect(year.line).toMatch(new RegExp(`^ok api tls: https on 0\\.0\\.0\\.0:8443: ${dir.file('year.crt').replace(/[.\\/]/g, '\\$&')} \\(CN=cabinet-17\\), valid until \\d{4}-\\d\\d-\\d\\d \\((364|365) days\\); port 8080 redirects to it$`));
    expect(soon.status).toBe('warn');
    expect(soon.line).toMatch(/^warn api tls: .*server\.crt \(CN=localhost\) expires in 1 day\(s\), on \d{4}-\d\d-\d\d$/);
    expect(soon.fix).toContain('renew');
    expect(expired.status).toBe('fail');
    expect(expired.line).toMatch(/^FAIL api tls: .*server\.crt \(CN=localhost\) expired on \d{4}-\d\d-\d\d: browsers, curl and the CLI with api\.tls\.ca refuse it$/);
    expect(noKey.line).toMatch(/^FAIL api tls: api\.tls\.key: cannot read .*gone\.key: ENOENT.*: the API does not start$/);
    expect(wrongKey.line).toMatch(/^FAIL api tls: api\.tls\.key: .*client\.key is not the private key of api\.tls\.cert/);
    expect(wrongKey.fix).toContain('api.tls.key');
  });
});
