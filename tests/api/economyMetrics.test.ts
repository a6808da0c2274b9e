/**
 * The data economy in GET /metrics and GET /api/v1/status, on a real gateway (two simulated
 * streetlight controllers on Modbus TCP, the upstream sync to a real mosquitto): the buffer's
 * autonomy gauges are absent while the load is being measured (never a NaN or a made-up 0) and
 * present once it is; the bytes sent upstream today are a gauge beside the bytes counter, and
 * the status carries the days. The gateway's wall clock is moved forward by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localDay } from '../../cloud-sync/dailyBytes.js';
import { waitFor } from '../helpers/wait.js';
import { startEconomyGateway, type EconomyGateway } from '../support/economyGateway.js';

const TOKEN = 'economy-metrics-token-000001';
const ZONE = 'Europe/Amsterdam';
const HOUR_MS = 3_600_000;

let g: EconomyGateway;

beforeAll(async () => {
  g = await startEconomyGateway('economy-metrics', ZONE, TOKEN);
});

afterAll(async () => {
  await g?.stop();
});

async function metrics(): Promise<{ text: string; value(name: string): number | undefined }> {
  const text = await (await fetch(`${g.base}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  return {
    text,
    value: (name) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : undefined;
    },
  };
}

describe('the data economy in /metrics and /api/v1/status', () => {
  it('while measuring: bytes per reading only, no NaN; the bytes sent today beside the counter', async () => {
    await waitFor('bytes sent upstream', async () => (await g.status()).sync.bytesToday > 0, 15_000);
    const m = await metrics();
    expect(m.text).not.toMatch(/ NaN$/m);
    expect(m.text).toContain('# TYPE streetbox_storage_bytes_per_reading gauge');
    expect(m.value('streetbox_storage_bytes_per_reading')).toBeGreaterThan(0);
    expect(m.text).not.toContain('streetbox_storage_readings_per_day');
    expect(m.text).not.toContain('streetbox_storage_autonomy_days');
    expect(m.text).toContain('# TYPE streetbox_sync_bytes_today gauge');
    const today = m.value('streetbox_sync_bytes_today')!;
    expect(today).toBeGreaterThan(0);
    // today's bytes are all sent by this run (a new buffer): at most the run's counter
    expect(today).toBeLessThanOrEqual(m.value('streetbox_sync_bytes_total')!);
    expect(m.text).not.toContain('streetbox_sync_bytes_per_month_estimate');

    const st = await g.status();
    expect(st.store.autonomy).toMatchObject({ readingsPerDay: null, days: null });
    expect(st.sync.bytesPerDay).toEqual([{ day: localDay(g.now(), ZONE), bytes: st.sync.bytesToday }]);
    expect(st.sync.bytesPerMonthEstimate).toBeNull();
  });

  it('once the load is measured: the days and the load as gauges, as the status has them', async () => {
    g.advance(HOUR_MS);
    await waitFor('a measured autonomy', async () => (await g.status()).store.autonomy.days !== null, 10_000);
    const m = await metrics();
    const a = (await g.status()).store.autonomy;
    expect(m.text).not.toMatch(/ NaN$/m);
    expect(m.text).toContain('# TYPE streetbox_storage_autonomy_days gauge');
    const days = m.value('streetbox_storage_autonomy_days')!;
    const perDay = m.value('streetbox_storage_readings_per_day')!;
    expect(days).toBeGreaterThan(0);
    expect(perDay).toBeGreaterThan(0);
    // the load moves between the two looks: the same figures, loosely
    expect(perDay).toBeGreaterThan(a.readingsPerDay! * 0.5);
    expect(perDay).toBeLessThan(a.readingsPerDay! * 2);
    expect(days).toBeGreaterThan(a.days! * 0.5);
    expect(days).toBeLessThan(a.days! * 2);
    expect(m.value('streetbox_storage_bytes_per_reading')).toBe(a.bytesPerReading);
  });
});
