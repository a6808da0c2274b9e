/**
 * A real mosquitto (/usr/sbin/mosquitto) for the sync tests: a generated config in a temp dir,
 * a free loopback port kept across restarts, optional password file (mosquitto_passwd), TLS
 * listener and persistence. stop() sends SIGTERM (mosquitto then saves its persistence file,
 * so queued messages of persistent sessions survive a restart, as on a real broker host).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { freePort } from '../helpers/ports.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  users?: { username: string; password: string }[];
  /** keep sessions and queued messages across restarts (saved at SIGTERM) */
  persistence?: boolean;
  tls?: { cafile: string; certfile: string; keyfile: string; requireCertificate?: boolean };
  /** the text of an acl_file (mosquitto.conf(5) "acl_file") */
  acl?: string;
}

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly dir: TempDir;
  readonly running: boolean;
  /** SIGTERM (or the given signal) and wait for the exit */
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** stop and remove the temp dir */
  close(): Promise<void>;
  logText(): string;
  /**
   * How many subscriptions the broker has taken (of `filter`, from `clientId`, when given), as
   * its log says: `log_type subscribe` writes one line per filter once the subscription is in place.
   */
  subscriptions(match?: { clientId?: string; filter?: string }): number;
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const dir = tempDir('streetbox-mosquitto-');
  const port = await freePort();
  const lines = [`listener ${port} 127.0.0.1`, `user ${userInfo().username}`, `log_dest file ${dir.file('mosquitto.log')}`, 'log_type error', 'log_type warning', 'log_type notice', 'log_type subscribe'];
  if (opts.users && opts.users.length > 0) {
    const pw = dir.file('passwd');
    writeFileSync(pw, '');
    for (const u of opts.users) execFileSync('/usr/bin/mosquitto_passwd', ['-b', pw, u.username, u.password], { stdio: 'ignore' });
    lines.push('allow_anonymous false', `password_file ${pw}`);
  } else lines.push('allow_anonymous true');
  if (opts.tls) {
    lines.push(`cafile ${opts.tls.cafile}`, `certfile ${opts.tls.certfile}`, `keyfile ${opts.tls.keyfile}`, `require_certificate ${opts.tls.requireCertificate ? 'true' : 'false'}`);
  }
  if (opts.acl !== undefined) {
    writeFileSync(dir.file('acl'), opts.acl);
    lines.push(`acl_file ${dir.file('acl')}`);
  }
  if (opts.persistence) lines.push('persistence true', `persistence_location ${dir.path}/`, 'autosave_interval 0');
  else lines.push('persistence false');
  // A persistent session may queue a whole drain while its subscriber is away. Not 0 ("no
  // limit"): mosquitto 2.0.11 then drops an MQTT 5 client whose QoS 1 publish its ACL denied.
  lines.push('max_queued_messages 1000000', 'max_inflight_messages 100');
  const conf = dir.file('mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  const m: Mosquitto = {
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    dir,
    get running() {
      return child !== undefined;
    },
    async start() {
      if (child) return;
      const c = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      c.stderr?.setEncoding('utf8');
      c.stderr?.on('data', (d: string) => (stderr += d));
      exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.once('exit', () => {
        if (child === c) child = undefined;
      });
      await waitListening(port, 5000, () => (child === c ? null : `mosquitto exited: ${stderr}${safeRead(dir.file('mosquitto.log'))}`));
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const c = child;
      if (!c) return;
      c.kill(signal);
      const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(kill);
      child = undefined;
    },
    async restart() {
      await m.stop();
      await m.start();
    },
    async close() {
      await m.stop();
      dir.remove();
    },
    logText: () => safeRead(dir.file('mosquitto.log')),
    subscriptions(match = {}) {
      let n = 0;
      for (const line of safeRead(dir.file('mosquitto.log')).split('\n')) {
        // "<time>: <client id> <qos> <filter>" (mosquitto 2.0 handle_subscribe.c)
        const sub = /^\d+: (\S+) (\d+) (\S+)$/.exec(line);
        if (sub && (match.clientId === undefined || sub[1] === match.clientId) && (match.filter === undefined || sub[3] === match.filter)) n++;
      }
      return n;
    },
  };
  try {
    await m.start();
  } catch (err) {
    dir.remove();
    throw err;
  }
  return m;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Until a TCP connect to the port succeeds; fails at once when `dead` says why mosquitto is gone. */
async function waitListening(port: number, timeoutMs: number, dead: () => string | null): Promise<void> {
  const outcome = await waitFor(`mosquitto listening on ${port}`, async () => ((await accepts(port)) ? LISTENING : dead()), timeoutMs);
  if (outcome !== LISTENING) throw new Error(outcome);
}

const LISTENING = 'listening';

function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
