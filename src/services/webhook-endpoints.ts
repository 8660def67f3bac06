/**
 * Webhook endpoints: where an organization wants its events posted, which types, an optional filter, and the
 * signing secret (shown once, at creation and at each rotation; sealed at rest). Also the endpoint's delivery log,
 * redelivery of one event or of a time range, and a test send.
 *
 * Filter: `{channels?: [...], metadata?: {key: value}}`. An event that names a channel (message and contact events)
 * must name one of `channels`; a message event must carry every `metadata` value given (equality, key by key).
 * Conditions an event has no field for do not apply to it.
 */
import { randomBytes } from 'node:crypto';
import { CHANNELS, isChannel } from '../domain/channels.ts';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { formatWebhookSecret, parseWebhookEventId, SECRET_BYTES, webhookEventId } from '../domain/standard-webhooks.ts';
import type { Clock } from '../ports/clock.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type {
  AttemptRecord,
  DeliveryLogEntry,
  DeliveryStatus,
  WebhookEndpointRecord,
  WebhookFilter,
  WebhookStore,
  WebhookTransport,
} from '../ports/webhook-store.ts';

/** Event types an endpoint may subscribe to. */
export const WEBHOOK_EVENT_TYPES = [
  'message.queued',
  'message.sent',
  'message.delivered',
  'message.read',
  'message.failed',
  'message.undelivered',
  'message.suppressed',
  'message.canceled',
  'message.inbound',
  'contact.opted_out',
  'contact.opted_in',
  'contact.consent_changed',
  'endpoint.disabled',
] as const;
/** Sent to one endpoint on request (`POST /v1/webhook-endpoints/{id}/test`); not subscribable. */
export const TEST_EVENT_TYPE = 'webhook.test';

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);
/** Largest time range a single redelivery request may replay. */
export const MAX_REDELIVERY = 10_000;
const DEFAULT_OVERLAP_SECONDS = 24 * 3600;

