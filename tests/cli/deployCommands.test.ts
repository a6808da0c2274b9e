// `streetbox deploy`, `deploy sign` and `streetbox deployments` as a technician runs them (the CLI
// spawned from the sources, tests/support/cli.ts) against a real HTTP API on 127.0.0.1
// (edge/api, the firmware routes) whose firmware service is a fake that records what it was
// handed and plays a scripted road per manifest id (accepted, a device transferring then
// confirmed; halted; refused). The engine (edge/firmware/engine.ts) has its own tests; here:
// what the CLI sends (the artifact's bytes, the envelope's manifest text exactly), what it
// prints, and its exit codes (0 completed, 1 halted or cancelled, 2 refused or bad input).
// Each run is a process of its own (~1.3 s of CPU to start), so the runs of a test that do not
// depend on each other go at once (at most four); each finds what it sent by its id in the fake.
// The tests of `deploy sign` and `deploy` go at once too (each with its own ids; --wait spends
// seconds polling); those of `deployments` after them, in order (the listing shows the newest).
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyManifestSignature } from '../../edge/firmware/manifest.js';
import {
  JOB_STAGES,
  type DeploymentAction,
  type DeploymentOutbox,
  type DeploymentReport,
  type DeploymentRequest,
  type DeploymentSubmitted,
  type FirmwareService,
  type JobRecord,
  type JobStage,
} from '../../edge/firmware/types.js';
import type { MetricSample } from '../../edge/metrics.js';
import { TOKENS, startApi, type Api } from '../api/support/http.js';
import { runCli, tempGateway } from '../support/cli.js';

const PIPED = { FORCE_COLOR: '', NO_COLOR: '', STREETBOX_TOKEN: '' };
const SIZE = 4096;

interface Scripted {
  report: DeploymentReport;
  /** the reports each GET gives next, the last one kept */
  road: DeploymentReport[];
}

/**
 * Plays a road per manifest id: `ok-*` pending → transferring → confirmed (completed), `halt-*`
 * halted after a failure, `refuse-*` rejected at once (E_FW_SIGNATURE), anything else stays running.
 */
class ScriptedFirmware implements FirmwareService {
  readonly submits: DeploymentRequest[] = [];
  readonly stored: Buffer[] = [];
  readonly controls: { id: string; action: DeploymentAction; principal: string }[] = [];
  readonly deployments = new Map<string, Scripted>();

  submit(req: DeploymentRequest): DeploymentSubmitted {
    this.submits.push(req);
    const id = manifestIdOf(req);
    if (id === null) throw new Error('not an envelope with a manifest id');
    const never = new Promise<DeploymentReport>(() => undefined);
    if (id.startsWith('refuse-')) {
      // a refusal is recorded too
      const refused: DeploymentReport = { ...report(id, 'rejected', [job('pending', 0)]), code: 'E_FW_SIGNATURE', reason: 'no configured key verifies the signature' };
      this.deployments.set(id, { report: refused, road: [] });
      return { id, first: refused, outcome: never };
    }
    const first = report(id, 'running', [job('pending', 0, 'night: lights update by day from 08:12'), job('pending', 0, null, 'lamp-2')]);
    const road: DeploymentReport[] = id.startsWith('ok-')
      ? [
          report(id, 'running', [job('transferring', 1200), job('pending', 0, 'bus busy', 'lamp-2')]),
          report(id, 'running', [job('verifying', SIZE), job('transferring', 2400, null, 'lamp-2')]),
          report(id, 'completed', [job('confirmed', SIZE), job('confirmed', SIZE, null, 'lamp-2')]),
        ]
      : id.startsWith('halt-')
        ? [report(id, 'running', [job('transferring', 600), job('pending', 0, null, 'lamp-2')]), { ...report(id, 'halted', [{ ...job('failed', 600), code: 'E_FW_VERIFY' as const, reason: 'after its reboot the device reads version 0x0100, not 0x0201' }, job('cancelled', 0, null, 'lamp-2')]), code: 'E_FW_HALTED' as const, reason: 'wave 1: 1 of 2 failed, past its errorThreshold 0' }]
        : [];
    this.deployments.set(id, { report: first, road });
    return { id, first, outcome: never };
  }
  submitCentral(): void {}
  artifactChunk(): void {}
  control(id: string, action: DeploymentAction, principal: string): ReturnType<FirmwareService['control']> {
    this.controls.push({ id, action, principal });
    const d = this.deployments.get(id);
    if (!d) return { ok: false, code: 'E_NOT_FOUND', reason: `no deployment ${id}` };
    if (['completed', 'halted', 'cancelled', 'rejected'].includes(d.report.status)) return { ok: false, code: 'E_FW_FINAL', reason: `deployment ${id} has ended (${d.report.status})` };
    d.report = { ...d.report, status: action === 'pause' ? 'paused' : action === 'cancel' ? 'cancelled' : 'running' };
    return { ok: true, report: d.report };
  }
  report(id: string): DeploymentReport | undefined {
    const d = this.deployments.get(id);
    if (!d) return undefined;
    const next = d.road.shift();
    if (next) d.report = next;
    return d.report;
  }
  list(): DeploymentReport[] {
    return [...this.deployments.values()].map((d) => d.report).reverse();
  }
  jobs(): JobRecord[] {
    return [];
  }
  storeArtifact(data: Buffer): { sha256: string; size: number } {
    this.stored.push(data);
    return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  outbox(): DeploymentOutbox {
    return { pending: () => [], delivered: () => undefined };
  }
  metrics(): MetricSample[] {
    return [];
  }
}

function job(stage: JobStage, bytesAcked: number, waiting: string | null = null, device = 'lamp-1'): DeploymentReport['jobs'][number] {
  return { device, stage, wave: 0, bytesAcked, bytes: SIZE, waiting, code: null, reason: null, versionBefore: 256, versionAfter: stage === 'confirmed' ? 513 : null };
}

function report(id: string, status: DeploymentReport['status'], jobs: DeploymentReport['jobs']): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  for (const j of jobs) counts[j.stage]++;
  return { id, gateway: 'gw-test', status, code: null, reason: null, artifact: { name: 'slc-2ch', version: '2.1.0', size: SIZE, sha256: 'ab'.repeat(32) }, wave: 0, waves: 1, counts, jobs, at: Date.UTC(2026, 5, 1, 10, 0, 0) };
}

