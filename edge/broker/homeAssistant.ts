/**
 * Home Assistant MQTT discovery (its MQTT integration's "discovery" of devices and entities, as
 * Zigbee2MQTT does it): one retained config per entity on
 * `<prefix>/<component>/<node_id>/<object_id>/config`, built from the configuration alone, the same
 * on the embedded broker (`broker.homeAssistant`) and on the upstream (`sync.homeAssistant`): the
 * topics it points at are handed in (DiscoveryTopics).
 *
 * - The gateway is a device of its own (a connectivity binary_sensor on its retained `status`);
 *   each controller is a device `via_device` the gateway, identified as `streetbox_<gw>_<device>`,
 *   model its profile.
 * - A light (kind lighting) is a `light` on the default schema: ON / OFF on the device's set
 *   topic, brightness 0..100 as a bare level on the same topic (`on_command_type: brightness`), so a
 *   brightness change is a dim by whoever sent it, through the command pipeline like any command;
 *   its state and brightness read the level from the retained state as deviceState.ts's lightLevel
 *   does (the highest channel, a channel switched off counting 0).
 * - Each numeric point is a `sensor` with its unit, a device class where the unit (or for battery
 *   the point) says one, and a state class; each alarm of the profile, each lamp-failure point and
 *   each other true/false point is a `binary_sensor`. Radio points, firmware versions, written
 *   registers and the status words alarms are read from are diagnostic.
 * - A traffic controller gets sensors and binary sensors only, never an entity that commands
 *   (DESIGN.md safety rules: it only takes program requests with a dead-man, from roles that may).
 * - Every entity of a device is available when the gateway's status and the device's availability
 *   both say online (`availability_mode: all`).
 *
 * Templates are plain Jinja (no Home Assistant filter) and read `value_json['values']`, never
 * `value_json.values` (which is the dict's method in Jinja).
 */
import { createHash } from 'node:crypto';
import { packageVersion } from '../assets.js';
import type { Config } from '../config/schema.js';
import type { PointRole } from '../profiles/describe.js';
import { deviceEntries, type DeviceEntry, type PointInfo } from './deviceList.js';

/** The topics a config points at: the embedded broker's and the upstream's are the same names. */
export interface DiscoveryTopics {
  /** the gateway's retained `online` / `offline` (its last will upstream) */
  status: string;
  state(device: string): string;
  availability(device: string): string;
  set(device: string): string;
}

export interface DiscoveryOptions {
  prefix: string;
  topics: DiscoveryTopics;
}

type Json = Record<string, unknown>;

const ONLINE = { payload_available: 'online', payload_not_available: 'offline' };

const ORIGIN: Json = { name: 'streetbox', sw_version: packageVersion() };

/**
 * A topic level Home Assistant takes ([A-Za-z0-9_-]): an id with other characters (a '.') has them
 * replaced and a short hash of the whole id appended, so two ids never meet on one level.
 */
export function topicLevel(id: string): string {
  const clean = id.replace(/[^A-Za-z0-9_-]/g, '_');
  return clean === id ? id : `${clean}_${createHash('sha256').update(id).digest('hex').slice(0, 6)}`;
}

/** An entity id's object part: lower case letters, digits and '_'. */
function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** "ch1_power" → "Ch1 power", "txPower" → "Tx power". */
function label(name: string): string {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[_\s.-]+/)
    .filter((w) => w.length > 0)
    .map((w) => w.toLowerCase());
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A value of the retained state: `None` (unknown to Home Assistant) when the point has none. */
const valueOf = (point: string): string => `value_json['values'].get('${point}')`;

// ---------------------------------------------------------------------------------------
// Sensors: device and state classes

/** Home Assistant sensor device classes by unit; energy and durations count up. */
const UNIT_CLASSES: Readonly<Record<string, string>> = {
  W: 'power',
  kW: 'power',
  VA: 'apparent_power',
  var: 'reactive_power',
  Wh: 'energy',
  kWh: 'energy',
  MWh: 'energy',
  V: 'voltage',
  mV: 'voltage',
  A: 'current',
  mA: 'current',
  '°C': 'temperature',
  '°F': 'temperature',
  lx: 'illuminance',
  Hz: 'frequency',
  dBm: 'signal_strength',
  dB: 'signal_strength',
  h: 'duration',
  min: 'duration',
  s: 'duration',
  Pa: 'pressure',
  hPa: 'pressure',
  kPa: 'pressure',
  bar: 'pressure',
  mbar: 'pressure',
};

