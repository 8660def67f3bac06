/**
 * What the journey engine needs from the rest of the product, as narrow ports: sending a message, reading and
 * updating a contact, and calling a webhook. The composition root adapts the messaging pipeline, the contacts
 * service and an HTTP client to them; tests use fakes.
 */
import type { Channel } from '../domain/channels.ts';
import type { MessageStatus } from '../domain/message-status.ts';

export interface JourneySendRequest {
  orgId: string;
  contactId: string;
  channel: Channel;
  /** An explicit address; usually absent (the contact's address on the channel is used). */
  to?: string;
  body?: string;
  subject?: string;
  template?: { id: string; variables: Record<string, unknown> };
  metadata: { journeyId: string; journeyRunId: string; stepId: string };
  purpose: 'transactional' | 'marketing';
  /**
   * Derived from the run, the step, its visit and the channel leg: a repeated request with the same key must return
   * the message created the first time instead of sending another (an Idempotency-Key on the messaging pipeline).
   */
  idempotencyKey: string;
}

export interface JourneyMessaging {
  /**
   * Accepts a message for sending. Throws a DomainError: a user-class one (ValidationError: the contact has no
   * address on the channel, an unknown template, ...) makes the journey try its next channel; a retryable one
   * (ResourceError, OperationalError) retries the step with back-off.
   */
  send(request: JourneySendRequest): Promise<{ messageId: string; to?: string | null }>;
  /**
   * The current status of messages (unknown ids are left out). Read right after the engine stored the ids it sent,
   * so a status reported before the engine knew the message is not missed.
   */
  statuses(orgId: string, messageIds: readonly string[]): Promise<Map<string, MessageStatus>>;
}

export interface JourneyContact {
  id: string;
  attributes: Record<string, unknown>;
  tags: string[];
  /** Addresses by channel (phone, email, WhatsApp id, ...). */
  identifiers: Partial<Record<Channel, string>>;
  /** IANA time zone, when known. */
  timeZone: string | null;
}

export interface JourneyContactPatch {
  /** Attributes to set; a null value removes the attribute. */
  set?: Record<string, unknown>;
  addTags?: string[];
  removeTags?: string[];
}

export interface JourneyContacts {
  get(orgId: string, contactId: string): Promise<JourneyContact | undefined>;
  /** Applies the patch; throws NotFoundError when the contact is gone (erased). */
  update(orgId: string, contactId: string, patch: JourneyContactPatch): Promise<void>;
}

export interface JourneyWebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  timeoutMs: number;
  /** Same on every attempt of one step visit, so the receiver can drop repeats. */
  idempotencyKey: string;
}

export interface JourneyWebhookClient {
  /** POSTs JSON; resolves with the HTTP status, or throws when no answer came (network error, time-out). */
  post(request: JourneyWebhookRequest): Promise<{ status: number }>;
}
