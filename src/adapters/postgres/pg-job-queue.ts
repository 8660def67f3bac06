/**
 * The job queue on PostgreSQL: the `jobs` table the store writes its jobs into, in the same transaction as the
 * messages (in scale-out it is the outbox a relay forwards to a broker, and it is a complete queue by itself).
 *
 * Same lease model as the embedded queue: a claim pushes `run_at` to the end of the lease and counts the attempt,
 * an ack deletes, an unacked job comes due again. Claims of concurrent workers (any number of processes) take
 * disjoint jobs: the due rows are picked `FOR UPDATE SKIP LOCKED`, so a worker never waits for another's claim.
 *
 * Wake-ups (`onEnqueue`): PostgreSQL LISTEN/NOTIFY. Every write of jobs (enqueue, retry, and the store's accept
 * and carrier events) NOTIFYs the schema's channel in its transaction, which PostgreSQL delivers on commit to
 * every listening process; the writing process wakes its own listeners directly after the commit. The LISTEN
 * connection is opened on the first `onEnqueue`; workers keep polling, so a missed notification only delays.
 */
import { sql } from 'kysely';
import { newId } from '../../domain/ids.ts';
import type { DeadLetter, Job, JobQueue, NewJob } from '../../ports/queue.ts';
import { type DeadLetterRow, type JobRow, jobRow, toDeadLetter, toJob } from '../sql/rows.ts';
import type { PgHandle } from './database.ts';
import { insertRows, JOB_COLS } from './pg-store.ts';

export class PgJobQueue implements JobQueue {
  constructor(
    private readonly h: PgHandle,
    private readonly now: () => number = Date.now,
  ) {}

  async enqueue(jobs: readonly NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    const queues = jobs.map((j) => j.queue);
    await sql`with j as (${insertRows('jobs', JOB_COLS, jobs.map(jobRow), sql`on conflict do nothing`)})
      ${this.h.notifyJobs(queues)}`.execute(this.h.kysely);
    this.h.announce(queues);
  }

  async claim(queue: string, limit: number, leaseMs: number): Promise<Job[]> {
    if (limit <= 0) return [];
    const now = this.now();
    const { rows } = await sql<JobRow & { due: number }>`
      with c as (
        select id, run_at as due from jobs
        where queue = ${queue} and run_at <= ${now}::bigint
        order by priority, run_at
        limit ${limit}
        for update skip locked
      )
      update jobs as j set run_at = ${now + leaseMs}::bigint, attempts = j.attempts + 1
      from c where j.id = c.id
      returning j.id, j.queue, j.priority, j.run_at, j.attempts, j.org_id, j.payload, c.due`.execute(this.h.kysely);
    // RETURNING order is unspecified; hand jobs out in claim order.
    return rows.sort((a, b) => a.priority - b.priority || a.due - b.due).map(toJob);
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await sql`delete from jobs where id = any(${[...ids]}::text[])`.execute(this.h.kysely);
  }

  async retry(id: string, runAt: number, error: string): Promise<void> {
    const { rows } = await sql<{ queue: string }>`
      with u as (update jobs set run_at = ${runAt}::bigint, last_error = ${error} where id = ${id} returning queue)
      select queue, pg_notify(${this.h.channel}, ${`${this.h.origin}|`} || queue) from u`.execute(this.h.kysely);
    this.h.announce(rows.map((r) => r.queue));
  }

  async deadLetter(job: Job, error: string): Promise<void> {
    // One statement, so one transaction: the job leaves the queue exactly when its dead letter is written.
    await sql`
      with d as (delete from jobs where id = ${job.id})
      insert into dead_letters (id, job_id, org_id, queue, payload, attempts, error, created_at)
      values (${newId('dlq')}, ${job.id}, ${job.orgId}, ${job.queue}, ${job.payload}, ${job.attempts}, ${error},
        ${this.now()}::bigint)`.execute(this.h.kysely);
  }

  async listDeadLetters(orgId: string, opts: { limit: number; cursor?: string }): Promise<DeadLetter[]> {
    const { rows } = await sql<DeadLetterRow>`
      select * from dead_letters
      where org_id = ${orgId} and (${opts.cursor ?? null}::text is null or id < ${opts.cursor ?? null}::text)
      order by id desc limit ${opts.limit}`.execute(this.h.kysely);
    return rows.map(toDeadLetter);
  }

  async depth(): Promise<Record<string, number>> {
    const { rows } = await sql<{ queue: string; n: number }>`
      select queue, count(*) as n from jobs group by queue`.execute(this.h.kysely);
    return Object.fromEntries(rows.map((r) => [r.queue, r.n]));
  }

  async nextDueAt(queue: string): Promise<number | null> {
    const { rows } = await sql<{ due: number | null }>`
      select min(run_at) as due from jobs where queue = ${queue}`.execute(this.h.kysely);
    return rows[0]?.due ?? null;
  }

  onEnqueue(listener: (queue: string) => void): () => void {
    this.h.jobsWritten.on('queue', listener);
    void this.h.listen();
    return () => this.h.jobsWritten.off('queue', listener);
  }
}
