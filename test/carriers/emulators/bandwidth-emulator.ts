/**
 * A local emulator of Bandwidth Messaging v2 (SMS/MMS), for the carrier contract and the adapter's tests.
 *
 * What it accepts. `POST /api/v2/users/{accountId}/messages` is checked against Bandwidth's OpenAPI
 * description (`../shared/fixtures/carriers/bandwidth/bandwidth.yml`, operation `createMessage`, through
 * OpenApiValidator) and by hand against the documented rules the schema does not encode:
 *  - security (spec `security: [Basic, OAuth2]`): `Authorization: Basic base64(user:password)` of the API user,
 *    or `Bearer <token>` issued by the token endpoint below; no header or another scheme is a violation (401);
 *  - `Content-Type: application/json` (docs "Errors", 415 Unsupported Media Type);
 *  - only the fields of the spec's `messageRequest` (applicationId, to, from, text, media, tag, priority,
 *    expiration);
 *  - `to` in E.164 (spec `messageRequest.to` description), at most 10 recipients (docs "Webhooks": group messages
 *    have at most 10 participants, more is answered with a 400);
 *  - `from` a phone number in E.164 or an alphanumeric sender id of up to 11 characters (spec `messageRequest.from`);
 *  - `tag` at most 1024 characters (docs "Send Messages", Tags); `media` items http(s) URLs (spec `format: uri`).
 * A request breaking one of these is recorded in `violations` and answered with Bandwidth's documented error
 * (`http-error-responses.json`). `POST /api/v1/oauth2/token` implements the OAuth2 client-credentials grant the
 * spec names (`components.securitySchemes.OAuth2`): RFC 6749 §4.4.2 form body `grant_type=client_credentials`,
 * client authenticated with HTTP Basic (§2.3.1); errors as §5.2.
 *
 * What it answers. `202` with the created message (shape of `send-response.*.202.json`), then, after a few
 * milliseconds, the application's callbacks to its callback URL (Bandwidth takes the URL from the messaging
 * application, so the emulator takes it from its options): a JSON array with one event, `Content-Type:
 * application/json; charset=utf-8`, `User-Agent: BandwidthAPI/v2`, and `Authorization: Basic` with the
 * application's callback credentials (docs "Webhooks", "Applications"). A callback not answered 2xx is retried.
 *
 * Destination rules (the create request's `to`):
 *  - BANDWIDTH_NUMBERS.rejected             400 request-validation with a fieldError on `to` (permanent)
 *  - BANDWIDTH_NUMBERS.unavailable          500 (retryable)
 *  - BANDWIDTH_NUMBERS.throttled            429 max-message-queue-size-exceeded, no Retry-After (as createMessage's
 *                                           429 is documented)
 *  - BANDWIDTH_NUMBERS.throttledRetryAfter  the same 429 with `Retry-After: 2` (the spec's rate-limit answer)
 *  - BANDWIDTH_NUMBERS.undeliverable        202, then message-sending and message-failed errorCode 4720
 *                                           (invalid-destination-address, a carrier rejection)
 *  - BANDWIDTH_NUMBERS.receiptExpired       202, then message-sending and message-failed errorCode 9902
 *                                           (delivery-receipt-expired, ambiguous, retryable)
 *  - any other E.164 number                 202, then message-sending and message-delivered
 * `sendInbound` posts a `message-received` event (with `media` when given) to the inbound callback URL.
 */
import { randomBytes } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';
import { OpenApiValidator, parseForm, readJsonFixture } from '../support/openapi-validator.ts';

export const BANDWIDTH_NUMBERS = {
  rejected: '+15555550400',
  unavailable: '+15555550500',
  throttled: '+15555550429',
  throttledRetryAfter: '+15555551429',
  undeliverable: '+15555554720',
  receiptExpired: '+15555559902',
} as const;

export interface BandwidthEmulatorOptions {
  /** The messaging application's outbound (status) callback URL. */
  webhookUrl: string;
  /** The application's inbound callback URL (default: webhookUrl). */
  inboundWebhookUrl?: string;
  /** Which API credentials the sender config carries (both are accepted by the emulator). */
  auth?: 'basic' | 'oauth2';
  accountId?: string;
  applicationId?: string;
  username?: string;
  password?: string;
  clientId?: string;
  clientSecret?: string;
  callbackUser?: string;
  callbackPassword?: string;
  /** Delay before each callback, in ms (default 5). */
  delayMs?: number;
  /** Lifetime of issued OAuth2 tokens, in seconds (default 3600). */
  tokenTtlSeconds?: number;
  /** Deliveries of a callback before giving up (default 3). */
  callbackAttempts?: number;
}

