/**
 * The data economy on the status page, on a real gateway (two simulated streetlight controllers
 * on Modbus TCP, the upstream sync to a real mosquitto): headless Chromium shows "measuring…"
 * for the buffer's autonomy until a load has been measured, then "buffer holds ≈ N days offline
 * at the current load (X readings/day, Y B each)" with the figures of GET /api/v1/status, and the
 * bytes sent upstream today; the server-rendered summary says the same. The gateway's wall clock
 * is moved forward by hand to end the measuring (timers run in real time).
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../edge/clock.js';
import { createLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import type { Autonomy } from '../../edge/store/types.js';
import type { SyncStatus } from '../../cloud-sync/index.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { tempGateway } from '../support/cli.js';
import { startMosquitto, type Mosquitto } from '../sync/mosquitto.js';

const CHROMIUM = '/usr/bin/chromium';
const TECH = 'economy-technician-token-0001';
const HOUR_MS = 3_600_000;

let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let broker: Mosquitto;
let base: string;
let offset = 0;
/** the system clock, its wall time moved forward by hand */
const clock: Clock = { ...systemClock, now: () => Date.now() + offset };

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempGateway(`
gateway: { id: economy-gw, timezone: Europe/Amsterdam }
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
sync: { url: "${broker.url}", reconnectMin: 100ms, reconnectMax: 1s }
simulate: true
`);
  gw = await startGateway({ configPath: dir.config, log: createLogger({ level: 'silent' }), clock });
  base = `http://127.0.0.1:${gw.built.api!.port()}`;
});

afterAll(async () => {
  await gw?.stop();
  dir?.cleanup();
  await broker?.close();
});

async function status(): Promise<{ store: { autonomy: Autonomy }; sync: SyncStatus }> {
  const r = await fetch(`${base}/api/v1/status`, { headers: { Authorization: `Bearer ${TECH}` } });
  return (await r.json()) as never;
}

describe.skipIf(!existsSync(CHROMIUM))('the status page: autonomy and upstream bytes', () => {
  let browser: BrowserContext;
  const profile = tempDir('streetbox-chromium-');

  beforeAll(async () => {
    browser = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
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
    await page.goto(`${base}/`);
    await page.locator('#token').fill(TECH);
    await page.locator('#login button').click();

    await expect.poll(() => row(page, 'autonomy').textContent(), { timeout: 10_000 }).toBe('buffer autonomy: measuring…');
    // the sync drains what the controllers reported: today's bytes on the page are the gateway's
    await waitFor('bytes sent upstream', async () => (await status()).sync.bytesToday > 0, 15_000);
    await expect.poll(() => row(page, 'upstream').textContent(), { timeout: 10_000 }).toMatch(/^[\d.]+ (B|kB|MB) sent today, a month estimated after the first full day$/);

    // an hour later by the gateway's clock: the load is measured
    offset = HOUR_MS;
    await waitFor('a measured autonomy', async () => (await status()).store.autonomy.days !== null, 10_000);
    await expect.poll(() => row(page, 'autonomy').textContent(), { timeout: 10_000 }).toMatch(/^buffer holds ≈ [\d.]+ days offline at the current load \([\d,]+ readings\/day, [\d.]+ B each\)$/);
    // the page's figures are the gateway's (the load moves between the two looks: compare loosely)
    const shown = (await row(page, 'autonomy').textContent())!;
    const a = (await status()).store.autonomy;
    const perDay = Number(/\(([\d,]+) readings\/day/.exec(shown)![1]!.replace(/,/g, ''));
    expect(perDay).toBeGreaterThan(a.readingsPerDay! * 0.5);
    expect(perDay).toBeLessThan(a.readingsPerDay! * 2);
    expect(shown).toContain(`, ${a.bytesPerReading.toFixed(1)} B each)`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the server-rendered summary says the same', async () => {
    await waitFor('a measured autonomy', async () => (await status()).store.autonomy.days !== null, 10_000);
    const html = await (await fetch(`${base}/`, { headers: { Authorization: `Bearer ${TECH}` } })).text();
    const st = await status();
    const autonomy = /<p id="autonomy">([^<]*)<\/p>/.exec(html)![1]!;
    expect(autonomy).toMatch(/^buffer holds ≈ [\d.]+ days offline at the current load \([\d,]+ readings\/day, [\d.]+ B each\)$/);
    expect(autonomy).toContain(`, ${st.store.autonomy.bytesPerReading.toFixed(1)} B each)`);
    const upstream = /<p id="upstream">([^<]*)<\/p>/.exec(html)![1]!;
    expect(upstream).toMatch(/^[\d.]+ (B|kB|MB) sent today, a month estimated after the first full day$/);
  });
});
