/**
 * TS004 Fragmented Data Block Transport, FPort 201, in both versions the node may implement
 * (negotiated with PackageVersionReq: its PackageVersionAns says 1 or 2):
 *
 *   v1.0.0 (LoRa Alliance, 2018): §3.1 PackageVersion, §3.2 FragSessionSetup, §3.3 FragSessionDelete,
 *     §3.4 DataFragment, §3.5 FragSessionStatus;
 *   v2.0.0 (TS004-2.0.0, 2022): §3.1–§3.6, the same commands plus the session counter and the MIC
 *     of the data block in FragSessionSetupReq (§3.3, §4; keys.ts dataBlockMic), AckReception and
 *     FragDataBlockReceivedReq/Ans (§3.5), and a FragSessionStatusAns whose Status octet moved to
 *     the front and gained MICError and "session does not exist" (§3.2 Tables 6–7).
 *
 * Layouts cross-checked against ChirpStack's lrwn applayer/fragmentation/{v1,v2}.rs, LoRaMac-node's
 * LmhpFragmentation.c (v1) and LoRa Basics Modem's lorawan_fragmentation_package_v2.0.0.c. The
 * parity fragments and the decoder are fec.ts.
 */
import { bit, bytes, checkInt, commandTable, fixedBytes, flags, uintLE, type CommandTable, type Layout, type Layouts } from '../commandCodec.js';
import { packageVersionAns, packageVersionReq } from './packageVersion.js';
import type { AppDecoded, FragDown, FragUp, FragVersion } from './types.js';

/** Index&N and Received&index: FragIndex in bits 15:14, a 14-bit count below it. */
export const MAX_FRAG_N = 0x3fff;

/** Bytes a DataFragment adds to its fragment: CID and Index&N (v1 §3.4, v2 §3.6: payload 0..MaxAppPl−3). */
export const DATA_FRAGMENT_OVERHEAD = 3;

type Setup = Extract<FragDown, { cid: 'FragSessionSetupReq' }>;
type StatusAns = Extract<FragUp, { cid: 'FragSessionStatusAns' }>;
type V1Down = Exclude<FragDown, { cid: 'FragDataBlockReceivedAns' }>;
type V1Up = Exclude<FragUp, { cid: 'FragDataBlockReceivedReq' }>;

const fragIndex = (command: string, index: number): number => checkInt(command, 'fragIndex', index, 0, 3);

/** Fields of v2.0.0 given to the v1.0.0 encoder: a mix-up of versions the caller must hear about. */
function refuseV2Fields(command: string, fields: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(fields)) {
    if (value !== undefined && value !== false) throw new RangeError(`${command}.${field}: TS004 v2.0.0 only, this frame is v1.0.0`);
  }
}

/** Index&N (v1 §3.4 Table 13) and Received&index (§3.5): uint16 LE, FragIndex in bits 15:14. */
function indexAnd(command: string, field: string, index: number, count: number): Buffer {
  return uintLE(command, field, (fragIndex(command, index) << 14) | checkInt(command, field, count, 0, MAX_FRAG_N), 2);
}

/** A command whose only payload is FragIndex in bits 1:0 (FragSessionDeleteReq, FragDataBlockReceivedAns). */
function indexOnly<C extends string>(name: C, cid: number): Layout<{ cid: C; fragIndex: number }> {
  return { cid, size: 1, write: (c) => bytes(fragIndex(name, c.fragIndex)), read: (p) => ({ cid: name, fragIndex: p[0]! & 0x03 }) };
}

// ---------------------------------------------------------------------------------------
// Server → node

/**
 * FragSessionSetupReq, v1 §3.2 / v2 §3.3 Table 9: FragSession (7:6 RFU, 5:4 FragIndex,
 * 3:0 McGroupBitMask), NbFrag (uint16 LE), FragSize, Control (7 RFU, 6 AckReception (v2),
 * 5:3 FragAlgo, 2:0 BlockAckDelay), Padding, Descriptor (uint32 LE); v2 then SessionCnt (uint16 LE)
 * and MIC (4 octets).
 */
