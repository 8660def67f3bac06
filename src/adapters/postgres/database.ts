/**
 * Opens PostgreSQL for the scale-out adapters: a `pg` Pool, a Kysely instance over it (PostgresDialect), and the
 * wake-up channel of the job queue.
 *
 * Types: `bigint` (int8) columns (millisecond timestamps, carrier event ids, `count(*)`) are parsed to JS numbers
 * by this pool's own type parsers (`types` in the pool config), so the process-wide `pg.types` registry is left
 * alone; every value the schema stores in them is far below 2^53. `double precision` (a cost) and `integer` are
 * numbers already.
 *
 * Schema: `schema` puts the connections' `search_path` on that schema (the tests give each test its own);
 * unqualified table names then resolve there. The schema must exist before queries run.
 *
 * Wake-ups: a transaction that writes jobs calls `notifyJobs` inside it; PostgreSQL delivers the NOTIFY on commit
 * only, to every process LISTENing on the schema's channel. The writing process itself is told at once, through
 * `jobsWritten`, after its commit (and ignores its own NOTIFYs, which carry its origin id), so an in-process
 * wake-up never waits for the LISTEN connection to be up.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Kysely, PostgresDialect, type RawBuilder, sql, type Transaction } from 'kysely';
import pg from 'pg';

const INT8_OID = 20;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PgOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Schema to work in (`search_path`); default: the server's default search path. */
  schema?: string;
  /** Told when the LISTEN connection fails (it reconnects by itself). */
  onListenError?: (err: unknown) => void;
}

export interface PgHandle {
  pool: pg.Pool;
  // biome-ignore lint/suspicious/noExplicitAny: dynamic queries over an untyped schema
  kysely: Kysely<any>;
  schema: string | null;
  /** The NOTIFY channel of this schema's jobs. */
  channel: string;
  /** Prefixes this handle's NOTIFY payloads (`origin|queue`), so it can skip its own. */
  origin: string;
  /** Fired when jobs may have become available: after this process's commits, and on other processes' NOTIFYs. */
  jobsWritten: EventEmitter<{ queue: [string] }>;
  /** A statement that NOTIFYs other processes that `queues` got jobs; run it inside the writing transaction. */
  notifyJobs(queues: Iterable<string>): RawBuilder<unknown>;
  /** Tells this process's listeners (after the commit). */
  announce(queues: Iterable<string>): void;
  /** Starts LISTENing (once); resolves when the LISTEN is active. Until then only this process's writes wake. */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function openPostgres(url: string, opts: PgOptions = {}): PgHandle {
  const schema = opts.schema ?? null;
  if (schema !== null && !SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name: ${schema}`);
  const connection: pg.ClientConfig = {
    connectionString: url,
    types,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  };
  // A bounded connect time: with the database down, requests fail fast (503) instead of hanging.
  const pool = new pg.Pool({ ...connection, max: opts.max ?? 10, connectionTimeoutMillis: 5000 });
  // An idle client losing its connection is dropped by the pool; without a listener the 'error' would crash us.
  pool.on('error', () => undefined);
  // A checked-out client whose connection dies (the server shut down mid-transaction) emits 'error' with no pool
  // listener attached: unhandled, it would kill the process. The failing query reports it to its caller, and the
  // pool drops the broken client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const kysely = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  const channel = schema ? `omni_jobs_${schema}` : 'omni_jobs';
  const origin = randomUUID();
  const jobsWritten = new EventEmitter<{ queue: [string] }>();
  jobsWritten.setMaxListeners(100);

  let listener: pg.Client | undefined;
  let listening: Promise<void> | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const connectListener = async (): Promise<void> => {
    const client = new pg.Client(connection);
    client.on('notification', (n) => {
      if (n.channel !== channel || !n.payload) return;
      const bar = n.payload.indexOf('|');
      if (bar < 0 || n.payload.slice(0, bar) === origin) return;
      jobsWritten.emit('queue', n.payload.slice(bar + 1));
    });
    client.on('error', (err) => {
      opts.onListenError?.(err);
      if (listener === client) reconnect(1000);
    });
    client.on('end', () => {
      if (listener === client) reconnect(1000);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${channel}"`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (closed) {
      await client.end().catch(() => undefined);
      return;
    }
    listener = client;
  };

  const reconnect = (delay: number): void => {
    const old = listener;
    listener = undefined;
    old?.end().catch(() => undefined);
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connectListener().then(
        // Notifications may have been missed while disconnected: wake everything.
        () => jobsWritten.emit('queue', '*'),
        (err) => {
          opts.onListenError?.(err);
          reconnect(Math.min(delay * 2, 30_000));
        },
      );
    }, delay);
    retryTimer.unref();
  };

  return {
    pool,
    kysely,
    schema,
    channel,
    origin,
    jobsWritten,
    notifyJobs(queues) {
      return sql`select pg_notify(${channel}, ${`${origin}|`} || q) from unnest(${[...new Set(queues)]}::text[]) as q`;
    },
    announce(queues) {
      for (const q of new Set(queues)) jobsWritten.emit('queue', q);
    },
    listen() {
      listening ??= connectListener().catch((err) => {
        opts.onListenError?.(err);
        reconnect(1000);
      });
      return listening;
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const l = listener;
      listener = undefined;
      await l?.end().catch(() => undefined);
      // Not kysely.destroy(): it ends the pool only when Kysely has used it, and ending a pool twice throws.
      await pool.end();
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: dynamic queries over an untyped schema
export type Trx = Transaction<any>;

const RETRYABLE = new Set(['40P01', '40001']); // deadlock_detected, serialization_failure

/**
 * Runs `fn` in one transaction (READ COMMITTED), retrying a few times when PostgreSQL aborts it as a deadlock
 * victim or on a serialization failure. `fn` may run more than once: keep it free of side effects outside the
 * transaction.
 */
export async function inTransaction<T>(h: PgHandle, fn: (trx: Trx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await h.kysely.transaction().execute(fn);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 5 || typeof code !== 'string' || !RETRYABLE.has(code)) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}

/**
 * For a transaction whose statements find their rows by key (ids, provider message ids): tells the planner, for
 * this transaction only, not to scan tables or build hashes. A batch of a few hundred keys is always cheapest
 * through the indexes, but the planner's statistics lag behind a table that grows or drains fast (a new
 * installation, a backlog), and it then picked a scan of every queued message, or of the whole table, per batch.
 * The settings are penalties, not bans: a statement with no index path still runs.
 */
export async function preferKeyLookups(trx: Trx): Promise<void> {
  await sql`select set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
    set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`.execute(trx);
}
