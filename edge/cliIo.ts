/**
 * What a CLI command may know of its output: where its text goes, and whether a terminal reads
 * it. edge/cli.ts fills it for stdout and stderr (`readinessOf` in edge/cliData.ts for
 * `outReady`); tests pass their own. The command files import it from here, not from
 * edge/cli.ts, which imports them.
 */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** out is a terminal: colours and ✔/✘ (edge/cliStyle.ts, which also reads NO_COLOR and FORCE_COLOR) */
  outIsTTY?: boolean;
  /** err is a terminal: a live progress line */
  errIsTTY?: boolean;
  /** resolves true once out can take more, false once it is gone (its reader closed); absent: at once. Long output (`export`) waits on it */
  outReady?: () => Promise<boolean>;
}
