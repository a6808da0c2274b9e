import { StreetboxError, type ErrorCode } from '../errors.js';

/** Errors of the embedded broker: E_CONFIG (bad users or TLS files), E_COMPONENT (a listener that cannot bind). */
export type BrokerErrorCode = Extract<ErrorCode, 'E_CONFIG' | 'E_COMPONENT'>;

export class BrokerError extends StreetboxError {
  constructor(code: BrokerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
