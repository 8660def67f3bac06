/**
 * Picks the storage back end: PostgreSQL when `OMNI_DATABASE_URL` is set (scale-out: many processes share it),
 * otherwise the embedded SQLite file under the data directory. Migrations run on open.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openPostgres } from '../adapters/postgres/database.ts';
import { PgContactStore } from '../adapters/postgres/pg-contact-store.ts';
import { PgJobQueue } from '../adapters/postgres/pg-job-queue.ts';
import { PgJourneyStore } from '../adapters/postgres/pg-journey-store.ts';
import { PgStore } from '../adapters/postgres/pg-store.ts';
import { PgWebhookStore } from '../adapters/postgres/pg-webhook-store.ts';
import { migrateToLatest } from '../adapters/sql/migrations.ts';
import { openSqlite } from '../adapters/sqlite/database.ts';
import { SqliteContactStore } from '../adapters/sqlite/sqlite-contact-store.ts';
import { SqliteJobQueue } from '../adapters/sqlite/sqlite-job-queue.ts';
import { SqliteJourneyStore } from '../adapters/sqlite/sqlite-journey-store.ts';
import { SqliteStore } from '../adapters/sqlite/sqlite-store.ts';
import { SqliteWebhookStore } from '../adapters/sqlite/sqlite-webhook-store.ts';
import type { Clock } from '../ports/clock.ts';
import type { ContactStore } from '../ports/contact-store.ts';
import type { JourneyStore } from '../ports/journey-store.ts';
import type { JobQueue } from '../ports/queue.ts';
import type { MessageStore } from '../ports/store.ts';
import type { WebhookStore } from '../ports/webhook-store.ts';
import type { Config } from './config.ts';

export interface Backend {
  kind: 'sqlite' | 'postgres';
  store: MessageStore;
  /** The jobs table: the queue itself when embedded, the outbox when a broker is configured. */
  jobs: JobQueue;
  /** Outbound webhooks: endpoints, the event outbox, deliveries (the same database as `store`). */
  webhooks: WebhookStore;
  /** Contacts, consent, business events and segments (the same database). */
  contacts: ContactStore;
  /** Journeys and their durable runs (the same database). */
  journeys: JourneyStore;
  /** Schema migrations applied by this open. */
  migrated: string[];
}

export async function openBackend(config: Config, clock: Clock): Promise<Backend> {
  if (config.databaseUrl) {
    const schema = config.databaseSchema;
    const h = openPostgres(config.databaseUrl, { max: config.databasePoolSize, ...(schema ? { schema } : {}) });
    if (schema) await h.pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    const migrated = await migrateToLatest(h.kysely);
    return {
      kind: 'postgres',
      store: new PgStore(h),
      jobs: new PgJobQueue(h, () => clock.now()),
      webhooks: new PgWebhookStore(h),
      contacts: new PgContactStore(h),
      journeys: new PgJourneyStore(h),
      migrated,
    };
  }
  mkdirSync(config.dataDir, { recursive: true });
  const h = openSqlite(join(config.dataDir, 'omni.db'), { synchronous: config.sqliteSynchronous });
  const migrated = await migrateToLatest(h.kysely);
  return {
    kind: 'sqlite',
    store: new SqliteStore(h),
    jobs: new SqliteJobQueue(h, () => clock.now()),
    webhooks: new SqliteWebhookStore(h),
    contacts: new SqliteContactStore(h),
    journeys: new SqliteJourneyStore(h),
    migrated,
  };
}
