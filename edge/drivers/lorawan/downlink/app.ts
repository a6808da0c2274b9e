/**
 * Application-layer downlinks (enqueueApp: TS003–TS006 on FPorts 200–203, or any application port
 * but the streetlight command port) as items of the device's queue. A bad one is refused at once
 * with E_INVALID_COMMAND naming the field: FPort 0 carries MAC commands (requestMac), FPort 10 the
 * streetlight commands (enqueueDownlink), 224..255 are reserved (LoRaWAN 1.0.3 §4.3.2); no data
 * rate carries more than 222 bytes (RP002 §2.4.6).
 */
import { randomUUID } from 'node:crypto';
import { StreetboxError } from '../../../errors.js';
import { COMMAND_FPORT } from '../../../profiles/loraStreetlight.js';
import type { AppDownlink } from '../api.js';
import type { DeviceEntry } from '../devices.js';
import { EU868_MAX_PAYLOAD } from '../region/eu868.js';
import type { NewQueueItem } from './queue.js';

/** LoRaWAN 1.0.3 §4.3.2: application FPorts are 1..223. */
export function isAppPort(fPort: number): boolean {
  return Number.isInteger(fPort) && fPort >= 1 && fPort <= 223;
}

const MAX_APP_PAYLOAD = Math.max(...EU868_MAX_PAYLOAD);

export function appQueueItem(device: Pick<DeviceEntry, 'id' | 'devEui'>, d: AppDownlink): NewQueueItem {
  if (d.fPort === 0) throw invalid('"fPort" 0 carries MAC commands: use requestMac');
  if (d.fPort === COMMAND_FPORT) throw invalid(`"fPort" ${COMMAND_FPORT} is the streetlight command port: use enqueueDownlink`);
  if (!isAppPort(d.fPort)) throw invalid(`"fPort" ${d.fPort} is not an application port (1..223)`);
  if (!Buffer.isBuffer(d.payload)) throw invalid('"payload" is not a Buffer');
  if (d.payload.length > MAX_APP_PAYLOAD) throw invalid(`"payload" of ${d.payload.length} bytes: no data rate carries more than ${MAX_APP_PAYLOAD}`);
  if (typeof d.label !== 'string' || d.label.length === 0) throw invalid('"label" is empty');
  return {
    id: randomUUID(),
    device: device.id,
    devEui: device.devEui,
    label: d.label,
    command: null,
    fPort: d.fPort,
    payload: d.payload,
    confirmed: d.confirmed ?? false,
    expiresAt: d.expiresAt ?? null,
  };
}

function invalid(message: string): StreetboxError {
  return new StreetboxError('E_INVALID_COMMAND', message);
}
