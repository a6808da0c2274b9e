/**
 * The schema of devices.yaml. The TypeScript types of the configuration are inferred from
 * it (`Config` below), never written twice. Every object is strict: an unknown key is an
 * error (with a did-you-mean hint from the loader), never silently ignored.
 */
import { z } from 'zod';
import { unknownName } from './suggest.js';
import { loadZoneRules } from '../zoneinfo.js';
import { isBcryptHash, isPasswordHash } from '../control/passwords.js';
import { byteSize, duration, durationIn, fieldKinds, port, remotePort } from './scalars.js';
import { compactSchemas } from './compact.js';
import { DEVICE_KINDS, MAX_CHANNELS, POINT_ROLE_NAMES, profileRoleIssues, type RoleProfile } from '../profiles/pointRoles.js';
import { profileReportIssues, reportSchema } from './report.js';
import { signingKey } from './signingKeys.js';
import { adrSchema, fuotaSchema } from './lorawanRadio.js';
import { firmwareSchema, profileFirmwareIssues, profileFirmwareSchema, type FirmwareProfile } from './firmware.js';

// ---------------------------------------------------------------------------------------
// Scalars with units a technician can read ("5s", "250ms", "256MB") and ports: scalars.ts.
// A duration's range (`durationIn(min, max)`) and a port's 1..65535 hold for a devices.yaml.

export { byteSize, duration, durationIn } from './scalars.js';
export { ed25519PublicKey, signingKeyProblem } from './signingKeys.js';
export type { FirmwareConfig, FirmwareDecl, FirmwareMethod, FuotaFirmware, ProfileFirmware, TimeWindowConfig } from './firmware.js';

/** Ids used in MQTT topics and URLs: no '/', '+', '#', spaces. */
export const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
    message: 'expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/")',
  });

const hex = (bytes: number, what: string) =>
  z
    .string()
    .regex(new RegExp(`^[0-9A-Fa-f]{${bytes * 2}}$`), { message: `expected ${what}: ${bytes * 2} hex digits` });

/** lorawan.dedupWindow: with several forwarders the class A answer waits for it; RX1 is 1 s after the uplink */
const MAX_DEDUP_WINDOW_MS = 500;

export const roles = ['technician', 'maintenance', 'central', 'viewer'] as const;
export const role = z.enum(roles);

const timezone = z.string().refine(
  (tz) => {
    // the system's tz database first: Intl pages in ICU's data, which the gateway avoids
    if (loadZoneRules(tz) !== null) return true;
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an IANA time zone like "Europe/Amsterdam" or "UTC"' },
);

// ---------------------------------------------------------------------------------------
// Sections

export const gatewaySchema = z.strictObject({
  id: identifier.describe('the gateway id, used in MQTT topics (`streetbox/<id>/…`) and in upstream batches: letters, digits, `_`, `-`, `.`'),
  site: z.string().optional().describe('a human description of where the cabinet is'),
  lat: z
    .number()
    .min(-90)
    .max(90)
    .optional()
    .describe('the cabinet\'s latitude (WGS 84): with `lon`, for sunset/sunrise schedules, lights updating by day and the cabinet on the status page\'s map'),
  lon: z.number().min(-180).max(180).optional().describe('the cabinet\'s longitude (WGS 84), with `lat`'),
  timezone: timezone
    .default('UTC')
    .describe(
      'IANA time zone of schedules, firmware windows and the times shown, e.g. `Europe/Amsterdam`; offsets come from the system tz database (`/usr/share/zoneinfo`, Debian\'s tzdata; `$TZDIR` elsewhere), ICU only for a zone it lacks',
    ),
  confirmTimeout: durationIn('1s', '1h')
    .default(120_000)
    .describe(
      'how long a configuration change has to pass the health probe (every component and touched bus up) before it is rolled back by itself; see "Remote configuration"',
    ),
});

export const storageSchema = z.strictObject({
  path: z.string().min(1).default('data/streetbox.db').describe('the SQLite buffer; relative to devices.yaml'),
  maxBytes: byteSize
    .default(256 * 1024 * 1024)
    .describe(
      'the buffer\'s quota; past it, acknowledged readings go first, then the oldest unacknowledged readings (counted exactly in a `storage.dropped` event); events and commands last of all. 5 % of it (at least 64 KiB) is the share of refused commands',
    ),
  durability: z
    .enum(['full', 'normal'])
    .default('normal')
    .describe('`normal`: committed data survives a crash or `kill -9`; `full`: it survives power loss too (an fsync per commit)'),
  flushInterval: durationIn('10ms', '1h').default(200).describe('the batched writer commits at least this often, and sooner at `flushRows` readings'),
  flushRows: z.number().int().min(1).max(100_000).default(1000).describe('the batched writer commits as soon as this many readings are waiting, or at `flushInterval`'),
  minAutonomyDays: z
    .number()
    .min(0)
    .max(3650)
    .default(7)
    .describe('`streetbox doctor` warns when the buffer holds fewer days offline than this at the measured load (0: no check); see "Report strategies"'),
});

const busCommon = {
  id: identifier.describe('the bus id, named by the devices on it (`devices[].bus`)'),
  timeout: durationIn('10ms', '60s').default(1000).describe('how long to wait for an answer (on RTU, plus the request\'s and the answer\'s own time on the wire)'),
  retries: z
    .number()
    .int()
    .min(0)
    .max(10)
    .default(1)
    .describe('retries of a failed transaction before it counts as a failure, after 50 ms, 100 ms, … (other devices\' transactions go in between)'),
  offlineAfter: z.number().int().min(1).max(100).default(3).describe('failed polls in a row after which a device is offline (`comms.lost`)'),
  probeInterval: durationIn('1s', '1d')
    .default(30_000)
    .describe('how often an offline device is probed, with one short attempt (≤ 250 ms), so it never slows the rest of the line'),
  maxGap: z.number().int().min(0).max(125).default(8).describe('block reads: the largest hole (registers) read and discarded to merge two points into one request'),
  transferShare: z
    .number()
    .min(0.05)
    .max(1)
    .default(0.9)
    .describe('the most of the line\'s time firmware blocks may take (see "Firmware orchestration"); polls and commands keep the rest'),
};

export const serialBusSchema = z.strictObject({
  ...busCommon,
  type: z.literal('serial').describe('Modbus RTU on RS-485'),
  path: z.string().min(1).describe('the serial port, e.g. `/dev/ttyUSB0`'),
  baud: z.number().int().min(300).max(921_600).default(9600).describe('the line\'s speed in baud'),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8).describe('data bits per character: 7 or 8'),
  parity: z.enum(['none', 'even', 'odd']).default('even').describe('`even`, `none` or `odd`'),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1).describe('stop bits per character: 1 or 2'),
  interByteSlack: durationIn('0ms', '1s')
    .default(5)
    .describe('tolerance on top of t1.5 for a silence inside a frame (user-space timing: a USB adapter with a 16 ms latency timer needs about `20ms`)'),
});

