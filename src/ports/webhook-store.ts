/**
 * The outbound-webhook ports: the store of endpoints, events, deliveries and attempts, and the transport that posts
 * a signed request to a customer's URL.
 *
 * Events are an outbox. Message events are written by the database itself, in the transaction that appends to a
 * message's history (a trigger), and only for organizations that have an enabled endpoint; other events are
 * published through `publishEvents`. A fan-out turns each event into one delivery per matching endpoint; workers
 * claim due deliveries with a lease (a crashed worker's deliveries come back: at least once) and record each attempt.
 * Per-message order: of one message's unfinished deliveries to one endpoint only the earliest is `pending`; the
 * others are `waiting`, and the next one becomes `pending` when the one ahead is delivered or has failed for good.
 * Each method is one transaction.
 */
import type { MessageRecord } from './store.ts';

/** Which events of its subscribed types an endpoint receives (every condition given must hold). */
export interface WebhookFilter {
  /** Events that name a channel must name one of these. */
  channels?: string[];
  /** Message events must carry these metadata values (equality on each key). */
  metadata?: Record<string, string | number | boolean>;
}

export interface WebhookEndpointRecord {
  id: string;
  orgId: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  filter: WebhookFilter | null;
  enabled: boolean;
  /** The signing secret, sealed by the secret box. */
  sealedSecret: string;
  /** The secret rotated out, still signed with until `previousSecretExpiresAt`. */
  sealedPreviousSecret: string | null;
  previousSecretExpiresAt: number | null;
  disabledReason: string | null;
  disabledAt: number | null;
  /** Since when every delivery attempt has failed (null after a success). */
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

export interface WebhookEventRecord {
  id: number;
  orgId: string;
  type: string;
  messageId: string | null;
  /** The event's `data` as JSON; message events get theirs at fan-out (a snapshot of the message). */
  payload: string | null;
  at: number;
}

export interface NewWebhookEvent {
  orgId: string;
  type: string;
  messageId?: string | null;
  payload: string;
  at: number;
}

/** What the fan-out planner sees: undispatched events (in id order), their messages, the orgs' enabled endpoints. */
export interface FanOutInput {
  events: (WebhookEventRecord & { message: MessageRecord | undefined })[];
  endpoints: WebhookEndpointRecord[];
}

export interface FanOutPlan {
  /** Payloads to store on events that had none. */
  payloads: Map<number, string>;
  /** One delivery per (event, endpoint), in event order. */
  deliveries: { eventId: number; endpointId: string }[];
}

/** Decides the deliveries of a batch of events; runs inside the store's transaction, so it must be pure and fast. */
export type FanOutPlanner = (input: FanOutInput) => FanOutPlan;

export type DeliveryStatus = 'pending' | 'waiting' | 'delivered' | 'failed' | 'canceled';

/** A delivery leased to a worker, with what it needs to make the request. */
export interface ClaimedDelivery {
  id: number;
  endpointId: string;
  orgId: string;
  eventId: number;
  messageId: string | null;
  /** Attempts made before this one. */
  attempts: number;
  createdAt: number;
  event: { type: string; payload: string; at: number };
  endpoint: {
    url: string;
    sealedSecret: string;
    sealedPreviousSecret: string | null;
    previousSecretExpiresAt: number | null;
  };
}

export interface AttemptRecord {
  at: number;
  /** The receiver's HTTP status; null when there was no answer. */
  statusCode: number | null;
  latencyMs: number;
  /** The start of the answer's body (at most 1 KB). */
  response: string | null;
  error: string | null;
}

export interface DeliveryOutcome {
  deliveryId: number;
  endpointId: string;
  attempt: AttemptRecord;
  /** Delivered; retry at `nextAttemptAt`; or failed for good. */
  result: { kind: 'delivered' } | { kind: 'retry'; nextAttemptAt: number } | { kind: 'failed' };
}

export interface DeliveryLogEntry {
  id: number;
  endpointId: string;
  eventId: number;
  eventType: string;
  messageId: string | null;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number | null;
  createdAt: number;
  updatedAt: number;
  attemptLog: AttemptRecord[];
}

export interface ClaimOptions {
  limit: number;
  /** At most this many deliveries of one endpoint per claim. */
  perEndpoint: number;
  now: number;
  /** The lease: claimed deliveries come due again at this time unless an outcome is recorded first. */
  leaseUntil: number;
  /** Endpoints to leave out (this worker already has enough of their requests in flight). */
  skipEndpoints: readonly string[];
}

export interface WebhookStore {
  createEndpoint(endpoint: WebhookEndpointRecord): Promise<void>;
  /** Replaces an endpoint's settings, secrets and state (not its id, organization or creation time). */
  updateEndpoint(endpoint: WebhookEndpointRecord): Promise<void>;
  /** An endpoint that is not deleted. */
  getEndpoint(orgId: string, id: string): Promise<WebhookEndpointRecord | undefined>;
  /** The organization's endpoints that are not deleted, oldest first. */
  listEndpoints(orgId: string): Promise<WebhookEndpointRecord[]>;
  /** Marks it deleted and cancels its unfinished deliveries; false when there is no such endpoint. */
  deleteEndpoint(orgId: string, id: string, at: number): Promise<boolean>;
  /** Stores events of organizations that have an enabled endpoint (others are dropped); returns the new ids. */
  publishEvents(events: readonly NewWebhookEvent[]): Promise<number[]>;
  /**
   * Takes up to `limit` undispatched events in id order, creates the deliveries `plan` decides, stores the payloads
   * it built and marks the events dispatched. Returns how many events it took (0 when another process is at it).
   */
  dispatchEvents(limit: number, now: number, plan: FanOutPlanner): Promise<number>;
  claimDeliveries(opts: ClaimOptions): Promise<ClaimedDelivery[]>;
  /**
   * Records attempts and their results; a delivery settled for good lets the next `waiting` one of its message go. A
   * success clears the endpoint's `failingSince`; a failure sets it if unset.
   * Endpoints whose failures started at or before `disableFailingSince` are disabled with `disabledReason`, and
   * `disabledEvent(endpoint)` is published for each. Returns the disabled endpoints' ids.
   */
  recordDeliveryOutcomes(
    outcomes: readonly DeliveryOutcome[],
    opts: {
      now: number;
      disableFailingSince: number;
      disabledReason: string;
      disabledEvent: (endpoint: WebhookEndpointRecord) => NewWebhookEvent;
    },
  ): Promise<string[]>;
  /** Newest first, with each delivery's attempts (oldest first). `before` is a delivery id. */
  listDeliveries(
    orgId: string,
    endpointId: string,
    opts: { limit: number; before?: number; status?: DeliveryStatus },
  ): Promise<DeliveryLogEntry[]>;
  getEvent(orgId: string, id: number): Promise<WebhookEventRecord | undefined>;
  /** Dispatched events of the organization with `from <= at < to`, in id order, at most `limit`. */
  listEvents(orgId: string, opts: { from: number; to: number; limit: number }): Promise<WebhookEventRecord[]>;
  /** New deliveries of existing events to one endpoint (redelivery), due now; returns their ids. */
  createDeliveries(endpointId: string, eventIds: readonly number[], now: number): Promise<number[]>;
  /** Stores an event meant for one endpoint only (a test send), already dispatched, with its delivery. */
  createDirectedEvent(endpointId: string, event: NewWebhookEvent): Promise<{ eventId: number; deliveryId: number }>;
}

/** The answer to one webhook request (or why there was none). */
export interface WebhookResponse {
  statusCode: number | null;
  /** `Retry-After`, when the receiver sent one. */
  retryAfter: string | null;
  /** The start of the body, decoded as UTF-8, at most the transport's excerpt size. */
  body: string | null;
  latencyMs: number;
  /** Set when there was no answer: time-out, connection error, or an address the guard refused. */
  error: string | null;
}

export interface WebhookTransport {
  /** Why `url` may not receive webhooks (scheme, or a literal address in a refused range); undefined when it may. */
  refusal(url: string): string | undefined;
  /** POSTs `body` with `headers`; never throws for what the network or the receiver does. */
  post(url: string, headers: Record<string, string>, body: string): Promise<WebhookResponse>;
  close(): Promise<void>;
}
