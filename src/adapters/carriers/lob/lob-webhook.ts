/**
 * Lob webhooks: signature check and event parsing.
 *
 * Lob POSTs the whole event object as JSON (`Content-Type: application/json`) to every URL subscribed to the
 * event type in that environment (Help Center "Using webhooks"; API reference "Webhooks" and "Events").
 * Each delivery carries `Lob-Signature` and `Lob-Signature-Timestamp`: the signature is the hex HMAC-SHA256,
 * keyed with the webhook's secret, of the timestamp, a `.`, and the raw body (Help Center "Using webhooks",
 * securing your endpoint). The timestamp is epoch milliseconds; one in seconds is accepted too. Deliveries
 * older or newer than five minutes are refused, so a captured request cannot be replayed later.
 *
 * An event is `{ id: "evt_...", body: <the letter as it was>, reference_id, event_type: { id, resource, ... },
 * date_created, object: "event" }` (lob/lob-openapi `resources/events/models/events.yml`). Our message id
 * comes back in `body.metadata.omni_message_id`, which the adapter sets on every letter.
 */
import { createHmac } from 'node:crypto';
import { AuthenticationError, ValidationError } from '../../../domain/errors.ts';
import type { MessageError } from '../../../domain/message-status.ts';
import type { CarrierEvent, WebhookRequest } from '../../../ports/carrier.ts';
import { headerValue, isRecord, parseJsonBody, safeEqual } from '../carrier-support.ts';

export const LOB_SIGNATURE_HEADER = 'Lob-Signature';
export const LOB_TIMESTAMP_HEADER = 'Lob-Signature-Timestamp';
/** How far a delivery's timestamp may be from our clock. */
export const LOB_SIGNATURE_TOLERANCE_MS = 5 * 60_000;
/** The metadata key that carries our message id on each letter. */
export const LOB_REFERENCE_METADATA_KEY = 'omni_message_id';

/** The hex HMAC-SHA256 of `timestamp + "." + body` under the webhook secret. */
export function lobSignature(secret: string, timestamp: string, rawBody: Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex');
}

/** A `Lob-Signature-Timestamp` value as epoch milliseconds (Lob sends milliseconds; seconds are read too). */
export function lobTimestampMs(value: string): number | undefined {
  const trimmed = value.trim();
  if (!/^\d{1,16}$/.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return n >= 1e11 ? n : n * 1000;
}

/** Throws AuthenticationError unless the request carries a valid, fresh Lob signature. */
export function verifyLobSignature(
  request: WebhookRequest,
  secret: string,
  nowMs: number,
  toleranceMs = LOB_SIGNATURE_TOLERANCE_MS,
): void {
  const signature = headerValue(request.headers, LOB_SIGNATURE_HEADER)?.trim();
  const timestamp = headerValue(request.headers, LOB_TIMESTAMP_HEADER)?.trim();
  if (!signature || !timestamp) {
    throw new AuthenticationError(
      'webhook_signature_missing',
      `Lob webhook without ${LOB_SIGNATURE_HEADER} and ${LOB_TIMESTAMP_HEADER} headers`,
    );
  }
  const at = lobTimestampMs(timestamp);
  if (at === undefined) {
    throw new AuthenticationError('webhook_signature_invalid', `${LOB_TIMESTAMP_HEADER} is not an epoch timestamp`);
  }
  if (Math.abs(nowMs - at) > toleranceMs) {
    throw new AuthenticationError('webhook_signature_invalid', 'Lob webhook timestamp is outside the accepted window');
  }
  if (!safeEqual(signature.toLowerCase(), lobSignature(secret, timestamp, request.rawBody))) {
    throw new AuthenticationError('webhook_signature_invalid', 'Lob webhook signature does not match');
  }
}

type TrackedStatus = 'sent' | 'delivered' | 'undelivered' | 'failed';

interface EventMapping {
  status: TrackedStatus;
  /** Set for the outcomes that carry an error. */
  error?: { code: string; message: string };
}

const SENT: EventMapping = { status: 'sent' };
const DELIVERED: EventMapping = { status: 'delivered' };
const RETURNED: EventMapping = {
  status: 'undelivered',
  error: { code: 'returned_to_sender', message: 'USPS is returning the letter to the sender' },
};

/**
 * Letter event types (lob/lob-openapi `resources/events/attributes/letter_types.yml`, "Events" table) the
 * product tracks. The rest are dropped: `letter.created`, `letter.rendered_pdf`, `letter.rendered_thumbnails`,
 * `letter.billed`, `letter.viewed`, `letter.deleted` (a cancellation in the dashboard), and every
 * `letter.return_envelope.*` event (the reply envelope's travel, not our letter's).
 */
export const LOB_LETTER_EVENTS: Readonly<Record<string, EventMapping>> = {
  'letter.mailed': SENT,
  'letter.in_transit': SENT,
  'letter.in_local_area': SENT,
  'letter.processed_for_delivery': SENT,
  'letter.international_exit': SENT,
  'letter.re-routed': SENT,
  'letter.delivered': DELIVERED,
  'letter.returned_to_sender': RETURNED,
  'letter.failed': {
    status: 'failed',
    error: { code: 'letter_failed', message: 'Lob could not produce the letter' },
  },
  // Not in Lob's event-type list; mapped in case an account receives it, with the same meaning as failed.
  'letter.rejected': {
    status: 'failed',
    error: { code: 'letter_rejected', message: 'Lob rejected the letter' },
  },
  'letter.certified.mailed': SENT,
  'letter.certified.in_transit': SENT,
  'letter.certified.in_local_area': SENT,
  'letter.certified.processed_for_delivery': SENT,
  'letter.certified.re-routed': SENT,
  'letter.certified.pickup_available': SENT,
  // "Issue" scans (delayed, notice left, held...) are not outcomes by themselves; their detail is kept.
  'letter.certified.issue': SENT,
  'letter.certified.delivered': DELIVERED,
  'letter.certified.returned_to_sender': RETURNED,
};

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `Lob webhook: ${message}`);
}