/** Roles whose values are codes or settings, not quantities: no statistics. */
const NOT_MEASURED: ReadonlySet<PointRole> = new Set(['firmwareVersion', 'mode', 'activeProgram', 'requestStatus', 'programRequest', 'requestExpiry', 'rampTime']);
const COUNTING_UP: ReadonlySet<PointRole> = new Set(['activeEnergy', 'operatingHours']);

function sensorClasses(p: PointInfo, statusWord: boolean): Json {
  const out: Json = {};
  const deviceClass = p.unit === '%' ? (p.radio && p.name === 'battery' ? 'battery' : undefined) : p.unit === null ? undefined : UNIT_CLASSES[p.unit];
  if (deviceClass !== undefined) out['device_class'] = deviceClass;
  if ((p.role !== null && COUNTING_UP.has(p.role)) || deviceClass === 'energy') out['state_class'] = 'total_increasing';
  else if (!statusWord && (p.role === null || !NOT_MEASURED.has(p.role))) out['state_class'] = 'measurement';
  return out;
}

/** Not what the device is for: its link, its firmware, the registers the gateway writes, a status word. */
function diagnostic(p: PointInfo, statusWord: boolean): boolean {
  return p.radio === true || statusWord || p.access === 'rw' || p.role === 'firmwareVersion';
}

// ---------------------------------------------------------------------------------------
// The light: its level from the retained state, as lightLevel (edge/api/deviceState.ts)

/**
 * A Jinja block that leaves the light's level (0..100) in `ns.l`, or none when no channel reported
 * one: per channel the actual level, else the commanded one; a channel switched off counts 0; the
 * highest channel is the light's.
 */
function levelBlock(entry: DeviceEntry): string | null {
  const roles = entry.desc.roles;
  const channels = [...new Set(roles.filter((r) => r.role === 'actualLightLevel' || r.role === 'targetLightLevel').map((r) => r.channel))];
  if (channels.length === 0) return null;
  const point = (role: PointRole, ch: number | undefined): string => roles.find((r) => r.role === role && r.channel === ch)?.point ?? '';
  const list = channels.map((ch) => `['${point('actualLightLevel', ch)}','${point('targetLightLevel', ch)}','${point('switch', ch)}']`).join(',');
  return [
    "{%- set v = value_json['values'] -%}",
    '{%- set ns = namespace(l=none) -%}',
    `{%- for c in [${list}] -%}`,
    '{%- set x = v.get(c[0]) if v.get(c[0]) is number else v.get(c[1]) -%}',
    '{%- if x is number -%}',
    '{%- set x = 0 if v.get(c[2]) in [false, 0] else [[x, 0] | max, 100] | min -%}',
    '{%- set ns.l = x if ns.l is none or x > ns.l else ns.l -%}',
    '{%- endif -%}',
    '{%- endfor -%}',
  ].join('');
}

// ---------------------------------------------------------------------------------------
// The configs

interface Entity {
  component: 'light' | 'sensor' | 'binary_sensor';
  object: string;
  config: Json;
}

