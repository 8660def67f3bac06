/** The SQLite adapters against the shared port contracts, each test on a fresh temporary database file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite, type SqliteHandle } from '../../src/adapters/sqlite/database.ts';
import { SqliteJobQueue } from '../../src/adapters/sqlite/sqlite-job-queue.ts';
import { SqliteStore } from '../../src/adapters/sqlite/sqlite-store.ts';
import { queueContract } from './queue-contract.ts';
import { storeContract } from './store-contract.ts';

async function freshDatabase(): Promise<{ h: SqliteHandle; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'omni-contract-'));
  const h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
  return {
    h,
    cleanup() {
      h.jobsWritten.removeAllListeners();
      h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storeContract('SqliteStore', async () => {
  const { h, cleanup } = await freshDatabase();
  // The store and the queue share one handle: the jobs the store writes are the queue's.
  return { store: new SqliteStore(h), queue: new SqliteJobQueue(h), cleanup: async () => cleanup() };
});

queueContract('SqliteJobQueue (manual clock)', async () => {
  const { h, cleanup } = await freshDatabase();
  const clock = new ManualClock();
  return { queue: new SqliteJobQueue(h, () => clock.now()), clock, cleanup: async () => cleanup() };
});

queueContract('SqliteJobQueue (wall clock)', async () => {
  const { h, cleanup } = await freshDatabase();
  return { queue: new SqliteJobQueue(h), clock: null, cleanup: async () => cleanup() };
});
