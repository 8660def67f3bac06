/** The test PostgreSQL: its URL, whether it answers, and throw-away schemas. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.OMNI_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Null when PostgreSQL answers, else why not. */
export async function probePostgres(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Whether suites that need PostgreSQL run here: under CI they must (an unreachable database fails the run);
 * elsewhere they are skipped with a visible reason.
 */
export async function postgresForTests(): Promise<{ run: true } | { run: false; reason: string }> {
  const why = await probePostgres();
  if (why === null) return { run: true };
  const reason = `PostgreSQL at ${PG_URL.replace(/\/\/[^@/]*@/, '//…@')} is unreachable (${why})`;
  if (process.env.CI === 'true')
    throw new Error(`${reason}; CI requires it (set OMNI_TEST_DATABASE_URL or start PostgreSQL)`);
  console.warn(`[tests] skipped PostgreSQL runs: ${reason}`);
  return { run: false, reason };
}

export function newSchemaName(): string {
  return `t_${randomBytes(8).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
