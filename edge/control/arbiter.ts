/**
 * Level arbitration per device and group, after TALQ's override model: every source of a light
 * level is a claim with a priority, a start, an expiry and a reason; the highest unexpired claim
 * wins (ties: the most recent), else the schedule's step in force, else the group's defaultLevel
 * (100 % unless configured), so a street is never left dark by a lost or expired command.
 *
 * Pure logic: no timers, no I/O. The command pipeline calls claim/release, asks `wanted()` for
 * each device it must drive, arms one timer at `nextChange()`, calls `expire()` when it fires,
 * persists `toRows()` after every change and `restore()`s the rows at start; after a restart, and
 * when a device comes back online, it re-asserts `wanted()` for that device.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import { role, type Config } from '../config/schema.js';
import { ControlError } from './errors.js';
import { can, MIN_CLAIM_PRIORITY, priorityBand, type Principal } from './roles.js';
import type { ScheduleLevel, Transition } from './schedule.js';

export type Target = { kind: 'device' | 'group'; id: string };

export interface Claim {
  id: string;
  target: Target;
  /** 0..100 % */
  level: number;
  priority: number;
  source: Principal;
  /** ms UTC */
  startsAt: number;
  /** ms UTC; null: until released */
  expiresAt: number | null;
  reason: string;
  /** ramp time the driver uses when this claim takes over (TALQ dim with ramp) */
  rampS?: number;
}

export interface ClaimInput {
  id?: string;
  target: Target;
  level: number;
  /** defaults to the role's default priority; at most the role's ceiling */
  priority?: number;
  source: Principal;
  /** defaults to now */
  startsAt?: number;
  /** an instant, or null/absent for "until released"; or give durationMs */
  expiresAt?: number | null;
  durationMs?: number;
  reason?: string;
  rampS?: number;
}

/** A claim as a plain JSON row, for the store; `seq` keeps the order of arrival across restarts. */
export const claimRowSchema = z.strictObject({
  id: z.string().min(1),
  target: z.strictObject({ kind: z.enum(['device', 'group']), id: z.string().min(1) }),
  level: z.number().min(0).max(100),
  priority: z.number().int().min(MIN_CLAIM_PRIORITY).max(100),
  role,
  principal: z.string(),
  startsAt: z.number().int(),
  expiresAt: z.number().int().nullable(),
  reason: z.string(),
  rampS: z.number().nonnegative().optional(),
  seq: z.number().int().nonnegative(),
});
export type ClaimRow = z.output<typeof claimRowSchema>;

/** What the arbiter needs from the schedules (edge/control/schedule.ts Scheduler fits). */
export interface ScheduleSource {
  levelAt(groupId: string, at: number): ScheduleLevel | null;
  nextTransition(groupId: string, after: number): Transition | null;
  groups(): string[];
}

/** Which groups a device is in (config order) and each configured group's defaultLevel. */
export interface Membership {
  groupsOf(deviceId: string): readonly string[];
  /** undefined for a group not configured under `groups:` */
  defaultLevel(groupId: string): number | undefined;
}

export function membershipFromConfig(config: Pick<Config, 'devices' | 'groups'>): Membership {
  const groupsOf = new Map(config.devices.map((d) => [d.id, d.groups]));
  const defaults = new Map(config.groups.map((g) => [g.id, g.defaultLevel]));
  return { groupsOf: (id) => groupsOf.get(id) ?? [], defaultLevel: (id) => defaults.get(id) };
}

/** The level used when no claim, schedule or configured group says otherwise. */
export const FALLBACK_LEVEL = 100;

export type WantedSource =
  | { kind: 'claim'; claim: Claim }
  | { kind: 'schedule'; group: string; schedule: string; step: number; since: number }
  | { kind: 'default'; group: string | null };

export interface Wanted {
  level: number;
  source: WantedSource;
  rampS?: number;
}

export interface ArbiterOptions {
  clock: Clock;
  membership: Membership;
  schedule?: ScheduleSource | null;
  newId?: () => string;
}

const invalid = (msg: string) => new ControlError('E_INVALID_COMMAND', msg);
const sameTarget = (a: Target, b: Target) => a.kind === b.kind && a.id === b.id;

export class Arbiter {
  private readonly claims = new Map<string, Claim & { seq: number }>();
  private seq = 0;
  private readonly clock: Clock;
  private readonly membership: Membership;
  private schedule: ScheduleSource | null;
  private readonly newId: () => string;

