/**
 * The simulated LoRaWAN node's device side (edge/sim/lorawan), unit level: no network. Frames go
 * in as the network server builds them (downlink/data.ts buildDataDownlink, the MAC and
 * application-layer encoders of mac/ and app/), and the node's uplinks are read back with
 * lora-packet and the decoders. Time is a FakeClock (the node's answers, class C sessions and
 * reboots are timed on it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeClockSyncDown, decodeClockSyncUp } from '../../edge/drivers/lorawan/app/clockSync.js';
import { fragmentData, parityFragment } from '../../edge/drivers/lorawan/app/fec.js';
import { decodeFirmwareUp, encodeFirmwareDown } from '../../edge/drivers/lorawan/app/firmwareManagement.js';
import { decodeFragUp, encodeFragDown } from '../../edge/drivers/lorawan/app/fragmentation.js';
import { dataBlockIntKey, dataBlockMic, encryptMcKey, mcSessionKeys } from '../../edge/drivers/lorawan/app/keys.js';
import { decodeMulticastUp, encodeMulticastDown } from '../../edge/drivers/lorawan/app/multicast.js';
import { FPORT_CLOCK_SYNC, FPORT_FIRMWARE, FPORT_FRAGMENTATION, FPORT_MULTICAST, type FragDown, type FragVersion } from '../../edge/drivers/lorawan/app/types.js';
import { buildDataDownlink } from '../../edge/drivers/lorawan/downlink/data.js';
import { loraPacket } from '../../edge/drivers/lorawan/loraPacket.js';
import { decodeMacUplink, encodeMacDownlink } from '../../edge/drivers/lorawan/mac/commands.js';
import { unixToGpsMs, type MacDownlink, type MacUplink } from '../../edge/drivers/lorawan/mac/types.js';
import { fCntMsb } from '../../edge/drivers/lorawan/uplink/fcnt.js';
import { COMMAND_FPORT, encodeCommand, STATUS_FPORT } from '../../edge/profiles/loraStreetlight.js';
import { ADR_ACK_DELAY, ADR_ACK_LIMIT } from '../../edge/sim/lorawan/mac.js';
import { SimNode, type SimNodeOptions } from '../../edge/sim/lorawan/node.js';
import { makeSimImage } from '../../edge/sim/modbus/firmware.js';
import { FakeClock } from '../support/fakeClock.js';

const DEV = {
  id: 'lamp-1',
  devEui: '70b3d57ed0000101',
  activation: 'abp' as const,
  devAddr: '26011101',
  nwkSKey: '2b7e151628aed2a6abf7158809cf4f3c',
  appSKey: '3c4fcf098815f7aba6d2ae2816157e2b',
  genAppKey: '000102030405060708090a0b0c0d0e0f',
};
const NWK = Buffer.from(DEV.nwkSKey, 'hex');
const APP = Buffer.from(DEV.appSKey, 'hex');
const GEN_APP_KEY = Buffer.from(DEV.genAppKey, 'hex');

let nodes: SimNode[] = [];
afterEach(() => {
  for (const n of nodes) n.stop();
  nodes = [];
});

function makeNode(clock: FakeClock, opts: SimNodeOptions = {}): SimNode {
  const n = new SimNode(DEV, { clock, seed: 7, ...opts });
  nodes.push(n);
  return n;
}

/** The network side of one node's session: its downlink counter. */
class Net {
  private fCntDown = 0;

  /** A class A downlink to DEV as the server builds it. */
  down(d: { fOpts?: MacDownlink[]; fPort?: number; payload?: Buffer; fPending?: boolean }): Buffer {
    return buildDataDownlink({
      devAddr: DEV.devAddr,
      nwkSKey: NWK,
      appSKey: APP,
      fCntDown: this.fCntDown++,
      confirmed: false,
      ack: false,
      fPending: d.fPending ?? false,
      fPort: d.fPort ?? null,
      payload: d.payload ?? Buffer.alloc(0),
      ...(d.fOpts ? { fOpts: encodeMacDownlink(d.fOpts) } : {}),
    });
  }
}

interface Up {
  fOpts: MacUplink[];
  fPort: number | null;
  payload: Buffer;
  adr: boolean;
  adrAckReq: boolean;
}

/** A node's uplink read back: FOpts commands, FPort and the payload in clear. */
function readUp(phy: Buffer): Up {
  const p = loraPacket.fromWire(phy);
  expect(loraPacket.verifyMIC(p, NWK, undefined, fCntMsb(p.FCnt!.readUInt16BE(0)))).toBe(true);
  const fPort = p.getFPort();
  const payload = p.FRMPayload && p.FRMPayload.length > 0 ? loraPacket.decrypt(p, APP, NWK, fCntMsb(p.FCnt!.readUInt16BE(0))) : Buffer.alloc(0);
  const fOpts = decodeMacUplink(p.FOpts ?? Buffer.alloc(0));
  expect(fOpts.error).toBeNull();
  return { fOpts: fOpts.commands, fPort, payload, adr: p.getFCtrlADR() === true, adrAckReq: p.getFCtrlADRACKReq() === true };
}

