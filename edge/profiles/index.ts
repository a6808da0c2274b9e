/**
 * Device profiles as data: the built-in YAML files of this folder plus the custom profiles
 * of devices.yaml (`profiles:`). A custom profile with a built-in's name replaces it. What a
 * device is (its kind, light channels, traffic request points) is answered by describe.ts from
 * the kind and point roles of its profile (pointRoles.ts).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { asset } from '../assets.js';
import { profileSchema, type ProfileConfig } from '../config/schema.js';
import { StreetboxError, errorMessage } from '../errors.js';

/** The Modbus profiles shipped with streetbox, as files relative to the package root. */
export const BUILTIN_PROFILE_FILES: readonly string[] = [
  'edge/profiles/streetlight-controller.yaml',
  'edge/profiles/traffic-controller.yaml',
];

export interface ProfileRegistry {
  /** The profile named `name`, or undefined. */
  get(name: string): ProfileConfig | undefined;
  /** Like get, but an unknown name is an E_NOT_FOUND error naming the known profiles. */
  require(name: string): ProfileConfig;
  names(): string[];
  /** true when `name` comes from devices.yaml (a custom profile, possibly overriding a built-in) */
  isCustom(name: string): boolean;
}

/** Reads and validates one profile YAML file; errors name the file and the field path. */
export function loadProfileFile(path: string): ProfileConfig {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new StreetboxError('E_CONFIG', `${path}: ${errorMessage(err)}`, { cause: err });
  }
  const parsed = profileSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new StreetboxError('E_CONFIG', `${path}: invalid profile: ${issues}`, { cause: parsed.error });
  }
  checkProfile(parsed.data, path);
  return parsed.data;
}

/** References inside a profile: unique point names, alarms naming existing points, sane bits. */
export function checkProfile(p: ProfileConfig, where: string): void {
  const names = new Set<string>();
  for (const pt of p.points) {
    if (names.has(pt.name)) throw new StreetboxError('E_CONFIG', `${where}: profile "${p.name}": duplicate point "${pt.name}"`);
    names.add(pt.name);
    if (pt.bit !== undefined && (pt.table === 'coil' || pt.table === 'discrete')) {
      throw new StreetboxError('E_CONFIG', `${where}: profile "${p.name}" point "${pt.name}": "bit" applies to registers, not to ${pt.table}s`);
    }
    if ((pt.table === 'coil' || pt.table === 'discrete') && pt.type !== 'bool') {
      throw new StreetboxError('E_CONFIG', `${where}: profile "${p.name}" point "${pt.name}": a ${pt.table} is type bool, got ${pt.type}`);
    }
    if (pt.access === 'rw' && (pt.table === 'discrete' || pt.table === 'input')) {
      throw new StreetboxError('E_CONFIG', `${where}: profile "${p.name}" point "${pt.name}": ${pt.table} points are read-only (access r)`);
    }
  }
  for (const a of p.alarms) {
    if (!names.has(a.point)) {
      throw new StreetboxError('E_CONFIG', `${where}: profile "${p.name}" alarm "${a.name}": unknown point "${a.point}"`);
    }
  }
}

/** The built-in profiles, read and checked once per process (the gateway's parts each ask at start). */
let builtins: readonly ProfileConfig[] | undefined;

export function loadProfiles(custom: readonly ProfileConfig[] = []): ProfileRegistry {
  const byName = new Map<string, ProfileConfig>();
  const customNames = new Set<string>();
  builtins ??= BUILTIN_PROFILE_FILES.map((file) => loadProfileFile(asset(file)));
  for (const p of builtins) byName.set(p.name, p);
  for (const p of custom) {
    checkProfile(p, 'devices.yaml profiles');
    byName.set(p.name, p);
    customNames.add(p.name);
  }
  return {
    get: (name) => byName.get(name),
    require(name) {
      const p = byName.get(name);
      if (!p) throw new StreetboxError('E_NOT_FOUND', `unknown profile "${name}"; known: ${[...byName.keys()].join(', ')}`);
      return p;
    },
    names: () => [...byName.keys()],
    isCustom: (name) => customNames.has(name),
  };
}
