/**
 * Carrier adapter for MessageBird (Bird) SMS: `POST {baseUrl}/messages` with `Authorization: AccessKey <key>`
 * (https://developers.messagebird.com/api/sms-messaging/, "Send outbound SMS"), one request per message carrying
 * our message id as `reference` and the sender's webhook URL as `reportUrl`, so MessageBird sends status reports
 * there. Webhooks (status reports, forwarded inbound SMS) are authenticated with MessageBird's request signing:
 * the `MessageBird-Signature-JWT` scheme by default, the legacy `MessageBird-Signature` HMAC when configured.
 */
import { Pool } from 'undici';
import { AuthenticationError } from '../../../domain/errors.ts';
import type {
  Carrier,
  CarrierEvent,
  ProviderDefinition,
  SenderRecord,
  SendRequest,
  SendResult,
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
  parseRetryAfter,
  permanentFailure,
  rejectUnknownConfigFields,
  requestText,
  requireConfigString,
  retryableFailure,
  sendEach,
  tryParseJson,
} from '../carrier-support.ts';
import { isRetryableMessageBirdError, MESSAGEBIRD_ERROR_CODES } from './messagebird-errors.ts';
import {
  MESSAGEBIRD_JWT_HEADER,
  MESSAGEBIRD_SIGNATURE_HEADER,
  MESSAGEBIRD_TIMESTAMP_HEADER,
  type SignatureCheck,
  verifyMessageBirdJwt,
  verifyMessageBirdLegacySignature,
} from './messagebird-signature.ts';
import { messageBirdEvents, webhookFields } from './messagebird-webhook.ts';

export const MESSAGEBIRD_PROVIDER = 'messagebird';
export const MESSAGEBIRD_DEFAULT_BASE_URL = 'https://rest.messagebird.com';

const REQUEST_TIMEOUT_MS = 15_000;
const CONCURRENCY = 16;

export type MessageBirdSignatureScheme = 'jwt' | 'legacy';

interface MessageBirdConfig {
  accessKey: string;
  signingKey: string;
  signatureScheme: MessageBirdSignatureScheme;
  baseUrl: URL;
  datacoding: 'auto' | 'plain' | 'unicode';
}

export const messageBirdConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['accessKey', 'signingKey'],
  properties: {
    accessKey: {
      type: 'string',
      minLength: 1,
      description: 'Live access key (Dashboard → Developers → API access), sent as `Authorization: AccessKey <key>`.',
    },
    signingKey: {
      type: 'string',
      minLength: 1,
      description: 'Signing key (Dashboard → Developers → API settings) that signs status reports and forwards.',
    },
    signatureScheme: {
      type: 'string',
      enum: ['jwt', 'legacy'],
      default: 'jwt',
      description:
        'How webhooks are signed: `jwt` (MessageBird-Signature-JWT) or `legacy` (MessageBird-Signature HMAC).',
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: MESSAGEBIRD_DEFAULT_BASE_URL,
      description: 'REST API base URL; override only to point at a test double.',
    },
    datacoding: {
      type: 'string',
      enum: ['auto', 'plain', 'unicode'],
      default: 'auto',
      description: 'SMS encoding: `auto` picks GSM 03.38 or Unicode per message; `plain` drops non-GSM characters.',
    },
    rateLimitPerSecond: {
      type: 'integer',
      minimum: 1,
      description: 'Messages per second this sender may send.',
    },
    costPerMessage: {
      type: 'number',
      minimum: 0,
      description: 'Price of one message, used when MessageBird reports none.',
    },
  },
} as const;

const CONFIG_FIELDS: ReadonlySet<string> = new Set(Object.keys(messageBirdConfigSchema.properties));