const gpsS = (clock: FakeClock): number => Math.floor(unixToGpsMs(clock.now()) / 1000);

describe('MAC requests answered in the next uplink (LoRaWAN 1.0.3 §5)', () => {
  // name, node options, the downlink's commands (FOpts, or FPort 0 when port0), the next uplink's FOpts, the radio after
  const rows: {
    name: string;
    opts?: SimNodeOptions;
    down: MacDownlink[];
    port0?: boolean;
    answers: MacUplink[];
    radio?: Record<string, number>;
    heard?: { datr: string; lsnr: number };
  }[] = [
    {
      name: 'LinkADRReq applied: DR3, TX power 2 (the SNR heard falls 4 dB)',
      opts: { snr: 8 },
      down: [{ cid: 'LinkADRReq', dataRate: 3, txPower: 2, chMask: 0x0007, chMaskCntl: 0, nbTrans: 2 }],
      answers: [{ cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }],
      radio: { dr: 3, txPowerIndex: 2, nbTrans: 2 },
      heard: { datr: 'SF9BW125', lsnr: 4 },
    },
    {
      name: 'LinkADRReq refused by a node with refuseAdr: nothing changes',
      opts: { refuseAdr: true },
      down: [{ cid: 'LinkADRReq', dataRate: 2, txPower: 1, chMask: 0x0007, chMaskCntl: 0, nbTrans: 1 }],
      answers: [{ cid: 'LinkADRAns', powerAck: false, dataRateAck: false, channelMaskAck: false }],
      radio: { dr: 5, txPowerIndex: 0 },
      heard: { datr: 'SF7BW125', lsnr: 7 },
    },
    {
      name: 'LinkADRReq enabling an undefined channel: mask NACKed, nothing applied',
      down: [{ cid: 'LinkADRReq', dataRate: 2, txPower: 1, chMask: 0x0027, chMaskCntl: 0, nbTrans: 1 }],
      answers: [{ cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: false }],
      radio: { dr: 5, txPowerIndex: 0, chMask: 0x0007 },
    },
    {
      name: 'LinkADRReq keeping DR and power (0xF, TS001-1.0.4), ChMaskCntl 6',
      down: [{ cid: 'LinkADRReq', dataRate: 15, txPower: 15, chMask: 0, chMaskCntl: 6, nbTrans: 0 }],
      answers: [{ cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true }],
      radio: { dr: 5, txPowerIndex: 0, nbTrans: 1 },
    },
    {
      name: 'a block of two LinkADRReq: one answer each, the last one’s DR',
      down: [
        { cid: 'LinkADRReq', dataRate: 1, txPower: 0, chMask: 0x0003, chMaskCntl: 0, nbTrans: 1 },
        { cid: 'LinkADRReq', dataRate: 4, txPower: 3, chMask: 0x0005, chMaskCntl: 0, nbTrans: 1 },
      ],
      answers: [
        { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true },
        { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true },
      ],
      radio: { dr: 4, txPowerIndex: 3, chMask: 0x0005 },
    },
    {
      name: 'DevStatusReq: battery and the margin of the downlink SNR',
      opts: { battery: 200, downlinkSnr: 5.4 },
      down: [{ cid: 'DevStatusReq' }],
      answers: [{ cid: 'DevStatusAns', battery: 200, margin: 5 }],
    },
    {
      name: 'DevStatusReq on FPort 0 (NwkSKey-encrypted): mains-powered, margin clamped to 31',
      opts: { downlinkSnr: 40 },
      down: [{ cid: 'DevStatusReq' }],
      port0: true,
      answers: [{ cid: 'DevStatusAns', battery: 0, margin: 31 }],
    },
    {
      name: 'RXParamSetupReq applied',
      down: [{ cid: 'RXParamSetupReq', rx1DrOffset: 1, rx2DataRate: 3, frequency: 869_525_000 }],
      answers: [{ cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: true }],
      radio: { rx1DrOffset: 1, rx2Dr: 3, rx2FreqHz: 869_525_000 },
    },
    {
      name: 'RXParamSetupReq outside the band: channel NACKed, nothing applied',
      down: [{ cid: 'RXParamSetupReq', rx1DrOffset: 1, rx2DataRate: 3, frequency: 915_000_000 }],
      answers: [{ cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: false }],
      radio: { rx1DrOffset: 0, rx2Dr: 0, rx2FreqHz: 869_525_000 },
    },
    {
      name: 'RXTimingSetupReq applied',
      down: [{ cid: 'RXTimingSetupReq', delay: 3 }],
      answers: [{ cid: 'RXTimingSetupAns' }],
      radio: { rx1Delay: 3 },
    },
    {
      name: 'DutyCycleReq applied',
      down: [{ cid: 'DutyCycleReq', maxDCycle: 4 }],
      answers: [{ cid: 'DutyCycleAns' }],
      radio: { maxDCycle: 4 },
    },
    {
      name: 'NewChannelReq for channel 3 added and enabled',
      down: [{ cid: 'NewChannelReq', chIndex: 3, frequency: 867_100_000, minDr: 0, maxDr: 5 }],
      answers: [{ cid: 'NewChannelAns', dataRateOk: true, channelFreqOk: true }],
      radio: { chMask: 0x000f },
    },
    {
      name: 'NewChannelReq for a default channel refused',
      down: [{ cid: 'NewChannelReq', chIndex: 1, frequency: 867_100_000, minDr: 0, maxDr: 5 }],
      answers: [{ cid: 'NewChannelAns', dataRateOk: false, channelFreqOk: false }],
      radio: { chMask: 0x0007 },
    },
  ];

  it.each(rows)('$name', ({ opts, down, port0, answers, radio, heard }) => {
    const clock = new FakeClock();
    const node = makeNode(clock, opts);
    const net = new Net();
    const wanted: number[] = [];
    node.onUplinkWanted = (ms) => wanted.push(ms);
    expect(node.receive(port0 ? net.down({ fPort: 0, payload: encodeMacDownlink(down) }) : net.down({ fOpts: down }))).toBe(true);
    // a class A node answers soon (1 s on its clock), not at its next periodic report
    expect(wanted).toEqual([1000]);
    const up = readUp(node.nextUplink());
    expect(up.fOpts).toEqual(answers);
    expect(up.fPort).toBe(STATUS_FPORT);
    if (radio) expect(node.radio).toMatchObject(radio);
    if (heard) expect(node.uplinkRadio()).toMatchObject(heard);
    expect(node.stats.macReceived).toEqual(down.map((c) => c.cid));
  });

  it('answers that do not fit in FOpts go alone on FPort 0, the status waits for the next uplink', () => {
    const node = makeNode(new FakeClock());
    node.receive(new Net().down({ fPort: 0, payload: encodeMacDownlink(Array.from({ length: 6 }, () => ({ cid: 'DevStatusReq' as const }))) }));
    const first = readUp(node.nextUplink());
    expect(first.fPort).toBe(0);
    expect(first.fOpts).toEqual([]);
    const onPort0 = decodeMacUplink(first.payload);
    expect(onPort0.commands).toHaveLength(6);
    expect(onPort0.commands.every((c) => c.cid === 'DevStatusAns')).toBe(true);
    expect(readUp(node.nextUplink())).toMatchObject({ fPort: STATUS_FPORT, fOpts: [] });
  });

  it('RXParamSetupAns and RXTimingSetupAns repeat in every uplink until a downlink comes (§5.4, §5.7)', () => {
    const node = makeNode(new FakeClock());
    const net = new Net();
    node.receive(net.down({ fOpts: [{ cid: 'RXTimingSetupReq', delay: 2 }, { cid: 'DevStatusReq' }] }));
    expect(readUp(node.nextUplink()).fOpts.map((c) => c.cid)).toEqual(['RXTimingSetupAns', 'DevStatusAns']);
    expect(readUp(node.nextUplink()).fOpts.map((c) => c.cid)).toEqual(['RXTimingSetupAns']);
    node.receive(net.down({ fPort: COMMAND_FPORT, payload: encodeCommand({ action: 'dim', level: 50 }) }));
    expect(readUp(node.nextUplink()).fOpts).toEqual([]);
    expect(node.state.dimLevel).toBe(50);
  });

  it('a downlink with FPending makes a class A node send an uplink soon', () => {
    const node = makeNode(new FakeClock(), { answerDelayMs: 300 });
    const wanted: number[] = [];
    node.onUplinkWanted = (ms) => wanted.push(ms);
    node.receive(new Net().down({ fPending: true }));
    expect(wanted).toEqual([300]);
  });

  it('a unicast frame is heard only on the RX1 or RX2 radio of the node', () => {
    const node = makeNode(new FakeClock());
    const net = new Net();
    readUp(node.nextUplink());
    const rx1 = { freqHz: Math.round(node.uplinkRadio().freq * 1e6), dr: 5 };
    expect(node.receive(net.down({ fOpts: [{ cid: 'DevStatusReq' }] }), rx1)).toBe(true);
    expect(node.receive(net.down({ fOpts: [{ cid: 'DevStatusReq' }] }), { freqHz: 869_525_000, dr: 0 })).toBe(true);
    expect(node.stats.downlinks).toBe(2);
    expect(node.receive(net.down({ fOpts: [{ cid: 'DevStatusReq' }] }), { freqHz: 869_525_000, dr: 3 })).toBe(true);
    expect(node.stats).toMatchObject({ downlinks: 2, missedDownlinks: 1 });
  });

  it('LinkCheckReq and DeviceTimeReq of its own: the answers recorded; DeviceTimeAns sets its clock', () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { clockOffsetMs: 4_000 });
    const net = new Net();
    node.requestLinkCheck();
    node.requestDeviceTime();
    const sentAt = unixToGpsMs(clock.now());
    expect(readUp(node.nextUplink()).fOpts).toEqual([{ cid: 'LinkCheckReq' }, { cid: 'DeviceTimeReq' }]);
    node.receive(
      net.down({
        fOpts: [
          { cid: 'LinkCheckAns', margin: 12, gwCnt: 2 },
          { cid: 'DeviceTimeAns', gpsMs: sentAt },
        ],
      }),
    );
    expect(node.stats.linkChecks).toEqual([{ margin: 12, gwCnt: 2, at: clock.now() }]);
    expect(node.stats.deviceTimes).toEqual([{ gpsMs: sentAt, at: clock.now() }]);
    expect(node.clock.errorMs).toBe(0);
  });

  it('ADR bit when adr is on; ADRACKReq after ADR_ACK_LIMIT uplinks without a downlink, then a back-off step (§4.3.1.1)', () => {
    const node = makeNode(new FakeClock(), { adr: true });
    const net = new Net();
    node.receive(net.down({ fOpts: [{ cid: 'LinkADRReq', dataRate: 5, txPower: 3, chMask: 0x0007, chMaskCntl: 0, nbTrans: 1 }] }));
    const ups = Array.from({ length: ADR_ACK_LIMIT + ADR_ACK_DELAY }, () => readUp(node.nextUplink()));
    expect(ups.every((u) => u.adr)).toBe(true);
    expect(ups.findIndex((u) => u.adrAckReq)).toBe(ADR_ACK_LIMIT - 1);
    // ADR_ACK_DELAY uplinks later with still no downlink: back to full power first
    expect(node.radio).toMatchObject({ dr: 5, txPowerIndex: 0 });
    node.receive(net.down({}));
    expect(readUp(node.nextUplink()).adrAckReq).toBe(false);
    expect(readUp(makeNode(new FakeClock(), { seed: 8 }).nextUplink()).adr).toBe(false);
  });
});

