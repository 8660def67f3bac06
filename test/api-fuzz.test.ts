/**
 * Property-based fuzzing of the whole HTTP API: random bodies, query strings, path parameters and headers
 * against every route, with and without a valid API key. Whatever is sent, the answer is never a 5xx, and every
 * 4xx has the shape `{error: {code, message, field?}}`. Requests go in-process (`app.inject`).
 * Runs per route and mode: FUZZ_RUNS (default 300).
 */

import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { CHANNELS } from '../src/domain/channels.ts';
import { STATUSES } from '../src/domain/message-status.ts';
import { signSandboxPayload } from '../src/sandbox/signature.ts';
import { createSandboxSender, startTestServer, TEST_API_KEY, type TestServer } from './support/harness.ts';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 300) || 300);
const TIMEOUT_MS = Math.max(60_000, RUNS * 200);

let server: TestServer;
let app: FastifyInstance;
/** Real identifiers, so generated requests reach the code behind "not found". */
const real = { messageId: '', templateId: '', senderId: '', senderToken: '' };

beforeAll(async () => {
  server = await startTestServer();
  if (!server.runtime.app) throw new Error('the test server does not serve HTTP');
  app = server.runtime.app;
  ({ id: real.senderId, token: real.senderToken } = await createSandboxSender(server));
  const t = await server.api('POST', '/v1/templates', {
    name: 'fuzz',
    channels: {
      sms: { body: 'Hi {{ name }}, code {{ code }}' },
      email: { subject: 'For {{ name }}', body: '{% if code %}Code {{ code | upcase }}{% endif %}' },
      whatsapp: { body: '{% for x in items %}{{ x }},{% endfor %}' },
    },
  });
  if (t.status !== 201) throw new Error(`template: ${t.status} ${JSON.stringify(t.body)}`);
  real.templateId = t.body.id;
  const m = await server.api('POST', '/v1/messages', { to: '+12025550100', channel: 'sms', body: 'seed' });
  if (m.status !== 202) throw new Error(`message: ${m.status} ${JSON.stringify(m.body)}`);
  real.messageId = m.body.id;
});

afterAll(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------------------------
// The check applied to every answer.

/** Why a body is not `{error: {code: string, message: string, field?: string}}`, or undefined when it is. */
function errorShapeProblem(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body is not an object';
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'error') return `top-level keys are [${keys.join(', ')}], not [error]`;
  const error = (body as { error: unknown }).error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) return "'error' is not an object";
  const e = error as Record<string, unknown>;
  if (typeof e.code !== 'string' || e.code.length === 0) return "'error.code' is not a non-empty string";
  if (typeof e.message !== 'string' || e.message.length === 0) return "'error.message' is not a non-empty string";
  if ('field' in e && typeof e.field !== 'string') return "'error.field' is not a string";
  if ('details' in e && (typeof e.details !== 'object' || e.details === null))
    return "'error.details' is not an object";
  const extra = Object.keys(e).filter((k) => !['code', 'message', 'field', 'details'].includes(k));
  if (extra.length > 0) return `unexpected keys in 'error': ${extra.join(', ')}`;
  return undefined;
}

interface Req {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | undefined;
}

const clip = (s: string | undefined, n = 400) =>
  s === undefined ? '(none)' : s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s;

