/** The transport a bus config asks for: RTU over serial, or TCP. */
import type { Clock } from '../../../clock.js';
import type { BusConfig } from '../../../config/schema.js';
import type { Logger } from '../../../log.js';
import type { ModbusMetrics } from '../metrics.js';
import type { StateListener } from './connection.js';
import { RtuTransport, type RtuTransportOptions } from './rtu.js';
import { TcpTransport } from './tcp.js';
import type { ModbusTransport } from './types.js';

export type { ModbusTransport, TransportCounters, TransportState } from './types.js';
export { RtuTransport } from './rtu.js';
export { TcpTransport } from './tcp.js';

export interface TransportDeps {
  clock: Clock;
  log: Logger;
  /** RTU only: see RtuTransportOptions */
  rtu?: Pick<RtuTransportOptions, 'interByteSlackMs' | 'createPort'>;
  /** the driver's bus counters; default: each transport its own */
  metrics?: ModbusMetrics;
  /** told every state change of the bus's connection */
  onState?: StateListener;
}

export function createTransport(bus: BusConfig, deps: TransportDeps): ModbusTransport {
  const counters = deps.metrics?.bus(bus.id);
  const onState = deps.onState;
  if (bus.type === 'tcp') {
    return new TcpTransport({ busId: bus.id, host: bus.host, port: bus.port, clock: deps.clock, log: deps.log, ...(counters ? { counters } : {}), ...(onState ? { onState } : {}) });
  }
  return new RtuTransport({
    busId: bus.id,
    path: bus.path,
    baudRate: bus.baud,
    dataBits: bus.dataBits,
    parity: bus.parity,
    stopBits: bus.stopBits,
    interByteSlackMs: bus.interByteSlack,
    clock: deps.clock,
    log: deps.log,
    ...(counters ? { counters } : {}),
    ...(onState ? { onState } : {}),
    ...deps.rtu,
  });
}