export const tcpBusSchema = z.strictObject({
  ...busCommon,
  type: z.literal('tcp').describe('Modbus TCP'),
  host: z.string().min(1).describe('the device\'s (or the Modbus gateway\'s) host name or address'),
  port: remotePort.default(502).describe('its Modbus TCP port'),
});

export const busSchema = z.discriminatedUnion('type', [serialBusSchema, tcpBusSchema]);

export const deviceSchema = z.strictObject({
  id: identifier.describe('the device id, used in MQTT topics, the API and readings'),
  name: z.string().optional().describe('a human name'),
  bus: identifier.optional().describe('Modbus: the id of the bus the device is on (with `unit`)'),
  unit: z.number().int().min(1).max(247).optional().describe('Modbus: the device\'s unit id on that bus'),
  devEui: hex(8, 'a DevEUI').optional().describe('LoRaWAN: the node\'s DevEUI, 16 hex digits (its keys go under `lorawan.devices`)'),
  profile: z
    .string()
    .min(1)
    .describe('`streetlight-controller`, `traffic-controller`, `lora-streetlight`, or the name of a custom profile (`profiles`)'),
  poll: durationIn('100ms', '1d').default(5000).describe('the poll interval'),
  groups: z.array(identifier).default([]).describe('the groups the device belongs to (dimming, schedules, firmware\'s caps per group)'),
  allowCommands: z.boolean().default(false).describe('traffic controllers: program requests (and firmware updates) are refused unless this is true'),
  lat: z.number().min(-90).max(90).optional().describe('where the device stands (WGS 84 latitude, with `lon`): its marker on the status page\'s map'),
  lon: z.number().min(-180).max(180).optional().describe('where the device stands (WGS 84 longitude, with `lat`)'),
  report: reportSchema
    .optional()
    .describe(
      'when a polled value of any of the device\'s points is stored: `poll`, `change` or `{ on, deadband, heartbeat, minInterval }`; without it, each point\'s profile or role default (see "Report strategies")',
    ),
  points: z
    .record(
      identifier,
      z.strictObject({ report: reportSchema.describe('when this point\'s polled values are stored, over the device\'s `report` and the profile\'s') }),
    )
    .optional()
    .describe('per point of the device, the most specific: `{ ch1_power: { report: { deadband: 5 } } }`; a name the profile does not have is an error'),
});

export const pointSchema = z.strictObject({
  name: identifier.describe('the point\'s name, in readings, topics and the API'),
  table: z.enum(['coil', 'discrete', 'holding', 'input']).describe('the Modbus table: `coil`, `discrete`, `holding` or `input`'),
  address: z.number().int().min(0).max(65535).describe('the zero-based protocol address (register 40001 is holding address 0)'),
  type: z
    .enum(['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32'])
    .default('uint16')
    .describe('`bool`, `int16`, `uint16`, `int32`, `uint32` or `float32`; a `bool` on a register reads true for any non-zero value and writes 1 or 0'),
  wordOrder: z
    .enum(['big', 'little'])
    .default('big')
    .describe('32-bit types: `big`, the first register holds the high word; `little`, the second'),
  bit: z.number().int().min(0).max(15).optional().describe('one bit of a register, read as a bool'),
  scale: z.number().default(1).describe('value = raw × scale + offset; a write sends (value − offset) / scale, rounded'),
  offset: z.number().default(0).describe('added after `scale`'),
  unit: z.string().optional().describe('the value\'s unit, e.g. `W`, `%`, `°C`'),
  access: z.enum(['r', 'rw']).default('r').describe('`r`, or `rw` for a point the gateway may write (coils and holding registers only)'),
  role: z
    .enum(POINT_ROLE_NAMES)
    .optional()
    .describe('what the point means to the gateway (TALQ\'s names): `targetLightLevel`, `switch`, `programRequest`, …; see "Kinds and roles"'),
  channel: z
    .number()
    .int()
    .min(1)
    .max(MAX_CHANNELS)
    .optional()
    .describe('the output channel of a per-channel role on a multi-channel controller; omitted: 1'),
  description: z.string().optional().describe('a human description'),
  report: reportSchema
    .optional()
    .describe('when the point\'s polled values are stored, where its role\'s default does not fit (see "Report strategies")'),
});

