/**
 * MAC scenario rows (as ChirpStack's class_a_test.rs, several uplinks per row): the
 * configuration, the MAC requests and application downlinks queued before, then uplink by uplink
 * the frame (its FOpts or FPort 0 MAC commands, the ADR bit, the rx info of each forwarder that
 * hears it) and the frames the driver sends back, decoded (FOpts, FPort 0 commands, the txpk);
 * at the end the readings stored, the events, the counters, the outcomes, status(). A fresh
 * store and driver per row, real UDP on 127.0.0.1; the driver's clock is a fake one moved past
 * each de-duplication window, the gateway's (readings, events) stays the system clock.
 */
import { expect } from 'vitest';
import type { AppDownlink, LorawanDriver, LorawanStatus } from '../../edge/drivers/lorawan/index.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { decodeMacDownlink, encodeMacUplink } from '../../edge/drivers/lorawan/mac/commands.js';
import { FOPTS_MAX, type MacDownlink, type MacUplink } from '../../edge/drivers/lorawan/mac/types.js';
import type { RxPk, TxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { encodeStatus } from '../../edge/profiles/loraStreetlight.js';
import type { Reading } from '../../edge/store/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { FakeClock } from '../support/fakeClock.js';
import { ABP, GW, loraConfig, RawForwarder, rxpk, STATUS } from './support.js';

/** the driver's clock starts on a whole second: DeviceTimeAns carries it exactly */
export const START = Date.UTC(2026, 0, 1, 12, 0, 0);
const DEDUP_WINDOW_MS = 50;

/** An uplink of lamp-abp (ABP keys of support.ts). */
export interface Up {
  fCnt: number;
  /** MAC commands in FOpts (or raw bytes) */
  fOpts?: MacUplink[] | Buffer;
  /** MAC commands as the FPort 0 payload (or raw bytes) */
  port0?: MacUplink[] | Buffer;
  /** an application payload on this FPort (default a status on FPort 2) */
  fPort?: number;
  payload?: Buffer;
  /** FCtrl.ADR */
  adr?: boolean;
  confirmed?: boolean;
  /** FCtrl.ACK: the node acknowledges a confirmed downlink */
  ack?: boolean;
  /** rx info of the copy the pulling forwarder (GW) hears */
  rx?: Partial<RxPk>;
  /** more forwarders that hear it (they do not pull) */
  also?: { gateway: string; rx?: Partial<RxPk> }[];
  /** the driver's clock moves this far before the frame */
  after?: number;
}

/** A downlink as the test reads it back. */
export interface MacFrame {
  micOk: boolean;
  /** the commands of FOpts and how many bytes they took */
  fOpts: MacDownlink[];
  fOptsBytes: number;
  fPort: number | null;
  /** the commands of an FPort 0 payload */
  port0: MacDownlink[];
  /** an application payload, decrypted */
  payloadHex?: string;
  ack: boolean;
  fPending: boolean;
  txpk: TxPk;
}

/** A frame as a row expects it: any of MacFrame's fields, each as far as given (toMatchObject). */
export type ExpectedFrame = { [K in keyof MacFrame]?: unknown };

export interface MacStep {
  /** MAC requests queued for lamp-abp before this step's uplink (requestMac); their outcomes follow the scenario's */
  requests?: MacDownlink[];
  up: Up;
  /** every frame sent back for this uplink, in order */
  sent: ExpectedFrame[];
}

export interface MacScenario {
  name: string;
  /** lorawan.* settings beside loraConfig()'s (adr, devStatusInterval, rx1DrOffset, …) */
  config?: Record<string, unknown>;
  /** MAC requests queued for lamp-abp before the first uplink (requestMac) */
  requests?: MacDownlink[];
  /** application downlinks queued for lamp-abp before the first uplink (enqueueApp) */
  app?: AppDownlink[];
  steps: MacStep[];
  /** the driver restarts on the same store before this step */
  restartBefore?: number;
  expect: {
    /** each matches a stored reading of lamp-abp */
    readings?: Partial<Reading>[];
    /** readings of lamp-abp per point */
    counts?: Record<string, number>;
    events?: { kind: string; detail?: Record<string, unknown> }[];
    noEvents?: string[];
    /** how many events of a kind */
    eventCounts?: Record<string, number>;
    /** the rejections, exactly (default none) */
    rejected?: Record<string, number>;
    /** metrics().mac, as far as given */
    mac?: Record<string, Record<string, number>>;
    /** the requests' outcomes (MacOutcome, as far as given), those of the scenario then of the steps, in order; 'pending' while they have none */
    outcomes?: (Record<string, unknown> | 'pending')[];
    status?: Partial<LorawanStatus['devices'][number]>;
  };
}

const NWK = Buffer.from(ABP.nwkSKey, 'hex');
const APP = Buffer.from(ABP.appSKey, 'hex');

function macBytes(cmds: MacUplink[] | Buffer | undefined): Buffer | undefined {
  return cmds === undefined || Buffer.isBuffer(cmds) ? cmds : encodeMacUplink(cmds);
}

/** lamp-abp's uplink: a status on FPort 2 (or a payload on another port) with FOpts, or MAC commands on FPort 0. */
export function macUplink(u: Up): Buffer {
  const fOpts = macBytes(u.fOpts);
  const port0 = macBytes(u.port0);
  const p = loraPacket.fromFields(
    {
      MType: u.confirmed ? 'Confirmed Data Up' : 'Unconfirmed Data Up',
      DevAddr: Buffer.from(ABP.devAddr, 'hex'),
      FCtrl: { ADR: u.adr ?? false, ACK: u.ack ?? false, ADRACKReq: false, FPending: false },
      FCnt: u.fCnt & 0xffff,
      ...(fOpts ? { FOpts: fOpts } : {}),
      FPort: port0 ? 0 : (u.fPort ?? 2),
      payload: port0 ?? u.payload ?? encodeStatus(STATUS),
    },
    APP,
    NWK,
    undefined,
    fCntMsb(u.fCnt),
  );
  return p.getPHYPayload()!;
}

/** A downlink to lamp-abp, decoded: FOpts and FPort 0 commands (the node's codec), the application payload. */
export function readMacDownlink(txpk: TxPk): MacFrame {
  const p = loraPacket.fromWire(Buffer.from(txpk.data, 'base64'));
  const fOpts = p.FOpts ?? Buffer.alloc(0);
  const fPort = p.getFPort();
  const payload = p.FRMPayload && p.FRMPayload.length > 0 ? loraPacket.decrypt(p, APP, NWK) : Buffer.alloc(0);
  return {
    micOk: loraPacket.verifyMIC(p, NWK),
    fOpts: decodeMacDownlink(fOpts).commands,
    fOptsBytes: fOpts.length,
    fPort,
    port0: fPort === 0 ? decodeMacDownlink(payload).commands : [],
    ...(fPort !== null && fPort > 0 ? { payloadHex: payload.toString('hex') } : {}),
    ack: p.getFCtrlACK() === true,
    fPending: p.getFCtrlFPending() === true,
    txpk,
  };
}

/** A driver on the fake clock with GW pulling, on a store of its own or `t`'s. */
export interface Rig {
  t: TestContext;
  clock: FakeClock;
  driver: LorawanDriver;
  fwd: RawForwarder;
  extra: Map<string, RawForwarder>;
}

export async function startRig(t: TestContext, clock: FakeClock, driver: LorawanDriver = createLorawanDriver(t.ctx, { clock, leadMs: 20 })): Promise<Rig> {
  await driver.start();
  const fwd = await new RawForwarder(driver.port(), GW).bind();
  fwd.pull();
  await waitFor('PULL_ACK', () => fwd.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
  return { t, clock, driver, fwd, extra: new Map() };
}

export async function stopRig(rig: Rig): Promise<void> {
  await rig.fwd.close();
  for (const f of rig.extra.values()) await f.close();
  await rig.driver.stop();
}

/** A forwarder that only pushes, known to the server (an empty PUSH_DATA) before it hears a frame. */
async function extraForwarder(rig: Rig, gateway: string): Promise<RawForwarder> {
  const known = rig.extra.get(gateway);
  if (known) return known;
  const f = await new RawForwarder(rig.driver.port(), gateway).bind();
  rig.extra.set(gateway, f);
  f.push();
  await waitFor(`${gateway} known`, () => f.received.some((r) => r.d?.kind === 'push_ack'), 2000);
  return f;
}

/** One uplink heard by GW (and `also`), the window closed; returns the frames sent back, decoded. */
export async function uplink(rig: Rig, u: Up): Promise<MacFrame[]> {
  const { driver, fwd, clock } = rig;
  if (u.after) await clock.advance(u.after);
  const before = fwd.pullResps().length;
  const frames0 = driver.metrics().frames;
  const phy = macUplink(u);
  const also = await Promise.all((u.also ?? []).map(async (a) => ({ f: await extraForwarder(rig, a.gateway), rx: a.rx })));
  fwd.push(rxpk(phy, u.rx));
  for (const a of also) a.f.push(rxpk(phy, a.rx));
  const copies = 1 + (u.also?.length ?? 0);
  await waitFor(`uplink ${u.fCnt} heard`, () => driver.metrics().frames === frames0 + copies, 2000);
  await clock.advance(DEDUP_WINDOW_MS);
  await waitFor('every PULL_RESP at its forwarder', () => fwd.pullResps().length === driver.metrics().downlinks, 2000);
  return fwd.pullResps().slice(before).map((r) => readMacDownlink(r.txpk));
}

export async function runMacScenario(s: MacScenario): Promise<void> {
  const clock = new FakeClock(START);
  const t = makeContext(loraConfig(s.config) as never, { flushIntervalMs: 10 });
  let rig = await startRig(t, clock);
  try {
    const outcomes = (s.requests ?? []).map((r) => rig.driver.requestMac('lamp-abp', r).outcome);
    for (const a of s.app ?? []) rig.driver.enqueueApp('lamp-abp', a);
    for (const [i, step] of s.steps.entries()) {
      if (s.restartBefore === i) {
        await stopRig(rig);
        rig = await startRig(t, clock);
      }
      for (const r of step.requests ?? []) outcomes.push(rig.driver.requestMac('lamp-abp', r).outcome);
      const frames = await uplink(rig, step.up);
      expect(frames, `frames sent for uplink ${i + 1} (FCnt ${step.up.fCnt})`).toMatchObject(step.sent);
      // LoRaWAN 1.0.3 §4.3.1.6: FOpts never past 15 bytes, never beside FPort 0
      for (const f of frames) {
        expect(f.fOptsBytes).toBeLessThanOrEqual(FOPTS_MAX);
        if (f.fPort === 0) expect(f.fOptsBytes).toBe(0);
        expect(f.micOk).toBe(true);
      }
    }
    t.writer.flush();
    const e = s.expect;
    const readings = t.store.readings({ after: 0, limit: 10_000, device: 'lamp-abp' }).items;
    for (const r of e.readings ?? []) expect(readings, 'stored readings').toContainEqual(expect.objectContaining(r));
    for (const [point, n] of Object.entries(e.counts ?? {})) expect(readings.filter((r) => r.point === point), point).toHaveLength(n);
    for (const ev of e.events ?? []) {
      expect(t.events, `event ${ev.kind}`).toContainEqual(expect.objectContaining({ kind: ev.kind, device: 'lamp-abp', ...(ev.detail ? { detail: expect.objectContaining(ev.detail) } : {}) }));
    }
    for (const kind of e.noEvents ?? []) expect(t.events.filter((x) => x.kind === kind), `no ${kind}`).toEqual([]);
    for (const [kind, n] of Object.entries(e.eventCounts ?? {})) expect(t.events.filter((x) => x.kind === kind), kind).toHaveLength(n);
    expect(rig.driver.metrics().rejected, 'rejections').toEqual(e.rejected ?? {});
    if (e.mac) expect(rig.driver.metrics().mac).toMatchObject(e.mac);
    if (e.status) expect(rig.driver.status().devices.find((d) => d.id === 'lamp-abp')).toMatchObject(e.status);
    if (e.outcomes) expect(await Promise.all(outcomes.map(settled)), 'MAC outcomes').toMatchObject(e.outcomes);
  } finally {
    await stopRig(rig);
    await t.close();
  }
}

function settled<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}
