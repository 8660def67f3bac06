/**
 * Carrier adapter for Bandwidth Messaging v2: SMS and MMS.
 *
 * Sending: `POST {baseUrl}/users/{accountId}/messages` with a JSON `messageRequest` (applicationId, to[], from,
 * text, media[], tag, priority), one request per message (https://dev.bandwidth.com/docs/messaging/createMessage;
 * OpenAPI `createMessage`). `tag` carries our message id so every status callback echoes it back. The API
 * answers `202 Accepted` with the message (its `id` is the provider id). Requests are authenticated as the
 * OpenAPI `security` section allows: HTTP Basic with the API user's credentials, or an OAuth2 bearer token
 * from the client-credentials flow (`tokenUrl` https://api.bandwidth.com/api/v1/oauth2/token; RFC 6749 §4.4
 * with the client authenticating by HTTP Basic, §2.3.1).
 *
 * Callbacks: Bandwidth POSTs a JSON array of events to the callback URLs of the messaging application
 * (https://dev.bandwidth.com/docs/messaging/webhooks): `message-sending`, `message-sent`, `message-delivered`,
 * `message-failed` (with `errorCode`), `message-read` for outbound messages and `message-received` for inbound
 * ones. They are not signed; Bandwidth authenticates them with the HTTP Basic credentials configured on the
 * application (InboundCallbackCreds / OutboundCallbackCreds, https://dev.bandwidth.com/docs/account/applications),
 * which this adapter checks in constant time. The callback URL is part of the application, not of the send
 * request, so ctx.webhookUrl is what the operator enters there.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { AuthenticationError, ValidationError } from '../../../domain/errors.ts';
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
  type CarrierHttpAnswer,
  type CarrierHttpResponse,
  checkRateLimitConfig,
  configBaseUrl,
  headerValue,
  httpStatusFailure,
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
import { bandwidthMessageError, classifyBandwidthError } from './bandwidth-errors.ts';

export const BANDWIDTH_PROVIDER = 'bandwidth';
/** The Messaging v2 server (OpenAPI `servers` of the messaging paths). */
export const BANDWIDTH_MESSAGING_URL = 'https://messaging.bandwidth.com/api/v2';
/** The OAuth2 client-credentials token endpoint (OpenAPI `components.securitySchemes.OAuth2`). */
export const BANDWIDTH_TOKEN_URL = 'https://api.bandwidth.com/api/v1/oauth2/token';

const REQUEST_TIMEOUT_MS = 15_000;
const SEND_CONCURRENCY = 8;
/** `tag` is at most 1024 characters (createMessage docs, "Tags"). */
const MAX_TAG_LENGTH = 1024;
/** A token is renewed this long before Bandwidth says it expires. */
const TOKEN_RENEW_MARGIN_MS = 60_000;
const DEFAULT_TOKEN_LIFETIME_S = 3600;

export interface BandwidthCallbackCredentials {
  user: string;
  password: string;
}

export type BandwidthApiAuth =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'oauth2'; clientId: string; clientSecret: string; tokenUrl: URL };

export interface BandwidthConfig {
  accountId: string;
  applicationId: string;
  baseUrl: URL;
  auth: BandwidthApiAuth;
  /** Credentials a callback may carry: the outbound (status) pair first, then the inbound pair when different. */
  callbackCredentials: BandwidthCallbackCredentials[];
  priority: 'default' | 'high' | undefined;
  costPerMessage: number | undefined;
}

/** `Authorization` header value of HTTP Basic (RFC 7617) for a user and password. */
export function bandwidthBasicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

function optionalString(config: Record<string, unknown>, field: string): string | undefined {
  const v = config[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0)
    throw invalidConfig(BANDWIDTH_PROVIDER, field, 'must be a non-empty string');
  return v;
}

function basicUser(config: Record<string, unknown>, field: string): string {
  const v = requireConfigString(BANDWIDTH_PROVIDER, config, field);
  // RFC 7617 §2: the user-id cannot contain a colon.
  if (v.includes(':')) throw invalidConfig(BANDWIDTH_PROVIDER, field, 'must not contain a colon');
  return v;
}