  constructor(opts: ArbiterOptions) {
    this.clock = opts.clock;
    this.membership = opts.membership;
    this.schedule = opts.schedule ?? null;
    this.newId = opts.newId ?? randomUUID;
  }

  /** Replaces the schedules (a config reload); null: none, so every group falls back to its defaultLevel. */
  setSchedule(schedule: ScheduleSource | null): void {
    this.schedule = schedule;
  }

  /** Adds a claim after checking the level, the role and its priority ceiling, and the times. */
  claim(input: ClaimInput): Claim {
    const { source } = input;
    const band = priorityBand(source.role);
    if (band === null || !can(source.role, 'command.lighting')) {
      throw new ControlError('E_FORBIDDEN', `role ${source.role} may not set a light level`);
    }
    if (!Number.isFinite(input.level) || input.level < 0 || input.level > 100) throw invalid(`level: expected 0..100, got ${input.level}`);
    const priority = input.priority ?? band.default;
    if (!Number.isInteger(priority) || priority < MIN_CLAIM_PRIORITY) throw invalid(`priority: expected an integer ${MIN_CLAIM_PRIORITY}..${band.ceiling}, got ${priority}`);
    if (priority > band.ceiling) {
      throw new ControlError('E_FORBIDDEN', `priority ${priority} is above the ceiling ${band.ceiling} of role ${source.role}`);
    }
    const startsAt = input.startsAt ?? this.clock.now();
    let expiresAt = input.expiresAt ?? null;
    if (input.durationMs !== undefined) {
      if (input.expiresAt !== undefined && input.expiresAt !== null) throw invalid('give expiresAt or durationMs, not both');
      if (!Number.isFinite(input.durationMs) || input.durationMs <= 0) throw invalid(`duration: expected more than 0, got ${input.durationMs}`);
      expiresAt = startsAt + input.durationMs;
    }
    if (expiresAt !== null && !(expiresAt > startsAt)) throw invalid('expiresAt: expected a time after startsAt');
    if (input.rampS !== undefined && !(input.rampS >= 0)) throw invalid(`rampS: expected 0 or more, got ${input.rampS}`);
    const id = input.id ?? this.newId();
    if (this.claims.has(id)) throw invalid(`a claim with id ${id} exists already`);
    const claim: Claim = { id, target: { ...input.target }, level: input.level, priority, source: { ...source }, startsAt, expiresAt, reason: input.reason ?? '' };
    if (input.rampS !== undefined) claim.rampS = input.rampS;
    this.claims.set(id, { ...claim, seq: this.seq++ });
    return claim;
  }

  /** Removes a claim. `by`: who asks; a role may release only claims it could have made (priority up to its ceiling). */
  release(id: string, by?: Principal): Claim {
    const c = this.claims.get(id);
    if (!c) throw new ControlError('E_NOT_FOUND', `no claim ${id}`);
    if (by) {
      const band = priorityBand(by.role);
      if (band === null || !can(by.role, 'command.lighting') || c.priority > band.ceiling) {
        throw new ControlError('E_FORBIDDEN', `role ${by.role} may not release claim ${id} of priority ${c.priority}`);
      }
    }
    this.claims.delete(id);
    return strip(c);
  }

  get(id: string): Claim | undefined {
    const c = this.claims.get(id);
    return c && strip(c);
  }

  /** Claims in order of arrival, optionally only those naming `target` itself. */
  list(target?: Target): Claim[] {
    return [...this.claims.values()].filter((c) => !target || sameTarget(c.target, target)).map(strip);
  }

  /** The level a device or group should have at `now`, and why. */
  wanted(target: Target, now: number = this.clock.now()): Wanted {
    const groups = target.kind === 'device' ? this.membership.groupsOf(target.id) : [target.id];
    let best: (Claim & { seq: number }) | null = null;
    for (const c of this.claims.values()) {
      if (c.startsAt > now || (c.expiresAt !== null && c.expiresAt <= now)) continue;
      const applies = sameTarget(c.target, target) || (target.kind === 'device' && c.target.kind === 'group' && groups.includes(c.target.id));
      if (!applies) continue;
      if (best === null || c.priority > best.priority || (c.priority === best.priority && (c.startsAt > best.startsAt || (c.startsAt === best.startsAt && c.seq > best.seq)))) best = c;
    }
    if (best) {
      const claim = strip(best);
      return claim.rampS === undefined ? { level: claim.level, source: { kind: 'claim', claim } } : { level: claim.level, source: { kind: 'claim', claim }, rampS: claim.rampS };
    }
    let fromSchedule: { group: string; s: ScheduleLevel } | null = null;
    for (const g of groups) {
      const s = this.schedule?.levelAt(g, now) ?? null;
      if (s && (fromSchedule === null || s.since > fromSchedule.s.since)) fromSchedule = { group: g, s };
    }
    if (fromSchedule) {
      const { group, s } = fromSchedule;
      return { level: s.level, source: { kind: 'schedule', group, schedule: s.source.schedule, step: s.source.step, since: s.since } };
    }
    // never darker than any of the device's configured groups asks
    let level: number | null = null;
    let group: string | null = null;
    for (const g of groups) {
      const d = this.membership.defaultLevel(g);
      if (d !== undefined && (level === null || d > level)) [level, group] = [d, g];
    }
    return { level: level ?? FALLBACK_LEVEL, source: { kind: 'default', group } };
  }

