/**
 * The `streetbox` command. Exit codes: 0 ok, 1 runtime failure, 2 bad input.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { packageVersion } from './assets.js';
import { ConfigError, loadConfig, formatIssues } from './config/index.js';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, StreetboxError, errorMessage, type ErrorCode } from './errors.js';
import { registerModbusCommands } from './drivers/modbus/cli.js';
import { registerControlCommands } from './control/cli.js';
import { registerOpsCommands } from './ops/cli.js';
import { registerConfigCommands } from './reconfig/cli.js';
import { REFUSAL_CODES, registerFirmwareCommands } from './firmware/cli.js';
import { createLogger, type LogFormat } from './log.js';
import { configuredZone, registerLogCommands } from './logCli.js';
import { exportData, printStatus, readinessOf } from './cliData.js';
import type { CliIo } from './cliIo.js';

const DEFAULT_CONFIG = process.env.STREETBOX_CONFIG ?? 'devices.yaml';

/** A CLI failure with the exit code it should produce. */
class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

function intArg(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`"${name}" must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

const stdio: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  outIsTTY: process.stdout.isTTY === true,
  errIsTTY: process.stderr.isTTY === true,
  outReady: readinessOf(process.stdout),
};

function configOption(): Option {
  return new Option('-c, --config <file>', 'the gateway configuration').default(DEFAULT_CONFIG);
}

export function buildProgram(io: CliIo = stdio): Command {
  const program = new Command('streetbox')
    .description('Edge runtime for street-cabinet gateways: streetlights and traffic controllers over Modbus and LoRaWAN, buffered in SQLite, synced upstream.')
    .version(packageVersion())
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('start')
    .description('run the gateway until SIGINT or SIGTERM (readable log lines on a terminal, JSON lines otherwise)')
    .addOption(configOption())
    .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.STREETBOX_LOG_LEVEL ?? 'info')
    .addOption(
      new Option('--log-format <format>', 'auto: readable lines on a terminal, JSON lines otherwise (journal, pipes, files)')
        .choices(['auto', 'pretty', 'json'])
        .default(process.env.STREETBOX_LOG_FORMAT ?? 'auto'),
    )
    .action(async (opts: { config: string; logLevel: string; logFormat: LogFormat }) => {
      const log = createLogger({ level: opts.logLevel, format: opts.logFormat, timezone: configuredZone(opts.config) });
      installProcessGuards(log);
      // Loaded on demand: the gateway pulls in every driver; `validate` and `export` need none.
      const { runUntilSignal } = await import('./run.js');
      const { logBanner, bannerInfoOf } = await import('./banner.js');
      await runUntilSignal({
        gateway: { configPath: opts.config, log },
        log,
        onRunning: (gateway) => logBanner(log, gateway.config, bannerInfoOf(gateway, resolve(opts.config))),
      });
    });

  program
    .command('validate')
    .description('check a configuration file and report every error with its file:line:col')
    .argument('[file]', 'the configuration', DEFAULT_CONFIG)
    .option('--report [device]', "also list each point's report strategy (when a polled value is stored) and where it comes from")
    .action(async (file: string, opts: { report?: string | true }) => {
      const { config } = loadConfig(file);
      const modbus = config.devices.filter((d) => d.bus !== undefined).length;
      const lora = config.devices.length - modbus;
      io.out(`${file}: ok — gateway "${config.gateway.id}", ${config.buses.length} bus(es), ${modbus} Modbus and ${lora} LoRaWAN device(s)\n`);
      if (opts.report === undefined) return;
      const { reportTable } = await import('./report/describeText.js');
      const table = reportTable(config, opts.report === true ? undefined : opts.report);
      if (table === null) throw new StreetboxError('E_USAGE', `--report: no device "${String(opts.report)}" in ${file}`);
      io.out(table);
    });

  program
    .command('status')
    .description('show whether the gateway runs, the buffer depth, consumers and recent events')
    .addOption(configOption())
    .option('--json', 'print JSON')
    .action((opts: { config: string; json?: boolean }) => {
      const { config } = loadConfig(opts.config);
      printStatus(config, io, opts.json === true);
    });

  program
    .command('export')
    .description('write buffered readings (or events) after a seq to stdout')
    .addOption(configOption())
    .requiredOption('--after <seq>', 'export what comes after this seq (0 for everything)', intArg('--after', 0))
    .option('--limit <n>', 'at most this many rows', intArg('--limit', 1))
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
    .option('--events', 'export events instead of readings')
    .option('--device <id>', 'only this device')
    .action(async (opts: { config: string; after: number; limit?: number; format: 'jsonl' | 'csv'; events?: boolean; device?: string }) => {
      const { config } = loadConfig(opts.config);
      await exportData(config, io, {
        after: opts.after,
        limit: opts.limit ?? Number.POSITIVE_INFINITY,
        format: opts.format,
        events: opts.events === true,
        ...(opts.device !== undefined ? { device: opts.device } : {}),
      });
    });

  program
    .command('receive')
    .description('reference receiver of the upstream contract: subscribe, de-duplicate by (gateway, seq), append to JSON lines, report gaps (until SIGINT/SIGTERM; exit 1 if gaps)')
    .requiredOption('--broker <url>', 'mqtt://host:port or mqtts://host:port')
    .option('--out <file>', 'append each new item, once and in seq order, as one JSON line')
    .option('--gateway <id...>', 'only these gateways (default: every gateway)')
    .option('--username <name>', 'broker username')
    .option('--password <secret>', 'broker password (or STREETBOX_RECEIVE_PASSWORD)', process.env.STREETBOX_RECEIVE_PASSWORD)
    .option('--ca <file>', 'CA certificate (PEM) for mqtts://')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)')
    .option('--client-id <id>', 'names the persistent session: keep it stable across runs')
    .option('--log-level <level>', 'trace, debug, info, warn, error (logs go to stderr)', 'info')
    .action(async (opts: { broker: string; out?: string; gateway?: string[]; username?: string; password?: string; ca?: string; cert?: string; key?: string; clientId?: string; logLevel: string }) => {
      const { runReceiver } = await import('../cloud-sync/receiver.js');
      const log = createLogger({ level: opts.logLevel, destination: { write: (s: string) => io.err(s) } });
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      process.once('SIGTERM', () => ac.abort());
      const { logLevel: _l, gateway, ...rest } = opts;
      const report = await runReceiver({ ...rest, ...(gateway ? { gateways: gateway } : {}), log, signal: ac.signal });
      const { gateways: _g, ...summary } = report;
      io.out(`${JSON.stringify(summary)}\n`);
      if (report.gaps.length > 0) throw new ExitError(EXIT_FAILURE, `${report.gaps.length} gap(s) in the received seqs`);
    });

  registerModbusCommands(program, io, DEFAULT_CONFIG);
  registerControlCommands(program, io);
  registerOpsCommands(program, io, DEFAULT_CONFIG);
  registerLogCommands(program, io);
  registerConfigCommands(program, io);
  registerFirmwareCommands(program, io);
  return program;
}

let guardsInstalled = false;
function installProcessGuards(log: ReturnType<typeof createLogger>): void {
  if (guardsInstalled) return;
  guardsInstalled = true;
  let unhandled = 0;
  process.on('unhandledRejection', (reason) => {
    // A bug, never silent: logged and counted; the gateway keeps serving.
    unhandled++;
    log.error({ err: reason, unhandled }, 'unhandled promise rejection');
  });
  process.on('uncaughtException', (err) => {
    // State may be inconsistent: log, and exit non-zero so systemd restarts us. Committed data is safe.
    log.fatal({ err }, 'uncaught exception; exiting');
    log.flush();
    process.exit(EXIT_FAILURE);
  });
}

/** Errors that mean the request itself was wrong: exit code 2. */
const BAD_INPUT_CODES = new Set<ErrorCode>(['E_USAGE', 'E_NOT_FOUND', 'E_INTERLOCK', 'E_FORBIDDEN', 'E_INVALID_COMMAND', 'E_CONFIG', ...REFUSAL_CODES]);

/** "hint: streetbox dim --help shows its usage", for the (sub)command the arguments named. */
export function usageHint(program: Command, args: string[]): string {
  const path: string[] = [];
  let cmd: Command = program;
  for (const a of args) {
    if (a.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) break;
    path.push(sub.name());
    cmd = sub;
  }
  return path.length === 0 ? 'hint: streetbox --help lists the commands' : `hint: streetbox ${path.join(' ')} --help shows its usage`;
}

let epipeGuard = false;
/**
 * A reader that went away (`streetbox logs big.log | head`, quitting `less`): stdout's EPIPE ends
 * the command quietly, as it does for any Unix filter, instead of an unhandled 'error' event.
 */
function exitQuietlyOnEpipe(): void {
  if (epipeGuard) return;
  epipeGuard = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_OK);
    throw err;
  });
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: string[], io: CliIo = stdio): Promise<number> {
  if (io === stdio) exitQuietlyOnEpipe();
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return EXIT_OK;
      // commander printed the error; a one-line hint, not the whole help
      io.err(`${usageHint(program, argv.slice(2))}\n`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof ConfigError) {
      io.err(`${formatIssues(err.issues)}\n${err.issues.length} error(s); nothing started.\n`);
      return EXIT_BAD_INPUT;
    }
    if (err instanceof ExitError) {
      io.err(`streetbox: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof StreetboxError && BAD_INPUT_CODES.has(err.code)) {
      io.err(`streetbox: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    io.err(`streetbox: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  }
}

// Run directly (tsx edge/cli.ts …) as well as through bin/streetbox.js.
if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = await main(process.argv);
}
