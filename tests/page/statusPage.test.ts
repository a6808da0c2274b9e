/**
 * The status page on a real gateway (two simulated streetlight controllers on Modbus TCP):
 * the live feed's door (401 without a valid ticket, a ticket is single-use), then a headless
 * Chromium (Debian's, driven by playwright-core) that signs in with a technician token, sees
 * the devices and a value change without a reload, dims a group and sees the command
 * verified; a viewer sees no dim control; event details are shown as text, never as markup;
 * times are ISO 8601 in the gateway's zone (not the browser's), with each instant's offset.
 * Screenshots (desktop and a 375 px phone) go to tests/artifacts/.
 */
import { statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../edge/main.js';
import { isoLocal } from '../../edge/timeFormat.js';
import { tempGateway } from '../support/cli.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { loggerToLines } from '../helpers/logLines.js';
import { ARTIFACTS, expectPhoneFits, signIn, suiteBrowser } from './browser.js';

const TECH = 'page-technician-token-00000001';
const VIEWER = 'page-viewer-token-000000000001';
/** the gateway's zone; the browser runs in another (America/New_York) */
const ZONE = 'Europe/Amsterdam';
const WINTER = Date.UTC(2026, 0, 15, 12, 0, 0);
const SUMMER = Date.UTC(2026, 6, 15, 12, 0, 0);
/** ISO 8601 with an offset, to the second */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/;

let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let base: string;
const logLines: string[] = [];

beforeAll(async () => {
  dir = tempGateway(`
gateway: { id: page-gw, site: Rue de la Paix, timezone: Europe/Amsterdam }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 250ms, groups: [main] }
  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 250ms, groups: [main] }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TECH}, role: technician }
    - { name: viewer, token: ${VIEWER}, role: viewer }
simulate: true
`);
  const log = loggerToLines(logLines);
  gw = await startGateway({ configPath: dir.config, log });
  base = `http://127.0.0.1:${gw.built.api!.port()}`;
});

afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
});