let a: Api;
let fake: ScriptedFirmware;
let dir: ReturnType<typeof tempGateway>;

beforeAll(async () => {
  fake = new ScriptedFirmware();
  a = await startApi({}, { firmware: fake });
  dir = tempGateway('gateway: { id: gw-test }\n');
});
afterAll(async () => {
  await a?.close();
  dir?.cleanup();
});

const api = (role: keyof typeof TOKENS = 'technician') => ['--url', `http://127.0.0.1:${a.api.port()}`, '--token', TOKENS[role]];
const cli = (...args: string[]) => runCli(args, { env: PIPED });

/** A manifest text (with a comment-like field order and spacing, to see it goes byte for byte). */
function manifestText(id: string, gateway = 'gw-test'): string {
  return `{ "id": "${id}", "gateway": "${gateway}",\n  "artifact": { "name": "slc-2ch", "version": "2.1.0", "versionCode": 513, "size": ${SIZE}, "sha256": "${'ab'.repeat(32)}", "source": { "local": true } },\n  "targets": { "groups": ["street-a"] } }\n`;
}

function envelopeFile(id: string): string {
  const file = join(dir.dir, `${id}.json`);
  writeFileSync(file, JSON.stringify({ manifest: manifestText(id), signature: 'c2lnbmF0dXJl' }));
  return file;
}

/** The manifest id of a request the fake was handed (null: its envelope is not one). */
function manifestIdOf(req: DeploymentRequest): string | null {
  try {
    return (JSON.parse((JSON.parse(String(req.envelope)) as { manifest: string }).manifest) as { id: string }).id;
  } catch {
    return null;
  }
}

