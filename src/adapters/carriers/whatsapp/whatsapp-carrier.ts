/**
 * Carrier adapter for Meta's WhatsApp Cloud API (Graph API).
 *
 * Sends: `POST {baseUrl}/{apiVersion}/{phoneNumberId}/messages` with `Authorization: Bearer <accessToken>` and a
 * JSON message (see whatsapp-payloads.ts); the answer's `messages[0].id` (a `wamid.…`) is the provider id. Graph
 * errors (`{error: {code, message, error_data: {details}}}`) are classified by code (whatsapp-errors.ts).
 *
 * Webhooks: Meta posts `{object: "whatsapp_business_account", entry: [{id, changes: [{field: "messages", value}]}]}`
 * signed with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>` (Graph API "Webhooks: Getting
 * started", Event Notifications / Validating Payloads). `value.statuses[]` become status events, `value.messages[]`
 * inbound messages. Only changes for this sender's phone number (and business account, when configured) are taken:
 * give each sender its own callback URL (the phone number's webhook override) so its events arrive here. Meta's
 * GET subscription handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) is `verifyHandshake`.
 */
import { createHmac } from 'node:crypto';
import { Pool } from 'undici';
import { AuthenticationError, ForbiddenError, ValidationError } from '../../../domain/errors.ts';
import type { MessageError } from '../../../domain/message-status.ts';
import type {
  Carrier,
  CarrierEvent,
  ProviderDefinition,
  SenderRecord,
  SendRequest,
  SendResult,
  WebhookAnswer,
  WebhookRequest,
} from '../../../ports/carrier.ts';
import type { Clock } from '../../../ports/clock.ts';
import { systemClock } from '../../clock/system-clock.ts';
import {
  checkRateLimitConfig,
  configBaseUrl,
  headerValue,
  invalidConfig,
  isRecord,
  optionalCostConfig,
  parseJsonBody,
  parseRetryAfter,
  permanentFailure,
  requestText,
  requireConfigString,
  retryableFailure,
  safeEqual,
  sendEach,
  tryParseJson,
} from '../carrier-support.ts';
import { classifyWhatsAppError, type WhatsAppErrorInfo, whatsAppErrorInfo } from './whatsapp-errors.ts';
import { buildMessageBody } from './whatsapp-payloads.ts';

export const WHATSAPP_PROVIDER = 'whatsapp';
export const WHATSAPP_DEFAULT_BASE_URL = 'https://graph.facebook.com';
export const WHATSAPP_DEFAULT_API_VERSION = 'v23.0';
export const WHATSAPP_SIGNATURE_HEADER = 'x-hub-signature-256';

const REQUEST_TIMEOUT_MS = 15_000;
const SEND_CONCURRENCY = 16;
const USER_AGENT = 'Omnichannel/1.0.0';
const STATUSES: ReadonlySet<string> = new Set(['sent', 'delivered', 'read', 'failed']);
/** `hub.challenge` is an integer in Meta's docs; anything printable and short is echoed, nothing else. */
const CHALLENGE_SHAPE = /^[\x21-\x7e]{1,512}$/;
const NUMERIC_ID = /^[0-9]{1,32}$/;
const API_VERSION = /^v[0-9]{1,3}\.[0-9]{1,3}$/;

export interface WhatsAppConfig {
  phoneNumberId: string;
  accessToken: string;
  appSecret: string;
  verifyToken: string;
  businessAccountId: string | undefined;
  apiVersion: string;
  baseUrl: URL;
  costPerMessage: number | undefined;
}