async function ticket(token: string): Promise<{ status: number; json: { ticket: string; role: string; may: { commandLighting: boolean } } }> {
  const r = await fetch(`${base}/api/v1/live/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  return { status: r.status, json: (await r.json()) as never };
}

/** Opens the live stream; resolves with the status and the first event (or the error body). */
function openLive(path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; first: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        const end = text.indexOf('\n\n', text.indexOf('event:'));
        if (res.statusCode !== 200 || (text.includes('event:') && end > 0)) {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), first: text });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), first: text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the live feed (GET /api/v1/live)', () => {
  it('answers 401 without a valid ticket or token, and a ticket works once', async () => {
    const none = await openLive('/api/v1/live');
    expect(none.status).toBe(401);
    expect(JSON.parse(none.first)).toMatchObject({ status: 'error', code: 'E_UNAUTHORIZED' });
    expect((await openLive('/api/v1/live?ticket=made-up')).status).toBe(401);
    expect((await openLive('/api/v1/live', { Authorization: 'Bearer not-a-token-0000000' })).status).toBe(401);
    expect((await ticket('not-a-token-0000000')).status).toBe(401);

    const atRest = polledOwners();
    const t = await ticket(VIEWER);
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ role: 'viewer', may: { commandLighting: false } });
    const live = await openLive(`/api/v1/live?ticket=${encodeURIComponent(t.json.ticket)}`);
    expect(live.status).toBe(200);
    expect(live.type).toMatch(/^text\/event-stream/);
    const data = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(live.first)![1]!) as Record<string, unknown>;
    expect(data).toMatchObject({ gateway: { id: 'page-gw', timezone: ZONE }, role: 'viewer', groups: ['main'], devices: [{ id: 'lamp-1', bus: 'net' }, { id: 'lamp-2', bus: 'net' }] });
    expect((await openLive(`/api/v1/live?ticket=${encodeURIComponent(t.json.ticket)}`)).status).toBe(401); // single-use
    // the client went away: the feed's bus listeners are gone with it
    await expect.poll(() => polledOwners()).toBe(atRest);
  });

  it('holds at most 32 clients (503 past that) and lets go of them when they leave', async () => {
    const atRest = polledOwners();
    const held: ReturnType<typeof request>[] = [];
    const opened = await Promise.all(
      Array.from({ length: 33 }, () =>
        new Promise<number>((resolve, reject) => {
          const req = request(`${base}/api/v1/live`, { headers: { Authorization: `Bearer ${VIEWER}` } }, (res) => {
            resolve(res.statusCode ?? 0);
            res.resume();
          });
          req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
          held.push(req);
          req.end();
        }),
      ),
    );
    expect(opened.filter((st) => st === 200)).toHaveLength(32);
    expect(opened.filter((st) => st === 503)).toHaveLength(1);
    for (const req of held) req.destroy();
    await expect.poll(() => polledOwners()).toBe(atRest);
    expect((await openLive('/api/v1/live', { Authorization: `Bearer ${VIEWER}` })).status).toBe(200); // room again
  });

  it('coalesces values: one update per flush, the latest value per point', async () => {
    await expect.poll(() => gw.context.store.latestAll().size, { timeout: 5000 }).toBe(2); // both controllers polled
    let polled = 0;
    gw.context.bus.on('page-test', 'polled', (rows) => (polled += rows.length));
    const frames = await collectLive(TECH, 1600);
    gw.context.bus.off('page-test');
    expect(frames[0]!.event).toBe('snapshot');
    const updates = frames.filter((f) => f.event === 'update');
    expect(updates.length).toBeGreaterThan(0);
    expect(updates.length).toBeLessThanOrEqual(4); // every 500 ms, whatever the poll rate
    const count = (values: unknown): number => Object.values((values ?? {}) as Record<string, object>).reduce((m, points) => m + Object.keys(points).length, 0);
    const points = [...gw.context.store.latestAll().values()].reduce((n, m) => n + m.size, 0); // every point of both controllers
    const perUpdate = updates.map((u) => count(u.data['values']));
    // an update carries at most one value per point, however many values were polled meanwhile
    for (const n of perUpdate) expect(n).toBeLessThanOrEqual(points);
    const cells = perUpdate.reduce((a, b) => a + b, 0);
    expect(cells).toBeGreaterThan(0);
    expect(cells).toBeLessThanOrEqual(polled);
  });
});

/** The frames of a live stream (bearer `token`) over `ms`: a measurement window (the test bounds the update rate), not a wait. */
function collectLive(token: string, ms: number): Promise<{ event: string; data: Record<string, unknown> }[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = request(`${base}/api/v1/live`, { headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
    });
    req.on('error', (err) => (text === '' ? reject(err) : undefined));
    req.end();
    setTimeout(() => {
      req.destroy();
      const frames = text.split('\n\n').filter((f) => f.startsWith('event:'));
      resolve(frames.map((f) => ({ event: /^event: (\w+)/.exec(f)![1]!, data: JSON.parse(/\ndata: (.*)$/m.exec(f)![1]!) as Record<string, unknown> })));
    }, ms);
  });
}

/** How many owners listen to polled values on the gateway's bus (the live feed is one while a client is connected). */
function polledOwners(): number {
  return (gw.context.bus as unknown as { listeners: Map<string, Map<object, unknown>> }).listeners.get('polled')?.size ?? 0;
}

describe('the server-rendered summary (GET / with a bearer token)', () => {
  it('shows the last-seen times in the gateway zone with the offset', async () => {
    await expect.poll(() => gw.context.store.latestAll().size, { timeout: 5000 }).toBe(2);
    const html = await (await fetch(`${base}/`, { headers: { Authorization: `Bearer ${VIEWER}` } })).text();
    const seen = [...html.matchAll(/<td>(\d{4}-[^<]+)<\/td>/g)].map((m) => m[1]!);
    expect(seen.length).toBeGreaterThan(0);
    const offset = isoLocal(Date.now(), ZONE).slice(-6);
    for (const t of seen) expect(t).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\${offset}$`));
  });
});

