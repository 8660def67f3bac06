/**
 * The scaled-out job queue: BullMQ on Redis, driven by hand (no processor function) so it fits the pull-based
 * port.
 *
 * How the port maps onto BullMQ:
 * - enqueue: `Queue.addBulk`, the port id (encoded, BullMQ ids may not hold `:`) as BullMQ `jobId`, so BullMQ's
 *   own "a job with this id exists" check is the deduplication; `removeOnComplete`/`removeOnFail` delete a
 *   finished job so its id can be taken again. `runAt` becomes `timestamp: now, delay: runAt - now` (BullMQ's
 *   delayed set then holds exactly `runAt`); priority 0/1/2 becomes BullMQ 1/2/3 (lower runs first there too).
 * - claim: a manual `Worker` (`autorun: false`, per queue and lease length, `lockDuration = leaseMs`) takes jobs
 *   with `getNextJob(token, { block: false })`; BullMQ's lock is the lease. `attempts` is BullMQ's
 *   `attemptsStarted` (counted each time a job becomes active).
 * - lease expiry: BullMQ's stalled-job check. Locks are never renewed (`skipLockRenewal`); the check runs every
 *   `leaseCheckMs` and moves an active job whose lock has expired back to the wait list, `maxStalledCount` is
 *   effectively unlimited so it never fails a job. A job thus comes back between its lease end and about
 *   `leaseCheckMs` later (not at the instant, as in SQLite).
 * - ack: `moveToCompleted` with the claim's token (the job hash is removed); retry: `moveToDelayed(runAt,
 *   token)`; deadLetter: `moveToFailed` (removed), then a record in our own dead-letter keys.
 * - dead letters: a hash of records plus sorted-set indexes (all, per organization) whose members are the
 *   ULID record ids with score 0, so lexicographic order is time order and the id is the cursor.
 * - depth / nextDueAt: BullMQ's counts and one Lua script over the queue's lists; queue names are kept in a
 *   Redis set so any process can report every queue.
 *
 * ack/retry/deadLetter act through the token of the claim, which only the claiming instance knows: they are meant
 * to be called by the instance that claimed the job (as the services do). See the method comments for what
 * happens otherwise and after the lease ran out.
 *
 * Where it differs from the SQLite queue (left open by the port, or not to be had from BullMQ cheaply):
 * - A lapsed job returns up to `leaseCheckMs` after its lease end, onto BullMQ's wait list, which is served before
 *   every prioritized job: it is handed out next, whatever its priority.
 * - Within a priority, jobs go out in the order they became ready (a batch is added earliest runAt first; delayed
 *   jobs are promoted in due order), not strictly by runAt across batches.
 * - Ids deduplicate per queue (SQLite: across all queues).
 * - deadLetter removes, then records: a crash between the two loses the record (the job is gone either way).
 * - A claimed job's `runAt` is the one it was enqueued with (SQLite returns the lease end).
 * - `retry`'s error text is not stored.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Job as BullJob, createRedisBackend, ErrorCode, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { newId } from '../../domain/ids.ts';
import type { PubSub } from '../../ports/pubsub.ts';
import type { DeadLetter, Job, JobQueue, NewJob } from '../../ports/queue.ts';

export interface BullmqJobQueueOptions {
  /** A Redis URL (the queue opens and closes its connection) or a client to share (left open by `close`). */
  connection: string | Redis;
  /** Key prefix of everything this queue stores (BullMQ's `prefix`); default `omni`. */
  prefix?: string;
  /**
   * How often expired leases are looked for (BullMQ `stalledInterval`): a job whose lease ran out is claimable
   * again at most about this long after. Each check reads the queue's active list. Default 1000 ms.
   */
  leaseCheckMs?: number;
  /** When given, enqueues are announced here so `onEnqueue` listeners in other processes hear of them too. */
  notify?: PubSub;
  /** Errors no call can reject with (connection trouble seen by BullMQ's timers); default a process warning. */
  onError?: (err: unknown) => void;
}