/** Validates a sender config; throws ValidationError naming `config.<field>`. */
export function parseBandwidthConfig(config: Record<string, unknown>): BandwidthConfig {
  const p = BANDWIDTH_PROVIDER;
  const accountId = requireConfigString(p, config, 'accountId').trim();
  if (!/^[A-Za-z0-9._-]+$/.test(accountId)) {
    throw invalidConfig(p, 'accountId', 'must be a Bandwidth account id (letters, digits, . _ -)');
  }
  const applicationId = requireConfigString(p, config, 'applicationId').trim();
  const baseUrl = configBaseUrl(p, config, 'baseUrl', BANDWIDTH_MESSAGING_URL);

  const hasOAuth = config.clientId !== undefined || config.clientSecret !== undefined;
  const hasBasic = config.username !== undefined || config.password !== undefined;
  let auth: BandwidthApiAuth;
  if (hasOAuth && hasBasic) {
    throw invalidConfig(
      p,
      'clientId',
      'cannot be combined with username/password: configure one kind of API credentials',
    );
  }
  if (hasOAuth) {
    auth = {
      kind: 'oauth2',
      clientId: basicUser(config, 'clientId'),
      clientSecret: requireConfigString(p, config, 'clientSecret'),
      tokenUrl: configBaseUrl(p, config, 'tokenUrl', BANDWIDTH_TOKEN_URL),
    };
  } else if (hasBasic) {
    auth = {
      kind: 'basic',
      username: basicUser(config, 'username'),
      password: requireConfigString(p, config, 'password'),
    };
  } else {
    throw invalidConfig(
      p,
      'username',
      'is required: give the API user (username and password) or OAuth2 client credentials (clientId and clientSecret)',
    );
  }

  const callbackCredentials: BandwidthCallbackCredentials[] = [
    { user: basicUser(config, 'callbackUser'), password: requireConfigString(p, config, 'callbackPassword') },
  ];
  const inboundUser = optionalString(config, 'inboundCallbackUser');
  const inboundPassword = optionalString(config, 'inboundCallbackPassword');
  if ((inboundUser === undefined) !== (inboundPassword === undefined)) {
    throw invalidConfig(
      p,
      inboundUser === undefined ? 'inboundCallbackUser' : 'inboundCallbackPassword',
      'must be given together with its pair (inboundCallbackUser and inboundCallbackPassword)',
    );
  }
  if (inboundUser !== undefined && inboundPassword !== undefined) {
    if (inboundUser.includes(':')) throw invalidConfig(p, 'inboundCallbackUser', 'must not contain a colon');
    callbackCredentials.push({ user: inboundUser, password: inboundPassword });
  }

  const priority = config.priority;
  if (priority !== undefined && priority !== 'default' && priority !== 'high') {
    throw invalidConfig(p, 'priority', "must be 'default' or 'high'");
  }
  checkRateLimitConfig(p, config);
  const cost = optionalCostConfig(p, config);
  return {
    accountId,
    applicationId,
    baseUrl,
    auth,
    callbackCredentials,
    priority,
    costPerMessage: cost,
  };
}

/** The readable part of a Bandwidth error body: `type`, `description`, `fieldErrors` (or Spring's 404 shape). */
function errorDetail(text: string): string {
  const body = tryParseJson(text);
  if (!isRecord(body)) return '';
  const parts: string[] = [];
  if (typeof body.type === 'string') parts.push(body.type);
  if (typeof body.description === 'string') parts.push(body.description);
  else if (typeof body.message === 'string') parts.push(body.message);
  // OAuth2 token endpoint errors (RFC 6749 §5.2).
  if (typeof body.error === 'string') parts.push(body.error);
  if (typeof body.error_description === 'string') parts.push(body.error_description);
  if (Array.isArray(body.fieldErrors)) {
    for (const f of body.fieldErrors) {
      if (isRecord(f) && typeof f.description === 'string') {
        parts.push(typeof f.fieldName === 'string' ? `${f.fieldName}: ${f.description}` : f.description);
      }
    }
  }
  return parts.length > 0 ? `: ${parts.join('; ')}` : '';
}

