/** The store as other components import it. */
export type { Store, Ingest, ReadingQuery, EventQuery, WriteOptions } from './api.js';
export type * from './types.js';
export { openStore, SqliteStore, type StoreOptions } from './store.js';
export { openStoreReadOnly, type StoreView } from './readOnly.js';
export { BatchWriter, type BatchWriterOptions } from './writer.js';
export { StoreError } from './errors.js';
export type { Migration } from './migrations.js';
