/**
 * End to end over real UDP on loopback: the simulated packet forwarder and nodes (OTAA and
 * ABP), the network server on a real SQLite store: join, uplinks, a dim downlink and its
 * confirmation; readings committed in the store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startLorawanSimulator, type LorawanSimulator } from '../../edge/sim/lorawan/index.js';
import { ABP, CLASS_C, OTAA, startDriver, waitFor, type Harness } from './support.js';

let h: Harness | null = null;
let sim: LorawanSimulator | null = null;
afterEach(async () => {
  await sim?.stop();
  await h?.close();
  sim = null;
  h = null;
});

describe('lorawan end to end (simulated forwarder + nodes over UDP)', () => {
  it('joins, reports, takes a dim command in RX1 and reports the new level; the command is verified', async () => {
    h = await startDriver();
    sim = await startLorawanSimulator({
      port: h.port,
      host: '127.0.0.1',
      // As main.ts does it: the lorawan.devices entries of the config, each with its device id.
      devices: h.t.config.lorawan!.devices
        .filter((d) => d.devEui === ABP.devEui || d.devEui === OTAA.devEui)
        .map((d) => ({ ...d, id: h!.t.config.devices.find((x) => x.devEui === d.devEui)!.id })),
      uplinkIntervalMs: 300,
      reportDelayMs: 100,
      keepaliveMs: 200,
      log: silentLogger(),
    });
    const [abp, otaa] = sim.nodes;
    await waitFor('join and uplinks', () => otaa!.joined && otaa!.stats.uplinks >= 2 && abp!.stats.uplinks >= 2, 8000);
    await waitFor('otaa readings', () => h!.t.readings.some((r) => r.device === 'lamp-otaa' && r.point === 'dimLevel'), 3000);
    expect(h.t.events.some((e) => e.kind === 'lorawan.joined' && e.device === 'lamp-otaa')).toBe(true);

    const unconfirmed = h.driver.enqueueDownlink('lamp-otaa', { action: 'dim', level: 40 });
    const confirmed = h.driver.enqueueDownlink('lamp-abp', { action: 'dim', level: 25, confirmed: true });
    // The caller's outcomes: the node ACKed the confirmed one; the unconfirmed one went on the air.
    expect(await confirmed.outcome).toEqual({ id: confirmed.id, device: 'lamp-abp', status: 'verified' });
    expect(await unconfirmed.outcome).toEqual({ id: unconfirmed.id, device: 'lamp-otaa', status: 'sent' });
    // Observers see more: the node's next report verifies the unconfirmed one too.
    const ev = (id: string, kind: string) => h!.t.events.find((e) => e.kind === kind && 'id' in e.detail && e.detail.id === id);
    await waitFor('the report that verifies the unconfirmed command', () => ev(unconfirmed.id, 'lorawan.downlink.verified'), 8000);
    expect(ev(unconfirmed.id, 'lorawan.downlink.sent')?.detail).toMatchObject({ window: 'rx1', action: 'dim' });
    expect(ev(unconfirmed.id, 'lorawan.downlink.verified')?.detail).toMatchObject({ via: 'report' });
    expect(ev(confirmed.id, 'lorawan.downlink.verified')?.detail).toMatchObject({ via: 'ack' });
    expect(otaa!.state.dimLevel).toBe(40);
    expect(abp!.state.dimLevel).toBe(25);
    await waitFor('reported level', () => h!.t.readings.some((r) => r.device === 'lamp-otaa' && r.point === 'dimLevel' && r.value === 40), 3000);
    for (const point of ['power', 'energy', 'lampOn', 'rssi', 'snr', 'dr']) {
      expect(h.t.readings.some((r) => r.device === 'lamp-abp' && r.point === point), point).toBe(true);
    }
    const st = h.driver.status();
    expect(st.forwarders[0]).toMatchObject({ gatewayEui: 'aa555a0000000001', online: true });
    const d = st.devices.find((x) => x.id === 'lamp-otaa')!;
    expect(d.devAddr).toMatch(/^2[67]/);
    expect(d.fCntUp).toBeGreaterThanOrEqual(2);
    expect(h.driver.metrics().rejected).toEqual({});
  });

  it('class C: a command goes out at once on RX2 (869.525 MHz, imme) and is verified by the next report', async () => {
    h = await startDriver();
    sim = await startLorawanSimulator({
      port: h.port,
      host: '127.0.0.1',
      devices: [{ id: 'lamp-c', activation: 'abp', class: 'C', ...CLASS_C }],
      uplinkIntervalMs: 60_000,
      reportDelayMs: 50,
      keepaliveMs: 200,
      log: silentLogger(),
    });
    const node = sim.nodes[0]!;
    await waitFor('first uplink', () => node.stats.uplinks >= 1 && h!.driver.status().devices.find((x) => x.id === 'lamp-c')!.lastUplink !== null, 5000);
    const { id, outcome } = h.driver.enqueueDownlink('lamp-c', { action: 'off' });
    expect(await outcome).toEqual({ id, device: 'lamp-c', status: 'sent' });
    // for observers: the node's next report verifies it
    await waitFor('class C verified', () => h!.t.events.some((e) => e.kind === 'lorawan.downlink.verified' && e.detail.id === id), 5000);
    const tx = sim.forwarders[0]!.received.at(-1)!.txpk;
    expect(tx).toMatchObject({ imme: true, freq: 869.525, datr: 'SF12BW125', ipol: true });
    expect(node.state.lampOn).toBe(false);
  });
});
