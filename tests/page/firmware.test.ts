/**
 * The status page's "Firmware" section (edge/api/static/firmware.js) in headless Chromium (Debian's,
 * driven by playwright-core), on the real HTTP API (in-process, a real store and live feed) whose
 * firmware service is a fake playing canned reports: the engine (edge/firmware/engine.ts) has its
 * own tests. Shows: each deployment's status, artifact, wave and counts; per device its stage, a
 * progress bar of the acknowledged bytes and why it waits; the section follows a firmware.* event
 * on the live feed and a transfer's bytes without a reload; markup in a reason is text; a gateway
 * without a firmware service shows no section. A screenshot goes to tests/artifacts/.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JOB_STAGES,
  type DeploymentOutbox,
  type DeploymentReport,
  type DeploymentSubmitted,
  type FirmwareService,
  type JobRecord,
  type JobStage,
} from '../../edge/firmware/types.js';
import type { MetricSample } from '../../edge/metrics.js';
import { isoLocal } from '../../edge/timeFormat.js';
import { TOKENS, startApi, type Api } from '../api/support/http.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, expectPhoneFits, signIn, suiteBrowser } from './browser.js';

const SIZE = 65_536;
/** the gateway's zone (the API tests' default); the browser runs in America/New_York */
const ZONE = 'UTC';
const AT = Date.UTC(2026, 5, 1, 10, 0, 0);

const home = (api: Api): string => `http://127.0.0.1:${api.api.port()}/`;

/** Answers the list from `reports`, which the test changes as a deployment moves on. */
class CannedFirmware implements FirmwareService {
  reports: DeploymentReport[] = [];
  listCalls = 0;
  submit(): DeploymentSubmitted {
    throw new Error('not used by the page');
  }
  submitCentral(): void {}
  artifactChunk(): void {}
  control(): ReturnType<FirmwareService['control']> {
    throw new Error('not used by the page');
  }
  report(id: string): DeploymentReport | undefined {
    return this.reports.find((r) => r.id === id);
  }
  list(): DeploymentReport[] {
    this.listCalls++;
    return this.reports;
  }
  jobs(): JobRecord[] {
    return [];
  }
  storeArtifact(): { sha256: string; size: number } {
    throw new Error('not used by the page');
  }
  outbox(): DeploymentOutbox {
    return { pending: () => [], delivered: () => undefined };
  }
  metrics(): MetricSample[] {
    return [];
  }
}

type Job = DeploymentReport['jobs'][number];

function job(device: string, stage: JobStage, bytesAcked: number, extra: Partial<Job> = {}): Job {
  return { device, stage, wave: 0, bytesAcked, bytes: SIZE, waiting: null, code: null, reason: null, versionBefore: 256, versionAfter: null, ...extra };
}

function report(id: string, status: DeploymentReport['status'], jobs: Job[], extra: Partial<DeploymentReport> = {}): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  for (const j of jobs) counts[j.stage]++;
  return { id, gateway: 'gw-test', status, code: null, reason: null, artifact: { name: 'slc-2ch', version: '2.4.1', size: SIZE, sha256: 'ab'.repeat(32) }, wave: 0, waves: 2, counts, jobs, at: AT, ...extra };
}

let a: Api;
let bare: Api;
let fw: CannedFirmware;

beforeAll(async () => {
  fw = new CannedFirmware();
  fw.reports = [
    report('lights-north', 'running', [
      job('lamp-1', 'transferring', 16_384),
      job('lamp-2', 'pending', 0, { waiting: 'night: lights update by day from 08:12' }),
      job('lamp-3', 'confirmed', SIZE, { versionAfter: 0x0241 }),
    ]),
    report('lights-old', 'halted', [job('lamp-9', 'failed', 4096, { code: 'E_FW_VERIFY', reason: '<img src=x id=injected onerror="window.pwned=1"> reads 0x0100' })], {
      code: 'E_FW_HALTED',
      reason: 'wave 1: 1 of 1 failed, past its errorThreshold 0',
      at: AT - 86_400_000,
    }),
  ];
  a = await startApi({}, { firmware: fw });
  bare = await startApi();
});
afterAll(async () => {
  await a?.close();
  await bare?.close();
});

