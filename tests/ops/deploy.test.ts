import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../../edge/cli.js';
import { loadConfig } from '../../edge/config/index.js';
import { ROOT } from '../support/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startScriptEnv } from '../helpers/startScript.js';

const UNIT = join(ROOT, 'deploy/streetbox.service');
const INSTALL = join(ROOT, 'deploy/install.sh');

function directives(name: string): string[] {
  return readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${name}=`))
    .map((l) => l.slice(name.length + 1));
}

let dir: TempDir | undefined;
afterEach(() => dir?.remove());

describe('deploy/streetbox.service', () => {
  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('is a unit systemd accepts without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes('streetbox.service'))).toEqual([]);
  });

  it('runs the commands the CLI has, as a notify service with a watchdog, its own user and a writable data dir only', () => {
    const program = buildProgram({ out: () => {}, err: () => {} });
    for (const line of [...directives('ExecStart'), ...directives('ExecStartPre')]) {
      const [node, script, command] = line.split(' ');
      expect(node).toBe('/usr/bin/node');
      expect(script).toBe('/opt/streetbox/bin/streetbox.js');
      expect(program.commands.map((c) => c.name())).toContain(command);
    }
    expect(directives('ExecStart')).toEqual(['/usr/bin/node /opt/streetbox/bin/streetbox.js start --config /etc/streetbox/devices.yaml']);
    expect(directives('Type')).toEqual(['notify']);
    expect(directives('NotifyAccess')).toEqual(['all']); // systemd-notify, a child process, sends the pings
    expect(Number(directives('WatchdogSec')[0])).toBeGreaterThan(0);
    expect(directives('Restart')).toEqual(['on-failure']);
    expect(directives('RestartPreventExitStatus')).toEqual(['2']); // a bad devices.yaml does not restart-loop
    expect(directives('User')).toEqual(['streetbox']);
    expect(directives('SupplementaryGroups')).toEqual(['dialout']);
    expect(directives('ProtectSystem')).toEqual(['strict']);
    expect(directives('ReadWritePaths')).toEqual(['/var/lib/streetbox']);
    expect(directives('NoNewPrivileges')).toEqual(['true']);
    expect(directives('PrivateTmp')).toEqual(['true']);
    expect(directives('EnvironmentFile')).toEqual(['-/etc/streetbox/env']);
    // the memory tuning of `npm start` (what bench/footprint.ts measures)
    const tuning = startScriptEnv();
    expect(tuning.NODE_OPTIONS).toContain('--max-semi-space-size=1');
    for (const [k, v] of Object.entries(tuning)) expect(directives('Environment')).toContain(v.includes(' ') ? `"${k}=${v}"` : `${k}=${v}`);
    // the serial ports must stay visible
    expect(directives('PrivateDevices')).toEqual([]);
  });
});

describe('deploy/install.sh', () => {
  it('is valid shell, and the devices.yaml it derives from the demo keeps its data under /var/lib/streetbox', () => {
    execFileSync('sh', ['-n', INSTALL]);
    const sed = /sed -e "([^"]+)"/.exec(readFileSync(INSTALL, 'utf8'))![1]!.replaceAll('$DATA', '/var/lib/streetbox');
    dir = tempDir('streetbox-install-');
    const out = execFileSync('sed', ['-e', sed, join(ROOT, 'devices.yaml')], { encoding: 'utf8' });
    writeFileSync(dir.file('devices.yaml'), out);
    const { config } = loadConfig(dir.file('devices.yaml'));
    expect(config.storage.path).toBe('/var/lib/streetbox/streetbox.db');
  });
});
