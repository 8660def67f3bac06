/**
 * Scale-out: jobs are committed with their messages in the database (the outbox) and relayed to the broker
 * after commit. The relay claims outbox jobs with a lease, enqueues them on the broker under the same id (the
 * broker deduplicates), then removes them from the outbox; a crash in between re-relays, which is harmless.
 */
import type { JobQueue } from '../ports/queue.ts';

export class OutboxRelay {
  constructor(
    private readonly outbox: JobQueue,
    private readonly broker: JobQueue,
    private readonly queues: readonly string[],
    private readonly now: () => number,
    private readonly opts: { batchSize: number; leaseMs: number } = { batchSize: 500, leaseMs: 30_000 },
  ) {}

  /** Moves one batch per queue; returns how many jobs it moved. */
  async runOnce(): Promise<number> {
    let moved = 0;
    for (const queue of this.queues) {
      const jobs = await this.outbox.claim(queue, this.opts.batchSize, this.opts.leaseMs);
      if (jobs.length === 0) continue;
      // Only due jobs are claimed (a scheduled message waits in the outbox), so each is due on the broker now.
      const now = this.now();
      await this.broker.enqueue(jobs.map(({ attempts: _attempts, ...job }) => ({ ...job, runAt: now })));
      await this.outbox.ack(jobs.map((j) => j.id));
      moved += jobs.length;
    }
    return moved;
  }
}
