/** The configuration of the gateway: schema, types, the devices.yaml loader and its errors. */
export * from './schema.js';
export { loadConfig, parseConfig, type LoadedConfig, type LoadOptions, type ParseOptions } from './loader.js';
export { ConfigError, formatIssue, formatIssues, formatPath, type ConfigIssue } from './errors.js';
export { redactConfig, REDACTED } from './redact.js';
