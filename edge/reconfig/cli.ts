/**
 * The configuration commands of the `streetbox` CLI (issue 16, the technician's tools):
 *
 *   config history | show <v> | diff <a> <b>
 *       offline, from the data file (storage.path of devices.yaml, opened read-only: they work
 *       beside a running gateway and with it stopped, as `streetbox status` does); every secret
 *       shown as `***` (redactText.ts)
 *   config sign <file> --key <pem> --id <id>
 *       offline: the JSON message central publishes on `streetbox/<gw>/down/config`, signed with
 *       an ed25519 private key (signature.ts)
 *   config apply <file> | confirm | rollback <v>
 *       through the running gateway's HTTP API (base URL from api.host/port, bearer token from
 *       --token or STREETBOX_TOKEN, as edge/control/cli.ts does)
 *   reload
 *       SIGHUP to the gateway holding the data file's pid lock, then the change's outcome as the
 *       data file records it (its config.* events)
 *
 * Exit codes (edge/cli.ts maps the errors): 0 confirmed, applied and awaiting a manual confirm,
 * unchanged, or a listing; 1 rolled back, refused for another reason (stale base, busy, needs a
 * restart, …), no outcome in time, no gateway running or unreachable; 2 bad input: a text with
 * problems (each printed as `<file>:<line>:<col> <path>: <message>` on stderr), an unknown
 * version, a token that may not.
 *
 * devices.yaml is read leniently here: a file that does not validate (the very edit a technician
 * wants to reload or apply) still names its data file and its API address.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDocument } from 'yaml';
import { Backoff } from '../backoff.js';
import { apiCall, apiClient, type ApiAnswer, type ApiClient, type ApiSite } from '../cliApi.js';
import type { CliIo } from '../cliIo.js';
import { styleFor, type Style } from '../cliStyle.js';
import { ConfigError, formatIssue, loadConfig } from '../config/index.js';
import { parseDurationS } from '../control/cli.js';
import { StreetboxError, errorMessage, type ErrorCode } from '../errors.js';
import { lockHolder } from '../pidLock.js';
import { openStoreReadOnly, type StoreView } from '../store/index.js';
import type { StoredEvent } from '../store/types.js';
import { isoLocal } from '../timeFormat.js';
import { CONFIG_STAGES, FINAL_STAGES, type ConfigProblem, type ConfigRefusalCode, type ConfigStage, type ConfigVersion } from './records.js';
import { redactText } from './redactText.js';
import { signChange } from './signature.js';
import { unifiedDiff } from './textDiff.js';
import { ConfigVersions } from './versions.js';

const DEFAULT_CONFIG = process.env.STREETBOX_CONFIG ?? 'devices.yaml';
/** `reload`, `apply` and `rollback` wait this long by default: the gateway's confirm timeout (2 min) and the apply */
const DEFAULT_WAIT_S = 150;

const usage = (msg: string) => new StreetboxError('E_USAGE', msg);

