/** Events of kinds the gateway does not emit, for the store's own tests. */
import type { EventKind, NewEvent, Severity } from '../../edge/store/types.js';

/**
 * An event of a kind the gateway does not emit, for the store's own tests: the store writes any
 * kind it is given (quota eviction with big `debug.blob` details, seq order with `x`). A kind the
 * gateway does emit is refused at compile time: write it as a NewEvent with its real detail
 * (eventKinds.ts). This is the one place a test event bypasses the kind → detail table.
 */
export function testEvent<K extends string>(e: {
  kind: K extends EventKind ? never : K;
  severity: Severity;
  detail: Record<string, unknown>;
  device?: string | null;
  ts?: number;
}): NewEvent {
  return e as unknown as NewEvent;
}
