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
  /** Channel-specific content beyond body/subject (media, WhatsApp templates, push keys, postal address...). */
  options?: ChannelOptions;
}

/** A postal address, as print-and-mail vendors take it. */
export interface PostalAddress {
  name: string;
  company?: string;
  line1: string;
  line2?: string;
  city: string;
  state?: string;
  postalCode: string;
  /** ISO 3166-1 alpha-2. */
  country: string;
}

/** Per-channel extras of a message; each adapter reads the part for its channel and ignores the rest. */
export interface ChannelOptions {
  /** Public URLs of media (MMS, WhatsApp image/document, email attachments). */
  mediaUrls?: string[];
  email?: { html?: string; replyTo?: string; cc?: string[]; bcc?: string[] };
  whatsapp?: {
    /** An approved template: name, language code, components as the Cloud API takes them. */
    template?: { name: string; language: string; components?: Record<string, unknown>[] };
    /** An interactive message (reply buttons, list) in the Cloud API's `interactive` shape. */
    interactive?: Record<string, unknown>;
    /** Reply to a previous message (its provider id). */
    replyTo?: string;
  };
  /** Web Push: the subscription keys of the endpoint in `to`, and notification extras. */
  push?: {
    keys: { p256dh: string; auth: string };
    title?: string;
    data?: Record<string, unknown>;
    ttlSeconds?: number;
    urgency?: 'very-low' | 'low' | 'normal' | 'high';
    topic?: string;
  };
  /** Voice: text-to-speech settings for the text in `body`. */
  voice?: { language?: string; voice?: string; loop?: number };
  /** Print: the recipient's postal address (and an optional return address; the sender's is the default). */
  print?: { to: PostalAddress; from?: PostalAddress; color?: boolean; doubleSided?: boolean };
}

/**
 * The error code of a push send the push service refused because the subscription no longer exists (404/410):
 * the product forgets that subscription, so nothing is addressed to it again.
 */
export const PUSH_SUBSCRIPTION_GONE = 'push_subscription_gone';

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
      /** Media URLs, a button payload, a location... as the provider sent them. */
      detail?: Record<string, unknown>;
    };

/** What to answer a webhook request with, when the provider expects something other than our JSON. */
export interface WebhookAnswer {
  status: number;
  contentType: string;
  body: string;
}

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
  /**
   * Verifies and parses a webhook (POST). Throws AuthenticationError/ForbiddenError when it is not authentic
   * (nothing is stored then), ValidationError when malformed. Events the product does not track are dropped.
   */
  parseWebhook(request: WebhookRequest): CarrierEvent[];
  /** The body to answer an accepted webhook with (e.g. empty TwiML); default is JSON `{received}`. */
  readonly webhookAnswer?: WebhookAnswer;
  /**
   * A provider's subscription handshake on GET (WhatsApp's `hub.challenge`). Returns the answer, or throws
   * ForbiddenError when the verify token does not match. Adapters without a handshake leave it out.
   */
  verifyHandshake?(request: WebhookRequest): WebhookAnswer;
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
  /** Routing order within a channel: lower first. */
  priority: number;
  name?: string | null;
  /** Messages per second this sender may send (never exceeded in any one-second window). */
  rateLimitPerSecond?: number | null;
  /** Messages per second shared by every sender on the same provider account (same credentials). */
  accountRateLimitPerSecond?: number | null;
  /** Price of one message (one SMS segment) on this sender, used when the provider reports no cost. */
  costPerMessage?: number | null;
  /** Identities (numbers, short codes, addresses, WhatsApp phone-number ids) this sender may send from. */
  identities?: string[];
  /** ISO 3166-1 alpha-2 countries this sender serves for phone channels; empty or absent means all. */
  countries?: string[];
  enabled?: boolean;
}

/** What a carrier is built with besides its sender. */
export interface CarrierContext {
  /** Where the provider posts this sender's callbacks. */
  webhookUrl: string;
  /**
   * URLs taken from messages (email attachments the carrier fetches, Web Push endpoints it posts to) may point at
   * loopback and private networks (development, tests, trusted networks). Default: refused, like outbound webhooks.
   */
  allowPrivateUrls?: boolean;
}

/** Builds a Carrier for a sender; the composition root registers one factory per provider. */
export type CarrierFactory = (sender: SenderRecord, ctx: CarrierContext) => Carrier;

/** What the product knows of a provider: its channels, the shape of a sender's config, and its factory. */
export interface ProviderDefinition {
  /** The provider id used in sender records and webhook URLs (`twilio`, `bandwidth`, ...). */
  id: string;
  displayName: string;
  channels: readonly Channel[];
  /** JSON Schema (draft-07) of a sender's `config`: credentials, identities, base URLs. */
  configSchema: Record<string, unknown>;
  /** Top-level config fields that are secrets: encrypted at rest, never returned by the API. */
  secretFields: readonly string[];
  create: CarrierFactory;
}
