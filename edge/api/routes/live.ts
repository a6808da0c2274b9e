/**
 * The status page's live feed: server-sent events (WHATWG HTML §9.2) on GET /api/v1/live.
 *
 * EventSource cannot send an Authorization header, so the page first trades its bearer token
 * for a ticket: POST /api/v1/live/ticket (`read`) → `{ ticket, expiresInS, role, principal,
 * may }`. A ticket is random, single-use and valid for 30 s; only its SHA-256 is held, and the
 * request log never has query values, so neither token nor ticket is logged. GET
 * /api/v1/live?ticket=… (or with a bearer header, for curl) answers 401 without a valid one.
 *
 * The stream: one `snapshot` event (gateway with its time zone and position, the map's tiles,
 * components, buses and devices, store, sync, recent events and commands, and the latest values
 * of the first devices that fit in a page), then `values` events with the latest values of the
 * other devices, a page of about `pageBytes` at a time, then `update` events: values as polled
 * (the bus's `polled`, stored or not by the report strategies) coalesced per point and flushed
 * every FLUSH_MS, events and command changes as they are committed, and the status every
 * STATUS_MS.
 *
 * A slow or stalled reader costs bounded memory and CPU and never holds the gateway up. Nothing
 * more is written to a socket whose write() said it is backed up until it drains; meanwhile the
 * reader is owed, not queued: the devices whose values changed (their latest values are read
 * from the store when it drains: latest-value coalescing), the newest MAX_QUEUED events and
 * command rows, and whether a status is due. A drain costs what fits before the socket backs up
 * again, a page at a time, never a snapshot. A reader backed up for longer than `stallMs` is
 * disconnected (the page reconnects with a new ticket and gets a fresh snapshot). At most
 * `maxReaders` readers (503 past that). The bus listeners and timers exist only while a reader
 * is connected.
 *
 * Each device row of the status says what the device is doing now, as the map colours it and the
 * controls start from (edge/api/deviceState.ts): kind, position, state, level and active alarms.
 * The status goes to every reader every STATUS_MS, so it reads the store's latest values once
 * (latestAll) and describes the devices once per configuration object.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { can, type Principal, type Role } from '../../control/roles.js';
import type { CommandRecord, LatestValue, Reading, StoredEvent } from '../../store/types.js';
import { zoneOffset } from '../../timeFormat.js';
import { deviceAvailability, deviceState, describedDevices, newestTs } from '../deviceState.js';
import { z } from 'zod';
import { ApiError } from '../errors.js';
import { SECURITY_HEADERS } from '../http.js';
import type { Router } from '../router.js';
import { field } from '../schemas.js';
import { safeDevices, type LiveLimits, type RouteEnv } from './env.js';

export type { LiveLimits };

export const TICKET_TTL_MS = 30_000;
const MAX_TICKETS = 64;
const FLUSH_MS = 500;
const STATUS_MS = 2_000;
const RECENT_EVENTS = 20;
const RECENT_COMMANDS = 10;
/** events and command rows held between two flushes, and owed to a reader that is behind (the newest win) */
const MAX_QUEUED = 50;

export const LIVE_LIMITS: Readonly<LiveLimits> = { maxReaders: 32, stallMs: 15_000, pageBytes: 16 * 1024 };

type ValueCell = { v: Reading['value']; u: string | null; q: Reading['quality']; ts: number };

/** What a reader is owed: at most one entry per device, MAX_QUEUED events and command rows, one status. */
interface Owed {
  /** devices whose latest values it lacks; the snapshot's first, in the order of the config */
  devices: Set<string>;
  events: StoredEvent[];
  commands: Map<string, CommandRecord>;
  status: boolean;
}

