/**
 * Forward error correction of TS004: the data block is cut into M uncoded fragments (N = 1..M) and
 * the server may send more, N = M+1, M+2, …, each the XOR of the uncoded fragments whose
 * coefficient is 1 in line N−M of a pseudo-random parity matrix (TS004 v1.0.0 appendix
 * "fragmentation algorithm"; TS004-2.0.0 §5). The line comes from a PRBS23 generator seeded with
 * 1 + 1001·(N−M) that draws M/2 positions modulo M (modulo M+1 when M is a power of two,
 * redrawing any position ≥ M):
 *
 *   v1.0.0 counts every draw, so a position drawn twice is set once and the line has fewer than
 *          M/2 ones (LoRaMac-node FragDecoder.c FragGetParityMatrixRow, brocaar/lorawan
 *          applayer/fragmentation matrixLine);
 *   v2.0.0 counts only draws that set a new position, so every line has exactly M/2 ones (LoRa Basics
 *          Modem fragmentation_helper_v2.0.0.c, ChirpStack lrwn applayer/fragmentation/v2.rs).
 *
 * A line without a repeated draw is the same in both versions, so some parity rows agree and most
 * differ. FragDecoder is the node's side: Gaussian elimination over GF(2), incremental, as
 * LoRaMac-node's FragDecoder, with the stored equations bounded like a node's memory.
 */
import type { FragVersion } from './types.js';
import { MAX_FRAG_N } from './fragmentation.js';

/** The TS004 pseudo-random binary sequence: a 23-bit LFSR (taps at bits 0 and 5). */
function prbs23(x: number): number {
  const b0 = x & 1;
  const b1 = (x >> 5) & 1;
  return (x >> 1) | ((b0 ^ b1) << 22);
}

const isPowerOfTwo = (m: number): boolean => (m & (m - 1)) === 0;

