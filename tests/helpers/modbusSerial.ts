/**
 * modbus-serial's client (an independent Modbus implementation) with its constructor typed:
 * the package is CommonJS, and under NodeNext its default import is module.exports itself
 * (the constructor), while its declarations describe it as `.default`.
 */
import modbusSerial from 'modbus-serial';

type Ctor = typeof modbusSerial.default;
export type ModbusRTUClient = InstanceType<Ctor>;
export const ModbusRTU = modbusSerial as unknown as Ctor;
