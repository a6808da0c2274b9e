/**
 * Block reads: a profile's points merged into the fewest read requests per table, so each poll
 * puts the fewest frames on the wire. Per request at most 125 registers (FC 3/4, MODBUS
 * Application Protocol §6.3/§6.4) or 2000 bits (FC 1/2, §6.1/§6.2); a hole of up to `maxGap`
 * registers (maxGap × 16 bits in the bit tables) is read and thrown away rather than costing
 * another request.
 */
import type { PointConfig } from '../../config/schema.js';
import { MAX_READ_BITS, MAX_READ_REGISTERS, type ReadFunctionCode } from './codec.js';
import { isBitTable, pointWidth } from './values.js';

export type Table = PointConfig['table'];

export interface ReadBlock {
  table: Table;
  fc: ReadFunctionCode;
  address: number;
  quantity: number;
  /** the points read by this block, by address */
  points: PointConfig[];
}

export interface BlockOptions {
  /** largest hole, in registers, bridged to merge two points into one request */
  maxGap: number;
  maxRegisters?: number;
  maxBits?: number;
}

const TABLE_FC: Record<Table, ReadFunctionCode> = { coil: 1, discrete: 2, holding: 3, input: 4 };
/** Tables in the order a poll reads them. */
const TABLE_ORDER: readonly Table[] = ['holding', 'input', 'coil', 'discrete'];

export function tableFunctionCode(table: Table): ReadFunctionCode {
  return TABLE_FC[table];
}

/** Greedy left-to-right merge per table; optimal for intervals under a gap and a size limit. */
export function planBlocks(points: readonly PointConfig[], opts: BlockOptions): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  for (const table of TABLE_ORDER) {
    const bits = isBitTable(table);
    const limit = bits ? (opts.maxBits ?? MAX_READ_BITS) : (opts.maxRegisters ?? MAX_READ_REGISTERS);
    const gap = bits ? opts.maxGap * 16 : opts.maxGap;
    const inTable = points
      .filter((p) => p.table === table)
      .sort((a, b) => a.address - b.address || pointWidth(b) - pointWidth(a));
    let current: ReadBlock | undefined;
    for (const p of inTable) {
      const end = p.address + pointWidth(p); // exclusive
      if (current) {
        const currentEnd = current.address + current.quantity;
        const hole = p.address - currentEnd;
        const newEnd = Math.max(currentEnd, end);
        if (hole <= gap && newEnd - current.address <= limit) {
          current.quantity = newEnd - current.address;
          current.points.push(p);
          continue;
        }
      }
      current = { table, fc: TABLE_FC[table], address: p.address, quantity: end - p.address, points: [p] };
      blocks.push(current);
    }
  }
  return blocks;
}

/** The single-point read (address and quantity) used by on-demand reads and write read-backs. */
export function pointBlock(p: PointConfig): ReadBlock {
  return { table: p.table, fc: TABLE_FC[p.table], address: p.address, quantity: pointWidth(p), points: [p] };
}
