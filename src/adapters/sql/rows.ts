/**
 * Rows of the SQL schema (src/adapters/sql/migrations.ts) and their mapping to the ports' records, shared by the
 * SQLite and PostgreSQL adapters. Timestamps and ids arrive as JS numbers from both drivers.
 */
import type { Channel } from '../../domain/channels.ts';
import type { MessageStatus } from '../../domain/message-status.ts';
import type { ChannelOptions } from '../../ports/carrier.ts';
import type { DeadLetter, Job, NewJob } from '../../ports/queue.ts';
import type { MessagePurpose, MessageRecord, NewMessage, StoredSender } from '../../ports/store.ts';

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
  options: string | null;
  contact_id: string | null;
  purpose: MessagePurpose | null;
  segments: number | null;
  encoding: string | null;
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
    options: r.options === null ? null : (JSON.parse(r.options) as ChannelOptions),
    contactId: r.contact_id,
    purpose: r.purpose,
    segments: r.segments,
    encoding: r.encoding,
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
  name: string | null;
  rate_limit: number | null;
  account_rate_limit: number | null;
  cost_per_message: number | null;
  identities: string | null;
  countries: string | null;
  secrets: string | null;
  enabled: number | boolean;
  created_at: number;
  updated_at: number | null;
  deleted_at: number | null;
}

export function toSender(r: SenderRow): StoredSender {
  return {
    id: r.id,
    orgId: r.org_id,
    provider: r.provider,
    config: JSON.parse(r.config) as Record<string, unknown>,
    channels: JSON.parse(r.channels) as Channel[],
    from: r.from_address,
    priority: r.priority,
    name: r.name,
    rateLimitPerSecond: r.rate_limit,
    accountRateLimitPerSecond: r.account_rate_limit,
    costPerMessage: r.cost_per_message,
    identities: r.identities === null ? [] : (JSON.parse(r.identities) as string[]),
    countries: r.countries === null ? [] : (JSON.parse(r.countries) as string[]),
    enabled: r.enabled === 1 || r.enabled === true,
    sealedSecrets: r.secrets,
    createdAt: r.created_at,
    updatedAt: r.updated_at ?? r.created_at,
    deletedAt: r.deleted_at,
  };
}

/** Sender columns written on create and update, in this order (after id, org_id, provider on create). */
export const SENDER_SETTING_COLS = [
  'config',
  'channels',
  'from_address',
  'priority',
  'name',
  'rate_limit',
  'account_rate_limit',
  'cost_per_message',
  'identities',
  'countries',
  'secrets',
  'enabled',
  'updated_at',
  'deleted_at',
] as const;

export function senderSettings(s: StoredSender): unknown[] {
  return [
    JSON.stringify(s.config),
    JSON.stringify(s.channels),
    s.from,
    s.priority,
    s.name ?? null,
    s.rateLimitPerSecond ?? null,
    s.accountRateLimitPerSecond ?? null,
    s.costPerMessage ?? null,
    JSON.stringify(s.identities ?? []),
    JSON.stringify(s.countries ?? []),
    s.sealedSecrets,
    s.enabled === false ? 0 : 1,
    s.updatedAt,
    s.deletedAt,
  ];
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

/** What an erased person's address becomes on their messages. */
export const REDACTED = '[erased]';

export function json(v: unknown): string | null {
  return v === null || v === undefined ? null : JSON.stringify(v);
}

/**
 * The insert values of a newly accepted message, in the column order both stores use: id, org_id, direction,
 * channel, recipient, from_address, status, body, subject, template_id, metadata, send_at, priority, created_at,
 * updated_at, options, contact_id, purpose.
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
    json(m.options),
    m.contactId ?? null,
    m.purpose ?? null,
  ];
}

/** The insert values of a job: id, queue, priority, run_at, org_id, payload. */
export function jobRow(j: NewJob): unknown[] {
  return [j.id, j.queue, j.priority, j.runAt, j.orgId, j.payload];
}
