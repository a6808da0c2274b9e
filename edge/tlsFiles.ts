/**
 * The PEM files devices.yaml names for its TLS listeners (broker.tls, api.tls): read relative to
 * the devices.yaml's directory, a file that cannot be read an E_CONFIG error naming the key it
 * came from (`api.tls.key: cannot read …`). Messages name files, never what is in them.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { StreetboxError, errorMessage } from './errors.js';

/** The file's bytes; `field` is the config key that named it, e.g. "broker.tls.cert". */
export function readPem(configDir: string, file: string, field: string): Buffer {
  try {
    return readFileSync(resolve(configDir, file));
  } catch (err) {
    throw new StreetboxError('E_CONFIG', `${field}: cannot read ${file}: ${errorMessage(err)}`, { cause: err });
  }
}