function intArg(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`"${name}" must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ───────────────────────────── devices.yaml, leniently ─────────────────────────────

/** What the commands need of devices.yaml. */
interface Site {
  /** the data file: storage.path, resolved beside devices.yaml */
  dataPath: string;
  /** gateway.timezone: times for people are shown in it */
  zone: string;
  gatewayId: string | null;
  /** api.host, api.port and api.tls: where the API is and how it is trusted */
  api: ApiSite;
  /** the devices.yaml's directory (api.tls's files are relative to it) */
  dir: string;
}

/**
 * devices.yaml's data file, zone, gateway id and API address. A file that does not validate is
 * read as plain YAML for these few values (the gateway keeps running its last good version, and
 * the technician's tools must still reach it); one that cannot even say where its data file is
 * throws its ConfigError (exit 2, every problem at line:col).
 */
function siteOf(file: string): Site {
  try {
    const { config, dir } = loadConfig(file);
    return { dataPath: config.storage.path, zone: config.gateway.timezone, gatewayId: config.gateway.id, api: config.api, dir };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const rough = roughSite(file);
    if (rough === null) throw err;
    return rough;
  }
}

function roughSite(file: string): Site | null {
  let root: unknown;
  try {
    root = parseDocument(readFileSync(file, 'utf8')).toJS();
  } catch {
    return null;
  }
  const section = (key: string): Record<string, unknown> => (isRecord(root) && isRecord(root[key]) ? root[key] : {});
  const storage = section('storage').path ?? 'data/streetbox.db';
  // an ${ENV} reference or a non-path: only the loader knows; its problems are the answer
  if (typeof storage !== 'string' || storage === '' || storage.includes('${')) return null;
  const dataPath = storage === ':memory:' || isAbsolute(storage) ? storage : resolve(dirname(resolve(file)), storage);
  const gateway = section('gateway');
  const api = section('api');
  const port = api.port;
  const tls = isRecord(api.tls) && typeof api.tls.cert === 'string' ? { cert: api.tls.cert, key: '', ...(typeof api.tls.ca === 'string' ? { ca: api.tls.ca } : {}) } : undefined;
  return {
    dataPath,
    zone: knownZone(gateway.timezone),
    gatewayId: typeof gateway.id === 'string' && gateway.id !== '' ? gateway.id : null,
    api: {
      host: typeof api.host === 'string' ? api.host : '0.0.0.0',
      port: typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : 8080,
      // the CLI never reads the key
      ...(tls ? { tls } : {}),
    },
    dir: dirname(resolve(file)),
  };
}

function knownZone(zone: unknown): string {
  if (typeof zone !== 'string') return 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone;
  } catch {
    return 'UTC';
  }
}

// ───────────────────────────── the data file ─────────────────────────────

/** The versions of a data file, read-only; close() when done. */
interface VersionsView {
  versions: ConfigVersions;
  close(): void;
}

function openVersions(dataPath: string): VersionsView {
  if (dataPath === ':memory:' || !existsSync(dataPath)) {
    throw new StreetboxError('E_NOT_FOUND', `no data file at ${dataPath} (has the gateway run with this configuration?)`);
  }
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(dataPath, { readonly: true, fileMustExist: true });
    // beside a running gateway: wait out its checkpoints instead of failing at once
    db.pragma('busy_timeout = 2000');
    return { versions: ConfigVersions.readOnly(db), close: () => db!.close() };
  } catch (err) {
    db?.close();
    if (err instanceof StreetboxError) throw err;
    throw new StreetboxError('E_STORE', `cannot read the configuration versions in ${dataPath}: ${errorMessage(err)}`, { cause: err });
  }
}

function withVersions<T>(site: Site, fn: (versions: ConfigVersions) => T): T {
  const view = openVersions(site.dataPath);
  try {
    return fn(view.versions);
  } finally {
    view.close();
  }
}

/** A version's text with every secret as `***`; E_NOT_FOUND (exit 2) for a version the file does not have or whose text it did not keep. */
function redactedContent(versions: ConfigVersions, v: number): string {
  return redactText(storedContent(versions, v));
}

function storedContent(versions: ConfigVersions, v: number): string {
  if (!versions.get(v)) throw new StreetboxError('E_NOT_FOUND', `no version ${v} in the data file (streetbox config history lists them)`);
  const text = versions.content(v);
  if (text === undefined || text === null) throw new StreetboxError('E_NOT_FOUND', `the text of version ${v} was not kept`);
  return text;
}

// ───────────────────────────── how a stage reads ─────────────────────────────

const STAGE_WORDS: Record<ConfigStage, string> = { staged: 'staged', rejected: 'rejected', applied: 'applied', confirmed: 'confirmed', rolledBack: 'rolled back' };

function stageText(s: Style, stage: ConfigStage): string {
  const word = STAGE_WORDS[stage] ?? String(stage);
  if (stage === 'confirmed') return s.green(word);
  if (stage === 'rejected' || stage === 'rolledBack') return s.red(word);
  return s.yellow(word);
}

/** Column text padded by what shows on screen (escapes take no columns). */
function pad(text: string, width: number, shown = text.length): string {
  return text + ' '.repeat(Math.max(0, width - shown));
}

/** A version row with the refusal code of its last stage (versions.code()), for the history. */
export type HistoryRow = ConfigVersion & { code?: ConfigRefusalCode };

function historyRows(versions: ConfigVersions, limit: number): HistoryRow[] {
  return versions.list({ limit }).map((v) => {
    const code = versions.code(v.version);
    return code === undefined ? v : { ...v, code };
  });
}

/** `config history`: newest first, the running one marked with `*`. */
export function historyTable(rows: readonly HistoryRow[], zone: string, s: Style): string {
  if (rows.length === 0) return 'no configuration versions recorded yet\n';
  const cells = rows.map((v) => ({
    mark: v.running ? '*' : ' ',
    version: String(v.version),
    stage: STAGE_WORDS[v.stage] ?? String(v.stage),
    stage$: stageText(s, v.stage),
    source: v.source,
    principal: v.principal,
    when: isoLocal(v.at, zone),
    sha: v.sha256 ? v.sha256.slice(0, 12) : '-',
    reason: v.reason === null ? (v.code ?? '') : `${v.reason}${v.code ? ` (${v.code})` : ''}`,
  }));
  const head = { version: 'VERSION', stage: 'STAGE', source: 'SOURCE', principal: 'PRINCIPAL', when: 'WHEN', sha: 'SHA256' };
  const w = (k: keyof typeof head) => Math.max(head[k].length, ...cells.map((c) => c[k].length));
  const widths = { version: w('version'), stage: w('stage'), source: w('source'), principal: w('principal'), when: w('when'), sha: w('sha') };
  const line = (c: { mark: string; version: string; stage: string; stage$: string; source: string; principal: string; when: string; sha: string; reason: string }) =>
    `${c.mark} ${pad(c.version, widths.version)}  ${pad(c.stage$, widths.stage, c.stage.length)}  ${pad(c.source, widths.source)}  ${pad(c.principal, widths.principal)}  ${pad(c.when, widths.when)}  ${pad(c.sha, widths.sha)}  ${c.reason}`.trimEnd();
  const lines = [s.bold(line({ mark: ' ', ...head, stage$: head.stage, reason: 'REASON' })), ...cells.map(line)];
  if (rows.some((v) => v.running)) lines.push(s.dim('* runs now'));
  return `${lines.join('\n')}\n`;
}

// ───────────────────────────── the API ─────────────────────────────

interface ApiOptions {
  config?: string;
  token?: string;
  url?: string;
  timeout: number;
  wait: boolean;
  json?: boolean;
}

type Client = ApiClient;

function apiOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', `the gateway configuration, for the API address (default: ${DEFAULT_CONFIG}, not read with --url)`)
    .option('--token <token>', 'API bearer token of a technician (default: $STREETBOX_TOKEN)')
    .option('--url <url>', 'the gateway API base URL (default: from api.host and api.port)')
    .addOption(new Option('--timeout <duration>', 'how long to wait for the outcome').default(DEFAULT_WAIT_S, `${DEFAULT_WAIT_S}s`).argParser((v) => parseDurationS(v, '--timeout')))
    .option('--json', 'print the outcome as JSON');
}

function client(opts: ApiOptions): Client {
  const token = opts.token ?? process.env.STREETBOX_TOKEN;
  if (!token) throw usage('no API token: give --token or set STREETBOX_TOKEN');
  // with --url the configuration is read only when named (-c), for api.tls's trust
  const file = opts.config ?? (opts.url === undefined ? DEFAULT_CONFIG : undefined);
  return apiClient(token, opts.url, file === undefined ? null : siteOf(file));
}

type Answer = ApiAnswer;

function call(c: Client, method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, timeoutMs: number): Promise<Answer> {
  return apiCall(c, method, path, body, { timeoutMs, timeoutHint: 'streetbox config history shows what the gateway recorded' });
}

function errorOf(body: unknown): string {
  if (isRecord(body)) {
    const text = typeof body.error === 'string' ? body.error : typeof body.reason === 'string' ? body.reason : typeof body.message === 'string' ? body.message : null;
    if (text !== null) return typeof body.code === 'string' ? `${text} (${body.code})` : text;
  }
  return typeof body === 'string' && body.length > 0 ? body.slice(0, 300) : 'no details';
}

/** A stage as the gateway reports it (a ConfigStageReport; a version row answers too). */
interface Report {
  id?: string;
  version: number | null;
  stage: ConfigStage;
  code?: ConfigRefusalCode;
  reason?: string;
  errors?: ConfigProblem[];
  components?: string[];
  runningVersion?: number | null;
  confirmBy?: number;
  at?: number;
}

function reportOf(body: unknown): Report | null {
  if (!isRecord(body)) return null;
  const r = isRecord(body.report) ? body.report : body;
  if (typeof r.stage !== 'string' || !(CONFIG_STAGES as readonly string[]).includes(r.stage)) return null;
  const version = typeof r.version === 'number' ? r.version : null;
  return { ...(r as unknown as Report), version, errors: Array.isArray(r.errors) ? (r.errors as ConfigProblem[]) : [] };
}

/** An answer without a stage: what it means for the exit code. */
function refusalOf(a: Answer, what: string): StreetboxError {
  if (a.status >= 500 || a.status < 400) return new StreetboxError('E_COMPONENT', `${what}: the gateway answered ${a.status}: ${errorOf(a.body)}`);
  const code: ErrorCode = a.status === 403 || a.status === 401 ? 'E_FORBIDDEN' : a.status === 404 ? 'E_NOT_FOUND' : a.status === 409 ? 'E_CONFIG_STALE' : 'E_USAGE';
  const hint = a.status === 401 ? ' (is the token right?)' : a.status === 403 ? ' (a technician token may change the configuration)' : '';
  return new StreetboxError(code, `${what}: ${a.status} ${errorOf(a.body)}${hint}`);
}

const settledLocally = (r: Report, manualConfirm: boolean) => FINAL_STAGES.includes(r.stage) || (r.stage === 'applied' && (r.confirmBy !== undefined || manualConfirm));

/**
 * Follows a change on GET /api/v1/config/changes/:id until it settles: a final stage, or
 * applied and awaiting the technician's confirm. Polls at 100 ms doubling to 1 s, never past
 * the deadline.
 */
async function followChange(c: Client, first: Report, deadline: number, manualConfirm: boolean): Promise<Report> {
  let last = first;
  const polls = new Backoff({ minMs: 100, maxMs: 1000 });
  while (!settledLocally(last, manualConfirm)) {
    if (last.id === undefined) return last;
    const left = deadline - Date.now();
    if (left <= 0) throw new StreetboxError('E_COMPONENT', `no outcome for version ${last.version ?? '?'} within the timeout (still ${STAGE_WORDS[last.stage]}); streetbox config history shows it`);
    await new Promise((r) => setTimeout(r, Math.min(polls.next(), left)));
    const got = await call(c, 'GET', `/api/v1/config/changes/${encodeURIComponent(last.id)}`, undefined, 10_000);
    if (got.status >= 400 && got.status !== 404) throw refusalOf(got, `reading change ${last.id}`);
    const r = reportOf(got.body);
    // the change's version row answers: no confirmBy (the first answer's deadline stays), `running` instead of runningVersion
    const confirmBy = r?.confirmBy ?? last.confirmBy;
    const running = isRecord(got.body) && got.body.running === true && r?.version !== null ? { runningVersion: r?.version ?? null } : {};
    if (r) last = { ...last, ...r, ...running, ...(r.id === undefined && last.id !== undefined ? { id: last.id } : {}), ...(confirmBy !== undefined ? { confirmBy } : {}) };
  }
  return last;
}

// ───────────────────────────── outcomes ─────────────────────────────

/** Refusals that are the request's own fault: exit 2. The others (stale, busy, restart, …) exit 1. */
const BAD_INPUT_REFUSALS = new Set<string>(['E_CONFIG_INVALID', 'E_CONFIG_FORBIDDEN', 'E_CONFIG_TOO_LARGE']);

const runs = (r: Report) => (typeof r.runningVersion === 'number' ? `version ${r.runningVersion} runs` : 'no recorded version runs');

/**
 * Prints a settled change and throws for the exit code: nothing for confirmed, awaiting a
 * confirm, staged (--no-wait) or unchanged; problems at `<file>:<line>:<col>` and exit 2 for a
 * rejected text; exit 1 for rolled back and any other refusal.
 */
function finish(io: CliIo, r: Report, opts: { label: string; file: string; zone: string; json?: boolean; restores?: number }): void {
  const s = styleFor({ isTTY: io.outIsTTY });
  const v = `${r.version === null ? 'the change' : `version ${r.version}`}${opts.restores !== undefined ? ` (the text of version ${opts.restores})` : ''}`;
  const out = (line: string) => (opts.json ? undefined : io.out(`${line}\n`));
  if (opts.json) io.out(`${JSON.stringify(r, null, 2)}\n`);
  const touched = r.components && r.components.length > 0 ? ` (${r.components.join(', ')})` : '';
  switch (r.stage) {
    case 'confirmed':
      out(`${v} ${stageText(s, r.stage)}${touched}`);
      return;
    case 'staged':
      out(`${v} ${stageText(s, r.stage)}${r.id ? ` (change ${r.id})` : ''}: streetbox config history shows how it goes`);
      return;
    case 'applied':
      if (r.confirmBy !== undefined) {
        out(`${v} ${stageText(s, r.stage)}${touched}, awaiting your confirm until ${isoLocal(r.confirmBy, opts.zone)}`);
        out(`run \`streetbox config confirm\` before then, or it rolls back by itself`);
      } else out(`${v} ${stageText(s, r.stage)}${touched}, awaiting a confirm`);
      return;
    case 'rolledBack':
      out(`${v} ${stageText(s, r.stage)}: ${r.reason ?? 'no reason given'}${r.code ? ` (${r.code})` : ''}; ${runs(r)}`);
      throw new StreetboxError(r.code ?? 'E_CONFIG_PROBE', `${opts.label}: ${v} rolled back`);
    case 'rejected':
      return rejected(io, r, opts, v, out, s);
  }
}

