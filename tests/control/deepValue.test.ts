/**
 * A command body handed over already parsed (a Node-RED flow's msg.payload) is held to the same
 * JSON limits as text at the HTTP and MQTT doors: refused with the reason, never a stack overflow.
 */
import { describe, expect, it } from 'vitest';
import { validateCommand } from '../../edge/control/validate.js';

function nested(depth: number): unknown {
  let v: unknown = 40;
  for (let i = 0; i < depth; i++) v = { level: v };
  return v;
}

describe('command bodies that are values', () => {
  it('refuses a value nested 100,000 deep with the reason', () => {
    const r = validateCommand({ action: 'dim', level: nested(100_000) });
    expect(r).toMatchObject({ ok: false, field: 'body' });
    expect(!r.ok && r.error).toMatch(/nested deeper than 16 levels/);
  });

  it('refuses a value with a million members', () => {
    const r = validateCommand({ action: 'dim', level: 40, junk: Array.from({ length: 1_000_000 }, (_, i) => i) });
    expect(!r.ok && r.error).toMatch(/more than 4096 members/);
  });

  it('refuses a value that contains itself', () => {
    const body: Record<string, unknown> = { action: 'dim', level: 40 };
    body.self = body;
    expect(validateCommand(body).ok).toBe(false);
  });

  it('still takes an ordinary body, as a value and as text', () => {
    expect(validateCommand({ action: 'dim', level: 40 }).ok).toBe(true);
    expect(validateCommand('{"action":"dim","level":40}').ok).toBe(true);
    expect(validateCommand(`{"action":"dim","level":${'['.repeat(100)}40${']'.repeat(100)}}`)).toMatchObject({ ok: false, error: expect.stringMatching(/nested deeper/) });
  });
});
