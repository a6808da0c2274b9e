/**
 * `streetbox init`: a first, commented devices.yaml for the hardware found. Serial ports come
 * from serialport's list (named by their stable /dev/serial/by-id/ path where there is one) or
 * --serial; Modbus TCP endpoints from --tcp. Every bus is scanned for answering unit ids, and
 * each unit's profile is guessed by reading every point of every built-in profile: a profile
 * matches when all its reads succeed (a controller answers ILLEGAL DATA ADDRESS, Modbus
 * Application Protocol 1.1b3 §7 exception 02, for registers it does not have), its bool
 * registers hold 0 or 1 and not every register read is zero. The API and the broker are on, with
 * a fresh technician token and password hashes (edge/ops/initSecrets.ts). The text is validated
 * with the same loader as `streetbox validate` before it is written.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { ModbusClient } from '../drivers/modbus/client.js';
import { parseConfig } from '../config/index.js';
import { serialBusSchema, tcpBusSchema, type BusConfig, type ProfileConfig } from '../config/schema.js';
import { StreetboxError, errorMessage } from '../errors.js';
import { loadProfiles } from '../profiles/index.js';
import type { InitSecrets } from './initSecrets.js';

export interface InitOptions {
  /** serial paths to scan; undefined: every port serialport lists */
  serial?: string[];
  /** host:port of Modbus TCP endpoints */
  tcp?: string[];
  units: readonly number[];
  timeoutMs: number;
  baud: number;
  parity: 'none' | 'even' | 'odd';
  /** serialport's list, replaceable in tests */
  listPorts?: () => Promise<PortInfo[]>;
  now?: () => number;
}

export interface PortInfo {
  path: string;
  manufacturer?: string | undefined;
  serialNumber?: string | undefined;
  pnpId?: string | undefined;
}

export interface FoundUnit {
  bus: string;
  unit: number;
  /** the profile guessed, or null when none matched */
  profile: string | null;
  /** every profile whose registers matched (more than one: the guess is the largest) */
  matches: string[];
}

export interface ScannedBus {
  bus: BusConfig;
  /** a comment for the YAML: the adapter, or why the scan failed */
  note: string;
  error?: string;
}

export interface Discovery {
  buses: ScannedBus[];
  units: FoundUnit[];
}

async function listSerialPorts(): Promise<PortInfo[]> {
  const { SerialPort } = await import('serialport');
  return SerialPort.list();
}

/** The stable name of a port: /dev/serial/by-id/<pnpId> when it exists. */
function stablePath(p: PortInfo): string {
  const byId = p.pnpId ? `/dev/serial/by-id/${p.pnpId}` : null;
  return byId && existsSync(byId) ? byId : p.path;
}

function parseHostPort(spec: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(spec.trim());
  const port = m?.[2] === undefined ? 502 : Number(m[2]);
  if (!m || !(port >= 1 && port <= 65535)) throw new StreetboxError('E_USAGE', `--tcp: expected host or host:port, got "${spec}"`);
  return { host: m[1]!, port };
}

/**
 * Does every point of `profile` read back plausibly from `unit`? Every read succeeds, bool
 * registers hold 0 or 1, and not everything is zero (a device that answers zeros for any
 * address tells nothing).
 */
async function matches(client: ModbusClient, unit: number, profile: ProfileConfig, timeoutMs: number): Promise<boolean> {
  let nonZero = false;
  for (const table of ['coil', 'discrete', 'holding', 'input'] as const) {
    const points = profile.points.filter((p) => p.table === table);
    if (points.length === 0) continue;
    const lo = Math.min(...points.map((p) => p.address));
    const hi = Math.max(...points.map((p) => p.address + (p.type.endsWith('32') ? 2 : p.type.endsWith('64') ? 4 : 1)));
    try {
      const opts = { timeoutMs };
      if (table === 'coil' || table === 'discrete') {
        const bits = table === 'coil' ? await client.readCoils(unit, lo, hi - lo, opts) : await client.readDiscreteInputs(unit, lo, hi - lo, opts);
        nonZero ||= bits.some(Boolean);
      } else {
        const regs = table === 'holding' ? await client.readHoldingRegisters(unit, lo, hi - lo, opts) : await client.readInputRegisters(unit, lo, hi - lo, opts);
        for (const p of points) if (p.type === 'bool' && p.bit === undefined && (regs[p.address - lo] ?? 0) > 1) return false;
        nonZero ||= regs.some((r) => r !== 0);
      }
    } catch {
      return false;
    }
  }
  return nonZero;
}

