/** The journey store adapters against the shared contract: SQLite on a temporary file, PostgreSQL on a fresh schema. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, it } from 'vitest';
import { openPostgres } from '../../src/adapters/postgres/database.ts';
import { PgJourneyStore } from '../../src/adapters/postgres/pg-journey-store.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite } from '../../src/adapters/sqlite/database.ts';
import { SqliteJourneyStore } from '../../src/adapters/sqlite/sqlite-journey-store.ts';
import { newSchemaName, PG_URL, postgresForTests } from '../support/postgres.ts';
import { journeyStoreContract } from './journey-store-contract.ts';

journeyStoreContract('SqliteJourneyStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omni-journeys-'));
  const h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
  return {
    store: new SqliteJourneyStore(h),
    async cleanup() {
      h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const postgres = await postgresForTests();
if (postgres.run) {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  afterAll(() => admin.end());
  journeyStoreContract('PgJourneyStore', async () => {
    const schema = newSchemaName();
    await admin.query(`create schema ${schema}`);
    const a = openPostgres(PG_URL, { schema, max: 4 });
    const b = openPostgres(PG_URL, { schema, max: 4 });
    await migrateToLatest(a.kysely);
    return {
      store: new PgJourneyStore(a),
      other: new PgJourneyStore(b),
      async cleanup() {
        await a.close();
        await b.close();
        await admin.query(`drop schema ${schema} cascade`);
      },
    };
  });
} else {
  describe.skip(`PgJourneyStore (skipped: ${postgres.reason})`, () => {
    it('runs against PostgreSQL', () => undefined);
  });
}
