/**
 * MAC commands and ADR on the network server (LoRaWAN 1.0.3 §5), as scenario rows: the
 * configuration and the requests queued, then uplink by uplink the frame (FOpts / FPort 0 MAC
 * commands, ADR bit, SNR in rxpk lsnr, data rate) and the frames sent back, decoded; then the
 * readings, events, counters, outcomes and status. Frames built with lora-packet, real UDP on
 * 127.0.0.1, the real store (macScenario.ts runs a row).
 */
import { describe, it } from 'vitest';
import { unixToGpsMs, type MacDownlink } from '../../edge/drivers/lorawan/mac/types.js';
import { runMacScenario, START, type MacScenario } from './macScenario.js';
import { GW2 } from './support.js';

const devStatus: MacDownlink = { cid: 'DevStatusReq' };
const linkAdr = (dataRate: number, txPower: number): MacDownlink => ({ cid: 'LinkADRReq', dataRate, txPower, chMask: 0x0007, chMaskCntl: 0, nbTrans: 1 });
const rxParam: MacDownlink = { cid: 'RXParamSetupReq', rx1DrOffset: 2, rx2DataRate: 3, frequency: 869_525_000 };
const newChannel: MacDownlink = { cid: 'NewChannelReq', chIndex: 3, frequency: 867_100_000, minDr: 0, maxDr: 5 };
const dutyCycle: MacDownlink = { cid: 'DutyCycleReq', maxDCycle: 7 };
const rxTiming: MacDownlink = { cid: 'RXTimingSetupReq', delay: 3 };
/** one request of each kind: 5 + 2 + 5 + 1 + 6 + 2 = 21 bytes, more than FOpts holds */
const ALL_REQUESTS: MacDownlink[] = [linkAdr(5, 1), dutyCycle, rxParam, devStatus, newChannel, rxTiming];
const adrAck = { cid: 'LinkADRAns', powerAck: true, dataRateAck: true, channelMaskAck: true } as const;
const SF12 = { datr: 'SF12BW125' };

