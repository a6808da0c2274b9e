/**
 * The environment package.json's "start" script sets for the gateway ("VAR=value VAR='a b' node
 * bin/streetbox.js start"): its memory tuning, which the systemd unit must repeat and which
 * bench/footprint.ts measures.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '../..');

export function startScriptEnv(): Record<string, string> {
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  // `exec`: npm runs the script with sh -c; dash would otherwise keep a shell between npm and the
  // gateway, which Ctrl-C kills at once while the gateway is still stopping
  const m = /^((?:\w+=(?:'[^']*'|\S+) )*)exec node bin\/streetbox\.js start$/.exec(start);
  if (!m) throw new Error(`package.json "start" is not "[VAR=value …] exec node bin/streetbox.js start": ${start}`);
  const env: Record<string, string> = {};
  for (const [, name, quoted, bare] of (m[1] ?? '').matchAll(/(\w+)=(?:'([^']*)'|(\S+)) /g)) env[name!] = quoted ?? bare!;
  return env;
}
