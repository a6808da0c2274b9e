/**
 * The schema of devices.yaml. The TypeScript types of the configuration are inferred from
 * it (`Config` below), never written twice. Every object is strict: an unknown key is an
 * error (with a did-you-mean hint from the loader), never silently ignored.
 */
import { z } from 'zod';
import { unknownName } from './suggest.js';
import { loadZoneRules } from '../zoneinfo.js';
import { isBcryptHash, isPasswordHash } from '../control/passwords.js';
import { byteSize, duration, durationIn, port, remotePort } from './scalars.js';
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
  id: identifier,
  site: z.string().optional(),
  lat: z.number().min(-90).max(90).optional(),
  lon: z.number().min(-180).max(180).optional(),
  timezone: timezone.default('UTC'),
  /**
   * how long a configuration change has to pass the health probe before it is rolled back by
   * itself (edge/reconfig): the applied version must keep every component and touched bus up
   */
  confirmTimeout: durationIn('1s', '1h').default(120_000),
});

export const storageSchema = z.strictObject({
  /** the SQLite file; relative paths are relative to the devices.yaml that names them */
  path: z.string().min(1).default('data/streetbox.db'),
  maxBytes: byteSize.default(256 * 1024 * 1024),
  /** full: every commit survives power loss; normal: survives a crash of the process */
  durability: z.enum(['full', 'normal']).default('normal'),
  /** the batched writer commits every flushInterval or every flushRows readings, whichever first */
  flushInterval: durationIn('10ms', '1h').default(200),
  flushRows: z.number().int().min(1).max(100_000).default(1000),
  /** `streetbox doctor` warns when the buffer holds fewer days offline than this at the configured load; 0: no check */
  minAutonomyDays: z.number().min(0).max(3650).default(7),
});

const busCommon = {
  id: identifier,
  /** how long to wait for an answer */
  timeout: durationIn('10ms', '60s').default(1000),
  retries: z.number().int().min(0).max(10).default(1),
  /** consecutive failures after which a device is marked offline */
  offlineAfter: z.number().int().min(1).max(100).default(3),
  /** how often an offline device is probed */
  probeInterval: durationIn('1s', '1d').default(30_000),
  /** block reads: largest hole (in registers) bridged to merge two points into one request */
  maxGap: z.number().int().min(0).max(125).default(8),
  /** the most of the line's time firmware blocks may take (edge/firmware); polls and commands keep the rest */
  transferShare: z.number().min(0.05).max(1).default(0.9),
};

export const serialBusSchema = z.strictObject({
  ...busCommon,
  type: z.literal('serial'),
  path: z.string().min(1),
  baud: z.number().int().min(300).max(921_600).default(9600),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  parity: z.enum(['none', 'even', 'odd']).default('even'),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
  /** tolerance on top of t1.5 for a silence inside a frame (user-space timing; USB adapters deliver in chunks) */
  interByteSlack: durationIn('0ms', '1s').default(5),
});

export const tcpBusSchema = z.strictObject({
  ...busCommon,
  type: z.literal('tcp'),
  host: z.string().min(1),
  port: remotePort.default(502),
});

export const busSchema = z.discriminatedUnion('type', [serialBusSchema, tcpBusSchema]);

export const deviceSchema = z.strictObject({
  id: identifier,
  name: z.string().optional(),
  /** Modbus: the bus id and unit id */
  bus: identifier.optional(),
  unit: z.number().int().min(1).max(247).optional(),
  /** LoRaWAN: the node's DevEUI (keys under lorawan.devices) */
  devEui: hex(8, 'a DevEUI').optional(),
  profile: z.string().min(1),
  poll: durationIn('100ms', '1d').default(5000),
  groups: z.array(identifier).default([]),
  /** traffic controllers: commands are refused unless this is true */
  allowCommands: z.boolean().default(false),
  lat: z.number().min(-90).max(90).optional(),
  lon: z.number().min(-180).max(180).optional(),
  /** when a polled value is stored, for all the device's points (edge/config/report.ts) */
  report: reportSchema.optional(),
  /** per point, the most specific: `ch1_power: { report: { deadband: 5 } }` */
  points: z.record(identifier, z.strictObject({ report: reportSchema })).optional(),
});

