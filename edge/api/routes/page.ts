/**
 * GET /: a small placeholder status page for technicians (plain HTML, no CDN; the
 * technician-experience issue replaces it). With a bearer token that may `read`, the page is
 * rendered with the gateway id, components and devices; without one it is an empty shell whose
 * script (/status.js, same origin) asks for a token, keeps it in sessionStorage and fetches
 * /api/v1/status and /api/v1/devices, so the page never shows data to someone without a token.
 */
import { can } from '../../control/roles.js';
import type { Router } from '../router.js';
import { safeDevices, type RouteEnv } from './env.js';

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
  const status = env.deps.status() as { components?: { name?: unknown; state?: unknown; lastError?: unknown }[] } | null;
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
      `<h2>Devices</h2>${table(['device', 'profile', 'groups', 'availability', 'last seen'], env.ctx.config.devices.map((d) => [cell(d.id), cell(d.profile), cell(d.groups.join(', ')), avail(d.id), cell(rows.get(d.id)?.['lastSeen'] ? new Date(rows.get(d.id)!['lastSeen'] as number).toISOString() : null)]))}` +
      `<h2>Buffer</h2><p>${stats.readings} readings, ${stats.events} events, ${Math.round(stats.usedBytes / 1024)} KiB of ${Math.round(stats.maxBytes / 1024)} KiB, ${stats.droppedTotal} dropped</p>`,
  );
}

const SHELL = layout(
  'streetbox',
  '<h1>streetbox <span id="gw"></span></h1><form id="login"><label>API token <input id="token" type="password" autocomplete="off"></label> <button>Show</button></form><div id="out"></div><script src="/status.js"></script>',
);

const SCRIPT = `'use strict';
const out = document.getElementById('out');
const esc = (s) => String(s ?? '—').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
async function get(path, token) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}
async function show(token) {
  try {
    const [s, d] = await Promise.all([get('/api/v1/status', token), get('/api/v1/devices', token)]);
    document.getElementById('gw').textContent = s.gateway;
    out.innerHTML = '<h2>Components</h2><ul>' + (s.components || []).map((c) => '<li>' + esc(c.name) + ': ' + esc(c.state) + '</li>').join('') + '</ul>' +
      '<h2>Devices</h2><ul>' + d.devices.map((x) => '<li>' + esc(x.id) + ' (' + esc(x.profile) + '): ' + (x.online === true ? 'online' : x.online === false ? 'offline' : '—') + '</li>').join('') + '</ul>';
    sessionStorage.setItem('streetbox-token', token);
  } catch (e) {
    out.textContent = String(e.message);
  }
}
document.getElementById('login').addEventListener('submit', (e) => { e.preventDefault(); void show(document.getElementById('token').value); });
const saved = sessionStorage.getItem('streetbox-token');
if (saved) void show(saved);
`;

export function pageRoutes(r: Router, env: RouteEnv): void {
  r.add('GET', '/', 'public', ({ principal }) => ({
    status: 200,
    text: principal && can(principal.role, 'read') ? rendered(env) : SHELL,
    contentType: 'text/html; charset=utf-8',
    headers: { 'Content-Security-Policy': PAGE_CSP },
  }));
  r.add('GET', '/status.js', 'public', () => ({ status: 200, text: SCRIPT, contentType: 'text/javascript; charset=utf-8' }));
}
