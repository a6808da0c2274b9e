import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readlinkSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../../edge/cli.js';
import { loadConfig } from '../../edge/config/index.js';
import { demoSecrets, findDemoSecrets } from '../../edge/ops/demoSecrets.js';
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
    expect(directives('ReadWritePaths')).toEqual(['/var/lib/streetbox /etc/streetbox']);
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
  /** install.sh without root, user or systemd, into a temp tree; the CLI from the sources. */
  function install(root: string) {
    return spawnSync('sh', [INSTALL], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        STREETBOX_INSTALL_UNPRIVILEGED: '1',
        STREETBOX_PREFIX: ROOT,
        STREETBOX_ETC: join(root, 'etc/streetbox'),
        STREETBOX_DATA: join(root, 'var/lib/streetbox'),
        STREETBOX_UNIT_DIR: join(root, 'etc/systemd/system'),
        STREETBOX_BIN_DIR: join(root, 'usr/local/bin'),
        STREETBOX_CLI: `${process.execPath} --import tsx ${join(ROOT, 'edge/cli.ts')}`,
        // run as root, the files are given away: to nobody here (the real script makes the user streetbox)
        STREETBOX_USER: 'nobody',
        STREETBOX_GROUP: 'nogroup',
      },
    });
  }

  it('writes a devices.yaml with fresh secrets (none of the demo\'s), mode 0600, that validates, and puts the plain credentials in a root-only file it never prints', () => {
    execFileSync('sh', ['-n', INSTALL]);
    dir = tempDir('streetbox-install-');
    const r = install(dir.path);
    expect(r.status, r.stderr).toBe(0);
    const etc = dir.file('etc/streetbox');
    const config = join(etc, 'devices.yaml');
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(statSync(join(etc, 'credentials')).mode & 0o777).toBe(0o600);
    expect(statSync(join(etc, 'env')).mode & 0o777).toBe(0o640);
    expect(statSync(dir.file('var/lib/streetbox')).mode & 0o777).toBe(0o750);
    // the gateway itself replaces devices.yaml (a configuration change): its directory is the service group's
    expect(statSync(etc).mode & 0o777).toBe(0o770);
    expect(existsSync(dir.file('etc/systemd/system/streetbox.service'))).toBe(true);
    // `streetbox` on the PATH: the checkout's bin, never `npx` (which would ask the registry)
    expect(readlinkSync(dir.file('usr/local/bin/streetbox'))).toBe(join(ROOT, 'bin/streetbox.js'));
    if (process.getuid?.() === 0) {
      const nobody = 65534;
      expect([statSync(config).uid, statSync(config).gid]).toEqual([nobody, nobody]);
      expect([statSync(join(etc, 'credentials')).uid, statSync(join(etc, 'credentials')).gid]).toEqual([0, 0]);
      expect([statSync(join(etc, 'env')).uid, statSync(join(etc, 'env')).gid]).toEqual([0, nobody]);
      expect(statSync(dir.file('var/lib/streetbox')).uid).toBe(nobody);
    }

    const loaded = loadConfig(config).config;
    expect(loaded.storage.path).toBe(dir.file('var/lib/streetbox/streetbox.db'));
    expect(loaded.simulate).toBe(false);
    expect(loaded.api.enabled && loaded.broker.enabled).toBe(true);
    const text = readFileSync(config, 'utf8');
    for (const secret of demoSecrets().keys()) expect(text.toLowerCase()).not.toContain(secret);
    expect(findDemoSecrets(loaded, demoSecrets())).toEqual([]);

    // where the credentials are is said; what they are is not (the install's output lands in logs)
    expect(r.stdout).toContain(`${join(etc, 'credentials')} (root only)`);
    const creds = readFileSync(join(etc, 'credentials'), 'utf8');
    const values = [...creds.matchAll(/^[A-Z_]+=(\S+)$/gm)].map((m) => m[1]!);
    expect(values).toHaveLength(3);
    expect(values).toContain(loaded.api.tokens[0]!.token);
    for (const v of values) expect(r.stdout + r.stderr).not.toContain(v);

    // the doctor finds no demo secret in it
    const doctor = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'edge/cli.ts'), 'doctor', '--config', config, '--json'], { cwd: ROOT, encoding: 'utf8' });
    const report = JSON.parse(doctor.stdout) as { checks: { name: string; status: string }[] };
    expect(report.checks.find((c) => c.name === 'secrets')?.status).toBe('ok');

    // run again: nothing it wrote is replaced
    const before = readFileSync(config, 'utf8');
    const again = install(dir.path);
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(config, 'utf8')).toBe(before);
    expect(readFileSync(join(etc, 'credentials'), 'utf8')).toBe(creds);
  });

  it('never copies the demo devices.yaml', () => {
    // install.sh sources deploy/setup.sh (shared with the Debian package's postinst), which runs init
    const script = readFileSync(INSTALL, 'utf8') + readFileSync(join(ROOT, 'deploy/setup.sh'), 'utf8');
    expect(script).not.toMatch(/\$PREFIX\/devices\.yaml/);
    expect(script).toMatch(/init --skip-serial/);
  });
});
