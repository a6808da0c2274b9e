/**
 * The status page's live feed: server-sent events (WHATWG HTML §9.2) on GET /api/v1/live.
 *
 * EventSource cannot send an Authorization header, so the page first trades its bearer token
 * for a ticket: POST /api/v1/live/ticket (`read`) → `{ ticket, expiresInS, role, principal,
 * may }`. A ticket is random, single-use and valid for 30 s; only its SHA-256 is held, and the
 * request log never has query values, so neither token nor ticket is logged. GET
 * /api/v1/live?ticket=… (or with a bearer header, for curl) answers 401 without a valid one.
 *
 * The stream: one `snapshot` event (gateway with its time zone, components, buses and
 * devices, store, sync, latest values, recent events and commands), then `update` events:
 * values coalesced per point and flushed every FLUSH_MS, events and command changes as they
 * are committed, and the status every STATUS_MS. Memory per client is bounded: a client whose
 * socket is backed up past MAX_BACKLOG is skipped and gets a fresh snapshot once it drains (or
 * is dropped after STALL_MS). The bus listeners and timers exist only while a client is
 * connected.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { can, type Principal } from '../../control/roles.js';
import type { CommandRecord, Reading, StoredEvent } from '../../store/types.js';
import { zoneOffset } from '../../timeFormat.js';
import { ApiError } from '../errors.js';
import { SECURITY_HEADERS, query } from '../http.js';
import type { Router } from '../router.js';
import { safeDevices, type RouteEnv } from './env.js';

export const TICKET_TTL_MS = 30_000;
const MAX_TICKETS = 64;
export const MAX_CLIENTS = 32;
const FLUSH_MS = 500;
const STATUS_MS = 2_000;
const MAX_BACKLOG = 256 * 1024;
const STALL_MS = 30_000;
const RECENT_EVENTS = 20;
const RECENT_COMMANDS = 10;
/** events and command rows held between two flushes (the newest win) */
const MAX_QUEUED = 50;

type ValueCell = { v: Reading['value']; u: string | null; q: Reading['quality']; ts: number };

interface Client {
  res: ServerResponse;
  principal: Principal;
  /** set while the socket is backed up: the client gets a snapshot once it drains */
  stalledSince: number | null;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

export class LiveFeed {
  private readonly tickets = new Map<string, { principal: Principal; expires: number }>();
  private readonly clients = new Set<Client>();
  private values = new Map<string, Map<string, ValueCell>>();
  private events: StoredEvent[] = [];
  private commands = new Map<string, CommandRecord>();
  private flushTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(private readonly env: RouteEnv) {}

  get clientCount(): number {
    return this.clients.size;
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
    if (this.clients.size >= MAX_CLIENTS) throw new ApiError(503, 'E_COMPONENT', `at most ${MAX_CLIENTS} live clients`, { headers: { 'Retry-After': '10' } });
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const client: Client = { res, principal, stalledSince: null };
    this.clients.add(client);
    if (this.clients.size === 1) this.subscribe();
    res.on('close', () => this.close(client));
    res.on('drain', () => {
      if (client.stalledSince !== null && res.writableLength < MAX_BACKLOG) {
        client.stalledSince = null;
        this.write(client, 'snapshot', this.snapshot(client.principal));
      }
    });
    // WHATWG HTML §9.2.6: `retry` sets the reconnection time; the page fetches a new ticket anyway
    res.write('retry: 3000\n\n');
    this.write(client, 'snapshot', this.snapshot(principal));
  }

  private close(client: Client): void {
    if (!this.clients.delete(client)) return;
    if (this.clients.size === 0) this.unsubscribe();
  }

