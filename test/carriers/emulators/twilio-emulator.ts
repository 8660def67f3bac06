/**
 * An emulator of Twilio's 2010-04-01 REST API for carrier tests: the Messages resource
 * (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: SMS, MMS, WhatsApp) and the Calls resource
 * (`POST /2010-04-01/Accounts/{AccountSid}/Calls.json`), with signed status callbacks and inbound messages.
 *
 * What it checks, and where each rule comes from (every breach is recorded in `violations` and answered with
 * Twilio's documented error body `{code, message, more_info, status}`):
 * - Method, path and form body against Twilio's OpenAPI description (../shared/fixtures/carriers/twilio/
 *   twilio_api_v2010.json, via OpenApiValidator): the operation must exist, `To` (and `From` for calls) must be
 *   present, every field must have its schema type, enum or pattern (e.g. `MessagingServiceSid` ^MG…,
 *   `StatusCallbackMethod` GET|POST). Parameters the operation does not define are refused (Twilio's warning 20001
 *   "Unknown parameters", made strict here).
 * - Auth: the spec's only security scheme is HTTP Basic (`accountSid_authToken`); a request without a Basic
 *   Authorization header is a violation. Wrong credentials get 401 / 20003 "Authenticate" (not a violation: that is
 *   the provider refusing a well-formed request). Accepted credentials: AccountSid + auth token, or an API key SID +
 *   secret (https://www.twilio.com/docs/iam/api-keys). The AccountSid in the path must be ^AC[0-9a-fA-F]{32}$ (the
 *   spec's path parameter) and the authenticated account's.
 * - Messages (Message resource reference and its error codes): a `From` or `MessagingServiceSid` is required (21603);
 *   `Body`, `MediaUrl` or `ContentSid` is required (21602); `Body` at most 1,600 characters (21617); at most 10
 *   `MediaUrl` (21623); a `whatsapp:` `To` needs a `whatsapp:` `From` unless a Messaging Service picks it (21910);
 *   `StatusCallback` must be an http(s) URL (21609).
 * - Calls (Call resource reference): one of `Url`, `Twiml` or `ApplicationSid` (21205); `Twiml` at most 4,000
 *   characters, well-formed XML with a `<Response>` root whose `<Say>` takes only `voice`, `language` and an integer
 *   `loop` (TwiML <Say> reference); `StatusCallbackEvent` values among initiated, ringing, answered, completed (21626).
 *
 * Destination rules (the `To` number, without a `whatsapp:` prefix). The 0001–0009 numbers are Twilio's documented
 * magic numbers for test credentials (https://www.twilio.com/docs/iam/test-credentials); the rest are ours:
 * - `+15005550001` → 400, 21211 "The 'To' number … is not a valid phone number" (messages and calls).
 * - `+15005550002` → 400, 21612 not reachable via SMS (messages); 21214 cannot be reached (calls).
 * - `+15005550003` → 400, 21408 no permission to send to the region (messages); 21215 geo permission (calls).
 * - `+15005550004` → 400, 21610 attempt to send to an unsubscribed recipient (messages).
 * - `+15005550009` → 400, 21614 not a valid mobile number (messages).
 * - `+15005550500` → 503, 20503 "Service unavailable" (retryable).
 * - `+15005550429` → 429, 20429 "Too Many Requests" with `Retry-After: 1`.
 * - `+15005550030` → 201, then `sent` and `undelivered` with ErrorCode 30003 (messages); ringing then `busy` (calls).
 * - `+15005550031` → 201, then `failed` with ErrorCode 30008 (messages); `failed` (calls).
 * - `+15005550032` → 201, then ringing and `no-answer` (calls); delivered like any other number (messages).
 * - any other number → 201, then `sent` and `delivered` (and `read` for WhatsApp) for messages; initiated, ringing,
 *   in-progress (answered) and `completed` for calls (only the StatusCallbackEvent events asked for; `completed`
 *   alone when none are).
 *
 * Callbacks are POSTed form-encoded to the request's `StatusCallback` 5–20 ms apart, signed with the auth token
 * (`X-Twilio-Signature`: base64 HMAC-SHA1 over the URL plus the sorted parameters) and carrying an
 * `I-Twilio-Idempotency-Token`. Their fields follow the fixtures sms-status-callback.sent.form.txt and
 * whatsapp-status-callback.*.form.txt; call callbacks follow the Call resource's StatusCallback parameters.
 * `sendInbound` posts an inbound message (fields of sms-inbound.form.txt / whatsapp-inbound-*.form.txt) to the
 * webhook URL of the emulated number.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request as undiciRequest } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';
import { OpenApiValidator, parseForm, readJsonFixture } from '../support/openapi-validator.ts';

export const TWILIO_TEST_ACCOUNT_SID = 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
export const TWILIO_TEST_AUTH_TOKEN = 'emulator0auth0token0000000000000';

export const TWILIO_NUMBERS = {
  /** A valid `From` (Twilio's test-credentials magic number). */
  from: '+15005550006',
  invalid: '+15005550001',
  unroutable: '+15005550002',
  noPermission: '+15005550003',
  optedOut: '+15005550004',
  notMobile: '+15005550009',
  unavailable: '+15005550500',
  throttled: '+15005550429',
  undelivered: '+15005550030',
  failed: '+15005550031',
  noAnswer: '+15005550032',
} as const;

