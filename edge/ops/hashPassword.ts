/**
 * `streetbox hash-password`: a `passwordHash` for devices.yaml. The password is read from the
 * terminal with echo off (asked twice), or from a pipe with `--stdin`; never from the command
 * line, where `ps` and the shell history would show it. Broker users get the scrypt format the
 * broker loads (edge/control/passwords.ts), Node-RED editor users the bcrypt format Node-RED checks.
 */
import { hashPassword } from '../control/passwords.js';
import { StreetboxError } from '../errors.js';
import { bcryptHash } from './initSecrets.js';

export type HashFor = 'broker' | 'node-red';

export interface PasswordInput {
  stdin: NodeJS.ReadStream;
  /** the prompt and warnings (stderr) */
  err: (text: string) => void;
  /** --stdin: read a pipe to its end */
  fromPipe: boolean;
}

/** Reads one line from a terminal in raw mode: nothing is echoed. */
function readHidden(stdin: NodeJS.ReadStream, err: (text: string) => void, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (fn: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      err('\n');
      fn();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(() => resolve(typed));
        if (ch === '\u0003' || (ch === '\u0004' && typed === '')) return finish(() => reject(new StreetboxError('E_USAGE', 'no password given')));
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (ch === '\u0015') typed = ''; // Ctrl-U
        else if (ch >= ' ') typed += ch;
      }
    };
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    // the prompt only once echo is off: what is typed after it is never shown
    err(prompt);
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** Everything from a pipe, without one final newline. */
async function readPipe(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function readPassword(input: PasswordInput): Promise<string> {
  let password: string;
  if (input.stdin.isTTY) {
    password = await readHidden(input.stdin, input.err, 'password: ');
    if (password === '') throw new StreetboxError('E_USAGE', 'an empty password');
    const again = await readHidden(input.stdin, input.err, 'again: ');
    if (again !== password) throw new StreetboxError('E_USAGE', 'the two passwords differ');
  } else if (input.fromPipe) {
    password = await readPipe(input.stdin);
  } else {
    throw new StreetboxError('E_USAGE', 'standard input is not a terminal: give --stdin to read the password from a pipe (never on the command line)');
  }
  if (password === '') throw new StreetboxError('E_USAGE', 'an empty password');
  return password;
}

/** The hash for `broker.users[].passwordHash` (scrypt) or `nodeRed.users[].passwordHash` (bcrypt). */
export async function passwordHashFor(password: string, kind: HashFor, warn: (text: string) => void): Promise<string> {
  if ([...password].length < 12) warn('warning: a password of fewer than 12 characters is easy to guess\n');
  if (kind === 'broker') return hashPassword(password);
  // bcrypt reads at most 72 bytes of a password
  if (Buffer.byteLength(password) > 72) warn('warning: bcrypt uses only the first 72 bytes of the password\n');
  return bcryptHash(password);
}
