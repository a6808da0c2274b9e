/**
 * The components a configuration asks for, in start order (they stop in reverse):
 * simulated Modbus peers first (so the drivers find them), the drivers, the LoRaWAN
 * simulator (once the network server listens), then control, broker, API and upstream sync.
 */
import type { Component, GatewayContext } from './component.js';
import { RADIO_TIME_ORIGIN, scaledClock, type Clock } from './clock.js';
import { createModbusDriver, type ModbusDriver } from './drivers/modbus/index.js';
import { createLorawanDriver, type LorawanDriver } from './drivers/lorawan/index.js';
import { createModbusSimComponents, simulateEnabled } from './sim/modbus/index.js';
import { startLorawanSimulator, type LorawanSimulator } from './sim/lorawan/index.js';
import { createControl, type ControlComponent } from './control/index.js';
import { centralCommandHandler } from './control/central.js';
import { createSyncComponent, type SyncComponent } from '../cloud-sync/index.js';
import { createBroker, type BrokerComponent } from './broker/index.js';
import { createApi, type ApiComponent } from './api/index.js';
import { createFlowsComponent } from './flows/index.js';
import { lorawanMetrics, refusalMetrics, syncMetrics } from './componentMetrics.js';
import { createClockWatch } from './ops/clockWatch.js';
import { createWatchdog } from './ops/watchdog.js';
import type { ConfigService } from './reconfig/types.js';
import type { FirmwareService } from './firmware/types.js';
import type { MetricSample } from './metrics.js';

export interface BuiltComponents {
  components: Component[];
  modbus?: ModbusDriver;
  lorawan?: LorawanDriver;
  control: ControlComponent;
  broker?: BrokerComponent;
  api?: ApiComponent;
  sync: SyncComponent;
}

/** a LoRaWAN node silent for longer than this shows offline */
const LORA_SILENCE_MS = 2 * 3_600_000;

export interface BuildOptions {
  /** the gateway's status, for GET /api/v1/status */
  status: () => unknown;
  /** configuration changes: central's down/config (sync) and the /api/v1/config routes */
  config?: ConfigService;
  /** their figures for /metrics */
  configMetrics?: () => MetricSample[];
  /** firmware deployments: central's down/deployments and down/artifacts (sync), the /api/v1/deployments routes; its metrics() on /metrics */
  firmware?: FirmwareService;
}

