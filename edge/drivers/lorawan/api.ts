/**
 * What the rest of the gateway sees of the LoRaWAN driver: main.ts creates it, the control
 * plane calls enqueueDownlink, the API reads status() and metrics().
 */
import type { Component } from '../../component.js';
import type { LorawanMetricsSnapshot } from './metrics.js';
import type { GatewayBackend } from './semtech/backend.js';

export interface DownlinkCommand {
  action: 'dim' | 'on' | 'off' | 'schedule';
  level?: number;
  scheduleId?: number;
  confirmed?: boolean;
  /** wall-clock ms */
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
  }[];
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
}
