/**
 * A local Inteliquent message broker (https://messagebroker.inteliquent.com/msgbroker/rest) for carrier tests.
 * Every request is validated against Inteliquent's published Swagger description
 * (shared/fixtures/carriers/inteliquent/inteliquent_services_api_v2_messaging.yaml, operation `POST /publishMessages`,
 * mounted under `/msgbroker/rest` as its description says); what the schema cannot express is checked by hand from
 * the same document, cited beside each rule. Violations are recorded in `violations` and answered with the
 * documented user error (`{"statusCode": "408", "status": "<the error>"}`).
 *
 * Destination rules (the `to[0]` number):
 *   - 12025550111 → refused at send: statusCode 408 "Invalid destination number" (documented user error; permanent).
 *   - 12025550131 → unavailable: HTTP 431 "Unable to complete the request at the moment, please try again"
 *     (documented for the broker's sibling operations; retryable).
 *   - 12025550129 → throttled: HTTP 429 with `Retry-After: 1`. Inteliquent documents no rate-limit answer; the generic
 *     HTTP behaviour is emulated so the adapter's throttling path is exercised.
 *   - 12025550144 → accepted, then a delivery receipt `stat:UNDELIV err:001`.
 *   - anything else → accepted (the ResponsePublishMessage of publishMessages.response-200.json), then a delivery
 *     receipt `stat:DELIVRD err:000`.
 * Delivery receipts and inbound messages are POSTed as JSON in the shape of the spec's inbound webhook
 * (`referenceId, from, text, deliveryReceipt, to[], mediaUrls`); receipts carry `from`/`to` as JSON numbers as the
 * spec's example does, inbound messages as strings as its schema does. The receipt text follows the SMPP 3.4
 * Appendix B receipt format (the spec does not describe receipt contents). Requests are authenticated as
 * configureAuthorization configures them: `messageID` + `verificationToken` (HMAC-SHA256 with the webhook apiKey,
 * hex) and/or a custom header.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';
import { OpenApiValidator, readJsonFixture } from '../support/openapi-validator.ts';

export const INTELIQUENT_NUMBERS = {
  /** A number on the emulated account, with messaging enabled (the spec's own example). */
  account: '+19205551234',
  delivered: '+19205551235',
  rejected: '+12025550111',
  unavailable: '+12025550131',
  throttled: '+12025550129',
  undeliverable: '+12025550144',
} as const;

export const INTELIQUENT_SPEC = 'inteliquent/inteliquent_services_api_v2_messaging.yaml';
export const INTELIQUENT_BROKER_BASE = '/msgbroker/rest';

export interface InteliquentWebhookCredentials {
  apiKey?: string;
  header?: { name: string; value: string };
}

export interface InteliquentEmulatorOptions {
  webhookUrl: string;
  apiKey?: string;
  /** Numbers on the account with messaging enabled (E.164). */
  accountNumbers?: string[];
  /** How the account's webhook is authenticated (configureAuthorization); default: an apiKey. */
  webhookAuth?: InteliquentWebhookCredentials;
  delayMs?: number;
}

export interface InteliquentReceived {
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

let validator: OpenApiValidator | undefined;
/** The spec validator, with the broker's base path (the spec's `basePath` is the Services API's). */
export function inteliquentValidator(): OpenApiValidator {
  validator ??= new OpenApiValidator(INTELIQUENT_SPEC, { basePath: INTELIQUENT_BROKER_BASE });
  return validator;
}

/** The authentication headers Inteliquent sends with a webhook request. */
export function inteliquentWebhookHeaders(credentials: InteliquentWebhookCredentials): Record<string, string> {
  const headers: Record<string, string> = {};
  if (credentials.apiKey !== undefined) {
    const token = randomUUID();
    headers.messageID = token;
    headers.verificationToken = createHmac('sha256', credentials.apiKey).update(token).digest('hex');
  }
  if (credentials.header) headers[credentials.header.name] = credentials.header.value;
  return headers;
}

function smppDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

export class InteliquentEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly received: InteliquentReceived[] = [];
  senderConfig: Record<string, unknown> = {};
  private accepted = 0;
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly apiKey: string;
  private readonly accountNumbers: Set<string>;
  private readonly webhookAuth: InteliquentWebhookCredentials;

  private constructor(private readonly opts: InteliquentEmulatorOptions) {
    this.apiKey = opts.apiKey ?? 'BfRNyiOgcyjI5UPgC2ZR5grsj2XyW5DD';
    this.accountNumbers = new Set((opts.accountNumbers ?? [INTELIQUENT_NUMBERS.account]).map((n) => n.slice(1)));
    this.webhookAuth = opts.webhookAuth ?? { apiKey: 'emulator-webhook-api-key' };
  }