function writeSetupHeader(c: Setup, ackReception: boolean): Buffer {
  const name = 'FragSessionSetupReq';
  return bytes(
    (fragIndex(name, c.fragIndex) << 4) | checkInt(name, 'mcGroupBitMask', c.mcGroupBitMask, 0, 15),
    uintLE(name, 'nbFrag', c.nbFrag, 2),
    checkInt(name, 'fragSize', c.fragSize, 0, 255),
    (ackReception ? 0x40 : 0) | (checkInt(name, 'fragAlgo', c.fragAlgo, 0, 7) << 3) | checkInt(name, 'blockAckDelay', c.blockAckDelay, 0, 7),
    checkInt(name, 'padding', c.padding, 0, 255),
    uintLE(name, 'descriptor', c.descriptor, 4),
  );
}

function readSetupHeader(p: Buffer): Setup {
  return {
    cid: 'FragSessionSetupReq',
    fragIndex: (p[0]! >> 4) & 0x03,
    mcGroupBitMask: p[0]! & 0x0f,
    nbFrag: p.readUInt16LE(1),
    fragSize: p[3]!,
    fragAlgo: (p[4]! >> 3) & 0x07,
    blockAckDelay: p[4]! & 0x07,
    padding: p[5]!,
    descriptor: p.readUInt32LE(6),
  };
}

const SETUP_V1: Layout<Setup> = {
  cid: 0x02,
  size: 10,
  write: (c) => {
    refuseV2Fields('FragSessionSetupReq', { sessionCnt: c.sessionCnt, mic: c.mic, ackReception: c.ackReception });
    return writeSetupHeader(c, false);
  },
  read: readSetupHeader,
};

const SETUP_V2: Layout<Setup> = {
  cid: 0x02,
  size: 16,
  write: (c) => {
    if (c.sessionCnt === undefined || c.mic === undefined) throw new RangeError('FragSessionSetupReq: v2.0.0 needs sessionCnt and mic (§3.3)');
    return bytes(writeSetupHeader(c, c.ackReception === true), uintLE('FragSessionSetupReq', 'sessionCnt', c.sessionCnt, 2), fixedBytes('FragSessionSetupReq', 'mic', c.mic, 4));
  },
  read: (p) => ({ ...readSetupHeader(p), ackReception: bit(p[4]!, 6), sessionCnt: p.readUInt16LE(10), mic: Buffer.from(p.subarray(12, 16)) }),
};

/** The commands both versions share, server → node. */
const COMMON_DOWN = {
  PackageVersionReq: packageVersionReq,
  // v1 §3.5 Table 15 / v2 §3.2 Table 5: FragStatusReqParam (7:3 RFU, 2:1 FragIndex, 0 Participants)
  FragSessionStatusReq: {
    cid: 0x01,
    size: 1,
    write: (c) => bytes((fragIndex('FragSessionStatusReq', c.fragIndex) << 1) | (c.participants ? 1 : 0)),
    read: (p) => ({ cid: 'FragSessionStatusReq', fragIndex: (p[0]! >> 1) & 0x03, participants: bit(p[0]!, 0) }),
  },
  // v1 §3.3 / v2 §3.4: Param (7:2 RFU, 1:0 FragIndex)
  FragSessionDeleteReq: indexOnly('FragSessionDeleteReq', 0x03),
  // v1 §3.4 / v2 §3.6: Index&N, then the fragment (all that is left of the frame: it is the only command)
  DataFragment: {
    cid: 0x08,
    size: (rest) => (rest.length < 2 ? null : rest.length),
    write: (c) => bytes(indexAnd('DataFragment', 'n', c.fragIndex, c.n), Buffer.from(c.payload)),
    read: (p) => ({ cid: 'DataFragment', fragIndex: p[1]! >> 6, n: p.readUInt16LE(0) & MAX_FRAG_N, payload: Buffer.from(p.subarray(2)) }),
  },
} satisfies Omit<Layouts<V1Down>, 'FragSessionSetupReq'>;

const DOWN_V1: Layouts<V1Down> = { ...COMMON_DOWN, FragSessionSetupReq: SETUP_V1 };

