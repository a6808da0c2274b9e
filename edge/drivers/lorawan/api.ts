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
  /** Queues a command for a device (its devices.yaml id, or its DevEUI); the outcome comes as command.* events with this id. */
  enqueueDownlink(device: string, command: DownlinkCommand): { id: string };
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
