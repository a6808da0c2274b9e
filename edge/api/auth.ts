/**
 * Bearer tokens of api.tokens (RFC 6750): hashed with SHA-256 at start, so only the hashes
 * stay in memory here; a presented token is compared with every entry in constant time
 * (passwords.ts findToken). Tokens are never logged; the token's name is.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.js';
import { findToken, hashToken } from '../control/passwords.js';
import type { Principal, Role } from '../control/roles.js';

interface TokenEntry {
  name: string;
  role: Role;
  tokenHash: string;
}

export type TokenCheck = { kind: 'none' } | { kind: 'invalid' } | { kind: 'ok'; principal: Principal };

export class TokenTable {
  private readonly entries: TokenEntry[];

  constructor(tokens: Config['api']['tokens']) {
    this.entries = tokens.map((t) => ({ name: t.name, role: t.role, tokenHash: hashToken(t.token) }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal of the request's `Authorization: Bearer <token>`. */
  check(req: IncomingMessage): TokenCheck {
    const header = req.headers.authorization;
    if (header === undefined || header === '') return { kind: 'none' };
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (!m) return { kind: 'invalid' };
    const e = findToken(m[1]!, this.entries);
    return e ? { kind: 'ok', principal: { role: e.role, principal: e.name } } : { kind: 'invalid' };
  }
}
