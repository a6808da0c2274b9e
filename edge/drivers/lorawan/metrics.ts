/**
 * Counters of the LoRaWAN driver. Every rejected datagram, frame or downlink is counted under
 * its reason (`rejected.mic`, `rejected.replay`, …) and never stored; the API renders these
 * on /metrics.
 */
export interface LorawanMetricsSnapshot {
  /** datagrams received on the UDP port, of any kind */
  datagrams: number;
  /** rxpk frames in PUSH_DATA */
  frames: number;
  /** uplink frames accepted (after de-duplication) */
  uplinks: number;
  /** extra copies of an accepted frame, merged by (DevAddr, FCnt) */
  duplicates: number;
  joins: number;
  downlinks: number;
  txAckErrors: number;
  /** rejections by reason: mic, replay, fcnt_gap, malformed_json, too_short, too_long, unknown_forwarder, forwarders_full, … */
  rejected: Record<string, number>;
}

export class LorawanMetrics {
  datagrams = 0;
  frames = 0;
  uplinks = 0;
  duplicates = 0;
  joins = 0;
  downlinks = 0;
  txAckErrors = 0;
  private readonly rejectedBy = new Map<string, number>();

  reject(reason: string): void {
    this.rejectedBy.set(reason, (this.rejectedBy.get(reason) ?? 0) + 1);
  }

  rejected(reason: string): number {
    return this.rejectedBy.get(reason) ?? 0;
  }

  totalRejected(): number {
    let n = 0;
    for (const v of this.rejectedBy.values()) n += v;
    return n;
  }

  snapshot(): LorawanMetricsSnapshot {
    return {
      datagrams: this.datagrams,
      frames: this.frames,
      uplinks: this.uplinks,
      duplicates: this.duplicates,
      joins: this.joins,
      downlinks: this.downlinks,
      txAckErrors: this.txAckErrors,
      rejected: Object.fromEntries([...this.rejectedBy].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    };
  }
}