export interface RecordedApiRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The JSON body when it parsed, else undefined. */
  json: unknown;
  status: number;
}

export interface PostedCallback {
  url: string;
  headers: Record<string, string>;
  events: Record<string, unknown>[];
  /** HTTP status of the last attempt (null when the receiver could not be reached). */
  status: number | null;
  attempts: number;
}

interface HttpErrorFixture {
  body: Record<string, unknown>;
}
const HTTP_ERRORS = readJsonFixture<Record<string, HttpErrorFixture>>('bandwidth/http-error-responses.json');

/** The fields of the spec's `messageRequest`. */
const MESSAGE_FIELDS = new Set(['applicationId', 'to', 'from', 'text', 'media', 'tag', 'priority', 'expiration']);
const E164 = /^\+[1-9]\d{1,14}$/;
/** Spec `messageRequest.from`: up to 11 of A-Z a-z 0-9 space - + _ &, at least one letter. */
const ALPHANUMERIC_SENDER = /^(?=.*[A-Za-z])[A-Za-z0-9 +_&-]{1,11}$/;
const MESSAGES_PATH = /^\/api\/v2\/users\/([^/]+)\/messages$/;
const TOKEN_PATH = '/api/v1/oauth2/token';

let sharedValidator: OpenApiValidator | undefined;
function specValidator(): OpenApiValidator {
  // The Bandwidth spec gives its servers per path (https://messaging.bandwidth.com/api/v2), not at the top.
  sharedValidator ??= new OpenApiValidator('bandwidth/bandwidth.yml', { basePath: '/api/v2' });
  return sharedValidator;
}

/** HTTP Basic as Bandwidth sends it on callbacks (RFC 7617). */
export function bandwidthCallbackAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

function decodeBasic(header: string): { user: string; password: string } | null {
  const m = /^Basic ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
  if (!m?.[1]) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? null : { user: text.slice(0, i), password: text.slice(i + 1) };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Bandwidth-style message id: epoch milliseconds followed by 16 lower-case letters and digits. */
function messageId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(16);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return `${Date.now()}${s}`;
}

/** Segments of a text (GSM-7: 160, or 153 when concatenated; otherwise UCS-2: 70/67). MMS count as one. */
function segmentCount(text: string, media: boolean): number {
  if (media || text.length === 0) return 1;
  const gsm = /^[\n\r\x20-\x7E£¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà€]*$/.test(text);
  const [single, multi] = gsm ? [160, 153] : [70, 67];
  return text.length <= single ? 1 : Math.ceil(text.length / multi);
}

/** Writes a JSON answer; true, so handlers can `return answer(...)`. */
type Answer = (status: number, body: unknown, extra?: Record<string, string>) => true;

interface AcceptedMessage {
  id: string;
  to: string[];
  from: string;
  media: string[];
  tag: string | undefined;
  priority: string;
  segmentCount: number;
  time: string;
}

