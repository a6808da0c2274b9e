/**
 * The one road of a configuration change (types.ts has the map). Three doors hand changes in
 * (API/CLI, central's `down/config`, SIGHUP); each is checked at once (size, duplicate id,
 * signature, the whole validation) and recorded as a version, `staged` or `rejected`; staged
 * changes then go one at a time, in order, through: stale check → plan → the file replaced
 * atomically → the touched components reconfigured → `applied` → the health probe (or a
 * technician's manual confirm) → `confirmed`, or the previous version restored the same way →
 * `rolledBack`. Every stage is an event with its principal and a report in the store's outbox
 * for `up/config/<id>`.
 *
 * Crash safety: the file on disk is the commit point. At start (`reconcile`), a change left
 * `staged` or `applied` is the running one if its text is the file's (it is probed again once
 * the components run), else it never ran and is closed with the reason.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { GatewayContext } from '../component.js';
import type { Timer } from '../clock.js';
import { errorMessage } from '../errors.js';
import { parseJsonWithin } from '../jsonLimits.js';
import type { Logger } from '../log.js';
import { MetricsRegistry, type MetricSample } from '../metrics.js';
import { sha256Hex, writeFileAtomic } from './atomicFile.js';
import { planChange } from './plan.js';
import { redactText } from './redactText.js';
import { verifyChangeSignature } from './signature.js';
import { unifiedDiff } from './textDiff.js';
import { validateChange } from './validate.js';
import type { ConfigVersions } from './versions.js';
import type {
  ChangePlan,
  ConfigApplier,
  ConfigChangeRequest,
  ConfigEventDetail,
  ConfigProblem,
  ConfigRefusalCode,
  ConfigService,
  ConfigSource,
  ConfigStage,
  ConfigStageReport,
  ConfigSubmitted,
  ConfigVersion,
  OutboxPort,
  ProbeBaseline,
} from './types.js';
import { CHANGE_ID_RE, MAX_CONFIG_BYTES } from './records.js';

/** changes waiting for their turn; past this a change is refused (E_CONFIG_BUSY) */
export const MAX_QUEUED = 16;
/** how often the health probe looks while a change proves itself */
const PROBE_EVERY_MS = 200;

export interface ConfigManagerOptions {
  ctx: GatewayContext;
  /** the absolute path of devices.yaml and its directory */
  file: string;
  dir: string;
  env?: NodeJS.ProcessEnv;
  versions: ConfigVersions;
  /** the running gateway's side; attached once the components are built (attach) */
  applier?: ConfigApplier;
  /** the text the gateway started from */
  startText: string;
  /** default PROBE_EVERY_MS */
  probeEveryMs?: number;
  /** reads devices.yaml for SIGHUP (tests inject) */
  readFile?: (path: string) => string;
}

interface Pending {
  req: ConfigChangeRequest & { id: string };
  version: ConfigVersion;
  next: Config;
  text: string;
  /** set once its text is on disk, with what to go back to */
  written?: { prevVersion: number | null; prevText: string; prevDeclared: Config };
  settle: (r: ConfigStageReport) => void;
  finish: (r: ConfigStageReport) => void;
}

interface Awaiting {
  version: number;
  confirmBy: number;
  resolve: (how: 'confirmed' | 'timeout' | 'stopping', principal: string) => void;
}

/** what a change interrupted by a crash or a stop needs at the next start (reconcile → start) */
interface Interrupted {
  version: number;
  /** the version to go back to, if the probe fails */
  previous: number | null;
  /** it awaited a manual confirm until then (commit-confirm survives a restart) */
  confirmBy: number | null;
}

/** a change that touches buses or the upstream must hold the probe this long: one good sample is not health */
const STABLE_MS = 1000;
/** gateway.confirmTimeout is clamped to this range, whatever its form */
const MIN_CONFIRM_MS = 1000;
const MAX_CONFIRM_MS = 3_600_000;

export class ConfigManager implements ConfigService {
  private readonly log: Logger;
  private readonly queue: Pending[] = [];
  /** the road's one worker, while it runs (changes one at a time) */
  private draining: Promise<void> | null = null;
  /** set by start(): before, changes are staged but none runs (the components are not up) */
  private started = false;
  private startJob: (() => Promise<void>) | null = null;
  private awaiting: Awaiting | null = null;
  private confirmTimer: Timer | null = null;
  /** the declared config and text of the running version (what a plan is computed against) */
  private runningText: string;
  /** the version whose text is on disk now (a change's, from its write on; the previous one's, from a rollback's write on): the file door's base */
  private onDisk: number | null = null;
  /** set once reconcile() found a change interrupted after its file was written: probed at start() */
  private probeAtStart: Interrupted | null = null;
  private stopped = false;
  private readonly outboxPort: OutboxPort;
  /** stages reached since start, for /metrics */
  private readonly stageCounts = new MetricsRegistry();
  private readonly stages = this.stageCounts.counter('streetbox_config_changes_total', 'Configuration changes by the stage they reached (rejected ones by code), since start.', ['stage', 'code']);
  private applierRef: ConfigApplier | undefined;

  constructor(private readonly o: ConfigManagerOptions) {
    this.log = o.ctx.log.child({ module: 'config' });
    this.runningText = o.startText;
    this.applierRef = o.applier;
    this.outboxPort = {
      pending: (limit) => this.o.versions.pendingReports(limit),
      delivered: (seq) => this.o.versions.markDelivered(seq),
    };
  }

  // ───────────────────────────── start and stop ─────────────────────────────

  /** The running gateway's side, once its components are built (they are handed this manager first). */
  attach(applier: ConfigApplier): void {
    this.applierRef = applier;
  }

  private get applier(): ConfigApplier {
    if (!this.applierRef) throw new Error('config manager used before the gateway attached its applier');
    return this.applierRef;
  }

