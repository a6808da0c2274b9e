/**
 * What the four application-layer packages have in common beyond the framing (`../commandCodec.ts`):
 * CID 0x00, PackageVersionReq / PackageVersionAns, by which the server learns which package and
 * version a node speaks (TS003 v1.0.0 §3.1, TS004 v1.0.0 / v2.0.0 §3.1, TS005 v1.0.0 §4.1,
 * TS006 v1.0.0 §3.1). Each package file (clockSync.ts, multicast.ts, fragmentation.ts,
 * firmwareManagement.ts) is a table of layouts per direction that starts with these two.
 */
import { bare, bytes, checkInt, type Layout } from '../commandCodec.js';

/** No payload. */
export const packageVersionReq = bare('PackageVersionReq', 0x00);

/** PackageIdentifier, PackageVersion: one byte each. */
export const packageVersionAns: Layout<{ cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }> = {
  cid: 0x00,
  size: 2,
  write: (c) => bytes(checkInt('PackageVersionAns', 'packageIdentifier', c.packageIdentifier, 0, 255), checkInt('PackageVersionAns', 'packageVersion', c.packageVersion, 0, 255)),
  read: (p) => ({ cid: 'PackageVersionAns', packageIdentifier: p[0]!, packageVersion: p[1]! }),
};
