import { StreetboxError, type ErrorCode } from '../errors.js';

/**
 * An HTTP answer other than success: the status, the error code of the body
 * `{ status: "error", code, error }`, and for bad input the field it is about (the message
 * starts with it: `limit: expected an integer 1..10000, got "0"`).
 */
export class ApiError extends StreetboxError {
  readonly httpStatus: number;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;

  constructor(httpStatus: number, code: ErrorCode, message: string, opts: { field?: string; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(code, opts.field === undefined ? message : `${opts.field}: ${message}`, opts.cause === undefined ? {} : { cause: opts.cause });
    this.httpStatus = httpStatus;
    this.field = opts.field;
    this.headers = opts.headers ?? {};
  }
}

/** 400 for a bad query parameter or body field, naming it. */
export function badInput(field: string, message: string): ApiError {
  return new ApiError(400, 'E_USAGE', message, { field });
}

export function notFound(what: string): ApiError {
  return new ApiError(404, 'E_NOT_FOUND', `no ${what}`);
}
