/**
 * The FUOTA coordinator, held by the firmware engine (issue 18 Deliver 4–5): one session per
 * deployment, wave and turn. A fuota job's runner joins with its node; the session starts when every
 * fuota job of the wave not yet final has joined, or GATHER_MS (radio clock) after the first did. A
 * node whose job joins once its wave's session is under way gets the next turn (a session of its
 * own, as do the nodes of another TS004 version than their session's). After a restart (or a pause)
 * the journaled session is loaded again when its nodes' jobs come back, and goes on where it was.
 *
 * It listens to FPorts 200–203 once and hands each uplink to the session its node is in, holds
 * what the sessions share (the sub-bands' pacers: one multicast at a time per sub-band; the nodes
 * whose reboot waits), and gives the engine the stage timeouts of fuota jobs, from the session's
 * plan, on the gateway's clock (the radio's runs simulate.radioTimeScale times faster).
 */
import type { Clock } from '../../../clock.js';
import { fuotaSchema } from '../../../config/lorawanRadio.js';
import type { Config } from '../../../config/schema.js';
import { APP_FPORTS } from '../../../drivers/lorawan/app/index.js';
import { EU868_RX2_DR, rx1DataRate } from '../../../drivers/lorawan/region/eu868.js';
import type { Logger } from '../../../log.js';
import type { MetricSample } from '../../../metrics.js';
import { errorMessage } from '../../../errors.js';
import type { Store } from '../../../store/index.js';
import type { FirmwareCode, JobRecord } from '../../records.js';
import { errorCode, RebootWaits } from './core.js';
import { FINAL_NODE_STEPS, type FuotaJournal, type SessionRecord } from './journal.js';
import { FuotaEvents, FuotaMetrics } from './metrics.js';
import { SubBandPacers } from './pacer.js';
import { SETUP_STEPS } from './planner.js';
import { FuotaSession, newSessionRecord } from './session.js';
import type { FuotaMember, FuotaRadio, FuotaSettings, NodeOutcome } from './types.js';

/** how long a new session waits for the rest of its wave's nodes after the first joined (radio clock) */
export const GATHER_MS = 2000;

export interface CoordinatorOptions {
  config: () => Pick<Config, 'lorawan' | 'firmware' | 'devices' | 'simulate'>;
  store: Store;
  log: Logger;
  /** the gateway's clock (jobs' stage times); the radio's is radio.clock */
  clock: Clock;
  radio: FuotaRadio;
  journal: FuotaJournal;
  /** the devices of the wave's fuota jobs not yet final (the firmware journal) */
  expected(deployment: string, wave: number): string[];
  /** tests: settings over the configuration's */
  settings?: Partial<FuotaSettings>;
}

export interface SessionJoin {
  deployment: string;
  wave: number;
  image: Buffer;
  member: FuotaMember;
}

/** A node in its session: its outcome, and how its runner leaves (suspend: taken up again when it comes back; end: its job ended). */
export interface FuotaHandle {
  outcome: Promise<NodeOutcome>;
  leave(how: 'suspend' | 'end', reason?: { code: FirmwareCode; reason: string }): void;
}

interface Joined {
  deployment: string;
  wave: number;
  member: FuotaMember;
  resolve: (o: NodeOutcome) => void;
}

/** Nodes waiting for their session to start: a new one, or a journaled one being resumed. */
interface Gathering {
  deployment: string;
  wave: number;
  image: Buffer;
  versionCode: number;
  /** the journaled session resumed; null: a new one */
  resumes: SessionRecord | null;
  expected: Set<string>;
  joined: Map<string, Joined>;
  cancel: (() => void) | null;
}

export class FuotaCoordinator {
  private readonly log: Logger;
  private readonly metricsOf = new FuotaMetrics();
  private readonly events: FuotaEvents;
  private readonly sessions = new Set<FuotaSession>();
  private readonly gatherings = new Set<Gathering>();
  /** each member's node and where it is (its session, or a gathering) */
  private readonly members = new Map<string, Joined>();
  private unsubscribe: (() => void)[] = [];
  private readonly pacers: SubBandPacers;
  private readonly rebootWaits = new RebootWaits();

  constructor(private readonly o: CoordinatorOptions) {
    this.log = o.log.child({ module: 'fuota' });
    this.events = new FuotaEvents({ store: o.store }, this.log);
    this.pacers = new SubBandPacers(o.radio);
  }