export const WHATSAPP_CONFIG_SCHEMA: Record<string, unknown> = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  required: ['phoneNumberId', 'accessToken', 'appSecret', 'verifyToken'],
  properties: {
    phoneNumberId: {
      type: 'string',
      pattern: '^[0-9]{1,32}$',
      description: 'Phone number ID of the WhatsApp business number (WhatsApp Manager / API Setup), not the number.',
    },
    accessToken: {
      type: 'string',
      minLength: 1,
      pattern: '^\\S+$',
      description: 'System user access token with the whatsapp_business_messaging permission.',
    },
    appSecret: {
      type: 'string',
      minLength: 1,
      description: "The Meta app's App Secret; verifies the X-Hub-Signature-256 of webhooks.",
    },
    verifyToken: {
      type: 'string',
      minLength: 1,
      description: 'The Verify Token entered with the callback URL; answered in the GET subscription handshake.',
    },
    businessAccountId: {
      type: 'string',
      pattern: '^[0-9]{1,32}$',
      description: 'WhatsApp Business Account ID; when set, webhooks of other accounts are ignored.',
    },
    apiVersion: {
      type: 'string',
      pattern: '^v[0-9]{1,3}\\.[0-9]{1,3}$',
      default: WHATSAPP_DEFAULT_API_VERSION,
      description: 'Graph API version used in request paths.',
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: WHATSAPP_DEFAULT_BASE_URL,
      description: 'Graph API base URL (override for tests and proxies).',
    },
    rateLimitPerSecond: {
      type: 'integer',
      minimum: 1,
      description: 'Most messages per second to send through this number (Cloud API default throughput is 80).',
    },
    costPerMessage: {
      type: 'number',
      minimum: 0,
      description: 'Cost reported per accepted message (the Cloud API does not return prices when sending).',
    },
  },
};

/** Reads and checks a sender's config; throws a ValidationError naming the field (`config.<name>`). */
export function parseWhatsAppConfig(config: Record<string, unknown>): WhatsAppConfig {
  const p = WHATSAPP_PROVIDER;
  const phoneNumberId = requireConfigString(p, config, 'phoneNumberId');
  if (!NUMERIC_ID.test(phoneNumberId)) throw invalidConfig(p, 'phoneNumberId', 'must be the numeric phone number ID');
  const accessToken = requireConfigString(p, config, 'accessToken');
  if (/\s/.test(accessToken)) throw invalidConfig(p, 'accessToken', 'must not contain whitespace');
  const appSecret = requireConfigString(p, config, 'appSecret');
  const verifyToken = requireConfigString(p, config, 'verifyToken');
  let businessAccountId: string | undefined;
  if (config.businessAccountId !== undefined) {
    const v = config.businessAccountId;
    if (typeof v !== 'string' || !NUMERIC_ID.test(v)) {
      throw invalidConfig(p, 'businessAccountId', 'must be the numeric WhatsApp Business Account ID');
    }
    businessAccountId = v;
  }
  const apiVersion = config.apiVersion ?? WHATSAPP_DEFAULT_API_VERSION;
  if (typeof apiVersion !== 'string' || !API_VERSION.test(apiVersion)) {
    throw invalidConfig(p, 'apiVersion', 'must be a Graph API version such as v23.0');
  }
  const baseUrl = configBaseUrl(p, config, 'baseUrl', WHATSAPP_DEFAULT_BASE_URL);
  checkRateLimitConfig(p, config);
  const cost = optionalCostConfig(p, config);
  return {
    phoneNumberId,
    accessToken,
    appSecret,
    verifyToken,
    businessAccountId,
    apiVersion,
    baseUrl,
    costPerMessage: cost,
  };
}

/** `sha256=<lowercase hex HMAC-SHA256(appSecret, body)>`, the value Meta puts in `X-Hub-Signature-256`. */
export function whatsAppSignature(appSecret: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}

export function verifyWhatsAppSignature(appSecret: string, rawBody: Buffer, header: string): boolean {
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) return false;
  return safeEqual(`sha256=${(match[1] as string).toLowerCase()}`, whatsAppSignature(appSecret, rawBody));
}

