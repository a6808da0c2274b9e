/**
 * devices.schema.json (for editor completion) and the README's key tables are generated from the
 * zod schema and must not drift from it: when this fails, run `npm run schema` and commit the result.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README_FILE, SCHEMA_FILE, generateReadme, generateSchema } from '../../scripts/genSchema.js';

describe('devices.schema.json', () => {
  it('is what `npm run schema` generates from edge/config/schema.ts now', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(generateSchema());
  });

  it("the README's key tables are what `npm run schema` writes from the schema's descriptions now", () => {
    const readme = readFileSync(README_FILE, 'utf8');
    expect(readme).toBe(generateReadme(readme));
  });

  it('describes the input side: durations and sizes accept "5s" and "64MB", objects are closed', () => {
    const schema = JSON.parse(generateSchema()) as {
      $schema: string;
      required: string[];
      additionalProperties: boolean;
      properties: Record<string, { properties: Record<string, { anyOf?: { type: string; pattern?: string }[] }> }>;
    };
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.required).toEqual(['gateway']);
    expect(schema.additionalProperties).toBe(false);
    const storage = schema.properties.storage!.properties;
    const flush = storage.flushInterval!.anyOf!.find((s) => s.type === 'string')!;
    const size = storage.maxBytes!.anyOf!.find((s) => s.type === 'string')!;
    expect(new RegExp(flush.pattern!).test('5s')).toBe(true);
    expect(new RegExp(size.pattern!, 'i').test('64MB')).toBe(true);
  });

  it('lets a constrained scalar be given as ${ENV_VAR}, as the loader allows', () => {
    type Node = { anyOf?: { type: string; pattern?: string }[]; properties?: Record<string, Node>; items?: Node };
    const schema = JSON.parse(generateSchema()) as Node;
    const envRef = (n: Node | undefined): boolean => n?.anyOf?.some((s) => s.pattern !== undefined && new RegExp(s.pattern).test('${MQTT_PORT}')) ?? false;
    expect(envRef(schema.properties!.broker!.properties!.port)).toBe(true);
    expect(envRef(schema.properties!.lorawan!.properties!.devices!.items!.properties!.appKey)).toBe(true);
    // discriminators stay plain constants, so editors still pick the right kind of bus
    expect(JSON.stringify(schema.properties!.buses)).not.toContain('"type":{"anyOf"');
  });
});
