/**
 * HTTPS for the API, the status page and the Node-RED editor (api.tls): the PEM files read and
 * checked once, at start (a file that cannot be read, one that holds no certificate or key, a key
 * that is not the certificate's: an E_CONFIG error naming the config key, never a crash), and the
 * plain-HTTP port (api.redirectPort) that answers every request with a redirect to https://.
 * Errors name files, never what is in them.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { RequestListener, ServerOptions } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Config } from '../config/schema.js';
import { StreetboxError, errorMessage } from '../errors.js';
import { readPem } from '../tlsFiles.js';
import { send } from './http.js';

export type ApiTlsConfig = NonNullable<Config['api']['tls']>;

const HEADERS_TIMEOUT_MS = 10_000;

/** Timeouts of every HTTP server of the API (the redirect port's too). */
export const SERVER_OPTIONS: ServerOptions = { requestTimeout: 30_000, headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 5_000 };

/**
 * On every HTTPS answer: browsers that have seen the gateway over https:// keep using it for a year
 * (RFC 6797), so a later http:// link cannot carry a password in clear.
 */
export const HSTS = 'max-age=31536000';

/** What a client of the API needs to trust the gateway: its certificate, and the CA when one is configured. */
export interface ApiCertificate {
  /** the PEM file's bytes (the certificate, maybe with its chain) */
  cert: Buffer;
  /** its first certificate, parsed */
  certificate: X509Certificate;
  ca?: Buffer;
}

export interface ApiTls extends ApiCertificate {
  key: Buffer;
}

function x509(pem: Buffer, field: string, file: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new StreetboxError('E_CONFIG', `${field}: ${file} holds no PEM certificate: ${errorMessage(err)}`, { cause: err });
  }
}

/** api.tls.cert (and api.tls.ca), relative to `configDir`: what the CLI reads; it never needs the key. */
export function readApiCertificate(tls: ApiTlsConfig, configDir: string): ApiCertificate {
  const cert = readPem(configDir, tls.cert, 'api.tls.cert');
  const certificate = x509(cert, 'api.tls.cert', tls.cert);
  if (tls.ca === undefined) return { cert, certificate };
  const ca = readPem(configDir, tls.ca, 'api.tls.ca');
  x509(ca, 'api.tls.ca', tls.ca);
  return { cert, certificate, ca };
}

/** api.tls's files, read and checked: the key is the certificate's. */
export function readApiTls(tls: ApiTlsConfig, configDir: string): ApiTls {
  const certs = readApiCertificate(tls, configDir);
  const key = readPem(configDir, tls.key, 'api.tls.key');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    // an encrypted key lands here too: the gateway has no passphrase to open it with
    throw new StreetboxError('E_CONFIG', `api.tls.key: ${tls.key} holds no unencrypted PEM private key: ${errorMessage(err)}`, { cause: err });
  }
  if (!certs.certificate.checkPrivateKey(privateKey)) {
    throw new StreetboxError('E_CONFIG', `api.tls.key: ${tls.key} is not the private key of api.tls.cert (${tls.cert})`);
  }
  return { ...certs, key };
}

/** The HTTPS server's options: the API's timeouts (the handshake within the headers' time), the files, TLS 1.2 at least. */
export function httpsOptions(tls: ApiTls): HttpsServerOptions {
  return { ...SERVER_OPTIONS, handshakeTimeout: HEADERS_TIMEOUT_MS, cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), minVersion: 'TLSv1.2' };
}

// RFC 9110 §7.2: uri-host [ ":" port ]; a name, an IPv4 address or a bracketed IPv6 address
const HOST_HEADER = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::\d{1,5})?$/;

/** The host of a Host header without its port ("[::1]" stays bracketed), or null when there is none or it is malformed. */
export function hostOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = HOST_HEADER.exec(header);
  return m ? m[1]! : null;
}

/**
 * api.redirectPort's handler: every request a 308 to the same path and query on
 * https://<the request's host>:<the API's port> (308 keeps the method and body: RFC 9110 §15.4.9),
 * a body of one line; nothing of the API answers here. No Host header, or a malformed one: 400.
 */
export function redirectListener(httpsPort: () => number): RequestListener {
  return (req, res) => {
    const host = hostOf(req.headers.host);
    const path = req.url ?? '';
    if (host === null || !path.startsWith('/')) {
      send(res, 400, 'expected a Host header (host or host:port) and a path\n', 'text/plain; charset=utf-8');
      return;
    }
    const port = httpsPort();
    const location = `https://${host}${port === 443 ? '' : `:${port}`}${path}`;
    // (a HEAD answer's body is dropped by node:http, its Content-Length kept)
    send(res, 308, `${location}\n`, 'text/plain; charset=utf-8', { Location: location });
  };
}
