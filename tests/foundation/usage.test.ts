/**
 * A usage error prints the error and a one-line hint naming the command's --help, never the
 * whole help, and exits 2.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

function cli(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/streetbox.js'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('usage errors', () => {
  it.each([
    [['dim'], /missing required argument 'target'/, 'hint: streetbox dim --help shows its usage'],
    [['export', '--after', 'x'], /"--after" must be an integer >= 0, got "x"/, 'hint: streetbox export --help shows its usage'],
    [['schedule', 'preview', '--days'], /option '--days <n>' argument missing/, 'hint: streetbox schedule preview --help shows its usage'],
    [['frobnicate'], /unknown command 'frobnicate'/, 'hint: streetbox --help lists the commands'],
    [['status', '--jsno'], /unknown option '--jsno'/, 'hint: streetbox status --help shows its usage'],
  ])('streetbox %j: the error and one hint line, exit 2', (args, error, hint) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(error);
    expect(r.err.trimEnd().split('\n').at(-1)).toBe(hint);
    expect(r.err).not.toMatch(/Usage:|Options:|Commands:/);
    expect(r.err.trimEnd().split('\n').length).toBeLessThanOrEqual(3);
  });
});

describe('a reader that goes away', () => {
  it('ends `streetbox logs … | head -1` quietly: exit 0, no EPIPE stack', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streetbox-epipe-'));
    try {
      const log = join(dir, 'big.log');
      const line = `${JSON.stringify({ level: 30, time: 1_764_000_000_000, msg: 'a line of a big log' })}\n`;
      writeFileSync(log, line.repeat(200_000)); // ~14 MB: far more than a pipe holds
      const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${join(ROOT, 'bin/streetbox.js')}" logs "${log}" | head -1`], { encoding: 'utf8' });
      expect(r.stdout).toContain('a line of a big log');
      expect(r.stderr).not.toMatch(/EPIPE|Unhandled|at /);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
