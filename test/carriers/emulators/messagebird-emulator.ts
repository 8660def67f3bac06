/**
 * A local MessageBird SMS REST API (https://rest.messagebird.com) for carrier tests. It accepts only requests
 * MessageBird documents, answers as MessageBird does, and sends MessageBird's signed status reports and inbound
 * forwards to the webhook URL. MessageBird publishes no OpenAPI description of the SMS API, so each rule is checked
 * by hand; the document it comes from is named beside it. Requests breaking a rule are recorded in `violations`
 * and answered with MessageBird's error for them.
 *
 * Destination rules (the `recipients[0]` MSISDN):
 *   - 31600000009 → refused at send: HTTP 422, error code 9 "no (correct) recipients found" (permanent).
 *   - 31600000025 → refused at send: HTTP 422, error code 25 "Not enough balance" (permanent).
 *   - 31600000099 → unavailable: HTTP 500, error code 99 "Internal error" (retryable).
 *   - 31600000429 → throttled: HTTP 429 with `Retry-After: 2` (MessageBird documents no 429 body; the generic
 *     HTTP behaviour is emulated so the adapter's throttling path is exercised).
 *   - 31600000001 → accepted, then status reports `sent` and `delivery_failed` with statusReason
 *     "unknown subscriber" and statusErrorCode 1 (Bird "SMS Platform Extended Error Codes": unknown subscriber).
 *   - anything else → accepted (HTTP 201, the message object of sms-message.response.json), then status reports
 *     `sent` and `delivered`.
 * Status reports are sent only for messages that carry a `reference` (MessageBird support, "I am missing my
 * delivery reports"), to the message's `reportUrl` or else the account's status report URL (`webhookUrl`), as a
 * GET with the report in the query (the default) or as a form POST; each is signed with MessageBird-Signature-JWT
 * (default) or the legacy MessageBird-Signature/MessageBird-Request-Timestamp pair.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';
import { readJsonFixture } from '../support/openapi-validator.ts';

export const MESSAGEBIRD_NUMBERS = {
  delivered: '+31612345678',
  rejected: '+31600000009',
  noBalance: '+31600000025',
  unavailable: '+31600000099',
  throttled: '+31600000429',
  undeliverable: '+31600000001',
} as const;

export type MessageBirdSigning = 'jwt' | 'legacy';

export interface MessageBirdEmulatorOptions {
  /** The account's status report / forward URL (used when a message has no `reportUrl`). */
  webhookUrl: string;
  accessKey?: string;
  signingKey?: string;
  signing?: MessageBirdSigning;
  /** How status reports are delivered: GET with a query string (MessageBird's default) or a form POST. */
  reportMethod?: 'GET' | 'POST';
  delayMs?: number;
}

