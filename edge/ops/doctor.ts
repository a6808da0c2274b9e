/**
 * `streetbox doctor`: what a technician checks at an open cabinet, as a checklist with the fix
 * for each failure. A check is ok (✔), a warning (!) that does not stop the gateway, or a
 * failure (✘) that does (on a terminal; piped, the marks are words: edge/cliStyle.ts); the
 * command exits 0 without failures, 1 with one, 2 on a bad config.
 */
import { execFile } from 'node:child_process';
import { constants, accessSync, existsSync, mkdtempSync, rmSync, statSync, statfsSync } from 'node:fs';
import { BlockList, connect, isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { readApiTls, type ApiTls } from '../api/tls.js';
import { ConfigError, formatIssue, loadConfig } from '../config/index.js';
import type { Config, SerialBusConfig, TcpBusConfig } from '../config/schema.js';
import { autonomyText, bytesText, measured } from '../economyText.js';
import { errorMessage } from '../errors.js';
import { lockHolder } from '../pidLock.js';
import { legacyProfileHints } from '../profiles/describe.js';
import { openStoreReadOnly, type Autonomy } from '../store/index.js';
import { makeStyle, type Style } from '../cliStyle.js';
import { DEMO_SECRET_HASHES, findDemoSecrets } from './demoSecrets.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  /** what was checked: "config", "bus rs485-1", "clock", … */
  name: string;
  status: CheckStatus;
  detail: string;
  /** what to do about a warning or a failure */
  fix?: string;
}

export interface DoctorReport {
  config: string;
  checks: Check[];
  /** 0 no failure, 1 a failure, 2 a bad configuration */
  exitCode: 0 | 1 | 2;
}

export interface DoctorOptions {
  /** TCP connect timeout for buses and the upstream */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** `timedatectl show -p NTPSynchronized --value`, replaceable in tests */
  ntpSynchronized?: () => Promise<'yes' | 'no' | 'unknown'>;
  /** the wall clock the certificates' expiry is told against (ms), replaceable in tests */
  now?: number;
}

const MiB = 1024 * 1024;
const DAY_MS = 86_400_000;
/** a certificate expiring sooner is a warning: time to renew it on a visit */
const CERT_WARN_DAYS = 30;

export async function runDoctor(configPath: string, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const timeoutMs = opts.timeoutMs ?? 1500;
  const checks: Check[] = [];
  let config: Config;
  let configDir: string;
  try {
    ({ config, dir: configDir } = loadConfig(configPath, opts.env ? { env: opts.env } : {}));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    checks.push({
      name: 'config',
      status: 'fail',
      detail: `${configPath} is invalid:\n${err.issues.map(formatIssue).join('\n')}`,
      fix: `correct each line named above, then run \`streetbox validate ${configPath}\``,
    });
    return { config: configPath, checks, exitCode: 2 };
  }
  checks.push({
    name: 'config',
    status: 'ok',
    detail: `${configPath} is valid: gateway "${config.gateway.id}", ${config.buses.length} bus(es), ${config.devices.length} device(s)`,
  });
  checks.push(secretsCheck(config));
  checks.push(apiTlsCheck(config, configDir, opts.now ?? Date.now()));
  const profiles = profilesCheck(config);
  if (profiles) checks.push(profiles);

  // the demo's simulators replace every bus (serial lines by PTYs)
  const simulated = typeof config.simulate === 'boolean' ? config.simulate : config.simulate.enabled;
  const radioTimeScale = typeof config.simulate === 'boolean' ? 1 : config.simulate.radioTimeScale;
  if (radioTimeScale > 1) {
    checks.push({
      name: 'radio time',
      status: 'warn',
      detail: `simulate.radioTimeScale is ${radioTimeScale}: the LoRaWAN side's clock runs ${radioTimeScale}× faster than real time (its duty cycle would be broken on a real radio)`,
      fix: 'remove simulate.radioTimeScale on a gateway with a real concentrator',
    });
  }
  const pending: Promise<Check>[] = [];
  for (const bus of config.buses) {
    if (simulated) checks.push(skip(`bus ${bus.id}`, 'simulated (simulate: true)'));
    else if (bus.type === 'serial') checks.push(serialCheck(bus));
    else pending.push(tcpBusCheck(bus, timeoutMs));
  }
  pending.push(upstreamCheck(config, timeoutMs));
  pending.push(clockCheck(opts.ntpSynchronized ?? ntpSynchronized));
  checks.push(...(await Promise.all(pending)));
  checks.push(...dataDirChecks(config));
  checks.push(autonomyCheck(config));
  checks.push(gatewayCheck(config));

  return { config: configPath, checks, exitCode: checks.some((c) => c.status === 'fail') ? 1 : 0 };
}

