/**
 * Several editors of one gateway, end to end (in-process gateway with simulated devices, the
 * API on loopback, central on a real mosquitto, `sync.configSigningKeys` set to a fresh ed25519
 * key). Proves:
 *  - two editors from the same base version (a technician's PUT /api/v1/config, central's
 *    down/config): the first applies, the second is refused E_CONFIG_STALE, and applies when forced;
 *  - central's changes must be signed: unsigned and wrongly signed ones are refused
 *    E_CONFIG_SIGNATURE and recorded; one signed by `streetbox config sign` (the CLI) applies;
 *  - a flood of 10 forced changes sent at once is applied one at a time, in the order sent, and
 *    the last one is what runs.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signChange } from '../../../edge/reconfig/signature.js';
import type { ConfigStageReport } from '../../../edge/reconfig/types.js';
import { runCli } from '../../support/cli.js';
import { tempDir, type TempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/wait.js';
import { gatewayYaml, signingPair, startCentral, startRig, type Central, type Rig } from './support.js';

const GW = 'gw-editors';
const key = signingPair();
const other = signingPair();
let central: Central;
let rig: Rig;
let scratch: TempDir;

beforeAll(async () => {
  scratch = tempDir('streetbox-e2e-editors-');
  central = await startCentral(GW);
  rig = await startRig(gatewayYaml({ id: GW, buses: [{ id: 'net', port: 0, units: [1] }], syncUrl: central.broker.url, signingKeys: [key.publicRaw], apiPort: 0, simulate: true }));
  await central.subscribed();
});

afterAll(async () => {
  await rig?.close();
  await central?.close();
  scratch?.remove();
});

const withLevel = (level: number): string => rig.text().replace(/level: \d+/, `level: ${level}`);

/** central's message, signed with `pem` (default: the configured key) */
function signed(m: { id: string; baseVersion: number | null; content: string; force?: boolean }, pem = key.privatePem): Record<string, unknown> {
  return { ...m, signature: signChange(pem, GW, m) };
}

describe('two editors from the same base version', () => {
  it('technician first: central is refused as stale, and applies when forced', async () => {
    const base = rig.running().version;
    const mine = withLevel(51);
    const theirs = withLevel(52);
    const put = await rig.api('PUT', '/api/v1/config', { content: mine, baseVersion: base });
    expect(put).toMatchObject({ status: 200, body: { stage: 'confirmed' } });

    await central.send(signed({ id: 'stale-1', baseVersion: base, content: theirs }));
    const stale = await central.waitStage('stale-1', 'rejected');
    expect(stale).toMatchObject({ code: 'E_CONFIG_STALE', runningVersion: put.body.version });
    expect(stale.reason).toMatch(new RegExp(`version ${String(put.body.version)} runs`));
    expect(rig.text()).toBe(mine);

    await central.send(signed({ id: 'stale-1-forced', baseVersion: base, content: theirs, force: true }));
    await central.waitStage('stale-1-forced', 'confirmed', 15_000);
    expect(rig.text()).toBe(theirs);
  });

  it('central first: the technician is refused as stale (409), and applies when forced', async () => {
    const base = rig.running().version;
    const theirs = withLevel(53);
    const mine = withLevel(54);
    await central.send(signed({ id: 'stale-2', baseVersion: base, content: theirs }));
    await central.waitStage('stale-2', 'confirmed', 15_000);

    const put = await rig.api('PUT', '/api/v1/config', { content: mine, baseVersion: base });
    expect(put).toMatchObject({ status: 409, body: { stage: 'rejected', code: 'E_CONFIG_STALE', principal: 'tech' } });
    expect(rig.text()).toBe(theirs);
    const forced = await rig.api('PUT', '/api/v1/config', { content: mine, baseVersion: base, force: true });
    expect(forced).toMatchObject({ status: 200, body: { stage: 'confirmed' } });
    expect(rig.text()).toBe(mine);
  });
});

