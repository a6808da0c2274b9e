/**
 * One error hierarchy for the whole gateway. Every error carries a code from this union
 * and, where it wraps another, the cause. Never throw a string.
 */
import type { FirmwareCode } from './firmware/records.js';
import type { ConfigRefusalCode } from './reconfig/records.js';

export type ErrorCode =
  | 'E_CONFIG'
  | 'E_CONFIG_ENV'
  | ConfigRefusalCode
  | FirmwareCode
  /** a deployment that has ended: it cannot be paused, resumed or cancelled */
  | 'E_FW_FINAL'
  | 'E_STORE'
  | 'E_STORE_CORRUPT'
  | 'E_COMPONENT'
  | 'E_USAGE'
  | 'E_NOT_FOUND'
  | 'E_MODBUS_TIMEOUT'
  | 'E_MODBUS_EXCEPTION'
  | 'E_MODBUS_CRC'
  | 'E_MODBUS_FRAME'
  | 'E_MODBUS_TRANSPORT'
  | 'E_MODBUS_VERIFY'
  | 'E_LORA_MIC'
  | 'E_LORA_FCNT'
  | 'E_LORA_FRAME'
  | 'E_LORA_DUTY_CYCLE'
  | 'E_LORA_DEVNONCE'
  | 'E_LORA_UNKNOWN_DEVICE'
  | 'E_LORA_PROTOCOL'
  | 'E_LORA_TX'
  | 'E_FORBIDDEN'
  | 'E_UNAUTHORIZED'
  | 'E_INTERLOCK'
  /** a command the gateway was carrying out when it stopped: its outcome is unknown */
  | 'E_INTERRUPTED'
  | 'E_INVALID_COMMAND'
  | 'E_SYNC'
  | 'E_OPS';

export class StreetboxError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Exit codes of the CLI: 0 ok, 1 runtime failure, 2 bad input. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
