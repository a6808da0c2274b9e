/**
 * The shipped demo (devices.yaml as it is, ports moved to free ones and the buffer to a temp
 * dir): a technician opens the status page in Chromium, sees the demo's Modbus and LoRaWAN
 * devices with live values, dims a group and sees the command verified. Screenshot kept in
 * tests/artifacts/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { tempDir } from '../helpers/tmp.js';
import { HAS_CHROMIUM, launchChromium } from '../support/chromium.js';

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

describe.skipIf(!HAS_CHROMIUM)('the status page of the demo', () => {
  const profile = tempDir('streetbox-chromium-');
  let demo: InProcessDemo;
  let browser: BrowserContext;

  beforeAll(async () => {
    demo = await startDemoInProcess();
    browser = await launchChromium(profile.path, { width: 1280, height: 1000 });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await demo?.stop();
    profile.remove();
  });

  it('shows the demo devices live and dims a group to verified', async () => {
    const page = await browser.newPage();
    await page.goto(`${demo.base}/`);
    await page.locator('#token').fill(demo.token);
    await page.locator('#login button').click();
    for (const id of ['lamp-ctrl-01', 'lamp-ctrl-04', 'tc-01']) {
      await page.locator(`details.device[data-device="${id}"]`).waitFor({ timeout: 15_000 });
      await expect.poll(() => page.locator(`details.device[data-device="${id}"] .avail`).textContent(), { timeout: 10_000 }).toBe('online');
    }
    await expect.poll(() => page.locator('#gw').textContent()).toMatch(/demo-cabinet-01/);
    // the ABP LoRaWAN node is online once its first uplink has been heard
    await expect.poll(() => page.locator('details.device[data-device="park-light-01"] .avail').textContent(), { timeout: 20_000 }).toBe('online');

    const row = page.locator('[data-group-row="stationsplein"]');
    await row.locator('input[type=range]').fill('35');
    await row.locator('button[data-action="dim"]').click();
    await page.locator('#pending li[data-status="verified"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('#pending li').first().textContent()).toMatch(/dim 35 % → group stationsplein.*verified/);
    // the controllers really have it
    await expect.poll(() => demo.gw.context.store.latest('lamp-ctrl-01').get('ch1_dim_setpoint')?.value, { timeout: 5000 }).toBe(35);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-demo.png'), fullPage: true });
    await page.close();
  });
});