function rejected(io: CliIo, r: Report, opts: { label: string; file: string }, v: string, out: (line: string) => void, s: Style): void {
  if (r.code === 'E_CONFIG_UNCHANGED') {
    out(`${opts.label} is unchanged (${runs(r)})`);
    return;
  }
  const problems = r.errors ?? [];
  // the problems go where `streetbox validate` puts them: stderr, one per line, at the file's line:col
  for (const p of problems) io.err(`${formatIssue({ file: opts.file, line: p.line, col: p.col, path: p.path, message: p.message })}\n`);
  out(`${v} ${stageText(s, r.stage)}: ${r.reason ?? 'no reason given'}${r.code ? ` (${r.code})` : ''}; ${runs(r)}`);
  const bad = problems.length > 0 || (r.code !== undefined && BAD_INPUT_REFUSALS.has(r.code));
  const what = problems.length > 0 ? `${problems.length} problem${problems.length === 1 ? '' : 's'}` : (r.reason ?? r.code ?? 'rejected');
  throw new StreetboxError(bad ? 'E_CONFIG' : (r.code ?? 'E_COMPONENT'), `${opts.label} rejected: ${what}`);
}

// ───────────────────────────── apply, confirm, rollback ─────────────────────────────

interface ApplyOptions extends ApiOptions {
  confirmWithin?: number;
  force?: boolean;
  base?: number;
}

