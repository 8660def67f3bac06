/**
 * Carrier adapter for Web Push: the push protocol of RFC 8030, message encryption of RFC 8291 (`aes128gcm`,
 * RFC 8188) and application-server identification of RFC 8292 (VAPID), built with the `web-push` package and
 * sent with undici (one keep-alive pool per push-service origin).
 *
 * A message's `to` is the subscription's endpoint URL (the push resource) and `options.push.keys` its
 * `p256dh`/`auth` keys, exactly as `PushSubscription.toJSON()` gives them. The notification is a JSON payload
 * `{title, body, data, messageId}` encrypted for that subscription. There is no base URL: every subscription
 * names its own push service (FCM, Mozilla autopush, Apple, WNS...).
 *
 * Sender config: `{ vapidPublicKey, vapidPrivateKey, subject, defaultTtlSeconds?, requestTimeoutMs?,
 * allowInsecureEndpoints?, rateLimitPerSecond?, costPerMessage? }`.
 *
 * Web Push has no delivery callbacks: a 201 from the push service means it accepted the message for delivery
 * and nothing more is ever reported, so a sent message stays `sent`. An endpoint that answers 404/410 is gone
 * for good (the user agent unsubscribed or the subscription expired) and the subscription should be revoked.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { type Dispatcher, Pool } from 'undici';
import webpush from 'web-push';
import { AuthenticationError } from '../../../domain/errors.ts';
import {
  type Carrier,
  type CarrierContext,
  type CarrierEvent,
  type ProviderDefinition,
  PUSH_SUBSCRIPTION_GONE,
  type SenderRecord,
  type SendRequest,
  type SendResult,
  type WebhookRequest,
} from '../../../ports/carrier.ts';
import type { Clock } from '../../../ports/clock.ts';
import { systemClock } from '../../clock/system-clock.ts';
import {
  type GuardPurpose,
  guardedConnector,
  type RefusedAddressError,
  refusalOf,
} from '../../webhooks/address-guard.ts';
import {
  checkRateLimitConfig,
  errorReason,
  headerValue,
  invalidConfig,
  isRecord,
  optionalCostConfig,
  parseRetryAfter,
  permanentFailure,
  requestText,
  retryableFailure,
  sendEach,
  tryParseJson,
} from '../carrier-support.ts';

export const WEBPUSH_PROVIDER = 'webpush';

/** Default TTL when neither the message nor the sender sets one: four weeks, as `web-push` and FCM use. */
export const DEFAULT_TTL_SECONDS = 2_419_200;
/**
 * RFC 8291 §4: push services need not accept more than 4096 octets of body; less the 86-octet header, the
 * 1-octet padding delimiter and the 16-octet tag, that is at most 3993 octets of plaintext.
 */
export const MAX_PAYLOAD_BYTES = 3993;
const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
const CONCURRENCY = 32;
/** Push-service origins kept with an open pool; the least recently used one is closed beyond this. */
const MAX_POOLS = 64;
/** RFC 8292 §2: `exp` at most 24 h ahead; we sign for 12 h and reuse a token for at most one hour. */
const VAPID_TOKEN_LIFETIME_S = 12 * 60 * 60;
const VAPID_TOKEN_REUSE_MS = 60 * 60 * 1000;
/** Bytes of an error answer's body kept for the error message. */
const MAX_ERROR_BODY_BYTES = 4096;
const URGENCIES: ReadonlySet<string> = new Set(['very-low', 'low', 'normal', 'high']);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Subscription keys are base64url as browsers give them; standard base64 (with padding) is tolerated. */
const BASE64ISH = /^[A-Za-z0-9_\-+/]+={0,2}$/;

/** How the adapter reads one HTTP status of a push service. */
export interface PushStatusRule {
  code: string;
  retryable: boolean;
  meaning: string;
  source: string;
}

/**
 * Every status a push service documents for a push request (RFC 8030, RFC 8291, RFC 8292, and the answers of the
 * major push services), with its classification. Statuses not listed: other 4xx are permanent
 * (`push_request_rejected`), other 5xx retryable (`push_service_error`).
 */
