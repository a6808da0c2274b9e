/**
 * The packet forwarders the server serves, by gateway EUI. The UDP protocol carries no
 * credentials (Semtech PROTOCOL.TXT §3–§5: a gateway is named only by the EUI in its
 * datagrams), so anyone who reaches the port can claim any EUI. Whatever is kept per forwarder
 * (its downlink address, its `stat` as readings of device `gw-<EUI>`, its uplinks) is therefore
 * bounded, and nothing of it is persisted for a forwarder the gateway cannot vouch for:
 * - with `lorawan.forwarders`, exactly those EUIs are served (entries never expire), and trusted;
 * - without (the demo), any EUI is served, in a bounded table: at most `maxPending` forwarders
 *   that have not proven themselves, the least recently heard of them making room for a
 *   newcomer, so a flood of forged EUIs can neither grow memory nor lock the real forwarder
 *   out (its next keepalive brings it back). A forwarder proves itself by relaying a frame
 *   that passes a configured device's MIC (only a real concentrator near a real node can);
 *   from then on it is trusted: kept (at most `max` of them) until `idleMs` of silence.
 * Only a trusted forwarder's `stat` is stored (readings of device `gw-<EUI>`): forged EUIs
 * leave no device behind. Every admitted one is heard, answered and can carry uplinks.
 */
import type { ForwarderInfo } from './backend.js';

/** Without a list: trusted forwarders kept at once (a cabinet has one or a few concentrators). */
export const DEFAULT_MAX_FORWARDERS = 8;
/** Without a list: forwarders not yet trusted kept at once; past it the least recently heard goes. */
export const DEFAULT_MAX_PENDING = 64;
/** Without a list: a slot is freed after this long without PUSH_DATA or PULL_DATA (keepalives come every 10 s). */
export const DEFAULT_FORWARDER_IDLE_MS = 600_000;

export interface ForwarderPolicy {
  /** `lorawan.forwarders`: when non-empty, the only EUIs admitted */
  allowed?: readonly { eui: string; name?: string | undefined }[];
  /** without a list: trusted forwarders at once (default 8) */
  max?: number;
  /** without a list: forwarders not yet trusted at once (default 64) */
  maxPending?: number;
  /** without a list: ms of silence after which a slot is freed (default 10 min) */
  idleMs?: number;
}

/** Why a datagram's forwarder is not served: the metric key it is counted under. */
export type ForwarderRefusal = 'unknown_forwarder' | 'forwarders_full';

export interface Forwarder extends ForwarderInfo {
  family: string;
  /** without a list: it relayed a frame that passed a configured device's MIC */
  trusted?: boolean;
}

export class ForwarderTable {
  private readonly byEui = new Map<string, Forwarder>();
  /** lower-case EUI → name (null: unnamed); null when no list is configured */
  private readonly allowed: ReadonlyMap<string, string | null> | null;
  readonly max: number;
  readonly maxPending: number;
  readonly idleMs: number;

  constructor(policy: ForwarderPolicy = {}) {
    const list = policy.allowed ?? [];
    this.allowed = list.length > 0 ? new Map(list.map((f) => [f.eui.toLowerCase(), f.name ?? null])) : null;
    this.max = policy.max ?? DEFAULT_MAX_FORWARDERS;
    this.maxPending = policy.maxPending ?? DEFAULT_MAX_PENDING;
    this.idleMs = policy.idleMs ?? DEFAULT_FORWARDER_IDLE_MS;
  }

  /** True when `lorawan.forwarders` names the forwarders. */
  get configured(): boolean {
    return this.allowed !== null;
  }

  /**
   * The forwarder of a PUSH_DATA or PULL_DATA (`eui` lower-case, as the parser gives it),
   * admitted now if it may be; otherwise why not. The caller stamps lastPushAt / lastPullAt.
   */
  admit(eui: string, now: number): Forwarder | ForwarderRefusal {
    const known = this.byEui.get(eui);
    if (known) {
      if (!this.allowed) {
        // the Map's order is the order last heard: the first untrusted one is the least recent
        this.byEui.delete(eui);
        this.byEui.set(eui, known);
      }
      return known;
    }
    if (this.allowed) {
      if (!this.allowed.has(eui)) return 'unknown_forwarder';
    } else {
      this.expire(now);
      let pending = 0;
      for (const f of this.byEui.values()) if (!f.trusted) pending++;
      if (pending >= this.maxPending) {
        for (const [e, f] of this.byEui) {
          if (f.trusted) continue;
          this.byEui.delete(e);
          break;
        }
      }
    }
    const f: Forwarder = { gatewayEui: eui, address: null, port: null, family: 'IPv4', version: 2, lastPullAt: null, lastPushAt: null };
    const name = this.allowed?.get(eui);
    if (name) f.name = name;
    this.byEui.set(eui, f);
    return f;
  }

  /**
   * The forwarder relayed a frame that passed a configured device's MIC: trusted from now on
   * (without a list; at most `max`, the rest stay pending). A listed one is trusted already.
   */
  vouch(eui: string): void {
    if (this.allowed) return;
    const f = this.byEui.get(eui);
    if (!f || f.trusted) return;
    let trusted = 0;
    for (const x of this.byEui.values()) if (x.trusted) trusted++;
    if (trusted < this.max) f.trusted = true;
  }

  /** Whether what the forwarder reports about itself (`stat`) is stored. */
  trusted(eui: string): boolean {
    return this.allowed ? this.allowed.has(eui) : this.byEui.get(eui)?.trusted === true;
  }

  /** An admitted forwarder (for TX_ACK and downlinks); never admits one. */
  get(eui: string): Forwarder | undefined {
    return this.byEui.get(eui);
  }

  /** The admitted forwarders, after freeing the slots of silent ones. */
  list(now: number): Forwarder[] {
    this.expire(now);
    return [...this.byEui.values()];
  }

  get size(): number {
    return this.byEui.size;
  }

  /** Without a list, forgets forwarders silent for idleMs, trusted or not; listed ones stay. */
  private expire(now: number): void {
    if (this.allowed) return;
    for (const [eui, f] of this.byEui) {
      const seen = Math.max(f.lastPullAt ?? -Infinity, f.lastPushAt ?? -Infinity);
      if (now - seen > this.idleMs) this.byEui.delete(eui);
    }
  }
}