export class BandwidthEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly requests: RecordedApiRequest[] = [];
  readonly callbacks: PostedCallback[] = [];
  senderConfig: Record<string, unknown> = {};
  /** OAuth2 tokens issued so far. */
  tokenRequests = 0;

  readonly accountId: string;
  readonly applicationId: string;
  readonly username: string;
  readonly password: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly callbackUser: string;
  readonly callbackPassword: string;

  private readonly server: Server;
  private readonly agent = new Agent({ keepAliveTimeout: 1000, connections: 8 });
  private readonly tokens = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  private accepted = 0;
  private closed = false;
  private origin = '';

  private constructor(private readonly opts: BandwidthEmulatorOptions) {
    this.accountId = opts.accountId ?? '9900000';
    this.applicationId = opts.applicationId ?? '93de2206-9669-4e07-948d-329f4b722ee2';
    this.username = opts.username ?? 'emulator-api-user';
    this.password = opts.password ?? 'emulator-api-password';
    this.clientId = opts.clientId ?? 'emulator-client-id';
    this.clientSecret = opts.clientSecret ?? 'emulator-client-secret';
    this.callbackUser = opts.callbackUser ?? 'bandwidth-callbacks';
    this.callbackPassword = opts.callbackPassword ?? 'callback-secret';
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
  }

  static async start(opts: BandwidthEmulatorOptions): Promise<BandwidthEmulator> {
    const emulator = new BandwidthEmulator(opts);
    await new Promise<void>((resolve) => emulator.server.listen(0, '127.0.0.1', resolve));
    emulator.origin = `http://127.0.0.1:${(emulator.server.address() as AddressInfo).port}`;
    const common = {
      accountId: emulator.accountId,
      applicationId: emulator.applicationId,
      baseUrl: `${emulator.origin}/api/v2`,
      callbackUser: emulator.callbackUser,
      callbackPassword: emulator.callbackPassword,
    };
    emulator.senderConfig =
      opts.auth === 'oauth2'
        ? {
            ...common,
            clientId: emulator.clientId,
            clientSecret: emulator.clientSecret,
            tokenUrl: `${emulator.origin}${TOKEN_PATH}`,
          }
        : { ...common, username: emulator.username, password: emulator.password };
    return emulator;
  }

  get url(): string {
    return this.origin;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  /** The create-message requests received, in order. */
  messageRequests(): RecordedApiRequest[] {
    return this.requests.filter((r) => MESSAGES_PATH.test(r.path));
  }

  /** Makes every issued OAuth2 token invalid (as a revocation or an early expiry would). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** Resolves once every scheduled callback has been posted (or given up). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async sendInbound(input: { from: string; to: string; body: string; media?: string[] }): Promise<void> {
    const time = new Date().toISOString();
    const message: Record<string, unknown> = {
      id: messageId(),
      owner: input.to,
      applicationId: this.applicationId,
      time,
      segmentCount: segmentCount(input.body, (input.media?.length ?? 0) > 0),
      direction: 'in',
      to: [input.to],
      from: input.from,
      text: input.body,
    };
    if (input.media && input.media.length > 0) message.media = input.media;
    const event = { type: 'message-received', time, description: 'Incoming message received', to: input.to, message };
    await this.postCallback(this.opts.inboundWebhookUrl ?? this.opts.webhookUrl, [event]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.agent.close();
  }

  // --- HTTP API ---------------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse, raw: string): boolean {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', this.origin);
    const record: RecordedApiRequest = {
      method,
      path: url.pathname,
      headers: req.headers,
      rawBody: raw,
      json: parseJson(raw),
      status: 0,
    };
    this.requests.push(record);
    const answer: Answer = (status, body, extra = {}) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...extra }).end(JSON.stringify(body));
      return true;
    };
    if (url.pathname === TOKEN_PATH) return this.handleToken(req, raw, answer);
    const m = MESSAGES_PATH.exec(url.pathname);
    if (m && method === 'POST') return this.handleCreateMessage(req, url.pathname, m[1] as string, raw, answer);
    const known = specValidator().operationFor(method, url.pathname);
    this.violations.push(
      known
        ? `${method} ${url.pathname}: operation ${known} is not emulated`
        : `${method} ${url.pathname}: no such operation in the specification`,
    );
    // Spring's 404 body, as "Errors" documents it.
    return answer(404, { ...HTTP_ERRORS['404']?.body, timestamp: new Date().toISOString(), path: url.pathname });
  }

  private handleCreateMessage(
    req: IncomingMessage,
    path: string,
    accountId: string,
    raw: string,
    answer: Answer,
  ): boolean {
    const where = `POST ${path}`;
    const auth = this.authenticate(header(req.headers, 'authorization'));
    if (auth !== 'ok') {
      if (auth !== 'refused') this.violations.push(`${where}: ${auth}`);
      return answer(401, HTTP_ERRORS['401']?.body);
    }
    // "401 ... when the specified user does not have access to the account".
    if (decodeURIComponent(accountId) !== this.accountId) return answer(401, HTTP_ERRORS['401']?.body);

    const contentType = header(req.headers, 'content-type') ?? '';
    if (!/^application\/json\s*(;|$)/i.test(contentType)) {
      this.violations.push(`${where}: Content-Type '${contentType}' is not application/json`);
      const body = HTTP_ERRORS['415']?.body ?? {};
      return answer(415, {
        ...body,
        description: `Content type '${contentType}' not supported. Please use 'application/json'`,
      });
    }
    const json = parseJson(raw);
    const problems =
      json === undefined
        ? ['body is not valid JSON']
        : specValidator().validate({ method: 'POST', path, headers: req.headers, contentType, body: json });
    if (json !== undefined) problems.push(...documentedRules(json));
    if (problems.length > 0) {
      for (const p of problems) this.violations.push(`${where}: ${p}`);
      return answer(400, {
        type: 'request-validation',
        description: 'Your request could not be accepted',
        fieldErrors: problems.map((p) => ({ fieldName: fieldOf(p), description: p })),
      });
    }

    const body = json as { applicationId: string; to: string[]; from: string; text?: string; media?: string[] };
    const fieldError = (fieldName: string, description: string) =>
      answer(400, {
        type: 'request-validation',
        description: 'Your request could not be accepted',
        fieldErrors: [{ fieldName, description }],
      });
    if (body.applicationId !== this.applicationId) {
      return fieldError('applicationId', `'${body.applicationId}' is not an application of this account`);
    }
    const to = body.to;
    if (to.includes(BANDWIDTH_NUMBERS.rejected)) {
      return fieldError(
        'to',
        `'${BANDWIDTH_NUMBERS.rejected}' must be replaced with a valid E164 formatted telephone number`,
      );
    }
    if (to.includes(BANDWIDTH_NUMBERS.unavailable)) {
      return answer(500, { type: 'internal-server-error', description: 'The service is currently unavailable.' });
    }
    if (to.includes(BANDWIDTH_NUMBERS.throttled)) return answer(429, HTTP_ERRORS['429']?.body);
    if (to.includes(BANDWIDTH_NUMBERS.throttledRetryAfter)) {
      return answer(429, HTTP_ERRORS['429']?.body, { 'retry-after': '2' });
    }

    const media = body.media ?? [];
    const text = body.text ?? '';
    const message: AcceptedMessage = {
      id: messageId(),
      to,
      from: body.from,
      media,
      tag: (json as { tag?: string }).tag,
      priority: (json as { priority?: string }).priority ?? 'default',
      segmentCount: segmentCount(text, media.length > 0),
      time: new Date().toISOString(),
    };
    this.accepted++;
    const response: Record<string, unknown> = {
      id: message.id,
      owner: message.from,
      applicationId: this.applicationId,
      time: message.time,
      segmentCount: message.segmentCount,
      direction: 'out',
      to,
      from: message.from,
      text,
    };
    if (media.length > 0) response.media = media;
    if (message.tag !== undefined) response.tag = message.tag;
    response.priority = message.priority;
    this.scheduleCallbacks(message);
    return answer(202, response, { 'content-type': 'application/json' });
  }

  /** 'ok', 'refused' (well-formed but wrong), or the violation. */
  private authenticate(value: string | undefined): string {
    if (value === undefined || value.length === 0) return 'no Authorization header (security: Basic or OAuth2)';
    if (/^Basic /.test(value)) {
      const creds = decodeBasic(value);
      if (!creds) return 'malformed Basic credentials';
      return creds.user === this.username && creds.password === this.password ? 'ok' : 'refused';
    }
    if (/^Bearer /.test(value)) {
      const expires = this.tokens.get(value.slice(7).trim());
      return expires !== undefined && expires > Date.now() ? 'ok' : 'refused';
    }
    return `Authorization scheme '${value.split(' ')[0]}' is neither Basic nor Bearer`;
  }

  private handleToken(req: IncomingMessage, raw: string, answer: Answer): boolean {
    const where = `${req.method} ${TOKEN_PATH}`;
    if (req.method !== 'POST') {
      this.violations.push(`${where}: the token endpoint takes POST (RFC 6749 §3.2)`);
      return answer(405, { error: 'invalid_request' });
    }
    const contentType = header(req.headers, 'content-type') ?? '';
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(contentType)) {
      this.violations.push(`${where}: token request must be application/x-www-form-urlencoded (RFC 6749 §4.4.2)`);
      return answer(400, { error: 'invalid_request' });
    }
    const form = parseForm(raw);
    if (form.grant_type !== 'client_credentials') {
      this.violations.push(`${where}: grant_type must be client_credentials (RFC 6749 §4.4.2)`);
      return answer(400, { error: 'unsupported_grant_type' });
    }
    const value = header(req.headers, 'authorization');
    const creds = value === undefined ? null : decodeBasic(value);
    if (!creds) {
      this.violations.push(`${where}: the client must authenticate with HTTP Basic (RFC 6749 §2.3.1)`);
      return answer(401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic' });
    }
    if (creds.user !== this.clientId || creds.password !== this.clientSecret) {
      return answer(401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic' });
    }
    const ttl = this.opts.tokenTtlSeconds ?? 3600;
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, Date.now() + ttl * 1000);
    this.tokenRequests++;
    return answer(200, { access_token: token, token_type: 'Bearer', expires_in: ttl }, { 'cache-control': 'no-store' });
  }

  // --- callbacks --------------------------------------------------------------------------------------------

  private scheduleCallbacks(message: AcceptedMessage): void {
    const delay = this.opts.delayMs ?? 5;
    const task = (async () => {
      for (const recipient of message.to) {
        await sleep(delay);
        if (this.closed) return;
        await this.postCallback(this.opts.webhookUrl, [
          this.statusEvent('message-sending', message, recipient, 'Message is sending to carrier'),
        ]);
        await sleep(delay);
        if (this.closed) return;
        const failure =
          recipient === BANDWIDTH_NUMBERS.undeliverable
            ? { errorCode: 4720, description: 'Carrier Rejected as Invalid Destination Address' }
            : recipient === BANDWIDTH_NUMBERS.receiptExpired
              ? { errorCode: 9902, description: 'Timed out waiting for delivery receipt' }
              : null;
        const event = failure
          ? {
              ...this.statusEvent('message-failed', message, recipient, failure.description),
              errorCode: failure.errorCode,
            }
          : this.statusEvent('message-delivered', message, recipient, 'Message delivered to handset.');
        await this.postCallback(this.opts.webhookUrl, [event]);
      }
    })();
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  /** A status event in the documented shape; Bandwidth does not keep message text, so `text` is empty. */
  private statusEvent(
    type: string,
    m: AcceptedMessage,
    recipient: string,
    description: string,
  ): Record<string, unknown> {
    const message: Record<string, unknown> = {
      id: m.id,
      owner: m.from,
      applicationId: this.applicationId,
      time: m.time,
      segmentCount: m.segmentCount,
      direction: 'out',
      to: m.to,
      from: m.from,
      text: '',
    };
    if (m.media.length > 0) message.media = m.media;
    if (m.tag !== undefined) message.tag = m.tag;
    message.priority = m.priority;
    return { time: new Date().toISOString(), type, to: recipient, description, message };
  }

  private async postCallback(url: string, events: Record<string, unknown>[]): Promise<void> {
    const headers = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'BandwidthAPI/v2',
      authorization: bandwidthCallbackAuthorization(this.callbackUser, this.callbackPassword),
    };
    const posted: PostedCallback = { url, headers, events, status: null, attempts: 0 };
    this.callbacks.push(posted);
    const body = JSON.stringify(events);
    const attempts = this.opts.callbackAttempts ?? 3;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      posted.attempts = attempt;
      try {
        const res = await request(url, { method: 'POST', headers, body, dispatcher: this.agent });
        await res.body.dump();
        posted.status = res.statusCode;
        if (res.statusCode >= 200 && res.statusCode < 300) return;
      } catch {
        posted.status = null;
      }
      if (this.closed) return;
      await sleep(10 * attempt);
    }
  }
}