describe.concurrent('streetbox deploy sign', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');

  it('prints the envelope of the manifest text as written, signed for the gateway; -o writes it', async ({ expect }) => {
    const manifest = join(dir.dir, 'm.json');
    writeFileSync(manifest, manifestText('sign-1'));
    const key = join(dir.dir, 'key.pem');
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString();

    const out = join(dir.dir, 'signed.json');
    const [r, w] = await Promise.all([
      cli('deploy', 'sign', manifest, '--key', key, '--gateway', 'gw-test'),
      // the gateway from the configuration (-c), written to a file
      cli('deploy', 'sign', '-c', dir.config, manifest, '--key', key, '-o', out),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const env = JSON.parse(r.stdout) as { manifest: string; signature: string };
    expect(env.manifest).toBe(manifestText('sign-1'));
    expect(verifyManifestSignature([pub], 'gw-test', env.manifest, env.signature)).toMatchObject({ ok: true });
    expect(verifyManifestSignature([pub], 'gw-other', env.manifest, env.signature)).toMatchObject({ ok: false });

    // -c, -o: ed25519 signs deterministically, so the file holds the same envelope
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toBe('');
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(env);
  });

  it('refuses a manifest for another gateway, one that does not validate, a key that is no key (exit 2)', async ({ expect }) => {
    const key = join(dir.dir, 'key2.pem');
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const other = join(dir.dir, 'other.json');
    writeFileSync(other, manifestText('sign-2', 'gw-elsewhere'));
    const bad = join(dir.dir, 'bad.json');
    writeFileSync(bad, manifestText('sign-3').replace('"size": 4096', '"size": -1'));
    const good = join(dir.dir, 'good.json');
    writeFileSync(good, manifestText('sign-4'));
    const notKey = join(dir.dir, 'not-a-key.pem');
    writeFileSync(notKey, 'hello\n');
    const [r1, r2, r3, r4] = await Promise.all([
      cli('deploy', 'sign', other, '--key', key, '--gateway', 'gw-test'),
      cli('deploy', 'sign', bad, '--key', key, '--gateway', 'gw-test'),
      cli('deploy', 'sign', good, '--key', notKey, '--gateway', 'gw-test'),
      cli('deploy', 'sign', bad),
    ]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain('is for gateway "gw-elsewhere", not "gw-test"');

    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/artifact\.size/);

    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/--key .*not-a-key\.pem: not an ed25519 private key/);

    expect(r4.code).toBe(2);
    expect(r4.stderr).toContain("required option '--key <private.pem>'");
  });
});

describe.concurrent('streetbox deploy', () => {
  it('uploads the artifact first, then posts the envelope as written; without --wait: accepted, exit 0', async ({ expect }) => {
    const image = Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 13) & 0xff));
    const imageFile = join(dir.dir, 'image.bin');
    writeFileSync(imageFile, image);
    const file = envelopeFile('run-1');
    const r = await cli('deploy', file, '--artifact', imageFile, ...api());
    expect(r.code, r.stderr).toBe(0);
    expect(fake.stored.filter((b) => b.equals(image))).toHaveLength(1);
    expect(r.stderr).toContain(`artifact ${imageFile} stored: ${SIZE} bytes, sha256 ${createHash('sha256').update(image).digest('hex')}`);
    const sent = fake.submits.filter((s) => manifestIdOf(s) === 'run-1');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ source: 'technician', principal: 'technician-token', role: 'technician' });
    expect((JSON.parse(String(sent[0]!.envelope)) as { manifest: string }).manifest).toBe(manifestText('run-1'));
    expect(r.stdout).toBe('deployment run-1 running: 2 device(s) in 1 wave(s); streetbox deployments run-1 shows how it goes\n');
  });

  it('--wait follows it to completed: progress per device on stderr, the devices at the end, exit 0', async ({ expect }) => {
    const r = await cli('deploy', envelopeFile('ok-1'), '--wait', ...api());
    expect(r.code, r.stderr).toBe(0);
    const progress = r.stderr.trimEnd().split('\n');
    expect(progress).toContain('  lamp-1: pending 0/4096 (0 %) · waiting: night: lights update by day from 08:12');
    expect(progress).toContain('  lamp-1: transferring 1200/4096 (29 %)');
    expect(progress).toContain('  lamp-2: transferring 2400/4096 (58 %)');
    expect(progress.at(-1)).toMatch(/^ {2}lamp-[12]: confirmed 4096\/4096 \(100 %\)$/);
    expect(r.stdout).toContain('deployment ok-1 completed');
    expect(r.stdout).toMatch(/^lamp-1 +confirmed +4096\/4096 \(100 %\) +0x0100 → 0x0201$/m);
  });

  it('--wait on a deployment that halts: the failure shown, exit 1', async ({ expect }) => {
    const r = await cli('deploy', envelopeFile('halt-1'), '--wait', ...api());
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('deployment halt-1 halted: wave 1: 1 of 2 failed, past its errorThreshold 0 (E_FW_HALTED)');
    expect(r.stdout).toMatch(/^lamp-1 +failed .*after its reboot the device reads version 0x0100, not 0x0201 \(E_FW_VERIFY\)$/m);
    expect(r.stderr).toContain('streetbox: deployment halt-1 halted');
  });

  it('a refused deployment: its reason and code, exit 2; a token that may not deploy, exit 2; no token, exit 2', async ({ expect }) => {
    const notJson = join(dir.dir, 'not.json');
    writeFileSync(notJson, 'manifest: yes\n');
    const [r, viewer, none, nj] = await Promise.all([
      cli('deploy', envelopeFile('refuse-1'), '--wait', ...api()),
      cli('deploy', envelopeFile('ok-viewer'), ...api('viewer')),
      cli('deploy', envelopeFile('ok-none'), '--url', `http://127.0.0.1:${a.api.port()}`),
      cli('deploy', notJson, ...api()),
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('deployment refuse-1 rejected: no configured key verifies the signature (E_FW_SIGNATURE)');
    expect(r.stderr).toContain('streetbox: deployment refuse-1 refused: no configured key verifies the signature');

    expect(viewer.code).toBe(2);
    expect(viewer.stderr).toContain('403 role viewer may not firmware.deploy (E_FORBIDDEN)');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no API token');
    expect(nj.code).toBe(2);
    expect(nj.stderr).toContain('not JSON');
    // none of the three reached the firmware service (the not-JSON one has no manifest id: null)
    expect(fake.submits.filter((s) => [null, 'ok-viewer', 'ok-none'].includes(manifestIdOf(s)))).toEqual([]);
  });

  it('a gateway that does not answer: exit 1', async ({ expect }) => {
    const r = await cli('deploy', envelopeFile('ok-2'), '--url', 'http://127.0.0.1:9', '--token', TOKENS.technician);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('gateway unreachable at http://127.0.0.1:9');
  });
});

