/**
 * The LoRaWAN devices the server knows (lorawan.devices), each under its devices.yaml id when
 * it has one, with what was last heard of it (for status() and for class C routing; after a
 * restart recalled from the store), and the ABP sessions they bring from the configuration.
 */
import type { Config } from '../../config/schema.js';
import type { LatestValue } from '../../store/types.js';
import type { OtaaKeys } from './uplink/join.js';
import type { Session, SessionStore } from './storage/sessions.js';

type LorawanConfig = NonNullable<Config['lorawan']>;
type LorawanDeviceConfig = LorawanConfig['devices'][number];

export interface DeviceEntry {
  id: string;
  devEui: string;
  class: 'A' | 'C';
  activation: 'abp' | 'otaa';
  joinEui: string | null;
  appKey: Buffer | null;
  /** TS005 GenAppKey (lorawan.devices[].genAppKey), from which FUOTA's multicast keys derive; null: the node takes no FUOTA */
  genAppKey: Buffer | null;
  /** ADR for this node (lorawan.devices[].adr); null: lorawan.adr.enabled */
  adr: boolean | null;
  /** wall-clock ms of the last accepted uplink or join */
  lastUplink: number | null;
  /** the forwarder that answers it: the best that heard its last frame and can transmit */
  gateway: string | null;
  rssi: number | null;
  snr: number | null;
  dr: number | null;
}

export class DeviceIndex {
  private readonly byEui = new Map<string, DeviceEntry>();
  private readonly byId = new Map<string, DeviceEntry>();

  /** `keys`: lorawan.devices; `devices`: the devices of devices.yaml, whose id a DevEUI takes. */
  constructor(keys: readonly LorawanDeviceConfig[], devices: Config['devices']) {
    const idByEui = new Map<string, string>();
    for (const d of devices) if (d.devEui) idByEui.set(d.devEui.toLowerCase(), d.id);
    for (const k of keys) {
      const devEui = k.devEui.toLowerCase();
      const entry: DeviceEntry = {
        id: idByEui.get(devEui) ?? devEui,
        devEui,
        class: k.class,
        activation: k.activation,
        joinEui: k.joinEui?.toLowerCase() ?? null,
        appKey: k.appKey ? Buffer.from(k.appKey, 'hex') : null,
        genAppKey: k.genAppKey ? Buffer.from(k.genAppKey, 'hex') : null,
        adr: k.adr ?? null,
        lastUplink: null,
        gateway: null,
        rssi: null,
        snr: null,
        dr: null,
      };
      this.byEui.set(devEui, entry);
      this.byId.set(entry.id, entry);
    }
  }

  get size(): number {
    return this.byEui.size;
  }

  all(): DeviceEntry[] {
    return [...this.byEui.values()];
  }

  byDevEui(devEui: string): DeviceEntry | undefined {
    return this.byEui.get(devEui);
  }

  /** A device by its devices.yaml id or its DevEUI (any case). */
  byRef(ref: string): DeviceEntry | undefined {
    return this.byId.get(ref) ?? this.byEui.get(ref.toLowerCase());
  }

  /**
   * What was heard of each device before a restart, from its latest values in the store: every
   * reading of a node is stored from one of its uplinks (its status, its radio quality, its
   * DevStatusAns) and stamped with that uplink's time, so the newest of them is its last uplink
   * (the lighting control reads them so too), and its RSSI and SNR are the last ones known. The
   * forwarder and data rate are not recalled: a downlink waits until the node is heard again.
   */
  recall(latest: (id: string) => ReadonlyMap<string, LatestValue>): void {
    for (const d of this.byEui.values()) {
      const values = latest(d.id);
      let last: number | null = null;
      for (const v of values.values()) last = Math.max(last ?? v.ts, v.ts);
      if (last === null || (d.lastUplink !== null && d.lastUplink >= last)) continue;
      d.lastUplink = last;
      d.rssi = numberOf(values.get('rssi')) ?? d.rssi;
      d.snr = numberOf(values.get('snr')) ?? d.snr;
    }
  }

  /** The keys of an OTAA device (LoRaWAN 1.0.3 §6.2.2), or undefined for another or an unknown one. */
  otaaKeys(devEui: string): OtaaKeys | undefined {
    const d = this.byEui.get(devEui);
    return d && d.activation === 'otaa' && d.appKey && d.joinEui ? { devEui, joinEui: d.joinEui, appKey: d.appKey } : undefined;
  }
}

function numberOf(v: LatestValue | undefined): number | null {
  return v && v.quality === 'good' && typeof v.value === 'number' ? v.value : null;
}

/** ABP sessions come from lorawan.devices; a stored session with the same address and keys keeps its counters. */
export function loadAbpSessions(sessions: SessionStore, keys: readonly LorawanDeviceConfig[]): void {
  for (const k of keys) {
    if (k.activation !== 'abp' || !k.devAddr || !k.nwkSKey || !k.appSKey) continue;
    const devEui = k.devEui.toLowerCase();
    const s: Session = {
      devEui,
      devAddr: k.devAddr.toLowerCase(),
      nwkSKey: Buffer.from(k.nwkSKey, 'hex'),
      appSKey: Buffer.from(k.appSKey, 'hex'),
      activation: 'abp',
      fCntUp: null,
      nFCntDown: 0,
    };
    const old = sessions.get(devEui);
    if (old && old.devAddr === s.devAddr && old.nwkSKey.equals(s.nwkSKey) && old.appSKey.equals(s.appSKey)) continue;
    sessions.put(s);
  }
}
