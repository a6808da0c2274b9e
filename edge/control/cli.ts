/**
 * The control commands of the `streetbox` CLI. dim / override / release / commands talk to the
 * running gateway's HTTP API (base URL from devices.yaml api.host/port, bearer token from
 * --token or STREETBOX_TOKEN) and wait for the outcome; `schedule preview` works offline from
 * the configuration alone.
 *
 * Exit codes (edge/cli.ts maps the errors): 0 verified / ok; 1 failed, expired, no outcome in
 * time or the gateway unreachable; 2 bad input or a rejected command (StreetboxError E_USAGE).
 * On a terminal the outcomes carry ✔/✘ and colours (edge/cliStyle.ts); piped, plain words.
 * Times are ISO 8601 in the gateway's zone (edge/timeFormat.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { Backoff } from '../backoff.js';
import type { CliIo } from '../cliIo.js';
import { stripAnsi, styleFor, type Style } from '../cliStyle.js';
import { loadConfig } from '../config/index.js';
import type { Config } from '../config/schema.js';
import { apiCall, apiClient, type ApiAnswer, type ApiClient } from '../cliApi.js';
import { StreetboxError } from '../errors.js';
import { isoLocal } from '../timeFormat.js';
import { FINAL_STATUSES, isCommandStatus, type CommandStatus } from '../store/types.js';
import { createScheduler, formatPreview } from './schedule.js';

/** out is a terminal (edge/cli.ts sets it): colours and ✔/✘ */
type Io = CliIo & { outIsTTY?: boolean };

const DEFAULT_CONFIG = process.env.STREETBOX_CONFIG ?? 'devices.yaml';
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };

/** "2h", "90m", "10s", "1.5h", or plain seconds → seconds. */
export function parseDurationS(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${name}" expects a duration like 30s, 15m, 2h or 1d, got "${text}"`);
  const s = Number(m[1]) * UNITS[m[2] ?? 's']!;
  if (!(s > 0)) throw new InvalidArgumentError(`"${name}" must be more than 0, got "${text}"`);
  return s;
}

function intIn(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`"${name}" must be an integer ${min}..${max}, got "${value}"`);
    return n;
  };
}

const usage = (msg: string) => new StreetboxError('E_USAGE', msg);

interface ApiOptions {
  config?: string;
  token?: string;
  url?: string;
  timeout: number;
  wait: boolean;
  group?: boolean;
}

function apiOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', `the gateway configuration: the API address and the device and group ids (default: ${DEFAULT_CONFIG}, not read with --url)`)
    .option('--token <token>', 'API bearer token (default: $STREETBOX_TOKEN)')
    .option('--url <url>', 'the gateway API base URL (default: from api.host and api.port)')
    .addOption(new Option('--timeout <duration>', 'how long to wait for the outcome').default(30, '30s').argParser((v) => parseDurationS(v, '--timeout')))
    .option('--no-wait', 'print the queued command id and return')
    .option('--group', 'the target is a group (default: decided from the configuration)');
}

interface Client extends ApiClient {
  config: Config | null;
}

function client(opts: ApiOptions): Client {
  const token = opts.token ?? process.env.STREETBOX_TOKEN;
  if (!token) throw usage('no API token: give --token or set STREETBOX_TOKEN');
  // with --url the configuration is read only when named (-c): the CLI may run off the gateway
  const file = opts.config ?? (opts.url === undefined ? DEFAULT_CONFIG : undefined);
  const loaded = file === undefined ? null : loadConfig(file);
  // with api.tls: https://, trusting its CA or its certificate (edge/cliApi.ts)
  return { ...apiClient(token, opts.url, loaded && { api: loaded.config.api, dir: loaded.dir }), config: loaded?.config ?? null };
}