interface Reader {
  res: ServerResponse;
  principal: Principal;
  /** write() returned false: nothing more is written until the socket drains */
  backedUp: boolean;
  /** clock.monotonic() when it last backed up */
  backedUpAt: number;
  owed: Owed;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const cell = (v: LatestValue): ValueCell => ({ v: v.value, u: v.unit, q: v.quality, ts: v.ts });
const sse = (event: string, json: string): string => `event: ${event}\ndata: ${json}\n\n`;

/** What the page may offer this role: the controls it shows (the API checks again). */
const mayOf = (role: Role): Record<string, boolean> => ({ commandLighting: can(role, 'command.lighting'), commandTraffic: can(role, 'command.traffic') });

const NO_VALUES: ReadonlyMap<string, LatestValue> = new Map();


function owesNothing(o: Owed): boolean {
  return o.devices.size === 0 && o.events.length === 0 && o.commands.size === 0 && !o.status;
}

/** Adds command rows to a map of the newest `MAX_QUEUED`, a row replacing the older one of its command. */
function keepCommands(into: Map<string, CommandRecord>, rows: Iterable<CommandRecord>): void {
  for (const c of rows) {
    into.delete(c.id);
    into.set(c.id, c);
    if (into.size > MAX_QUEUED) into.delete(into.keys().next().value!);
  }
}

function keepEvents(into: StoredEvent[], events: readonly StoredEvent[]): void {
  into.push(...events);
  if (into.length > MAX_QUEUED) into.splice(0, into.length - MAX_QUEUED);
}

export class LiveFeed {
  private readonly tickets = new Map<string, { principal: Principal; expires: number }>();
  private readonly readers = new Set<Reader>();
  private readonly limits: LiveLimits;
  /** what the bus carried since the last flush: the latest polled value per point, the newest events and command rows */
  private values = new Map<string, Map<string, ValueCell>>();
  private events: StoredEvent[] = [];
  private commands = new Map<string, CommandRecord>();
  private flushTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly env: RouteEnv,
    limits: Partial<LiveLimits> = {},
  ) {
    this.limits = { ...LIVE_LIMITS, ...limits };
    env.tokenWatchers.push((still) => this.revoke(still));
  }

  /** api.tokens replaced: readers and tickets of a token that is gone (or changed role) are closed. */
  private revoke(still: (p: Principal) => boolean): void {
    for (const [key, t] of this.tickets) if (!still(t.principal)) this.tickets.delete(key);
    for (const reader of [...this.readers]) {
      if (still(reader.principal)) continue;
      this.env.ctx.log.info({ principal: reader.principal.principal }, 'live reader closed: its token was removed or changed');
      reader.res.destroy();
      this.close(reader);
    }
  }

  get clientCount(): number {
    return this.readers.size;
  }

  issueTicket(principal: Principal): string {
    const now = this.env.ctx.clock.now();
    for (const [k, t] of this.tickets) if (t.expires <= now) this.tickets.delete(k);
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = randomBytes(24).toString('base64url');
    this.tickets.set(sha(ticket), { principal, expires: now + TICKET_TTL_MS });
    return ticket;
  }

  /** The ticket's principal, once: a ticket is deleted when used. */
  redeem(ticket: string): Principal | null {
    const key = sha(ticket);
    const t = this.tickets.get(key);
    if (!t) return null;
    this.tickets.delete(key);
    return t.expires > this.env.ctx.clock.now() ? t.principal : null;
  }

  open(res: ServerResponse, principal: Principal): void {
    const max = this.limits.maxReaders;
    if (this.readers.size >= max) throw new ApiError(503, 'E_COMPONENT', `at most ${max} live clients`, { headers: { 'Retry-After': '10' } });
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const devices = new Set(this.env.ctx.config.devices.map((d) => d.id));
    const reader: Reader = { res, principal, backedUp: false, backedUpAt: 0, owed: { devices, events: [], commands: new Map(), status: false } };
    this.readers.add(reader);
    this.env.metrics.liveReaders = this.readers.size;
    if (this.readers.size === 1) this.subscribe();
    res.on('close', () => this.close(reader));
    res.on('drain', () => {
      reader.backedUp = false;
      this.pump(reader);
    });
    // WHATWG HTML §9.2.6: `retry` sets the reconnection time; the page fetches a new ticket anyway
    this.send(reader, 'retry: 3000\n\n');
    // the head with the first page of values; the other devices' values follow as `values` pages
    const page = this.valuesPage(devices) ?? '{}';
    this.send(reader, sse('snapshot', `{"values":${page},${JSON.stringify(this.snapshot(principal)).slice(1)}`));
    this.pump(reader);
  }

  private close(reader: Reader): void {
    if (!this.readers.delete(reader)) return;
    this.env.metrics.liveReaders = this.readers.size;
    if (this.readers.size === 0) this.unsubscribe();
  }