describe("central's changes must be signed", () => {
  async function refusedUnsigned(id: string, message: Record<string, unknown>): Promise<ConfigStageReport> {
    const before = { text: rig.text(), version: rig.running().version };
    await central.send(message);
    const r = await central.waitStage(id, 'rejected');
    expect(r).toMatchObject({ code: 'E_CONFIG_SIGNATURE', principal: 'upstream', runningVersion: before.version });
    expect(rig.text()).toBe(before.text);
    expect(rig.changes.change(id)).toMatchObject({ stage: 'rejected', source: 'central', principal: 'upstream' });
    expect(rig.events('config.rejected').filter((e) => (e.detail as { id: string }).id === id).map((e) => e.detail)).toEqual([
      expect.objectContaining({ code: 'E_CONFIG_SIGNATURE', principal: 'upstream' }),
    ]);
    return r;
  }

  it('an unsigned change is refused and recorded', async () => {
    const r = await refusedUnsigned('unsigned-1', { id: 'unsigned-1', baseVersion: rig.running().version, content: withLevel(60) });
    expect(r.reason).toMatch(/unsigned/);
  });

  it('a change signed with another key, or a signature of another change, is refused and recorded', async () => {
    const base = rig.running().version;
    await refusedUnsigned('wrong-key', signed({ id: 'wrong-key', baseVersion: base, content: withLevel(61) }, other.privatePem));
    // a good signature, but over another id: no replay under a new id
    const replay = { ...signed({ id: 'original', baseVersion: base, content: withLevel(62) }), id: 'replayed' };
    await refusedUnsigned('replayed', replay);
  });

  it('a change signed by `streetbox config sign` applies', async () => {
    const text = withLevel(63);
    writeFileSync(scratch.file('next.yaml'), text);
    writeFileSync(scratch.file('central.pem'), key.privatePem);
    const base = rig.running().version;
    const cli = await runCli(['config', 'sign', scratch.file('next.yaml'), '--key', scratch.file('central.pem'), '--id', 'cli-signed', '--base', String(base), '--gateway', GW]);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    const message = JSON.parse(cli.stdout) as Record<string, unknown>;
    expect(message).toMatchObject({ id: 'cli-signed', baseVersion: base, content: text, signature: expect.any(String) as string });
    await central.send(cli.stdout.trim());
    await central.waitStage('cli-signed', 'confirmed', 15_000);
    expect(rig.text()).toBe(text);
  });
});

describe('a flood of changes', () => {
  it('10 forced changes at once: applied one at a time in the order sent, the last one runs', async () => {
    const base = rig.running().version;
    const ids = Array.from({ length: 10 }, (_, i) => `flood-${i}`);
    const texts = ids.map((_, i) => withLevel(70 + i));
    await central.sendMany(ids.map((id, i) => signed({ id, baseVersion: base, content: texts[i]!, force: true })));
    await waitFor('every change of the flood settled', () => ids.every((id) => central.reports(id).some((r) => r.stage === 'confirmed' || r.stage === 'rejected' || r.stage === 'rolledBack')), 30_000);
    for (const id of ids) expect(central.reports(id).map((r) => r.stage)).toEqual(['staged', 'applied', 'confirmed']);

    // one at a time: each applied after the one before it was confirmed, in the order sent
    const steps = rig.events('config.*').flatMap((e) => {
      const id = (e.detail as { id: string }).id;
      return ids.includes(id) && (e.kind === 'config.applied' || e.kind === 'config.confirmed') ? [`${e.kind.slice(7)} ${id}`] : [];
    });
    expect(steps).toEqual(ids.flatMap((id) => [`applied ${id}`, `confirmed ${id}`]));
    const versions = ids.map((id) => rig.changes.change(id)!.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));

    expect(rig.running()).toMatchObject({ id: ids.at(-1), version: versions.at(-1) });
    expect(rig.text()).toBe(texts.at(-1));
  });
});
