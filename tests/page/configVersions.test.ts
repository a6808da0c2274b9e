/**
 * The status page's "Configuration" section on a real gateway (in-process, no devices, the API
 * on a free port): changes go the gateway's own road (edge/reconfig, ConfigManager.submit) as a
 * technician's would, and headless Chromium (Debian's, driven by playwright-core) shows the
 * versions newest first from GET /api/v1/config/versions: version, stage, source, principal,
 * when (ISO 8601 in the gateway's zone), reason; the running one marked; "awaiting confirm
 * until …" while a commit-confirm waits; the section follows a confirm without a reload (the
 * config.* event on the live feed). A viewer, whom the route answers 403, sees no section; a
 * principal with markup in it is shown as text. A screenshot goes to tests/artifacts/.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import type { ConfigManager } from '../../edge/reconfig/manager.js';
import { isoLocal } from '../../edge/timeFormat.js';
import { tempGateway } from '../support/cli.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, expectPhoneFits, signIn, suiteBrowser } from './browser.js';

const TECH = 'config-page-technician-token-01';
const VIEWER = 'config-page-viewer-token-00001';
const ZONE = 'Europe/Amsterdam';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/;

const YAML = `gateway: { id: config-page-gw, timezone: ${ZONE} }
storage: { path: data/gw.db }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${TECH}, role: technician }
    - { name: viewer, token: ${VIEWER}, role: viewer }
simulate: true
`;

let gw: Gateway;
let changes: ConfigManager;
let dir: ReturnType<typeof tempGateway>;
let base: string;

beforeAll(async () => {
  dir = tempGateway(YAML);
  // port 0 (any free port, with simulate: true): the changes below keep the api section, so no listener moves
  gw = await startGateway({ configPath: dir.config, log: silentLogger() });
  changes = gw.configChanges!;
  base = `http://127.0.0.1:${gw.built.api!.port()}`;
  // version 2: a text with a problem, refused with it
  const bad = changes.submit({ source: 'technician', principal: 'tech', content: `${YAML}bogus: 1\n` });
  expect((await bad.outcome).stage).toBe('rejected');
  // version 3: a text with markup in its principal (a token's name is the technician's to choose), confirmed
  const marked = changes.submit({ source: 'technician', principal: '<img src=x id=injected onerror="window.pwned=1">', content: `${YAML}# marked\n`, baseVersion: changes.running()!.version });
  expect((await marked.outcome).stage).toBe('confirmed');
  // version 4: commit-confirm, applied and awaiting the technician's confirm
  const waiting = changes.submit({ source: 'technician', principal: 'tech', content: `${YAML}# waiting\n`, confirmWithinMs: 600_000, force: true });
  expect(await waiting.settled).toMatchObject({ stage: 'applied', confirmBy: expect.any(Number) as number });
});

afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
});

describe('GET /api/v1/config/versions, as the page reads it', () => {
  it('answers the technician with the versions and the one awaiting a confirm; a viewer 403', async () => {
    const r = await fetch(`${base}/api/v1/config/versions?limit=10`, { headers: { Authorization: `Bearer ${TECH}` } });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { versions: { version: number; stage: string }[]; awaitingConfirm: { version: number } | null };
    expect(body.versions.map((v) => [v.version, v.stage])).toEqual([
      [4, 'applied'],
      [3, 'confirmed'],
      [2, 'rejected'],
      [1, 'confirmed'],
    ]);
    expect(body.awaitingConfirm).toMatchObject({ version: 4 });
    expect((await fetch(`${base}/api/v1/config/versions`, { headers: { Authorization: `Bearer ${VIEWER}` } })).status).toBe(403);
  });
});

describe.skipIf(!HAS_CHROMIUM)('the Configuration section in Chromium', () => {
  const browser = suiteBrowser();

  const row = (page: Page, v: number) => page.locator(`#config-versions li[data-version="${v}"]`);

  it('a technician sees the versions, the running one marked, the confirm deadline; a confirm shows without a reload', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, TECH, `${base}/`);
    await row(page, 1).waitFor({ timeout: 10_000 });
    expect(await page.locator('#config-section').isVisible()).toBe(true);

    // newest first
    expect(await page.locator('#config-versions li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-version')))).toEqual(['4', '3', '2', '1']);
    const text = async (v: number) => (await row(page, v).textContent())!;
    expect(await text(4)).toMatch(/version 4 applied running technician · tech$/);
    expect(await text(2)).toMatch(/version 2 rejected technician · tech · the configuration is not valid \(1 problem\)$/);
    expect(await text(1)).toMatch(/version 1 confirmed file · file · started from devices\.yaml$/);
    // only the running one is marked
    expect(await page.locator('#config-versions .badge').count()).toBe(1);
    expect(await row(page, 4).locator('.badge').textContent()).toBe('running');

    // when: the gateway's zone with its offset, not the browser's New York time
    const v4 = changes.version(4)!;
    expect(await row(page, 4).locator('time').textContent()).toBe(isoLocal(v4.at, ZONE));
    expect(await row(page, 4).locator('time').getAttribute('datetime')).toBe(new Date(v4.at).toISOString());

    // the confirm deadline
    const awaiting = changes.awaitingConfirm()!;
    const line = page.locator('#config-await');
    expect(await line.isVisible()).toBe(true);
    expect(await line.textContent()).toBe(`version 4 awaiting confirm until ${isoLocal(awaiting.confirmBy, ZONE)} (streetbox config confirm); otherwise it rolls back`);
    expect(isoLocal(awaiting.confirmBy, ZONE)).toMatch(ISO);

    // markup in a principal is text
    expect(await text(3)).toContain('technician · <img src=x id=injected onerror="window.pwned=1">');
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.evaluate('window.pwned')).toBeUndefined();
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-configuration.png'), fullPage: true });

    // the technician confirms (as `streetbox config confirm` does): the page follows on the live feed
    await page.evaluate('window.sameDocument = true');
    expect(changes.confirm('tech').ok).toBe(true);
    await expect.poll(() => row(page, 4).getAttribute('data-stage'), { timeout: 10_000 }).toBe('confirmed');
    await expect.poll(() => line.isHidden()).toBe(true);
    expect(await text(4)).toMatch(/version 4 confirmed running technician · tech · confirmed by tech$/);
    expect(await page.evaluate('window.sameDocument')).toBe(true);

    // a phone: no horizontal scroll at 375 px with the section shown
    await expectPhoneFits(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a viewer sees no Configuration section', async () => {
    const page = await browser.newPage();
    // the section's request goes with the snapshot: its answer is awaited, then the page looked at
    const answered = page.waitForResponse((r) => r.url().includes('/api/v1/config/versions'), { timeout: 10_000 });
    await signIn(page, VIEWER, `${base}/`);
    expect((await answered).status()).toBe(403);
    await expect.poll(() => page.locator('#conn').textContent(), { timeout: 10_000 }).toMatch(/viewer/);
    expect(await page.locator('#config-section').isHidden()).toBe(true);
    expect(await page.locator('#config-versions li').count()).toBe(0);
    await page.close();
  });
});