  private subscribe(): void {
    const bus = this.env.ctx.bus;
    bus.on(this, 'polled', (rows) => {
      for (const r of rows) {
        let dev = this.values.get(r.device);
        if (!dev) this.values.set(r.device, (dev = new Map()));
        dev.set(r.point, { v: r.value, u: r.unit, q: r.quality, ts: r.ts });
      }
    });
    bus.on(this, 'event', (e) => keepEvents(this.events, [e]));
    bus.on(this, 'command', (c) => keepCommands(this.commands, [c]));
    this.flushTimer = setInterval(() => this.tick(false), FLUSH_MS);
    this.statusTimer = setInterval(() => this.tick(true), STATUS_MS);
  }

  private unsubscribe(): void {
    this.env.ctx.bus.off(this);
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.flushTimer = this.statusTimer = null;
    this.values = new Map();
    this.events = [];
    this.commands = new Map();
  }

  /**
   * A flush from the timers, which must never throw out of a timer: the store closed under a
   * stopping gateway (its readers' sockets close with the server) ends the feed for everyone.
   */
  private tick(withStatus: boolean): void {
    try {
      this.flush(withStatus);
    } catch (err) {
      this.env.ctx.log.debug({ err }, 'live feed stopped: a flush failed');
      for (const r of [...this.readers]) {
        r.res.destroy();
        this.close(r);
      }
      this.unsubscribe();
    }
  }

  /**
   * One update, serialized once, to every reader that is up to date; a reader that is behind is
   * owed it instead (coalesced), and one backed up past `stallMs` is disconnected.
   */
  private flush(withStatus: boolean): void {
    const { values, events, commands } = this;
    this.values = new Map();
    this.events = [];
    this.commands = new Map();
    const status = withStatus ? this.status() : null;
    const nothing = values.size === 0 && events.length === 0 && commands.size === 0 && !status;
    let frame: string | null = null;
    const now = this.env.ctx.clock.monotonic();
    for (const r of this.readers) {
      if (r.backedUp && now - r.backedUpAt > this.limits.stallMs) {
        this.drop(r);
        continue;
      }
      if (nothing) continue;
      if (!r.backedUp && owesNothing(r.owed)) {
        frame ??= sse('update', JSON.stringify(this.update(values, events, commands.values(), status)));
        this.send(r, frame);
        continue;
      }
      for (const d of values.keys()) r.owed.devices.add(d);
      keepEvents(r.owed.events, events);
      keepCommands(r.owed.commands, commands.values());
      if (status) r.owed.status = true;
      this.pump(r);
    }
  }

  private update(values: Map<string, Map<string, ValueCell>>, events: StoredEvent[], commands: Iterable<CommandRecord>, status: Record<string, unknown> | null): Record<string, unknown> {
    const update: Record<string, unknown> = {};
    if (values.size > 0) update['values'] = Object.fromEntries([...values].map(([d, m]) => [d, Object.fromEntries(m)]));
    if (events.length > 0) update['events'] = events;
    const rows = [...commands];
    if (rows.length > 0) update['commands'] = rows;
    if (status) Object.assign(update, status);
    return update;
  }

  /**
   * Writes what a reader is owed until its socket backs up: one update with the owed events,
   * command rows and status, then pages of the owed devices' latest values.
   */
  private pump(reader: Reader): void {
    const owed = reader.owed;
    if (!reader.backedUp && (owed.events.length > 0 || owed.commands.size > 0 || owed.status)) {
      const update = this.update(new Map(), owed.events, owed.commands.values(), owed.status ? this.status() : null);
      owed.events = [];
      owed.commands = new Map();
      owed.status = false;
      this.send(reader, sse('update', JSON.stringify(update)));
    }
    while (!reader.backedUp && owed.devices.size > 0) {
      const page = this.valuesPage(owed.devices);
      if (page !== null) this.send(reader, sse('values', `{"values":${page}}`));
    }
  }

  /**
   * `{ "<device>": { "<point>": cell } }` for the first devices of `devices` that fit in a page
   * (taken out of the set), read from the store now; null when none of them has values.
   */
  private valuesPage(devices: Set<string>): string | null {
    const parts: string[] = [];
    let size = 0;
    for (const d of devices) {
      devices.delete(d);
      const latest = this.env.ctx.store.latest(d);
      if (latest.size === 0) continue;
      const part = `${JSON.stringify(d)}:${JSON.stringify(Object.fromEntries([...latest].map(([p, v]) => [p, cell(v)])))}`;
      parts.push(part);
      size += part.length;
      if (size >= this.limits.pageBytes) break;
    }
    return parts.length > 0 ? `{${parts.join(',')}}` : null;
  }

