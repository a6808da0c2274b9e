/**
 * Errors of the Modbus driver. Each carries a code from edge/errors.ts; an exception response
 * also carries its Modbus exception code and name (MODBUS Application Protocol 1.1b3 §7).
 */
import { StreetboxError } from '../../errors.js';

export class ModbusError extends StreetboxError {}

/** No (complete) answer within the response timeout. */
export class ModbusTimeoutError extends ModbusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_MODBUS_TIMEOUT', message, options);
  }
}

/** The device answered with an exception response (function code + 0x80). */
export class ModbusExceptionError extends ModbusError {
  readonly exceptionCode: number;
  readonly exceptionName: string;
  readonly functionCode: number;

  constructor(functionCode: number, exceptionCode: number, exceptionName: string) {
    super('E_MODBUS_EXCEPTION', `exception ${exceptionCode} (${exceptionName}) to function ${functionCode}`);
    this.functionCode = functionCode;
    this.exceptionCode = exceptionCode;
    this.exceptionName = exceptionName;
  }
}

/** An RTU frame whose CRC-16 does not match. */
export class ModbusCrcError extends ModbusError {
  constructor(message: string) {
    super('E_MODBUS_CRC', message);
  }
}

/** A malformed, truncated or unexpected frame or PDU. */
export class ModbusFrameError extends ModbusError {
  constructor(message: string) {
    super('E_MODBUS_FRAME', message);
  }
}

/** The bus itself: serial port missing or closed, TCP connection refused or lost, bus stopped. */
export class ModbusTransportError extends ModbusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_MODBUS_TRANSPORT', message, options);
  }
}

/** Errors worth retrying: the device may answer next time. An exception answer is final. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ModbusError && !(err instanceof ModbusExceptionError);
}
