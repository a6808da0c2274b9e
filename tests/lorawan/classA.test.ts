/**
 * The network server's uplinks as scenario rows (ChirpStack's class_a_test.rs is the model):
 * the session before, the downlinks queued, the forwarders that hear the frame and how, the
 * PHYPayload; then the readings stored, the events, the frames sent back (read back from the
 * forwarders' sockets), the counters and the outcomes of the queued downlinks. Real UDP on
 * 127.0.0.1; the driver's clock is a fake one, moved past the de-duplication window.
 */
import { describe, expect, it } from 'vitest';
import { runScenario, type Scenario } from './scenario.js';
import { ABP, dataUp, GW, GW2, GW3, joinRequest, OTAA, STATUS } from './support.js';

/**
 * One row per uplink, as ChirpStack's class_a_test.rs: the session before, the downlinks
 * queued, who hears the frame, the frame, and what is stored, emitted and sent back.
 */
const scenarios: Scenario[] = [
  {
    name: 'a status uplink: decoded, stored with rssi/snr/dr, the counter advances, nothing to answer',
    heardBy: [{ gateway: GW, rx: { rssi: -81, lsnr: 6.5, datr: 'SF9BW125' } }],
    phy: dataUp(ABP, 0),
    expect: {
      readings: [
        { device: 'lamp-abp', point: 'dimLevel', value: STATUS.dimLevel, unit: '%' },
        { device: 'lamp-abp', point: 'power', value: 48, unit: 'W' },
        { device: 'lamp-abp', point: 'energy', value: 1.5, unit: 'kWh' },
        { device: 'lamp-abp', point: 'lampOn', value: true },
        { device: 'lamp-abp', point: 'rssi', value: -81, unit: 'dBm' },
        { device: 'lamp-abp', point: 'snr', value: 6.5, unit: 'dB' },
        { device: 'lamp-abp', point: 'dr', value: 3 },
      ],
      counts: { 'lamp-abp/gateways': 0 },
      sent: [],
      metrics: { uplinks: 1, duplicates: 0 },
      status: { id: 'lamp-abp', fCntUp: 0, rssi: -81, snr: 6.5, dr: 3, gateway: GW },
    },
  },
  {
    name: 'the same frame from two forwarders is stored once, with the best RSSI/SNR',
    heardBy: [
      { gateway: GW, rx: { rssi: -100, lsnr: -3 } },
      { gateway: GW2, pulls: false, rx: { rssi: -60, lsnr: 9 } },
    ],
    phy: dataUp(ABP, 0),
    expect: {
      readings: [
        { device: 'lamp-abp', point: 'rssi', value: -60 },
        { device: 'lamp-abp', point: 'gateways', value: 2 },
      ],
      counts: { 'lamp-abp/dimLevel': 1, 'lamp-abp/rssi': 1 },
      sent: [],
      metrics: { uplinks: 1, duplicates: 1 },
    },
  },
  {
    name: 'heard by two forwarders, a confirmed uplink is acknowledged through the one that heard it best, on its own tmst',
    // the weak copy arrives first; each concentrator has its own microsecond counter
    heardBy: [
      { gateway: GW, rx: { rssi: -110, lsnr: -8, tmst: 1_000_000 } },
      { gateway: GW2, rx: { rssi: -70, lsnr: 7, tmst: 9_000_000 } },
    ],
    phy: dataUp(ABP, 0, { confirmed: true }),
    expect: {
      sent: [{ gateway: GW2, txpk: { tmst: 10_000_000, ipol: true }, frame: { ack: true, micOk: true } }],
      status: { id: 'lamp-abp', gateway: GW2, rssi: -70 },
    },
  },
  {
    name: 'the answer goes through the best forwarder that can transmit: one that never sent PULL_DATA cannot',
    heardBy: [
      { gateway: GW, rx: { rssi: -110, lsnr: -8, tmst: 1_000_000 } },
      { gateway: GW3, pulls: false, rx: { rssi: -70, lsnr: 7, tmst: 9_000_000 } },
    ],
    phy: dataUp(ABP, 0, { confirmed: true }),
    expect: {
      sent: [{ gateway: GW, txpk: { tmst: 2_000_000 }, frame: { ack: true } }],
      // no rejection (no_forwarder): the answer never tried the forwarder that cannot transmit
      rejected: {},
      status: { id: 'lamp-abp', gateway: GW, rssi: -70 },
    },
  },
  {
    name: 'a confirmed uplink is acknowledged in RX1 (tmst + 1 s, modulo 2^32, inverted polarity)',
    heardBy: [{ gateway: GW, rx: { tmst: 4_294_000_000, freq: 868.5 } }],
    phy: dataUp(ABP, 0, { confirmed: true }),
    expect: {
      sent: [
        {
          gateway: GW,
          txpk: { imme: false, tmst: (4_294_000_000 + 1_000_000) % 2 ** 32, freq: 868.5, datr: 'SF7BW125', ipol: true, powe: 14 },
          frame: { mType: 'Unconfirmed Data Down', ack: true, fPort: null, fCnt: 0, micOk: true },
        },
      ],
    },
  },
  {
    name: 'FCnt rollover past 65535 is accepted (MIC over the 32-bit counter)',
    session: { devEui: ABP.devEui, fCntUp: 65_535 },
    phy: dataUp(ABP, 65_536),
    expect: { sent: [], metrics: { uplinks: 1 }, status: { id: 'lamp-abp', fCntUp: 65_536 } },
  },
  {
    name: 'a queued dim command goes out in RX1 of the next uplink; unconfirmed, its outcome waits for the TX_ACK',
    queue: [{ device: 'lamp-abp', command: { action: 'dim', level: 30 } }],
    heardBy: [{ gateway: GW, rx: { tmst: 1000 } }],
    phy: dataUp(ABP, 0),
    expect: {
      sent: [{ gateway: GW, txpk: { tmst: 1_001_000, freq: 868.1 }, frame: { mType: 'Unconfirmed Data Down', fPort: 10, payloadHex: '011e', fCnt: 0, micOk: true } }],
      events: [{ kind: 'lorawan.downlink.sent', device: 'lamp-abp', detail: { window: 'rx1', attempt: 1, action: 'dim' } }],
      outcomes: ['pending'],
      status: { id: 'lamp-abp', queued: 1, fCntDown: 1 },
    },
  },
  {
    name: 'an expired command fails with reason "expired" and is never sent',
    queue: [{ device: 'lamp-abp', command: { action: 'off' }, expiresInMs: -1 }],
    phy: dataUp(ABP, 0),
    expect: {
      sent: [],
      events: [{ kind: 'lorawan.downlink.failed', device: 'lamp-abp', detail: { reason: 'expired' } }],
      noEvents: ['lorawan.downlink.sent'],
      outcomes: [{ status: 'expired', reason: 'expired', device: 'lamp-abp' }],
      status: { id: 'lamp-abp', queued: 0 },
    },
  },
  {
    name: 'a downlink that would break the duty cycle is never sent: an event says so and the command waits',
    // 36 s of air time in an hour on g1 (1 %) and 360 s on g3 (10 %) are already spent by this gateway
    airtime: [
      { gateway: GW, freq: 868.1, ms: 36_000 },
      { gateway: GW, freq: 869.525, ms: 360_000 },
    ],
    queue: [{ device: 'lamp-abp', command: { action: 'on' } }],
    phy: dataUp(ABP, 0),
    expect: {
      sent: [],
      events: [{ kind: 'lorawan.downlink.delayed', device: 'lamp-abp', detail: { reason: 'duty_cycle', code: 'E_LORA_DUTY_CYCLE' } }],
      rejected: { duty_cycle: 1 },
      outcomes: ['pending'],
      status: { id: 'lamp-abp', queued: 1 },
    },
  },
  {
    name: 'OTAA: a Join Request is answered with a Join Accept at tmst + 5 s',
    heardBy: [{ gateway: GW, rx: { tmst: 100 } }],
    phy: joinRequest(0x1234),
    expect: {
      sent: [{ gateway: GW, txpk: { tmst: 5_000_100, freq: 868.1, ipol: true }, frame: { mType: 'Join Accept', micOk: true, netId: '000013', devAddr: expect.stringMatching(/^2[67]/) } }],
      events: [{ kind: 'lorawan.joined', device: 'lamp-otaa', detail: { devEui: OTAA.devEui, devNonce: 0x1234, joinAcceptSent: true, gateway: GW } }],
      metrics: { joins: 1 },
      status: { id: 'lamp-otaa', devAddr: expect.stringMatching(/^2[67]/), fCntUp: null },
    },
  },
  // rejected frames: counted by reason, never stored, never answered
  {
    name: 'OTAA: a reused DevNonce is rejected',
    session: { devEui: OTAA.devEui, usedDevNonces: [0x1234] },
    phy: joinRequest(0x1234),
    expect: { sent: [], rejected: { devnonce_reused: 1 }, metrics: { joins: 0 }, noEvents: ['lorawan.joined'] },
  },
  {
    name: 'a join with a wrong AppKey',
    phy: joinRequest(1, 'ff'.repeat(16)),
    expect: { sent: [], rejected: { mic: 1 }, metrics: { joins: 0 }, status: { id: 'lamp-otaa', devAddr: null } },
  },
  {
    name: 'bad MIC',
    phy: dataUp({ ...ABP, nwkSKey: '00'.repeat(16) }, 0),
    expect: { sent: [], rejected: { mic: 1 }, counts: { 'lamp-abp/*': 0 }, metrics: { uplinks: 0 } },
  },
  {
    name: 'unknown DevAddr',
    phy: dataUp({ ...ABP, devAddr: '01020304' }, 0),
    expect: { sent: [], rejected: { unknown_devaddr: 1 }, counts: { '01020304/*': 0, 'lamp-abp/*': 0 } },
  },
  {
    name: 'a replay: the counter did not increase',
    session: { devEui: ABP.devEui, fCntUp: 10 },
    phy: dataUp(ABP, 10),
    expect: { sent: [], rejected: { replay: 1 }, counts: { 'lamp-abp/*': 0 }, status: { id: 'lamp-abp', fCntUp: 10 } },
  },
  {
    name: 'a replay: an older counter',
    session: { devEui: ABP.devEui, fCntUp: 10 },
    phy: dataUp(ABP, 9),
    expect: { sent: [], rejected: { replay: 1 }, counts: { 'lamp-abp/*': 0 } },
  },
  {
    name: 'a counter too far ahead (MAX_FCNT_GAP)',
    session: { devEui: ABP.devEui, fCntUp: 10 },
    phy: dataUp(ABP, 10 + 16_384),
    expect: { sent: [], rejected: { fcnt_gap: 1 }, counts: { 'lamp-abp/*': 0 } },
  },
  {
    name: 'a PHYPayload that does not parse',
    phy: Buffer.from('e0ffffffffffffffffffffffffff', 'hex'),
    expect: { sent: [], rejected: { malformed_frame: 1 } },
  },
  {
    name: 'a PHYPayload too short',
    phy: Buffer.from('40010203', 'hex'),
    expect: { sent: [], rejected: { frame_too_short: 1 } },
  },
  {
    name: 'a CRC error',
    heardBy: [{ gateway: GW, rx: { stat: -1 } }],
    phy: dataUp(ABP, 0),
    expect: { sent: [], rejected: { crc: 1 }, counts: { 'lamp-abp/*': 0 } },
  },
];

describe('uplinks, scenario by scenario', () => {
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    await runScenario(s);
  });
});