export const alarmSchema = z.strictObject({
  name: identifier.describe('the alarm\'s name, in its `alarm.raised` and `alarm.cleared` events'),
  point: identifier.describe('the point whose raw value raises it'),
  bit: z.number().int().min(0).max(31).optional().describe('the bit of the point\'s raw value that raises the alarm; omitted: any non-zero value'),
  severity: z.enum(['info', 'warning', 'error', 'critical']).default('warning').describe('`info`, `warning`, `error` or `critical`'),
});

export const profileSchema = z
  .strictObject({
    name: identifier.describe('the name devices give as their `profile`; a custom profile with the name of a built-in replaces the built-in'),
    description: z.string().optional().describe('a human description of the device'),
    transport: z.enum(['modbus', 'lorawan']).default('modbus').describe('how the device is reached: `modbus` or `lorawan`'),
    kind: z
      .enum(DEVICE_KINDS)
      .optional()
      .describe(
        'what the device is: `lighting` (dimmed through its targetLightLevel and switch points), `traffic` (only ever takes program requests) or `other` (read only); without kind and roles, the old point names decide (deprecated)',
      ),
    points: z.array(pointSchema).default([]).describe('the device\'s points: registers, coils and bits, and what each means'),
    alarms: z.array(alarmSchema).default([]).describe('alarms raised by bits of the points\' raw values'),
    firmware: profileFirmwareSchema
      .optional()
      .describe('how the device takes a firmware image (`method`: `registerBlock`, `fileRecord` or `fuota`); none: it cannot be an update\'s target'),
  })
  // the roles of the points (edge/profiles/pointRoles.ts), each issue at the point or key it concerns; also
  // beside other issues of the profile (an unknown role, a bad address), so that all are reported at once
  .superRefine(
    (p, ctx) => {
      for (const issue of profileRoleIssues(p)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    },
    { when: (payload) => isRoleProfile(payload.value) },
  )
  // the update method's version point and registers (edge/config/firmware.ts), beside the profile's other issues
  .superRefine(
    (p, ctx) => {
      for (const issue of profileFirmwareIssues(p)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    },
    { when: (payload) => isFirmwareProfile(payload.value) },
  )
  // a deadband or minimum interval on an alarm's input or a lamp failure (edge/report/everyChange.ts)
  .superRefine((p, ctx) => {
    for (const issue of profileReportIssues(p)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  });

/** Enough of a profile, even one with issues elsewhere, for its roles to be checked. */
function isRoleProfile(v: unknown): v is RoleProfile {
  if (v === null || typeof v !== 'object') return false;
  const { name, points, kind } = v as Record<string, unknown>;
  return (
    typeof name === 'string' &&
    (kind === undefined || (DEVICE_KINDS as readonly unknown[]).includes(kind)) &&
    Array.isArray(points) &&
    points.every((pt) => pt !== null && typeof pt === 'object' && typeof (pt as { name?: unknown }).name === 'string')
  );
}

/** Enough of a profile, even one with issues elsewhere, for its firmware section to be checked. */
function isFirmwareProfile(v: unknown): v is FirmwareProfile {
  if (v === null || typeof v !== 'object') return false;
  const { points, transport, firmware } = v as Record<string, unknown>;
  return (
    firmware !== undefined &&
    profileFirmwareSchema.safeParse(firmware).success &&
    (transport === undefined || transport === 'modbus' || transport === 'lorawan') &&
    Array.isArray(points) &&
    points.every((pt) => pt !== null && typeof pt === 'object')
  );
}

/** An optional AES-128 key of a LoRaWAN node. */
const aesKey = (what: string, more = '') => hex(16, 'an AES-128 key').optional().describe(`${what}, 32 hex digits${more}`);

export const lorawanDeviceSchema = z.strictObject({
  devEui: hex(8, 'a DevEUI').describe('the node\'s DevEUI, 16 hex digits: the device under `devices` with this `devEui`'),
  activation: z.enum(['abp', 'otaa']).describe('`abp` (session keys given: `devAddr`, `nwkSKey`, `appSKey`) or `otaa` (joins with `joinEui`, `appKey`)'),
  class: z.enum(['A', 'C']).default('A').describe('`A`: downlinks after an uplink; `C`: downlinks at once'),
  devAddr: hex(4, 'a DevAddr').optional().describe('ABP: the DevAddr, 8 hex digits (quote it: `"26011001"`)'),
  nwkSKey: aesKey('ABP: the network session key'),
  appSKey: aesKey('ABP: the application session key'),
  joinEui: hex(8, 'a JoinEUI').optional().describe('OTAA: the JoinEUI (AppEUI), 16 hex digits'),
  appKey: aesKey('OTAA: the AppKey'),
  genAppKey: aesKey('the TS005 GenAppKey (LoRaWAN 1.0.x) FUOTA\'s multicast keys derive from', ': a node without one takes no firmware over the air'),
  adr: z.boolean().optional().describe('ADR for this node, over `lorawan.adr.enabled`'),
});

export const lorawanSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('the gateway\'s LoRaWAN network server runs'),
  port: port.default(1700).describe('the UDP port of the Semtech packet forwarder protocol'),
  bind: z.string().default('127.0.0.1').describe('the address the UDP port listens on; list the `forwarders` when it is not loopback'),
  region: z.enum(['EU868']).default('EU868').describe('the regional parameters: `EU868`'),
  netId: hex(3, 'a NetID').default('000000').describe('the network\'s NetID, 6 hex digits: OTAA nodes get a DevAddr within its range'),
  rx1Delay: z
    .number()
    .int()
    .min(1)
    .max(15)
    .default(1)
    .describe('class A: seconds from the end of an uplink to RX1 (RX2 one second later); a join accept uses 5 s / 6 s'),
  rx1DrOffset: z.number().int().min(0).max(5).default(0).describe('RX1 data rate = the uplink\'s DR − rx1DrOffset'),
  rx2Dr: z.number().int().min(0).max(6).default(0).describe('RX2 data rate (EU868: DR0 at 869.525 MHz)'),
  dedupWindow: durationIn('0ms', '500ms')
    .default(200)
    .describe(
      'copies of one frame from several forwarders are merged within this window, keeping the best RSSI/SNR; with several forwarders the class A answer waits for it, and RX1 opens 1 s after the uplink',
    ),
  forwarders: z
    .array(
      z.strictObject({
        eui: hex(8, 'a gateway EUI').describe('the forwarder\'s gateway EUI, 16 hex digits'),
        name: z.string().min(1).max(64).optional().describe('a human name'),
      }),
    )
    .superRefine((list, ctx) =>
      list.forEach((f, i) => {
        const first = list.findIndex((g) => g.eui.toLowerCase() === f.eui.toLowerCase());
        if (first < i) ctx.addIssue({ code: 'custom', path: [i, 'eui'], message: `duplicate gateway EUI "${f.eui}" (first used at index ${first})` });
      }),
    )
    .default([])
    .describe(
      'the packet forwarders served, by gateway EUI (their `stat` becomes readings of device `gw-<EUI>`); any other EUI is refused. Without a list, the first 8 that relay a configured device\'s frame, a slot freed after 10 min of silence: list yours on a gateway whose `bind` is not loopback',
    ),
  devices: z.array(lorawanDeviceSchema).default([]).describe('the nodes\' activation and keys, by DevEUI'),
  adr: adrSchema.prefault({}).describe('adaptive data rate: ChirpStack\'s default algorithm, both ways (see "MAC commands and ADR")'),
  devStatusInterval: durationIn('0s', '7d')
    .default(86_400_000)
    .describe('how often each node is asked its battery and link margin (DevStatusReq); 0: never'),
  fuota: fuotaSchema.prefault({}).describe('firmware over the air to LoRaWAN nodes (TS003–TS006; see "Firmware over the air (FUOTA)")'),
});

const stepSchema = z.strictObject({
  at: z
    .string()
    .regex(/^(([01]\d|2[0-3]):[0-5]\d|(sunset|sunrise)([+-]\d+(m|h))?)$/, {
      message: 'expected "HH:MM", "sunset", "sunrise" or an offset like "sunset+15m"',
    })
    .describe('`HH:MM` local time, or `sunset` / `sunrise` with an optional offset (`sunset-15m`, `sunrise+30m`; these need gateway.lat and gateway.lon)'),
  level: z.number().min(0).max(100).describe('the level (%) the groups go to'),
});

export const scheduleSchema = z.strictObject({
  id: identifier.describe('the schedule\'s id'),
  groups: z.array(identifier).min(1).describe('the groups it dims: each declared under `groups` or named by a device'),
  days: z
    .array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']))
    .optional()
    .describe('the days it runs, `mon` … `sun`; omitted: every day'),
  steps: z.array(stepSchema).min(1).describe('what level when: the level in force is that of the last step fired, across days'),
});

export const groupSchema = z.strictObject({
  id: identifier.describe('the group id, named by devices\' `groups` and by schedules'),
  defaultLevel: z
    .number()
    .min(0)
    .max(100)
    .default(100)
    .describe('the level (%) a light goes to when no command, override or schedule applies, so that a lost command never leaves a street dark'),
  description: z.string().optional().describe('a human description'),
});

/** broker.users[].passwordHash: the scrypt format the broker loads (edge/control/passwords.ts) */
const scryptHash = z.string().min(1).refine(isPasswordHash, {
  message: 'expected a scrypt hash "scrypt$N$r$p$salt$hash" made by `streetbox hash-password`',
});
/** nodeRed.users[].passwordHash: the bcrypt format Node-RED's editor login checks */
const bcryptHash = z.string().min(1).refine(isBcryptHash, {
  message: 'expected a bcrypt hash "$2b$10$…" (60 characters) made by `streetbox hash-password --for node-red`',
});

const userSchema = z.strictObject({
  username: z.string().min(1).describe('the MQTT username'),
  password: z
    .string()
    .min(1)
    .optional()
    .describe('a plain password (give it as `${ENV_VAR}`), scrypt-hashed at start; or `passwordHash`, never both'),
  passwordHash: scryptHash.optional().describe('a scrypt hash made by `streetbox hash-password`, which keeps the plain password out of the file'),
  role: role.describe('`technician`, `maintenance`, `central` or `viewer`: its ACL decides what the user may publish and subscribe'),
});

const tlsSchema = z.strictObject({
  cert: z.string().describe('the broker\'s certificate, a PEM file relative to devices.yaml'),
  key: z.string().describe('its private key, a PEM file'),
  ca: z.string().optional().describe('CA certificates to send with it (the chain), a PEM file'),
});

/**
 * Home Assistant MQTT discovery (edge/broker/homeAssistant.ts): `true`, or `{ enabled, prefix }`;
 * read it with `homeAssistantOf()`.
 */
export const homeAssistantSchema = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.boolean().default(true).describe('discovery is published'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'expected a topic level of letters, digits, "_" and "-"' })
      .default('homeassistant')
      .describe('Home Assistant\'s discovery prefix (the setting of its MQTT integration)'),
  }),
]);

