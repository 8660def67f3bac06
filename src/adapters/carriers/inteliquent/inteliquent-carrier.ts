/**
 * Carrier adapter for Inteliquent's message broker (SMS and MMS from numbers on the Inteliquent account):
 * `POST https://messagebroker.inteliquent.com/msgbroker/rest/publishMessages` with `Authorization: Bearer <API key>`
 * and a JSON body `{from, to[], text, mediaUrls}` (Inteliquent Services API 2.0.0, "Send Outbound Message"), one
 * request per message. Inteliquent takes no client reference and no per-message callback URL: inbound messages and
 * delivery receipts arrive on the account's webhook (registered with configureAuthorization), authenticated as
 * described in inteliquent-webhook.ts.
 */
import { Pool } from 'undici';
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
import { INTELIQUENT_ERROR_CODES, isRetryableInteliquentCode } from './inteliquent-errors.ts';
import {
  authenticateInteliquentWebhook,
  type InteliquentWebhookAuth,
  inteliquentEvents,
  phoneFromInteliquent,
} from './inteliquent-webhook.ts';

export const INTELIQUENT_PROVIDER = 'inteliquent';
export const INTELIQUENT_DEFAULT_BASE_URL = 'https://messagebroker.inteliquent.com/msgbroker/rest';

const REQUEST_TIMEOUT_MS = 15_000;
const CONCURRENCY = 16;

export const inteliquentConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiKey'],
  anyOf: [{ required: ['webhookApiKey'] }, { required: ['webhookHeaderName', 'webhookHeaderValue'] }],
  properties: {
    apiKey: {
      type: 'string',
      minLength: 1,
      description: 'A message broker API key (customer portal), sent as `Authorization: Bearer <key>`.',
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: INTELIQUENT_DEFAULT_BASE_URL,
      description: 'Message broker base URL; override only to point at a test double.',
    },
    webhookApiKey: {
      type: 'string',
      minLength: 1,
      description:
        'The `apiKey` registered for the inbound webhook with configureAuthorization: Inteliquent then sends a ' +
        'random token in `messageID` and HMAC-SHA256(apiKey, token) in `verificationToken`, which are checked.',
    },
    webhookHeaderName: {
      type: 'string',
      minLength: 1,
      description: 'The custom `headerName` registered with configureAuthorization, required on every webhook.',
    },
    webhookHeaderValue: {
      type: 'string',
      minLength: 1,
      description: 'The custom `headerValue` registered with configureAuthorization.',
    },
    rateLimitPerSecond: {
      type: 'integer',
      minimum: 1,
      description: 'Messages per second this sender may send.',
    },
    costPerMessage: {
      type: 'number',
      minimum: 0,
      description: 'Price of one message (Inteliquent reports none).',
    },
  },
} as const;

const CONFIG_FIELDS: ReadonlySet<string> = new Set(Object.keys(inteliquentConfigSchema.properties));

interface InteliquentConfig {
  apiKey: string;
  baseUrl: URL;
  webhookAuth: InteliquentWebhookAuth;
}

function optionalString(config: Record<string, unknown>, field: string): string | undefined {
  const v = config[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim().length === 0) {
    throw invalidConfig(INTELIQUENT_PROVIDER, field, 'must be a non-empty string');
  }
  return v;
}