export const WEBPUSH_STATUS_CODES: Readonly<Record<number, PushStatusRule>> = {
  400: {
    code: 'push_request_invalid',
    retryable: false,
    meaning: 'the push service refused the request as malformed (missing TTL, bad encryption, bad headers)',
    source: 'RFC 8030 §5.2 (TTL), RFC 8291 §4 (aes128gcm)',
  },
  401: {
    code: 'push_vapid_unauthorized',
    retryable: false,
    meaning: 'the VAPID token is missing, expired or does not verify',
    source: 'RFC 8292 §3, §4.2',
  },
  403: {
    code: 'push_vapid_forbidden',
    retryable: false,
    meaning: 'the VAPID key is not the one the subscription was created with (restricted subscription)',
    source: 'RFC 8292 §4.2',
  },
  404: {
    code: PUSH_SUBSCRIPTION_GONE,
    retryable: false,
    meaning: 'the subscription does not exist or has expired',
    source: 'RFC 8030 §7.3',
  },
  410: {
    code: PUSH_SUBSCRIPTION_GONE,
    retryable: false,
    meaning: 'the user agent unsubscribed; the subscription will never accept messages again',
    source: 'RFC 8030 §7.3; FCM, Mozilla autopush and Apple answer 410 Gone for unsubscribed endpoints',
  },
  413: {
    code: 'push_payload_too_large',
    retryable: false,
    meaning: 'the encrypted payload exceeds what the push service accepts',
    source: 'RFC 8030 §7.2, RFC 8291 §4 (4096 octets)',
  },
  429: {
    code: 'push_rate_limited',
    retryable: true,
    meaning: 'the push service throttles this application server; wait for Retry-After',
    source: 'RFC 8030 §8.4',
  },
  500: {
    code: 'push_service_error',
    retryable: true,
    meaning: 'the push service failed internally',
    source: 'RFC 9110 §15.6.1',
  },
  502: {
    code: 'push_service_error',
    retryable: true,
    meaning: 'a gateway in front of the push service failed',
    source: 'RFC 9110 §15.6.3',
  },
  503: {
    code: 'push_service_unavailable',
    retryable: true,
    meaning: 'the push service is temporarily unavailable',
    source: 'RFC 8030 §8.4, RFC 9110 §15.6.4',
  },
  504: {
    code: 'push_service_error',
    retryable: true,
    meaning: 'a gateway in front of the push service timed out',
    source: 'RFC 9110 §15.6.5',
  },
};

/** The classification of a non-2xx push-service status (listed or not). */
export function classifyPushStatus(status: number): PushStatusRule {
  const known = WEBPUSH_STATUS_CODES[status];
  if (known) return known;
  if (status >= 500) {
    return { code: 'push_service_error', retryable: true, meaning: 'server error', source: 'RFC 9110 §15.6' };
  }
  return {
    code: 'push_request_rejected',
    retryable: false,
    meaning: 'unexpected answer to a push request',
    source: 'RFC 8030 §5 (201 Created is the only success)',
  };
}

/** The SendResult for a push service's non-2xx answer. */
export function pushFailure(status: number, retryAfterMs: number | undefined, detail: string): SendResult {
  const rule = classifyPushStatus(status);
  const suffix = detail.length > 0 ? `: ${detail}` : '';
  let message: string;
  switch (rule.code) {
    case PUSH_SUBSCRIPTION_GONE:
      message =
        `push subscription is gone (HTTP ${status}): the user agent unsubscribed or the subscription expired; ` +
        `the subscription will be revoked and must not be sent to again${suffix}`;
      break;
    case 'push_vapid_unauthorized':
    case 'push_vapid_forbidden':
      message = `push service refused the sender's VAPID identification (HTTP ${status})${suffix}`;
      break;
    case 'push_payload_too_large':
      message = `push service refused the payload as too large (HTTP ${status})${suffix}`;
      break;
    default:
      message = `push service answered HTTP ${status} (${rule.meaning})${suffix}`;
  }
  if (rule.retryable) return retryableFailure(rule.code, message, retryAfterMs);
  return permanentFailure(rule.code, message);
}