describe('streetbox deployments', () => {
  it('lists id, status, artifact, wave and counts; one deployment with each device, its bytes and why it waits', async () => {
    expect((await cli('deploy', envelopeFile('refuse-list'), ...api())).code).toBe(2);
    expect((await cli('deploy', envelopeFile('list-1'), ...api())).code).toBe(0);
    // reads only (list-1 stays running as it is): all at once
    const [r, one, json, missing] = await Promise.all([
      cli('deployments', ...api('viewer')),
      cli('deployments', 'list-1', ...api('viewer')),
      cli('deployments', 'list-1', '--json', ...api('viewer')),
      cli('deployments', 'nope', ...api('viewer')),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +STATUS +ARTIFACT +WAVE +DEVICES$/);
    expect(lines[1]).toMatch(/^list-1 +running +slc-2ch 2\.1\.0 +1\/1 +2 pending$/);
    expect(lines[2]).toMatch(/^refuse-list +rejected +slc-2ch 2\.1\.0 +1\/1 +1 pending · E_FW_SIGNATURE$/);

    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain('deployment list-1 running\n');
    expect(one.stdout).toContain('wave 1 of 1 · 2 pending · as of 2026-06-01T10:00:00+00:00');
    expect(one.stdout).toMatch(/^DEVICE +STAGE +BYTES +VERSION +NOTE$/m);
    expect(one.stdout).toMatch(/^lamp-1 +pending +0\/4096 \(0 %\) +0x0100 +waiting: night: lights update by day from 08:12$/m);

    expect(JSON.parse(json.stdout)).toMatchObject({ report: { id: 'list-1', status: 'running' }, jobs: [] });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no deployment nope');
  });

  it('pause, resume, cancel: done exit 0; no such deployment exit 2; one that ended exit 1', async () => {
    await cli('deploy', envelopeFile('ctl-1'), ...api());
    // a deployment that is not there, and a role that may not: neither touches ctl-1, so they run beside its controls
    const others = Promise.all([cli('deployments', 'pause', 'nope', ...api()), cli('deployments', 'pause', 'ctl-1', ...api('viewer'))]);
    const p = await cli('deployments', 'pause', 'ctl-1', ...api('central'));
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toBe('deployment ctl-1 paused: no new job starts (now paused: 2 pending)\n');
    expect(fake.controls.filter((c) => c.id === 'ctl-1')).toEqual([{ id: 'ctl-1', action: 'pause', principal: 'central-token' }]);
    // an option before the subcommand's name counts too
    const res = await cli('deployments', ...api(), 'resume', 'ctl-1');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('deployment ctl-1 resumed (now running');
    const c = await cli('deployments', 'cancel', 'ctl-1', '--json', ...api());
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ id: 'ctl-1', status: 'cancelled' });
    const again = await cli('deployments', 'cancel', 'ctl-1', ...api());
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('deployment ctl-1 has ended (cancelled)');
    const [none, viewer] = await others;
    expect(none.code).toBe(2);
    expect(viewer.code).toBe(2);
    // the viewer's pause never reached the service: ctl-1 had the four controls above, no more
    expect(fake.controls.filter((c) => c.id === 'ctl-1').map((c) => c.action)).toEqual(['pause', 'resume', 'cancel', 'cancel']);
  });
});