export function createWhatsAppCarrier(
  sender: SenderRecord,
  _ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const config = parseWhatsAppConfig(sender.config);
  const base = config.baseUrl;
  const path = `${base.pathname.replace(/\/+$/, '')}/${config.apiVersion}/${config.phoneNumberId}/messages`;
  const pool = new Pool(base.origin, { connections: SEND_CONCURRENCY, keepAliveTimeout: 30_000 });
  const headers = {
    authorization: `Bearer ${config.accessToken}`,
    'content-type': 'application/json',
    accept: 'application/json',
    'user-agent': USER_AGENT,
  };
  const cost = config.costPerMessage ?? null;

  async function sendOne(request: SendRequest): Promise<SendResult> {
    const built = buildMessageBody(request);
    if (!built.ok) return permanentFailure(built.code, built.message);
    const answer = await requestText(
      pool,
      { method: 'POST', path, headers, body: JSON.stringify(built.body) },
      REQUEST_TIMEOUT_MS,
    );
    if (!answer.ok) {
      return retryableFailure('carrier_unavailable', `WhatsApp Cloud API unreachable: ${answer.reason}`);
    }
    if (answer.status >= 200 && answer.status < 300) {
      const id = messageIdOf(answer.text);
      if (id === undefined) {
        return retryableFailure('carrier_invalid_response', 'WhatsApp Cloud API answered without a message id');
      }
      return { ok: true, providerMessageId: id, cost };
    }
    return graphFailure(answer.status, answer.text, answer.headers['retry-after'], clock.now());
  }

  return {
    provider: WHATSAPP_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      return sendEach(requests, SEND_CONCURRENCY, sendOne);
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      const signature = headerValue(request.headers, WHATSAPP_SIGNATURE_HEADER);
      if (signature === undefined || signature.length === 0) {
        throw new AuthenticationError('webhook_signature_missing', 'missing X-Hub-Signature-256 header');
      }
      if (!verifyWhatsAppSignature(config.appSecret, request.rawBody, signature)) {
        throw new AuthenticationError('webhook_signature_invalid', 'WhatsApp webhook signature does not match');
      }
      return parseNotification(parseJsonBody(request.rawBody, invalidPayload), config);
    },

    verifyHandshake(request: WebhookRequest): WebhookAnswer {
      const query = new URL(request.url, 'http://webhook.invalid').searchParams;
      const token = query.get('hub.verify_token');
      if (query.get('hub.mode') !== 'subscribe' || token === null || !safeEqual(token, config.verifyToken)) {
        throw new ForbiddenError('webhook_verification_failed', 'WhatsApp webhook verification: verify token mismatch');
      }
      const challenge = query.get('hub.challenge');
      if (challenge === null || !CHALLENGE_SHAPE.test(challenge)) {
        throw invalidPayload('verification request has no usable hub.challenge');
      }
      return { status: 200, contentType: 'text/plain', body: challenge };
    },

    async close() {
      await pool.close();
    },
  };
}

export const whatsAppProvider: ProviderDefinition = {
  id: WHATSAPP_PROVIDER,
  displayName: 'WhatsApp (Meta Cloud API)',
  channels: ['whatsapp'],
  configSchema: WHATSAPP_CONFIG_SCHEMA,
  secretFields: ['accessToken', 'appSecret', 'verifyToken'],
  create: (sender, ctx) => createWhatsAppCarrier(sender, ctx),
};

// ---------------------------------------------------------------------------------------------------------------
// Send answers

function messageIdOf(text: string): string | undefined {
  const parsed = tryParseJson(text);
  if (!isRecord(parsed) || !Array.isArray(parsed.messages)) return undefined;
  const first = parsed.messages[0];
  return isRecord(first) && typeof first.id === 'string' && first.id.length > 0 ? first.id : undefined;
}

interface GraphError {
  code: number | undefined;
  message: string | undefined;
  details: string | undefined;
}

function graphErrorOf(text: string): GraphError | undefined {
  const parsed = tryParseJson(text);
  if (!isRecord(parsed) || !isRecord(parsed.error)) return undefined;
  const e = parsed.error;
  const details = isRecord(e.error_data) && typeof e.error_data.details === 'string' ? e.error_data.details : undefined;
  return {
    code: typeof e.code === 'number' && Number.isInteger(e.code) ? e.code : undefined,
    message: typeof e.message === 'string' ? e.message : undefined,
    details,
  };
}

function graphFailure(
  status: number,
  text: string,
  retryAfter: string | string[] | undefined,
  now: number,
): SendResult {
  const error = graphErrorOf(text);
  const info = classifyWhatsAppError(error?.code, status);
  const code = error?.code !== undefined ? String(error.code) : fallbackCode(info);
  const what = [error?.message, error?.details].filter((s) => s !== undefined && s.length > 0).join(': ');
  const lead =
    info.kind === 'credentials'
      ? 'WhatsApp Cloud API refused the credentials'
      : info.kind === 'throttling'
        ? 'WhatsApp Cloud API throttled the request'
        : 'WhatsApp Cloud API rejected the message';
  const message = `${lead} (HTTP ${status})${what ? `: ${what}` : ''}`;
  if (!info.retryable) return permanentFailure(code, message);
  return retryableFailure(code, message, parseRetryAfter(retryAfter, now));
}