export interface HomeAssistantSettings {
  enabled: boolean;
  prefix: string;
}

/** broker.homeAssistant or sync.homeAssistant as one shape (absent or false: off). */
export function homeAssistantOf(v: z.output<typeof homeAssistantSchema> | undefined): HomeAssistantSettings {
  if (v === undefined || v === false) return { enabled: false, prefix: 'homeassistant' };
  if (v === true) return { enabled: true, prefix: 'homeassistant' };
  return { enabled: v.enabled, prefix: v.prefix };
}

export const brokerSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('the embedded MQTT broker (aedes, MQTT 3.1.1) runs'),
  host: z.string().default('0.0.0.0').describe('the address it listens on'),
  port: port.default(1883).describe('the plain MQTT port'),
  tlsPort: port.optional().describe('an MQTT-over-TLS port, with `tls`'),
  tls: tlsSchema.optional().describe('the TLS port\'s certificate and key'),
  allowAnonymous: z.boolean().default(false).describe('clients without a login are let in, as viewers; false: refused'),
  users: z.array(userSchema).default([]).describe('who may log in, each with a role'),
  maxPacketSize: byteSize
    .refine((n) => n >= 1024 && n <= 268_435_460, { message: 'expected between 1KiB and 256MiB (the MQTT 3.1.1 maximum)' })
    .default(256 * 1024)
    .describe(
      'the largest MQTT packet (header included) a logged-in client may send, 1KiB..256MiB; a larger one closes that client\'s connection. Until its CONNECT is authenticated a client may send at most 8 KiB a packet',
    ),
  connectTimeout: duration
    .refine((ms) => ms >= 100, { message: 'expected at least 100ms' })
    .default(10_000)
    .describe('a connection that has not completed an authenticated CONNECT (TLS handshake included) by then is closed; at least 100ms'),
  maxConnections: z
    .number()
    .int()
    .min(1)
    .default(256)
    .describe('connections open at once, logged in or not (loopback clients count too); those not logged in yet hold at most three quarters, the oldest closed to make room'),
  maxConnectionsPerAddress: z.number().int().min(1).default(32).describe('connections open at once from one IP address'),
  homeAssistant: homeAssistantSchema
    .default(false)
    .describe('Home Assistant MQTT discovery on this broker (lights, sensors and alarms of every device): `true`, or `{ enabled, prefix }`'),
});