function parseConfig(config: Record<string, unknown>): MessageBirdConfig {
  rejectUnknownConfigFields(MESSAGEBIRD_PROVIDER, config, CONFIG_FIELDS, 'is not a MessageBird setting');
  const accessKey = requireConfigString(MESSAGEBIRD_PROVIDER, config, 'accessKey');
  if (/\s/.test(accessKey)) throw invalidConfig(MESSAGEBIRD_PROVIDER, 'accessKey', 'must not contain spaces');
  const signingKey = requireConfigString(MESSAGEBIRD_PROVIDER, config, 'signingKey');
  const scheme = config.signatureScheme ?? 'jwt';
  if (scheme !== 'jwt' && scheme !== 'legacy') {
    throw invalidConfig(MESSAGEBIRD_PROVIDER, 'signatureScheme', "must be 'jwt' or 'legacy'");
  }
  const datacoding = config.datacoding ?? 'auto';
  if (datacoding !== 'auto' && datacoding !== 'plain' && datacoding !== 'unicode') {
    throw invalidConfig(MESSAGEBIRD_PROVIDER, 'datacoding', "must be 'auto', 'plain' or 'unicode'");
  }
  checkRateLimitConfig(MESSAGEBIRD_PROVIDER, config);
  optionalCostConfig(MESSAGEBIRD_PROVIDER, config);
  return {
    accessKey,
    signingKey,
    signatureScheme: scheme,
    baseUrl: configBaseUrl(MESSAGEBIRD_PROVIDER, config, 'baseUrl', MESSAGEBIRD_DEFAULT_BASE_URL),
    datacoding,
  };
}

