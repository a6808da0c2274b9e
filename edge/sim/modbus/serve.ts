/**
 * The simulators as a process of their own (benchmarks, manual tests, a technician's bench):
 *
 *   npx tsx edge/sim/modbus/serve.ts '<ServeSpec as JSON>'
 *
 * Prints one line `ready <json>` with each bus ({ id, kind, path | host, port }) on stdout once
 * everything listens, and serves until stdin closes or SIGTERM/SIGINT. On the way out it prints
 * `lines <json>` (the RTU line counters) and `firmware <json>`: per unit whose profile declares
 * firmware, { bus, unit, version, mode, size, sha256, blocksReceived, commits, reboots } (the
 * image by its size and sha256).
 */
import { createHash } from 'node:crypto';
import type { ProfileConfig } from '../../config/schema.js';
import { createLogger } from '../../log.js';
import { loadProfiles } from '../../profiles/index.js';
import { startModbusSimulators, type ModbusSimulatorOptions } from './index.js';

/** The JSON argument: the simulator options, plus custom profiles (as in devices.yaml) by value. */
export type ServeSpec = Omit<ModbusSimulatorOptions, 'profiles' | 'log'> & { profiles?: ProfileConfig[] };

async function main(): Promise<void> {
  const { profiles, ...spec } = JSON.parse(process.argv[2] ?? '{}') as ServeSpec;
  const log = createLogger({ level: process.env.STREETBOX_LOG_LEVEL ?? 'warn' }).child({ module: 'modbus-sim' });
  const registry = loadProfiles(profiles ?? []);
  const sims = await startModbusSimulators({ ...spec, profiles: (name) => registry.require(name), log });
  const buses = [...sims.buses.values()].map((b) => ({ id: b.id, kind: b.kind, path: b.path, host: b.host, port: b.port }));
  process.stdout.write(`ready ${JSON.stringify(buses)}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const lines = [...sims.buses.values()].filter((b) => b.line).map((b) => ({ id: b.id, ...b.line }));
    if (lines.length > 0) process.stdout.write(`lines ${JSON.stringify(lines)}\n`);
    const firmware = [...sims.buses.values()].flatMap((b) =>
      [...b.units.firmware.keys()].map((unit) => {
        const { image, blockLog: _log, ...rest } = sims.firmware(b.id, unit);
        return { bus: b.id, unit, ...rest, size: image.length, sha256: createHash('sha256').update(image).digest('hex') };
      }),
    );
    if (firmware.length > 0) process.stdout.write(`firmware ${JSON.stringify(firmware)}\n`);
    sims.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'simulator stop failed');
        process.exit(1);
      },
    );
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`modbus simulator failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
