/**
 * Schema migrations, written with Kysely's schema builder so one source serves SQLite and PostgreSQL.
 * Timestamps are integers (milliseconds since the epoch); JSON is stored as text.
 *
 * Where the dialects differ (see `types`): identifiers are `text collate "C"` on PostgreSQL so ordering and the
 * `before` cursors compare bytes like SQLite does, whatever the database's collation; the carrier event id is an
 * identity column; a cost is `double precision` (SQLite's `real` is already 8 bytes); and history rows get a
 * `seq` identity column on PostgreSQL (SQLite orders them by rowid). The SQLite schema is unchanged by this.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { dialectOf, typesFor } from './dialect.ts';
import { contactMigrations } from './migrations-contacts.ts';
import { journeyMigrations } from './migrations-journeys.ts';
import { statusCountMigrations } from './migrations-status-counts.ts';
import { webhookMigrations } from './migrations-webhooks.ts';

const migrations: Record<string, Migration> = {
  '0001_core': {
    async up(db: Kysely<unknown>) {
      const dialect = dialectOf(db);
      const pg = dialect === 'postgres';
      const t = typesFor(dialect);
      await db.schema
        .createTable('organizations')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull().references('organizations.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createTable('senders')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull().references('organizations.id'))
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('channels', 'text', (c) => c.notNull())
        .addColumn('from_address', 'text')
        .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('messages')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('direction', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('from_address', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('body', 'text')
        .addColumn('subject', 'text')
        .addColumn('template_id', t.id)
        .addColumn('metadata', 'text')
        .addColumn('sender_id', t.id)
        .addColumn('provider', 'text')
        .addColumn('provider_message_id', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('send_at', 'bigint')
        .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('lease_until', 'bigint')
        .addColumn('error_code', 'text')
        .addColumn('error_class', 'text')
        .addColumn('error_message', 'text')
        .addColumn('cost', t.float)
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('messages_org_id').on('messages').columns(['org_id', 'id']).execute();
      await db.schema.createIndex('messages_org_status').on('messages').columns(['org_id', 'status', 'id']).execute();
      await db.schema
        .createIndex('messages_provider_id')
        .on('messages')
        .columns(['sender_id', 'provider_message_id'])
        .where(sql.ref('provider_message_id'), 'is not', null)
        .execute();
      await db.schema
        .createTable('message_history')
        .$call((b) => (pg ? b.addColumn('seq', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity()) : b))
        .addColumn('message_id', t.id, (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('applied', 'integer', (c) => c.notNull())
        .addColumn('detail', 'text')
        .execute();
      await db.schema
        .createIndex('message_history_message')
        .on('message_history')
        // Histories are read in insertion order: rowid on SQLite, `seq` on PostgreSQL.
        .columns(pg ? ['message_id', 'seq'] : ['message_id', 'at'])
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('queue', 'text', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('run_at', 'bigint', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('org_id', t.id)
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .execute();
      await db.schema.createIndex('jobs_due').on('jobs').columns(['queue', 'priority', 'run_at']).execute();
      await db.schema
        .createTable('dead_letters')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('job_id', t.id, (c) => c.notNull())
        .addColumn('org_id', t.id)
        .addColumn('queue', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('error', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('dead_letters_org').on('dead_letters').columns(['org_id', 'id']).execute();
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('response', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['org_id', 'key'])
        .execute();
      await db.schema
        .createTable('templates')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('carrier_events')
        // SQLite: `integer primary key autoincrement`; PostgreSQL: a bigint identity (read back as a JS number).
        .$call((b) =>
          pg
            ? b.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
            : b.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
        )
        .addColumn('sender_id', t.id, (c) => c.notNull())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('event_key', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('carrier_events_key', ['sender_id', 'event_key'])
        .execute();
    },
  },
  // The outbox sweeper looks for messages whose job may have been lost (a broker restarted without persistence).
  '0002_stale_messages': {
    async up(db: Kysely<unknown>) {
      await db.schema.createIndex('messages_status_updated').on('messages').columns(['status', 'updated_at']).execute();
    },
  },
  // Carrier events are marked settled once applied (or dead-lettered), so the outbox sweeper can find those whose
  // job was lost with the broker's data, and a repeated job skips what is already done. Events stored before this
  // migration were handled by the jobs of their time: they count as settled.
  '0003_carrier_events_settled': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('carrier_events').addColumn('settled_at', 'bigint').execute();
      await sql`update carrier_events set settled_at = received_at`.execute(db);
      await db.schema
        .createIndex('carrier_events_unsettled')
        .on('carrier_events')
        .columns(['received_at', 'id'])
        .where(sql.ref('settled_at'), 'is', null)
        .execute();
    },
  },
  // Real carriers: senders get a name, limits, cost, identities, countries, an enabled flag and their secrets sealed
  // apart from the plain config; messages keep their channel options and, once sent, their SMS segmentation; and
  // a recipient's sender is remembered so a conversation keeps its number.
  '0004_carriers': {
    async up(db: Kysely<unknown>) {
      const t = typesFor(dialectOf(db));
      for (const [name, type] of [
        ['name', 'text'],
        ['rate_limit', 'integer'],
        ['account_rate_limit', 'integer'],
        ['cost_per_message', t.float],
        ['identities', 'text'],
        ['countries', 'text'],
        ['secrets', 'text'],
        ['updated_at', 'bigint'],
        ['deleted_at', 'bigint'],
      ] as const) {
        await db.schema.alterTable('senders').addColumn(name, type).execute();
      }
      await db.schema
        .alterTable('senders')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema.alterTable('messages').addColumn('options', 'text').execute();
      await db.schema.alterTable('messages').addColumn('segments', 'integer').execute();
      await db.schema.alterTable('messages').addColumn('encoding', 'text').execute();
      await db.schema
        .createTable('sender_affinity')
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('sender_id', t.id, (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('sender_affinity_pk', ['org_id', 'channel', 'recipient'])
        .execute();
    },
  },
  // The sweeper's index holds only the messages it may look for (queued, scheduled, sending): a message that moves
  // on to sent, delivered or a final status no longer adds an entry, which on PostgreSQL (where every status
  // change writes every index) was two index insertions per message for nothing.
  '0010_stale_messages_partial': {
    async up(db: Kysely<unknown>) {
      await db.schema.dropIndex('messages_status_updated').execute();
      await db.schema
        .createIndex('messages_unsettled_updated')
        .on('messages')
        .columns(['updated_at'])
        .where(sql.ref('status'), 'in', ['queued', 'scheduled', 'sending'])
        .execute();
    },
  },
  // PostgreSQL: a history row was two index entries (the `seq` key and `(message_id, seq)` for reading a
  // history); the key becomes `(message_id, seq)` itself, one entry per row — four fewer per message sent.
  '0011_history_key': {
    async up(db: Kysely<unknown>) {
      if (dialectOf(db) !== 'postgres') return;
      await sql`alter table message_history drop constraint message_history_pkey`.execute(db);
      await sql`alter table message_history add constraint message_history_pkey primary key (message_id, seq)`.execute(
        db,
      );
      await db.schema.dropIndex('message_history_message').execute();
    },
  },
  // Messages may be addressed to a contact and carry a purpose (transactional or marketing) that consent, quiet
  // hours and frequency caps depend on. Runs after the contacts and journeys migrations (names sort).
  '0008_message_contacts': {
    async up(db: Kysely<unknown>) {
      const t = typesFor(dialectOf(db));
      await db.schema.alterTable('messages').addColumn('contact_id', t.id).execute();
      await db.schema.alterTable('messages').addColumn('purpose', 'text').execute();
      await db.schema
        .createIndex('messages_contact')
        .on('messages')
        .columns(['contact_id'])
        .where(sql.ref('contact_id'), 'is not', null)
        .execute();
    },
  },
};

/**
 * Feature migrations live beside their feature's store adapters (`migrations-<feature>.ts`) and join the core ones
 * here; names sort in the order they must run.
 */
const allMigrations: Record<string, Migration> = {
  ...migrations,
  ...webhookMigrations,
  ...contactMigrations,
  ...journeyMigrations,
  ...statusCountMigrations,
};

const provider: MigrationProvider = { getMigrations: async () => allMigrations };

/**
 * Brings the schema up to date; throws with the failing migration's error. The dialect comes from the Kysely
 * adapter. On PostgreSQL everything, Kysely's migration tables included, lives in the connection's current schema
 * (the first of its `search_path`), so several schemas of one database migrate independently.
 */
export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  let migrationTableSchema: string | undefined;
  if (dialectOf(db) === 'postgres') {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    const schema = rows[0]?.schema;
    if (!schema) throw new Error('migrateToLatest: no current schema (does the search_path name an existing schema?)');
    migrationTableSchema = schema;
  }
  const migrator = new Migrator({ db, provider, ...(migrationTableSchema ? { migrationTableSchema } : {}) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
