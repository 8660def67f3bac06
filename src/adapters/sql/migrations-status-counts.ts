/**
 * Messages per status, kept up to date by triggers on `messages` in the transaction that changes them, so the
 * `omni_messages` gauge (a Prometheus scrape, or the bench polling it) reads a handful of rows instead of
 * counting the whole table, which grows without bound.
 *
 * PostgreSQL: statement triggers over the transition tables add each statement's net change per status to the
 * row of the backend that ran it (`shard` = its pid), so concurrent transactions never wait on each other's
 * counter rows; the reader sums the shards, and folds those of backends that are gone into shard 0 now and then
 * (`foldStatusCountShards`). SQLite (one writer): row triggers on one row per status.
 */
import { type Kysely, type Migration, sql } from 'kysely';
import { dialectOf } from './dialect.ts';

const pgFunction = `
CREATE FUNCTION message_status_counts_apply() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO message_status_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid(), count(*) FROM new_rows GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO message_status_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid(), sum(d) FROM (
      SELECT status, 1 AS d FROM new_rows UNION ALL SELECT status, -1 AS d FROM old_rows
    ) x GROUP BY status HAVING sum(d) <> 0 ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSE
    INSERT INTO message_status_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid(), -count(*) FROM old_rows GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
  END IF;
  RETURN NULL;
END
$$`;

const pgTriggers = [
  `CREATE TRIGGER message_status_counts_insert AFTER INSERT ON messages
   REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_status_counts_apply()`,
  `CREATE TRIGGER message_status_counts_update AFTER UPDATE ON messages
   REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_status_counts_apply()`,
  `CREATE TRIGGER message_status_counts_delete AFTER DELETE ON messages
   REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_status_counts_apply()`,
];

const sqliteAdd = (status: string, delta: number) =>
  `INSERT INTO message_status_counts (status, shard, n) VALUES (${status}, 0, ${delta})
   ON CONFLICT (status, shard) DO UPDATE SET n = n + ${delta};`;

const sqliteTriggers = [
  `CREATE TRIGGER message_status_counts_insert AFTER INSERT ON messages BEGIN ${sqliteAdd('NEW.status', 1)} END`,
  `CREATE TRIGGER message_status_counts_update AFTER UPDATE OF status ON messages WHEN OLD.status <> NEW.status
   BEGIN ${sqliteAdd('OLD.status', -1)} ${sqliteAdd('NEW.status', 1)} END`,
  `CREATE TRIGGER message_status_counts_delete AFTER DELETE ON messages BEGIN ${sqliteAdd('OLD.status', -1)} END`,
];

export const statusCountMigrations: Record<string, Migration> = {
  '0009_message_status_counts': {
    async up(db: Kysely<unknown>) {
      const pg = dialectOf(db) === 'postgres';
      await db.schema
        .createTable('message_status_counts')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('shard', 'integer', (c) => c.notNull())
        .addColumn('n', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('message_status_counts_pk', ['status', 'shard'])
        .execute();
      // The counts start from the table as it is; no message may change until the triggers are in place.
      if (pg) await sql`lock table messages in share row exclusive mode`.execute(db);
      await sql`insert into message_status_counts (status, shard, n)
        select status, 0, count(*) from messages group by status`.execute(db);
      if (pg) await sql.raw(pgFunction).execute(db);
      for (const t of pg ? pgTriggers : sqliteTriggers) await sql.raw(t).execute(db);
    },
  },
};

/**
 * PostgreSQL: folds the counter rows of backends that have ended into shard 0 (their pid may come back, so they
 * would otherwise pile up). One statement; live backends' rows are left alone.
 */
export async function foldStatusCountShards(db: Kysely<unknown>): Promise<void> {
  await sql`
    with gone as (
      delete from message_status_counts
      where shard <> 0 and shard not in (select pid from pg_stat_activity where pid is not null)
      returning status, n
    )
    insert into message_status_counts as c (status, shard, n)
    select status, 0, sum(n) from gone group by status order by status
    on conflict (status, shard) do update set n = c.n + excluded.n`.execute(db);
}