/** What a BullMQ job carries: the port's fields, so a claim returns them unchanged. */
interface JobData {
  id: string;
  payload: string;
  orgId: string | null;
  priority: number;
  runAt: number;
}

interface Claim {
  job: BullJob<JobData>;
  token: string;
  queue: string;
  leaseEnd: number;
}

/** BullMQ's highest priority number (`PRIORITY_LIMIT`); ours is one less, as we shift by one. */
const MAX_PRIORITY = 2 ** 21 - 1;
/** Concurrent fetches a claim keeps in flight at most (they share one connection, so they are pipelined). */
const MAX_FETCH_BATCH = 64;
/** Kept alive in the claim table after a lease ended, so a late ack still finds its token. */
const CLAIM_GRACE_MS = 60_000;

/** BullMQ job ids may not contain `:` (nor be integers); the port's ids may. Reversible. */
export function toBullmqId(id: string): string {
  return `j${id.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A'))}`;
}

/** Errors BullMQ raises when the job is no longer ours to finish (lease lost, already gone, moved on). */
function lostLease(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === ErrorCode.JobNotExist ||
    code === ErrorCode.JobLockNotExist ||
    code === ErrorCode.JobNotInState ||
    code === ErrorCode.JobLockMismatch
  );
}

/**
 * Earliest due time in a queue: the `runAt` of the next ready job, the head of the delayed set (scores are
 * due time * 0x1000 + sequence), the lease end of each active job (now when its lock is gone).
 * KEYS: wait, prioritized, delayed, active. ARGV: job key prefix, now.
 */
const NEXT_DUE_LUA = `
local best = false
local now = tonumber(ARGV[2])
local function consider(t) if t and (not best or t < best) then best = t end end
local function runAt(jobId)
  local data = redis.call('HGET', ARGV[1] .. jobId, 'data')
  if not data then return now end
  local ok, decoded = pcall(cjson.decode, data)
  if ok and type(decoded) == 'table' and tonumber(decoded.runAt) then return tonumber(decoded.runAt) end
  return now
end
local head = redis.call('LINDEX', KEYS[1], -1)
if head then consider(runAt(head)) end
local prio = redis.call('ZRANGE', KEYS[2], 0, 0)
if prio[1] then consider(runAt(prio[1])) end
local delayed = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if delayed[2] then consider(math.floor(tonumber(delayed[2]) / 4096)) end
for _, jobId in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  local ttl = redis.call('PTTL', ARGV[1] .. jobId .. ':lock')
  if ttl < 0 then ttl = 0 end
  consider(now + ttl)
end
if best then return tostring(best) end
return false
`;

export class BullmqJobQueue implements JobQueue {
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly prefix: string;
  private readonly leaseCheckMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly notify: PubSub | undefined;
  private readonly instance = randomUUID();
  private readonly events = new EventEmitter();
  private readonly queues = new Map<string, Queue<JobData>>();
  /** Workers by `queue \n leaseMs`; promises, so concurrent first claims share one. */
  private readonly workers = new Map<string, Promise<Worker<JobData>>>();
  /** Queues whose stalled-job (expired lease) check runs in this process. */
  private readonly checked = new Set<string>();
  private readonly claims = new Map<string, Claim>();
  private lastSweep = 0;
  private readonly notifySubscription: Promise<(() => Promise<void>) | null>;
  private closed = false;

