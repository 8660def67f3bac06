/**
 * Carrier adapter for Twilio's 2010-04-01 REST API (https://www.twilio.com/docs/usage/api):
 * - SMS, MMS and WhatsApp through the Messages resource, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
 *   (form-encoded; `MediaUrl` repeated per medium; WhatsApp addresses carry the `whatsapp:` prefix; a Messaging
 *   Service SID may stand in for `From`; WhatsApp templates go as a Content SID with `ContentVariables`).
 * - Voice calls that read the message out through the Calls resource, `POST .../Calls.json`, with inline TwiML
 *   (`<Response><Say>…</Say></Response>`) and call-progress status callbacks.
 * Requests use HTTP Basic auth with the Account SID and auth token, or an API key SID and secret when configured.
 * Status callbacks and inbound messages arrive form-encoded (or as GET/JSON) signed with `X-Twilio-Signature`,
 * which is verified against ctx.webhookUrl. The StatusCallback of each message is ctx.webhookUrl with our message
 * id added as the `omniRef` query parameter, so every callback names the message it is about.
 */
import { Pool } from 'undici';
import type { Channel } from '../../../domain/channels.ts';
import { AuthenticationError, ValidationError } from '../../../domain/errors.ts';
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
  rejectUnknownConfigFields,
  requestText,
  requireConfigString,
  retryableFailure,
  sendEach,
  tryParseJson,
} from '../carrier-support.ts';
import { twilioMessageError } from './twilio-errors.ts';
import { TWILIO_SIGNATURE_HEADER, verifyTwilioBodySignature, verifyTwilioSignature } from './twilio-signature.ts';

export const TWILIO_PROVIDER = 'twilio';
export const TWILIO_API_BASE_URL = 'https://api.twilio.com';
export const TWILIO_CHANNELS = ['sms', 'mms', 'whatsapp', 'voice'] as const satisfies readonly Channel[];
/** Query parameter of the StatusCallback URL that carries our message id back. */
export const TWILIO_REFERENCE_PARAM = 'omniRef';
/** Call progress events requested for voice calls (Calls resource, `StatusCallbackEvent`). */
export const TWILIO_CALL_EVENTS = ['initiated', 'ringing', 'answered', 'completed'] as const;
/** Twilio's limits: up to 10 `MediaUrl` per message, 4,000 characters of inline `Twiml`. */
const MAX_MEDIA = 10;
const MAX_TWIML_CHARS = 4000;
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_IN_FLIGHT = 16;

const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/;
const API_KEY_SID = /^SK[0-9a-fA-F]{32}$/;
const SERVICE_SID = /^MG[0-9a-fA-F]{32}$/;
const CONTENT_SID = /^HX[0-9a-fA-F]{32}$/;
const WHATSAPP = 'whatsapp:';

/** The empty TwiML answer Twilio expects from a messaging webhook (no reply is sent). */
export const TWILIO_WEBHOOK_ANSWER: WebhookAnswer = { status: 200, contentType: 'text/xml', body: '<Response/>' };

