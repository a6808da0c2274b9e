/**
 * The operations commands of the `streetbox` CLI: `init` (a first devices.yaml for the hardware
 * found, with fresh secrets), `doctor` (a commissioning checklist), `backup` and `restore`
 * (configuration, data and Node-RED's directory), `hash-password` (a passwordHash for
 * devices.yaml). Exit codes (edge/cli.ts maps the errors): 0 ok; 1 a failed check or a failed
 * backup/restore (E_OPS); 2 a bad configuration or bad input (E_CONFIG, E_USAGE).
 * Results go to stdout; progress, prompts and warnings to stderr.
 */
import { Option, type Command } from 'commander';
import type { CliIo } from '../cliIo.js';
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StreetboxError } from '../errors.js';
import { styleFor } from '../cliStyle.js';
import { parseUnits } from '../drivers/modbus/oneShot.js';
import { SECRETS_WARNING, backup } from './backup.js';
import { restore } from './restore.js';
import { formatReport, runDoctor } from './doctor.js';
import { passwordHashFor, readPassword, type HashFor } from './hashPassword.js';
import { checkRendered, discover, renderConfig } from './init.js';
import { generateSecrets, renderCredentials } from './initSecrets.js';
import { createProgress, type Progress } from '../progress.js';

/** Progress of backup and restore on stderr: a live line on a terminal, a few plain lines when piped. */
function stderrProgress(io: CliIo): Progress {
  return createProgress({ write: io.err, isTTY: io.errIsTTY === true, columns: process.stderr.columns });
}

const stamp = (t: number) => new Date(t).toISOString().replace(/[:.]/g, '-');