  constructor(opts: BullmqJobQueueOptions) {
    this.ownsRedis = typeof opts.connection === 'string';
    this.redis = typeof opts.connection === 'string' ? new Redis(opts.connection) : opts.connection;
    this.prefix = opts.prefix ?? 'omni';
    this.leaseCheckMs = opts.leaseCheckMs ?? 1000;
    this.onError =
      opts.onError ?? ((err) => process.emitWarning(`job queue: ${err instanceof Error ? err.message : String(err)}`));
    if (this.ownsRedis) this.redis.on('error', (err) => this.onError(err));
    this.events.setMaxListeners(0);
    this.notify = opts.notify;
    this.notifySubscription = this.notify
      ? this.notify
          .subscribe(this.notifyChannel(), (message) => {
            const space = message.indexOf(' ');
            if (space > 0 && message.slice(0, space) !== this.instance)
              this.events.emit('queue', message.slice(space + 1));
          })
          .catch((err) => {
            this.onError(err);
            return null;
          })
      : Promise.resolve(null);
  }

  /** Resolves once the connection is up and cross-process notifications (if any) are being received. */
  async ready(): Promise<void> {
    await Promise.all([this.redis.ping(), this.notifySubscription]);
  }

  async enqueue(jobs: readonly NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    for (const j of jobs) {
      if (!Number.isInteger(j.priority) || j.priority < 0 || j.priority >= MAX_PRIORITY)
        throw new RangeError(`job ${j.id}: priority must be an integer from 0 to ${MAX_PRIORITY - 1}`);
    }
    // The first job of an id wins, within the batch as against what is stored.
    const seen = new Set<string>();
    const unique = jobs.filter((j) => !seen.has(j.id) && seen.add(j.id));
    // BullMQ orders jobs of one priority by insertion (delayed ones by due time): add earlier-due jobs first.
    unique.sort((a, b) => a.runAt - b.runAt);
    const byQueue = new Map<string, NewJob[]>();
    for (const j of unique) {
      const list = byQueue.get(j.queue);
      if (list) list.push(j);
      else byQueue.set(j.queue, [j]);
    }
    const now = Date.now();
    await this.redis.sadd(this.key('queues'), ...byQueue.keys());
    await Promise.all(
      [...byQueue].map(([name, list]) =>
        this.queue(name).addBulk(
          list.map((j) => ({
            name,
            data: { id: j.id, payload: j.payload, orgId: j.orgId, priority: j.priority, runAt: j.runAt },
            opts: {
              jobId: toBullmqId(j.id),
              priority: j.priority + 1,
              timestamp: now,
              delay: Math.max(0, j.runAt - now),
              removeOnComplete: true,
              removeOnFail: true,
            },
          })),
        ),
      ),
    );
    for (const name of byQueue.keys()) this.signal(name);
  }

  async claim(queue: string, limit: number, leaseMs: number): Promise<Job[]> {
    if (limit <= 0) return [];
    const worker = await this.worker(queue, Math.max(1, Math.ceil(leaseMs)));
    this.sweepClaims();
    const claimed: Job[] = [];
    // One fetch first (an empty queue costs one round trip), then growing batches of fetches in flight.
    let batch = 1;
    while (claimed.length < limit) {
      const n = Math.min(batch, limit - claimed.length);
      const got = await Promise.all(Array.from({ length: n }, () => this.fetch(worker, queue, leaseMs)));
      for (const j of got) if (j) claimed.push(j);
      if (got.includes(null)) break;
      batch = Math.min(batch * 4, MAX_FETCH_BATCH);
    }
    return claimed;
  }

  /**
   * Done: the job is removed. A job this instance still holds the lease of completes; one whose lease ran out
   * (or that another instance claimed) is removed unless someone else holds it now, in which case that holder
   * runs it again (at-least-once delivery).
   */
  async ack(ids: readonly string[]): Promise<void> {
    await Promise.all(
      ids.map(async (id) => {
        const claim = this.claims.get(id);
        this.claims.delete(id);
        if (claim) {
          try {
            await claim.job.moveToCompleted(null, claim.token, false);
            return;
          } catch (err) {
            if (!lostLease(err)) throw err;
          }
        }
        await this.removeUnleased(id, claim?.queue);
      }),
    );
  }