export const TWILIO_CONFIG_SCHEMA: Record<string, unknown> = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Twilio sender',
  type: 'object',
  additionalProperties: false,
  required: ['accountSid', 'authToken'],
  properties: {
    accountSid: {
      type: 'string',
      pattern: ACCOUNT_SID.source,
      description: 'Account SID (AC…): the account messages and calls are created in.',
    },
    authToken: {
      type: 'string',
      minLength: 1,
      description:
        "The account's (primary) auth token. Twilio signs webhooks (X-Twilio-Signature) with it; it is also the API password unless an API key is configured.",
    },
    apiKeySid: {
      type: 'string',
      pattern: API_KEY_SID.source,
      description: 'Optional API key SID (SK…) used instead of the auth token for API requests; needs apiKeySecret.',
    },
    apiKeySecret: {
      type: 'string',
      minLength: 1,
      description: 'Secret of the API key in apiKeySid.',
    },
    messagingServiceSid: {
      type: 'string',
      pattern: SERVICE_SID.source,
      description:
        'Optional Messaging Service SID (MG…). Messages are sent through it; when a message has no `from`, Twilio picks the sender from the service pool.',
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: TWILIO_API_BASE_URL,
      description:
        'Base URL of the REST API (a regional edge such as https://api.dublin.ie1.twilio.com, or a test emulator).',
    },
    ttsVoice: {
      type: 'string',
      minLength: 1,
      description:
        'Default <Say> voice for voice calls (e.g. `Polly.Joanna`, `alice`); a message’s voice options override it.',
    },
    ttsLanguage: {
      type: 'string',
      minLength: 1,
      description: 'Default <Say> language for voice calls (e.g. `en-US`).',
    },
    rateLimitPerSecond: {
      type: 'integer',
      minimum: 1,
      description: 'Messages per second this sender may send (Twilio queues beyond its own per-sender rate).',
    },
    costPerMessage: {
      type: 'number',
      minimum: 0,
      description: 'Estimated cost of one message or call, used when Twilio has not reported a price yet.',
    },
  },
};

interface TwilioConfig {
  accountSid: string;
  authToken: string;
  apiKey: { sid: string; secret: string } | null;
  messagingServiceSid: string | null;
  baseUrl: URL;
  ttsVoice: string | null;
  ttsLanguage: string | null;
  costPerMessage: number | null;
}

const CONFIG_FIELDS = new Set(Object.keys(TWILIO_CONFIG_SCHEMA.properties as Record<string, unknown>));

function optionalString(config: Record<string, unknown>, field: string, pattern?: RegExp): string | null {
  const v = config[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.trim().length === 0) {
    throw invalidConfig(TWILIO_PROVIDER, field, 'must be a non-empty string');
  }
  if (pattern && !pattern.test(v)) throw invalidConfig(TWILIO_PROVIDER, field, `must match ${pattern.source}`);
  return v;
}

/** Validates a sender's config; throws a ValidationError naming `config.<field>`. */
export function parseTwilioConfig(config: Record<string, unknown>): TwilioConfig {
  rejectUnknownConfigFields(TWILIO_PROVIDER, config, CONFIG_FIELDS, 'is not a Twilio sender setting');
  const accountSid = requireConfigString(TWILIO_PROVIDER, config, 'accountSid');
  if (!ACCOUNT_SID.test(accountSid)) {
    throw invalidConfig(TWILIO_PROVIDER, 'accountSid', 'must be an Account SID (AC followed by 32 hex digits)');
  }
  const authToken = requireConfigString(TWILIO_PROVIDER, config, 'authToken');
  if (/\s/.test(authToken)) throw invalidConfig(TWILIO_PROVIDER, 'authToken', 'must not contain whitespace');
  const apiKeySid = optionalString(config, 'apiKeySid', API_KEY_SID);
  const apiKeySecret = optionalString(config, 'apiKeySecret');
  if ((apiKeySid === null) !== (apiKeySecret === null)) {
    throw invalidConfig(
      TWILIO_PROVIDER,
      apiKeySid === null ? 'apiKeySid' : 'apiKeySecret',
      'must be set together with the other API key field',
    );
  }
  const messagingServiceSid = optionalString(config, 'messagingServiceSid', SERVICE_SID);
  const baseUrl = configBaseUrl(TWILIO_PROVIDER, config, 'baseUrl', TWILIO_API_BASE_URL);
  const ttsVoice = optionalString(config, 'ttsVoice');
  const ttsLanguage = optionalString(config, 'ttsLanguage');
  checkRateLimitConfig(TWILIO_PROVIDER, config);
  const cost = optionalCostConfig(TWILIO_PROVIDER, config);
  return {
    accountSid,
    authToken,
    apiKey: apiKeySid !== null && apiKeySecret !== null ? { sid: apiKeySid, secret: apiKeySecret } : null,
    messagingServiceSid,
    baseUrl,
    ttsVoice,
    ttsLanguage,
    costPerMessage: cost ?? null,
  };
}

