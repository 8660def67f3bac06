/** What operators do with journey runs: list them, read one with its step history, retry a failed one, cancel one. */
import { ConflictError, NotFoundError } from '../domain/errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { HistoryEntry, JourneyStore, RunRecord, RunStatus } from '../ports/journey-store.ts';

export interface RunPage {
  items: RunRecord[];
  nextCursor: string | null;
}

export class JourneyRuns {
  constructor(
    private readonly store: JourneyStore,
    private readonly clock: Clock,
    /** Wakes the runner's worker loop (a retried run is due at once). */
    private readonly wake: () => void = () => undefined,
  ) {}

  async list(
    orgId: string,
    journeyId: string,
    opts: { status?: RunStatus; contactId?: string; limit: number; cursor?: string },
  ): Promise<RunPage> {
    if (!(await this.store.getJourney(orgId, journeyId)))
      throw new NotFoundError('journey_not_found', `journey '${journeyId}' does not exist`, { field: 'id' });
    const items = await this.store.listRuns(orgId, {
      journeyId,
      limit: opts.limit,
      ...(opts.status ? { status: opts.status } : {}),
      ...(opts.contactId ? { contactId: opts.contactId } : {}),
      ...(opts.cursor ? { before: opts.cursor } : {}),
    });
    return { items, nextCursor: items.length === opts.limit ? (items.at(-1)?.id ?? null) : null };
  }

  async get(orgId: string, id: string): Promise<{ run: RunRecord; history: HistoryEntry[] }> {
    const run = await this.store.getRun(orgId, id);
    if (!run) throw notFound(id);
    return { run, history: await this.store.getRunHistory(id) };
  }

  async retry(orgId: string, id: string): Promise<RunRecord> {
    const out = await this.store.retryRun(orgId, id, this.clock.now());
    if (out.kind === 'not_found') throw notFound(id);
    if (out.kind === 'conflict')
      throw new ConflictError('run_not_retryable', `run '${id}' is ${out.status}; only a failed run can be retried`, {
        field: 'id',
      });
    this.wake();
    return out.run;
  }

  async cancel(orgId: string, id: string): Promise<RunRecord> {
    const out = await this.store.cancelRun(orgId, id, this.clock.now());
    if (out.kind === 'not_found') throw notFound(id);
    if (out.kind === 'conflict')
      throw new ConflictError('run_not_cancelable', `run '${id}' is ${out.status} and cannot be canceled`, {
        field: 'id',
      });
    return out.run;
  }
}

function notFound(id: string): NotFoundError {
  return new NotFoundError('run_not_found', `journey run '${id}' does not exist`, { field: 'id' });
}
