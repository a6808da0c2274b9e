import { spawnSimulators } from '/work/main/tests/helpers/simProcess.js';
import { makeContext, waitFor } from '/work/main/tests/helpers/context.js';
import { createModbusDriver } from '/work/main/edge/drivers/modbus/index.js';
const profile = { name: 'bench10', transport: 'modbus' as const, alarms: [], points: Array.from({ length: 10 }, (_, i) => ({ name: `r${i}`, table: 'holding' as const, address: i, type: 'uint16' as const, wordOrder: 'big' as const, scale: 1, offset: 0, access: 'r' as const })) };
const sim = await spawnSimulators({ tcp: [{ id: 'tcp', devices: [{ unit: 1, profile: 'bench10' }] }], profiles: [profile] });
const port = sim.bus('tcp').port!;
const mode = process.argv[2] ?? 'store';
for (let r = 0; r < 3; r++) {
  const t = makeContext({ profiles: [profile], buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port, timeout: 1000 }], devices: [{ id: 'dev', bus: 'tcp', unit: 1, profile: 'bench10', poll: 0 }] }, { flushIntervalMs: 200 });
  t.keepReadings = false;
  if (mode === 'nostore') (t.ctx as any).ingest = { push() {}, pushMany() {}, flush() { return null; }, pending: 0 };
  const driver = createModbusDriver(t.ctx);
  await driver.start();
  await new Promise((res) => setTimeout(res, 500));
  const p0 = driver.status()[0]!.devices[0]!.polls; const t0 = performance.now();
  await new Promise((res) => setTimeout(res, 2000));
  const p1 = driver.status()[0]!.devices[0]!.polls;
  console.log(mode, 'polls/s', ((p1 - p0) / (performance.now() - t0) * 1000).toFixed(0));
  await driver.stop(); await t.close();
}
await sim.stop();