export const apiSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('the HTTP API, the status page and the Node-RED editor run'),
    host: z.string().default('0.0.0.0').describe('the address they listen on'),
    port: port.default(8080).describe('their port (HTTPS with `tls`)'),
    tls: z
      .strictObject({
        cert: z.string().min(1).describe('the certificate (with its chain, if any), a PEM file relative to devices.yaml'),
        key: z.string().min(1).describe('its private key, a PEM file'),
        ca: z.string().min(1).optional().describe('the CA that signed it, a PEM file: what the CLI trusts when it calls the API'),
      })
      .optional()
      .describe('HTTPS for the API, the status page and the Node-RED editor'),
    redirectPort: port.optional().describe('with `tls`: a plain-HTTP port on the same host that only redirects to https:// (e.g. 80)'),
    metricsAuth: z.boolean().default(true).describe('GET /metrics needs a token with the `read` permission; false: public'),
    mapTiles: z
      .string()
      .max(500)
      .refine((u) => /^https?:\/\/[^/\s]+\/\S*$/.test(u) && u.includes('{z}') && u.includes('{x}') && u.includes('{y}'), {
        message: 'expected a tile URL template like "https://tiles.example.org/{z}/{x}/{y}.png"',
      })
      .optional()
      .describe(
        'the status page\'s map tiles: a URL template with `{z}`, `{x}`, `{y}` (and optionally `{s}`), e.g. the city\'s own tile server, shown with Leaflet (bundled); unset: the devices are drawn to scale on a plain background, which works offline, as cabinets often are',
      ),
    mapAttribution: z.string().max(200).optional().describe('the tiles\' credit, shown on the map as text (e.g. "© OpenStreetMap contributors")'),
    tokens: z
      .array(
        z.strictObject({
          name: z.string().min(1).describe('the token\'s name, in the audit trail'),
          token: z
            .string()
            .min(16, { message: 'expected a token of at least 16 characters' })
            .describe('the bearer token, at least 16 characters (give it as `${ENV_VAR}`); held only as a sha256 hash'),
          role: role.describe('`technician`, `maintenance`, `central` or `viewer`: what the token may do'),
        }),
      )
      .default([])
      .describe('the bearer tokens the API takes, each with a role'),
  })
  .superRefine((api, ctx) => {
    if (api.redirectPort === undefined) return;
    if (api.tls === undefined) ctx.addIssue({ code: 'custom', path: ['redirectPort'], message: 'a redirect port needs api.tls (it redirects to https://)' });
    else if (api.redirectPort === api.port && api.port !== 0) ctx.addIssue({ code: 'custom', path: ['redirectPort'], message: `expected another port than api.port (${api.port})` });
  });

