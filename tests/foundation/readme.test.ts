/**
 * The README is true: its commands are run as written, and what it says a command prints is
 * what the command prints.
 *
 * - The configuration error example: the README's bad.yaml, validated, prints exactly the
 *   README's lines and exits 2.
 * - The quick start: `npm start` (the first command after `npm ci`, which is what CI itself
 *   runs) on the shipped devices.yaml, in a copy of the checkout (its own data/), on the demo's
 *   own ports; then every line of "Try it while it runs", as written, in bash, against it.
 *   (`npm test`, the second command, is this very suite.)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, collect } from '../support/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The body of the first fenced block (```lang) after `marker`. */
function blockAfter(marker: string, lang = ''): string {
  const at = README.indexOf(marker);
  if (at < 0) throw new Error(`README has no "${marker}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(README.slice(at));
  if (!m) throw new Error(`README has no \`\`\`${lang} block after "${marker}"`);
  return m[1]!;
}

/** Shell lines of a block: `\`-continued lines joined, comments after the command kept (bash ignores them). */
function shellLines(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

describe('README', () => {
  const dir = tempDir('streetbox-readme-');
  afterAll(() => dir.remove());

  it('prints exactly its configuration error example', () => {
    writeFileSync(dir.file('bad.yaml'), `${blockAfter('For this `bad.yaml`', 'yaml')}\n`);
    const expected = blockAfter('validate bad.yaml` prints');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/streetbox.js'), 'validate', 'bad.yaml'], { cwd: dir.path, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect((r.stdout + r.stderr).trimEnd()).toBe(expected);
  });

  it('runs the quick start and every "Try it" line against the demo, as written', async () => {
    const quick = shellLines(blockAfter('## Quick start', 'sh')).map((l) => l.replace(/\s+#.*$/, ''));
    expect(quick).toEqual(['npm ci && npm start', 'npm test']);
    const demoPorts = [8080, 1883, 15020];
    for (const port of demoPorts) expect(await tcpPortFree(port), `port ${port} of the demo is in use on this machine`).toBe(true);

    // a checkout of our own: its files, the built bundle and node_modules of this one
    const co = dir.file('checkout');
    mkdirSync(co);
    for (const f of ['package.json', 'devices.yaml', 'devices.schema.json']) copyFileSync(join(ROOT, f), join(co, f));
    for (const d of ['bin', 'dist', 'node_modules', 'edge']) symlinkSync(join(ROOT, d), join(co, d));
    const npm = spawn('npm', ['start'], { cwd: co, env: { ...process.env, STREETBOX_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const done = collect(npm, 120_000);
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(`the demo running:\n${out}`, () => out.includes('"msg":"streetbox running"'), 60_000);
      const T = 'demo-technician-token-0001';
      // every simulated device answers before the commands that drive them
      await waitFor(
        'the demo devices online', async () => {
          const r = await fetch('http://127.0.0.1:8080/api/v1/devices', { headers: { authorization: `Bearer ${T}` } }).catch(() => null);
          if (!r || r.status !== 200) return false;
          const body = (await r.json()) as { devices: { id: string; online: boolean | null }[] };
          return ['lamp-ctrl-03', 'tc-01'].every((id) => body.devices.find((d) => d.id === id)?.online === true);
        }, 30_000,
      );

      const lines = shellLines(blockAfter('Try it while it runs', 'sh'));
      expect(lines.length).toBeGreaterThanOrEqual(7);
      const script = lines.map((l, i) => `echo "@@${i}"\n${l}\necho "@@rc=$?"`).join('\n');
      const output = execFileSync('timeout', ['60', 'bash', '-c', script], { cwd: co, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      const results = output
        .split(/^@@(\d+)\n/m)
        .slice(1)
        .reduce<Record<string, { out: string; rc: number }>>((acc, cur, i, all) => {
          if (i % 2 === 0) {
            const body = all[i + 1] ?? '';
            const rc = /@@rc=(\d+)\s*$/.exec(body);
            acc[lines[Number(cur)]!] = { out: body.replace(/@@rc=\d+\s*$/, ''), rc: rc ? Number(rc[1]) : -1 };
          }
          return acc;
        }, {});
      const of = (prefix: string): { out: string; rc: number } => {
        const key = Object.keys(results).find((k) => k.startsWith(prefix));
        if (!key) throw new Error(`no README line starting "${prefix}"; lines: ${lines.join(' | ')}`);
        return results[key]!;
      };
      for (const [line, r] of Object.entries(results)) expect(r.rc, `${line}\n${r.out}`).toBe(0);
      expect(JSON.parse(of('curl -s -H "Authorization: Bearer $T" localhost:8080/api/v1/status').out)).toHaveProperty('components');
      expect(JSON.parse(of('curl -s -H "Authorization: Bearer $T" -H').out)).toMatchObject({ id: expect.any(String) });
      expect(of('mosquitto_sub').out.split('\n').filter((l) => l.startsWith('streetbox/demo-cabinet-01/')).length).toBe(10);
      expect(of('STREETBOX_TOKEN=$T bin/streetbox.js dim').out).toMatch(/verified/);
      expect(of('bin/streetbox.js status').out).toContain('demo-cabinet-01');
      const csv = of('bin/streetbox.js export').out.trim().split('\n');
      expect(csv).toHaveLength(6); // a header and five rows
      expect(csv[0]).toMatch(/^seq,/);
    } finally {
      // npm start runs the gateway as its child: stop the group as Ctrl-C does
      process.kill(-npm.pid!, 'SIGINT');
    }
    const r = await done;
    // npm returned only once the gateway had stopped and released its data file (Ctrl-C under
    // `npm start` must not give the prompt back while the gateway still holds it)
    expect(existsSync(join(co, 'data', 'streetbox.db.pid')), 'the pid lock is still held after npm start returned').toBe(false);
    expect(r.code).toBe(0);
    expect(out + r.stdout).toContain('"msg":"gateway stopped"');
  }, 180_000);
});

function tcpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
