/**
 * DevAddr allocation from the NetID (LoRaWAN Backend Interfaces 1.0 §13, Table 3): the
 * NetID type (its 3 MSBs) fixes a prefix of type+1 bits (type ones then a zero) and the
 * width of the NwkID that follows (the NetID's LSBs); the rest is the NwkAddr.
 */
const NWKID_BITS = [6, 6, 9, 11, 12, 13, 15, 17] as const;

export function devAddrPrefix(netIdHex: string): { prefix: number; prefixBits: number } {
  const netId = parseInt(netIdHex, 16);
  const type = netId >>> 21;
  const nwkIdBits = NWKID_BITS[type]!;
  const nwkId = netId & ((1 << nwkIdBits) - 1);
  const typeBits = type + 1;
  const typePrefix = ((1 << type) - 1) << 1; // `type` ones followed by one zero
  const prefixBits = typeBits + nwkIdBits;
  const prefix = ((typePrefix << nwkIdBits) | nwkId) >>> 0;
  return { prefix, prefixBits };
}

/** A random DevAddr within the NetID's range, not among `inUse`. */
export function allocateDevAddr(netIdHex: string, inUse: (devAddr: string) => boolean, random: () => number = Math.random): string {
  const { prefix, prefixBits } = devAddrPrefix(netIdHex);
  const addrBits = 32 - prefixBits;
  for (let i = 0; i < 1000; i++) {
    const nwkAddr = Math.floor(random() * 2 ** addrBits);
    const addr = (prefix * 2 ** addrBits + nwkAddr) >>> 0;
    const hex = addr.toString(16).padStart(8, '0');
    if (!inUse(hex)) return hex;
  }
  throw new Error('no free DevAddr in the NetID range');
}