const scenarios: MacScenario[] = [
  // ---------------------------------------------------------------- the node's own requests
  {
    name: 'LinkCheckReq in FOpts: LinkCheckAns in RX1 of the same uplink, margin above SF7\'s floor (7.5 − −7.5 dB), one forwarder',
    steps: [{ up: { fCnt: 0, fOpts: [{ cid: 'LinkCheckReq' }], rx: { lsnr: 7.5 } }, sent: [{ fOpts: [{ cid: 'LinkCheckAns', margin: 15, gwCnt: 1 }], fPort: null, txpk: { tmst: 2_000_000, datr: 'SF7BW125' } }] }],
    expect: { mac: { LinkCheckReq: { answered: 1 } }, readings: [{ point: 'dimLevel' }] },
  },
  {
    name: 'LinkCheckReq heard by two forwarders: gwCnt 2, the margin of the best SNR',
    steps: [{ up: { fCnt: 0, fOpts: [{ cid: 'LinkCheckReq' }], rx: { lsnr: -5 }, also: [{ gateway: GW2, rx: { lsnr: 9, tmst: 7_000_000 } }] }, sent: [{ fOpts: [{ cid: 'LinkCheckAns', margin: 17, gwCnt: 2 }] }] }],
    expect: { readings: [{ point: 'gateways', value: 2 }] },
  },
  {
    name: 'LinkCheckReq on FPort 0 (encrypted with the NwkSKey): answered the same',
    steps: [{ up: { fCnt: 0, port0: [{ cid: 'LinkCheckReq' }] }, sent: [{ fOpts: [{ cid: 'LinkCheckAns', margin: 15, gwCnt: 1 }] }] }],
    expect: { counts: { dimLevel: 0 } },
  },
  {
    name: 'DeviceTimeReq: DeviceTimeAns with the GPS time of the reception (the driver\'s clock)',
    steps: [{ up: { fCnt: 0, fOpts: [{ cid: 'DeviceTimeReq' }] }, sent: [{ fOpts: [{ cid: 'DeviceTimeAns', gpsMs: unixToGpsMs(START) }] }] }],
    expect: { mac: { DeviceTimeReq: { answered: 1 } } },
  },
  // ---------------------------------------------------------------- requests answered and applied
  {
    name: 'DevStatusReq → DevStatusAns: battery 254 is 100 %, on battery; margin in dB',
    requests: [devStatus],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [devStatus], fPort: null }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'DevStatusAns', battery: 254, margin: 10 }] }, sent: [] },
    ],
    expect: {
      readings: [
        { point: 'battery', value: 100, unit: '%' },
        { point: 'externalPower', value: false },
        { point: 'margin', value: 10, unit: 'dB' },
      ],
      events: [{ kind: 'lorawan.mac.answered', detail: { command: 'DevStatusReq', attempts: 1 } }],
      outcomes: [{ status: 'answered', answer: { cid: 'DevStatusAns', battery: 254, margin: 10 } }],
      mac: { DevStatusReq: { sent: 1, answered: 1 } },
      status: { battery: 100, externalPower: false, margin: 10 },
    },
  },
  {
    name: 'DevStatusAns battery 0: external power, no battery level',
    requests: [devStatus],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [devStatus] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'DevStatusAns', battery: 0, margin: -3 }] }, sent: [] },
    ],
    expect: { readings: [{ point: 'externalPower', value: true }, { point: 'margin', value: -3 }], counts: { battery: 0 }, status: { battery: null, externalPower: true, margin: -3 } },
  },
  {
    name: 'DevStatusAns battery 255 (cannot measure): the margin only',
    requests: [devStatus],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [devStatus] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'DevStatusAns', battery: 255, margin: 4 }] }, sent: [] },
    ],
    expect: { readings: [{ point: 'margin', value: 4 }], counts: { battery: 0, externalPower: 0 }, status: { battery: null, externalPower: null } },
  },
  {
    name: 'DevStatusReq every devStatusInterval: none before it has passed, one after',
    config: { devStatusInterval: 60_000 },
    steps: [
      { up: { fCnt: 0 }, sent: [] },
      { up: { fCnt: 1, after: 30_000 }, sent: [] },
      { up: { fCnt: 2, after: 30_000 }, sent: [{ fOpts: [devStatus] }] },
      { up: { fCnt: 3, fOpts: [{ cid: 'DevStatusAns', battery: 127, margin: 12 }] }, sent: [] },
      { up: { fCnt: 4, after: 30_000 }, sent: [] },
    ],
    expect: { readings: [{ point: 'battery', value: 49.8 }], mac: { DevStatusReq: { sent: 1, answered: 1 } } },
  },
  {
    name: 'LinkADRReq ACKed: applied (data rate, TX power), lorawan.adr.changed, txPower reading',
    requests: [linkAdr(3, 2)],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [linkAdr(3, 2)] }] },
      { up: { fCnt: 1, fOpts: [adrAck], rx: { datr: 'SF9BW125' } }, sent: [] },
    ],
    expect: {
      events: [{ kind: 'lorawan.adr.changed', detail: { fromDr: 5, toDr: 3, fromTxPower: 16, toTxPower: 12, nbTrans: 1 } }],
      readings: [{ point: 'txPower', value: 12, unit: 'dBm' }, { point: 'dr', value: 3 }],
      counts: { txPower: 1 },
      outcomes: [{ status: 'answered' }],
      status: { txPower: 12, dr: 3 },
    },
  },
  {
    name: 'LinkADRReq with DataRate and TXPower 15 and NbTrans 0 (keep, TS001-1.0.4 §5.3) ACKed: the node keeps what it runs at; the answer, status() and the radio readings go on',
    requests: [{ cid: 'LinkADRReq', dataRate: 15, txPower: 15, chMask: 0x0007, chMaskCntl: 0, nbTrans: 0 }],
    steps: [
      { up: { fCnt: 0, rx: { datr: 'SF9BW125' } }, sent: [{ fOpts: [{ cid: 'LinkADRReq', dataRate: 15, txPower: 15, nbTrans: 0 }] }] },
      { up: { fCnt: 1, fOpts: [adrAck], rx: { datr: 'SF9BW125' } }, sent: [] },
      { up: { fCnt: 2, rx: { datr: 'SF9BW125' } }, sent: [] },
    ],
    expect: {
      outcomes: [{ status: 'answered' }],
      events: [{ kind: 'lorawan.adr.changed', detail: { fromDr: 3, toDr: 3, fromTxPower: 16, toTxPower: 16, nbTrans: 1 } }],
      counts: { dr: 3, txPower: 0 },
      status: { dr: 3, txPower: null },
    },
  },
  {
    name: 'LinkADRReq NACKed: refused, the bits named; nothing applied',
    requests: [linkAdr(3, 2)],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [linkAdr(3, 2)] }] },
      { up: { fCnt: 1, fOpts: [{ ...adrAck, dataRateAck: false }] }, sent: [] },
    ],
    expect: {
      outcomes: [{ status: 'refused', reason: 'data rate not acknowledged', answer: { cid: 'LinkADRAns', dataRateAck: false } }],
      events: [{ kind: 'lorawan.mac.refused', detail: { command: 'LinkADRReq', reason: 'data rate not acknowledged' } }],
      noEvents: ['lorawan.adr.changed'],
      mac: { LinkADRReq: { sent: 1, refused: 1 } },
      counts: { txPower: 0 },
      status: { txPower: null },
    },
  },
  {
    name: 'DutyCycleReq → DutyCycleAns: answered',
    requests: [dutyCycle],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [dutyCycle] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'DutyCycleAns' }] }, sent: [] },
    ],
    expect: { outcomes: [{ status: 'answered' }], mac: { DutyCycleReq: { sent: 1, answered: 1 } } },
  },
  {
    name: 'RXParamSetupReq ACKed: the next answers use RX1 DR − 2; the sticky answer, repeated, is no news, and a downlink goes each time',
    requests: [rxParam],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [rxParam], txpk: { datr: 'SF7BW125' } }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: true }] }, sent: [{ fOpts: [], txpk: { datr: 'SF9BW125', tmst: 2_000_000 } }] },
      { up: { fCnt: 2, fOpts: [{ cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: true }] }, sent: [{ fOpts: [], txpk: { datr: 'SF9BW125' } }] },
      { up: { fCnt: 3 }, sent: [] },
      { up: { fCnt: 4, confirmed: true }, sent: [{ ack: true, txpk: { datr: 'SF9BW125' } }] },
    ],
    expect: { outcomes: [{ status: 'answered' }], rejected: {}, mac: { RXParamSetupReq: { sent: 1, answered: 1 } } },
  },
  {
    name: 'RXParamSetupReq with one bit NACKed: refused, the RX settings unchanged',
    requests: [rxParam],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [rxParam] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'RXParamSetupAns', rx1DrOffsetAck: true, rx2DataRateAck: true, channelAck: false }] }, sent: [{ fOpts: [], txpk: { datr: 'SF7BW125' } }] },
    ],
    expect: { outcomes: [{ status: 'refused', reason: 'channel not acknowledged' }], events: [{ kind: 'lorawan.mac.refused', detail: { command: 'RXParamSetupReq' } }] },
  },
  {
    name: 'RXTimingSetupReq ACKed: the next answer opens RX1 3 s after the uplink',
    requests: [rxTiming],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [rxTiming], txpk: { tmst: 2_000_000 } }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'RXTimingSetupAns' }] }, sent: [{ txpk: { tmst: 4_000_000 } }] },
    ],
    expect: { outcomes: [{ status: 'answered' }] },
  },
  {
    name: 'NewChannelReq ACKed: answered',
    requests: [newChannel],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [newChannel] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'NewChannelAns', dataRateOk: true, channelFreqOk: true }] }, sent: [] },
    ],
    expect: { outcomes: [{ status: 'answered' }], mac: { NewChannelReq: { answered: 1 } } },
  },
  {
    name: 'NewChannelReq NACKed: refused',
    requests: [newChannel],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [newChannel] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'NewChannelAns', dataRateOk: true, channelFreqOk: false }] }, sent: [] },
    ],
    expect: { outcomes: [{ status: 'refused', reason: 'channel frequency not acknowledged' }] },
  },
  {
    name: 'a newer request of a command while one is in flight waits behind it: the answer goes to the one sent, then the newer one goes',
    requests: [{ cid: 'DutyCycleReq', maxDCycle: 1 }],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [{ cid: 'DutyCycleReq', maxDCycle: 1 }] }] },
      { requests: [{ cid: 'DutyCycleReq', maxDCycle: 2 }], up: { fCnt: 1, fOpts: [{ cid: 'DutyCycleAns' }] }, sent: [{ fOpts: [{ cid: 'DutyCycleReq', maxDCycle: 2 }] }] },
      { up: { fCnt: 2, fOpts: [{ cid: 'DutyCycleAns' }] }, sent: [] },
    ],
    expect: { outcomes: [{ status: 'answered' }, { status: 'answered' }], mac: { DutyCycleReq: { sent: 2, answered: 2 } } },
  },
  {
    name: 'a newer RXTimingSetupReq waits while the node still repeats the sticky answer of the last one (§5.8): the repeat is not taken for its answer',
    requests: [rxTiming],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [rxTiming] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'RXTimingSetupAns' }] }, sent: [{ fOpts: [], txpk: { tmst: 4_000_000 } }] },
      { requests: [{ cid: 'RXTimingSetupReq', delay: 5 }], up: { fCnt: 2, fOpts: [{ cid: 'RXTimingSetupAns' }] }, sent: [{ fOpts: [] }] },
      { up: { fCnt: 3 }, sent: [{ fOpts: [{ cid: 'RXTimingSetupReq', delay: 5 }], txpk: { tmst: 4_000_000 } }] },
      { up: { fCnt: 4, fOpts: [{ cid: 'RXTimingSetupAns' }] }, sent: [{ fOpts: [], txpk: { tmst: 6_000_000 } }] },
    ],
    expect: { outcomes: [{ status: 'answered' }, { status: 'answered' }], rejected: {}, mac: { RXTimingSetupReq: { sent: 2, answered: 2 } } },
  },
  {
    name: 'a request never answered goes in 4 downlinks, then fails',
    requests: [devStatus],
    steps: [
      ...[0, 1, 2, 3].map((fCnt) => ({ up: { fCnt }, sent: [{ fOpts: [devStatus] }] })),
      { up: { fCnt: 4 }, sent: [] },
    ],
    expect: {
      outcomes: [{ status: 'failed', reason: 'no_answer' }],
      events: [{ kind: 'lorawan.mac.failed', detail: { command: 'DevStatusReq', reason: 'no_answer', attempts: 4 } }],
      mac: { DevStatusReq: { sent: 4, failed: 1 } },
    },
  },
  {
    name: 'a pending request while no forwarder can transmit: each frame that cannot go is an attempt (it fails, not_sent) and one event, not one per uplink',
    requests: [devStatus],
    steps: [
      // 200 s without PULL_DATA: the forwarder's address is forgotten (3 min), its uplinks still come
      { up: { fCnt: 0, after: 200_000 }, sent: [] },
      ...[1, 2, 3, 4, 5].map((fCnt) => ({ up: { fCnt }, sent: [] })),
    ],
    expect: {
      outcomes: [{ status: 'failed', reason: 'not_sent' }],
      eventCounts: { 'lorawan.downlink.missed': 1 },
      events: [{ kind: 'lorawan.mac.failed', detail: { command: 'DevStatusReq', reason: 'not_sent', attempts: 4 } }],
      rejected: { no_forwarder: 4 },
      mac: { DevStatusReq: { failed: 1 } },
    },
  },
  // ---------------------------------------------------------------- the FOpts budget
  {
    name: 'with an application payload, FOpts takes what fits (first fit, 11 bytes left by RX2\'s 51) and FPending says more waits; then FPort 0 carries all six',
    requests: ALL_REQUESTS,
    app: [{ fPort: 200, payload: Buffer.alloc(40, 0xab), label: 'test' }],
    steps: [
      {
        up: { fCnt: 0 },
        sent: [{ fPort: 200, payloadHex: 'ab'.repeat(40), fOpts: [linkAdr(5, 1), dutyCycle, devStatus, rxTiming], fOptsBytes: 10, fPending: true }],
      },
      { up: { fCnt: 1 }, sent: [{ fPort: 0, fOpts: [], port0: ALL_REQUESTS, fPending: false }] },
    ],
    expect: { outcomes: ALL_REQUESTS.map(() => 'pending') },
  },
  {
    name: 'MAC commands that fit FOpts go there, without FPort',
    requests: [devStatus, { cid: 'DutyCycleReq', maxDCycle: 1 }],
    steps: [{ up: { fCnt: 0 }, sent: [{ fPort: null, fOpts: [devStatus, { cid: 'DutyCycleReq', maxDCycle: 1 }], fOptsBytes: 3, fPending: false }] }],
    expect: {},
  },
  // ---------------------------------------------------------------- bad input: counted, bounded
  {
    name: 'malformed FOpts: the command before the bad byte is answered; counted, one event',
    steps: [{ up: { fCnt: 0, fOpts: Buffer.from([0x02, 0x42, 0x00]) }, sent: [{ fOpts: [{ cid: 'LinkCheckAns' }] }] }],
    expect: { rejected: { mac_malformed: 1 }, events: [{ kind: 'lorawan.mac.rejected', detail: { reason: 'mac_malformed' } }], readings: [{ point: 'dimLevel' }] },
  },
  {
    name: 'a flood of malformed MAC commands: each counted, one event a minute',
    steps: [0, 1, 2, 3, 4].map((fCnt) => ({ up: { fCnt, fOpts: Buffer.from([0x42]) }, sent: [] })),
    expect: { rejected: { mac_malformed: 5 }, eventCounts: { 'lorawan.mac.rejected': 1 } },
  },
  {
    name: 'an answer nothing asked for: unsolicited, counted, nothing stored',
    steps: [{ up: { fCnt: 0, fOpts: [{ cid: 'DevStatusAns', battery: 100, margin: 5 }] }, sent: [] }],
    expect: { rejected: { mac_unsolicited: 1 }, counts: { battery: 0, margin: 0 }, events: [{ kind: 'lorawan.mac.rejected', detail: { command: 'DevStatusAns', reason: 'mac_unsolicited' } }] },
  },
  {
    name: 'MAC commands both in FOpts and on FPort 0: invalid, none answered',
    steps: [{ up: { fCnt: 0, fOpts: [{ cid: 'LinkCheckReq' }], port0: [{ cid: 'LinkCheckReq' }] }, sent: [] }],
    expect: { rejected: { mac_both: 1 } },
  },
  // ---------------------------------------------------------------- persistence
  {
    name: 'a restarted driver resumes the pending request (its second attempt) and applies the answer',
    requests: [devStatus],
    restartBefore: 1,
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [devStatus] }] },
      { up: { fCnt: 1 }, sent: [{ fOpts: [devStatus] }] },
      { up: { fCnt: 2, fOpts: [{ cid: 'DevStatusAns', battery: 200, margin: 8 }] }, sent: [] },
    ],
    expect: {
      // the first driver's caller heard of its stop
      outcomes: [{ status: 'failed', reason: 'stopped' }],
      events: [{ kind: 'lorawan.mac.answered', detail: { command: 'DevStatusReq', attempts: 2 } }],
      readings: [{ point: 'margin', value: 8 }],
    },
  },
  {
    name: 'a restart does not push the first DevStatusReq back: when the network first knew the device is stored',
    config: { devStatusInterval: 60_000 },
    restartBefore: 1,
    steps: [
      { up: { fCnt: 0 }, sent: [] },
      { up: { fCnt: 1, after: 30_000 }, sent: [] },
      { up: { fCnt: 2, after: 30_000 }, sent: [{ fOpts: [devStatus] }] },
    ],
    expect: { mac: { DevStatusReq: { sent: 1 } } },
  },
  // ---------------------------------------------------------------- ADR
  {
    name: 'ADR raises the data rate of a node with good SNR (then lowers its power), and lowers it back when the SNR drops',
    config: { adr: { historySize: 3 } },
    steps: [
      // SF12, SNR 10 dB: 10 − (−20) − 10 = 20 dB above the margin, 6 steps: DR0 → DR5, then TX power index 1
      ...[0, 1, 2].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
      { up: { fCnt: 3, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(5, 1)], txpk: { datr: 'SF12BW125' } }] },
      // the node ACKs at DR5; then its SNR drops to −10 dB: −10 − (−7.5) − 10 = −12.5, 4 steps down: power index 0, DR5 → DR2
      { up: { fCnt: 4, adr: true, fOpts: [adrAck], rx: { lsnr: -10 } }, sent: [] },
      ...[5, 6].map((fCnt) => ({ up: { fCnt, adr: true, rx: { lsnr: -10 } }, sent: [] })),
      { up: { fCnt: 7, adr: true, rx: { lsnr: -10 } }, sent: [{ fOpts: [linkAdr(2, 0)], txpk: { datr: 'SF7BW125' } }] },
      { up: { fCnt: 8, adr: true, fOpts: [adrAck], rx: { datr: 'SF10BW125', lsnr: -10 } }, sent: [] },
    ],
    expect: {
      events: [
        { kind: 'lorawan.adr.changed', detail: { fromDr: 0, toDr: 5, fromTxPower: 16, toTxPower: 14, snrMax: 10, requiredSnr: -20 } },
        { kind: 'lorawan.adr.changed', detail: { fromDr: 5, toDr: 2, fromTxPower: 14, toTxPower: 16, snrMax: -10, requiredSnr: -7.5 } },
      ],
      readings: [{ point: 'txPower', value: 14 }, { point: 'txPower', value: 16 }, { point: 'dr', value: 2 }],
      mac: { LinkADRReq: { sent: 2, answered: 2 } },
      status: { dr: 2, txPower: 16, adr: true },
    },
  },
  {
    name: 'ADR after a NACK asks again only after a new full history',
    config: { adr: { historySize: 2 } },
    steps: [
      ...[0, 1].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
      { up: { fCnt: 2, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(5, 1)] }] },
      { up: { fCnt: 3, adr: true, fOpts: [{ ...adrAck, powerAck: false }], rx: { ...SF12, lsnr: 10 } }, sent: [] },
      { up: { fCnt: 4, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] },
      { up: { fCnt: 5, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(5, 1)] }] },
    ],
    expect: { mac: { LinkADRReq: { sent: 2, refused: 1 } }, events: [{ kind: 'lorawan.mac.refused', detail: { command: 'LinkADRReq', reason: 'TX power not acknowledged', origin: 'adr' } }] },
  },
  {
    name: 'ADR to a node that never answers: the LinkADRReq fails after 4 downlinks and ADR asks again only after a new full history',
    config: { adr: { historySize: 2 } },
    steps: [
      ...[0, 1].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
      ...[2, 3, 4, 5].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(5, 1)] }] })),
      ...[6, 7].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
      { up: { fCnt: 8, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(5, 1)] }] },
    ],
    expect: { mac: { LinkADRReq: { sent: 5, failed: 1 } }, events: [{ kind: 'lorawan.mac.failed', detail: { command: 'LinkADRReq', reason: 'no_answer', origin: 'adr' } }] },
  },
  {
    name: 'ADR keeps the channels the node ACKed (NewChannelReq) on: ChMask 0x000f, not the default 0x0007',
    config: { adr: { historySize: 2 } },
    requests: [newChannel],
    steps: [
      { up: { fCnt: 0 }, sent: [{ fOpts: [newChannel] }] },
      { up: { fCnt: 1, fOpts: [{ cid: 'NewChannelAns', dataRateOk: true, channelFreqOk: true }] }, sent: [] },
      ...[2, 3].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
      { up: { fCnt: 4, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [{ ...linkAdr(5, 1), chMask: 0x000f }] }] },
    ],
    expect: { outcomes: [{ status: 'answered' }] },
  },
  {
    name: 'an ADR decision does not replace an operator\'s LinkADRReq (requestMac) still waiting to go',
    config: { adr: { historySize: 2 } },
    requests: [linkAdr(2, 0)],
    // two application payloads that fill DR0's 51 bytes: no room for FOpts until they went
    app: [0xa1, 0xa2].map((b) => ({ fPort: 200, payload: Buffer.alloc(51, b), label: 'full' })),
    steps: [
      { up: { fCnt: 0, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fPort: 200, fOpts: [], fPending: true }] },
      // the history is full: ADR decides after this answer, while the operator's request still waits
      { up: { fCnt: 1, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fPort: 200, fOpts: [] }] },
      { up: { fCnt: 2, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [{ fOpts: [linkAdr(2, 0)] }] },
    ],
    expect: { outcomes: ['pending'], noEvents: ['lorawan.mac.failed'] },
  },
  {
    name: 'ADR disabled (lorawan.adr.enabled false): a full history of good SNR asks nothing',
    config: { adr: { enabled: false, historySize: 2 } },
    steps: [0, 1, 2, 3].map((fCnt) => ({ up: { fCnt, adr: true, rx: { ...SF12, lsnr: 10 } }, sent: [] })),
    expect: { status: { adr: false }, noEvents: ['lorawan.adr.changed'] },
  },
];

describe('MAC commands and ADR, scenario by scenario', () => {
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    await runMacScenario(s);
  });
});