export const nodeRedSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('Node-RED runs inside the gateway; false: it is never loaded'),
  editor: z.boolean().default(true).describe('the flow editor and its admin API; false: the flows run without them'),
  path: z.string().default('/flows').describe('where the editor is served, on the API\'s port'),
  httpNodePath: z.string().default('/flows-api').describe('where the flows\' HTTP-in nodes are served, on the API\'s port'),
  userDir: z.string().optional().describe('Node-RED\'s user directory; unset: `node-red/` beside `storage.path`'),
  flowFile: z.string().optional().describe('the flow file; unset: `<userDir>/flows.json`, created from the shipped flows on first run'),
  credentialSecret: z
    .string()
    .optional()
    .describe('the key of the flows\' credentials (give it as `${ENV_VAR}`); unset: $STREETBOX_NODERED_SECRET, else one Node-RED generates and keeps in its user directory'),
  maxRole: role
    .default('maintenance')
    .describe('the highest role a flow\'s command node may act as; a node configured above it in the editor is refused, so a misconfigured node is not a technician\'s override'),
  users: z
    .array(
      z.strictObject({
        username: z.string().min(1).describe('the editor login\'s username'),
        password: z.string().min(1).optional().describe('a plain password (give it as `${ENV_VAR}`), bcrypt-hashed at start; or `passwordHash`, never both'),
        passwordHash: bcryptHash.optional().describe('a bcrypt hash made by `streetbox hash-password --for node-red`'),
        permissions: z
          .enum(['*', 'read'])
          .default('*')
          .describe('`*` deploys code that runs in the gateway (function nodes) and is as trusted as a technician: give everyone else `read`'),
      }),
    )
    .default([])
    .describe('the editor\'s logins'),
});

export const syncSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('the upstream sync runs'),
  url: z
    .string()
    .regex(/^mqtts?:\/\/.+/, { message: 'expected an mqtt:// or mqtts:// URL' })
    // the URL is logged and shown in errors and status: credentials belong in username/password
    .refine((u) => !/^mqtts?:\/\/[^/]*@/.test(u), { message: 'put credentials in sync.username and sync.password, not in the URL (the URL is logged)' })
    .describe('the upstream broker: `mqtt://host:1883` or `mqtts://host:8883`; no credentials in it (it is logged)'),
  clientId: z.string().optional().describe('the MQTT client id; unset: `streetbox-<gateway id>`'),
  username: z.string().optional().describe('the login at the upstream broker'),
  password: z.string().optional().describe('its password (give it as `${ENV_VAR}`)'),
  ca: z.string().optional().describe('the CA to check the broker\'s certificate with, a PEM file'),
  cert: z.string().optional().describe('a client certificate, a PEM file'),
  key: z.string().optional().describe('the client certificate\'s private key, a PEM file'),
  rejectUnauthorized: z.boolean().default(true).describe('a broker whose certificate does not check out is refused'),
  protocolVersion: z
    .union([z.literal(4), z.literal(5)])
    .default(4)
    .describe('`4` (MQTT 3.1.1) or `5`; prefer 5: a publish the broker\'s ACL denies comes back as an error and the data is kept, where 3.1.1 drops it silently'),
  batchSize: z.number().int().min(1).max(10_000).default(500).describe('items per batch at most'),
  batchBytes: byteSize.default(256 * 1024).describe('uncompressed JSON bytes per batch at most (a single larger item still goes alone)'),
  inFlight: z.number().int().min(1).max(64).default(4).describe('batches sent and not yet acknowledged at once'),
  compress: z
    .boolean()
    .default(true)
    .describe('deflate the items of a batch (~8× fewer bytes on a metered uplink); false for a central receiver that reads only plain batches (see "Compressed batches")'),
  linger: durationIn('0ms', '10m')
    .default(30_000)
    .describe(
      'a readings batch that is not full waits until its oldest reading has waited this long: one batch per linger, not one per commit; events never wait and take the readings before them along; 0: at once',
    ),
  ackTimeout: durationIn('1s', '1h').default(30_000).describe('a batch not acknowledged (PUBACK) within this is sent again over a new connection'),
  reconnectMin: durationIn('100ms', '1h').default(1000).describe('the first delay of the reconnect backoff (exponential, with jitter)'),
  reconnectMax: durationIn('1s', '1d').default(60_000).describe('the longest delay of the reconnect backoff'),
  configSigningKeys: z
    .array(signingKey)
    .default([])
    .describe(
      'ed25519 public keys (PEM "BEGIN PUBLIC KEY", or base64 of the raw 32 bytes) that central\'s configuration changes must be signed with; when given, an unsigned or wrongly signed change is refused; empty: changes are taken unsigned (see "Remote configuration")',
    ),
  homeAssistant: homeAssistantSchema
    .default(false)
    .describe('Home Assistant MQTT discovery on the upstream broker, its commands taken as central\'s: `true`, or `{ enabled, prefix }`'),
});

export const simulateSchema = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.boolean().default(true).describe('the simulators start; false: only `radioTimeScale` applies (a test with simulated radios of its own)'),
    speed: z.number().positive().default(1).describe('scales how often simulated values change'),
    radioTimeScale: z
      .number()
      .min(1)
      .max(10)
      .default(1)
      .describe(
        'the LoRaWAN side\'s clock (RX windows, duty-cycle ledger, FUOTA sessions, the simulated nodes) runs this many times faster, on a radio time line every process shares, so a demo or a test sees a ten-minute FUOTA session in one; readings and events keep real time. A real radio would break its duty cycle: `streetbox doctor` warns',
      ),
  }),
]);

