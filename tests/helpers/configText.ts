/**
 * devices.yaml texts for the configuration tests: the issues a text gets, each as
 * `line:col path: message`, and gateways with one device of a custom profile.
 */
import { ConfigError, formatIssue, parseConfig } from '../../edge/config/index.js';
import type { LoadOptions } from '../../edge/config/loader.js';

/** The issues of a devices.yaml (none: []); `env` for its `${VAR}` references, the process's when left out. */
export function configIssues(text: string, opts: LoadOptions = {}): string[] {
  try {
    parseConfig(text, { file: 'devices.yaml', ...(opts.env !== undefined ? { env: opts.env } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => formatIssue(i).replace(/^devices\.yaml:/, ''));
    throw err;
  }
  return [];
}

/** A devices.yaml with one device `device` (bus `b`, unit 1) of profile `name`, whose body (from `kind:` or `points:` on, 4 spaces in) is given. */
export function withNamedProfile(name: string, device: string, body: string): string {
  return `gateway: { id: gw }
buses:
  - { id: b, type: tcp, host: 10.0.0.2 }
devices:
  - { id: ${device}, bus: b, unit: 1, profile: ${name} }
profiles:
  - name: ${name}
${body}`;
}

/** The same with one controller `c1` of the custom profile `acme`, of kind other; `body` is the rest of the profile. */
export function withAcmeProfile(body: string): string {
  return withNamedProfile('acme', 'c1', `    kind: other\n${body}`);
}
