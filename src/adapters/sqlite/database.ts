/**
 * Opens the embedded SQLite database (better-sqlite3) with the settings the pipeline relies on, and a Kysely
 * instance over the same connection for migrations and dynamic queries.
 *
 * WAL with synchronous=NORMAL: a committed transaction survives a process crash (SIGKILL); on power loss the
 * last few may be lost. `OMNI_SQLITE_SYNCHRONOUS=FULL` trades throughput for power-loss durability.
 */
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';

export interface SqliteHandle {
  db: Database.Database;
  kysely: Kysely<unknown>;
  /** A prepared statement for `sql`, prepared once and cached (preparing costs ~15 µs). */
  stmt(sql: string): Database.Statement;
  /** Fired after a transaction that wrote jobs commits (the embedded queue wakes its workers with it). */
  jobsWritten: EventEmitter<{ queue: [string] }>;
  close(): void;
}

export function openSqlite(path: string, opts: { synchronous?: 'NORMAL' | 'FULL' } = {}): SqliteHandle {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -16384');
  db.pragma('temp_store = MEMORY');
  const cache = new Map<string, Database.Statement>();
  const stmt = (sql: string): Database.Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  // Kysely's SQLite driver only calls prepare/close; route its prepares through the cache too.
  const kysely = new Kysely<unknown>({
    dialect: new SqliteDialect({ database: { prepare: stmt, close: () => undefined } as unknown as Database.Database }),
  });
  const jobsWritten = new EventEmitter<{ queue: [string] }>();
  jobsWritten.setMaxListeners(100);
  return {
    db,
    kysely,
    stmt,
    jobsWritten,
    close: () => {
      cache.clear();
      db.close();
    },
  };
}

/** `INSERT INTO table (cols) VALUES (?,..),(?,..)` for `rows` rows; cached by the caller's stmt cache. */
export function multiInsertSql(table: string, cols: readonly string[], rows: number, conflict = ''): string {
  const one = `(${cols.map(() => '?').join(',')})`;
  return `INSERT INTO ${table} (${cols.join(',')}) VALUES ${Array.from({ length: rows }, () => one).join(',')}${conflict}`;
}

/** Runs a multi-row insert of `rows` (arrays of column values) in chunks. Call inside a transaction. */
export function insertRows(
  h: SqliteHandle,
  table: string,
  cols: readonly string[],
  rows: readonly unknown[][],
  conflict = '',
  chunk = 50,
): void {
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk);
    h.stmt(multiInsertSql(table, cols, part.length, conflict)).run(part.flat());
  }
}
