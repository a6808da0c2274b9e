/**
 * The units one simulated line or TCP server answers for: their register banks, their
 * injected faults and what they have been asked. Shared by the TCP and RTU servers.
 */
import { RegisterBank } from './banks.js';
import { FaultTable, type Fault } from './faults.js';
import { exceptionPdu, respond } from './pdu.js';

export interface UnitStats {
  /** well-formed requests addressed to the unit */
  requests: number;
  /** responses sent (including faulty ones) */
  responses: number;
}

export interface Served {
  /** the response with `head` and `tail` bytes free around the PDU; null for no answer */
  frame: Buffer | null;
  fault: Fault | undefined;
}

export class UnitRegistry {
  readonly banks = new Map<number, RegisterBank>();
  readonly faults = new FaultTable();
  private readonly counters = new Map<number, UnitStats>();

  add(unit: number, bank: RegisterBank = new RegisterBank()): RegisterBank {
    this.banks.set(unit, bank);
    this.counters.set(unit, { requests: 0, responses: 0 });
    return bank;
  }

  has(unit: number): boolean {
    return this.banks.has(unit);
  }

  stats(unit: number): UnitStats {
    return { ...(this.counters.get(unit) ?? { requests: 0, responses: 0 }) };
  }

  /** Answers `pdu` for `unit`, applying the unit's fault if one is set (exception and noAnswer here; the rest is framing). */
  serve(unit: number, pdu: Uint8Array, head: number, tail: number): Served {
    const bank = this.banks.get(unit);
    if (!bank) return { frame: null, fault: undefined };
    const c = this.counters.get(unit)!;
    c.requests++;
    const fault = this.faults.take(unit);
    if (fault?.kind === 'noAnswer') return { frame: null, fault };
    c.responses++;
    if (fault?.kind === 'exception') return { frame: exceptionPdu(pdu[0] ?? 0, fault.code, head, tail), fault };
    return { frame: respond(bank, pdu, head, tail), fault };
  }

  /** A broadcast (unit 0) write: applied to every unit, never answered. // Modbus over serial line V1.02 §2.1 */
  broadcast(pdu: Uint8Array): void {
    for (const bank of this.banks.values()) respond(bank, pdu, 0, 0);
  }
}