/**
 * Maps a non-2xx answer of Bandwidth (`provider`: the messages API or its token endpoint) into a failed SendResult:
 * the generic HTTP classes, and a 408 request timeout retried like a 5xx.
 */
function httpFailure(provider: string, answer: CarrierHttpResponse, nowMs: number): SendResult {
  const detail = errorDetail(answer.text);
  const retryAfter = answer.headers['retry-after'];
  if (answer.status === 408) {
    return retryableFailure(
      'carrier_unavailable',
      `${provider} answered HTTP 408${detail}`,
      parseRetryAfter(retryAfter, nowMs),
    );
  }
  return httpStatusFailure(provider, answer.status, retryAfter, nowMs, detail);
}

interface Token {
  value: string;
  renewAt: number;
}

type TokenOutcome = { ok: true; token: string } | { ok: false; failure: SendResult };

/** OAuth2 client-credentials tokens, fetched once and shared by concurrent sends until renewal is due. */
class TokenSource {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly authorization: string;
  private token: Token | null = null;
  private pending: Promise<TokenOutcome> | null = null;

  constructor(
    auth: Extract<BandwidthApiAuth, { kind: 'oauth2' }>,
    private readonly clock: Clock,
  ) {
    this.pool = new Pool(auth.tokenUrl.origin, { connections: 2, keepAliveTimeout: 30_000 });
    this.path = `${auth.tokenUrl.pathname}${auth.tokenUrl.search}`;
    this.authorization = bandwidthBasicAuthorization(auth.clientId, auth.clientSecret);
  }

