/**
 * Node-RED's settings for the embedded runtime, from the `nodeRed` section of devices.yaml.
 *
 * - userDir: nodeRed.userDir, else `node-red/` beside the SQLite file (storage.path).
 * - flowFile: nodeRed.flowFile, else `<userDir>/flows.json`. A flow file that does not exist yet is
 *   seeded with the shipped default (edge/flows/flows.json), so the editor's deploys change the
 *   gateway's copy, never the shipped one.
 * - credentialSecret: nodeRed.credentialSecret, else env STREETBOX_NODERED_SECRET, else Node-RED
 *   generates one and keeps it in <userDir>/.config.runtime.json (it warns).
 * - adminAuth: nodeRed.users; a plain `password` is bcrypt-hashed at start, `passwordHash` is used
 *   as given (a bcrypt hash). With no users the editor is closed to everyone.
 * - editor: false → httpAdminRoot false (no editor, no admin API, no websocket).
 * - logging: one custom handler into the gateway's pino logger; no console output.
 *
 * Memory bounds (a 1 GB box shared with the rest of the gateway):
 * - nodeMessageBufferMaxLength 1000: join/batch/delay/sort nodes keep at most 1000 messages.
 * - debugMaxLength 1000, debugStatusLength 32: debug sidebar messages are truncated.
 * - contextStorage: memory only (the default); nothing persisted per message on the SD card.
 * - globalFunctionTimeout 5 s: a function node stuck in a loop is stopped instead of the gateway.
 * - externalModules: no palette installs, no function-node npm modules, no auto-install (no npm
 *   on a cabinet, nothing downloaded at run time); diagnostics and telemetry off.
 * - the streetbox in node drops messages past its rate limit (nodes/lib.js) instead of queueing.
 *
 * Trust: an editor user with `permissions: '*'` deploys code that runs inside the gateway
 * (function nodes can reach anything the process can), so such a login is as trusted as a
 * technician; `nodeRed.maxRole` bounds what the streetbox command node asks for, and the exec
 * node is left out, but neither is a sandbox. Give `permissions: 'read'` to everyone else.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { types } from 'node:util';
import { asset } from '../assets.js';
import type { GatewayContext } from '../component.js';
import type { Config } from '../config/schema.js';
import { StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Bcrypt, NodeRedLogMessage } from './nodeRed.js';
import type { FlowGlobals, StreetboxRuntime } from './runtime.js';

export type NodeRedConfig = Config['nodeRed'];

/** The default flow shipped with streetbox. */
export const DEFAULT_FLOW_FILE = asset('edge/flows/flows.json');
/** The streetbox nodes, a Node-RED node module loaded through settings.nodesDir. */
export const NODES_DIR = asset('edge/flows/nodes');
export const SECRET_ENV = 'STREETBOX_NODERED_SECRET';

const BCRYPT_ROUNDS = 10;
const BCRYPT_PREFIX = /^\$2[aby]\$\d{2}\$/;

export interface FlowPaths {
  userDir: string;
  flowFile: string;
  /** the flow file was just seeded from the default */
  seeded: boolean;
}

/** userDir and flowFile, creating the one and seeding the other. */
export function preparePaths(ctx: Pick<GatewayContext, 'config' | 'configDir'>): FlowPaths {
  const nr = ctx.config.nodeRed;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(ctx.configDir, p));
  const storage = ctx.config.storage.path;
  const base = storage === ':memory:' ? resolve(ctx.configDir, 'data') : dirname(abs(storage));
  const userDir = nr.userDir !== undefined ? abs(nr.userDir) : join(base, 'node-red');
  const flowFile = nr.flowFile !== undefined ? abs(nr.flowFile) : join(userDir, 'flows.json');
  mkdirSync(userDir, { recursive: true });
  let seeded = false;
  if (!existsSync(flowFile)) {
    mkdirSync(dirname(flowFile), { recursive: true });
    copyFileSync(DEFAULT_FLOW_FILE, flowFile);
    seeded = true;
  }
  return { userDir, flowFile, seeded };
}

export interface AdminUser {
  username: string;
  password: string;
  permissions: '*' | 'read';
}

/** Node-RED adminAuth users: bcrypt hashes (plain passwords hashed here, never logged). */
export async function adminUsers(users: NodeRedConfig['users'], bcrypt: () => Bcrypt): Promise<AdminUser[]> {
  const out: AdminUser[] = [];
  for (const [i, u] of users.entries()) {
    let hash: string;
    if (u.passwordHash !== undefined) {
      if (!BCRYPT_PREFIX.test(u.passwordHash)) {
        throw new StreetboxError('E_CONFIG', `nodeRed.users[${i}].passwordHash: expected a bcrypt hash ($2a$/$2b$/$2y$), got another format`);
      }
      hash = u.passwordHash;
    } else if (u.password !== undefined) {
      hash = await bcrypt().hash(u.password, BCRYPT_ROUNDS);
    } else {
      throw new StreetboxError('E_CONFIG', `nodeRed.users[${i}]: expected a password or a passwordHash`);
    }
    out.push({ username: u.username, password: hash, permissions: u.permissions });
  }
  return out;
}