/** One request the emulator received on the REST API. */
export interface MessageBirdReceived {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

// Parameters of "Send outbound SMS" (developers.messagebird.com/api/sms-messaging/#send-outbound-sms) and of the
// official SDKs' request structs (go-rest-api `sms/message.go` messageRequest).
const SEND_FIELDS = new Set([
  'originator',
  'body',
  'recipients',
  'groupIds',
  'type',
  'reference',
  'validity',
  'gateway',
  'typeDetails',
  'datacoding',
  'mclass',
  'shortenUrls',
  'reportUrl',
  'scheduledDatetime',
  'createdDatetime',
]);

function mbTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Signs a webhook request as MessageBird does (see the module comment of messagebird-signature.ts). */
export function signMessageBirdJwt(signingKey: string, url: string, body: Buffer, nowMs = Date.now()): string {
  const nbf = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = {
    iss: 'MessageBird',
    nbf,
    exp: nbf + 60,
    jti: randomUUID(),
    url_hash: sha256Hex(url),
  };
  if (body.length > 0) claims.payload_hash = sha256Hex(body);
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signingInput = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${signingInput}.${createHmac('sha256', signingKey).update(signingInput).digest('base64url')}`;
}

/** The legacy `MessageBird-Signature` of a request (messagebird-nodejs `lib/signature.js`). */
export function signMessageBirdLegacy(signingKey: string, timestamp: string, query: string, body: Buffer): string {
  const params = [...new URLSearchParams(query).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const sorted = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return createHmac('sha256', signingKey)
    .update(`${timestamp}\n${sorted}\n`)
    .update(createHash('sha256').update(body).digest())
    .digest('base64');
}

/** The signature headers MessageBird puts on a webhook request to `url` with `body`. */
export function messageBirdSignatureHeaders(
  signing: MessageBirdSigning,
  signingKey: string,
  url: string,
  body: Buffer,
  nowMs = Date.now(),
): Record<string, string> {
  if (signing === 'jwt') return { 'messagebird-signature-jwt': signMessageBirdJwt(signingKey, url, body, nowMs) };
  const timestamp = String(Math.floor(nowMs / 1000));
  const q = url.indexOf('?');
  return {
    'messagebird-request-timestamp': timestamp,
    'messagebird-signature': signMessageBirdLegacy(signingKey, timestamp, q < 0 ? '' : url.slice(q + 1), body),
  };
}

function errorBody(code: number, description: string, parameter: string | null): string {
  return JSON.stringify({ errors: [{ code, description, parameter }] });
}

export class MessageBirdEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly received: MessageBirdReceived[] = [];
  senderConfig: Record<string, unknown> = {};
  private accepted = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private server: Server | undefined;
  private readonly accessKey: string;
  private readonly signingKey: string;
  private readonly signing: MessageBirdSigning;

  private constructor(private readonly opts: MessageBirdEmulatorOptions) {
    this.accessKey = opts.accessKey ?? 'live_emulator0123456789abcdef';
    this.signingKey = opts.signingKey ?? 'emulator-signing-key-36efdd1aace2e26c';
    this.signing = opts.signing ?? 'jwt';
  }

  static async start(opts: MessageBirdEmulatorOptions): Promise<MessageBirdEmulator> {
    const emulator = new MessageBirdEmulator(opts);
    emulator.server = createServer((req, res) => emulator.handle(req, res));
    await new Promise<void>((resolve) => emulator.server?.listen(0, '127.0.0.1', resolve));
    const port = (emulator.server.address() as AddressInfo).port;
    emulator.senderConfig = {
      baseUrl: `http://127.0.0.1:${port}`,
      accessKey: emulator.accessKey,
      signingKey: emulator.signingKey,
      signatureScheme: emulator.signing,
    };
    return emulator;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  /** A handset sends `body` to our number: MessageBird forwards it (form POST, fields of the SMS API). */
  async sendInbound(input: { from: string; to: string; body: string }): Promise<void> {
    const form = new URLSearchParams({
      id: randomBytes(16).toString('hex'),
      recipient: input.to.replace(/^\+/, ''),
      originator: input.from.replace(/^\+/, ''),
      body: input.body,
      createdDatetime: mbTime(Date.now()),
    });
    await this.deliver('POST', this.opts.webhookUrl, Buffer.from(form.toString()));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const answer = (status: number, body: string, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
      };
      const path = (req.url ?? '/').split('?')[0];
      // REST API reference: the SMS API is `POST /messages` (create), GET/DELETE /messages/{id}.
      if (req.method !== 'POST' || path !== '/messages') {
        this.violations.push(`${req.method} ${req.url}: not an operation of the SMS API`);
        return answer(404, errorBody(98, 'API not found', null));
      }
      let body: unknown;
      try {
        body = raw.length === 0 ? undefined : JSON.parse(raw);
      } catch {
        body = raw;
      }
      this.received.push({ method: req.method, path, headers: req.headers, body });
      // REST API "Authentication": `Authorization: AccessKey {accessKey}`; "Formats and headers": JSON payloads,
      // `Accept: application/json`. A wrong key is a legitimate request (answered 401), a wrong scheme is not.
      const auth = req.headers.authorization ?? '';
      const match = /^AccessKey (\S+)$/.exec(auth);
      if (!match) {
        this.violations.push(`Authorization header must be 'AccessKey <key>', got '${auth}'`);
        return answer(401, JSON.stringify(readJsonFixture('messagebird/error-response.401.json')));
      }
      if (match[1] !== this.accessKey) {
        return answer(401, JSON.stringify(readJsonFixture('messagebird/error-response.401.json')));
      }
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
        this.violations.push(`Content-Type must be application/json, got '${req.headers['content-type']}'`);
      }
      if (!/application\/json/i.test(req.headers.accept ?? '')) {
        this.violations.push(`Accept must be application/json, got '${req.headers.accept}'`);
      }
      const problems = validateSend(body);
      if (problems.length > 0) {
        this.violations.push(...problems.map((p) => `POST /messages: ${p}`));
        return answer(422, errorBody(9, problems[0] as string, null));
      }
      this.respondToSend(body as Record<string, unknown>, answer);
    });
  }

  private respondToSend(
    msg: Record<string, unknown>,
    answer: (status: number, body: string, headers?: Record<string, string>) => void,
  ): void {
    const recipient = String((msg.recipients as unknown[])[0]);
    switch (`+${recipient}`) {
      case MESSAGEBIRD_NUMBERS.rejected:
        answer(422, errorBody(9, 'no (correct) recipients found', 'recipient'));
        return;
      case MESSAGEBIRD_NUMBERS.noBalance:
        answer(422, errorBody(25, 'Not enough balance', null));
        return;
      case MESSAGEBIRD_NUMBERS.unavailable:
        answer(500, errorBody(99, 'Internal error', null));
        return;
      case MESSAGEBIRD_NUMBERS.throttled:
        answer(429, '', { 'retry-after': '2' });
        return;
    }
    this.accepted++;
    const id = randomBytes(16).toString('hex');
    const now = Date.now();
    // Shape of a created message object: messagebird/go-rest-api sms/testdata/messageObject.json.
    const template = readJsonFixture<Record<string, unknown>>('messagebird/sms-message.response.json');
    const created = {
      ...template,
      id,
      href: `https://rest.messagebird.com/messages/${id}`,
      originator: msg.originator,
      body: msg.body,
      reference: msg.reference ?? null,
      datacoding: msg.datacoding ?? 'plain',
      createdDatetime: mbTime(now),
      recipients: {
        totalCount: 1,
        totalSentCount: 1,
        totalDeliveredCount: 0,
        totalDeliveryFailedCount: 0,
        items: [{ recipient: Number(recipient), status: 'sent', statusDatetime: mbTime(now), messagePartCount: 1 }],
      },
    };
    answer(201, JSON.stringify(created));
    if (typeof msg.reference !== 'string') return;
    const reportUrl = typeof msg.reportUrl === 'string' ? msg.reportUrl : this.opts.webhookUrl;
    const failed = `+${recipient}` === MESSAGEBIRD_NUMBERS.undeliverable;
    const base = { id, recipient, reference: msg.reference, mccmnc: '20408', ported: '0', messagePartCount: '1' };
    const delay = this.opts.delayMs ?? 5;
    this.later(delay, () => this.report(reportUrl, { ...base, status: 'sent' }));
    this.later(delay * 2, () =>
      this.report(
        reportUrl,
        failed
          ? { ...base, status: 'delivery_failed', statusReason: 'unknown subscriber', statusErrorCode: '1' }
          : { ...base, status: 'delivered', statusReason: 'successfully delivered' },
      ),
    );
  }

  private later(ms: number, fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      const p = fn().catch(() => undefined);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }, ms);
    this.timers.add(t);
  }

  private async report(reportUrl: string, fields: Record<string, string>): Promise<void> {
    const params = new URLSearchParams({ ...fields, statusDatetime: mbTime(Date.now()) });
    if ((this.opts.reportMethod ?? 'GET') === 'GET') {
      const url = `${reportUrl}${reportUrl.includes('?') ? '&' : '?'}${params.toString()}`;
      await this.deliver('GET', url, Buffer.alloc(0));
    } else {
      await this.deliver('POST', reportUrl, Buffer.from(params.toString()));
    }
  }

  private async deliver(method: 'GET' | 'POST', url: string, body: Buffer): Promise<void> {
    const headers: Record<string, string> = {
      'user-agent': 'MessageBird/ApiHandler',
      ...messageBirdSignatureHeaders(this.signing, this.signingKey, url, body),
    };
    if (method === 'POST') headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await request(url, { method, headers, ...(method === 'POST' ? { body } : {}) });
    await res.body.dump();
  }
}

