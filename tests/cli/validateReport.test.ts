/**
 * `streetbox validate --report [device]`: what a technician checks before a gateway leaves the
 * bench — each point's report strategy and where it comes from: a device's per-point override, the
 * device's report (an alarm input keeping every change), the profile, the role's default.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempGateway } from '../support/cli.js';

let g: ReturnType<typeof tempGateway>;

beforeAll(() => {
  g = tempGateway(`
gateway: { id: report-cli }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 1502 }
devices:
  - id: lamp-1
    bus: net
    unit: 1
    profile: streetlight-controller
    report: { deadband: '5%', heartbeat: 1h }
    points:
      ch1_power: { report: poll }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller }
broker: { enabled: false }
api: { enabled: false }
`);
});
afterAll(() => g.cleanup());

/** The line of a point in the table: `  <point>  <strategy>  (<from>)`. */
function line(out: string, point: string): string {
  const found = out.split('\n').find((l) => l.trimStart().startsWith(`${point} `));
  if (found === undefined) throw new Error(`no line for ${point} in:\n${out}`);
  return found.replace(/\s+/g, ' ').trim();
}

// three runs that only read the file: at once (each is a process of its own, ~1.3 s of CPU to start)
describe.concurrent('streetbox validate --report', () => {
  it("lists one device's points with their strategy and its source", async () => {
    const r = await runCli(['validate', g.config, '--report', 'lamp-1']);
    expect(r.code).toBe(0);
    expect(line(r.stdout, 'ch1_power')).toBe('ch1_power every poll (device point)');
    expect(line(r.stdout, 'mains_voltage')).toBe('mains_voltage change beyond 5 %, heartbeat 1h (device)');
    // an alarm input takes the device's report without its deadband, and says why
    expect(line(r.stdout, 'ch1_status')).toMatch(/^ch1_status every change, heartbeat 1h \(device: .*alarm/);
    expect(r.stdout).not.toContain('tc-1:');
  });

  it('lists every device without a name, with the profile and role defaults', async () => {
    const r = await runCli(['validate', g.config, '--report']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('lamp-1:');
    expect(r.stdout).toContain('tc-1:');
    const tc = r.stdout.slice(r.stdout.indexOf('tc-1:'));
    expect(line(tc, 'loop1_count')).toBe('loop1_count change beyond 10, heartbeat 15m (profile)');
    expect(line(tc, 'mode')).toBe('mode every change, heartbeat 15m (role)');
  });

  it('refuses a device the file does not have, as bad input', async () => {
    const r = await runCli(['validate', g.config, '--report', 'lamp-9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no device "lamp-9"');
  });
});
