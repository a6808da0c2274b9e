/**
 * `streetbox hash-password`: the password from a pipe (--stdin) or typed on a real terminal (a
 * pseudo-terminal made by tests/ops/ttyRun.py) without echo; the hash it prints is what the
 * broker's loader and Node-RED's login accept, and `validate` places a malformed hash at its line.
 * Each run is a process of its own (~1.3 s of CPU to start): the runs of a test that do not
 * depend on each other go at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BrokerUsers } from '../../edge/broker/auth.js';
import { isBcryptHash, isPasswordHash } from '../../edge/control/passwords.js';
import { CLI_ARGS, ROOT, collect, runCli, tempGateway, type CliResult } from '../support/cli.js';

const TTY_RUN = join(import.meta.dirname, 'ttyRun.py');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** hash-password with the password piped in. */
function piped(args: string[], input: string): Promise<CliResult> {
  const child = spawn(process.execPath, [...CLI_ARGS, 'hash-password', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const done = collect(child, 30_000);
  child.stdin!.end(input);
  return done;
}

/**
 * hash-password on a terminal: each answer is typed once its prompt has appeared. Resolves with
 * the exit code, stdout (a pipe) and everything the terminal showed.
 */
function onTerminal(args: string[], answers: { prompt: string; type: string }[]): Promise<CliResult & { terminal: string }> {
  const child = spawn('python3', [TTY_RUN, process.execPath, ...CLI_ARGS, 'hash-password', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const done = collect(child, 30_000);
  let terminal = '';
  let next = 0;
  let from = 0;
  child.stderr!.on('data', (d: string | Buffer) => {
    terminal += d.toString();
    for (let at: number; next < answers.length && (at = terminal.indexOf(answers[next]!.prompt, from)) >= 0; next++) {
      from = at + answers[next]!.prompt.length;
      child.stdin!.write(answers[next]!.type);
    }
    if (next === answers.length) child.stdin!.end();
  });
  return done.then((r) => ({ ...r, terminal }));
}

describe('streetbox hash-password', () => {
  it('hashes a piped password (--stdin) in the scrypt format the broker loads, and the broker logs its user in with it', async () => {
    const r = await piped(['--stdin'], 'a long enough broker password\n');
    expect(r.code, r.stderr).toBe(0);
    const hash = r.stdout.trim();
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(isPasswordHash(hash)).toBe(true);
    expect(r.stderr).toBe('');

    const users = new BrokerUsers(false);
    await users.load([{ username: 'tech', passwordHash: hash, role: 'technician' }]);
    // the final newline of the pipe is not part of the password
    expect(await users.login('tech', Buffer.from('a long enough broker password'))).toMatchObject({ ok: true });
    expect(await users.login('tech', Buffer.from('a long enough broker password\n'))).toMatchObject({ ok: false });

    // a devices.yaml with it validates
    const g = tempGateway(`gateway: { id: h }\nbroker:\n  users:\n    - { username: tech, passwordHash: "${hash}", role: technician }\n`);
    cleanups.push(g.cleanup);
    const v = await runCli(['validate', g.config]);
    expect(v.code, v.stderr).toBe(0);
  });

  it('makes a bcrypt hash for Node-RED editor users (--for node-red) that Node-RED\'s own bcryptjs accepts', async () => {
    const r = await piped(['--for', 'node-red', '--stdin'], 'node-red editor password');
    expect(r.code, r.stderr).toBe(0);
    const hash = r.stdout.trim();
    expect(isBcryptHash(hash)).toBe(true);
    const bcrypt = createRequire(createRequire(import.meta.url).resolve('node-red'))('bcryptjs') as { compareSync(p: string, h: string): boolean };
    expect(bcrypt.compareSync('node-red editor password', hash)).toBe(true);
    expect(bcrypt.compareSync('another password', hash)).toBe(false);
  });

  it('never reads a password from a pipe without --stdin, nor an empty one, and warns about a short one', async () => {
    const [noFlag, empty, short, arg] = await Promise.all([
      piped([], 'secret\n'),
      piped(['--stdin'], '\n'),
      piped(['--stdin'], 'short'),
      // a password is never an argument
      runCli(['hash-password', 'secret']),
    ]);
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toContain('give --stdin');
    expect(noFlag.stdout).toBe('');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('an empty password');
    expect(short.code, short.stderr).toBe(0);
    expect(short.stderr).toContain('fewer than 12 characters');
    expect(arg.code).toBe(2);
  });

  it('asks twice on a terminal without echoing what is typed', async () => {
    const [r, edited, differ] = await Promise.all([
      onTerminal([], [
        { prompt: 'password: ', type: 'typed on a terminal!\r' },
        { prompt: 'again: ', type: 'typed on a terminal!\r' },
      ]),
      // backspace edits what was typed; two different answers are refused
      onTerminal([], [
        { prompt: 'password: ', type: 'long password xx\x7f\x7fyz\r' },
        { prompt: 'again: ', type: 'long password yz\r' },
      ]),
      onTerminal([], [
        { prompt: 'password: ', type: 'long password one\r' },
        { prompt: 'again: ', type: 'long password two\r' },
      ]),
    ]);
    expect(r.code, r.terminal).toBe(0);
    expect(r.terminal).toContain('password: ');
    expect(r.terminal).toContain('again: ');
    expect(r.terminal).not.toContain('typed');
    const users = new BrokerUsers(false);
    await users.load([{ username: 'tech', passwordHash: r.stdout.trim(), role: 'technician' }]);
    expect(await users.login('tech', Buffer.from('typed on a terminal!'))).toMatchObject({ ok: true });

    expect(edited.code, edited.terminal).toBe(0);
    expect(differ.code).toBe(2);
    expect(differ.terminal).toContain('the two passwords differ');
    expect(differ.stdout).toBe('');
  });

  it('drops arrow, Home and Delete keys (escape sequences) instead of taking them into the password, and keeps a pasted second line', async () => {
    const [keys, pasted] = await Promise.all([
      onTerminal([], [
        { prompt: 'password: ', type: 'long \x1b[Dpassword\x1b[3~ yz\x1b[H\x1bOF\r' },
        { prompt: 'again: ', type: 'long password yz\r' },
      ]),
      // both answers pasted at the first prompt, in one piece
      onTerminal([], [{ prompt: 'password: ', type: 'pasted password!\rpasted password!\r' }]),
    ]);
    expect(keys.code, keys.terminal).toBe(0);
    const users = new BrokerUsers(false);
    await users.load([{ username: 'tech', passwordHash: keys.stdout.trim(), role: 'technician' }]);
    expect(await users.login('tech', Buffer.from('long password yz'))).toMatchObject({ ok: true });

    expect(pasted.code, pasted.terminal).toBe(0);
    expect(pasted.stdout.trim()).toMatch(/^scrypt\$/);
  });
});

describe('validate: passwordHash', () => {
  it('rejects a malformed broker or Node-RED passwordHash at its line and column, naming the command and never the value', async () => {
    const g = tempGateway(
      [
        'gateway: { id: h }',
        'broker:',
        '  users:',
        '    - { username: a, passwordHash: "scrypt$abc", role: viewer }',
        '    - username: b',
        '      passwordHash: "$2b$10$not-a-scrypt-hash-at-all-000000000000000000000000000000"',
        '      role: viewer',
        'nodeRed:',
        '  users:',
        '    - { username: c, passwordHash: "scrypt$32768$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g" }',
        '',
      ].join('\n'),
    );
    cleanups.push(g.cleanup);
    const r = await runCli(['validate', g.config]);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n');
    expect(lines).toContain(`${g.config}:4:36 broker.users[0].passwordHash: expected a scrypt hash "scrypt$N$r$p$salt$hash" made by \`streetbox hash-password\`, got a value of 10 characters (not shown)`);
    expect(lines.find((l) => l.startsWith(`${g.config}:6:21 broker.users[1].passwordHash: expected a scrypt hash`))).toBeDefined();
    expect(lines.find((l) => l.startsWith(`${g.config}:10:36 nodeRed.users[0].passwordHash: expected a bcrypt hash`) && l.includes('`streetbox hash-password --for node-red`'))).toBeDefined();
    expect(r.stderr).not.toContain('not-a-scrypt-hash');
    expect(r.stderr).not.toContain('c2FsdHNhbHRzYWx0');
  });
});