function parseJson(raw: string): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

function fieldOf(problem: string): string {
  const m = /^body\/([A-Za-z]+)/.exec(problem) ?? /^'?([A-Za-z]+)'? /.exec(problem);
  return m?.[1] ?? 'body';
}

/** Rules of the documentation that the JSON schema of `messageRequest` does not express. */
function documentedRules(json: unknown): string[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [];
  const body = json as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(body)) {
    if (!MESSAGE_FIELDS.has(key)) problems.push(`'${key}' is not a field of messageRequest`);
  }
  if (Array.isArray(body.to)) {
    if (body.to.length > 10) problems.push('to has more than 10 recipients');
    for (const t of body.to) {
      if (typeof t === 'string' && !E164.test(t)) problems.push(`to '${t}' is not an E.164 number`);
    }
  }
  if (typeof body.from === 'string' && !E164.test(body.from) && !ALPHANUMERIC_SENDER.test(body.from)) {
    problems.push(`from '${body.from}' is neither an E.164 number nor an alphanumeric sender id`);
  }
  if (typeof body.tag === 'string' && body.tag.length > 1024) problems.push('tag is longer than 1024 characters');
  if (Array.isArray(body.media)) {
    for (const u of body.media) {
      if (typeof u === 'string' && !(URL.canParse(u) && /^https?:$/.test(new URL(u).protocol))) {
        problems.push(`media '${u}' is not an http(s) URL`);
      }
    }
  }
  return problems;
}
