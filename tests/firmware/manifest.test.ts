/** Signed firmware manifests: the envelope, the strict schema's refusals with their field paths, the signature over gateway and text. */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  makeEnvelope,
  parseEnvelope,
  parseManifestText,
  signManifest,
  signedManifestMessage,
  verifyManifestSignature,
} from '../../edge/firmware/manifest.js';
import { MAX_MANIFEST_BYTES, type Manifest } from '../../edge/firmware/records.js';

function keyPair(): { publicPem: string; privatePem: string; raw: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    raw: der.subarray(der.length - 32).toString('base64'),
  };
}

const central = keyPair();
const other = keyPair();
const SHA = createHash('sha256').update('image').digest('hex');

const manifest: Manifest = {
  id: 'dep-2024.06:slc',
  gateway: 'gw-1',
  artifact: { name: 'slc-2ch', version: '2.4.1', versionCode: 0x0241, size: 65_536, sha256: SHA, source: { url: 'https://central.example/fw/slc-2.4.1.bin' } },
  targets: { groups: ['main-street'], kinds: ['lighting'] },
  policy: {
    waves: [{ size: 1 }, { size: '25%', successThreshold: 0.9, errorThreshold: 0.1 }, { size: '100%' }],
    windows: [{ from: '22:00', to: '05:00', days: ['mon', 'tue'] }],
    maxPerBus: 1,
    maxPerGroup: 2,
    deadline: 1_900_000_000_000,
  },
  description: 'spring update',
};

/** A manifest as loose JSON, to break it in every way. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a test edits any field of the JSON
type Loose = Record<string, any>;

/** the manifest with `edit` applied to a deep copy */
function variant(edit: (m: Loose) => void): string {
  const m = structuredClone(manifest) as Loose;
  edit(m);
  return JSON.stringify(m);
}

function reasonOf(text: string): string {
  const r = parseManifestText(text);
  if (r.ok) throw new Error('expected a refusal');
  expect(r.code).toBe('E_FW_INVALID');
  return r.reason;
}

