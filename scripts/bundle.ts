// `npm run build` (run by `npm ci`): the gateway as one ES module, dist/streetbox.mjs, which
// bin/streetbox.js runs. One file of minified code instead of some 500 modules keeps about
// 5 MB of source text and module records out of the memory of a cabinet gateway, and starts in
// half the time (bench/footprint.ts). Function and class names are kept, so stack traces still
// read; the linked source map (dist/streetbox.mjs.map) maps them to edge/ with
// `node --enable-source-maps`.
//
// Left outside the bundle and loaded from node_modules: native addons (they locate their
// binaries relative to their own package), node-red (embedded only when enabled, and it loads
// its own files by path), mqtt (imported only when upstream sync is configured) and mqtt-packet,
// the MQTT codec of both the embedded broker (aedes) and mqtt: one copy for the two (bundled, a
// gateway with upstream sync held it twice, 0.4 MB).
//
// Zod's messages in other languages are left out (zodEnglishOnly): the gateway speaks English,
// and zod's `locales` namespace would otherwise bring all 50 of them, a quarter of the bundle.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist/streetbox.mjs');

/**
 * Zod's `locales` namespace (`z.locales`, `z.core.locales`) with English only: zod's messages are
 * English by default (it imports en.js itself) and nothing here sets another language, while the
 * namespace holds every language zod has: some 270 KB of source and 3 MB of memory to parse it at
 * start (bench/footprint.ts). A `z.locales.de()` would now be undefined: there is none.
 */
const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer) ? { path: join(dirname(args.importer), '../locales/index.js'), namespace: 'zod-locales' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({ contents: "export { default as en } from './en.js';\n", resolveDir: dirname(args.path), loader: 'js' }));
  },
};

/** How the gateway is bundled, whatever the entry and output (tests/firmware/releases.ts bundles test releases so). */
export const GATEWAY_BUILD = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['better-sqlite3', '@serialport/bindings-cpp', 'node-red', 'mqtt', 'mqtt-packet'],
  keepNames: true,
  plugins: [zodEnglishOnly],
  legalComments: 'none',
  // CommonJS dependencies bundled into an ES module still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __streetboxRequire } from 'node:module'; const require = __streetboxRequire(import.meta.url);" },
} as const satisfies BuildOptions;

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  await build({
    ...GATEWAY_BUILD,
    entryPoints: [join(root, 'edge/cli.ts')],
    outfile,
    minify: true,
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}