export const pointSchema = z.strictObject({
  name: identifier,
  table: z.enum(['coil', 'discrete', 'holding', 'input']),
  address: z.number().int().min(0).max(65535),
  type: z.enum(['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32']).default('uint16'),
  /** for 32-bit types: which register holds the high word */
  wordOrder: z.enum(['big', 'little']).default('big'),
  /** a single bit of a register, read as bool */
  bit: z.number().int().min(0).max(15).optional(),
  scale: z.number().default(1),
  offset: z.number().default(0),
  unit: z.string().optional(),
  access: z.enum(['r', 'rw']).default('r'),
  /** what the point means to the gateway (edge/profiles/pointRoles.ts): targetLightLevel, switch, programRequest, … */
  role: z.enum(POINT_ROLE_NAMES).optional(),
  /** the output channel of a per-channel role (multi-channel controllers); default 1 */
  channel: z.number().int().min(1).max(MAX_CHANNELS).optional(),
  description: z.string().optional(),
  /** when a polled value is stored, where the role's default does not fit (edge/report/defaults.ts) */
  report: reportSchema.optional(),
});

export const alarmSchema = z.strictObject({
  name: identifier,
  point: identifier,
  /** the bit of the point's value that raises the alarm; omitted: any non-zero value */
  bit: z.number().int().min(0).max(31).optional(),
  severity: z.enum(['info', 'warning', 'error', 'critical']).default('warning'),
});

export const profileSchema = z
  .strictObject({
    name: identifier,
    description: z.string().optional(),
    transport: z.enum(['modbus', 'lorawan']).default('modbus'),
    /**
     * what the device is: a light (dimmed through its targetLightLevel and switch points), a traffic
     * controller (only ever takes program requests: DESIGN.md safety rules) or other (read only).
     * Without kind and roles, the old point names decide (edge/profiles/describe.ts, deprecated).
     */
    kind: z.enum(DEVICE_KINDS).optional(),
    points: z.array(pointSchema).default([]),
    alarms: z.array(alarmSchema).default([]),
    /** how the device takes a firmware image (edge/config/firmware.ts); none: it cannot be an update's target */
    firmware: profileFirmwareSchema.optional(),
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

export const lorawanDeviceSchema = z.strictObject({
  devEui: hex(8, 'a DevEUI'),
  activation: z.enum(['abp', 'otaa']),
  class: z.enum(['A', 'C']).default('A'),
  // ABP
  devAddr: hex(4, 'a DevAddr').optional(),
  nwkSKey: hex(16, 'an AES-128 key').optional(),
  appSKey: hex(16, 'an AES-128 key').optional(),
  // OTAA
  joinEui: hex(8, 'a JoinEUI').optional(),
  appKey: hex(16, 'an AES-128 key').optional(),
  /** TS005 GenAppKey (LoRaWAN 1.0.x), from which the multicast keys for FUOTA derive; a node without one takes no FUOTA */
  genAppKey: hex(16, 'an AES-128 key').optional(),
  /** ADR for this node (default lorawan.adr.enabled) */
  adr: z.boolean().optional(),
});

export const lorawanSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** UDP port of the Semtech packet forwarder protocol */
  port: port.default(1700),
  bind: z.string().default('127.0.0.1'),
  region: z.enum(['EU868']).default('EU868'),
  netId: hex(3, 'a NetID').default('000000'),
  /** class A: seconds from the end of an uplink to RX1 (RX2 one second later); join accept uses 5 s / 6 s */
  rx1Delay: z.number().int().min(1).max(15).default(1),
  /** RX1 data rate = uplink DR − rx1DrOffset (EU868: 0..5) */
  rx1DrOffset: z.number().int().min(0).max(5).default(0),
  /** RX2 data rate (EU868 default DR0 at 869.525 MHz) */
  rx2Dr: z.number().int().min(0).max(6).default(0),
  /**
   * copies of one frame from several forwarders are merged within this window; with several
   * forwarders the class A answer waits for it, so it must leave RX1 (1 s after the uplink) reachable
   */
  dedupWindow: durationIn('0ms', '500ms').default(200),
  /**
   * the packet forwarders served, by gateway EUI (their `stat` becomes readings of gw-<eui>);
   * any other EUI is refused. Without a list, at most 8 at a time, a slot freed by 10 min of silence.
   */
  forwarders: z
    .array(z.strictObject({ eui: hex(8, 'a gateway EUI'), name: z.string().min(1).max(64).optional() }))
    .superRefine((list, ctx) =>
      list.forEach((f, i) => {
        const first = list.findIndex((g) => g.eui.toLowerCase() === f.eui.toLowerCase());
        if (first < i) ctx.addIssue({ code: 'custom', path: [i, 'eui'], message: `duplicate gateway EUI "${f.eui}" (first used at index ${first})` });
      }),
    )
    .default([]),
  devices: z.array(lorawanDeviceSchema).default([]),
  /** adaptive data rate (mac/adr.ts) */
  adr: adrSchema.prefault({}),
  /** how often each node is asked its battery and link margin (DevStatusReq); 0 never */
  devStatusInterval: durationIn('0s', '7d').default(86_400_000),
  /** firmware over the air (TS003–TS006) */
  fuota: fuotaSchema.prefault({}),
});

