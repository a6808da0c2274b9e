/**
 * Issue 13, defect 4: forged `stat` datagrams must not create devices without end. Over real
 * UDP on loopback to a real driver and store: 22,000 PUSH_DATA with a `stat` object, each from
 * another gateway EUI. Without `lorawan.forwarders` (the demo) any forwarder is served from a
 * bounded table, and only one that relayed a frame with a valid MIC is trusted enough for its
 * stat to be stored; with the list, only those forwarders are served. Either way forged EUIs
 * leave no gw-<EUI> device behind, the table stays bounded, and the real forwarder is served,
 * whether it spoke before the flood or only after it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../edge/config/schema.js';
import { silentLogger } from '../../edge/log.js';
import { pullData, pushData, type Stat } from '../../edge/drivers/lorawan/semtech/packet.js';
import { ForwarderTable } from '../../edge/drivers/lorawan/semtech/forwarders.js';
import { startLorawanSimulator, type LorawanSimulator } from '../../edge/sim/lorawan/index.js';
import { ABP, GW, GW2, RawForwarder, dataUp, loraConfig, rxpk, startDriver, waitFor, type Harness } from './support.js';

const STAT: Stat = { rxnb: 3, rxok: 3, rxfw: 3, ackr: 100, dwnb: 0, txnb: 0, lati: 52.1, long: 5.1, alti: 3 };
const forgedEui = (i: number) => `ff${i.toString(16).padStart(14, '0')}`;

let h: Harness | null = null;
const sockets: RawForwarder[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) await s.close();
  await h?.close();
  h = null;
});

async function forwarder(port: number, eui: string): Promise<RawForwarder> {
  const f = await new RawForwarder(port, eui).bind();
  sockets.push(f);
  return f;
}

/** Sends `n` forged datagrams (each from forgedEui(i)) in bursts, letting the server catch up between them. */
async function flood(harness: Harness, from: RawForwarder, n: number, make: (i: number) => Buffer): Promise<number> {
  const base = harness.driver.metrics().datagrams;
  const received = () => harness.driver.metrics().datagrams - base;
  // These waits only pace the flood: loopback may drop datagrams, which never arrive, so running
  // out of time is no failure; the caller asserts how many were received.
  for (let i = 0; i < n; i += 250) {
    for (let j = i; j < Math.min(n, i + 250); j++) from.send(make(j));
    await waitFor('the previous burst', () => received() >= i, { timeoutMs: 300, intervalMs: 1 }).catch(() => undefined);
  }
  await waitFor('the whole flood', () => received() >= n, { timeoutMs: 1000, intervalMs: 5 }).catch(() => undefined);
  return received();
}

function gatewayDevices(harness: Harness): { devices: string[]; points: number } {
  harness.t.writer.flush();
  const all = harness.t.store.latestAll();
  const devices = [...all.keys()].filter((d) => d.startsWith('gw-'));
  return { devices, points: devices.reduce((n, d) => n + all.get(d)!.size, 0) };
}

async function uplinkWorks(harness: Harness, fwd: RawForwarder, fCnt: number): Promise<void> {
  const up0 = harness.driver.metrics().uplinks;
  fwd.push(rxpk(dataUp(ABP, fCnt), { rssi: -77 }));
  await waitFor('the real forwarder’s uplink', () => harness.driver.metrics().uplinks === up0 + 1, 2000);
  await waitFor('its readings', () => harness.t.readings.some((r) => r.device === 'lamp-abp' && r.point === 'rssi' && r.value === -77), 2000);
}

