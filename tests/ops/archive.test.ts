/**
 * Backup archives through node-tar (edge/ops/archive.ts), against the system's GNU tar: what we
 * write GNU tar reads, and what GNU tar writes (`./` names or bare, long names, plain tar) we read;
 * links, paths out of the target and damaged archives are refused. node-tar is loaded only when
 * an archive is handled.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { packTarGz, unpackTarGz } from '../../edge/ops/archive.js';
import { ROOT } from '../support/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
afterEach(() => dir?.remove());

const LONG = `${'a-long-directory-name-'.repeat(4)}/${'and-a-long-file-name-'.repeat(4)}.json`;

/** A tree of awkward sizes: empty, 1 byte, one block, several 64 KiB chunks, nested, a name past 100 bytes. */
function tree(root: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'empty.txt': Buffer.alloc(0),
    'one.bin': randomBytes(1),
    'block.bin': randomBytes(512),
    'big.bin': randomBytes(3 * 65536 + 7),
    'node-red/flows.json': Buffer.from('[{"id":"a"}]'),
    'node-red/lib/flows/x.json': Buffer.from('{}'),
    [`node-red/${LONG}`]: Buffer.from('long'),
  };
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), data);
  }
  return files;
}

function expectTree(root: string, files: Record<string, Buffer>): void {
  for (const [name, data] of Object.entries(files)) expect(readFileSync(join(root, name)).equals(data), name).toBe(true);
}

function walk(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((p) => statSync(join(root, p)).isFile()).sort();
}

describe('backup archives (node-tar)', () => {
  it('writes a gzip tar, mode 0600, that GNU tar lists and extracts byte for byte, and reads it back', async () => {
    dir = tempDir('streetbox-archive-');
    mkdirSync(dir.file('src'));
    const files = tree(dir.file('src'));
    const out = dir.file('x.tar.gz');
    let reported = 0;
    await packTarGz(out, dir.file('src'), ['empty.txt', 'one.bin', 'block.bin', 'big.bin', 'node-red'], (n) => (reported = n));
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(reported).toBeGreaterThan(3 * 65536);
    const listing = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n');
    expect(listing.slice(0, 4)).toEqual(['empty.txt', 'one.bin', 'block.bin', 'big.bin']);
    expect(listing).toContain(`node-red/${LONG}`);

    mkdirSync(dir.file('gnu'));
    execFileSync('tar', ['-xzf', out, '-C', dir.file('gnu')]);
    expectTree(dir.file('gnu'), files);
    mkdirSync(dir.file('ours'));
    const names = await unpackTarGz(out, dir.file('ours'));
    expect(names).toContain('big.bin');
    expectTree(dir.file('ours'), files);
  });

  it.each([
    ['tar czf x.tgz . (names start with ./)', ['-czf', 'X', '.']],
    ['tar czf x.tgz <names> (bare names)', ['-czf', 'X', 'empty.txt', 'one.bin', 'block.bin', 'big.bin', 'node-red']],
    ['tar czf --format=pax', ['--format=pax', '-czf', 'X', '.']],
    ['tar cf (not compressed)', ['-cf', 'X', '.']],
  ])('reads what GNU tar writes: %s', async (_name, args) => {
    dir = tempDir('streetbox-archive-');
    mkdirSync(dir.file('src'));
    const files = tree(dir.file('src'));
    const out = dir.file('gnu.tgz');
    execFileSync('tar', args.map((a) => (a === 'X' ? out : a)), { cwd: dir.file('src') });
    mkdirSync(dir.file('x'));
    let read = 0;
    await unpackTarGz(out, dir.file('x'), (n) => (read = n));
    expect(read).toBe(statSync(out).size);
    expectTree(dir.file('x'), files);
    expect(walk(dir.file('x'))).toEqual(Object.keys(files).sort());
  });

  it('refuses links and never writes outside the target directory', async () => {
    dir = tempDir('streetbox-archive-');
    mkdirSync(dir.file('src'));
    writeFileSync(dir.file('src/real.txt'), 'x');
    symlinkSync('/etc/passwd', dir.file('src/link'));
    execFileSync('tar', ['-czf', dir.file('link.tgz'), '.'], { cwd: dir.file('src') });
    mkdirSync(dir.file('x'));
    await expect(unpackTarGz(dir.file('link.tgz'), dir.file('x'))).rejects.toThrow(/unexpected entries .*link \(SymbolicLink\)/);
    expect(existsSync(dir.file('x/link'))).toBe(false);

    // an entry named ../escaped.txt (GNU tar writes what --transform makes of the name)
    mkdirSync(dir.file('y'));
    mkdirSync(dir.file('y/inner'));
    execFileSync('tar', ['-czf', dir.file('up.tgz'), '--transform', 's,^,../,', 'real.txt'], { cwd: dir.file('src') });
    expect(execFileSync('tar', ['-tzPf', dir.file('up.tgz')], { encoding: 'utf8' }).trim()).toBe('../real.txt');
    await expect(unpackTarGz(dir.file('up.tgz'), dir.file('y/inner'))).rejects.toThrow(/path contains '\.\.'/);
    expect(existsSync(dir.file('y/real.txt'))).toBe(false);
  });

  it('refuses what is not a tar, and a truncated archive', async () => {
    dir = tempDir('streetbox-archive-');
    mkdirSync(dir.file('x'));
    writeFileSync(dir.file('junk.tgz'), 'not an archive at all');
    await expect(unpackTarGz(dir.file('junk.tgz'), dir.file('x'))).rejects.toThrow(/not a readable tar archive|an empty archive/);
    writeFileSync(dir.file('zjunk.tgz'), gzipSync(Buffer.from('gzip, but no tar inside')));
    await expect(unpackTarGz(dir.file('zjunk.tgz'), dir.file('x'))).rejects.toThrow(/not a readable tar archive|an empty archive/);

    mkdirSync(dir.file('src'));
    writeFileSync(dir.file('src/big.bin'), randomBytes(100_000));
    await packTarGz(dir.file('whole.tgz'), dir.file('src'), ['big.bin']);
    const whole = readFileSync(dir.file('whole.tgz'));
    writeFileSync(dir.file('cut.tgz'), whole.subarray(0, Math.floor(whole.length / 2)));
    await expect(unpackTarGz(dir.file('cut.tgz'), dir.file('x'))).rejects.toThrow(/not a readable tar archive/);
  });

  it('node-tar is imported by the backups and the release installer only, and only when called (never on the gateway\'s start path)', () => {
    const sources = readdirSync(join(ROOT, 'edge'), { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.ts'));
    const importers = sources.filter((p) => /from ['"]tar['"]|import\(['"]tar['"]\)|require\(['"]tar['"]\)/.test(readFileSync(join(ROOT, 'edge', p), 'utf8')));
    expect(importers.map((p) => relative('.', join('edge', p))).sort()).toEqual(['edge/firmware/selfUpdate.ts', 'edge/ops/archive.ts']);
    for (const file of ['edge/ops/archive.ts', 'edge/firmware/selfUpdate.ts']) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      expect(text, file).not.toMatch(/^import .* from ['"]tar['"]/m);
      expect(text, file).toMatch(/await import\('tar'\)/);
    }
  });
});
