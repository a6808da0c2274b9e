/**
 * The firmware commands of the `streetbox` CLI (issue 17, the technician's tools):
 *
 *   deploy <envelope.json> [--artifact FILE] [--wait]
 *       through the running gateway's HTTP API (edge/api/routes/deployments.ts): the artifact
 *       first when given (POST /api/v1/artifacts; its manifest's source is `{ local: true }`),
 *       then the envelope (POST /api/v1/deployments); with --wait, the deployment followed until
 *       it ends, each device's progress on stderr as it moves, the devices' table at the end
 *   deploy sign <manifest.json> --key <private.pem> [--gateway <id>] [-o FILE]
 *       offline: the envelope `{ manifest, signature }` for a gateway (manifest.ts), the manifest
 *       checked first (it must parse and name that gateway)
 *   deployments [<id>]
 *       the deployments (id, status, artifact, counts), or one with each device's stage, bytes and
 *       why it waits
 *   deployments pause | resume | cancel <id>
 *
 * The API address comes from devices.yaml's api.host/port (-c) or --url, the bearer token from
 * --token or STREETBOX_TOKEN, as edge/control/cli.ts does. Exit codes (edge/cli.ts maps the
 * errors): 0 accepted (without --wait), completed with every device confirmed, a listing, an
 * action done; 1 halted, cancelled, completed with devices failed, no end within --timeout, an
 * action on a deployment that has ended, the gateway unreachable; 2 refused (every E_FW_* refusal
 * of the manifest), bad input, a token that may not.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Backoff } from '../backoff.js';
import { apiCall, apiClient, apiRequest, type ApiAnswer, type ApiClient } from '../cliApi.js';
import type { CliIo } from '../cliIo.js';
import { styleFor, type Style } from '../cliStyle.js';
import { loadConfig } from '../config/index.js';
import { parseDurationS } from '../control/cli.js';
import { StreetboxError, errorMessage, type ErrorCode } from '../errors.js';
import { isoLocal } from '../timeFormat.js';
import { makeEnvelope, parseManifestText, signManifest } from './manifest.js';
import { FINAL_DEPLOYMENT_STATUSES, JOB_STAGES, type DeploymentReport, type FirmwareCode, type JobStage } from './records.js';
import type { DeploymentAction } from './types.js';

const DEFAULT_CONFIG = process.env.STREETBOX_CONFIG ?? 'devices.yaml';
/** polls of a deployment under --wait: 0.5 s doubling to 5 s */
const POLL_MIN_MS = 500;
const POLL_MAX_MS = 5000;

/** The refusals of a manifest: exit 2 (edge/cli.ts BAD_INPUT_CODES has them). */
export const REFUSAL_CODES: readonly FirmwareCode[] = ['E_FW_INVALID', 'E_FW_SIGNATURE', 'E_FW_GATEWAY', 'E_FW_DUPLICATE', 'E_FW_TARGET', 'E_FW_FORBIDDEN', 'E_FW_ARTIFACT', 'E_FW_QUOTA'];

const usage = (msg: string) => new StreetboxError('E_USAGE', msg);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ───────────────────────────── the API ─────────────────────────────

interface ApiOptions {
  config?: string;
  token?: string;
  url?: string;
  json?: boolean;
}

interface Client extends ApiClient {
  /** gateway.timezone when a configuration was read, else UTC */
  zone: string;
}

function client(opts: ApiOptions): Client {
  const token = opts.token ?? process.env.STREETBOX_TOKEN;
  if (!token) throw usage('no API token: give --token or set STREETBOX_TOKEN');
  // with --url the configuration is read only when named (-c): the CLI may run off the gateway
  const file = opts.config ?? (opts.url === undefined ? DEFAULT_CONFIG : undefined);
  const loaded = file === undefined ? null : loadConfig(file);
  // with api.tls: https://, trusting its CA or its certificate (edge/cliApi.ts)
  return { ...apiClient(token, opts.url, loaded && { api: loaded.config.api, dir: loaded.dir }), zone: loaded?.config.gateway.timezone ?? 'UTC' };
}

function errorOf(body: unknown): string {
  if (isRecord(body)) {
    const text = typeof body.error === 'string' ? body.error : typeof body.reason === 'string' ? body.reason : null;
    if (text !== null) return typeof body.code === 'string' ? `${text} (${body.code})` : text;
  }
  return typeof body === 'string' && body.length > 0 ? body.slice(0, 300) : 'no details';
}