const SPEC = 'twilio/twilio_api_v2010.json';
const MESSAGES_PATH = '/2010-04-01/Accounts/{AccountSid}/Messages.json';
const CALLS_PATH = '/2010-04-01/Accounts/{AccountSid}/Calls.json';
const CALL_EVENTS = new Set(['initiated', 'ringing', 'answered', 'completed']);

type Resource = 'Messages' | 'Calls';
type Fields = [string, string][];

export interface RecordedTwilioRequest {
  resource: Resource;
  path: string;
  authorization: string | undefined;
  contentType: string | undefined;
  form: Record<string, string | string[]>;
  rawBody: string;
}

export interface TwilioEmulatorOptions {
  accountSid?: string;
  authToken?: string;
  /** An API key the emulator also accepts for Basic auth. */
  apiKey?: { sid: string; secret: string };
  /** The webhook URL of the emulated number: where `sendInbound` posts. */
  inboundUrl?: string;
  /** Inbound messages arrive as SMS (default) or WhatsApp (`whatsapp:` addresses). */
  inboundChannel?: 'sms' | 'whatsapp';
  /** Delay before each callback (default 5 ms). */
  callbackDelayMs?: number;
}

/** X-Twilio-Signature of a request to `url` with these form fields (independent of the adapter's signer). */
export function signTwilioRequest(authToken: string, url: string, fields: Fields | Record<string, string>): string {
  const list = Array.isArray(fields) ? fields : Object.entries(fields);
  const byName = new Map<string, Set<string>>();
  for (const [k, v] of list) {
    const set = byName.get(k) ?? new Set<string>();
    set.add(v);
    byName.set(k, set);
  }
  let data = url;
  for (const name of [...byName.keys()].sort()) {
    for (const value of [...(byName.get(name) as Set<string>)].sort()) data += `${name}${value}`;
  }
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

interface SpecData {
  validator: OpenApiValidator;
  properties: Record<Resource, Set<string>>;
  messageExample: Record<string, unknown>;
  callExample: Record<string, unknown>;
}

let specData: SpecData | undefined;
/** The spec is large: load and compile it once per test file. */
function spec(): SpecData {
  if (specData) return specData;
  const doc = readJsonFixture<any>(SPEC);
  const props = (p: string) =>
    new Set(Object.keys(doc.paths[p].post.requestBody.content['application/x-www-form-urlencoded'].schema.properties));
  specData = {
    validator: new OpenApiValidator(SPEC),
    properties: { Messages: props(MESSAGES_PATH), Calls: props(CALLS_PATH) },
    messageExample: doc.paths[MESSAGES_PATH].post.responses['201'].content['application/json'].examples.create.value,
    callExample: doc.paths[CALLS_PATH].post.responses['201'].content['application/json'].examples.create.value,
  };
  return specData;
}

function sid(prefix: string): string {
  return prefix + randomBytes(16).toString('hex');
}

function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace('GMT', '+0000');
}