/**
 * `config apply`: PUTs the file's text (JSON `{ content, baseVersion?, force?, confirmWithin }`,
 * edge/api/routes/config.ts). The gateway answers once the change settles (confirmed, rejected,
 * rolled back, or applied awaiting the manual confirm); with --no-wait (`?wait=staged`) at its
 * first stage.
 */
async function apply(io: CliIo, file: string, opts: ApplyOptions): Promise<void> {
  if (opts.base === undefined && !opts.force) {
    // no silent lost update: the gateway refuses a change that does not say what it was made from
    throw new StreetboxError('E_USAGE', 'say which version the file was made from: --base <version> (`streetbox config history` marks the one that runs), or --force to replace whatever runs');
  }
  const content = readText(file, 'configuration');
  const c = client(opts);
  const deadline = Date.now() + opts.timeout * 1000;
  const body: Record<string, unknown> = { content };
  if (opts.base !== undefined) body.baseVersion = opts.base;
  if (opts.force) body.force = true;
  // whole ms: the route takes a number as ms
  if (opts.confirmWithin !== undefined) body.confirmWithin = Math.round(opts.confirmWithin * 1000);
  const answer = await call(c, 'PUT', `/api/v1/config${opts.wait ? '' : '?wait=staged'}`, body, opts.timeout * 1000);
  await settle(io, c, answer, deadline, { ...opts, label: file, file, manualConfirm: opts.confirmWithin !== undefined });
}