/** The documented rules of a create-message body; returns the broken ones. */
export function validateSend(body: unknown): string[] {
  const problems: string[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['body must be a JSON object'];
  const msg = body as Record<string, unknown>;
  for (const key of Object.keys(msg)) if (!SEND_FIELDS.has(key)) problems.push(`unknown parameter '${key}'`);
  // "originator: a telephone number (including country code) or an alphanumeric string (max 11 characters)".
  const o = msg.originator;
  if (typeof o !== 'string' || !(/^\+?\d{3,17}$/.test(o) || /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/.test(o))) {
    problems.push(`originator must be a number or an alphanumeric string of at most 11 characters, got ${String(o)}`);
  }
  // "recipients: the array of recipients msisdns" (at most 50 per request).
  const r = msg.recipients;
  if (!Array.isArray(r) || r.length === 0 || r.length > 50) problems.push('recipients must be an array of 1–50');
  else {
    for (const x of r) {
      if (!((typeof x === 'string' && /^\d{7,15}$/.test(x)) || (typeof x === 'number' && Number.isInteger(x)))) {
        problems.push(`recipient ${JSON.stringify(x)} is not an MSISDN (digits, country code first)`);
      }
    }
  }
  if (typeof msg.body !== 'string' || msg.body.length === 0) problems.push('body must be a non-empty string');
  // "reference: a client reference" (status reports need one; at most 128 characters per MessageBird support).
  if (msg.reference !== undefined && (typeof msg.reference !== 'string' || msg.reference.length > 128)) {
    problems.push('reference must be a string of at most 128 characters');
  }
  if (msg.reportUrl !== undefined && (typeof msg.reportUrl !== 'string' || !/^https?:\/\//.test(msg.reportUrl))) {
    problems.push('reportUrl must be an http(s) URL');
  }
  if (msg.datacoding !== undefined && !['plain', 'unicode', 'auto'].includes(String(msg.datacoding))) {
    problems.push("datacoding must be 'plain', 'unicode' or 'auto'");
  }
  if (msg.type !== undefined && !['sms', 'binary', 'flash'].includes(String(msg.type))) {
    problems.push("type must be 'sms', 'binary' or 'flash'");
  }
  for (const key of ['validity', 'gateway', 'mclass'] as const) {
    if (msg[key] !== undefined && !Number.isInteger(msg[key])) problems.push(`${key} must be an integer`);
  }
  return problems;
}
