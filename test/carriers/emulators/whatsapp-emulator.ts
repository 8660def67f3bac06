/**
 * An emulator of Meta's WhatsApp Cloud API (Graph API v23.0) for carrier tests: `POST /{Version}/{Phone-Number-ID}/messages`
 * and the signed `messages` webhooks Meta posts back.
 *
 * What it checks in every request, and where the rule comes from:
 * - Method, path and body against Meta's OpenAPI description (`whatsapp/business-messaging-api_v23.0.yaml`, via
 *   OpenApiValidator): the operation must exist, the `Authorization` and `Content-Type` header parameters are
 *   required, the body must match the `Message` schema of its `type`.
 * - Two defects of that description are worked around, each replaced by the rule Meta documents in prose:
 *   `biz_opaque_callback_data` is missing from every message schema although the Messages reference documents it
 *   ("an arbitrary string, useful for tracking … Maximum 512 characters"), so it is checked by hand and removed
 *   before schema validation; and `TemplateComponent.index` carries the malformed pattern `^[2-6, 11-14]$`, which
 *   rejects Meta's own examples ("0", "1"), so indexes are checked by hand against the documented rule
 *   ("Position index of the button (0-9)") and a conforming index is shown to the schema as one its pattern takes.
 * - By hand (Messages reference): `Authorization: Bearer <token>` (security scheme `bearerAuth`),
 *   `messaging_product` is "whatsapp", `to` is a phone number / WhatsApp ID, a text body holds 1–4096 characters,
 *   and a `User-Agent`, when sent, matches the spec's `UserAgent` parameter pattern.
 * A request breaking a rule is recorded in `violations` and answered with Graph error `(#100) Invalid parameter`
 * (HTTP 400). A well-formed request with the wrong access token gets `(#190)` (HTTP 401); one for another phone
 * number ID gets `(#100)` "Unsupported post request" (HTTP 400). Neither is a violation: the request is allowed, the
 * credentials are just wrong.
 *
 * Destination rules (by the `to` number; everything else is delivered):
 * - `+14155550100` rejected at send, permanently: HTTP 400, `(#131009) Parameter value is not valid`.
 * - `+14155550101` the service is unavailable: HTTP 500, `(#131016) Service unavailable`.
 * - `+14155550102` throttled: HTTP 429 with `Retry-After: 2`, the documented `(#130429) Rate limit hit` body.
 *   (Meta documents the code, not the HTTP status or header; they exercise the adapter's handling of both.)
 * - `+14155550103` pair rate limit: HTTP 400, `(#131056)`, no `Retry-After`.
 * - `+14155550104` accepted, then a `failed` status webhook with `(#131026) Message undeliverable`.
 * - any other number: accepted (`messages[0].id = wamid…`), then `sent` → `delivered` → `read` status webhooks.
 *
 * Webhooks are shaped like the documented examples (`whatsapp/webhook.status-*.json`, `webhook.inbound-text.json`),
 * echo `biz_opaque_callback_data` in every status, are posted one status per request a few milliseconds apart,
 * are serialized with non-ASCII characters \u-escaped as Meta does, and are signed with
 * `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>` (Graph API "Webhooks: Getting started",
 * Validating Payloads) plus the legacy `X-Hub-Signature: sha1=…`.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request as httpRequest } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';
import { OpenApiValidator } from '../support/openapi-validator.ts';

export const WHATSAPP_SPEC = 'whatsapp/business-messaging-api_v23.0.yaml';

export const WHATSAPP_EMULATOR_NUMBERS = {
  /** Our business number (the documented examples' display number). */
  business: '+15550783881',
  delivered: '+14155550123',
  rejected: '+14155550100',
  unavailable: '+14155550101',
  throttled: '+14155550102',
  pairRateLimited: '+14155550103',
  undeliverable: '+14155550104',
} as const;

export const WHATSAPP_EMULATOR_IDS = {
  phoneNumberId: '106540352242922',
  businessAccountId: '102290129340398',
} as const;

const MAX_CALLBACK_DATA = 512;
const MAX_TEXT = 4096;
const USER_AGENT_PATTERN =
  /^[a-zA-Z0-9\-_]+\/[0-9]+\.[0-9]+\.[0-9]+(;[a-zA-Z0-9\-=.]+)?(\s+[a-zA-Z0-9\-_]+\/[0-9\-.]+)?$/;
/** A button index the defective `^[2-6, 11-14]$` pattern accepts, standing in for a documented one (0–9). */
const INDEX_STAND_IN = '2';

