/**
 * Picks the storage back end: PostgreSQL when `OMNI_DATABASE_URL` is set (scale-out: many processes share it),
 * otherwise the embedded SQLite file under the data directory. Migrations run on open.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openPostgres } from '../adapters/postgres/database.ts';
import { PgJobQueue } from '../adapters/postgres/pg-job-queue.ts';
import { PgStore } from '../adapters/postgres/pg-store.ts';
import { migrateToLatest } from '../adapters/sql/migrations.ts';
import { openSqlite } from '../adapters/sqlite/database.ts';
import { SqliteJobQueue } from '../adapters/sqlite/sqlite-job-queue.ts';
import { SqliteStore } from '../adapters/sqlite/sqlite-store.ts';
import type { Clock } from '../ports/clock.ts';
import type { JobQueue } from '../ports/queue.ts';
import type { MessageStore } from '../ports/store.ts';
import type { Config } from './config.ts';

export interface Backend {
  kind: 'sqlite' | 'postgres';
  store: MessageStore;
  /** The jobs table: the queue itself when embedded, the outbox when a broker is configured. */
  jobs: JobQueue;
  /** Schema migrations applied by this open. */
  migrated: string[];
}

export async function openBackend(config: Config, clock: Clock): Promise<Backend> {
  if (config.databaseUrl) {
    const schema = config.databaseSchema;
    const h = openPostgres(config.databaseUrl, { max: config.databasePoolSize, ...(schema ? { schema } : {}) });
    if (schema) await h.pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    const migrated = await migrateToLatest(h.kysely);
    return { kind: 'postgres', store: new PgStore(h), jobs: new PgJobQueue(h, () => clock.now()), migrated };
  }
  mkdirSync(config.dataDir, { recursive: true });
  const h = openSqlite(join(config.dataDir, 'omni.db'), { synchronous: config.sqliteSynchronous });
  const migrated = await migrateToLatest(h.kysely);
  return { kind: 'sqlite', store: new SqliteStore(h), jobs: new SqliteJobQueue(h, () => clock.now()), migrated };
}