  get(): Promise<TokenOutcome> {
    const now = this.clock.now();
    if (this.token && now < this.token.renewAt) return Promise.resolve({ ok: true, token: this.token.value });
    if (!this.pending) {
      this.pending = this.fetch().finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  /** Forgets a token the API refused, so the next `get` fetches a new one. */
  invalidate(value: string): void {
    if (this.token?.value === value) this.token = null;
  }

  private async fetch(): Promise<TokenOutcome> {
    const out = await requestText(
      this.pool,
      {
        method: 'POST',
        path: this.path,
        headers: {
          authorization: this.authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: 'grant_type=client_credentials',
      },
      REQUEST_TIMEOUT_MS,
    );
    if (!out.ok) {
      return {
        ok: false,
        failure: retryableFailure('carrier_unavailable', `Bandwidth token endpoint unreachable: ${out.reason}`),
      };
    }
    const now = this.clock.now();
    if (out.status === 400 && /"(invalid_client|unauthorized_client)"/.test(out.text)) {
      // RFC 6749 §5.2 lets a server refuse client credentials with 400 as well as 401.
      const failure = permanentFailure(
        'carrier_auth_failed',
        `Bandwidth refused the OAuth2 client credentials (HTTP 400)${errorDetail(out.text)}`,
      );
      return { ok: false, failure };
    }
    if (out.status < 200 || out.status >= 300) {
      return { ok: false, failure: httpFailure('Bandwidth token endpoint', out, now) };
    }
    const body = tryParseJson(out.text);
    if (!isRecord(body) || typeof body.access_token !== 'string' || body.access_token.length === 0) {
      return {
        ok: false,
        failure: retryableFailure(
          'carrier_invalid_response',
          'Bandwidth token endpoint answered without an access_token',
        ),
      };
    }
    const lifetimeMs =
      (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S) * 1000;
    const margin = Math.min(TOKEN_RENEW_MARGIN_MS, lifetimeMs / 2);
    this.token = { value: body.access_token, renewAt: now + lifetimeMs - margin };
    return { ok: true, token: body.access_token };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

export function createBandwidthCarrier(
  sender: SenderRecord,
  _ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const cfg = parseBandwidthConfig(sender.config);
  const base = cfg.baseUrl;
  const path = `${base.pathname.replace(/\/+$/, '')}/users/${encodeURIComponent(cfg.accountId)}/messages`;
  const pool = new Pool(base.origin, { connections: SEND_CONCURRENCY, keepAliveTimeout: 30_000 });
  const tokens = cfg.auth.kind === 'oauth2' ? new TokenSource(cfg.auth, clock) : null;
  const basic = cfg.auth.kind === 'basic' ? bandwidthBasicAuthorization(cfg.auth.username, cfg.auth.password) : null;
  // Compared as digests so the comparison takes the same time whatever the lengths.
  const callbackDigests = cfg.callbackCredentials.map((c) => digest(`${c.user}:${c.password}`));

  function buildBody(r: SendRequest): { ok: true; body: string } | { ok: false; result: SendResult } {
    if (r.channel !== 'sms' && r.channel !== 'mms') {
      return {
        ok: false,
        result: permanentFailure('unsupported_channel', `Bandwidth sends sms and mms, not '${r.channel}'`),
      };
    }
    const from = r.from ?? sender.from;
    if (!from) {
      return {
        ok: false,
        result: permanentFailure('missing_from', 'Bandwidth needs a from number: set the sender or the message from'),
      };
    }
    const media = r.channel === 'mms' ? (r.options?.mediaUrls ?? []) : [];
    const text = r.body ?? '';
    if (text.length === 0 && media.length === 0) {
      return { ok: false, result: permanentFailure('empty_message', 'a Bandwidth message needs text or media') };
    }
    const message: Record<string, unknown> = { applicationId: cfg.applicationId, to: [r.to], from };
    if (text.length > 0) message.text = text;
    if (media.length > 0) message.media = media;
    if (r.messageId.length <= MAX_TAG_LENGTH) message.tag = r.messageId;
    if (cfg.priority) message.priority = cfg.priority;
    return { ok: true, body: JSON.stringify(message) };
  }

  async function authorization(): Promise<
    { ok: true; header: string; token?: string } | { ok: false; result: SendResult }
  > {
    if (basic) return { ok: true, header: basic };
    const t = await (tokens as TokenSource).get();
    return t.ok ? { ok: true, header: `Bearer ${t.token}`, token: t.token } : { ok: false, result: t.failure };
  }

  function post(body: string, auth: string): Promise<CarrierHttpAnswer> {
    const headers = {
      authorization: auth,
      'content-type': 'application/json; charset=utf-8',
      accept: 'application/json',
    };
    return requestText(pool, { method: 'POST', path, headers, body }, REQUEST_TIMEOUT_MS);
  }

  async function sendOne(r: SendRequest): Promise<SendResult> {
    const built = buildBody(r);
    if (!built.ok) return built.result;
    let auth = await authorization();
    if (!auth.ok) return auth.result;
    let out = await post(built.body, auth.header);
    // An OAuth2 token can be revoked or expire early: fetch a fresh one once and try again.
    if (out.ok && out.status === 401 && tokens && auth.token) {
      tokens.invalidate(auth.token);
      auth = await authorization();
      if (!auth.ok) return auth.result;
      out = await post(built.body, auth.header);
    }
    if (!out.ok) return retryableFailure('carrier_unavailable', `Bandwidth unreachable: ${out.reason}`);
    if (out.status < 200 || out.status >= 300) return httpFailure('Bandwidth', out, clock.now());
    const answer = tryParseJson(out.text);
    if (!isRecord(answer) || typeof answer.id !== 'string' || answer.id.length === 0) {
      return retryableFailure('carrier_invalid_response', `Bandwidth answered HTTP ${out.status} without a message id`);
    }
    const segments = typeof answer.segmentCount === 'number' && answer.segmentCount > 0 ? answer.segmentCount : 1;
    return {
      ok: true,
      providerMessageId: answer.id,
      cost: cfg.costPerMessage === undefined ? null : cfg.costPerMessage * segments,
    };
  }

  function verifyAuthorization(headers: WebhookRequest['headers']): void {
    const header = headerValue(headers, 'authorization');
    if (header === undefined || header.trim().length === 0) {
      throw new AuthenticationError(
        'webhook_signature_missing',
        'Bandwidth callback carries no Authorization header: set the callback credentials on the messaging application',
      );
    }
    const match = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
    const presented = match?.[1] === undefined ? undefined : digest(Buffer.from(match[1], 'base64').toString('utf8'));
    let ok = false;
    for (const expected of callbackDigests) {
      // Every configured pair is compared, so the time taken does not tell which one came close.
      if (presented !== undefined && safeEqual(presented, expected)) ok = true;
    }
    if (!ok) {
      throw new AuthenticationError('webhook_signature_invalid', 'Bandwidth callback credentials do not match');
    }
  }

  return {
    provider: BANDWIDTH_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      return sendEach(requests, SEND_CONCURRENCY, sendOne);
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      verifyAuthorization(request.headers);
      const parsed = parseJsonBody(request.rawBody, invalidPayload);
      // Bandwidth sends a list of events; a lone event object is read the same way.
      const items = Array.isArray(parsed) ? parsed : isRecord(parsed) ? [parsed] : null;
      if (items === null) throw invalidPayload('body must be a JSON array of events');
      return items.flatMap((item) => mapCallback(item) ?? []);
    },

    async close() {
      await Promise.all([pool.close(), tokens?.close()]);
    },
  };
}

function digest(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `Bandwidth callback: ${message}`);
}

function requireString(obj: Record<string, unknown>, field: string, where: string): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length === 0) throw invalidPayload(`${where}.${field} must be a non-empty string`);
  return v;
}

function eventTime(item: Record<string, unknown>, message: Record<string, unknown>): number {
  for (const v of [item.time, message.time]) {
    if (typeof v === 'string') {
      const at = Date.parse(v);
      if (!Number.isNaN(at)) return at;
    }
  }
  throw invalidPayload('event.time must be an ISO-8601 timestamp');
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.length > 0) : [];
}

