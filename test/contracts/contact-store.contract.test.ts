/**
 * The contact store adapters against their shared contract: SQLite on a fresh temporary file per test, PostgreSQL
 * on a fresh schema per test (skipped with a warning when unreachable, except under CI=true).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, it } from 'vitest';
import { openPostgres } from '../../src/adapters/postgres/database.ts';
import { PgContactStore } from '../../src/adapters/postgres/pg-contact-store.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite } from '../../src/adapters/sqlite/database.ts';
import { SqliteContactStore } from '../../src/adapters/sqlite/sqlite-contact-store.ts';
import { newSchemaName, PG_URL, postgresForTests } from '../support/postgres.ts';
import { contactStoreContract } from './contact-store-contract.ts';

contactStoreContract('SqliteContactStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omni-contacts-'));
  const h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
  return {
    store: new SqliteContactStore(h),
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
  contactStoreContract('PgContactStore', async () => {
    const schema = newSchemaName();
    await admin.query(`create schema ${schema}`);
    const h = openPostgres(PG_URL, { schema, max: 4 });
    await migrateToLatest(h.kysely);
    return {
      store: new PgContactStore(h),
      async cleanup() {
        await h.close();
        await admin.query(`drop schema ${schema} cascade`);
      },
    };
  });
} else {
  describe.skip(`PgContactStore (${postgres.reason})`, () => {
    it('runs against PostgreSQL', () => undefined);
  });
}