const DOWN_V2: Layouts<FragDown> = {
  ...COMMON_DOWN,
  FragSessionSetupReq: SETUP_V2,
  // v2 §3.5 Tables 21–22: Param (7:2 RFU, 1:0 FragIndex)
  FragDataBlockReceivedAns: indexOnly('FragDataBlockReceivedAns', 0x04),
};

// ---------------------------------------------------------------------------------------
// Node → server

function readReceivedAndIndex(p: Buffer, offset: number): { fragIndex: number; nbFragReceived: number } {
  return { fragIndex: p[offset + 1]! >> 6, nbFragReceived: p.readUInt16LE(offset) & MAX_FRAG_N };
}

/** v1 §3.5: Received&index (uint16 LE), MissingFrag, Status (7:1 RFU, 0 NotEnoughMatrixMemory). */
const STATUS_ANS_V1: Layout<StatusAns> = {
  cid: 0x01,
  size: 4,
  write: (c) => {
    refuseV2Fields('FragSessionStatusAns', { micError: c.micError, sessionDoesNotExist: c.sessionDoesNotExist });
    return bytes(indexAnd('FragSessionStatusAns', 'nbFragReceived', c.fragIndex, c.nbFragReceived), checkInt('FragSessionStatusAns', 'missingFrag', c.missingFrag, 0, 255), flags(c.notEnoughMemory));
  },
  read: (p) => ({ cid: 'FragSessionStatusAns', ...readReceivedAndIndex(p, 0), missingFrag: p[2]!, notEnoughMemory: bit(p[3]!, 0) }),
};

/** v2 §3.2 Tables 6–8: Status (7:3 RFU, 2 SessionDoesNotExist, 1 MICError, 0 MemoryError), then Received&index and MissingFrag unless bit 2 is set. */
const NO_SESSION = 0x04;

const STATUS_ANS_V2: Layout<StatusAns> = {
  cid: 0x01,
  size: (rest) => (rest.length === 0 ? null : (rest[0]! & NO_SESSION) !== 0 ? 1 : 4),
  write: (c) => {
    const status = flags(c.notEnoughMemory, c.micError === true, c.sessionDoesNotExist === true);
    if (c.sessionDoesNotExist === true) return bytes(status);
    return bytes(status, indexAnd('FragSessionStatusAns', 'nbFragReceived', c.fragIndex, c.nbFragReceived), checkInt('FragSessionStatusAns', 'missingFrag', c.missingFrag, 0, 255));
  },
  read: (p) => ({
    cid: 'FragSessionStatusAns',
    ...(p.length === 4 ? readReceivedAndIndex(p, 1) : { fragIndex: 0, nbFragReceived: 0 }),
    missingFrag: p.length === 4 ? p[3]! : 0,
    notEnoughMemory: bit(p[0]!, 0),
    micError: bit(p[0]!, 1),
    sessionDoesNotExist: bit(p[0]!, 2),
  }),
};

/** v1 §3.2 / v2 §3.3 Table 14: StatusBitMask (7:6 FragIndex, 5 RFU, 4 SessionCnt replay (v2), 3 Wrong Descriptor, 2 FragIndex unsupported, 1 Not enough Memory, 0 FragAlgo unsupported). */
function setupAns(version: FragVersion): Layout<Extract<FragUp, { cid: 'FragSessionSetupAns' }>> {
  return {
    cid: 0x02,
    size: 1,
    write: (c) => {
      if (version === 1) refuseV2Fields('FragSessionSetupAns', { sessionCntReplay: c.sessionCntReplay });
      return bytes((fragIndex('FragSessionSetupAns', c.fragIndex) << 6) | flags(c.encodingUnsupported, c.notEnoughMemory, c.fragIndexUnsupported, c.wrongDescriptor, c.sessionCntReplay === true));
    },
    read: (p) => ({
      cid: 'FragSessionSetupAns',
      fragIndex: p[0]! >> 6,
      encodingUnsupported: bit(p[0]!, 0),
      notEnoughMemory: bit(p[0]!, 1),
      fragIndexUnsupported: bit(p[0]!, 2),
      wrongDescriptor: bit(p[0]!, 3),
      ...(version === 2 ? { sessionCntReplay: bit(p[0]!, 4) } : {}),
    }),
  };
}