/** An answer that is no report: what it means for the exit code. */
function refusalOf(a: ApiAnswer, what: string): StreetboxError {
  const code = isRecord(a.body) && typeof a.body.code === 'string' ? a.body.code : null;
  if (code !== null && (REFUSAL_CODES as readonly string[]).includes(code)) return new StreetboxError(code as FirmwareCode, `${what}: ${errorOf(a.body)}`);
  if (a.status >= 500 || a.status < 400) return new StreetboxError('E_COMPONENT', `${what}: the gateway answered ${a.status}: ${errorOf(a.body)}`);
  const mapped: ErrorCode = a.status === 401 || a.status === 403 ? 'E_FORBIDDEN' : a.status === 404 ? 'E_NOT_FOUND' : a.status === 409 ? ((code as ErrorCode | null) ?? 'E_FW_FINAL') : 'E_USAGE';
  const hint = a.status === 401 ? ' (is the token right?)' : a.status === 403 ? ' (a technician or central token may deploy)' : '';
  return new StreetboxError(mapped, `${what}: ${a.status} ${errorOf(a.body)}${hint}`);
}

function reportOf(body: unknown): DeploymentReport | null {
  const r = isRecord(body) && isRecord(body.report) ? body.report : body;
  return isRecord(r) && typeof r.id === 'string' && typeof r.status === 'string' && Array.isArray(r.jobs) && isRecord(r.counts) ? (r as unknown as DeploymentReport) : null;
}

/** POST /api/v1/artifacts: the file's bytes as they are (apiCall sends JSON). */
async function uploadArtifact(c: Client, file: string, timeoutMs: number): Promise<{ sha256: string; size: number }> {
  const data = readBytes(file, 'artifact');
  const a = await apiRequest(c, 'POST', '/api/v1/artifacts', { bytes: data, type: 'application/octet-stream' }, { timeoutMs, timeoutHint: `uploading ${file}` });
  const body = a.body;
  if (a.status !== 201 || !isRecord(body) || typeof body.sha256 !== 'string' || typeof body.size !== 'number') throw refusalOf(a, `uploading ${file}`);
  return { sha256: body.sha256, size: body.size };
}

// ───────────────────────────── how a deployment reads ─────────────────────────────

/** A stage (or a status) in words: `rolledBack` is `rolled back`; the others read as they are. */
const stageWords = (stage: string): string => (stage === 'rolledBack' ? 'rolled back' : stage);

function statusText(s: Style, status: string): string {
  if (status === 'completed' || status === 'confirmed') return s.green(status);
  if (['halted', 'cancelled', 'rejected', 'failed', 'rolledBack'].includes(status)) return s.red(stageWords(status));
  return s.yellow(stageWords(status));
}

/** `3 confirmed, 1 transferring, 2 pending`: the stages with a count, in road order. */
export function countsText(counts: Partial<Record<JobStage, number>>): string {
  const parts = JOB_STAGES.filter((st) => (counts[st] ?? 0) > 0).map((st) => `${counts[st]} ${stageWords(st)}`);
  return parts.length > 0 ? parts.join(', ') : 'no devices';
}

const percent = (done: number, total: number) => (total > 0 ? Math.floor((done * 100) / total) : 0);

/** A plain table: a bold header, columns padded by what shows (escapes take no columns). */
function table(s: Style, head: string[], rows: { text: string; shown?: string }[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i]?.text ?? '').length)));
  const line = (cells: { text: string; shown?: string }[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? (c.shown ?? c.text) : (c.shown ?? c.text) + ' '.repeat(Math.max(0, widths[i]! - c.text.length))))
      .join('  ')
      .trimEnd();
  return `${[s.bold(line(head.map((text) => ({ text })))), ...rows.map(line)].join('\n')}\n`;
}

/** `streetbox deployments`: newest first as the gateway lists them. */
export function deploymentsTable(reports: readonly DeploymentReport[], s: Style): string {
  if (reports.length === 0) return 'no deployments recorded yet\n';
  return table(
    s,
    ['ID', 'STATUS', 'ARTIFACT', 'WAVE', 'DEVICES'],
    reports.map((r) => [
      { text: r.id },
      { text: r.status, shown: statusText(s, r.status) },
      { text: `${r.artifact.name} ${r.artifact.version}` },
      { text: r.waves > 0 ? `${Math.min(r.wave + 1, r.waves)}/${r.waves}` : '-' },
      { text: `${countsText(r.counts)}${r.code ? ` · ${r.code}` : ''}` },
    ]),
  );
}

