/**
 * The embedded job queue: the `jobs` table of the SQLite database, claimed with a visibility-timeout lease
 * (a claim pushes `run_at` to the end of the lease; an ack deletes; an unacked job simply comes due again).
 */
import { newId } from '../../domain/ids.ts';
import type { DeadLetter, Job, JobQueue, NewJob } from '../../ports/queue.ts';
import { type DeadLetterRow, type JobRow, jobRow, toDeadLetter, toJob } from '../sql/rows.ts';
import { insertRows, type SqliteHandle } from './database.ts';
import { JOB_COLS } from './sqlite-store.ts';

export class SqliteJobQueue implements JobQueue {
  constructor(
    private readonly h: SqliteHandle,
    private readonly now: () => number = Date.now,
  ) {}

  async enqueue(jobs: readonly NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    this.h.db.transaction(() => insertRows(this.h, 'jobs', JOB_COLS, jobs.map(jobRow), ' ON CONFLICT DO NOTHING'))();
    for (const q of new Set(jobs.map((j) => j.queue))) this.h.jobsWritten.emit('queue', q);
  }

  async claim(queue: string, limit: number, leaseMs: number): Promise<Job[]> {
    const now = this.now();
    const rows = this.h
      .stmt(
        `UPDATE jobs SET run_at = ?, attempts = attempts + 1
         WHERE id IN (SELECT id FROM jobs WHERE queue = ? AND run_at <= ? ORDER BY priority, run_at LIMIT ?)
         RETURNING id, queue, priority, run_at, attempts, org_id, payload`,
      )
      .all(now + leaseMs, queue, now, limit) as JobRow[];
    // RETURNING order is unspecified; hand jobs out in claim order.
    return rows.sort((a, b) => a.priority - b.priority || a.run_at - b.run_at).map(toJob);
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const del = this.h.stmt('DELETE FROM jobs WHERE id = ?');
    this.h.db.transaction(() => {
      for (const id of ids) del.run(id);
    })();
  }

  async retry(id: string, runAt: number, error: string): Promise<void> {
    this.h.stmt('UPDATE jobs SET run_at = ?, last_error = ? WHERE id = ?').run(runAt, error, id);
    this.h.jobsWritten.emit('queue', '*');
  }

  async deadLetter(job: Job, error: string): Promise<void> {
    const h = this.h;
    h.db.transaction(() => {
      h.stmt('DELETE FROM jobs WHERE id = ?').run(job.id);
      h.stmt(
        'INSERT INTO dead_letters (id, job_id, org_id, queue, payload, attempts, error, created_at) VALUES (?,?,?,?,?,?,?,?)',
      ).run(newId('dlq'), job.id, job.orgId, job.queue, job.payload, job.attempts, error, this.now());
    })();
  }

  async listDeadLetters(orgId: string, opts: { limit: number; cursor?: string }): Promise<DeadLetter[]> {
    const rows = this.h
      .stmt('SELECT * FROM dead_letters WHERE org_id = ? AND id < ? ORDER BY id DESC LIMIT ?')
      .all(orgId, opts.cursor ?? '\uffff', opts.limit) as DeadLetterRow[];
    return rows.map(toDeadLetter);
  }

  async depth(): Promise<Record<string, number>> {
    const rows = this.h.stmt('SELECT queue, count(*) AS n FROM jobs GROUP BY queue').all() as {
      queue: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.queue, r.n]));
  }

  async nextDueAt(queue: string): Promise<number | null> {
    const v = this.h.stmt('SELECT min(run_at) FROM jobs WHERE queue = ?').pluck().get(queue) as number | null;
    return v ?? null;
  }

  onEnqueue(listener: (queue: string) => void): () => void {
    this.h.jobsWritten.on('queue', listener);
    return () => this.h.jobsWritten.off('queue', listener);
  }
}
