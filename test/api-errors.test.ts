/**
 * Every error the API answers, end to end over HTTP: exact status, stable code, the offending field, and the
 * shape `{error: {code, message, field?}}` on every 4xx.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signSandboxPayload } from '../src/sandbox/signature.ts';
import { MAX_BATCH } from '../src/services/accept-messages.ts';
import { createSandboxSender, eventually, startTestServer, TEST_API_KEY, type TestServer } from './support/harness.ts';

let server: TestServer;
let senderId: string;
let senderToken: string;

beforeAll(async () => {
  server = await startTestServer();
  ({ id: senderId, token: senderToken } = await createSandboxSender(server));
});

afterAll(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers

interface Call {
  method: string;
  path: string;
  /** Sent as JSON with `content-type: application/json`. */
  json?: unknown;
  /** Sent as is (with the given content type or none). */
  raw?: string;
  headers?: Record<string, string>;
  /** `undefined`: the test key; `null`: no Authorization header; a string: that header value. */
  auth?: string | null;
}

interface Answer {
  status: number;
  body: unknown;
  text: string;
}

async function call(c: Call): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (c.auth === undefined) headers.authorization = `Bearer ${TEST_API_KEY}`;
  else if (c.auth !== null) headers.authorization = c.auth;
  let body: string | undefined;
  if (c.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(c.json);
  } else if (c.raw !== undefined) {
    body = c.raw;
  }
  Object.assign(headers, c.headers);
  const res = await fetch(server.url + c.path, { method: c.method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

interface ErrorPayload {
  code: string;
  message: string;
  field?: string;
  details?: Record<string, unknown>;
}

/** Asserts `{error: {code: string, message: string, field?: string}}` (and nothing else) and returns the error. */
function expectErrorShape(body: unknown, context = ''): ErrorPayload {
  const where = context ? ` (${context})` : '';
  expect(body, `error body must be an object${where}`).toBeTypeOf('object');
  expect(body, `error body must not be null${where}`).not.toBeNull();
  expect(Object.keys(body as object), `top-level keys${where}`).toEqual(['error']);
  const error = (body as { error: unknown }).error as Record<string, unknown>;
  expect(error, `'error' must be an object${where}`).toBeTypeOf('object');
  expect(error).not.toBeNull();
  expect(typeof error.code, `error.code${where}`).toBe('string');
  expect((error.code as string).length).toBeGreaterThan(0);
  expect(typeof error.message, `error.message${where}`).toBe('string');
  expect((error.message as string).length).toBeGreaterThan(0);
  if ('field' in error) expect(typeof error.field, `error.field${where}`).toBe('string');
  if ('details' in error) expect(error.details, `error.details${where}`).toBeTypeOf('object');
  for (const key of Object.keys(error)) expect(['code', 'message', 'field', 'details']).toContain(key);
  return error as unknown as ErrorPayload;
}

/**
 * Asserts status, code and field of an error answer. `field`: a string must match exactly; `null` means the
 * answer must not name a field; `undefined` does not check it.
 */
function expectError(res: Answer, status: number, code: string, field?: string | null): ErrorPayload {
  const context = `${status} ${code}; got ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, context).toBe(status);
  const error = expectErrorShape(res.body, context);
  expect(error.code, context).toBe(code);
  if (field === null) expect(error.field, context).toBeUndefined();
  else if (field !== undefined) expect(error.field, context).toBe(field);
  return error;
}

const SMS = { to: '+12025550100', channel: 'sms', body: 'hello' } as const;
const EMAIL = { to: 'ada@example.com', channel: 'email', subject: 'Hi', body: 'hello' } as const;
const sms = (over: Record<string, unknown> = {}) => ({ ...SMS, ...over });
const without = (key: string, over: Record<string, unknown> = SMS) =>
  Object.fromEntries(Object.entries(over).filter(([k]) => k !== key));

interface Case extends Call {
  name: string;
  status: number;
  code: string;
  field?: string | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Table-driven cases (no state needed)

const bodyRoutes = ['/v1/messages', '/v1/messages/validate', '/v1/messages/batch', '/v1/templates'];

const cases: Case[] = [
  // Malformed / empty / non-JSON bodies, on every route that takes one.
  ...bodyRoutes.flatMap((path): Case[] => [
    {
      name: `${path}: malformed JSON`,
      method: 'POST',
      path,
      raw: '{"to": "+12025550100", "channel": ',
      headers: { 'content-type': 'application/json' },
      status: 400,
      code: 'malformed_json',
      field: null,
    },
    {
      name: `${path}: trailing garbage after JSON`,
      method: 'POST',
      path,
      raw: '{"to": "+12025550100"} x',
      headers: { 'content-type': 'application/json' },
      status: 400,
      code: 'malformed_json',
    },
    {
      name: `${path}: empty body with JSON content type`,
      method: 'POST',
      path,
      raw: '',
      headers: { 'content-type': 'application/json' },
      status: 400,
      code: 'malformed_json',
    },
    {
      name: `${path}: text/plain body`,
      method: 'POST',
      path,
      raw: 'to=+12025550100&channel=sms',
      headers: { 'content-type': 'text/plain' },
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: `${path}: form-encoded body`,
      method: 'POST',
      path,
      raw: 'to=%2B12025550100&channel=sms&body=hi',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: `${path}: XML body`,
      method: 'POST',
      path,
      raw: '<message/>',
      headers: { 'content-type': 'application/xml' },
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: `${path}: JSON array instead of an object`,
      method: 'POST',
      path,
      json: [SMS],
      status: 400,
      code: 'invalid_type',
    },
    { name: `${path}: JSON null`, method: 'POST', path, json: null, status: 400, code: 'invalid_type' },
    {
      name: `${path}: body over 1 MiB`,
      method: 'POST',
      path: path === '/v1/messages/batch' ? '/v1/messages' : path,
      json: sms({ body: 'x'.repeat(1024 * 1024 + 10) }),
      status: 413,
      code: 'payload_too_large',
    },
  ]),
  {
    name: 'JSON with a __proto__ key',
    method: 'POST',
    path: '/v1/messages',
    raw: '{"to":"+12025550100","channel":"sms","body":"x","__proto__":{"admin":true}}',
    headers: { 'content-type': 'application/json' },
    status: 400,
    code: 'malformed_json',
  },

  // Wrong types.
  { name: 'to is a number', method: 'POST', path: '/v1/messages', json: sms({ to: 12025550100 }), ...e('to') },
  { name: 'body is a number', method: 'POST', path: '/v1/messages', json: sms({ body: 42 }), ...e('body') },
  { name: 'subject is an array', method: 'POST', path: '/v1/messages', json: sms({ subject: ['a'] }), ...e('subject') },
  { name: 'from is null', method: 'POST', path: '/v1/messages', json: sms({ from: null }), ...e('from') },
  {
    name: 'metadata is an array',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ metadata: [1, 2] }),
    ...e('metadata'),
  },
  {
    name: 'sendAt is a number',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ sendAt: 1700000000 }),
    ...e('sendAt'),
  },
  {
    name: 'template is a string',
    method: 'POST',
    path: '/v1/messages',
    json: without('body', sms({ template: 'tpl_1' })),
    ...e('template'),
  },
  {
    name: 'template.variables is an array',
    method: 'POST',
    path: '/v1/messages',
    json: without('body', sms({ template: { id: 'tpl_1', variables: ['a'] } })),
    ...e('template.variables'),
  },
  {
    name: 'validate: to is a boolean',
    method: 'POST',
    path: '/v1/messages/validate',
    json: sms({ to: true }),
    ...e('to'),
  },
  {
    name: 'batch: messages is an object',
    method: 'POST',
    path: '/v1/messages/batch',
    json: { messages: SMS },
    ...e('messages'),
  },
  {
    name: 'templates: name is a number',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 1, channels: { sms: { body: 'hi' } } },
    ...e('name'),
  },
  {
    name: 'templates: channels.sms.body is a number',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { sms: { body: 1 } } },
    ...e('channels.sms.body'),
  },

  // Missing required fields.
  { name: 'missing to', method: 'POST', path: '/v1/messages', json: without('to'), ...m('to') },
  { name: 'missing channel', method: 'POST', path: '/v1/messages', json: without('channel'), ...m('channel') },
  { name: 'validate: missing to', method: 'POST', path: '/v1/messages/validate', json: without('to'), ...m('to') },
  {
    name: 'missing template.id',
    method: 'POST',
    path: '/v1/messages',
    json: without('body', sms({ template: { variables: {} } })),
    ...m('template.id'),
  },
  { name: 'batch: missing messages', method: 'POST', path: '/v1/messages/batch', json: {}, ...m('messages') },
  {
    name: 'templates: missing name',
    method: 'POST',
    path: '/v1/templates',
    json: { channels: { sms: { body: 'hi' } } },
    ...m('name'),
  },
  { name: 'templates: missing channels', method: 'POST', path: '/v1/templates', json: { name: 'x' }, ...m('channels') },
  {
    name: 'templates: channels is empty',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: {} },
    ...m('channels'),
  },

  // Unknown fields.
  { name: 'unknown top-level field', method: 'POST', path: '/v1/messages', json: sms({ foo: 1 }), ...u('foo') },
  { name: 'misspelt field', method: 'POST', path: '/v1/messages', json: sms({ subjet: 'x' }), ...u('subjet') },
  {
    name: 'unknown field in template',
    method: 'POST',
    path: '/v1/messages',
    json: without('body', sms({ template: { id: 'tpl_1', vars: {} } })),
    ...u('template.vars'),
  },
  {
    name: 'batch: unknown field beside messages',
    method: 'POST',
    path: '/v1/messages/batch',
    json: { messages: [SMS], dryRun: true },
    ...u('dryRun'),
  },
  {
    name: 'templates: unknown field',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { sms: { body: 'hi' } }, locale: 'en' },
    ...u('locale'),
  },
  {
    name: 'templates: unknown field in channel content',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { sms: { body: 'hi', html: '<b>' } } },
    ...u('channels.sms.html'),
  },

  // Unknown channel.
  ...['fax', 'SMS', '', 'sms '].map(
    (channel): Case => ({
      name: `unknown channel ${JSON.stringify(channel)}`,
      method: 'POST',
      path: '/v1/messages',
      json: sms({ channel }),
      status: 400,
      code: 'unknown_channel',
      field: 'channel',
    }),
  ),
  {
    name: 'validate: unknown channel',
    method: 'POST',
    path: '/v1/messages/validate',
    json: sms({ channel: 'pigeon' }),
    status: 400,
    code: 'unknown_channel',
    field: 'channel',
  },
  {
    name: 'templates: unknown channel',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { fax: { body: 'hi' } } },
    status: 400,
    code: 'unknown_channel',
    field: 'channels.fax',
  },

  // Invalid E.164 numbers (libphonenumber-js), on every phone channel.
  ...[
    ['too short', '+1202555'],
    ['letters', '+1202abc0100'],
    ['only letters', 'not-a-number'],
    ['no plus', '12025550100'],
    ['spaces', '+1 202 555 0100'],
    ['leading zero country code', '+012025550100'],
    ['valid shape, unassigned country code', '+999123456789'],
    ['too long', '+1202555010012345'],
    ['invalid US area code', '+11115550100'],
  ].map(
    ([label, to]): Case => ({
      name: `invalid phone number (${label}): ${to}`,
      method: 'POST',
      path: '/v1/messages',
      json: sms({ to }),
      status: 400,
      code: 'invalid_phone_number',
      field: 'to',
    }),
  ),
  ...['mms', 'whatsapp', 'rcs', 'voice'].map(
    (channel): Case => ({
      name: `invalid phone number on ${channel}`,
      method: 'POST',
      path: '/v1/messages',
      json: sms({ channel, to: '+1202555' }),
      status: 400,
      code: 'invalid_phone_number',
      field: 'to',
    }),
  ),
  {
    name: 'email address on the sms channel',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ to: 'ada@example.com' }),
    status: 400,
    code: 'invalid_phone_number',
    field: 'to',
  },
  {
    name: 'validate: invalid phone number',
    method: 'POST',
    path: '/v1/messages/validate',
    json: sms({ to: '+999123456789' }),
    status: 400,
    code: 'invalid_phone_number',
    field: 'to',
  },

  // Invalid email addresses.
  ...[
    'not-an-email',
    'a@b',
    'ada@example',
    'ada example@example.com',
    '@example.com',
    'ada@@example.com',
    '+12025550100',
  ].map(
    (to): Case => ({
      name: `invalid email ${JSON.stringify(to)}`,
      method: 'POST',
      path: '/v1/messages',
      json: { ...EMAIL, to },
      status: 400,
      code: 'invalid_email',
      field: 'to',
    }),
  ),

  // Body limits.
  {
    name: 'SMS body of 1601 characters',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ body: 'x'.repeat(1601) }),
    status: 400,
    code: 'body_too_long',
    field: 'body',
  },
  {
    name: 'WhatsApp body of 4097 characters',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ channel: 'whatsapp', body: 'x'.repeat(4097) }),
    status: 400,
    code: 'body_too_long',
    field: 'body',
  },
  {
    name: 'validate: SMS body of 1601 characters',
    method: 'POST',
    path: '/v1/messages/validate',
    json: sms({ body: 'x'.repeat(1601) }),
    status: 400,
    code: 'body_too_long',
    field: 'body',
  },
  {
    name: 'empty body',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ body: '' }),
    status: 400,
    code: 'body_empty',
    field: 'body',
  },
  {
    name: 'subject over 998 characters',
    method: 'POST',
    path: '/v1/messages',
    json: { ...EMAIL, subject: 's'.repeat(999) },
    status: 400,
    code: 'too_long',
    field: 'subject',
  },

  // Content: body and template.
  {
    name: 'body and template both',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ template: { id: 'tpl_1' } }),
    status: 400,
    code: 'conflicting_content',
    field: 'template',
  },
  {
    name: 'neither body nor template',
    method: 'POST',
    path: '/v1/messages',
    json: without('body'),
    status: 400,
    code: 'missing_content',
    field: 'body',
  },
  {
    name: 'validate: neither body nor template',
    method: 'POST',
    path: '/v1/messages/validate',
    json: without('body'),
    status: 400,
    code: 'missing_content',
    field: 'body',
  },

  // sendAt.
  ...[
    ['not a date', 'tomorrow'],
    ['no time zone', '2030-12-01T09:00:00'],
    ['date only', '2030-12-01'],
    ['impossible date', '2030-13-45T09:00:00Z'],
    ['more than a year ahead', new Date(Date.now() + 2 * 366 * 24 * 3600_000).toISOString()],
  ].map(
    ([label, sendAt]): Case => ({
      name: `bad sendAt (${label})`,
      method: 'POST',
      path: '/v1/messages',
      json: sms({ sendAt }),
      status: 400,
      code: 'invalid_send_at',
      field: 'sendAt',
    }),
  ),

  // Other enums.
  {
    name: 'unknown priority',
    method: 'POST',
    path: '/v1/messages',
    json: sms({ priority: 'urgent' }),
    status: 400,
    code: 'invalid_value',
    field: 'priority',
  },

  // Templates referenced by messages.
  {
    name: 'template not found',
    method: 'POST',
    path: '/v1/messages',
    json: without('body', sms({ template: { id: 'tpl_does_not_exist' } })),
    status: 400,
    code: 'template_not_found',
    field: 'template.id',
  },

  // Templates.
  {
    name: 'templates: Liquid syntax error',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { sms: { body: 'Hi {{ name' } } },
    status: 400,
    code: 'template_syntax_error',
    field: 'channels.sms',
  },
  {
    name: 'templates: unknown Liquid tag',
    method: 'POST',
    path: '/v1/templates',
    json: { name: 'x', channels: { email: { subject: 'ok', body: '{% frobnicate %}' } } },
    status: 400,
    code: 'template_syntax_error',
    field: 'channels.email',
  },
  {
    name: 'templates: empty name',
    method: 'POST',
    path: '/v1/templates',
    json: { name: '', channels: { sms: { body: 'hi' } } },
    status: 400,
    code: 'invalid_value',
    field: 'name',
  },

  // Batches.
  {
    name: 'batch: empty messages',
    method: 'POST',
    path: '/v1/messages/batch',
    json: { messages: [] },
    status: 400,
    code: 'invalid_value',
    field: 'messages',
  },
  {
    name: `batch: ${MAX_BATCH + 1} messages`,
    method: 'POST',
    path: '/v1/messages/batch',
    json: { messages: Array.from({ length: MAX_BATCH + 1 }, () => SMS) },
    status: 400,
    code: 'too_many_items',
    field: 'messages',
  },

  // Authentication, on every authenticated route.
  ...(
    [
      ['GET', '/v1/messages'],
      ['POST', '/v1/messages'],
      ['POST', '/v1/messages/batch'],
      ['POST', '/v1/messages/validate'],
      ['GET', '/v1/messages/msg_1'],
      ['POST', '/v1/messages/msg_1/cancel'],
      ['POST', '/v1/templates'],
      ['GET', '/v1/templates/tpl_1'],
      ['GET', '/v1/dead-letters'],
    ] as const
  ).flatMap(([method, path]): Case[] => {
    const json = method === 'POST' ? SMS : undefined;
    return [
      { name: `${method} ${path}: no Authorization`, method, path, json, auth: null, ...a('missing_api_key') },
      { name: `${method} ${path}: empty Authorization`, method, path, json, auth: '', ...a('missing_api_key') },
      {
        name: `${method} ${path}: wrong key`,
        method,
        path,
        json,
        auth: 'Bearer omni_sk_not_a_real_key',
        ...a('invalid_api_key'),
      },
      {
        name: `${method} ${path}: the key without Bearer`,
        method,
        path,
        json,
        auth: TEST_API_KEY,
        ...a('invalid_authorization'),
      },
      {
        name: `${method} ${path}: Basic scheme`,
        method,
        path,
        json,
        auth: `Basic ${Buffer.from(`user:${TEST_API_KEY}`).toString('base64')}`,
        ...a('invalid_authorization'),
      },
      {
        name: `${method} ${path}: Bearer with no key`,
        method,
        path,
        json,
        auth: 'Bearer ',
        ...a('invalid_authorization'),
      },
      {
        name: `${method} ${path}: two tokens`,
        method,
        path,
        json,
        auth: `Bearer ${TEST_API_KEY} extra`,
        ...a('invalid_authorization'),
      },
    ];
  }),
  {
    name: 'authentication comes before body parsing',
    method: 'POST',
    path: '/v1/messages',
    raw: '{not json',
    headers: { 'content-type': 'application/json' },
    auth: null,
    ...a('missing_api_key'),
  },

  // Unknown routes and resources.
  { name: 'unknown route', method: 'GET', path: '/v1/nope', status: 404, code: 'route_not_found' },
  {
    name: 'unknown route without a key',
    method: 'GET',
    path: '/nope',
    auth: null,
    status: 404,
    code: 'route_not_found',
  },
  { name: 'wrong method', method: 'DELETE', path: '/v1/messages', status: 404, code: 'route_not_found' },
  {
    name: 'wrong version prefix',
    method: 'POST',
    path: '/v2/messages',
    json: SMS,
    status: 404,
    code: 'route_not_found',
  },
  {
    name: 'unknown message id',
    method: 'GET',
    path: '/v1/messages/msg_01J000000000000000000000',
    status: 404,
    code: 'message_not_found',
    field: 'id',
  },
  {
    name: 'cancel of an unknown message',
    method: 'POST',
    path: '/v1/messages/msg_01J000000000000000000000/cancel',
    status: 404,
    code: 'message_not_found',
    field: 'id',
  },
  {
    name: 'message id too long',
    method: 'GET',
    path: `/v1/messages/${'m'.repeat(65)}`,
    status: 400,
    code: 'too_long',
    field: 'id',
  },
  {
    name: 'unknown template id',
    method: 'GET',
    path: '/v1/templates/tpl_01J000000000000000000000',
    status: 404,
    code: 'template_not_found',
    field: 'id',
  },

  // Query strings.
  ...(
    [
      ['limit=0', 'invalid_value', 'limit'],
      ['limit=501', 'invalid_value', 'limit'],
      ['limit=-1', 'invalid_value', 'limit'],
      ['limit=abc', 'invalid_type', 'limit'],
      ['limit=1.5', 'invalid_type', 'limit'],
      ['limit=1&limit=2', 'invalid_type', 'limit'],
      ['status=bogus', 'invalid_value', 'status'],
      ['channel=fax', 'unknown_channel', 'channel'],
      ['direction=sideways', 'invalid_value', 'direction'],
      ['createdFrom=yesterday', 'invalid_date', 'createdFrom'],
      ['createdTo=', 'invalid_date', 'createdTo'],
      [`cursor=${'c'.repeat(65)}`, 'too_long', 'cursor'],
      ['sort=asc', 'unknown_field', 'sort'],
    ] as const
  ).map(
    ([query, code, field]): Case => ({
      name: `list: ?${query.slice(0, 40)}`,
      method: 'GET',
      path: `/v1/messages?${query}`,
      status: 400,
      code,
      field,
    }),
  ),
  ...(
    [
      ['limit=0', 'invalid_value', 'limit'],
      ['limit=abc', 'invalid_type', 'limit'],
      ['status=failed', 'unknown_field', 'status'],
    ] as const
  ).map(
    ([query, code, field]): Case => ({
      name: `dead letters: ?${query}`,
      method: 'GET',
      path: `/v1/dead-letters?${query}`,
      status: 400,
      code,
      field,
    }),
  ),

  // Idempotency-Key header values.
  {
    name: 'empty Idempotency-Key',
    method: 'POST',
    path: '/v1/messages',
    json: SMS,
    headers: { 'idempotency-key': '' },
    status: 400,
    code: 'invalid_value',
    field: 'idempotency-key',
  },
  {
    name: 'Idempotency-Key over 255 characters',
    method: 'POST',
    path: '/v1/messages',
    json: SMS,
    headers: { 'idempotency-key': 'k'.repeat(256) },
    status: 400,
    code: 'too_long',
    field: 'idempotency-key',
  },

  // Webhooks (unauthenticated by API key; signed by the carrier).
  {
    name: 'webhook for an unknown sender',
    method: 'POST',
    path: '/webhooks/sandbox/snd_does_not_exist',
    raw: '[]',
    headers: { 'content-type': 'application/json' },
    auth: null,
    status: 404,
    code: 'sender_not_found',
  },
  {
    name: 'webhook for an unknown provider',
    method: 'POST',
    path: '/webhooks/twilio/snd_does_not_exist',
    raw: '[]',
    headers: { 'content-type': 'application/json' },
    auth: null,
    status: 404,
    code: 'sender_not_found',
  },
];

/** Shorthands for the common (status, code, field) triples. */
function e(field: string) {
  return { status: 400, code: 'invalid_type', field };
}
function m(field: string) {
  return { status: 400, code: 'missing_field', field };
}
function u(field: string) {
  return { status: 400, code: 'unknown_field', field };
}
function a(code: string) {
  return { status: 401, code, field: 'Authorization' };
}

describe('API errors', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const res = await call(c);
    expectError(res, c.status, c.code, c.field);
  });

  // ------------------------------------------------------------------------------------------------------------
  // Cases that need state.

  it('accepts the boundary values (1600-character SMS body, limit=500)', async () => {
    const ok = await call({ method: 'POST', path: '/v1/messages/validate', json: sms({ body: 'x'.repeat(1600) }) });
    expect(ok.status, ok.text).toBe(200);
    const list = await call({ method: 'GET', path: '/v1/messages?limit=500' });
    expect(list.status, list.text).toBe(200);
  });

  it('webhook with no signature (real sender) → 401', async () => {
    const res = await call({
      method: 'POST',
      path: `/webhooks/sandbox/${senderId}`,
      raw: '[]',
      headers: { 'content-type': 'application/json' },
      auth: null,
    });
    expectError(res, 401, 'webhook_signature_missing');
  });

  it('webhook with a wrong or stale signature → 401', async () => {
    const body = '[]';
    const now = Math.floor(Date.now() / 1000);
    for (const signature of [
      'garbage',
      `t=${now},v1=${'0'.repeat(64)}`,
      signSandboxPayload('not-the-token', body, now),
      signSandboxPayload(senderToken, body, now - 3600),
      signSandboxPayload(senderToken, '[ ]', now),
    ]) {
      const res = await call({
        method: 'POST',
        path: `/webhooks/sandbox/${senderId}`,
        raw: body,
        headers: { 'content-type': 'application/json', 'x-omni-sandbox-signature': signature },
        auth: null,
      });
      expectError(res, 401, 'webhook_signature_invalid');
    }
  });

  it('webhook for a real sender under another provider → 404', async () => {
    const res = await call({ method: 'POST', path: `/webhooks/twilio/${senderId}`, raw: '[]', auth: null });
    expectError(res, 404, 'sender_not_found');
  });

  it('signed webhook with an invalid payload → 400', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const body of ['{not json', '{"type":"message.status"}', '[1]', '[{"type":"message.status","status":"x"}]']) {
      const res = await call({
        method: 'POST',
        path: `/webhooks/sandbox/${senderId}`,
        raw: body,
        headers: {
          'content-type': 'application/json',
          'x-omni-sandbox-signature': signSandboxPayload(senderToken, body, now),
        },
        auth: null,
      });
      expectError(res, 400, 'invalid_webhook_payload');
    }
  });

  it('template variable missing → 400 naming the variable', async () => {
    const created = await call({
      method: 'POST',
      path: '/v1/templates',
      json: {
        name: 'otp',
        channels: {
          sms: { body: 'Hi {{ name }}, your code is {{ code }}' },
          email: { subject: 'Code for {{ name }}', body: 'Your code is {{ code }}' },
        },
      },
    });
    expect(created.status, created.text).toBe(201);
    const id = (created.body as { id: string }).id;

    const missingCode = await call({
      method: 'POST',
      path: '/v1/messages',
      json: without('body', sms({ template: { id, variables: { name: 'Ada' } } })),
    });
    expectError(missingCode, 400, 'template_variable_missing', 'template.variables.code');

    const noVariables = await call({
      method: 'POST',
      path: '/v1/messages',
      json: without('body', sms({ template: { id } })),
    });
    expectError(noVariables, 400, 'template_variable_missing', 'template.variables.name');

    // A variable used only in the email subject.
    const subjectVariable = await call({
      method: 'POST',
      path: '/v1/messages',
      json: without('body', without('subject', { ...EMAIL, template: { id, variables: { code: '1' } } })),
    });
    expectError(subjectVariable, 400, 'template_variable_missing', 'template.variables.name');

    // A template without content for the channel.
    const whatsapp = await call({
      method: 'POST',
      path: '/v1/messages',
      json: without('body', sms({ channel: 'whatsapp', template: { id, variables: { name: 'Ada', code: '1' } } })),
    });
    expectError(whatsapp, 400, 'template_channel_missing', 'template.id');

    // The same in a batch item: the field carries the item's prefix.
    const batch = await call({
      method: 'POST',
      path: '/v1/messages/batch',
      json: {
        messages: [
          without('body', sms({ template: { id, variables: { name: 'Ada', code: '123456' } } })),
          without('body', sms({ template: { id, variables: { code: '1' } } })),
          without('body', sms({ template: { id: 'tpl_does_not_exist' } })),
        ],
      },
    });
    expect(batch.status, batch.text).toBe(200);
    const items = (batch.body as { items: Array<{ id?: string; error?: unknown }> }).items;
    expect(items).toHaveLength(3);
    expect(items[0]?.id).toMatch(/^msg_/);
    const e1 = expectErrorShape({ error: items[1]?.error });
    expect(e1).toMatchObject({ code: 'template_variable_missing', field: 'messages[1].template.variables.name' });
    const e2 = expectErrorShape({ error: items[2]?.error });
    expect(e2).toMatchObject({ code: 'template_not_found', field: 'messages[2].template.id' });

    // And the happy path renders.
    const ok = await call({
      method: 'POST',
      path: '/v1/messages',
      json: without('body', sms({ template: { id, variables: { name: 'Ada', code: '123456' } } })),
    });
    expect(ok.status, ok.text).toBe(202);
  });

  it('batch with mixed valid and invalid items → 200 with per-item errors in order', async () => {
    const res = await call({
      method: 'POST',
      path: '/v1/messages/batch',
      json: {
        messages: [
          SMS,
          sms({ to: '+1202555' }),
          { ...EMAIL, to: 'not-an-email' },
          sms({ channel: 'fax' }),
          sms({ body: 'x'.repeat(1601) }),
          without('to'),
          sms({ extra: true }),
          EMAIL,
          sms({ to: 5 }),
          sms({ template: { id: 'tpl_1' } }),
          'not an object',
          null,
          [SMS],
          sms({ sendAt: 'soon' }),
          sms({ metadata: { orderId: 1 } }),
        ],
      },
    });
    expect(res.status, res.text).toBe(200);
    const items = (res.body as { items: Array<Record<string, unknown>> }).items;
    expect(items).toHaveLength(15);
    const expected: Array<[string, string] | 'ok'> = [
      'ok',
      ['invalid_phone_number', 'messages[1].to'],
      ['invalid_email', 'messages[2].to'],
      ['unknown_channel', 'messages[3].channel'],
      ['body_too_long', 'messages[4].body'],
      ['missing_field', 'messages[5].to'],
      ['unknown_field', 'messages[6].extra'],
      'ok',
      ['invalid_type', 'messages[8].to'],
      ['conflicting_content', 'messages[9].template'],
      ['invalid_type', 'messages[10]'],
      ['invalid_type', 'messages[11]'],
      ['invalid_type', 'messages[12]'],
      ['invalid_send_at', 'messages[13].sendAt'],
      'ok',
    ];
    expected.forEach((want, i) => {
      const item = items[i] as Record<string, unknown>;
      if (want === 'ok') {
        expect(item.id, `item ${i}: ${JSON.stringify(item)}`).toMatch(/^msg_/);
        expect(item.status).toBe('queued');
        expect(item.error).toBeUndefined();
      } else {
        expect(item.id, `item ${i}`).toBeUndefined();
        const error = expectErrorShape({ error: item.error }, `item ${i}`);
        expect({ code: error.code, field: error.field }, `item ${i}`).toEqual({ code: want[0], field: want[1] });
      }
    });
  });

  it('cancel of a delivered message → 409 message_not_cancelable', async () => {
    const sent = await call({ method: 'POST', path: '/v1/messages', json: sms({ to: '+12025550100' }) });
    expect(sent.status, sent.text).toBe(202);
    const id = (sent.body as { id: string }).id;
    await eventually(async () => {
      const r = await call({ method: 'GET', path: `/v1/messages/${id}` });
      return (r.body as { status?: string }).status === 'delivered';
    });
    const res = await call({ method: 'POST', path: `/v1/messages/${id}/cancel` });
    const error = expectError(res, 409, 'message_not_cancelable');
    expect(error.details).toEqual({ status: 'delivered' });
    // Still delivered afterwards.
    const after = await call({ method: 'GET', path: `/v1/messages/${id}` });
    expect((after.body as { status: string }).status).toBe('delivered');
  });

  it('cancel of a scheduled message succeeds once, then → 409', async () => {
    const sendAt = new Date(Date.now() + 24 * 3600_000).toISOString();
    const sent = await call({ method: 'POST', path: '/v1/messages', json: sms({ sendAt }) });
    expect(sent.status, sent.text).toBe(202);
    expect((sent.body as { status: string }).status).toBe('scheduled');
    const id = (sent.body as { id: string }).id;
    const first = await call({ method: 'POST', path: `/v1/messages/${id}/cancel` });
    expect(first.status, first.text).toBe(200);
    expect(first.body).toEqual({ id, status: 'canceled' });
    const second = await call({ method: 'POST', path: `/v1/messages/${id}/cancel` });
    expectError(second, 409, 'message_not_cancelable');
  });

  it('idempotency: same key + same body → same id; another body → 409 idempotency_key_reused', async () => {
    const key = `idem-${Date.now()}-${Math.random()}`;
    const headers = { 'idempotency-key': key };
    const body = sms({ metadata: { a: 1, b: [1, 2] } });
    const first = await call({ method: 'POST', path: '/v1/messages', json: body, headers });
    expect(first.status, first.text).toBe(202);
    const second = await call({ method: 'POST', path: '/v1/messages', json: body, headers });
    expect(second.status, second.text).toBe(202);
    expect(second.body).toEqual(first.body);
    // Key order does not matter.
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const third = await call({ method: 'POST', path: '/v1/messages', json: reordered, headers });
    expect(third.body).toEqual(first.body);
    // Concurrent repeats get the same answer.
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () => call({ method: 'POST', path: '/v1/messages', json: body, headers })),
    );
    for (const r of concurrent) expect(r.body).toEqual(first.body);

    const reused = await call({ method: 'POST', path: '/v1/messages', json: sms({ body: 'different' }), headers });
    expectError(reused, 409, 'idempotency_key_reused', 'Idempotency-Key');

    // Another key creates another message.
    const other = await call({
      method: 'POST',
      path: '/v1/messages',
      json: body,
      headers: { 'idempotency-key': `${key}-2` },
    });
    expect(other.status).toBe(202);
    expect((other.body as { id: string }).id).not.toBe((first.body as { id: string }).id);
  });

  it('invalid request with an Idempotency-Key does not burn the key', async () => {
    const headers = { 'idempotency-key': `idem-invalid-${Date.now()}` };
    const bad = await call({ method: 'POST', path: '/v1/messages', json: sms({ to: '+1202555' }), headers });
    expectError(bad, 400, 'invalid_phone_number', 'to');
    const good = await call({ method: 'POST', path: '/v1/messages', json: SMS, headers });
    expect(good.status, good.text).toBe(202);
  });

  it('error answers are JSON with a JSON content type', async () => {
    const res = await fetch(`${server.url}/v1/messages`, { method: 'GET' });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expectErrorShape(await res.json());
  });

  it('metadata or template variables nested too deeply → 400 (not a stack overflow, even with Idempotency-Key)', async () => {
    const nest = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const headers = { 'content-type': 'application/json', 'idempotency-key': `deep-${Date.now()}` };
    const metadata = await call({
      method: 'POST',
      path: '/v1/messages',
      raw: `{"to":"+12025550100","channel":"sms","body":"x","metadata":${nest(5000)}}`,
      headers,
    });
    expectError(metadata, 400, 'invalid_value', 'metadata');
    const variables = await call({
      method: 'POST',
      path: '/v1/messages',
      raw: `{"to":"+12025550100","channel":"sms","template":{"id":"tpl_1","variables":${nest(5000)}}}`,
      headers,
    });
    expectError(variables, 400, 'invalid_value', 'template.variables');
    const batch = await call({
      method: 'POST',
      path: '/v1/messages/batch',
      raw: `{"messages":[{"to":"+12025550100","channel":"sms","body":"x","metadata":${nest(100)}}]}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(batch.status, batch.text).toBe(200);
    const item = (batch.body as { items: Array<{ error?: unknown }> }).items[0];
    expect(expectErrorShape({ error: item?.error })).toMatchObject({
      code: 'invalid_value',
      field: 'messages[0].metadata',
    });
    // Reasonable nesting is fine.
    const ok = await call({
      method: 'POST',
      path: '/v1/messages/validate',
      raw: `{"to":"+12025550100","channel":"sms","body":"x","metadata":${nest(10)}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.status, ok.text).toBe(200);
  });

  // ------------------------------------------------------------------------------------------------------------
  // Known wrong answers whose fix lies outside the files this suite may change. Each states the right behaviour.

  // SKIPPED (product bug, fix in src/http/app.ts): a path parameter with broken percent-encoding or longer than
  // 100 characters is answered by Fastify's router itself, bypassing our error handler:
  // `400 {"error":"Bad Request","code":"FST_ERR_BAD_URL","message":...,"statusCode":400}` (or 414
  // FST_ERR_MAX_PARAM_LENGTH). Fix: `Fastify({ ..., frameworkErrors: handleError })`; errors.ts maps both codes.
  it('path parameters the router rejects still get the error shape', async () => {
    expectError(await call({ method: 'GET', path: '/v1/messages/%' }), 400, 'invalid_url');
    expectError(await call({ method: 'GET', path: '/v1/messages/%E0%A4%A' }), 400, 'invalid_url');
    expectError(await call({ method: 'POST', path: '/v1/messages/%zz/cancel' }), 400, 'invalid_url');
    expectError(await call({ method: 'GET', path: `/v1/templates/${'t'.repeat(101)}` }), 414, 'uri_too_long');
  });

  // SKIPPED (product bug, fix in src/http/app.ts): on an unknown route the body is still parsed, so a malformed
  // JSON body answers 400 malformed_json instead of 404. Fix: an `onRequest` hook (or a not-found handler that
  // runs before parsing) answering 404 when `request.is404`.
  it('unknown route with a malformed JSON body → 404 route_not_found', async () => {
    for (const path of ['/v1/nope', '/health', '/v1/messages/x/y']) {
      const res = await call({
        method: 'POST',
        path,
        raw: '{not json',
        headers: { 'content-type': 'application/json' },
      });
      expectError(res, 404, 'route_not_found');
    }
  });

  // SKIPPED (security bug, fix in src/services/templates.ts): Liquid's file tags are enabled, so a template
  // `{% include 'package.json' %}` (or `layout`, `render`) renders files of the server's working directory into
  // the message body (and errors leak paths). Templates should be rejected when saved. Fix: construct the Liquid
  // engine with an in-memory/empty `fs` (or register `include`/`render`/`layout` as rejected tags).
  it('templates cannot read server files (include/render/layout) → 400 when saved', async () => {
    for (const body of [
      "{% include 'package.json' %}",
      "{% render 'package.json' %}",
      "{% layout 'package.json' %}x",
    ]) {
      const res = await call({
        method: 'POST',
        path: '/v1/templates',
        json: { name: 'x', channels: { email: { body } } },
      });
      expect(res.status, res.text).toBe(400);
      expect(expectErrorShape(res.body).field).toBe('channels.email');
    }
  });
});
