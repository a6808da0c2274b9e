/**
 * What the rest of the gateway sees of the LoRaWAN driver: main.ts creates it, the control
 * plane calls enqueueDownlink, the API reads status() and metrics().
 */
import type { Clock } from '../../clock.js';
import type { Component } from '../../component.js';
import type { MacDownlink, MacUplink } from './mac/types.js';
import type { LorawanMetricsSnapshot } from './metrics.js';
import type { GatewayBackend } from './semtech/backend.js';

export interface DownlinkCommand {
  action: 'dim' | 'on' | 'off' | 'schedule';
  level?: number;
  scheduleId?: number;
  confirmed?: boolean;
  /**
   * wall-clock ms on the gateway's clock (ctx.clock: the control plane's). The driver moves it
   * onto its own clock once, at enqueueDownlink, as the time left: under simulate.radioTimeScale k
   * that time runs k times faster, as the radio does.
   */
  expiresAt?: number;
}

/**
 * What became of a queued downlink. `verified`: a confirmed downlink acknowledged by the node;
 * `sent`: an unconfirmed one transmitted by the forwarder (tx_ack without error), which is as far
 * as the network can know; `failed` / `expired` with the reason (expired: not delivered before
 * its expiresAt; failed: e.g. no ack after the retries, or the driver stopped).
 */
export interface DownlinkOutcome {
  id: string;
  device: string;
  status: 'verified' | 'sent' | 'failed' | 'expired';
  reason?: string;
  code?: string;
}

/** A downlink just queued: its id at once, its outcome when it is known (the promise never rejects). */
export interface QueuedDownlink {
  id: string;
  outcome: Promise<DownlinkOutcome>;
}

export interface LorawanStatus {
  port: number;
  forwarders: { gatewayEui: string; name: string | null; address: string | null; online: boolean; lastSeen: number | null; lastPull: number | null }[];
  devices: {
    id: string;
    devEui: string;
    devAddr: string | null;
    class: 'A' | 'C';
    activation: 'abp' | 'otaa';
    lastUplink: number | null;
    fCntUp: number | null;
    fCntDown: number | null;
    rssi: number | null;
    snr: number | null;
    dr: number | null;
    gateway: string | null;
    queued: number;
    /** dBm the node transmits at, once it ACKed a LinkADRReq */
    txPower: number | null;
    /** % from its last DevStatusAns (null: never reported, external power, or it cannot measure) */
    battery: number | null;
    /** mains-powered, from its last DevStatusAns (battery level 0); null: not reported */
    externalPower: boolean | null;
    /** dB demodulation margin from its last DevStatusAns */
    margin: number | null;
    /** ADR on for this node (lorawan.devices[].adr, else lorawan.adr.enabled) */
    adr: boolean;
  }[];
}

/**
 * An application-layer downlink (TS003–TS006 on FPorts 200–203, or any FPort but the command
 * port) to one device: class A after its next uplink, class C at once. `label` names it in the
 * lorawan.downlink.* events (e.g. "FragSessionSetupReq"). The outcome is the downlink's: `sent`
 * once the forwarder transmitted it (TX_ACK without error), `verified` for a confirmed one the node
 * ACKed; the application's answer comes as an uplink (onAppUplink).
 */
export interface AppDownlink {
  fPort: number;
  payload: Buffer;
  label: string;
  confirmed?: boolean;
  /** wall-clock ms on the driver's clock (`LorawanDriver.clock`, the radio's: FUOTA reads its times there) */
  expiresAt?: number;
}

/** An application-layer uplink of a known device on a port some listener asked for. */
export interface AppUplink {
  /** devices.yaml id (or DevEUI) */
  device: string;
  devEui: string;
  fPort: number;
  payload: Buffer;
  fCnt: number;
  /** wall-clock ms on the driver's clock when it was received */
  receivedAt: number;
  /** GPS ms of the reception (as DeviceTimeAns would state it) */
  gpsMs: number;
  snr: number | null;
  rssi: number | null;
  dr: number | null;
}

/** A multicast group's session on the network side (TS005): McAddr and its keys, its next FCnt, where it is sent. */
export interface MulticastSession {
  /** 8 hex digits */
  mcAddr: string;
  mcNwkSKey: Buffer;
  mcAppSKey: Buffer;
  /** the next multicast FCnt (the caller persists it; the driver increments it on each frame sent) */
  fCnt: number;
  /** Hz (EU868 default 869 525 000, sub-band g3: 10 % duty cycle) */
  frequency: number;
  dr: number;
}

/**
 * What became of one multicast frame: `sent` (TX_ACK without error), `txError` with the
 * forwarder's TX_ACK error (TOO_LATE, COLLISION_PACKET, TX_FREQ, TX_POWER, GPS_UNLOCKED, …: the air
 * time is refunded, the caller sends it again), `dutyCycle` (not sent: the sub-band has no budget
 * until retryAt, monotonic ms on the driver's clock), `noForwarder` (none can transmit now, or the
 * driver stopped before the TX_ACK came: what became of the frame is not known).
 */