  /**
   * The job leaves its lease and comes due at `runAt`. Only for a job whose lease this instance holds: once the
   * lease has run out the job is already due again (or leased by another claim), and this does nothing.
   * (`error` is not kept: BullMQ has no field for it that survives a later completion.)
   */
  async retry(id: string, runAt: number, _error: string): Promise<void> {
    const claim = this.claims.get(id);
    if (!claim) return;
    this.claims.delete(id);
    try {
      await claim.job.moveToDelayed(runAt, claim.token);
    } catch (err) {
      if (!lostLease(err)) throw err;
      return;
    }
    this.signal(claim.queue);
  }

  /**
   * The job is removed and recorded as a dead letter. Not recorded when the job is leased by another claim by
   * now (that claim decides its fate).
   */
  async deadLetter(job: Job, error: string): Promise<void> {
    const claim = this.claims.get(job.id);
    this.claims.delete(job.id);
    let removed = false;
    if (claim) {
      try {
        await claim.job.moveToFailed(new Error(error), claim.token, false);
        removed = true;
      } catch (err) {
        if (!lostLease(err)) throw err;
      }
    }
    if (!removed && !(await this.removeUnleased(job.id, claim?.queue ?? job.queue))) return;
    const record: DeadLetter = {
      id: newId('dlq'),
      jobId: job.id,
      orgId: job.orgId,
      queue: job.queue,
      payload: job.payload,
      attempts: job.attempts,
      error,
      createdAt: Date.now(),
    };
    const tx = this.redis
      .multi()
      .hset(this.key('dead'), record.id, JSON.stringify(record))
      .zadd(this.key('dead:all'), 0, record.id);
    if (record.orgId !== null) tx.zadd(this.key(`dead:org:${record.orgId}`), 0, record.id);
    await tx.exec();
  }