  start(): void {
    if (this.unsubscribe.length > 0) return;
    // TS003 (202): the driver answers AppTimeReq itself; a session hears it after a forced resync
    this.unsubscribe = APP_FPORTS.map((port) =>
      this.o.radio.onAppUplink(port, (u) => {
        for (const s of this.sessions) s.deliver(u);
      }),
    );
  }

  /** Stops every session at its next step (their state is journaled) and listens no more. */
  stop(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    for (const g of this.gatherings) g.cancel?.();
    this.gatherings.clear();
    for (const s of this.sessions) s.stop();
    this.sessions.clear();
    this.members.clear();
  }

  /** A fuota job's node joins its wave's session (a journaled one it was in, else the one gathering, else a new one). */
  join(req: SessionJoin, versionCode: number): FuotaHandle {
    const device = req.member.device;
    let resolve!: (o: NodeOutcome) => void;
    const outcome = new Promise<NodeOutcome>((res) => (resolve = res));
    const joined: Joined = { deployment: req.deployment, wave: req.wave, member: req.member, resolve };
    this.members.set(device, joined);
    const live = this.sessionsOf(req.deployment, req.wave, device).find((s) => !s.stopped);
    if (live) this.attach(live, joined);
    else this.gather(req, versionCode, joined);
    return { outcome, leave: (how, reason) => this.leave(device, joined, how, reason) };
  }

  /**
   * A fuota job that ends without its runner in a session (cancelled, expired while parked): its
   * node is no longer addressed, failed in the journaled session it was in (which ends once all its
   * nodes have).
   */
  end(deployment: string, wave: number, device: string, reason: { code: FirmwareCode; reason: string }): void {
    for (const s of this.sessionsOf(deployment, wave, device)) s.detach(device, 'end', reason);
    for (const s of this.o.journal.openSessions(deployment, wave)) {
      const nodes = this.o.journal.nodes(s.id);
      const node = nodes.find((n) => n.device === device && !FINAL_NODE_STEPS.includes(n.step));
      if (!node || [...this.sessions].some((x) => x.id === s.id)) continue;
      this.o.journal.patchNode(s.id, device, { step: 'failed', code: reason.code, reason: reason.reason });
      if (nodes.every((n) => n === node || FINAL_NODE_STEPS.includes(n.step))) this.o.journal.endSession(s.id, this.o.radio.clock.now());
    }
  }

  /**
   * A fuota job's stage timeout on the gateway's clock (engine.stageTimeout: from job.stageAt),
   * derived from its session's plan. The session's deadline and settings are radio time: what is
   * left of them is divided by radioTimeScale and added to the time the stage has run so far.
   */
  stageTimeout(job: Pick<JobRecord, 'deployment' | 'wave' | 'device' | 'stage' | 'stageAt'>): number {
    const st = this.settings();
    const gateway = (radioMs: number) => radioMs / st.radioTimeScale;
    // the session fails a node by its own bounds first, with the reason; this is the engine's backstop
    const grace = st.answerTimeoutMs;
    switch (job.stage) {
      case 'transferring': {
        const [session] = this.sessionsOf(job.deployment, job.wave, job.device);
        const deadline = session?.planDeadline ?? null;
        if (deadline === null) return gateway(st.gatherMs + SETUP_STEPS * st.answerTimeoutMs + grace);
        const sofar = Math.max(0, this.o.clock.now() - job.stageAt);
        return sofar + gateway(Math.max(0, deadline - this.o.radio.clock.now()) + grace);
      }
      case 'activating':
        return gateway(st.answerTimeoutMs + st.rebootDelayMs + grace);
      case 'verifying':
        // the runner's functional probe (a command to the light, answered) comes after the version
        return gateway(st.rebootDelayMs + st.verifyTimeoutMs + st.answerTimeoutMs + grace);
      default:
        return Number.POSITIVE_INFINITY;
    }
  }

  /** A job ended somewhere (a reboot slot, a cap may have room): the nodes whose reboot waits ask their gates again. */
  wakeReboots(): void {
    this.rebootWaits.wake();
  }

  metrics(): MetricSample[] {
    return this.metricsOf.samples();
  }

