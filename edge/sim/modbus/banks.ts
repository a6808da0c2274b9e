/**
 * The four Modbus data tables of one simulated unit. // MODBUS Application Protocol V1.1b3 §4.3:
 * discrete inputs and coils (single bits), input and holding registers (16-bit words), each
 * addressed 0..65535. A device model may restrict the valid range per table (requests outside
 * it get exception 2) and veto writes (any exception code) before they are applied.
 */
export type Table = 'coil' | 'discrete' | 'holding' | 'input';

/** Called before a write is applied; returns an exception code to refuse it, or undefined to accept. */
export type WriteGuard = (table: 'coil' | 'holding', address: number, values: readonly number[]) => number | undefined;
/** Called after a write from the wire was applied. */
export type WriteListener = (table: 'coil' | 'holding', address: number, values: readonly number[]) => void;

export class RegisterBank {
  readonly coils = new Uint8Array(65536);
  readonly discretes = new Uint8Array(65536);
  readonly holding = new Uint16Array(65536);
  readonly input = new Uint16Array(65536);
  /** valid addresses per table are [0, size); the default is the whole table */
  readonly size: Record<Table, number> = { coil: 65536, discrete: 65536, holding: 65536, input: 65536 };
  private guards: WriteGuard[] = [];
  private listeners: WriteListener[] = [];

  guard(fn: WriteGuard): void {
    this.guards.push(fn);
  }

  onWrite(fn: WriteListener): void {
    this.listeners.push(fn);
  }

  inRange(table: Table, address: number, count: number): boolean {
    return address + count <= this.size[table];
  }

  /** A write from the wire: guards first, then applied, then listeners. Returns an exception code or undefined. */
  writeFromWire(table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined {
    for (const g of this.guards) {
      const code = g(table, address, values);
      if (code !== undefined) return code;
    }
    const dst = table === 'coil' ? this.coils : this.holding;
    for (let i = 0; i < values.length; i++) dst[address + i] = table === 'coil' ? (values[i] ? 1 : 0) : values[i]! & 0xffff;
    for (const l of this.listeners) l(table, address, values);
    return undefined;
  }

  words(table: 'holding' | 'input'): Uint16Array {
    return table === 'holding' ? this.holding : this.input;
  }

  bits(table: 'coil' | 'discrete'): Uint8Array {
    return table === 'coil' ? this.coils : this.discretes;
  }
}