function checkCount(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name}: expected an integer ${min}..${max}, got ${value}`);
}

/**
 * The coefficients (0 or 1, one per uncoded fragment) of parity line n (1-based, fragment N = M + n)
 * of a block of m fragments.
 */
export function matrixLine(version: FragVersion, n: number, m: number): Uint8Array {
  checkCount('matrixLine m', m, 1, MAX_FRAG_N);
  checkCount('matrixLine n', n, 1, MAX_FRAG_N);
  const line = new Uint8Array(m);
  const modulus = isPowerOfTwo(m) ? m + 1 : m;
  let x = 1 + 1001 * n;
  for (let coefficients = 0; coefficients < m >> 1; ) {
    let r = m;
    while (r >= m) {
      x = prbs23(x);
      r = x % modulus;
    }
    if (version === 1 || line[r] === 0) coefficients++;
    line[r] = 1;
  }
  return line;
}

/**
 * The data cut into fragments of fragSize bytes, the last one padded with zeros; `padding` is
 * the FragSessionSetupReq field (bytes to drop from the reassembled block).
 */
export function fragmentData(data: Buffer, fragSize: number): { fragments: Buffer[]; padding: number } {
  checkCount('fragmentData fragSize', fragSize, 1, 255);
  const count = Math.ceil(data.length / fragSize);
  checkCount('fragmentData fragments', count, 1, MAX_FRAG_N);
  const padded = Buffer.alloc(count * fragSize);
  data.copy(padded);
  return {
    fragments: Array.from({ length: count }, (_, i) => padded.subarray(i * fragSize, (i + 1) * fragSize)),
    padding: padded.length - data.length,
  };
}

/** Parity fragment n (1-based: the DataFragment with N = M + n) of the uncoded fragments. */
export function parityFragment(version: FragVersion, fragments: Buffer[], n: number): Buffer {
  const m = fragments.length;
  checkCount('parityFragment n', n, 1, MAX_FRAG_N - m);
  const line = matrixLine(version, n, m);
  const out = Buffer.alloc(fragments[0]?.length ?? 0);
  line.forEach((coefficient, i) => {
    if (coefficient === 1) xorBytes(out, fragments[i]!);
  });
  return out;
}

function xorBytes(target: Buffer, other: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i]! ^= other[i]!;
}

// ---------------------------------------------------------------------------------------
// Decoding

/** One equation over GF(2): which uncoded fragments (a bit set) XOR to `data`. */
interface Equation {
  bits: Uint32Array;
  data: Buffer;
}

function lowestBit(bits: Uint32Array): number {
  for (let w = 0; w < bits.length; w++) {
    const word = bits[w]!;
    if (word !== 0) return w * 32 + (31 - Math.clz32(word & -word));
  }
  return -1;
}

function hasBit(bits: Uint32Array, i: number): boolean {
  return ((bits[i >>> 5]! >>> (i & 31)) & 1) === 1;
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! &= ~(1 << (i & 31));
}

function isSingleBit(bits: Uint32Array, i: number): boolean {
  return bits.every((word, w) => word === (w === i >>> 5 ? 1 << (i & 31) : 0) >>> 0);
}

function xorEquation(target: Equation, other: Equation): void {
  for (let w = 0; w < target.bits.length; w++) target.bits[w]! ^= other.bits[w]!;
  xorBytes(target.data, other.data);
}

/**
 * What add() did with a fragment: `new` (it told the decoder something), `duplicate` (this N
 * came before), `useless` (nothing new: a combination of what is known, a fragment after the block
 * was complete, an N out of range or a payload not fragSize long), `complete` (this fragment
 * completed the block), `memory` (an equation had to be stored and maxParityRows are: the
 * decoding is aborted, as a node's whose matrix memory is exhausted; every later add says so too).
 */
export type FragAddResult = 'new' | 'duplicate' | 'useless' | 'complete' | 'memory';

/**
 * Reassembles a data block from uncoded and parity fragments in any order, as soon as it holds M
 * independent ones. Uncoded fragments and parity rows that resolve to one fragment are solved at
 * once; the others are kept reduced, each under its lowest unknown fragment (its pivot), until
 * enough arrive. Memory: M solved fragments plus at most maxParityRows stored equations.
 */
export class FragDecoder {
  readonly #version: FragVersion;
  readonly #nbFrag: number;
  readonly #fragSize: number;
  readonly #maxParityRows: number;
  readonly #solved: (Buffer | null)[];
  #solvedCount = 0;
  /** unsolved equations by pivot: the lowest fragment each still involves */
  readonly #pending = new Map<number, Equation>();
  readonly #seen = new Set<number>();
  #received = 0;
  #memoryError = false;

  constructor(version: FragVersion, nbFrag: number, fragSize: number, opts: { maxParityRows?: number } = {}) {
    checkCount('FragDecoder nbFrag', nbFrag, 1, MAX_FRAG_N);
    checkCount('FragDecoder fragSize', fragSize, 1, 255);
    const maxParityRows = opts.maxParityRows ?? nbFrag;
    checkCount('FragDecoder maxParityRows', maxParityRows, 0, MAX_FRAG_N);
    this.#version = version;
    this.#nbFrag = nbFrag;
    this.#fragSize = fragSize;
    this.#maxParityRows = maxParityRows;
    this.#solved = new Array<Buffer | null>(nbFrag).fill(null);
  }

  /** Fragment N (1..M uncoded, above M parity) of the session. */
  add(n: number, payload: Buffer): FragAddResult {
    if (this.#memoryError) return 'memory';
    if (!Number.isInteger(n) || n < 1 || n > MAX_FRAG_N || payload.length !== this.#fragSize) return 'useless';
    this.#received++;
    if (this.#seen.has(n)) return 'duplicate';
    this.#seen.add(n);
    if (this.complete()) return 'useless';
    const outcome = this.#insert(this.#equationOf(n, payload));
    if (outcome !== 'new') return outcome;
    return this.complete() ? 'complete' : 'new';
  }

  /** Fragments received with a valid N and size, repeats included (TS004 v2.0.0 §3.2 NbFragReceived). */
  get received(): number {
    return this.#received;
  }

  /** Independent fragments still needed to reassemble the block (TS004 §3.2 MissingFrag, as LoRa Basics Modem counts it). */
  get missing(): number {
    return this.#nbFrag - this.#solvedCount - this.#pending.size;
  }

  /** The decoding was aborted: more equations than maxParityRows had to be kept (FragSessionStatusAns MemoryError). */
  get memoryError(): boolean {
    return this.#memoryError;
  }

  complete(): boolean {
    return this.#solvedCount === this.#nbFrag;
  }

  /**
   * The reassembled block without its `padding` last bytes, or null while incomplete. Padding
   * comes from the air (FragSessionSetupReq): more than the block leaves it empty, no throw.
   */
  data(padding: number): Buffer | null {
    if (!this.complete()) return null;
    const block = Buffer.concat(this.#solved as Buffer[]);
    return block.subarray(0, Math.max(0, block.length - padding));
  }

  #equationOf(n: number, payload: Buffer): Equation {
    const bits = new Uint32Array(Math.ceil(this.#nbFrag / 32));
    if (n <= this.#nbFrag) {
      bits[(n - 1) >>> 5] = 1 << ((n - 1) & 31);
    } else {
      matrixLine(this.#version, n - this.#nbFrag, this.#nbFrag).forEach((coefficient, i) => {
        if (coefficient === 1) bits[i >>> 5]! |= 1 << (i & 31);
      });
    }
    return { bits, data: Buffer.from(payload) };
  }

  /** Reduces a fresh equation and keeps what it tells: `new`, `useless` or `memory`. */
  #insert(eq: Equation): 'new' | 'useless' | 'memory' {
    const pivot = this.#reduce(eq);
    if (pivot < 0) return 'useless';
    if (!isSingleBit(eq.bits, pivot) && this.#pending.size >= this.#maxParityRows) {
      this.#memoryError = true;
      return 'memory';
    }
    this.#keep(eq);
    return 'new';
  }

  /** Removes the solved fragments and the pending pivots from `eq`; its lowest remaining fragment, or −1 if nothing is left. */
  #reduce(eq: Equation): number {
    // Visits the fragments the equation involves, not the whole block: an uncoded fragment is one bit.
    for (let w = 0; w < eq.bits.length; w++) {
      for (let word = eq.bits[w]!; word !== 0; ) {
        const low = word & -word;
        word ^= low;
        const i = w * 32 + 31 - Math.clz32(low);
        const fragment = this.#solved[i];
        if (fragment) {
          xorBytes(eq.data, fragment);
          clearBit(eq.bits, i);
        }
      }
    }
    let pivot = lowestBit(eq.bits);
    for (let row = this.#pending.get(pivot); row; row = this.#pending.get(pivot)) {
      xorEquation(eq, row);
      pivot = lowestBit(eq.bits);
    }
    return pivot;
  }

  /**
   * Stores an equation under its pivot, or solves its one fragment and then takes back every
   * pending equation that involved it (each reduced again when its turn comes, which may solve
   * more: a worklist, not recursion, as a chain can run through the whole block). Never stores
   * more equations than it takes back, so only #insert checks the memory bound.
   */
  #keep(first: Equation): void {
    const work = [first];
    for (let eq = work.pop(); eq; eq = work.pop()) {
      const pivot = this.#reduce(eq);
      if (pivot < 0) continue;
      if (!isSingleBit(eq.bits, pivot)) {
        this.#pending.set(pivot, eq);
        continue;
      }
      this.#solved[pivot] = eq.data;
      this.#solvedCount++;
      for (const [key, row] of [...this.#pending]) {
        if (!hasBit(row.bits, pivot)) continue;
        this.#pending.delete(key);
        work.push(row);
      }
    }
  }
}
