/**
 * The device view's charts (edge/api/static/device.js) on the shipped demo (devices.yaml as it
 * is, in-process, ports moved to free ones and the buffer to a temp dir), in headless Chromium at
 * 390×844 and at 1440×900: a Modbus light's view opens from its card; what a chart plots (the
 * uPlot instance's data) is exactly GET /api/v1/history's buckets for the request the chart says
 * it shows (data-from, data-to, data-buckets): the same numbers, nulls in the same places; the
 * range buttons change the range; a dim sent from the view's control ends verified and appears as
 * a marker on the device's chart, with who sent it; the history is asked again while the range
 * ends now; a drag across a chart zooms in to that stretch of time; a driver fault injected in the
 * light's simulator shows as a red strip under Alarms, with its name and severity. Screenshots kept in tests/artifacts/ (device-390.png, device-1440.png).
 */
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../edge/main.js';
import { modbusSimName, type SimBusComponent, type StreetlightModel } from '../../edge/sim/modbus/index.js';
import { DEMO, startDemoInProcess, type InProcessDemo } from '../helpers/demoGateway.js';
import { waitFor } from '../helpers/wait.js';
import { HAS_CHROMIUM } from '../support/chromium.js';
import { ARTIFACTS, signIn, suiteBrowser } from './browser.js';

const DEVICE = 'lamp-ctrl-01';
const HOUR = 3_600_000;

/** What a chart shows: the request it says its data comes from, and the uPlot instance's data. */
interface Plotted {
  point: string[];
  from: number;
  to: number;
  buckets: number;
  /** the fields of data[1..], e.g. "ch1_power.mean" */
  series: string[];
  data: (number | null)[][];
}

interface HistorySeries {
  point: string;
  t: number[];
  [field: string]: unknown;
}

/** Runs in the page: the first chart of the device view that plots `point`. */
const PLOTTED = `(point) => {
  const el = [...document.querySelectorAll('#device-view .chart')].find((e) => e.dataset.point.split(',').includes(point));
  if (!el || !el._uplot || !el.dataset.from) return null;
  return { point: el.dataset.point.split(','), from: Number(el.dataset.from), to: Number(el.dataset.to), buckets: Number(el.dataset.buckets),
    series: el.dataset.series.split(','), data: el._uplot.data.map((a) => Array.from(a, (x) => (x === undefined ? null : x))) };
}`;

const plotted = (page: Page, point: string): Promise<Plotted | null> => page.evaluate(`(${PLOTTED})(${JSON.stringify(point)})`);

