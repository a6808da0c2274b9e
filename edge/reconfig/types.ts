/**
 * Configuration as a transaction (issue 16, DESIGN.md "Fleet operations"): the contracts between
 * the parts. A change of devices.yaml comes through one of three doors (central on
 * `streetbox/<gw>/down/config`, a technician's `PUT /api/v1/config` / `streetbox config apply`,
 * an edit on disk followed by SIGHUP / `streetbox reload`) and goes one road
 * (edge/reconfig/manager.ts):
 *
 *   validate (validate.ts) → record a version (versions.ts, stage `staged` or `rejected`)
 *   → plan what it touches (plan.ts) → write the file atomically (atomicFile.ts)
 *   → apply to the touched components only (applier.ts) → stage `applied`
 *   → health probe within confirmTimeout, or a technician's manual confirm (commit-confirm)
 *   → `confirmed`, or the previous version restored the same way → `rolledBack` with the reason.
 *
 * Statuses only move forward; every stage is a typed event (`config.<stage>`) with its principal,
 * and a report on `streetbox/<gw>/up/config/<id>` (kept in the store's outbox until delivered).
 */
import type { Config } from '../config/schema.js';
import type { ConfigChangeRequest, ConfigProblem, ConfigSource, ConfigStageReport, ConfigVersion } from './records.js';

export * from './records.js';

/**
 * What a configuration change touches, component by component (plan.ts): the applier restarts
 * exactly these and nothing else. Computed from the declared configs (as parsed from the texts),
 * never from the running objects (the simulators re-point bus ports in those).
 */
export interface ChangePlan {
  /** nothing that the gateway runs differs (comments, key order, an equal value) */
  empty: boolean;
  /** the top-level sections whose value differs */
  sections: string[];
  /**
   * Differences the running gateway cannot take without a restart of the process (enabling or
   * disabling a whole component, Node-RED settings, storage settings), each in words. Non-empty:
   * the change is refused (E_CONFIG_RESTART); the technician edits the file and restarts the service.
   */
  needsRestart: string[];
  /** Modbus bus ids to rewire: added, removed, changed, or whose devices or their profiles changed */
  buses: string[];
  /** the LoRaWAN driver (and its simulator) restarts: lorawan section, LoRaWAN devices, their profiles */
  lorawan: boolean;
  /** simulators of the buses in `buses` are rewired; `simulate` itself changed: every simulator */
  simulate: boolean;
  /** control: `schedules` swaps the schedules in place (no bus touched); `restart` rebuilds the catalog (devices, groups, profiles, lighting site) */
  control: 'none' | 'schedules' | 'restart';
  /** broker: `users` swaps the auth table (connections stay, those of removed or changed users are closed); `restart` relistens */
  broker: 'none' | 'users' | 'restart';
  /** api: `tokens` swaps the token table; `restart` relistens */
  api: 'none' | 'tokens' | 'restart';
  /** the upstream connection restarts (the `sync` section, or gateway.timezone it counts days in) */
  sync: boolean;
  /** the report strategies are rebuilt (devices, profiles): the writer keeps the filter state of unchanged points */
  report: boolean;
  /** the component parts touched, for the record, the probe and the log: `modbus bus rtu1`, `control schedules`, `broker users`, `sync` */
  components: string[];
  /** one line per difference a human wants to read: `devices: lamp-7 added on bus rtu1` */
  summary: string[];
}

/** Validation of a submitted text (validate.ts): the whole of `streetbox validate`, and what a remote change may not touch. */
export type ValidationResult = { ok: true; config: Config } | { ok: false; code: 'E_CONFIG_INVALID' | 'E_CONFIG_FORBIDDEN'; problems: ConfigProblem[] };

/** What the manager needs from the running gateway (main.ts implements it). */
export interface ConfigApplier {
  /** the configuration the gateway runs now, as declared (parsed from its text) */
  current(): Config;
  /**
   * Makes `next` the running configuration: ctx.config is replaced, and each component part
   * the plan names is reconfigured or restarted, in start order; nothing else is touched.
   * Throws when a part could not be reconfigured (the manager then restores the previous version).
   */
  apply(next: Config, plan: ChangePlan): Promise<void>;
  /**
   * The health probe after an apply: every component running that was running before, every
   * bus in plan.buses (that has devices) with at least one device online, and the upstream
   * connected when plan.sync. `ok: false` with the reason while any does not hold.
   */
  probe(plan: ChangePlan, before: ProbeBaseline): { ok: true } | { ok: false; reason: string };
  /** what the probe compares with: taken just before the apply */
  baseline(): ProbeBaseline;
}

export interface ProbeBaseline {
  /** component names running before the apply */
  running: string[];
  /** when the apply began (ms UTC): a changed bus's device counts online once it answered after this */
  since: number;
  /** buses with a device that had answered and was online before the change (the others need not answer after it) */
  busesOnline: string[];
  /** buses that existed before the change (one that did not is new: it must answer) */
  buses: string[];
  /** the upstream was connected before the change */
  upstream: boolean;
  /** the upstream must be connected after a change of `sync` whatever it was before (a change from central) */
  requireUpstream?: boolean;
}

/** What a door gets back when it submits a change. */
export interface ConfigSubmitted {
  id: string;
  /** the first report: staged, or rejected */
  first: ConfigStageReport;
  /** settles at the first of: rejected, confirmed, rolledBack, or applied awaiting a manual confirm */
  settled: Promise<ConfigStageReport>;
  /** settles at the final stage: rejected, confirmed or rolledBack */
  outcome: Promise<ConfigStageReport>;
}

/** The configuration service the doors use (API routes, sync's down/config, SIGHUP, the CLI through the API). */
export interface ConfigService {
  submit(req: ConfigChangeRequest): ConfigSubmitted;
  /** central's `down/config` message, as received (JSON `{ id, baseVersion, content, force?, signature? }`) */
  submitCentral(payload: Buffer): ConfigSubmitted;
  /** SIGHUP / `streetbox reload`: the file on disk as a change from `file` */
  reloadFromFile(principal?: string): ConfigSubmitted;
  /** commit-confirm: confirms the version awaiting a manual confirm */
  confirm(principal: string): { ok: true; report: ConfigStageReport } | { ok: false; reason: string };
  /** a new change restoring version `v`'s content */
  rollbackTo(v: number, principal: string, source: ConfigSource): ConfigSubmitted;
  running(): ConfigVersion | undefined;
  versions(q?: { limit?: number; before?: number }): ConfigVersion[];
  version(v: number): ConfigVersion | undefined;
  change(id: string): ConfigVersion | undefined;
  /** a version's text with every secret shown as `***` (redactText.ts) */
  content(v: number): string | undefined;
  /** unified diff of two versions' redacted texts */
  diff(a: number, b: number): string | undefined;
  /** the version awaiting a manual confirm, and its deadline */
  awaitingConfirm(): { version: number; confirmBy: number } | null;
  /** the stage reports not yet delivered upstream, oldest first (the sync publishes and marks them) */
  outbox(): OutboxPort;
}

/** The reports for `up/config/<id>`, kept in the store until central's broker has them. */
export interface OutboxPort {
  pending(limit: number): { seq: number; topicId: string; report: ConfigStageReport }[];
  delivered(seq: number): void;
}