  // ------------------------------------------------------------------------------------ inside

  private settings(): FuotaSettings {
    const c = this.o.config();
    // a gateway without a lorawan section runs no driver and so no session; its defaults all the same
    const f = c.lorawan?.fuota ?? fuotaSchema.parse({});
    return {
      dr: f.dr,
      frequency: f.frequency,
      fragmentation: f.fragmentation,
      minRedundancy: f.minRedundancy,
      answerTimeoutMs: f.answerTimeout,
      rebootDelayMs: f.rebootDelay,
      mcGroupId: f.mcGroupId,
      // a session's own nodes decide it (repairDrOf); RX2 until they are known
      repairDr: c.lorawan?.rx2Dr ?? EU868_RX2_DR,
      // a class A node answers after its next uplink: never less than answerTimeout
      verifyTimeoutMs: Math.max(c.firmware.timeouts.verify, f.answerTimeout),
      gatherMs: GATHER_MS,
      radioTimeScale: typeof c.simulate === 'object' ? c.simulate.radioTimeScale : 1,
      ...this.o.settings,
    };
  }

  private gather(req: SessionJoin, versionCode: number, joined: Joined): void {
    const device = req.member.device;
    let g = [...this.gatherings].find((x) => x.deployment === req.deployment && x.wave === req.wave && x.expected.has(device));
    if (!g) {
      const journaled = this.o.journal.openSessions(req.deployment, req.wave).find((s) => this.o.journal.nodes(s.id).some((n) => n.device === device && !FINAL_NODE_STEPS.includes(n.step)));
      g = journaled ? this.resumeGathering(req, versionCode, journaled) : this.newGathering(req, versionCode);
    }
    g.joined.set(device, joined);
    g.expected.add(device);
    if ([...g.expected].every((d) => g.joined.has(d))) this.begin(g);
    else if (g.cancel === null) {
      const wait = new Promise<void>((res) => {
        const t = this.o.radio.clock.setTimeout(res, this.settings().gatherMs);
        t.unref?.();
        g.cancel = () => {
          this.o.radio.clock.clearTimeout(t);
          res();
        };
      });
      void wait.then(() => this.begin(g));
    }
  }

  private newGathering(req: SessionJoin, versionCode: number): Gathering {
    // nodes of journaled sessions resume there; nodes of sessions running now are in them
    const elsewhere = new Set<string>();
    for (const s of this.o.journal.openSessions(req.deployment, req.wave)) for (const n of this.o.journal.nodes(s.id)) if (!FINAL_NODE_STEPS.includes(n.step)) elsewhere.add(n.device);
    const expected = new Set(this.o.expected(req.deployment, req.wave).filter((d) => !elsewhere.has(d)));
    return this.addGathering({ deployment: req.deployment, wave: req.wave, image: req.image, versionCode, resumes: null, expected, joined: new Map(), cancel: null });
  }

  private resumeGathering(req: SessionJoin, versionCode: number, s: SessionRecord): Gathering {
    const expected = new Set(this.o.journal.nodes(s.id).filter((n) => !FINAL_NODE_STEPS.includes(n.step)).map((n) => n.device));
    return this.addGathering({ deployment: req.deployment, wave: req.wave, image: req.image, versionCode, resumes: s, expected, joined: new Map(), cancel: null });
  }

  private addGathering(g: Gathering): Gathering {
    this.gatherings.add(g);
    return g;
  }

  /**
   * The session of a gathering starts (once): journaled when new, loaded when resumed. One that
   * cannot (the journal refuses: a full disk) fails its joined nodes' jobs with the reason, never
   * leaves them waiting.
   */
  private begin(g: Gathering): void {
    if (!this.gatherings.delete(g)) return;
    g.cancel?.();
    if (g.joined.size === 0) return;
    try {
      this.startSession(g);
    } catch (err) {
      this.log.error({ err, deployment: g.deployment, wave: g.wave }, 'fuota: session did not start');
      for (const [device, j] of g.joined) {
        if (this.members.get(device) === j) this.members.delete(device);
        j.resolve({ stage: 'failed', code: errorCode(err), reason: `its FUOTA session did not start: ${errorMessage(err)}` });
      }
    }
  }

