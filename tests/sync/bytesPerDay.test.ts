/**
 * Upstream bytes per day (cloud-sync/dailyBytes.ts) against a real mosquitto: the bytes the sync
 * counts are the payload bytes the broker delivered, counted on the day of the gateway's zone
 * (Europe/Amsterdam, across the night it springs forward), the month estimate waits for a full
 * day, and the counts survive a restart of the sync and read the same from the file (the CLI's
 * read-only view). The gateway's wall clock is moved by hand; timers run in real time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyncComponent } from '../../cloud-sync/index.js';
import { readUpstreamBytes } from '../../cloud-sync/dailyBytes.js';
import { systemClock, type Clock } from '../../edge/clock.js';
import { syncMetrics } from '../../edge/componentMetrics.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { GW, observe, writeBacklog, type Observer } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

const ZONE = 'Europe/Amsterdam';
/** 2026-03-28 23:50 in Amsterdam (+01:00); the next day has 23 hours */
const DAY1_LATE = Date.UTC(2026, 2, 28, 22, 50);
/** 2026-03-29 12:00 (+02:00) */
const DAY2_NOON = Date.UTC(2026, 2, 29, 10, 0);
/** 2026-03-30 00:00:30 (+02:00) */
const DAY3_START = Date.UTC(2026, 2, 29, 22, 0, 30);

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

/** The system clock with its wall time set by hand (timers and the monotonic clock are real). */
function settableClock(): Clock & { set(at: number): void } {
  let offset = 0;
  return { ...systemClock, now: () => Date.now() + offset, set: (at) => void (offset = at - Date.now()) };
}

function payloadBytes(o: Observer): number {
  return o.messages.reduce((s, m) => s + m.payload.length, 0);
}

describe('upstream bytes per day', () => {
  let t: TestContext;
  let watcher: Observer;

  afterAll(async () => {
    await watcher?.close();
    await t?.close();
  });

  it('counts what the broker delivered per day of the gateway zone, estimates a month from full days, and keeps the counts across a restart', async () => {
    t = makeContext({ gateway: { id: GW, timezone: ZONE }, sync: { url: broker.url, batchSize: 200, reconnectMin: 50, reconnectMax: 400 } });
    const clock = settableClock();
    const ctx = { ...t.ctx, clock };
    watcher = await observe(broker.url, `streetbox/${GW}/up/#`);
    const sync = createSyncComponent(ctx);
    let kept: { bytesToday: number; bytesPerDay: { day: string; bytes: number }[]; bytesPerMonthEstimate: number | null } | undefined;
    const drained = async (what: string) => {
      await waitFor(`${what}: drained`, () => sync.status().connected && sync.status().lagSeq === 0 && sync.status().inFlight === 0, 20_000);
      await waitFor(`${what}: every payload at the watcher`, () => payloadBytes(watcher) === sync.status().sentBytes, 10_000);
    };
    try {
      // day 1: the sync begins during it, so it is not a full day
      clock.set(DAY1_LATE);
      writeBacklog(t.store, 3000);
      await sync.start();
      await drained('day 1');
      const day1 = sync.status().sentBytes;
      expect(day1).toBeGreaterThan(0);
      expect(sync.status()).toMatchObject({ bytesToday: day1, bytesPerDay: [{ day: '2026-03-28', bytes: day1 }], bytesPerMonthEstimate: null });

      // day 2 (23 hours long): today starts again from 0; day 1 stays partial
      clock.set(DAY2_NOON);
      expect(sync.status().bytesToday).toBe(0);
      writeBacklog(t.store, 2000);
      await drained('day 2');
      const day2 = sync.status().sentBytes - day1;
      expect(sync.status()).toMatchObject({
        bytesToday: day2,
        bytesPerDay: [
          { day: '2026-03-28', bytes: day1 },
          { day: '2026-03-29', bytes: day2 },
        ],
        bytesPerMonthEstimate: null,
      });

      // day 3: day 2 was counted whole, the first full day
      clock.set(DAY3_START);
      writeBacklog(t.store, 1000);
      await drained('day 3');
      const day3 = sync.status().sentBytes - day1 - day2;
      const st = sync.status();
      expect(st.bytesToday).toBe(day3);
      expect(st.bytesPerDay.map((d) => d.day)).toEqual(['2026-03-28', '2026-03-29', '2026-03-30']);
      expect(st.bytesPerMonthEstimate).toBe(day2 * 30);
      // the sum of the days is every payload byte the broker delivered
      expect(st.bytesPerDay.reduce((s, d) => s + d.bytes, 0)).toBe(payloadBytes(watcher));

      const metrics = syncMetrics(sync);
      expect(metrics.find((m) => m.name === 'streetbox_sync_bytes_today')).toMatchObject({ type: 'gauge', value: day3 });
      expect(metrics.find((m) => m.name === 'streetbox_sync_bytes_per_month_estimate')).toMatchObject({ type: 'gauge', value: day2 * 30 });
      expect(metrics.find((m) => m.name === 'streetbox_sync_bytes_total')).toMatchObject({ type: 'counter', value: day1 + day2 + day3 });

      await sync.stop();
      kept = { bytesToday: st.bytesToday, bytesPerDay: st.bytesPerDay, bytesPerMonthEstimate: st.bytesPerMonthEstimate };
      // the file says the same, read-only (what `streetbox status` reads)
      expect(readUpstreamBytes(t.config.storage.path, ZONE, clock.now())).toEqual(kept);
    } finally {
      await sync.stop();
    }

    // a new sync on the same buffer (a restart of the gateway) starts from the days kept
    const again = createSyncComponent(ctx);
    try {
      await again.start();
      const st = again.status();
      expect(st.sentBytes).toBe(0);
      expect({ bytesToday: st.bytesToday, bytesPerDay: st.bytesPerDay, bytesPerMonthEstimate: st.bytesPerMonthEstimate }).toEqual(kept);
    } finally {
      await again.stop();
    }
  });

  it('without a sync configured: nothing counted, no estimate, no estimate metric', async () => {
    const idle = makeContext({ gateway: { id: 'gw-idle' } });
    try {
      const sync = createSyncComponent(idle.ctx);
      expect(sync.status()).toMatchObject({ bytesToday: 0, bytesPerDay: [], bytesPerMonthEstimate: null });
      const names = syncMetrics(sync).map((m) => m.name);
      expect(names).toContain('streetbox_sync_bytes_today');
      expect(names).not.toContain('streetbox_sync_bytes_per_month_estimate');
    } finally {
      await idle.close();
    }
  });
});