function fallbackCode(info: WhatsAppErrorInfo): string {
  switch (info.kind) {
    case 'credentials':
      return 'carrier_auth_failed';
    case 'throttling':
      return 'carrier_rate_limited';
    case 'service':
      return 'carrier_unavailable';
    default:
      return 'carrier_request_rejected';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Webhooks

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `WhatsApp webhook: ${message}`);
}

function parseNotification(body: unknown, config: WhatsAppConfig): CarrierEvent[] {
  if (!isRecord(body) || typeof body.object !== 'string' || !Array.isArray(body.entry)) {
    throw invalidPayload('expected an object with `object` and an `entry` array');
  }
  // Other Graph objects (pages, Instagram...) are not ours to track.
  if (body.object !== 'whatsapp_business_account') return [];
  const events: CarrierEvent[] = [];
  for (const entry of body.entry) {
    if (!isRecord(entry) || !Array.isArray(entry.changes)) throw invalidPayload('every entry needs a `changes` array');
    if (config.businessAccountId !== undefined && String(entry.id) !== config.businessAccountId) continue;
    for (const change of entry.changes) {
      if (!isRecord(change)) throw invalidPayload('every change must be an object');
      // Template reviews, account updates, quality changes... are not message events.
      if (change.field !== 'messages') continue;
      const value = change.value;
      if (!isRecord(value) || !isRecord(value.metadata)) throw invalidPayload('a messages change needs value.metadata');
      if (String(value.metadata.phone_number_id) !== config.phoneNumberId) continue;
      if (value.statuses !== undefined) {
        if (!Array.isArray(value.statuses)) throw invalidPayload('value.statuses must be an array');
        for (const s of value.statuses) {
          const event = statusEvent(s);
          if (event) events.push(event);
        }
      }
      if (value.messages !== undefined) {
        if (!Array.isArray(value.messages)) throw invalidPayload('value.messages must be an array');
        const to = e164(requireString(value.metadata, 'display_phone_number', 'metadata'));
        for (const m of value.messages) {
          const event = inboundEvent(m, to, value.contacts);
          if (event) events.push(event);
        }
      }
    }
  }
  return events;
}

function requireString(obj: Record<string, unknown>, field: string, where: string): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length === 0) throw invalidPayload(`${where}.${field} must be a non-empty string`);
  return v;
}

/** Unix seconds (as Meta sends them, a numeric string) to epoch milliseconds. */
function timestampOf(obj: Record<string, unknown>, where: string): { raw: string; ms: number } {
  const v = obj.timestamp;
  const raw = typeof v === 'number' ? String(v) : v;
  if (typeof raw !== 'string' || !/^[0-9]{1,12}$/.test(raw)) {
    throw invalidPayload(`${where}.timestamp must be Unix seconds`);
  }
  return { raw, ms: Number(raw) * 1000 };
}

/** A WhatsApp ID (`16505551234`) as E.164 (`+16505551234`); other identifiers (user ids) stay as they are. */
function e164(waId: string): string {
  const digits = waId.replace(/[\s()+-]/g, '');
  return /^[0-9]{6,15}$/.test(digits) ? `+${digits}` : waId;
}

function statusEvent(item: unknown): CarrierEvent | null {
  if (!isRecord(item)) throw invalidPayload('every status must be an object');
  const id = requireString(item, 'id', 'status');
  const status = requireString(item, 'status', 'status');
  const at = timestampOf(item, 'status');
  // `deleted`, `warning` (catalog), `played` (voice) and future statuses are not tracked.
  if (!STATUSES.has(status)) return null;
  const detail: Record<string, unknown> = {};
  if (typeof item.recipient_id === 'string') detail.recipientId = item.recipient_id;
  if (isRecord(item.conversation)) detail.conversation = item.conversation;
  if (isRecord(item.pricing)) detail.pricing = item.pricing;
  let error: MessageError | undefined;
  if (Array.isArray(item.errors) && item.errors.length > 0) {
    detail.errors = item.errors;
    error = statusError(item.errors[0]);
  } else if (status === 'failed') {
    error = { code: 'whatsapp_failed', class: 'PermanentError', message: 'WhatsApp reported the message as failed' };
  }
  const reference = item.biz_opaque_callback_data;
  return {
    kind: 'status',
    eventKey: `${id}:${status}:${at.raw}`,
    providerMessageId: id,
    reference: typeof reference === 'string' && reference.length > 0 ? reference : null,
    status: status as 'sent' | 'delivered' | 'read' | 'failed',
    ...(error ? { error } : {}),
    occurredAt: at.ms,
    ...(Object.keys(detail).length > 0 ? { detail } : {}),
  };
}