function call(c: Client, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer> {
  return apiCall(c, method, path, body);
}

type Row = { id: string; status: CommandStatus; action: string; target: { kind: string; id: string }; ts: number; source?: { role: string; principal: string }; result?: unknown; params?: Record<string, unknown> };

function rowOf(body: unknown): Row | null {
  if (body === null || typeof body !== 'object') return null;
  const b = body as Record<string, unknown>;
  const r = (typeof b.command === 'object' && b.command !== null ? b.command : b) as Partial<Row>;
  return typeof r.id === 'string' && typeof r.status === 'string' && isCommandStatus(r.status) && typeof r.action === 'string' ? (r as Row) : null;
}

function errorOf(body: unknown): string {
  if (body !== null && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.error === 'string') return typeof b.code === 'string' ? `${b.error} (${b.code})` : b.error;
  }
  return typeof body === 'string' && body.length > 0 ? body.slice(0, 300) : 'no details';
}

const GOOD = new Set(['verified']);
const BAD = new Set(['failed', 'rejected']);

/** A status word as a person sees it: ✔ green, ✘ red, the rest yellow or cyan; piped, the word alone. */
function statusText(s: Style, status: string): string {
  if (!s.marks) return status;
  if (GOOD.has(status)) return s.ok(s.green(status));
  if (BAD.has(status)) return s.fail(s.red(status));
  return status === 'expired' ? s.yellow(status) : s.cyan(status);
}

/** Who sent a command, once: `technician:demo-technician`, `schedule:park-night` (whose principal already names its role). */
export function sourceText(source: { role: string; principal: string } | undefined): string {
  if (!source) return '';
  // rows stored before the principal lost its role prefix ("schedule:schedule:park-night")
  return source.principal.startsWith(`${source.role}:`) ? source.principal : `${source.role}:${source.principal}`;
}

/** One line per device outcome of a row's result. */
function outcomeLines(s: Style, row: Row): string[] {
  const r = row.result as { devices?: Record<string, { status: string; level?: number; reason?: string }>; error?: string; code?: string; skipped?: string[] } | null;
  const lines: string[] = [];
  if (r?.error) lines.push(`  reason: ${r.error}${r.code ? ` (${r.code})` : ''}`);
  for (const [d, o] of Object.entries(r?.devices ?? {})) lines.push(`  ${d}: ${statusText(s, o.status)}${o.level !== undefined ? ` at ${o.level} %` : ''}${o.reason ? ` (${o.reason})` : ''}`);
  if (r?.skipped?.length) lines.push(`  skipped (not lights): ${r.skipped.join(', ')}`);
  return lines;
}

function targetOf(c: Client, id: string, group: boolean | undefined): { kind: 'device' | 'group'; id: string } {
  if (group) return { kind: 'group', id };
  const cfg = c.config;
  if (!cfg) return { kind: 'device', id };
  if (cfg.devices.some((d) => d.id === id)) return { kind: 'device', id };
  const groups = new Set([...cfg.groups.map((g) => g.id), ...cfg.devices.flatMap((d) => d.groups)]);
  if (groups.has(id)) return { kind: 'group', id };
  throw usage(`unknown device or group "${id}"`);
}

async function submitAndWait(io: Io, opts: ApiOptions, targetId: string, body: Record<string, unknown>): Promise<void> {
  const c = client(opts);
  const target = targetOf(c, targetId, opts.group);
  const path = `/api/v1/${target.kind === 'group' ? 'groups' : 'devices'}/${encodeURIComponent(target.id)}/commands`;
  const posted = await call(c, 'POST', path, body);
  const first = rowOf(posted.body);
  const id = first?.id ?? (posted.body as { id?: unknown } | null)?.id;
  if (posted.status >= 500) throw new StreetboxError('E_COMPONENT', `the gateway failed (${posted.status}): ${errorOf(posted.body)}`);
  if (posted.status >= 400 || typeof id !== 'string') {
    throw usage(`rejected (${posted.status}): ${errorOf(posted.body)}`);
  }
  if (first?.status === 'rejected') return finish(io, first);
  io.out(`command ${id} ${statusText(styleFor({ isTTY: io.outIsTTY }), 'queued')}: ${body.action} ${target.kind} ${target.id}\n`);
  if (!opts.wait) return;
  const deadline = Date.now() + opts.timeout * 1000;
  let last: Row | null = first;
  const polls = new Backoff({ minMs: 50, maxMs: 500 });
  while (Date.now() < deadline) {
    const got = await call(c, 'GET', `/api/v1/commands/${encodeURIComponent(id)}`);
    if (got.status >= 400 && got.status !== 404) throw new StreetboxError('E_COMPONENT', `could not read command ${id} (${got.status}): ${errorOf(got.body)}`);
    last = rowOf(got.body) ?? last;
    if (last && FINAL_STATUSES.has(last.status)) return finish(io, last);
    // 50 ms doubling to 500 ms, never past the deadline
    await new Promise((r) => setTimeout(r, Math.min(polls.next(), Math.max(0, deadline - Date.now()))));
  }
  throw new StreetboxError('E_COMPONENT', `no outcome for command ${id} within ${opts.timeout} s (still ${last?.status ?? 'unknown'})`);
}