  /**
   * Before the components start: the version record is made to agree with the file the gateway
   * starts from. A change interrupted after its file was written runs now (it is probed once the
   * components run: `start`); one interrupted before never ran and is closed; a file edited by
   * hand and started is a new version from `file`.
   */
  reconcile(): ConfigVersion {
    const { versions, ctx } = this.o;
    sweepTemporaries(this.o.file, this.log);
    const sha = sha256Hex(this.o.startText);
    const now = ctx.clock.now();
    const previous = versions.running();
    const awaited = awaitingOf(versions.state('awaiting'));
    let current: ConfigVersion | undefined;
    // the running pointer already names the file's text: an unfinished row with the same text never ran
    const pointerMatches = previous !== undefined && previous.sha256 === sha;
    for (const v of versions.unfinished()) {
      if (v.sha256 === sha && current === undefined && (!pointerMatches || v.version === previous.version)) {
        if (v.stage === 'applied') {
          versions.setRunning(v.version, now);
          current = versions.get(v.version)!;
        } else current = versions.transition(v.version, 'applied', { at: now, running: true, components: [] });
        // what ran before it: the running pointer, unless the crash came after it had moved to this change
        const before = previous && previous.version !== v.version ? previous : versions.list({ limit: 100 }).find((x) => x.version < v.version && x.stage === 'confirmed');
        this.probeAtStart = { version: v.version, previous: before?.version ?? null, confirmBy: awaited?.version === v.version ? awaited.confirmBy : null };
        this.log.warn({ version: v.version, id: v.id }, 'config: a change was cut short after its file was written; it runs now and proves itself again');
      } else {
        const stage: ConfigStage = v.stage === 'applied' ? 'rolledBack' : 'rejected';
        const reason = v.stage === 'applied' ? 'the gateway stopped during the apply and started on another version' : 'the gateway stopped before this change was applied';
        const closed = versions.transition(v.version, stage, { at: now, reason, code: 'E_CONFIG_APPLY' });
        this.report(closed, stage, { code: 'E_CONFIG_APPLY', reason });
      }
    }
    if (awaited && awaited.version !== this.probeAtStart?.version) versions.setState('awaiting', null);
    if (current) return current;
    if (previous && previous.sha256 === sha) return previous;
    // a confirmed version's text (a rollback cut short before its pointer moved): that version runs
    const known = versions.findBySha(sha);
    if (known && known.stage === 'confirmed') {
      versions.setRunning(known.version, now);
      this.log.warn({ version: known.version }, 'config: the file holds an earlier confirmed version; it runs again');
      return versions.get(known.version)!;
    }
    // started from a file that is not the running version: a technician's edit and restart
    const id = `file-${sha.slice(0, 12)}-${now}`;
    const added = versions.add({ id, content: this.o.startText, source: 'file', principal: 'file', at: now, baseVersion: previous?.version ?? null, stage: 'staged' });
    versions.transition(added.version, 'applied', { at: now, running: true, components: [] });
    const confirmed = versions.transition(added.version, 'confirmed', { at: now, reason: 'started from devices.yaml' });
    this.event(confirmed, 'confirmed', {});
    this.log.info({ version: confirmed.version, sha256: sha.slice(0, 12) }, 'config: started from a new devices.yaml');
    return confirmed;
  }

  /**
   * Once the components run, the road opens: a change cut short after its file was written proves
   * itself first (the probe of what it changed against the version before it, or the rest of its
   * commit-confirm window), then the changes staged meanwhile go, in order.
   */
  start(): void {
    this.stopped = false;
    this.started = true;
    const p = this.probeAtStart;
    this.probeAtStart = null;
    if (p) this.startJob = () => this.proveInterrupted(p);
    this.kick();
  }

  private async proveInterrupted(p: Interrupted): Promise<void> {
    const { versions, ctx } = this.o;
    const v = versions.get(p.version);
    if (!v || !v.running || v.stage !== 'applied') return;
    const prevText = p.previous !== null ? versions.content(p.previous) : undefined;
    let prevDeclared: Config | undefined;
    try {
      prevDeclared = prevText !== undefined ? this.parseText(prevText) : undefined;
    } catch (err) {
      this.log.warn({ err: errorMessage(err), previous: p.previous }, 'config: the version before the interrupted change no longer validates');
    }
    if (p.confirmBy !== null) {
      const left = p.confirmBy - ctx.clock.now();
      const how = left > 0 ? await this.waitForConfirm(v.version, p.confirmBy, left) : { how: 'timeout' as const, principal: 'timer' };
      if (how.how === 'stopping') return;
      if (how.how === 'confirmed') this.confirmVersion(v, how.principal);
      else await this.restore(v, p.previous, 'E_CONFIG_CONFIRM_TIMEOUT', 'not confirmed within its commit-confirm window (the gateway restarted meanwhile)', prevText, prevDeclared);
      return;
    }
    // what it changed, against the version before it; unknown: everything is judged (every bus, the upstream)
    const current = this.applier.current();
    const plan = prevDeclared ? planChange(prevDeclared, current) : everything(current);
    // what answered before the change is not known after a restart: every bus it changed must answer
    const ok = await this.probeUntil(plan, { ...this.applier.baseline(), buses: [], busesOnline: [], requireUpstream: v.source === 'central' }, this.confirmTimeoutMs(prevDeclared ?? current));
    if (ok !== true && this.stopped) return;
    if (versions.running()?.version !== v.version) return; // something else runs now: not ours to confirm or undo
    if (ok === true) this.confirmVersion(v, 'probe');
    else await this.restore(v, p.previous, 'E_CONFIG_PROBE', `after a restart during its apply: ${ok}`, prevText, prevDeclared);
    this.onDisk = null;
  }