let sharedValidator: OpenApiValidator | undefined;
/** The spec is large (1 MB of YAML): parsed once, shared by every emulator. */
export function specValidator(): OpenApiValidator {
  sharedValidator ??= new OpenApiValidator(WHATSAPP_SPEC);
  return sharedValidator;
}

/** `sha256=<hex>` of a webhook body, as Meta signs it (an implementation separate from the adapter's). */
export function signWhatsAppWebhook(appSecret: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', appSecret).update(body).digest('hex')}`;
}

/** JSON as Meta's webhooks carry it: every non-ASCII UTF-16 unit escaped as `\uXXXX` (signatures cover these bytes). */
export function metaJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface WhatsAppEmulatorOptions {
  webhookUrl: string;
  /** Delay before each webhook (ms); default 5. */
  delayMs?: number;
  accessToken?: string;
  appSecret?: string;
  verifyToken?: string;
}

export class WhatsAppEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  /** Every request received, parsed, in order. */
  readonly received: ReceivedRequest[] = [];
  senderConfig: Record<string, unknown> = {};
  readonly accessToken: string;
  readonly appSecret: string;
  readonly verifyToken: string;

  private readonly server: Server;
  private readonly agent = new Agent({ keepAliveTimeout: 1_000 });
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private accepted = 0;
  private seq = 0;
  private closed = false;

  constructor(private readonly options: WhatsAppEmulatorOptions) {
    this.accessToken = options.accessToken ?? 'EAAGemulatorAccessToken0123456789';
    this.appSecret = options.appSecret ?? 'emulator-app-secret';
    this.verifyToken = options.verifyToken ?? 'emulator-verify-token';
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks), res));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.senderConfig = {
      phoneNumberId: WHATSAPP_EMULATOR_IDS.phoneNumberId,
      businessAccountId: WHATSAPP_EMULATOR_IDS.businessAccountId,
      accessToken: this.accessToken,
      appSecret: this.appSecret,
      verifyToken: this.verifyToken,
      apiVersion: 'v23.0',
      baseUrl: `http://127.0.0.1:${port}`,
    };
    return this;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  /** Posts a signed inbound text message webhook (shaped like `webhook.inbound-text.json`). */
  async sendInbound(input: { from: string; to: string; body: string }): Promise<void> {
    const wa = digits(input.from);
    await this.postWebhook({
      contacts: [{ profile: { name: 'Emulated Handset' }, wa_id: wa }],
      messages: [
        {
          from: wa,
          id: this.wamid(wa),
          timestamp: unixNow(),
          type: 'text',
          text: { body: input.body },
        },
      ],
      displayNumber: digits(input.to),
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.agent.close();
  }

  // -------------------------------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, raw: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = headerOf(req.headers, 'content-type');
    let body: unknown;
    let bodyOk = true;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        bodyOk = false;
        body = raw.toString('utf8');
      }
    }
    this.received.push({ method, path: url.pathname, headers: { ...req.headers }, body });

    const problems: string[] = [];
    const segments = url.pathname.split('/').filter((s) => s.length > 0);
    const isMessages = method === 'POST' && segments.length === 3 && segments[2] === 'messages';
    if (!isMessages || specValidator().operationFor(method, url.pathname) === undefined) {
      this.reject(res, [`${method} ${url.pathname}: not an operation this emulator (or the spec) offers`]);
      return;
    }
    const [version, phoneNumberId] = segments as [string, string, string];
    if (!/^v\d+\.\d+$/.test(version)) problems.push(`path version '${version}' is not a Graph API version (vNN.N)`);

    const auth = headerOf(req.headers, 'authorization');
    const bearer = auth === undefined ? undefined : /^Bearer\s+(\S+)$/.exec(auth);
    if (!bearer) problems.push("header 'Authorization' must be 'Bearer <access token>' (security scheme bearerAuth)");
    const ua = headerOf(req.headers, 'user-agent');
    if (ua !== undefined && !USER_AGENT_PATTERN.test(ua))
      problems.push(`header 'User-Agent' '${ua}' breaks its pattern`);
    if ((contentType ?? '').split(';')[0]?.trim().toLowerCase() !== 'application/json') {
      problems.push(`Content-Type '${contentType ?? '(none)'}': message bodies are JSON`);
    }
    if (!bodyOk) problems.push('body is not valid JSON');
    if (problems.length > 0) {
      this.reject(res, problems);
      return;
    }

    if (!isRecord(body)) {
      this.reject(res, ['body must be a JSON object']);
      return;
    }
    const { biz_opaque_callback_data: callbackData, ...message } = body;
    if (callbackData !== undefined && (typeof callbackData !== 'string' || callbackData.length > MAX_CALLBACK_DATA)) {
      problems.push(`biz_opaque_callback_data must be a string of at most ${MAX_CALLBACK_DATA} characters`);
    }
    problems.push(
      ...specValidator().validate({
        method,
        path: url.pathname,
        headers: req.headers,
        contentType,
        body: withoutIndexDefect(message),
      }),
    );
    problems.push(...handRules(message));
    if (problems.length > 0) {
      this.reject(res, problems);
      return;
    }

    if (bearer?.[1] !== this.accessToken) {
      graphError(res, 401, {
        message: 'Invalid OAuth access token - Cannot parse access token',
        type: 'OAuthException',
        code: 190,
      });
      return;
    }
    if (phoneNumberId !== WHATSAPP_EMULATOR_IDS.phoneNumberId) {
      graphError(res, 400, {
        message: `Unsupported post request. Object with ID '${phoneNumberId}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`,
        type: 'GraphMethodException',
        code: 100,
        error_subcode: 33,
      });
      return;
    }

    const to = String(message.to);
    const wa = digits(to);
    switch (`+${wa}`) {
      case WHATSAPP_EMULATOR_NUMBERS.rejected:
        graphError(res, 400, whatsappError(131009, 'Parameter value is not valid', "Invalid 'to' parameter."));
        return;
      case WHATSAPP_EMULATOR_NUMBERS.unavailable:
        graphError(
          res,
          500,
          whatsappError(131016, 'Service unavailable', 'A service is temporarily unavailable. Please retry.'),
        );
        return;
      case WHATSAPP_EMULATOR_NUMBERS.throttled:
        // The documented example body (error-response.130429.json).
        graphError(
          res,
          429,
          {
            ...whatsappError(130429, 'Rate limit hit', 'Cloud API message throughput has been reached.'),
            error_subcode: 2494055,
          },
          { 'retry-after': '2' },
        );
        return;
      case WHATSAPP_EMULATOR_NUMBERS.pairRateLimited:
        graphError(
          res,
          400,
          whatsappError(
            131056,
            '(Business Account, Consumer Account) pair rate limit hit',
            'Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.',
          ),
        );
        return;
    }

    this.accepted++;
    const id = this.wamid(wa);
    json(res, 200, { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: wa }], messages: [{ id }] });
    const statuses =
      `+${wa}` === WHATSAPP_EMULATOR_NUMBERS.undeliverable
        ? [failedStatus(id, wa)]
        : [sentStatus(id, wa), deliveredStatus(id, wa), { id, status: 'read', recipient_id: wa }];
    const reference = typeof callbackData === 'string' ? { biz_opaque_callback_data: callbackData } : {};
    // `timestamp` is filled in when each status is posted; the placeholder keeps Meta's field order.
    this.schedule(statuses.map((s) => ({ id: s.id, status: s.status, timestamp: '', ...s, ...reference })));
  }

  private reject(res: ServerResponse, problems: string[]): void {
    this.violations.push(...problems);
    graphError(res, 400, {
      message: '(#100) Invalid parameter',
      type: 'OAuthException',
      code: 100,
      error_data: { messaging_product: 'whatsapp', details: problems.join('; ') },
    });
  }

  private wamid(wa: string): string {
    this.seq++;
    return `wamid.${Buffer.from(`HBgL${wa}FQIAERgS${String(this.seq).padStart(10, '0')}EMU`).toString('base64')}`;
  }

  /** Posts one status per webhook, in order, each `delayMs` after the previous one was answered. */
  private schedule(statuses: Record<string, unknown>[]): void {
    const delay = this.options.delayMs ?? 5;
    const next = (i: number): void => {
      if (this.closed || i >= statuses.length) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        const status = { ...(statuses[i] as Record<string, unknown>), timestamp: unixNow() };
        this.postWebhook({ statuses: [status] }).then(() => next(i + 1));
      }, delay);
      this.timers.add(timer);
    };
    next(0);
  }

  /** Posts a signed `messages` change for our number; never rejects (a closed receiver is simply missed). */
  private postWebhook(value: {
    statuses?: unknown[];
    messages?: unknown[];
    contacts?: unknown[];
    displayNumber?: string;
  }): Promise<void> {
    if (this.closed) return Promise.resolve();
    const { displayNumber, ...rest } = value;
    const payload = {
      object: 'whatsapp_business_account',
      entry: [
        {
          id: WHATSAPP_EMULATOR_IDS.businessAccountId,
          changes: [
            {
              value: {
                messaging_product: 'whatsapp',
                metadata: {
                  display_phone_number: displayNumber ?? digits(WHATSAPP_EMULATOR_NUMBERS.business),
                  phone_number_id: WHATSAPP_EMULATOR_IDS.phoneNumberId,
                },
                ...rest,
              },
              field: 'messages',
            },
          ],
        },
      ],
    };
    const body = metaJson(payload);
    const post = httpRequest(this.options.webhookUrl, {
      method: 'POST',
      dispatcher: this.agent,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'facebookexternalua',
        'x-hub-signature': `sha1=${createHmac('sha1', this.appSecret).update(body).digest('hex')}`,
        'x-hub-signature-256': signWhatsAppWebhook(this.appSecret, body),
      },
      body,
    })
      .then((res) => res.body.dump())
      .catch(() => undefined);
    this.inFlight.add(post);
    return post.finally(() => this.inFlight.delete(post));
  }
}

