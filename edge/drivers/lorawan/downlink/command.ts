/**
 * A control-plane command (DownlinkCommand) as a lora-streetlight command and its FPort 10
 * payload; a bad one is an E_INVALID_COMMAND error naming the field.
 */
import { StreetboxError } from '../../../errors.js';
import { CodecError, encodeCommand, type StreetlightCommand } from '../../../profiles/loraStreetlight.js';
import type { DownlinkCommand } from '../api.js';

export function parseCommand(command: DownlinkCommand): { cmd: StreetlightCommand; payload: Buffer } {
  try {
    let cmd: StreetlightCommand;
    switch (command.action) {
      case 'dim':
        cmd = { action: 'dim', level: command.level ?? Number.NaN };
        break;
      case 'schedule':
        cmd = { action: 'schedule', scheduleId: command.scheduleId ?? Number.NaN };
        break;
      case 'on':
      case 'off':
        cmd = { action: command.action };
        break;
      default:
        throw new CodecError(`unknown action "${String((command as { action: unknown }).action)}"`);
    }
    return { cmd, payload: encodeCommand(cmd) };
  } catch (err) {
    throw new StreetboxError('E_INVALID_COMMAND', err instanceof Error ? err.message : String(err), { cause: err });
  }
}
