/**
 * One job's stages (issue 17 Deliver 2–4), from wherever the journal says it is:
 *
 *   pending → fetching (the deployment's artifact, checked) → transferring (block by block from the
 *   last acknowledged one, each acknowledgement journaled before the next block) → [gate again: the
 *   activation takes the device out of service] → activating (size, checksum, commit) → verifying
 *   (after its reboot the version point reads the new version, then the functional probe) →
 *   confirmed | failed. A light is driven back to its wanted level when its job ends either way.
 *
 * A LoRaWAN node's job (method `fuota`, methods/fuota): fetching → transferring (it joins its wave's
 * FUOTA session and awaits its node's outcome; the session calls back the stages this runner
 * journals: activating once the gates and caps let the node reboot, verifying after the reboot) →
 * confirmed when the node reports the new version in DevVersionAns and, a light, passes its
 * functional probe: it takes its wanted level again and acknowledges it (the control plane's
 * reassert, a confirmed downlink) | failed.
 *
 * The gateway's own job (method `gateway`, selfUpdate.ts): fetching → transferring (unpack the
 * release beside the running one) → activating (switch `current`, restart) → verifying (in the new
 * process: healthy within healthTimeout, else switched back) → confirmed | rolledBack.
 *
 * An abort (stop, pause, cancel, timeout) takes effect between two steps: a block is never left
 * half-journaled. A stop or a pause leaves the stage as it is, to be resumed.
 */
import type { GatewayContext } from '../component.js';
import type { ControlComponent } from '../control/index.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage, StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ProfileRegistry } from '../profiles/index.js';
import { firmwareOf, type DeviceFirmware } from '../profiles/firmware.js';
import { backoffDelay } from '../backoff.js';
import { FirmwareError } from './errors.js';
import type { FirmwareJournal } from './journal.js';
import type { FuotaCoordinator, FuotaHandle } from './methods/fuota/coordinator.js';
import type { FuotaMember } from './methods/fuota/types.js';
import { createModbusUpdater } from './methods/modbus.js';
import { functionalProbe } from './probe.js';
import type { SelfUpdater } from './selfUpdate.js';
import type { DeploymentRecord, DeviceUpdater, FirmwareCode, GateVerdict, JobRecord, JobStage } from './types.js';

export interface JobEnv {
  ctx: GatewayContext;
  log: Logger;
  journal: FirmwareJournal;
  profiles: ProfileRegistry;
  modbus: ModbusDriver | undefined;
  /** the FUOTA sessions (the LoRaWAN driver attached), undefined without one */
  fuota: FuotaCoordinator | undefined;
  control: Pick<ControlComponent, 'reassert' | 'firmwareHold' | 'wanted'> | undefined;
  health: () => { ok: true } | { ok: false; reason: string };
  selfUpdate: SelfUpdater | null;
  /** asks the service manager to restart the process; false when nothing will */
  requestRestart: (reason: string) => boolean;
  image(d: DeploymentRecord): Promise<Buffer>;
  /** the artifact fetched and checked, without reading it (the gateway's release) */
  artifactReady(d: DeploymentRecord): Promise<void>;
  /** the file of the deployment's artifact (fetched by image()) */
  artifactPath(d: DeploymentRecord): string;
  /** the gates again, before the activation (the deployment still running, the device's window open, no hold; a fuota node's reboot: the caps too) */
  mayProceed(d: DeploymentRecord, j: JobRecord): GateVerdict;
  advanced(d: DeploymentRecord, j: JobRecord): void;
  progressed(d: DeploymentRecord, blocks: number, bytes: number): void;
  waiting(d: DeploymentRecord, j: JobRecord, waiting: string): void;
  stageTimeout(j: JobRecord): number;
  /** the new release's health deadline as boot() read it (ms UTC), null when none */
  selfUpdateDeadline(): number | null;
}

type AbortReason = 'stop' | 'pause' | 'cancel' | 'timeout' | 'expired';

class Aborted extends Error {
  constructor(readonly why: AbortReason) {
    super(`aborted: ${why}`);
  }
}