  /**
   * No new change starts; the one under way ends its step. A change waiting for a manual confirm
   * or proving itself stays `applied` (its file is on disk): the next start proves it again. The
   * staged ones are closed. Every door's promise settles.
   */
  stop(waitMs = 1500): Promise<void> {
    this.stopped = true;
    if (this.confirmTimer) this.o.ctx.clock.clearTimeout(this.confirmTimer);
    this.confirmTimer = null;
    this.awaiting?.resolve('stopping', 'stop');
    for (const p of this.queue.splice(0)) {
      try {
        const closed = this.o.versions.transition(p.version.version, 'rejected', { at: this.o.ctx.clock.now(), reason: 'the gateway stopped before this change was applied', code: 'E_CONFIG_APPLY' });
        const r = this.report(closed, 'rejected', { code: 'E_CONFIG_APPLY', reason: closed.reason ?? 'closed' });
        p.settle(r);
        p.finish(r);
      } catch (err) {
        this.log.error({ err, id: p.req.id }, 'config: closing a staged change at stop failed');
        const r = this.stageReport(p.version, 'rejected', { code: 'E_CONFIG_APPLY', reason: 'the gateway stopped before this change was applied' });
        p.settle(r);
        p.finish(r);
      }
    }
    // the step under way ends before the store closes (bounded: a stop is never held up for long)
    const current = this.draining;
    if (!current) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, waitMs);
      t.unref?.();
      void current.finally(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ───────────────────────────── the doors ─────────────────────────────

  submit(input: ConfigChangeRequest): ConfigSubmitted {
    const { versions, ctx } = this.o;
    const now = ctx.clock.now();
    const id = input.id ?? randomUUID();
    // a byte-order mark is not part of the configuration (the loader drops it too): the text kept and written is without
    const req = { ...input, id, content: input.content.startsWith('\uFEFF') ? input.content.slice(1) : input.content };
    const refuse = (code: ConfigRefusalCode, reason: string, problems: ConfigProblem[] = [], record = true): ConfigSubmitted => {
      let report: ConfigStageReport;
      if (record) {
        const row = versions.add({ id, content: req.content, source: req.source, principal: req.principal, at: now, baseVersion: req.baseVersion ?? null, stage: 'rejected', reason, code, errors: problems, rollbackOf: req.rollbackOf ?? null });
        report = this.report(row, 'rejected', { code, reason, errors: problems });
      } else report = this.reportWithoutVersion(req, code, reason);
      this.log.warn({ id, source: req.source, principal: req.principal, code, reason: firstLine(reason), problems: problems.length }, 'config change rejected');
      return settledWith(id, report);
    };

    if (this.stopped) return refuse('E_CONFIG_BUSY', 'the gateway is stopping; send the change again once it runs', [], false);
    if (!CHANGE_ID_RE.test(id)) return refuse('E_CONFIG_INVALID', 'the change id must be 1..128 letters, digits, "_", ".", ":" or "-"', [], false);
    const seen = versions.byId(id);
    if (seen) return this.duplicate(req, seen);
    const bytes = Buffer.byteLength(req.content, 'utf8');
    if (bytes > MAX_CONFIG_BYTES) return refuse('E_CONFIG_TOO_LARGE', `the configuration is ${bytes} bytes; at most ${MAX_CONFIG_BYTES}`, [], false);
    if (req.confirmWithinMs !== undefined && req.source !== 'technician') return refuse('E_CONFIG_FORBIDDEN', 'a manual confirm (commit-confirm) is for a technician on site only');
    if (req.source === 'central') {
      const keys = ctx.config.sync?.configSigningKeys ?? [];
      if (keys.length > 0) {
        const sig = verifyChangeSignature(keys, ctx.config.gateway.id, { id, baseVersion: req.baseVersion ?? null, force: req.force === true, content: req.content }, req.signature);
        if (!sig.ok) return refuse('E_CONFIG_SIGNATURE', `the change is not signed by a key of sync.configSigningKeys: ${sig.reason}`);
      }
    }
    const running = versions.running();
    if (running && this.queue.length === 0 && !this.draining && this.started && sha256Hex(req.content) === running.sha256) {
      // nothing to do (a reload of an untouched file): said so, recorded as an event, no version row
      return refuse('E_CONFIG_UNCHANGED', `the configuration is identical to version ${running.version}, which runs now`, [], false);
    }
    // not recorded under its id: the same change may be sent again once the road is free
    if (this.queue.length >= MAX_QUEUED) return refuse('E_CONFIG_BUSY', `${MAX_QUEUED} changes are already waiting; try again once they are done`, [], false);

    const result = validateChange(req.content, { file: this.o.file, dir: this.o.dir, ...(this.o.env ? { env: this.o.env } : {}), running: this.applier.current(), source: req.source });
    if (!result.ok) return refuse(result.code, result.code === 'E_CONFIG_FORBIDDEN' ? 'the change touches what may not be changed remotely' : `the configuration is not valid (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'})`, result.problems);

    const version = versions.add({ id, content: req.content, source: req.source, principal: req.principal, at: now, baseVersion: req.baseVersion ?? null, stage: 'staged', rollbackOf: req.rollbackOf ?? null });
    const first = this.report(version, 'staged', {});
    let settle!: (r: ConfigStageReport) => void;
    let finish!: (r: ConfigStageReport) => void;
    const settled = new Promise<ConfigStageReport>((r) => (settle = r));
    const outcome = new Promise<ConfigStageReport>((r) => (finish = r));
    this.queue.push({ req, version, next: result.config, text: req.content, settle, finish });
    this.log.info({ id, version: version.version, source: req.source, principal: req.principal, queued: this.queue.length }, 'config change staged');
    this.kick();
    return { id, first, settled, outcome };
  }

  /**
   * The same id again (central's QoS 1 redelivery, a retry): refused and recorded, and the
   * original's current stage is reported again on its topic, so the retained report stays the
   * original's outcome, never "duplicate".
   */
  private duplicate(req: ConfigChangeRequest & { id: string }, seen: ConfigVersion): ConfigSubmitted {
    const reason = `a change with id "${req.id}" was already received: version ${seen.version}, ${seen.stage}`;
    const detail: ConfigEventDetail = { id: req.id, version: seen.version, source: req.source, principal: req.principal, code: 'E_CONFIG_DUPLICATE', reason, runningVersion: this.o.versions.running()?.version ?? null };
    try {
      this.o.ctx.store.appendEvent({ kind: 'config.rejected', severity: 'warning', detail }, { refusal: true });
    } catch (err) {
      this.log.error({ err, id: req.id }, 'config: recording a duplicate failed');
    }
    const again: Partial<ConfigStageReport> = {};
    if (seen.reason) again.reason = seen.reason;
    const code = this.o.versions.code(seen.version);
    if (code) again.code = code;
    const awaiting = this.awaitingConfirm();
    if (awaiting && awaiting.version === seen.version) again.confirmBy = awaiting.confirmBy;
    if (seen.errors.length > 0) again.errors = seen.errors;
    if (seen.components.length > 0) again.components = seen.components;
    this.publish(this.stageReport(seen, seen.stage, again));
    const r: ConfigStageReport = { ...this.stageReport(seen, 'rejected', {}), version: null, code: 'E_CONFIG_DUPLICATE', reason, source: req.source, principal: req.principal };
    return settledWith(req.id, r);
  }

  submitCentral(payload: Buffer): ConfigSubmitted {
    const parsed = parseJsonWithin(payload, { maxBytes: MAX_CONFIG_BYTES * 2, maxDepth: 4 });
    const m = parsed.ok && typeof parsed.value === 'object' && parsed.value !== null && !Array.isArray(parsed.value) ? (parsed.value as Record<string, unknown>) : null;
    const rawId = m?.id;
    const id = typeof rawId === 'string' && CHANGE_ID_RE.test(rawId) ? rawId : randomUUID();
    const bad = (reason: string): ConfigSubmitted => {
      const report = this.reportWithoutVersion({ id, source: 'central', principal: this.centralPrincipal() }, 'E_CONFIG_INVALID', reason);
      this.log.warn({ id, reason }, 'config change from central rejected');
      return settledWith(id, report);
    };
    if (!m) return bad(`malformed change: ${parsed.ok ? 'expected a JSON object' : parsed.error}`);
    if (typeof rawId !== 'string' || !CHANGE_ID_RE.test(rawId)) return bad('malformed change: "id" must be 1..128 letters, digits, "_", ".", ":" or "-"');
    if (typeof m.content !== 'string') return bad('malformed change: "content" must be the whole devices.yaml as a string');
    const base = m.baseVersion;
    if (base !== undefined && base !== null && !(typeof base === 'number' && Number.isInteger(base) && base >= 0)) return bad('malformed change: "baseVersion" must be a version number or null');
    if (m.force !== undefined && typeof m.force !== 'boolean') return bad('malformed change: "force" must be true or false');
    if (m.signature !== undefined && typeof m.signature !== 'string') return bad('malformed change: "signature" must be base64 text');
    return this.submit({
      id,
      source: 'central',
      principal: this.centralPrincipal(),
      content: m.content,
      baseVersion: typeof base === 'number' ? base : null,
      ...(m.force === true ? { force: true } : {}),
      ...(typeof m.signature === 'string' ? { signature: m.signature } : {}),
    });
  }

  /** central, as the upstream connection logs in: the audit's principal */
  private centralPrincipal(): string {
    const user = this.o.ctx.config.sync?.username;
    return user ? `upstream:${user}` : 'upstream';
  }

  reloadFromFile(principal = 'file'): ConfigSubmitted {
    let text: string;
    try {
      text = (this.o.readFile ?? defaultRead)(this.o.file);
    } catch (err) {
      const report = this.reportWithoutVersion({ id: randomUUID(), source: 'file', principal }, 'E_CONFIG_INVALID', `devices.yaml cannot be read: ${errorMessage(err)}`);
      return settledWith(report.id, report);
    }
    // made from the version that runs now: a change that lands before this one's turn makes it stale
    return this.submit({ source: 'file', principal, content: text, baseVersion: this.onDisk ?? this.o.versions.running()?.version ?? null });
  }

  confirm(principal: string): { ok: true; report: ConfigStageReport } | { ok: false; reason: string } {
    const a = this.awaiting;
    if (!a) return { ok: false, reason: 'no configuration change awaits a confirm' };
    a.resolve('confirmed', principal);
    const v = this.o.versions.get(a.version)!;
    return { ok: true, report: this.stageReport(v, 'confirmed', { components: v.components }) };
  }

  rollbackTo(v: number, principal: string, source: ConfigSource): ConfigSubmitted {
    const text = this.o.versions.content(v);
    const running = this.o.versions.running();
    if (text === undefined) {
      const report = this.reportWithoutVersion({ id: randomUUID(), source, principal }, 'E_CONFIG_INVALID', `version ${v} is unknown or its text was not kept`);
      return settledWith(report.id, report);
    }
    return this.submit({ source, principal, content: text, baseVersion: running?.version ?? null, rollbackOf: v });
  }

  // ───────────────────────────── queries ─────────────────────────────

  running(): ConfigVersion | undefined {
    return this.o.versions.running();
  }

  versions(q: { limit?: number; before?: number } = {}): ConfigVersion[] {
    return this.o.versions.list(q);
  }

  version(v: number): ConfigVersion | undefined {
    return this.o.versions.get(v);
  }

  change(id: string): ConfigVersion | undefined {
    return this.o.versions.byId(id);
  }

  content(v: number): string | undefined {
    const text = this.o.versions.content(v);
    return text === undefined ? undefined : redactText(text);
  }

  diff(a: number, b: number): string | undefined {
    const ta = this.content(a);
    const tb = this.content(b);
    if (ta === undefined || tb === undefined) return undefined;
    return unifiedDiff(ta, tb, { a: `version ${a}`, b: `version ${b}` });
  }

  awaitingConfirm(): { version: number; confirmBy: number } | null {
    return this.awaiting ? { version: this.awaiting.version, confirmBy: this.awaiting.confirmBy } : null;
  }

  outbox(): OutboxPort {
    return this.outboxPort;
  }

  /** /metrics: the version that runs, one awaiting a confirm, and the stages reached since start */
  metrics(): MetricSample[] {
    const r = new MetricsRegistry();
    r.gauge('streetbox_config_version', 'The configuration version the gateway runs.').set(this.o.versions.running()?.version ?? 0);
    r.gauge('streetbox_config_awaiting_confirm', 'Whether a configuration change awaits a manual confirm (1) or not (0).').set(this.awaiting ? 1 : 0);
    return [...r.samples(), ...this.stageCounts.samples()];
  }

  /** Resolves when no change is queued or under way (tests, the benchmark). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  // ───────────────────────────── the road ─────────────────────────────

  /** The road's one worker: the start job first, then the staged changes in order, one at a time. */
  private kick(): void {
    if (this.draining || !this.started || this.stopped) return;
    const worker = (async () => {
      for (;;) {
        if (this.stopped) break;
        const job = this.startJob;
        if (job) {
          this.startJob = null;
          await job().catch((err: unknown) => this.log.error({ err }, 'config: proving an interrupted change failed'));
          continue;
        }
        const p = this.queue.shift();
        if (!p) break;
        await this.run(p);
      }
    })();
    this.draining = worker;
    void worker.finally(() => {
      if (this.draining === worker) this.draining = null;
      if (this.queue.length > 0) this.kick();
    });
  }

  /** One change; never throws, and both of its promises settle whatever happens. */
  private async run(p: Pending): Promise<void> {
    try {
      await this.runOne(p);
    } catch (err) {
      // a bug or a failing store, not a refusal: the change is closed with the reason, the road goes on
      this.log.error({ err, id: p.req.id }, 'config: the change failed unexpectedly');
      let r: ConfigStageReport;
      try {
        const v = this.o.versions.get(p.version.version)!;
        const reason = `internal error: ${errorMessage(err)}`;
        if (p.written && (v.stage === 'staged' || v.stage === 'applied')) {
          // its text is on disk (and maybe in force): the way back, not a refusal
          const w = p.written;
          const applied = v.stage === 'staged' ? this.o.versions.transition(v.version, 'applied', { at: this.o.ctx.clock.now(), running: true }) : v;
          await this.restore(applied, w.prevVersion, 'E_CONFIG_APPLY', reason, w.prevText, w.prevDeclared, p);
          return;
        }
        if (v.stage === 'staged') r = this.report(this.o.versions.transition(v.version, 'rejected', { at: this.o.ctx.clock.now(), reason, code: 'E_CONFIG_APPLY' }), 'rejected', { code: 'E_CONFIG_APPLY', reason });
        else if (v.stage === 'applied') {
          await this.restore(v, null, 'E_CONFIG_APPLY', reason, undefined, undefined, p);
          return;
        } else r = this.stageReport(v, v.stage, {});
      } catch (inner) {
        this.log.error({ err: inner, id: p.req.id }, 'config: closing the failed change failed too');
        r = this.stageReport(p.version, 'rejected', { code: 'E_CONFIG_APPLY', reason: `internal error: ${errorMessage(err)}` });
      }
      p.settle(r);
      p.finish(r);
    }
  }

  private async runOne(p: Pending): Promise<void> {
    const { versions, ctx } = this.o;
    const applier = this.applier;
    const running = versions.running();
    const close = (code: ConfigRefusalCode, reason: string): void => {
      const v = versions.transition(p.version.version, 'rejected', { at: ctx.clock.now(), reason, code });
      const r = this.report(v, 'rejected', { code, reason });
      this.log.warn({ id: p.req.id, version: v.version, code, reason: firstLine(reason) }, 'config change rejected');
      p.settle(r);
      p.finish(r);
    };

    // 1. no silent lost update between two editors: say which version you edited, or force it
    const base = p.req.baseVersion ?? null;
    if (running && !p.req.force) {
      if (base === null) return close('E_CONFIG_STALE', `"baseVersion" is required: the version the change was made from (version ${running.version} runs now), or force it`);
      if (base !== running.version) return close('E_CONFIG_STALE', `the change was made from version ${base}, but version ${running.version} runs now (${running.source}, ${running.principal}): merge and send it again, or force it`);
    }
    // 2. what it touches
    if (running && sha256Hex(p.text) === running.sha256) return close('E_CONFIG_UNCHANGED', `the configuration is identical to version ${running.version}, which runs now`);
    if (p.req.source === 'central' && (!p.next.sync || p.next.sync.enabled === false)) {
      return close('E_CONFIG_FORBIDDEN', 'the change would cut the gateway off from central (no upstream sync): only a technician on site may do that');
    }
    const prevDeclared = applier.current();
    const plan = planChange(prevDeclared, p.next);
    if (plan.needsRestart.length > 0) return close('E_CONFIG_RESTART', `this change takes a restart of the gateway, so it is not applied while it runs: ${plan.needsRestart.join('; ')}. Edit devices.yaml on the gateway and restart the service.`);
    // the running version's timeout decides how long a change may take to prove itself, not the change's own
    const timeoutMs = this.confirmTimeoutMs(prevDeclared);
    // central's signature against the keys of the version that runs now (a change ahead of it may have changed them)
    if (p.req.source === 'central') {
      const keys = prevDeclared.sync?.configSigningKeys ?? [];
      const sig = keys.length === 0 ? { ok: true as const } : verifyChangeSignature(keys, prevDeclared.gateway.id, { id: p.req.id, baseVersion: p.req.baseVersion ?? null, force: p.req.force === true, content: p.req.content }, p.req.signature);
      if (!sig.ok) return close('E_CONFIG_SIGNATURE', `the change is not signed by a key of sync.configSigningKeys: ${sig.reason}`);
    }

    // 3. the file: the commit point (the file door's too: exactly the text that was read)
    const prevText = this.runningText;
    const prevVersion = running?.version ?? null;
    const confirmBy = p.req.confirmWithinMs !== undefined ? ctx.clock.now() + p.req.confirmWithinMs : null;
    // a commit-confirm deadline is kept before the file changes: a crash from here on still owes the confirm
    if (confirmBy !== null) versions.setState('awaiting', { version: p.version.version, confirmBy });
    try {
      writeFileAtomic(this.o.file, p.text);
    } catch (err) {
      // the rename may have happened before a failing directory sync: what is on disk decides
      if (!this.fileIs(p.text)) {
        if (confirmBy !== null) versions.setState('awaiting', null);
        return close('E_CONFIG_APPLY', `devices.yaml could not be written: ${errorMessage(err)}`);
      }
    }
    p.written = { prevVersion, prevText, prevDeclared };
    this.onDisk = p.version.version;
    this.runningText = p.text;

    // 4. the components it touches, and nothing else
    const baseline: ProbeBaseline = { ...applier.baseline(), requireUpstream: p.req.source === 'central' };
    let applyError: unknown = null;
    try {
      await applier.apply(p.next, plan);
    } catch (err) {
      applyError = err;
    }
    const applied = versions.transition(p.version.version, 'applied', { at: ctx.clock.now(), running: true, components: plan.components });
    if (applyError !== null) {
      if (this.stopped) return this.leaveForNextStart(p, applied, plan);
      await this.restore(applied, prevVersion, 'E_CONFIG_APPLY', `applying failed: ${errorMessage(applyError)}`, prevText, prevDeclared, p);
      return;
    }
    this.log.info({ id: p.req.id, version: applied.version, components: plan.components, summary: plan.summary }, 'config change applied');

    // 5. confirmed by a technician (commit-confirm) or by the probe; else restored
    if (confirmBy !== null && p.req.confirmWithinMs !== undefined) {
      const r = this.report(applied, 'applied', { components: plan.components, confirmBy });
      p.settle(r);
      const how = await this.waitForConfirm(applied.version, confirmBy, Math.max(1, confirmBy - ctx.clock.now()));
      if (how.how === 'stopping') {
        p.finish(r); // stays applied: the next start gives it the rest of its window
        return;
      }
      if (how.how === 'confirmed') {
        p.finish(this.confirmVersion(applied, how.principal));
        return;
      }
      await this.restore(applied, prevVersion, 'E_CONFIG_CONFIRM_TIMEOUT', `not confirmed within ${Math.round(p.req.confirmWithinMs / 1000)} s (commit-confirm)`, prevText, prevDeclared, p);
      return;
    }
    const appliedReport = this.report(applied, 'applied', { components: plan.components });
    const ok = await this.probeUntil(plan, baseline, timeoutMs);
    if (ok !== true && this.stopped) {
      p.settle(appliedReport);
      return this.leaveForNextStart(p, applied, plan);
    }
    if (ok === true) {
      const r = this.confirmVersion(applied, 'probe');
      p.settle(r);
      p.finish(r);
      return;
    }
    await this.restore(applied, prevVersion, 'E_CONFIG_PROBE', `the health probe did not pass within ${Math.round(timeoutMs / 1000)} s: ${ok}`, prevText, prevDeclared, p);
  }

  /**
   * The gateway stops while a change proves itself: no rollback now (it would restart components
   * on the way out); the change stays `applied` and proves itself again at the next start.
   */
  private leaveForNextStart(p: Pending, applied: ConfigVersion, plan: ChangePlan): void {
    this.log.warn({ id: p.req.id, version: applied.version }, 'config: the gateway stops before the change was confirmed; it proves itself again at the next start');
    const r = this.stageReport(applied, 'applied', { components: plan.components });
    p.settle(r);
    p.finish(r);
  }

  private confirmVersion(v: ConfigVersion, by: string): ConfigStageReport {
    const confirmed = this.o.versions.transition(v.version, 'confirmed', { at: this.o.ctx.clock.now(), ...(by !== 'probe' ? { reason: `confirmed by ${by}` } : {}) });
    this.log.info({ id: v.id, version: v.version, by }, 'config change confirmed');
    return this.report(confirmed, 'confirmed', { components: confirmed.components });
  }

  /**
   * The previous version back: its text on disk again (from then on it is what runs, whatever
   * follows), the components the change touched reconfigured back, and in one transaction the
   * change `rolledBack` with the reason and the running pointer on the previous version.
   */
  private async restore(
    failed: ConfigVersion,
    prevVersion: number | null,
    code: ConfigRefusalCode,
    reason: string,
    prevText?: string,
    prevDeclared?: Config,
    p?: Pending,
  ): Promise<void> {
    const { versions, ctx } = this.o;
    const applier = this.applier;
    // the version to go back to: the one given, else the newest confirmed one before that still validates
    const target = this.restorable(failed, prevVersion, prevText, prevDeclared);
    const commit = (why: string, back: number): ConfigVersion => {
      const now = ctx.clock.now();
      return versions.atomically(() => {
        versions.setState('awaiting', null);
        versions.transition(failed.version, 'rolledBack', { at: now, reason: why, code });
        versions.setRunning(back, now);
        return versions.get(failed.version)!;
      });
    };
    let rolled: ConfigVersion;
    let why = reason;
    if (!target) {
      why = `${reason}; there is no earlier version that still validates to restore, so this text still runs`;
      rolled = commit(why, failed.version);
    } else {
      try {
        writeFileAtomic(this.o.file, target.text);
      } catch (err) {
        // the rename may have happened before a failing directory sync: what is on disk decides
        if (!this.fileIs(target.text)) {
          why = `${reason}; the previous version could not be written back (${errorMessage(err)}), so this text still runs`;
          rolled = commit(why, failed.version);
          return this.endRestore(failed, rolled, code, why, p);
        }
      }
      // from here the previous version is what runs, whatever follows: the record says so at once
      this.onDisk = target.version;
      this.runningText = target.text;
      rolled = commit(why, target.version);
      try {
        await applier.apply(target.declared, planChange(applier.current(), target.declared));
      } catch (err) {
        why = `${reason}; version ${target.version} is on disk and recorded as running again, but reconfiguring the components back failed (${errorMessage(err)}): restart the gateway`;
        this.log.error({ err: errorMessage(err), version: target.version }, 'config: the components could not be reconfigured back; restart the gateway');
      }
    }
    this.endRestore(failed, rolled, code, why, p);
  }

  private endRestore(failed: ConfigVersion, rolled: ConfigVersion, code: ConfigRefusalCode, why: string, p?: Pending): void {
    this.log.error({ id: failed.id, version: failed.version, code, reason: why, running: this.o.versions.running()?.version }, 'config change rolled back');
    const r = this.report(rolled, 'rolledBack', { code, reason: why, components: failed.components });
    p?.settle(r);
    p?.finish(r);
  }

  /** The version a failed change goes back to, with its text and config: `prev` if usable, else the newest confirmed one before that validates. */
  private restorable(failed: ConfigVersion, prev: number | null, prevText?: string, prevDeclared?: Config): { version: number; text: string; declared: Config } | null {
    const { versions } = this.o;
    if (prev !== null && prevText !== undefined && prevDeclared) return { version: prev, text: prevText, declared: prevDeclared };
    const candidates = [
      ...(prev !== null ? [prev] : []),
      ...versions
        .list({ limit: 200 })
        .filter((x) => x.version < failed.version && x.version !== prev && x.stage === 'confirmed')
        .map((x) => x.version),
    ];
    for (const v of candidates) {
      const text = v === prev && prevText !== undefined ? prevText : versions.content(v);
      if (text === undefined) continue;
      try {
        return { version: v, text, declared: this.parseText(text) };
      } catch (err) {
        this.log.warn({ version: v, err: errorMessage(err) }, 'config: an earlier version no longer validates; looking further back');
      }
    }
    return null;
  }

  /** whether devices.yaml holds exactly `text` */
  private fileIs(text: string): boolean {
    try {
      return sha256Hex((this.o.readFile ?? defaultRead)(this.o.file)) === sha256Hex(text);
    } catch {
      return false;
    }
  }

  /** A stored version's text as the running gateway would parse it. */
  private parseText(text: string): Config {
    const r = validateChange(text, { file: this.o.file, dir: this.o.dir, ...(this.o.env ? { env: this.o.env } : {}), running: this.applier.current(), source: 'file' });
    if (!r.ok) throw new Error(`it no longer validates: ${r.problems[0]?.message ?? r.code}`);
    return r.config;
  }

  /**
   * true once the probe passes (and, for a change of buses or the upstream, keeps passing for
   * STABLE_MS), else the last reason when `timeoutMs` has passed, or the manager stops.
   */
  private async probeUntil(plan: ChangePlan, baseline: ProbeBaseline, timeoutMs: number): Promise<true | string> {
    const { clock } = this.o.ctx;
    const hold = plan.buses.length > 0 || plan.sync ? STABLE_MS : 0;
    // the hold always fits: a 1 s timeout still leaves a change of buses the time to hold 1 s
    const deadline = clock.monotonic() + Math.max(timeoutMs, hold + 1000);
    let passingSince: number | null = null;
    for (;;) {
      const r = this.applier.probe(plan, baseline);
      const now = clock.monotonic();
      if (r.ok) {
        passingSince ??= now;
        if (now - passingSince >= hold) return true;
      } else passingSince = null;
      if (this.stopped) return `${r.ok ? 'it had not held long enough' : r.reason} (the gateway is stopping)`;
      if (now >= deadline) return r.ok ? `it passed only ${Math.round(now - (passingSince ?? now))} ms before the deadline` : r.reason;
      await new Promise<void>((resolve) => {
        const t = clock.setTimeout(resolve, Math.min(this.o.probeEveryMs ?? PROBE_EVERY_MS, Math.max(1, deadline - now)));
        t.unref?.();
      });
    }
  }

  private waitForConfirm(version: number, confirmBy: number, withinMs: number): Promise<{ how: 'confirmed' | 'timeout' | 'stopping'; principal: string }> {
    // stopping: the deadline stays in the store for the next start
    if (this.stopped) return Promise.resolve({ how: 'stopping', principal: 'stop' });
    this.o.versions.setState('awaiting', { version, confirmBy });
    // a wall clock stepped back across a restart must not make a deadline of weeks (nor one Node fires at once)
    const wait = Math.min(Math.max(1, withinMs), 86_400_000);
    return new Promise((resolve) => {
      const done = (how: 'confirmed' | 'timeout' | 'stopping', principal: string): void => {
        if (!this.awaiting || this.awaiting.version !== version) return;
        this.awaiting = null;
        if (this.confirmTimer) this.o.ctx.clock.clearTimeout(this.confirmTimer);
        this.confirmTimer = null;
        // a stop keeps the deadline for the next start; a confirm clears it (a rollback clears it in its own transaction)
        if (how === 'confirmed') this.o.versions.setState('awaiting', null);
        resolve({ how, principal });
      };
      this.awaiting = { version, confirmBy, resolve: done };
      this.confirmTimer = this.o.ctx.clock.setTimeout(() => done('timeout', 'timer'), wait);
      this.confirmTimer.unref?.();
    });
  }

  private confirmTimeoutMs(config: Config): number {
    const t = config.gateway.confirmTimeout;
    return Math.min(MAX_CONFIRM_MS, Math.max(MIN_CONFIRM_MS, typeof t === 'number' && Number.isFinite(t) ? t : 120_000));
  }

  // ───────────────────────────── records ─────────────────────────────

  private stageReport(v: ConfigVersion, stage: ConfigStage, extra: Partial<ConfigStageReport>): ConfigStageReport {
    const running = this.o.versions.running();
    return {
      id: v.id,
      version: v.version,
      stage,
      at: this.o.ctx.clock.now(),
      source: v.source,
      principal: v.principal,
      runningVersion: running?.version ?? null,
      ...extra,
    };
  }

  /** A stage reached: the event, the outbox for up/config/<id>, the bus. */
  private report(v: ConfigVersion, stage: ConfigStage, extra: Partial<ConfigStageReport>): ConfigStageReport {
    const r = this.stageReport(v, stage, stripUndefined(extra));
    this.event(v, stage, r);
    this.publish(r);
    return r;
  }

  private reportWithoutVersion(req: { id: string; source: ConfigSource; principal: string }, code: ConfigRefusalCode, reason: string): ConfigStageReport {
    const r: ConfigStageReport = {
      id: req.id,
      version: null,
      stage: 'rejected',
      at: this.o.ctx.clock.now(),
      source: req.source,
      principal: req.principal,
      code,
      reason,
      runningVersion: this.o.versions.running()?.version ?? null,
    };
    const detail: ConfigEventDetail = { id: req.id, version: null, source: req.source, principal: req.principal, code, reason, runningVersion: r.runningVersion };
    try {
      // a refusal before any version: in the refusal share, so a flood cannot push out data
      this.o.ctx.store.appendEvent({ kind: 'config.rejected', severity: 'warning', detail }, { refusal: true });
    } catch (err) {
      this.log.error({ err, id: req.id }, 'config: recording a refused change failed');
    }
    this.publish(r);
    return r;
  }

  private event(v: ConfigVersion, stage: ConfigStage, r: Partial<ConfigStageReport>): void {
    const errors = r.errors ?? [];
    const detail: ConfigEventDetail = {
      id: v.id,
      version: v.version,
      source: v.source,
      principal: v.principal,
      runningVersion: this.o.versions.running()?.version ?? null,
      baseVersion: v.baseVersion,
      ...(r.code ? { code: r.code } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
      ...(errors.length > 0 ? { errors: errors.slice(0, 5), errorCount: errors.length } : {}),
      ...(r.components && r.components.length > 0 ? { components: r.components } : {}),
    };
    const severity = stage === 'rolledBack' ? 'error' : stage === 'rejected' ? 'warning' : 'info';
    try {
      // a refusal goes in the refusal share: a flood of bad changes can only push out older refusals
      this.o.ctx.store.appendEvent({ kind: `config.${stage}`, severity, detail } as Parameters<GatewayContext['store']['appendEvent']>[0], { refusal: stage === 'rejected' });
    } catch (err) {
      this.log.error({ err, id: v.id, stage }, 'config: recording a stage failed');
    }
  }

  private publish(r: ConfigStageReport): void {
    this.stages.labels({ stage: r.stage, code: r.code ?? '' }).inc();
    try {
      this.o.versions.queueReport(r);
    } catch (err) {
      this.log.error({ err, id: r.id }, 'config: queueing a report for upstream failed');
    }
    this.o.ctx.bus.emit('configReport', r);
  }
}

function settledWith(id: string, report: ConfigStageReport): ConfigSubmitted {
  const p = Promise.resolve(report);
  return { id, first: report, settled: p, outcome: p };
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/** A plan that judges everything a configuration runs: every bus, the upstream (the version before is unknown). */
function everything(config: Config): ChangePlan {
  const none = planChange(config, config);
  return { ...none, empty: false, buses: config.buses.map((b) => b.id), sync: config.sync !== undefined && config.sync.enabled !== false };
}

/** the commit-confirm deadline kept in the store, if it is one */
function awaitingOf(value: unknown): { version: number; confirmBy: number } | null {
  const a = value as { version?: unknown; confirmBy?: unknown } | null | undefined;
  return a && typeof a.version === 'number' && typeof a.confirmBy === 'number' ? { version: a.version, confirmBy: a.confirmBy } : null;
}

/** Temp files a write cut short by a crash left beside devices.yaml (atomicFile.ts names them `.<name>.<pid>.<random>.tmp`). */
function sweepTemporaries(file: string, log: Logger): void {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.`;
  try {
    for (const name of readdirSync(dir)) {
      if (name.startsWith(prefix) && name.endsWith('.tmp')) {
        rmSync(join(dir, name), { force: true });
        log.warn({ file: name }, 'config: removed a temporary file a cut-short write left');
      }
    }
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'config: the configuration directory could not be swept of temporary files');
  }
}

function defaultRead(path: string): string {
  return readFileSync(path, 'utf8');
}
