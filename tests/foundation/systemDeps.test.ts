/**
 * `npm test` on a fresh machine: scripts/system-deps.sh names every Debian package the tests
 * use, and checks by importing exactly what the test helpers import. (A recommends of
 * python3-pymodbus, pyserial and serial_asyncio, once made CI green on a machine that had them
 * and failed for a newcomer: no package may come in as a recommends.)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

const SCRIPT = readFileSync(join(ROOT, 'scripts/system-deps.sh'), 'utf8');
const HELPERS = join(ROOT, 'tests/helpers');
/** the Debian package of each Python module the helpers import (everything else is the standard library) */
const PY_PACKAGE: Record<string, string> = { pymodbus: 'python3-pymodbus', serial: 'python3-serial', serial_asyncio: 'python3-serial-asyncio' };
const STDLIB = new Set(['argparse', 'asyncio', 'json', 'logging', 'signal', 'sys', 'os', 'time', 'socket', 'struct']);

/** the package names the script installs */
function installed(): Set<string> {
  return new Set([...SCRIPT.matchAll(/need\+=\(([\w.+-]+)\)/g)].map((m) => m[1]!));
}

describe('scripts/system-deps.sh', () => {
  const pyFiles = readdirSync(HELPERS).filter((f) => f.endsWith('.py'));

  it('names the Debian package of every module the Python test helpers import', () => {
    const modules = new Set<string>();
    for (const f of pyFiles) {
      for (const m of readFileSync(join(HELPERS, f), 'utf8').matchAll(/^(?:from|import)\s+([A-Za-z_][\w]*)/gm)) modules.add(m[1]!);
    }
    const thirdParty = [...modules].filter((m) => !STDLIB.has(m));
    expect(thirdParty.sort()).toEqual(Object.keys(PY_PACKAGE).sort());
    for (const m of thirdParty) expect(installed(), `${m} → ${PY_PACKAGE[m]}`).toContain(PY_PACKAGE[m]);
  });

  it('names the package of every program the tests run', () => {
    for (const pkg of ['mosquitto', 'mosquitto-clients', 'socat', 'chromium', 'tzdata', 'openssl', 'util-linux']) expect(installed()).toContain(pkg);
  });

  it('checks the helpers by running them: each imports what it needs here', () => {
    for (const f of pyFiles) {
      const r = spawnSync('/usr/bin/python3', [join(HELPERS, f), '--check-imports'], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
    const r = spawnSync('bash', [join(ROOT, 'scripts/system-deps.sh'), '--check'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('fails its check when a helper cannot import a module', () => {
    // the same check the script runs, against a Python that lacks every third-party module
    const r = spawnSync('/usr/bin/python3', ['-I', '-S', join(HELPERS, 'pymodbus_server.py'), '--check-imports'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/No module named/);
  });
});
