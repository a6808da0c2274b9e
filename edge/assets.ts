import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root (the directory holding package.json), found from this file whether it runs
 * from the TypeScript sources (edge/) or the bundle (dist/streetbox.mjs). Data files that ship with
 * streetbox (profiles, default flows, the status page) are read relative to it.
 */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && !dir.endsWith('dist')) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('streetbox: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
})();

/** An absolute path to a file shipped with the package, e.g. asset('edge/profiles/streetlight-controller.yaml'). */
export function asset(relative: string): string {
  return join(packageRoot, relative);
}

let version: string | undefined;

/** The package's version, from its package.json (read once): the CLI's --version, the API's document, discovery's origin. */
export function packageVersion(): string {
  if (version === undefined) {
    const v = (JSON.parse(readFileSync(asset('package.json'), 'utf8')) as { version?: unknown }).version;
    version = typeof v === 'string' ? v : '0.0.0';
  }
  return version;
}
