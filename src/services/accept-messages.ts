/**
 * Accepting messages: validate, render templates, and persist each message with its first history entry and its
 * send job in one transaction. Single requests are group-committed; a batch is one transaction.
 * Idempotency-Key: the first response is stored with the message; a repeat with the same body gets it again,
 * with another body a 409.
 */
import { createHash } from 'node:crypto';
import { type Channel, validateRecipient } from '../domain/channels.ts';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { ChannelOptions } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import { type NewJob, PRIORITY_VALUE } from '../ports/queue.ts';
import type { MessagePurpose, MessageStore, NewMessage } from '../ports/store.ts';
import { GroupCommitter } from './group-commit.ts';
import { checkMessageInput, type MessageInput, MessageInputSchema } from './message-input.ts';
import type { Templates } from './templates.ts';
import { compileChecker } from './validation.ts';

export const SEND_QUEUE = 'send';
export const MAX_BATCH = 10_000;

export interface Accepted {
  id: string;
  status: 'queued' | 'scheduled';
}

export type BatchItem = Accepted | { error: { code: string; message: string; field?: string } };

const itemChecker = compileChecker<MessageInput>(MessageInputSchema);

/** Messages one send job carries at most: the queue then does one operation per batch, not one per message. */
export const SEND_JOB_MESSAGES = 50;

/** What a send job is made of: a message's id, organization (none for jobs of unknown origin), priority and timing. */
type JobSource = Pick<NewMessage, 'id' | 'priority' | 'sendAt' | 'createdAt'> & { orgId: string | null };

/** The send job of one message; its id (`send:<message id>`) makes a second enqueue of the same message a no-op. */
export function sendJob(m: JobSource): NewJob {
  return {
    id: `send:${m.id}`,
    queue: SEND_QUEUE,
    payload: m.id,
    orgId: m.orgId,
    priority: m.priority,
    runAt: m.sendAt ?? m.createdAt,
  };
}

/**
 * The send jobs of newly accepted messages: one job per run of messages that share organization, priority and
 * due time, with up to `SEND_JOB_MESSAGES` message ids (space-separated) as its payload. Messages to send now are
 * due together whatever millisecond each was built in (the job runs at the first one's), so a batch makes full
 * jobs. A job of one message is that message's own job (`sendJob`). Retries and deferrals always get a message's
 * own job.
 */
export function sendJobs(ms: readonly JobSource[], perJob = SEND_JOB_MESSAGES): NewJob[] {
  const groups = new Map<string, JobSource[]>();
  for (const m of ms) {
    const key = `${m.orgId}\u0000${m.priority}\u0000${m.sendAt ?? 'now'}`;
    const g = groups.get(key);
    if (g) g.push(m);
    else groups.set(key, [m]);
  }
  const jobs: NewJob[] = [];
  for (const g of groups.values()) {
    for (let i = 0; i < g.length; i += perJob) {
      const chunk = g.slice(i, i + perJob);
      const first = chunk[0] as JobSource;
      if (chunk.length === 1) {
        jobs.push(sendJob(first));
        continue;
      }
      jobs.push({
        ...sendJob(first),
        id: `send:${first.id}+${chunk.length}`,
        payload: chunk.map((m) => m.id).join(' '),
      });
    }
  }
  return jobs;
}

/** The message ids a send job carries. */
export function sendJobMessageIds(job: Pick<NewJob, 'payload'>): string[] {
  return job.payload.split(' ');
}

/** True for a job of several messages (see `sendJobs`); false for a message's own job. */
export function isSharedSendJob(job: Pick<NewJob, 'payload'>): boolean {
  return job.payload.includes(' ');
}

/** Finds a contact's address for a channel; throws a ValidationError naming `field` when there is none. */
export interface RecipientResolver {
  resolve(orgId: string, contactId: string, channel: Channel, to: string | null, field: string): Promise<string>;
}

