/**
 * Scale-out safety net: a job that never reached the broker, or was lost there (a broker restarted without
 * persistence), is found by what it was for and enqueued again.
 *
 * - Send jobs: a message still queued/scheduled (due) and untouched for the grace period, or sending with an
 *   expired lease. The job id deduplicates against a job still waiting, and the worker's conditional claim makes
 *   a second job harmless.
 * - Carrier-event jobs: stored events not settled within the grace period after they were received. They get
 *   the last try at matching (applied now, or dead-lettered if still no message matches them): an event that
 *   old is either lost or has had its retries. A job running twice applies nothing twice (settled events are
 *   skipped).
 */
import type { Clock } from '../ports/clock.ts';
import type { JobQueue, NewJob } from '../ports/queue.ts';
import type { MessageStore, UnsettledCarrierEvent } from '../ports/store.ts';
import { sendJob } from './accept-messages.ts';
import { carrierEventsJob, MAX_MATCH_ATTEMPTS } from './carrier-events.ts';

/** Carrier events per re-enqueued job at most. */
const EVENTS_PER_JOB = 100;

export class OutboxSweeper {
  constructor(
    private readonly store: MessageStore,
    private readonly broker: JobQueue,
    private readonly clock: Clock,
    private readonly opts: { graceMs: number; batchSize: number } = { graceMs: 60_000, batchSize: 1000 },
  ) {}

  /** Re-enqueues one batch of stale messages and one of unsettled carrier events; returns how many. */
  async runOnce(): Promise<number> {
    const now = this.clock.now();
    const before = now - this.opts.graceMs;
    const stale = await this.store.listStaleMessages(before, now, this.opts.batchSize);
    if (stale.length > 0) {
      await this.broker.enqueue(stale.map((m) => ({ ...sendJob({ ...m, createdAt: now }), runAt: now })));
    }
    const events = await this.store.listUnsettledCarrierEvents(before, this.opts.batchSize);
    if (events.length > 0) await this.broker.enqueue(lastTryJobs(events, now));
    return stale.length + events.length;
  }
}

/** Jobs for `events`, per organization, as the last try at matching them. */
function lastTryJobs(events: readonly UnsettledCarrierEvent[], now: number): NewJob[] {
  const byOrg = new Map<string, number[]>();
  for (const e of events) {
    const ids = byOrg.get(e.orgId);
    if (ids) ids.push(e.id);
    else byOrg.set(e.orgId, [e.id]);
  }
  const jobs: NewJob[] = [];
  for (const [orgId, ids] of byOrg) {
    for (let i = 0; i < ids.length; i += EVENTS_PER_JOB) {
      jobs.push(carrierEventsJob(orgId, ids.slice(i, i + EVENTS_PER_JOB), MAX_MATCH_ATTEMPTS, now));
    }
  }
  return jobs;
}