const stepSchema = z.strictObject({
  /** "HH:MM" local time, or "sunset", "sunrise" with an optional offset: "sunset+15m", "sunrise-30m" */
  at: z
    .string()
    .regex(/^(([01]\d|2[0-3]):[0-5]\d|(sunset|sunrise)([+-]\d+(m|h))?)$/, {
      message: 'expected "HH:MM", "sunset", "sunrise" or an offset like "sunset+15m"',
    }),
  level: z.number().min(0).max(100),
});

export const scheduleSchema = z.strictObject({
  id: identifier,
  groups: z.array(identifier).min(1),
  days: z.array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])).optional(),
  steps: z.array(stepSchema).min(1),
});

export const groupSchema = z.strictObject({
  id: identifier,
  /** the level a light goes to when no command, override or schedule applies */
  defaultLevel: z.number().min(0).max(100).default(100),
  description: z.string().optional(),
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
  username: z.string().min(1),
  /** a plain password (give it as ${ENV_VAR}) or a hash made by `streetbox hash-password` */
  password: z.string().min(1).optional(),
  passwordHash: scryptHash.optional(),
  role,
});

const tlsSchema = z.strictObject({
  cert: z.string(),
  key: z.string(),
  ca: z.string().optional(),
});

/**
 * Home Assistant MQTT discovery (edge/broker/homeAssistant.ts): `true`, or `{ enabled, prefix }`;
 * read it with `homeAssistantOf()`.
 */
export const homeAssistantSchema = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.boolean().default(true),
    /** Home Assistant's discovery prefix (its MQTT integration's setting) */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'expected a topic level of letters, digits, "_" and "-"' })
      .default('homeassistant'),
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
  enabled: z.boolean().default(true),
  host: z.string().default('0.0.0.0'),
  port: port.default(1883),
  tlsPort: port.optional(),
  tls: tlsSchema.optional(),
  allowAnonymous: z.boolean().default(false),
  users: z.array(userSchema).default([]),
  /** the largest MQTT packet (header included) a logged-in client may send; a larger one closes its connection. Until its CONNECT is authenticated a client may send at most 8 KiB a packet. */
  maxPacketSize: byteSize
    .refine((n) => n >= 1024 && n <= 268_435_460, { message: 'expected between 1KiB and 256MiB (the MQTT 3.1.1 maximum)' })
    .default(256 * 1024),
  /** a connection that has not completed an authenticated CONNECT (TLS handshake included) by then is closed */
  connectTimeout: duration.refine((ms) => ms >= 100, { message: 'expected at least 100ms' }).default(10_000),
  /** connections open at once, logged in or not */
  maxConnections: z.number().int().min(1).default(256),
  /** connections open at once from one IP address */
  maxConnectionsPerAddress: z.number().int().min(1).default(32),
  /** Home Assistant MQTT discovery on this broker: lights, sensors and alarms of every device */
  homeAssistant: homeAssistantSchema.default(false),
});

export const apiSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    host: z.string().default('0.0.0.0'),
    port: port.default(8080),
    /** HTTPS for the API, the status page and the Node-RED editor: PEM files, relative to devices.yaml */
    tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1).optional() }).optional(),
    /** with tls: a plain-HTTP port on the same host that only redirects to https:// (e.g. 80) */
    redirectPort: port.optional(),
    /** GET /metrics needs a bearer token with the `read` permission unless this is false */
    metricsAuth: z.boolean().default(true),
    /**
     * the status page's map tiles: a URL template with {z}, {x} and {y} (and optionally {s}), e.g.
     * the city's own tile server, shown with Leaflet (bundled); unset: the map draws the devices'
     * positions to scale on a plain background, which works offline, as cabinets often are
     */
    mapTiles: z
      .string()
      .max(500)
      .refine((u) => /^https?:\/\/[^/\s]+\/\S*$/.test(u) && u.includes('{z}') && u.includes('{x}') && u.includes('{y}'), {
        message: 'expected a tile URL template like "https://tiles.example.org/{z}/{x}/{y}.png"',
      })
      .optional(),
    /** the tiles' attribution, shown on the map (e.g. "© OpenStreetMap contributors") */
    mapAttribution: z.string().max(200).optional(),
    tokens: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          token: z.string().min(16, { message: 'expected a token of at least 16 characters' }),
          role,
        }),
      )
      .default([]),
  })
  .superRefine((api, ctx) => {
    if (api.redirectPort === undefined) return;
    if (api.tls === undefined) ctx.addIssue({ code: 'custom', path: ['redirectPort'], message: 'a redirect port needs api.tls (it redirects to https://)' });
    else if (api.redirectPort === api.port && api.port !== 0) ctx.addIssue({ code: 'custom', path: ['redirectPort'], message: `expected another port than api.port (${api.port})` });
  });

