/**
 * Carrier adapter for Lob's Print & Mail API: the `print` channel as letters.
 *
 * Each message becomes one `POST {baseUrl}/v1/letters` (lob/lob-openapi `resources/letters/letters.yml`,
 * operation `letter_create`), sent as `multipart/form-data` because that is the only request format that
 * uploads a file (API reference, "Requests and Responses" / Request Body). The letter's `file` is a PDF we
 * render from the message (letter-pdf.ts); the recipient and return addresses go inline as `to[...]` and
 * `from[...]` fields, the bracketed form Lob's own Node library uses for nested objects in multipart bodies
 * (lob/lob-node `lib/resources/letters.js`).
 *
 * - Authentication: HTTP Basic with the API key as user name and an empty password ("Authentication").
 * - Idempotency: an `Idempotency-Key` header ("Idempotent Requests") equal to our message id, the same on
 *   every attempt, so a retry after a timeout returns the letter already created instead of printing twice
 *   (keys last 24 hours, at most 256 characters).
 * - Our message id also rides in `metadata[omni_message_id]` ("Metadata"), which every webhook event echoes
 *   in its letter body; that is how receipts find their message.
 * - Lob reports no price in the letter object; the sender's `costPerMessage` is reported when configured.
 *
 * Sender config: `{ apiKey, webhookSecret, baseUrl?, returnAddress?, mailType?, useType?, color?, doubleSided?,
 * rateLimitPerSecond?, costPerMessage? }`. Webhooks are registered in Lob's dashboard (not per request): the
 * sender's webhook URL is subscribed there to the `letter.*` events, and its secret stored as `webhookSecret`.
 */
import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import type {
  Carrier,
  CarrierEvent,
  PostalAddress,
  ProviderDefinition,
  SenderRecord,
  SendRequest,
  SendResult,
  WebhookRequest,
} from '../../../ports/carrier.ts';
import type { Clock } from '../../../ports/clock.ts';
import { systemClock } from '../../clock/system-clock.ts';
import {
  type CarrierHttpResponse,
  checkRateLimitConfig,
  configBaseUrl,
  errorReason,
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
import { renderLetterPdf } from './letter-pdf.ts';
import { isRetryableLobError } from './lob-errors.ts';
import { LOB_REFERENCE_METADATA_KEY, parseLobEvent, verifyLobSignature } from './lob-webhook.ts';

export const LOB_PROVIDER = 'lob';
export const LOB_DEFAULT_BASE_URL = 'https://api.lob.com';

const REQUEST_TIMEOUT_MS = 30_000;
/** Letters in flight per sender; Lob allows 150 requests per 5 seconds per endpoint ("Rate Limiting"). */
const CONCURRENCY = 8;
/** The wait Lob's documented 429 answer asks for ("Please wait 5 seconds and try your request again"). */
const DEFAULT_RATE_LIMIT_WAIT_MS = 5000;
/** Lob's limits: `description` 255 characters; metadata values 500 and without `"` or `\` ("Metadata"). */
const MAX_DESCRIPTION = 255;

const MAIL_TYPES = ['usps_first_class', 'usps_standard'] as const;
const USE_TYPES = ['operational', 'marketing'] as const;
type MailType = (typeof MAIL_TYPES)[number];
type UseType = (typeof USE_TYPES)[number];

const CONFIG_FIELDS = new Set([
  'apiKey',
  'webhookSecret',
  'baseUrl',
  'returnAddress',
  'mailType',
  'useType',
  'color',
  'doubleSided',
  'rateLimitPerSecond',
  'costPerMessage',
]);

interface LobConfig {
  apiKey: string;
  webhookSecret: string;
  baseUrl: URL;
  returnAddress: PostalAddress | undefined;
  mailType: MailType | undefined;
  useType: UseType;
  color: boolean;
  doubleSided: boolean;
  costPerMessage: number | undefined;
}

const POSTAL_ADDRESS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'line1', 'city', 'postalCode', 'country'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 40, description: 'Person or organization (Lob: at most 40).' },
    company: { type: 'string', maxLength: 40, description: 'Second name line, e.g. a company (at most 40).' },
    line1: { type: 'string', minLength: 1, maxLength: 64, description: 'Street address.' },
    line2: { type: 'string', maxLength: 64, description: 'Apartment, suite, unit.' },
    city: { type: 'string', minLength: 1, maxLength: 200 },
    state: { type: 'string', description: 'Two-letter state code (required for US addresses).' },
    postalCode: { type: 'string', minLength: 1, description: 'ZIP (12345 or 12345-6789) for US addresses.' },
    country: { type: 'string', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 country code.' },
  },
} as const;