/** `streetbox deployments <id>`: the deployment, then one row per device. */
export function deploymentText(r: DeploymentReport, zone: string, s: Style): string {
  const head = [
    `deployment ${s.bold(r.id)} ${statusText(s, r.status)}${r.reason ? `: ${r.reason}` : ''}${r.code ? ` (${r.code})` : ''}`,
    `artifact ${r.artifact.name} ${r.artifact.version}, ${r.artifact.size} bytes, sha256 ${r.artifact.sha256.slice(0, 16)}…`,
    `wave ${r.waves > 0 ? `${Math.min(r.wave + 1, r.waves)} of ${r.waves}` : '-'} · ${countsText(r.counts)} · as of ${isoLocal(r.at, zone)}`,
  ];
  if (r.jobs.length === 0) return `${head.join('\n')}\n`;
  const rows = r.jobs.map((j) => [
    { text: j.device },
    { text: stageWords(j.stage), shown: statusText(s, j.stage) },
    { text: `${j.bytesAcked}/${j.bytes} (${percent(j.bytesAcked, j.bytes)} %)` },
    { text: versionText(j.versionBefore, j.versionAfter) },
    { text: j.waiting !== null ? `waiting: ${j.waiting}` : j.reason !== null ? `${j.reason}${j.code ? ` (${j.code})` : ''}` : (j.code ?? '') },
  ]);
  return `${head.join('\n')}\n\n${table(s, ['DEVICE', 'STAGE', 'BYTES', 'VERSION', 'NOTE'], rows)}`;
}

function versionText(before: number | string | null, after: number | string | null): string {
  const v = (x: number | string | null) => (x === null ? '?' : typeof x === 'number' ? `0x${x.toString(16).padStart(4, '0')}` : x);
  return after === null ? v(before) : `${v(before)} → ${v(after)}`;
}

/** One line per device whose stage, bytes or waiting reason changed since `seen` (--wait's progress). */
function progressLines(r: DeploymentReport, seen: Map<string, string>): string[] {
  const out: string[] = [];
  for (const j of r.jobs) {
    const line = `  ${j.device}: ${stageWords(j.stage)} ${j.bytesAcked}/${j.bytes} (${percent(j.bytesAcked, j.bytes)} %)${j.waiting ? ` · waiting: ${j.waiting}` : ''}${j.reason && !j.waiting ? ` · ${j.reason}` : ''}`;
    if (seen.get(j.device) === line) continue;
    seen.set(j.device, line);
    out.push(line);
  }
  return out;
}

// ───────────────────────────── deploy ─────────────────────────────

interface DeployOptions extends ApiOptions {
  artifact?: string;
  wait?: boolean;
  timeout?: number;
}

async function deploy(io: CliIo, file: string, opts: DeployOptions): Promise<void> {
  const text = readText(file, 'envelope');
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch (err) {
    throw usage(`${file}: not JSON (${errorMessage(err)}); streetbox deploy sign makes an envelope from a manifest`);
  }
  const c = client(opts);
  const s = styleFor({ isTTY: io.outIsTTY });
  if (opts.artifact !== undefined) {
    const stored = await uploadArtifact(c, opts.artifact, 600_000);
    if (!opts.json) io.err(`artifact ${opts.artifact} stored: ${stored.size} bytes, sha256 ${stored.sha256}\n`);
  }
  const answer = await apiCall(c, 'POST', '/api/v1/deployments', envelope, { timeoutMs: 60_000 });
  const first = reportOf(answer.body);
  if (!first) throw refusalOf(answer, `deploying ${file}`);
  if (first.status === 'rejected') return finish(io, first, c.zone, s, opts);
  if (!opts.wait) {
    if (opts.json) io.out(`${JSON.stringify(first, null, 2)}\n`);
    else io.out(`deployment ${first.id} ${statusText(s, first.status)}: ${first.jobs.length} device(s) in ${first.waves} wave(s); streetbox deployments ${first.id} shows how it goes\n`);
    return;
  }
  finish(io, await follow(io, c, first, opts), c.zone, s, opts);
}

/**
 * Polls GET /api/v1/deployments/:id until the deployment ends (or --timeout), printing each
 * device's progress on stderr as it moves. A gateway that does not answer for a while (it may be
 * the target, restarting into its new release) is waited for within the timeout.
 */
