/**
 * The interlock both ways between firmware and traffic control (issue 17 Deliver 5): a traffic
 * controller whose new firmware is being activated or verified takes no program request
 * (E_INTERLOCK, recorded as a rejected command) until its job has ended; then it does again.
 * The gateway in-process on a temp devices.yaml, the simulated controller on a real TCP socket
 * (rebooting for 1.5 s after its commit, so the verification lasts long enough to be asked).
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../edge/main.js';
import { silentLogger } from '../../edge/log.js';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { envelope, freePort, fwGatewayYaml, keyPair, simImage } from './e2e/support.js';

let sims: ModbusSimulators | undefined;
let gw: Gateway | undefined;
let dir: TempDir | undefined;
afterEach(async () => {
  await gw?.stop();
  await sims?.stop();
  dir?.remove();
  gw = sims = dir = undefined;
});

const TECH = { role: 'technician' as const, principal: 'tech' };

describe('a traffic controller being updated', () => {
  it('refuses program requests while its firmware is activated and verified, and takes them once the job ended', async () => {
    sims = await startModbusSimulators({ tcp: [{ id: 'a', devices: [{ unit: 1, profile: 'traffic-controller' }] }], rebootMs: 1500 });
    dir = tempDir('streetbox-fw-interlock-');
    const keys = keyPair();
    const yaml = fwGatewayYaml({
      id: 'gw-lock',
      apiPort: await freePort(),
      keys,
      buses: [{ id: 'a', port: sims.bus('a').port!, timeout: '150ms', retries: 1 }],
      devices: [{ id: 'tc-1', bus: 'a', unit: 1, profile: 'traffic-controller', allowCommands: true, poll: '250ms' }],
      firmware: ["traffic: { windows: [ { from: '00:00', to: '00:00' } ] }"],
    });
    writeFileSync(dir.file('devices.yaml'), yaml);
    gw = await startGateway({ configPath: dir.file('devices.yaml'), log: silentLogger() });
    const g = gw;
    const fw = g.firmware!;
    const image = simImage(0x0501, 4000);
    const s = fw.submit({ source: 'technician', principal: 'tech', role: 'technician', envelope: envelope(keys, 'gw-lock', { id: 'tc-fw', targets: { devices: ['tc-1'] } }, image), artifact: image.bytes });
    expect(s.first.status).toBe('running');
    await waitFor('the controller rebooting into its new firmware', () => fw.jobs('tc-fw')[0]?.stage === 'verifying', { timeoutMs: 15_000 });

    const refused = g.built.control.submit({ kind: 'device', id: 'tc-1' }, { action: 'program', program: 2, expiresInS: 60 }, TECH);
    expect(refused.row.status).toBe('rejected');
    expect(refused.row.result).toMatchObject({ code: 'E_INTERLOCK', error: expect.stringContaining('firmware update (deployment tc-fw) is verifying') });

    const out = await s.outcome;
    expect(out.status).toBe('completed');
    expect(fw.jobs('tc-fw')[0]).toMatchObject({ stage: 'confirmed', versionAfter: 0x0501 });
    const taken = g.built.control.submit({ kind: 'device', id: 'tc-1' }, { action: 'program', program: 2, expiresInS: 60 }, TECH);
    expect(taken.row.status).not.toBe('rejected');
    expect((await taken.outcome).status).toBe('verified');
  });
});
