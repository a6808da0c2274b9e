/**
 * TS005 Remote Multicast Setup v1.0.0 (LoRa Alliance, 2018), FPort 200, unicast only: the server
 * creates a multicast group in the node (its McAddr, its McKey encrypted under the node's McKEKey:
 * keys.ts), asks which groups exist, deletes one, and opens a class C session at a GPS time.
 * Layouts per §4.1–§4.5, cross-checked against ChirpStack's lrwn applayer/multicastsetup/v1.rs and
 * LoRaMac-node's LmhpRemoteMcastSetup.c. Class B sessions (§4.6, McClassBSessionReq) are not used by
 * streetbox: their CID decodes as unknown.
 */
import { bit, bitCount, bytes, checkInt, commandTable, devAddrLE, fixedBytes, flags, frequencyField, lowNibble, readDevAddrLE, readFrequency, uintLE, type Layout } from '../commandCodec.js';
import { packageVersionAns, packageVersionReq } from './packageVersion.js';
import type { MulticastDown, MulticastUp } from './types.js';

/** §3: a node holds at most 4 groups, McGroupID 0..3 in the low two bits of McGroupIDHeader. */
const mcGroupId = (command: string, id: number): number => checkInt(command, 'mcGroupId', id, 0, 3);

/** McGroupDeleteReq: McGroupIDHeader (7:2 RFU, 1:0 McGroupID). */
function groupHeaderOnly<C extends string>(name: C, cid: number): Layout<{ cid: C; mcGroupId: number }> {
  return { cid, size: 1, write: (c) => bytes(mcGroupId(name, c.mcGroupId)), read: (p) => ({ cid: name, mcGroupId: p[0]! & 0x03 }) };
}

const DOWN = commandTable<MulticastDown>('TS005', {
  PackageVersionReq: packageVersionReq,
  // §4.2: CmdMask (7:4 RFU, 3:0 ReqGroupMask)
  McGroupStatusReq: lowNibble('McGroupStatusReq', 0x01, 'reqGroupMask'),
  // §4.3 Table 7: McGroupIDHeader, McAddr (4 LE), McKey_encrypted (16), minMcFCount, maxMcFCount (uint32 LE)
  McGroupSetupReq: {
    cid: 0x02,
    size: 29,
    write: (c) =>
      bytes(
        mcGroupId('McGroupSetupReq', c.mcGroupId),
        devAddrLE('McGroupSetupReq', 'mcAddr', c.mcAddr),
        fixedBytes('McGroupSetupReq', 'mcKeyEncrypted', c.mcKeyEncrypted, 16),
        uintLE('McGroupSetupReq', 'minMcFCnt', c.minMcFCnt, 4),
        uintLE('McGroupSetupReq', 'maxMcFCnt', c.maxMcFCnt, 4),
      ),
    read: (p) => ({
      cid: 'McGroupSetupReq',
      mcGroupId: p[0]! & 0x03,
      mcAddr: readDevAddrLE(p, 1),
      mcKeyEncrypted: Buffer.from(p.subarray(5, 21)),
      minMcFCnt: p.readUInt32LE(21),
      maxMcFCnt: p.readUInt32LE(25),
    }),
  },
  // §4.4
  McGroupDeleteReq: groupHeaderOnly('McGroupDeleteReq', 0x03),
  // §4.5: McGroupIDHeader, SessionTime (uint32 LE, GPS s), SessionTimeOut (7:4 RFU, 3:0 TimeOut),
  // DLFrequ (24 bits × 100 Hz), DR
  McClassCSessionReq: {
    cid: 0x04,
    size: 10,
    write: (c) =>
      bytes(
        mcGroupId('McClassCSessionReq', c.mcGroupId),
        uintLE('McClassCSessionReq', 'sessionTime', c.sessionTime, 4),
        checkInt('McClassCSessionReq', 'timeOut', c.timeOut, 0, 15),
        frequencyField('McClassCSessionReq', c.frequency),
        checkInt('McClassCSessionReq', 'dr', c.dr, 0, 15),
      ),
    read: (p) => ({
      cid: 'McClassCSessionReq',
      mcGroupId: p[0]! & 0x03,
      sessionTime: p.readUInt32LE(1),
      timeOut: p[5]! & 0x0f,
      frequency: readFrequency(p, 6),
      dr: p[9]!,
    }),
  },
});

/** §4.2: one record per group in AnsGroupMask: McGroupID (1 byte), McAddr (4 LE). */
const GROUP_RECORD = 5;

/** §4.5 Table: Status bits 4:2 (McGroupUndefined, FreqError, DRError); TimeToStart follows only when none is set. */
const CLASS_C_ERRORS = 0x1c;

