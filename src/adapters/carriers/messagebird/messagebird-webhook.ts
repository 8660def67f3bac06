/**
 * MessageBird webhook requests turned into canonical carrier events: SMS status reports (delivery receipts) and
 * forwarded inbound SMS. Authentication is done by the caller (messagebird-carrier.ts); this module only reads.
 *
 * Status reports (https://developers.messagebird.com/api/sms-messaging/, "Handle a status report"; MessageBird
 * support "I am missing my delivery reports"): sent only for messages with a `reference`, by default as a GET
 * whose query holds `id, reference, recipient, status, statusDatetime` plus, when known, `statusReason`,
 * `statusErrorCode`, `mccmnc`, `ported`, `messagePartCount`, `price[amount]`, `price[currency]`. A POST with the
 * same fields form-encoded (or as JSON) is read the same way. Statuses: scheduled, sent, buffered, delivered,
 * expired, delivery_failed.
 *
 * Inbound SMS are forwarded by a number's flow ("Forward to URL"). Two field spellings are documented and both are
 * read: the SMS API's `id, originator, recipient, body, createdDatetime`, and the Flow Builder "SMS to HTTP"
 * template's `originator, payload` (+ `receiver`) as MessageBird's own customer-support guide reads them
 * (messagebirdguides/customer-support-guide). Premium-number forwards use `mid, message, receive_datetime`.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../../domain/errors.ts';
import type { CarrierEvent, WebhookRequest } from '../../../ports/carrier.ts';
import { headerValue, isRecord, parseJsonBody } from '../carrier-support.ts';

type ReportStatus = 'sent' | 'delivered' | 'undelivered';

/** MessageBird status → canonical status; `null` for statuses the product does not track. */
const STATUS_MAP: Readonly<Record<string, ReportStatus | null>> = {
  scheduled: null,
  sent: 'sent',
  // Accepted by the operator and held until the handset is reachable: still only "sent" for us.
  buffered: 'sent',
  delivered: 'delivered',
  expired: 'undelivered',
  delivery_failed: 'undelivered',
};

/** The request's fields: the query string merged with a form or JSON body (body wins). */
export function webhookFields(request: WebhookRequest): Map<string, string> {
  const fields = new Map<string, string>();
  const q = request.url.indexOf('?');
  if (q >= 0) for (const [k, v] of new URLSearchParams(request.url.slice(q + 1))) fields.set(k, v);
  if (request.rawBody.length === 0) return fields;
  const text = request.rawBody.toString('utf8');
  const type = (headerValue(request.headers, 'content-type') ?? '').toLowerCase();
  if (type.includes('json') || /^\s*\{/.test(text)) {
    const parsed = parseJsonBody(text, invalidPayload);
    if (!isRecord(parsed)) throw invalidPayload('JSON body must be an object');
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields.set(k, String(v));
      else if (isRecord(v)) {
        for (const [sub, sv] of Object.entries(v)) {
          if (typeof sv === 'string' || typeof sv === 'number') fields.set(`${k}[${sub}]`, String(sv));
        }
      }
    }
    return fields;
  }
  for (const [k, v] of new URLSearchParams(text)) fields.set(k, v);
  return fields;
}

export function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `messagebird webhook: ${message}`);
}

/** `31612345678` → `+31612345678`; alphanumeric originators are kept as they are. */
export function phoneFromMessageBird(value: string): string {
  const trimmed = value.trim();
  if (/^\+?\d{6,15}$/.test(trimmed)) return trimmed.startsWith('+') ? trimmed : `+${trimmed}`;
  return trimmed;
}

function nonEmpty(fields: Map<string, string>, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = fields.get(name);
    if (v !== undefined && v.length > 0) return v;
  }
  return undefined;
}

/** MessageBird timestamps are RFC 3339; a `+` decoded to a space by form decoding is put back. */
function parseTime(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const compact = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(value);
  const iso = compact
    ? `${compact[1]}-${compact[2]}-${compact[3]}T${compact[4]}:${compact[5]}:${compact[6]}Z`
    : value
        .trim()
        .replace(/(:\d{2}(?:\.\d+)?) (\d{2}:?\d{2})$/, '$1+$2')
        .replace(/^(\d{4}-\d{2}-\d{2}) /, '$1T');
  const at = Date.parse(iso);
  if (Number.isNaN(at)) throw invalidPayload(`'${value}' is not a timestamp`);
  return at;
}