describe.skipIf(!HAS_CHROMIUM)('the device view of the demo: charts of the history', () => {
  // the browser on New York time, the demo gateway on Amsterdam's: the charts keep the gateway's
  const browser = suiteBrowser({ width: 390, height: 844, timezoneId: 'America/New_York' });
  let demo: InProcessDemo;
  let gw: Gateway;
  let base = '';

  beforeAll(async () => {
    demo = await startDemoInProcess({ nodeRed: false }); // Node-RED: not on this page
    ({ gw, base } = demo);
    // a live range ends SETTLE_MS (2 s) before now: wait until it holds a reading of the light
    const first = await waitFor('a reading of ch1_power', () => gw.context.store.readings({ after: 0, limit: 1, device: DEVICE }).items[0]?.ts, { timeoutMs: 15_000, intervalMs: 100 });
    await waitFor('the first reading to be 2.5 s old', () => Date.now() > first + 2500, { timeoutMs: 15_000, intervalMs: 100 });
  });

  afterAll(async () => {
    await demo?.stop();
  });

  /** GET /api/v1/history as a client of the API would ask it, with the demo's technician token. */
  async function history(p: Plotted): Promise<{ series: HistorySeries[]; marks: { id: string; ts: number }[] }> {
    const q = new URLSearchParams({ device: DEVICE, points: p.point.join(','), from: String(p.from), to: String(p.to), buckets: String(p.buckets) });
    const r = await fetch(`${base}/api/v1/history?${q}`, { headers: { Authorization: `Bearer ${DEMO.technicianToken}` } });
    expect(r.status).toBe(200);
    return (await r.json()) as { series: HistorySeries[]; marks: { id: string; ts: number }[] };
  }

  /** The answer's arrays in the chart's layout: [t, then each field of data-series]. */
  function expected(p: Plotted, series: HistorySeries[]): unknown[] {
    const byPoint = new Map(series.map((s) => [s.point, s]));
    const field = (f: string): unknown => {
      const [point, name] = f.split('.') as [string, string];
      return byPoint.get(point)?.[name] ?? null;
    };
    return [byPoint.get(p.point[0]!)?.t ?? [], ...p.series.map(field)];
  }

  /**
   * The chart of `point` plots exactly the API's buckets for the request it names. While the range
   * ends now a reading may be committed just after the page asked: the page asks again within
   * max(step, 5 s), so this waits for a request whose answer nothing changed since.
   */
  async function expectChartIsHistory(page: Page, point: string, opts: { withReadings: boolean } = { withReadings: true }): Promise<Plotted> {
    let last: { p: Plotted; want: unknown[] } | null = null;
    try {
      await waitFor(
        `the ${point} chart to plot the API's buckets`,
        async () => {
          const p = await plotted(page, point);
          if (!p) return false;
          last = { p, want: expected(p, (await history(p)).series) };
          return isDeepStrictEqual(p.data, last.want);
        },
        { timeoutMs: 20_000, intervalMs: 250 },
      );
    } catch (err) {
      if (last) expect((last as { p: Plotted }).p.data).toEqual((last as { want: unknown[] }).want);
      throw err;
    }
    const p = last!.p;
    expect(p.data[0]).toHaveLength(p.buckets);
    expect(p.data[0]![0]).toBe(p.from);
    // there is history to show: the buffer has readings of the light in the range
    if (opts.withReadings) expect(p.data.slice(1).some((a) => a.some((x) => x !== null)), `a reading of ${p.point.join(', ')} in [${p.from}, ${p.to})`).toBe(true);
    return p;
  }

  async function openView(page: Page): Promise<void> {
    await signIn(page, DEMO.technicianToken, `${base}/`);
    const card = page.locator(`[data-device="${DEVICE}"]`);
    await card.locator('summary').click();
    await card.locator(`button.open-device[data-open="${DEVICE}"]`).click();
    await page.locator(`#device-view[data-device-view="${DEVICE}"]`).waitFor();
    await page.locator('#device-view .chart[data-from]').first().waitFor({ timeout: 15_000 });
  }

  it('at 390×844: the charts are the API’s buckets, the range buttons move them, a dim from the view is a marker', async () => {
    const page = await browser.newPage();
    await openView(page);
    const view = page.locator('#device-view');
    await expect.poll(() => view.locator('h2').textContent()).toMatch(/Stationsplein north.*lamp-ctrl-01/);

    // the default range: 24 h ending now
    await expect(view.locator('[data-range="24 h"]').getAttribute('aria-pressed')).resolves.toBe('true');
    const day = await expectChartIsHistory(page, 'ch1_power');
    expect(day.to - day.from).toBe(24 * HOUR);
    expect(day.point).toEqual(['ch1_power', 'ch2_power']); // the same quantity of both channels on one chart

    await view.locator('[data-range="1 h"]').click();
    await expect.poll(async () => ((p) => p && p.to - p.from)(await plotted(page, 'ch1_power')), { timeout: 5000 }).toBe(HOUR);
    const hour = await expectChartIsHistory(page, 'ch1_dim_level');
    // as many buckets as the plot is wide, and the whole chart in the phone's width
    const plotWidth = await page.evaluate<number>(`document.querySelector('#device-view .chart .u-over').clientWidth`);
    expect(Math.abs(hour.buckets - plotWidth)).toBeLessThanOrEqual(Math.max(4, plotWidth * 0.1));
    await expect.poll(() => page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    // the time axis and the range in the gateway's zone (Europe/Amsterdam), not the browser's
    const axis = await page.evaluate<{ splits: number[]; values: string[] }>(`(() => { const a = document.querySelector('#device-view .chart')._uplot.axes[0]; return { splits: a._splits, values: a._values }; })()`);
    const amsterdam = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Amsterdam', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    expect(axis.values.length).toBeGreaterThan(1);
    expect(axis.values.map((v) => v.split('\n')[0])).toEqual(axis.splits.map((t) => amsterdam.format(t)));
    expect(await view.locator('.dv-range-text').textContent()).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00 – now \(live\)$/);
    // touch targets of at least 44 px; point names wrap inside the screen, never cut off
    const small = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#device-view button')].filter((b) => b.offsetParent && b.getBoundingClientRect().height < 44).map((b) => b.textContent)`,
    );
    expect(small).toEqual([]);
    const outside = await page.evaluate<string[]>(`[...document.querySelectorAll('#device-view .point-name')].filter((e) => e.getBoundingClientRect().right > innerWidth).map((e) => e.textContent)`);
    expect(outside).toEqual([]);

    // a dim of this light from the view's control: verified, then a marker on its charts
    await view.locator('[data-control] input[type=range]').fill('40');
    await view.locator('[data-control] button[data-action="dim"]').click();
    const done = page.locator('#pending li[data-status="verified"]').filter({ hasText: /dim 40 % → device lamp-ctrl-01/ });
    await done.waitFor({ timeout: 15_000 });
    const id = (await done.getAttribute('data-command'))!;
    await expect.poll(() => gw.context.store.latest(DEVICE).get('ch1_dim_setpoint')?.value, { timeout: 5000 }).toBe(40);
    const item = view.locator(`.dv-marks li[data-mark="${id}"]`);
    await expect.poll(() => item.getAttribute('data-status'), { timeout: 10_000 }).toBe('verified');
    expect(await item.textContent()).toMatch(/dim 40 %.*verified.*by technician:demo-technician → device lamp-ctrl-01/);
    await expect.poll(() => view.locator(`.chart[data-point="ch1_power,ch2_power"] .mark[data-mark="${id}"]`).count()).toBe(1);
    const ts = Number(await item.getAttribute('data-ts'));
    const now = (await plotted(page, 'ch1_power'))!;
    expect(ts).toBeGreaterThanOrEqual(now.from);
    expect(ts).toBeLessThan(now.to);
    expect((await history(now)).marks.map((m) => m.id)).toContain(id);
    await expectChartIsHistory(page, 'ch1_power');

    await view.screenshot({ path: join(ARTIFACTS, 'device-390.png') });
    await page.close();
  });

  it('at 1440×900: charts side by side, the 7 d range, asked again while the range ends now, a drag zooms in', async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1440, height: 900 });
    await openView(page);
    const view = page.locator('#device-view');
    const boxes = await view.locator('.chart').evaluateAll((els) => els.slice(0, 2).map((e) => e.getBoundingClientRect().toJSON() as { x: number; y: number }));
    expect(boxes[1]!.y).toBe(boxes[0]!.y);
    expect(boxes[1]!.x).toBeGreaterThan(boxes[0]!.x);

    await view.locator('[data-range="7 d"]').click();
    await expect.poll(async () => ((p) => p && p.to - p.from)(await plotted(page, 'ch1_power')), { timeout: 5000 }).toBe(7 * 24 * HOUR);
    await expectChartIsHistory(page, 'ch1_power');

    await view.locator('[data-range="1 h"]').click();
    const first = await expectChartIsHistory(page, 'ch1_power');
    // live: the history is asked again (a later range) within max(step, 5 s)
    const step = Math.ceil((first.to - first.from) / first.buckets);
    await expect.poll(async () => (await plotted(page, 'ch1_power'))!.to, { timeout: Math.max(step, 5000) + 5000, interval: 250 }).toBeGreaterThan(first.to);
    await expectChartIsHistory(page, 'ch1_power');
    // the earlier dim is still marked
    await expect.poll(() => view.locator('.dv-marks li[data-mark]').count()).toBeGreaterThan(0);
    await view.screenshot({ path: join(ARTIFACTS, 'device-1440.png') });

    // a drag across a chart zooms in to that stretch of time (no longer live), and the charts are asked for it
    const live = (await plotted(page, 'ch1_power'))!;
    const plot = view.locator('.chart[data-point="ch1_power,ch2_power"] .u-over');
    await plot.scrollIntoViewIfNeeded();
    const over = (await plot.boundingBox())!;
    await page.mouse.move(over.x + over.width * 0.25, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2, { steps: 4 });
    await page.mouse.move(over.x + over.width * 0.75, over.y + over.height / 2, { steps: 4 });
    await page.mouse.up();
    await expect.poll(async () => ((p) => p && p.to - p.from)(await plotted(page, 'ch1_power'))).toBeLessThan((live.to - live.from) * 0.6);
    // (the demo has run for seconds: this stretch of the last hour may hold no reading, all gaps)
    const zoomed = await expectChartIsHistory(page, 'ch1_power', { withReadings: false });
    expect(zoomed.to).toBeLessThan(live.to);
    expect(await view.locator('.dv-range-text').textContent()).not.toMatch(/live/);
    await view.locator('[data-nav="reset"]').click();
    await expect.poll(() => view.locator('.dv-range-text').textContent()).toMatch(/now \(live\)/);
    await expect.poll(async () => ((p) => p && p.to - p.from)(await plotted(page, 'ch1_power'))).toBe(HOUR);

    // a driver fault on the light's channel 1 (its simulator): the driver raises ch1_driver_fault, a red strip under Alarms
    const sim = gw.built.components.find((c) => c.name === modbusSimName('rs485-1')) as SimBusComponent;
    const light = sim.simulators!.model<StreetlightModel>('rs485-1', 1);
    light.inject(1, 'driverFault');
    try {
      const strip = view.locator('.alarm-strip[data-alarm="ch1_driver_fault"]');
      await expect.poll(() => strip.locator('.seg.alarm').count(), { timeout: 15_000 }).toBeGreaterThan(0);
      expect(await strip.locator('.strip-label').textContent()).toMatch(/ch1_driver_fault error active/);
      expect(await view.locator('.dv-strips h3').allTextContents()).toContain('Alarms');
    } finally {
      light.inject(1, 'driverFault', false);
    }

    await page.close();
  });
});
