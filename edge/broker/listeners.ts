/**
 * The broker's sockets: plain MQTT on broker.host:broker.port, and MQTT over TLS on
 * broker.tlsPort when configured (cert, key and optional CA chain read from files relative to
 * the devices.yaml). Port 0 binds a free port; `port()` tells which. Every TCP connection goes
 * through the admission (admission.ts) first, the one under TLS before its handshake.
 */
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Config } from '../config/schema.js';
import { readPem } from '../tlsFiles.js';
import type { Admission } from './admission.js';
import { BrokerError } from './errors.js';

export type ConnectionHandler = (socket: Socket) => void;

export function plainServer(admission: Admission, onConnection: ConnectionHandler): Server {
  return createNetServer((socket) => {
    if (admission.admit(socket)) onConnection(socket);
  });
}

/** A TLS server, or null when broker.tlsPort is not set. */
export function tlsServer(cfg: Config['broker'], configDir: string, admission: Admission, onConnection: ConnectionHandler): Server | null {
  if (cfg.tlsPort === undefined) return null;
  if (cfg.tls === undefined) throw new BrokerError('E_CONFIG', 'broker.tlsPort is set but broker.tls (cert, key) is not');
  const ca = cfg.tls.ca === undefined ? undefined : readPem(configDir, cfg.tls.ca, 'broker.tls.ca');
  const server = createTlsServer(
    {
      cert: readPem(configDir, cfg.tls.cert, 'broker.tls.cert'),
      key: readPem(configDir, cfg.tls.key, 'broker.tls.key'),
      ...(ca ? { ca } : {}),
      minVersion: 'TLSv1.2',
    },
    onConnection,
  );
  // the raw TCP connection, before the handshake: the deadline covers the handshake too, and a
  // refused one is closed before it costs a handshake's work
  server.on('connection', (raw: Socket) => {
    admission.admit(raw);
  });
  return server;
}

export function listen(server: Server, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(new BrokerError('E_COMPONENT', `${what}: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

export function close(server: Server | null): Promise<void> {
  if (server === null || !server.listening) return Promise.resolve();
  return new Promise((r) => server.close(() => r()));
}
