/** devices.yaml replaced atomically: the new text, the old mode, no temp file left, the old file kept on failure. */
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex, tempPathFor, writeFileAtomic, writeFileAtomicAsync } from '../../edge/reconfig/atomicFile.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
beforeEach(() => {
  dir = tempDir('streetbox-atomic-');
});
afterEach(() => dir.remove());

const writers = [
  ['writeFileAtomic', async (path: string, text: string) => writeFileAtomic(path, text)],
  ['writeFileAtomicAsync', writeFileAtomicAsync],
] as const;

describe.each(writers)('%s', (_name, write) => {
  it('replaces the content and keeps the mode, leaving no temp file', async () => {
    const file = dir.file('devices.yaml');
    writeFileSync(file, 'gateway:\n  id: old\n');
    chmodSync(file, 0o600);
    await write(file, 'gateway:\n  id: new\n# é\n');
    expect(readFileSync(file, 'utf8')).toBe('gateway:\n  id: new\n# é\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir.path)).toEqual(['devices.yaml']);

    chmodSync(file, 0o640);
    await write(file, '');
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  it('creates a file that does not exist yet', async () => {
    const file = dir.file('new.yaml');
    await write(file, 'a: 1\n');
    expect(readFileSync(file, 'utf8')).toBe('a: 1\n');
    expect(readdirSync(dir.path)).toEqual(['new.yaml']);
  });

  it('replaces the file a symlink points at, keeping the link', async () => {
    mkdirSync(dir.file('etc'));
    const real = dir.file('etc/devices.yaml');
    writeFileSync(real, 'old\n');
    const link = dir.file('devices.yaml');
    symlinkSync(real, link);
    await write(link, 'new\n');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toBe('new\n');
    expect(readdirSync(dir.file('etc'))).toEqual(['devices.yaml']);
  });

  it('on failure removes the temp file and leaves the original as it was', async () => {
    // the target is a directory with a file in it: the rename over it fails after the temp file is written and synced
    const target = dir.file('devices.yaml');
    mkdirSync(target);
    writeFileSync(dir.file('devices.yaml/keep'), 'original');
    await expect(write(target, 'new text\n')).rejects.toMatchObject({ code: 'E_CONFIG_APPLY', message: expect.stringContaining(target) });
    expect(readFileSync(dir.file('devices.yaml/keep'), 'utf8')).toBe('original');
    expect(readdirSync(dir.path)).toEqual(['devices.yaml']);

    // a directory that does not exist: nothing is created anywhere
    await expect(write(dir.file('missing/devices.yaml'), 'x')).rejects.toMatchObject({ code: 'E_CONFIG_APPLY' });
    expect(readdirSync(dir.path)).toEqual(['devices.yaml']);
  });

  it.skipIf(process.getuid?.() === 0)('leaves the original when the directory is not writable', async () => {
    const sub = dir.file('ro');
    mkdirSync(sub);
    const file = dir.file('ro/devices.yaml');
    writeFileSync(file, 'original\n');
    chmodSync(sub, 0o555);
    try {
      await expect(write(file, 'new\n')).rejects.toMatchObject({ code: 'E_CONFIG_APPLY' });
      expect(readFileSync(file, 'utf8')).toBe('original\n');
      expect(readdirSync(sub)).toEqual(['devices.yaml']);
    } finally {
      chmodSync(sub, 0o755);
    }
  });
});

describe('tempPathFor and sha256Hex', () => {
  it('names a hidden temp file beside the target, different each time', () => {
    const a = tempPathFor('/etc/streetbox/devices.yaml');
    const b = tempPathFor('/etc/streetbox/devices.yaml');
    expect(a).toMatch(new RegExp(`^/etc/streetbox/\\.devices\\.yaml\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
    expect(a).not.toBe(b);
  });

  it('hashes the UTF-8 bytes', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // é is the two bytes c3 a9
    expect(sha256Hex('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
  });
});
