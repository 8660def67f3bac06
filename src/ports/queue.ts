/**
 * The job queue port. Jobs are small (a queue name, a payload string, a priority and a due time) and are
 * delivered at least once: a claimed job is leased, and comes back when its lease runs out without an ack.
 * Embedded, the queue is a table in the same SQLite file as the messages (so a message and its job commit
 * together); scaled out, the same jobs are an outbox relayed to a broker.
 */
export type JobPriority = 'high' | 'normal' | 'low';
export const PRIORITY_VALUE: Record<JobPriority, number> = { high: 0, normal: 1, low: 2 };

export interface NewJob {
  /** Deduplication key: enqueuing a job whose id already exists does nothing. */
  id: string;
  queue: string;
  payload: string;
  orgId: string | null;
  priority: number;
  runAt: number;
}

export interface Job extends NewJob {
  /** Times this job has been claimed, this claim included. */
  attempts: number;
}

export interface DeadLetter {
  id: string;
  jobId: string;
  orgId: string | null;
  queue: string;
  payload: string;
  attempts: number;
  error: string;
  createdAt: number;
}

export interface JobQueue {
  enqueue(jobs: readonly NewJob[]): Promise<void>;
  /** Leases up to `limit` due jobs of `queue`, highest priority first, for `leaseMs`. */
  claim(queue: string, limit: number, leaseMs: number): Promise<Job[]>;
  /** Done: the job is removed. */
  ack(ids: readonly string[]): Promise<void>;
  /** Run the job again at `runAt` (its lease ends). */
  retry(id: string, runAt: number, error: string): Promise<void>;
  /** Give up: the job moves to the dead-letter list. */
  deadLetter(job: Job, error: string): Promise<void>;
  listDeadLetters(orgId: string, opts: { limit: number; cursor?: string }): Promise<DeadLetter[]>;
  /** Jobs per queue (due or not). */
  depth(): Promise<Record<string, number>>;
  /** Earliest due time of a job in `queue`, or null when empty (lets a worker sleep until then). */
  nextDueAt(queue: string): Promise<number | null>;
  /**
   * Called when jobs may have become available: enqueued in this process, and — where the adapter can hear them
   * (PostgreSQL LISTEN/NOTIFY, Redis pub/sub) — in other processes; `'*'` means "anything may be due". A hint
   * for waking workers early, never a guarantee: workers still poll. Returns an unsubscribe.
   */
  onEnqueue(listener: (queue: string) => void): () => void;
}
