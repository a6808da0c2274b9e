/** Shared fixtures of the LoRaWAN tests: devices, a config, a driver on a real store, a raw forwarder socket. */
import dgram from 'node:dgram';
import { createLorawanDriver, type LorawanDriver, type LorawanDriverOptions } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { parseDatagram, pullData, pushData, type Datagram, type RxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { encodeStatus, type StreetlightStatus } from '../../edge/profiles/loraStreetlight.js';
import { makeContext, type TestContext } from '../helpers/context.js';

export const GW = 'aa555a0000000101';
export const GW2 = 'aa555a0000000102';
/** a forwarder that only pushes (never PULL_DATA): it cannot transmit */
export const GW3 = 'aa555a0000000103';

export const ABP = {
  devEui: '0004a30b001c0001',
  devAddr: '26011f01',
  nwkSKey: '2b7e151628aed2a6abf7158809cf4f3c',
  appSKey: '3c4fcf098815f7aba6d2ae2816157e2b',
} as const;

export const OTAA = {
  devEui: '0004a30b001c0002',
  joinEui: '70b3d57ed0000001',
  appKey: '00112233445566778899aabbccddeeff',
} as const;

export const CLASS_C = {
  devEui: '0004a30b001c0003',
  devAddr: '26011f03',
  nwkSKey: '11111111111111111111111111111111',
  appSKey: '22222222222222222222222222222222',
} as const;

export function loraConfig(extra: Record<string, unknown> = {}) {
  return {
    devices: [
      { id: 'lamp-abp', devEui: ABP.devEui, profile: 'lora-streetlight', groups: [] },
      { id: 'lamp-otaa', devEui: OTAA.devEui, profile: 'lora-streetlight', groups: [] },
      { id: 'lamp-c', devEui: CLASS_C.devEui, profile: 'lora-streetlight', groups: [] },
    ],
    lorawan: {
      port: 0,
      bind: '127.0.0.1',
      netId: '000013',
      dedupWindow: 50,
      devices: [
        { devEui: ABP.devEui, activation: 'abp', devAddr: ABP.devAddr, nwkSKey: ABP.nwkSKey, appSKey: ABP.appSKey },
        { devEui: OTAA.devEui, activation: 'otaa', joinEui: OTAA.joinEui, appKey: OTAA.appKey },
        { devEui: CLASS_C.devEui, activation: 'abp', class: 'C', devAddr: CLASS_C.devAddr, nwkSKey: CLASS_C.nwkSKey, appSKey: CLASS_C.appSKey },
      ],
      ...extra,
    },
  };
}

export interface Harness {
  t: TestContext;
  driver: LorawanDriver;
  port: number;
  close(): Promise<void>;
}

export async function startDriver(opts: LorawanDriverOptions = {}, extra: Record<string, unknown> = {}, t?: TestContext): Promise<Harness> {
  const ctx = t ?? makeContext(loraConfig(extra) as never, { flushIntervalMs: 10 });
  const driver = createLorawanDriver(ctx.ctx, opts);
  await driver.start();
  return {
    t: ctx,
    driver,
    port: driver.port(),
    async close() {
      await driver.stop();
      if (!t) await ctx.close();
    },
  };
}

export const STATUS: StreetlightStatus = {
  dimLevel: 80,
  power: 48,
  energy: 1.5,
  lampOn: true,
  lampFailure: false,
  driverFault: false,
  mainsFailure: false,
  manualOverride: false,
  scheduleId: 0,
  temperature: 30,
};

/** A signed, encrypted data uplink of an ABP-style session. */
export function dataUp(
  keys: { devAddr: string; nwkSKey: string; appSKey: string },
  fCnt: number,
  opts: { confirmed?: boolean; ack?: boolean; status?: StreetlightStatus; fPort?: number; payload?: Buffer } = {},
): Buffer {
  const p = loraPacket.fromFields(
    {
      MType: opts.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
      DevAddr: Buffer.from(keys.devAddr, 'hex'),
      FCtrl: { ADR: false, ACK: opts.ack ?? false, ADRACKReq: false, FPending: false },
      FCnt: fCnt & 0xffff,
      FPort: opts.fPort ?? 2,
      payload: opts.payload ?? encodeStatus(opts.status ?? STATUS),
    },
    Buffer.from(keys.appSKey, 'hex'),
    Buffer.from(keys.nwkSKey, 'hex'),
    undefined,
    fCntMsb(fCnt),
  );
  return p.getPHYPayload()!;
}

/** A Join Request of the OTAA device, signed with `appKey`. */
export function joinRequest(devNonce: number, appKey: string = OTAA.appKey): Buffer {
  const nonce = Buffer.alloc(2);
  nonce.writeUInt16BE(devNonce);
  return loraPacket
    .fromFields({ MType: 'Join Request', AppEUI: Buffer.from(OTAA.joinEui, 'hex'), DevEUI: Buffer.from(OTAA.devEui, 'hex'), DevNonce: nonce }, undefined, undefined, Buffer.from(appKey, 'hex'))
    .getPHYPayload()!;
}

export function rxpk(phy: Buffer, over: Partial<RxPk> = {}): RxPk {
  return { tmst: 1_000_000, chan: 0, rfch: 0, freq: 868.1, stat: 1, modu: 'LORA', datr: 'SF7BW125', codr: '4/5', rssi: -70, lsnr: 7.5, size: phy.length, data: phy.toString('base64'), ...over };
}

/** A raw forwarder socket: sends datagrams, collects what the server sends back. */
export class RawForwarder {
  readonly socket = dgram.createSocket('udp4');
  readonly received: { d: Datagram | null; raw: Buffer; at: number }[] = [];
  private token = 0;
  constructor(
    readonly serverPort: number,
    readonly eui = GW,
  ) {
    this.socket.on('message', (raw) => {
      let d: Datagram | null = null;
      try {
        d = parseDatagram(raw);
      } catch {
        d = null;
      }
      this.received.push({ d, raw, at: performance.now() });
    });
  }
  async bind(): Promise<this> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    return this;
  }
  send(buf: Buffer): void {
    this.socket.send(buf, this.serverPort, '127.0.0.1');
  }
  pull(): void {
    this.send(pullData(2, ++this.token, this.eui));
  }
  push(...frames: RxPk[]): void {
    this.send(pushData(2, ++this.token, this.eui, { rxpk: frames }));
  }
  pullResps() {
    return this.received.flatMap((r) => (r.d?.kind === 'pull_resp' ? [r.d] : []));
  }
  async close(): Promise<void> {
    await new Promise<void>((r) => this.socket.close(() => r()));
  }
}

export { waitFor } from '../helpers/wait.js';
