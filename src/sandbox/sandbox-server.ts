/**
 * The sandbox carrier: a fake carrier that behaves like a real one, over real HTTP. It is mounted in the
 * product's own Fastify app but talks to the product only over HTTP: it accepts bulk sends, answers
 * synchronously per message, and later POSTs signed status / inbound callbacks to the `callbackUrl`.
 *
 * Everything lives in its own SQLite database: sends, per-reference attempt counters and the callback
 * outbox, so callbacks survive a process crash. Destination rules (the documented product contract):
 *
 * - `+12025550190` → rejected synchronously, permanent (`invalid_number`).
 * - `+12025550191` → the first attempt per reference is rejected, retryable (`carrier_unavailable`); later accepted.
 * - `+12025550192` → accepted, then `undelivered` (`unreachable_handset`).
 * - `+12025550193` → accepted, delivered, then an inbound reply `STOP`.
 * - `+12025550194` → accepted, delivered, then an inbound reply `YES`.
 * - an email address at `fail.sandbox` → accepted, then `undelivered` (`email_bounced`).
 * - anything else → accepted, then `delivered`.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { monotonicFactory } from 'ulidx';
import { Agent, request } from 'undici';
import { systemClock } from '../adapters/clock/system-clock.ts';
import type { Clock } from '../ports/clock.ts';
import { SANDBOX_SIGNATURE_HEADER, signSandboxPayload } from './signature.ts';

export const SANDBOX_NUMBERS = {
  invalidNumber: '+12025550190',
  unavailableOnce: '+12025550191',
  unreachable: '+12025550192',
  replyStop: '+12025550193',
  replyYes: '+12025550194',
} as const;
export const SANDBOX_FAIL_EMAIL_DOMAIN = 'fail.sandbox';
/** The `to` of an inbound reply when the original message had no `from`. */
export const SANDBOX_DEFAULT_FROM = '+12025550100';
export const SANDBOX_MAX_MESSAGES_PER_REQUEST = 1000;

export interface SandboxMessageInput {
  reference: string;
  channel: string;
  to: string;
  from?: string | null;
  body?: string | null;
  subject?: string | null;
}

export interface SandboxSendRequest {
  callbackUrl: string;
  messages: SandboxMessageInput[];
}

export type SandboxSendResult =
  | { reference: string; id: string; status: 'accepted' }
  | { reference: string; error: { code: string; message: string; retryable: boolean } };

export interface SandboxStatusEvent {
  type: 'message.status';
  eventId: string;
  messageId: string;
  reference: string;
  status: 'delivered' | 'undelivered' | 'failed';
  error?: { code: string; message: string };
  timestamp: string;
}

export interface SandboxInboundEvent {
  type: 'message.inbound';
  eventId: string;
  messageId: string;
  channel: string;
  from: string;
  to: string;
  body: string;
  inReplyTo: string;
  timestamp: string;
}

export type SandboxEvent = SandboxStatusEvent | SandboxInboundEvent;

export interface SandboxStats {
  /** Accepted sends (each accepted message submission, duplicates included). */
  sends: number;
  /** Accepted sends whose reference had already been accepted before. */
  duplicateSends: number;
  /** Message submissions rejected synchronously. */
  rejected: number;
  /** Callback events not yet delivered. */
  pendingCallbacks: number;
}

export interface SandboxLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SandboxServerOptions {
  dbPath: string;
  /** Delay between acceptance and the status callback (and again before an inbound reply). */
  delayMs: number;
  clock?: Clock;
  logger?: SandboxLogger;
  /** Callback requests in flight at once (default 4). */
  maxConcurrentCallbacks?: number;
  /** Outbox rows taken per dispatch round (default 500). */
  callbackBatchSize?: number;
  /** First callback retry delay (default 1 s; doubles per attempt, with jitter). */
  retryBaseMs?: number;
  /** Longest callback retry delay (default 60 s). */
  retryMaxMs?: number;
  /** Timeout of one callback request (default 10 s). */
  callbackTimeoutMs?: number;
}