describe('TS003 clock synchronisation (FPort 202)', () => {
  it('AppTimeReq carries its own clock; AppTimeAns with the token corrects it, a stale token does nothing', () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { clockOffsetMs: -7_000 });
    const net = new Net();
    node.requestAppTime();
    const up = readUp(node.nextUplink());
    expect(up.fPort).toBe(FPORT_CLOCK_SYNC);
    expect(decodeClockSyncUp(up.payload).commands).toEqual([{ cid: 'AppTimeReq', deviceTime: gpsS(clock) - 7, tokenReq: 0, ansRequired: true }]);
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: 7, tokenAns: 0 }]) }));
    expect(node.clock.errorMs).toBe(0);
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: 100, tokenAns: 0 }]) }));
    expect(node.clock.errorMs).toBe(0);
    expect(node.stats.appTimeCorrections).toEqual([7]);
    node.requestAppTime();
    expect(decodeClockSyncUp(readUp(node.nextUplink()).payload).commands[0]).toMatchObject({ cid: 'AppTimeReq', deviceTime: gpsS(clock), tokenReq: 1 });
  });

  it('ForceDeviceResyncReq: AppTimeReqs until one is answered; DeviceAppTimePeriodicityReq: one every 128·2^period s ± 30 s', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock);
    const net = new Net();
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'ForceDeviceResyncReq', nbTransmissions: 3 }]) }));
    expect(node.queuedUplinks).toBe(3);
    expect(decodeClockSyncUp(readUp(node.nextUplink()).payload).commands).toEqual([{ cid: 'AppTimeReq', deviceTime: gpsS(clock), tokenReq: 0, ansRequired: false }]);
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: 0, tokenAns: 0 }]) }));
    // answered: the two left have nothing to say, the next uplink is a status report
    expect(readUp(node.nextUplink()).fPort).toBe(STATUS_FPORT);
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'DeviceAppTimePeriodicityReq', period: 0 }]) }));
    expect(decodeClockSyncUp(readUp(node.nextUplink()).payload).commands).toEqual([{ cid: 'DeviceAppTimePeriodicityAns', notSupported: false, time: gpsS(clock) }]);
    await clock.advance(97_000);
    expect(node.queuedUplinks).toBe(0);
    await clock.advance(62_000);
    expect(decodeClockSyncUp(readUp(node.nextUplink()).payload).commands[0]).toMatchObject({ cid: 'AppTimeReq', tokenReq: 1, ansRequired: false });
  });
});