function deviceEntities(entry: DeviceEntry, topics: DiscoveryTopics): Entity[] {
  const { info, desc, alarms } = entry;
  const state = topics.state(info.id);
  const out: Entity[] = [];
  if (desc.kind === 'lighting') {
    const level = levelBlock(entry);
    if (level !== null) {
      out.push({
        component: 'light',
        object: 'light',
        config: {
          name: null,
          command_topic: topics.set(info.id),
          payload_on: 'ON',
          payload_off: 'OFF',
          brightness_command_topic: topics.set(info.id),
          brightness_scale: 100,
          on_command_type: 'brightness',
          state_topic: state,
          state_value_template: `${level}{{ 'None' if ns.l is none else ('ON' if ns.l > 0 else 'OFF') }}`,
          brightness_state_topic: state,
          brightness_value_template: `${level}{{ '' if ns.l is none else ns.l }}`,
          qos: 1,
        },
      });
    }
  }
  // the status words bit alarms are read from are diagnostic; a point an alarm reads whole is that alarm
  const statusWords = new Set(alarms.filter((a) => a.bit !== undefined).map((a) => a.point));
  const alarmed = new Set([...alarms.map((a) => a.name), ...alarms.filter((a) => a.bit === undefined).map((a) => a.point)]);
  for (const a of alarms) {
    const v = `{%- set v = ${valueOf(a.point)} -%}`;
    const on = a.bit === undefined ? 'v not in [false, 0]' : `((v | int) // ${2 ** a.bit}) % 2 == 1`;
    out.push({
      component: 'binary_sensor',
      object: `alarm_${a.name}`,
      config: { name: label(a.name), device_class: 'problem', state_topic: state, value_template: `${v}{{ 'None' if v is none else ('ON' if ${on} else 'OFF') }}` },
    });
  }
  for (const p of info.points) {
    if (p.type === 'bool') {
      if (p.role === 'switch' || alarmed.has(p.name)) continue;
      const v = `{%- set v = ${valueOf(p.name)} -%}`;
      const cls = p.role === 'lampFailure' ? { device_class: 'problem' } : p.radio ? { device_class: 'power', entity_category: 'diagnostic' } : {};
      out.push({
        component: 'binary_sensor',
        object: p.name,
        config: { name: label(p.name), ...cls, state_topic: state, value_template: `${v}{{ 'None' if v is none else ('ON' if v in [true, 1] else 'OFF') }}` },
      });
      continue;
    }
    const statusWord = statusWords.has(p.name);
    out.push({
      component: 'sensor',
      object: p.name,
      config: {
        name: label(p.name),
        ...sensorClasses(p, statusWord),
        ...(p.unit === null ? {} : { unit_of_measurement: p.unit }),
        ...(diagnostic(p, statusWord) ? { entity_category: 'diagnostic' } : {}),
        state_topic: state,
        value_template: `{{ ${valueOf(p.name)} }}`,
      },
    });
  }
  return out;
}

/**
 * Every discovery config of a configuration, topic → payload (JSON text, retained), in a stable
 * order: the gateway's, then each device's.
 */
export function discoveryConfigs(config: Config, o: DiscoveryOptions): Map<string, string> {
  const gw = config.gateway.id;
  const gatewayId = `streetbox_${gw}`;
  const gatewayNode = topicLevel(gatewayId);
  const out = new Map<string, string>();
  const add = (component: string, node: string, object: string, entityId: string, body: Json): void => {
    const unique = `${node}_${object}`;
    const payload = { ...body, unique_id: unique, object_id: entityId, default_entity_id: `${component}.${entityId}`, origin: ORIGIN };
    out.set(`${o.prefix}/${component}/${node}/${object}/config`, JSON.stringify(payload));
  };
  add('binary_sensor', gatewayNode, 'connectivity', slug(`streetbox_${gw}_connectivity`), {
    name: 'Connection',
    device_class: 'connectivity',
    entity_category: 'diagnostic',
    state_topic: o.topics.status,
    payload_on: 'online',
    payload_off: 'offline',
    device: { identifiers: [gatewayId], name: config.gateway.site ?? gw, manufacturer: 'streetbox', model: 'streetbox gateway', ...(typeof ORIGIN['sw_version'] === 'string' ? { sw_version: ORIGIN['sw_version'] } : {}) },
  });
  for (const entry of deviceEntries(config)) {
    const { info } = entry;
    const node = topicLevel(`streetbox_${gw}_${info.id}`);
    const device = {
      identifiers: [`streetbox_${gw}_${info.id}`],
      name: info.name ?? info.id,
      manufacturer: 'streetbox',
      model: info.profile,
      via_device: gatewayId,
      ...(entry.devEui === null ? {} : { serial_number: entry.devEui }),
    };
    const availability = {
      availability: [
        { topic: o.topics.status, ...ONLINE },
        { topic: o.topics.availability(info.id), ...ONLINE },
      ],
      availability_mode: 'all',
    };
    const seen = new Set<string>();
    for (const e of deviceEntities(entry, o.topics)) {
      const object = topicLevel(e.object);
      if (seen.has(object)) continue; // a point named like another entity: the first one stands
      seen.add(object);
      add(e.component, node, object, slug(`${info.id}_${e.object}`), { ...e.config, ...availability, device });
    }
  }
  return out;
}