// ---------------------------------------------------------------------------------------

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('the JSON Schema editors check the file with, e.g. `./devices.schema.json`'),
    gateway: gatewaySchema.describe('the gateway itself: its id, where it stands, its time zone'),
    storage: storageSchema.prefault({}).describe('the SQLite buffer of readings, events and commands'),
    buses: z.array(busSchema).default([]).describe('the Modbus lines: serial (RTU on RS-485) or TCP, each with an `id` and a `type`'),
    devices: z.array(deviceSchema).default([]).describe('the controllers and nodes: Modbus (`bus`, `unit`) or LoRaWAN (`devEui`), each with a profile'),
    groups: z.array(groupSchema).default([]).describe('lighting groups and the level each falls back to'),
    profiles: z.array(profileSchema).default([]).describe('custom device profiles (register maps) as data; see "Device profiles and register maps"'),
    lorawan: lorawanSchema.optional().describe('the gateway\'s own LoRaWAN network server: packet forwarders, nodes, ADR, FUOTA'),
    schedules: z.array(scheduleSchema).default([]).describe('dimming programs of groups, run on the gateway itself'),
    broker: brokerSchema.prefault({}).describe('the embedded MQTT broker; see "MQTT: the embedded broker"'),
    api: apiSchema.prefault({}).describe('the HTTP API, the status page and the Node-RED editor; see "HTTP API"'),
    nodeRed: nodeRedSchema.prefault({}).describe('Node-RED: local flows; see "Node-RED: local flows"'),
    sync: syncSchema.optional().describe('the upstream MQTT link to the central systems; see "Upstream sync"'),
    firmware: firmwareSchema
      .prefault({})
      .describe('firmware orchestration: signing keys, artifacts, city-safety windows, timeouts, self-update; see "Firmware orchestration"'),
    simulate: simulateSchema
      .default(false)
      .describe('`true` starts the built-in simulators for every configured bus and LoRaWAN device; or `{ enabled, speed, radioTimeScale }`'),
  })
  // only on a well-formed config: on a malformed file the loader checks the valid parts (lenient.ts)
  .superRefine((cfg, ctx) => crossCheck(cfg, ctx), { when: (payload) => payload.issues.length === 0 });

// finished: each clone above (a description, a check) forgets the schema it was made from (compact.ts)
compactSchemas(
  [configSchema, identifier, role, gatewaySchema, storageSchema, busSchema, deviceSchema, pointSchema, alarmSchema, profileSchema, lorawanDeviceSchema, lorawanSchema, scheduleSchema, groupSchema, homeAssistantSchema, brokerSchema, apiSchema, nodeRedSchema, syncSchema, simulateSchema],
  [fieldKinds],
);

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type BusConfig = z.output<typeof busSchema>;
export type SerialBusConfig = z.output<typeof serialBusSchema>;
export type TcpBusConfig = z.output<typeof tcpBusSchema>;
export type DeviceConfig = z.output<typeof deviceSchema>;
export type ProfileConfig = z.output<typeof profileSchema>;
export type PointConfig = z.output<typeof pointSchema>;
export type StorageConfig = z.output<typeof storageSchema>;
export type AlarmConfig = z.output<typeof alarmSchema>;

/** Profiles that ship with streetbox (edge/profiles); custom ones come from `profiles:`. */
export const BUILTIN_PROFILES = ['streetlight-controller', 'traffic-controller', 'lora-streetlight'] as const;

type Ctx = z.RefinementCtx;
type RawConfig = {
  buses: { id: string }[];
  devices: DeviceConfig[];
  groups: { id: string }[];
  profiles: { name: string }[];
  lorawan?: { dedupWindow: number; devices: { devEui: string; activation: string; devAddr?: string | undefined; nwkSKey?: string | undefined; appSKey?: string | undefined; appKey?: string | undefined; joinEui?: string | undefined }[] } | undefined;
  schedules: { groups: string[]; steps: { at: string }[] }[];
  gateway?: { lat?: number | undefined; lon?: number | undefined };
  broker: { users: { username: string; password?: string | undefined; passwordHash?: string | undefined }[] };
  api: { tokens: { name: string; token: string }[] };
  nodeRed: { users: { password?: string | undefined; passwordHash?: string | undefined }[] };
};

function duplicates<T>(ctx: Ctx, items: T[], key: (t: T) => string, path: (i: number) => (string | number)[], what: string): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first !== undefined) {
      ctx.addIssue({ code: 'custom', path: path(i), message: `duplicate ${what} "${k}" (first used at index ${first})` });
    } else seen.set(k, i);
  });
}

/** What the loader's check of the valid parts of a file left out as invalid (lenient.ts). */
export interface LeftOut {
  /** whether `name` may be an entry of `section` left out: a reference to it is not reported, the invalid entry is */
  has(section: 'buses' | 'groups' | 'profiles' | 'lorawan', name: string): boolean;
  /** gateway.lat or gateway.lon is written but invalid */
  position: boolean;
}

export const NOTHING_LEFT_OUT: LeftOut = { has: () => false, position: false };

/** References between sections: buses, profiles, groups and LoRaWAN keys named by devices exist.
 * Exported for the loader, which also runs it on the valid parts of a file that has other issues.
 * A device's `points:` against its profile's points is the loader's (deviceReports.ts): it needs
 * the built-in profiles, and reading them needs this schema. */