async function follow(io: CliIo, c: Client, first: DeploymentReport, opts: DeployOptions): Promise<DeploymentReport> {
  const deadline = opts.timeout === undefined ? Infinity : Date.now() + opts.timeout * 1000;
  const seen = new Map<string, string>();
  const polls = new Backoff({ minMs: POLL_MIN_MS, maxMs: POLL_MAX_MS });
  let last = first;
  let unreachable = false;
  const show = (r: DeploymentReport) => {
    if (opts.json) return;
    for (const line of progressLines(r, seen)) io.err(`${line}\n`);
  };
  show(last);
  while (!FINAL_DEPLOYMENT_STATUSES.includes(last.status)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new StreetboxError('E_FW_TIMEOUT', `deployment ${last.id} did not end within the timeout (still ${last.status}: ${countsText(last.counts)}); streetbox deployments ${last.id} shows it`);
    await new Promise((r) => setTimeout(r, Math.min(polls.next(), left)));
    let got: ApiAnswer;
    try {
      got = await apiCall(c, 'GET', `/api/v1/deployments/${encodeURIComponent(last.id)}`, undefined, { timeoutMs: 10_000 });
    } catch (err) {
      if (!(err instanceof StreetboxError) || err.code !== 'E_COMPONENT') throw err;
      if (!unreachable && !opts.json) io.err(`  the gateway does not answer (${err.message}); waiting for it\n`);
      unreachable = true;
      continue;
    }
    unreachable = false;
    const r = reportOf(got.body);
    if (!r) throw refusalOf(got, `reading deployment ${last.id}`);
    // progress resets the polls: a transfer under way is followed closely
    if (progressLines(r, new Map(seen)).length > 0) polls.reset();
    last = r;
    show(last);
  }
  return last;
}

/**
 * Prints a deployment at its end (or a refusal) and throws for the exit code: completed with
 * every device confirmed 0; a refusal 2; halted, cancelled or completed with failures 1.
 */
function finish(io: CliIo, r: DeploymentReport, zone: string, s: Style, opts: { json?: boolean }): void {
  if (opts.json) io.out(`${JSON.stringify(r, null, 2)}\n`);
  else io.out(deploymentText(r, zone, s));
  const unconfirmed = r.jobs.filter((j) => j.stage !== 'confirmed').length;
  switch (r.status) {
    case 'completed':
      if (unconfirmed === 0) return;
      throw new StreetboxError('E_FW_VERIFY', `deployment ${r.id} completed with ${unconfirmed} device(s) not updated: ${countsText(r.counts)}`);
    case 'rejected':
      throw new StreetboxError(r.code !== null && REFUSAL_CODES.includes(r.code) ? r.code : 'E_FW_INVALID', `deployment ${r.id || '(no id)'} refused: ${r.reason ?? 'no reason given'}`);
    default:
      throw new StreetboxError(r.code ?? (r.status === 'cancelled' ? 'E_FW_CANCELLED' : 'E_FW_HALTED'), `deployment ${r.id} ${r.status}${r.reason ? `: ${r.reason}` : ''}`);
  }
}

// ───────────────────────────── sign ─────────────────────────────

interface SignOptions {
  key: string;
  gateway?: string;
  config?: string;
  out?: string;
}

/** The envelope for a manifest file, signed for its gateway; the manifest must parse and name that gateway. */
export function signedEnvelope(file: string, opts: SignOptions): string {
  const text = readText(file, 'manifest');
  const pem = readText(opts.key, 'private key');
  const gateway = opts.gateway ?? loadConfig(opts.config ?? DEFAULT_CONFIG).config.gateway.id;
  const parsed = parseManifestText(text);
  if (!parsed.ok) throw new StreetboxError('E_FW_INVALID', `${file}: ${parsed.reason}`);
  if (parsed.manifest.gateway !== gateway) throw new StreetboxError('E_FW_GATEWAY', `${file} is for gateway "${parsed.manifest.gateway}", not "${gateway}"`);
  let signature: string;
  try {
    signature = signManifest(gateway, text, pem);
  } catch (err) {
    throw usage(`--key ${opts.key}: not an ed25519 private key in PEM (${errorMessage(err)})`);
  }
  return makeEnvelope(text, signature);
}

// ───────────────────────────── files ─────────────────────────────

function readText(file: string, what: string): string {
  return readBytes(file, what).toString('utf8');
}

function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw usage(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

// ───────────────────────────── the commands ─────────────────────────────

function apiOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', `the gateway configuration, for the API address (default: ${DEFAULT_CONFIG}, not read with --url)`)
    .option('--token <token>', 'API bearer token (default: $STREETBOX_TOKEN)')
    .option('--url <url>', 'the gateway API base URL (default: from api.host and api.port)')
    .option('--json', 'print JSON');
}