/**
 * `web-push` falls back to process-wide VAPID details (`setVapidDetails`) unless `vapidDetails` is given; an
 * explicit null (which its types do not declare) keeps it from ever replacing our per-sender Authorization.
 */
const NO_GLOBAL_VAPID = { vapidDetails: null } as unknown as Pick<webpush.RequestOptions, 'vapidDetails'>;

interface WebPushConfig {
  vapidPublicKey: string;
  vapidPrivateKey: string;
  subject: string;
  defaultTtlSeconds: number;
  requestTimeoutMs: number;
  allowInsecureEndpoints: boolean;
  costPerMessage: number | null;
}

function decodeBase64Url(value: string): Buffer | null {
  if (!BASE64ISH.test(value)) return null;
  return Buffer.from(value.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
}

function parseConfig(config: Record<string, unknown>): WebPushConfig {
  const p = WEBPUSH_PROVIDER;
  const { vapidPublicKey, vapidPrivateKey, subject } = config;
  if (typeof vapidPublicKey !== 'string' || !BASE64URL.test(vapidPublicKey)) {
    throw invalidConfig(p, 'vapidPublicKey', 'must be the base64url (unpadded) VAPID public key');
  }
  const publicKey = Buffer.from(vapidPublicKey, 'base64url');
  if (publicKey.length !== 65 || publicKey[0] !== 0x04) {
    throw invalidConfig(p, 'vapidPublicKey', 'must be an uncompressed P-256 point (65 octets)');
  }
  if (typeof vapidPrivateKey !== 'string' || !BASE64URL.test(vapidPrivateKey)) {
    throw invalidConfig(p, 'vapidPrivateKey', 'must be the base64url (unpadded) VAPID private key');
  }
  const privateKey = Buffer.from(vapidPrivateKey, 'base64url');
  if (privateKey.length !== 32) throw invalidConfig(p, 'vapidPrivateKey', 'must be a 32-octet P-256 private key');
  let derived: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(privateKey);
    derived = ecdh.getPublicKey();
  } catch {
    throw invalidConfig(p, 'vapidPrivateKey', 'is not a valid P-256 private key');
  }
  if (!derived.equals(publicKey)) throw invalidConfig(p, 'vapidPublicKey', 'does not match vapidPrivateKey');
  if (typeof subject !== 'string' || !URL.canParse(subject)) {
    throw invalidConfig(p, 'subject', 'must be a mailto: or https: URL identifying the sender (RFC 8292 §2.1)');
  }
  const subjectUrl = new URL(subject);
  if (
    (subjectUrl.protocol !== 'mailto:' && subjectUrl.protocol !== 'https:') ||
    (subjectUrl.protocol === 'mailto:' && !subjectUrl.pathname.includes('@'))
  ) {
    throw invalidConfig(p, 'subject', 'must be a mailto: or https: URL identifying the sender (RFC 8292 §2.1)');
  }
  const ttl = config.defaultTtlSeconds ?? DEFAULT_TTL_SECONDS;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0) {
    throw invalidConfig(p, 'defaultTtlSeconds', 'must be a non-negative integer');
  }
  const timeout = config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 100 || timeout > 120_000) {
    throw invalidConfig(p, 'requestTimeoutMs', 'must be an integer between 100 and 120000');
  }
  const insecure = config.allowInsecureEndpoints ?? false;
  if (typeof insecure !== 'boolean') throw invalidConfig(p, 'allowInsecureEndpoints', 'must be a boolean');
  checkRateLimitConfig(p, config);
  const cost = optionalCostConfig(p, config) ?? null;
  return {
    vapidPublicKey,
    vapidPrivateKey,
    subject,
    defaultTtlSeconds: ttl,
    requestTimeoutMs: timeout,
    allowInsecureEndpoints: insecure,
    costPerMessage: cost,
  };
}

/** A request-level failure the caller must fix (bad subscription, bad options): not retryable. */
function invalidRequest(code: string, message: string): SendResult {
  return { ok: false, retryable: false, error: { code, class: 'ValidationError', message } };
}

interface PreparedPush {
  url: URL;
  headers: Record<string, string>;
  body: Buffer;
}