type Built = { path: string; form: URLSearchParams; resource: 'message' | 'call' } | { failure: SendResult };

export function createTwilioCarrier(
  sender: SenderRecord,
  ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const config = parseTwilioConfig(sender.config);
  if (!URL.canParse(ctx.webhookUrl) || !/^https?:$/.test(new URL(ctx.webhookUrl).protocol)) {
    throw new ValidationError('invalid_webhook_url', 'the webhook URL of a Twilio sender must be an http(s) URL');
  }
  const webhookUrl = ctx.webhookUrl.split('#')[0] as string;
  /** ctx.webhookUrl without its query: what the query of a received request is appended to. */
  const webhookBase = webhookUrl.split('?')[0] as string;
  const base = config.baseUrl;
  const prefix = base.pathname.replace(/\/+$/, '');
  const accountPath = `${prefix}/2010-04-01/Accounts/${config.accountSid}`;
  const pool = new Pool(base.origin, { connections: MAX_IN_FLIGHT, keepAliveTimeout: 30_000 });
  const [user, password] = config.apiKey
    ? [config.apiKey.sid, config.apiKey.secret]
    : [config.accountSid, config.authToken];
  const headers = {
    authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };

  function statusCallback(messageId: string): string {
    const sep = webhookUrl.includes('?') ? '&' : '?';
    return `${webhookUrl}${sep}${TWILIO_REFERENCE_PARAM}=${encodeURIComponent(messageId)}`;
  }

  function buildMessage(r: SendRequest): Built {
    const whatsapp = r.channel === 'whatsapp';
    const address = (a: string) => (whatsapp && !a.startsWith(WHATSAPP) ? WHATSAPP + a : a);
    const from = r.from ?? sender.from;
    if (from === null && config.messagingServiceSid === null) {
      return { failure: invalid('missing_from', 'a Twilio message needs a `from` number or a messagingServiceSid') };
    }
    const form = new URLSearchParams();
    form.append('To', address(r.to));
    if (from !== null) form.append('From', address(from));
    if (config.messagingServiceSid !== null) form.append('MessagingServiceSid', config.messagingServiceSid);

    const wa = whatsapp ? r.options?.whatsapp : undefined;
    if (wa?.interactive !== undefined) {
      return {
        failure: {
          ok: false,
          retryable: false,
          error: {
            code: 'unsupported_content',
            class: 'PermanentError',
            message: 'Twilio sends interactive WhatsApp messages only as Content templates (send a template instead)',
          },
        },
      };
    }
    const template = wa?.template;
    if (template !== undefined) {
      if (!CONTENT_SID.test(template.name)) {
        return {
          failure: invalid(
            'unsupported_template',
            `Twilio sends WhatsApp templates by Content SID (HX…); '${template.name}' is not one`,
          ),
        };
      }
      form.append('ContentSid', template.name);
      const variables = contentVariables(template.components);
      if (variables !== null) form.append('ContentVariables', variables);
    } else if (r.body !== null && r.body.length > 0) {
      form.append('Body', r.body);
    }
    const media = r.channel === 'mms' || whatsapp ? (r.options?.mediaUrls ?? []) : [];
    if (media.length > MAX_MEDIA) {
      return { failure: invalid('too_many_media', `Twilio accepts at most ${MAX_MEDIA} media URLs per message`) };
    }
    for (const url of media) form.append('MediaUrl', url);
    if (!form.has('Body') && !form.has('ContentSid') && media.length === 0) {
      return { failure: invalid('body_empty', 'a Twilio message needs a body, media or a template') };
    }
    form.append('StatusCallback', statusCallback(r.messageId));
    return { path: `${accountPath}/Messages.json`, form, resource: 'message' };
  }

  function buildCall(r: SendRequest): Built {
    const from = r.from ?? sender.from;
    if (from === null) return { failure: invalid('missing_from', 'a Twilio call needs a `from` number') };
    if (r.body === null || r.body.trim().length === 0) {
      return { failure: invalid('body_empty', 'a voice message needs text to read out') };
    }
    const twiml = sayTwiml(r.body, {
      voice: r.options?.voice?.voice ?? config.ttsVoice,
      language: r.options?.voice?.language ?? config.ttsLanguage,
      loop: r.options?.voice?.loop,
    });
    if (twiml.length > MAX_TWIML_CHARS) {
      return {
        failure: invalid(
          'twiml_too_long',
          `the call's TwiML is ${twiml.length} characters; Twilio accepts ${MAX_TWIML_CHARS}`,
        ),
      };
    }
    const form = new URLSearchParams();
    form.append('To', r.to);
    form.append('From', from);
    form.append('Twiml', twiml);
    form.append('StatusCallback', statusCallback(r.messageId));
    form.append('StatusCallbackMethod', 'POST');
    for (const event of TWILIO_CALL_EVENTS) form.append('StatusCallbackEvent', event);
    return { path: `${accountPath}/Calls.json`, form, resource: 'call' };
  }

  async function sendOne(r: SendRequest): Promise<SendResult> {
    let built: Built;
    if (r.channel === 'voice') built = buildCall(r);
    else if (r.channel === 'sms' || r.channel === 'mms' || r.channel === 'whatsapp') built = buildMessage(r);
    else {
      return invalid('unsupported_channel', `Twilio senders do not send '${r.channel}' messages`);
    }
    if ('failure' in built) return built.failure;

    const answer = await requestText(
      pool,
      { method: 'POST', path: built.path, headers, body: built.form.toString() },
      REQUEST_TIMEOUT_MS,
    );
    if (!answer.ok) return retryableFailure('carrier_unavailable', `Twilio could not be reached: ${answer.reason}`);
    return mapAnswer(answer.status, answer.headers['retry-after'], answer.text, built.resource);
  }

  function mapAnswer(
    status: number,
    retryAfter: string | string[] | undefined,
    text: string,
    resource: 'message' | 'call',
  ): SendResult {
    if (status >= 200 && status < 300) {
      const body = tryParseJson(text);
      if (!isRecord(body) || typeof body.sid !== 'string' || body.sid.length === 0) {
        return retryableFailure('carrier_invalid_response', `Twilio answered HTTP ${status} without a ${resource} sid`);
      }
      const price = typeof body.price === 'string' ? Number(body.price) : Number.NaN;
      const cost = Number.isFinite(price) ? Math.abs(price) : config.costPerMessage;
      return { ok: true, providerMessageId: body.sid, ...(cost === null ? {} : { cost }) };
    }
    const problem = parseTwilioProblem(text);
    const retryAfterMs = parseRetryAfter(retryAfter, clock.now());
    const transient = status === 429 || status >= 500;
    const code = problem.code ?? (status === 429 ? 20429 : status === 401 ? 20003 : null);
    let error: MessageError;
    let retryable: boolean;
    if (code !== null) {
      const mapped = twilioMessageError(code, problem.message, status);
      error = mapped.error;
      retryable = mapped.retryable;
    } else {
      const fallback = twilioMessageError(
        `http_${status}`,
        problem.message ?? `Twilio answered HTTP ${status}`,
        status,
      );
      error = { ...fallback.error, code: transient ? 'carrier_unavailable' : 'carrier_request_rejected' };
      retryable = fallback.retryable;
    }
    if (transient && !retryable) {
      error = { ...error, class: 'ResourceError' };
      retryable = true;
    }
    return {
      ok: false,
      retryable,
      error,
      ...(retryable && retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }

  function parseWebhook(request: WebhookRequest): CarrierEvent[] {
    const signature = headerValue(request.headers, TWILIO_SIGNATURE_HEADER);
    if (signature === undefined || signature.length === 0) {
      throw new AuthenticationError('webhook_signature_missing', 'missing X-Twilio-Signature header');
    }
    const q = request.url.indexOf('?');
    const query = q >= 0 ? (request.url.slice(q).split('#')[0] as string) : '';
    const signedUrl = webhookBase + query;
    const queryParams = new URLSearchParams(query.slice(1));
    let fields: Record<string, string>;
    if (request.method.toUpperCase() === 'GET') {
      if (!verifyTwilioSignature(config.authToken, signature, signedUrl)) throw badSignature();
      fields = firstValues(groupParams(queryParams));
    } else if (queryParams.has('bodySHA256')) {
      if (!verifyTwilioBodySignature(config.authToken, signature, signedUrl, request.rawBody)) throw badSignature();
      fields = jsonFields(request.rawBody);
    } else {
      const params = groupParams(new URLSearchParams(request.rawBody.toString('utf8')));
      if (!verifyTwilioSignature(config.authToken, signature, signedUrl, params)) throw badSignature();
      fields = firstValues(params);
    }
    const ref = queryParams.get(TWILIO_REFERENCE_PARAM);
    return mapFields(fields, ref !== null && ref.length > 0 ? ref : null, clock.now());
  }

  return {
    provider: TWILIO_PROVIDER,
    webhookAnswer: TWILIO_WEBHOOK_ANSWER,
    async send(requests) {
      if (requests.length === 0) return [];
      return sendEach(requests, MAX_IN_FLIGHT, sendOne);
    },
    parseWebhook,
    async close() {
      await pool.close();
    },
  };
}

export const twilioProvider: ProviderDefinition = {
  id: TWILIO_PROVIDER,
  displayName: 'Twilio',
  channels: TWILIO_CHANNELS,
  configSchema: TWILIO_CONFIG_SCHEMA,
  secretFields: ['authToken', 'apiKeySecret'],
  create: (sender, ctx) => createTwilioCarrier(sender, ctx),
};

function invalid(code: string, message: string): SendResult {
  return { ok: false, retryable: false, error: { code, class: 'ValidationError', message } };
}

/** Cloud-API-shaped template components → Twilio `ContentVariables` ({"1": …}), from the body's text parameters. */
function contentVariables(components: Record<string, unknown>[] | undefined): string | null {
  const values: string[] = [];
  for (const component of components ?? []) {
    if (String(component.type).toLowerCase() !== 'body' || !Array.isArray(component.parameters)) continue;
    for (const p of component.parameters) {
      if (isRecord(p) && typeof p.text === 'string') values.push(p.text);
    }
  }
  if (values.length === 0) return null;
  return JSON.stringify(Object.fromEntries(values.map((v, i) => [String(i + 1), v])));
}

function escapeXml(text: string): string {
  return (
    text
      // Characters XML 1.0 does not allow (controls other than tab, LF, CR) would make the TwiML invalid.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, ' ')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

/** `<Response><Say voice= language= loop=>text</Say></Response>`, as the TwiML <Say> verb documents it. */
export function sayTwiml(
  text: string,
  opts: { voice?: string | null; language?: string | null; loop?: number | undefined } = {},
): string {
  let attrs = '';
  if (opts.voice) attrs += ` voice="${escapeXml(opts.voice)}"`;
  if (opts.language) attrs += ` language="${escapeXml(opts.language)}"`;
  if (opts.loop !== undefined && Number.isInteger(opts.loop) && opts.loop >= 0) attrs += ` loop="${opts.loop}"`;
  return `<Response><Say${attrs}>${escapeXml(text)}</Say></Response>`;
}

function parseTwilioProblem(text: string): { code: number | null; message: string | undefined } {
  const parsed = tryParseJson(text);
  if (!isRecord(parsed)) return { code: null, message: undefined };
  const code =
    typeof parsed.code === 'number' ? parsed.code : typeof parsed.code === 'string' ? Number(parsed.code) : NaN;
  const message = typeof parsed.message === 'string' ? parsed.message : undefined;
  return { code: Number.isInteger(code) ? code : null, message };
}

function badSignature(): AuthenticationError {
  return new AuthenticationError('webhook_signature_invalid', 'X-Twilio-Signature does not match the request');
}

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `Twilio webhook: ${message}`);
}

function groupParams(params: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of params) {
    const values = out[k];
    if (values === undefined) out[k] = [v];
    else values.push(v);
  }
  return out;
}

function firstValues(params: Record<string, string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (v[0] !== undefined) out[k] = v[0];
  return out;
}

/** A JSON-bodied webhook: a flat object of the same parameters (scalars), as Twilio's JSON webhooks send them. */
function jsonFields(rawBody: Buffer): Record<string, string> {
  const parsed = parseJsonBody(rawBody, invalidPayload);
  if (!isRecord(parsed)) throw invalidPayload('JSON body must be an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
  }
  return out;
}

const MESSAGE_STATUSES: Readonly<Record<string, 'sent' | 'delivered' | 'read' | 'undelivered' | 'failed'>> = {
  sent: 'sent',
  delivered: 'delivered',
  read: 'read',
  undelivered: 'undelivered',
  failed: 'failed',
};

/** Call progress (Calls resource "Call Status values") → message status; `queued` is not reported. */
const CALL_STATUSES: Readonly<Record<string, 'sent' | 'delivered' | 'undelivered' | 'failed'>> = {
  initiated: 'sent',
  ringing: 'sent',
  'in-progress': 'sent',
  answered: 'sent',
  completed: 'delivered',
  busy: 'undelivered',
  'no-answer': 'undelivered',
  failed: 'failed',
  canceled: 'failed',
};

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.length > 0 ? v : undefined;
}