function finish(io: Io, row: Row): void {
  const s = styleFor({ isTTY: io.outIsTTY });
  const lines = [`command ${row.id} ${statusText(s, row.status)}: ${row.action} ${row.target.kind} ${row.target.id}`, ...outcomeLines(s, row)];
  io.out(lines.join('\n') + '\n');
  if (row.status === 'verified') return;
  if (row.status === 'rejected') throw usage(`command ${row.id} rejected`);
  throw new StreetboxError('E_COMPONENT', `command ${row.id} ${row.status}`);
}

export function registerControlCommands(program: Command, io: Io): void {
  apiOptions(
    program
      .command('dim')
      .description('dim a light or a group (0-100 %) and wait until the controllers verify it')
      .argument('<target>', 'a device id or a group id')
      .argument('<level>', 'level 0..100', intIn('level', 0, 100))
      .option('--for <duration>', 'hold it this long (default: until the next schedule step)', (v) => parseDurationS(v, '--for'))
      .option('--ramp <duration>', 'ramp time', (v) => parseDurationS(v, '--ramp'))
      .option('--priority <n>', 'priority within your role\'s band', intIn('--priority', 1, 100))
      .option('--reason <text>', 'why'),
  ).action(async (target: string, level: number, opts: ApiOptions & { for?: number; ramp?: number; priority?: number; reason?: string }) => {
    const body: Record<string, unknown> = { action: 'dim', level };
    if (opts.for !== undefined) body.durationS = opts.for;
    if (opts.ramp !== undefined) body.rampS = opts.ramp;
    if (opts.priority !== undefined) body.priority = opts.priority;
    if (opts.reason !== undefined) body.reason = opts.reason;
    await submitAndWait(io, opts, target, body);
  });

  apiOptions(
    program
      .command('override')
      .description('override the level of a light or group for a while, with a reason')
      .argument('<target>', 'a device id or a group id')
      .argument('<level>', 'level 0..100', intIn('level', 0, 100))
      .requiredOption('--for <duration>', 'how long it holds (30m, 2h, …)', (v) => parseDurationS(v, '--for'))
      .requiredOption('--reason <text>', 'why (recorded with the command)')
      .option('--priority <n>', 'priority within your role\'s band', intIn('--priority', 1, 100)),
  ).action(async (target: string, level: number, opts: ApiOptions & { for: number; reason: string; priority?: number }) => {
    const body: Record<string, unknown> = { action: 'override', level, durationS: opts.for, reason: opts.reason };
    if (opts.priority !== undefined) body.priority = opts.priority;
    await submitAndWait(io, opts, target, body);
  });

  apiOptions(
    program
      .command('release')
      .description('release an override (yours on the target, or the one of --command)')
      .argument('<target>', 'a device id or a group id')
      .option('--command <id>', 'the command id of the override to release'),
  ).action(async (target: string, opts: ApiOptions & { command?: string }) => {
    await submitAndWait(io, opts, target, opts.command !== undefined ? { action: 'release', commandId: opts.command } : { action: 'release' });
  });

  program
    .command('commands')
    .description('recent commands with their status')
    .option('-c, --config <file>', `the gateway configuration, for the API address (default: ${DEFAULT_CONFIG}, not read with --url)`)
    .option('--token <token>', 'API bearer token (default: $STREETBOX_TOKEN)')
    .option('--url <url>', 'the gateway API base URL')
    .option('--limit <n>', 'how many', intIn('--limit', 1, 1000), 20)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nTimes are ISO 8601 in the gateway\'s time zone (gateway.timezone of the configuration; UTC with --url alone).')
    .action(async (opts: { config?: string; token?: string; url?: string; limit: number; json?: boolean }) => {
      const c = client({ ...opts, timeout: 10, wait: false });
      const got = await call(c, 'GET', `/api/v1/commands?limit=${opts.limit}`);
      if (got.status >= 400) throw (got.status >= 500 ? new StreetboxError('E_COMPONENT', errorOf(got.body)) : usage(`${got.status}: ${errorOf(got.body)}`));
      const b = got.body as Row[] | { commands?: Row[]; items?: Row[] } | null;
      const rows = (Array.isArray(b) ? b : (b?.commands ?? b?.items ?? [])).slice(0, opts.limit);
      if (opts.json) {
        io.out(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      if (rows.length === 0) {
        io.out('no commands\n');
        return;
      }
      const zone = c.config?.gateway.timezone ?? 'UTC';
      const s = styleFor({ isTTY: io.outIsTTY });
      const statuses = rows.map((r) => statusText(s, r.status));
      // padded by what shows: escapes take no columns
      const width = Math.max(8, ...statuses.map((t) => stripAnsi(t).length));
      let text = '';
      for (const [i, r] of rows.entries()) {
        const level = r.params && typeof r.params.level === 'number' ? ` ${r.params.level} %` : '';
        const why = (r.result as { error?: string } | null)?.error;
        const status = statuses[i]! + ' '.repeat(width - stripAnsi(statuses[i]!).length);
        text += `${isoLocal(r.ts, zone)}  ${r.id.slice(0, 8)}  ${status}  ${`${r.action}${level}`.padEnd(14)}  ${`${r.target.kind} ${r.target.id}`.padEnd(28)}  ${sourceText(r.source)}${why ? `  (${why})` : ''}\n`;
      }
      io.out(text);
    });

  const schedule = program.command('schedule').description('dimming schedules');
  schedule
    .command('preview')
    .description('print what the schedules of a group do, when (offline: the configuration only)')
    .addOption(new Option('-c, --config <file>', 'the gateway configuration').default(DEFAULT_CONFIG))
    .requiredOption('--group <id>', 'the group')
    .option('--days <n>', 'how many days', intIn('--days', 1, 366), 7)
    .option('--from <date>', 'first day, YYYY-MM-DD in the gateway\'s zone (or an ISO time); default now')
    .action((opts: { config: string; group: string; days: number; from?: string }) => {
      const { config } = loadConfig(opts.config);
      const groups = new Set([...config.groups.map((g) => g.id), ...config.devices.flatMap((d) => d.groups), ...config.schedules.flatMap((s) => s.groups)]);
      if (!groups.has(opts.group)) throw usage(`unknown group "${opts.group}"; groups: ${[...groups].join(', ') || '(none)'}`);
      const scheduler = createScheduler(config.schedules, config.gateway);
      let from = Date.now();
      if (opts.from !== undefined) {
        const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(opts.from);
        if (d) from = scheduler.zone.toUtc({ year: Number(d[1]), month: Number(d[2]), day: Number(d[3]) }, 0).at;
        else from = Date.parse(opts.from);
        if (!Number.isFinite(from)) throw usage(`"--from" expects YYYY-MM-DD or an ISO time, got "${opts.from}"`);
      }
      io.out(formatPreview(scheduler, opts.group, from, opts.days) + '\n');
    });
}
