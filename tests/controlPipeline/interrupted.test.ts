/**
 * A power cut or a crash mid-command: the rows the previous run left `queued` or `sent` end
 * `failed` (E_INTERRUPTED) when the gateway starts again, with their command.failed events, so a
 * central system polling them gets an answer; finished rows are left as they were.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import { openStore } from '../../edge/store/index.js';
import { oneLampGateway } from '../support/cli.js';

let gw: Gateway | undefined;
let dir: ReturnType<typeof oneLampGateway> | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
  dir?.cleanup();
});

describe('commands interrupted by a restart', () => {
  it('end failed (E_INTERRUPTED) at the next start; finished ones are untouched', async () => {
    dir = oneLampGateway('restart-gw');
    // what the previous run left behind in its buffer
    const store = openStore({ path: join(dir.dir, 'data/gw.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger() });
    const source = { role: 'central', principal: 'upstream' } as const;
    const target = { kind: 'device', id: 'lamp-1' } as const;
    const sent = store.createCommand({ source, target, action: 'dim', params: { level: 40 }, status: 'sent' });
    const queued = store.createCommand({ source, target, action: 'on', params: {}, status: 'queued' });
    const done = store.createCommand({ source, target, action: 'off', params: {}, status: 'verified', result: { readBack: 0 } });
    store.close();

    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    const s = gw.context.store;
    for (const row of [sent, queued]) {
      expect(s.getCommand(row.id)).toMatchObject({ status: 'failed', result: { code: 'E_INTERRUPTED' } });
    }
    expect(s.getCommand(done.id)).toMatchObject({ status: 'verified', result: { readBack: 0 } });
    const failed = s.events({ after: 0, limit: 1000, kind: 'command.failed' }).items.filter((e) => isEvent(e, 'command.failed')).map((e) => e.detail);
    expect(failed.map((d) => d.commandId).sort()).toEqual([sent.id, queued.id].sort());
    expect(failed.every((d) => d.reason === 'interrupted')).toBe(true);
  });

  it('a light command whose claim is still held stays open: the claim comes back and is applied again', async () => {
    dir = oneLampGateway('restart-claim-gw');
    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    const tech = { role: 'technician', principal: 'tech-anna' } as const;
    const row = gw.built.control.submit({ kind: 'device', id: 'lamp-1' }, { action: 'override', level: 35, durationS: 3600 }, tech).row;
    await expect.poll(() => gw!.context.store.getCommand(row.id)?.status, { timeout: 5000 }).toBe('verified');
    await gw.stop();
    // the power went while the command was still being carried out
    const store = openStore({ path: join(dir.dir, 'data/gw.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger() });
    store.updateCommand(row.id, 'sent');
    store.close();

    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    expect(gw.context.store.getCommand(row.id)?.status).toBe('sent');
    expect(gw.built.control.wanted('lamp-1')).toMatchObject({ level: 35 });
    await expect.poll(() => gw!.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value, { timeout: 5000 }).toBe(35);
  });
});