/** The URL MessageBird requested: the sender's public webhook URL with the query string as received. */
export function messageBirdSignedUrl(webhookUrl: string, requestUrl: string): string {
  const base = webhookUrl.replace(/[?#].*$/, '');
  const q = requestUrl.indexOf('?');
  return q < 0 ? base : base + requestUrl.slice(q);
}

/** E.164 `+31612345678` → `31612345678`, the form MessageBird's `recipients` take. */
function msisdn(to: string): string {
  return to.replace(/^\+/, '');
}

export function createMessageBirdCarrier(
  sender: SenderRecord,
  ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const cfg = parseConfig(sender.config);
  const path = `${cfg.baseUrl.pathname.replace(/\/+$/, '')}/messages`;
  const pool = new Pool(cfg.baseUrl.origin, { connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  const headers = {
    authorization: `AccessKey ${cfg.accessKey}`,
    'content-type': 'application/json',
    accept: 'application/json',
  };

  async function sendOne(req: SendRequest): Promise<SendResult> {
    if (req.channel !== 'sms') {
      return permanentFailure('unsupported_channel', `MessageBird adapter sends sms only, not ${req.channel}`);
    }
    const originator = req.from ?? sender.from;
    if (!originator) return permanentFailure('missing_from', 'no originator: the message and the sender lack `from`');
    if (!req.body) return permanentFailure('body_empty', 'MessageBird requires a message body');
    const payload = JSON.stringify({
      originator,
      recipients: [msisdn(req.to)],
      body: req.body,
      reference: req.messageId,
      reportUrl: ctx.webhookUrl,
      datacoding: cfg.datacoding,
    });
    const answer = await requestText(pool, { method: 'POST', path, headers, body: payload }, REQUEST_TIMEOUT_MS);
    if (!answer.ok) return retryableFailure('carrier_unavailable', `MessageBird unreachable: ${answer.reason}`);
    return mapSendAnswer(answer.status, answer.headers['retry-after'], answer.text, clock.now());
  }

  function authenticate(request: WebhookRequest): void {
    let check: SignatureCheck;
    if (cfg.signatureScheme === 'jwt') {
      const token = headerValue(request.headers, MESSAGEBIRD_JWT_HEADER);
      if (!token)
        throw new AuthenticationError('webhook_signature_missing', 'missing MessageBird-Signature-JWT header');
      check = verifyMessageBirdJwt({
        token,
        signingKey: cfg.signingKey,
        url: messageBirdSignedUrl(ctx.webhookUrl, request.url),
        body: request.rawBody,
        nowMs: clock.now(),
      });
    } else {
      const signature = headerValue(request.headers, MESSAGEBIRD_SIGNATURE_HEADER);
      const timestamp = headerValue(request.headers, MESSAGEBIRD_TIMESTAMP_HEADER);
      if (!signature || !timestamp) {
        throw new AuthenticationError(
          'webhook_signature_missing',
          'missing MessageBird-Signature or MessageBird-Request-Timestamp header',
        );
      }
      const q = request.url.indexOf('?');
      check = verifyMessageBirdLegacySignature({
        signature,
        timestamp,
        signingKey: cfg.signingKey,
        query: new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1)),
        body: request.rawBody,
        nowMs: clock.now(),
      });
    }
    if (!check.ok) {
      throw new AuthenticationError('webhook_signature_invalid', `MessageBird webhook signature: ${check.reason}`);
    }
  }

  return {
    provider: MESSAGEBIRD_PROVIDER,

    send(requests) {
      return sendEach(requests, CONCURRENCY, sendOne);
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      authenticate(request);
      return messageBirdEvents(webhookFields(request), { defaultTo: sender.from, now: clock.now() });
    },

    async close() {
      await pool.close();
    },
  };
}

interface MessageBirdApiError {
  code?: number;
  description?: string;
  parameter?: string | null;
}

/** The first entry of an error answer's `errors`; undefined when there is none (the HTTP status alone decides). */
function firstError(text: string): MessageBirdApiError | undefined {
  const parsed = tryParseJson(text);
  if (!isRecord(parsed) || !Array.isArray(parsed.errors) || !isRecord(parsed.errors[0])) return undefined;
  const e = parsed.errors[0];
  return {
    ...(typeof e.code === 'number' ? { code: e.code } : {}),
    ...(typeof e.description === 'string' ? { description: e.description } : {}),
    ...(typeof e.parameter === 'string' ? { parameter: e.parameter } : {}),
  };
}

/** Maps MessageBird's answer to a create-message request onto a SendResult. */
export function mapSendAnswer(
  status: number,
  retryAfter: string | string[] | undefined,
  text: string,
  nowMs: number,
): SendResult {
  if (status >= 200 && status < 300) {
    const parsed = tryParseJson(text);
    if (isRecord(parsed) && typeof parsed.id === 'string' && parsed.id.length > 0) {
      return { ok: true, providerMessageId: parsed.id, cost: reportedCost(parsed) };
    }
    return retryableFailure('carrier_invalid_response', `MessageBird answered HTTP ${status} without a message id`);
  }
  const error = firstError(text);
  const code = error?.code;
  const described = error?.description ?? (code === undefined ? undefined : MESSAGEBIRD_ERROR_CODES[code]?.description);
  const detail = described ? `: ${described}${error?.parameter ? ` (${error.parameter})` : ''}` : '';
  const errorCode = code === undefined ? `http_${status}` : String(code);
  if (status === 429) {
    return retryableFailure(
      code === undefined ? 'carrier_rate_limited' : errorCode,
      `MessageBird rate limit exceeded${detail}`,
      parseRetryAfter(retryAfter, nowMs),
    );
  }
  if (isRetryableMessageBirdError(status, code)) {
    return retryableFailure(
      code === undefined ? 'carrier_unavailable' : errorCode,
      `MessageBird answered HTTP ${status}${detail}`,
    );
  }
  if (status === 401 || status === 403 || code === 2) {
    return permanentFailure(
      code === undefined ? 'carrier_auth_failed' : errorCode,
      `MessageBird refused the access key (HTTP ${status})${detail}`,
    );
  }
  return permanentFailure(errorCode, `MessageBird rejected the message (HTTP ${status})${detail}`);
}

/** The price MessageBird reports for the (single) recipient, when it reports one. */
function reportedCost(message: Record<string, unknown>): number | null {
  const recipients = message.recipients;
  if (!isRecord(recipients) || !Array.isArray(recipients.items)) return null;
  const item = recipients.items[0];
  if (!isRecord(item) || !isRecord(item.price)) return null;
  const amount = item.price.amount;
  return typeof amount === 'number' && Number.isFinite(amount) ? amount : null;
}

export const messageBirdProvider: ProviderDefinition = {
  id: MESSAGEBIRD_PROVIDER,
  displayName: 'MessageBird (Bird) SMS',
  channels: ['sms'],
  configSchema: messageBirdConfigSchema,
  secretFields: ['accessKey', 'signingKey'],
  create: (sender, ctx) => createMessageBirdCarrier(sender, ctx),
};
