/**
 * The editor is protected: the admin API answers 401 without a login, a read-only user may look
 * but not deploy, and a headless Chromium (Debian's, driven by playwright-core) logs into the
 * editor and finds the streetbox nodes in the palette. The screenshot is kept in tests/artifacts/.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { USER, startFlowsRig, type FlowsRig } from './rig.js';
import { admin, login } from './support.js';
import { HAS_CHROMIUM, launchChromium } from '../support/chromium.js';

const VIEWER = { username: 'vic', password: 'flows-viewer-password-2' };
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

let rig: FlowsRig;
beforeAll(async () => {
  rig = await startFlowsRig({
    nodeRed: { users: [{ username: USER.username, password: USER.password }, { username: VIEWER.username, password: VIEWER.password, permissions: 'read' }] },
  });
});
afterAll(async () => {
  await rig?.close();
});

describe('embedded Node-RED: the editor is protected', () => {
  it('answers 401 on the admin API without a login', async () => {
    for (const [method, path] of [
      ['GET', '/flows'],
      ['POST', '/flows'],
      ['GET', '/nodes'],
      ['GET', '/settings/user'],
      ['GET', '/context/global'],
    ] as const) {
      const r = await admin(rig.base, null, method, path, method === 'POST' ? { flows: [] } : undefined);
      expect(r.status, `${method} /flows${path}`).toBe(401);
    }
    const bogus = await admin(rig.base, 'not-a-token', 'GET', '/flows');
    expect(bogus.status).toBe(401);
    // the login prompt itself is public: it says credentials are needed
    const prompt = await admin(rig.base, null, 'GET', '/auth/login');
    expect(prompt.status).toBe(200);
    expect(prompt.json).toMatchObject({ type: 'credentials' });
  });

  it('refuses a wrong password and gives a token for the right one', async () => {
    await expect(login(rig.base, { username: USER.username, password: 'wrong-password' })).rejects.toThrow(/login failed: 40[13]/);
    const token = await login(rig.base);
    expect((await admin(rig.base, token, 'GET', '/flows')).status).toBe(200);
  });

  it('lets a read-only user look but not deploy', async () => {
    const token = await login(rig.base, VIEWER, 'read');
    const flows = await admin(rig.base, token, 'GET', '/flows');
    expect(flows.status).toBe(200);
    const deploy = await admin(rig.base, token, 'POST', '/flows', { rev: (flows.json as { rev: string }).rev, flows: [] });
    expect(deploy.status).toBe(401);
  });

  it('keeps the gateway API and the editor apart', async () => {
    const page = await fetch(`${rig.base}/flows/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    // /flows without the slash redirects to the editor (relative asset URLs need it)
    const bare = await fetch(`${rig.base}/flows`, { redirect: 'manual' });
    expect([301, 302, 303]).toContain(bare.status);
    expect(bare.headers.get('location')).toMatch(/\/flows\/$/);
    expect((await fetch(`${rig.base}/api/v1/devices`)).status).toBe(401);
    expect((await fetch(`${rig.base}/flowsx`)).status).toBe(404);
  });
});

describe('embedded Node-RED: the editor in a browser', () => {
  let browser: BrowserContext | null = null;
  const profile = tempDir('streetbox-chromium-');
  afterAll(async () => {
    await browser?.close();
    profile.remove();
  });

  it.skipIf(!HAS_CHROMIUM)('logs in and finds the streetbox nodes in the palette', async () => {
    // a fresh profile directory (playwright passes it as --user-data-dir)
    browser = await launchChromium(profile.path, { width: 1400, height: 900 });
    const page = await browser.newPage();
    await page.goto(`${rig.base}/flows/`);
    await page.locator('#node-dialog-login-username').fill(USER.username);
    await page.locator('#node-dialog-login-password').fill(USER.password);
    await page.locator('#node-dialog-login-submit').click();
    for (const type of ['streetbox in', 'streetbox command', 'streetbox read', 'streetbox state']) {
      await page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`).waitFor({ state: 'visible', timeout: 20_000 });
    }
    // the default flow is on the canvas
    await page.locator('.red-ui-tab', { hasText: 'Adaptive lighting' }).first().waitFor({ timeout: 10_000 });
    await page.locator('.red-ui-palette-node[data-palette-type="streetbox in"]').scrollIntoViewIfNeeded();
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'flows-editor.png');
    await page.screenshot({ path: shot, fullPage: false });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
  });
});

/** Opens the editor's websocket (RFC 6455 §4.1 opening handshake); resolves with the HTTP status answered. */
function upgrade(base: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') } });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

describe('embedded Node-RED: restart', () => {
  it('a stop and start keeps one websocket handler and the editor answering', async () => {
    expect(await upgrade(rig.base, '/flows/comms')).toBe(101);
    const before = rig.api.server().listenerCount('upgrade');
    await rig.flows.stop();
    expect((await admin(rig.base, null, 'GET', '/flows')).status).toBe(404);
    await rig.flows.start();
    expect(rig.api.server().listenerCount('upgrade')).toBe(before);
    expect(await upgrade(rig.base, '/flows/comms')).toBe(101);
    const token = await login(rig.base);
    expect((await admin(rig.base, token, 'GET', '/flows')).status).toBe(200);
  });
});