const LEVELS: Record<number, 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace' };

/**
 * Node-RED warnings that are expected in an embedded gateway (projects are off on purpose; a
 * first start has no credentials file yet): logged at info, so a warning means something.
 */
const EXPECTED_WARNINGS = [/^Projects disabled/, /^Encrypted credentials not found/];

/** Node-RED's log messages into pino: the node's type, id and name as fields, audit events at debug. */
export function logHandler(log: Logger): (msg: NodeRedLogMessage) => void {
  return (m) => {
    let level = m.level === 98 ? 'debug' : m.level === 99 ? 'trace' : (LEVELS[m.level] ?? 'info');
    if (level === 'warn' && typeof m.msg === 'string' && EXPECTED_WARNINGS.some((re) => re.test(m.msg as string))) level = 'info';
    const fields: Record<string, unknown> = {};
    if (m.type !== undefined) fields.node = m.type;
    if (m.id !== undefined) fields.nodeId = m.id;
    if (m.name !== undefined && m.name !== '') fields.nodeName = m.name;
    if (m.z !== undefined) fields.flow = m.z;
    if (m.level === 98) fields.audit = { event: m.event, user: (m.user as { username?: string } | undefined)?.username, path: m.path };
    const msg = typeof m.msg === 'string' ? m.msg.trim() : m.msg;
    // a function node's error comes from its vm context: not `instanceof Error` here
    if (types.isNativeError(msg) || msg instanceof Error) log[level]({ ...fields, err: msg }, msg.message);
    else if (typeof msg === 'string') log[level](fields, msg);
    else log[level]({ ...fields, detail: msg }, m.level === 98 ? 'audit' : 'node-red');
  };
}

export interface SettingsInput {
  ctx: GatewayContext;
  paths: FlowPaths;
  users: AdminUser[];
  runtime: StreetboxRuntime;
  globals: FlowGlobals;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

/** The settings object handed to RED.init(). */
export function buildSettings(input: SettingsInput): Record<string, unknown> {
  const nr = input.ctx.config.nodeRed;
  const env = input.env ?? process.env;
  const secret = nr.credentialSecret ?? env[SECRET_ENV];
  const adminRoot = nr.editor ? normalisePath(nr.path) : false;
  const level = input.log.levelVal <= 20 ? 'debug' : input.log.levelVal <= 30 ? 'info' : input.log.levelVal <= 40 ? 'warn' : 'error';
  return {
    userDir: input.paths.userDir,
    flowFile: input.paths.flowFile,
    flowFilePretty: true,
    nodesDir: [NODES_DIR],
    ...(secret !== undefined && secret !== '' ? { credentialSecret: secret } : {}),
    httpAdminRoot: adminRoot,
    httpNodeRoot: normalisePath(nr.httpNodePath),
    // no own listener: the gateway's HTTP server carries the editor, the admin API and HTTP-in nodes
    uiPort: 0,
    disableEditor: !nr.editor,
    adminAuth: { type: 'credentials', users: input.users },
    logging: {
      streetbox: { level, metrics: false, audit: level === 'debug', handler: () => logHandler(input.log) },
    },
    // the streetbox nodes reach the gateway through this (nodes/lib.js)
    streetbox: input.runtime,
    functionGlobalContext: { streetbox: input.globals },
    exportGlobalContextKeys: false,
    nodeMessageBufferMaxLength: 1000,
    debugMaxLength: 1000,
    debugStatusLength: 32,
    globalFunctionTimeout: 5,
    functionTimeout: 5,
    functionExternalModules: false,
    // no shell commands from a flow (the exec node): the gateway's user reaches the serial ports
    nodesExcludes: ['90-exec.js'],
    externalModules: {
      autoInstall: false,
      palette: { allowInstall: false, allowUpdate: false, allowUpload: false },
      modules: { allowInstall: false },
    },
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    runtimeState: { enabled: false, ui: false },
    editorTheme: {
      page: { title: `streetbox ${input.ctx.config.gateway.id}: flows` },
      header: { title: `streetbox · ${input.ctx.config.gateway.id}` },
      projects: { enabled: false },
      tours: false,
    },
  };
}

export function normalisePath(p: string): string {
  const withSlash = p.startsWith('/') ? p : `/${p}`;
  return withSlash.length > 1 ? withSlash.replace(/\/+$/, '') : withSlash;
}