/** v1 §3.3 / v2 §3.4 Table 18: Status (7:3 RFU, 2 Session does not exist, 1:0 FragIndex). */
const DELETE_ANS: Layout<Extract<FragUp, { cid: 'FragSessionDeleteAns' }>> = {
  cid: 0x03,
  size: 1,
  write: (c) => bytes(fragIndex('FragSessionDeleteAns', c.fragIndex) | (c.sessionDoesNotExist ? NO_SESSION : 0)),
  read: (p) => ({ cid: 'FragSessionDeleteAns', fragIndex: p[0]! & 0x03, sessionDoesNotExist: bit(p[0]!, 2) }),
};

const UP_V1: Layouts<V1Up> = {
  PackageVersionAns: packageVersionAns,
  FragSessionStatusAns: STATUS_ANS_V1,
  FragSessionSetupAns: setupAns(1),
  FragSessionDeleteAns: DELETE_ANS,
};

const UP_V2: Layouts<FragUp> = {
  PackageVersionAns: packageVersionAns,
  FragSessionStatusAns: STATUS_ANS_V2,
  FragSessionSetupAns: setupAns(2),
  FragSessionDeleteAns: DELETE_ANS,
  // v2 §3.5 Tables 19–20: Status (7:3 RFU, 2 MICError, 1:0 FragIndex)
  FragDataBlockReceivedReq: {
    cid: 0x04,
    size: 1,
    write: (c) => bytes(fragIndex('FragDataBlockReceivedReq', c.fragIndex) | (c.micOk ? 0 : 0x04)),
    read: (p) => ({ cid: 'FragDataBlockReceivedReq', fragIndex: p[0]! & 0x03, micOk: !bit(p[0]!, 2) }),
  },
};

// ---------------------------------------------------------------------------------------
// Encoding and decoding, by version

interface Codec {
  down: CommandTable<FragDown>;
  up: CommandTable<FragUp>;
}

const CODECS: Record<FragVersion, Codec> = {
  // The v1 tables have no v2-only command: encoding one throws a RangeError naming it.
  1: { down: commandTable('TS004 v1.0.0', DOWN_V1), up: commandTable('TS004 v1.0.0', UP_V1) },
  2: { down: commandTable('TS004 v2.0.0', DOWN_V2), up: commandTable('TS004 v2.0.0', UP_V2) },
};

function codecOf(version: FragVersion): Codec | null {
  return Object.hasOwn(CODECS, version) ? CODECS[version] : null;
}

function encoderOf(version: FragVersion): Codec {
  const codec = codecOf(version);
  if (!codec) throw new RangeError(`TS004: no version ${String(version)} (1 or 2)`);
  return codec;
}

const noVersion = (version: FragVersion): AppDecoded<never> => ({ commands: [], error: `TS004: no version ${String(version)} (1 or 2)` });

/**
 * Server → node commands as one FPort 201 payload of the node's TS004 version, in the order
 * given. v1 §3 / v2 §3: a DataFragment is the only command of its frame.
 */
export function encodeFragDown(cmds: readonly FragDown[], version: FragVersion = 1): Buffer {
  if (cmds.length > 1 && cmds.some((c) => c.cid === 'DataFragment')) throw new RangeError('DataFragment: must be the only command of its frame (TS004 §3)');
  return encoderOf(version).down.encode(cmds);
}

/** The simulated node's side: the commands of a FPort 201 downlink in its TS004 version. */
export function decodeFragDown(buf: Buffer, version: FragVersion = 1): AppDecoded<FragDown> {
  return codecOf(version)?.down.decode(buf) ?? noVersion(version);
}

/** The simulated node's side. */
export function encodeFragUp(cmds: readonly FragUp[], version: FragVersion = 1): Buffer {
  return encoderOf(version).up.encode(cmds);
}

/** The commands of a FPort 201 uplink from a node of that TS004 version. */
export function decodeFragUp(buf: Buffer, version: FragVersion = 1): AppDecoded<FragUp> {
  return codecOf(version)?.up.decode(buf) ?? noVersion(version);
}
