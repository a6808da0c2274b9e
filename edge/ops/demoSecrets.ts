/**
 * The demo's own secrets: every string under a secret key (password, token, credentialSecret,
 * the LoRaWAN keys: edge/config/redact.ts) of the devices.yaml that ships with streetbox.
 * Everyone has them; a gateway that holds one is open.
 *
 * `doctor` checks against DEMO_SECRET_HASHES, frozen here, not against the devices.yaml it
 * finds beside it: on a bench that file is the very config a technician edits, and the values
 * they put in would become "the demo's". A test keeps the list equal to the shipped file.
 */
import { createHash } from 'node:crypto';
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

/** sha256 of a demo secret (lower case), as DEMO_SECRET_HASHES holds it. */
export function secretHash(value: string): string {
  return createHash('sha256').update(value.toLowerCase()).digest('hex');
}

/** sha256 of each secret of the shipped devices.yaml (lower case) → where the demo has it. */
export const DEMO_SECRET_HASHES: ReadonlyMap<string, string> = new Map([
  ['2ef2503d964e9668092e6878d3c390ca7909bbbffabd781857115e3be4bb3e5a', 'lorawan.devices[0].nwkSKey'],
  ['d147606cdcbd4ee14a2a4d86d4e7f07540aaca12113aa75baa9e7f0ac910862d', 'lorawan.devices[0].appSKey'],
  ['d65df89f702eec58ca3c7bf2001c9ffc7cd80553ae01d42a799ba26756142d96', 'lorawan.devices[1].appKey'],
  ['acc2945ab4cc8762949e5abcc960a47befb26ffbaa9aadeee6aec41752adbff6', 'lorawan.devices[2].appKey'],
  ['76a70ad9ae4a1352d01e8278887f14f1066fccab172e61b325a457bfb297f205', 'lorawan.devices[0].genAppKey'],
  ['ff25d2389ab7917a77cc0c3546331401054d53cb7b2edeedb7b4e7742bb5286d', 'lorawan.devices[1].genAppKey'],
  ['82944599ffc4ca95612a21ebd1f0d0e44e3395b0364b6e3e5e2c375218de7169', 'lorawan.devices[2].genAppKey'],
  ['524848e7bf0f982f2ea0c16385a72622edfb665dde5df39da1ab824f9ab82286', 'nodeRed.users[0].password'],
  ['e1f9bfacd0e6e29eec6ff0bff0ae63ea4377c40046e6cc8b34025533d4a861fd', 'broker.users[1].password'],
  ['faf3d47a1bf7f62af66a065599223cea8d4a44109cd55c82c17f3074a7514b68', 'broker.users[2].password'],
  ['8ee695c85fe8a3eb537bf5032cf7766c49418f835f79981fba8a3c76116b6b9e', 'api.tokens[0].token'],
  ['f9dccdf3a70002e17cad03d564baa30d47a898cce1490abc43800fe7705c3e25', 'api.tokens[1].token'],
  ['385fb959f7182b6a128239a9a69e1b4fc2f4146a689e3a0518d352042079dd11', 'nodeRed.credentialSecret'],
]);

/**
 * The paths in `config` whose value is one of the demo's secrets (anywhere, under any key);
 * `secrets`: values (lower case) or, by default, the frozen hashes.
 */
export function findDemoSecrets(config: unknown, secrets: ReadonlyMap<string, string> = DEMO_SECRET_HASHES): string[] {
  const found: string[] = [];
  const hashed = secrets === DEMO_SECRET_HASHES;
  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'string') {
      if (secrets.has(hashed ? secretHash(value) : value.toLowerCase())) found.push(path);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, path === '' ? k : `${path}.${k}`);
    }
  };
  walk(config, '');
  return found;
}