const STATUS_OF: Readonly<Record<string, 'sent' | 'delivered' | 'read'>> = {
  'message-sending': 'sent',
  'message-sent': 'sent',
  'message-delivered': 'delivered',
  'message-read': 'read',
};

/** One callback event as a CarrierEvent; null for events the product does not track (RBM responses...). */
function mapCallback(item: unknown): CarrierEvent | null {
  if (!isRecord(item)) throw invalidPayload('every event must be an object');
  const type = requireString(item, 'type', 'event');
  const tracked = type === 'message-received' || type === 'message-failed' || type in STATUS_OF;
  if (!tracked) return null;
  const message = item.message;
  if (!isRecord(message)) throw invalidPayload('event.message must be an object');
  const id = requireString(message, 'id', 'event.message');
  const to = requireString(item, 'to', 'event');
  const occurredAt = eventTime(item, message);
  // Bandwidth events carry no id of their own: a message has one event of a type per recipient.
  const eventKey = `${type}:${id}:${to}`;
  const segmentCount = typeof message.segmentCount === 'number' ? message.segmentCount : undefined;

  if (type === 'message-received') {
    const from = requireString(message, 'from', 'event.message');
    const media = stringList(message.media);
    const recipients = stringList(message.to);
    const detail: Record<string, unknown> = {};
    if (media.length > 0) detail.media = media;
    if (recipients.length > 1) detail.recipients = recipients;
    if (segmentCount !== undefined) detail.segmentCount = segmentCount;
    if (typeof item.carrierName === 'string') detail.carrierName = item.carrierName;
    return {
      kind: 'inbound',
      eventKey,
      providerMessageId: id,
      channel: media.length > 0 ? 'mms' : 'sms',
      from,
      to,
      body: typeof message.text === 'string' ? message.text : '',
      occurredAt,
      ...(Object.keys(detail).length > 0 ? { detail } : {}),
    };
  }

  const tag = message.tag;
  const description = typeof item.description === 'string' ? item.description : undefined;
  const detail: Record<string, unknown> = { recipient: to };
  if (description !== undefined) detail.description = description;
  if (segmentCount !== undefined) detail.segmentCount = segmentCount;
  if (typeof item.carrierName === 'string') detail.carrierName = item.carrierName;
  const base = {
    kind: 'status' as const,
    eventKey,
    providerMessageId: id,
    reference: typeof tag === 'string' && tag.length > 0 ? tag : null,
    occurredAt,
    detail,
  };
  if (type !== 'message-failed') return { ...base, status: STATUS_OF[type] as 'sent' | 'delivered' | 'read' };

  const code = item.errorCode;
  if (code !== undefined && (typeof code !== 'number' || !Number.isInteger(code))) {
    throw invalidPayload('event.errorCode must be an integer');
  }
  if (code === undefined) {
    return {
      ...base,
      status: 'failed',
      error: { code: 'unknown', class: 'PermanentError', message: description ?? 'message failed' },
    };
  }
  detail.errorCode = code;
  return { ...base, status: classifyBandwidthError(code).status, error: bandwidthMessageError(code, description) };
}