/** A multicast group set up on the node by TS005, and its class C session starting `inS` from now. */
function multicastGroup(node: SimNode, net: Net, clock: FakeClock, inS = 10) {
  const mcAddr = '01ffee01';
  const mcKey = Buffer.from('f0e1d2c3b4a5968778695a4b3c2d1e0f', 'hex');
  const keys = mcSessionKeys(mcKey, mcAddr);
  node.receive(
    net.down({
      fPort: FPORT_MULTICAST,
      payload: encodeMulticastDown([
        { cid: 'McGroupSetupReq', mcGroupId: 0, mcAddr, mcKeyEncrypted: encryptMcKey(GEN_APP_KEY, mcKey), minMcFCnt: 0, maxMcFCnt: 1000 },
        { cid: 'McClassCSessionReq', mcGroupId: 0, sessionTime: gpsS(clock) + inS, timeOut: 8, frequency: 869_525_000, dr: 5 },
      ]),
    }),
  );
  const ans = readUp(node.nextUplink());
  expect(ans.fPort).toBe(FPORT_MULTICAST);
  expect(decodeMulticastUp(ans.payload).commands).toEqual([
    { cid: 'McGroupSetupAns', mcGroupId: 0, idError: false },
    { cid: 'McClassCSessionAns', mcGroupId: 0, drError: false, freqError: false, mcGroupUndefined: false, timeToStart: inS },
  ]);
  let fCnt = 0;
  return {
    mcAddr,
    /** the next multicast frame on the group (its FCnt may be set) */
    frame: (fPort: number, payload: Buffer, at = fCnt++, nwkSKey = keys.mcNwkSKey): Buffer =>
      buildDataDownlink({ devAddr: mcAddr, nwkSKey, appSKey: keys.mcAppSKey, fCntDown: at, confirmed: false, ack: false, fPending: false, fPort, payload }),
  };
}

