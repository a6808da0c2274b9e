/**
 * The data economy on the status page, on a real gateway (two simulated streetlight controllers
 * on Modbus TCP, the upstream sync to a real mosquitto): headless Chromium shows "measuring…"
 * for the buffer's autonomy until a load has been measured, then "buffer holds ≈ N days offline
 * at the current load (X readings/day, Y B each)" with the figures of GET /api/v1/status, and the
 * bytes sent upstream today; the server-rendered summary says the same. The gateway's wall clock
 * is moved forward by hand to end the measuring (timers run in real time).
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { startEconomyGateway, type EconomyGateway } from '../support/economyGateway.js';
import { HAS_CHROMIUM, launchChromium } from '../support/chromium.js';

const TECH = 'economy-technician-token-0001';
const HOUR_MS = 3_600_000;

let g: EconomyGateway;

beforeAll(async () => {
  g = await startEconomyGateway('economy-gw', 'Europe/Amsterdam', TECH);
});

afterAll(async () => {
  await g?.stop();
});

describe.skipIf(!HAS_CHROMIUM)('the status page: autonomy and upstream bytes', () => {
  let browser: BrowserContext;
  const profile = tempDir('streetbox-chromium-');

  beforeAll(async () => {
    browser = await launchChromium(profile.path, { width: 1280, height: 900 });
  });
  afterAll(async () => {
    await browser?.close();
    profile.remove();
  });

  const row = (page: Page, name: string) => page.locator(`#health dd[data-row="${name}"]`);

  it('"measuring…" at first, then the days at the measured load; the bytes sent today', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${g.base}/`);
    await page.locator('#token').fill(TECH);
    await page.locator('#login button').click();

    await expect.poll(() => row(page, 'autonomy').textContent(), { timeout: 10_000 }).toBe('buffer autonomy: measuring…');
    // the sync drains what the controllers reported: today's bytes on the page are the gateway's
    await waitFor('bytes sent upstream', async () => (await g.status()).sync.bytesToday > 0, 15_000);
    await expect.poll(() => row(page, 'upstream').textContent(), { timeout: 10_000 }).toMatch(/^[\d.]+ (B|kB|MB) sent today, a month estimated after the first full day$/);

    // an hour later by the gateway's clock: the load is measured
    g.advance(HOUR_MS);
    await waitFor('a measured autonomy', async () => (await g.status()).store.autonomy.days !== null, 10_000);
    await expect.poll(() => row(page, 'autonomy').textContent(), { timeout: 10_000 }).toMatch(/^buffer holds ≈ [\d.]+ days offline at the current load \([\d,]+ readings\/day, [\d.]+ B each\)$/);
    // the page's figures are the gateway's (the load moves between the two looks: compare loosely)
    const shown = (await row(page, 'autonomy').textContent())!;
    const a = (await g.status()).store.autonomy;
    const perDay = Number(/\(([\d,]+) readings\/day/.exec(shown)![1]!.replace(/,/g, ''));
    expect(perDay).toBeGreaterThan(a.readingsPerDay! * 0.5);
    expect(perDay).toBeLessThan(a.readingsPerDay! * 2);
    expect(shown).toContain(`, ${a.bytesPerReading.toFixed(1)} B each)`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the server-rendered summary says the same', async () => {
    await waitFor('a measured autonomy', async () => (await g.status()).store.autonomy.days !== null, 10_000);
    const html = await (await fetch(`${g.base}/`, { headers: { Authorization: `Bearer ${TECH}` } })).text();
    const st = await g.status();
    const autonomy = /<p id="autonomy">([^<]*)<\/p>/.exec(html)![1]!;
    expect(autonomy).toMatch(/^buffer holds ≈ [\d.]+ days offline at the current load \([\d,]+ readings\/day, [\d.]+ B each\)$/);
    expect(autonomy).toContain(`, ${st.store.autonomy.bytesPerReading.toFixed(1)} B each)`);
    const upstream = /<p id="upstream">([^<]*)<\/p>/.exec(html)![1]!;
    expect(upstream).toMatch(/^[\d.]+ (B|kB|MB) sent today, a month estimated after the first full day$/);
  });
});