function compact(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function mapFields(f: Record<string, string>, reference: string | null, now: number): CarrierEvent[] {
  if (nonEmpty(f.CallSid) !== undefined && nonEmpty(f.CallStatus) !== undefined && f.MessageSid === undefined) {
    return mapCallStatus(f, reference, now);
  }
  const status = nonEmpty(f.MessageStatus) ?? nonEmpty(f.SmsStatus);
  if (status === undefined || status === 'received' || status === 'receiving') return mapInbound(f, now);
  return mapMessageStatus(f, status, reference, now);
}

/** The error of a failed or undelivered message or call: Twilio's `ErrorCode` when it gives one, else `fallback`. */
function reportedError(f: Record<string, string>, fallback: MessageError): MessageError {
  const code = nonEmpty(f.ErrorCode);
  return code !== undefined ? twilioMessageError(code, nonEmpty(f.ErrorMessage)).error : fallback;
}

function mapMessageStatus(
  f: Record<string, string>,
  rawStatus: string,
  reference: string | null,
  now: number,
): CarrierEvent[] {
  const status = MESSAGE_STATUSES[rawStatus];
  if (status === undefined) return [];
  const sid = nonEmpty(f.MessageSid) ?? nonEmpty(f.SmsSid);
  if (sid === undefined) throw invalidPayload('status callback without MessageSid');
  const error =
    status === 'failed' || status === 'undelivered'
      ? reportedError(f, {
          code: `message_${status}`,
          class: 'PermanentError',
          message: `Twilio reported the message ${status}`,
        })
      : undefined;
  const whatsapp = f.ChannelPrefix === 'whatsapp' || (f.To ?? '').startsWith(WHATSAPP);
  return [
    {
      kind: 'status',
      eventKey: `twilio:${sid}:${rawStatus}`,
      providerMessageId: sid,
      reference,
      status,
      ...(error ? { error } : {}),
      occurredAt: now,
      detail: compact({
        channel: whatsapp ? 'whatsapp' : undefined,
        accountSid: nonEmpty(f.AccountSid),
        messagingServiceSid: nonEmpty(f.MessagingServiceSid),
        eventType: nonEmpty(f.EventType),
        rawDlrDoneDate: nonEmpty(f.RawDlrDoneDate),
      }),
    },
  ];
}

function mapCallStatus(f: Record<string, string>, reference: string | null, now: number): CarrierEvent[] {
  // Progress of calls someone made to our number is not a message we sent.
  if ((f.Direction ?? '').startsWith('inbound')) return [];
  const rawStatus = f.CallStatus as string;
  const status = CALL_STATUSES[rawStatus];
  if (status === undefined) return [];
  const sid = f.CallSid as string;
  const error =
    status === 'failed' || status === 'undelivered'
      ? reportedError(f, {
          code: `call_${rawStatus.replace(/-/g, '_')}`,
          class: 'PermanentError',
          message: `the call ended ${rawStatus}`,
        })
      : undefined;
  const at = f.Timestamp !== undefined ? Date.parse(f.Timestamp) : Number.NaN;
  return [
    {
      kind: 'status',
      eventKey: `twilio:${sid}:${rawStatus}:${f.SequenceNumber ?? ''}`,
      providerMessageId: sid,
      reference,
      status,
      ...(error ? { error } : {}),
      occurredAt: Number.isNaN(at) ? now : at,
      detail: compact({
        channel: 'voice',
        callStatus: rawStatus,
        callDuration: nonEmpty(f.CallDuration),
        answeredBy: nonEmpty(f.AnsweredBy),
        sequenceNumber: nonEmpty(f.SequenceNumber),
        sipResponseCode: nonEmpty(f.SipResponseCode),
      }),
    },
  ];
}

function mapInbound(f: Record<string, string>, now: number): CarrierEvent[] {
  const sid = nonEmpty(f.MessageSid) ?? nonEmpty(f.SmsMessageSid) ?? nonEmpty(f.SmsSid);
  const from = nonEmpty(f.From);
  const to = nonEmpty(f.To);
  if (sid === undefined || from === undefined || to === undefined) {
    throw invalidPayload('inbound message without MessageSid, From and To');
  }
  const numMedia = f.NumMedia !== undefined && /^\d+$/.test(f.NumMedia) ? Number(f.NumMedia) : 0;
  let channel: Channel;
  if (from.startsWith(WHATSAPP) || to.startsWith(WHATSAPP)) channel = 'whatsapp';
  else if (/^[a-z][a-z0-9-]*:/i.test(from))
    return []; // another Twilio channel (Messenger, RCS...) we do not send on
  else channel = numMedia > 0 ? 'mms' : 'sms';
  const strip = (a: string) => (a.startsWith(WHATSAPP) ? a.slice(WHATSAPP.length) : a);
  const media: { url: string; contentType?: string }[] = [];
  for (let i = 0; i < numMedia; i++) {
    const url = nonEmpty(f[`MediaUrl${i}`]);
    const contentType = nonEmpty(f[`MediaContentType${i}`]);
    if (url !== undefined) media.push(contentType === undefined ? { url } : { url, contentType });
  }
  const location =
    f.Latitude !== undefined && f.Longitude !== undefined
      ? compact({
          latitude: Number(f.Latitude),
          longitude: Number(f.Longitude),
          address: nonEmpty(f.Address),
          label: nonEmpty(f.Label),
        })
      : undefined;
  return [
    {
      kind: 'inbound',
      eventKey: `twilio:inbound:${sid}`,
      providerMessageId: sid,
      channel,
      from: strip(from),
      to: strip(to),
      body: f.Body ?? '',
      occurredAt: now,
      detail: compact({
        accountSid: nonEmpty(f.AccountSid),
        messagingServiceSid: nonEmpty(f.MessagingServiceSid),
        numSegments: nonEmpty(f.NumSegments),
        media: media.length > 0 ? media : undefined,
        location,
        profileName: nonEmpty(f.ProfileName),
        waId: nonEmpty(f.WaId),
        buttonText: nonEmpty(f.ButtonText),
        buttonPayload: nonEmpty(f.ButtonPayload),
        replyToProviderMessageId: nonEmpty(f.OriginalRepliedMessageSid),
        fromCity: nonEmpty(f.FromCity),
        fromState: nonEmpty(f.FromState),
        fromZip: nonEmpty(f.FromZip),
        fromCountry: nonEmpty(f.FromCountry),
        toCity: nonEmpty(f.ToCity),
        toState: nonEmpty(f.ToState),
        toZip: nonEmpty(f.ToZip),
        toCountry: nonEmpty(f.ToCountry),
      }),
    },
  ];
}
