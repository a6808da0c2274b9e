/** Firmware orchestration's errors: one class, the code says what went wrong (records.ts FirmwareCode). */
import { StreetboxError } from '../errors.js';
import type { FirmwareCode } from './records.js';

export class FirmwareError extends StreetboxError {
  declare readonly code: FirmwareCode | 'E_FW_FINAL' | 'E_NOT_FOUND';

  constructor(code: FirmwareCode | 'E_FW_FINAL' | 'E_NOT_FOUND', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
