/**
 * The slice of the `node-red` package the gateway embeds (its embedding API, lib/red.js), typed
 * here because the package ships no types. Loaded lazily: a gateway with `nodeRed.enabled: false`
 * never imports it.
 */
import type { EventEmitter } from 'node:events';
import type { RequestListener, Server } from 'node:http';
import { createRequire } from 'node:module';

/** Node-RED's express apps are plain request handlers with an optional `next`. */
export type ExpressApp = RequestListener & ((req: Parameters<RequestListener>[0], res: Parameters<RequestListener>[1], next?: (err?: unknown) => void) => void);

/** One message of Node-RED's logger (@node-red/util/lib/log.js). */
export interface NodeRedLogMessage {
  /** 10 fatal, 20 error, 30 warn, 40 info, 50 debug, 60 trace, 98 audit, 99 metric */
  level: number;
  msg?: unknown;
  type?: string;
  id?: string;
  name?: string;
  z?: string;
  path?: string;
  timestamp?: number;
  [key: string]: unknown;
}

export interface NodeRedEmbed {
  init(server: Server | null, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Node-RED's runtime events: 'flows:started', 'runtime-event' ({ id: 'runtime-state', payload }) */
  readonly events: EventEmitter;
  readonly httpAdmin: ExpressApp | undefined;
  readonly httpNode: ExpressApp | undefined;
  /** a function in Node-RED 4 (runtime._.version), a string in some older versions */
  readonly version: string | (() => string);
}

/** `import('node-red')`: a CommonJS module, its exports as the default export. */
export async function loadNodeRed(): Promise<NodeRedEmbed> {
  // a specifier in a variable: the package ships no types, this file gives the ones used
  const specifier = 'node-red';
  const mod = (await import(specifier)) as { default?: NodeRedEmbed } & NodeRedEmbed;
  return mod.default ?? mod;
}

/** bcryptjs as Node-RED itself resolves it (its adminAuth verifies bcrypt hashes). */
export interface Bcrypt {
  hash(password: string, rounds: number): Promise<string>;
}

export function loadBcrypt(): Bcrypt {
  const fromNodeRed = createRequire(createRequire(import.meta.url).resolve('node-red'));
  return fromNodeRed('bcryptjs') as Bcrypt;
}