  private send(reader: Reader, chunk: string): void {
    if (reader.res.destroyed) return;
    this.env.metrics.liveBytes += Buffer.byteLength(chunk);
    if (!reader.res.write(chunk)) {
      reader.backedUp = true;
      reader.backedUpAt = this.env.ctx.clock.monotonic();
    }
  }

  private drop(reader: Reader): void {
    this.env.metrics.liveDropped++;
    this.env.ctx.log.info({ principal: reader.principal.principal, stalledMs: Math.round(this.env.ctx.clock.monotonic() - reader.backedUpAt) }, 'live reader not keeping up: disconnected');
    reader.res.destroy();
    this.close(reader);
  }

  /** Components, store, sync and the devices by bus: what the page refreshes every STATUS_MS. */
  private status(): Record<string, unknown> {
    const { ctx, deps } = this.env;
    let gw: Record<string, unknown> = {};
    try {
      const s = deps.status();
      if (s !== null && typeof s === 'object') gw = s as Record<string, unknown>;
    } catch (err) {
      ctx.log.warn({ err }, 'status() failed');
    }
    const rows = new Map<string, Record<string, unknown>>();
    for (const d of safeDevices(this.env)) {
      if (d !== null && typeof d === 'object' && typeof (d as { id?: unknown }).id === 'string') rows.set((d as { id: string }).id, d as Record<string, unknown>);
    }
    const latestAll = ctx.store.latestAll();
    const facts = describedDevices(ctx.config);
    const devices = ctx.config.devices.map((d) => {
      const row = rows.get(d.id);
      const latest = latestAll.get(d.id) ?? NO_VALUES;
      // a LoRaWAN node heard before a restart: last seen when its newest value came, not "never"
      const { online, lastSeen } = deviceAvailability(row, this.env.availability.get(d.id), newestTs(latest));
      const f = facts.get(d.id)!; // described from this same configuration object
      const now = deviceState(f.desc, f.alarms, latest, online);
      return {
        id: d.id,
        name: d.name ?? null,
        bus: d.bus ?? (d.devEui !== undefined ? 'lorawan' : null),
        address: d.unit ?? d.devEui ?? null,
        profile: d.profile,
        groups: d.groups,
        online,
        lastSeen,
        lastError: typeof row?.['lastError'] === 'string' ? row['lastError'] : null,
        failures: typeof row?.['failures'] === 'number' ? row['failures'] : null,
        kind: f.desc.kind,
        lat: d.lat ?? null,
        lon: d.lon ?? null,
        state: now.state,
        level: now.level,
        alarms: now.alarms,
      };
    });
    const buses: { id: string; type: string; endpoint: string }[] = ctx.config.buses.map((b) => ({ id: b.id, type: b.type, endpoint: b.type === 'tcp' ? `${b.host}:${b.port}` : b.path }));
    if (ctx.config.devices.some((d) => d.devEui !== undefined)) buses.push({ id: 'lorawan', type: 'lorawan', endpoint: `udp ${ctx.config.lorawan?.port ?? ''}` });
    const now = ctx.clock.now();
    return {
      now,
      // the zone's offset now: the page's fallback where the browser's Intl lacks the zone
      utcOffsetMin: Math.round(zoneOffset(ctx.config.gateway.timezone)(now) / 60_000),
      components: gw['components'] ?? [],
      store: ctx.store.stats(),
      sync: gw['sync'] ?? null,
      lorawan: gw['lorawan'] ?? null,
      buses,
      devices,
    };
  }

  /** The snapshot's head: everything but the values, which are paged (open()). */
  private snapshot(principal: Principal): Record<string, unknown> {
    const { ctx, deps } = this.env;
    const groups = new Set<string>([...ctx.config.groups.map((g) => g.id), ...ctx.config.devices.flatMap((d) => d.groups)]);
    return {
      // the page shows times in the gateway's zone, not the browser's (edge/timeFormat.ts)
      gateway: { id: ctx.config.gateway.id, site: ctx.config.gateway.site ?? null, timezone: ctx.config.gateway.timezone, lat: ctx.config.gateway.lat ?? null, lon: ctx.config.gateway.lon ?? null },
      // the map: tiles from this URL template (Leaflet), or null: positions drawn to scale, offline
      mapTiles: ctx.config.api.mapTiles ?? null,
      mapAttribution: ctx.config.api.mapAttribution ?? null,
      principal: principal.principal,
      role: principal.role,
      may: mayOf(principal.role),
      groups: [...groups],
      ...this.status(),
      events: this.recentEvents(),
      commands: deps.commands.list({ limit: RECENT_COMMANDS }),
    };
  }