function statusError(raw: unknown): MessageError {
  if (!isRecord(raw) || typeof raw.code !== 'number') {
    return { code: 'whatsapp_failed', class: 'PermanentError', message: 'WhatsApp reported an error without a code' };
  }
  const info = whatsAppErrorInfo(raw.code);
  const title = typeof raw.message === 'string' ? raw.message : typeof raw.title === 'string' ? raw.title : '';
  const details = isRecord(raw.error_data) && typeof raw.error_data.details === 'string' ? raw.error_data.details : '';
  const parts = [...new Set([title, details].filter((s) => s.length > 0))];
  return {
    code: String(raw.code),
    class: info?.retryable ? 'ResourceError' : 'PermanentError',
    message: parts.length > 0 ? parts.join(': ') : `WhatsApp error ${raw.code}`,
  };
}

function contactName(contacts: unknown, waId: string): string | undefined {
  if (!Array.isArray(contacts)) return undefined;
  for (const c of contacts) {
    if (isRecord(c) && c.wa_id === waId && isRecord(c.profile) && typeof c.profile.name === 'string') {
      return c.profile.name;
    }
  }
  return undefined;
}

function inboundEvent(item: unknown, to: string, contacts: unknown): CarrierEvent | null {
  if (!isRecord(item)) throw invalidPayload('every message must be an object');
  const id = requireString(item, 'id', 'message');
  const from = requireString(item, 'from', 'message');
  const type = requireString(item, 'type', 'message');
  const at = timestampOf(item, 'message');
  // System notices (a user changed number...) are not messages from a person.
  if (type === 'system') return null;
  const detail: Record<string, unknown> = { type };
  const name = contactName(contacts, from);
  if (name !== undefined) detail.contactName = name;
  if (isRecord(item.context)) detail.context = item.context;
  if (isRecord(item.referral)) detail.referral = item.referral;
  if (Array.isArray(item.errors)) detail.errors = item.errors;
  const body = inboundBody(item, type, detail);
  return {
    kind: 'inbound',
    eventKey: id,
    providerMessageId: id,
    channel: 'whatsapp',
    from: e164(from),
    to,
    body,
    occurredAt: at.ms,
    detail,
  };
}

/** The text of an inbound message; the rest of its content goes into `detail`. */
function inboundBody(item: Record<string, unknown>, type: string, detail: Record<string, unknown>): string {
  const content = item[type];
  switch (type) {
    case 'text':
      if (!isRecord(content) || typeof content.body !== 'string') throw invalidPayload('message.text.body is missing');
      return content.body;
    case 'button': {
      // A template's quick-reply button: `text` is its label, `payload` what the template set.
      if (!isRecord(content)) throw invalidPayload('message.button is missing');
      detail.payload = typeof content.payload === 'string' ? content.payload : null;
      return typeof content.text === 'string' ? content.text : '';
    }
    case 'interactive': {
      if (!isRecord(content) || typeof content.type !== 'string')
        throw invalidPayload('message.interactive is missing');
      detail.interactiveType = content.type;
      const reply = content[content.type];
      if (isRecord(reply)) {
        if (typeof reply.id === 'string') detail.id = reply.id;
        if (typeof reply.description === 'string') detail.description = reply.description;
        if (content.type === 'nfm_reply') detail.nfmReply = reply;
        if (typeof reply.title === 'string') return reply.title;
        if (typeof reply.body === 'string') return reply.body;
      }
      return '';
    }
    case 'image':
    case 'video':
    case 'audio':
    case 'document':
    case 'sticker':
      if (isRecord(content)) {
        detail.media = content;
        if (typeof content.id === 'string') detail.mediaId = content.id;
        if (typeof content.caption === 'string') return content.caption;
      }
      return '';
    case 'reaction':
      if (isRecord(content)) {
        detail.reaction = content;
        return typeof content.emoji === 'string' ? content.emoji : '';
      }
      return '';
    default:
      // location, contacts, order, unsupported...: the provider's object as sent.
      if (content !== undefined) detail[type] = content;
      return '';
  }
}
