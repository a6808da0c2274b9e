/**
 * The demo's own secrets, read from the devices.yaml that ships with streetbox (so the list
 * cannot drift from it): every string under a secret key (password, token, credentialSecret,
 * the LoRaWAN keys: edge/config/redact.ts). Everyone has them; a gateway that holds one is open.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { asset } from '../assets.js';
import { isSecretKey } from '../config/redact.js';

/** The shipped demo configuration. */
export const DEMO_CONFIG = asset('devices.yaml');

/** Each demo secret (lower case: hex keys match in any case) and where the demo has it. */
export function demoSecrets(file: string = DEMO_CONFIG): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (value: unknown, path: string, secret: boolean): void => {
    if (typeof value === 'string') {
      if (secret && value.length > 0 && !value.includes('${')) out.set(value.toLowerCase(), path);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`, secret));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, path === '' ? k : `${path}.${k}`, secret || isSecretKey(k));
    }
  };
  walk(parse(readFileSync(file, 'utf8')) as unknown, '', false);
  return out;
}

/** The paths in `config` whose value is one of the demo's secrets (anywhere, under any key). */
export function findDemoSecrets(config: unknown, secrets: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'string') {
      if (secrets.has(value.toLowerCase())) found.push(path);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, path === '' ? k : `${path}.${k}`);
    }
  };
  walk(config, '');
  return found;
}
