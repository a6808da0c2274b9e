/**
 * The firmware engine (issue 17): the one road of a deployment, from its door to its last job
 * (the road is drawn in types.ts). It owns the journal's deployments: a tick (every second, and
 * whenever something changes) ends waves, halts a deployment whose failures pass its threshold,
 * expires jobs past the deadline, times out stages, and starts the jobs the gates and the caps
 * let go; each started job runs its stages in jobRunner.ts. Nothing here blocks the event loop
 * or holds a bus: the transfer goes through the bus scheduler's bulk share.
 *
 * A stop aborts the jobs between two steps; their stage and acknowledged blocks are in the store,
 * so the next start resumes each where it was.
 */
import { randomUUID } from 'node:crypto';
import type { GatewayContext } from '../component.js';
import type { ControlComponent } from '../control/index.js';
import { can } from '../control/roles.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { MetricSample } from '../metrics.js';
import { describeDevice } from '../profiles/describe.js';
import { loadProfiles, type ProfileRegistry } from '../profiles/index.js';
import type { Timer } from '../clock.js';
import type { ArtifactStore } from './artifacts.js';
import { FirmwareError } from './errors.js';
import { gate, groupAllowance, type GatedDevice } from './gates.js';
import { JobRunner, type JobEnv } from './jobRunner.js';
import type { FirmwareJournal } from './journal.js';
import { FuotaCoordinator } from './methods/fuota/coordinator.js';
import { FuotaJournal } from './methods/fuota/journal.js';
import type { FuotaRadio } from './methods/fuota/types.js';
import { parseEnvelope, verifyManifestSignature } from './manifest.js';
import { buildReport, waveCount } from './reports.js';
import type { SelfUpdater } from './selfUpdate.js';
import { resolveTargets, type FuotaRoad } from './targets.js';
import {
  DEPLOYMENT_ID_RE,
  FINAL_DEPLOYMENT_STATUSES,
  FINAL_JOB_STAGES,
  JOB_STAGES,
  type DeploymentAction,
  type DeploymentOutbox,
  type DeploymentRecord,
  type DeploymentReport,
  type DeploymentRequest,
  type DeploymentStatus,
  type DeploymentSubmitted,
  type FirmwareCode,
  type FirmwareService,
  type JobRecord,
  type Manifest,
  type Wave,
} from './types.js';

const TICK_MS = 1000;
/** progress reports of one deployment go out at most this often (stage changes at once) */
const PROGRESS_REPORT_MS = 1000;
/** how long a stop waits for the jobs to reach a step boundary */
const STOP_WAIT_MS = 5000;
/** the stages in which a device is out of (or being taken out of) its normal service */
const BUSY_STAGES = new Set(['fetching', 'transferring', 'activating', 'verifying']);
/** a FUOTA node's: its multicast transfer takes nothing out of service, its reboot does */
const FUOTA_BUSY_STAGES = new Set(['activating', 'verifying']);
/** ... but the gateway's own restart would cut its session short: for the gateway's job a FUOTA transfer is busy too */
const FUOTA_BUSY_FOR_GATEWAY = new Set(['transferring', 'activating', 'verifying']);

type FleetDevice = GatedDevice & { bus: string | null };

export type Health = () => { ok: true } | { ok: false; reason: string };

export interface FirmwareEngineOptions {
  ctx: GatewayContext;
  journal: FirmwareJournal;
  artifacts: ArtifactStore;
  selfUpdate?: SelfUpdater | null;
  /** the process restarts (a new gateway release is switched in) */
  requestRestart?: (reason: string) => boolean;
  tickMs?: number;
}

/** What the engine needs of the running gateway, attached once the components are built. */
export interface FirmwareParts {
  modbus?: ModbusDriver | undefined;
  /** FUOTA's road to LoRaWAN nodes (methods/fuota: the LoRaWAN driver): without it a LoRaWAN node is no target */
  lorawan?: FuotaRadio | undefined;
  control?: Pick<ControlComponent, 'reassert' | 'firmwareHold' | 'wanted'> | undefined;
  /** every component running and the upstream reachable (when configured): the new release's health */
  health: Health;
}

interface Waiter {
  promise: Promise<DeploymentReport>;
  resolve: (r: DeploymentReport) => void;
}

export class FirmwareEngine implements FirmwareService {
  private readonly log: Logger;
  private parts: FirmwareParts | null = null;
  /** FUOTA sessions, once a LoRaWAN driver is attached (and the store keeps module tables) */
  private fuota: FuotaCoordinator | undefined;
  private profiles: ProfileRegistry | null = null;
  private fleetCache: { devices: Map<string, FleetDevice>; lights: Map<string, number> } | null = null;
  private fleetOf: unknown = null;
  /** the journal's unfinished jobs, read once per tick (busyJobs) */
  private tickJobs: JobRecord[] | null = null;
  private profilesOf: unknown = null;
  private timer: Timer | null = null;
  private running = false;
  private ticking = false;
  private again = false;
  private readonly runners = new Map<string, JobRunner>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly lastProgressReport = new Map<string, number>();
  private readonly waitingLogged = new Map<string, string>();
  private readonly artifactFetches = new Map<string, Promise<void>>();
  private readonly fetchAborts = new Set<AbortController>();
  private readonly fetchControllers = new Map<string, AbortController>();
  /** a restart was asked for (a release switched): nothing more starts in this process */
  private restarting = false;
  /** the health deadline of the release on trial, as boot() read it */
  private bootDeadline: number | null = null;
  private readonly counters = { submitted: 0, rejected: 0, blocks: 0, bytes: 0, chunksIgnored: 0 };

  constructor(private readonly o: FirmwareEngineOptions) {
    this.log = o.ctx.log.child({ module: 'firmware' });
  }

  attach(parts: FirmwareParts): void {
    this.parts = parts;
    this.fuota?.stop();
    this.fuota = undefined;
    const journal = parts.lorawan ? FuotaJournal.open(this.o.ctx.store) : null;
    if (parts.lorawan && journal) {
      this.fuota = new FuotaCoordinator({
        config: () => this.config,
        store: this.o.ctx.store,
        log: this.log,
        clock: this.o.ctx.clock,
        radio: parts.lorawan,
        journal,
        expected: (deployment, wave) => this.o.journal.jobs(deployment).filter((j) => j.wave === wave && j.method === 'fuota' && !FINAL_JOB_STAGES.includes(j.stage)).map((j) => j.device),
      });
      if (this.running) this.fuota.start();
    }
  }

