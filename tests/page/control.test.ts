/**
 * Issue 19 Deliver 4, control where the device is: the shipped demo (devices.yaml, ports moved, the
 * buffer in a temp dir; Node-RED off, so its adaptive-lighting flow sends no dims of its own) in
 * Debian's Chromium on a 390×844 phone. A group's slider starts at the group's level now; Dim, On,
 * Off, Override (a hold and a reason) and Release end verified, as GET /api/v1/commands/:id says
 * too; a refusal shows its reason; the traffic controller's program request needs a dry run that
 * passed for the fields as they are, then ends verified on the controller; a viewer sees levels and
 * no controls. Every button, field and the slider are at least 44 px tall and nothing scrolls
 * sideways. Screenshot: tests/artifacts/control-390.png.
 */
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../edge/main.js';
import { DEMO, startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, signIn, suiteBrowser } from './browser.js';

const FINAL = ['verified', 'failed', 'expired', 'rejected'];

describe.skipIf(!HAS_CHROMIUM)('the controls on the demo, at 390 px', () => {
  const browser = suiteBrowser({ width: 390, height: 844, timezoneId: 'America/New_York' });
  let demo: InProcessDemo;
  let gw: Gateway;
  let base: string;
  let page: Page;

  beforeAll(async () => {
    demo = await startDemoInProcess({ nodeRed: false });
    ({ gw, base } = demo);
  });

  afterAll(async () => {
    await demo?.stop();
  });

  const auth = { Authorization: `Bearer ${DEMO.technicianToken}`, 'Content-Type': 'application/json' };

  async function commandRow(id: string): Promise<{ status: string; action: string; params: Record<string, unknown>; result: Record<string, unknown> | null }> {
    const r = await fetch(`${base}/api/v1/commands/${id}`, { headers: auth });
    expect(r.status).toBe(200);
    return (await r.json()) as never;
  }

  /** Clicks a control and waits for the command it sends to end in #pending; its id, once final as `status`. */
  async function sends(button: Locator, status = 'verified'): Promise<string> {
    const pending = page.locator('#pending li');
    const before = (await pending.count()) > 0 ? await pending.first().getAttribute('data-command') : null;
    await button.click();
    const newest = pending.first();
    await expect
      .poll(
        async () => {
          const st = await newest.getAttribute('data-status');
          return (await newest.getAttribute('data-command')) !== before && FINAL.includes(st ?? '') ? st : 'not final yet';
        },
        { timeout: 10_000 },
      )
      .toBe(status);
    return (await newest.getAttribute('data-command'))!;
  }

  /** The heights of the visible buttons, fields, sliders and summaries under `selector` (getBoundingClientRect). */
  function heights(selector: string): Promise<{ what: string; height: number }[]> {
    return page.evaluate<{ what: string; height: number }[]>(`[...document.querySelectorAll(${JSON.stringify(selector)})]
      .flatMap((root) => [...root.querySelectorAll('button, input, select, summary')])
      .map((el) => ({ what: el.tagName.toLowerCase() + (el.dataset.action ? '[' + el.dataset.action + ']' : el.type ? '[' + el.type + ']' : ''), rect: el.getBoundingClientRect() }))
      .filter((x) => x.rect.width > 0)
      .map((x) => ({ what: x.what, height: Math.round(x.rect.height * 10) / 10 }))`);
  }

  async function expectTouchTargets(selector: string, atLeast: number): Promise<void> {
    const all = await heights(selector);
    expect(all.length).toBeGreaterThanOrEqual(atLeast);
    expect(all.filter((x) => x.height < 44)).toEqual([]);
  }

  /** Opens a device's view from its card in "Buses and devices". */
  async function openDevice(id: string): Promise<void> {
    await page.locator(`details.device[data-device="${id}"] summary`).click();
    await page.locator(`button.open-device[data-open="${id}"]`).click();
    await page.locator(`#device-view[data-device-view="${id}"]`).waitFor({ timeout: 5000 });
  }

  it('a group: the slider starts at its level; Dim, On, Off, Override and Release end verified; a refusal says why', async () => {
    // the group's level now is 45 % before the page opens (a dim through the API)
    const r = await fetch(`${base}/api/v1/groups/stationsplein/commands`, { method: 'POST', headers: auth, body: JSON.stringify({ action: 'dim', level: 45 }) });
    expect(r.status).toBe(202);
    const first = ((await r.json()) as { id: string }).id;
    await expect.poll(async () => (await commandRow(first)).status, { timeout: 15_000 }).toBe('verified');

    page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, DEMO.technicianToken, `${base}/`);
    const row = page.locator('[data-group-row="stationsplein"]');
    const slider = row.locator('input[type=range]');
    await expect.poll(() => row.locator('.now').textContent(), { timeout: 10_000 }).toBe('2 lights · 45 %');
    expect(await slider.inputValue()).toBe('45');
    expect(await row.locator('output').textContent()).toBe('45 %');

    // every control of the groups can be hit with a thumb (the override's fields open)
    await row.locator('summary').click();
    await expectTouchTargets('#groups', 20);

    await slider.fill('30');
    expect(await row.locator('output').textContent()).toBe('30 %');
    const dim = await sends(row.locator('button[data-action="dim"]'));
    expect(await page.locator('#pending li').first().textContent()).toMatch(/^dim 30 % → group stationsplein by you: verified/);
    expect(await commandRow(dim)).toMatchObject({ status: 'verified', action: 'dim', params: { level: 30 } });

    expect((await commandRow(await sends(row.locator('button[data-action="on"]')))).status).toBe('verified');
    expect((await commandRow(await sends(row.locator('button[data-action="off"]')))).status).toBe('verified');
    // once its command has ended, the slider follows the level again
    await expect.poll(() => slider.inputValue(), { timeout: 10_000 }).toBe('0');

    // override: level, hold and reason (required: nothing is sent without one)
    await slider.fill('60');
    await row.getByLabel('Hold').selectOption('900');
    const pendingBefore = await page.locator('#pending li').count();
    await row.locator('button[data-action="override"]').click();
    expect(await page.locator('#pending li').count()).toBe(pendingBefore);
    await row.getByLabel('Reason').fill('cable fault at pole 12');
    const override = await sends(row.locator('button[data-action="override"]'));
    expect(await page.locator('#pending li').first().textContent()).toMatch(/^override 60 % → group stationsplein by you: verified · for 15 min · cable fault at pole 12$/);
    expect(await commandRow(override)).toMatchObject({ status: 'verified', action: 'override', params: { level: 60, durationS: 900, reason: 'cable fault at pole 12' } });
    await expect.poll(() => gw.context.store.latest('lamp-ctrl-01').get('ch1_dim_setpoint')?.value, { timeout: 5000 }).toBe(60);

    const release = await sends(row.locator('button[data-action="release"]'));
    expect(await commandRow(release)).toMatchObject({ status: 'verified', action: 'release', params: { commandId: override } });

    // a refusal shows its reason: nothing of this token's holds on the other group
    const other = page.locator('[data-group-row="prins-hendrikkade"]');
    await sends(other.locator('button[data-action="release"]'), 'rejected');
    expect(await page.locator('#pending li').first().textContent()).toMatch(/release → group prins-hendrikkade by you: rejected: no claim of demo-technician on group "prins-hendrikkade" to release \(404\)/);
    expect(await other.locator('.outcome').textContent()).toMatch(/rejected: no claim/);
    expect(errors).toEqual([]);
  });

  it("a light's view: its controls start at its level now", async () => {
    await openDevice('lamp-ctrl-03');
    const control = page.locator('#device-view [data-control="lamp-ctrl-03"]');
    await expect.poll(() => control.locator('.now').textContent(), { timeout: 5000 }).toMatch(/^\d+ %$/);
    const level = (await control.locator('.now').textContent())!.replace(' %', '');
    expect(await control.locator('input[type=range]').inputValue()).toBe(level);
    await control.locator('summary').click();
    await expectTouchTargets('#device-view [data-control]', 8);
  });

  it('a traffic controller: its mode and program; a request needs a dry run that passed, then ends verified', async () => {
    await openDevice('tc-01');
    const control = page.locator('#device-view [data-control="tc-01"]');
    await expect.poll(() => control.locator('.state').textContent(), { timeout: 10_000 }).toMatch(/^mode vehicle-actuated \(3\) · program \d · request none$/);
    const request = control.locator('button[data-action="program"]');
    const dry = control.locator('button[data-action="dry-run"]');
    const answer = control.locator('.answer');
    expect(await request.isDisabled()).toBe(true);

    await control.getByLabel('Program').fill('2');
    await control.getByLabel('Expiry').selectOption('300');
    await dry.click();
    await expect.poll(() => answer.textContent(), { timeout: 5000 }).toMatch(/^Would be accepted: program 2 for 5 min, controller in vehicle-actuated mode\./);
    expect(await request.isDisabled()).toBe(false);
    // a changed field needs a new dry run
    await control.getByLabel('Program').fill('3');
    expect(await request.isDisabled()).toBe(true);
    expect(await answer.textContent()).toBe('Changed: dry run again.');
    await dry.click();
    await expect.poll(() => request.isDisabled(), { timeout: 5000 }).toBe(false);
    await expectTouchTargets('#device-view [data-control]', 5);

    const id = await sends(request);
    expect(await page.locator('#pending li').first().textContent()).toMatch(/^program → device tc-01 by you: verified · program 3 for 5 min$/);
    expect(await commandRow(id)).toMatchObject({ status: 'verified', action: 'program', params: { program: 3, expiresInS: 300 } });
    expect(await request.isDisabled()).toBe(true); // the next request needs its own dry run
    await expect.poll(() => gw.context.store.latest('tc-01').get('active_program')?.value, { timeout: 10_000 }).toBe(3);
    await expect.poll(() => control.locator('.state').textContent(), { timeout: 10_000 }).toMatch(/program 3 · request active$/);

    const release = await sends(control.locator('button[data-action="release"]'));
    expect(await commandRow(release)).toMatchObject({ status: 'verified', action: 'release', result: { program: 0, released: id } });

    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, 'control-390.png'), fullPage: true });
    await page.close();
  });

  it('a viewer sees the levels and no controls', async () => {
    const viewer = await browser.newPage();
    page = viewer;
    await signIn(viewer, DEMO.viewerToken, `${base}/`);
    await viewer.locator('details.device[data-device="lamp-ctrl-01"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => viewer.locator('#conn').textContent()).toMatch(/viewer/);
    await openDevice('lamp-ctrl-01');
    await expect.poll(() => viewer.locator('#device-view [data-fact="state"]').textContent(), { timeout: 5000 }).toMatch(/\d+ %$/);
    expect(await viewer.locator('#dim-section').isHidden()).toBe(true);
    expect(await viewer.locator('[data-group-row]').count()).toBe(0);
    expect(await viewer.locator('button[data-action], input[type=range]').count()).toBe(0);
    await openDevice('tc-01');
    expect(await viewer.locator('button[data-action], input[type=range]').count()).toBe(0);
    await viewer.close();
  });
});
