/**
 * A command's expiry under a scaled radio clock (simulate.radioTimeScale): the control plane gives
 * it on the gateway's clock; the driver's queue runs on the radio's, whose wall time is years
 * ahead of the gateway's on the shared radio time line (RADIO_TIME_ORIGIN). Found by the FUOTA
 * end-to-end test (tests/firmware/e2e/fuota.test.ts): every light a firmware job drove back to its
 * level got `expired` before its downlink was even queued. The instant is carried over to the radio
 * clock. Real parts: the driver on a real store, the system clock scaled as components.ts scales it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RADIO_TIME_ORIGIN, scaledClock, systemClock } from '../../edge/clock.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import type { LorawanDriver } from '../../edge/drivers/lorawan/api.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { loraConfig, waitFor } from './support.js';

const K = 10;
let t: TestContext | null = null;
let driver: LorawanDriver | null = null;

afterEach(async () => {
  await driver?.stop();
  await t?.close();
  driver = null;
  t = null;
});

describe('a command to a LoRaWAN node with the radio clock scaled', () => {
  it('expires at the instant it was given: queued, not expired at once; expired once that time passed, k times as many ms on the radio clock', async () => {
    t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
    const radio = scaledClock(systemClock, K, RADIO_TIME_ORIGIN);
    driver = createLorawanDriver(t.ctx, { clock: radio });
    await driver.start();
    // the gateway's clock, as the control plane reads it: 2 s left (20 s of radio time at K = 10)
    const { id, outcome } = driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 40, confirmed: true, expiresAt: t.ctx.clock.now() + 2_000 });
    let settled = false;
    void outcome.then(() => (settled = true));
    // the queue is swept every second of radio time: a few sweeps go by with the command in it
    const from = radio.monotonic();
    await waitFor('three expiry sweeps of the radio clock', () => radio.monotonic() - from > 3_000, 2000);
    expect(settled, 'expired before its time').toBe(false);
    expect(driver.status().devices.find((d) => d.id === 'lamp-abp')?.queued).toBe(1);
    expect(await outcome).toEqual({ id, device: 'lamp-abp', status: 'expired', reason: 'expired' });
    // swept once a second of radio time: it lived its 20 s, less the time before the first sweep
    expect(radio.monotonic() - from, 'radio ms it lived').toBeGreaterThanOrEqual(20_000 - 1_000);
  });
});