function statusEvent(fields: Map<string, string>, status: string, now: number): CarrierEvent | null {
  if (!(status in STATUS_MAP)) return null;
  const mapped = STATUS_MAP[status];
  if (mapped === null || mapped === undefined) return null;
  const id = nonEmpty(fields, 'id');
  if (id === undefined) throw invalidPayload('status report without id');
  const recipient = nonEmpty(fields, 'recipient') ?? '';
  const statusDatetime = fields.get('statusDatetime')?.split(' ').join('+');
  const reason = nonEmpty(fields, 'statusReason');
  const errorCode = nonEmpty(fields, 'statusErrorCode');
  const detail: Record<string, unknown> = { providerStatus: status };
  if (recipient) detail.recipient = phoneFromMessageBird(recipient);
  if (reason) detail.statusReason = reason;
  if (errorCode) detail.statusErrorCode = errorCode;
  for (const key of ['mccmnc', 'ported', 'messagePartCount', 'price[amount]', 'price[currency]']) {
    const v = nonEmpty(fields, key);
    if (v !== undefined) detail[key] = v;
  }
  return {
    kind: 'status',
    eventKey: `messagebird:${id}:${recipient}:${status}:${statusDatetime ?? ''}`,
    providerMessageId: id,
    reference: nonEmpty(fields, 'reference') ?? null,
    status: mapped,
    ...(mapped === 'undelivered'
      ? {
          error: {
            code: errorCode ?? status,
            class: 'PermanentError',
            message: reason ? `MessageBird reported ${status}: ${reason}` : `MessageBird reported ${status}`,
          },
        }
      : {}),
    occurredAt: parseTime(statusDatetime, now),
    detail,
  };
}

function inboundEvent(fields: Map<string, string>, defaultTo: string | null, now: number): CarrierEvent {
  const originator = nonEmpty(fields, 'originator');
  const body = fields.get('body') ?? fields.get('payload') ?? fields.get('message');
  if (originator === undefined || body === undefined) throw invalidPayload('inbound message without originator/body');
  const to = nonEmpty(fields, 'recipient', 'receiver', 'shortcode') ?? defaultTo;
  if (to === null) throw invalidPayload('inbound message without recipient');
  const at = nonEmpty(fields, 'createdDatetime', 'receive_datetime');
  let id = nonEmpty(fields, 'id', 'mid');
  if (id === undefined) {
    // Without an id, the forwarded fields themselves identify the message (stable when it is redelivered).
    const canonical = [...fields.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    id = `sha256-${createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 32)}`;
  }
  const detail: Record<string, unknown> = {};
  for (const key of ['keyword', 'operator', 'mccmnc']) {
    const v = nonEmpty(fields, key);
    if (v !== undefined) detail[key] = v;
  }
  return {
    kind: 'inbound',
    eventKey: `messagebird:mo:${id}`,
    providerMessageId: id,
    channel: 'sms',
    from: phoneFromMessageBird(originator),
    to: phoneFromMessageBird(to),
    body,
    occurredAt: parseTime(at, now),
    ...(Object.keys(detail).length > 0 ? { detail } : {}),
  };
}

/** The events of an authenticated MessageBird webhook request. */
export function messageBirdEvents(
  fields: Map<string, string>,
  opts: { defaultTo: string | null; now: number },
): CarrierEvent[] {
  // A forward carries the message text; a status report never does (it may name an originator, though).
  const isMessage = fields.has('body') || fields.has('payload') || fields.has('message');
  const status = nonEmpty(fields, 'status');
  if (!isMessage && status !== undefined) {
    const event = statusEvent(fields, status, opts.now);
    return event ? [event] : [];
  }
  if (isMessage) return [inboundEvent(fields, opts.defaultTo, opts.now)];
  throw invalidPayload('neither a status report nor an inbound message');
}