export function crossCheck(cfg: RawConfig, ctx: Ctx, leftOut: LeftOut = NOTHING_LEFT_OUT): void {
  duplicates(ctx, cfg.buses, (b) => b.id, (i) => ['buses', i, 'id'], 'bus id');
  duplicates(ctx, cfg.devices, (d) => d.id, (i) => ['devices', i, 'id'], 'device id');
  duplicates(ctx, cfg.groups, (g) => g.id, (i) => ['groups', i, 'id'], 'group id');
  duplicates(ctx, cfg.profiles, (p) => p.name, (i) => ['profiles', i, 'name'], 'profile name');
  duplicates(ctx, cfg.broker.users, (u) => u.username, (i) => ['broker', 'users', i, 'username'], 'username');
  duplicates(ctx, cfg.api.tokens, (t) => t.name, (i) => ['api', 'tokens', i, 'name'], 'token name');

  const busIds = new Set(cfg.buses.map((b) => b.id));
  const profiles = new Set<string>([...BUILTIN_PROFILES, ...cfg.profiles.map((p) => p.name)]);
  const loraEuis = new Set((cfg.lorawan?.devices ?? []).map((d) => d.devEui.toLowerCase()));
  const units = new Map<string, number>();

  cfg.devices.forEach((d, i) => {
    if (d.devEui !== undefined) {
      if (d.bus !== undefined || d.unit !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['devices', i, 'devEui'], message: 'a device has either bus and unit (Modbus) or devEui (LoRaWAN), not both' });
      }
      if (!loraEuis.has(d.devEui.toLowerCase()) && !leftOut.has('lorawan', d.devEui.toLowerCase())) {
        ctx.addIssue({ code: 'custom', path: ['devices', i, 'devEui'], message: `no keys for DevEUI ${d.devEui} under lorawan.devices` });
      }
    } else {
      if (d.bus === undefined) {
        ctx.addIssue({ code: 'custom', path: ['devices', i], message: 'missing required key "bus" (with "unit", for Modbus) or "devEui" (for LoRaWAN)' });
      } else if (!busIds.has(d.bus) && !leftOut.has('buses', d.bus)) {
        ctx.addIssue({ code: 'custom', path: ['devices', i, 'bus'], message: unknownName('bus', d.bus, [...busIds], 'buses are') });
      }
      if (d.bus !== undefined && d.unit === undefined) {
        ctx.addIssue({ code: 'custom', path: ['devices', i], message: 'missing required key "unit" (the Modbus unit id 1..247)' });
      }
      if (d.bus !== undefined && d.unit !== undefined) {
        const key = `${d.bus}/${d.unit}`;
        const first = units.get(key);
        if (first !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['devices', i, 'unit'], message: `unit ${d.unit} on bus "${d.bus}" is already used by devices[${first}]` });
        } else units.set(key, i);
      }
    }
    if (!profiles.has(d.profile) && !leftOut.has('profiles', d.profile)) {
      ctx.addIssue({ code: 'custom', path: ['devices', i, 'profile'], message: unknownName('profile', d.profile, [...profiles], 'known') });
    }
  });

  // Schedules: a group must exist (declared, or named by a device), so a typo never leaves a
  // street without its program; sun-anchored steps need the gateway's position.
  const knownGroups = new Set<string>([...cfg.groups.map((g) => g.id), ...cfg.devices.flatMap((d) => d.groups)]);
  const hasPosition = leftOut.position || (cfg.gateway?.lat !== undefined && cfg.gateway.lon !== undefined);
  const sunSteps: { at: string; path: (string | number)[] }[] = [];
  cfg.schedules.forEach((s, i) => {
    s.groups.forEach((g, j) => {
      if (!knownGroups.has(g) && !leftOut.has('groups', g)) {
        ctx.addIssue({ code: 'custom', path: ['schedules', i, 'groups', j], message: unknownName('group', g, [...knownGroups], 'groups are') });
      }
    });
    s.steps.forEach((step, j) => {
      if (/^sun(set|rise)/.test(step.at)) sunSteps.push({ at: step.at, path: ['schedules', i, 'steps', j, 'at'] });
    });
  });
  const [firstSun] = sunSteps;
  if (!hasPosition && firstSun) {
    // one issue for the one fix, at the first step that needs it
    const more = sunSteps.length > 1 ? ` (as do ${sunSteps.length - 1} more sun steps)` : '';
    ctx.addIssue({ code: 'custom', path: firstSun.path, message: `"${firstSun.at}" needs the gateway's position: set gateway.lat and gateway.lon${more}` });
  }

  if (cfg.lorawan && cfg.lorawan.dedupWindow > MAX_DEDUP_WINDOW_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['lorawan', 'dedupWindow'],
      message: `expected at most ${MAX_DEDUP_WINDOW_MS} ms: the answer waits for the window and RX1 opens 1 s after the uplink`,
    });
  }

  cfg.lorawan?.devices.forEach((d, i) => {
    const need = d.activation === 'abp' ? (['devAddr', 'nwkSKey', 'appSKey'] as const) : (['joinEui', 'appKey'] as const);
    for (const key of need) {
      if (d[key] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['lorawan', 'devices', i], message: `missing required key "${key}" (${d.activation.toUpperCase()} activation needs ${need.join(', ')})` });
      }
    }
  });

  const users: [string, { password?: string | undefined; passwordHash?: string | undefined }[]][] = [
    ['broker', cfg.broker.users],
    ['nodeRed', cfg.nodeRed.users],
  ];
  for (const [section, list] of users) {
    list.forEach((u, i) => {
      if ((u.password === undefined) === (u.passwordHash === undefined)) {
        ctx.addIssue({ code: 'custom', path: [section, 'users', i], message: `expected exactly one of "password" or "passwordHash", got ${u.password === undefined ? 'neither' : 'both'}` });
      }
    });
  }
}
