/**
 * `streetbox scan`, `read` and `write`: commissioning a Modbus line from the cabinet. They
 * open the bus themselves, so they are for a gateway that is not running (it holds the serial
 * port); on a running gateway, commands go through the API. On a terminal the results carry
 * ✔/✘ and colours (edge/cliStyle.ts); piped, the plain lines a script reads.
 */
import type { Command } from 'commander';
import type { CliIo } from '../../cliIo.js';
import { styleFor, type Style } from '../../cliStyle.js';
import { loadConfig } from '../../config/index.js';
import { StreetboxError } from '../../errors.js';
import { describeDevice } from '../../profiles/describe.js';
import { loadProfiles } from '../../profiles/index.js';
import { parseUnits, parseValue, readDevice, scanBus, writeDevice } from './oneShot.js';

/** out is a terminal (edge/cli.ts sets it): colours and ✔/✘ */
type Io = CliIo & { outIsTTY?: boolean };

/** ✔ green / ✘ red before a text on a terminal; piped, the text alone (for scripts). */
const mark = (s: Style, good: boolean, text: string): string => (!s.marks ? text : good ? s.ok(s.green(text)) : s.fail(s.red(text)));

export function registerModbusCommands(program: Command, io: Io, defaultConfig: string): void {
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
      const s = styleFor({ isTTY: io.outIsTTY });
      if (found.length === 0) io.out(`${mark(s, false, `no unit answered on ${opts.bus}`)} (tried ${units.length})\n`);
      // piped: one unit id a line, for scripts
      else if (!s.marks) io.out(`${found.join('\n')}\n`);
      else io.out(`${found.map((u) => mark(s, true, `unit ${u}`)).join('\n')}\n${s.dim(`${found.length} of ${units.length} answered on ${opts.bus}`)}\n`);
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
      const s = styleFor({ isTTY: io.outIsTTY });
      const width = Math.max(...values.map((v) => v.point.length));
      let text = '';
      for (const v of values) {
        const value = `${String(v.value)}${v.unit ? ` ${v.unit}` : ''}`;
        // a point that did not read well is marked; good ones stay quiet
        const quality = v.quality === 'good' ? '' : ` ${mark(s, false, `(${v.quality})`)}`;
        text += `${s.dim(v.point.padEnd(width))}  ${v.quality === 'good' ? s.bold(value) : value}${quality}\n`;
      }
      io.out(text);
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
      // DESIGN.md safety rules: a traffic controller is never written directly, only asked for a program through the
      // command path, where the request is checked, recorded with its source and given a dead-man expiry. What a
      // device is comes from its profile (edge/profiles/describe.ts), as for edge/control and the broker.
      if (dev && describeDevice(dev, loadProfiles(config.profiles)).kind === 'traffic') {
        throw new StreetboxError('E_INTERLOCK', `refused: ${device} is a traffic controller; request a program with a command (POST /api/v1/devices/${device}/commands {"action":"program",…})`);
      }
      const result = await writeDevice(config, device, point, parseValue(value));
      const s = styleFor({ isTTY: io.outIsTTY });
      const line = `${device} ${point} = ${String(result.readBack ?? result.value)} (verified)`;
      if (result.status === 'verified') io.out(`${mark(s, true, line)}\n`);
      else throw new StreetboxError('E_MODBUS_VERIFY', `${device} ${point}: write failed: ${result.reason ?? 'unknown reason'}`);
    });
}
