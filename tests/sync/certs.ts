/**
 * Test PKI made with openssl: a CA, a server certificate for 127.0.0.1/localhost and a client
 * certificate signed by it, and an unrelated CA whose trust makes the server's certificate fail
 * verification. EC P-256 keys: fast to generate.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { TempDir } from '../helpers/tmp.js';

export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** a CA that did not sign the server certificate */
  otherCa: string;
}

const OPENSSL = '/usr/bin/openssl';
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function run(args: string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(dir: TempDir): TestPki {
  const cwd = dir.path;
  run(['req', '-x509', ...KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=streetbox test CA'], cwd);
  run(['req', '-x509', ...KEY, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=some other CA'], cwd);
  writeFileSync(dir.file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(dir.file('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', 'localhost'],
    ['client', 'gw-test'],
  ] as const) {
    run(['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], cwd);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], cwd);
  }
  return {
    ca: dir.file('ca.crt'),
    serverCert: dir.file('server.crt'),
    serverKey: dir.file('server.key'),
    clientCert: dir.file('client.crt'),
    clientKey: dir.file('client.key'),
    otherCa: dir.file('other-ca.crt'),
  };
}