/** The canonical events of one Lob webhook delivery (at most one; none for event types we do not track). */
export function parseLobEvent(rawBody: Buffer): CarrierEvent[] {
  const event = parseJsonBody(rawBody, invalidPayload);
  if (!isRecord(event)) throw invalidPayload('body must be an event object');
  const id = event.id;
  if (typeof id !== 'string' || id.length === 0) throw invalidPayload('event.id must be a non-empty string');
  const type = isRecord(event.event_type) ? event.event_type.id : event.event_type;
  if (typeof type !== 'string' || type.length === 0) throw invalidPayload('event.event_type.id must be a string');
  const mapping = LOB_LETTER_EVENTS[type];
  if (!mapping) return [];

  const letter = isRecord(event.body) ? event.body : {};
  const letterId =
    typeof letter.id === 'string' && letter.id.length > 0
      ? letter.id
      : typeof event.reference_id === 'string' && event.reference_id.length > 0
        ? event.reference_id
        : undefined;
  if (letterId === undefined) throw invalidPayload('a letter event needs body.id or reference_id');
  const createdAt = typeof event.date_created === 'string' ? Date.parse(event.date_created) : Number.NaN;
  if (Number.isNaN(createdAt)) throw invalidPayload('event.date_created must be an ISO-8601 timestamp');

  const metadata = isRecord(letter.metadata) ? letter.metadata : {};
  const reference = metadata[LOB_REFERENCE_METADATA_KEY];
  const tracking = latestTrackingEvent(letter.tracking_events);
  const detail: Record<string, unknown> = { lobEvent: type };
  if (tracking) detail.tracking = tracking;
  if (typeof letter.expected_delivery_date === 'string') detail.expectedDeliveryDate = letter.expected_delivery_date;

  let error: MessageError | undefined;
  if (mapping.error) {
    error = { code: mapping.error.code, class: 'PermanentError', message: failureMessage(letter, mapping.error) };
  }
  return [
    {
      kind: 'status',
      eventKey: id,
      providerMessageId: letterId,
      reference: typeof reference === 'string' && reference.length > 0 ? reference : null,
      status: mapping.status,
      ...(error ? { error } : {}),
      occurredAt: createdAt,
      detail,
    },
  ];
}

/** The most recent tracking event of a letter (name, location, time, certified details), if any. */
function latestTrackingEvent(value: unknown): Record<string, unknown> | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const last = value[value.length - 1];
  if (!isRecord(last)) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of ['id', 'name', 'type', 'location', 'time', 'details']) {
    if (last[key] !== undefined && last[key] !== null) out[key] = last[key];
  }
  return out;
}

/** A failed letter's `failure_reason` (letter_generated_base.yml) joined into the error message. */
function failureMessage(letter: Record<string, unknown>, fallback: { message: string }): string {
  const reason = letter.failure_reason;
  if (!isRecord(reason)) return fallback.message;
  const parts = [reason.failure_reason, reason.remediation].filter(
    (p): p is string => typeof p === 'string' && p.length > 0,
  );
  return parts.length > 0 ? `${fallback.message}: ${parts.join('. ')}` : fallback.message;
}
