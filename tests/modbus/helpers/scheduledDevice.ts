/** A device for the bus scheduler's tests: `dev<unit>`, polled every `pollMs` with one FC 3 read of holding 0 (its probe too). */
import { encodeReadRequest } from '../../../edge/drivers/modbus/index.js';
import type { ScheduledDevice } from '../../../edge/drivers/modbus/scheduler.js';

export function scheduledDevice(unit: number, pollMs: number): ScheduledDevice {
  return {
    id: `dev${unit}`,
    unit,
    pollMs,
    async poll(tx) {
      await tx(encodeReadRequest(3, 0, 1));
    },
    probePdu: () => encodeReadRequest(3, 0, 1),
  };
}