describe('forged forwarders without lorawan.forwarders (the demo): a bounded table, stat only from a vouched forwarder', () => {
  it('22,000 forged stat datagrams with distinct EUIs store no gw- device and keep the table bounded; the real one keeps working', async () => {
    h = await startDriver({ leadMs: 20 });
    h.t.keepReadings = false;
    const real = await forwarder(h.port, GW);
    real.pull();
    await waitFor('PULL_ACK', () => real.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
    const forger = await forwarder(h.port, 'ffffffffffffffff');

    const received = await flood(h, forger, 22_000, (i) => pushData(2, i & 0xffff, forgedEui(i), { stat: STAT }));
    expect(received, 'loopback delivered most of the flood').toBeGreaterThan(20_000);
    expect(h.driver.status().forwarders.length).toBeLessThanOrEqual(64 + 1);
    // no forged forwarder relayed a valid frame: none of their stat is stored
    expect(gatewayDevices(h)).toEqual({ devices: [], points: 0 });

    // The real forwarder: its uplinks are served; once one passed a device's MIC, its stat is stored.
    h.t.keepReadings = true;
    await uplinkWorks(h, real, 1);
    real.send(pushData(2, 7, GW, { stat: { ...STAT, rxnb: 42 } }));
    await waitFor(`gw-${GW} rxnb`, () => h!.t.store.latest(`gw-${GW}`).get('rxnb')?.value === 42, 2000);
    expect(gatewayDevices(h).devices).toEqual([`gw-${GW}`]);
  }, 30_000);

  it('a forwarder that first speaks after a flood of forged EUIs is served all the same (no lock-out)', async () => {
    h = await startDriver({ leadMs: 20 });
    const forger = await forwarder(h.port, 'ffffffffffffffff');
    await flood(h, forger, 5_000, (i) => pullData(2, i & 0xffff, forgedEui(i)));
    const real = await forwarder(h.port, GW);
    real.pull();
    await waitFor('PULL_ACK after the flood', () => real.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
    await uplinkWorks(h, real, 1);
    expect(h.driver.status().forwarders.length).toBeLessThanOrEqual(64 + 1);
  }, 30_000);
});

describe('forged forwarders with lorawan.forwarders: only those', () => {
  it('refuses every other EUI (stat and rxpk), counted as unknown_forwarder and never stored', async () => {
    h = await startDriver({ leadMs: 20 }, { forwarders: [{ eui: GW.toUpperCase(), name: 'cabinet-roof' }] });
    h.t.keepReadings = false;
    const real = await forwarder(h.port, GW);
    real.pull();
    await waitFor('PULL_ACK', () => real.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
    const forger = await forwarder(h.port, 'ffffffffffffffff');

    const received = await flood(h, forger, 5_000, (i) => pushData(2, i & 0xffff, forgedEui(i), { stat: STAT }));
    expect(received).toBeGreaterThan(4_500);
    // A genuine frame relayed by a forwarder that is not listed is not served either.
    const stranger = await forwarder(h.port, GW2);
    stranger.pull();
    stranger.push(rxpk(dataUp(ABP, 5)));
    await waitFor('unknown_forwarder count', () => (h!.driver.metrics().rejected.unknown_forwarder ?? 0) >= received + 2, 2000);
    // Every datagram but the real forwarder's PULL_DATA was refused; no frame reached the decoder.
    expect(h.driver.metrics()).toMatchObject({ uplinks: 0, frames: 0, rejected: { unknown_forwarder: h.driver.metrics().datagrams - 1 } });
    expect(forger.received).toHaveLength(0);
    expect(stranger.received).toHaveLength(0);
    expect(gatewayDevices(h)).toEqual({ devices: [], points: 0 });
    expect(h.driver.status().forwarders).toEqual([expect.objectContaining({ gatewayEui: GW, name: 'cabinet-roof', online: true })]);

    h.t.keepReadings = true;
    real.send(pushData(2, 7, GW, { stat: STAT }));
    await waitFor(`gw-${GW} readings`, () => gatewayDevices(h!).points === 9, 2000);
    expect(gatewayDevices(h).devices).toEqual([`gw-${GW}`]);
    await uplinkWorks(h, real, 6);
  }, 30_000);
});

describe('the forwarder table', () => {
  /** a datagram of `eui` at `now`, as the UDP backend handles it (admit, then stamp) */
  const hear = (t: ForwarderTable, eui: string, now: number): void => {
    const f = t.admit(eui, now);
    if (typeof f !== 'string') f.lastPullAt = now;
  };

  it('keeps at most 64 untrusted forwarders, the least recently heard making room; a vouched one stays until silent', () => {
    const t = new ForwarderTable();
    hear(t, GW, 0);
    expect(t.get(GW)).toMatchObject({ gatewayEui: GW });
    t.vouch(GW);
    expect(t.trusted(GW)).toBe(true);
    for (let i = 0; i < 1000; i++) hear(t, forgedEui(i), i);
    expect(t.size).toBe(64 + 1);
    expect(t.get(GW)).toBeDefined();
    expect(t.trusted(forgedEui(999))).toBe(false);
    // an untrusted forwarder that keeps talking is not the least recently heard
    hear(t, forgedEui(990), 2000);
    for (let i = 1000; i < 1063; i++) hear(t, forgedEui(i), 2000 + i);
    expect(t.get(forgedEui(990))).toBeDefined();
    // silence: gone after 10 min, trusted or not
    expect(t.list(10 * 60_000 + 10_000).map((f) => f.gatewayEui)).toEqual([]);
  });

  it('trusts at most 8 forwarders at once', () => {
    const t = new ForwarderTable();
    for (let i = 0; i < 10; i++) {
      hear(t, forgedEui(i), 0);
      t.vouch(forgedEui(i));
    }
    expect([...Array(10).keys()].filter((i) => t.trusted(forgedEui(i)))).toHaveLength(8);
  });

  it('with a list, admits only the listed EUIs and keeps their names', () => {
    const table = new ForwarderTable({ allowed: [{ eui: GW, name: 'roof' }] });
    expect(table.admit(GW2, 0)).toBe('unknown_forwarder');
    expect(table.admit(GW, 0)).toMatchObject({ gatewayEui: GW, name: 'roof' });
    expect(table.list(Number.MAX_SAFE_INTEGER)).toHaveLength(1);
  });
});

describe('lorawan.forwarders in the configuration', () => {
  const parse = (forwarders: unknown) => configSchema.safeParse({ gateway: { id: 'gw-test' }, ...loraConfig({ forwarders }) });

  it('takes { eui, name? } and defaults to none', () => {
    expect(configSchema.parse({ gateway: { id: 'gw-test' }, ...loraConfig() }).lorawan!.forwarders).toEqual([]);
    expect(parse([{ eui: 'AA555A0000000101', name: 'roof' }, { eui: GW2 }]).success).toBe(true);
  });

  it('refuses a malformed or repeated EUI, naming it', () => {
    const bad = parse([{ eui: 'aa555a00' }]);
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toContain('gateway EUI');
    const dup = parse([{ eui: GW }, { eui: GW.toUpperCase() }]);
    expect(dup.success).toBe(false);
    expect(dup.error?.issues[0]).toMatchObject({ path: ['lorawan', 'forwarders', 1, 'eui'] });
  });
});

describe('the demo simulator with a listed forwarder', () => {
  let sim: LorawanSimulator | null = null;
  afterEach(async () => {
    await sim?.stop();
    sim = null;
  });

  it('its forwarder, when listed, is served: uplinks and stat', async () => {
    h = await startDriver({}, { forwarders: [{ eui: 'aa555a0000000001' }] });
    sim = await startLorawanSimulator({
      port: h.port,
      host: '127.0.0.1',
      devices: h.t.config.lorawan!.devices.filter((d) => d.devEui === ABP.devEui).map((d) => ({ ...d, id: 'lamp-abp' })),
      uplinkIntervalMs: 200,
      keepaliveMs: 200,
      statIntervalMs: 200,
      log: silentLogger(),
    });
    await waitFor('simulated uplinks', () => h!.driver.metrics().uplinks >= 2, 5000);
    await waitFor('simulated stat', () => gatewayDevices(h!).devices.includes('gw-aa555a0000000001'), 3000);
    expect(h.driver.metrics().rejected.unknown_forwarder ?? 0).toBe(0);
  });
});
