/**
 * Shared pieces of the status page tests: a describe block's Chromium (tests/support/chromium.ts)
 * in a throwaway profile, signing in with a token, and the phone check (no sideways scroll).
 * Screenshots go to ARTIFACTS.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { launchChromium } from '../support/chromium.js';

export const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

export interface SuiteBrowser {
  newPage(): Promise<Page>;
}

/**
 * Chromium for the calling describe block: launched before its tests (1280×900, the browser on
 * New York time unless told otherwise), closed and its profile removed after them.
 */
export function suiteBrowser(opts: { width: number; height: number; timezoneId?: string } = { width: 1280, height: 900, timezoneId: 'America/New_York' }): SuiteBrowser {
  let browser: BrowserContext | undefined;
  const profile = tempDir('streetbox-chromium-');
  beforeAll(async () => {
    browser = await launchChromium(profile.path, opts);
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    profile.remove();
  });
  return {
    newPage() {
      if (!browser) throw new Error('the suite browser is not launched yet (use it inside a test)');
      return browser.newPage();
    },
  };
}

/** Signs in with `token` on the page's login form; at `url` first when given. */
export async function signIn(page: Page, token: string, url?: string): Promise<void> {
  if (url !== undefined) await page.goto(url);
  await page.locator('#token').fill(token);
  await page.locator('#login button').click();
}

/** A phone: at 375 px wide the page does not scroll sideways. */
export async function expectPhoneFits(page: Page): Promise<void> {
  await page.setViewportSize({ width: 375, height: 812 });
  await expect.poll(() => page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
}