  static async start(opts: InteliquentEmulatorOptions): Promise<InteliquentEmulator> {
    const emulator = new InteliquentEmulator(opts);
    emulator.server = createServer((req, res) => emulator.handle(req, res));
    await new Promise<void>((resolve) => emulator.server?.listen(0, '127.0.0.1', resolve));
    const port = (emulator.server.address() as AddressInfo).port;
    const auth = emulator.webhookAuth;
    emulator.senderConfig = {
      baseUrl: `http://127.0.0.1:${port}${INTELIQUENT_BROKER_BASE}`,
      apiKey: emulator.apiKey,
      ...(auth.apiKey === undefined ? {} : { webhookApiKey: auth.apiKey }),
      ...(auth.header ? { webhookHeaderName: auth.header.name, webhookHeaderValue: auth.header.value } : {}),
    };
    return emulator;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  async sendInbound(input: { from: string; to: string; body: string }): Promise<void> {
    await this.post({
      referenceId: randomBytes(8).toString('hex'),
      from: input.from.replace(/^\+/, ''),
      text: input.body,
      deliveryReceipt: false,
      to: [input.to.replace(/^\+/, '')],
    });
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
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      const userError = (status: string) => answer(408, { statusCode: '408', status });
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0] as string;
      let body: unknown;
      try {
        body = raw.length === 0 ? undefined : JSON.parse(raw);
      } catch {
        body = raw;
      }
      this.received.push({ path, headers: req.headers, body });
      const problems = inteliquentValidator().validate({
        method: req.method ?? 'GET',
        path,
        headers: req.headers,
        contentType: req.headers['content-type'],
        body,
      });
      if (inteliquentValidator().operationFor(req.method ?? 'GET', path) !== '/publishMessages') {
        this.violations.push(`${req.method} ${path}: only publishMessages is emulated`);
        return userError(`${req.method} ${path} is not supported`);
      }
      // securityDefinitions.api_key: an `Authorization` header; publishMessages: "Authorization:Bearer Api_key".
      const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      if (!auth) {
        this.violations.push(`Authorization must be 'Bearer <API key>', got '${req.headers.authorization ?? ''}'`);
      }
      if (!auth || auth[1] !== this.apiKey) {
        return answer(401, {
          message: 'Invalid authentication information provided',
          status: 'Invalid credentials',
          statusCode: '401001',
          timestamp: new Date().toISOString(),
        });
      }
      // info.description: "the Services API accepts information in JSON format".
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
        problems.push(`Content-Type must be application/json, got '${req.headers['content-type'] ?? ''}'`);
      }
      if (problems.length === 0) problems.push(...handRules(body as Record<string, unknown>));
      if (problems.length > 0) {
        this.violations.push(...problems.map((p) => `POST ${path}: ${p}`));
        return userError(problems.join('; '));
      }
      this.publish(body as PublishBody, answer, userError);
    });
  }

  private publish(
    msg: PublishBody,
    answer: (status: number, body: unknown, headers?: Record<string, string>) => void,
    userError: (status: string) => void,
  ): void {
    // publishMessages: "The value of the from parameter must be a telephone number on your Inteliquent account
    // with active messaging services enabled" — a legitimate request, refused with the user error.
    if (!this.accountNumbers.has(msg.from)) {
      userError(`From number ${msg.from} is not assigned to your account with messaging enabled`);
      return;
    }
    const to = msg.to[0] as string;
    switch (`+${to}`) {
      case INTELIQUENT_NUMBERS.rejected:
        userError('Invalid destination number');
        return;
      case INTELIQUENT_NUMBERS.unavailable:
        answer(431, {
          statusCode: '431',
          status: 'Unable to complete the request at the moment, please try again',
        });
        return;
      case INTELIQUENT_NUMBERS.throttled:
        answer(429, { statusCode: '429', status: 'Too many requests' }, { 'retry-after': '1' });
        return;
    }
    this.accepted++;
    const referenceId = randomUUID();
    const template = readJsonFixture<{ result: Record<string, unknown> }>(
      'inteliquent/publishMessages.response-200.json',
    );
    answer(200, {
      ...template,
      result: {
        ...template.result,
        referenceId,
        from: msg.from,
        text: msg.text ?? '',
        mediaUrls: msg.mediaUrls === undefined ? [] : [msg.mediaUrls],
        messageType: msg.mediaUrls === undefined ? 'SMS' : 'MMS',
        resultResponses: msg.to.map((t) => ({ to: t, status: 'SUCCESS' })),
      },
    });
    const failed = `+${to}` === INTELIQUENT_NUMBERS.undeliverable;
    const now = Date.now();
    const text =
      `id:${referenceId} sub:001 dlvrd:${failed ? '000' : '001'} submit date:${smppDate(now)} ` +
      `done date:${smppDate(now)} stat:${failed ? 'UNDELIV' : 'DELIVRD'} err:${failed ? '001' : '000'} text:`;
    this.later(this.opts.delayMs ?? 5, () =>
      this.post({ referenceId, from: Number(to), text, deliveryReceipt: true, to: [Number(msg.from)] }),
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

  private async post(payload: Record<string, unknown>): Promise<void> {
    const res = await request(this.opts.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...inteliquentWebhookHeaders(this.webhookAuth) },
      body: JSON.stringify(payload),
    });
    await res.body.dump();
  }
}

interface PublishBody {
  from: string;
  to: string[];
  text?: string;
  mediaUrls?: string;
}

/** Rules of publishMessages its schema does not express (parameter descriptions of the same operation). */
function handRules(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  // from/to: "Telephone number … (e.g. 19205550000)" — digits, country code first.
  if (typeof body.from === 'string' && !/^\d{10,15}$/.test(body.from)) {
    problems.push(`from '${body.from}' is not a telephone number like 19205550000`);
  }
  const to = body.to as unknown[];
  if (to.length === 0) problems.push('to must name a recipient');
  for (const t of to) {
    if (typeof t === 'string' && !/^\d{10,15}$/.test(t)) problems.push(`to '${t}' is not a telephone number`);
  }
  // text: "message will be sent as SMS if mediaUrls is not sent" — so one of the two must be there.
  if (body.text === undefined && body.mediaUrls === undefined) problems.push('neither text nor mediaUrls is given');
  if (typeof body.mediaUrls === 'string' && !/^https?:\/\/\S+$/.test(body.mediaUrls)) {
    problems.push('mediaUrls must be the URL of the media file');
  }
  return problems;
}
