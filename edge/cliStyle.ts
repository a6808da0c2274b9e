/**
 * How the CLI and the terminal log look: colours and ✔/✘ marks on a terminal, plain text when
 * piped or when NO_COLOR is set (https://no-color.org); FORCE_COLOR=1 forces colours on.
 */
export interface Style {
  readonly color: boolean;
  /** ✔/✘ marks (a terminal); otherwise ok()/fail() give words */
  readonly marks: boolean;
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

/**
 * A style for a stream: `styleFor(process.stdout)`. Colours follow the terminal, NO_COLOR and
 * FORCE_COLOR; the ✔/✘ marks follow the terminal too, and NO_COLOR does not take them away (it
 * asks for no colour, not for another output); FORCE_COLOR in a pipe asks for terminal output
 * (`| less -R`) and gets the marks with the colours.
 */
export function styleFor(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): Style {
  const color = wantsColor({ isTTY: stream.isTTY, env });
  return makeStyle(color, color || (stream.isTTY === true && env.TERM !== 'dumb'));
}

export function makeStyle(color: boolean, marks: boolean = color): Style {
  const red = sgr(color, 31, 39);
  const green = sgr(color, 32, 39);
  const yellow = sgr(color, 33, 39);
  const mark = (m: string, plain: string, paint: (s: string) => string) => (text?: string) => {
    const sym = marks ? paint(m) : plain;
    return text === undefined ? sym : `${sym} ${text}`;
  };
  return {
    color,
    marks,
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