describe.skipIf(!HAS_CHROMIUM)('the Firmware section in Chromium', () => {
  const browser = suiteBrowser();

  const deployment = (page: Page, id: string) => page.locator(`#deployments li[data-deployment="${id}"]`);
  const device = (page: Page, id: string, dev: string) => deployment(page, id).locator(`li[data-device="${dev}"]`);

  it('a viewer sees each deployment, and per device its stage, progress and why it waits; it follows the live feed', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, TOKENS.viewer, home(a));
    await deployment(page, 'lights-north').waitFor({ timeout: 10_000 });
    expect(await page.locator('#firmware-section').isVisible()).toBe(true);
    expect(await page.locator('#deployments > li').evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-deployment'), li.getAttribute('data-status')]))).toEqual([
      ['lights-north', 'running'],
      ['lights-old', 'halted'],
    ]);

    // the deployment's line: when, id, status, artifact, wave, counts
    const summary = deployment(page, 'lights-north').locator('summary');
    expect(await summary.textContent()).toBe(`${isoLocal(AT, ZONE)} lights-north running slc-2ch 2.4.1 · wave 1/2 · 1 pending, 1 transferring, 1 confirmed`);
    // under way: open with its devices; ended: closed, its reason kept
    expect(await deployment(page, 'lights-north').locator('details').getAttribute('open')).not.toBeNull();
    expect(await deployment(page, 'lights-old').locator('details').getAttribute('open')).toBeNull();

    // per device: stage, progress bar, percent, waiting reason
    expect(await device(page, 'lights-north', 'lamp-1').getAttribute('data-stage')).toBe('transferring');
    expect(await device(page, 'lights-north', 'lamp-1').locator('progress').evaluate((p) => [(p as unknown as { value: number }).value, (p as unknown as { max: number }).max])).toEqual([16_384, SIZE]);
    expect(await device(page, 'lights-north', 'lamp-1').textContent()).toBe('lamp-1 transferring  25 %');
    expect(await device(page, 'lights-north', 'lamp-2').textContent()).toBe('lamp-2 pending  0 % waiting: night: lights update by day from 08:12');
    expect(await device(page, 'lights-north', 'lamp-3').locator('.pct').textContent()).toBe('100 %');

    // markup in a reason is text
    await deployment(page, 'lights-old').locator('summary').click();
    expect(await deployment(page, 'lights-old').locator('.reason').textContent()).toBe('wave 1: 1 of 1 failed, past its errorThreshold 0 (E_FW_HALTED)');
    expect(await device(page, 'lights-old', 'lamp-9').locator('.note').textContent()).toBe('<img src=x id=injected onerror="window.pwned=1"> reads 0x0100 (E_FW_VERIFY)');
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.evaluate('window.pwned')).toBeUndefined();
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-firmware.png'), fullPage: true });

    // a transfer's bytes move without an event: the section reads them again while a deployment runs
    await page.evaluate('window.sameDocument = true');
    fw.reports = [report('lights-north', 'running', [job('lamp-1', 'transferring', 49_152), job('lamp-2', 'pending', 0, { waiting: 'bus busy' }), job('lamp-3', 'confirmed', SIZE)]), fw.reports[1]!];
    await expect.poll(() => device(page, 'lights-north', 'lamp-1').locator('.pct').textContent(), { timeout: 15_000 }).toBe('75 %');
    expect(await device(page, 'lights-north', 'lamp-2').locator('.note').textContent()).toBe('waiting: bus busy');

    // a firmware event on the live feed: read at once
    fw.reports = [report('lights-north', 'completed', [job('lamp-1', 'confirmed', SIZE), job('lamp-2', 'confirmed', SIZE), job('lamp-3', 'confirmed', SIZE)], { wave: 1 }), fw.reports[1]!];
    const calls = fw.listCalls;
    a.t.store.appendEvent({ kind: 'firmware.deployment.completed', severity: 'info', device: null, detail: { deployment: 'lights-north', principal: 'tech', status: 'completed' } });
    await expect.poll(() => deployment(page, 'lights-north').getAttribute('data-status'), { timeout: 4000 }).toBe('completed');
    expect(fw.listCalls).toBeGreaterThan(calls);
    expect(await deployment(page, 'lights-north').locator('summary').textContent()).toContain('wave 2/2 · 3 confirmed');
    expect(await page.evaluate('window.sameDocument')).toBe(true);

    // a phone: no horizontal scroll at 375 px with the section shown
    await expectPhoneFits(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a gateway without a firmware service shows no Firmware section; signing out hides it', async () => {
    const page = await browser.newPage();
    const answered = page.waitForResponse((r) => r.url().includes('/api/v1/deployments'), { timeout: 10_000 });
    await signIn(page, TOKENS.technician, home(bare));
    expect((await answered).status()).toBe(404);
    await expect.poll(() => page.locator('#conn').textContent(), { timeout: 10_000 }).toMatch(/technician/);
    expect(await page.locator('#firmware-section').isHidden()).toBe(true);

    const withFw = await browser.newPage();
    await signIn(withFw, TOKENS.technician, home(a));
    await deployment(withFw, 'lights-north').waitFor({ timeout: 10_000 });
    await withFw.locator('#logout').click();
    expect(await withFw.locator('#firmware-section').isHidden()).toBe(true);
    expect(await withFw.locator('#deployments li').count()).toBe(0);
    await page.close();
    await withFw.close();
  });
});
