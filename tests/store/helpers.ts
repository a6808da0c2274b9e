/** Temp dirs and stores for the store tests; everything made here is removed by cleanup(). */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBus } from '../../edge/bus.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, type SqliteStore, type StoreOptions } from '../../edge/store/store.js';

export class Sandbox {
  readonly dir = mkdtempSync(join(tmpdir(), 'streetbox-store-'));
  readonly stores: SqliteStore[] = [];

  file(name = 'streetbox.db'): string {
    return join(this.dir, name);
  }

  open(opts: Partial<StoreOptions> = {}): SqliteStore {
    const store = openStore({
      path: this.file(),
      maxBytes: 64 * 1024 * 1024,
      durability: 'normal',
      log: silentLogger(),
      ...opts,
    });
    this.stores.push(store);
    return store;
  }

  cleanup(): void {
    for (const s of this.stores) s.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function newBus(): EventBus {
  return new EventBus(silentLogger());
}

/** The database file and its WAL, in bytes: what the quota bounds on disk. */
export function diskBytes(path: string): number {
  let total = 0;
  for (const p of [path, path + '-wal']) {
    try {
      total += statSync(p).size;
    } catch {
      // no WAL right now
    }
  }
  return total;
}
