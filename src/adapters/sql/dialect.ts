/** The SQL dialect of a Kysely instance, and the column types that differ between SQLite and PostgreSQL. */
import { type ColumnDataType, type Expression, type Kysely, PostgresAdapter, SqliteAdapter, sql } from 'kysely';

export type SqlDialect = 'sqlite' | 'postgres';

/** The dialect of a Kysely instance, from its adapter. */
export function dialectOf(db: Kysely<unknown>): SqlDialect {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) return 'postgres';
  if (adapter instanceof SqliteAdapter) return 'sqlite';
  throw new Error(`unsupported database dialect: ${adapter.constructor.name}`);
}

type DataTypeExpression = ColumnDataType | Expression<unknown>;

/** Column types that differ between the dialects (see src/adapters/sql/migrations.ts). */
export function typesFor(dialect: SqlDialect): { id: DataTypeExpression; float: DataTypeExpression } {
  return dialect === 'postgres'
    ? { id: sql`text collate "C"`, float: 'double precision' }
    : { id: 'text', float: 'real' };
}
