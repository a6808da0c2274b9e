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
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { gzipSync } from 'node:zlib';
import { asset } from '../../assets.js';
import type { SyncStatus } from '../../../cloud-sync/index.js';
import { can } from '../../control/roles.js';
import { autonomyText, upstreamText } from '../../economyText.js';
import { isoLocal } from '../../timeFormat.js';
import { z } from 'zod';
import type { Reply, ResponseDoc, Router } from '../router.js';
import { ANY_QUERY } from '../schemas.js';
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

/**
 * The files of the page: its own (edge/api/static/) and the libraries it bundles from
 * node_modules (uPlot for the charts; Leaflet, which map.js loads only when api.mapTiles is set).
 * Served from memory, each read once with its gzip (most of a phone's first load is these
 * bytes: gzip when the browser accepts it) and an ETag, revalidated on each load (no-cache)
 * rather than fetched again. No CDN: cabinets are often offline.
 */
export const PAGE_FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/status.js': { file: 'edge/api/static/status.js', type: 'text/javascript; charset=utf-8' },
  // the Firmware section (issue 17), in its own file: status.js calls its hooks
  '/firmware.js': { file: 'edge/api/static/firmware.js', type: 'text/javascript; charset=utf-8' },
  // the map of the lights, the device view (charts) and the controls (issue 19)
  '/map.js': { file: 'edge/api/static/map.js', type: 'text/javascript; charset=utf-8' },
  '/device.js': { file: 'edge/api/static/device.js', type: 'text/javascript; charset=utf-8' },
  '/control.js': { file: 'edge/api/static/control.js', type: 'text/javascript; charset=utf-8' },
  '/status.css': { file: 'edge/api/static/status.css', type: 'text/css; charset=utf-8' },
  '/page.css': { file: 'edge/api/static/page.css', type: 'text/css; charset=utf-8' },
  '/vendor/uPlot.iife.min.js': { file: 'node_modules/uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.min.css': { file: 'node_modules/uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
  '/vendor/leaflet.js': { file: 'node_modules/leaflet/dist/leaflet.js', type: 'text/javascript; charset=utf-8' },
  '/vendor/leaflet.css': { file: 'node_modules/leaflet/dist/leaflet.css', type: 'text/css; charset=utf-8' },
};

/** Bytes served from memory: as they are, gzipped, and their ETag. */
export interface Served {
  plain: Buffer;
  gzip: Buffer;
  etag: string;
}

/** Bytes made ready to serve: gzipped once, with an ETag from their sha256. */
export function served(plain: Buffer): Served {
  return { plain, gzip: gzipSync(plain, { level: 9 }), etag: `"${createHash('sha256').update(plain).digest('base64url').slice(0, 22)}"` };
}

/** A page file, read and gzipped once (asset() finds it from the sources and from dist/). */
function pageFile(file: string): () => Served {
  let loaded: Served | null = null;
  return () => (loaded ??= served(readFileSync(asset(file))));
}

/** Whether the request accepts gzip (RFC 9110 §12.5.3: `gzip` not refused with q=0). */
function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers['accept-encoding'];
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return value.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** Answers with served bytes: 304 when the request has their ETag, gzipped when it accepts gzip; revalidated on each load (no-cache). */
export function serveFile(req: IncomingMessage, f: Served, type: string): Reply {
  const headers: Record<string, string> = { 'Cache-Control': 'no-cache', ETag: f.etag, Vary: 'Accept-Encoding' };
  if (req.headers['if-none-match'] === f.etag) return { status: 304, text: '', contentType: type, headers };
  if (acceptsGzip(req)) return { status: 200, bytes: f.gzip, contentType: type, headers: { ...headers, 'Content-Encoding': 'gzip' } };
  return { status: 200, bytes: f.plain, contentType: type, headers };
}

/**
 * The origin of the map's tile server as a CSP source (a `{s}` subdomain becomes `*`), or ''
 * when api.mapTiles is unset: the shell may load images from there and nowhere else.
 */
export function tileSource(template: string | undefined): string {
  if (template === undefined) return '';
  const m = /^(https?:\/\/[^/]+)/.exec(template);
  return m ? ' ' + m[1]!.replace('{s}', '*') : '';
}

const shellCsp = (tiles: string): string =>
  `default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:${tiles}; frame-ancestors 'none'; form-action 'none'; base-uri 'none'`;

/** The answers of a file served from memory (serveFile). */
export function fileResponses(description: string, type: string): Readonly<Record<number, ResponseDoc>> {
  const headers = { ETag: 'the bytes\' tag: send it as If-None-Match', 'Content-Encoding': 'gzip when the request accepts it' };
  return {
    200: { description, contentType: type, schema: z.string(), headers },
    304: { description: 'not modified (If-None-Match)', headers: { ETag: headers.ETag } },
  };
}

/** `/vendor/uPlot.min.css` → `getPageVendorUPlotMinCss` */
const operationOf = (path: string): string => `getPage${path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`;

export function pageRoutes(r: Router, env: RouteEnv): void {
  const shell = pageFile('edge/api/static/index.html');
  r.add({
    method: 'GET',
    path: '/',
    access: 'public',
    query: ANY_QUERY,
    doc: () => ({
      operationId: 'getStatusPage',
      summary: 'The status page for technicians',
      description:
        'A public shell that holds no data: its script asks for a token and renders the live feed. A request with a bearer token that may `read` (curl, a browser without JavaScript) gets a server-rendered summary instead. Query parameters are ignored.',
      tags: ['page'],
      responses: {
        ...fileResponses('the shell, or with a token that may read the rendered summary', 'text/html; charset=utf-8'),
      },
    }),
    handler: ({ req, principal }) => {
      if (principal && can(principal.role, 'read')) return { status: 200, text: rendered(env), contentType: 'text/html; charset=utf-8', headers: { 'Content-Security-Policy': PAGE_CSP } };
      const reply = serveFile(req, shell(), 'text/html; charset=utf-8');
      return { ...reply, headers: { ...reply.headers, 'Content-Security-Policy': shellCsp(tileSource(env.ctx.config.api.mapTiles)) } };
    },
  });
  for (const [path, { file, type }] of Object.entries(PAGE_FILES)) {
    const load = pageFile(file);
    r.add({
      method: 'GET',
      path,
      access: 'public',
      query: ANY_QUERY,
      doc: () => ({
        operationId: operationOf(path),
        summary: `A file of the status page: ${file.replace(/^.*\//, '')}`,
        description: 'Served from memory with its ETag, gzipped when the request accepts it. Query parameters are ignored.',
        tags: ['page'],
        responses: fileResponses(`${file.replace(/^.*\//, '')}`, type),
      }),
      handler: ({ req }) => serveFile(req, load(), type),
    });
  }
  liveRoutes(r, env);
}
