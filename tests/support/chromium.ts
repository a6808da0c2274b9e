/**
 * Headless Debian chromium for the page tests (playwright-core drives the system's
 * /usr/bin/chromium; tests skip where it is absent): one persistent context in a throwaway
 * profile, with the flags that keep it from reaching the network on its own.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM);

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launchChromium(profileDir: string, opts: { width: number; height: number; timezoneId?: string }): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: opts.width, height: opts.height },
    ...(opts.timezoneId === undefined ? {} : { timezoneId: opts.timezoneId }),
    args: FLAGS,
  });
}
