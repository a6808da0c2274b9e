/**
 * GET /: the status page for technicians, served by the gateway itself (cabinets are often
 * offline: no CDN, no build step). The page is a public shell (edge/api/static/index.html,
 * status.css, status.js) that holds no data: its script asks for an API token, keeps it in
 * sessionStorage, trades it for a live ticket and renders the stream of live.ts (health,
 * buses and devices, latest values, buffer and sync, events, commands, a dim control per
 * group for roles with command.lighting). A request that already carries a bearer token that
 * may `read` (curl, a browser without JavaScript) gets a server-rendered summary instead. Both
 * show times in the gateway's zone, ISO 8601 with the offset (edge/timeFormat.ts).
 */
import { readFileSync } from 'node:fs';
import { asset } from '../../assets.js';
import type { SyncStatus } from '../../../cloud-sync/index.js';
import { can } from '../../control/roles.js';
import { autonomyText, upstreamText } from '../../economyText.js';
import { isoLocal } from '../../timeFormat.js';
import type { Router } from '../router.js';
import { safeDevices, type RouteEnv } from './env.js';
import { liveRoutes } from './live.js';

const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'";

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = 'body{font:15px system-ui,sans-serif;margin:1.5em;max-width:60em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.on{color:#070}.off{color:#a00}';

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>\n`;
}

function table(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const cell = (v: unknown): string => escapeHtml(v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

function rendered(env: RouteEnv): string {
  const gw = env.ctx.config.gateway;
  const status = env.deps.status() as { components?: { name?: unknown; state?: unknown; lastError?: unknown }[]; sync?: Partial<SyncStatus> } | null;
  const components = Array.isArray(status?.components) ? status.components : [];
  const rows = new Map(safeDevices(env).filter((d): d is { id: string } => typeof (d as { id?: unknown })?.id === 'string').map((d) => [d.id, d as Record<string, unknown>]));
  const avail = (id: string): string => {
    const online = rows.get(id)?.['online'] ?? env.availability.get(id)?.online;
    return online === true ? '<span class="on">online</span>' : online === false ? '<span class="off">offline</span>' : '—';
  };
  const stats = env.ctx.store.stats();
  return layout(
    `streetbox ${gw.id}`,
    `<h1>streetbox <span id="gw">${escapeHtml(gw.id)}</span></h1><p>${escapeHtml(gw.site ?? '')}</p>` +
      `<h2>Components</h2>${table(['component', 'state', 'last error'], components.map((c) => [cell(c.name), cell(c.state), cell(c.lastError)]))}` +
      `<h2>Devices</h2>${table(['device', 'profile', 'groups', 'availability', 'last seen'], env.ctx.config.devices.map((d) => [cell(d.id), cell(d.profile), cell(d.groups.join(', ')), avail(d.id), cell(typeof rows.get(d.id)?.['lastSeen'] === 'number' ? isoLocal(rows.get(d.id)!['lastSeen'] as number, gw.timezone) : null)]))}` +
      `<h2>Buffer</h2><p>${stats.readings} readings, ${stats.events} events, ${Math.round(stats.usedBytes / 1024)} KiB of ${Math.round(stats.maxBytes / 1024)} KiB, ${stats.droppedTotal} dropped</p>` +
      `<p id="autonomy">${escapeHtml(autonomyText(stats.autonomy))}</p>` +
      (typeof status?.sync?.bytesToday === 'number' ? `<h2>Upstream</h2><p id="upstream">${escapeHtml(upstreamText(status.sync as SyncStatus))}</p>` : ''),
  );
}

/** A file of edge/api/static/, read once (asset() finds it from the sources and from dist/). */
function staticFile(name: string): () => string {
  let text: string | null = null;
  return () => (text ??= readFileSync(asset(`edge/api/static/${name}`), 'utf8'));
}

const SHELL_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'";

export function pageRoutes(r: Router, env: RouteEnv): void {
  const shell = staticFile('index.html');
  const script = staticFile('status.js');
  const firmware = staticFile('firmware.js');
  const style = staticFile('status.css');
  r.add('GET', '/', 'public', ({ principal }) =>
    principal && can(principal.role, 'read')
      ? { status: 200, text: rendered(env), contentType: 'text/html; charset=utf-8', headers: { 'Content-Security-Policy': PAGE_CSP } }
      : { status: 200, text: shell(), contentType: 'text/html; charset=utf-8', headers: { 'Content-Security-Policy': SHELL_CSP } },
  );
  r.add('GET', '/status.js', 'public', () => ({ status: 200, text: script(), contentType: 'text/javascript; charset=utf-8' }));
  // the Firmware section (issue 17), in its own file: status.js calls its hooks
  r.add('GET', '/firmware.js', 'public', () => ({ status: 200, text: firmware(), contentType: 'text/javascript; charset=utf-8' }));
  r.add('GET', '/status.css', 'public', () => ({ status: 200, text: style(), contentType: 'text/css; charset=utf-8' }));
  liveRoutes(r, env);
}