export function registerOpsCommands(program: Command, io: CliIo, defaultConfig: string): void {
  program
    .command('init')
    .description('write a commented devices.yaml for the hardware found: serial ports (or --serial), Modbus TCP endpoints (--tcp), the units that answer and a profile guessed for each')
    .option('--out <file>', 'where to write it', 'devices.yaml')
    .option('--serial <path...>', 'serial ports to scan (default: every port found)')
    .option('--skip-serial', 'scan no serial port')
    .option('--tcp <host:port...>', 'Modbus TCP endpoints to scan')
    .option('--units <list>', 'unit ids to try, e.g. "1-32" or "1,2,5-8"', '1-32')
    .option('--timeout <ms>', 'how long to wait for each unit', '200')
    .option('--baud <n>', 'serial line speed', '9600')
    .option('--parity <p>', 'serial parity: none, even, odd', 'even')
    .option('--gateway-id <id>', 'the gateway id (default: the host name)')
    .option('--storage <path>', 'storage.path: the SQLite buffer (relative to the file), e.g. /var/lib/streetbox/streetbox.db')
    .option('--credentials <file>', "where the technician's plain token and passwords go (mode 0600; default <out>.credentials)")
    .option('--force', 'replace existing files (they are moved aside, not deleted)')
    .action(async (opts: { out: string; serial?: string[]; tcp?: string[]; units: string; timeout: string; baud: string; parity: string; gatewayId?: string; storage?: string; credentials?: string; force?: boolean; skipSerial?: boolean }) => {
      const timeoutMs = Number(opts.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 10) throw new StreetboxError('E_USAGE', `"--timeout" must be an integer >= 10 (ms), got "${opts.timeout}"`);
      const baud = Number(opts.baud);
      if (!Number.isInteger(baud) || baud < 300) throw new StreetboxError('E_USAGE', `"--baud" must be an integer >= 300, got "${opts.baud}"`);
      if (opts.parity !== 'none' && opts.parity !== 'even' && opts.parity !== 'odd') throw new StreetboxError('E_USAGE', `"--parity" must be none, even or odd, got "${opts.parity}"`);
      const credentials = opts.credentials ?? `${opts.out}.credentials`;
      for (const file of [opts.out, credentials]) {
        if (existsSync(file) && opts.force !== true) throw new StreetboxError('E_USAGE', `${file} exists: give --out (and --credentials) for new files, or --force to move it aside`);
      }
      const units = parseUnits(opts.units);
      const found = await discover({
        units,
        timeoutMs,
        baud,
        parity: opts.parity,
        ...(opts.skipSerial === true ? { serial: [] } : opts.serial ? { serial: opts.serial } : {}),
        ...(opts.tcp ? { tcp: opts.tcp } : {}),
      });
      const secrets = await generateSecrets();
      const text = renderConfig(found, {
        units,
        timeoutMs,
        secrets,
        credentialsFile: resolve(credentials),
        ...(opts.gatewayId ? { gatewayId: opts.gatewayId } : {}),
        ...(opts.storage !== undefined ? { storagePath: opts.storage } : {}),
      });
      checkRendered(text, opts.out);
      const now = Date.now();
      // both hold secrets: only their owner reads them
      for (const [file, content] of [
        [opts.out, text],
        [credentials, renderCredentials(secrets, resolve(opts.out), new Date(now).toISOString())],
      ] as const) {
        mkdirSync(dirname(resolve(file)), { recursive: true });
        if (existsSync(file)) renameSync(file, `${file}.before-init-${stamp(now)}`);
        writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
        chmodSync(file, 0o600);
      }
      for (const b of found.buses) {
        const here = found.units.filter((u) => u.bus === b.bus.id);
        io.out(`${b.bus.id} (${b.note}): ${b.error ? `scan failed: ${b.error}` : here.length === 0 ? 'no unit answered' : here.map((u) => `unit ${u.unit} ${u.profile ?? '(unknown profile)'}`).join(', ')}\n`);
      }
      io.out(`wrote ${opts.out}: ${found.buses.length} bus(es), ${found.units.filter((u) => u.profile !== null).length} device(s)${found.units.some((u) => u.profile === null) ? `, ${found.units.filter((u) => u.profile === null).length} unit(s) without a profile (commented out)` : ''}; API and broker on, with fresh secrets\n`);
      io.out(`the technician's API token and passwords are in ${credentials} (mode 0600): keep them, then delete it\n`);
    });

  program
    .command('doctor')
    .description('check the configuration, serial ports and their permissions, TCP buses, clock sync, disk, the data directory and the upstream; print a checklist with fixes')
    .option('-c, --config <file>', 'the gateway configuration', defaultConfig)
    .option('--json', 'print JSON')
    .option('--timeout <ms>', 'TCP connect timeout for buses and the upstream', '1500')
    .action(async (opts: { config: string; json?: boolean; timeout: string }) => {
      const timeoutMs = Number(opts.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 10) throw new StreetboxError('E_USAGE', `"--timeout" must be an integer >= 10 (ms), got "${opts.timeout}"`);
      const report = await runDoctor(opts.config, { timeoutMs });
      io.out(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, styleFor({ isTTY: io.outIsTTY })));
      if (report.exitCode === 2) throw new StreetboxError('E_CONFIG', `${opts.config}: invalid configuration; nothing else was checked`);
      if (report.exitCode === 1) {
        throw new StreetboxError('E_OPS', `${report.checks.filter((c) => c.status === 'fail').length} check(s) failed`);
      }
    });

  program
    .command('backup')
    .description('write the configuration and a consistent copy of the buffer (safe while the gateway runs) to a .tar.gz, or to a directory for any other name')
    .option('-c, --config <file>', 'the gateway configuration', defaultConfig)
    .requiredOption('--out <path>', 'backup.tar.gz (or .tgz), or a new directory')
    .action(async (opts: { config: string; out: string }) => {
      const r = await backup(opts.config, opts.out, { progress: stderrProgress(io) });
      const m = r.manifest;
      const nodeRed = m.nodeRedPath !== undefined ? `, Node-RED ${Object.keys(m.files).filter((f) => f.startsWith('node-red/')).length} file(s)` : '';
      io.out(`${r.out} (${r.kind}): gateway "${m.gateway}" at ${m.createdAt}, last seq ${m.lastSeq}, ${m.readings} readings, ${m.events} events, ${m.commands} commands${nodeRed}\n`);
      io.err(`${styleFor({ isTTY: io.errIsTTY }).warn(`${r.out} ${SECRETS_WARNING}`)}\n`);
    });

  program
    .command('restore')
    .description('restore a backup: its devices.yaml at --config and its database at the storage.path it names; the files replaced are moved aside (refused while the gateway runs)')
    .option('-c, --config <file>', 'where the configuration goes', defaultConfig)
    .requiredOption('--from <path>', 'a backup written by `streetbox backup` (.tar.gz or directory)')
    .option('--anywhere', "let the backup write its database and Node-RED directory outside this configuration's directory and data directory")
    .action(async (opts: { config: string; from: string; anywhere?: boolean }) => {
      const r = await restore(opts.from, opts.config, { progress: stderrProgress(io), anywhere: opts.anywhere === true });
      const m = r.manifest;
      io.out(`restored gateway "${m.gateway}" (backup of ${m.createdAt}, last seq ${m.lastSeq}): ${r.config}, ${r.database}${r.nodeRed !== null ? `, ${r.nodeRed}` : ''}\n`);
      for (const p of r.movedAside) io.out(`moved aside: ${p}\n`);
    });

  program
    .command('hash-password')
    .description('print a passwordHash for devices.yaml: the password is read from the terminal without echo (twice), or from a pipe with --stdin; never from the command line')
    .addOption(new Option('--for <users>', 'broker: broker.users (scrypt); node-red: nodeRed.users (bcrypt)').choices(['broker', 'node-red']).default('broker'))
    .option('--stdin', "read the password from a pipe, up to its end (one final newline is dropped): printf '%s' \"$PW\" | streetbox hash-password --stdin")
    .action(async (opts: { for: HashFor; stdin?: boolean }) => {
      const password = await readPassword({ stdin: process.stdin, err: io.err, fromPipe: opts.stdin === true });
      io.out(`${await passwordHashFor(password, opts.for, io.err)}\n`);
    });
}