/** Sends a request in-process; throws (failing the property) on a 5xx or a malformed error answer. */
async function check(req: Req): Promise<void> {
  const res = await app.inject({
    method: req.method as 'GET',
    url: req.url,
    headers: req.headers,
    ...(req.payload !== undefined ? { payload: req.payload } : {}),
  });
  const describeReq = () =>
    `${req.method} ${clip(req.url, 300)}\n  headers: ${clip(JSON.stringify(req.headers))}\n  payload: ${clip(req.payload)}`;
  if (res.statusCode >= 500) {
    throw new Error(`${res.statusCode} for ${describeReq()}\n  answer: ${clip(res.body, 1000)}`);
  }
  // HEAD answers carry no body.
  if (res.statusCode >= 400 && req.method !== 'HEAD') {
    const problem = errorShapeProblem(res.body);
    if (problem) throw new Error(`${problem}: ${res.statusCode} ${clip(res.body)} for ${describeReq()}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

/** Percent-encodes any string (lone surrogates included). */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return encodeURIComponent(Buffer.from(s, 'utf8').toString('utf8'));
  }
}

const printable = (maxLength = 40) => fc.string({ unit: 'grapheme-ascii', maxLength });
const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u0000', '\uFEFF', '\u202E', '😀', '\uD800', 'null', '{{', '{%') },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('x', 'é', '😀', '\u0000', '{{ a }}'), fc.integer({ min: 1, max: 70_000 }))
      .map(([c, n]) => c.repeat(n)),
  },
);
const anyNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 0.1, 1e-320),
);
/** Any JSON value (non-JSON values of fc.anything are mapped through JSON.stringify). */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: anyString },
  { weight: 1, arbitrary: anyNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 3, withNullPrototype: true, withObjectString: true }) },
);

const phones = [
  '+12025550100',
  '+12025550190',
  '+12025550191',
  '+12025550192',
  '+12025550193',
  '+12025550194',
  '+447700900123',
  '+1202555',
  '+999123456789',
  '+1202abc0100',
  '12025550100',
  '+',
  '+0',
  '+123456789012345',
];
const recipients = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...phones) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('ada@example.com', 'a@b', 'ADA@EXAMPLE.COM', 'x@x.co', '@', 'a@b.c'),
  },
  { weight: 1, arbitrary: fc.emailAddress() },
  { weight: 1, arbitrary: fc.constantFrom('https://push.example.com/abcdefgh', 'device-token-0001', 'user:42') },
  { weight: 1, arbitrary: fc.stringMatching(/^\+[0-9]{1,16}$/) },
  { weight: 2, arbitrary: anyValue },
);
const channels = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...CHANNELS) },
  { weight: 1, arbitrary: fc.constantFrom('fax', 'SMS', '', 'sms ', '__proto__', 'constructor') },
  { weight: 1, arbitrary: anyValue },
);
const isoIn = (ms: fc.Arbitrary<number>) => ms.map((d) => new Date(Date.now() + d).toISOString());
const dates = fc.oneof(
  isoIn(fc.integer({ min: -1e12, max: 5e10 })),
  fc.constantFrom(
    '2030-01-01T00:00:00Z',
    '2030-01-01T00:00:00',
    '2030-02-30T00:00:00Z',
    '+275760-09-13T00:00:00.000Z',
    '0000-01-01T00:00:00Z',
    'tomorrow',
    '',
  ),
  anyString,
);
const variableNames = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('name', 'code', 'items') },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', '') },
  { weight: 1, arbitrary: anyString },
);
/** Usually `valid`, sometimes anything at all. */
const mostly = <T>(valid: fc.Arbitrary<T>, weight = 3) =>
  fc.oneof({ weight, arbitrary: valid }, { weight: 1, arbitrary: anyValue });
/** Sometimes adds keys the schema does not know (a real field name or anything). */
const withExtraKeys = (arb: fc.Arbitrary<Record<string, unknown>>, knownKeys: string[]) =>
  fc
    .tuple(
      arb,
      fc.option(fc.dictionary(fc.oneof(anyString, fc.constantFrom('type', ...knownKeys)), anyValue, { maxKeys: 3 }), {
        freq: 6,
      }),
    )
    .map(([value, extra]) => (extra ? { ...extra, ...value } : value));

const templateRef = withExtraKeys(
  fc.record(
    {
      id: mostly(fc.oneof({ weight: 4, arbitrary: fc.constant('@template') }, fc.constantFrom('tpl_nope', ''))),
      variables: mostly(fc.dictionary(variableNames, anyValue, { maxKeys: 5 })),
    },
    { requiredKeys: [] },
  ),
  ['id', 'variables'],
);
const messageFields = {
  to: mostly(recipients),
  channel: channels,
  body: mostly(fc.oneof(fc.constantFrom('hello', 'x'.repeat(1600), 'x'.repeat(1601), ''), anyString)),
  subject: mostly(fc.oneof(fc.constant('Hi'), anyString)),
  template: mostly(templateRef),
  from: mostly(fc.oneof(fc.constantFrom('+12025550180', 'Acme'), anyString)),
  metadata: mostly(fc.dictionary(anyString, anyValue, { maxKeys: 5 })),
  sendAt: mostly(dates),
  priority: mostly(fc.constantFrom('high', 'normal', 'low', 'urgent')),
};
const messageKeys = Object.keys(messageFields);
/** An object with keys drawn from the real message fields (any subset), values valid-ish or random. */
const messageLike = withExtraKeys(fc.record(messageFields, { requiredKeys: [] }), messageKeys);
/** Valid messages with one field replaced or removed, so the checks past the schema are reached too. */
const nearlyValidMessage = fc
  .tuple(
    fc.constantFrom<Record<string, unknown>>(
      { to: '+12025550100', channel: 'sms', body: 'hi' },
      { to: 'ada@example.com', channel: 'email', subject: 'Hi', body: 'hi', priority: 'low' },
      { to: '+12025550100', channel: 'sms', template: { id: '@template', variables: { name: 'A', code: 1 } } },
      { to: 'ada@example.com', channel: 'email', template: { id: '@template', variables: { code: 'x' } } },
      { to: '+12025550100', channel: 'whatsapp', template: { id: '@template', variables: { items: [1, 2] } } },
      { to: '+447700900123', channel: 'voice', body: 'hi', metadata: { a: 1 }, sendAt: '2030-01-01T00:00:00Z' },
    ),
    fc.option(fc.constantFrom(...messageKeys), { freq: 4 }),
    fc.boolean(),
  )
  .chain(([base, key, remove]) =>
    key === null
      ? fc.constant(base)
      : remove
        ? fc.constant(Object.fromEntries(Object.entries(base).filter(([k]) => k !== key)))
        : (messageFields[key as keyof typeof messageFields] as fc.Arbitrary<unknown>).map((v) => ({
            ...base,
            [key]: v,
          })),
  );
const message = fc.oneof({ weight: 1, arbitrary: messageLike }, { weight: 2, arbitrary: nearlyValidMessage });
const batch = withExtraKeys(
  fc.record({
    messages: mostly(fc.array(mostly(message, 6), { maxLength: 25 }), 8),
  }),
  ['messages'],
);
const templateContent = withExtraKeys(
  fc.record(
    {
      body: mostly(
        fc.oneof(
          fc.constantFrom(
            'Hi {{ name }}',
            '{% if a %}x{% endif %}',
            '{{ a | nope }}',
            '{{ a | upcase | truncate: 3 }}',
            '{% for %}',
            '{{',
            '',
            'plain',
          ),
          anyString,
        ),
      ),
      subject: mostly(fc.oneof(fc.constantFrom('S {{ a }}', ''), anyString)),
    },
    { requiredKeys: ['body'] },
  ),
  ['body', 'subject'],
);
const templateFields = {
  name: mostly(fc.oneof(fc.constant('t'), anyString)),
  channels: mostly(
    fc.dictionary(
      fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CHANNELS) }, anyString),
      mostly(templateContent, 5),
      {
        maxKeys: 4,
      },
    ),
  ),
};
/** Valid templates (Liquid included) with, at times, one part replaced by a generated one. */
const nearlyValidTemplate = fc
  .tuple(
    fc.constantFrom<Record<string, unknown>>(
      { name: 'welcome', channels: { sms: { body: 'Hi {{ name }}' } } },
      {
        name: 'receipt',
        channels: { email: { subject: 'Order {{ id }}', body: '{% for i in items %}{{ i }}{% endfor %}' } },
      },
      {
        name: 'multi',
        channels: { sms: { body: 'a' }, whatsapp: { body: '{{ a | default: "x" }}' }, push: { body: 'p' } },
      },
    ),
    fc.option(fc.constantFrom('name', 'channels', 'channels.sms', 'channels.sms.body'), { freq: 3 }),
  )
  .chain(([base, mutate]) => {
    if (mutate === null) return fc.constant(base);
    if (mutate === 'name' || mutate === 'channels') {
      return templateFields[mutate].map((v: unknown) => ({ ...base, [mutate]: v }));
    }
    if (mutate === 'channels.sms') {
      return mostly(templateContent).map((v) => ({ ...base, channels: { ...(base.channels as object), sms: v } }));
    }
    return mostly(anyString).map((v) => ({ ...base, channels: { ...(base.channels as object), sms: { body: v } } }));
  });
const templateBody = fc.oneof(
  { weight: 3, arbitrary: nearlyValidTemplate },
  {
    weight: 2,
    arbitrary: withExtraKeys(
      fc.oneof(
        { weight: 3, arbitrary: fc.record(templateFields) },
        { weight: 1, arbitrary: fc.record(templateFields, { requiredKeys: [] }) },
      ),
      ['name', 'channels'],
    ),
  },
);
const carrierEvent = withExtraKeys(
  fc.record(
    {
      type: mostly(fc.constantFrom('message.status', 'message.inbound', 'other')),
      status: mostly(fc.constantFrom(...STATUSES)),
      eventId: mostly(fc.oneof(fc.constantFrom('ev_1', 'ev_2'), fc.uuid())),
      messageId: mostly(fc.oneof(fc.constantFrom('sbx_1', '@message'), anyString)),
      reference: mostly(fc.constant('@message')),
      timestamp: mostly(dates),
      error: fc.oneof(fc.record({ code: mostly(anyString), message: anyValue }, { requiredKeys: [] }), anyValue),
      channel: channels,
      body: mostly(anyString),
      from: recipients,
      to: recipients,
    },
    { requiredKeys: [] },
  ),
  [],
);
const webhookEvents = mostly(fc.array(carrierEvent, { maxLength: 6 }), 5);

/** Nested arrays or objects, deeper than any schema expects. */
const deepJson = fc
  .tuple(fc.integer({ min: 50, max: 5000 }), fc.boolean(), fc.boolean())
  .map(([depth, arrays, asMetadata]) => {
    const inner = arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    return asMetadata ? `{"to":"+12025550100","channel":"sms","body":"x","metadata":{"deep":${inner}}}` : inner;
  });

/** Replaces the placeholders with the real ids, in any value. */
function withRealIds(value: unknown): unknown {
  if (value === '@template') return real.templateId;
  if (value === '@message') return real.messageId;
  if (Array.isArray(value)) return value.map(withRealIds);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, { value: withRealIds(v), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(withRealIds(value), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return undefined;
  }
}

type BodyKind = 'message' | 'batch' | 'template' | 'webhook' | 'none';
const shaped: Record<BodyKind, fc.Arbitrary<unknown>> = {
  message,
  batch,
  template: templateBody,
  webhook: webhookEvents,
  none: anyValue,
};

/** A request body: shaped like the route's, random JSON, not JSON, huge, deeply nested, or absent. */
const payloadFor = (kind: BodyKind): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 16, arbitrary: shaped[kind].map(toJson) },
    { weight: 2, arbitrary: anyValue.map(toJson) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: anyString },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '{',
        '{"to":',
        'null',
        '[]',
        '"x"',
        '1e999',
        '{"__proto__":{"x":1}}',
        '\uFEFF{}',
      ),
    },
    { weight: 1, arbitrary: deepJson },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(1024 * 1024 - 100, 1024 * 1024 + 100, 3 * 1024 * 1024)
        .map((n) => `{"to":"+12025550100","channel":"sms","body":"${'x'.repeat(n)}"}`),
    },
  );

const contentTypes = fc.oneof(
  { weight: 24, arbitrary: fc.constant('application/json') },
  { weight: 2, arbitrary: fc.constant(undefined) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'APPLICATION/JSON',
      'application/json;',
      'application/json; ;',
      'application/vnd.api+json',
      'application/merge-patch+json',
      'text/plain',
      'text/plain; charset=utf-8',
      'text/html',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=xyz',
      'application/octet-stream',
      '*/*',
      '',
      ';',
      'json',
    ),
  },
  { weight: 1, arbitrary: printable(60) },
);

const VALID_AUTH = `Bearer ${TEST_API_KEY}`;
const badAuth = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('', 'Bearer', 'Bearer ', `bearer ${TEST_API_KEY}x`, `Basic ${TEST_API_KEY}`, TEST_API_KEY),
  printable(80),
  printable(80).map((s) => `Bearer ${s}`),
);

const sandboxSignatureHeader = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: printable(100) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: -1, max: 4e9 }), fc.stringMatching(/^[0-9a-f]{64}$/))
      .map(([t, h]) => `t=${t},v1=${h}`),
  },
  { weight: 4, arbitrary: fc.constant('@sign') },
);

/** The headers of a request; `@sign` asks for a valid sandbox signature of the payload. */
const headersArb = (withKey: boolean, idempotency: boolean, webhook: boolean) =>
  fc.record(
    {
      authorization: withKey ? fc.constant(VALID_AUTH) : badAuth,
      'content-type': contentTypes,
      'idempotency-key': idempotency
        ? fc.option(fc.oneof(printable(40), fc.uuid(), fc.constantFrom('', 'k'.repeat(255), 'k'.repeat(256))), {
            freq: 2,
          })
        : fc.constant(null),
      'x-omni-sandbox-signature': webhook ? sandboxSignatureHeader : fc.constant(undefined),
      accept: fc.option(fc.constantFrom('application/json', 'text/html', '*/*', 'application/xml'), { freq: 3 }),
    },
    { requiredKeys: [] },
  );

/** Fastify's router rejects longer path parameters before any handler runs (see the skipped property below). */
const MAX_PARAM_LENGTH = 100;

/** Percent-encodes `s`, shortened until the result fits in a path parameter. */
function encSegment(s: string): string {
  let raw = s;
  let out = enc(raw);
  while (out.length > MAX_PARAM_LENGTH) {
    raw = raw.slice(0, Math.floor(raw.length / 2));
    out = enc(raw);
  }
  return out;
}

/** A path segment: a real id, a placeholder, or anything (percent-encoded). */
const segment = (realIds: string[]) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...realIds) },
    { weight: 3, arbitrary: anyString.map(encSegment) },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{60,100}$/) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('%00', '..', '%2e%2e', '%2F', '%25', '~', 'a;b', '%20', '+', '%F0%9F%98%80'),
    },
  );

/** Path segments the router itself rejects: broken percent-encoding, parameters over its length limit. */
const brokenSegment = fc.oneof(
  fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AF', '%ED%A0%80', '%%', 'a%'),
  fc.integer({ min: MAX_PARAM_LENGTH + 1, max: 5000 }).map((n) => 'x'.repeat(n)),
);

const queryKeys = ['status', 'channel', 'direction', 'createdFrom', 'createdTo', 'limit', 'cursor'];
const queryValue = fc.oneof(
  fc.constantFrom(...STATUSES, ...CHANNELS, 'outbound', 'inbound', '0', '1', '500', '501', '-1', '1.5', 'abc', ''),
  dates,
  anyString,
  fc.integer().map(String),
);
/** A query string: real and unknown keys, repeated keys, broken escapes. */
const queryString = fc.oneof(
  { weight: 1, arbitrary: fc.constant('') },
  {
    weight: 6,
    arbitrary: fc
      .array(fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...queryKeys) }, anyString), queryValue), {
        maxLength: 5,
      })
      .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}` : '')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('?', '?&', '?=', '?limit', '?limit=%', '?limit[]=1', '?status=%E0%A4%A', '?a=1&a=2&a=3'),
  },
);