  private subscribe(): void {
    const bus = this.env.ctx.bus;
    bus.on(this, 'readings', (rows) => {
      for (const r of rows) {
        let dev = this.values.get(r.device);
        if (!dev) this.values.set(r.device, (dev = new Map()));
        dev.set(r.point, { v: r.value, u: r.unit, q: r.quality, ts: r.ts });
      }
    });
    bus.on(this, 'event', (e) => {
      this.events.push(e);
      if (this.events.length > MAX_QUEUED) this.events.shift();
    });
    bus.on(this, 'command', (c) => {
      this.commands.delete(c.id);
      this.commands.set(c.id, c);
      if (this.commands.size > MAX_QUEUED) this.commands.delete(this.commands.keys().next().value!);
    });
    this.flushTimer = setInterval(() => this.flush(false), FLUSH_MS);
    this.statusTimer = setInterval(() => this.flush(true), STATUS_MS);
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

  private flush(withStatus: boolean): void {
    const update: Record<string, unknown> = {};
    if (this.values.size > 0) update['values'] = Object.fromEntries([...this.values].map(([d, m]) => [d, Object.fromEntries(m)]));
    if (this.events.length > 0) update['events'] = this.events;
    if (this.commands.size > 0) update['commands'] = [...this.commands.values()];
    if (withStatus) Object.assign(update, this.status());
    this.values = new Map();
    this.events = [];
    this.commands = new Map();
    if (Object.keys(update).length === 0) return;
    const frame = `event: update\ndata: ${JSON.stringify(update)}\n\n`;
    const now = this.env.ctx.clock.now();
    for (const c of this.clients) {
      if (c.stalledSince !== null) {
        if (now - c.stalledSince > STALL_MS) c.res.destroy();
        continue;
      }
      c.res.write(frame);
      if (c.res.writableLength >= MAX_BACKLOG) c.stalledSince = now;
    }
  }

  private write(client: Client, event: string, data: unknown): void {
    client.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    if (client.res.writableLength >= MAX_BACKLOG) client.stalledSince = this.env.ctx.clock.now();
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
    const devices = ctx.config.devices.map((d) => {
      const row = rows.get(d.id);
      const fromEvents = this.env.availability.get(d.id);
      return {
        id: d.id,
        name: d.name ?? null,
        bus: d.bus ?? (d.devEui !== undefined ? 'lorawan' : null),
        address: d.unit ?? d.devEui ?? null,
        profile: d.profile,
        groups: d.groups,
        online: typeof row?.['online'] === 'boolean' ? row['online'] : (fromEvents?.online ?? null),
        lastSeen: typeof row?.['lastSeen'] === 'number' ? row['lastSeen'] : null,
        lastError: typeof row?.['lastError'] === 'string' ? row['lastError'] : null,
        failures: typeof row?.['failures'] === 'number' ? row['failures'] : null,
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

  private snapshot(principal: Principal): Record<string, unknown> {
    const { ctx, deps } = this.env;
    const groups = new Set<string>([...ctx.config.groups.map((g) => g.id), ...ctx.config.devices.flatMap((d) => d.groups)]);
    const values: Record<string, Record<string, ValueCell>> = {};
    for (const [device, points] of ctx.store.latestAll()) {
      values[device] = Object.fromEntries([...points].map(([p, v]) => [p, { v: v.value, u: v.unit, q: v.quality, ts: v.ts }]));
    }
    return {
      // the page shows times in the gateway's zone, not the browser's (edge/timeFormat.ts)
      gateway: { id: ctx.config.gateway.id, site: ctx.config.gateway.site ?? null, timezone: ctx.config.gateway.timezone },
      principal: principal.principal,
      role: principal.role,
      may: { commandLighting: can(principal.role, 'command.lighting') },
      groups: [...groups],
      ...this.status(),
      values,
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
  const feed = new LiveFeed(env);

  r.add('POST', '/api/v1/live/ticket', 'read', ({ url, principal }) => {
    query(url, []);
    const p = principal!;
    return {
      status: 200,
      body: { ticket: feed.issueTicket(p), expiresInS: TICKET_TTL_MS / 1000, role: p.role, principal: p.principal, may: { commandLighting: can(p.role, 'command.lighting') } },
    };
  });

  r.add('GET', '/api/v1/live', 'public', ({ req, res, url, principal }) => {
    const q = query(url, ['ticket']);
    const ticket = q.get('ticket');
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
  });
  return feed;
}