export type MulticastOutcome =
  | { status: 'sent'; airtimeMs: number; gateway: string; fCnt: number }
  | { status: 'txError'; error: string; airtimeMs: number; gateway: string; fCnt: number }
  | { status: 'dutyCycle'; retryAt: number; usedMs: number; budgetMs: number }
  | { status: 'noForwarder' };

/** What became of a MAC request queued for a device: its answer, or why there is none. */
export type MacOutcome =
  | { status: 'answered'; answer: MacUplink }
  /** the node refused it (a NACK bit in the answer); the answer says which */
  | { status: 'refused'; answer: MacUplink; reason: string }
  /**
   * `no_answer` after MAX_MAC_ATTEMPTS downlinks (`not_sent`: none of them could go), `expired` (a
   * day without a chance), `replaced` (a newer request of the command before this one was sent),
   * `rejoined`, `stopped` (the driver stopped)
   */
  | { status: 'failed'; reason: string };

/** LoRaWAN data-rate and power facts the FUOTA planner needs (EU868). */
export interface RadioFacts {
  /** max FRMPayload bytes at this data rate (RP002 N) */
  maxPayload(dr: number): number;
  /** time on air in ms of a downlink PHYPayload of `phyBytes` at `dr` (no CRC) */
  downlinkAirtimeMs(phyBytes: number, dr: number): number;
  /** the sub-band's duty cycle at this frequency (Hz), or null outside the bands */
  dutyCycleAt(frequencyHz: number): number | null;
  /** air time used on the sub-band of frequencyHz in the last hour by a forwarder (the ledger; the busiest forwarder without one) */
  usedMs(frequencyHz: number, gatewayEui?: string): number;
  /** the sub-band's budget per hour in ms */
  budgetMs(frequencyHz: number): number;
}

export interface LorawanDriver extends Component {
  /**
   * Queues a command for a device (its devices.yaml id, or its DevEUI); throws E_NOT_FOUND /
   * E_INVALID_COMMAND at once. Returns the downlink's id and a promise of its outcome; the
   * lorawan.downlink.* events with this id are for observers, not for the caller.
   */
  enqueueDownlink(device: string, command: DownlinkCommand): QueuedDownlink;
  status(): LorawanStatus;
  metrics(): LorawanMetricsSnapshot;
  /** An application-layer downlink (TS003–TS006); throws E_NOT_FOUND / E_INVALID_COMMAND (full queue, command port) / E_COMPONENT at once. */
  enqueueApp(device: string, downlink: AppDownlink): QueuedDownlink;
  /** Listens to the uplinks of every device on `fPort`; returns the function that stops listening. TS003 (202) is answered by the driver itself. */
  onAppUplink(fPort: number, listener: (u: AppUplink) => void): () => void;
  /**
   * One multicast frame now (class C, `imme`), through the forwarder that can transmit and heard
   * the group's devices best; the duty-cycle ledger is asked first and charged. Resolves when the
   * TX_ACK comes (or after 5 s without one: `sent`, as a forwarder v1 sends none). Never rejects.
   */
  sendMulticast(session: MulticastSession, fPort: number, payload: Buffer): Promise<MulticastOutcome>;
  /** Queues a MAC request (re-sent in FOpts or on FPort 0 until answered); its outcome never rejects. */
  requestMac(device: string, request: MacDownlink): { outcome: Promise<MacOutcome> };
  /** GenAppKey of a device for TS005 (its AppKey in LoRaWAN 1.0.x, or lorawan.devices[].genAppKey), null without one */
  genAppKey(device: string): Buffer | null;
  /** the device's devices.yaml id by id or DevEUI, null when unknown */
  deviceId(ref: string): string | null;
  /** the clock the LoRaWAN side runs on (ctx.clock, or scaled by simulate.radioTimeScale) */
  readonly clock: Clock;
  readonly radio: RadioFacts;
  /** the bound UDP port (after start) */
  port(): number;
}

export interface LorawanDriverOptions {
  /** the radio side; the Semtech UDP server on lorawan.bind:lorawan.port by default */
  backend?: GatewayBackend;
  /** ms a PULL_RESP must reach the forwarder before the RX window (default 50) */
  leadMs?: number;
  classCAckTimeoutMs?: number;
  forwarderTimeoutMs?: number;
  /** without lorawan.forwarders: the packet forwarders served at once (default 8) */
  maxForwarders?: number;
  /** without lorawan.forwarders: ms of silence (no PUSH_DATA / PULL_DATA) that frees a forwarder's slot (default 10 min) */
  forwarderIdleMs?: number;
  /** the clock of the LoRaWAN side (default ctx.clock, scaled by simulate.radioTimeScale) */
  clock?: Clock;
}
