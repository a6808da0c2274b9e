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

/**
 * Lines typed on a terminal in raw mode: nothing is echoed. What is typed past one line's end (a
 * pasted "pw\rpw\r") is kept for the next question; escape sequences (arrow, Home, Delete keys:
 * ESC [ … final byte, ECMA-48 §5.4) are dropped, never taken into the password; the end of input
 * (a closed session) or an error ends the question with a refusal and the terminal restored.
 */
function hiddenLines(stdin: NodeJS.ReadStream, err: (text: string) => void): { ask(prompt: string): Promise<string>; close(): void } {
  let buffered = '';
  let escape = 0; // 0: none; 1: after ESC; 2: inside a control sequence
  let waiting: { resolve: (line: string) => void; reject: (e: Error) => void; typed: string } | null = null;
  let ended: Error | null = null;
  const take = (): void => {
    const w = waiting;
    if (!w) return;
    while (buffered.length > 0) {
      const ch = buffered[0]!;
      buffered = buffered.slice(1);
      if (escape === 1) {
        escape = ch === '[' || ch === 'O' ? 2 : 0;
        continue;
      }
      if (escape === 2) {
        if (ch >= '@' && ch <= '~') escape = 0;
        continue;
      }
      if (ch === '\u001b') escape = 1;
      else if (ch === '\r' || ch === '\n') {
        if (ch === '\r' && buffered[0] === '\n') buffered = buffered.slice(1);
        waiting = null;
        err('\n');
        return w.resolve(w.typed);
      } else if (ch === '\u0003' || (ch === '\u0004' && w.typed === '')) {
        waiting = null;
        err('\n');
        return w.reject(new StreetboxError('E_USAGE', 'no password given'));
      } else if (ch === '\u007f' || ch === '\b') w.typed = [...w.typed].slice(0, -1).join('');
      else if (ch === '\u0015') w.typed = ''; // Ctrl-U
      else if (ch >= ' ') w.typed += ch;
    }
    if (ended) {
      waiting = null;
      w.reject(ended);
    }
  };
  const onData = (chunk: string): void => {
    buffered += chunk;
    take();
  };
  const onEnd = (): void => {
    ended = new StreetboxError('E_USAGE', 'no password given (the input ended)');
    take();
  };
  const onError = (e: Error): void => {
    ended = e;
    take();
  };
  stdin.setEncoding('utf8');
  stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.once('end', onEnd);
  stdin.once('error', onError);
  return {
    ask(prompt) {
      // the prompt only once echo is off: what is typed after it is never shown
      err(prompt);
      return new Promise<string>((resolve, reject) => {
        waiting = { resolve, reject, typed: '' };
        stdin.resume();
        take();
      });
    },
    close() {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
    },
  };
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
    const lines = hiddenLines(input.stdin, input.err);
    try {
      password = await lines.ask('password: ');
      if (password === '') throw new StreetboxError('E_USAGE', 'an empty password');
      const again = await lines.ask('again: ');
      if (again !== password) throw new StreetboxError('E_USAGE', 'the two passwords differ');
    } finally {
      lines.close();
    }
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
