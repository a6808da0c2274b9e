import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { extractTarGz, tarHeader, writeTarGz } from '../../edge/ops/tar.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
afterEach(() => dir?.remove());

describe('backup tar (ustar + gzip)', () => {
  it('round-trips files of awkward sizes, and GNU tar reads what it writes', async () => {
    dir = tempDir('streetbox-tar-');
    const files = { 'empty.txt': Buffer.alloc(0), 'one.bin': randomBytes(1), 'block.bin': randomBytes(512), 'big.bin': randomBytes(3 * 65536 + 7) };
    for (const [name, data] of Object.entries(files)) writeFileSync(dir.file(name), data);
    const out = dir.file('x.tar.gz');
    await writeTarGz(out, Object.keys(files).map((name) => ({ name, path: dir.file(name) })));
    expect(execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n')).toEqual(Object.keys(files));

    mkdirSync(dir.file('ours'));
    expect(await extractTarGz(out, dir.file('ours'))).toEqual(Object.keys(files));
    mkdirSync(dir.file('gnu'));
    execFileSync('tar', ['-xzf', out, '-C', dir.file('gnu')]);
    for (const [name, data] of Object.entries(files)) {
      expect(readFileSync(dir.file(`ours/${name}`)).equals(data)).toBe(true);
      expect(readFileSync(dir.file(`gnu/${name}`)).equals(data)).toBe(true);
    }
  });

  it('rejects a bad checksum, a path in a name and a truncated archive', async () => {
    dir = tempDir('streetbox-tar-');
    mkdirSync(dir.file('x'));
    const h = tarHeader('a.txt', 10, 0);
    h[0] = 'b'.charCodeAt(0);
    writeFileSync(dir.file('bad.tar.gz'), gzipSync(Buffer.concat([h, Buffer.alloc(1536)])));
    await expect(extractTarGz(dir.file('bad.tar.gz'), dir.file('x'))).rejects.toThrow(/bad header checksum/);

    expect(() => tarHeader('../etc/passwd', 1, 0)).toThrow(/unsupported entry name/);

    writeFileSync(dir.file('short.tar.gz'), gzipSync(Buffer.concat([tarHeader('a.txt', 1000, 0), Buffer.alloc(100)])));
    await expect(extractTarGz(dir.file('short.tar.gz'), dir.file('x'))).rejects.toThrow(/truncated/);
  });
});