export const LOB_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Lob sender',
  type: 'object',
  additionalProperties: false,
  required: ['apiKey', 'webhookSecret'],
  properties: {
    apiKey: {
      type: 'string',
      minLength: 1,
      description: 'Lob secret API key (`test_...` or `live_...`, not a publishable `*_pub_*` key).',
    },
    webhookSecret: {
      type: 'string',
      minLength: 1,
      description: "Secret of the Lob webhook that posts this sender's letter events (Lob dashboard, Webhooks).",
    },
    baseUrl: {
      type: 'string',
      format: 'uri',
      default: LOB_DEFAULT_BASE_URL,
      description: 'Lob API base URL (override for tests and proxies).',
    },
    returnAddress: {
      ...POSTAL_ADDRESS_SCHEMA,
      description: 'Return address printed on letters when a message gives none; Lob requires a US address.',
    },
    mailType: {
      type: 'string',
      enum: [...MAIL_TYPES],
      description: "Postage class; Lob's default is usps_first_class.",
    },
    useType: {
      type: 'string',
      enum: [...USE_TYPES],
      default: 'operational',
      description: 'Declared use of the letters (Lob `use_type`).',
    },
    color: { type: 'boolean', default: false, description: 'Print in color unless the message says otherwise.' },
    doubleSided: {
      type: 'boolean',
      default: true,
      description: 'Print on both sides unless the message says otherwise.',
    },
    rateLimitPerSecond: { type: 'integer', minimum: 1, description: 'Letters per second this sender may create.' },
    costPerMessage: { type: 'number', minimum: 0, description: 'Price of one letter, reported as its cost.' },
  },
} as const;

function parseConfig(config: Record<string, unknown>): LobConfig {
  rejectUnknownConfigFields(LOB_PROVIDER, config, CONFIG_FIELDS, 'is not a Lob sender setting');
  const apiKey = requireConfigString(LOB_PROVIDER, config, 'apiKey');
  if (/\s|:/.test(apiKey)) throw invalidConfig(LOB_PROVIDER, 'apiKey', 'must not contain spaces or colons');
  if (/^[a-z]+_pub/i.test(apiKey)) {
    throw invalidConfig(LOB_PROVIDER, 'apiKey', 'must be a secret API key; publishable keys cannot send mail');
  }
  const webhookSecret = requireConfigString(LOB_PROVIDER, config, 'webhookSecret');
  const baseUrl = configBaseUrl(LOB_PROVIDER, config, 'baseUrl', LOB_DEFAULT_BASE_URL);
  let returnAddress: PostalAddress | undefined;
  if (config.returnAddress !== undefined) {
    const problem = postalAddressProblem(config.returnAddress);
    if (problem) throw invalidConfig(LOB_PROVIDER, 'returnAddress', problem);
    returnAddress = config.returnAddress as PostalAddress;
  }
  const mailType = config.mailType;
  if (mailType !== undefined && !MAIL_TYPES.includes(mailType as MailType)) {
    throw invalidConfig(LOB_PROVIDER, 'mailType', `must be one of ${MAIL_TYPES.join(', ')}`);
  }
  const useType = config.useType ?? 'operational';
  if (!USE_TYPES.includes(useType as UseType)) {
    throw invalidConfig(LOB_PROVIDER, 'useType', `must be one of ${USE_TYPES.join(', ')}`);
  }
  for (const field of ['color', 'doubleSided'] as const) {
    if (config[field] !== undefined && typeof config[field] !== 'boolean') {
      throw invalidConfig(LOB_PROVIDER, field, 'must be a boolean');
    }
  }
  checkRateLimitConfig(LOB_PROVIDER, config);
  const cost = optionalCostConfig(LOB_PROVIDER, config);
  return {
    apiKey,
    webhookSecret,
    baseUrl,
    returnAddress,
    mailType: mailType as MailType | undefined,
    useType: useType as UseType,
    color: (config.color as boolean | undefined) ?? false,
    doubleSided: (config.doubleSided as boolean | undefined) ?? true,
    costPerMessage: cost,
  };
}

