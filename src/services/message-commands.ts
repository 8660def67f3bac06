/** Commands on one message from the API: cancel (only before it reaches a carrier). */
import { ConflictError, NotFoundError } from '../domain/errors.ts';
import type { MessageStatus } from '../domain/message-status.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import type { MessageStore } from '../ports/store.ts';

export class MessageCommands {
  constructor(
    private readonly store: MessageStore,
    private readonly clock: Clock,
    private readonly metrics: PipelineMetrics,
  ) {}

  async cancel(orgId: string, id: string): Promise<{ id: string; status: MessageStatus }> {
    const r = await this.store.applyCommand(orgId, id, { kind: 'cancel', detail: { by: 'api' } }, this.clock.now());
    if (!r) throw new NotFoundError('message_not_found', `message '${id}' does not exist`, { field: 'id' });
    if (!r.applied) {
      throw new ConflictError(
        'message_not_cancelable',
        `message is '${r.status}'; only queued or scheduled messages can be canceled`,
        {
          details: { status: r.status },
        },
      );
    }
    this.metrics.statusChanged('canceled', 1);
    return { id, status: r.status };
  }
}