/** The session's radio as the forwarder's txpk states it. */
const SESSION_TXPK = { freq: 869.525, datr: 'SF7BW125' };

describe('TS005 multicast (FPort 200)', () => {
  it('a group set up with an encrypted McKey: its frames are taken in the class C window only, on its radio, FCnt and MIC checked', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock);
    const net = new Net();
    const group = multicastGroup(node, net, clock);
    const dim = (level: number, at?: number, key?: Buffer) => group.frame(COMMAND_FPORT, encodeCommand({ action: 'dim', level }), at, key);
    expect(node.receive(dim(40))).toBe(true);
    expect(node.stats.multicastMissed).toEqual({ no_session: 1 });
    await clock.advance(10_000);
    expect(node.multicastListening).toBe(true);
    expect(node.hear(dim(30), { freq: 869.525, datr: 'SF12BW125' })).toBe(true);
    expect(node.hear(dim(20), SESSION_TXPK)).toBe(true);
    expect(node.state.dimLevel).toBe(20);
    expect(node.receive(dim(10, 5000))).toBe(true);
    expect(node.receive(dim(10, undefined, Buffer.alloc(16, 1)))).toBe(true);
    expect(node.stats.multicastMissed).toEqual({ no_session: 1, radio: 1, fcnt: 1, mic: 1 });
    expect(node.stats.multicastFrames).toBe(1);
    // 2^8 s later the window is closed
    await clock.advance(256_000);
    expect(node.receive(dim(5))).toBe(true);
    expect(node.stats.multicastMissed.no_session).toBe(2);
    expect(node.multicastGroups).toEqual([group.mcAddr, null, null, null]);
  });

  it('a node without a GenAppKey or AppKey cannot set up a group (IDError)', () => {
    const node = new SimNode({ ...DEV, genAppKey: undefined }, { clock: new FakeClock() });
    nodes.push(node);
    node.receive(
      new Net().down({
        fPort: FPORT_MULTICAST,
        payload: encodeMulticastDown([{ cid: 'McGroupSetupReq', mcGroupId: 1, mcAddr: '01ffee02', mcKeyEncrypted: Buffer.alloc(16), minMcFCnt: 0, maxMcFCnt: 10 }]),
      }),
    );
    expect(decodeMulticastUp(readUp(node.nextUplink()).payload).commands).toEqual([{ cid: 'McGroupSetupAns', mcGroupId: 1, idError: true }]);
  });
});