/** A request the sandbox refuses as a whole (HTTP 4xx). */
export class SandboxRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode = 400,
  ) {
    super(message);
    this.name = 'SandboxRequestError';
  }
}

const SEND_BODY_SCHEMA = {
  type: 'object',
  required: ['callbackUrl', 'messages'],
  properties: {
    callbackUrl: { type: 'string', minLength: 1, maxLength: 4096 },
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: SANDBOX_MAX_MESSAGES_PER_REQUEST,
      items: {
        type: 'object',
        required: ['reference', 'channel', 'to'],
        properties: {
          reference: { type: 'string', minLength: 1, maxLength: 255 },
          channel: { type: 'string', minLength: 1, maxLength: 32 },
          to: { type: 'string', minLength: 1, maxLength: 8192 },
          from: { type: ['string', 'null'], maxLength: 8192 },
          body: { type: ['string', 'null'] },
          subject: { type: ['string', 'null'] },
        },
      },
    },
  },
} as const;

const SEND_BODY_LIMIT = 32 * 1024 * 1024;
const PHONE_REPLY_CHANNELS: ReadonlySet<string> = new Set(['sms', 'mms', 'whatsapp', 'rcs']);

type Outcome =
  | { kind: 'reject'; code: string; message: string; retryable: boolean }
  | { kind: 'deliver'; reply?: string }
  | { kind: 'undeliver'; code: string; message: string };

const DELIVER: Outcome = { kind: 'deliver' };
const REPLY_STOP: Outcome = { kind: 'deliver', reply: 'STOP' };
const REPLY_YES: Outcome = { kind: 'deliver', reply: 'YES' };
const INVALID_NUMBER: Outcome = {
  kind: 'reject',
  code: 'invalid_number',
  message: 'the destination is not a valid, reachable number',
  retryable: false,
};
const UNREACHABLE: Outcome = {
  kind: 'undeliver',
  code: 'unreachable_handset',
  message: 'the handset could not be reached',
};
const BOUNCED: Outcome = {
  kind: 'undeliver',
  code: 'email_bounced',
  message: 'the recipient mail server rejected the message',
};
const UNAVAILABLE_ERROR = {
  code: 'carrier_unavailable',
  message: 'the carrier is temporarily unavailable; try again',
  retryable: true,
} as const;

/** The outcome a destination gets (for +12025550191 the caller decides by attempt count). */
function classify(to: string): Outcome | 'unavailable_once' {
  switch (to) {
    case SANDBOX_NUMBERS.invalidNumber:
      return INVALID_NUMBER;
    case SANDBOX_NUMBERS.unavailableOnce:
      return 'unavailable_once';
    case SANDBOX_NUMBERS.unreachable:
      return UNREACHABLE;
    case SANDBOX_NUMBERS.replyStop:
      return REPLY_STOP;
    case SANDBOX_NUMBERS.replyYes:
      return REPLY_YES;
  }
  const at = to.lastIndexOf('@');
  if (at > 0 && to.slice(at + 1).toLowerCase() === SANDBOX_FAIL_EMAIL_DOMAIN) return BOUNCED;
  return DELIVER;
}

interface CallbackRow {
  id: number;
  url: string;
  token: string;
  payload: string;
  attempts: number;
}

interface CallbackGroup {
  url: string;
  token: string;
  rows: CallbackRow[];
}

/** How long past its request timeout a claimed outbox row stays invisible (covers a crash mid-request). */
const LEASE_MARGIN_MS = 5000;
/** Longest sleep of the dispatcher when nothing is due. */
const IDLE_POLL_MS = 1000;

export class SandboxServer {
  private readonly db: Database.Database;
  private readonly delayMs: number;
  private readonly clock: Clock;
  private readonly logger: SandboxLogger | undefined;
  private readonly maxConcurrent: number;
  private readonly batchSize: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly callbackTimeoutMs: number;
  private readonly ulid = monotonicFactory();