/** The push message id: the last path segment of the `Location` the push service answers (RFC 8030 §5). */
export function pushMessageIdFromLocation(location: string | undefined, endpoint: URL): string | null {
  if (location === undefined || location.length === 0) return null;
  try {
    const segment = new URL(location, endpoint).pathname
      .split('/')
      .filter((s) => s.length > 0)
      .pop();
    return segment ?? null;
  } catch {
    return null;
  }
}

function describeErrorBody(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length === 0) return '';
  const parsed = tryParseJson(trimmed);
  if (isRecord(parsed)) {
    // Apple answers {"reason": "..."}; Mozilla autopush and FCM {"message"/"error": "..."}.
    for (const key of ['reason', 'message', 'error']) {
      const v = parsed[key];
      if (typeof v === 'string' && v.length > 0) return v.slice(0, 300);
      if (isRecord(v) && typeof v.message === 'string') return v.message.slice(0, 300);
    }
  }
  // Plain text (or JSON without a message).
  return trimmed.replace(/\s+/g, ' ').slice(0, 300);
}

/**
 * The body of a push service's answer: none of a success (nothing in it is used; it is discarded), the first
 * MAX_ERROR_BODY_BYTES of an error, for its message. Never throws: a body that cannot be read is empty.
 */
async function readPushAnswer(res: Dispatcher.ResponseData): Promise<string> {
  if (res.statusCode >= 200 && res.statusCode < 300) {
    await res.body.dump().catch(() => undefined);
    return '';
  }
  return readLimited(res.body).catch(() => '');
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    chunks.push(buf);
    size += buf.length;
    if (size >= MAX_ERROR_BODY_BYTES) break;
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
}

const PUSH_GUARD: GuardPurpose = {
  what: 'push messages may not be sent there',
  setting: 'OMNI_MESSAGE_URLS_ALLOW_PRIVATE',
};

/** A subscription endpoint on a loopback, private or reserved address: never sent to (permanent). */
function pushEndpointRefused(err: RefusedAddressError): SendResult {
  return permanentFailure('push_endpoint_refused', err.message);
}