/** Why a value is not a usable PostalAddress, or undefined when it is one. */
function postalAddressProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'must be a postal address object';
  for (const field of ['name', 'line1', 'city', 'postalCode', 'country'] as const) {
    const v = value[field];
    if (typeof v !== 'string' || v.trim().length === 0) return `.${field} must be a non-empty string`;
  }
  for (const field of ['company', 'line2', 'state'] as const) {
    if (value[field] !== undefined && typeof value[field] !== 'string') return `.${field} must be a string`;
  }
  if (!/^[A-Za-z]{2}$/.test(value.country as string)) return '.country must be an ISO 3166-1 alpha-2 code';
  return undefined;
}

/** A multipart form field: text, or the uploaded file. */
type FormField = { name: string; value: string } | { name: string; filename: string; type: string; data: Buffer };

/** Encodes form fields as a `multipart/form-data` body (RFC 7578). */
export function encodeMultipart(fields: readonly FormField[], boundary: string): Buffer {
  const parts: Buffer[] = [];
  const quote = (s: string) => s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  for (const field of fields) {
    if ('data' in field) {
      parts.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${quote(field.name)}"; filename="${quote(field.filename)}"\r\nContent-Type: ${field.type}\r\n\r\n`,
        ),
        field.data,
        Buffer.from('\r\n'),
      );
    } else {
      parts.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${quote(field.name)}"\r\n\r\n${field.value}\r\n`,
        ),
      );
    }
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

/** Lob's inline address fields (`address_editable_us.yml` / `address_editable_intl.yml`) under `prefix[...]`. */
function addressFields(prefix: string, address: PostalAddress): FormField[] {
  const country = address.country.toUpperCase();
  const entries: [string, string | undefined][] = [
    ['name', address.name],
    ['company', address.company],
    ['address_line1', address.line1],
    ['address_line2', address.line2],
    ['address_city', address.city],
    ['address_state', address.state],
    ['address_zip', address.postalCode],
    ['address_country', country],
  ];
  return entries
    .filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim().length > 0)
    .map(([key, value]) => ({ name: `${prefix}[${key}]`, value: value.trim() }));
}

/** The multipart fields of a letter create request for one message. */
export function letterFields(
  request: SendRequest,
  to: PostalAddress,
  from: PostalAddress,
  pdf: Buffer,
  config: Pick<LobConfig, 'color' | 'doubleSided' | 'mailType' | 'useType'>,
): FormField[] {
  const print = request.options?.print;
  const fields: FormField[] = [];
  const description = request.to.trim().slice(0, MAX_DESCRIPTION);
  if (description.length > 0) fields.push({ name: 'description', value: description });
  fields.push(...addressFields('to', to), ...addressFields('from', from));
  fields.push({ name: 'file', filename: 'letter.pdf', type: 'application/pdf', data: pdf });
  fields.push({ name: 'color', value: String(print?.color ?? config.color) });
  fields.push({ name: 'double_sided', value: String(print?.doubleSided ?? config.doubleSided) });
  fields.push({ name: 'address_placement', value: 'top_first_page' });
  if (config.mailType) fields.push({ name: 'mail_type', value: config.mailType });
  fields.push({ name: 'use_type', value: config.useType });
  fields.push({ name: `metadata[${LOB_REFERENCE_METADATA_KEY}]`, value: request.messageId });
  return fields;
}

/** Lob's error envelope `{error: {code, message}}`; nothing when the answer is not one (a proxy's error page). */
function errorEnvelope(text: string): { code?: string; message?: string } {
  const parsed = tryParseJson(text);
  if (!isRecord(parsed) || !isRecord(parsed.error)) return {};
  const { code, message } = parsed.error;
  return {
    ...(typeof code === 'string' && code.length > 0 ? { code: code.toLowerCase() } : {}),
    ...(typeof message === 'string' ? { message } : {}),
  };
}

/** How long a 429 asks us to wait: Retry-After, else the rate-limit window's reset (epoch seconds), else 5 s. */
function rateLimitWaitMs(headers: CarrierHttpResponse['headers'], nowMs: number): number {
  const retryAfter = parseRetryAfter(headers['retry-after'], nowMs);
  if (retryAfter !== undefined) return retryAfter;
  const reset = headerValue(headers, 'x-rate-limit-reset') ?? headerValue(headers, 'ratelimit-reset');
  if (reset !== undefined && /^\d+$/.test(reset.trim())) {
    const n = Number(reset.trim());
    return n > 1e9 ? Math.max(0, n * 1000 - nowMs) : n * 1000;
  }
  return DEFAULT_RATE_LIMIT_WAIT_MS;
}