export async function discover(opts: InitOptions): Promise<Discovery> {
  const buses: ScannedBus[] = [];
  const ports = opts.serial !== undefined ? opts.serial.map((path) => ({ path })) : await (opts.listPorts ?? listSerialPorts)().catch(() => []);
  ports.forEach((p, i) => {
    const info = p as PortInfo;
    const note = [info.manufacturer, info.serialNumber && `serial ${info.serialNumber}`].filter(Boolean).join(', ');
    buses.push({
      bus: serialBusSchema.parse({ id: `rs485-${i + 1}`, type: 'serial', path: stablePath(info), baud: opts.baud, parity: opts.parity }),
      note: note === '' ? info.path : `${note} (${info.path})`,
    });
  });
  (opts.tcp ?? []).forEach((spec, i) => {
    const { host, port } = parseHostPort(spec);
    buses.push({ bus: tcpBusSchema.parse({ id: `tcp-${i + 1}`, type: 'tcp', host, port }), note: `${host}:${port}` });
  });

  const profiles = loadProfiles();
  const modbusProfiles = profiles.names().map((n) => profiles.require(n)).filter((p) => p.transport === 'modbus');
  const units: FoundUnit[] = [];
  // one bus after the other: a technician's laptop may have several adapters on one hub
  for (const scanned of buses) {
    const client = new ModbusClient({ bus: scanned.bus });
    try {
      await client.open();
      for (const unit of await client.scan(opts.units, { timeoutMs: opts.timeoutMs })) {
        const found: string[] = [];
        for (const p of modbusProfiles) if (await matches(client, unit, p, opts.timeoutMs * 5)) found.push(p.name);
        found.sort((a, b) => profiles.require(b).points.length - profiles.require(a).points.length);
        units.push({ bus: scanned.bus.id, unit, profile: found[0] ?? null, matches: found });
      }
    } catch (err) {
      scanned.error = errorMessage(err);
    } finally {
      await client.close().catch(() => undefined);
    }
  }
  return { buses, units };
}

const SHORT: Record<string, string> = { 'streetlight-controller': 'lamp', 'traffic-controller': 'tc' };

