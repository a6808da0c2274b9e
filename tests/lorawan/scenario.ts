/**
 * Scenario rows for the network server, as ChirpStack's class_a_test.rs: each row a name, the
 * session stored before, downlinks queued before, the forwarders that hear the frame (rx
 * info), the PHYPayload, and what must follow: stored readings, events, frames sent back
 * (PULL_RESPs read back from the forwarders' sockets), counters, downlink outcomes. One
 * function runs a row: a fresh store and driver on a fake clock, real UDP on loopback.
 */
import { expect } from 'vitest';
import type { DownlinkCommand, DownlinkOutcome, LorawanMetricsSnapshot, LorawanStatus } from '../../edge/drivers/lorawan/index.js';
import { createLorawanDriver } from '../../edge/drivers/lorawan/index.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { subBandOf } from '../../edge/drivers/lorawan/region/eu868.js';
import type { RxPk, TxPk } from '../../edge/drivers/lorawan/semtech/packet.js';
import { AirtimeTable } from '../../edge/drivers/lorawan/storage/airtime.js';
import { lorawanDatabase } from '../../edge/drivers/lorawan/storage/db.js';
import { SessionStore } from '../../edge/drivers/lorawan/storage/sessions.js';
import type { Reading } from '../../edge/store/types.js';
import { makeContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { FakeClock } from '../support/fakeClock.js';
import { ABP, CLASS_C, dataUp, GW, loraConfig, OTAA, RawForwarder, rxpk } from './support.js';

/** the dedupWindow of loraConfig() */
const DEDUP_WINDOW_MS = 50;

export interface ForwarderRx {
  gateway: string;
  /** sends PULL_DATA before the frame, so that it can transmit (default true) */
  pulls?: boolean;
  /** this copy's reception (rssi, lsnr, tmst, freq, datr, stat) */
  rx?: Partial<RxPk>;
}

/** A downlink as the test reads it back. */
export interface DownFrame {
  mType: string;
  /** the MIC checks with the device's keys (NwkSKey, or the AppKey of a Join Accept) */
  micOk: boolean;
  ack?: boolean;
  fPort?: number | null;
  fCnt?: number;
  /** the decrypted FRMPayload */
  payloadHex?: string;
  netId?: string;
  devAddr?: string;
}

export interface Scenario {
  name: string;
  /** the device's session as stored before the driver starts: its counter, DevNonces it used */
  session?: { devEui: string; fCntUp?: number | null; usedDevNonces?: number[] };
  /** downlinks queued before the frame (expiresInMs: from now on the driver's clock) */
  queue?: { device: string; command: DownlinkCommand; expiresInMs?: number }[];
  /** air time already spent in the last hour, per gateway and frequency */
  airtime?: { gateway: string; freq: number; ms: number }[];
  /** the forwarders that hear the frame, in order of arrival (default: GW, which pulls) */
  heardBy?: ForwarderRx[];
  phy: Buffer;
  expect: {
    /** each matches a stored reading */
    readings?: Partial<Reading>[];
    /** readings per "device/point" ("device/*": of any point) */
    counts?: Record<string, number>;
    events?: { kind: string; device?: string; detail?: Record<string, unknown> }[];
    /** event kinds that must not appear */
    noEvents?: string[];
    /** every PULL_RESP, in order: the forwarder, its txpk and the frame in it */
    sent: { gateway: string; txpk?: Partial<TxPk>; frame?: Partial<DownFrame> }[];
    metrics?: Partial<Omit<LorawanMetricsSnapshot, 'rejected'>>;
    /** the rejections, exactly (default: none) */
    rejected?: Record<string, number>;
    /** status() of a device */
    status?: { id: string } & Partial<LorawanStatus['devices'][number]>;
    /** the outcome of each queued downlink, in order; 'pending' when it has none yet */
    outcomes?: (Partial<DownlinkOutcome> | 'pending')[];
  };
}

const keysByDevAddr = new Map<string, { nwkSKey: string; appSKey: string }>([
  [ABP.devAddr, ABP],
  [CLASS_C.devAddr, CLASS_C],
]);

/** Reads a downlink PHYPayload back: a data frame with the test keys, a Join Accept with the OTAA AppKey. */
export function readDownlink(phy: Buffer): DownFrame {
  const p = loraPacket.fromWire(phy);
  if (p.getMType() === 'Join Accept') {
    const appKey = Buffer.from(OTAA.appKey, 'hex');
    const ja = loraPacket.fromWire(loraPacket.decryptJoinAccept(p, appKey));
    return { mType: 'Join Accept', micOk: loraPacket.verifyMIC(ja, undefined, appKey), netId: ja.NetID!.toString('hex'), devAddr: ja.DevAddr!.toString('hex') };
  }
  const devAddr = p.DevAddr!.toString('hex');
  const keys = keysByDevAddr.get(devAddr);
  const nwkSKey = keys ? Buffer.from(keys.nwkSKey, 'hex') : null;
  const frame: DownFrame = {
    mType: p.getMType(),
    micOk: nwkSKey !== null && loraPacket.verifyMIC(p, nwkSKey),
    ack: p.getFCtrlACK() === true,
    fPort: p.getFPort(),
    devAddr,
  };
  const fCnt = p.getFCnt();
  if (fCnt !== null) frame.fCnt = fCnt;
  if (keys && p.FRMPayload && p.FRMPayload.length > 0) frame.payloadHex = loraPacket.decrypt(p, Buffer.from(keys.appSKey, 'hex'), nwkSKey!).toString('hex');
  return frame;
}

const PENDING = 'pending' as const;

function settled<T>(p: Promise<T>): Promise<T | typeof PENDING> {
  return Promise.race([p, new Promise<typeof PENDING>((r) => setImmediate(() => r(PENDING)))]);
}

export async function runScenario(s: Scenario): Promise<void> {
  const clock = new FakeClock(Date.now());
  const t = makeContext(loraConfig() as never, { flushIntervalMs: 10 });
  const forwarders = new Map<string, RawForwarder>();
  const driver = createLorawanDriver({ ...t.ctx, clock }, { leadMs: 20 });
  try {
    // before: what the store holds
    const db = lorawanDatabase(t.store, t.ctx.log);
    if (s.session) {
      const sessions = new SessionStore(db, () => clock.now());
      if (s.session.fCntUp !== undefined) {
        const abp = [ABP, CLASS_C].find((k) => k.devEui === s.session!.devEui)!;
        const keys = { nwkSKey: Buffer.from(abp.nwkSKey, 'hex'), appSKey: Buffer.from(abp.appSKey, 'hex') };
        sessions.put({ devEui: abp.devEui, devAddr: abp.devAddr, ...keys, activation: 'abp', fCntUp: s.session.fCntUp, nFCntDown: 0 });
      }
      for (const n of s.session.usedDevNonces ?? []) sessions.rememberDevNonce(s.session.devEui, n);
    }
    if (s.airtime) {
      const journal = AirtimeTable.open(db, clock, (err) => {
        throw err;
      })!;
      journal.load(3_600_000);
      for (const a of s.airtime) journal.add({ gateway: a.gateway, band: subBandOf(a.freq)!.name, at: clock.monotonic(), airtimeMs: a.ms });
    }
    await driver.start();

    // the forwarders, each known to the server (PULL_DATA) before the frame if it pulls
    const heardBy = s.heardBy ?? [{ gateway: GW }];
    for (const h of heardBy) {
      const f = await new RawForwarder(driver.port(), h.gateway).bind();
      forwarders.set(h.gateway, f);
      if (h.pulls === false) continue;
      f.pull();
      await waitFor(`PULL_ACK of ${h.gateway}`, () => f.received.some((r) => r.d?.kind === 'pull_ack'), 2000);
    }
    const queued = (s.queue ?? []).map((q) =>
      driver.enqueueDownlink(q.device, q.expiresInMs === undefined ? q.command : { ...q.command, expiresAt: clock.now() + q.expiresInMs }),
    );

    // the frame, copy by copy in order of arrival
    for (const [i, h] of heardBy.entries()) {
      forwarders.get(h.gateway)!.push(rxpk(s.phy, h.rx));
      await waitFor(`copy ${i + 1} received`, () => driver.metrics().frames === i + 1, 2000);
    }
    // the de-duplication window closes: answers through the best forwarder, radio readings
    await clock.advance(DEDUP_WINDOW_MS);
    const sent = () => [...forwarders].flatMap(([gateway, f]) => f.received.filter((r) => r.d?.kind === 'pull_resp').map((r) => ({ gateway, at: r.at, d: r.d })));
    await waitFor('every PULL_RESP at its forwarder', () => sent().length === driver.metrics().downlinks, 2000);
    t.writer.flush();

    // what follows
    const e = s.expect;
    const frames = sent()
      .sort((a, b) => a.at - b.at)
      .map(({ gateway, d }) => {
        const txpk = (d as { txpk: TxPk }).txpk;
        return { gateway, txpk, frame: readDownlink(Buffer.from(txpk.data, 'base64')) };
      });
    expect(frames, 'frames sent').toMatchObject(e.sent);
    expect(driver.metrics().rejected, 'rejections').toEqual(e.rejected ?? {});
    if (e.metrics) expect(driver.metrics()).toMatchObject(e.metrics);
    const readings = t.store.readings({ after: 0, limit: 10_000 }).items;
    for (const r of e.readings ?? []) expect(readings, 'stored readings').toContainEqual(expect.objectContaining(r));
    for (const [key, n] of Object.entries(e.counts ?? {})) {
      const [device, point] = key.split('/');
      expect(readings.filter((r) => r.device === device && (point === '*' || r.point === point)), key).toHaveLength(n);
    }
    for (const ev of e.events ?? []) {
      expect(t.events, `event ${ev.kind}`).toContainEqual(expect.objectContaining({ kind: ev.kind, ...(ev.device ? { device: ev.device } : {}), ...(ev.detail ? { detail: expect.objectContaining(ev.detail) } : {}) }));
    }
    for (const kind of e.noEvents ?? []) expect(t.events.filter((x) => x.kind === kind), `no ${kind}`).toEqual([]);
    if (e.status) expect(driver.status().devices.find((d) => d.id === e.status!.id)).toMatchObject(e.status);
    if (e.outcomes) {
      const outcomes = await Promise.all(queued.map((q) => settled(q.outcome)));
      expect(outcomes, 'downlink outcomes').toMatchObject(e.outcomes);
    }

    // and the server keeps serving: a good frame after this one is accepted
    const up0 = driver.metrics().uplinks;
    const next = (driver.status().devices.find((d) => d.id === 'lamp-abp')?.fCntUp ?? -1) + 1;
    forwarders.get(heardBy[0]!.gateway)!.push(rxpk(dataUp(ABP, next)));
    await waitFor('a good frame after it', () => driver.metrics().uplinks === up0 + 1, 2000);
  } finally {
    for (const f of forwarders.values()) await f.close();
    await driver.stop();
    await t.close();
  }
}