/** `config rollback <v>`: a new change restoring version v's text; the gateway answers once it settles. */
async function rollback(io: CliIo, v: number, opts: ApiOptions): Promise<void> {
  const c = client(opts);
  const deadline = Date.now() + opts.timeout * 1000;
  const answer = await call(c, 'POST', '/api/v1/config/rollback', { version: v }, opts.timeout * 1000);
  await settle(io, c, answer, deadline, { ...opts, label: `the rollback to version ${v}`, file: `version ${v}`, manualConfirm: false, restores: v });
}

async function settle(io: CliIo, c: Client, answer: Answer, deadline: number, o: ApiOptions & { label: string; file: string; manualConfirm: boolean; restores?: number }): Promise<void> {
  const first = reportOf(answer.body);
  if (!first) throw refusalOf(answer, o.label);
  const r = o.wait ? await followChange(c, first, deadline, o.manualConfirm) : first;
  finish(io, r, { label: o.label, file: o.file, zone: zoneFor(o), ...(o.json ? { json: true } : {}), ...(o.restores !== undefined ? { restores: o.restores } : {}) });
}

/** The zone times are shown in: the configuration's, UTC with --url alone. */
function zoneFor(o: { config?: string; url?: string }): string {
  if (o.url !== undefined && o.config === undefined) return 'UTC';
  try {
    return siteOf(o.config ?? DEFAULT_CONFIG).zone;
  } catch {
    return 'UTC';
  }
}

