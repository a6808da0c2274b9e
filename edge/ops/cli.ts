/**
 * The operations commands of the `streetbox` CLI: `init` (a first devices.yaml for the hardware
 * found), `doctor` (a commissioning checklist),
 * `backup` and `restore` (configuration and data). Exit codes (edge/cli.ts maps the errors):
 * 0 ok; 1 a failed check or a failed backup/restore (E_OPS); 2 a bad configuration.
 */
import type { Command } from 'commander';
import type { CliIo } from '../cli.js';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { StreetboxError } from '../errors.js';
import { parseUnits } from '../drivers/modbus/oneShot.js';
import { backup, restore } from './backup.js';
import { formatReport, runDoctor } from './doctor.js';
import { checkRendered, discover, renderConfig } from './init.js';

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
    .option('--force', 'replace an existing file (it is moved aside, not deleted)')
    .action(async (opts: { out: string; serial?: string[]; tcp?: string[]; units: string; timeout: string; baud: string; parity: string; gatewayId?: string; force?: boolean; skipSerial?: boolean }) => {
      const timeoutMs = Number(opts.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 10) throw new StreetboxError('E_USAGE', `"--timeout" must be an integer >= 10 (ms), got "${opts.timeout}"`);
      const baud = Number(opts.baud);
      if (!Number.isInteger(baud) || baud < 300) throw new StreetboxError('E_USAGE', `"--baud" must be an integer >= 300, got "${opts.baud}"`);
      if (opts.parity !== 'none' && opts.parity !== 'even' && opts.parity !== 'odd') throw new StreetboxError('E_USAGE', `"--parity" must be none, even or odd, got "${opts.parity}"`);
      if (existsSync(opts.out) && opts.force !== true) throw new StreetboxError('E_USAGE', `${opts.out} exists: give --out for a new file, or --force to move it aside`);
      const units = parseUnits(opts.units);
      const found = await discover({
        units,
        timeoutMs,
        baud,
        parity: opts.parity,
        ...(opts.skipSerial === true ? { serial: [] } : opts.serial ? { serial: opts.serial } : {}),
        ...(opts.tcp ? { tcp: opts.tcp } : {}),
      });
      const text = renderConfig(found, { units, timeoutMs, ...(opts.gatewayId ? { gatewayId: opts.gatewayId } : {}) });
      checkRendered(text, opts.out);
      if (existsSync(opts.out)) renameSync(opts.out, `${opts.out}.before-init-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      writeFileSync(opts.out, text);
      for (const b of found.buses) {
        const here = found.units.filter((u) => u.bus === b.bus.id);
        io.out(`${b.bus.id} (${b.note}): ${b.error ? `scan failed: ${b.error}` : here.length === 0 ? 'no unit answered' : here.map((u) => `unit ${u.unit} ${u.profile ?? '(unknown profile)'}`).join(', ')}\n`);
      }
      io.out(`wrote ${opts.out}: ${found.buses.length} bus(es), ${found.units.filter((u) => u.profile !== null).length} device(s)${found.units.some((u) => u.profile === null) ? `, ${found.units.filter((u) => u.profile === null).length} unit(s) without a profile (commented out)` : ''}\n`);
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
      io.out(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
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
      const r = await backup(opts.config, opts.out);
      const m = r.manifest;
      io.out(`${r.out} (${r.kind}): gateway "${m.gateway}" at ${m.createdAt}, last seq ${m.lastSeq}, ${m.readings} readings, ${m.events} events, ${m.commands} commands\n`);
    });

  program
    .command('restore')
    .description('restore a backup: its devices.yaml at --config and its database at the storage.path it names; the files replaced are moved aside (refused while the gateway runs)')
    .option('-c, --config <file>', 'where the configuration goes', defaultConfig)
    .requiredOption('--from <path>', 'a backup written by `streetbox backup` (.tar.gz or directory)')
    .action(async (opts: { config: string; from: string }) => {
      const r = await restore(opts.from, opts.config);
      const m = r.manifest;
      io.out(`restored gateway "${m.gateway}" (backup of ${m.createdAt}, last seq ${m.lastSeq}): ${r.config}, ${r.database}\n`);
      for (const p of r.movedAside) io.out(`moved aside: ${p}\n`);
    });
}