  private get config() {
    return this.o.ctx.config;
  }

  /** The profiles of the running configuration (a configuration change replaces ctx.config: rebuilt then). */
  private profileRegistry(): ProfileRegistry {
    if (!this.profiles || this.profilesOf !== this.config) {
      this.profiles = loadProfiles(this.config.profiles);
      this.profilesOf = this.config;
    }
    return this.profiles;
  }

  // ------------------------------------------------------------------------------ lifecycle

  /** Resumes the journal: a self-update's outcome first, then every job where it was. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.profiles = null;
    this.fuota?.start();
    this.settleSelfUpdateAtBoot();
    this.schedule(0);
  }

  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    this.running = false;
    if (this.timer) this.o.ctx.clock.clearTimeout(this.timer);
    this.timer = null;
    const runs = [...this.runners.values()];
    for (const r of runs) r.abort('stop');
    for (const ac of this.fetchAborts) ac.abort(new FirmwareError('E_FW_CANCELLED', 'the gateway stops'));
    this.fetchAborts.clear();
    this.artifactFetches.clear();
    await Promise.race([Promise.allSettled(runs.map((r) => r.done)), new Promise((res) => setTimeout(res, waitMs).unref())]);
    // the runners left their sessions (suspended); a session still under way stops at its next step, journaled
    this.fuota?.stop();
  }

  /** Wakes the tick now (a change, a job ended). */
  kick(): void {
    if (this.running) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) this.o.ctx.clock.clearTimeout(this.timer);
    this.timer = this.o.ctx.clock.setTimeout(() => {
      this.timer = null;
      this.tick();
    }, ms);
    this.timer.unref?.();
  }

  private tick(): void {
    if (!this.running || this.restarting) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.again = false;
        this.tickJobs = this.o.journal.activeJobs();
        for (const d of this.o.journal.deployments({ limit: 1000, active: true })) {
          try {
            this.advanceDeployment(d);
          } catch (err) {
            this.log.error({ err, deployment: d.id }, 'firmware: deployment step failed');
          }
        }
      } while (this.again && this.running && !this.restarting);
    } catch (err) {
      // a store error must not stop the engine for good: the next tick tries again
      this.log.error({ err }, 'firmware: tick failed');
    } finally {
      this.tickJobs = null;
      this.ticking = false;
    }
    this.schedule(this.o.tickMs ?? TICK_MS);
  }

  // ------------------------------------------------------------------------------ the doors

  submit(req: DeploymentRequest): DeploymentSubmitted {
    const now = this.o.ctx.clock.now();
    this.counters.submitted++;
    let stored: { sha256: string; size: number } | undefined;
    if (req.artifact) {
      try {
        stored = this.o.artifacts.put(req.artifact);
      } catch (err) {
        return this.refuse(undefined, req, err instanceof FirmwareError ? (err.code as FirmwareCode) : 'E_FW_ARTIFACT', errorMessage(err), now);
      }
    }
    const parsed = parseEnvelope(req.envelope);
    if (!parsed.ok) return this.refuse(parsed.id, req, parsed.code, parsed.reason, now);
    const { manifest, text, signature } = parsed;
    const existing = this.o.journal.deployment(manifest.id);
    // a refused id may come again, corrected; an accepted one is a duplicate
    if (existing && existing.status !== 'rejected') {
      // the same id again (central re-sent it): the original's report, published again
      const report = this.report(manifest.id)!;
      this.o.journal.queueReport(report);
      this.notify(report);
      this.log.info({ deployment: manifest.id, principal: req.principal }, 'firmware: duplicate deployment id: its report is sent again');
      return { id: manifest.id, first: { ...report }, outcome: this.outcomeOf(manifest.id, report) };
    }
    const sig = verifyManifestSignature(this.config.firmware.signingKeys, this.config.gateway.id, text, signature);
    if (!sig.ok) {
      const reason = this.config.firmware.signingKeys.length === 0 ? 'no firmware.signingKeys are configured: this gateway takes no manifest' : `signature: ${sig.reason}`;
      return this.refuse(manifest.id, req, 'E_FW_SIGNATURE', reason, now, manifest);
    }
    if (manifest.gateway !== this.config.gateway.id) {
      return this.refuse(manifest.id, req, 'E_FW_GATEWAY', `manifest.gateway: "${manifest.gateway}" is not this gateway ("${this.config.gateway.id}")`, now, manifest);
    }
    if (!can(req.role, 'firmware.deploy')) return this.refuse(manifest.id, req, 'E_FW_FORBIDDEN', `role ${req.role} may not deploy firmware (needs firmware.deploy)`, now, manifest);
    const waves: Wave[] = manifest.policy?.waves ?? [];
    const resolved = resolveTargets(manifest.targets, this.config, this.profileRegistry(), req.role, waves, this.fuotaRoad());
    if (!resolved.ok) return this.refuse(manifest.id, req, resolved.code, resolved.reason, now, manifest);
    const gatewayTarget = resolved.targets.some((t) => t.method === 'gateway');
    if (gatewayTarget && !this.o.selfUpdate) {
      return this.refuse(manifest.id, req, 'E_FW_TARGET', 'targets.gateway: this gateway does not run from firmware.selfUpdate.releases/<version>, so it cannot switch releases', now, manifest);
    }
    if (!gatewayTarget && manifest.artifact.versionCode === undefined) {
      return this.refuse(manifest.id, req, 'E_FW_INVALID', 'manifest.artifact.versionCode: required for devices (what their version point reads once they run the image)', now, manifest);
    }
    if (manifest.artifact.size > this.config.firmware.artifacts.maxBytes) {
      return this.refuse(manifest.id, req, 'E_FW_QUOTA', `artifact of ${manifest.artifact.size} bytes is larger than firmware.artifacts.maxBytes (${this.config.firmware.artifacts.maxBytes})`, now, manifest);
    }
    if ('local' in manifest.artifact.source && !this.o.artifacts.has(manifest.artifact.sha256)) {
      const why = stored ? `the artifact uploaded has sha256 ${stored.sha256}, the manifest says ${manifest.artifact.sha256}` : 'no artifact with this sha256 was uploaded (POST /api/v1/artifacts or streetbox deploy --artifact)';
      return this.refuse(manifest.id, req, 'E_FW_ARTIFACT', why, now, manifest);
    }
    if (manifest.policy?.deadline !== undefined && manifest.policy.deadline <= now) {
      return this.refuse(manifest.id, req, 'E_FW_EXPIRED', `policy.deadline ${new Date(manifest.policy.deadline).toISOString()} has passed`, now, manifest);
    }
    const busy = new Map(this.o.journal.activeJobs().map((j) => [j.device, j.deployment]));
    for (const t of resolved.targets) {
      const other = busy.get(t.device);
      if (other) return this.refuse(manifest.id, req, 'E_FW_TARGET', `device "${t.device}" is already a target of deployment ${other}, which has not ended`, now, manifest);
    }

    const record: DeploymentRecord = {
      id: manifest.id,
      source: req.source,
      principal: req.principal,
      role: req.role,
      manifest: text,
      artifact: manifest.artifact,
      status: 'running',
      reason: null,
      code: null,
      wave: 0,
      acceptedAt: now,
      deadline: manifest.policy?.deadline ?? now + this.config.firmware.deploymentTtl,
      endedAt: null,
    };
    const jobs: JobRecord[] = resolved.targets.map((t) => ({
      deployment: manifest.id,
      device: t.device,
      method: t.method,
      wave: t.wave,
      stage: 'pending',
      blocksAcked: 0,
      blocksTotal: 0,
      bytesAcked: 0,
      versionBefore: null,
      versionAfter: null,
      waiting: null,
      code: null,
      reason: null,
      attempts: 0,
      stageAt: now,
      startedAt: null,
      endedAt: null,
    }));
    try {
      if ('mqtt' in manifest.artifact.source) this.o.artifacts.expect(manifest.artifact);
      this.o.journal.addDeployment(record, jobs);
    } catch (err) {
      return this.refuse(manifest.id, req, err instanceof FirmwareError && err.code.startsWith('E_FW_') ? (err.code as FirmwareCode) : 'E_FW_ARTIFACT', errorMessage(err), now, manifest);
    }
    this.event('firmware.deployment.running', record, { status: 'running' });
    this.log.info({ deployment: record.id, principal: req.principal, artifact: `${manifest.artifact.name} ${manifest.artifact.version}`, jobs: jobs.length }, 'firmware: deployment accepted');
    const report = this.publish(record.id, true)!;
    this.kick();
    return { id: record.id, first: report, outcome: this.outcomeOf(record.id, report) };
  }

  submitCentral(payload: Buffer): void {
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      body = undefined;
    }
    const b = body as { action?: unknown; id?: unknown } | undefined;
    if (b && typeof b === 'object' && typeof b.action === 'string' && !('manifest' in b)) {
      const id = typeof b.id === 'string' ? b.id : '';
      if (b.action !== 'pause' && b.action !== 'resume' && b.action !== 'cancel') {
        this.log.warn({ action: b.action, deployment: id }, 'firmware: central sent an unknown action (pause, resume, cancel)');
        return;
      }
      const r = this.control(id, b.action, 'upstream');
      if (!r.ok) this.log.warn({ deployment: id, action: b.action, code: r.code, reason: r.reason }, 'firmware: central action refused');
      return;
    }
    try {
      const s = this.submit({ source: 'central', principal: 'upstream', role: 'central', envelope: payload });
      void s.outcome.catch(() => undefined);
    } catch (err) {
      this.log.error({ err }, 'firmware: a deployment from central could not be taken');
    }
  }

  storeArtifact(data: Buffer): { sha256: string; size: number } {
    return this.o.artifacts.put(data);
  }

  artifactChunk(sha256: string, index: number, data: Buffer): void {
    try {
      const r = this.o.artifacts.addChunk(sha256, index, data);
      if (r.complete) this.kick();
    } catch (err) {
      this.counters.chunksIgnored++;
      this.log.warn({ err, sha256, index }, 'firmware: artifact chunk not taken');
    }
  }

  control(id: string, action: DeploymentAction, principal: string): { ok: true; report: DeploymentReport } | { ok: false; code: 'E_NOT_FOUND' | 'E_FW_FINAL'; reason: string } {
    const d = this.o.journal.deployment(id);
    if (!d || d.status === 'rejected') return { ok: false, code: 'E_NOT_FOUND', reason: `no deployment "${id}"` };
    if (FINAL_DEPLOYMENT_STATUSES.includes(d.status)) return { ok: false, code: 'E_FW_FINAL', reason: `deployment ${id} has ended (${d.status})` };
    if (d.status === 'ending') return { ok: false, code: 'E_FW_FINAL', reason: `deployment ${id} is ending (${d.code === 'E_FW_CANCELLED' ? 'cancelled' : 'halted'}): its jobs under way finish` };
    if (action === 'pause') {
      if (d.status !== 'paused') {
        const next = this.o.journal.setStatus(id, 'paused');
        // transfers stop after their block (resumable); an activation or a verification finishes
        for (const r of this.runnersOf(id)) if (r.stage === 'transferring' || r.stage === 'pending' || r.stage === 'fetching') r.abort('pause');
        this.event('firmware.deployment.paused', next, { status: 'paused' }, principal);
      }
    } else if (action === 'resume') {
      if (d.status === 'paused') {
        const next = this.o.journal.setStatus(id, 'running');
        this.event('firmware.deployment.running', next, { status: 'running', reason: 'resumed' }, principal);
      }
    } else {
      this.cancel(d, 'E_FW_CANCELLED', `cancelled by ${principal}`, principal);
    }
    this.log.info({ deployment: id, action, principal }, 'firmware: deployment control');
    const report = this.publish(id, true)!;
    this.kick();
    return { ok: true, report };
  }

  /** Why `device` must not be commanded now: its new firmware is being activated or verified; null otherwise. */
  updating(device: string): string | null {
    const j = this.o.journal.activeJobs().find((x) => x.device === device && (x.stage === 'activating' || x.stage === 'verifying'));
    return j ? `its firmware update (deployment ${j.deployment}) is ${j.stage}` : null;
  }

  report(id: string): DeploymentReport | undefined {
    const d = this.o.journal.deployment(id);
    if (!d) return undefined;
    const jobs = this.o.journal.jobs(id);
    return buildReport(this.config.gateway.id, d, jobs, waveCount(jobs), this.o.ctx.clock.now());
  }

  list(q: { limit?: number } = {}): DeploymentReport[] {
    return this.o.journal
      .deployments({ limit: Math.min(Math.max(q.limit ?? 50, 1), 500) })
      .map((d) => this.report(d.id))
      .filter((r): r is DeploymentReport => r !== undefined);
  }

  jobs(id: string): JobRecord[] {
    return this.o.journal.jobs(id);
  }

  outbox(): DeploymentOutbox {
    return {
      pending: (limit) => this.o.journal.pendingReports(limit),
      delivered: (seq) => this.o.journal.reportDelivered(seq),
    };
  }

  metrics(): MetricSample[] {
    const samples: MetricSample[] = [];
    const stages = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<string, number>;
    for (const j of this.o.journal.activeJobs()) stages[j.stage] = (stages[j.stage] ?? 0) + 1;
    for (const [stage, n] of Object.entries(stages)) {
      samples.push({ name: 'streetbox_firmware_jobs_active', help: 'Firmware jobs of deployments under way, by stage', type: 'gauge', labels: { stage }, value: n });
    }
    const usage = this.o.artifacts.usage();
    samples.push(
      { name: 'streetbox_firmware_deployments_submitted_total', help: 'Deployments submitted since start', type: 'counter', value: this.counters.submitted },
      { name: 'streetbox_firmware_deployments_rejected_total', help: 'Deployments refused since start', type: 'counter', value: this.counters.rejected },
      { name: 'streetbox_firmware_blocks_total', help: 'Firmware blocks acknowledged by devices since start', type: 'counter', value: this.counters.blocks },
      { name: 'streetbox_firmware_artifact_bytes', help: 'Bytes of artifacts kept in the data directory', type: 'gauge', value: usage.bytes },
      { name: 'streetbox_firmware_artifact_bytes_limit', help: 'firmware.artifacts.maxBytes', type: 'gauge', value: this.config.firmware.artifacts.maxBytes },
      ...(this.fuota?.metrics() ?? []),
    );
    return samples;
  }

  // ------------------------------------------------------------------------------ deployments

  private refuse(id: string | undefined, req: DeploymentRequest, code: FirmwareCode, reason: string, now: number, manifest?: Manifest): DeploymentSubmitted {
    this.counters.rejected++;
    // a refusal is recorded under the manifest's id when it has a usable one not taken yet
    const prior = id !== undefined ? this.o.journal.deployment(id) : undefined;
    const taken = prior !== undefined && prior.status !== 'rejected';
    const rid = id !== undefined && DEPLOYMENT_ID_RE.test(id) && !taken ? id : `rejected-${now}-${randomUUID().slice(0, 8)}`;
    const record: DeploymentRecord = {
      id: rid,
      source: req.source,
      principal: req.principal,
      role: req.role,
      manifest: manifest ? JSON.stringify(manifest) : '',
      artifact: manifest?.artifact ?? { name: '', version: '', size: 0, sha256: '', source: { local: true } },
      status: 'rejected',
      reason,
      code,
      wave: 0,
      acceptedAt: now,
      deadline: now,
      endedAt: now,
    };
    try {
      this.o.journal.reject(record);
    } catch (err) {
      this.log.error({ err, deployment: rid }, 'firmware: refusal not recorded');
    }
    this.event('firmware.deployment.rejected', record, { status: 'rejected', code, reason });
    this.log.warn({ deployment: rid, principal: req.principal, source: req.source, code, reason }, 'firmware: deployment refused');
    const report = buildReport(this.config.gateway.id, record, [], 0, now);
    try {
      this.o.journal.queueReport(report);
      this.notify(report);
    } catch (err) {
      this.log.error({ err, deployment: rid }, 'firmware: refusal report not queued');
    }
    return { id: rid, first: report, outcome: Promise.resolve(report) };
  }

  private outcomeOf(id: string, current: DeploymentReport): Promise<DeploymentReport> {
    if (FINAL_DEPLOYMENT_STATUSES.includes(current.status)) return Promise.resolve(current);
    let w = this.waiters.get(id);
    if (!w) {
      let resolve!: (r: DeploymentReport) => void;
      const promise = new Promise<DeploymentReport>((res) => (resolve = res));
      w = { promise, resolve };
      this.waiters.set(id, w);
    }
    return w.promise;
  }

  /** One deployment's step: deadline, waves, thresholds, the jobs to start. */
  private advanceDeployment(d: DeploymentRecord): void {
    const now = this.o.ctx.clock.now();
    let jobs = this.o.journal.jobs(d.id);

    // timeouts of the stages under way: a runner past its stage's timeout is aborted (a resumed stage counts from its resumption)
    for (const j of jobs) {
      if (FINAL_JOB_STAGES.includes(j.stage) || j.stage === 'pending') continue;
      const runner = this.runners.get(key(j));
      // a runner waiting for a gate is not late: the deadline bounds that wait
      if (runner && j.waiting === null && now - j.stageAt > this.stageTimeout(j)) runner.abort('timeout');
    }
    // the deadline: jobs that could not start by then, and jobs a pause parked before their device was taken out of service
    if (now > d.deadline) {
      for (const j of jobs) {
        if (FINAL_JOB_STAGES.includes(j.stage)) continue;
        const reason = `not done before the deployment's deadline ${new Date(d.deadline).toISOString()}${j.waiting ? `; it was waiting: ${j.waiting}` : ''}`;
        const runner = this.runners.get(key(j));
        if (runner) {
          if (j.waiting !== null && (j.stage === 'pending' || j.stage === 'fetching' || j.stage === 'transferring')) runner.abort('expired', { code: 'E_FW_EXPIRED', reason });
          continue;
        }
        if (j.stage === 'pending' || (d.status === 'paused' && (j.stage === 'fetching' || j.stage === 'transferring'))) this.endParked(d, j, 'failed', 'E_FW_EXPIRED', reason);
      }
    }
    jobs = this.o.journal.jobs(d.id);
    if (d.status === 'ending') {
      // halted or cancelled while devices were activating: it ends when they have
      for (const j of jobs) {
        if (FINAL_JOB_STAGES.includes(j.stage) || this.runners.has(key(j))) continue;
        if (j.stage === 'activating' || j.stage === 'verifying') this.startRunner(d, j);
        else this.endParked(d, j, 'cancelled', d.code ?? 'E_FW_CANCELLED', d.reason ?? 'the deployment ended');
      }
      jobs = this.o.journal.jobs(d.id);
      if (jobs.every((j) => FINAL_JOB_STAGES.includes(j.stage)) && this.runnersOf(d.id).length === 0) {
        this.finish(d, d.code === 'E_FW_CANCELLED' ? 'cancelled' : 'halted', d.code, d.reason);
      }
      return;
    }
    const waves = waveCount(jobs);
    const policyWaves = this.manifestOf(d)?.policy?.waves ?? [];

    // halting: the wave's failures past its error threshold, as soon as they are
    const inWave = jobs.filter((j) => j.wave === d.wave);
    const failed = inWave.filter((j) => j.stage === 'failed' || j.stage === 'rolledBack').length;
    const errorThreshold = policyWaves[d.wave]?.errorThreshold ?? 0;
    if (inWave.length > 0 && failed / inWave.length > errorThreshold) {
      const expired = inWave.filter((j) => j.stage === 'failed' || j.stage === 'rolledBack').every((j) => j.code === 'E_FW_EXPIRED');
      this.halt(d, `wave ${d.wave + 1}: ${failed} of ${inWave.length} jobs failed (${pct(failed / inWave.length)}), more than its error threshold ${pct(errorThreshold)}`, expired ? 'E_FW_EXPIRED' : 'E_FW_HALTED');
      return;
    }
    // the wave ended: the next one, or the end
    if (inWave.every((j) => FINAL_JOB_STAGES.includes(j.stage)) && !this.runnersOf(d.id).length) {
      const confirmed = inWave.filter((j) => j.stage === 'confirmed').length;
      // without a successThreshold the error threshold alone decides (checked above)
      const successThreshold = policyWaves[d.wave]?.successThreshold;
      if (successThreshold !== undefined && inWave.length > 0 && confirmed < Math.ceil(inWave.length * successThreshold - 1e-9)) {
        this.halt(d, `wave ${d.wave + 1}: ${confirmed} of ${inWave.length} jobs confirmed (${pct(confirmed / inWave.length)}), less than its success threshold ${pct(successThreshold)}`);
        return;
      }
      if (d.wave + 1 < waves) {
        this.o.journal.setWave(d.id, d.wave + 1);
        this.log.info({ deployment: d.id, wave: d.wave + 2, of: waves }, 'firmware: next wave');
        try {
          this.o.ctx.store.appendEvent({ kind: 'firmware.deployment.wave', severity: 'info', detail: { deployment: d.id, principal: d.principal, status: d.status, wave: d.wave + 2, of: waves } });
        } catch (err) {
          this.log.error({ err }, 'firmware: event not recorded');
        }
        this.publish(d.id, true);
        this.again = true;
        return;
      }
      this.finish(d, 'completed', null, null);
      return;
    }
    if (d.status !== 'running') {
      // paused: only what cannot stop half-way goes on (an activation, a verification after a restart)
      for (const j of inWave) if ((j.stage === 'activating' || j.stage === 'verifying') && !this.runners.has(key(j))) this.startRunner(d, j);
      return;
    }
    for (const j of jobs) {
      if (j.wave > d.wave && j.stage === 'pending' && j.waiting === null) this.setWaiting(d, j, `wave ${j.wave + 1} starts after wave ${j.wave} ends`);
    }
    const manifest = this.manifestOf(d);
    for (const j of inWave) {
      if (FINAL_JOB_STAGES.includes(j.stage) || this.runners.has(key(j))) continue;
      if (j.stage !== 'pending') {
        this.startRunner(d, j); // resumed after a restart: it goes on from its stage
        continue;
      }
      const verdict = this.mayStart(d, j, manifest);
      if (!verdict.ok) {
        this.setWaiting(d, j, verdict.waiting);
        continue;
      }
      this.startRunner(d, j);
    }
  }

  /** What resolving a LoRaWAN node asks: the driver's keys when FUOTA can run here, else why not. */
  private fuotaRoad(): FuotaRoad {
    const lorawan = this.parts?.lorawan;
    if (!lorawan) return { unavailable: 'the LoRaWAN driver is not running (lorawan.enabled)' };
    if (!this.fuota) return { unavailable: "this gateway's store keeps no module tables, where FUOTA journals its sessions: FUOTA cannot run" };
    return lorawan;
  }

  /** The gates and the caps for a pending job. */
  mayStart(d: DeploymentRecord, j: JobRecord, manifest: Manifest | null = this.manifestOf(d)): { ok: true } | { ok: false; waiting: string } {
    if (j.method === 'gateway') {
      // a restart in the middle of a controller's activation (or a FUOTA session) would strand it: the gateway goes last
      const others = this.busyJobs(j.device, FUOTA_BUSY_FOR_GATEWAY);
      if (others.length > 0) return { ok: false, waiting: `other updates under way (${others.map((x) => x.device).join(', ')}): the gateway restarts after them` };
      const w = manifest?.policy?.windows ?? [];
      const v = gate({ id: j.device, kind: 'other', groups: [] }, { now: this.o.ctx.clock.now(), config: this.config, windows: w, hold: null });
      return v.ok ? v : { ok: false, waiting: v.waiting };
    }
    const dev = this.gatedDevice(j.device);
    if (!dev) return { ok: false, waiting: `device "${j.device}" is no longer in devices.yaml` };
    const gatewayJob = this.busyJobs(j.device).find((x) => x.method === 'gateway');
    if (gatewayJob) return { ok: false, waiting: `the gateway updates itself (deployment ${gatewayJob.deployment}): devices wait for its restart` };
    if (j.method === 'fuota') {
      // the multicast takes no light out of service: only the deployment's windows; the reboot meets the gates and caps (mayProceed)
      const v = gate({ id: j.device, kind: 'other', groups: [] }, { now: this.o.ctx.clock.now(), config: this.config, windows: manifest?.policy?.windows ?? [], hold: null });
      return v.ok ? v : { ok: false, waiting: v.waiting };
    }
    const verdict = gate(dev, { now: this.o.ctx.clock.now(), config: this.config, windows: manifest?.policy?.windows ?? [], hold: this.parts?.control?.firmwareHold(j.device) ?? null });
    if (!verdict.ok) return { ok: false, waiting: verdict.waiting };
    return this.capsAllow(j, dev, manifest);
  }

  /** The caps: jobs under way per bus and per group (all deployments), and a group's share of lights. */
  private capsAllow(j: JobRecord, dev: GatedDevice & { bus: string | null }, manifest: Manifest | null): { ok: true } | { ok: false; waiting: string } {
    const maxPerBus = manifest?.policy?.maxPerBus ?? 1;
    const maxPerGroup = manifest?.policy?.maxPerGroup ?? 1;
    const busy = this.busyJobs(j.device);
    const { devices, lights } = this.fleet();
    if (dev.bus !== null) {
      const onBus = busy.filter((x) => devices.get(x.device)?.bus === dev.bus);
      if (onBus.length >= maxPerBus) return { ok: false, waiting: `bus ${dev.bus} busy: ${onBus.map((x) => x.device).join(', ')} updating (at most ${maxPerBus} at once)` };
    }
    for (const g of dev.groups) {
      const inGroup = busy.filter((x) => devices.get(x.device)?.groups.includes(g));
      let cap = maxPerGroup;
      if (dev.kind === 'lighting') cap = Math.min(cap, groupAllowance(lights.get(g) ?? 0, this.config.firmware.lights.maxGroupShare));
      if (inGroup.length >= cap) return { ok: false, waiting: `group ${g}: ${inGroup.length} updating already (at most ${cap} at once)` };
    }
    return { ok: true };
  }

  private gatedDevice(id: string): FleetDevice | undefined {
    return this.fleet().devices.get(id);
  }

  /** The devices as the gates and the caps see them, and the lights of each group: once per configuration. */
  private fleet(): { devices: Map<string, FleetDevice>; lights: Map<string, number> } {
    if (this.fleetCache && this.fleetOf === this.config) return this.fleetCache;
    const devices = new Map<string, FleetDevice>();
    const lights = new Map<string, number>();
    for (const d of this.config.devices) {
      // what the device is (a built-in LoRaWAN streetlight too, whose profile is no YAML of the registry)
      const kind = describeDevice(d, this.profileRegistry()).kind;
      devices.set(d.id, { id: d.id, kind, groups: d.groups, bus: d.bus ?? null, allowCommands: d.allowCommands });
      if (kind === 'lighting') for (const g of d.groups) lights.set(g, (lights.get(g) ?? 0) + 1);
    }
    this.fleetCache = { devices, lights };
    this.fleetOf = this.config;
    return this.fleetCache;
  }

  /**
   * The jobs under way (a busy stage, or a runner) but `except`'s: a FUOTA job in `fuotaBusy` (by
   * default from its reboot on: its multicast takes nothing out of service). Within a tick the
   * journal is read once: a job started in it has a runner; one that ended in it still counts until
   * the next tick.
   */
  private busyJobs(except: string, fuotaBusy: ReadonlySet<string> = FUOTA_BUSY_STAGES): JobRecord[] {
    return (this.tickJobs ?? this.o.journal.activeJobs()).filter(
      (x) => x.device !== except && (x.method === 'fuota' ? fuotaBusy.has(x.stage) : BUSY_STAGES.has(x.stage) || this.runners.has(key(x))),
    );
  }

  private setWaiting(d: DeploymentRecord, j: JobRecord, waiting: string): void {
    if (j.waiting === waiting) return;
    this.o.journal.patchJob(d.id, j.device, { waiting });
    if (this.waitingLogged.get(key(j)) !== waiting) {
      this.waitingLogged.set(key(j), waiting);
      try {
        this.o.ctx.store.appendEvent({ kind: 'firmware.job.waiting', severity: 'info', device: j.device, detail: { deployment: d.id, principal: d.principal, device: j.device, stage: j.stage, waiting } });
      } catch (err) {
        this.log.error({ err }, 'firmware: event not recorded');
      }
      this.log.info({ deployment: d.id, device: j.device, waiting }, 'firmware: job waits');
    }
    this.publish(d.id, false);
  }

  private halt(d: DeploymentRecord, reason: string, code: FirmwareCode = 'E_FW_HALTED'): void {
    this.cancelJobs(d, 'E_FW_HALTED', `halted: ${reason}`);
    this.endOrClose(d, 'halted', code, reason);
  }

  private cancel(d: DeploymentRecord, code: FirmwareCode, reason: string, principal: string): void {
    this.cancelJobs(d, code, reason);
    this.endOrClose(d, 'cancelled', code, reason, principal);
  }

  /**
   * Ends a halted or cancelled deployment, unless devices are still activating or verifying (they
   * cannot stop half-way) or a transfer is stopping: then it is `ending`, with its final code,
   * counted in the caps and resumed after a restart, and ends when those jobs have.
   */
  private endOrClose(d: DeploymentRecord, status: 'halted' | 'cancelled', code: FirmwareCode, reason: string, principal?: string): void {
    // a runner told to stop (a transfer) ends its job itself in a moment; an activation finishes
    const inFlight = this.o.journal.jobs(d.id).filter((j) => !FINAL_JOB_STAGES.includes(j.stage) && (j.stage === 'activating' || j.stage === 'verifying' || this.runners.has(key(j))));
    if (inFlight.length === 0) {
      this.finish(d, status, code, reason, principal);
      return;
    }
    const marker: FirmwareCode = status === 'cancelled' ? 'E_FW_CANCELLED' : code === 'E_FW_EXPIRED' ? 'E_FW_EXPIRED' : 'E_FW_HALTED';
    const next = this.o.journal.setStatus(d.id, 'ending', { code: marker, reason });
    this.event('firmware.deployment.ending', next, { status: 'ending', code: marker, reason }, principal);
    this.log.info({ deployment: d.id, status, waitingFor: inFlight.map((j) => j.device) }, 'firmware: deployment ends once its jobs under way have');
    this.publish(d.id, true);
  }

  /** Jobs not started end cancelled; transfers stop (cancelled); an activation or a verification finishes. */
  private cancelJobs(d: DeploymentRecord, code: FirmwareCode, reason: string): void {
    for (const j of this.o.journal.jobs(d.id)) {
      if (FINAL_JOB_STAGES.includes(j.stage) || j.stage === 'activating' || j.stage === 'verifying') continue;
      const runner = this.runners.get(key(j));
      if (runner) runner.abort('cancel', { code, reason });
      else this.endParked(d, j, 'cancelled', code, reason);
    }
  }

  private finish(d: DeploymentRecord, status: DeploymentStatus, code: FirmwareCode | null, reason: string | null, principal?: string): void {
    const now = this.o.ctx.clock.now();
    const next = this.o.journal.setStatus(d.id, status, { code, reason, endedAt: now });
    const kind = `firmware.deployment.${status}` as 'firmware.deployment.completed';
    this.event(kind, next, { status, ...(code ? { code } : {}), ...(reason ? { reason } : {}) }, principal);
    this.log.info({ deployment: d.id, status, code, reason }, 'firmware: deployment ended');
    const report = this.publish(d.id, true)!;
    const w = this.waiters.get(d.id);
    if (w) {
      this.waiters.delete(d.id);
      w.resolve(report);
    }
    this.collectArtifacts();
  }

  /** Aborts downloads no deployment under way needs any more, then removes their files. */
  private collectArtifacts(): void {
    try {
      const keep = new Set(this.o.journal.deployments({ limit: 1000, active: true }).map((x) => x.artifact.sha256));
      for (const [sha, ac] of this.fetchControllers) {
        if (keep.has(sha)) continue;
        ac.abort(new FirmwareError('E_FW_CANCELLED', 'no deployment needs this artifact any more'));
        this.fetchControllers.delete(sha);
        this.artifactFetches.delete(sha);
      }
      this.o.artifacts.gc(keep);
    } catch (err) {
      this.log.warn({ err }, 'firmware: artifacts not collected');
    }
  }

  // ------------------------------------------------------------------------------ jobs

  private startRunner(d: DeploymentRecord, j: JobRecord, endAs?: { stage: 'failed' | 'cancelled'; code: FirmwareCode; reason: string }): void {
    const runner = new JobRunner(this.jobEnv(), d, j, endAs);
    this.runners.set(key(j), runner);
    void runner.done
      .catch((err: unknown) => this.log.error({ err, deployment: d.id, device: j.device }, 'firmware: job runner failed'))
      .finally(() => {
        if (this.runners.get(key(j)) === runner) this.runners.delete(key(j));
        // a cap may have room now: FUOTA nodes whose reboot waits ask again
        this.fuota?.wakeReboots();
        this.kick();
      });
  }

  private runnersOf(id: string): JobRunner[] {
    return [...this.runners.values()].filter((r) => r.deployment === id);
  }

  private jobEnv(): JobEnv {
    return {
      ctx: this.o.ctx,
      log: this.log,
      journal: this.o.journal,
      profiles: this.profileRegistry(),
      modbus: this.parts?.modbus,
      fuota: this.fuota,
      control: this.parts?.control,
      health: this.parts?.health ?? (() => ({ ok: false, reason: 'the gateway is starting' })),
      selfUpdate: this.o.selfUpdate ?? null,
      requestRestart: (reason) => this.restart(reason),
      image: (d) => this.image(d),
      artifactReady: (d) => this.artifactReady(d),
      artifactPath: (d) => this.o.artifacts.path(d.artifact.sha256),
      mayProceed: (d, j) => {
        const fresh = this.o.journal.deployment(d.id) ?? d;
        if (fresh.status !== 'running') return { ok: false, waiting: `deployment ${fresh.status}` };
        // the gateway itself: its windows, and no other job under way when it restarts
        if (j.method === 'gateway') return this.mayStart(fresh, j);
        const dev = this.gatedDevice(j.device);
        if (!dev) return { ok: false, waiting: `device "${j.device}" is no longer in devices.yaml` };
        const manifest = this.manifestOf(fresh);
        const v = gate(dev, { now: this.o.ctx.clock.now(), config: this.config, windows: manifest?.policy?.windows ?? [], hold: this.parts?.control?.firmwareHold(j.device) ?? null });
        if (!v.ok) return v;
        // a FUOTA node's reboot is where it leaves service: the caps count it from there (busyJobs)
        return j.method === 'fuota' ? this.capsAllow(j, dev, manifest) : v;
      },
      advanced: (d, j) => {
        this.event(`firmware.job.${j.stage}` as 'firmware.job.confirmed', d, { device: j.device, stage: j.stage, ...(j.code ? { code: j.code } : {}), ...(j.reason ? { reason: j.reason } : {}), bytesAcked: j.bytesAcked, version: j.versionAfter ?? j.versionBefore }, undefined, j.device);
        this.waitingLogged.delete(key(j));
        this.publish(d.id, true);
      },
      progressed: (d, blocks, bytes) => {
        this.counters.blocks += blocks;
        this.counters.bytes += bytes;
        this.publish(d.id, false);
      },
      waiting: (d, j, waiting) => this.setWaiting(d, j, waiting),
      stageTimeout: (j) => this.stageTimeout(j),
      selfUpdateDeadline: () => this.bootDeadline,
    };
  }

  /**
   * Ends a job no runner holds: a pending one at once; one parked mid-transfer through a runner
   * that first tells its device to leave the bootloader (jobRunner.ts endParked).
   */
  private endParked(d: DeploymentRecord, j: JobRecord, stage: 'failed' | 'cancelled', code: FirmwareCode, reason: string): void {
    if (j.stage === 'transferring' || j.stage === 'activating') {
      this.startRunner(d, j, { stage, code, reason });
      return;
    }
    this.endJob(d, j, stage, code, reason);
  }

  private endJob(d: DeploymentRecord, j: JobRecord, stage: 'failed' | 'cancelled', code: FirmwareCode, reason: string): void {
    const next = this.o.journal.advance(d.id, j.device, stage, { code, reason, waiting: null }, this.o.ctx.clock.now());
    this.event(`firmware.job.${stage}` as 'firmware.job.failed', d, { device: j.device, stage, code, reason }, undefined, j.device);
    this.log.warn({ deployment: d.id, device: j.device, stage, code, reason }, 'firmware: job ended');
    void this.parts?.control?.reassert(j.device, `firmware job ${stage}`)?.catch(() => undefined);
    this.publish(d.id, true);
    void next;
  }

  private stageTimeout(j: JobRecord): number {
    const t = this.config.firmware.timeouts;
    // a FUOTA node's stages last what its session's plan says (never firmware.timeouts.transfer)
    if (j.method === 'fuota' && this.fuota && (j.stage === 'transferring' || j.stage === 'activating' || j.stage === 'verifying')) return this.fuota.stageTimeout(j);
    const decl = this.rebootMsOf(j.device);
    switch (j.stage) {
      case 'fetching':
        return t.fetch;
      case 'transferring':
        return t.transfer;
      case 'activating':
        return t.activate + decl;
      case 'verifying':
        return j.method === 'gateway' ? this.config.firmware.selfUpdate.healthTimeout + t.verify : t.verify + decl;
      default:
        return Number.POSITIVE_INFINITY;
    }
  }

  private rebootMsOf(device: string): number {
    const d = this.config.devices.find((x) => x.id === device);
    const fw = d ? this.profileRegistry().get(d.profile)?.firmware : undefined;
    return (fw !== undefined && fw.method !== 'fuota' ? fw.rebootS : 30) * 1000;
  }

  /** The artifact on disk, fetched once per artifact (checked against size and sha256) and shared by its jobs. */
  private artifactReady(d: DeploymentRecord): Promise<void> {
    const sha = d.artifact.sha256;
    let p = this.artifactFetches.get(sha);
    if (!p) {
      const ac = new AbortController();
      this.fetchAborts.add(ac);
      this.fetchControllers.set(sha, ac);
      p = this.o.artifacts.fetch(d.artifact, { signal: ac.signal, timeoutMs: this.config.firmware.timeouts.fetch }).then(() => undefined);
      this.artifactFetches.set(sha, p);
      p.then(
        () => {
          this.fetchAborts.delete(ac);
          this.fetchControllers.delete(sha);
        },
        () => {
          this.fetchAborts.delete(ac);
          this.fetchControllers.delete(sha);
          this.artifactFetches.delete(sha);
        },
      );
    }
    return p;
  }

  /** The artifact's bytes (a device image: small; the gateway's release is never read whole). */
  private async image(d: DeploymentRecord): Promise<Buffer> {
    await this.artifactReady(d);
    return this.o.artifacts.read(d.artifact.sha256);
  }

  private manifestOf(d: DeploymentRecord): Manifest | null {
    try {
      return JSON.parse(d.manifest) as Manifest;
    } catch {
      return null;
    }
  }

  // ------------------------------------------------------------------------------ the gateway's own release

  /** The process restarts into another release: the tick stops starting anything. False: nothing restarts it. */
  private restart(reason: string): boolean {
    const ok = this.o.requestRestart?.(reason) ?? false;
    if (ok) this.restarting = true;
    else this.log.error({ reason }, 'firmware: a restart was asked for, but nothing restarts this process');
    return ok;
  }

  /** At start: a self-update the previous process switched to, or that the launcher switched back from. */
  private settleSelfUpdateAtBoot(): void {
    try {
      this.settleSelfUpdate();
    } catch (err) {
      // the launcher's deadline still applies to a release on trial
      this.log.error({ err }, 'firmware: the self-update state could not be settled');
    }
  }

  private settleSelfUpdate(): void {
    const su = this.o.selfUpdate;
    if (!su) return;
    let boot: ReturnType<SelfUpdater['boot']>;
    try {
      boot = su.boot();
    } catch (err) {
      this.log.error({ err }, 'firmware: self-update state unreadable');
      return;
    }
    if (boot.state === 'none') return;
    const gw = this.config.gateway.id;
    const deployment = boot.deployment;
    const d = this.o.journal.deployment(deployment);
    const j = d ? this.o.journal.job(deployment, gw) : undefined;
    if (boot.state === 'outcome') {
      if (d && j && !FINAL_JOB_STAGES.includes(j.stage)) {
        const now = this.o.ctx.clock.now();
        const stage = boot.result === 'confirmed' ? 'confirmed' : 'rolledBack';
        const next = this.o.journal.advance(deployment, gw, stage, { versionAfter: boot.result === 'confirmed' ? boot.version : null, ...(stage === 'rolledBack' ? { code: 'E_FW_ROLLED_BACK' as const, reason: boot.reason } : {}), waiting: null }, now);
        this.event(`firmware.job.${stage}` as 'firmware.job.rolledBack', d, { device: gw, stage, ...(stage === 'rolledBack' ? { code: 'E_FW_ROLLED_BACK' as const } : {}), reason: boot.reason, version: boot.version }, undefined, gw);
        this.log.warn({ deployment, version: boot.version, result: boot.result, reason: boot.reason }, 'firmware: self-update outcome');
        void next;
        this.publish(deployment, true);
      }
      su.clearOutcome();
      return;
    }
    // verifying: this process is the new release; the runner waits for health, then confirms or switches back
    this.bootDeadline = boot.deadline;
    if (!d || !j || FINAL_JOB_STAGES.includes(j.stage)) {
      // a release on trial that no job expects: back to the release it came from
      const reason = `release ${boot.to} is on trial but deployment ${deployment} does not expect it (${j ? `its job ended ${j.stage}` : 'no such job'})`;
      this.log.error({ deployment, version: boot.to }, reason);
      try {
        su.switchBack(reason);
      } finally {
        this.restart(reason);
      }
      return;
    }
    if (j.stage === 'activating') {
      const next = this.o.journal.advance(deployment, gw, 'verifying', { waiting: null }, this.o.ctx.clock.now());
      this.event('firmware.job.verifying', d, { device: gw, stage: 'verifying', version: boot.to }, undefined, gw);
      void next;
      this.publish(deployment, true);
    }
  }

  // ------------------------------------------------------------------------------ reports and events

  /** Queues the deployment's report for up/deployments/<id>; progress at most once a second. */
  private publish(id: string, force: boolean): DeploymentReport | undefined {
    const now = this.o.ctx.clock.now();
    if (!force && now - (this.lastProgressReport.get(id) ?? 0) < PROGRESS_REPORT_MS) return undefined;
    this.lastProgressReport.set(id, now);
    const report = this.report(id);
    if (!report) return undefined;
    try {
      this.o.journal.queueReport(report);
      this.notify(report);
    } catch (err) {
      this.log.error({ err, deployment: id }, 'firmware: report not queued');
    }
    return report;
  }

  private notify(report: DeploymentReport): void {
    this.o.ctx.bus.emit('deploymentReport', report);
  }

  private event(
    kind: `firmware.${'deployment' | 'job'}.${string}`,
    d: Pick<DeploymentRecord, 'id' | 'principal'>,
    detail: Omit<import('./records.js').FirmwareEventDetail, 'deployment' | 'principal'>,
    principal?: string,
    device?: string,
  ): void {
    try {
      const severity = /failed|halted|rolledBack|rejected/.test(kind) ? 'warning' : 'info';
      this.o.ctx.store.appendEvent({ kind: kind as 'firmware.job.confirmed', severity, device: device ?? null, detail: { deployment: d.id, principal: principal ?? d.principal, ...detail } });
    } catch (err) {
      this.log.error({ err, kind }, 'firmware: event not recorded');
    }
  }
}

function key(j: Pick<JobRecord, 'deployment' | 'device'>): string {
  return `${j.deployment}\0${j.device}`;
}

function pct(x: number): string {
  return `${Math.round(x * 100)} %`;
}