  /** Removes the claims expired at `now` and returns them, earliest first (for command.expired events). */
  expire(now: number = this.clock.now()): Claim[] {
    const gone = [...this.claims.values()].filter((c) => c.expiresAt !== null && c.expiresAt <= now);
    gone.sort((a, b) => a.expiresAt! - b.expiresAt! || a.seq - b.seq);
    for (const c of gone) this.claims.delete(c.id);
    return gone.map(strip);
  }

  /**
   * The first instant after `now` at which `wanted()` may change: a claim starting or expiring,
   * or a schedule step firing (for `target` only, when given). null: nothing pending.
   */
  nextChange(now: number = this.clock.now(), target?: Target): number | null {
    const groups = target === undefined ? (this.schedule?.groups() ?? []) : target.kind === 'device' ? this.membership.groupsOf(target.id) : [target.id];
    let next = Infinity;
    for (const c of this.claims.values()) {
      if (target && !(sameTarget(c.target, target) || (c.target.kind === 'group' && target.kind === 'device' && groups.includes(c.target.id)))) continue;
      if (c.startsAt > now) next = Math.min(next, c.startsAt);
      if (c.expiresAt !== null && c.expiresAt > now) next = Math.min(next, c.expiresAt);
    }
    for (const g of groups) {
      const t = this.schedule?.nextTransition(g, now);
      if (t) next = Math.min(next, t.at);
    }
    return next === Infinity ? null : next;
  }

  /** Every claim as a plain JSON row, in order of arrival. */
  toRows(): ClaimRow[] {
    return [...this.claims.values()].map((c) => {
      const row: ClaimRow = {
        id: c.id,
        target: { ...c.target },
        level: c.level,
        priority: c.priority,
        role: c.source.role,
        principal: c.source.principal,
        startsAt: c.startsAt,
        expiresAt: c.expiresAt,
        reason: c.reason,
        seq: c.seq,
      };
      if (c.rampS !== undefined) row.rampS = c.rampS;
      return row;
    });
  }

  /**
   * Replaces the claims with persisted rows. Rows expired at `now` are returned in `expired` (the
   * caller records them) and not restored; rows that do not parse are returned in `invalid`.
   */
  restore(rows: readonly unknown[], now: number = this.clock.now()): { restored: Claim[]; expired: Claim[]; invalid: { index: number; error: string }[] } {
    this.claims.clear();
    const out = { restored: [] as Claim[], expired: [] as Claim[], invalid: [] as { index: number; error: string }[] };
    const parsed: ClaimRow[] = [];
    rows.forEach((raw, index) => {
      const r = claimRowSchema.safeParse(raw);
      if (r.success) parsed.push(r.data);
      else out.invalid.push({ index, error: r.error.issues.map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ') });
    });
    parsed.sort((a, b) => a.seq - b.seq);
    for (const r of parsed) {
      const claim: Claim = {
        id: r.id,
        target: r.target,
        level: r.level,
        priority: r.priority,
        source: { role: r.role, principal: r.principal },
        startsAt: r.startsAt,
        expiresAt: r.expiresAt,
        reason: r.reason,
      };
      if (r.rampS !== undefined) claim.rampS = r.rampS;
      if (claim.expiresAt !== null && claim.expiresAt <= now) {
        out.expired.push(claim);
        continue;
      }
      this.claims.set(r.id, { ...claim, seq: r.seq });
      out.restored.push(claim);
      this.seq = Math.max(this.seq, r.seq + 1);
    }
    return out;
  }
}

function strip(c: Claim & { seq: number }): Claim {
  const { seq: _seq, ...claim } = c;
  return { ...claim, target: { ...claim.target }, source: { ...claim.source } };
}