describe('parseManifestText', () => {
  it('takes a full manifest and each artifact source', () => {
    expect(parseManifestText(JSON.stringify(manifest))).toEqual({ ok: true, manifest });
    for (const source of [{ mqtt: { chunkBytes: 4096 } }, { local: true }, { url: 'http://127.0.0.1:8080/a.bin' }, { url: 'http://localhost/a' }, { url: 'http://[::1]:9/a' }]) {
      const r = parseManifestText(variant((m) => (m.artifact.source = source)));
      expect(r.ok, JSON.stringify(source)).toBe(true);
    }
    // the gateway itself, alone; its versionCode is not needed
    const gw = parseManifestText(variant((m) => {
      m.targets = { gateway: true };
      delete m.artifact.versionCode;
    }));
    expect(gw.ok).toBe(true);
  });

  // [name, edit, the reason (exactly)]
  const refusals: [string, (m: Loose) => void, string][] = [
    ['sha256 in upper case', (m) => (m.artifact.sha256 = SHA.toUpperCase()), `manifest.artifact.sha256: expected 64 lowercase hex digits, got "${SHA.toUpperCase().slice(0, 40)}…"`],
    ['sha256 missing', (m) => delete m.artifact.sha256, 'manifest.artifact.sha256: missing: expected 64 lowercase hex digits'],
    ['size 0', (m) => (m.artifact.size = 0), 'manifest.artifact.size: expected an integer 1..1073741824 (bytes), got 0'],
    ['size past 1 GiB', (m) => (m.artifact.size = 2 ** 30 + 1), 'manifest.artifact.size: expected an integer 1..1073741824 (bytes), got 1073741825'],
    ['versionCode fractional', (m) => (m.artifact.versionCode = 1.5), 'manifest.artifact.versionCode: expected an integer 0..4294967295 (what the version point reads), got 1.5'],
    ['versionCode past 32 bits', (m) => (m.artifact.versionCode = 2 ** 32), 'manifest.artifact.versionCode: expected an integer 0..4294967295 (what the version point reads), got 4294967296'],
    ['versionCode missing for devices', (m) => delete m.artifact.versionCode, 'manifest.artifact.versionCode: required for device targets: what the version point reads once the device runs the image'],
    ['http to another host', (m) => (m.artifact.source = { url: 'http://central.example/a.bin' }), 'manifest.artifact.source.url: expected an https:// URL (http:// only to a loopback host)'],
    ['ftp', (m) => (m.artifact.source = { url: 'ftp://central.example/a.bin' }), 'manifest.artifact.source.url: expected an https:// URL'],
    ['credentials in the URL', (m) => (m.artifact.source = { url: 'https://u:secret@central.example/a' }), 'manifest.artifact.source.url: credentials do not belong in the URL (it is logged)'],
    ['chunkBytes missing', (m) => (m.artifact.source = { mqtt: {} }), 'manifest.artifact.source.mqtt.chunkBytes: missing: expected an integer 1..1048576 (bytes per chunk)'],
    ['too many chunks', (m) => {
      m.artifact.size = 2 ** 30;
      m.artifact.source = { mqtt: { chunkBytes: 1024 } };
    }, 'manifest.artifact.source.mqtt.chunkBytes: 1048576 chunks, at most 100000: expected at least 10738 bytes per chunk'],
    ['unknown source', (m) => (m.artifact.source = { ftp: 'x' }), 'manifest.artifact.source: expected one of { "url": "https://…" }, { "mqtt": { "chunkBytes": N } }, { "local": true }, got an object'],
    ['local: false', (m) => (m.artifact.source = { local: false }), 'manifest.artifact.source.local: expected true, got false'],
    ['a misspelt key', (m) => (m.artifact.sha265 = SHA), 'manifest.artifact.sha265: unknown key, did you mean "sha256"?'],
    ['an unknown top-level key', (m) => (m.priority = 1), 'manifest.priority: unknown key, expected one of: id, gateway, artifact, targets, policy, description'],
    ['no target', (m) => (m.targets = { devices: [] }), 'manifest.targets: expected at least one target (devices, groups, profiles, kinds, or gateway: true)'],
    ['the gateway with devices', (m) => (m.targets = { gateway: true, devices: ['lamp-1'] }), 'manifest.targets.gateway: the gateway itself is updated alone: not with devices, groups, profiles or kinds'],
    ['a device id with a slash', (m) => (m.targets = { devices: ['lamp/1'] }), 'manifest.targets.devices[0]: expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/"), got "lamp/1"'],
    ['an unknown kind', (m) => (m.targets = { kinds: ['lights'] }), 'manifest.targets.kinds[0]: expected one of lighting, traffic, other, got "lights"'],
    ['a wave of 0%', (m) => (m.policy.waves[1].size = '0%'), 'manifest.policy.waves[1].size: expected a count (an integer ≥ 1) or a share of the targets ("1%".."100%"), got "0%"'],
    ['a wave of 0', (m) => (m.policy.waves[0].size = 0), 'manifest.policy.waves[0].size: expected a count (an integer ≥ 1) or a share of the targets ("1%".."100%"), got 0'],
    ['a threshold past 1', (m) => (m.policy.waves[1].errorThreshold = 1.5), 'manifest.policy.waves[1].errorThreshold: expected a number 0..1, got 1.5'],
    ['a window at 24:00', (m) => (m.policy.windows[0].to = '24:00'), 'manifest.policy.windows[0].to: expected a time HH:MM (00:00..23:59), got "24:00"'],
    ['a misspelt day', (m) => (m.policy.windows[0].days = ['mon', 'thur']), 'manifest.policy.windows[0].days[1]: expected one of mon, tue, wed, thu, fri, sat, sun, got "thur"'],
    ['maxPerBus 0', (m) => (m.policy.maxPerBus = 0), 'manifest.policy.maxPerBus: expected an integer 1..64, got 0'],
    ['an id with a space', (m) => (m.id = 'dep 1'), 'manifest.id: expected an id of letters, digits, "_", ".", ":", "-" (at most 128, no spaces or "/"), got "dep 1"'],
  ];

  it.each(refusals)('refuses %s, naming the field', (_name, edit, reason) => {
    expect(reasonOf(variant(edit))).toBe(reason);
  });

  it('lists every problem at once, at most ten, then how many more', () => {
    const reason = reasonOf(variant((m) => {
      m.gateway = 5;
      m.artifact.size = -1;
      m.extra = true;
    }));
    expect(reason.split('; ')).toEqual([
      'manifest.gateway: expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/"), got 5',
      'manifest.artifact.size: expected an integer 1..1073741824 (bytes), got -1',
      'manifest.extra: unknown key, expected one of: id, gateway, artifact, targets, policy, description',
    ]);
    const many = reasonOf(variant((m) => (m.targets = { devices: Array.from({ length: 14 }, (_, i) => `bad id ${i}`) })));
    expect(many.split('; ')).toHaveLength(11);
    expect(many).toMatch(/; and 4 more$/);
  });

  it('keeps the id of a refused manifest when it is one, so the refusal can be reported under it', () => {
    expect(parseManifestText(variant((m) => (m.artifact.size = 0)))).toMatchObject({ ok: false, id: manifest.id });
    expect(parseManifestText(variant((m) => (m.id = 'a/b')))).not.toHaveProperty('id');
    expect(parseManifestText('[1, 2]')).toEqual({ ok: false, code: 'E_FW_INVALID', reason: 'manifest: expected a JSON object, got a list' });
    expect(parseManifestText('{"id": "x",')).toMatchObject({ ok: false, reason: expect.stringMatching(/^manifest: not JSON \(/) });
  });

  it('never shows the URL (it may carry a token)', () => {
    const reason = reasonOf(variant((m) => (m.artifact.source = { url: 'ftp://central.example/a?token=s3cr3t' })));
    expect(reason).not.toContain('s3cr3t');
  });
});

describe('parseEnvelope', () => {
  const text = JSON.stringify(manifest);
  const signature = signManifest('gw-1', text, central.privatePem);

  it('gives the exact text, the manifest and the signature, from a string or bytes', () => {
    const envelope = makeEnvelope(text, signature);
    expect(JSON.parse(envelope)).toEqual({ manifest: text, signature });
    expect(parseEnvelope(envelope)).toEqual({ ok: true, text, manifest, signature });
    expect(parseEnvelope(Buffer.from(envelope))).toEqual({ ok: true, text, manifest, signature });
    // unsigned is for the signature check to say
    expect(parseEnvelope(JSON.stringify({ manifest: text }))).toEqual({ ok: true, text, manifest, signature: '' });
  });

  it('refuses what is not an envelope, with the id when the manifest has one', () => {
    const cases: [string | Buffer, string, string | undefined][] = [
      ['x'.repeat(MAX_MANIFEST_BYTES + 1), `envelope: ${MAX_MANIFEST_BYTES + 1} bytes, at most ${MAX_MANIFEST_BYTES}`, undefined],
      [Buffer.from([0x7b, 0xff, 0x7d]), 'envelope: not UTF-8 text', undefined],
      ['[]', 'envelope: expected a JSON object { "manifest": "<JSON text>", "signature": "<base64>" }', undefined],
      [JSON.stringify({ manifest, signature }), 'manifest: expected the manifest as its JSON text (a string, exactly what was signed), got an object', undefined],
      [JSON.stringify({ signature }), 'manifest: missing: expected the manifest as its JSON text (a string)', undefined],
      [JSON.stringify({ manifest: text, signatrue: signature }), 'signatrue: unknown key, did you mean "signature"?', manifest.id],
      [JSON.stringify({ manifest: text, signature: 42 }), 'signature: expected a base64 string, got 42', manifest.id],
      [JSON.stringify({ manifest: variant((m) => (m.artifact.sha256 = 'abc')), signature }), 'manifest.artifact.sha256: expected 64 lowercase hex digits, got "abc"', manifest.id],
    ];
    for (const [input, reason, id] of cases) {
      const r = parseEnvelope(input);
      expect(r).toEqual(id === undefined ? { ok: false, code: 'E_FW_INVALID', reason } : { ok: false, code: 'E_FW_INVALID', reason, id });
    }
    expect(parseEnvelope('{"manifest": ')).toMatchObject({ ok: false, reason: expect.stringMatching(/^envelope: not JSON/) });
  });
});

describe('manifest signatures', () => {
  const text = JSON.stringify(manifest);
  const signature = signManifest('gw-1', text, central.privatePem);

  it('signs the tag, the gateway and the sha256 of the text', () => {
    const sha = createHash('sha256').update(text, 'utf8').digest('hex');
    expect(signedManifestMessage('gw-1', text).toString('utf8')).toBe(`streetbox-deploy-v1\ngw-1\n${sha}`);
    expect(signature).toMatch(/^[A-Za-z0-9+/]{86}==$/);
  });

  it('accepts a good signature, naming the key, PEM or raw', () => {
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text, signature)).toEqual({ ok: true, key: 0 });
    expect(verifyManifestSignature([other.publicPem, central.raw], 'gw-1', text, signature)).toEqual({ ok: true, key: 1 });
  });

  it('refuses a wrong key, another gateway, a tampered text, a flipped bit', () => {
    const refused = { ok: false, reason: 'no configured key verifies it' };
    expect(verifyManifestSignature([other.publicPem], 'gw-1', text, signature)).toEqual(refused);
    expect(verifyManifestSignature([central.publicPem], 'gw-2', text, signature)).toEqual(refused);
    // one byte more (a space) is another text, though the same manifest
    expect(verifyManifestSignature([central.publicPem], 'gw-1', `${text} `, signature)).toEqual(refused);
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text.replace('"size":65536', '"size":65537'), signature)).toEqual(refused);
    const bytes = Buffer.from(signature, 'base64');
    bytes[3] = bytes[3]! ^ 0x80;
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text, bytes.toString('base64'))).toEqual(refused);
  });

  it('says unsigned, malformed, and no keys configured apart', () => {
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text, undefined)).toEqual({ ok: false, reason: 'unsigned' });
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text, '')).toEqual({ ok: false, reason: 'unsigned' });
    expect(verifyManifestSignature([central.publicPem], 'gw-1', text, 'AAAA')).toEqual({ ok: false, reason: 'malformed signature' });
    expect(verifyManifestSignature([], 'gw-1', text, signature)).toEqual({ ok: false, reason: 'no signing keys are configured (firmware.signingKeys): every manifest is refused' });
  });

  it('an envelope made and parsed round-trips to a verified manifest', () => {
    const r = parseEnvelope(makeEnvelope(text, signature));
    if (!r.ok) throw new Error(r.reason);
    expect(verifyManifestSignature([central.publicPem], r.manifest.gateway, r.text, r.signature)).toEqual({ ok: true, key: 0 });
  });

  it('refuses to sign with a key that is not an ed25519 private key', () => {
    expect(() => signManifest('gw-1', text, central.publicPem)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
