/**
 * `streetbox scan`, `read` and `write`: commissioning a Modbus line from the cabinet. They
 * open the bus themselves, so they are for a gateway that is not running (it holds the serial
 * port); on a running gateway, commands go through the API.
 */
import type { Command } from 'commander';
import type { CliIo } from '../../cli.js';
import { loadConfig } from '../../config/index.js';
import { StreetboxError } from '../../errors.js';
import { loadProfiles } from '../../profiles/index.js';
import { parseUnits, parseValue, readDevice, scanBus, writeDevice } from './oneShot.js';

export function registerModbusCommands(program: Command, io: CliIo, defaultConfig: string): void {
  program
    .command('scan')
    .description('list the Modbus unit ids that answer on a bus (stop the gateway first: it holds the line)')
    .option('-c, --config <file>', 'the gateway configuration', defaultConfig)
    .requiredOption('--bus <id>', 'the bus to scan')
    .option('--units <list>', 'unit ids to try, e.g. "1-247" or "1,2,5-8"', '1-247')
    .option('--timeout <ms>', 'how long to wait for each unit', '200')
    .action(async (opts: { config: string; bus: string; units: string; timeout: string }) => {
      const { config } = loadConfig(opts.config);
      const units = parseUnits(opts.units);
      const timeoutMs = Number(opts.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 10) throw new StreetboxError('E_USAGE', `"--timeout" must be an integer >= 10 (ms), got "${opts.timeout}"`);
      const found = await scanBus(config, opts.bus, units, { timeoutMs });
      io.out(found.length === 0 ? `no unit answered on ${opts.bus} (tried ${units.length})\n` : `${found.join('\n')}\n`);
    });

  program
    .command('read')
    .description('read all points of a Modbus device, or one point, and print them')
    .option('-c, --config <file>', 'the gateway configuration', defaultConfig)
    .argument('<device>', 'device id from devices.yaml')
    .argument('[point]', 'one point of its profile')
    .option('--json', 'print JSON')
    .action(async (device: string, point: string | undefined, opts: { config: string; json?: boolean }) => {
      const { config } = loadConfig(opts.config);
      const values = await readDevice(config, device, point);
      if (opts.json) {
        io.out(`${JSON.stringify(values)}\n`);
        return;
      }
      const width = Math.max(...values.map((v) => v.point.length));
      for (const v of values) io.out(`${v.point.padEnd(width)}  ${String(v.value)}${v.unit ? ` ${v.unit}` : ''}${v.quality === 'good' ? '' : ` (${v.quality})`}\n`);
    });

  program
    .command('write')
    .description('write a point of a Modbus device and read it back (streetlight controllers; traffic controllers only take program requests through the API)')
    .option('-c, --config <file>', 'the gateway configuration', defaultConfig)
    .argument('<device>', 'device id from devices.yaml')
    .argument('<point>', 'a writable point of its profile')
    .argument('<value>', 'a number, true/false or on/off')
    .action(async (device: string, point: string, value: string, opts: { config: string }) => {
      const { config } = loadConfig(opts.config);
      const dev = config.devices.find((d) => d.id === device);
      const profile = dev ? loadProfiles(config.profiles).get(dev.profile) : undefined;
      // DESIGN.md safety rules: a traffic controller is never written directly, only asked for a program through the
      // command path, where the request is checked, recorded with its source and given a dead-man expiry. A device
      // counts as one by its built-in profile or by a program-request point in a custom profile (as edge/control does).
      if (dev?.profile === 'traffic-controller' || profile?.kind === 'traffic' || profile?.points.some((p) => p.name === 'program_request')) {
        throw new StreetboxError('E_INTERLOCK', `refused: ${device} is a traffic controller; request a program with a command (POST /api/v1/devices/${device}/commands {"action":"program",…})`);
      }
      const result = await writeDevice(config, device, point, parseValue(value));
      if (result.status === 'verified') io.out(`${device} ${point} = ${String(result.readBack ?? result.value)} (verified)\n`);
      else throw new StreetboxError('E_MODBUS_VERIFY', `${device} ${point}: write failed: ${result.reason ?? 'unknown reason'}`);
    });
}
