/** The Modbus driver's public surface: the driver component, the standalone client, and the codec. */
export { createModbusDriver, type ModbusDriver, type ModbusDriverOptions, type BusStatus, type DeviceStatus } from './driver.js';
export { ModbusClient, scanUnits, pointOf, type ModbusClientOptions, type CallOptions } from './client.js';
export type { PointValue, WriteResult } from './points.js';
export { readPoints, writePoint } from './points.js';
export { planBlocks, type ReadBlock } from './blocks.js';
export * from './codec.js';
export * from './errors.js';
export { crc16, crcOk, withCrc } from './crc.js';
export { encodeRtuFrame, encodeMbap, rtuRequestLength, rtuResponseLength, serialTiming, wireMs, type SerialTiming } from './framing.js';
export { decodeRegisters, encodeRegisters, rawFromRegisters, pointWidth } from './values.js';
export { BusScheduler, type ScheduledDevice, type Transact } from './scheduler.js';
export { createTransport, RtuTransport, TcpTransport, type ModbusTransport, type TransportCounters, type TransportState } from './transport/index.js';
export { parseUnits, parseValue, scanBus, readDevice, writeDevice, type OneShotOptions } from './oneShot.js';