export async function startWhatsAppEmulator(options: WhatsAppEmulatorOptions): Promise<WhatsAppEmulator> {
  return new WhatsAppEmulator(options).start();
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * The message as the schema should see it: template button indexes that meet the documented rule (checked in
 * `handRules`) are replaced by a value the spec's malformed pattern accepts, so that only that defect is bypassed.
 */
function withoutIndexDefect(message: Record<string, unknown>): Record<string, unknown> {
  const template = message.template;
  if (!isRecord(template) || !Array.isArray(template.components)) return message;
  const components = template.components.map((c) =>
    isRecord(c) && c.type === 'button' && typeof c.index === 'string' && /^[0-9]$/.test(c.index)
      ? { ...c, index: INDEX_STAND_IN }
      : c,
  );
  return { ...message, template: { ...template, components } };
}

/** Rules the Messages reference states that the schema does not express. */
function handRules(message: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (message.messaging_product !== 'whatsapp') problems.push("messaging_product must be 'whatsapp'");
  if (typeof message.to !== 'string' || !/^\+?[0-9]{6,15}$/.test(message.to)) {
    problems.push("to must be the recipient's phone number (digits, optionally with a leading +)");
  }
  if (message.type === 'text') {
    const text = isRecord(message.text) ? message.text.body : undefined;
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT) {
      problems.push(`text.body must hold 1 to ${MAX_TEXT} characters`);
    }
  }
  if (message.type === 'template' && isRecord(message.template) && Array.isArray(message.template.components)) {
    message.template.components.forEach((c, i) => {
      if (!isRecord(c) || c.type !== 'button') return;
      if (typeof c.index !== 'string' || !/^[0-9]$/.test(c.index)) {
        problems.push(`template.components[${i}].index must be the button position, "0" to "9"`);
      }
    });
  }
  return problems;
}