/** A subcommand's options with its parent's (an option given before the subcommand's name belongs to the parent). */
const optionsOf = <T>(cmd: Command): T => cmd.optsWithGlobals<T & Record<string, unknown>>();

export function registerFirmwareCommands(program: Command, io: CliIo): void {
  const deployCmd = apiOptions(
    program
      .command('deploy')
      .description('send a signed deployment to the gateway through its API (streetbox deploy sign makes one from a manifest)')
      .argument('<envelope.json>', 'the envelope { "manifest": "<json text>", "signature": "<base64>" }')
      .option('--artifact <file>', 'upload this artifact first (its manifest source is { "local": true })')
      .option('--wait', "follow the deployment until it ends, each device's progress on stderr")
      .option('--timeout <duration>', 'with --wait: give up after this long (exit 1); default: wait until it ends', (v) => parseDurationS(v, '--timeout')),
  ).action(async (file: string, _opts: unknown, cmd: Command) => {
    await deploy(io, file, optionsOf<DeployOptions>(cmd));
  });

  deployCmd
    .command('sign')
    .description('print (or write) the signed envelope of a manifest for a gateway (offline)')
    .argument('<manifest.json>', 'the manifest (its exact text is signed)')
    .requiredOption('--key <private.pem>', 'ed25519 private key, PEM (openssl genpkey -algorithm ed25519)')
    .option('--gateway <id>', 'the gateway it is for (default: gateway.id of the configuration)')
    .option('-c, --config <file>', `the configuration naming the gateway (default: ${DEFAULT_CONFIG})`)
    .option('-o, --out <file>', 'write the envelope to this file instead of stdout')
    .action((file: string, _opts: unknown, cmd: Command) => {
      const opts = optionsOf<SignOptions>(cmd);
      const envelope = signedEnvelope(file, opts);
      if (opts.out !== undefined) writeFileSync(opts.out, `${envelope}\n`);
      else io.out(`${envelope}\n`);
    });

  const list = apiOptions(
    program
      .command('deployments')
      .description("firmware deployments: the list, or one with each device's stage and progress; pause, resume, cancel")
      .argument('[id]', 'one deployment')
      .option('--limit <n>', 'how many (1..1000)', '20'),
  ).action(async (id: string | undefined, _opts: unknown, cmd: Command) => {
    const opts = optionsOf<ApiOptions & { limit: string }>(cmd);
    const c = client(opts);
    const s = styleFor({ isTTY: io.outIsTTY });
    if (id === undefined) {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usage(`"--limit" must be an integer 1..1000, got "${opts.limit}"`);
      const a = await apiCall(c, 'GET', `/api/v1/deployments?limit=${limit}`);
      const reports = isRecord(a.body) && Array.isArray(a.body.deployments) ? (a.body.deployments as DeploymentReport[]) : null;
      if (a.status !== 200 || reports === null) throw refusalOf(a, 'listing deployments');
      io.out(opts.json ? `${JSON.stringify(reports, null, 2)}\n` : deploymentsTable(reports, s));
      return;
    }
    const a = await apiCall(c, 'GET', `/api/v1/deployments/${encodeURIComponent(id)}`);
    const r = reportOf(a.body);
    if (a.status !== 200 || !r) throw refusalOf(a, `deployment ${id}`);
    io.out(opts.json ? `${JSON.stringify(a.body, null, 2)}\n` : deploymentText(r, c.zone, s));
  });

  const DONE: Record<DeploymentAction, string> = { pause: 'paused: no new job starts', resume: 'resumed', cancel: 'cancelled: jobs not past transferring end cancelled' };
  for (const action of ['pause', 'resume', 'cancel'] as const) {
    apiOptions(list.command(action).description(`${action} a deployment`).argument('<id>', 'the deployment')).action(async (id: string, _opts: unknown, cmd: Command) => {
      const opts = optionsOf<ApiOptions>(cmd);
      const c = client(opts);
      const a = await apiCall(c, 'POST', `/api/v1/deployments/${encodeURIComponent(id)}/${action}`, {});
      const r = reportOf(a.body);
      if (a.status !== 200 || !r) throw refusalOf(a, `${action} ${id}`);
      io.out(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `deployment ${r.id} ${DONE[action]} (now ${statusText(styleFor({ isTTY: io.outIsTTY }), r.status)}: ${countsText(r.counts)})\n`);
    });
  }
}