function ms(v: number): string {
  return v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`;
}

export interface RenderOptions extends Pick<InitOptions, 'units' | 'timeoutMs'> {
  now?: () => number;
  gatewayId?: string;
  /** storage.path as written (default data/streetbox.db, relative to the file) */
  storagePath?: string;
  /** the API token and password hashes written into the file */
  secrets: InitSecrets;
  /** where the plain credentials are, for a comment */
  credentialsFile: string;
}

/** A YAML double-quoted string (the secrets are base64url or hashes: nothing to escape but the quote rules). */
const q = (s: string): string => JSON.stringify(s);

/** The commented devices.yaml for what was found, with the API and broker on and fresh secrets. */
export function renderConfig(d: Discovery, opts: RenderOptions): string {
  const at = new Date((opts.now ?? Date.now)()).toISOString();
  const id = (opts.gatewayId ?? hostname()).replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'gateway';
  const L: string[] = [];
  L.push(`# devices.yaml written by \`streetbox init\` at ${at}.`);
  L.push(`# Scanned ${d.buses.length} bus(es) for Modbus units ${rangeText(opts.units)} (${opts.timeoutMs} ms each); ${d.units.length} answered.`);
  L.push('# Review every line (ids, groups, poll intervals), then run `streetbox validate` and `streetbox doctor`.');
  L.push('');
  L.push('gateway:');
  L.push(`  id: ${id}                      # unique per gateway: the upstream topics and the buffer carry it`);
  L.push('  # site: "cabinet at the corner of …"');
  L.push('  # lat: 52.37                       # with lon: sunset/sunrise for the schedules');
  L.push('  # lon: 4.89');
  L.push('  timezone: UTC                      # IANA zone for the schedules, e.g. Europe/Amsterdam');
  L.push('');
  L.push('storage:');
  L.push(`  path: ${opts.storagePath !== undefined ? q(opts.storagePath) : 'data/streetbox.db'}            # relative to this file; under systemd: /var/lib/streetbox/streetbox.db`);
  L.push('  maxBytes: 256MiB                   # the buffer while the uplink is down; doctor checks the free disk');
  L.push('  durability: normal                 # full: every commit survives a power cut (an fsync each)');
  L.push('');
  if (d.buses.length === 0) {
    L.push('buses: []                            # no serial port found and no --tcp given');
  } else {
    L.push('buses:');
    for (const { bus, note, error } of d.buses) {
      L.push(`  - id: ${bus.id}`);
      if (error) L.push(`    # the scan failed: ${error}`);
      if (bus.type === 'serial') {
        L.push(`    type: serial                     # ${note}`);
        L.push(`    path: ${bus.path}`);
        L.push(`    baud: ${bus.baud}`);
        L.push(`    parity: ${bus.parity}                     # the controllers' line settings: baud, parity, stopBits`);
        L.push(`    stopBits: ${bus.stopBits}`);
      } else {
        L.push('    type: tcp');
        L.push(`    host: ${bus.host}`);
        L.push(`    port: ${bus.port}`);
      }
      L.push(`    timeout: ${ms(bus.timeout)}`);
    }
  }
  L.push('');
  const known = d.units.filter((u) => u.profile !== null);
  const unknown = d.units.filter((u) => u.profile === null);
  L.push(known.length === 0 ? 'devices: []' : 'devices:');
  const counters = new Map<string, number>();
  for (const u of known) {
    const prefix = SHORT[u.profile!] ?? u.profile!;
    const n = (counters.get(prefix) ?? 0) + 1;
    counters.set(prefix, n);
    const also = u.matches.length > 1 ? `  # also matches: ${u.matches.slice(1).join(', ')}` : '';
    const commands = u.profile === 'traffic-controller' ? ', allowCommands: false' : '';
    L.push(`  - { id: ${prefix}-${n}, bus: ${u.bus}, unit: ${u.unit}, profile: ${u.profile}, poll: 5s${commands} }${also}`);
  }
  for (const u of unknown) {
    L.push(`  # unit ${u.unit} on ${u.bus} answered but matches no built-in profile: describe its registers under`);
    L.push('  # `profiles:` (see README, "Device profiles and register maps") and name that profile here');
    L.push(`  # - { id: device-${u.bus}-${u.unit}, bus: ${u.bus}, unit: ${u.unit}, profile: <name>, poll: 5s }`);
  }
  L.push('');
  const s = opts.secrets;
  L.push(`# The HTTP API (status page, commands, pull) and the embedded MQTT broker, with secrets made for`);
  L.push(`# this gateway alone; the technician's plain credentials are in ${opts.credentialsFile} (mode 0600).`);
  L.push('# Roles: technician, maintenance, central, viewer (README, "HTTP API" and "MQTT").');
  L.push('api:');
  L.push('  host: 0.0.0.0                      # 127.0.0.1: this box only');
  L.push('  port: 8080');
  L.push('  tokens:');
  L.push(`    - { name: technician, token: ${q(s.apiToken)}, role: technician }`);
  L.push('    # one per central system or team, e.g. { name: central, token: "${API_TOKEN_CENTRAL}", role: central }');
  L.push('broker:');
  L.push('  host: 0.0.0.0');
  L.push('  port: 1883');
  L.push('  allowAnonymous: false');
  L.push('  users:');
  L.push(`    - { username: technician, passwordHash: ${q(s.brokerPasswordHash)}, role: technician }`);
  L.push('    # more: a passwordHash from `streetbox hash-password`, or password: "${BROKER_PASSWORD_X}"');
  L.push('');
  L.push('# Node-RED (local flows, editor under /flows): off until enabled; its login and the key of its flow credentials are ready.');
  L.push('nodeRed:');
  L.push('  enabled: false');
  L.push(`  credentialSecret: ${q(s.nodeRedCredentialSecret)}`);
  L.push('  users:');
  L.push(`    - { username: technician, passwordHash: ${q(s.nodeRedPasswordHash)}, permissions: '*' }   # hash-password --for node-red`);
  L.push('');
  L.push('# Upstream (central systems):');
  L.push('# sync: { url: "mqtts://broker.city.example:8883", username: cabinet-12, password: "${SYNC_PASSWORD}" }');
  L.push('');
  L.push('simulate: false');
  return `${L.join('\n')}\n`;
}

function rangeText(units: readonly number[]): string {
  if (units.length === 0) return '(none)';
  const out: string[] = [];
  let start = units[0]!;
  let prev = start;
  for (const u of [...units.slice(1), Number.NaN]) {
    if (u === prev + 1) {
      prev = u;
      continue;
    }
    out.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = prev = u;
  }
  return out.join(',');
}

/** Checks the text with the loader; a failure here is a bug in renderConfig. */
export function checkRendered(text: string, file: string): void {
  parseConfig(text, { file });
}
