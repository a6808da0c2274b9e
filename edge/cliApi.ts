/**
 * How the CLI's commands that act through a running gateway reach its HTTP API (`dim`,
 * `override`, `commands`, `config apply`…): the base URL from devices.yaml's api.host/port
 * (https:// with api.tls), one request with the bearer token, the answer's status and body (JSON
 * when it is).
 *
 * With api.tls the CLI trusts api.tls.ca when one is configured (the name checked is the one dialed
 * when the certificate holds it, else one the certificate holds: the CLI dials the loopback), or
 * else exactly the certificate api.tls.cert (pinned: a self-signed one works). The checks pass
 * before a byte of the request, the token among them, is written. It never reads the key.
 */
import type { X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { readApiCertificate } from './api/tls.js';
import type { Config } from './config/schema.js';
import { StreetboxError, errorMessage } from './errors.js';

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** How the CLI trusts a gateway's HTTPS: read from api.tls (apiEndpoint). */
export interface ApiTrust {
  /** api.tls.cert's first certificate: pinned without a CA, the names to check with one */
  certificate: X509Certificate;
  /** api.tls.ca: the chain is verified against it */
  ca?: Buffer;
}

/** Who the CLI talks to: the API's base URL, the bearer token, and with api.tls the trust. */
export interface ApiClient {
  base: string;
  token: string;
  tls?: ApiTrust | undefined;
}

/** The API's base URL for a listen address: a wildcard is reached on the loopback. */
export function apiBaseUrl(host: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
  return `${scheme}://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`;
}

/**
 * The API of the gateway devices.yaml describes: its base URL, and with api.tls the trust (the
 * certificate and CA files read relative to `configDir`; one that cannot be read is an E_CONFIG
 * error naming its key).
 */
export function apiEndpoint(api: ApiSite, configDir: string): { base: string; tls?: ApiTrust } {
  if (api.tls === undefined) return { base: apiBaseUrl(api.host, api.port) };
  const { certificate, ca } = readApiCertificate(api.tls, configDir);
  return { base: apiBaseUrl(api.host, api.port, 'https'), tls: { certificate, ...(ca ? { ca } : {}) } };
}

/** What devices.yaml says of where the API is. */
export type ApiSite = Pick<Config['api'], 'host' | 'port' | 'tls'>;

/**
 * A command's client: --url when given, else the address api.host/port say; with api.tls the
 * trust of apiEndpoint on either (`dir`: the devices.yaml's directory).
 */
export function apiClient(token: string, url: string | undefined, site: { api: ApiSite; dir: string } | null): ApiClient {
  const endpoint = site ? apiEndpoint(site.api, site.dir) : null;
  const base = url ?? endpoint?.base;
  if (base === undefined) throw new StreetboxError('E_USAGE', 'no API address: give --url or a configuration (-c)');
  return { base: base.replace(/\/+$/, ''), token, tls: endpoint?.tls };
}

export interface CallOptions {
  timeoutMs?: number;
  timeoutHint?: string;
}

/**
 * One request with a JSON body (or none); an unreachable gateway or one that does not answer within
 * `timeoutMs` is an E_COMPONENT error (exit 1) saying so, `timeoutHint` added to the latter.
 */
export function apiCall(api: ApiClient, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, opts: CallOptions = {}): Promise<ApiAnswer> {
  return apiRequest(api, method, path, body === undefined ? undefined : { bytes: Buffer.from(JSON.stringify(body)), type: 'application/json' }, opts);
}

/** One request with a body of any type (an artifact's bytes), as apiCall. */
export async function apiRequest(api: ApiClient, method: 'GET' | 'POST' | 'PUT', path: string, body: { bytes: Uint8Array; type: string } | undefined, opts: CallOptions = {}): Promise<ApiAnswer> {
  const timeoutMs = Math.max(1000, opts.timeoutMs ?? 10_000);
  const signal = AbortSignal.timeout(timeoutMs);
  let res: { status: number; text: string };
  try {
    res = await send(new URL(`${api.base}${path}`), api.tls, signal, {
      method,
      headers: { authorization: `Bearer ${api.token}`, ...(body ? { 'content-type': body.type, 'content-length': String(body.bytes.byteLength) } : {}) },
      body: body?.bytes,
    });
  } catch (err) {
    if (signal.aborted) throw new StreetboxError('E_COMPONENT', `no answer from ${api.base} within ${Math.round(timeoutMs / 1000)} s${opts.timeoutHint ? ` (${opts.timeoutHint})` : ''}`);
    if (err instanceof StreetboxError) throw err;
    throw new StreetboxError('E_COMPONENT', `gateway unreachable at ${api.base}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
  let parsed: unknown = res.text;
  try {
    parsed = res.text === '' ? null : (JSON.parse(res.text) as unknown);
  } catch {
    // a non-JSON body is shown as text
  }
  return { status: res.status, body: parsed };
}

/** The request over node:http; https:// over a connection that passed the trust's checks. */
function send(url: URL, trust: ApiTrust | undefined, signal: AbortSignal, r: { method: string; headers: Record<string, string>; body: Uint8Array | undefined }): Promise<{ status: number; text: string }> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new StreetboxError('E_USAGE', `expected an http:// or https:// URL, got ${url.origin}`));
  const https = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: r.method,
        headers: r.headers,
        signal,
        ...(https ? { createConnection: (_o: unknown, done: (err: Error | null, socket: Duplex) => void) => trustedConnection(url, trust, signal, done) } : {}),
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

/**
 * A TLS connection handed to the request only once the gateway is trusted: with a CA, the chain
 * and the name (tls.connect's own checks); without, the certificate is exactly the pinned one.
 * Without a trust (a --url off the gateway), the system's CAs and the URL's name.
 */
function trustedConnection(url: URL, trust: ApiTrust | undefined, signal: AbortSignal, done: (err: Error | null, socket: Duplex) => void): undefined {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const pinned = trust !== undefined && trust.ca === undefined ? trust.certificate : null;
  const name = trust?.ca !== undefined ? nameToCheck(host, trust.certificate) : host;
  const options: ConnectionOptions = {
    host,
    port,
    minVersion: 'TLSv1.2',
    ...(isIP(name) === 0 ? { servername: name } : {}),
    ...(trust?.ca !== undefined ? { ca: trust.ca } : {}),
    // pinned: the chain is not what is trusted, the certificate is (checked below)
    ...(pinned ? { rejectUnauthorized: false } : {}),
  };
  const socket = tlsConnect(options);
  const fail = (err: Error): void => {
    socket.destroy();
    done(untrusted(err, url, trust) ?? err, socket);
  };
  const onAbort = (): void => fail(new StreetboxError('E_COMPONENT', 'aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  // kept after the handover too, until the request's own listener is on (a tick later)
  socket.once('error', fail);
  socket.once('secureConnect', () => {
    signal.removeEventListener('abort', onAbort);
    if (pinned && !socket.getPeerCertificate().raw?.equals(pinned.raw)) {
      fail(new StreetboxError('E_COMPONENT', `the gateway at ${url.host} presented another certificate than api.tls.cert (${pinned.subject.replace(/\n/g, ', ')})`));
      return;
    }
    done(null, socket);
  });
  return undefined;
}

/**
 * A failed check of the gateway's certificate as such: OpenSSL's verify codes
 * (SELF_SIGNED_CERT_IN_CHAIN) and node's (ERR_TLS_CERT_ALTNAME_INVALID), not a system call's
 * error (ECONNREFUSED, EAI_AGAIN) nor another of node's (ERR_SSL_WRONG_VERSION_NUMBER).
 */
function untrusted(err: Error, url: URL, trust: ApiTrust | undefined): StreetboxError | null {
  const { code, syscall } = err as NodeJS.ErrnoException;
  if (err instanceof StreetboxError || code === undefined) return null;
  const verify = code.startsWith('ERR_TLS_CERT') || (!code.startsWith('ERR_') && syscall === undefined);
  if (!verify) return null;
  const against = trust?.ca !== undefined ? 'api.tls.ca' : "the system's CAs";
  return new StreetboxError('E_COMPONENT', `the gateway at ${url.host} is not trusted: ${code} (its certificate checked against ${against})`, { cause: err });
}

/** The name to check the gateway's certificate against: the host dialed when it holds it, else localhost or the first name it holds. */
function nameToCheck(host: string, cert: X509Certificate): string {
  const holds = isIP(host) !== 0 ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
  if (holds) return host;
  if (cert.checkHost('localhost') !== undefined) return 'localhost';
  const dns = /(?:^|, )DNS:([^,\s]+)/.exec(cert.subjectAltName ?? '');
  return dns?.[1] ?? /^CN=(.+)$/m.exec(cert.subject)?.[1] ?? host;
}
