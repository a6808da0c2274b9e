/**
 * Upstream failures, classified so a technician reads one clear sentence (wrong credentials,
 * unreachable broker, a certificate that does not verify) instead of a stack of socket errors.
 */
import { StreetboxError, errorMessage } from '../edge/errors.js';

export type SyncFailure = 'auth' | 'tls' | 'unreachable' | 'refused' | 'ack-timeout' | 'config' | 'protocol' | 'closed';

export class SyncError extends StreetboxError {
  readonly failure: SyncFailure;

  constructor(failure: SyncFailure, message: string, options?: { cause?: unknown }) {
    super('E_SYNC', message, options);
    this.failure = failure;
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);
const NET_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE']);

/** Turns whatever mqtt.js or the socket reported into a SyncError with a readable message. */
export function classifyError(err: unknown, url: string): SyncError {
  if (err instanceof SyncError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const msg = errorMessage(err);
  if (typeof code === 'number') {
    // MQTT 3.1.1 §3.2.2.3 CONNACK return codes 4, 5; MQTT 5 §3.2.2.2 reason codes 0x86, 0x87, 0x8C
    if (code === 4 || code === 5 || code === 0x86 || code === 0x87 || code === 0x8c || code === 0x8a) {
      return new SyncError('auth', `broker ${url} refused the login: ${msg.replace(/^Connection refused: /, '')} (check sync.username / sync.password)`, { cause: err });
    }
    return new SyncError('refused', `broker ${url} refused the connection: ${msg}`, { cause: err });
  }
  if (typeof code === 'string') {
    if (TLS_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
      return new SyncError('tls', `TLS with ${url} failed: the broker's certificate does not verify (${code}: ${msg}); check sync.ca`, { cause: err });
    }
    if (NET_CODES.has(code)) return new SyncError('unreachable', `cannot reach ${url}: ${msg}`, { cause: err });
  }
  if (/certificate|ssl|tls/i.test(msg)) return new SyncError('tls', `TLS with ${url} failed: ${msg}`, { cause: err });
  if (/connack timeout/i.test(msg)) return new SyncError('unreachable', `broker ${url} did not answer CONNECT in time`, { cause: err });
  return new SyncError('protocol', `connection to ${url} failed: ${msg}`, { cause: err });
}

/** MQTT 5 §3.14.2.1: the reason code of a DISCONNECT the broker sent. */
export function disconnectError(reasonCode: number, url: string): SyncError {
  const reason = DISCONNECT_REASONS[reasonCode] ?? `reason code 0x${reasonCode.toString(16)}`;
  const hint = reasonCode === 0x87 ? ' (check the broker\'s ACL: the gateway publishes under streetbox/<gateway>/)' : '';
  return new SyncError(reasonCode === 0x87 ? 'auth' : 'refused', `broker ${url} closed the connection: ${reason}${hint}`);
}

const DISCONNECT_REASONS: Record<number, string> = {
  0x00: 'normal disconnection',
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x87: 'Not authorized',
  0x89: 'server busy',
  0x8b: 'server shutting down',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over (another client uses the same client id)',
  0x93: 'receive maximum exceeded',
  0x95: 'packet too large',
  0x97: 'quota exceeded',
  0x98: 'administrative action',
  0x99: 'payload format invalid',
  0x9c: 'use another server',
  0x9d: 'server moved',
  0x9f: 'connection rate exceeded',
};

/** MQTT 5 §3.4.2.1: a PUBACK reason code >= 0x80 (0x87: not authorized, the broker's ACL). */
export function pubackError(reasonCode: number, message: string, url: string, fromSeq: number, toSeq: number): SyncError {
  const reason = message.replace(/^Publish error: /, '');
  const hint = reasonCode === 0x87 ? ' (check the broker\'s ACL: the gateway publishes under streetbox/<gateway>/)' : '';
  return new SyncError(reasonCode === 0x87 ? 'auth' : 'refused', `broker ${url} refused batch ${fromSeq}..${toSeq}: ${reason} (0x${reasonCode.toString(16)})${hint}`);
}