export const nodeRedSchema = z.strictObject({
  enabled: z.boolean().default(false),
  editor: z.boolean().default(true),
  path: z.string().default('/flows'),
  httpNodePath: z.string().default('/flows-api'),
  userDir: z.string().optional(),
  flowFile: z.string().optional(),
  credentialSecret: z.string().optional(),
  /** the highest role a flow's command node may act as (a node asking for more is refused) */
  maxRole: role.default('maintenance'),
  users: z
    .array(
      z.strictObject({
        username: z.string().min(1),
        password: z.string().min(1).optional(),
        passwordHash: bcryptHash.optional(),
        permissions: z.enum(['*', 'read']).default('*'),
      }),
    )
    .default([]),
});

export const syncSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** mqtt://host:1883 or mqtts://host:8883 */
  url: z
    .string()
    .regex(/^mqtts?:\/\/.+/, { message: 'expected an mqtt:// or mqtts:// URL' })
    // the URL is logged and shown in errors and status: credentials belong in username/password
    .refine((u) => !/^mqtts?:\/\/[^/]*@/.test(u), { message: 'put credentials in sync.username and sync.password, not in the URL (the URL is logged)' }),
  clientId: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  rejectUnauthorized: z.boolean().default(true),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
  batchSize: z.number().int().min(1).max(10_000).default(500),
  batchBytes: byteSize.default(256 * 1024),
  inFlight: z.number().int().min(1).max(64).default(4),
  /** deflate the items of a batch (cloud-sync/CONTRACT.md "Compressed batches"): ~8× fewer bytes on a metered uplink */
  compress: z.boolean().default(true),
  /**
   * how long a readings batch that is neither full nor closed by an event waits for more
   * readings: one batch per linger instead of one per commit; events never wait. 0: at once
   */
  linger: durationIn('0ms', '10m').default(30_000),
  /** a batch not acknowledged (PUBACK) within this is resent over a new connection */
  ackTimeout: durationIn('1s', '1h').default(30_000),
  /** reconnect backoff: first delay and ceiling (exponential, with jitter) */
  reconnectMin: durationIn('100ms', '1h').default(1000),
  reconnectMax: durationIn('1s', '1d').default(60_000),
  /**
   * ed25519 public keys (PEM "BEGIN PUBLIC KEY", or base64 of the raw 32 bytes) that central's
   * configuration changes must be signed with; empty: changes are taken unsigned. When
   * non-empty, an unsigned or wrongly signed change is refused (edge/reconfig).
   */
  configSigningKeys: z.array(signingKey).default([]),
  /** Home Assistant MQTT discovery on the upstream broker (commands go through down/commands as central) */
  homeAssistant: homeAssistantSchema.default(false),
});

export const simulateSchema = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.boolean().default(true),
    /** scales how often simulated values change */
    speed: z.number().positive().default(1),
    /**
     * the LoRaWAN side's clock runs this many times faster than the wall clock (duty-cycle ledger,
     * air-time pacing, FUOTA sessions, the simulated nodes): for demos and tests whose radios are
     * simulated (by this gateway, or with `enabled: false` by a simulator of their own); `doctor` warns
     */
    radioTimeScale: z.number().min(1).max(10).default(1),
  }),
]);

// ---------------------------------------------------------------------------------------

export const configSchema = z
  .strictObject({
    $schema: z.string().optional(),
    gateway: gatewaySchema,
    storage: storageSchema.prefault({}),
    buses: z.array(busSchema).default([]),
    devices: z.array(deviceSchema).default([]),
    groups: z.array(groupSchema).default([]),
    profiles: z.array(profileSchema).default([]),
    lorawan: lorawanSchema.optional(),
    schedules: z.array(scheduleSchema).default([]),
    broker: brokerSchema.prefault({}),
    api: apiSchema.prefault({}),
    nodeRed: nodeRedSchema.prefault({}),
    sync: syncSchema.optional(),
    /** firmware orchestration (edge/firmware): signing keys, artifacts, city-safety windows, timeouts, self-update */
    firmware: firmwareSchema.prefault({}),
    simulate: simulateSchema.default(false),
  })
  // only on a well-formed config: on a malformed file the loader checks the valid parts (lenient.ts)
  .superRefine((cfg, ctx) => crossCheck(cfg, ctx), { when: (payload) => payload.issues.length === 0 });

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
