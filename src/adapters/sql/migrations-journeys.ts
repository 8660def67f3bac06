/** Schema of journeys: definitions and their versions, runs, step history and timers. */
import { type Kysely, type Migration, sql } from 'kysely';
import { dialectOf, typesFor } from './dialect.ts';

export const journeyMigrations: Record<string, Migration> = {
  /**
   * `journeys` holds the draft and the published trigger (for matching events to journeys); `journey_versions` the
   * immutable published definitions. A run is one row: its step, state (JSON), due time and lease (a timer is the
   * run's `due_at`); `journey_waits` maps signal keys to waiting runs and `journey_signals` is each run's inbox;
   * `journey_messages` the status of every message a run sent; `journey_entries` the last entry of each contact
   * (re-entry rules); `journey_run_history` each step's history (a row per execution).
   */
  '0007_journeys': {
    async up(db: Kysely<unknown>) {
      const dialect = dialectOf(db);
      const pg = dialect === 'postgres';
      const t = typesFor(dialect);
      await db.schema
        .createTable('journeys')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('draft', 'text', (c) => c.notNull())
        .addColumn('published_version', 'integer')
        .addColumn('trigger_type', 'text')
        .addColumn('trigger_key', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('journeys_org').on('journeys').columns(['org_id', 'id']).execute();
      await db.schema
        .createIndex('journeys_trigger')
        .on('journeys')
        .columns(['org_id', 'trigger_type', 'trigger_key'])
        .where(sql.ref('status'), '=', 'active')
        .execute();
      await db.schema
        .createTable('journey_versions')
        .addColumn('journey_id', t.id, (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('definition', 'text', (c) => c.notNull())
        .addColumn('published_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('journey_versions_pk', ['journey_id', 'version'])
        .execute();
      await db.schema
        .createTable('journey_runs')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('journey_id', t.id, (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('wait_keys', 'text', (c) => c.notNull())
        .addColumn('due_at', 'bigint')
        .addColumn('lease_until', 'bigint')
        .addColumn('lease_token', 'text')
        .addColumn('error', 'text')
        .addColumn('dedupe_key', 'text')
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('ended_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('journey_runs_due')
        .on('journey_runs')
        .columns(['due_at'])
        .where(sql.ref('due_at'), 'is not', null)
        .execute();
      await db.schema.createIndex('journey_runs_journey').on('journey_runs').columns(['journey_id', 'id']).execute();
      await db.schema.createIndex('journey_runs_org').on('journey_runs').columns(['org_id', 'id']).execute();
      await db.schema.createIndex('journey_runs_contact').on('journey_runs').columns(['contact_id', 'id']).execute();
      await db.schema
        .createIndex('journey_runs_dedupe')
        .on('journey_runs')
        .columns(['journey_id', 'dedupe_key'])
        .unique()
        .where(sql.ref('dedupe_key'), 'is not', null)
        .execute();
      await db.schema
        .createTable('journey_entries')
        .addColumn('journey_id', t.id, (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('last_run_id', t.id, (c) => c.notNull())
        .addColumn('last_started_at', 'bigint', (c) => c.notNull())
        .addColumn('entries', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('journey_entries_pk', ['journey_id', 'contact_id'])
        .execute();
      await db.schema
        .createTable('journey_waits')
        .addColumn('wait_key', 'text', (c) => c.notNull())
        .addColumn('run_id', t.id, (c) => c.notNull())
        .addPrimaryKeyConstraint('journey_waits_pk', ['wait_key', 'run_id'])
        .execute();
      await db.schema.createIndex('journey_waits_run').on('journey_waits').columns(['run_id']).execute();
      await db.schema
        .createTable('journey_signals')
        .$call((b) =>
          pg
            ? b.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
            : b.addColumn('id', 'integer', (c) => c.primaryKey()),
        )
        .addColumn('run_id', t.id, (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('journey_signals_run').on('journey_signals').columns(['run_id', 'id']).execute();
      await db.schema
        .createTable('journey_messages')
        .addColumn('message_id', t.id, (c) => c.primaryKey())
        .addColumn('run_id', t.id, (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('journey_messages_run').on('journey_messages').columns(['run_id']).execute();
      await db.schema
        .createTable('journey_run_history')
        .$call((b) =>
          pg
            ? b.addColumn('seq', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
            : b.addColumn('seq', 'integer', (c) => c.primaryKey()),
        )
        .addColumn('run_id', t.id, (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        // The entries one execution (or command) wrote, as a JSON array: one row per save, not per step.
        .addColumn('entries', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('journey_run_history_run')
        .on('journey_run_history')
        .columns(['run_id', 'seq'])
        .execute();
    },
  },
};