  async listDeadLetters(orgId: string, opts: { limit: number; cursor?: string }): Promise<DeadLetter[]> {
    if (opts.limit <= 0) return [];
    const ids = await this.redis.zrevrangebylex(
      this.key(`dead:org:${orgId}`),
      opts.cursor === undefined ? '+' : `(${opts.cursor}`,
      '-',
      'LIMIT',
      0,
      opts.limit,
    );
    if (ids.length === 0) return [];
    const records = await this.redis.hmget(this.key('dead'), ...ids);
    return records.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as DeadLetter);
  }

  async depth(): Promise<Record<string, number>> {
    const names = await this.redis.smembers(this.key('queues'));
    const counts = await Promise.all(
      names.map((name) =>
        this.queue(name).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'waiting-children'),
      ),
    );
    return Object.fromEntries(
      names.map((name, i) => [name, Object.values(counts[i] ?? {}).reduce((sum, n) => sum + n, 0)]),
    );
  }

  async nextDueAt(queue: string): Promise<number | null> {
    const q = this.queue(queue);
    const t = (await this.redis.eval(
      NEXT_DUE_LUA,
      4,
      q.toKey('wait'),
      q.toKey('prioritized'),
      q.toKey('delayed'),
      q.toKey('active'),
      q.toKey(''),
      Date.now(),
    )) as string | null;
    return t === null ? null : Number(t);
  }

  /** Jobs enqueued (or retried) through this instance, and with `notify` through any instance. */
  onEnqueue(listener: (queue: string) => void): () => void {
    this.events.on('queue', listener);
    return () => this.events.off('queue', listener);
  }

  /** Stops the lease checks and closes what this queue opened. Leases it holds run out on their own. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const unsubscribe = await this.notifySubscription;
    await unsubscribe?.();
    const workers = await Promise.allSettled(this.workers.values());
    await Promise.all(workers.map((w) => (w.status === 'fulfilled' ? w.value.close() : undefined)));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.events.removeAllListeners();
    if (this.ownsRedis) await this.redis.quit();
  }

  private key(suffix: string): string {
    // BullMQ's keys are `prefix:queue:…` and a queue name cannot be empty, so `prefix::…` is ours alone.
    return `${this.prefix}::${suffix}`;
  }

  private notifyChannel(): string {
    return `jobs-enqueued:${this.prefix}`;
  }

  private signal(queue: string): void {
    this.events.emit('queue', queue);
    this.notify?.publish(this.notifyChannel(), `${this.instance} ${queue}`).catch((err) => this.onError(err));
  }

  private queue(name: string): Queue<JobData> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue<JobData>(name, { connection: this.redis, prefix: this.prefix });
      q.on('error', (err) => this.onError(err));
      this.queues.set(name, q);
    }
    return q;
  }

  private worker(queue: string, leaseMs: number): Promise<Worker<JobData>> {
    if (this.closed) return Promise.reject(new Error('job queue is closed'));
    const key = `${queue}\n${leaseMs}`;
    let w = this.workers.get(key);
    if (!w) {
      // One stalled-job check per queue and process is enough (BullMQ also throttles it across processes).
      const checks = !this.checked.has(queue);
      this.checked.add(queue);
      w = this.startWorker(queue, leaseMs, checks);
      this.workers.set(key, w);
      w.catch(() => {
        if (this.workers.get(key) === w) this.workers.delete(key);
        if (checks) this.checked.delete(queue);
      });
    }
    return w;
  }

  private async startWorker(queue: string, leaseMs: number, checksLeases: boolean): Promise<Worker<JobData>> {
    const worker = new Worker<JobData>(
      queue,
      null,
      {
        connection: this.redis,
        prefix: this.prefix,
        autorun: false,
        lockDuration: leaseMs,
        skipLockRenewal: true,
        skipStalledCheck: !checksLeases,
        stalledInterval: this.leaseCheckMs,
        // An expired lease puts the job back, however often: giving up is the caller's decision (deadLetter).
        maxStalledCount: Number.MAX_SAFE_INTEGER,
      },
      // Jobs are only fetched without blocking: no dedicated blocking connection per worker.
      (name, opts, o) => createRedisBackend(name, opts, { ...o, withBlockingConnection: false }),
    );
    worker.on('error', (err) => this.onError(err));
    await worker.waitUntilReady();
    if (checksLeases) await worker.startStalledCheckTimer();
    return worker;
  }

  private async fetch(worker: Worker<JobData>, queue: string, leaseMs: number): Promise<Job | null> {
    const token = randomUUID();
    const job = (await worker.getNextJob(token, { block: false })) as BullJob<JobData> | undefined;
    if (!job) return null;
    const data = job.data;
    this.claims.set(data.id, { job, token, queue, leaseEnd: Date.now() + leaseMs });
    return {
      id: data.id,
      queue,
      payload: data.payload,
      orgId: data.orgId,
      priority: data.priority,
      runAt: data.runAt,
      attempts: job.attemptsStarted,
    };
  }

  /**
   * Removes the job unless a live lease holds it. True when it is gone (removed now, or not there at all). With
   * no queue known, every known queue is tried.
   */
  private async removeUnleased(id: string, queue: string | undefined): Promise<boolean> {
    const names = queue === undefined ? await this.redis.smembers(this.key('queues')) : [queue];
    const bullId = toBullmqId(id);
    let gone = true;
    for (const name of names) {
      const q = this.queue(name);
      if ((await q.remove(bullId)) === 0 && (await this.redis.exists(q.toKey(bullId))) === 1) gone = false;
    }
    return gone;
  }

  /** Forgets claims whose lease ended long ago (the caller dropped them; the lease check brought them back). */
  private sweepClaims(): void {
    const now = Date.now();
    if (now - this.lastSweep < CLAIM_GRACE_MS) return;
    this.lastSweep = now;
    for (const [id, c] of this.claims) if (c.leaseEnd + CLAIM_GRACE_MS < now) this.claims.delete(id);
  }
}