describe.skipIf(!HAS_CHROMIUM)('the status page in Chromium', () => {
  const browser = suiteBrowser();

  const cell = (page: Page, device: string, point: string) => page.locator(`[data-device="${device}"] [data-point="${point}"]`);

  it('a technician signs in, sees values change live, dims a group and sees it verified', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/`);

    await signIn(page, 'wrong-token-000000000000');
    await expect.poll(() => page.locator('#login-error').textContent()).toMatch(/not accepted/);
    expect(await page.locator('#app').isHidden()).toBe(true);

    await signIn(page, TECH);
    await page.locator('[data-device="lamp-2"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('[data-device="lamp-1"] .avail').textContent(), { timeout: 5000 }).toBe('online');
    await expect.poll(() => page.locator('#gw').textContent()).toBe('page-gw · Rue de la Paix');
    await expect.poll(() => page.locator('#components').textContent()).toMatch(/modbus: running/);
    await expect.poll(() => page.locator('#health').textContent()).toMatch(/\d+ readings/);

    // a value changes on screen without a reload (mains voltage jitters on the simulator)
    await page.evaluate('window.sameDocument = true');
    await page.locator('[data-device="lamp-1"] summary').click();
    const voltage = cell(page, 'lamp-1', 'mains_voltage');
    await voltage.waitFor({ timeout: 5000 });
    const first = await voltage.textContent();
    await expect.poll(() => voltage.textContent(), { timeout: 5000 }).not.toBe(first);
    expect(await page.evaluate('window.sameDocument')).toBe(true);

    // dim the group: the command is shown until it is verified, and the setpoint follows
    const row = page.locator('[data-group-row="main"]');
    await row.locator('input[type=range]').fill('35');
    await row.locator('button[data-action="dim"]').click();
    await page.locator('#pending li[data-status="verified"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#pending li').first().textContent()).toMatch(/dim 35 % → group main.*verified/);
    await expect.poll(() => cell(page, 'lamp-1', 'ch1_dim_setpoint').textContent(), { timeout: 5000 }).toBe('35 %');
    await expect.poll(() => page.locator('#commands').textContent()).toMatch(/dim 35 % → group main by technician:tech: verified/);

    // event details are text: markup in them is shown, never run
    gw.context.store.appendEvent({ device: 'lamp-1', kind: 'alarm.raised', severity: 'warning', detail: { alarm: '<img src=x id=injected onerror="window.pwned=1">', point: 'ch1_status', value: 1, bit: 0 } });
    await expect.poll(() => page.locator('#events').textContent()).toContain('<img src=x id=injected');
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.evaluate('window.pwned')).toBeUndefined();

    // times: the gateway's zone with the offset of each instant, not the browser's New York time
    // (two alarms the profile does not have, named for the season, so each row can be found by its text)
    gw.context.store.appendEvent({ ts: WINTER, device: 'lamp-2', kind: 'alarm.cleared', severity: 'info', detail: { alarm: 'winter_check', point: 'ch1_status', value: 0 } });
    gw.context.store.appendEvent({ ts: SUMMER, device: 'lamp-2', kind: 'alarm.cleared', severity: 'info', detail: { alarm: 'summer_check', point: 'ch1_status', value: 0 } });
    await expect.poll(() => page.locator('#events').textContent()).toContain('summer_check');
    expect(await page.locator('#events li', { hasText: 'winter_check' }).locator('time').textContent()).toBe('2026-01-15T13:00:00+01:00');
    expect(await page.locator('#events li', { hasText: 'summer_check' }).locator('time').textContent()).toBe('2026-07-15T14:00:00+02:00');
    expect(await page.locator('#events li', { hasText: 'summer_check' }).locator('time').getAttribute('datetime')).toBe(new Date(SUMMER).toISOString());
    const offsetNow = isoLocal(Date.now(), ZONE).slice(-6);
    const commandTime = await page.locator('#commands li time').first().textContent();
    expect(commandTime).toMatch(ISO);
    expect(commandTime!.endsWith(offsetNow)).toBe(true);
    const updated = await page.locator('#health dd').last().textContent();
    expect(updated).toMatch(ISO);
    expect(updated!.endsWith(offsetNow)).toBe(true);

    await page.screenshot({ path: join(ARTIFACTS, 'status-page-desktop.png'), fullPage: true });

    // a phone: no horizontal scroll at 375 px
    await expectPhoneFits(page);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-phone.png'), fullPage: true });
    expect(statSync(join(ARTIFACTS, 'status-page-phone.png')).size).toBeGreaterThan(10_000);

    // the token is kept for the browser session: a reload signs in again
    await page.reload();
    await page.locator('[data-device="lamp-1"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#login').isHidden()).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a viewer sees the devices but no dim control; where the browser lacks the zone, the offset the gateway sends', async () => {
    const page = await browser.newPage();
    // a browser whose Intl does not know the gateway's zone
    await page.addInitScript(`{
      const Real = Intl.DateTimeFormat;
      Intl.DateTimeFormat = function (locale, opts) {
        if (opts && opts.timeZone === ${JSON.stringify(ZONE)}) throw new RangeError('Invalid time zone specified');
        return new Real(locale, opts);
      };
    }`);
    await page.goto(`${base}/`);
    expect(await page.locator('#app').isHidden()).toBe(true); // a new tab: a new session, signed out
    await signIn(page, VIEWER);
    await page.locator('[data-device="lamp-1"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#conn').textContent()).toMatch(/viewer/);
    expect(await page.locator('#dim-section').isHidden()).toBe(true);
    expect(await page.locator('[data-group-row]').count()).toBe(0);
    expect(await page.evaluate(`(() => { try { new Intl.DateTimeFormat('en-US', { timeZone: ${JSON.stringify(ZONE)} }); return 'ok'; } catch (e) { return e.name; } })()`)).toBe('RangeError');
    await expect.poll(() => page.locator('#health dd').last().textContent()).toMatch(ISO);
    expect((await page.locator('#health dd').last().textContent())!.endsWith(isoLocal(Date.now(), ZONE).slice(-6))).toBe(true);
    await page.close();
  });

  it('never logs a token or a ticket', () => {
    const all = logLines.join('');
    expect(all).toContain('/api/v1/live'); // requests are logged…
    for (const secret of [TECH, VIEWER]) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/ticket=/); // …without their query
  });
});
