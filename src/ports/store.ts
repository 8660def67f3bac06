/**
 * The store port: coarse, batch-shaped, atomic commands the services need. Each method is one transaction.
 * Adapters: SQLite (embedded); PostgreSQL arrives with the scale-out work behind the same contract.
 */
import type { Channel } from '../domain/channels.ts';
import type { MessageError, MessageStatus, StatusEvent } from '../domain/message-status.ts';
import type { CarrierEvent, ChannelOptions, SenderRecord } from './carrier.ts';
import type { NewJob } from './queue.ts';

export type Direction = 'outbound' | 'inbound';
/** `compliance`: the product's own answer to a keyword (STOP, HELP), which consent never holds back. */
export type MessagePurpose = 'transactional' | 'marketing' | 'compliance';

export interface MessageRecord {
  id: string;
  orgId: string;
  direction: Direction;
  channel: Channel;
  to: string;
  from: string | null;
  status: MessageStatus;
  body: string | null;
  subject: string | null;
  templateId: string | null;
  metadata: Record<string, unknown> | null;
  senderId: string | null;
  provider: string | null;
  providerMessageId: string | null;
  attempts: number;
  sendAt: number | null;
  priority: number;
  error: MessageError | null;
  cost: number | null;
  options: ChannelOptions | null;
  contactId: string | null;
  purpose: MessagePurpose | null;
  /** SMS segmentation recorded when sent. */
  segments: number | null;
  encoding: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface HistoryEntry {
  status: MessageStatus;
  at: number;
  applied: boolean;
  detail: Record<string, unknown> | null;
}

export interface NewMessage {
  id: string;
  orgId: string;
  channel: Channel;
  to: string;
  from: string | null;
  body: string | null;
  subject: string | null;
  templateId: string | null;
  metadata: Record<string, unknown> | null;
  sendAt: number | null;
  priority: number;
  createdAt: number;
  /** Channel-specific extras (media, WhatsApp template, push keys, postal address). */
  options?: ChannelOptions | null;
  /** The contact it is addressed to, when known. */
  contactId?: string | null;
  /** Transactional (default) or marketing: consent, quiet hours and frequency caps depend on it. */
  purpose?: MessagePurpose | null;
  /** Set when the request carried an Idempotency-Key. */
  idempotency?: { key: string; requestHash: string; response: string };
}

export type AcceptOutcome = { ok: true } | { ok: false; reason: 'idempotency_key_taken' };

export interface MessageFilter {
  status?: MessageStatus;
  channel?: Channel;
  direction?: Direction;
  createdFrom?: number;
  createdTo?: number;
  /** Return messages with ids lower than this (newest first). */
  before?: string;
  limit: number;
}

export type SendOutcome =
  | {
      messageId: string;
      kind: 'sent';
      senderId: string;
      provider: string;
      from: string | null;
      providerMessageId: string;
      cost: number | null;
      segments?: number | null;
      encoding?: string | null;
      at: number;
    }
  | { messageId: string; kind: 'retry'; error: MessageError; at: number; retryAt: number }
  | { messageId: string; kind: 'fail'; error: MessageError; at: number; senderId?: string; provider?: string }
  /** Compliance holds it back: scheduled again for `until`, and the attempt the claim counted is given back. */
  | { messageId: string; kind: 'defer'; at: number; until: number; reason: string }
  /** Compliance refuses it (opted out): `suppressed`, never handed to a carrier. */
  | { messageId: string; kind: 'suppress'; at: number; reason: string; code: string };

/** A sender as stored: its plain config apart from its secrets, which are sealed (encrypted) by the service. */
export interface StoredSender extends SenderRecord {
  sealedSecrets: string | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

export interface StoredCarrierEvent {
  id: number;
  senderId: string;
  orgId: string;
  event: CarrierEvent;
}

export interface CarrierEventResult {
  /** Events whose message could not be found (yet). */
  unmatched: number[];
  /** Status changes applied, for metrics. */
  applied: { messageId: string; status: MessageStatus }[];
  inbound: string[];
}

export interface StaleMessage {
  id: string;
  orgId: string;
  priority: number;
  sendAt: number | null;
}

/** A stored carrier event not settled yet (its job may have been lost). */
export interface UnsettledCarrierEvent {
  id: number;
  orgId: string;
}

export interface Template {
  id: string;
  orgId: string;
  name: string;
  /** Per-channel content: `{ sms: { body }, email: { subject, body } }`. */
  content: Partial<Record<Channel, { body: string; subject?: string }>>;
  createdAt: number;
}

export interface ApiKeyRecord {
  id: string;
  orgId: string;
  name: string;
}

export interface MessageStore {
  /**
   * Inserts messages, their first history entries and their send jobs, in one transaction. `jobsFor` is given
   * the messages that were accepted (in order; those whose idempotency key was taken are left out) and returns the
   * jobs to write with them.
   */
  acceptMessages(
    messages: readonly NewMessage[],
    jobsFor: (accepted: readonly NewMessage[]) => readonly NewJob[],
  ): Promise<AcceptOutcome[]>;
  findIdempotentResponse(orgId: string, key: string): Promise<{ requestHash: string; response: string } | undefined>;
  getMessage(orgId: string, id: string): Promise<MessageRecord | undefined>;
  getHistory(messageId: string): Promise<HistoryEntry[]>;
  listMessages(orgId: string, filter: MessageFilter): Promise<MessageRecord[]>;
  /**
   * Moves each listed message that is queued/scheduled (or stuck in `sending` with an expired lease, after a
   * crash) to `sending`, counting an attempt. Returns the claimed messages; others are skipped.
   */
  claimForSending(ids: readonly string[], now: number, leaseUntil: number): Promise<MessageRecord[]>;
  recordSendOutcomes(outcomes: readonly SendOutcome[]): Promise<void>;
  /** Applies a pipeline command (cancel, suppress, fail) to one message. */
  applyCommand(
    orgId: string,
    id: string,
    event: StatusEvent,
    at: number,
  ): Promise<{ applied: boolean; status: MessageStatus } | undefined>;
  /** Stores carrier events (deduplicated per sender by event key) with a job to process them. Returns new ids. */
  storeCarrierEvents(
    sender: SenderRecord,
    events: readonly CarrierEvent[],
    job: (ids: number[]) => NewJob,
    now: number,
  ): Promise<number[]>;
  loadCarrierEvents(ids: readonly number[]): Promise<StoredCarrierEvent[]>;
  /**
   * Applies status events to their messages and stores inbound messages, in one transaction, and marks the events
   * it applied settled in it too. Events already settled are skipped (not applied again, not reported), so a
   * repeated job is harmless; unmatched events stay unsettled.
   */
  applyCarrierEvents(
    events: readonly StoredCarrierEvent[],
    now: number,
    newInboundId: () => string,
  ): Promise<CarrierEventResult>;
  createTemplate(template: Template): Promise<void>;
  getTemplate(orgId: string, id: string): Promise<Template | undefined>;
  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  createOrganization(org: { id: string; name: string; createdAt: number }): Promise<void>;
  createApiKey(key: { id: string; orgId: string; name: string; hash: string; createdAt: number }): Promise<void>;
  countOrganizations(): Promise<number>;
  firstOrganizationId(): Promise<string | undefined>;
  createSender(sender: StoredSender): Promise<void>;
  /** Replaces a sender's settings (not its id, organization, provider or creation time). */
  updateSender(sender: StoredSender): Promise<void>;
  /** Senders of an organization that are not deleted, by priority then id. */
  listSenders(orgId: string): Promise<StoredSender[]>;
  /** A sender by id, deleted ones included (their messages' callbacks still arrive). */
  getSender(id: string): Promise<StoredSender | undefined>;
  /** The sender that last served each recipient on a channel (sticky routing). */
  getSenderAffinity(orgId: string, channel: Channel, recipients: readonly string[]): Promise<Map<string, string>>;
  setSenderAffinity(
    entries: readonly { orgId: string; channel: Channel; recipient: string; senderId: string }[],
    at: number,
  ): Promise<void>;
  countByStatus(): Promise<Record<string, number>>;
  /**
   * Outbound messages that should have moved but may have lost their job: `queued` or `scheduled` and due, not
   * updated since `updatedBefore`; or `sending` with a lease that ended before `now`. Oldest first.
   */
  listStaleMessages(updatedBefore: number, now: number, limit: number): Promise<StaleMessage[]>;
  /** Marks carrier events settled that will never be applied (no message matches them: dead-lettered). */
  settleCarrierEvents(ids: readonly number[], now: number): Promise<void>;
  /**
   * Carrier events that may have lost their job: not settled and received before `receivedBefore`. Oldest first.
   */
  listUnsettledCarrierEvents(receivedBefore: number, limit: number): Promise<UnsettledCarrierEvent[]>;
  /**
   * GDPR erasure of a contact: blanks the recipient/sender address, body, subject, metadata and options of the
   * organization's messages addressed to the contact or exchanged with one of `addresses`. Status, channel, times
   * and costs stay (anonymous counts). Returns how many messages were redacted.
   */
  redactRecipients(orgId: string, contactId: string, addresses: readonly string[], at: number): Promise<number>;
  /** True when the database answers. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
