/**
 * Writes devices.schema.json, the JSON Schema of devices.yaml, from the zod schema (the
 * input side: durations and sizes accept "5s", "64MB"). Editors use it for completion:
 * devices.yaml starts with `# yaml-language-server: $schema=./devices.schema.json`.
 * Run with `npm run schema`; tests/config/schema.test.ts fails when the file has drifted.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configSchema } from '../edge/config/schema.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../devices.schema.json', import.meta.url));

/** The JSON Schema text, as committed (2-space indent, trailing newline). */
export function generateSchema(): string {
  const schema = z.toJSONSchema(configSchema, {
    io: 'input',
    // draft-07: what yaml-language-server (VS Code's YAML extension) understands best
    target: 'draft-7',
    // cross-section checks (superRefine) have no JSON Schema form; the loader does them
    unrepresentable: 'any',
  });
  allowEnvRefs(schema);
  const out = {
    $schema: schema.$schema,
    title: 'streetbox devices.yaml',
    description: 'The configuration of a streetbox gateway. Generated from edge/config/schema.ts by `npm run schema`; do not edit.',
    ...schema,
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** `${ENV_VAR}` (see the loader) may stand for any scalar; without this the editor flags
 * `port: ${MQTT_PORT}` or `appKey: ${APP_KEY}` although the loader accepts them. */
const ENV_REF = { type: 'string', pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}' };

type JsonSchema = Record<string, unknown>;

function isConstrainedScalar(node: JsonSchema): boolean {
  if (node.enum !== undefined) return true;
  if (node.type === 'number' || node.type === 'integer' || node.type === 'boolean') return true;
  return node.type === 'string' && (node.pattern !== undefined || node.minLength !== undefined || node.format !== undefined);
}

function allowEnvRefs(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(allowEnvRefs);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as JsonSchema;
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'properties' && value !== null && typeof value === 'object') {
      for (const [name, prop] of Object.entries(value as Record<string, JsonSchema>)) {
        if (isConstrainedScalar(prop)) {
          const { default: dflt, description, ...rest } = prop;
          (value as Record<string, JsonSchema>)[name] = {
            ...(description !== undefined ? { description } : {}),
            ...(dflt !== undefined ? { default: dflt } : {}),
            anyOf: [rest, ENV_REF],
          };
        } else allowEnvRefs(prop);
      }
    } else allowEnvRefs(value);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SCHEMA_FILE, generateSchema());
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}
