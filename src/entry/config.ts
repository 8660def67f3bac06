/** Settings, read once from the environment at start; nothing else reads `process.env`. */
import { resolve } from 'node:path';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** PostgreSQL URL: the scale-out store (and job outbox); unset = embedded SQLite. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** URLs taken from messages (email attachments, Web Push endpoints) may point at loopback and private networks. */
  allowPrivateUrls: boolean;
  /** PostgreSQL schema to use (created when missing); unset = the server's search_path. */
  databaseSchema: string | undefined;
  /** Redis URL: with it, workers take jobs from BullMQ (relayed from the database outbox) and events cross processes. */
  redisUrl: string | undefined;
  /** Key prefix in Redis (lets several deployments share one Redis). */
  redisPrefix: string;
  /** A queued message untouched this long is re-enqueued by the outbox sweeper (scale-out only). */
  sweepGraceMs: number;
  publicUrl: string;
  bootstrapApiKey: string | undefined;
  /** Key sealing carrier credentials (OMNI_SECRET_KEY); required with OMNI_DATABASE_URL. */
  secretKey: string | undefined;
  /** Earlier keys, still opening values sealed before a rotation (OMNI_SECRET_KEY_PREVIOUS, comma-separated). */
  secretKeyPrevious: string[];
  logLevel: string;
  sqliteSynchronous: 'NORMAL' | 'FULL';
  sandboxDelayMs: number;
  sandboxUrl: string | undefined;
  workers: { sendConcurrency: number; batchSize: number; leaseMs: number; pollMs: number };
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  webhooks: WebhookConfig;
}

/** Outbound webhooks (OMNI_WEBHOOK_*). */
export interface WebhookConfig {
  /** Let endpoints reach loopback, private and link-local addresses (tests, or receivers on a private network). */
  allowPrivate: boolean;
  /** Time-out of one request, connection to last byte. */
  timeoutMs: number;
  /** Requests in flight per worker process, and per endpoint. */
  concurrency: number;
  perEndpoint: number;
  /** An endpoint whose deliveries have all failed for this long is disabled (default five days). */
  disableAfterMs: number;
  /** Back-off: first delay, longest delay, and how long a delivery is retried (default 5 s, 10 h, three days). */
  retryBaseMs: number;
  retryMaxMs: number;
  retryForMs: number;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got '${raw}')`);
  return n;
}

function bool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error(`${name} must be true or false (got '${raw}')`);
}

function schemaName(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(raw)) throw new Error('OMNI_DATABASE_SCHEMA must be a lower-case SQL identifier');
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int(env, 'OMNI_PORT', 3000);
  const host = env.OMNI_HOST ?? '0.0.0.0';
  const sync = (env.OMNI_SQLITE_SYNCHRONOUS ?? 'NORMAL').toUpperCase();
  if (sync !== 'NORMAL' && sync !== 'FULL') throw new Error('OMNI_SQLITE_SYNCHRONOUS must be NORMAL or FULL');
  return {
    port,
    host,
    dataDir: resolve(env.OMNI_DATA_DIR ?? './data'),
    databaseUrl: env.OMNI_DATABASE_URL || undefined,
    // Few connections per process: every process shares PostgreSQL's cores, and each more backend costs it page
    // faults, snapshots and context switches (on 2 cores, 1 API + 1 worker: 3 each → 5,100–5,260 msg/s; 10 each
    // → 4,080–4,590).
    databasePoolSize: int(env, 'OMNI_DATABASE_POOL', 3, 1),
    databaseSchema: schemaName(env.OMNI_DATABASE_SCHEMA),
    allowPrivateUrls: bool(env, 'OMNI_MESSAGE_URLS_ALLOW_PRIVATE', false),
    redisUrl: env.OMNI_REDIS_URL || undefined,
    redisPrefix: env.OMNI_REDIS_PREFIX || 'omni',
    sweepGraceMs: int(env, 'OMNI_SWEEP_GRACE_MS', 60_000, 1000),
    publicUrl: (env.OMNI_PUBLIC_URL ?? `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    bootstrapApiKey: env.OMNI_BOOTSTRAP_API_KEY || undefined,
    secretKey: env.OMNI_SECRET_KEY || undefined,
    secretKeyPrevious: (env.OMNI_SECRET_KEY_PREVIOUS ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter((k) => k.length > 0),
    logLevel: env.OMNI_LOG_LEVEL ?? 'info',
    sqliteSynchronous: sync,
    sandboxDelayMs: int(env, 'OMNI_SANDBOX_DELAY_MS', 1000),
    sandboxUrl: env.OMNI_SANDBOX_URL || undefined,
    workers: {
      sendConcurrency: int(env, 'OMNI_SEND_CONCURRENCY', 4, 1),
      batchSize: int(env, 'OMNI_SEND_BATCH', 500, 1),
      leaseMs: int(env, 'OMNI_LEASE_MS', 30_000, 1000),
      pollMs: int(env, 'OMNI_POLL_MS', 250, 1),
    },
    retry: {
      maxAttempts: int(env, 'OMNI_MAX_ATTEMPTS', 5, 1),
      baseDelayMs: int(env, 'OMNI_RETRY_BASE_MS', 2000, 1),
      maxDelayMs: int(env, 'OMNI_RETRY_MAX_MS', 15 * 60_000, 1),
    },
    webhooks: {
      allowPrivate: bool(env, 'OMNI_WEBHOOK_ALLOW_PRIVATE', false),
      timeoutMs: int(env, 'OMNI_WEBHOOK_TIMEOUT_MS', 10_000, 1),
      concurrency: int(env, 'OMNI_WEBHOOK_CONCURRENCY', 64, 1),
      perEndpoint: int(env, 'OMNI_WEBHOOK_PER_ENDPOINT', 8, 1),
      disableAfterMs: int(env, 'OMNI_WEBHOOK_DISABLE_AFTER_MS', 5 * 86_400_000, 1),
      retryBaseMs: int(env, 'OMNI_WEBHOOK_RETRY_BASE_MS', 5_000, 1),
      retryMaxMs: int(env, 'OMNI_WEBHOOK_RETRY_MAX_MS', 10 * 3_600_000, 1),
      retryForMs: int(env, 'OMNI_WEBHOOK_RETRY_FOR_MS', 3 * 86_400_000, 1),
    },
  };
}