export async function buildComponents(ctx: GatewayContext, opts: BuildOptions): Promise<BuiltComponents> {
  const { config } = ctx;
  const components: Component[] = [];
  const simulate = simulateEnabled(config).enabled;
  const drivers: { modbus?: ModbusDriver; lorawan?: LorawanDriver } = {};
  components.push(createClockWatch(ctx)); // records wall-clock jumps (NTP after a boot without RTC)

  const modbusDevices = config.devices.filter((d) => d.bus !== undefined);
  if (modbusDevices.length > 0) {
    // one simulator per bus, each failing on its own
    if (simulate) components.push(...createModbusSimComponents(ctx));
    drivers.modbus = createModbusDriver(ctx);
    components.push(drivers.modbus);
  }

  if (config.lorawan && config.lorawan.enabled) {
    drivers.lorawan = createLorawanDriver(ctx, { clock: radioClock(ctx) });
    components.push(drivers.lorawan);
    if (simulate && config.lorawan.devices.length > 0) components.push(lorawanSimComponent(ctx, drivers.lorawan));
  }

  const control = createControl(ctx, drivers);
  components.push(control);

  // commands from central go through the control pipeline: control is built first, sync hands them over
  const sync = createSyncComponent(ctx, {
    onCommand: centralCommandHandler({ commands: control, store: ctx.store, clock: ctx.clock }),
    ...(opts.config ? { config: opts.config } : {}),
    ...(opts.firmware ? { firmware: opts.firmware } : {}),
  });

  let broker: BrokerComponent | undefined;
  if (config.broker.enabled) {
    broker = createBroker(ctx, { commands: control, deviceKind: (id) => control.deviceKind(id) });
    components.push(broker);
  }

  let api: ApiComponent | undefined;
  if (config.api.enabled) {
    api = createApi(ctx, {
      commands: control,
      ...(opts.config ? { config: opts.config } : {}),
      ...(opts.firmware ? { firmware: opts.firmware } : {}),
      status: () => ({ ...(opts.status() as object), sync: sync.status(), lorawan: drivers.lorawan?.status() }),
      devices: () => [
        ...(drivers.modbus?.status().flatMap((b) => b.devices.map((d) => ({ ...d, bus: b.id }))) ?? []),
        // LoRaWAN nodes report when they choose (class A): online once heard, offline after 2 h of silence
        ...(drivers.lorawan?.status().devices.map((d) => ({
          id: d.id,
          online: d.lastUplink === null ? null : ctx.clock.now() - d.lastUplink < LORA_SILENCE_MS,
          lastSeen: d.lastUplink,
          rssi: d.rssi,
          snr: d.snr,
          fCntUp: d.fCntUp,
        })) ?? []),
      ],
      metrics: () => [
        ...(broker?.metrics() ?? []),
        ...(drivers.modbus?.metrics() ?? []),
        ...syncMetrics(sync),
        ...refusalMetrics(control),
        ...(drivers.lorawan ? lorawanMetrics(drivers.lorawan) : []),
        ...(opts.configMetrics?.() ?? []),
        ...(opts.firmware?.metrics() ?? []),
      ],
    });
    components.push(api);
  }

  // Node-RED on the API's http.Server (after the API, which it mounts into; `node-red` is imported only when enabled)
  if (api && config.nodeRed.enabled) components.push(createFlowsComponent(ctx, { api, commands: control, modbus: drivers.modbus }));

  // Upstream last: it starts when everything that produces data is up, and stops first.
  components.push(sync);
  // Under systemd (Type=notify): READY=1 once all of the above started, then watchdog pings while healthy.
  if (process.env.NOTIFY_SOCKET) components.push(createWatchdog(ctx));

  return { components, ...drivers, control, sync, ...(broker ? { broker } : {}), ...(api ? { api } : {}) };
}

/**
 * The clock of the LoRaWAN side: the gateway's, or with simulate.radioTimeScale > 1 (simulated
 * radios: this gateway's, or a test's simulator in another process) one running that many times
 * faster on the radio time line every process shares (RADIO_TIME_ORIGIN). The driver's RX windows,
 * duty cycle and FUOTA sessions, and the simulated nodes, run on it; readings keep the gateway's time.
 */
function radioClock(ctx: GatewayContext): Clock {
  const k = simulateEnabled(ctx.config).radioTimeScale;
  return k > 1 ? scaledClock(ctx.clock, k, RADIO_TIME_ORIGIN) : ctx.clock;
}

/** The demo's packet forwarder and streetlight nodes, sending to the gateway's own UDP port. */
function lorawanSimComponent(ctx: GatewayContext, driver: LorawanDriver): Component {
  let sim: LorawanSimulator | null = null;
  return {
    name: 'lorawan-sim',
    async start() {
      if (sim) return;
      const lorawan = ctx.config.lorawan!;
      const ids = new Map(ctx.config.devices.filter((d) => d.devEui).map((d) => [d.devEui!.toLowerCase(), d.id]));
      sim = await startLorawanSimulator({
        host: lorawan.bind === '0.0.0.0' ? '127.0.0.1' : lorawan.bind,
        port: driver.port(),
        devices: lorawan.devices.map((d) => ({ ...d, id: ids.get(d.devEui.toLowerCase()) ?? d.devEui })),
        // with a list of forwarders, the simulated ones are those (only listed forwarders are served)
        ...(lorawan.forwarders.length > 0 ? { gatewayEuis: lorawan.forwarders.map((f) => f.eui.toLowerCase()) } : {}),
        uplinkIntervalMs: 15_000,
        log: ctx.log,
        clock: driver.clock,
        // ABP nodes listen where the server sends (OTAA nodes learn it from the Join Accept)
        nodeOptions: { rx1DrOffset: lorawan.rx1DrOffset, rx2Dr: lorawan.rx2Dr, rx1Delay: lorawan.rx1Delay },
      });
    },
    async stop() {
      const s = sim;
      sim = null;
      await s?.stop();
    },
  };
}
