/**
 * The start-up banner: what runs and where, in one log record "streetbox running". In JSON its
 * fields are machine-readable (statusPage, editor, broker, lorawan, simulated, …); on a terminal
 * the pretty formatter prints the record (`banner: true`) as a few aligned lines:
 *
 *   2026-12-04T13:20:13.042+01:00 INFO  streetbox running
 *       status page  http://127.0.0.1:8080/
 *       editor       http://127.0.0.1:8080/flows/
 *       broker       0.0.0.0:1883
 *       lorawan      127.0.0.1:1700
 *       simulated    lamp-ctrl-01, lamp-ctrl-02
 *       …
 *
 * With api.tls the status page and the editor are https:// URLs.
 */
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import type { Gateway } from './main.js';
import { simulateEnabled } from './sim/modbus/index.js';
import { bannerLines } from './logFormat.js';

export interface BannerInfo {
  /** the ports actually bound (a configured port 0 becomes a real one); the configured ports otherwise */
  apiPort?: number;
  brokerPort?: number;
  lorawanPort?: number;
  /** ids of the devices the gateway simulates */
  simulated: string[];
  /** the devices.yaml that was loaded */
  configFile?: string;
}

export interface Banner {
  /** the fields as people read them, one per line: "status page  http://127.0.0.1:8080/" */
  lines: string[];
  /** the fields of the log record */
  fields: Record<string, unknown>;
}

/** An address that listens on every interface is reached on this machine as 127.0.0.1. */
const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);

function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function startupBanner(config: Config, info: BannerInfo): Banner {
  const fields: Record<string, unknown> = {};
  if (config.api.enabled) {
    const host = WILDCARD.has(config.api.host) ? '127.0.0.1' : config.api.host;
    // api.tls: the API, the status page and the editor are served over HTTPS only
    const status = `${config.api.tls ? 'https' : 'http'}://${hostPort(host, info.apiPort ?? config.api.port)}/`;
    fields.statusPage = status;
    // Node-RED is served by the API's HTTP server (edge/components.ts)
    if (config.nodeRed.enabled && config.nodeRed.editor) {
      const path = `/${config.nodeRed.path.replace(/^\/+|\/+$/g, '')}`;
      fields.editor = `${status.slice(0, -1)}${path === '/' ? '' : path}/`;
    }
  }
  if (config.broker.enabled) {
    fields.broker = hostPort(config.broker.host, info.brokerPort ?? config.broker.port);
    if (config.broker.tls && config.broker.tlsPort !== undefined) fields.brokerTls = hostPort(config.broker.host, config.broker.tlsPort);
  }
  if (config.lorawan?.enabled === true) fields.lorawan = hostPort(config.lorawan.bind, info.lorawanPort ?? config.lorawan.port);
  fields.simulated = info.simulated;
  if (info.configFile !== undefined) fields.config = info.configFile;
  fields.data = config.storage.path;
  fields.gatewayId = config.gateway.id;
  fields.timezone = config.gateway.timezone;
  return { lines: bannerLines(fields), fields };
}

/** Logs the banner as one info record "streetbox running" (the terminal shows it as a few lines). */
export function logBanner(log: Logger, config: Config, info: BannerInfo): void {
  log.info({ banner: true, ...startupBanner(config, info).fields }, 'streetbox running');
}

/** What a running gateway reports for its banner: the ports it bound, the devices it simulates. */
export function bannerInfoOf(gateway: Gateway, configFile?: string): BannerInfo {
  const { config, built } = gateway;
  const lorawanSimulated = new Set(config.lorawan?.devices.map((d) => d.devEui.toLowerCase()) ?? []);
  const simulated = simulateEnabled(config).enabled
    ? config.devices.filter((d) => d.bus !== undefined || (d.devEui !== undefined && lorawanSimulated.has(d.devEui.toLowerCase()))).map((d) => d.id)
    : [];
  const info: BannerInfo = { simulated };
  // a component that failed to start has no port (it throws): the banner shows the configured one
  const bound = (port: (() => number) | undefined): number | undefined => {
    try {
      return port?.();
    } catch {
      return undefined;
    }
  };
  const api = bound(built.api && (() => built.api!.port()));
  const broker = bound(built.broker && (() => built.broker!.port()));
  const lorawan = bound(built.lorawan && (() => built.lorawan!.port()));
  if (api) info.apiPort = api;
  if (broker) info.brokerPort = broker;
  if (lorawan) info.lorawanPort = lorawan;
  if (configFile !== undefined) info.configFile = configFile;
  return info;
}