/** the reason a job records when its image went again from block 0 (once per job) */
const RESENT = 'the device lost the blocks it had acknowledged; the image was sent again from block 0';
/** how long a job that ends waits for its device to leave the bootloader, ms */
const ABORT_WAIT_MS = 3000;
/** how often a closed gate is asked again, ms */
const GATE_RETRY_MS = 5000;
/** how often the device's version is read while it reboots, ms */
const VERIFY_POLL_MS = 500;
/** functional probes before a job fails on them */
const PROBE_ATTEMPTS = 3;
/** a healthy new release must stay healthy this long before it is confirmed, ms */
const HEALTH_STABLE_MS = 3000;

export class JobRunner {
  readonly deployment: string;
  readonly done: Promise<void>;
  /** the job's stage as this runner last journaled it */
  get stage(): JobStage {
    return this.job.stage;
  }
  private why: AbortReason | null = null;
  /** the device's updater once the image is in hand; `entered`: its bootloader may hold a partial image (before the commit) */
  private updater: DeviceUpdater | null = null;
  private entered = false;
  /** this runner took up a stage a previous runner (or process) had begun */
  private readonly resumed: boolean;
  private cancelAs: { code: FirmwareCode; reason: string } | null = null;
  /** a fuota job's node in its session, while this runner awaits it */
  private fuota: FuotaHandle | null = null;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly env: JobEnv,
    private readonly d: DeploymentRecord,
    private job: JobRecord,
    /** only end this parked job (a deadline, a cancel, a halt): the device leaves its bootloader first */
    private readonly endAs?: { stage: 'failed' | 'cancelled'; code: FirmwareCode; reason: string },
  ) {
    this.deployment = d.id;
    this.resumed = job.stage !== 'pending';
    if (job.stage !== 'pending') {
      // a stage resumed (after a restart or a pause): its timeout counts from now, not from before the outage
      this.job = env.journal.advance(d.id, job.device, job.stage, { waiting: null }, env.ctx.clock.now());
    }
    this.done = this.run();
  }

  abort(why: AbortReason, as?: { code: FirmwareCode; reason: string }): void {
    if (this.why === null || why === 'cancel' || why === 'timeout' || why === 'expired') this.why = why;
    if (as) this.cancelAs = as;
    for (const w of this.wakers) w();
  }

  private check(): void {
    if (this.why !== null) throw new Aborted(this.why);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private advance(stage: JobStage, patch: Parameters<FirmwareJournal['advance']>[3] = {}): void {
    this.job = this.env.journal.advance(this.d.id, this.job.device, stage, { waiting: null, ...patch }, this.env.ctx.clock.now());
    this.env.log.info({ deployment: this.d.id, device: this.job.device, stage, code: this.job.code ?? undefined, reason: this.job.reason ?? undefined }, 'firmware: job stage');
    this.env.advanced(this.d, this.job);
  }

  private async run(): Promise<void> {
    try {
      if (this.endAs) {
        await this.endParked(this.endAs);
        return;
      }
      if (this.job.method === 'gateway') await this.runGateway();
      else if (this.job.method === 'fuota') await this.runFuota();
      else await this.runDevice();
    } catch (err) {
      await this.ended(err);
    }
  }

  /** An abort or an error: the stage it leaves the job in. */
  private async ended(err: unknown): Promise<void> {
    const { device } = this.job;
    if (err instanceof Aborted) {
      this.leaveSession(err.why);
      if (err.why === 'stop' || err.why === 'pause') return; // resumed later from the journal
      await this.leaveBootloader();
      if (err.why === 'cancel') {
        this.advance('cancelled', { code: this.cancelAs?.code ?? 'E_FW_CANCELLED', reason: this.cancelAs?.reason ?? 'cancelled' });
      } else if (err.why === 'expired') {
        this.advance('failed', { code: 'E_FW_EXPIRED', reason: this.cancelAs?.reason ?? `not done before the deployment's deadline${this.job.waiting ? `; it was waiting: ${this.job.waiting}` : ''}` });
      } else {
        this.advance('failed', { code: 'E_FW_TIMEOUT', reason: `${this.stage} took longer than ${Math.round(this.env.stageTimeout(this.job) / 1000)} s` });
      }
    } else {
      const code: FirmwareCode =
        err instanceof FirmwareError && err.code.startsWith('E_FW_') && err.code !== 'E_FW_FINAL'
          ? (err.code as FirmwareCode)
          : err instanceof StreetboxError && err.code === 'E_NOT_FOUND'
            ? 'E_FW_TARGET'
            : 'E_FW_TRANSFER';
      this.env.log.warn({ err, deployment: this.d.id, device }, 'firmware: job failed');
      await this.leaveBootloader();
      // the version a device reported before it failed (a lying node, a failed probe) goes on record
      this.advance('failed', { code, reason: errorMessage(err), ...(this.job.versionAfter !== null ? { versionAfter: this.job.versionAfter } : {}) });
    }
    await this.restoreLight();
  }

  /** A parked job (no runner) ends: a device mid-transfer is told to leave its bootloader, a light driven back. */
  private async endParked(as: { stage: 'failed' | 'cancelled'; code: FirmwareCode; reason: string }): Promise<void> {
    const modbus = this.env.modbus;
    const fw = modbusFirmware(this.env, this.job.device);
    // a fuota node is no longer addressed by its session (it keeps its old firmware)
    if (this.job.method === 'fuota') this.env.fuota?.end(this.d.id, this.job.wave, this.job.device, { code: as.code, reason: as.reason });
    if (modbus && fw && (this.job.stage === 'transferring' || this.job.stage === 'activating')) {
      try {
        // the abort needs no image: a placeholder stands for it
        this.updater = createModbusUpdater({ firmware: fw.decl, versionPoint: fw.versionPoint, io: modbus.firmwareIo(this.job.device), image: Buffer.alloc(2, 0xff) });
        this.entered = true;
        await this.leaveBootloader();
      } catch (err) {
        this.env.log.warn({ err, device: this.job.device }, 'firmware: the device was not told to leave its bootloader');
      }
    }
    this.advance(as.stage, { code: as.code, reason: as.reason });
    await this.restoreLight();
  }

  /**
   * A job ending before its commit: the device is told to leave its bootloader (the profile's
   * `abort`), so it runs its old firmware as before. Best effort, bounded: a device that does not
   * answer keeps its state, and the next deployment enters its bootloader again.
   */
  private async leaveBootloader(): Promise<void> {
    const u = this.updater;
    if (!u || !this.entered) return;
    this.entered = false;
    try {
      const left = await Promise.race([u.abort(), new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), ABORT_WAIT_MS).unref())]);
      if (left === true) this.env.log.info({ device: this.job.device }, 'firmware: the device left its bootloader');
      else if (left === 'late') this.env.log.warn({ device: this.job.device }, 'firmware: the device did not confirm leaving its bootloader in time');
    } catch (err) {
      this.env.log.warn({ err, device: this.job.device }, 'firmware: the device did not leave its bootloader');
    }
  }

  private async restoreLight(): Promise<void> {
    try {
      const o = await this.env.control?.reassert(this.job.device, `firmware ${this.job.stage}`);
      if (o && o.status !== 'verified') this.env.log.warn({ device: this.job.device, reason: o.reason }, 'firmware: light not driven back to its wanted level');
    } catch (err) {
      this.env.log.warn({ err, device: this.job.device }, 'firmware: light not driven back to its wanted level');
    }
  }

  // ---------------------------------------------------------------------------- a Modbus device

  private async runDevice(): Promise<void> {
    const { env } = this;
    const modbus = env.modbus;
    if (!modbus) throw new FirmwareError('E_FW_TARGET', 'the Modbus driver is not running');
    const devCfg = env.ctx.config.devices.find((x) => x.id === this.job.device);
    const profile = devCfg ? env.profiles.get(devCfg.profile) : undefined;
    const fw = modbusFirmware(env, this.job.device);
    if (!devCfg || !profile || !fw) throw new FirmwareError('E_FW_TARGET', `device "${this.job.device}" or its update method is no longer in devices.yaml`);
    const versionCode = this.d.artifact.versionCode!;
    const image = await this.fetchImage();
    const updater = createModbusUpdater({ firmware: fw.decl, versionPoint: fw.versionPoint, io: modbus.firmwareIo(this.job.device), image });
    this.updater = updater;
    // resumed mid-transfer or before the commit: the device may hold a partial image
    this.entered = this.job.stage === 'transferring' || this.job.stage === 'activating';
    if (this.job.stage === 'fetching') {
      this.check();
      const before = await this.withAbort(updater.readVersion());
      if (before === versionCode) {
        // already runs this image: nothing to send or reboot, the probe decides
        this.advance('verifying', { blocksTotal: updater.blocks, versionBefore: before, reason: 'already runs this version: no transfer' });
      } else {
        this.advance('transferring', { blocksTotal: updater.blocks, versionBefore: before });
      }
    }
    if (this.job.stage === 'transferring') {
      // (re)entering the transfer puts the device in its bootloader: only when the gates let it now
      await this.untilGatesOpen();
      await this.transfer(updater);
      // all blocks in: the activation (the reboot) takes the device out of service, so the gates are asked again
      await this.untilGatesOpen();
      this.advance('activating');
    }
    if (this.job.stage === 'activating') {
      const rebootMs = (fw.decl.rebootS ?? 30) * 1000;
      // after a restart the commit may have gone out already: wait for the device to answer (it may be
      // rebooting); one that runs the new version is past it
      const now = await this.versionWithin(updater, this.job.attempts > 0 || this.resumed ? rebootMs : 0);
      if (now !== versionCode) {
        // an image being sent again (below) when the gateway stopped: the rest of it first
        if (this.job.blocksAcked < updater.blocks) await this.transfer(updater);
        await this.checkOrResend(updater);
        this.check();
        await this.commitOnce(updater, versionCode);
      } else {
        this.entered = false;
      }
      this.advance('verifying');
    }
    if (this.job.stage === 'verifying') {
      await this.verify(updater, versionCode, (fw.decl.rebootS ?? 30) * 1000, devCfg.id, profile);
    }
  }

  // ---------------------------------------------------------------------------- a LoRaWAN node (FUOTA)

  private async runFuota(): Promise<void> {
    const { env } = this;
    const coordinator = env.fuota;
    if (!coordinator) throw new FirmwareError('E_FW_TARGET', 'the LoRaWAN driver is not running: FUOTA cannot reach the node');
    const versionCode = this.d.artifact.versionCode!;
    const image = await this.fetchImage();
    if (this.job.stage === 'fetching') {
      this.check();
      this.advance('transferring');
    }
    this.check();
    this.fuota = coordinator.join({ deployment: this.d.id, wave: this.job.wave, image, member: this.fuotaMember(versionCode) }, versionCode);
    const outcome = await this.withAbort(this.fuota.outcome);
    this.fuota = null;
    if (outcome.stage === 'failed') {
      if (outcome.versionAfter !== undefined) this.job = { ...this.job, versionAfter: outcome.versionAfter };
      throw new FirmwareError(outcome.code, outcome.reason);
    }
    const probe = await this.loraProbe(outcome.versionAfter);
    this.advance('confirmed', { versionAfter: outcome.versionAfter, reason: probe === null ? outcome.reason : `${outcome.reason}; probe: ${probe}` });
    if (probe === null) await this.restoreLight();
  }

  /**
   * A LoRaWAN light's functional probe once it reports its new version, as a controller's
   * (probe.ts): it is driven to its wanted level (the control plane's reassert: a confirmed
   * downlink) and must acknowledge it, PROBE_ATTEMPTS times at most. The detail once it did; null
   * for a node that is no light or without a control plane (its version decides); throws
   * E_FW_PROBE with the version it runs when it never did.
   */
  private async loraProbe(version: number): Promise<string | null> {
    const device = this.job.device;
    let reason = '';
    for (let attempt = 1; attempt <= PROBE_ATTEMPTS; attempt++) {
      this.check();
      const asserted = this.env.control?.reassert(device, 'firmware probe');
      if (!asserted) return null;
      const o = await this.withAbort(asserted);
      if (o.status === 'verified') return `took its wanted level ${o.level} % and acknowledged it`;
      reason = o.reason ?? o.status;
      await this.sleep(1000);
    }
    this.job = { ...this.job, versionAfter: version };
    throw new FirmwareError('E_FW_PROBE', `runs version ${version}, but the functional probe failed: it did not take its wanted level: ${reason}`);
  }

  /** The node as its session sees it: each step it reports is journaled here. */
  private fuotaMember(versionCode: number): FuotaMember {
    const { env, d } = this;
    const device = this.job.device;
    return {
      device,
      versionCode,
      versionBefore: (version) => {
        env.journal.patchJob(d.id, device, { versionBefore: version });
        this.job = { ...this.job, versionBefore: version };
      },
      progress: (fragments, _of, bytes) => {
        env.journal.progress(d.id, device, fragments, bytes);
        this.job = { ...this.job, blocksAcked: Math.max(this.job.blocksAcked, fragments), bytesAcked: Math.max(this.job.bytesAcked, bytes) };
        env.progressed(d, 0, 0);
      },
      // a session taken up again tells the stage its node is at: journaled once
      advanced: (stage) => {
        if (this.job.stage !== stage) this.advance(stage);
      },
      mayReboot: () => {
        const v = env.mayProceed(d, this.job);
        if (v.ok || v.retryAt === undefined) return v;
        return { ok: false, waiting: v.waiting, retryInMs: v.retryAt - env.ctx.clock.now() };
      },
      waiting: (waiting) => {
        if (waiting === this.job.waiting) return;
        if (waiting === null) env.journal.patchJob(d.id, device, { waiting: null });
        else env.waiting(d, this.job, waiting);
        this.job = { ...this.job, waiting };
      },
    };
  }

  /** A fuota runner that stops leaves its node's session: for now (stop, pause), or for good. */
  private leaveSession(why: AbortReason): void {
    const handle = this.fuota;
    if (!handle) return;
    this.fuota = null;
    if (why === 'stop' || why === 'pause') handle.leave('suspend');
    else {
      const code: FirmwareCode = why === 'cancel' ? (this.cancelAs?.code ?? 'E_FW_CANCELLED') : why === 'expired' ? 'E_FW_EXPIRED' : 'E_FW_TIMEOUT';
      handle.leave('end', { code, reason: this.cancelAs?.reason ?? `the job ended: ${why}` });
    }
  }

  /** A device's job from pending: fetching, then the deployment's image (fetched once for all its jobs, checked). */
  private async fetchImage(): Promise<Buffer> {
    if (this.job.stage === 'pending') {
      this.check();
      this.advance('fetching');
    }
    return this.withAbort(this.env.image(this.d)).catch((err: unknown) => {
      if (err instanceof Aborted) throw err;
      throw artifactError(err, `artifact ${this.d.artifact.name} ${this.d.artifact.version}`);
    });
  }

  /** Waits while a gate is closed (window, hold, caps of the time of day); a paused or ended deployment stops the runner. */
  private async untilGatesOpen(): Promise<void> {
    let waited = false;
    for (;;) {
      this.check();
      const v = this.env.mayProceed(this.d, this.job);
      if (v.ok) break;
      waited = true;
      this.env.waiting(this.d, this.job, v.waiting);
      this.job = { ...this.job, waiting: v.waiting };
      if (v.waiting.startsWith('deployment ')) throw new Aborted('pause');
      await this.sleep(GATE_RETRY_MS);
    }
    // the time spent waiting for a gate is not the stage's: its timeout counts from now
    if (waited) this.job = this.env.journal.advance(this.d.id, this.job.device, this.job.stage, { waiting: null }, this.env.ctx.clock.now());
  }

  /**
   * The image check before the commit. A device whose checksum differs lost what it had
   * acknowledged (a power cut of the controller while the gateway waited, say): the image goes
   * again from block 0, once per job, and is checked again; a second difference fails the job.
   */
  private async checkOrResend(updater: DeviceUpdater): Promise<void> {
    try {
      await this.retrying('size and checksum', () => updater.checkImage());
      return;
    } catch (err) {
      if (!(err instanceof FirmwareError && err.code === 'E_FW_VERIFY') || this.job.reason?.startsWith(RESENT) === true) throw err;
      const reason = `${RESENT}: ${errorMessage(err)}`;
      this.env.log.warn({ device: this.job.device, err }, 'firmware: the device lost the image it had acknowledged: sending it again from block 0');
      this.env.journal.restartTransfer(this.d.id, this.job.device, reason);
      this.job = { ...this.job, blocksAcked: 0, bytesAcked: 0, reason };
    }
    await this.transfer(updater);
    await this.retrying('size and checksum', () => updater.checkImage());
  }

  /**
   * The commit, sent once: a refusal is final (the device keeps its bootloader and is told to
   * leave it); silence is not (the commit may have gone in and the device be rebooting). A device
   * that answers at once with its old version did not get the request: it is sent once more.
   */
  private async commitOnce(updater: DeviceUpdater, versionCode: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.withAbort(updater.commit());
        this.entered = false;
        return;
      } catch (err) {
        if (err instanceof Aborted) throw err;
        if (err instanceof FirmwareError && err.code === 'E_FW_EXCEPTION') throw err;
        this.env.log.warn({ err, device: this.job.device, attempt }, 'firmware: the commit was not answered');
      }
      const v = await this.withAbort(updater.readVersion());
      if (v === null || v === versionCode || attempt >= 2) {
        // rebooting, or rebooted: the version after the reboot decides
        this.entered = false;
        return;
      }
    }
  }

  /** The version, waiting up to `ms` for a device that does not answer (rebooting). */
  private async versionWithin(updater: DeviceUpdater, ms: number): Promise<number | null> {
    const until = this.env.ctx.clock.now() + ms;
    for (;;) {
      this.check();
      const v = await this.withAbort(updater.readVersion());
      if (v !== null || this.env.ctx.clock.now() >= until) return v;
      await this.sleep(VERIFY_POLL_MS);
    }
  }

  private async transfer(updater: DeviceUpdater): Promise<void> {
    const { env } = this;
    const blockBytes = updater.blockBytes;
    const size = this.d.artifact.size;
    this.check();
    this.entered = true;
    await this.retrying('prepare', () => updater.prepare());
    for (let i = this.job.blocksAcked; i < updater.blocks; i++) {
      this.check();
      await this.retrying(`block ${i}`, () => updater.sendBlock(i));
      const bytes = Math.min(size, (i + 1) * blockBytes);
      env.journal.progress(this.d.id, this.job.device, i + 1, bytes);
      this.job = { ...this.job, blocksAcked: i + 1, bytesAcked: bytes };
      env.progressed(this.d, 1, Math.min(blockBytes, size - i * blockBytes));
    }
  }

  /** A step with the gateway's retries (firmware.retries) for what may pass: silence, a busy device. */
  private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const retries = this.env.ctx.config.firmware.retries;
    for (let attempt = 1; ; attempt++) {
      this.check();
      try {
        return await this.withAbort(fn());
      } catch (err) {
        if (err instanceof Aborted) throw err;
        const code = err instanceof StreetboxError ? err.code : undefined;
        // a wrong read-back or checksum is not a hiccup: the image on the device differs
        if (code === 'E_FW_VERIFY' || attempt >= retries) throw err;
        this.env.log.debug({ err, device: this.job.device, what, attempt }, 'firmware: step retried');
        this.env.journal.patchJob(this.d.id, this.job.device, { attempts: attempt });
        await this.sleep(backoffDelay(attempt - 1, 200, 5000));
      }
    }
  }

  private async verify(updater: DeviceUpdater, versionCode: number, rebootMs: number, device: string, profile: NonNullable<ReturnType<ProfileRegistry['get']>>): Promise<void> {
    const { env } = this;
    const started = env.ctx.clock.now();
    let silent = false;
    let version: number | null = null;
    // wait for the reboot: the device goes silent, then answers with a version
    for (;;) {
      this.check();
      version = await this.withAbort(updater.readVersion());
      if (version === null) silent = true;
      else if (version === versionCode) break;
      else if (silent || env.ctx.clock.now() - started > rebootMs) {
        throw new FirmwareError('E_FW_VERIFY', `after its reboot the device reports version ${version}, not ${versionCode}: it took the commit but runs its old firmware`);
      }
      if (env.ctx.clock.now() - started > rebootMs + env.ctx.config.firmware.timeouts.verify) {
        throw new FirmwareError('E_FW_TIMEOUT', `the device did not answer with a version within ${Math.round((rebootMs + env.ctx.config.firmware.timeouts.verify) / 1000)} s of its commit`);
      }
      await this.sleep(VERIFY_POLL_MS);
    }
    let reason = '';
    for (let attempt = 1; attempt <= PROBE_ATTEMPTS; attempt++) {
      this.check();
      const wanted = env.control?.wanted(device)?.level ?? null;
      const r = await this.withAbort(functionalProbe(env.modbus!, device, profile, wanted));
      if (r.ok) {
        this.advance('confirmed', { versionAfter: version, reason: `version ${version}; probe: ${r.detail}` });
        await this.restoreLight();
        return;
      }
      reason = r.reason;
      await this.sleep(1000);
    }
    this.job = { ...this.job, versionAfter: version };
    throw new FirmwareError('E_FW_PROBE', `runs version ${version}, but the functional probe failed: ${reason}`);
  }

  private withAbort<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const wake = () => reject(new Aborted(this.why ?? 'stop'));
      if (this.why !== null) return wake();
      this.wakers.add(wake);
      p.then(resolve, reject).finally(() => this.wakers.delete(wake));
    });
  }

  // ---------------------------------------------------------------------------- the gateway itself

  private async runGateway(): Promise<void> {
    const { env } = this;
    const su = env.selfUpdate;
    if (!su) throw new FirmwareError('E_FW_TARGET', 'this gateway does not update itself (firmware.selfUpdate.releases is not set)');
    const version = this.d.artifact.version;
    if (this.job.stage === 'pending') {
      this.check();
      this.advance('fetching');
    }
    if (this.job.stage === 'fetching') {
      await this.withAbort(env.artifactReady(this.d)).catch((err: unknown) => {
        if (err instanceof Aborted) throw err;
        throw artifactError(err, `release ${version}`);
      });
      this.advance('transferring', { blocksTotal: 1, versionBefore: su.runningVersion });
    }
    if (this.job.stage === 'transferring') {
      this.check();
      await this.withAbort(su.install(env.artifactPath(this.d), version));
      env.journal.progress(this.d.id, this.job.device, 1, this.d.artifact.size);
      // the restart must not land in a controller's activation: the gates (no other job busy) again
      await this.untilGatesOpen();
      this.advance('activating');
      su.activate(this.d.id, version);
      if (!env.requestRestart(`release ${version} switched in by deployment ${this.d.id}`)) {
        // nothing will start the new release: the switch is undone at once
        su.undoSwitch('no service manager restarts this process');
        throw new FirmwareError('E_FW_TARGET', `release ${version} was installed, but nothing restarts this process (run it under systemd with the launcher)`);
      }
      return;
    }
    if (this.job.stage === 'activating') {
      // the switch was made but this process is not the new release: the marker was lost or the switch not made
      if (su.runningVersion === version) this.advance('verifying');
      else throw new FirmwareError('E_FW_INTERRUPTED', `the switch to release ${version} did not happen (this is release ${su.runningVersion})`);
    }
    if (this.job.stage === 'verifying') {
      // the deadline boot() read: never later than the launcher's own
      const deadline = env.selfUpdateDeadline() ?? env.ctx.clock.now() + env.ctx.config.firmware.selfUpdate.healthTimeout;
      let healthySince: number | null = null;
      let last = 'not checked yet';
      while (env.ctx.clock.now() < deadline) {
        this.check();
        const h = env.health();
        if (h.ok) {
          healthySince ??= env.ctx.clock.now();
          if (env.ctx.clock.now() - healthySince >= HEALTH_STABLE_MS) {
            su.confirm();
            this.advance('confirmed', { versionAfter: version, reason: `release ${version} healthy` });
            su.clearOutcome();
            try {
              const removed = su.gc(2);
              if (removed.length > 0) env.log.info({ removed }, 'firmware: old releases removed');
            } catch (err) {
              env.log.warn({ err }, 'firmware: old releases not removed');
            }
            return;
          }
        } else {
          healthySince = null;
          last = h.reason;
        }
        await this.sleep(500);
      }
      const reason = `release ${version} did not report healthy within ${Math.round(env.ctx.config.firmware.selfUpdate.healthTimeout / 1000)} s: ${last}`;
      // the switch back first (it writes the outcome): a kill after it still ends rolled back
      su.switchBack(reason);
      this.advance('rolledBack', { code: 'E_FW_ROLLED_BACK', reason });
      su.clearOutcome();
      env.requestRestart(`switched back from release ${version}`);
    }
  }
}

/** A device's Modbus update method, or null (none, or FUOTA). */
function modbusFirmware(env: Pick<JobEnv, 'ctx' | 'profiles'>, device: string): Extract<DeviceFirmware, { versionPoint: unknown }> | null {
  const devCfg = env.ctx.config.devices.find((x) => x.id === device);
  const fw = firmwareOf(devCfg ? env.profiles.get(devCfg.profile) : undefined);
  return fw !== null && fw.method !== 'fuota' ? fw : null;
}

/** A fetch failure as the job's error: a FirmwareError keeps its code (quota, timeout), anything else is E_FW_ARTIFACT. */
function artifactError(err: unknown, what: string): FirmwareError {
  if (err instanceof FirmwareError && err.code.startsWith('E_FW_')) return new FirmwareError(err.code, `${what}: ${err.message}`, { cause: err });
  return new FirmwareError('E_FW_ARTIFACT', `${what}: ${errorMessage(err)}`, { cause: err });
}