/** Whether an endpoint receives an event of `type` whose data is `data`. */
export function endpointWants(endpoint: WebhookEndpointRecord, type: string, data: unknown): boolean {
  if (!endpoint.eventTypes.includes(type)) return false;
  const f = endpoint.filter;
  if (!f) return true;
  const d = (data !== null && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  if (f.channels && typeof d.channel === 'string' && !f.channels.includes(d.channel)) return false;
  if (f.metadata && type.startsWith('message.')) {
    const meta = (d.metadata !== null && typeof d.metadata === 'object' ? d.metadata : {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(f.metadata)) if (meta[k] !== v) return false;
  }
  return true;
}

export interface EndpointInput {
  url: string;
  eventTypes: string[];
  filter?: WebhookFilter | null;
  description?: string | null;
  enabled?: boolean;
}

export type EndpointPatch = Partial<EndpointInput>;

export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  filter: WebhookFilter | null;
  enabled: boolean;
  disabledReason: string | null;
  disabledAt: string | null;
  /** Until when the secret rotated out is still signed with. */
  previousSecretExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface AttemptView {
  at: string;
  statusCode: number | null;
  latencyMs: number;
  response: string | null;
  error: string | null;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  messageId: string | null;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
  attemptLog: AttemptView[];
}

export type RedeliverInput = { eventId: string } | { from: string; to: string };

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
const DELIVERY_PREFIX = 'whd_';

/** An endpoint id: newId's ULID under the endpoint prefix `whk_`. */
function newEndpointId(): string {
  return `whk_${newId('evt').slice('evt_'.length)}`;
}

export class WebhookEndpoints {
  constructor(
    private readonly store: WebhookStore,
    private readonly secrets: SecretBox,
    private readonly transport: Pick<WebhookTransport, 'refusal'>,
    private readonly clock: Clock,
    private readonly random: (bytes: number) => Uint8Array = randomBytes,
  ) {}

  async create(orgId: string, input: EndpointInput): Promise<EndpointView & { secret: string }> {
    const now = this.clock.now();
    const secret = this.newSecret();
    const endpoint: WebhookEndpointRecord = {
      id: newEndpointId(),
      orgId,
      url: this.checkUrl(input.url),
      description: input.description ?? null,
      eventTypes: checkEventTypes(input.eventTypes),
      filter: checkFilter(input.filter ?? null),
      enabled: input.enabled ?? true,
      sealedSecret: this.secrets.seal(secret),
      sealedPreviousSecret: null,
      previousSecretExpiresAt: null,
      disabledReason: null,
      disabledAt: null,
      failingSince: null,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
    await this.store.createEndpoint(endpoint);
    return { ...present(endpoint), secret };
  }

  async list(orgId: string): Promise<EndpointView[]> {
    return (await this.store.listEndpoints(orgId)).map(present);
  }

  async get(orgId: string, id: string): Promise<EndpointView> {
    return present(await this.find(orgId, id));
  }

  /** Changes settings; enabling a disabled endpoint clears why it was disabled and its failure streak. */
  async update(orgId: string, id: string, patch: EndpointPatch): Promise<EndpointView> {
    const current = await this.find(orgId, id);
    const now = Math.max(this.clock.now(), current.updatedAt + 1);
    const reenabled = patch.enabled === true && !current.enabled;
    const next: WebhookEndpointRecord = {
      ...current,
      ...(patch.url !== undefined ? { url: this.checkUrl(patch.url) } : {}),
      ...(patch.eventTypes !== undefined ? { eventTypes: checkEventTypes(patch.eventTypes) } : {}),
      ...(patch.filter !== undefined ? { filter: checkFilter(patch.filter) } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      ...(reenabled ? { disabledReason: null, disabledAt: null, failingSince: null } : {}),
      updatedAt: now,
    };
    await this.store.updateEndpoint(next);
    return present(next);
  }

  async remove(orgId: string, id: string): Promise<void> {
    if (!(await this.store.deleteEndpoint(orgId, id, this.clock.now()))) throw notFound(id);
  }

  /**
   * A new signing secret, returned once. The old one is still signed with for `overlapSeconds` (default one day),
   * so receivers can switch over without dropping a request; 0 retires it at once.
   */
  async rotateSecret(
    orgId: string,
    id: string,
    overlapSeconds = DEFAULT_OVERLAP_SECONDS,
  ): Promise<{ secret: string; previousSecretExpiresAt: string | null }> {
    const current = await this.find(orgId, id);
    const now = Math.max(this.clock.now(), current.updatedAt + 1);
    const secret = this.newSecret();
    const expires = overlapSeconds > 0 ? now + overlapSeconds * 1000 : null;
    await this.store.updateEndpoint({
      ...current,
      sealedSecret: this.secrets.seal(secret),
      sealedPreviousSecret: expires === null ? null : current.sealedSecret,
      previousSecretExpiresAt: expires,
      updatedAt: now,
    });
    return { secret, previousSecretExpiresAt: iso(expires) };
  }

  /** The delivery log, newest first; `cursor` is the `nextCursor` of the previous page. */
  async deliveries(
    orgId: string,
    id: string,
    opts: { limit: number; cursor?: string; status?: DeliveryStatus },
  ): Promise<{ items: DeliveryView[]; nextCursor: string | null }> {
    await this.find(orgId, id);
    let before: number | undefined;
    if (opts.cursor !== undefined) {
      before = opts.cursor.startsWith(DELIVERY_PREFIX) ? Number(opts.cursor.slice(DELIVERY_PREFIX.length)) : Number.NaN;
      if (!Number.isSafeInteger(before) || before < 1)
        throw new ValidationError('invalid_cursor', "'cursor' must be a nextCursor this endpoint returned", {
          field: 'cursor',
        });
    }
    const rows = await this.store.listDeliveries(orgId, id, {
      limit: opts.limit + 1,
      ...(before !== undefined ? { before } : {}),
      ...(opts.status ? { status: opts.status } : {}),
    });
    const more = rows.length > opts.limit;
    if (more) rows.pop();
    const items = rows.map(presentDelivery);
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }

  /** Delivers one event again, or every event of a time range the endpoint is subscribed to (and its filter takes). */
  async redeliver(orgId: string, id: string, input: RedeliverInput): Promise<{ redelivered: number }> {
    const endpoint = await this.find(orgId, id);
    const now = this.clock.now();
    if ('eventId' in input) {
      const n = parseWebhookEventId(input.eventId);
      const event = n === undefined ? undefined : await this.store.getEvent(orgId, n);
      if (!event)
        throw new NotFoundError('webhook_event_not_found', `event '${input.eventId}' does not exist`, {
          field: 'eventId',
        });
      if (event.payload === null)
        throw new ConflictError(
          'webhook_event_pending',
          `event '${input.eventId}' has not been dispatched yet; it will be delivered shortly`,
          { field: 'eventId' },
        );
      const ids = await this.store.createDeliveries(endpoint.id, [event.id], now);
      return { redelivered: ids.length };
    }
    const from = parseTime(input.from, 'from');
    const to = parseTime(input.to, 'to');
    if (to <= from) throw new ValidationError('invalid_time_range', "'to' must be later than 'from'", { field: 'to' });
    const events = await this.store.listEvents(orgId, { from, to, limit: MAX_REDELIVERY + 1 });
    if (events.length > MAX_REDELIVERY)
      throw new ValidationError(
        'too_many_events',
        `more than ${MAX_REDELIVERY} events in that range; redeliver it in smaller ranges`,
        { field: 'from' },
      );
    const wanted = events.filter((e) => endpointWants(endpoint, e.type, JSON.parse(e.payload ?? 'null')));
    const ids = await this.store.createDeliveries(
      endpoint.id,
      wanted.map((e) => e.id),
      now,
    );
    return { redelivered: ids.length };
  }

  /** Sends a `webhook.test` event to this endpoint only. */
  async test(orgId: string, id: string): Promise<{ eventId: string; deliveryId: string }> {
    const endpoint = await this.find(orgId, id);
    if (!endpoint.enabled)
      throw new ConflictError('webhook_endpoint_disabled', `endpoint '${id}' is disabled; enable it first`, {
        field: 'id',
      });
    const now = this.clock.now();
    const r = await this.store.createDirectedEvent(endpoint.id, {
      orgId,
      type: TEST_EVENT_TYPE,
      payload: JSON.stringify({ endpointId: endpoint.id, message: 'A test event from Omnichannel.' }),
      at: now,
    });
    return { eventId: webhookEventId(r.eventId), deliveryId: `${DELIVERY_PREFIX}${r.deliveryId}` };
  }

  private async find(orgId: string, id: string): Promise<WebhookEndpointRecord> {
    const e = await this.store.getEndpoint(orgId, id);
    if (!e) throw notFound(id);
    return e;
  }

  private newSecret(): string {
    return formatWebhookSecret(this.random(SECRET_BYTES));
  }

  private checkUrl(url: string): string {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ValidationError('invalid_webhook_url', "'url' is not a valid URL", { field: 'url' });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new ValidationError('invalid_webhook_url', "'url' must be an http or https URL", { field: 'url' });
    const refused = this.transport.refusal(parsed.href);
    if (refused) throw new ValidationError('webhook_url_not_allowed', `'url' ${refused}`, { field: 'url' });
    return parsed.href;
  }
}

function notFound(id: string): NotFoundError {
  return new NotFoundError('webhook_endpoint_not_found', `webhook endpoint '${id}' does not exist`, { field: 'id' });
}

function checkEventTypes(types: string[]): string[] {
  types.forEach((t, i) => {
    if (!EVENT_TYPE_SET.has(t))
      throw new ValidationError(
        'unknown_event_type',
        `'${t}' is not an event type; use any of: ${WEBHOOK_EVENT_TYPES.join(', ')}`,
        { field: `eventTypes[${i}]` },
      );
  });
  return [...new Set(types)];
}

function checkFilter(filter: WebhookFilter | null): WebhookFilter | null {
  if (filter === null) return null;
  filter.channels?.forEach((c, i) => {
    if (!isChannel(c))
      throw new ValidationError('unknown_channel', `'${c}' is not a channel; use one of: ${CHANNELS.join(', ')}`, {
        field: `filter.channels[${i}]`,
      });
  });
  const out: WebhookFilter = {};
  if (filter.channels) out.channels = [...new Set(filter.channels)];
  if (filter.metadata && Object.keys(filter.metadata).length > 0) out.metadata = filter.metadata;
  return Object.keys(out).length > 0 ? out : null;
}

function parseTime(value: string, field: string): number {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new ValidationError('invalid_date', `'${field}' must be an ISO-8601 date-time`, { field });
  return t;
}

function present(e: WebhookEndpointRecord): EndpointView {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    eventTypes: e.eventTypes,
    filter: e.filter,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    disabledAt: iso(e.disabledAt),
    previousSecretExpiresAt: e.sealedPreviousSecret === null ? null : iso(e.previousSecretExpiresAt),
    createdAt: iso(e.createdAt) as string,
    updatedAt: iso(e.updatedAt) as string,
  };
}

function presentAttempt(a: AttemptRecord): AttemptView {
  return {
    at: iso(a.at) as string,
    statusCode: a.statusCode,
    latencyMs: a.latencyMs,
    response: a.response,
    error: a.error,
  };
}

function presentDelivery(d: DeliveryLogEntry): DeliveryView {
  return {
    id: `${DELIVERY_PREFIX}${d.id}`,
    eventId: webhookEventId(d.eventId),
    eventType: d.eventType,
    messageId: d.messageId,
    status: d.status,
    attempts: d.attempts,
    nextAttemptAt: iso(d.nextAttemptAt),
    createdAt: iso(d.createdAt) as string,
    updatedAt: iso(d.updatedAt) as string,
    attemptLog: d.attemptLog.map(presentAttempt),
  };
}