export class AcceptMessages {
  private readonly group: GroupCommitter<NewMessage, boolean>;
  private readonly inflightKeys = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: MessageStore,
    private readonly templates: Templates,
    private readonly clock: Clock,
    private readonly metrics: PipelineMetrics,
    /** Resolves `contactId` to the contact's address on the channel (when contacts are enabled). */
    private readonly recipients?: RecipientResolver,
  ) {
    this.group = new GroupCommitter<NewMessage, boolean>(async (ms) => {
      const outcomes = await this.store.acceptMessages(ms, (accepted) => sendJobs(accepted));
      return outcomes.map((o) => o.ok);
    });
  }

  /** One message (already schema-checked by the caller). */
  /**
   * Accepts one message. `internal.purpose` is for the product's own messages (keyword replies): a purpose the API
   * does not accept from clients.
   */
  async acceptOne(
    orgId: string,
    input: MessageInput,
    idempotencyKey?: string,
    internal?: { purpose: MessagePurpose },
  ): Promise<Accepted> {
    if (idempotencyKey === undefined) {
      const m = await this.build(orgId, input, '', internal);
      await this.group.submit(m);
      this.metrics.messagesAccepted(m.channel, 1);
      return { id: m.id, status: m.sendAt !== null ? 'scheduled' : 'queued' };
    }
    const slot = `${orgId}\u0000${idempotencyKey}`;
    // Concurrent requests with one key are answered one after the other.
    while (this.inflightKeys.has(slot)) await this.inflightKeys.get(slot)?.catch(() => undefined);
    const work = this.acceptIdempotent(orgId, input, idempotencyKey, internal);
    this.inflightKeys.set(slot, work);
    try {
      return await work;
    } finally {
      this.inflightKeys.delete(slot);
    }
  }

  private async acceptIdempotent(
    orgId: string,
    input: MessageInput,
    key: string,
    internal?: { purpose: MessagePurpose },
  ): Promise<Accepted> {
    const requestHash = hashRequest(input);
    const replay = async (): Promise<Accepted | undefined> => {
      const stored = await this.store.findIdempotentResponse(orgId, key);
      if (!stored) return undefined;
      if (stored.requestHash !== requestHash) {
        throw new ConflictError(
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different request body',
          {
            field: 'Idempotency-Key',
          },
        );
      }
      return JSON.parse(stored.response) as Accepted;
    };
    const earlier = await replay();
    if (earlier) return earlier;
    const m = await this.build(orgId, input, '', internal);
    const response: Accepted = { id: m.id, status: m.sendAt !== null ? 'scheduled' : 'queued' };
    m.idempotency = { key, requestHash, response: JSON.stringify(response) };
    const outcome = await this.group.submit(m);
    if (!outcome) {
      // Another process took the key between our read and our write.
      const other = await replay();
      if (other) return other;
    }
    this.metrics.messagesAccepted(m.channel, 1);
    return response;
  }

  /** A batch: each item validated on its own; the valid ones are stored in one transaction. */
  async acceptBatch(orgId: string, items: readonly unknown[]): Promise<BatchItem[]> {
    const results: BatchItem[] = new Array(items.length);
    const valid: NewMessage[] = [];
    const slots: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const prefix = `messages[${i}]`;
      try {
        const input = itemChecker.check(items[i], prefix);
        const m = await this.build(orgId, input, prefix);
        valid.push(m);
        slots.push(i);
      } catch (err) {
        if (!(err instanceof DomainError) || !err.isUser) throw err;
        results[i] = { error: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) } };
      }
    }
    if (valid.length > 0) await this.store.acceptMessages(valid, (accepted) => sendJobs(accepted));
    const perChannel = new Map<Channel, number>();
    for (let j = 0; j < valid.length; j++) {
      const m = valid[j] as NewMessage;
      results[slots[j] as number] = { id: m.id, status: m.sendAt !== null ? 'scheduled' : 'queued' };
      perChannel.set(m.channel, (perChannel.get(m.channel) ?? 0) + 1);
    }
    for (const [ch, n] of perChannel) this.metrics.messagesAccepted(ch, n);
    return results;
  }

  private async build(
    orgId: string,
    input: MessageInput,
    prefix = '',
    internal?: { purpose: MessagePurpose },
  ): Promise<NewMessage> {
    const now = this.clock.now();
    const checked = checkMessageInput(input, now, prefix);
    const { sendAt } = checked;
    const channel = input.channel as Channel;
    let to = checked.to;
    if (input.contactId !== undefined) {
      const field = prefix ? `${prefix}.contactId` : 'contactId';
      if (!this.recipients) throw new ValidationError('contacts_unavailable', 'contacts are not enabled', { field });
      const resolved = await this.recipients.resolve(orgId, input.contactId, channel, to, field);
      to = validateRecipient(channel, resolved, prefix ? `${prefix}.to` : 'to');
    }
    if (to === null) throw new ValidationError('missing_field', "give 'to' or 'contactId'", { field: 'to' });
    let body = input.body ?? null;
    let subject = input.subject ?? null;
    let templateId: string | null = null;
    if (input.template) {
      templateId = input.template.id;
      try {
        const r = await this.templates.render(
          orgId,
          input.template.id,
          channel,
          input.template.variables ?? {},
          prefix,
        );
        body = r.body;
        subject = subject ?? r.subject;
      } catch (err) {
        if (err instanceof NotFoundError) {
          throw new ValidationError(err.code, err.message, { field: prefix ? `${prefix}.template.id` : 'template.id' });
        }
        throw err;
      }
    }
    return {
      id: newId('msg'),
      orgId,
      channel,
      to,
      from: input.from ?? null,
      body,
      subject,
      templateId,
      metadata: (input.metadata as Record<string, unknown> | undefined) ?? null,
      options: (input.options as ChannelOptions | undefined) ?? null,
      contactId: input.contactId ?? null,
      purpose: internal?.purpose ?? (input.purpose as MessagePurpose | undefined) ?? null,
      sendAt,
      priority: PRIORITY_VALUE[input.priority ?? 'normal'],
      createdAt: now,
    };
  }
}

/** A stable hash of a request body: key order does not matter. */
export function hashRequest(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex');
}

function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}
