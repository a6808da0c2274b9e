/**
 * TS004 fragmented data block transport (FPort 201), device side, in the version the node
 * implements (1: v1.0.0, 2: v2.0.0): up to four sessions, each a FragDecoder (app/fec.ts) sized
 * by the node's memory; DataFragments by unicast or by the multicast groups of the session's
 * McGroupBitMask; FragSessionStatusAns after a random BlockAckDelay; v2: the data block's MIC
 * checked once it is whole, and FragDataBlockReceivedReq sent until the server acknowledges it.
 * Command handling follows LoRaMac-node's LmhpFragmentation.c (v1) and LoRa Basics Modem's
 * lorawan_fragmentation_package_v2.0.0.c (v2), read for behaviour.
 */
import { FragDecoder } from '../../drivers/lorawan/app/fec.js';
import { decodeFragDown, encodeFragUp, MAX_FRAG_N } from '../../drivers/lorawan/app/fragmentation.js';
import { dataBlockIntKey, dataBlockMic } from '../../drivers/lorawan/app/keys.js';
import { FPORT_FRAGMENTATION, PACKAGE_ID, type FragDown, type FragUp, type FragVersion } from '../../drivers/lorawan/app/types.js';
import type { PackageHost } from './host.js';

/** v1 §3.2 / v2 §3.3: FragIndex is 2 bits */
const MAX_SESSIONS = 4;
/** v2: FragDataBlockReceivedReq sent at most this many times without FragDataBlockReceivedAns */
const BLOCK_RECEIVED_TRIES = 3;

type Setup = Extract<FragDown, { cid: 'FragSessionSetupReq' }>;

interface FragSession {
  setup: Setup;
  decoder: FragDecoder;
  /** the reassembled block (padding removed) once whole, and whether its MIC held (v1: no MIC, always true) */
  block: { data: Buffer; micOk: boolean } | null;
  /** v2: the server acknowledged FragDataBlockReceivedReq */
  acknowledged: boolean;
}

export interface FragmentationOptions {
  version: FragVersion;
  /** bytes the node can give a data block and its decoder: NbFrag·FragSize above this is refused */
  memoryBytes: number;
  /** never answers FragSessionStatusReq (a fault) */
  mute: boolean;
  /** TS004 v2 §4: the DataBlockIntKey root */
  genAppKey: Buffer | null;
}

export interface FragmentationRecords {
  fragments: number;
  /** DataFragments for no session of the node, or a multicast group outside the session's mask */
  fragmentsIgnored: number;
  blocks: { fragIndex: number; size: number; micOk: boolean }[];
}

export class FragmentationPackage {
  private readonly host: PackageHost;
  private readonly opts: FragmentationOptions;
  private readonly records: FragmentationRecords;
  private readonly onBlock: (data: Buffer, micOk: boolean) => void;
  private readonly sessions: (FragSession | null)[] = Array.from({ length: MAX_SESSIONS }, () => null);
  /** v2 §3.3: the last SessionCnt accepted per FragIndex (kept across reboots, as in non-volatile memory) */
  private readonly lastSessionCnt: number[] = Array.from({ length: MAX_SESSIONS }, () => -1);

  constructor(host: PackageHost, opts: FragmentationOptions, records: FragmentationRecords, onBlock: (data: Buffer, micOk: boolean) => void) {
    this.host = host;
    this.opts = opts;
    this.records = records;
    this.onBlock = onBlock;
  }

  /** A reboot loses the sessions in progress (their decoders live in RAM). */
  reset(): void {
    this.sessions.fill(null);
  }

  /**
   * `mcGroupId` is set for a frame received on a multicast group. Session setup, deletion and the
   * package version are only taken by unicast (as LoRaMac-node does). Returns whether the payload decoded in full.
   */
  handle(payload: Buffer, mcGroupId: number | null): boolean {
    const { commands, error } = decodeFragDown(payload, this.opts.version);
    const answers: FragUp[] = [];
    for (const c of commands) {
      const a = this.command(c, mcGroupId);
      if (a) answers.push(a);
    }
    if (answers.length > 0) this.host.send(FPORT_FRAGMENTATION, this.encode(answers));
    return error === null;
  }

  private encode(cmds: FragUp[]): Buffer {
    return encodeFragUp(cmds, this.opts.version);
  }

  private command(c: FragDown, mcGroupId: number | null): FragUp | null {
    switch (c.cid) {
      case 'PackageVersionReq':
        return mcGroupId === null ? { cid: 'PackageVersionAns', packageIdentifier: PACKAGE_ID.fragmentation, packageVersion: this.opts.version } : null;
      case 'FragSessionSetupReq':
        return mcGroupId === null ? this.setup(c) : null;
      case 'FragSessionDeleteReq': {
        if (mcGroupId !== null) return null;
        const exists = this.sessions[c.fragIndex] != null;
        this.sessions[c.fragIndex] = null;
        return { cid: 'FragSessionDeleteAns', fragIndex: c.fragIndex, sessionDoesNotExist: !exists };
      }
      case 'FragSessionStatusReq':
        this.status(c.fragIndex, c.participants);
        return null;
      case 'FragDataBlockReceivedAns': {
        const s = this.sessions[c.fragIndex];
        if (s) s.acknowledged = true;
        return null;
      }
      case 'DataFragment':
        this.fragment(c, mcGroupId);
        return null;
    }
  }