const IMAGE = makeSimImage(0x0200, 2048);
const FRAG_SIZE = 50;

/** TS004 session setup for IMAGE by unicast, then its fragments (data then parity) on the multicast group until the node has the block. */
async function transfer(node: SimNode, net: Net, clock: FakeClock, version: FragVersion, opts: { mic?: Buffer } = {}) {
  const group = multicastGroup(node, net, clock, 5);
  const { fragments, padding } = fragmentData(IMAGE, FRAG_SIZE);
  const setup: FragDown = {
    cid: 'FragSessionSetupReq',
    fragIndex: 0,
    mcGroupBitMask: 0b0001,
    nbFrag: fragments.length,
    fragSize: FRAG_SIZE,
    fragAlgo: 0,
    blockAckDelay: 0,
    padding,
    descriptor: 0x01020304,
    ...(version === 2
      ? {
          sessionCnt: 1,
          ackReception: true,
          mic: opts.mic ?? dataBlockMic(dataBlockIntKey(GEN_APP_KEY), { sessionCnt: 1, fragIndex: 0, descriptor: 0x01020304, data: IMAGE }),
        }
      : {}),
  };
  node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([setup], version) }));
  const ans = readUp(node.nextUplink());
  expect(decodeFragUp(ans.payload, version).commands[0]).toMatchObject({ cid: 'FragSessionSetupAns', notEnoughMemory: false, encodingUnsupported: false });
  await clock.advance(5_000);
  let sent = 0;
  // M data fragments, then parity rows until the block is whole (bounded: M/2 parity rows at most)
  for (let n = 1; n <= fragments.length * 1.5 && node.stats.blocks.length === 0; n++) {
    const payload = n <= fragments.length ? fragments[n - 1]! : parityFragment(version, fragments, n - fragments.length);
    node.hear(group.frame(FPORT_FRAGMENTATION, encodeFragDown([{ cid: 'DataFragment', fragIndex: 0, n, payload }], version)), SESSION_TXPK);
    sent++;
  }
  return { sent, nbFrag: fragments.length };
}

/** The node's firmware answers to `cmds` in its next uplink. */
function firmwareAsk(node: SimNode, net: Net, cmds: Parameters<typeof encodeFirmwareDown>[0]) {
  node.receive(net.down({ fPort: FPORT_FIRMWARE, payload: encodeFirmwareDown(cmds) }));
  const up = readUp(node.nextUplink());
  expect(up.fPort).toBe(FPORT_FIRMWARE);
  return decodeFirmwareUp(up.payload).commands;
}

