/**
 * Scale-out safety net: a message whose job never reached the broker, or was lost there (a broker restarted
 * without persistence), is found by its status and age and enqueued again. The job id deduplicates against a
 * job still waiting, and the worker's conditional claim makes a second job harmless.
 */
import type { Clock } from '../ports/clock.ts';
import type { JobQueue } from '../ports/queue.ts';
import type { MessageStore } from '../ports/store.ts';
import { sendJob } from './accept-messages.ts';

export class OutboxSweeper {
  constructor(
    private readonly store: MessageStore,
    private readonly broker: JobQueue,
    private readonly clock: Clock,
    private readonly opts: { graceMs: number; batchSize: number } = { graceMs: 60_000, batchSize: 1000 },
  ) {}

  /** Re-enqueues one batch of stale messages; returns how many. */
  async runOnce(): Promise<number> {
    const now = this.clock.now();
    const stale = await this.store.listStaleMessages(now - this.opts.graceMs, now, this.opts.batchSize);
    if (stale.length === 0) return 0;
    await this.broker.enqueue(stale.map((m) => ({ ...sendJob({ ...m, createdAt: now }), runAt: now })));
    return stale.length;
  }
}