  /** v1 §3.2 / v2 §3.3: the status bits, then (all clear) a new session replacing any at that index. */
  private setup(c: Setup): FragUp {
    const v2 = this.opts.version === 2;
    const dataBytes = c.nbFrag * c.fragSize;
    const ans = {
      cid: 'FragSessionSetupAns' as const,
      fragIndex: c.fragIndex,
      encodingUnsupported: c.fragAlgo !== 0,
      // N counts fragments in 14 bits (v1 §3.4): a longer block cannot be sent at all
      notEnoughMemory: dataBytes > this.opts.memoryBytes || c.nbFrag === 0 || c.nbFrag > MAX_FRAG_N || c.fragSize === 0,
      fragIndexUnsupported: c.fragIndex >= MAX_SESSIONS,
      wrongDescriptor: false,
      ...(v2 ? { sessionCntReplay: (c.sessionCnt ?? 0) <= (this.lastSessionCnt[c.fragIndex] ?? -1) } : {}),
    };
    if (ans.encodingUnsupported || ans.notEnoughMemory || ans.fragIndexUnsupported || ans.sessionCntReplay === true) return ans;
    if (v2) this.lastSessionCnt[c.fragIndex] = c.sessionCnt ?? 0;
    // What memory is left after the block holds the parity rows the decoder may keep (FragSize bytes and a bit per data fragment each).
    const rowBytes = c.fragSize + Math.ceil(c.nbFrag / 8);
    const maxParityRows = Math.min(c.nbFrag, Math.floor((this.opts.memoryBytes - dataBytes) / rowBytes));
    this.sessions[c.fragIndex] = {
      setup: c,
      decoder: new FragDecoder(this.opts.version, c.nbFrag, c.fragSize, { maxParityRows }),
      block: null,
      acknowledged: false,
    };
    return ans;
  }

  private fragment(c: Extract<FragDown, { cid: 'DataFragment' }>, mcGroupId: number | null): void {
    const s = this.sessions[c.fragIndex];
    if (!s || (mcGroupId !== null && ((s.setup.mcGroupBitMask >> mcGroupId) & 1) === 0)) {
      this.records.fragmentsIgnored++;
      return;
    }
    this.records.fragments++;
    if (s.block) return; // already whole: later fragments change nothing
    if (s.decoder.add(c.n, c.payload) !== 'complete') return;
    const data = s.decoder.data(s.setup.padding);
    if (!data) return;
    const micOk = this.blockMicOk(s.setup, data);
    s.block = { data, micOk };
    this.records.blocks.push({ fragIndex: c.fragIndex, size: data.length, micOk });
    this.onBlock(data, micOk);
    if (this.opts.version === 2 && s.setup.ackReception) this.blockReceived(c.fragIndex, s, BLOCK_RECEIVED_TRIES);
  }

  /** v2 §4: the MIC of FragSessionSetupReq over the block; v1 has none. */
  private blockMicOk(setup: Setup, data: Buffer): boolean {
    if (this.opts.version !== 2) return true;
    if (!this.opts.genAppKey || !setup.mic) return false;
    const mic = dataBlockMic(dataBlockIntKey(this.opts.genAppKey), { sessionCnt: setup.sessionCnt ?? 0, fragIndex: setup.fragIndex, descriptor: setup.descriptor, data });
    return mic.equals(setup.mic);
  }

  /** v2 §3.5: FragDataBlockReceivedReq, again after each BlockAckDelay until FragDataBlockReceivedAns comes. */
  private blockReceived(fragIndex: number, s: FragSession, tries: number): void {
    if (tries === 0 || s.acknowledged || this.sessions[fragIndex] !== s) return;
    const delay = this.blockAckDelayMs(s.setup);
    this.host.send(FPORT_FRAGMENTATION, () => (s.acknowledged ? null : this.encode([{ cid: 'FragDataBlockReceivedReq', fragIndex, micOk: s.block?.micOk ?? false }])), delay);
    this.host.after(delay + this.blockAckDelayMs(s.setup), () => this.blockReceived(fragIndex, s, tries - 1));
  }

  /**
   * v1 §3.5 / v2 §3.2: every node answers when Participants is 1, only those still missing
   * fragments when 0; the answer waits a random part of 2^(BlockAckDelay+4) s so a group's answers
   * spread (LoRaMac-node). v1 has no "no session" status: a v1 node without the session stays silent.
   */
  private status(fragIndex: number, participants: boolean): void {
    if (this.opts.mute) return;
    const s = this.sessions[fragIndex] ?? null;
    if (!s && this.opts.version === 1) return;
    const missing = s ? (s.block ? 0 : s.decoder.missing) : 0;
    if (!participants && s && missing === 0) return;
    const ans: FragUp = s
      ? {
          cid: 'FragSessionStatusAns',
          fragIndex,
          nbFragReceived: Math.min(s.decoder.received, 0x3fff),
          missingFrag: Math.min(missing, 255),
          notEnoughMemory: s.decoder.memoryError,
          ...(this.opts.version === 2 ? { micError: s.block !== null && !s.block.micOk, sessionDoesNotExist: false } : {}),
        }
      : { cid: 'FragSessionStatusAns', fragIndex, nbFragReceived: 0, missingFrag: 0, notEnoughMemory: false, micError: false, sessionDoesNotExist: true };
    this.host.send(FPORT_FRAGMENTATION, this.encode([ans]), s ? this.blockAckDelayMs(s.setup) : undefined);
  }

  private blockAckDelayMs(setup: Setup): number {
    return Math.floor(this.host.random() * 2 ** (setup.blockAckDelay + 4) * 1000);
  }
}