/** No secret of the shipped demo (passwords, tokens, Node-RED's credentialSecret, LoRaWAN keys) in this config. */
export function secretsCheck(config: Config): Check {
  const name = 'secrets';
  const demo = DEMO_SECRET_HASHES;
  const found = findDemoSecrets(config);
  if (found.length === 0) return { name, status: 'ok', detail: `none of the demo's ${demo.size} secrets is used` };
  return {
    name,
    status: 'fail',
    detail: `${found.length} value(s) are the demo's own secrets, known to everyone: ${found.join(', ')}`,
    fix:
      'give each a fresh random value (`openssl rand -base64 32`), best as ${NAME} with NAME=value in /etc/streetbox/env; ' +
      'for a broker or Node-RED user, a passwordHash from `streetbox hash-password` (`--for node-red`); LoRaWAN keys are the nodes\' own, from their vendor. ' +
      '`streetbox init` writes a devices.yaml with fresh secrets',
  };
}

/** Custom profiles still read from their point names (edge/profiles/describe.ts): a warning with the roles to declare. */
export function profilesCheck(config: Config): Check | undefined {
  const hints = legacyProfileHints(config.profiles);
  if (hints.length === 0) return undefined;
  return {
    name: 'profiles',
    status: 'warn',
    detail: hints.join('\n'),
    fix: 'declare the kind and the point roles named above in devices.yaml (README, "Kinds and roles"); inferring them from point names will be removed',
  };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (an IPv4-mapped 127.x too) or localhost: nothing sent there leaves the machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  const family = isIP(h);
  if (family === 0) return h === 'localhost';
  return LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The HTTP API beyond the loopback without api.tls (bearer tokens and the editor's passwords in
 * clear on the network: a warning); with it, its files as the gateway reads them at start (readable,
 * a certificate, the certificate's key: else the API does not start) and the certificate's expiry
 * (within CERT_WARN_DAYS a warning, past it a failure: every client refuses it).
 */
export function apiTlsCheck(config: Config, configDir: string, now: number): Check {
  const name = 'api tls';
  const api = config.api;
  if (!api.enabled) return skip(name, 'the HTTP API is off (api.enabled: false)');
  const where = `${api.host.includes(':') && !api.host.startsWith('[') ? `[${api.host}]` : api.host}:${api.port}`;
  if (api.tls === undefined) {
    if (isLoopback(api.host)) return { name, status: 'ok', detail: `no TLS, none needed: the API listens on ${where}, this machine only` };
    return {
      name,
      status: 'warn',
      detail: `the API listens on ${where} without TLS: bearer tokens and the editor's passwords cross the network in clear`,
      fix: 'set api.tls: { cert, key } (PEM files; README, "HTTP API"), or api.host: 127.0.0.1 when a TLS proxy on this machine serves it',
    };
  }
  let tls: ApiTls;
  try {
    tls = readApiTls(api.tls, configDir);
  } catch (err) {
    return {
      name,
      status: 'fail',
      detail: `${errorMessage(err)}: the API does not start`,
      fix: "point api.tls.cert and api.tls.key (relative to devices.yaml) at the PEM certificate and its own unencrypted private key, readable by the gateway's user",
    };
  }
  const until = Date.parse(tls.certificate.validTo);
  const days = Math.floor((until - now) / DAY_MS);
  const cert = `${api.tls.cert} (${tls.certificate.subject.replace(/\n/g, ', ')})`;
  const date = Number.isNaN(until) ? tls.certificate.validTo : new Date(until).toISOString().slice(0, 10);
  const renew = `renew ${api.tls.cert} (and its key), then restart the gateway: the files are read at start`;
  if (until <= now) return { name, status: 'fail', detail: `${cert} expired on ${date}: browsers, curl and the CLI with api.tls.ca refuse it`, fix: renew };
  if (days < CERT_WARN_DAYS) return { name, status: 'warn', detail: `${cert} expires in ${days} day(s), on ${date}`, fix: renew };
  return { name, status: 'ok', detail: `https on ${where}: ${cert}, valid until ${date} (${days} days)${api.redirectPort !== undefined ? `; port ${api.redirectPort} redirects to it` : ''}` };
}

function skip(name: string, detail: string): Check {
  return { name, status: 'skip', detail };
}

/** A serial line: exists, is a character device, and this user may read and write it. */
export function serialCheck(bus: SerialBusConfig): Check {
  const name = `bus ${bus.id}`;
  let st;
  try {
    st = statSync(bus.path);
  } catch {
    return {
      name,
      status: 'fail',
      detail: `${bus.path} does not exist`,
      fix: 'plug in the RS-485 adapter and check `ls -l /dev/serial/by-id/`; name the port by its /dev/serial/by-id/ path so it survives a reboot',
    };
  }
  if (!st.isCharacterDevice()) {
    return { name, status: 'fail', detail: `${bus.path} is not a character device (a serial port)`, fix: 'set buses[].path to the serial device, e.g. /dev/serial/by-id/usb-FTDI_…' };
  }
  try {
    accessSync(bus.path, constants.R_OK | constants.W_OK);
  } catch {
    const user = safeUser();
    return {
      name,
      status: 'fail',
      detail: `${bus.path} is not readable and writable by ${user} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid} gid ${st.gid})`,
      fix: `sudo usermod -aG dialout ${user} (then log in again; the systemd unit sets SupplementaryGroups=dialout)`,
    };
  }
  return { name, status: 'ok', detail: `${bus.path} is a serial port, readable and writable` };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'this user');
  }
}

