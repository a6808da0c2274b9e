import { StreetboxError, type ErrorCode } from '../errors.js';

/**
 * Errors of the control plane (schedules, arbitration, roles, credentials):
 * - E_CONFIG: a schedule that cannot run (a sun-anchored step without gateway lat/lon),
 *   a malformed password hash in devices.yaml;
 * - E_INVALID_COMMAND: a level outside 0..100, an expiry before its start, a bad claim row;
 * - E_FORBIDDEN: a role that may not claim, a priority above the role's ceiling, a release
 *   of a claim that outranks the caller;
 * - E_NOT_FOUND: an unknown claim id, device or group;
 * - E_INTERLOCK: a write a traffic controller must never get (anything but a program request).
 * Messages never contain a password, a token or a hash.
 */
export type ControlErrorCode = Extract<ErrorCode, 'E_CONFIG' | 'E_INVALID_COMMAND' | 'E_FORBIDDEN' | 'E_NOT_FOUND' | 'E_INTERLOCK'>;

export class ControlError extends StreetboxError {
  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