function parseConfig(config: Record<string, unknown>): InteliquentConfig {
  rejectUnknownConfigFields(INTELIQUENT_PROVIDER, config, CONFIG_FIELDS, 'is not an Inteliquent setting');
  const apiKey = requireConfigString(INTELIQUENT_PROVIDER, config, 'apiKey');
  if (/\s/.test(apiKey)) throw invalidConfig(INTELIQUENT_PROVIDER, 'apiKey', 'must not contain spaces');
  const webhookApiKey = optionalString(config, 'webhookApiKey');
  const headerName = optionalString(config, 'webhookHeaderName');
  const headerValue = optionalString(config, 'webhookHeaderValue');
  if (headerName !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(headerName)) {
    throw invalidConfig(INTELIQUENT_PROVIDER, 'webhookHeaderName', 'must be an HTTP header name');
  }
  if ((headerName === undefined) !== (headerValue === undefined)) {
    const missing = headerName === undefined ? 'webhookHeaderName' : 'webhookHeaderValue';
    throw invalidConfig(INTELIQUENT_PROVIDER, missing, 'must be set together with its pair');
  }
  if (webhookApiKey === undefined && headerName === undefined) {
    throw invalidConfig(
      INTELIQUENT_PROVIDER,
      'webhookApiKey',
      'or webhookHeaderName/webhookHeaderValue must be set: Inteliquent webhooks are authenticated by one of them',
    );
  }
  checkRateLimitConfig(INTELIQUENT_PROVIDER, config);
  optionalCostConfig(INTELIQUENT_PROVIDER, config);
  return {
    apiKey,
    baseUrl: configBaseUrl(INTELIQUENT_PROVIDER, config, 'baseUrl', INTELIQUENT_DEFAULT_BASE_URL),
    webhookAuth: {
      ...(webhookApiKey === undefined ? {} : { apiKey: webhookApiKey }),
      ...(headerName === undefined || headerValue === undefined
        ? {}
        : { header: { name: headerName, value: headerValue } }),
    },
  };
}

/** E.164 → the digits Inteliquent takes (`+19205551234` → `19205551234`). */
function tn(e164: string): string {
  return e164.replace(/^\+/, '');
}