function whatsappError(code: number, title: string, details: string): Record<string, unknown> {
  return {
    message: `(#${code}) ${title}`,
    type: 'OAuthException',
    code,
    error_data: { messaging_product: 'whatsapp', details },
  };
}

function graphError(
  res: ServerResponse,
  status: number,
  error: Record<string, unknown>,
  headers: Record<string, string> = {},
): void {
  json(res, status, { error: { ...error, fbtrace_id: 'AemulatorTrace0000000' } }, headers);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers }).end(JSON.stringify(body));
}

/** `sent` as in `webhook.status-sent.json`: with the conversation and PMP pricing of a marketing message. */
function sentStatus(id: string, wa: string): Record<string, unknown> {
  return {
    id,
    status: 'sent',
    recipient_id: wa,
    conversation: {
      id: Buffer.from(id).toString('hex').slice(-32),
      expiration_timestamp: String(Math.floor(Date.now() / 1000) + 86_400),
      origin: { type: 'marketing' },
    },
    pricing: { billable: true, pricing_model: 'PMP', type: 'regular', category: 'marketing' },
  };
}

/** `delivered` as in `webhook.status-delivered-bsuid.json` (without the username-era contacts). */
function deliveredStatus(id: string, wa: string): Record<string, unknown> {
  return {
    id,
    status: 'delivered',
    recipient_id: wa,
    pricing: { billable: true, pricing_model: 'PMP', type: 'regular', category: 'marketing' },
  };
}

/** `failed` as in `webhook.status-failed.json`, with the error of an undeliverable number. */
function failedStatus(id: string, wa: string): Record<string, unknown> {
  return {
    id,
    status: 'failed',
    recipient_id: wa,
    errors: [
      {
        code: 131026,
        title: 'Message undeliverable',
        message: 'Message undeliverable',
        error_data: { details: 'Message Undeliverable.' },
        href: '/documentation/business-messaging/whatsapp/support/error-codes',
      },
    ],
  };
}

function unixNow(): string {
  return String(Math.floor(Date.now() / 1000));
}

function digits(s: string): string {
  return s.replace(/\D/g, '');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerOf(headers: IncomingMessage['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
