/**
 * The status page's first load (issue 19: HTML, JS and CSS, gzipped, under 150 KB): a browser on
 * a cabinet's slow link fetches the shell and every script and stylesheet it names. Each is
 * served gzipped to a client that accepts it, plain to one that does not, and revalidated by its
 * ETag (304, no body). The charts' library is bundled (no CDN); the map's Leaflet is served too
 * but is not part of the first load (map.js loads it only when api.mapTiles is set).
 */
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { tempGateway } from '../support/cli.js';

/** the budget for the first load */
const FIRST_LOAD_LIMIT = 150 * 1024;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(url: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the status page as a phone first loads it', () => {
  let gw: Gateway;
  let dir: ReturnType<typeof tempGateway>;
  let base: string;

  beforeAll(async () => {
    dir = tempGateway(`
gateway: { id: weight-gw }
storage: { path: data/gw.db }
broker: { enabled: false }
api: { host: 127.0.0.1, port: 0, tokens: [{ name: t, token: weight-technician-token-01, role: technician }] }
simulate: true
`);
    gw = await startGateway({ configPath: dir.config, log: silentLogger() });
    base = `http://127.0.0.1:${gw.built.api!.port()}`;
  });

  afterAll(async () => {
    await gw?.stop();
    dir?.cleanup();
  });

  it('weighs under 150 KB gzipped: the shell and every script and stylesheet it names', async () => {
    const shell = await get(base + '/', { 'Accept-Encoding': 'gzip, deflate, br' });
    expect(shell.status).toBe(200);
    expect(shell.headers['content-encoding']).toBe('gzip');
    const html = gunzipSync(shell.body).toString('utf8');
    const refs = [...html.matchAll(/<(?:script src|link rel="stylesheet" href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs).toEqual(expect.arrayContaining(['/status.js', '/vendor/uPlot.iife.min.js', '/vendor/uPlot.min.css', '/map.js', '/device.js', '/control.js']));
    expect(refs.some((r) => r.includes('leaflet'))).toBe(false);
    let total = shell.body.length;
    const sizes: Record<string, number> = { '/': shell.body.length };
    for (const ref of refs) {
      const r = await get(base + ref, { 'Accept-Encoding': 'gzip' });
      expect(r.status, ref).toBe(200);
      expect(r.headers['content-encoding'], ref).toBe('gzip');
      sizes[ref] = r.body.length;
      total += r.body.length;
    }
    expect(total, JSON.stringify(sizes)).toBeLessThan(FIRST_LOAD_LIMIT);
  });

  it('serves plain bytes to a client without gzip, and 304 to one that has them', async () => {
    const gz = await get(base + '/vendor/uPlot.iife.min.js', { 'Accept-Encoding': 'gzip' });
    const plain = await get(base + '/vendor/uPlot.iife.min.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect(plain.body.toString('utf8')).toContain('uPlot');
    expect(plain.headers['vary']).toBe('Accept-Encoding');
    const etag = String(plain.headers['etag']);
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await get(base + '/vendor/uPlot.iife.min.js', { 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    // gzip refused with q=0 is plain
    const refused = await get(base + '/status.js', { 'Accept-Encoding': 'gzip;q=0, identity' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    // the map library is there for the map with tiles
    const leaflet = await get(base + '/vendor/leaflet.js', { 'Accept-Encoding': 'gzip' });
    expect(leaflet.status).toBe(200);
  });
});
