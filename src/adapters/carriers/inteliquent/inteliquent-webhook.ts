/**
 * Inteliquent message-broker webhooks: authentication and parsing into canonical carrier events.
 *
 * Shape (Inteliquent Services API 2.0.0, `POST /CustomerConfiguredWebhookURLForInboundMessaging`): a JSON object
 * `{referenceId, from, to[], text, mediaUrls[], deliveryReceipt}`; `from`/`to` are strings in the schema but JSON
 * numbers in its own example, so both are read. `deliveryReceipt: true` marks "a delivery receipt" for the message
 * `referenceId` cross-references. The specification does not describe a receipt's content; the status is read from
 * the SMPP 3.4 (Appendix B) receipt text carriers relay (`id:… stat:DELIVRD err:000 …`), and a receipt without a
 * readable `stat:` is dropped rather than guessed.
 *
 * Authentication: Inteliquent does not sign webhooks, but `POST /configureAuthorization` lets the account attach to
 * the webhook either an `apiKey` — every request then carries a random token in the `messageID` header and
 * HMAC-SHA256(apiKey, token) in the `verificationToken` header — or a custom header (`headerName`/`headerValue`)
 * sent on every request. The adapter checks whichever the sender has configured (both, when both are). The digest
 * encoding is not specified: lowercase/uppercase hex and base64 are accepted. The token scheme proves the request
 * comes from Inteliquent but does not cover the body; TLS protects the body in transit.
 */
import { createHmac } from 'node:crypto';
import { AuthenticationError, ValidationError } from '../../../domain/errors.ts';
import type { CarrierEvent, WebhookRequest } from '../../../ports/carrier.ts';
import { headerValue, isRecord, parseJsonBody, safeEqual } from '../carrier-support.ts';

export const INTELIQUENT_TOKEN_HEADER = 'messageID';
export const INTELIQUENT_VERIFICATION_HEADER = 'verificationToken';

export interface InteliquentWebhookAuth {
  /** The `apiKey` registered with configureAuthorization (HMAC key of `verificationToken`). */
  apiKey?: string;
  /** The custom header registered with configureAuthorization. */
  header?: { name: string; value: string };
}

/** The `verificationToken` Inteliquent computes for `token` (hex). */
export function inteliquentVerificationToken(apiKey: string, token: string): string {
  return createHmac('sha256', apiKey).update(token).digest('hex');
}

/** Throws AuthenticationError unless the request carries the configured credentials. */
export function authenticateInteliquentWebhook(request: WebhookRequest, auth: InteliquentWebhookAuth): void {
  if (auth.apiKey !== undefined) {
    const token = headerValue(request.headers, INTELIQUENT_TOKEN_HEADER);
    const given = headerValue(request.headers, INTELIQUENT_VERIFICATION_HEADER);
    if (!token || !given) {
      throw new AuthenticationError('webhook_signature_missing', 'missing messageID or verificationToken header');
    }
    const digest = createHmac('sha256', auth.apiKey).update(token).digest();
    const trimmed = given.trim();
    const ok = /^[0-9a-fA-F]{64}$/.test(trimmed)
      ? safeEqual(trimmed.toLowerCase(), digest.toString('hex'))
      : safeEqual(trimmed.replace(/=+$/, ''), digest.toString('base64').replace(/=+$/, '')) ||
        safeEqual(trimmed, digest.toString('base64url'));
    if (!ok) throw new AuthenticationError('webhook_signature_invalid', 'Inteliquent verificationToken is invalid');
  }
  if (auth.header !== undefined) {
    const value = headerValue(request.headers, auth.header.name);
    if (value === undefined) {
      throw new AuthenticationError('webhook_signature_missing', `missing ${auth.header.name} header`);
    }
    if (!safeEqual(value, auth.header.value)) {
      throw new AuthenticationError('webhook_signature_invalid', `${auth.header.name} header does not match`);
    }
  }
}

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `inteliquent webhook: ${message}`);
}

/** A telephone number as Inteliquent writes it (`13123752629`, `3123752629`, a JSON number) in E.164. */
export function phoneFromInteliquent(value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw invalidPayload('a telephone number is missing');
  const text = String(value).trim();
  const digits = text.replace(/\D/g, '');
  if (digits.length === 10) return `+1${digits}`;
  if (digits.length >= 11 && digits.length <= 15) return `+${digits}`;
  // Short codes and anything unusual are kept as sent.
  return text;
}

