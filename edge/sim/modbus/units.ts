/**
 * The units one simulated line or TCP server answers for: their register banks, their
 * firmware, their injected faults and what they have been asked. Shared by the TCP and RTU
 * servers. A unit whose firmware reboots answers nothing at all, whatever its fault.
 */
import { RegisterBank } from './banks.js';
import { FaultTable, type Fault } from './faults.js';
import type { FirmwareModel } from './firmware.js';
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
  readonly firmware = new Map<number, FirmwareModel>();
  readonly faults = new FaultTable();
  private readonly counters = new Map<number, UnitStats>();

  add(unit: number, bank: RegisterBank = new RegisterBank(), firmware?: FirmwareModel): RegisterBank {
    this.banks.set(unit, bank);
    if (firmware) this.firmware.set(unit, firmware);
    this.counters.set(unit, { requests: 0, responses: 0 });
    return bank;
  }

  has(unit: number): boolean {
    return this.banks.has(unit);
  }

  stats(unit: number): UnitStats {
    return { ...(this.counters.get(unit) ?? { requests: 0, responses: 0 }) };
  }

  /**
   * Answers `pdu` for `unit`, applying the unit's fault if one is set (exception, noAnswer,
   * loss and lies here; the rest is framing).
   */
  serve(unit: number, pdu: Uint8Array, head: number, tail: number): Served {
    const bank = this.banks.get(unit);
    if (!bank) return { frame: null, fault: undefined };
    const c = this.counters.get(unit)!;
    c.requests++;
    const firmware = this.firmware.get(unit);
    if (firmware?.silent()) return { frame: null, fault: undefined };
    const fault = this.faults.take(unit);
    if (fault?.kind === 'noAnswer' || fault?.kind === 'loss') return { frame: null, fault };
    c.responses++;
    if (fault?.kind === 'exception') return { frame: exceptionPdu(pdu[0] ?? 0, fault.code, head, tail), fault };
    if (firmware) firmware.lying = fault?.kind === 'lies';
    return { frame: respond(bank, pdu, head, tail, firmware), fault };
  }

  /** A broadcast (unit 0) write: applied to every unit that runs, never answered. // Modbus over serial line V1.02 §2.1 */
  broadcast(pdu: Uint8Array): void {
    for (const [unit, bank] of this.banks) {
      const firmware = this.firmware.get(unit);
      if (!firmware?.silent()) respond(bank, pdu, 0, 0, firmware);
    }
  }
}