export function createInteliquentCarrier(
  sender: SenderRecord,
  _ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const cfg = parseConfig(sender.config);
  const path = `${cfg.baseUrl.pathname.replace(/\/+$/, '')}/publishMessages`;
  const pool = new Pool(cfg.baseUrl.origin, { connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  const headers = {
    authorization: `Bearer ${cfg.apiKey}`,
    'content-type': 'application/json',
    accept: 'application/json',
  };
  const ourNumber = sender.from ? phoneFromInteliquent(sender.from) : null;

  function buildBody(req: SendRequest): { payload: Record<string, unknown> } | { refused: SendResult } {
    if (req.channel !== 'sms' && req.channel !== 'mms') {
      return { refused: permanentFailure('unsupported_channel', `Inteliquent sends sms and mms, not ${req.channel}`) };
    }
    const from = req.from ?? sender.from;
    if (!from)
      return { refused: permanentFailure('missing_from', 'no from number: the message and the sender lack `from`') };
    const media = req.channel === 'mms' ? (req.options?.mediaUrls ?? []) : [];
    // The specification types `mediaUrls` as one string ("MMS file content location").
    if (media.length > 1) {
      return {
        refused: permanentFailure('too_many_media', 'Inteliquent publishMessages takes one media URL per message'),
      };
    }
    if (media.length === 0 && !req.body) return { refused: permanentFailure('body_empty', 'an SMS needs a text') };
    return {
      payload: {
        from: tn(from),
        to: [tn(req.to)],
        ...(req.body ? { text: req.body } : {}),
        ...(media[0] ? { mediaUrls: media[0] } : {}),
      },
    };
  }

  async function sendOne(req: SendRequest): Promise<SendResult> {
    const built = buildBody(req);
    if ('refused' in built) return built.refused;
    const answer = await requestText(
      pool,
      { method: 'POST', path, headers, body: JSON.stringify(built.payload) },
      REQUEST_TIMEOUT_MS,
    );
    if (!answer.ok) return retryableFailure('carrier_unavailable', `Inteliquent unreachable: ${answer.reason}`);
    return mapPublishAnswer(answer.status, answer.headers['retry-after'], answer.text, tn(req.to), clock.now());
  }

  return {
    provider: INTELIQUENT_PROVIDER,

    send(requests) {
      return sendEach(requests, CONCURRENCY, sendOne);
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      authenticateInteliquentWebhook(request, cfg.webhookAuth);
      return inteliquentEvents(request.rawBody, { ourNumber, now: clock.now() });
    },

    async close() {
      await pool.close();
    },
  };
}

/** The code an error answer carries: its `statusCode`, an `<ams:code>` fault, or else the HTTP status. */
function errorCodeOf(status: number, body: unknown, text: string): string {
  if (isRecord(body) && (typeof body.statusCode === 'string' || typeof body.statusCode === 'number')) {
    return String(body.statusCode);
  }
  const fault = /<ams:code>\s*(\d+)\s*<\/ams:code>/.exec(text);
  return fault ? (fault[1] as string) : String(status);
}

function errorText(body: unknown): string {
  if (!isRecord(body)) return '';
  const parts = [body.status, body.message, body.reason, body.detail].filter(
    (p): p is string => typeof p === 'string' && p.length > 0 && p !== 'SUCCESS',
  );
  return parts.length > 0 ? `: ${parts.join('; ')}` : '';
}

/** Maps Inteliquent's answer to publishMessages onto a SendResult. */
export function mapPublishAnswer(
  status: number,
  retryAfter: string | string[] | undefined,
  text: string,
  to: string,
  nowMs: number,
): SendResult {
  const body = tryParseJson(text);
  if (status === 429) {
    return retryableFailure(
      'carrier_rate_limited',
      'Inteliquent rate limit exceeded',
      parseRetryAfter(retryAfter, nowMs),
    );
  }
  if (status >= 200 && status < 300) {
    if (isRecord(body) && body.success === true && isRecord(body.result)) {
      const referenceId = body.result.referenceId;
      const responses = Array.isArray(body.result.resultResponses) ? body.result.resultResponses : [];
      const mine = responses.find((r) => isRecord(r) && String(r.to) === to) ?? responses[0];
      const recipientStatus = isRecord(mine) && typeof mine.status === 'string' ? mine.status : 'SUCCESS';
      if (recipientStatus.toUpperCase() !== 'SUCCESS') {
        return permanentFailure(recipientStatus, `Inteliquent refused the recipient: ${recipientStatus}`);
      }
      if (typeof referenceId === 'string' && referenceId.length > 0) {
        return { ok: true, providerMessageId: referenceId, cost: null };
      }
      return retryableFailure('carrier_invalid_response', 'Inteliquent answered without a referenceId');
    }
    if (!isRecord(body)) return retryableFailure('carrier_invalid_response', 'Inteliquent answered without JSON');
    // An error reported in a 200: `{success: false, reason, detail}` or `{statusCode, status}`.
    const code = errorCodeOf(status, body, text);
    const known = INTELIQUENT_ERROR_CODES[code];
    const message = `Inteliquent rejected the message${errorText(body)}`;
    if (known) return known.retryable ? retryableFailure(code, message) : permanentFailure(code, message);
    return permanentFailure('carrier_request_rejected', message);
  }
  const code = errorCodeOf(status, body, text);
  const detail = errorText(body);
  if (status === 401 || status === 403 || code === '401001' || code === '900901') {
    return permanentFailure(code, `Inteliquent refused the API key (HTTP ${status})${detail}`);
  }
  // HTTP 408 without Inteliquent's error body is a plain request timeout, not the documented user error.
  if (status === 408 && !isRecord(body)) {
    return retryableFailure('carrier_timeout', 'Inteliquent timed out the request (HTTP 408)');
  }
  const message = `Inteliquent answered HTTP ${status}${detail}`;
  return isRetryableInteliquentCode(code, status)
    ? retryableFailure(INTELIQUENT_ERROR_CODES[code] ? code : 'carrier_unavailable', message)
    : permanentFailure(code, message);
}

export const inteliquentProvider: ProviderDefinition = {
  id: INTELIQUENT_PROVIDER,
  displayName: 'Inteliquent SMS/MMS',
  channels: ['sms', 'mms'],
  configSchema: inteliquentConfigSchema,
  secretFields: ['apiKey', 'webhookApiKey', 'webhookHeaderValue'],
  create: (sender, ctx) => createInteliquentCarrier(sender, ctx),
};
