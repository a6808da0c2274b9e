/**
 * TS005 remote multicast setup v1.0.0 (FPort 200), device side: up to four multicast groups whose
 * McKey comes encrypted under the node's McKEKey (derived from its GenAppKey), class C sessions
 * opened at a GPS time for 2^TimeOut s on the node's own clock, and the multicast frames of a
 * group checked and read (McAddr, session window and radio, FCnt within min..max, MIC with
 * McNwkSKey, payload decrypted with McAppSKey).
 */
import { decryptMcKey, mcSessionKeys } from '../../drivers/lorawan/app/keys.js';
import { decodeMulticastDown, encodeMulticastUp } from '../../drivers/lorawan/app/multicast.js';
import { FPORT_MULTICAST, PACKAGE_ID, type MulticastDown, type MulticastUp } from '../../drivers/lorawan/app/types.js';
import type { LoraPacket } from '../../drivers/lorawan/loraPacket.js';
import { counterAtLeast, fCnt16, micOk, plainPayload } from './frames.js';
import type { PackageHost } from './host.js';

/** TS005 §2: the package version this node implements. */
const MULTICAST_VERSION = 1;
/** TS005 §4.1: McGroupIDHeader is 2 bits */
const MAX_GROUPS = 4;
/** RP002 §2.4.3: the LoRa data rates (DR0..6) this node can listen on */
const MAX_DR = 6;
const BAND_HZ = { min: 863_000_000, max: 870_000_000 };

interface McSession {
  /** node clock, GPS ms */
  startMs: number;
  endMs: number;
  freqHz: number;
  dr: number;
}

interface McGroup {
  mcAddr: string;
  mcAppSKey: Buffer;
  mcNwkSKey: Buffer;
  maxFCnt: number;
  /** the lowest counter still acceptable (minMcFCnt, then one past the last frame) */
  nextFCnt: number;
  session: McSession | null;
}

/** Why a multicast frame of one of the node's groups was not taken. */
export type MulticastMiss = 'no_session' | 'radio' | 'fcnt' | 'mic';

export interface MulticastRecords {
  multicastFrames: number;
  multicastMissed: Partial<Record<MulticastMiss, number>>;
}

/** The radio a frame came on: frequency (Hz) and EU868 data rate. */
export interface HeardOn {
  freqHz: number;
  dr: number;
}

export class MulticastPackage {
  private readonly host: PackageHost;
  private readonly genAppKey: Buffer | null;
  private readonly records: MulticastRecords;
  private readonly groups: (McGroup | null)[] = Array.from({ length: MAX_GROUPS }, () => null);

  constructor(host: PackageHost, genAppKey: Buffer | null, records: MulticastRecords) {
    this.host = host;
    this.genAppKey = genAppKey;
    this.records = records;
  }

  /** McAddr of each group set up (index: McGroupID). */
  addresses(): (string | null)[] {
    return this.groups.map((g) => g?.mcAddr ?? null);
  }

  /** Whether a class C multicast session is open now on the node's clock. */
  listening(): boolean {
    const now = this.host.clock.gpsMs();
    return this.groups.some((g) => g?.session && g.session.startMs <= now && now < g.session.endMs);
  }

  /** A reboot ends every class C session (the groups and their counters are kept, as in non-volatile memory). */
  endSessions(): void {
    for (const g of this.groups) if (g) g.session = null;
  }

  /** Returns whether the payload decoded in full. */
  handle(payload: Buffer): boolean {
    const { commands, error } = decodeMulticastDown(payload);
    const answers = commands.map((c) => this.command(c));
    if (answers.length > 0) this.host.send(FPORT_MULTICAST, encodeMulticastUp(answers));
    return error === null;
  }

