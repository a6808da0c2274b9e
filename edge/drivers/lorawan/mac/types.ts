/**
 * LoRaWAN 1.0.3/1.0.4 MAC commands (§5), as the network server and the simulated node exchange
 * them: in FOpts (at most 15 bytes, unencrypted in 1.0.x) or as the FRMPayload of FPort 0
 * (encrypted with the NwkSKey). Field values are the specification's, in engineering units where
 * noted. The codec is `mac/commands.ts`; ADR is `mac/adr.ts`; the per-device state (pending
 * requests re-sent until answered, what the node runs at) is `mac/state.ts` and the handler that
 * ties them to the uplink and downlink roads is `mac/handler.ts`.
 */

/** Command identifiers (LoRaWAN 1.0.3 §5 Table 5). */
export const CID = {
  LinkCheck: 0x02,
  LinkADR: 0x03,
  DutyCycle: 0x04,
  RXParamSetup: 0x05,
  DevStatus: 0x06,
  NewChannel: 0x07,
  RXTimingSetup: 0x08,
  DeviceTime: 0x0d,
} as const;

/** Network → device (downlink): requests, and the answers to the device's requests (LinkCheckAns, DeviceTimeAns). */
export type MacDownlink =
  /** margin: dB above the demodulation floor of the uplink's data rate (0..254); gwCnt: forwarders that heard it */
  | { cid: 'LinkCheckAns'; margin: number; gwCnt: number }
  /** txPower: index (EU868 0 = max EIRP 16 dBm, each step −2 dB, 0..7); chMask: 16 bits; nbTrans 1..15 (0: keep) */
  | { cid: 'LinkADRReq'; dataRate: number; txPower: number; chMask: number; chMaskCntl: number; nbTrans: number }
  /** aggregated duty cycle 1/2^maxDCycle (0: no limit) */
  | { cid: 'DutyCycleReq'; maxDCycle: number }
  /** frequency in Hz (multiple of 100) */
  | { cid: 'RXParamSetupReq'; rx1DrOffset: number; rx2DataRate: number; frequency: number }
  | { cid: 'DevStatusReq' }
  /** frequency in Hz (multiple of 100; 0 disables the channel) */
  | { cid: 'NewChannelReq'; chIndex: number; frequency: number; minDr: number; maxDr: number }
  /** RX1 delay in seconds (0 means 1) */
  | { cid: 'RXTimingSetupReq'; delay: number }
  /** the uplink's reception time in GPS time: ms since 1980-01-06T00:00:00Z, leap seconds counted (fraction in 1/256 s on the wire) */
  | { cid: 'DeviceTimeAns'; gpsMs: number };

/** Device → network (uplink): answers to the server's requests, and the device's own requests. */
export type MacUplink =
  | { cid: 'LinkCheckReq' }
  | { cid: 'LinkADRAns'; powerAck: boolean; dataRateAck: boolean; channelMaskAck: boolean }
  | { cid: 'DutyCycleAns' }
  | { cid: 'RXParamSetupAns'; rx1DrOffsetAck: boolean; rx2DataRateAck: boolean; channelAck: boolean }
  /** battery: 0 external power, 1..254 level, 255 unknown; margin: SNR margin of the last DevStatusReq, −32..31 dB */
  | { cid: 'DevStatusAns'; battery: number; margin: number }
  | { cid: 'NewChannelAns'; dataRateOk: boolean; channelFreqOk: boolean }
  | { cid: 'RXTimingSetupAns' }
  | { cid: 'DeviceTimeReq' };

export type MacDownlinkCid = MacDownlink['cid'];
export type MacUplinkCid = MacUplink['cid'];

/** A byte string that does not decode: the commands before it are kept, the rest is dropped (the length of an unknown CID is unknown). */
export interface MacDecoded<T> {
  commands: T[];
  /** null when every byte decoded; else why decoding stopped, e.g. "unknown MAC CID 0x42 at byte 3", "LinkADRAns truncated" */
  error: string | null;
}

/** LoRaWAN 1.0.3 §4.3.1.6: FOpts carries at most 15 bytes. */
export const FOPTS_MAX = 15;

/** GPS epoch 1980-01-06T00:00:00Z in Unix ms, and GPS − UTC (leap seconds since, 18 since 2017). */
export const GPS_EPOCH_UNIX_MS = 315_964_800_000;
export const GPS_LEAP_SECONDS = 18;

/** GPS ms of a Unix (UTC) ms instant. */
export function unixToGpsMs(unixMs: number): number {
  return unixMs - GPS_EPOCH_UNIX_MS + GPS_LEAP_SECONDS * 1000;
}

// ---------------------------------------------------------------------------------------
// ADR (mac/adr.ts): ChirpStack's default algorithm, both ways

export interface AdrInput {
  /** the data rate and TX power index the node runs at now (EU868 DR0..5 for ADR) */
  dr: number;
  txPowerIndex: number;
  nbTrans: number;
  /** the highest data rate ADR may set (EU868: 5) and the highest TX power index (EU868: 7, i.e. 16 − 14 dB) */
  maxDr: number;
  minDr: number;
  maxTxPowerIndex: number;
  /** best SNR (dB) of each of the last uplinks, oldest first (all copies merged) */
  snrHistory: readonly number[];
  /** dB kept above the required SNR (ChirpStack's installation margin, default 10) */
  margin: number;
  /** uplinks needed before ADR decides (default 20) */
  historySize: number;
}

export interface AdrDecision {
  dr: number;
  txPowerIndex: number;
  nbTrans: number;
  /** steps of 3 dB: positive raise the data rate then lower the power; negative raise the power then lower the data rate */
  nStep: number;
  snrMax: number;
  requiredSnr: number;
}
