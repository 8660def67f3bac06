/**
 * The carrier port: what the pipeline needs from any provider (sandbox, Twilio, Bandwidth, SMTP, ...).
 * Batch-shaped so a provider with a bulk API sends many messages in one request; per-message providers
 * simply send each request concurrently. Adapters map every provider answer into a SendResult and every
 * webhook into canonical CarrierEvents; they never touch storage.
 */
import type { Channel } from '../domain/channels.ts';
import type { MessageError } from '../domain/message-status.ts';

export interface SendRequest {
  /** Our message id; carriers that accept a client reference echo it in callbacks. */
  messageId: string;
  channel: Channel;
  to: string;
  from: string | null;
  body: string | null;
  subject: string | null;
  /** 1-based attempt number. */
  attempt: number;
}

export type SendResult =
  | { ok: true; providerMessageId: string; cost?: number | null }
  | { ok: false; retryable: boolean; error: MessageError; retryAfterMs?: number };

export type CarrierEvent =
  | {
      kind: 'status';
      /** Unique per provider event: the same callback delivered twice has the same key. */
      eventKey: string;
      providerMessageId: string | null;
      /** Our message id when the provider echoes it. */
      reference: string | null;
      status: 'sent' | 'delivered' | 'read' | 'undelivered' | 'failed';
      error?: MessageError;
      occurredAt: number;
      detail?: Record<string, unknown>;
    }
  | {
      kind: 'inbound';
      eventKey: string;
      providerMessageId: string;
      channel: Channel;
      from: string;
      to: string;
      body: string;
      occurredAt: number;
    };

export interface WebhookRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
}

/** A configured connection to one provider account (a "sender"). */
export interface Carrier {
  readonly provider: string;
  send(requests: readonly SendRequest[]): Promise<SendResult[]>;
  /** Throws AuthenticationError/ForbiddenError when the webhook is not authentic; ValidationError when malformed. */
  parseWebhook(request: WebhookRequest): CarrierEvent[];
  close?(): Promise<void>;
}

export interface SenderRecord {
  id: string;
  orgId: string;
  provider: string;
  /** Provider configuration (credentials, base URL, identities). */
  config: Record<string, unknown>;
  channels: Channel[];
  /** Default `from` identity. */
  from: string | null;
  priority: number;
}

/** Builds a Carrier for a sender; the composition root registers one factory per provider. */
export type CarrierFactory = (sender: SenderRecord, ctx: { webhookUrl: string }) => Carrier;
