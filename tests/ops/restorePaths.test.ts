/**
 * restore writes where the backup's devices.yaml says, which an archive from elsewhere (or a
 * crafted one, run by root) could point at /etc or /root/.ssh: a database or Node-RED directory
 * outside the configuration's directory and the current data directory is refused unless
 * --anywhere says the technician checked it.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../edge/log.js';
import { openStore } from '../../edge/store/index.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('streetbox-restore-paths-');
afterAll(() => tmp.remove());

describe('restore: where a backup may write', () => {
  it('refuses a database outside the configuration and data directories, and writes it there with --anywhere', async () => {
    // a cabinet whose data lives elsewhere (absolute storage.path), backed up
    const cabinet = tmp.file('cabinet');
    const elsewhere = tmp.file('elsewhere/data');
    mkdirSync(cabinet, { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    const db = join(elsewhere, 'gw.db');
    writeFileSync(join(cabinet, 'devices.yaml'), `gateway: { id: paths-test }\nstorage: { path: ${db} }\nbroker: { enabled: false }\napi: { enabled: false }\n`);
    const store = openStore({ path: db, maxBytes: 8 * 1024 * 1024, durability: 'normal', log: createLogger({ level: 'silent' }) });
    store.appendReadings([{ ts: 1_767_000_000_000, device: 'lamp-1', point: 'dim_level', value: 40 }]);
    store.close();
    const archive = tmp.file('cabinet.tar.gz');
    const b = await runCli(['backup', '--config', join(cabinet, 'devices.yaml'), '--out', archive]);
    expect(b.code, b.stderr).toBe(0);

    // restored on a bench: the backup would write into the cabinet's own place, outside the bench's
    const bench = tmp.file('bench');
    mkdirSync(bench);
    const refused = await runCli(['restore', '--from', archive, '--config', join(bench, 'devices.yaml')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`the backup would write ${db}`);
    expect(refused.stderr).toContain('--anywhere');
    expect(existsSync(join(bench, 'devices.yaml'))).toBe(false);

    const allowed = await runCli(['restore', '--from', archive, '--config', join(bench, 'devices.yaml'), '--anywhere']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(existsSync(join(bench, 'devices.yaml'))).toBe(true);
    expect(existsSync(db)).toBe(true);
  });
});
