/**
 * Rows of the SQL schema (src/adapters/sql/migrations.ts) and their mapping to the ports' records, shared by the
 * SQLite and PostgreSQL adapters. Timestamps and ids arrive as JS numbers from both drivers.
 */
import type { Channel } from '../../domain/channels.ts';
import type { MessageStatus } from '../../domain/message-status.ts';
import type { SenderRecord } from '../../ports/carrier.ts';
import type { DeadLetter, Job, NewJob } from '../../ports/queue.ts';
import type { MessageRecord, NewMessage } from '../../ports/store.ts';

export interface MessageRow {
  id: string;
  org_id: string;
  direction: 'outbound' | 'inbound';
  channel: Channel;
  recipient: string;
  from_address: string | null;
  status: MessageStatus;
  body: string | null;
  subject: string | null;
  template_id: string | null;
  metadata: string | null;
  sender_id: string | null;
  provider: string | null;
  provider_message_id: string | null;
  attempts: number;
  send_at: number | null;
  priority: number;
  error_code: string | null;
  error_class: string | null;
  error_message: string | null;
  cost: number | null;
  created_at: number;
  updated_at: number;
}

export function toMessage(r: MessageRow): MessageRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    direction: r.direction,
    channel: r.channel,
    to: r.recipient,
    from: r.from_address,
    status: r.status,
    body: r.body,
    subject: r.subject,
    templateId: r.template_id,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as Record<string, unknown>),
    senderId: r.sender_id,
    provider: r.provider,
    providerMessageId: r.provider_message_id,
    attempts: r.attempts,
    sendAt: r.send_at,
    priority: r.priority,
    error:
      r.error_code === null ? null : { code: r.error_code, class: r.error_class ?? '', message: r.error_message ?? '' },
    cost: r.cost,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface SenderRow {
  id: string;
  org_id: string;
  provider: string;
  config: string;
  channels: string;
  from_address: string | null;
  priority: number;
}

export function toSender(r: SenderRow): SenderRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    provider: r.provider,
    config: JSON.parse(r.config) as Record<string, unknown>,
    channels: JSON.parse(r.channels) as Channel[],
    from: r.from_address,
    priority: r.priority,
  };
}

export interface JobRow {
  id: string;
  queue: string;
  priority: number;
  run_at: number;
  attempts: number;
  org_id: string | null;
  payload: string;
}

export const toJob = (r: JobRow): Job => ({
  id: r.id,
  queue: r.queue,
  priority: r.priority,
  runAt: r.run_at,
  attempts: r.attempts,
  orgId: r.org_id,
  payload: r.payload,
});

export interface DeadLetterRow {
  id: string;
  job_id: string;
  org_id: string | null;
  queue: string;
  payload: string;
  attempts: number;
  error: string;
  created_at: number;
}

export const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  jobId: r.job_id,
  orgId: r.org_id,
  queue: r.queue,
  payload: r.payload,
  attempts: r.attempts,
  error: r.error,
  createdAt: r.created_at,
});

export function json(v: unknown): string | null {
  return v === null || v === undefined ? null : JSON.stringify(v);
}

/**
 * The insert values of a newly accepted message, in the column order both stores use: id, org_id, direction,
 * channel, recipient, from_address, status, body, subject, template_id, metadata, send_at, priority, created_at,
 * updated_at.
 */
export function outboundMessageRow(m: NewMessage): unknown[] {
  const status = m.sendAt !== null && m.sendAt > m.createdAt ? 'scheduled' : 'queued';
  return [
    m.id,
    m.orgId,
    'outbound',
    m.channel,
    m.to,
    m.from,
    status,
    m.body,
    m.subject,
    m.templateId,
    json(m.metadata),
    m.sendAt,
    m.priority,
    m.createdAt,
    m.createdAt,
  ];
}

/** The insert values of a job: id, queue, priority, run_at, org_id, payload. */
export function jobRow(j: NewJob): unknown[] {
  return [j.id, j.queue, j.priority, j.runAt, j.orgId, j.payload];
}
