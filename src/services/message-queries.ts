/** Reading messages: one with its history, or a filtered page (newest first, cursor = last id seen). */
import { NotFoundError } from '../domain/errors.ts';
import type { DeadLetter, JobQueue } from '../ports/queue.ts';
import type { HistoryEntry, MessageFilter, MessageRecord, MessageStore } from '../ports/store.ts';

export class MessageQueries {
  constructor(
    private readonly store: MessageStore,
    private readonly queue: JobQueue,
  ) {}

  async get(orgId: string, id: string): Promise<{ message: MessageRecord; history: HistoryEntry[] }> {
    const message = await this.store.getMessage(orgId, id);
    if (!message) throw new NotFoundError('message_not_found', `message '${id}' does not exist`, { field: 'id' });
    return { message, history: await this.store.getHistory(id) };
  }

  async list(orgId: string, filter: MessageFilter): Promise<{ items: MessageRecord[]; nextCursor: string | null }> {
    const items = await this.store.listMessages(orgId, { ...filter, limit: filter.limit + 1 });
    const more = items.length > filter.limit;
    if (more) items.pop();
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }

  async deadLetters(
    orgId: string,
    limit: number,
    cursor?: string,
  ): Promise<{ items: DeadLetter[]; nextCursor: string | null }> {
    const items = await this.queue.listDeadLetters(orgId, { limit: limit + 1, ...(cursor ? { cursor } : {}) });
    const more = items.length > limit;
    if (more) items.pop();
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }
}
