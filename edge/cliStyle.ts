/**
 * How the CLI and the terminal log look: colours and ✔/✘ marks on a terminal, plain text when
 * piped or when NO_COLOR is set (https://no-color.org); FORCE_COLOR=1 forces colours on.
 */
export interface Style {
  readonly color: boolean;
  ok(text?: string): string;
  fail(text?: string): string;
  warn(text?: string): string;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  magenta(text: string): string;
}

export interface StyleEnv {
  isTTY?: boolean | undefined;
  env?: NodeJS.ProcessEnv;
}

/** Whether a stream with this TTY state, in this environment, gets colours. */
export function wantsColor({ isTTY, env = process.env }: StyleEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

const sgr = (on: boolean, open: number, close: number) => (text: string) => (on ? `\x1b[${open}m${text}\x1b[${close}m` : text);

/** A style for a stream: `styleFor(process.stdout)`. */
export function styleFor(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): Style {
  return makeStyle(wantsColor({ isTTY: stream.isTTY, env }));
}

export function makeStyle(color: boolean): Style {
  const red = sgr(color, 31, 39);
  const green = sgr(color, 32, 39);
  const yellow = sgr(color, 33, 39);
  const mark = (m: string, plain: string, paint: (s: string) => string) => (text?: string) => {
    const sym = color ? paint(m) : plain;
    return text === undefined ? sym : `${sym} ${text}`;
  };
  return {
    color,
    // ✔/✘ on a terminal; when piped, words a script can grep
    ok: mark('✔', 'ok', green),
    fail: mark('✘', 'FAIL', red),
    warn: mark('!', 'warn', yellow),
    bold: sgr(color, 1, 22),
    dim: sgr(color, 2, 22),
    red,
    green,
    yellow,
    cyan: sgr(color, 36, 39),
    magenta: sgr(color, 35, 39),
  };
}

/** Strips ANSI colour sequences (tests, widths). */
export function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}
