/** De-duplication windows (uplink/dedup.ts): one claim per frame, a window only for an accepted frame. */
import { describe, expect, it } from 'vitest';
import { Deduplicator, type Claim, type DedupWindow, type RxMeta } from '../../edge/drivers/lorawan/uplink/dedup.js';
import { FakeClock } from '../support/fakeClock.js';

const WINDOW_MS = 200;

function meta(gatewayEui: string, snr: number, rssi = -90): RxMeta {
  return { gatewayEui, rssi, snr, up: { gatewayEui, tmst: 1_000, freq: 868.1, datr: 'SF7BW125', receivedAt: 0 } };
}

function firstOf(claim: Claim): DedupWindow {
  if (claim.copy) throw new Error('expected the first copy of a frame, got a copy');
  return claim.window;
}

describe('Deduplicator', () => {
  const key = Deduplicator.key('26011bda', 7);
  const frame = Buffer.from('40da1b01260007000a', 'hex');

  it('merges the copies of an accepted frame and resolves with all of them, best first, when the window closes', async () => {
    const clock = new FakeClock();
    const dedup = new Deduplicator(clock, WINDOW_MS);
    const heard = firstOf(dedup.claim(key, frame, meta('gw-a', 2))).open();
    expect(dedup.claim(key, Buffer.from(frame), meta('gw-b', 9))).toEqual({ copy: true });
    let copies: string[] | null = null;
    void heard.then((h) => (copies = h.copies.map((m) => m.gatewayEui)));
    await clock.advance(WINDOW_MS - 1);
    expect(copies).toBeNull();
    await clock.advance(1);
    expect(copies).toEqual(['gw-b', 'gw-a']);
    expect(dedup.size).toBe(0);
  });

  it('a frame claimed but never accepted holds no window: its copies are claimed again, to be decoded and counted by reason', () => {
    const dedup = new Deduplicator(new FakeClock(), WINDOW_MS);
    const window = firstOf(dedup.claim(key, frame, meta('gw-a', 2)));
    expect(dedup.size).toBe(0);
    expect(dedup.claim(key, frame, meta('gw-b', 9)).copy).toBe(false);
    expect(window.open()).toBe(window.open());
  });

  it('another accepted frame under a key whose window is open closes that window first (its chain is not left hanging)', async () => {
    const clock = new FakeClock();
    const dedup = new Deduplicator(clock, WINDOW_MS);
    const first = firstOf(dedup.claim(key, frame, meta('gw-a', 2))).open();
    expect(dedup.claim(key, frame, meta('gw-b', 5))).toEqual({ copy: true });
    const other = Buffer.from('40da1b01260007000b', 'hex');
    const second = firstOf(dedup.claim(key, other, meta('gw-c', 1))).open();
    // the first window closed now with the copies it had, before any timer fired
    await expect(first).resolves.toMatchObject({ best: { gatewayEui: 'gw-b' }, copies: [{ gatewayEui: 'gw-b' }, { gatewayEui: 'gw-a' }] });
    expect(dedup.size).toBe(1);
    // copies of the second frame go to the second window; its timer alone is left
    expect(dedup.claim(key, other, meta('gw-d', 3))).toEqual({ copy: true });
    expect(clock.pendingTimers).toBe(1);
    dedup.flush();
    await expect(second).resolves.toMatchObject({ copies: [{ gatewayEui: 'gw-d' }, { gatewayEui: 'gw-c' }] });
    expect(dedup.size).toBe(0);
  });
});
