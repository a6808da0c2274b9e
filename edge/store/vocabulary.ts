/** The small words of the data model that commands and events share (types.ts and eventKinds.ts both use them). */

export type Severity = 'debug' | 'info' | 'warning' | 'error' | 'critical';

export type Role = 'technician' | 'maintenance' | 'central' | 'viewer';

export interface CommandSource {
  role: Role | 'schedule' | 'system';
  principal: string;
}

export interface CommandTarget {
  kind: 'device' | 'group';
  id: string;
}