export function createWebPushCarrier(sender: SenderRecord, ctx: CarrierContext, clock: Clock = systemClock): Carrier {
  const config = parseConfig(sender.config);
  const pools = new Map<string, Pool>();
  // Endpoints are the API caller's URLs: public addresses only (SSRF guard), unless the operator allows private ones.
  const connect = guardedConnector({ allowPrivate: ctx.allowPrivateUrls ?? false, purpose: PUSH_GUARD });
  const vapidTokens = new Map<string, { authorization: string; signedAt: number }>();

  function poolFor(origin: string): Pool {
    const existing = pools.get(origin);
    if (existing) {
      pools.delete(origin);
      pools.set(origin, existing);
      return existing;
    }
    if (pools.size >= MAX_POOLS) {
      const [oldestOrigin, oldest] = pools.entries().next().value as [string, Pool];
      pools.delete(oldestOrigin);
      oldest.close().catch(() => undefined);
    }
    const pool = new Pool(origin, { connections: 16, keepAliveTimeout: 30_000, connect });
    pools.set(origin, pool);
    return pool;
  }

  /** The `Authorization: vapid t=..., k=...` value for a push service (RFC 8292 §3), reused up to an hour. */
  function vapidAuthorization(audience: string): string {
    const now = clock.now();
    const cached = vapidTokens.get(audience);
    if (cached && now - cached.signedAt < VAPID_TOKEN_REUSE_MS && now >= cached.signedAt) {
      return cached.authorization;
    }
    const exp = Math.floor(now / 1000) + VAPID_TOKEN_LIFETIME_S;
    const { Authorization } = webpush.getVapidHeaders(
      audience,
      config.subject,
      config.vapidPublicKey,
      config.vapidPrivateKey,
      'aes128gcm',
      exp,
    );
    if (vapidTokens.size >= MAX_POOLS * 4) vapidTokens.clear();
    vapidTokens.set(audience, { authorization: Authorization, signedAt: now });
    return Authorization;
  }

  function prepare(r: SendRequest): PreparedPush | SendResult {
    if (!URL.canParse(r.to)) {
      return invalidRequest('push_subscription_invalid', 'push recipient must be the subscription endpoint URL');
    }
    const url = new URL(r.to);
    const secure = url.protocol === 'https:';
    if (!secure && !(url.protocol === 'http:' && config.allowInsecureEndpoints)) {
      return invalidRequest('push_subscription_invalid', 'push subscription endpoint must be an https: URL');
    }
    if (url.username.length > 0 || url.password.length > 0) {
      return invalidRequest('push_subscription_invalid', 'push subscription endpoint must not carry credentials');
    }
    const push = r.options?.push;
    const keys = isRecord(push) ? push.keys : undefined;
    if (!isRecord(keys) || typeof keys.p256dh !== 'string' || typeof keys.auth !== 'string') {
      return invalidRequest(
        'push_subscription_invalid',
        'push subscription keys are missing: options.push.keys must carry the p256dh and auth of the subscription',
      );
    }
    const p256dh = decodeBase64Url(keys.p256dh);
    if (p256dh === null || p256dh.length !== 65 || p256dh[0] !== 0x04) {
      return invalidRequest(
        'push_subscription_invalid',
        'push subscription key p256dh must be a base64url uncompressed P-256 public key (65 octets)',
      );
    }
    const auth = decodeBase64Url(keys.auth);
    if (auth === null || auth.length !== 16) {
      return invalidRequest('push_subscription_invalid', 'push subscription auth secret must be 16 octets, base64url');
    }
    const ttl = push?.ttlSeconds ?? config.defaultTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 0) {
      return invalidRequest('push_options_invalid', 'options.push.ttlSeconds must be a non-negative integer');
    }
    const urgency = push?.urgency ?? 'normal';
    if (!URGENCIES.has(urgency)) {
      return invalidRequest('push_options_invalid', 'options.push.urgency must be very-low, low, normal or high');
    }
    const topic = push?.topic;
    if (topic !== undefined && (topic.length === 0 || topic.length > 32 || !BASE64URL.test(topic))) {
      return invalidRequest(
        'push_options_invalid',
        'options.push.topic must be 1-32 characters of the URL-safe base64 alphabet (RFC 8030 §5.4)',
      );
    }
    const title = push?.title ?? r.subject ?? undefined;
    const payload = Buffer.from(
      JSON.stringify({ title, body: r.body ?? '', data: push?.data, messageId: r.messageId }),
      'utf8',
    );
    if (payload.length > MAX_PAYLOAD_BYTES) {
      return invalidRequest(
        'push_payload_too_large',
        `push payload is ${payload.length} octets; Web Push carries at most ${MAX_PAYLOAD_BYTES} (RFC 8291 §4)`,
      );
    }

    let authorization: string;
    try {
      authorization = vapidAuthorization(url.origin);
    } catch (err) {
      return permanentFailure('push_vapid_invalid', `cannot sign the VAPID token: ${errorReason(err)}`);
    }
    let details: ReturnType<typeof webpush.generateRequestDetails>;
    try {
      details = webpush.generateRequestDetails(
        { endpoint: url.href, keys: { p256dh: p256dh.toString('base64url'), auth: auth.toString('base64url') } },
        payload,
        {
          TTL: ttl,
          urgency,
          ...(topic === undefined ? {} : { topic }),
          contentEncoding: 'aes128gcm',
          ...NO_GLOBAL_VAPID,
          headers: { Authorization: authorization },
        },
      );
    } catch (err) {
      return invalidRequest('push_subscription_invalid', `cannot encrypt for this subscription: ${errorReason(err)}`);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(details.headers)) {
      if (name.toLowerCase() === 'content-length' || value === undefined || value === null) continue;
      headers[name.toLowerCase()] = String(value);
    }
    return { url, headers, body: details.body ?? Buffer.alloc(0) };
  }

  async function sendOne(r: SendRequest): Promise<SendResult> {
    const prepared = prepare(r);
    if ('ok' in prepared) return prepared;
    const { url, headers, body } = prepared;
    const answer = await requestText(
      poolFor(url.origin),
      { method: 'POST', path: `${url.pathname}${url.search}`, headers, body },
      config.requestTimeoutMs,
      readPushAnswer,
    );
    if (!answer.ok) {
      const refused = refusalOf(answer.error);
      if (refused) return pushEndpointRefused(refused);
      return retryableFailure('push_service_unreachable', `push service ${url.origin} unreachable: ${answer.reason}`);
    }
    const status = answer.status;
    if (status >= 200 && status < 300) {
      const id = pushMessageIdFromLocation(headerValue(answer.headers, 'location'), url);
      return {
        ok: true,
        providerMessageId: id ?? `wp_${randomBytes(12).toString('base64url')}`,
        cost: config.costPerMessage,
      };
    }
    if (status === 401 || status === 403) vapidTokens.delete(url.origin);
    const retryAfterMs = parseRetryAfter(answer.headers['retry-after'], clock.now());
    return pushFailure(status, retryAfterMs, describeErrorBody(answer.text));
  }

  return {
    provider: WEBPUSH_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      try {
        return await sendEach(requests, CONCURRENCY, sendOne);
      } catch (err) {
        // sendEach never throws; this only guards against the unexpected (send must never throw).
        return requests.map(() =>
          retryableFailure('push_service_unreachable', `web push send failed: ${errorReason(err)}`),
        );
      }
    },

    /**
     * Web Push has no callbacks: push services (RFC 8030) never call the application server back (message
     * receipts of RFC 8030 §5.1 go to a receipt subscription, which this product does not create). Nothing
     * legitimate ever arrives here, so every request is refused as unauthentic.
     */
    parseWebhook(_request: WebhookRequest): CarrierEvent[] {
      throw new AuthenticationError(
        'webhook_not_supported',
        'Web Push has no delivery callbacks; push services never post to this URL, so this request is refused',
      );
    },

    async close() {
      const all = [...pools.values()];
      pools.clear();
      vapidTokens.clear();
      await Promise.all(all.map((p) => p.close().catch(() => undefined)));
    },
  };
}