/** `config confirm`: the version awaiting a manual confirm is confirmed; nothing awaiting: exit 1. */
async function confirm(io: CliIo, opts: ApiOptions): Promise<void> {
  const c = client(opts);
  const answer = await call(c, 'POST', '/api/v1/config/confirm', {}, 10_000);
  const r = reportOf(answer.body);
  if (!r || answer.status >= 400) {
    if (answer.status === 409 || answer.status === 404) throw new StreetboxError('E_COMPONENT', `nothing confirmed: ${errorOf(answer.body)}`);
    throw refusalOf(answer, 'confirm');
  }
  finish(io, r, { label: 'confirm', file: 'confirm', zone: zoneFor(opts), ...(opts.json ? { json: true } : {}) });
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw usage(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

// ───────────────────────────── reload ─────────────────────────────

interface ReloadOptions {
  config: string;
  timeout: number;
  json?: boolean;
}

/** The data file's config.* events, read-only. */
interface EventWatch {
  view: StoreView;
  /** the seq of the last config.* event now */
  lastSeq(): number;
  /** config.* events after seq, oldest first (at most 1000) */
  after(seq: number): StoredEvent[];
  close(): void;
}

const PAGE = 1000;

function watchEvents(dataPath: string): EventWatch {
  if (!existsSync(dataPath)) throw new StreetboxError('E_NOT_FOUND', `no data file at ${dataPath}`);
  const view = openStoreReadOnly(dataPath);
  const after = (seq: number) => view.events({ after: seq, kind: 'config.*', limit: PAGE }).items;
  return {
    view,
    after,
    lastSeq() {
      // config events are few; pages of 1000 to the end, bounded by the file's own count
      let seq = 0;
      for (;;) {
        const page = view.events({ after: seq, kind: 'config.*', limit: PAGE });
        if (page.items.length === 0) return seq;
        seq = page.next;
        if (page.items.length < PAGE) return seq;
      }
    },
    close: () => view.close(),
  };
}

/** A config.* event's detail as a stage report. */
function reportOfEvent(e: StoredEvent): (Report & { source?: string; principal?: string }) | null {
  const detail: unknown = e.detail;
  const d = isRecord(detail) ? detail : null;
  const stage = e.kind.slice('config.'.length);
  if (!d || typeof d.id !== 'string' || !(CONFIG_STAGES as readonly string[]).includes(stage)) return null;
  return {
    id: d.id,
    version: typeof d.version === 'number' ? d.version : null,
    stage: stage as ConfigStage,
    ...(typeof d.code === 'string' ? { code: d.code as ConfigRefusalCode } : {}),
    ...(typeof d.reason === 'string' ? { reason: d.reason } : {}),
    errors: Array.isArray(d.errors) ? (d.errors as ConfigProblem[]) : [],
    ...(Array.isArray(d.components) ? { components: d.components as string[] } : {}),
    runningVersion: typeof d.runningVersion === 'number' ? d.runningVersion : null,
    at: e.ts,
    ...(typeof d.source === 'string' ? { source: d.source } : {}),
    ...(typeof d.principal === 'string' ? { principal: d.principal } : {}),
  };
}

/**
 * `streetbox reload`: SIGHUP to the gateway holding `<storage.path>.pid`, then the first change
 * from `file` recorded after it, followed in the data file's events to its final stage.
 */
async function reload(io: CliIo, opts: ReloadOptions): Promise<void> {
  const site = siteOf(opts.config);
  const pidFile = `${site.dataPath}.pid`;
  const pid = lockHolder(pidFile);
  if (pid === null) throw new StreetboxError('E_COMPONENT', `no gateway runs on ${site.dataPath} (no live pid in ${pidFile}); start it to run ${opts.config}`);
  const watch = watchEvents(site.dataPath);
  try {
    const since = watch.lastSeq();
    hangUp(pid);
    if (!opts.json) io.err(`sent SIGHUP to the gateway (pid ${pid}); waiting for its outcome…\n`);
    const r = await awaitFileChange(io, watch, since, { pid, pidFile, deadline: Date.now() + opts.timeout * 1000, timeoutS: opts.timeout, quiet: opts.json === true });
    if (r.stage === 'rejected' && r.version !== null && r.code !== 'E_CONFIG_UNCHANGED') r.errors = fullErrors(site, r.version) ?? r.errors ?? [];
    finish(io, r, { label: opts.config, file: opts.config, zone: site.zone, ...(opts.json ? { json: true } : {}) });
  } finally {
    watch.close();
  }
}

function hangUp(pid: number): void {
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPERM') throw new StreetboxError('E_COMPONENT', `not permitted to signal the gateway (pid ${pid}): run as its user, or use streetbox config apply with a technician token`);
    throw new StreetboxError('E_COMPONENT', `cannot signal the gateway (pid ${pid}): ${code ?? errorMessage(err)}`);
  }
}

/** A rejected version's problems in full (its events carry the first 5). */
function fullErrors(site: Site, version: number): ConfigProblem[] | null {
  try {
    return withVersions(site, (versions) => versions.get(version)?.errors ?? null);
  } catch {
    return null;
  }
}

async function awaitFileChange(io: CliIo, watch: EventWatch, since: number, o: { pid: number; pidFile: string; deadline: number; timeoutS: number; quiet: boolean }): Promise<Report> {
  let seq = since;
  let id: string | null = null;
  let last: Report | null = null;
  const polls = new Backoff({ minMs: 50, maxMs: 500 });
  for (;;) {
    for (const e of watch.after(seq)) {
      seq = e.seq;
      const r = reportOfEvent(e);
      if (!r || (id === null && r.source !== 'file') || (id !== null && r.id !== id)) continue;
      id = r.id ?? null;
      last = r;
      if (FINAL_STAGES.includes(r.stage)) return r;
      if (!o.quiet) io.err(`  version ${r.version ?? '?'} ${STAGE_WORDS[r.stage]}${r.components?.length ? ` (${r.components.join(', ')})` : ''}\n`);
    }
    if (lockHolder(o.pidFile) !== o.pid) throw new StreetboxError('E_COMPONENT', `the gateway (pid ${o.pid}) stopped before the change settled${last ? ` (it was ${STAGE_WORDS[last.stage]})` : ''}`);
    const left = o.deadline - Date.now();
    if (left <= 0) {
      throw new StreetboxError('E_COMPONENT', last ? `no outcome within ${o.timeoutS} s: version ${last.version ?? '?'} is still ${STAGE_WORDS[last.stage]} (streetbox config history shows how it goes)` : `the gateway recorded no change from the file within ${o.timeoutS} s`);
    }
    await new Promise((r) => setTimeout(r, Math.min(polls.next(), left)));
  }
}

// ───────────────────────────── sign ─────────────────────────────

interface SignOptions {
  config?: string;
  key: string;
  id: string;
  base?: number;
  force?: boolean;
  gateway?: string;
}

/** The message central publishes on `streetbox/<gw>/down/config`, signed. */
function signed(file: string, opts: SignOptions): Record<string, unknown> {
  const content = readText(file, 'configuration');
  const pem = readText(opts.key, 'private key');
  const gateway = opts.gateway ?? siteOf(opts.config ?? DEFAULT_CONFIG).gatewayId;
  if (!gateway) throw usage(`no gateway id: give --gateway, or a configuration (-c) with gateway.id`);
  const baseVersion = opts.base ?? null;
  const force = opts.force === true;
  const signature = signChange(pem, gateway, { id: opts.id, baseVersion, force, content });
  return { id: opts.id, baseVersion, ...(force ? { force: true } : {}), content, signature };
}

// ───────────────────────────── the commands ─────────────────────────────

function dataOption(): Option {
  return new Option('-c, --config <file>', 'the gateway configuration: its storage.path is the data file read').default(DEFAULT_CONFIG);
}

export function registerConfigCommands(program: Command, io: CliIo): void {
  const config = program.command('config').description("the gateway configuration's versions: list, show, compare, apply, confirm, roll back, sign");

  config
    .command('history')
    .description('every configuration version the gateway ran or refused, newest first (offline: the data file)')
    .addOption(dataOption())
    .option('--limit <n>', 'how many (at most 1000)', intArg('--limit', 1), 20)
    .option('--json', 'print JSON')
    .addHelpText('after', "\nTimes are ISO 8601 in the gateway's time zone; * marks the version that runs now.")
    .action((opts: { config: string; limit: number; json?: boolean }) => {
      const site = siteOf(opts.config);
      const rows = withVersions(site, (versions) => historyRows(versions, opts.limit));
      if (opts.json) io.out(`${JSON.stringify(rows, null, 2)}\n`);
      else io.out(historyTable(rows, site.zone, styleFor({ isTTY: io.outIsTTY })));
    });

  config
    .command('show')
    .description("a version's text, every secret shown as *** (offline: the data file)")
    .argument('<version>', 'the version number', intArg('version', 1))
    .addOption(dataOption())
    .option('--secrets', 'the text as stored, secrets included (to restore it by hand; whoever can read the data file has them)')
    .action((v: number, opts: { config: string; secrets?: boolean }) => {
      const text = withVersions(siteOf(opts.config), (versions) => (opts.secrets ? storedContent(versions, v) : redactedContent(versions, v)));
      io.out(text.endsWith('\n') || text === '' ? text : `${text}\n`);
    });

  config
    .command('diff')
    .description('unified diff of two versions, every secret shown as *** (offline: the data file)')
    .argument('<a>', 'the older version', intArg('a', 1))
    .argument('<b>', 'the newer version', intArg('b', 1))
    .addOption(dataOption())
    .action((a: number, b: number, opts: { config: string }) => {
      const diff = withVersions(siteOf(opts.config), (versions) => unifiedDiff(redactedContent(versions, a), redactedContent(versions, b), { a: `version ${a}`, b: `version ${b}` }));
      if (diff === '') io.err(`versions ${a} and ${b} have the same text\n`);
      else io.out(diff.endsWith('\n') ? diff : `${diff}\n`);
    });

  apiOptions(
    config
      .command('apply')
      .description('make a file the running configuration through the gateway API: validated in full, applied to what it touches, confirmed by a health probe or rolled back')
      .argument('<file>', 'the new devices.yaml')
      .option('--confirm-within <duration>', 'commit-confirm: you confirm (streetbox config confirm) within this, else it rolls back by itself', (v) => parseDurationS(v, '--confirm-within'))
      .option('--force', 'apply even if the running version is newer than --base')
      .option('--base <n>', 'the version you edited: refused as stale when another came since (unless --force)', intArg('--base', 0))
      .option('--no-wait', 'print the first stage and return'),
  ).action(async (file: string, opts: ApplyOptions) => {
    await apply(io, file, opts);
  });

  apiOptions(config.command('confirm').description('confirm the version awaiting a manual confirm (config apply --confirm-within)')).action(async (opts: ApiOptions) => {
    await confirm(io, opts);
  });

  apiOptions(
    config
      .command('rollback')
      .description("run an earlier version's text again (a new version, applied and confirmed like any change)")
      .argument('<version>', 'the version to restore', intArg('version', 1))
      .option('--no-wait', 'print the first stage and return'),
  ).action(async (v: number, opts: ApiOptions) => {
    await rollback(io, v, opts);
  });

  config
    .command('sign')
    .description('print the signed JSON message central publishes on streetbox/<gw>/down/config (offline)')
    .argument('<file>', 'the devices.yaml to send')
    .requiredOption('--key <private.pem>', 'ed25519 private key, PEM (openssl genpkey -algorithm ed25519)')
    .requiredOption('--id <id>', "the change's id (unique per gateway)")
    .option('--base <n>', 'the version it was edited from', intArg('--base', 0))
    .option('--force', 'apply even over a newer running version')
    .option('--gateway <id>', 'the gateway it is for (default: gateway.id of the configuration)')
    .option('-c, --config <file>', `the configuration naming the gateway (default: ${DEFAULT_CONFIG})`)
    .action((file: string, opts: SignOptions) => {
      io.out(`${JSON.stringify(signed(file, opts))}\n`);
    });

  program
    .command('reload')
    .description('make the running gateway take devices.yaml as edited (SIGHUP) and wait for the outcome: confirmed, rolled back or rejected')
    .addOption(dataOption())
    .addOption(new Option('--timeout <duration>', 'how long to wait for the outcome').default(DEFAULT_WAIT_S, `${DEFAULT_WAIT_S}s`).argParser((v) => parseDurationS(v, '--timeout')))
    .option('--json', 'print the outcome as JSON')
    .action(async (opts: ReloadOptions) => {
      await reload(io, opts);
    });
}