  private startSession(g: Gathering): void {
    const now = this.o.radio.clock.now();
    let record = g.resumes;
    if (record === null) {
      record = newSessionRecord(this.o.journal.turns(g.deployment, g.wave), g.deployment, g.wave, now);
      this.o.journal.addSession(record, [...g.joined.keys()]);
      this.metricsOf.sessions++;
    }
    const session = new FuotaSession(this.sessionDeps(g), record, this.o.journal.nodes(record.id), g.image, g.versionCode, g.resumes !== null);
    this.sessions.add(session);
    for (const j of g.joined.values()) this.attach(session, j);
    this.log.info({ session: session.id, nodes: g.joined.size, resumed: g.resumes !== null }, 'fuota: session starts');
    void session.start().finally(() => this.sessions.delete(session));
  }

  /**
   * The slowest data rate a unicast repair fragment of these nodes takes, which caps the fragment
   * size: a class C node's RX2 (lorawan.rx2Dr); a class A node's RX1 (its last uplink's data rate
   * − rx1DrOffset) or RX2, whichever is faster (the sender tries RX1 first).
   */
  private repairDrOf(devices: readonly string[]): number {
    const c = this.o.config().lorawan;
    const rx2 = c?.rx2Dr ?? EU868_RX2_DR;
    const byId = new Map(this.o.radio.status().devices.map((d) => [d.id, d]));
    const drs = devices.map((id) => {
      const d = byId.get(id);
      return !d || d.class === 'C' || d.dr === null ? rx2 : Math.max(rx2, rx1DataRate(d.dr, c?.rx1DrOffset ?? 0));
    });
    return drs.length > 0 ? Math.min(...drs) : rx2;
  }

  private sessionDeps(g: Gathering): ConstructorParameters<typeof FuotaSession>[0] {
    return {
      radio: this.o.radio,
      journal: this.o.journal,
      settings: { ...this.settings(), repairDr: this.o.settings?.repairDr ?? this.repairDrOf([...g.joined.keys()]) },
      metrics: this.metricsOf,
      events: this.events,
      log: this.log,
      groupLoss: (device) => this.groupLoss(device),
      pacers: this.pacers,
      rebootWaits: this.rebootWaits,
      deadlineOf: (id) => [...this.sessions].find((s) => s.id === id)?.planDeadline ?? null,
      handOver: (members) => {
        // a session of their own, at once: every one of them has joined
        const next: Gathering = { deployment: g.deployment, wave: g.wave, image: g.image, versionCode: g.versionCode, resumes: null, expected: new Set(), joined: new Map(), cancel: null };
        for (const m of members) {
          const j = this.members.get(m.device);
          if (!j) continue;
          next.expected.add(m.device);
          next.joined.set(m.device, j);
        }
        this.gatherings.add(next);
        this.begin(next);
      },
    };
  }

  private attach(session: FuotaSession, j: Joined): void {
    void session.attach(j.member).then((o) => {
      if (this.members.get(j.member.device) === j) this.members.delete(j.member.device);
      j.resolve(o);
    });
  }

  private leave(device: string, j: Joined, how: 'suspend' | 'end', reason?: { code: FirmwareCode; reason: string }): void {
    if (this.members.get(device) === j) this.members.delete(device);
    for (const g of this.gatherings) {
      if (g.joined.get(device) !== j) continue;
      g.joined.delete(device);
      if (g.joined.size === 0) {
        g.cancel?.();
        this.gatherings.delete(g);
      }
    }
    for (const s of this.sessionsOf(j.deployment, j.wave, device)) s.detach(device, how, reason);
  }

  /** The sessions in memory of a deployment's wave that hold `device`. */
  private sessionsOf(deployment: string, wave: number, device: string): FuotaSession[] {
    return [...this.sessions].filter((s) => s.deployment === deployment && s.wave === wave && s.has(device));
  }

  /** The mean loss observed of the members of a device's groups (one query), null when none was observed. */
  private groupLoss(device: string): number | null {
    const devices = this.o.config().devices;
    const groups = devices.find((d) => d.id === device)?.groups ?? [];
    if (groups.length === 0) return null;
    const members = devices.filter((d) => d.groups.some((g) => groups.includes(g))).map((d) => d.id);
    const losses = [...this.o.journal.losses(members).values()];
    return losses.length === 0 ? null : losses.reduce((a, b) => a + b, 0) / losses.length;
  }
}