export function createLobCarrier(
  sender: SenderRecord,
  _ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const config = parseConfig(sender.config);
  const base = config.baseUrl;
  const path = `${base.pathname.replace(/\/+$/, '')}/v1/letters`;
  const pool = new Pool(base.origin, { connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  const authorization = `Basic ${Buffer.from(`${config.apiKey}:`).toString('base64')}`;
  const cost = config.costPerMessage ?? sender.costPerMessage ?? null;

  async function sendOne(request: SendRequest): Promise<SendResult> {
    if (request.channel !== 'print') {
      return permanentFailure('channel_not_supported', `Lob sends letters (channel 'print'), not '${request.channel}'`);
    }
    const print = request.options?.print;
    if (!print?.to) {
      return permanentFailure('print_address_missing', 'a print message needs the postal address in options.print.to');
    }
    const toProblem = postalAddressProblem(print.to);
    if (toProblem) return permanentFailure('print_address_invalid', `options.print.to${toProblem}`);
    const from = print.from ?? config.returnAddress;
    if (!from) {
      return permanentFailure(
        'print_return_address_missing',
        'a letter needs a return address: options.print.from or the sender config returnAddress',
      );
    }
    const fromProblem = postalAddressProblem(from);
    if (fromProblem) return permanentFailure('print_address_invalid', `options.print.from${fromProblem}`);
    if ((request.body ?? '').trim().length === 0 && (request.subject ?? '').trim().length === 0) {
      return permanentFailure('print_content_missing', 'a letter needs a subject or a body to print');
    }

    let pdf: Buffer;
    try {
      pdf = await renderLetterPdf({ subject: request.subject, body: request.body, createdAt: new Date(clock.now()) });
    } catch (err) {
      return permanentFailure('print_render_failed', `the letter PDF could not be rendered: ${errorReason(err)}`);
    }
    const boundary = `----omni-lob-${randomBytes(12).toString('hex')}`;
    const body = encodeMultipart(letterFields(request, print.to, from, pdf, config), boundary);

    const headers = {
      authorization,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(body.length),
      accept: 'application/json',
      'idempotency-key': request.messageId.slice(0, 256),
    };
    const answer = await requestText(pool, { method: 'POST', path, headers, body }, REQUEST_TIMEOUT_MS);
    if (!answer.ok) return retryableFailure('lob_unavailable', `Lob could not be reached: ${answer.reason}`);

    const { status, text } = answer;
    if (status >= 200 && status < 300) {
      const letter = tryParseJson(text);
      if (isRecord(letter) && typeof letter.id === 'string' && letter.id.startsWith('ltr_')) {
        return { ok: true, providerMessageId: letter.id, cost };
      }
      // The letter may exist: a retry carries the same Idempotency-Key and gets it back instead of a second one.
      return retryableFailure('lob_invalid_response', `Lob answered HTTP ${status} without a letter object`);
    }

    const { code, message } = errorEnvelope(text);
    const detail = `Lob answered HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`;
    if (status === 429) {
      return retryableFailure(code ?? 'rate_limit_exceeded', detail, rateLimitWaitMs(answer.headers, clock.now()));
    }
    if (isRetryableLobError(code, status)) return retryableFailure(code ?? 'lob_unavailable', detail);
    if (status === 401 || status === 403) return permanentFailure(code ?? 'lob_auth_failed', detail);
    return permanentFailure(code ?? 'lob_request_rejected', detail);
  }

  return {
    provider: LOB_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      return sendEach(requests, CONCURRENCY, sendOne);
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      verifyLobSignature(request, config.webhookSecret, clock.now());
      return parseLobEvent(request.rawBody);
    },

    async close() {
      await pool.close();
    },
  };
}

export const lobProvider: ProviderDefinition = {
  id: LOB_PROVIDER,
  displayName: 'Lob (letters)',
  channels: ['print'],
  configSchema: LOB_CONFIG_SCHEMA as unknown as Record<string, unknown>,
  secretFields: ['apiKey', 'webhookSecret'],
  create: (sender, ctx) => createLobCarrier(sender, ctx),
};
