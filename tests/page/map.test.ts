/**
 * Issue 19 Deliver 3, the map of the lights, in Debian's Chromium:
 * - on the shipped demo (devices.yaml as it is, ports moved to free ones, the buffer in a temp
 *   dir), at 390×844 and at 1440×900: a marker per located device and one for the cabinet, each
 *   coloured as the legend colours the state the live feed's row gives it; a light dimmed through
 *   the API turns dimmed; tapping a marker (or Enter on it) opens the device; drawn to scale
 *   without tiles (the scale bar agrees with the positions), fitted to the box at either size;
 * - with api.mapTiles pointing at a tile server on loopback: Leaflet is loaded from the gateway
 *   and asks that server for tiles.
 * The page's own rows are read by a section of the test's, registered before the page's scripts
 * (status.js hands every section the same status rows). Screenshots: tests/artifacts/map-*.png.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { DEMO, startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { ROOT, tempGateway } from '../support/cli.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, signIn, suiteBrowser } from './browser.js';

/** The test's own section: the status rows the page was last given, and the devices it was asked to open. */
const SPY = `window.__opened = []; window.streetboxSections = [{ status(s) { window.__rows = s.devices; }, open(id) { window.__opened.push(id); } }];`;
/** whether the device view (device.js) is there yet: then opening a device shows section#device-view */
const HAS_DEVICE_VIEW = readFileSync(join(ROOT, 'edge/api/static/device.js'), 'utf8').includes('device-view');
const M_PER_DEG = (6371008.8 * Math.PI) / 180;

interface Row {
  id: string;
  state: string;
  level: number | null;
  lat: number | null;
  lon: number | null;
}

interface Drawn {
  map: { kind: string; w: number; h: number };
  legend: Record<string, { colour: string; count: number }>;
  markers: { id: string; state: string; colour: string; x: number; y: number; w: number; h: number }[];
  cabinets: number;
  rows: Row[];
  scale: { metres: number; px: number } | null;
}

/** What the map shows and what the page's rows say, read in one go (both are set by the same status hook call). */
const DRAWN = `(() => {
  const map = document.getElementById('map');
  const box = map.getBoundingClientRect();
  const legend = {};
  for (const li of document.querySelectorAll('#map-legend li[data-state]')) {
    legend[li.dataset.state] = { colour: getComputedStyle(li.querySelector('.swatch')).backgroundColor, count: Number(li.querySelector('.count').textContent) };
  }
  const markers = [...map.querySelectorAll('[data-device]')].map((el) => {
    const id = el.dataset.device;
    const dot = map.querySelector('.map-dot[data-dot="' + CSS.escape(id) + '"]');
    const hit = el.classList.contains('map-hit') ? el : el.querySelector('.map-hit');
    const r = hit.getBoundingClientRect();
    return { id, state: el.dataset.state || '', colour: getComputedStyle(dot).fill, x: r.x + r.width / 2 - box.x, y: r.y + r.height / 2 - box.y, w: r.width, h: r.height };
  });
  const bar = map.querySelector('.map-scale');
  return {
    map: { kind: map.dataset.map || '', w: box.width, h: box.height },
    legend,
    markers,
    cabinets: map.querySelectorAll('[data-gateway]').length,
    rows: window.__rows,
    scale: bar ? { metres: Number(bar.dataset.metres), px: Number(bar.dataset.px) } : null,
  };
})()`;
const drawn = (page: Page): Promise<Drawn> => page.evaluate<Drawn>(DRAWN);
const opened = (page: Page): Promise<string[]> => page.evaluate<string[]>('window.__opened');

/** Each marker's state is its row's, its colour the legend's for that state, and the legend counts the rows. */
function expectColouredAsRows(d: Drawn): void {
  const byId = new Map(d.rows.map((r) => [r.id, r]));
  for (const m of d.markers) {
    expect(m.state, m.id).toBe(byId.get(m.id)!.state);
    expect(m.colour, `${m.id} (${m.state})`).toBe(d.legend[m.state]!.colour);
  }
  for (const [state, { count }] of Object.entries(d.legend)) expect(count, state).toBe(d.rows.filter((r) => r.lat !== null && r.state === state).length);
}