export const webPushProvider: ProviderDefinition = {
  id: WEBPUSH_PROVIDER,
  displayName: 'Web Push (VAPID)',
  channels: ['push'],
  configSchema: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    additionalProperties: false,
    required: ['vapidPublicKey', 'vapidPrivateKey', 'subject'],
    properties: {
      vapidPublicKey: {
        type: 'string',
        pattern: '^[A-Za-z0-9_-]{87}$',
        description:
          'VAPID application-server public key: base64url of the uncompressed P-256 point (65 octets); the same ' +
          'key the web app passes as applicationServerKey to pushManager.subscribe().',
      },
      vapidPrivateKey: {
        type: 'string',
        pattern: '^[A-Za-z0-9_-]{43}$',
        description: 'VAPID private key: base64url of the 32-octet P-256 private scalar (secret).',
      },
      subject: {
        type: 'string',
        pattern: '^(mailto:|https://)',
        description:
          'Contact for the push services (the VAPID `sub` claim, RFC 8292 §2.1): a mailto: address or https: URL.',
      },
      defaultTtlSeconds: {
        type: 'integer',
        minimum: 0,
        description:
          'How long push services keep an undelivered message when the message sets no TTL (default 2419200, four weeks).',
      },
      requestTimeoutMs: {
        type: 'integer',
        minimum: 100,
        maximum: 120000,
        description: 'Timeout of one request to a push service, in milliseconds (default 15000).',
      },
      allowInsecureEndpoints: {
        type: 'boolean',
        description:
          'Accept http:// subscription endpoints (local push-service emulators only; real endpoints are https). Default false.',
      },
      rateLimitPerSecond: {
        type: 'integer',
        minimum: 1,
        description: 'Most messages per second this sender sends.',
      },
      costPerMessage: {
        type: 'number',
        minimum: 0,
        description: 'Price recorded for one message (Web Push itself is free).',
      },
    },
  },
  secretFields: ['vapidPrivateKey'],
  create: (sender, ctx) => createWebPushCarrier(sender, ctx),
};