/** Connects and disconnects; resolves with null or the reason it failed. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (why: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      done(why);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => finish(null));
    socket.once('error', (err) => finish(errorMessage(err)));
  });
}

async function tcpBusCheck(bus: TcpBusConfig, timeoutMs: number): Promise<Check> {
  const name = `bus ${bus.id}`;
  const why = await tcpReachable(bus.host, bus.port, timeoutMs);
  if (why === null) return { name, status: 'ok', detail: `${bus.host}:${bus.port} accepts TCP connections` };
  return {
    name,
    status: 'fail',
    detail: `${bus.host}:${bus.port} is not reachable: ${why}`,
    fix: `check the controller is powered and cabled, its IP address and Modbus TCP port (try \`nc -vz ${bus.host} ${bus.port}\`)`,
  };
}

async function upstreamCheck(config: Config, timeoutMs: number): Promise<Check> {
  const name = 'upstream';
  if (!config.sync || !config.sync.enabled) return skip(name, 'no upstream configured (sync)');
  let url: URL;
  try {
    url = new URL(config.sync.url);
  } catch {
    return { name, status: 'fail', detail: `sync.url "${config.sync.url}" is not a URL`, fix: 'set sync.url to mqtt://host:1883 or mqtts://host:8883' };
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? (url.protocol === 'mqtts:' ? 8883 : 1883) : Number(url.port);
  const why = await tcpReachable(host, port, timeoutMs);
  if (why === null) return { name, status: 'ok', detail: `${host}:${port} accepts TCP connections` };
  return {
    name,
    status: 'fail',
    detail: `${host}:${port} is not reachable: ${why} (readings are buffered meanwhile)`,
    fix: `check the uplink (\`ip route\`, \`ping ${host}\`), DNS and the firewall towards ${host}:${port}`,
  };
}

function ntpSynchronized(): Promise<'yes' | 'no' | 'unknown'> {
  return new Promise((done) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 3000 }, (err, stdout) => {
      const v = String(stdout).trim();
      done(err ? 'unknown' : v === 'yes' ? 'yes' : v === 'no' ? 'no' : 'unknown');
    });
  });
}

async function clockCheck(probe: () => Promise<'yes' | 'no' | 'unknown'>): Promise<Check> {
  const state = await probe();
  const now = new Date().toISOString();
  if (state === 'yes') return { name: 'clock', status: 'ok', detail: `synchronised by NTP (now ${now})` };
  if (state === 'no') {
    return {
      name: 'clock',
      status: 'warn',
      detail: `not synchronised (now ${now}); readings carry this wall clock`,
      fix: 'sudo timedatectl set-ntp true, and let the gateway reach an NTP server (UDP 123)',
    };
  }
  return { name: 'clock', status: 'warn', detail: `synchronisation unknown (timedatectl unavailable; now ${now})`, fix: 'check the time against a reference and run an NTP client (systemd-timesyncd or chrony)' };
}

/** The nearest directory that exists at or above `dir`. */
function existingAncestor(dir: string): string {
  let d = resolve(dir);
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

function dataDirChecks(config: Config): Check[] {
  const db = config.storage.path;
  const dir = dirname(db);
  const checks: Check[] = [];
  const base = existsSync(dir) ? dir : existingAncestor(dir);
  const user = safeUser();
  try {
    // A real write, not access(2): it also catches a read-only file system and a full disk.
    const probe = mkdtempSync(join(base, '.streetbox-doctor-'));
    rmSync(probe, { recursive: true, force: true });
    checks.push({ name: 'data directory', status: 'ok', detail: `${dir} is writable${base === dir ? '' : ` (will be created under ${base})`}` });
  } catch (err) {
    checks.push({
      name: 'data directory',
      status: 'fail',
      detail: `${dir} is not writable: ${errorMessage(err)}`,
      fix: `sudo install -d -o ${user} -g ${user} ${dir} (the unit's ReadWritePaths must include it)`,
    });
  }
  try {
    const fs = statfsSync(base);
    const free = fs.bavail * fs.bsize;
    const total = fs.blocks * fs.bsize;
    const used = fileSize(db) + fileSize(`${db}-wal`);
    const pct = total > 0 ? Math.round((free / total) * 100) : 0;
    const detail = `${Math.round(free / MiB)} MiB free (${pct} %) on ${base}; the buffer may grow to ${Math.round(config.storage.maxBytes / MiB)} MiB`;
    if (free + used < config.storage.maxBytes) {
      checks.push({ name: 'disk', status: 'fail', detail, fix: 'free disk space or lower storage.maxBytes below the free space' });
    } else if (free < 2 * config.storage.maxBytes || pct < 10) {
      checks.push({ name: 'disk', status: 'warn', detail, fix: 'free disk space (journald: `journalctl --vacuum-size=100M`) or lower storage.maxBytes' });
    } else {
      checks.push({ name: 'disk', status: 'ok', detail });
    }
  } catch (err) {
    checks.push({ name: 'disk', status: 'warn', detail: `free space unknown: ${errorMessage(err)}`, fix: `df -h ${base}` });
  }
  return checks;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * Days the buffer holds offline at the load measured from the file's own readings (the last
 * day of them: edge/store/autonomy.ts), against storage.minAutonomyDays (0: no minimum). Read
 * through the read-only view, so it works beside a running gateway and without one.
 */
export function autonomyCheck(config: Config): Check {
  const name = 'autonomy';
  const path = config.storage.path;
  if (!existsSync(path)) return skip(name, `no buffer at ${path} yet: the load is measured once the gateway has run`);
  let autonomy: Autonomy;
  let quota: number;
  try {
    const view = openStoreReadOnly(path);
    try {
      ({ autonomy, maxBytes: quota } = view.stats());
    } finally {
      view.close();
    }
  } catch (err) {
    return { name, status: 'warn', detail: `cannot read the buffer: ${errorMessage(err)}`, fix: `check ${path} with \`streetbox status\`; the gateway moves a corrupt buffer aside when it starts` };
  }
  if (!measured(autonomy)) return skip(name, 'no load measured yet: the buffer has too few readings (let the gateway run, then ask again)');
  const min = config.storage.minAutonomyDays;
  // the days are those of the quota the gateway last opened the buffer with
  const pending = quota > 0 && quota !== config.storage.maxBytes ? `; at the quota the gateway last ran with, ${bytesText(quota)} (storage.maxBytes is now ${bytesText(config.storage.maxBytes)}: restart the gateway to apply it)` : '';
  const text = `${autonomyText(autonomy)}${pending}`;
  if (min > 0 && autonomy.days < min) {
    return {
      name,
      status: 'warn',
      detail: `${text}: under storage.minAutonomyDays (${min})`,
      fix: 'raise storage.maxBytes (the disk check says what is free), or store fewer readings: wider deadbands and longer heartbeats in the report strategies (README, "Report strategies")',
    };
  }
  return { name, status: 'ok', detail: `${text}${min > 0 ? `; the minimum is ${min} days` : ' (no minimum: storage.minAutonomyDays is 0)'}` };
}

function gatewayCheck(config: Config): Check {
  const pid = lockHolder(`${config.storage.path}.pid`);
  if (pid !== null) return { name: 'gateway', status: 'ok', detail: `running (pid ${pid})` };
  return { name: 'gateway', status: 'warn', detail: 'not running', fix: 'sudo systemctl start streetbox (and `journalctl -u streetbox` if it stops)' };
}

/**
 * The checklist as a technician reads it: one line per check, the fix indented below. The marks
 * come from `style`: ✔ ✘ ! - on a terminal, the words ok FAIL warn skip when piped.
 */
export function formatReport(report: DoctorReport, style: Style = makeStyle(false)): string {
  const mark: Record<CheckStatus, string> = { ok: style.ok(), warn: style.warn(), fail: style.fail(), skip: style.marks ? style.dim('-') : 'skip' };
  const lines: string[] = [];
  for (const c of report.checks) {
    const [first, ...rest] = c.detail.split('\n');
    lines.push(`${mark[c.status]} ${c.name}: ${first}`);
    for (const r of rest) lines.push(`    ${r}`);
    if (c.fix && c.status !== 'ok') lines.push(`    fix: ${c.fix}`);
  }
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(failed === 0 ? `all checks passed${warned > 0 ? ` (${warned} warning(s))` : ''}` : `${failed} check(s) failed${warned > 0 ? `, ${warned} warning(s)` : ''}`);
  return `${lines.join('\n')}\n`;
}
