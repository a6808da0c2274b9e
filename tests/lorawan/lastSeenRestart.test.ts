/**
 * Issue 19, fix: "just after a restart LoRaWAN nodes show 'last seen never' beside old values".
 * A node's last uplink lived only in the driver's memory; after a restart it was null until the
 * node spoke again (class A nodes report every 15 min or more), while its values, stamped with
 * that uplink's time, were in the store. The driver now recalls it from them at start.
 *
 * A real gateway in this process (LoRaWAN network server on UDP, HTTP API, SQLite file): a raw
 * forwarder sends one uplink of an ABP node; the gateway stops and starts again on the same
 * store; the node's row says last seen at that uplink's time and online, before it speaks again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { tempGateway } from '../support/cli.js';
import { ABP, CLASS_C, RawForwarder, dataUp, rxpk, waitFor } from './support.js';

const TOKEN = 'tech-token-lastseen-0001';

describe('LoRaWAN last seen across a restart', () => {
  const dir = tempGateway(`
gateway: { id: gw-lastseen }
storage: { path: data/gw.db }
devices:
  - { id: lamp-abp, devEui: ${ABP.devEui}, profile: lora-streetlight, groups: [park] }
  - { id: lamp-c, devEui: ${CLASS_C.devEui}, profile: lora-streetlight, groups: [park] }
lorawan:
  port: 1700
  bind: 127.0.0.1
  devices:
    - { devEui: ${ABP.devEui}, activation: abp, devAddr: "${ABP.devAddr}", nwkSKey: "${ABP.nwkSKey}", appSKey: "${ABP.appSKey}" }
    - { devEui: ${CLASS_C.devEui}, activation: abp, class: C, devAddr: "${CLASS_C.devAddr}", nwkSKey: "${CLASS_C.nwkSKey}", appSKey: "${CLASS_C.appSKey}" }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 8080
  tokens:
    - { name: tech, token: ${TOKEN}, role: technician }
`);
  let gw: Gateway | null = null;
  let heardAt = 0;

  // free ports (0 is refused in a file without simulate: true), the same store each time
  const start = (): Promise<Gateway> =>
    startGateway({
      configPath: dir.config,
      log: silentLogger(),
      override: (c) => {
        c.api.port = 0;
        c.lorawan!.port = 0;
      },
    });
  const row = (g: Gateway, id: string) => g.built.lorawan!.status().devices.find((d) => d.id === id)!;
  const get = async (g: Gateway, path: string): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await fetch(`http://127.0.0.1:${g.built.api!.port()}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(r.status, path).toBe(200);
    return path === '/metrics' ? r.text() : r.json();
  };
  /** one uplink of the ABP node through a raw forwarder; resolves when its readings are committed */
  const uplink = async (g: Gateway, fCnt: number): Promise<void> => {
    const fwd = await new RawForwarder(g.built.lorawan!.port()).bind();
    try {
      fwd.push(rxpk(dataUp(ABP, fCnt), { rssi: -93, lsnr: -4.5 }));
      await waitFor(`uplink ${fCnt} stored`, () => {
        const r = row(g, 'lamp-abp');
        return r.fCntUp === fCnt && g.context.store.latest('lamp-abp').get('rssi')?.ts === r.lastUplink;
      });
    } finally {
      await fwd.close();
    }
  };

  beforeAll(async () => {
    gw = await start();
    await uplink(gw, 1);
    heardAt = row(gw, 'lamp-abp').lastUplink!;
    await gw.stop();
    gw = await start();
  });
  afterAll(async () => {
    await gw?.stop();
    dir.cleanup();
  });

  it("knows the node's last uplink at once after the restart, from the store, with its RSSI and SNR", async () => {
    const g = gw!;
    expect(heardAt).toBeGreaterThan(0);
    expect(g.built.lorawan!.metrics().uplinks).toBe(0); // nothing heard since the restart
    expect(row(g, 'lamp-abp')).toMatchObject({ lastUplink: heardAt, rssi: -93, snr: -4.5 });
    // the API's device row (what the page's list and map read): last seen then, online
    const d = await get(g, '/api/v1/devices/lamp-abp');
    expect(d.driver).toMatchObject({ id: 'lamp-abp', lastSeen: heardAt, online: true, rssi: -93, snr: -4.5 });
    expect(d).toMatchObject({ lastSeen: heardAt, online: true });
    // and Prometheus
    const metrics = await get(g, '/metrics');
    expect(metrics).toContain(`streetbox_device_online{device="lamp-abp",group="park",groups=",park,"} 1\n`);
    expect(metrics).toContain(`streetbox_device_last_seen_timestamp_seconds{device="lamp-abp",group="park",groups=",park,"} ${heardAt / 1000}\n`);
  });

  it('leaves a node never heard unknown, not online', async () => {
    const g = gw!;
    expect(row(g, 'lamp-c')).toMatchObject({ lastUplink: null, rssi: null, snr: null });
    const d = await get(g, '/api/v1/devices/lamp-c');
    expect(d.driver).toMatchObject({ lastSeen: null, online: null });
  });

  it('moves on with the next uplink (the frame counter kept too)', async () => {
    const g = gw!;
    await uplink(g, 2);
    expect(row(g, 'lamp-abp').lastUplink).toBeGreaterThan(heardAt);
    expect(row(g, 'lamp-abp').fCntUp).toBe(2);
  });
});
