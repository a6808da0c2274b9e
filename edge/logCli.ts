/**
 * `streetbox logs [file]`: JSON log lines (the journal, a file) as people read them, the same
 * lines a terminal shows, in the gateway's time zone; nothing to fetch from the internet:
 *
 *   journalctl -u streetbox -o cat | streetbox logs --level warn
 *   streetbox logs gateway.log --zone Europe/Amsterdam
 *
 * Lines that are not pino records (plain text, a `<6>` prefix) pass through unchanged.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { Option, type Command } from 'commander';
import { parse } from 'yaml';
import type { CliIo } from './cliIo.js';
import { wantsColor } from './cliStyle.js';
import { StreetboxError } from './errors.js';
import { LEVEL_VALUES, formatRecord, parseRecord, recordLevel, type PrettyOptions } from './logFormat.js';
import { isoLocal } from './timeFormat.js';

export interface LogCliOptions {
  /** the default of --config: $STREETBOX_CONFIG, else devices.yaml */
  defaultConfig?: string;
  /** where lines come from when no file is given: process.stdin */
  stdin?: AsyncIterable<string | Buffer>;
  /** whether io.out is a terminal (colours): process.stdout.isTTY */
  isTTY?: boolean;
  /** NO_COLOR and FORCE_COLOR are read here: process.env */
  env?: NodeJS.ProcessEnv;
}

function validZone(zone: string): boolean {
  try {
    isoLocal(0, zone);
    return true;
  } catch {
    return false;
  }
}

/**
 * gateway.timezone of a devices.yaml, or UTC when the file cannot be read or names none. Read
 * from the YAML alone, not validated: the secrets a full load needs (${NAME} from the unit's
 * EnvironmentFile) are not in an operator's shell.
 */
export function configuredZone(file: string): string {
  try {
    const doc = parse(readFileSync(file, 'utf8')) as { gateway?: { timezone?: unknown } } | null;
    const zone = doc?.gateway?.timezone;
    return typeof zone === 'string' && validZone(zone) ? zone : 'UTC';
  } catch {
    return 'UTC';
  }
}

/** The lines of a byte or text stream, without their "\n" (or "\r\n"). */
async function* linesOf(input: AsyncIterable<string | Buffer>): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of input) {
    const parts = (rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk))).split('\n');
    rest = parts.pop() ?? '';
    if (parts.length > 0) yield parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }
  rest += decoder.end();
  if (rest !== '') yield [rest.endsWith('\r') ? rest.slice(0, -1) : rest];
}

export interface PrintLogOptions extends PrettyOptions {
  /** records below this pino level are left out; other lines always pass */
  minLevel?: number;
}

/** Writes each line of `input` to `out` as people read it; returns the number of lines read. */
export async function printLog(input: AsyncIterable<string | Buffer>, out: (text: string) => void, opts: PrintLogOptions = {}): Promise<number> {
  let count = 0;
  for await (const lines of linesOf(input)) {
    let text = '';
    for (const line of lines) {
      count++;
      const record = parseRecord(line);
      if (!record) text += `${line}\n`;
      else if (opts.minLevel === undefined || recordLevel(record) >= opts.minLevel) text += `${formatRecord(record, opts).join('\n')}\n`;
    }
    if (text !== '') out(text);
  }
  return count;
}

export function registerLogCommands(program: Command, io: CliIo, opts: LogCliOptions = {}): void {
  const defaultConfig = opts.defaultConfig ?? process.env.STREETBOX_CONFIG ?? 'devices.yaml';
  program
    .command('logs')
    .description("print JSON log lines (a file, or stdin: journalctl -u streetbox -o cat | streetbox logs) as readable lines in the gateway's time zone")
    .argument('[file]', 'a file of JSON log lines (default: stdin)')
    .addOption(new Option('-c, --config <file>', 'the gateway configuration, for its time zone').default(defaultConfig))
    .option('--zone <IANA>', 'the time zone of the times shown (default: gateway.timezone of --config, else UTC)')
    .addOption(new Option('--level <level>', 'only records at this level or above').choices(Object.keys(LEVEL_VALUES)))
    .action(async (file: string | undefined, o: { config: string; zone?: string; level?: string }) => {
      if (o.zone !== undefined && !validZone(o.zone)) throw new StreetboxError('E_USAGE', `"--zone" must be an IANA time zone like "Europe/Amsterdam" or "UTC", got "${o.zone}"`);
      const zone = o.zone ?? configuredZone(o.config);
      const color = wantsColor({ isTTY: opts.isTTY ?? process.stdout.isTTY, env: opts.env ?? process.env });
      const input = file === undefined || file === '-' ? (opts.stdin ?? process.stdin) : createReadStream(file);
      try {
        await printLog(input, io.out, { zone, color, ...(o.level !== undefined ? { minLevel: LEVEL_VALUES[o.level]! } : {}) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new StreetboxError('E_NOT_FOUND', `${file}: no such file`, { cause: err });
        if (code === 'EISDIR') throw new StreetboxError('E_USAGE', `${file}: expected a file of log lines, got a directory`, { cause: err });
        throw err;
      }
    });
}