type ReceiptStatus = 'sent' | 'delivered' | 'undelivered' | 'failed';

/** SMPP 3.4 Appendix B message states; UNKNOWN carries no information and is not tracked. */
const SMPP_STATES: Readonly<Record<string, ReceiptStatus | null>> = {
  ACCEPTD: 'sent',
  ENROUTE: 'sent',
  DELIVRD: 'delivered',
  EXPIRED: 'undelivered',
  DELETED: 'undelivered',
  UNDELIV: 'undelivered',
  REJECTD: 'failed',
  UNKNOWN: null,
};

/** Reads `key:value` fields of an SMPP delivery receipt text. */
export function parseSmppReceipt(text: string): { stat?: string; err?: string; id?: string } {
  const out: { stat?: string; err?: string; id?: string } = {};
  const stat = /\bstat:([A-Za-z]+)/i.exec(text);
  if (stat) out.stat = (stat[1] as string).toUpperCase();
  const err = /\berr:([0-9A-Za-z]+)/i.exec(text);
  if (err) out.err = err[1] as string;
  const id = /\bid:(\S+)/i.exec(text);
  if (id) out.id = id[1] as string;
  return out;
}

function receiptEvent(referenceId: string, text: string, now: number): CarrierEvent | null {
  const receipt = parseSmppReceipt(text);
  if (!receipt.stat) return null;
  const status = SMPP_STATES[receipt.stat];
  if (!status) return null;
  const failed = status === 'undelivered' || status === 'failed';
  const errorCode = receipt.err && !/^0+$/.test(receipt.err) ? receipt.err : receipt.stat;
  return {
    kind: 'status',
    eventKey: `inteliquent:dlr:${referenceId}:${receipt.stat}:${receipt.err ?? ''}`,
    providerMessageId: referenceId,
    reference: null,
    status,
    ...(failed
      ? {
          error: {
            code: errorCode,
            class: 'PermanentError',
            message: `Inteliquent delivery receipt: ${receipt.stat}${receipt.err ? ` (err ${receipt.err})` : ''}`,
          },
        }
      : {}),
    occurredAt: now,
    detail: { receipt: text, ...(receipt.id ? { receiptId: receipt.id } : {}) },
  };
}

/** The events of an authenticated Inteliquent webhook request. */
export function inteliquentEvents(rawBody: Buffer, opts: { ourNumber: string | null; now: number }): CarrierEvent[] {
  const parsed = parseJsonBody(rawBody, invalidPayload);
  if (!isRecord(parsed)) throw invalidPayload('body must be a JSON object');
  const referenceId = parsed.referenceId;
  if (typeof referenceId !== 'string' || referenceId.length === 0) throw invalidPayload('referenceId is required');
  const text = parsed.text === undefined || parsed.text === null ? '' : parsed.text;
  if (typeof text !== 'string') throw invalidPayload('text must be a string');
  if (parsed.deliveryReceipt === true || parsed.deliveryReceipt === 'true') {
    const event = receiptEvent(referenceId, text, opts.now);
    return event ? [event] : [];
  }
  const rawTo = Array.isArray(parsed.to) ? parsed.to : parsed.to === undefined ? [] : [parsed.to];
  const recipients = rawTo.map(phoneFromInteliquent);
  const ours = opts.ourNumber === null ? undefined : recipients.find((r) => r === opts.ourNumber);
  const to = ours ?? recipients[0] ?? opts.ourNumber;
  if (!to) throw invalidPayload('to is required');
  const media = parsed.mediaUrls;
  if (media !== undefined && media !== null && !(Array.isArray(media) && media.every((m) => typeof m === 'string'))) {
    throw invalidPayload('mediaUrls must be an array of URLs');
  }
  const mediaUrls = (media ?? []) as string[];
  const detail: Record<string, unknown> = {};
  if (mediaUrls.length > 0) detail.mediaUrls = mediaUrls;
  if (recipients.length > 1) detail.recipients = recipients;
  return [
    {
      kind: 'inbound',
      eventKey: `inteliquent:mo:${referenceId}`,
      providerMessageId: referenceId,
      channel: mediaUrls.length > 0 ? 'mms' : 'sms',
      from: phoneFromInteliquent(parsed.from),
      to,
      body: text,
      occurredAt: opts.now,
      ...(Object.keys(detail).length > 0 ? { detail } : {}),
    },
  ];
}