describe('TS004 fragmentation (FPort 201) and TS006 firmware management (FPort 203)', () => {
  it.each([1, 2] as const)('v%i: a 2 KiB SBFW image over multicast with 10 %% loss is reassembled from data and parity fragments', async (version) => {
    const clock = new FakeClock();
    const node = makeNode(clock, { fragVersion: version, downlinkLoss: 0.1, seed: 1234 });
    const net = new Net();
    const { sent, nbFrag } = await transfer(node, net, clock, version);
    expect(node.stats.lostDownlinks).toBeGreaterThan(0);
    expect(sent).toBeGreaterThan(nbFrag);
    expect(node.stats.blocks).toEqual([{ fragIndex: 0, size: IMAGE.length, micOk: true }]);
    expect(firmwareAsk(node, net, [{ cid: 'DevUpgradeImageReq' }])).toEqual([{ cid: 'DevUpgradeImageAns', status: 3, nextFirmwareVersion: 0x0200 }]);
    if (version === 2) {
      // v2 §3.5: the node reports the block (with its MIC checked) after a random BlockAckDelay
      await clock.advance(16_000);
      expect(decodeFragUp(readUp(node.nextUplink()).payload, 2).commands).toEqual([{ cid: 'FragDataBlockReceivedReq', fragIndex: 0, micOk: true }]);
      node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragDataBlockReceivedAns', fragIndex: 0 }], 2) }));
    }
    // status by unicast, answered within 2^(BlockAckDelay+4) s
    node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragSessionStatusReq', fragIndex: 0, participants: true }], version) }));
    expect(node.queuedUplinks).toBe(0);
    await clock.advance(16_000);
    const status = decodeFragUp(readUp(node.nextUplink()).payload, version).commands;
    expect(status).toEqual([expect.objectContaining({ cid: 'FragSessionStatusAns', fragIndex: 0, missingFrag: 0, notEnoughMemory: false, nbFragReceived: sent - node.stats.lostDownlinks })]);
    await clock.advance(60_000);
    expect(node.queuedUplinks).toBe(0); // v2: acknowledged, not repeated
  });

  it('v2: a block whose MIC does not hold is reported (micOk false) and its image is corrupt', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { fragVersion: 2 });
    const net = new Net();
    await transfer(node, net, clock, 2, { mic: Buffer.from('00000000', 'hex') });
    expect(node.stats.blocks).toEqual([{ fragIndex: 0, size: IMAGE.length, micOk: false }]);
    await clock.advance(16_000);
    expect(decodeFragUp(readUp(node.nextUplink()).payload, 2).commands).toEqual([{ cid: 'FragDataBlockReceivedReq', fragIndex: 0, micOk: false }]);
    expect(firmwareAsk(node, net, [{ cid: 'DevUpgradeImageReq' }])).toEqual([{ cid: 'DevUpgradeImageAns', status: 1, nextFirmwareVersion: null }]);
  });

  it('a countdown reboot: silent for rebootMs, then it runs the new version and reports it at once', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { rebootMs: 3_000 });
    const net = new Net();
    await transfer(node, net, clock, 1);
    expect(firmwareAsk(node, net, [{ cid: 'DevVersionReq' }, { cid: 'DevRebootCountdownReq', countdown: 5 }])).toEqual([
      { cid: 'DevVersionAns', fwVersion: 0x0100, hwVersion: 1 },
      { cid: 'DevRebootCountdownAns', countdown: 5 },
    ]);
    await clock.advance(5_000);
    expect(node.silent).toBe(true);
    expect(node.receive(net.down({ fOpts: [{ cid: 'DevStatusReq' }] }))).toBe(false);
    expect(node.stats.missedDownlinks).toBe(1);
    const wanted: number[] = [];
    node.onUplinkWanted = (ms) => wanted.push(ms);
    await clock.advance(3_000);
    expect(node.silent).toBe(false);
    expect(wanted).toEqual([1000]);
    expect(node.firmwareVersion).toBe(0x0200);
    expect(node.stats.reboots).toBe(1);
    expect(decodeFirmwareUp(readUp(node.nextUplink()).payload).commands).toEqual([{ cid: 'DevVersionAns', fwVersion: 0x0200, hwVersion: 1 }]);
    expect(firmwareAsk(node, net, [{ cid: 'DevUpgradeImageReq' }])).toEqual([{ cid: 'DevUpgradeImageAns', status: 0, nextFirmwareVersion: null }]);
  });

  it('DevRebootTimeReq: at a GPS time on its clock; a time past is refused, all ones cancels', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock);
    const net = new Net();
    const at = gpsS(clock) + 30;
    expect(firmwareAsk(node, net, [{ cid: 'DevRebootTimeReq', rebootTime: gpsS(clock) - 1 }])).toEqual([{ cid: 'DevRebootTimeAns', rebootTime: 0xffffffff }]);
    expect(firmwareAsk(node, net, [{ cid: 'DevRebootTimeReq', rebootTime: at }])).toEqual([{ cid: 'DevRebootTimeAns', rebootTime: at }]);
    expect(firmwareAsk(node, net, [{ cid: 'DevRebootTimeReq', rebootTime: 0xffffffff }])).toEqual([{ cid: 'DevRebootTimeAns', rebootTime: 0xffffffff }]);
    await clock.advance(60_000);
    expect(node.stats.reboots).toBe(0);
    expect(firmwareAsk(node, net, [{ cid: 'DevRebootTimeReq', rebootTime: gpsS(clock) + 30 }])).toHaveLength(1);
    await clock.advance(30_000);
    expect(node.stats.reboots).toBe(1);
    expect(node.firmwareVersion).toBe(0x0100); // no image: the old firmware
  });

  it('a lying node reassembles, reports the image, reboots, and still runs and reports its old version', async () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { lies: true });
    const net = new Net();
    await transfer(node, net, clock, 1);
    expect(firmwareAsk(node, net, [{ cid: 'DevUpgradeImageReq' }, { cid: 'DevRebootCountdownReq', countdown: 0 }])).toEqual([
      { cid: 'DevUpgradeImageAns', status: 3, nextFirmwareVersion: 0x0200 },
      { cid: 'DevRebootCountdownAns', countdown: 0 },
    ]);
    // countdown 0: it rebooted once that answer went up
    expect(node.silent).toBe(true);
    await clock.advance(2_000);
    expect(node.stats.reboots).toBe(1);
    expect(decodeFirmwareUp(readUp(node.nextUplink()).payload).commands).toEqual([{ cid: 'DevVersionAns', fwVersion: 0x0100, hwVersion: 1 }]);
    expect(node.firmwareVersion).toBe(0x0100);
  });

  it('memory: a session larger than memoryBytes is refused and its fragments ignored', () => {
    const clock = new FakeClock();
    const node = makeNode(clock, { memoryBytes: 1_000 });
    const net = new Net();
    const setup: FragDown = { cid: 'FragSessionSetupReq', fragIndex: 1, mcGroupBitMask: 0, nbFrag: 41, fragSize: 50, fragAlgo: 0, blockAckDelay: 0, padding: 2, descriptor: 0 };
    node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([setup]) }));
    expect(decodeFragUp(readUp(node.nextUplink()).payload).commands).toEqual([
      { cid: 'FragSessionSetupAns', fragIndex: 1, encodingUnsupported: false, notEnoughMemory: true, fragIndexUnsupported: false, wrongDescriptor: false },
    ]);
    node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'DataFragment', fragIndex: 1, n: 1, payload: Buffer.alloc(50) }]) }));
    expect(node.stats).toMatchObject({ fragments: 0, fragmentsIgnored: 1 });
  });

  it('a mute node never answers FragSessionStatusReq; others answer only when asked all or missing fragments', async () => {
    const clock = new FakeClock();
    const net = new Net();
    const setup: FragDown = { cid: 'FragSessionSetupReq', fragIndex: 0, mcGroupBitMask: 0, nbFrag: 4, fragSize: 10, fragAlgo: 0, blockAckDelay: 0, padding: 0, descriptor: 0 };
    const status = (participants: boolean) => net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragSessionStatusReq', fragIndex: 0, participants }]) });
    const mute = makeNode(clock, { mute: true });
    mute.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([setup]) }));
    readUp(mute.nextUplink());
    mute.receive(status(true));
    await clock.advance(16_000);
    expect(mute.queuedUplinks).toBe(0);

    const other = makeNode(clock, { seed: 9 });
    const net2 = new Net();
    other.receive(net2.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([setup]) }));
    readUp(other.nextUplink());
    for (let n = 1; n <= 4; n++) other.receive(net2.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'DataFragment', fragIndex: 0, n, payload: Buffer.alloc(10, n) }]) }));
    other.receive(net2.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'FragSessionStatusReq', fragIndex: 0, participants: false }]) }));
    await clock.advance(16_000);
    expect(other.queuedUplinks).toBe(0); // complete: not a participant
  });

  it('PackageVersionReq on each port: the version of each package (TS004 as configured)', () => {
    const node = makeNode(new FakeClock(), { fragVersion: 2 });
    const net = new Net();
    node.receive(net.down({ fPort: FPORT_CLOCK_SYNC, payload: encodeClockSyncDown([{ cid: 'PackageVersionReq' }]) }));
    node.receive(net.down({ fPort: FPORT_MULTICAST, payload: encodeMulticastDown([{ cid: 'PackageVersionReq' }]) }));
    node.receive(net.down({ fPort: FPORT_FRAGMENTATION, payload: encodeFragDown([{ cid: 'PackageVersionReq' }], 2) }));
    node.receive(net.down({ fPort: FPORT_FIRMWARE, payload: encodeFirmwareDown([{ cid: 'PackageVersionReq' }]) }));
    const decoders: Record<number, (b: Buffer) => { commands: unknown[] }> = {
      [FPORT_CLOCK_SYNC]: decodeClockSyncUp,
      [FPORT_MULTICAST]: decodeMulticastUp,
      [FPORT_FRAGMENTATION]: (b) => decodeFragUp(b, 2),
      [FPORT_FIRMWARE]: decodeFirmwareUp,
    };
    const answers = Array.from({ length: 4 }, () => {
      const up = readUp(node.nextUplink());
      return [up.fPort, decoders[up.fPort!]!(up.payload).commands[0]];
    });
    expect(answers).toEqual([
      [FPORT_CLOCK_SYNC, { cid: 'PackageVersionAns', packageIdentifier: 1, packageVersion: 1 }],
      [FPORT_MULTICAST, { cid: 'PackageVersionAns', packageIdentifier: 2, packageVersion: 1 }],
      [FPORT_FRAGMENTATION, { cid: 'PackageVersionAns', packageIdentifier: 3, packageVersion: 2 }],
      [FPORT_FIRMWARE, { cid: 'PackageVersionAns', packageIdentifier: 4, packageVersion: 1 }],
    ]);
  });

  it('downlink loss is reproducible: the same seed misses the same frames', () => {
    const missed = (seed: number) => {
      const node = makeNode(new FakeClock(), { downlinkLoss: 0.3, seed });
      const net = new Net();
      return Array.from({ length: 40 }, () => node.hear(net.down({ fOpts: [{ cid: 'DutyCycleReq', maxDCycle: 0 }] })));
    };
    expect(missed(42)).toEqual(missed(42));
    expect(missed(42)).not.toEqual(missed(43));
    expect(missed(42).filter((heard) => !heard).length).toBeGreaterThan(4);
  });
});