  /** The newest RECENT_EVENTS events: the store pages forwards by seq, so look back in widening windows. */
  private recentEvents(): StoredEvent[] {
    const store = this.env.ctx.store;
    const last = store.stats().lastSeq;
    let tail: StoredEvent[] = [];
    for (const back of [2_000, 50_000, 2_000_000, Infinity]) {
      tail = [];
      let after = back === Infinity ? 0 : Math.max(0, last - back);
      for (let pages = 0; pages < 100; pages++) {
        const page = store.events({ after, limit: 1000 });
        tail = tail.concat(page.items).slice(-RECENT_EVENTS);
        if (page.items.length < 1000) break;
        after = page.next;
      }
      if (tail.length >= RECENT_EVENTS || after === 0) break;
    }
    return tail;
  }
}

export function liveRoutes(r: Router, env: RouteEnv): LiveFeed {
  const feed = new LiveFeed(env, env.deps.live);

  r.add({
    method: 'POST',
    path: '/api/v1/live/ticket',
    access: 'read',
    doc: (a) => ({
      operationId: 'issueLiveTicket',
      summary: 'Trades a bearer token for a ticket to the live feed',
      description: `EventSource cannot send an Authorization header: the page trades its token for a random, single-use ticket valid for ${TICKET_TTL_MS / 1000} s (only its SHA-256 is held).`,
      tags: ['live'],
      responses: { 200: { description: 'the ticket, and what the role may do', schema: a.liveTicket } },
    }),
    handler: ({ principal }) => {
      const p = principal!;
      return {
        status: 200,
        body: { ticket: feed.issueTicket(p), expiresInS: TICKET_TTL_MS / 1000, role: p.role, principal: p.principal, may: mayOf(p.role) },
      };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/live',
    access: 'public',
    query: z.strictObject({ ticket: field(z.string(), 'expected a ticket', { description: 'a ticket of POST /api/v1/live/ticket (single use)' }) }),
    doc: (a) => ({
      auth: { schemes: ['ticket', 'bearer'], permission: 'read' },
      operationId: 'openLiveFeed',
      summary: "The status page's live feed (server-sent events)",
      description: `\`?ticket=\` (POST /api/v1/live/ticket) or a bearer token that may read. Events: \`snapshot\` (the gateway, its status, recent events and commands, the first page of latest values), \`values\` (the other pages), then \`update\` (values coalesced per point every ${FLUSH_MS} ms, events and command changes as committed, the status every ${STATUS_MS / 1000} s). At most ${LIVE_LIMITS.maxReaders} readers (503); a reader backed up for ${LIVE_LIMITS.stallMs / 1000} s is disconnected.`,
      tags: ['live'],
      responses: {
        200: { description: 'the stream', contentType: 'text/event-stream', schema: z.string() },
        401: { description: 'no ticket or token, or an invalid or expired one', schema: a.errorBody, headers: { 'WWW-Authenticate': 'Bearer realm="streetbox"' } },
        503: { description: 'too many readers', schema: a.errorBody },
      },
    }),
    handler: ({ req, res, query: { ticket }, principal }) => {
      const who = ticket !== undefined ? feed.redeem(ticket) : principal && can(principal.role, 'read') ? principal : null;
      if (!who) {
        throw new ApiError(401, 'E_UNAUTHORIZED', ticket !== undefined ? 'invalid or expired ticket' : 'a ticket (POST /api/v1/live/ticket) or a bearer token is required', {
          headers: { 'WWW-Authenticate': ticket !== undefined ? 'Bearer realm="streetbox", error="invalid_token"' : 'Bearer realm="streetbox"' },
        });
      }
      if (req.method === 'HEAD') return { status: 200, text: '', contentType: 'text/event-stream; charset=utf-8' };
      feed.open(res, who);
      // the stream is under way: the server's own answer is a no-op (headers are sent)
      return { status: 200 };
    },
  });
  return feed;
}