  private readonly stmts: {
    insertSend: Database.Statement;
    upsertAttempt: Database.Statement;
    markAccepted: Database.Statement;
    insertCallback: Database.Statement;
    bumpStats: Database.Statement;
    readStats: Database.Statement;
    countCallbacks: Database.Statement;
    claim: Database.Statement;
    nextDue: Database.Statement;
    deleteIds: Database.Statement;
    reschedule: Database.Statement;
    release: Database.Statement;
  };
  private readonly submitTx: (
    account: string,
    token: string,
    req: SandboxSendRequest,
    now: number,
  ) => SandboxSendResult[];

  private running = false;
  private closed = false;
  private pumping = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private agent: Agent | undefined;
  private readonly queue: CallbackGroup[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(opts: SandboxServerOptions) {
    this.delayMs = Math.max(0, Math.floor(opts.delayMs));
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger;
    this.maxConcurrent = Math.max(1, opts.maxConcurrentCallbacks ?? 4);
    this.batchSize = Math.max(1, opts.callbackBatchSize ?? 500);
    this.retryBaseMs = Math.max(1, opts.retryBaseMs ?? 1000);
    this.retryMaxMs = Math.max(this.retryBaseMs, opts.retryMaxMs ?? 60_000);
    this.callbackTimeoutMs = opts.callbackTimeoutMs ?? 10_000;

    this.db = new Database(opts.dbPath);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS sends (
        id TEXT PRIMARY KEY,
        reference TEXT NOT NULL,
        account TEXT NOT NULL,
        channel TEXT NOT NULL,
        to_addr TEXT NOT NULL,
        from_addr TEXT,
        body TEXT,
        subject TEXT,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS attempts (
        reference TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        accepted INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        url TEXT NOT NULL,
        token TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS callbacks_due_at ON callbacks (due_at);
      CREATE TABLE IF NOT EXISTS stats (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        sends INTEGER NOT NULL,
        duplicate_sends INTEGER NOT NULL,
        rejected INTEGER NOT NULL
      );
      INSERT OR IGNORE INTO stats (id, sends, duplicate_sends, rejected) VALUES (1, 0, 0, 0);
    `);

    this.stmts = {
      insertSend: this.db.prepare(
        'INSERT INTO sends (id, reference, account, channel, to_addr, from_addr, body, subject, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      upsertAttempt: this.db.prepare(
        `INSERT INTO attempts (reference, count, accepted) VALUES (?, 1, ?)
         ON CONFLICT (reference) DO UPDATE SET count = count + 1, accepted = accepted + excluded.accepted
         RETURNING count, accepted`,
      ),
      markAccepted: this.db.prepare(
        'UPDATE attempts SET accepted = accepted + 1 WHERE reference = ? RETURNING accepted',
      ),
      insertCallback: this.db.prepare('INSERT INTO callbacks (url, token, due_at, payload) VALUES (?, ?, ?, ?)'),
      bumpStats: this.db.prepare(
        'UPDATE stats SET sends = sends + ?, duplicate_sends = duplicate_sends + ?, rejected = rejected + ? WHERE id = 1',
      ),
      readStats: this.db.prepare('SELECT sends, duplicate_sends AS duplicateSends, rejected FROM stats WHERE id = 1'),
      countCallbacks: this.db.prepare('SELECT COUNT(*) AS n FROM callbacks'),
      claim: this.db.prepare(
        `UPDATE callbacks SET due_at = ?
         WHERE id IN (SELECT id FROM callbacks WHERE due_at <= ? ORDER BY due_at, id LIMIT ?)
         RETURNING id, url, token, payload, attempts`,
      ),
      nextDue: this.db.prepare('SELECT MIN(due_at) AS dueAt FROM callbacks'),
      deleteIds: this.db.prepare('DELETE FROM callbacks WHERE id IN (SELECT value FROM json_each(?))'),
      reschedule: this.db.prepare(
        `UPDATE callbacks
         SET attempts = attempts + 1,
             due_at = ? + CAST(MIN(?, ? * (1 << MIN(attempts, 30))) * ? AS INTEGER)
         WHERE id IN (SELECT value FROM json_each(?))`,
      ),
      release: this.db.prepare('UPDATE callbacks SET due_at = ? WHERE id IN (SELECT value FROM json_each(?))'),
    };

    this.submitTx = this.db.transaction((account, token, req, now) => this.submitInTx(account, token, req, now));
  }

  // ---------------------------------------------------------------- sends

  /**
   * Accepts or rejects each message (in request order) and schedules its callbacks, all in one transaction.
   * `token` is the account (and the HMAC key of its callbacks). Throws SandboxRequestError for a bad request.
   */
  submit(token: string, req: SandboxSendRequest): SandboxSendResult[] {
    if (token.length === 0) throw new SandboxRequestError('unauthorized', 'a bearer token is required', 401);
    if (!isHttpUrl(req.callbackUrl)) {
      throw new SandboxRequestError('invalid_request', 'callbackUrl must be an absolute http(s) URL');
    }
    if (req.messages.length === 0 || req.messages.length > SANDBOX_MAX_MESSAGES_PER_REQUEST) {
      throw new SandboxRequestError(
        'invalid_request',
        `messages must hold 1 to ${SANDBOX_MAX_MESSAGES_PER_REQUEST} entries`,
      );
    }
    const account = createHash('sha256').update(token).digest('hex').slice(0, 32);
    const now = this.clock.now();
    const results = this.submitTx(account, token, req, now);
    this.wake(now + this.delayMs);
    return results;
  }

  private submitInTx(account: string, token: string, req: SandboxSendRequest, now: number): SandboxSendResult[] {
    const { insertSend, upsertAttempt, markAccepted, insertCallback, bumpStats } = this.stmts;
    const url = req.callbackUrl;
    const dueAt = now + this.delayMs;
    const replyDueAt = dueAt + Math.max(this.delayMs, 1);
    const timestamp = new Date(dueAt).toISOString();
    const replyTimestamp = new Date(replyDueAt).toISOString();
    const results: SandboxSendResult[] = new Array(req.messages.length);
    let sends = 0;
    let duplicates = 0;
    let rejected = 0;

    for (let i = 0; i < req.messages.length; i++) {
      const m = req.messages[i]!;
      const reference = m.reference;
      const classified = classify(m.to);
      let outcome: Outcome;
      let priorAccepts: number;
      if (classified === 'unavailable_once') {
        const row = upsertAttempt.get(reference, 0) as { count: number; accepted: number };
        if (row.count === 1) {
          rejected++;
          results[i] = { reference, error: UNAVAILABLE_ERROR };
          continue;
        }
        priorAccepts = (markAccepted.get(reference) as { accepted: number }).accepted - 1;
        outcome = DELIVER;
      } else {
        outcome = classified;
        const isAccepted = outcome.kind === 'reject' ? 0 : 1;
        const row = upsertAttempt.get(reference, isAccepted) as { count: number; accepted: number };
        priorAccepts = row.accepted - isAccepted;
      }

      if (outcome.kind === 'reject') {
        rejected++;
        results[i] = {
          reference,
          error: { code: outcome.code, message: outcome.message, retryable: outcome.retryable },
        };
        continue;
      }

      sends++;
      if (priorAccepts > 0) duplicates++;
      const id = `sbx_${this.ulid(now)}`;
      insertSend.run(id, reference, account, m.channel, m.to, m.from ?? null, m.body ?? null, m.subject ?? null, now);
      const status: SandboxStatusEvent =
        outcome.kind === 'undeliver'
          ? {
              type: 'message.status',
              eventId: `sbxevt_${this.ulid(now)}`,
              messageId: id,
              reference,
              status: 'undelivered',
              error: { code: outcome.code, message: outcome.message },
              timestamp,
            }
          : {
              type: 'message.status',
              eventId: `sbxevt_${this.ulid(now)}`,
              messageId: id,
              reference,
              status: 'delivered',
              timestamp,
            };
      insertCallback.run(url, token, dueAt, JSON.stringify(status));
      if (outcome.kind === 'deliver' && outcome.reply !== undefined) {
        const inbound: SandboxInboundEvent = {
          type: 'message.inbound',
          eventId: `sbxevt_${this.ulid(now)}`,
          messageId: `sbx_${this.ulid(now)}`,
          channel: PHONE_REPLY_CHANNELS.has(m.channel) ? m.channel : 'sms',
          from: m.to,
          to: m.from ?? SANDBOX_DEFAULT_FROM,
          body: outcome.reply,
          inReplyTo: reference,
          timestamp: replyTimestamp,
        };
        insertCallback.run(url, token, replyDueAt, JSON.stringify(inbound));
      }
      results[i] = { reference, id, status: 'accepted' };
    }

    bumpStats.run(sends, duplicates, rejected);
    return results;
  }

  stats(): SandboxStats {
    const s = this.stmts.readStats.get() as { sends: number; duplicateSends: number; rejected: number };
    const { n } = this.stmts.countCallbacks.get() as { n: number };
    return { sends: s.sends, duplicateSends: s.duplicateSends, rejected: s.rejected, pendingCallbacks: n };
  }

  // ---------------------------------------------------------------- HTTP

  /** Adds `POST /sandbox/v1/messages` and `GET /sandbox/v1/stats` to `app`. */
  registerRoutes(app: FastifyInstance): void {
    const errorHandler = (err: FastifyError | SandboxRequestError, _req: FastifyRequest, reply: FastifyReply) => {
      if (err instanceof SandboxRequestError) {
        return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } });
      }
      const status =
        typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status >= 500) {
        this.logger?.error({ err }, 'sandbox: request failed');
        return reply.code(500).send({ error: { code: 'internal_error', message: 'internal error' } });
      }
      const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'invalid_request';
      return reply.code(status).send({ error: { code, message: err.message } });
    };

    app.post(
      '/sandbox/v1/messages',
      {
        schema: { body: SEND_BODY_SCHEMA },
        bodyLimit: SEND_BODY_LIMIT,
        errorHandler,
        onRequest: async (req, reply) => {
          if (bearerToken(req.headers.authorization) === null) {
            return reply
              .code(401)
              .header('www-authenticate', 'Bearer')
              .send({ error: { code: 'unauthorized', message: 'missing or malformed Authorization: Bearer <token>' } });
          }
        },
      },
      async (req) => {
        const token = bearerToken(req.headers.authorization) ?? '';
        return { results: this.submit(token, req.body as SandboxSendRequest) };
      },
    );

    app.get('/sandbox/v1/stats', { errorHandler }, async () => this.stats());
  }

  // ---------------------------------------------------------------- callback dispatcher

  /** Starts delivering due callbacks. Idempotent. */
  start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.agent ??= new Agent({ keepAliveTimeout: 10_000, connections: 16 });
    this.pump();
  }

  /** Stops the dispatcher and waits for callback requests in flight; undispatched claimed rows are released. */
  async stop(): Promise<void> {
    this.running = false;
    this.clearTimer();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    const queued = this.queue.splice(0).flatMap((g) => g.rows.map((r) => r.id));
    if (queued.length > 0 && !this.closed) this.stmts.release.run(this.clock.now(), JSON.stringify(queued));
    if (this.running) return; // restarted meanwhile: keep the agent
    const agent = this.agent;
    this.agent = undefined;
    await agent?.close();
  }

  /** Stops the dispatcher and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stop();
    this.closed = true;
    this.db.close();
  }

  /** Makes sure the dispatcher looks again no later than `at`. */
  private wake(at: number): void {
    if (!this.running) return;
    this.armTimer(at);
  }

  private armTimer(at: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, at - this.clock.now()),
    );
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private pump(): void {
    if (!this.running || this.pumping) return;
    this.pumping = true;
    try {
      while (this.running && this.inFlight.size < this.maxConcurrent) {
        const group = this.queue.shift();
        if (group === undefined) {
          if (!this.claimBatch()) break;
          continue;
        }
        const p: Promise<void> = this.deliver(group).finally(() => {
          this.inFlight.delete(p);
          this.pump();
        });
        this.inFlight.add(p);
      }
      if (this.running && this.queue.length === 0 && this.inFlight.size < this.maxConcurrent) {
        const { dueAt } = this.stmts.nextDue.get() as { dueAt: number | null };
        const now = this.clock.now();
        this.armTimer(dueAt === null ? now + IDLE_POLL_MS : Math.min(dueAt, now + IDLE_POLL_MS));
      }
    } catch (err) {
      this.logger?.error({ err }, 'sandbox: callback dispatcher failed');
      if (this.running) this.armTimer(this.clock.now() + IDLE_POLL_MS);
    } finally {
      this.pumping = false;
    }
  }

  /** Claims due rows (leasing them), queues them grouped by (url, token). False when nothing was due. */
  private claimBatch(): boolean {
    const now = this.clock.now();
    const rows = this.stmts.claim.all(
      now + this.callbackTimeoutMs + LEASE_MARGIN_MS,
      now,
      this.batchSize,
    ) as CallbackRow[];
    if (rows.length === 0) return false;
    rows.sort((a, b) => a.id - b.id);
    const groups = new Map<string, CallbackGroup>();
    for (const row of rows) {
      const key = `${row.url}\n${row.token}`;
      let g = groups.get(key);
      if (g === undefined) {
        g = { url: row.url, token: row.token, rows: [] };
        groups.set(key, g);
      }
      g.rows.push(row);
    }
    for (const g of groups.values()) this.queue.push(g);
    return true;
  }

  private async deliver(group: CallbackGroup): Promise<void> {
    const ids = JSON.stringify(group.rows.map((r) => r.id));
    const body = `[${group.rows.map((r) => r.payload).join(',')}]`;
    const signature = signSandboxPayload(group.token, body, Math.floor(this.clock.now() / 1000));
    let failure: Record<string, unknown>;
    try {
      const res = await request(group.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'omni-sandbox/1',
          [SANDBOX_SIGNATURE_HEADER]: signature,
        },
        body,
        headersTimeout: this.callbackTimeoutMs,
        bodyTimeout: this.callbackTimeoutMs,
        signal: AbortSignal.timeout(this.callbackTimeoutMs),
      });
      await res.body.dump().catch(() => undefined);
      if (res.statusCode >= 200 && res.statusCode < 300) {
        if (!this.closed) this.stmts.deleteIds.run(ids);
        return;
      }
      failure = { status: res.statusCode };
    } catch (err) {
      failure = { err: err instanceof Error ? err.message : String(err) };
    }
    if (this.closed) return;
    const jitter = 0.5 + Math.random() * 0.5;
    this.stmts.reschedule.run(this.clock.now(), this.retryMaxMs, this.retryBaseMs, jitter, ids);
    this.logger?.warn(
      {
        ...failure,
        url: redactUrl(group.url),
        events: group.rows.length,
        attempts: (group.rows[0]?.attempts ?? 0) + 1,
      },
      'sandbox: callback delivery failed; will retry',
    );
  }
}

/** A Fastify plugin mounting the sandbox routes of `opts.server`. */
export async function sandboxPlugin(app: FastifyInstance, opts: { server: SandboxServer }): Promise<void> {
  opts.server.registerRoutes(app);
}

function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