const UP = commandTable<MulticastUp>('TS005', {
  PackageVersionAns: packageVersionAns,
  // §4.2: Status (7 RFU, 6:4 NbTotalGroups, 3:0 AnsGroupMask), then a record per group in the mask
  McGroupStatusAns: {
    cid: 0x01,
    size: (rest) => (rest.length === 0 ? null : 1 + GROUP_RECORD * bitCount(rest[0]! & 0x0f)),
    write: (c) => {
      const mask = checkInt('McGroupStatusAns', 'ansGroupMask', c.ansGroupMask, 0, 15);
      const ids = c.groups.map((g) => mcGroupId('McGroupStatusAns', g.mcGroupId));
      if (ids.length !== bitCount(mask) || ids.some((id) => !bit(mask, id))) {
        throw new RangeError(`McGroupStatusAns.groups: expected one record per group of ansGroupMask ${mask}, got ids [${ids.join(', ')}]`);
      }
      return bytes(
        (checkInt('McGroupStatusAns', 'nbTotalGroups', c.nbTotalGroups, 0, 7) << 4) | mask,
        ...c.groups.flatMap((g) => [g.mcGroupId, devAddrLE('McGroupStatusAns', 'mcAddr', g.mcAddr)]),
      );
    },
    read: (p) => ({
      cid: 'McGroupStatusAns',
      nbTotalGroups: (p[0]! >> 4) & 0x07,
      ansGroupMask: p[0]! & 0x0f,
      groups: Array.from({ length: (p.length - 1) / GROUP_RECORD }, (_, i) => {
        const at = 1 + i * GROUP_RECORD;
        return { mcGroupId: p[at]! & 0x03, mcAddr: readDevAddrLE(p, at + 1) };
      }),
    }),
  },
  // §4.3: McGroupIDHeader (7:3 RFU, 2 IDerror, 1:0 McGroupID)
  McGroupSetupAns: {
    cid: 0x02,
    size: 1,
    write: (c) => bytes(mcGroupId('McGroupSetupAns', c.mcGroupId) | (c.idError ? 0x04 : 0)),
    read: (p) => ({ cid: 'McGroupSetupAns', mcGroupId: p[0]! & 0x03, idError: bit(p[0]!, 2) }),
  },
  // §4.4: McGroupIDHeader (7:3 RFU, 2 McGroupUndefined, 1:0 McGroupID)
  McGroupDeleteAns: {
    cid: 0x03,
    size: 1,
    write: (c) => bytes(mcGroupId('McGroupDeleteAns', c.mcGroupId) | (c.mcGroupUndefined ? 0x04 : 0)),
    read: (p) => ({ cid: 'McGroupDeleteAns', mcGroupId: p[0]! & 0x03, mcGroupUndefined: bit(p[0]!, 2) }),
  },
  // §4.5: Status (7:5 RFU, 4 McGroupUndefined, 3 FreqError, 2 DRError, 1:0 McGroupID), TimeToStart (24 bits LE, s)
  McClassCSessionAns: {
    cid: 0x04,
    size: (rest) => (rest.length === 0 ? null : (rest[0]! & CLASS_C_ERRORS) === 0 ? 4 : 1),
    write: (c) => {
      const status = mcGroupId('McClassCSessionAns', c.mcGroupId) | (flags(c.drError, c.freqError, c.mcGroupUndefined) << 2);
      const failed = (status & CLASS_C_ERRORS) !== 0;
      if (failed !== (c.timeToStart === null)) {
        throw new RangeError(`McClassCSessionAns.timeToStart: expected ${failed ? 'null with an error bit set' : 'a number when no error bit is set'}, got ${c.timeToStart}`);
      }
      return c.timeToStart === null ? bytes(status) : bytes(status, uintLE('McClassCSessionAns', 'timeToStart', c.timeToStart, 3));
    },
    read: (p) => ({
      cid: 'McClassCSessionAns',
      mcGroupId: p[0]! & 0x03,
      drError: bit(p[0]!, 2),
      freqError: bit(p[0]!, 3),
      mcGroupUndefined: bit(p[0]!, 4),
      timeToStart: p.length === 4 ? p.readUIntLE(1, 3) : null,
    }),
  },
});

/** Server → node commands as one FPort 200 payload, in the order given. */
export const encodeMulticastDown = DOWN.encode;
/** The simulated node's side: the commands of a FPort 200 downlink. */
export const decodeMulticastDown = DOWN.decode;
/** The simulated node's side. */
export const encodeMulticastUp = UP.encode;
/** The commands of a FPort 200 uplink. */
export const decodeMulticastUp = UP.decode;
