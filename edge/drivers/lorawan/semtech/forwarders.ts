/**
 * The packet forwarders the server serves, by gateway EUI. The UDP protocol carries no
 * credentials (Semtech PROTOCOL.TXT §3–§5: a gateway is named only by the EUI in its
 * datagrams), so anyone who reaches the port can claim any EUI. Whatever is kept per forwarder
 * (its downlink address, its `stat` as readings of device `gw-<EUI>`, its uplinks) is therefore
 * kept only for an admitted one:
 * - with `lorawan.forwarders`, exactly those EUIs, whose entries never expire;
 * - without (the demo), at most `max` at a time; a new EUI takes a free slot, and a slot is
 *   freed after `idleMs` without PUSH_DATA or PULL_DATA. A forwarder that talks is never evicted
 *   for a newcomer, so a flood of forged EUIs cannot push the real forwarder out.
 */
import type { ForwarderInfo } from './backend.js';

/** Without a list: the forwarders served at once (a cabinet has one or a few concentrators). */
export const DEFAULT_MAX_FORWARDERS = 8;
/** Without a list: a slot is freed after this long without PUSH_DATA or PULL_DATA (keepalives come every 10 s). */
export const DEFAULT_FORWARDER_IDLE_MS = 600_000;

export interface ForwarderPolicy {
  /** `lorawan.forwarders`: when non-empty, the only EUIs admitted */
  allowed?: readonly { eui: string; name?: string | undefined }[];
  /** without a list: forwarders at once (default 8) */
  max?: number;
  /** without a list: ms of silence after which a slot is freed (default 10 min) */
  idleMs?: number;
}

/** Why a datagram's forwarder is not served: the metric key it is counted under. */
export type ForwarderRefusal = 'unknown_forwarder' | 'forwarders_full';

export interface Forwarder extends ForwarderInfo {
  family: string;
}

export class ForwarderTable {
  private readonly byEui = new Map<string, Forwarder>();
  /** lower-case EUI → name (null: unnamed); null when no list is configured */
  private readonly allowed: ReadonlyMap<string, string | null> | null;
  readonly max: number;
  readonly idleMs: number;

  constructor(policy: ForwarderPolicy = {}) {
    const list = policy.allowed ?? [];
    this.allowed = list.length > 0 ? new Map(list.map((f) => [f.eui.toLowerCase(), f.name ?? null])) : null;
    this.max = policy.max ?? DEFAULT_MAX_FORWARDERS;
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
    if (known) return known;
    if (this.allowed) {
      if (!this.allowed.has(eui)) return 'unknown_forwarder';
    } else if (this.byEui.size >= this.max) {
      this.expire(now);
      if (this.byEui.size >= this.max) return 'forwarders_full';
    }
    const f: Forwarder = { gatewayEui: eui, address: null, port: null, family: 'IPv4', version: 2, lastPullAt: null, lastPushAt: null };
    const name = this.allowed?.get(eui);
    if (name) f.name = name;
    this.byEui.set(eui, f);
    return f;
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

  /** Without a list, frees the slots of forwarders silent for idleMs; listed ones stay. */
  private expire(now: number): void {
    if (this.allowed) return;
    for (const [eui, f] of this.byEui) {
      const seen = Math.max(f.lastPullAt ?? -Infinity, f.lastPushAt ?? -Infinity);
      if (now - seen > this.idleMs) this.byEui.delete(eui);
    }
  }
}
