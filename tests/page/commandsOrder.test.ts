/**
 * Issue 19 Deliver 5: "Recent commands" is newest first after loading and after live updates,
 * and trimming to 10 drops the oldest, never the newest. The page's list is compared with what
 * the API says the newest ten are (GET /api/v1/commands answers newest first), on a real gateway
 * (two simulated controllers on Modbus TCP) in Debian's Chromium, with commands sent through the
 * API before the page loads and while it is open.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../edge/main.js';
import { silentLogger } from '../../edge/log.js';
import { tempGateway } from '../support/cli.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, signIn, suiteBrowser } from './browser.js';

const TECH = 'order-technician-token-000001';

describe.skipIf(!HAS_CHROMIUM)('Recent commands on the status page', () => {
  let gw: Gateway;
  let dir: ReturnType<typeof tempGateway>;
  let base: string;
  const browser = suiteBrowser({ width: 390, height: 844, timezoneId: 'America/New_York' });

  beforeAll(async () => {
    dir = tempGateway(`
gateway: { id: order-gw, timezone: Europe/Amsterdam }
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
simulate: true
`);
    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    base = `http://127.0.0.1:${gw.built.api!.port()}`;
  });

  afterAll(async () => {
    await gw?.stop();
    dir?.cleanup();
  });

  const auth = { Authorization: `Bearer ${TECH}`, 'Content-Type': 'application/json' };

  async function dim(target: string, level: number): Promise<string> {
    const r = await fetch(`${base}/api/v1/${target}/commands`, { method: 'POST', headers: auth, body: JSON.stringify({ action: 'dim', level }) });
    expect(r.status).toBe(202);
    return ((await r.json()) as { id: string }).id;
  }

  /** The ids of the newest ten commands, newest first, as the API answers. */
  async function newestTen(): Promise<string[]> {
    const r = await fetch(`${base}/api/v1/commands?limit=10`, { headers: auth });
    return ((await r.json()) as { commands: { id: string }[] }).commands.map((c) => c.id);
  }

  it('lists the newest first after loading and after live updates, and trims the oldest', async () => {
    // twelve commands before the page loads: more than the list holds
    const before: string[] = [];
    for (let i = 0; i < 12; i++) before.push(await dim(i % 2 === 0 ? 'groups/main' : 'devices/lamp-1', 10 + i * 5));
    const api = await newestTen();
    expect(api[0]).toBe(before[11]);
    expect(api).toHaveLength(10);

    const page = await browser.newPage();
    await signIn(page, TECH, base + '/');
    const shown = (): Promise<string[]> => page.locator('#commands li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-command') ?? ''));
    await expect.poll(shown, { timeout: 10_000 }).toEqual(api);

    // three more while the page is open: each goes on top, the oldest leave at the bottom
    const during: string[] = [];
    for (let i = 0; i < 3; i++) during.push(await dim('devices/lamp-2', 70 + i * 5));
    await expect.poll(shown, { timeout: 10_000 }).toEqual(await newestTen());
    const now = await shown();
    expect(now.slice(0, 3)).toEqual([...during].reverse());
    expect(now).toHaveLength(10);
    expect(now).not.toContain(before[0]);
    // the times read newest first too
    const times = await page.locator('#commands li time').evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime') ?? '')));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    await page.screenshot({ path: join(ARTIFACTS, 'commands-390.png'), fullPage: true });
    await page.close();
  });
});