  private command(c: MulticastDown): MulticastUp {
    switch (c.cid) {
      case 'PackageVersionReq':
        return { cid: 'PackageVersionAns', packageIdentifier: PACKAGE_ID.multicast, packageVersion: MULTICAST_VERSION };
      case 'McGroupStatusReq': {
        const groups = this.groups.flatMap((g, mcGroupId) => (g && (c.reqGroupMask >> mcGroupId) & 1 ? [{ mcGroupId, mcAddr: g.mcAddr }] : []));
        const ansGroupMask = groups.reduce((m, g) => m | (1 << g.mcGroupId), 0);
        return { cid: 'McGroupStatusAns', nbTotalGroups: this.groups.filter(Boolean).length, ansGroupMask, groups };
      }
      case 'McGroupSetupReq':
        return { cid: 'McGroupSetupAns', mcGroupId: c.mcGroupId, idError: !this.setup(c) };
      case 'McGroupDeleteReq': {
        const defined = this.groups[c.mcGroupId] != null;
        if (defined) this.groups[c.mcGroupId] = null;
        return { cid: 'McGroupDeleteAns', mcGroupId: c.mcGroupId, mcGroupUndefined: !defined };
      }
      case 'McClassCSessionReq':
        return this.classCSession(c);
    }
  }

  /** TS005 §4.4: McKey = aes128_encrypt(McKEKey, McKey_encrypted); the group's session keys from McKey and McAddr. */
  private setup(c: Extract<MulticastDown, { cid: 'McGroupSetupReq' }>): boolean {
    if (c.mcGroupId >= MAX_GROUPS || !this.genAppKey || c.minMcFCnt > c.maxMcFCnt) return false;
    const mcKey = decryptMcKey(this.genAppKey, c.mcKeyEncrypted);
    const { mcAppSKey, mcNwkSKey } = mcSessionKeys(mcKey, c.mcAddr);
    this.groups[c.mcGroupId] = { mcAddr: c.mcAddr.toLowerCase(), mcAppSKey, mcNwkSKey, maxFCnt: c.maxMcFCnt, nextFCnt: c.minMcFCnt, session: null };
    return true;
  }

  /**
   * TS005 §4.6: the window opens at SessionTime (GPS s by the node's clock) for 2^TimeOut s.
   * A start already past while the window is still open is taken at once (TimeToStart 0); a
   * window that has already closed is refused as LoRaMac-node does it (McGroupUndefined).
   */
  private classCSession(c: Extract<MulticastDown, { cid: 'McClassCSessionReq' }>): MulticastUp {
    const group = this.groups[c.mcGroupId] ?? null;
    const drError = c.dr > MAX_DR;
    const freqError = c.frequency < BAND_HZ.min || c.frequency > BAND_HZ.max;
    const startMs = c.sessionTime * 1000;
    const endMs = startMs + 2 ** c.timeOut * 1000;
    const closed = endMs <= this.host.clock.gpsMs();
    const ok = group !== null && !drError && !freqError && !closed;
    if (ok) group.session = { startMs, endMs, freqHz: c.frequency, dr: c.dr };
    const timeToStart = ok ? Math.max(0, Math.ceil(this.host.clock.msUntil(c.sessionTime) / 1000)) : null;
    return { cid: 'McClassCSessionAns', mcGroupId: c.mcGroupId, drError, freqError, mcGroupUndefined: group === null || closed, timeToStart };
  }

  /**
   * A data-down frame: undefined when its DevAddr is none of the node's groups; null when it is
   * one's but the node does not take it (counted by reason); else the group and the plain payload.
   */
  receive(p: LoraPacket, on: HeardOn | null): { mcGroupId: number; fPort: number | null; payload: Buffer } | null | undefined {
    const addr = p.DevAddr?.toString('hex');
    const mcGroupId = this.groups.findIndex((g) => g?.mcAddr === addr);
    const group = this.groups[mcGroupId];
    if (!group) return undefined;
    const miss = (why: MulticastMiss): null => {
      this.records.multicastMissed[why] = (this.records.multicastMissed[why] ?? 0) + 1;
      return null;
    };
    const now = this.host.clock.gpsMs();
    const s = group.session;
    if (!s || now < s.startMs || now >= s.endMs) return miss('no_session');
    if (on && (on.freqHz !== s.freqHz || on.dr !== s.dr)) return miss('radio');
    const fCnt = counterAtLeast(group.nextFCnt, fCnt16(p));
    if (fCnt > group.maxFCnt) return miss('fcnt');
    if (!micOk(p, group.mcNwkSKey, fCnt)) return miss('mic');
    group.nextFCnt = fCnt + 1;
    this.records.multicastFrames++;
    return { mcGroupId, fPort: p.getFPort(), payload: plainPayload(p, group.mcAppSKey, group.mcNwkSKey, fCnt) };
  }
}