describe.skipIf(!HAS_CHROMIUM)('the map of the demo', () => {
  const browser = suiteBrowser({ width: 390, height: 844 });
  let demo: InProcessDemo;
  let gw: Gateway;
  let base: string;
  const located = (): { id: string; lat: number; lon: number }[] =>
    gw.context.config.devices.filter((d) => d.lat !== undefined && d.lon !== undefined).map((d) => ({ id: d.id, lat: d.lat!, lon: d.lon! }));

  beforeAll(async () => {
    // the editor plays no part in the map (and takes seconds to start)
    demo = await startDemoInProcess({ nodeRed: false });
    ({ gw, base } = demo);
  });

  afterAll(async () => {
    await demo?.stop();
  });

  /** errors thrown on the page (status.js and every section share it: one that throws stops the others) */
  const pageErrors: string[] = [];

  async function open(width: number, height: number): Promise<Page> {
    const page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.setViewportSize({ width, height });
    await page.addInitScript(SPY);
    await signIn(page, DEMO.technicianToken, base + '/');
    await page.locator('#map-section').waitFor({ state: 'visible', timeout: 15_000 });
    // the status rows reach the sections (an error thrown on the page before that shows here)
    await expect.poll(async () => ({ rows: await page.evaluate<boolean>('Array.isArray(window.__rows)'), pageErrors }), { timeout: 10_000 }).toEqual({ rows: true, pageErrors: [] });
    return page;
  }

  it('at 390×844: a marker per located device and the cabinet, coloured as the live rows say; a dimmed light turns dimmed; a tap opens it', async () => {
    expect(located()).toHaveLength(8); // every device of the demo has a position
    const page = await open(390, 844);
    const ids = located().map((d) => d.id).sort();
    let d = await drawn(page);
    expect(d.map.kind).toBe('svg'); // no api.mapTiles: the plain map, drawn offline
    expect(d.markers.map((m) => m.id).sort()).toEqual(ids);
    expect(d.cabinets).toBe(1);
    // six states, six colours
    expect(Object.keys(d.legend)).toEqual(['on', 'dimmed', 'off', 'offline', 'alarm', 'unknown']);
    expect(new Set(Object.values(d.legend).map((l) => l.colour)).size).toBe(6);
    // once every light has reported its level, each marker shows its row's state
    await expect.poll(async () => (await drawn(page)).rows.filter((r) => r.state === 'unknown').map((r) => r.id), { timeout: 20_000 }).toEqual([]);
    expectColouredAsRows(await drawn(page));
    // tap targets of 44 px, whole inside the map
    d = await drawn(page);
    for (const m of d.markers) {
      expect(Math.min(m.w, m.h), m.id).toBeGreaterThanOrEqual(44);
      expect(m.x - 22, m.id).toBeGreaterThanOrEqual(0);
      expect(m.x + 22, m.id).toBeLessThanOrEqual(d.map.w);
    }
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);

    // a light switched to full through the API shows as on; dimmed, it shows as dimmed at its level
    // (whatever the demo's night schedule has set it to meanwhile)
    const marker = page.locator('#map [data-device="lamp-ctrl-03"]');
    const dim = async (level: number): Promise<void> => {
      const r = await fetch(`${base}/api/v1/devices/lamp-ctrl-03/commands`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${DEMO.technicianToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ action: 'dim', level }),
      });
      expect(r.status).toBe(202);
    };
    // a status refresh sets the markers' state; it does not draw them again
    await page.evaluate("document.querySelectorAll('#map [data-device]').forEach((el) => (el.kept = true))");
    await dim(100);
    await expect.poll(() => marker.getAttribute('aria-label'), { timeout: 15_000 }).toBe('Prins Hendrikkade 1 (lamp-ctrl-03): on 100 %');
    expect(await marker.getAttribute('data-state')).toBe('on');
    expectColouredAsRows(await drawn(page));
    await dim(40);
    await expect.poll(() => marker.getAttribute('aria-label'), { timeout: 15_000 }).toBe('Prins Hendrikkade 1 (lamp-ctrl-03): dimmed 40 %');
    d = await drawn(page);
    expect(d.rows.find((x) => x.id === 'lamp-ctrl-03')).toMatchObject({ state: 'dimmed', level: 40 });
    expect(d.markers.find((m) => m.id === 'lamp-ctrl-03')).toMatchObject({ state: 'dimmed', colour: d.legend['dimmed']!.colour });
    expect(await page.evaluate<boolean>("[...document.querySelectorAll('#map [data-device]')].every((el) => el.kept === true)")).toBe(true);
    expectColouredAsRows(d);

    // a tap opens the device; its marker keeps its name shown
    await marker.click();
    await expect.poll(() => opened(page)).toEqual(['lamp-ctrl-03']);
    if (HAS_DEVICE_VIEW) await page.locator('section#device-view').waitFor({ state: 'visible', timeout: 5000 });
    await expect(marker.locator('.map-label').textContent()).resolves.toBe('Prins Hendrikkade 1');
    expect(await marker.locator('.map-label').isVisible()).toBe(true);
    expect(await page.locator('#map [data-device="lamp-ctrl-01"] .map-label').isVisible()).toBe(false);
    // and from the keyboard
    await page.locator('#map [data-device="tc-01"]').focus();
    expect(await page.locator('#map [data-device="tc-01"] .map-label').isVisible()).toBe(true);
    await page.keyboard.press('Enter');
    await expect.poll(() => opened(page)).toEqual(['lamp-ctrl-03', 'tc-01']);

    await page.locator('#map-section').scrollIntoViewIfNeeded();
    await page.locator('#map-section').screenshot({ path: join(ARTIFACTS, 'map-390.png') });
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it('at 1440×900: drawn to scale (the scale bar agrees with the positions), fitted to the box, and again after a resize', async () => {
    const page = await open(1440, 900);
    await expect.poll(async () => (await drawn(page)).markers.length).toBe(8);
    /** `wider`: the map's width is past this (the page's column at that window size) */
    const check = async (wider: number): Promise<void> => {
      const d = await drawn(page);
      expect(d.map.w).toBeGreaterThan(wider);
      const at = new Map(d.markers.map((m) => [m.id, m]));
      // the positions as metres east and north (equirectangular about the mean latitude, as the map draws them)
      const pos = located();
      const lat0 = pos.reduce((a, p) => a + p.lat, gw.context.config.gateway.lat!) / (pos.length + 1);
      const metres = (p: { lat: number; lon: number }): { x: number; y: number } => ({ x: p.lon * Math.cos((lat0 * Math.PI) / 180) * M_PER_DEG, y: p.lat * M_PER_DEG });
      const a = pos.find((p) => p.id === 'tc-01')!;
      const b = pos.find((p) => p.id === 'park-light-03')!;
      const c = pos.find((p) => p.id === 'lamp-ctrl-01')!;
      const pxPerM = d.scale!.px / d.scale!.metres;
      for (const [p, q] of [
        [a, b],
        [a, c],
        [b, c],
      ] as const) {
        const m = Math.hypot(metres(p).x - metres(q).x, metres(p).y - metres(q).y);
        const px = Math.hypot(at.get(p.id)!.x - at.get(q.id)!.x, at.get(p.id)!.y - at.get(q.id)!.y);
        expect(px / m, `${p.id}–${q.id}`).toBeCloseTo(pxPerM, 2);
      }
      // north is up: lamp-ctrl-01 (the northernmost) is drawn highest, park-light-03 east of tc-01
      expect(Math.min(...d.markers.map((m) => m.y))).toBe(at.get('lamp-ctrl-01')!.y);
      expect(at.get('park-light-03')!.x).toBeGreaterThan(at.get('tc-01')!.x);
      // fitted: inside the box, and filling it one way or the other
      const xs = d.markers.map((m) => m.x);
      const ys = d.markers.map((m) => m.y);
      for (const m of d.markers) {
        expect(m.x).toBeGreaterThanOrEqual(22);
        expect(m.x).toBeLessThanOrEqual(d.map.w - 22);
        expect(m.y).toBeGreaterThanOrEqual(22);
        expect(m.y).toBeLessThanOrEqual(d.map.h - 22);
      }
      const fill = Math.max((Math.max(...xs) - Math.min(...xs)) / d.map.w, (Math.max(...ys) - Math.min(...ys)) / d.map.h);
      expect(fill).toBeGreaterThan(0.75);
    };
    await check(800);
    // a name on hover
    const north = page.locator('#map [data-device="lamp-ctrl-01"] .map-label');
    expect(await north.isVisible()).toBe(false);
    await page.locator('#map [data-device="lamp-ctrl-01"]').hover();
    expect(await north.isVisible()).toBe(true);
    expect(await north.textContent()).toBe('Stationsplein north');
    await expect.poll(async () => (await drawn(page)).rows.filter((r) => r.state === 'unknown').length, { timeout: 20_000 }).toBe(0);
    expectColouredAsRows(await drawn(page));
    await page.locator('#map-section').scrollIntoViewIfNeeded();
    await page.locator('#map-section').screenshot({ path: join(ARTIFACTS, 'map-1440.png') });

    // the window narrows to a phone's: the same markers move, and fit again
    await page.evaluate("document.querySelectorAll('#map [data-device]').forEach((el) => (el.kept = true))");
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(async () => (await drawn(page)).map.w).toBeLessThan(390);
    // the ResizeObserver places the markers in a later frame than the box shrinks
    await expect.poll(async () => {
      const d = await drawn(page);
      return d.markers.every((m) => m.x <= d.map.w - 22 && m.y <= d.map.h - 22);
    }).toBe(true);
    await check(300);
    expect(await page.evaluate<boolean>("[...document.querySelectorAll('#map [data-device]')].every((el) => el.kept === true)")).toBe(true);
    await page.close();
    expect(pageErrors).toEqual([]);
  });
});