interface Route {
  method: 'GET' | 'POST';
  pattern: string;
  body: BodyKind | null;
  idempotency?: boolean;
  /** Builds the path (without query) from generated segments. */
  path: fc.Arbitrary<string>;
}

const messageIdSegment = () => segment(['@message', 'msg_01J000000000000000000000']);

function routes(): Route[] {
  return [
    { method: 'GET', pattern: '/health', body: null, path: fc.constant('/health') },
    { method: 'GET', pattern: '/ready', body: null, path: fc.constant('/ready') },
    { method: 'GET', pattern: '/metrics', body: null, path: fc.constant('/metrics') },
    { method: 'GET', pattern: '/docs', body: null, path: fc.constantFrom('/docs', '/docs/') },
    { method: 'GET', pattern: '/docs/json', body: null, path: fc.constantFrom('/docs/json', '/docs/yaml') },
    {
      method: 'GET',
      pattern: '/docs/static/*',
      body: null,
      path: segment(['swagger-ui.css', 'index.html', '..%2F..%2Fpackage.json']).map((s) => `/docs/static/${s}`),
    },
    {
      method: 'POST',
      pattern: '/v1/messages',
      body: 'message',
      idempotency: true,
      path: fc.constant('/v1/messages'),
    },
    { method: 'POST', pattern: '/v1/messages/batch', body: 'batch', path: fc.constant('/v1/messages/batch') },
    { method: 'POST', pattern: '/v1/messages/validate', body: 'message', path: fc.constant('/v1/messages/validate') },
    {
      method: 'GET',
      pattern: '/v1/messages/:id',
      body: null,
      path: messageIdSegment().map((id) => `/v1/messages/${id}`),
    },
    { method: 'GET', pattern: '/v1/messages', body: null, path: fc.constant('/v1/messages') },
    {
      method: 'POST',
      pattern: '/v1/messages/:id/cancel',
      body: 'none',
      path: messageIdSegment().map((id) => `/v1/messages/${id}/cancel`),
    },
    { method: 'POST', pattern: '/v1/templates', body: 'template', path: fc.constant('/v1/templates') },
    {
      method: 'GET',
      pattern: '/v1/templates/:id',
      body: null,
      path: segment(['@template', 'tpl_01J000000000000000000000']).map((id) => `/v1/templates/${id}`),
    },
    { method: 'GET', pattern: '/v1/dead-letters', body: null, path: fc.constant('/v1/dead-letters') },
    {
      method: 'POST',
      pattern: '/webhooks/:provider/:senderId',
      body: 'webhook',
      path: fc.oneof(
        { weight: 2, arbitrary: fc.constant('/webhooks/sandbox/@sender') },
        {
          weight: 1,
          arbitrary: fc
            .tuple(segment(['sandbox', 'twilio']), segment(['@sender', 'snd_01J000000000000000000000']))
            .map(([p, s]) => `/webhooks/${p}/${s}`),
        },
      ),
    },
  ];
}

