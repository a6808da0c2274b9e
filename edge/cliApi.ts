/**
 * How the CLI's commands that act through a running gateway reach its HTTP API (`dim`,
 * `override`, `commands`, `config apply`…): the base URL from devices.yaml's api.host/port,
 * one request with the bearer token, the answer's status and body (JSON when it is).
 */
import { StreetboxError, errorMessage } from './errors.js';

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** The API's base URL for a listen address: a wildcard is reached on the loopback. */
export function apiBaseUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
  return `http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`;
}

/**
 * One request; an unreachable gateway or one that does not answer within `timeoutMs` is an
 * E_COMPONENT error (exit 1) saying so, `timeoutHint` added to the latter.
 */
export async function apiCall(
  api: { base: string; token: string },
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number; timeoutHint?: string } = {},
): Promise<ApiAnswer> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let res: Response;
  try {
    res = await fetch(`${api.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${api.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(Math.max(1000, timeoutMs)),
    });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new StreetboxError('E_COMPONENT', `no answer from ${api.base} within ${Math.round(timeoutMs / 1000)} s${opts.timeoutHint ? ` (${opts.timeoutHint})` : ''}`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new StreetboxError('E_COMPONENT', `gateway unreachable at ${api.base}: ${cause?.code ?? cause?.message ?? errorMessage(err)}`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? null : (JSON.parse(text) as unknown);
  } catch {
    // a non-JSON body is shown as text
  }
  return { status: res.status, body: parsed };
}
