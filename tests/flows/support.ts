/** Logging into the embedded editor's admin API (Node-RED's OAuth password grant) and calling it. */
import { USER } from './rig.js';

/** A token for `user`; `scope` is the user's permissions ('*' or 'read'). */
export async function login(base: string, user: { username: string; password: string } = USER, scope = '*'): Promise<string> {
  const r = await fetch(`${base}/flows/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope, username: user.username, password: user.password }),
  });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { access_token: string }).access_token;
}

export async function admin(base: string, token: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const headers: Record<string, string> = { 'Node-RED-API-Version': 'v2', Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${base}/flows${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, json, text };
}