function resolvePath(path: string): string {
  return path
    .replace('@message', real.messageId)
    .replace('@template', real.templateId)
    .replace('@sender', real.senderId);
}

function requestArb(route: Route, withKey: boolean): fc.Arbitrary<Req> {
  const isWebhook = route.body === 'webhook';
  return fc
    .record({
      path: route.path,
      query: queryString,
      headers: headersArb(withKey, route.idempotency === true, isWebhook),
      payload: route.body ? payloadFor(route.body) : fc.option(payloadFor('none'), { freq: 4, nil: undefined }),
    })
    .map(({ path, query, headers, payload }) => {
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(headers)) if (typeof v === 'string') h[k] = v;
      if (h['x-omni-sandbox-signature'] === '@sign') {
        h['x-omni-sandbox-signature'] = signSandboxPayload(real.senderToken, payload ?? '', Date.now() / 1000);
      }
      return { method: route.method, url: resolvePath(path) + query, headers: h, payload };
    });
}

const fuzzRoutes = routes();

describe('API fuzzing: no 5xx, every 4xx has the error shape', () => {
  it.each(fuzzRoutes.map((r) => [`${r.method} ${r.pattern}`, r] as const))(
    '%s with the API key',
    async (_name, route) => {
      await fc.assert(
        fc.asyncProperty(requestArb(route, true), (req) => check(req)),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it.each(fuzzRoutes.map((r) => [`${r.method} ${r.pattern}`, r] as const))(
    '%s without a valid API key',
    async (_name, route) => {
      await fc.assert(
        fc.asyncProperty(requestArb(route, false), (req) => check(req)),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  // Fastify's router answers these before any route runs; `frameworkErrors` routes them to our error handler.
  it(
    'malformed path parameters (bad percent-encoding, too long) answer with the error shape',
    async () => {
      const arb = fc.record({
        route: fc.constantFrom(
          'GET /v1/messages/@',
          'POST /v1/messages/@/cancel',
          'GET /v1/templates/@',
          'POST /webhooks/@/x',
          'POST /webhooks/sandbox/@',
          'GET /docs/static/@',
        ),
        bad: brokenSegment,
        auth: fc.oneof(fc.constant(VALID_AUTH), badAuth),
      });
      await fc.assert(
        fc.asyncProperty(arb, ({ route, bad, auth }) => {
          const [method, path] = route.split(' ') as [string, string];
          const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
          return check({ method, url: path.replace('@', bad), headers, payload: undefined });
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'any method on any path',
    async () => {
      const paths = fc.oneof(
        fc.constantFrom(...fuzzRoutes.map((r) => r.pattern)),
        fc
          .array(segment(['v1', 'messages', 'templates', 'webhooks', 'docs', 'batch', 'cancel']), {
            minLength: 1,
            maxLength: 5,
          })
          .map((parts) => `/${parts.join('/')}`),
      );
      const arb = fc.record({
        method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
        path: paths,
        query: queryString,
        auth: fc.oneof(fc.constant(VALID_AUTH), badAuth),
        contentType: contentTypes,
        payload: fc.option(payloadFor('message'), { nil: undefined }),
      });
      await fc.assert(
        fc.asyncProperty(arb, ({ method, path, query, auth, contentType, payload }) => {
          const headers: Record<string, string> = {};
          if (auth !== undefined) headers.authorization = auth;
          if (contentType !== undefined) headers['content-type'] = contentType;
          // GET and HEAD requests carry no body.
          const body = method === 'GET' || method === 'HEAD' ? undefined : payload;
          return check({ method, url: resolvePath(path) + query, headers, payload: body });
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );
});