describe.skipIf(!HAS_CHROMIUM)('the map with api.mapTiles', () => {
  const TECH = 'map-technician-token-0000001';
  /** a 1×1 PNG: the tile server's answer to every tile */
  const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
  const browser = suiteBrowser({ width: 1440, height: 900 });
  const tileRequests: string[] = [];
  let tileServer: Server;
  let gw: Gateway;
  let dir: ReturnType<typeof tempGateway>;
  let base: string;

  beforeAll(async () => {
    tileServer = createServer((req, res) => {
      tileRequests.push(req.url ?? '');
      const ok = /^\/tiles\/\d+\/\d+\/\d+\.png$/.test(req.url ?? '');
      res.writeHead(ok ? 200 : 404, { 'Content-Type': ok ? 'image/png' : 'text/plain' });
      res.end(ok ? PNG : 'no such tile');
    });
    await new Promise<void>((resolve) => tileServer.listen(0, '127.0.0.1', resolve));
    const tiles = `http://127.0.0.1:${(tileServer.address() as AddressInfo).port}/tiles/{z}/{x}/{y}.png`;
    dir = tempGateway(`
gateway: { id: tiles-gw, timezone: Europe/Amsterdam, lat: 52.3791, lon: 4.9003 }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, name: Damrak 1, bus: net, unit: 1, profile: streetlight-controller, poll: 250ms, groups: [main], lat: 52.3775, lon: 4.8980 }
  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 250ms, groups: [main], lat: 52.3780, lon: 4.8990 }
  - { id: lamp-3, bus: net, unit: 3, profile: streetlight-controller, poll: 250ms, groups: [main] }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  mapTiles: "${tiles}"
  mapAttribution: "© test tiles <b>not markup</b>"
  tokens:
    - { name: tech, token: ${TECH}, role: technician }
simulate: true
`);
    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    base = `http://127.0.0.1:${gw.built.api!.port()}`;
  });

  afterAll(async () => {
    await gw?.stop();
    dir?.cleanup();
    await new Promise((resolve) => tileServer?.close(resolve));
  });

  it('loads Leaflet from the gateway, asks the tile server for tiles, and puts the markers on them', async () => {
    const page = await browser.newPage();
    const refused: string[] = [];
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) refused.push(m.text());
    });
    const vendor: string[] = [];
    page.on('request', (req) => {
      if (req.url().includes('/vendor/leaflet')) vendor.push(new URL(req.url()).pathname);
    });
    await page.addInitScript(SPY);
    await signIn(page, TECH, base + '/');
    await expect.poll(() => page.locator('#map').getAttribute('data-map'), { timeout: 15_000 }).toBe('leaflet');
    expect(vendor.sort()).toEqual(['/vendor/leaflet.css', '/vendor/leaflet.js']);
    await expect.poll(() => tileRequests.filter((u) => u.startsWith('/tiles/')).length, { timeout: 10_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#map img.leaflet-tile-loaded').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    // the located lights and the cabinet; lamp-3 has no position and is counted as such
    let d = await drawn(page);
    expect(d.markers.map((m) => m.id).sort()).toEqual(['lamp-1', 'lamp-2']);
    expect(d.cabinets).toBe(1);
    expect(await page.locator('#map-legend .unplaced').textContent()).toBe('1 device has no position (lat/lon in devices.yaml)');
    await expect.poll(async () => (await drawn(page)).markers.map((m) => m.state), { timeout: 10_000 }).not.toContain('unknown');
    d = await drawn(page);
    expectColouredAsRows(d);
    for (const m of d.markers) expect(Math.min(m.w, m.h)).toBeGreaterThanOrEqual(44);
    // the attribution as text, never as markup
    expect(await page.locator('#map .map-attribution').textContent()).toBe('© test tiles <b>not markup</b>');
    // a tap opens the device, its name shows
    await page.locator('#map [data-device="lamp-1"]').click();
    await expect.poll(() => opened(page)).toEqual(['lamp-1']);
    await expect.poll(() => page.locator('#map .leaflet-tooltip').allTextContents()).toContain('Damrak 1');
    expect(refused).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.locator('#map-section').screenshot({ path: join(ARTIFACTS, 'map-tiles-1440.png') });
    await page.close();
  });
});