const CONFIG_SCHEMA: Record<string, unknown> = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Bandwidth Messaging v2 sender',
  type: 'object',
  additionalProperties: false,
  required: ['accountId', 'applicationId', 'callbackUser', 'callbackPassword'],
  anyOf: [{ required: ['username', 'password'] }, { required: ['clientId', 'clientSecret'] }],
  properties: {
    accountId: {
      type: 'string',
      minLength: 1,
      description: 'Bandwidth account id (the {accountId} of /users/{accountId}/messages).',
    },
    applicationId: {
      type: 'string',
      minLength: 1,
      description:
        'Messaging application id the from numbers belong to; its callback URLs must be this sender’s webhook URL.',
    },
    username: { type: 'string', minLength: 1, description: 'API user name (HTTP Basic authentication).' },
    password: { type: 'string', minLength: 1, description: 'API user password (HTTP Basic authentication).' },
    clientId: {
      type: 'string',
      minLength: 1,
      description: 'OAuth2 client id of API credentials (instead of username/password).',
    },
    clientSecret: { type: 'string', minLength: 1, description: 'OAuth2 client secret of the API credentials.' },
    tokenUrl: {
      type: 'string',
      format: 'uri',
      default: BANDWIDTH_TOKEN_URL,
      description: 'OAuth2 token endpoint (client-credentials grant).',
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: BANDWIDTH_MESSAGING_URL,
      description: 'Messaging API base URL.',
    },
    callbackUser: {
      type: 'string',
      minLength: 1,
      description: 'User of the callback credentials set on the messaging application (HTTP Basic on callbacks).',
    },
    callbackPassword: {
      type: 'string',
      minLength: 1,
      description: 'Password of the callback credentials set on the messaging application.',
    },
    inboundCallbackUser: {
      type: 'string',
      minLength: 1,
      description: 'User of the inbound callback credentials, when they differ from the outbound ones.',
    },
    inboundCallbackPassword: {
      type: 'string',
      minLength: 1,
      description: 'Password of the inbound callback credentials, when they differ from the outbound ones.',
    },
    priority: {
      type: 'string',
      enum: ['default', 'high'],
      description: "Sending priority within the account's queue ('high' for critical traffic only).",
    },
    rateLimitPerSecond: {
      type: 'integer',
      minimum: 1,
      description: 'Most messages per second to hand to Bandwidth (the account’s rate limit).',
    },
    costPerMessage: {
      type: 'number',
      minimum: 0,
      description: 'Price of one message segment, to estimate each message’s cost (Bandwidth does not return one).',
    },
  },
};

export const bandwidthProvider: ProviderDefinition = {
  id: BANDWIDTH_PROVIDER,
  displayName: 'Bandwidth',
  channels: ['sms', 'mms'],
  configSchema: CONFIG_SCHEMA,
  secretFields: ['password', 'clientSecret', 'callbackPassword', 'inboundCallbackPassword'],
  create: (sender, ctx) => createBandwidthCarrier(sender, ctx),
};