function bare(address: string): string {
  return address.startsWith('whatsapp:') ? address.slice('whatsapp:'.length) : address;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function all(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export class TwilioEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly requests: RecordedTwilioRequest[] = [];
  /** Callback deliveries that failed (the receiver was gone, or answered non-2xx). */
  readonly callbackFailures: string[] = [];
  readonly accountSid: string;
  readonly authToken: string;
  url = '';
  inboundUrl: string | undefined;
  private accepted = 0;
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly opts: TwilioEmulatorOptions;

  private constructor(opts: TwilioEmulatorOptions) {
    this.opts = opts;
    this.accountSid = opts.accountSid ?? TWILIO_TEST_ACCOUNT_SID;
    this.authToken = opts.authToken ?? TWILIO_TEST_AUTH_TOKEN;
    this.inboundUrl = opts.inboundUrl;
  }

  static async start(opts: TwilioEmulatorOptions = {}): Promise<TwilioEmulator> {
    const emulator = new TwilioEmulator(opts);
    spec();
    emulator.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => emulator.handle(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => emulator.server?.listen(0, '127.0.0.1', resolve));
    emulator.url = `http://127.0.0.1:${(emulator.server.address() as AddressInfo).port}`;
    return emulator;
  }

  get senderConfig(): Record<string, unknown> {
    return { accountSid: this.accountSid, authToken: this.authToken, baseUrl: this.url };
  }

  acceptedCount(): number {
    return this.accepted;
  }

  /** Signs `fields` for `url` with this account's auth token. */
  sign(url: string, fields: Fields | Record<string, string>): string {
    return signTwilioRequest(this.authToken, url, fields);
  }

  async sendInbound(input: { from: string; to: string; body: string; mediaUrls?: string[] }): Promise<void> {
    if (!this.inboundUrl) throw new Error('twilio emulator: no inboundUrl to post inbound messages to');
    const wa = this.opts.inboundChannel === 'whatsapp';
    const address = (a: string) => (wa && !a.startsWith('whatsapp:') ? `whatsapp:${a}` : a);
    const media = input.mediaUrls ?? [];
    const messageSid = sid(media.length > 0 ? 'MM' : 'SM');
    const fields: Fields = [];
    media.forEach((url, i) => {
      fields.push([`MediaContentType${i}`, 'image/jpeg']);
      fields.push([`MediaUrl${i}`, url]);
    });
    fields.push(
      ['SmsMessageSid', messageSid],
      ['NumMedia', String(media.length)],
      ['SmsSid', messageSid],
      ['SmsStatus', 'received'],
      ['Body', input.body],
      ['To', address(input.to)],
      ['NumSegments', '1'],
      ['MessageSid', messageSid],
      ['AccountSid', this.accountSid],
      ['From', address(input.from)],
      ['ApiVersion', '2010-04-01'],
    );
    if (wa) fields.push(['ProfileName', 'Emulated Handset'], ['WaId', bare(input.from).replace(/^\+/, '')]);
    await this.post(this.inboundUrl, fields);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));
  }

  private error(res: ServerResponse, status: number, code: number, message: string, headers?: Record<string, string>) {
    this.answer(
      res,
      status,
      { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
      headers,
    );
  }

  private refuse(res: ServerResponse, status: number, code: number, problems: string[]): void {
    for (const p of problems) this.violations.push(p);
    this.error(res, status, code, problems[0] ?? 'invalid request');
  }

  private handle(req: IncomingMessage, rawBody: string, res: ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = (req.url ?? '/').split('?')[0] as string;
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/(Messages|Calls)\.json$/.exec(path);
    if (!m || method !== 'POST') {
      this.refuse(res, 404, 20404, [
        `${method} ${path}: not an operation this emulator serves (Messages/Calls create)`,
      ]);
      return;
    }
    const [, accountSid = '', resource] = m as unknown as [string, string, Resource];

    // Auth: HTTP Basic (the spec's `accountSid_authToken` scheme).
    const authorization = first(req.headers.authorization);
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? '');
    if (!basic) {
      this.refuse(res, 401, 20003, [`${resource}: missing or non-Basic Authorization header`]);
      return;
    }
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const [user, pass] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    const authenticated =
      colon > 0 &&
      ((user === this.accountSid && pass === this.authToken) ||
        (this.opts.apiKey !== undefined && user === this.opts.apiKey.sid && pass === this.opts.apiKey.secret));
    if (!authenticated) {
      this.error(res, 401, 20003, 'Authenticate');
      return;
    }
    if (!/^AC[0-9a-fA-F]{32}$/.test(accountSid) || accountSid !== this.accountSid) {
      this.refuse(res, 401, 20003, [
        `${resource}: AccountSid '${accountSid}' in the path is not the authenticated account`,
      ]);
      return;
    }

    const contentType = first(req.headers['content-type']);
    const form = parseForm(rawBody);
    const { validator, properties } = spec();
    const problems = validator
      .validate({ method, path, headers: req.headers, contentType, body: form })
      .map((p) => `${resource}: ${p}`);
    if (!/^application\/x-www-form-urlencoded\b/i.test(contentType ?? '')) {
      problems.push(`${resource}: Content-Type must be application/x-www-form-urlencoded`);
    }
    const unknown = Object.keys(form).filter((k) => !properties[resource].has(k));
    if (unknown.length > 0) {
      this.refuse(res, 400, 20001, [...problems, `${resource}: unknown parameters ${unknown.join(', ')}`]);
      return;
    }
    if (problems.length > 0) {
      this.refuse(res, 400, 20422, problems);
      return;
    }
    const rule = resource === 'Messages' ? this.messageRules(form) : this.callRules(form);
    if (rule) {
      this.refuse(res, 400, rule.code, [`${resource}: ${rule.problem}`]);
      return;
    }
    this.requests.push({ resource, path, authorization, contentType, form, rawBody });
    if (resource === 'Messages') this.createMessage(form, res);
    else this.createCall(form, res);
  }

  private messageRules(form: Record<string, string | string[]>): { code: number; problem: string } | null {
    const to = first(form.To) ?? '';
    const from = first(form.From);
    const service = first(form.MessagingServiceSid);
    const body = first(form.Body);
    const media = all(form.MediaUrl);
    if (!from && !service) return { code: 21603, problem: "a 'From' or 'MessagingServiceSid' parameter is required" };
    if (!body && media.length === 0 && !first(form.ContentSid)) {
      return { code: 21602, problem: 'Message body is required (Body, MediaUrl or ContentSid)' };
    }
    if (body !== undefined && body.length > 1600) return { code: 21617, problem: 'Body exceeds 1600 characters' };
    if (media.length > 10) return { code: 21623, problem: 'more than 10 MediaUrl' };
    if (from && to.startsWith('whatsapp:') !== from.startsWith('whatsapp:')) {
      return { code: 21910, problem: 'Invalid From and To pair: both must be whatsapp: addresses or neither' };
    }
    const callback = first(form.StatusCallback);
    if (callback !== undefined && !/^https?:\/\/[^/\s]+/.test(callback)) {
      return { code: 21609, problem: "Invalid 'StatusCallback'" };
    }
    return null;
  }

  private callRules(form: Record<string, string | string[]>): { code: number; problem: string } | null {
    const twiml = first(form.Twiml);
    if (!first(form.Url) && !twiml && !first(form.ApplicationSid)) {
      return { code: 21205, problem: 'one of Url, Twiml or ApplicationSid is required' };
    }
    if (twiml !== undefined) {
      if (twiml.length > 4000) return { code: 20422, problem: 'Twiml exceeds 4000 characters' };
      const twimlProblem = checkTwiml(twiml);
      if (twimlProblem) return { code: 20422, problem: `Twiml: ${twimlProblem}` };
    }
    for (const e of all(form.StatusCallbackEvent)) {
      if (!CALL_EVENTS.has(e)) return { code: 21626, problem: `invalid StatusCallbackEvent '${e}'` };
    }
    const callback = first(form.StatusCallback);
    if (callback !== undefined && !/^https?:\/\/[^/\s]+/.test(callback)) {
      return { code: 21609, problem: "Invalid 'StatusCallback'" };
    }
    return null;
  }

  private createMessage(form: Record<string, string | string[]>, res: ServerResponse): void {
    const to = first(form.To) as string;
    const number = bare(to);
    const refusal = refusalFor('Messages', number);
    if (refusal) {
      this.error(res, refusal.status, refusal.code, refusal.message, refusal.headers);
      return;
    }
    const media = all(form.MediaUrl);
    const from = first(form.From) ?? null;
    const service = first(form.MessagingServiceSid) ?? null;
    const messageSid = sid(media.length > 0 ? 'MM' : 'SM');
    const now = Date.now();
    const uri = `/2010-04-01/Accounts/${this.accountSid}/Messages/${messageSid}`;
    this.accepted++;
    this.answer(res, 201, {
      ...spec().messageExample,
      account_sid: this.accountSid,
      body: first(form.Body) ?? '',
      date_created: rfc2822(now),
      date_sent: null,
      date_updated: rfc2822(now),
      from,
      messaging_service_sid: service,
      num_media: String(media.length),
      num_segments: '1',
      price: null,
      price_unit: 'USD',
      sid: messageSid,
      status: service !== null && from === null ? 'accepted' : 'queued',
      subresource_uris: { media: `${uri}/Media.json` },
      to,
      uri: `${uri}.json`,
    });
    const callback = first(form.StatusCallback);
    if (callback === undefined) return;
    const whatsapp = to.startsWith('whatsapp:');
    const statuses: [string, string?][] =
      number === TWILIO_NUMBERS.undelivered
        ? [['sent'], ['undelivered', '30003']]
        : number === TWILIO_NUMBERS.failed
          ? [['failed', '30008']]
          : whatsapp
            ? [['sent'], ['delivered'], ['read']]
            : [['sent'], ['delivered']];
    const fields = (status: string, errorCode?: string): Fields => {
      if (whatsapp) {
        // As whatsapp-status-callback.{sent,delivered}.form.txt.
        const out: Fields = [];
        if (status !== 'sent') out.push(['EventType', status.toUpperCase()]);
        if (errorCode) out.push(['ErrorCode', errorCode]);
        out.push(
          ['SmsSid', messageSid],
          ['SmsStatus', status],
          ['MessageStatus', status],
          ['ChannelToAddress', bare(to)],
          ['To', to],
          ['ChannelPrefix', 'whatsapp'],
          ['MessageSid', messageSid],
          ['AccountSid', this.accountSid],
        );
        if (status === 'sent') out.push(['StructuredMessage', 'false']);
        out.push(['From', from ?? 'whatsapp:+14155238886'], ['ApiVersion', '2010-04-01']);
        out.push(['ChannelInstallSid', 'XEcc20d939f803ee381f2442185d0d5dc5']);
        return out;
      }
      // As sms-status-callback.sent.form.txt, plus To, ApiVersion and (for failures) ErrorCode.
      const out: Fields = [];
      if (errorCode) out.push(['ErrorCode', errorCode]);
      out.push(['AccountSid', this.accountSid], ['From', from ?? TWILIO_NUMBERS.from]);
      if (service !== null) out.push(['MessagingServiceSid', service]);
      out.push(
        ['MessageSid', messageSid],
        ['MessageStatus', status],
        ['SmsSid', messageSid],
        ['SmsStatus', status],
        ['To', to],
        ['ApiVersion', '2010-04-01'],
      );
      return out;
    };
    this.schedule(
      callback,
      statuses.map(([status, code]) => fields(status, code)),
    );
  }

  private createCall(form: Record<string, string | string[]>, res: ServerResponse): void {
    const to = first(form.To) as string;
    const from = first(form.From) as string;
    const refusal = refusalFor('Calls', to);
    if (refusal) {
      this.error(res, refusal.status, refusal.code, refusal.message, refusal.headers);
      return;
    }
    const callSid = sid('CA');
    const now = Date.now();
    const uri = `/2010-04-01/Accounts/${this.accountSid}/Calls/${callSid}`;
    this.accepted++;
    this.answer(res, 201, {
      ...spec().callExample,
      account_sid: this.accountSid,
      answered_by: null,
      date_created: rfc2822(now),
      date_updated: rfc2822(now),
      direction: 'outbound-api',
      duration: null,
      end_time: null,
      forwarded_from: null,
      from,
      from_formatted: from,
      price: null,
      sid: callSid,
      start_time: null,
      status: 'queued',
      to,
      to_formatted: to,
      uri: `${uri}.json`,
    });
    const callback = first(form.StatusCallback);
    if (callback === undefined) return;
    const asked = new Set(all(form.StatusCallbackEvent));
    if (asked.size === 0) asked.add('completed');
    const progress: [event: string, status: string][] =
      to === TWILIO_NUMBERS.undelivered
        ? [
            ['initiated', 'initiated'],
            ['ringing', 'ringing'],
            ['completed', 'busy'],
          ]
        : to === TWILIO_NUMBERS.failed
          ? [
              ['initiated', 'initiated'],
              ['completed', 'failed'],
            ]
          : to === TWILIO_NUMBERS.noAnswer
            ? [
                ['initiated', 'initiated'],
                ['ringing', 'ringing'],
                ['completed', 'no-answer'],
              ]
            : [
                ['initiated', 'initiated'],
                ['ringing', 'ringing'],
                ['answered', 'in-progress'],
                ['completed', 'completed'],
              ];
    let sequence = 0;
    const steps: Fields[] = [];
    for (const [event, status] of progress) {
      if (!asked.has(event)) continue;
      const f: Fields = [
        ['Called', to],
        ['Direction', 'outbound-api'],
        ['Timestamp', rfc2822(Date.now())],
        ['CallbackSource', 'call-progress-events'],
        ['SequenceNumber', String(sequence++)],
        ['CallSid', callSid],
        ['To', to],
        ['ApiVersion', '2010-04-01'],
        ['CallStatus', status],
        ['From', from],
        ['AccountSid', this.accountSid],
        ['Caller', from],
      ];
      if (event === 'completed') {
        const seconds = status === 'completed' ? '4' : '0';
        f.push(['CallDuration', seconds], ['Duration', status === 'completed' ? '1' : '0']);
      }
      steps.push(f);
    }
    this.schedule(callback, steps);
  }

  /** Posts each step after the previous one, `callbackDelayMs` (5–20 ms) apart. */
  private schedule(url: string, steps: Fields[]): void {
    const delay = Math.min(20, Math.max(5, this.opts.callbackDelayMs ?? 5));
    const next = (i: number) => {
      if (i >= steps.length) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        const p = this.post(url, steps[i] as Fields).finally(() => {
          this.inFlight.delete(p);
          next(i + 1);
        });
        this.inFlight.add(p);
      }, delay);
      this.timers.add(timer);
    };
    next(0);
  }

  private async post(url: string, fields: Fields): Promise<void> {
    const body = new URLSearchParams(fields).toString();
    try {
      const res = await undiciRequest(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'user-agent': 'TwilioProxy/1.1',
          'i-twilio-idempotency-token': randomBytes(16).toString('hex'),
          'x-twilio-signature': this.sign(url, fields),
        },
        body,
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await res.body.dump();
      if (res.statusCode >= 300) this.callbackFailures.push(`${url}: HTTP ${res.statusCode}`);
    } catch (err) {
      this.callbackFailures.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

interface Refusal {
  status: number;
  code: number;
  message: string;
  headers?: Record<string, string>;
}

/** The destination rules of the file comment: how a `To` number is refused at create time. */
function refusalFor(resource: Resource, number: string): Refusal | null {
  const bad = (code: number, message: string): Refusal => ({ status: 400, code, message });
  switch (number) {
    case TWILIO_NUMBERS.invalid:
      return bad(21211, `The 'To' number ${number} is not a valid phone number.`);
    case TWILIO_NUMBERS.unroutable:
      return resource === 'Messages'
        ? bad(21612, `The 'To' phone number: ${number}, is not currently reachable using the 'From' phone number`)
        : bad(21214, `'To' phone number cannot be reached`);
    case TWILIO_NUMBERS.noPermission:
      return resource === 'Messages'
        ? bad(
            21408,
            `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${number}.`,
          )
        : bad(21215, 'Geo Permission configuration is not permitting call');
    case TWILIO_NUMBERS.optedOut:
      return resource === 'Messages' ? bad(21610, 'Attempt to send to unsubscribed recipient') : null;
    case TWILIO_NUMBERS.notMobile:
      return resource === 'Messages' ? bad(21614, `'To' number is not a valid mobile number`) : null;
    case TWILIO_NUMBERS.unavailable:
      return { status: 503, code: 20503, message: 'Service is unavailable' };
    case TWILIO_NUMBERS.throttled:
      return { status: 429, code: 20429, message: 'Too Many Requests', headers: { 'retry-after': '1' } };
    default:
      return null;
  }
}

const SAY_ATTRIBUTES = new Set(['voice', 'language', 'loop']);
/** TwiML verbs a <Response> may hold, and the SSML tags <Say> may hold (TwiML reference). */
const VERBS = new Set([
  'Say',
  'Play',
  'Pause',
  'Hangup',
  'Redirect',
  'Reject',
  'Gather',
  'Dial',
  'Record',
  'Enqueue',
  'Leave',
  'Connect',
  'Pay',
  'Refer',
  'Start',
  'Stop',
  'Sms',
  'Message',
]);
const SSML = new Set([
  'break',
  'emphasis',
  'lang',
  'p',
  'phoneme',
  'prosody',
  's',
  'say-as',
  'sub',
  'w',
  'amazon:effect',
]);
const ENTITY = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;

/** A small XML well-formedness and TwiML check; returns the first problem or null. */
export function checkTwiml(twiml: string): string | null {
  const text = twiml.replace(/^<\?xml[^>]*\?>/, '').trim();
  const tokens = text.match(/<[^>]*>|[^<]+/g) ?? [];
  const stack: string[] = [];
  let roots = 0;
  for (const token of tokens) {
    if (!token.startsWith('<')) {
      if (stack.length === 0 && token.trim().length > 0) return 'text outside the <Response> element';
      if (ENTITY.test(token)) return 'unescaped & in text';
      continue;
    }
    const close = /^<\/([A-Za-z][\w:-]*)\s*>$/.exec(token);
    if (close) {
      if (stack.pop() !== close[1]) return `unbalanced </${close[1]}>`;
      continue;
    }
    const open = /^<([A-Za-z][\w:-]*)((?:\s+[A-Za-z][\w:-]*="[^"<]*")*)\s*(\/?)>$/.exec(token);
    if (!open) return `malformed tag ${token.slice(0, 40)}`;
    const [, name = '', attrText = '', selfClosing] = open;
    const attrs = [...attrText.matchAll(/([A-Za-z][\w:-]*)="([^"<]*)"/g)].map((a) => [a[1] as string, a[2] as string]);
    for (const [, v] of attrs) if (ENTITY.test(v as string)) return `unescaped & in an attribute of <${name}>`;
    const parent = stack[stack.length - 1];
    if (parent === undefined) {
      if (name !== 'Response') return `root element must be <Response>, not <${name}>`;
      if (++roots > 1) return 'more than one root element';
    } else if (parent === 'Response') {
      if (!VERBS.has(name)) return `<${name}> is not a TwiML verb`;
    } else if (parent === 'Say' || SSML.has(parent)) {
      if (!SSML.has(name)) return `<${name}> is not allowed in <Say>`;
    }
    if (name === 'Say') {
      for (const [k, v] of attrs) {
        if (!SAY_ATTRIBUTES.has(k as string)) return `<Say> has no attribute '${k}'`;
        if (k === 'loop' && !/^\d+$/.test(v as string)) return '<Say loop> must be a non-negative integer';
      }
    }
    if (selfClosing !== '/') stack.push(name);
  }
  if (stack.length > 0) return `<${stack[stack.length - 1]}> is not closed`;
  if (roots === 0) return 'no <Response> element';
  return null;
}
