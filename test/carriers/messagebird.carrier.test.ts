/** The MessageBird (Bird) SMS adapter against its emulator, plus MessageBird-specific checks. */
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMessageBirdCarrier,
  MESSAGEBIRD_DEFAULT_BASE_URL,
  mapSendAnswer,
  messageBirdProvider,
  messageBirdSignedUrl,
} from '../../src/adapters/carriers/messagebird/messagebird-carrier.ts';
import {
  isRetryableMessageBirdError,
  MESSAGEBIRD_ERROR_CODES,
} from '../../src/adapters/carriers/messagebird/messagebird-errors.ts';
import {
  legacySignedQuery,
  verifyMessageBirdJwt,
  verifyMessageBirdLegacySignature,
} from '../../src/adapters/carriers/messagebird/messagebird-signature.ts';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type { SenderRecord, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  MESSAGEBIRD_NUMBERS,
  MessageBirdEmulator,
  messageBirdSignatureHeaders,
  validateSend,
} from './emulators/messagebird-emulator.ts';
import { readFixture, readJsonFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const FROM = '+3197010203040';
const WEBHOOK_URL = 'https://omni.example.com/webhooks/messagebird/snd_mb';

function sender(config: Record<string, unknown>, from: string | null = FROM): SenderRecord {
  return { id: 'snd_mb', orgId: 'org_mb', provider: 'messagebird', config, channels: ['sms'], from, priority: 0 };
}

const DESTINATIONS = {
  delivered: MESSAGEBIRD_NUMBERS.delivered,
  rejected: MESSAGEBIRD_NUMBERS.rejected,
  unavailable: MESSAGEBIRD_NUMBERS.unavailable,
  throttled: MESSAGEBIRD_NUMBERS.throttled,
  undeliverable: MESSAGEBIRD_NUMBERS.undeliverable,
};

function dropHeaders(r: WebhookRequest, ...names: string[]): WebhookRequest {
  const headers = { ...r.headers };
  for (const n of names) delete headers[n];
  return { ...r, headers };
}

// Default scheme: MessageBird-Signature-JWT, status reports as GET with the report in the query string.
carrierContract({
  provider: 'messagebird',
  channel: 'sms',
  from: FROM,
  destinations: DESTINATIONS,
  startEmulator: (webhookUrl) => MessageBirdEmulator.start({ webhookUrl, delayMs: 5 }),
  createCarrier: (s, ctx) => createMessageBirdCarrier(s, ctx),
  unsign: (r) => dropHeaders(r, 'messagebird-signature-jwt'),
});

// Legacy scheme (MessageBird-Signature + MessageBird-Request-Timestamp), status reports as form POSTs.
carrierContract({
  provider: 'messagebird',
  channel: 'sms',
  from: FROM,
  destinations: DESTINATIONS,
  startEmulator: (webhookUrl) =>
    MessageBirdEmulator.start({ webhookUrl, delayMs: 5, signing: 'legacy', reportMethod: 'POST' }),
  createCarrier: (s, ctx) => createMessageBirdCarrier(s, ctx),
  unsign: (r) => dropHeaders(r, 'messagebird-signature', 'messagebird-request-timestamp'),
});

describe('messagebird: error codes', () => {
  // The code table of https://developers.messagebird.com/api/#errors.
  const DOCUMENTED = [2, 9, 10, 20, 21, 25, 98, 99];

  it('classifies every documented REST API error code', () => {
    for (const code of DOCUMENTED) {
      expect(MESSAGEBIRD_ERROR_CODES[code], `code ${code}`).toBeDefined();
      expect(typeof MESSAGEBIRD_ERROR_CODES[code]?.retryable).toBe('boolean');
    }
    expect(
      Object.keys(MESSAGEBIRD_ERROR_CODES)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(DOCUMENTED);
  });

  it('treats a bad access key, missing parameters and no balance as permanent, internal errors as retryable', () => {
    expect(isRetryableMessageBirdError(401, 2)).toBe(false);
    expect(isRetryableMessageBirdError(422, 9)).toBe(false);
    expect(isRetryableMessageBirdError(422, 25)).toBe(false);
    expect(isRetryableMessageBirdError(500, 99)).toBe(true);
    expect(isRetryableMessageBirdError(422, 99)).toBe(true);
    expect(isRetryableMessageBirdError(503, undefined)).toBe(true);
    expect(isRetryableMessageBirdError(422, 12345)).toBe(false);
  });

  it('maps the documented error answers (fixtures) onto send results', () => {
    const auth = mapSendAnswer(401, undefined, readFixture('messagebird/error-response.401.json'), 0);
    expect(auth).toMatchObject({ ok: false, retryable: false, error: { code: '2', class: 'PermanentError' } });
    if (!auth.ok) expect(auth.error.message).toContain('incorrect access_key');
    const notFound = mapSendAnswer(404, undefined, readFixture('messagebird/sms-message-not-found.response.json'), 0);
    expect(notFound).toMatchObject({ ok: false, retryable: false, error: { code: '20' } });
    expect(mapSendAnswer(502, undefined, '<html>Bad gateway</html>', 0)).toMatchObject({
      ok: false,
      retryable: true,
      error: { code: 'carrier_unavailable', class: 'ResourceError' },
    });
    expect(mapSendAnswer(429, '7', '', 0)).toMatchObject({ ok: false, retryable: true, retryAfterMs: 7000 });
  });

  it('reads the message id of the documented create answer', () => {
    const ok = mapSendAnswer(201, undefined, readFixture('messagebird/sms-message.response.json'), 0);
    expect(ok).toEqual({ ok: true, providerMessageId: '6fe65f90454aa61536e6a88b88972670', cost: null });
    const priced = JSON.parse(readFixture('messagebird/sms-message-with-params.response.json'));
    priced.recipients.items[0].price = { amount: 0.075, currency: 'EUR' };
    expect(mapSendAnswer(201, undefined, JSON.stringify(priced), 0)).toMatchObject({ ok: true, cost: 0.075 });
    expect(mapSendAnswer(201, undefined, '{}', 0)).toMatchObject({ ok: false, retryable: true });
  });
});

/**
 * Known answers published by MessageBird: the JWT vectors of messagebird/messagebird-nodejs
 * `lib/testdata/webhook-signature-jwt-reference.json` (shared by MessageBird's SDKs; evaluated at
 * 2021-07-05T12:00:00+02:00 with the secret below).
 */
describe('messagebird: MessageBird-Signature-JWT known answers', () => {
  const SECRET = '36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb';
  const NOW = Date.parse('2021-07-05T12:00:00+02:00');
  const PLAIN =
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E';
  const WITH_PAYLOAD =
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0.bHfsjj3tljfzTufoG3EU3p_yFrQh9CufyzRSaRMd4ss';
  const cases: { name: string; url: string; payload?: string; token: string; reason?: RegExp }[] = [
    { name: 'no URL parameters or payload', url: 'https://example.com/', token: PLAIN },
    {
      name: 'URL parameters, no payload',
      url: 'https://example.com/path?bar=1&foo=2',
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJjOTQ2YWY3Ny1lMTgyLTRlYWEtYjJmZi0xYTU0NWI1ZTk5MWEiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAifQ.huo2ou6JDoDc7sV25d75UMWeYhBeavQlLsqIibSZuac',
    },
    {
      name: 'URL parameters and payload',
      url: 'https://example.com/path?bar=1&foo=2',
      payload: 'Hello, World!',
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I',
    },
    {
      name: 'port number in the URL',
      url: 'https://example.com:8080/',
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjA3Zjc4NjFhNjliMTNjMjI5YzZhZTU5NmQxOThiMjc2M2IwNTRjZjVlMDAwZDczNmQxYzQ4MTAyZDc3MGNmZmMifQ.vcpa0IicGAbpo064dOjiA2VbVOR2S5uZBEaBOP16sS8',
    },
    {
      name: 'special characters in the URL',
      url: 'https://example.com/?obj%5Bfield1%5D=val1&obj%5Bfield2%5D=val2&param=value+with+spaces',
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjhhZmYzNzQ4ZDc4OWM0MzMzNTczZTFjMzFmZTViMDA0OTQwY2I1ZmM0NzQ2MGVkM2QwZTY1NGY3ZmM0ZTVmYWUifQ.mJBCMfEjKmN3IMuzqPXPHktWETrcu0iNdF3agE8PDyI',
    },
    {
      name: 'special characters in the payload',
      url: 'https://example.com/',
      payload: 'Some text containg & < >, & and \\u0026',
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiIyNDMxYmQ5Y2NiNDhlZDAxNmZhZDU2N2IwNzcxMjAzOGI1Y2RkOTQ5YWM5ZDQxZmU0NjkzZDVhMzg0NWNmN2U4In0.IQiKzeEPaO3A48lhKmBDSmxZyCESPCGxdSKFdi0dEJs',
    },
    {
      name: 'HS384',
      url: 'https://example.com/',
      token:
        'eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.KNMW-29X77lZeuPmThmHWc_RUAvTkaDkpxIZK6mqE08v8mWKiU9Edh4QXwAJO2nv',
    },
    {
      name: 'HS512',
      url: 'https://example.com/',
      token:
        'eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.rd6r0iMyNGnVPCwurETphE3Y8rpAyvvnUK0S8WvGUkt2E1QSRAZ7NZJZBHw1Y_Wb5W-sK9HJr_PRL2vz4jRT3Q',
    },
    {
      name: 'token received before it was issued',
      url: 'https://example.com/',
      reason: /nbf/,
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ4MjgwMCwiZXhwIjoxNjI1NDgyODYwLCJqdGkiOiJmOWY4YzM4Mi0yNDQ5LTQzMTEtYjcyYi0xZGY3MTY4NzkzMWUiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.ZELgDFNGhjZH9CffQKcq3sytBe2I0KciLxpBhcfstHQ',
    },
    {
      name: 'token received after it expired',
      url: 'https://example.com/',
      reason: /exp/,
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3NTYwMCwiZXhwIjoxNjI1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.45MSST3B_2PsjNUeiuW54_vUQgVw4rBXrdWrOUEz3lM',
    },
    {
      name: 'token received on a different URL (parameters reordered)',
      url: 'https://example.com/path?foo=1&bar=2',
      reason: /url_hash/,
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJhNzVjOTA5Ni1lODIzLTQ0MmItODVmMi03ZDNjOWQ5YjcyNmIiLCJ1cmxfaGFzaCI6IjZhMDIyZDgzNGMxODMzMGJhYWQ4YTJiZDYxMzUxNzNlZDIxNjEwYTQ1NDUxNmJlMGRmM2YxY2MwMTUxNjEwZWEifQ.z6Sw1XQIM0wuEQGBhXBdawDIIrtMg2XnmA_bpDq53pE',
    },
    {
      name: 'payload does not match',
      url: 'https://example.com/',
      payload: 'Hello, World!',
      reason: /payload_hash is invalid/,
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJmYjYyZjAyYWNkYTdkNzQxNzdhNzAxYTFjZTAwNmU2YmFjZDkwYzdkNGQ3YWI0ODE2OTJjMWRhNDdjODEwNzZiIn0.m79RCwO6dGa9pvzsQypkVuXQ6eM0CkRl6_U7MfWg6TM',
    },
    {
      name: 'different secret',
      url: 'https://example.com/',
      reason: /signature is invalid/,
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIyNDNjMjdhZS0yZjAyLTQ2YTAtODg1Mi1jNjZmMzdlYTlmNDYiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.JgSeYyOtlEKAXk8bz30iJI4tXgf4lxknoiezawuVhb4',
    },
    {
      name: 'payload removed in transit',
      url: 'https://example.com/',
      payload: '',
      reason: /payload is missing/,
      token: WITH_PAYLOAD,
    },
    {
      name: 'payload added in transit',
      url: 'https://example.com/',
      payload: 'Hello, World!',
      reason: /payload is present/,
      token: PLAIN,
    },
    {
      name: 'alg none',
      url: 'https://example.com/',
      reason: /none/,
      token:
        'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.',
    },
  ];

  for (const c of cases) {
    it(`${c.reason ? 'refuses' : 'accepts'}: ${c.name}`, () => {
      const check = verifyMessageBirdJwt({
        token: c.token,
        signingKey: SECRET,
        url: c.url,
        body: Buffer.from(c.payload ?? ''),
        nowMs: NOW,
      });
      if (c.reason) {
        expect(check.ok).toBe(false);
        if (!check.ok) expect(check.reason).toMatch(c.reason);
      } else {
        expect(check).toMatchObject({ ok: true });
      }
    });
  }

  it('checks the URL MessageBird requested: the public webhook URL plus the received query', () => {
    expect(messageBirdSignedUrl('https://example.com/path', '/internal/path?bar=1&foo=2')).toBe(
      'https://example.com/path?bar=1&foo=2',
    );
    expect(messageBirdSignedUrl('https://example.com/', '/')).toBe('https://example.com/');
    const carrier = createMessageBirdCarrier(
      sender({ accessKey: 'k', signingKey: SECRET }),
      { webhookUrl: 'https://example.com/path' },
      new ManualClock(NOW),
    );
    const request = (token: string, url: string): WebhookRequest => ({
      method: 'GET',
      url,
      headers: { 'messagebird-signature-jwt': token },
      rawBody: Buffer.alloc(0),
    });
    const token = cases[1]?.token as string;
    // Authentic, but not a MessageBird report: authentication passes and the payload is refused as malformed.
    expect(() => carrier.parseWebhook(request(token, '/path?bar=1&foo=2'))).toThrow(ValidationError);
    expectAuthFailure(() => carrier.parseWebhook(request(token, '/path?bar=1&foo=3')));
    expectAuthFailure(() => carrier.parseWebhook(request(`${token}x`, '/path?bar=1&foo=2')));
  });
});

/**
 * Known answers of the legacy scheme: messagebird/php-rest-api `tests/unit/RequestValidatorTest.php`
 * (also messagebird-nodejs `lib/test.js`, "old webhook signature test"): signing key
 * `PlLrKaqvZNRR5zAjm42ZT6q1SQxgbbGd`, timestamp 1547198231, the status report query of the fixture.
 */
describe('messagebird: legacy MessageBird-Signature known answers', () => {
  const KEY = 'PlLrKaqvZNRR5zAjm42ZT6q1SQxgbbGd';
  const TIMESTAMP = '1547198231';
  const NOW = 1547198231 * 1000 + 1000;
  const QUERY = readFixture('messagebird/sms-status-report.query.txt').trim();

  it('the fixture query is the sorted, form-encoded report', () => {
    expect(legacySignedQuery(new URLSearchParams(QUERY))).toBe(QUERY);
  });

  it.each([
    ['', 'KVBdcVdz2lYMwcBLZCRITgxUfA/WkwSi+T3Wxl2HL6w='],
    ['{"foo":"bar"}', '2bl+38H4oHVg03pC3bk2LvCB0IHFgfC4cL5HPQ0LdmI='],
  ])('verifies the documented signature for body %j', (body, signature) => {
    const check = verifyMessageBirdLegacySignature({
      signature,
      timestamp: TIMESTAMP,
      signingKey: KEY,
      query: new URLSearchParams(QUERY),
      body: Buffer.from(body),
      nowMs: NOW,
    });
    expect(check).toEqual({ ok: true });
  });

  it('refuses the documented signature over a changed reference, a stale request, another key', () => {
    const base = {
      signature: 'KVBdcVdz2lYMwcBLZCRITgxUfA/WkwSi+T3Wxl2HL6w=',
      timestamp: TIMESTAMP,
      signingKey: KEY,
      query: new URLSearchParams(QUERY.replace('reference=FOO', 'reference=BAR')),
      body: Buffer.alloc(0),
      nowMs: NOW,
    };
    expect(verifyMessageBirdLegacySignature(base).ok).toBe(false);
    const exact = { ...base, query: new URLSearchParams(QUERY) };
    expect(verifyMessageBirdLegacySignature({ ...exact, nowMs: NOW + 100_000 })).toMatchObject({ ok: false });
    expect(verifyMessageBirdLegacySignature({ ...exact, signingKey: `${KEY}x` })).toMatchObject({ ok: false });
  });

  it('parses the documented status report (fixture), authenticated by its documented signature', () => {
    const carrier = createMessageBirdCarrier(
      sender({ accessKey: 'k', signingKey: KEY, signatureScheme: 'legacy' }),
      { webhookUrl: WEBHOOK_URL },
      new ManualClock(NOW),
    );
    const request: WebhookRequest = {
      method: 'GET',
      url: `/webhooks/messagebird/snd_mb?${QUERY}`,
      headers: {
        'messagebird-request-timestamp': TIMESTAMP,
        'messagebird-signature': 'KVBdcVdz2lYMwcBLZCRITgxUfA/WkwSi+T3Wxl2HL6w=',
      },
      rawBody: Buffer.alloc(0),
    };
    const [event, ...rest] = carrier.parseWebhook(request);
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      kind: 'status',
      providerMessageId: 'eef0ab57a9e049be946f3821568c2b2e',
      reference: 'FOO',
      status: 'delivered',
      occurredAt: Date.parse('2019-01-11T09:17:11+00:00'),
      detail: { recipient: '+31612345678', mccmnc: '20408', ported: '1' },
    });
    expect(carrier.parseWebhook({ ...request })[0]?.eventKey).toBe(event?.eventKey);
    expectAuthFailure(() => carrier.parseWebhook({ ...request, url: request.url.replace('FOO', 'BAR') }));
    expectAuthFailure(() => carrier.parseWebhook(dropHeaders(request, 'messagebird-signature')));
  });
});

describe('messagebird: webhooks', () => {
  const KEY = 'test-signing-key';
  const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'));
  const carrier = createMessageBirdCarrier(
    sender({ accessKey: 'k', signingKey: KEY }),
    { webhookUrl: WEBHOOK_URL },
    clock,
  );

  function signed(method: 'GET' | 'POST', query: string, body = '', contentType?: string): WebhookRequest {
    const path = `/webhooks/messagebird/snd_mb${query ? `?${query}` : ''}`;
    const url = `https://omni.example.com${path}`;
    const raw = Buffer.from(body);
    return {
      method,
      url: path,
      headers: {
        ...messageBirdSignatureHeaders('jwt', KEY, url, raw, clock.now()),
        ...(contentType ? { 'content-type': contentType } : {}),
      },
      rawBody: raw,
    };
  }

  it('parses the status report fixture delivered as a GET and as a form POST alike', () => {
    const query = readFixture('messagebird/sms-status-report.query.txt').trim();
    const get = carrier.parseWebhook(signed('GET', query));
    const post = carrier.parseWebhook(signed('POST', '', query, 'application/x-www-form-urlencoded'));
    expect(get).toHaveLength(1);
    expect(post).toEqual(get);
    expect(get[0]).toMatchObject({ kind: 'status', status: 'delivered', reference: 'FOO' });
  });

  it('reports failures with MessageBird’s error code and drops statuses it does not track', () => {
    const failed = new URLSearchParams({
      id: 'abc',
      recipient: '31612345678',
      reference: 'msg_1',
      status: 'delivery_failed',
      statusDatetime: '2026-03-01T09:59:58+00:00',
      statusReason: 'unknown subscriber',
      statusErrorCode: '1',
    });
    expect(carrier.parseWebhook(signed('GET', failed.toString()))[0]).toMatchObject({
      status: 'undelivered',
      error: { code: '1', class: 'PermanentError' },
      reference: 'msg_1',
    });
    const expired = new URLSearchParams({ id: 'abc', recipient: '1', status: 'expired' });
    expect(carrier.parseWebhook(signed('GET', expired.toString()))[0]).toMatchObject({
      status: 'undelivered',
      error: { code: 'expired' },
      occurredAt: clock.now(),
    });
    const scheduled = new URLSearchParams({ id: 'abc', recipient: '1', status: 'scheduled' });
    expect(carrier.parseWebhook(signed('GET', scheduled.toString()))).toEqual([]);
    const buffered = new URLSearchParams({ id: 'abc', recipient: '1', status: 'buffered' });
    expect(carrier.parseWebhook(signed('GET', buffered.toString()))[0]).toMatchObject({ status: 'sent' });
  });

  it('reads a report that names the originator as a report, not as an inbound message', () => {
    const report = new URLSearchParams({ id: 'm9', recipient: '316', originator: 'Acme', status: 'delivered' });
    expect(carrier.parseWebhook(signed('GET', report.toString()))[0]).toMatchObject({ kind: 'status' });
  });

  it('gives different reports of one message different event keys', () => {
    const sent = new URLSearchParams({ id: 'm1', recipient: '316', status: 'sent', statusDatetime: 'x' });
    sent.set('statusDatetime', '2026-03-01T09:00:00+00:00');
    const delivered = new URLSearchParams(sent);
    delivered.set('status', 'delivered');
    const a = carrier.parseWebhook(signed('GET', sent.toString()))[0];
    const b = carrier.parseWebhook(signed('GET', delivered.toString()))[0];
    expect(a?.eventKey).not.toBe(b?.eventKey);
  });

  it('parses forwarded inbound SMS in the SMS API and the Flow Builder spellings', () => {
    const api = new URLSearchParams({
      id: 'e8077d803532c0b5937c639b60216938',
      originator: '31612345678',
      recipient: '3197010203040',
      body: 'Hello STOP',
      createdDatetime: '2026-03-01T09:30:00+00:00',
    });
    const [viaGet] = carrier.parseWebhook(signed('GET', api.toString()));
    expect(viaGet).toMatchObject({
      kind: 'inbound',
      eventKey: 'messagebird:mo:e8077d803532c0b5937c639b60216938',
      providerMessageId: 'e8077d803532c0b5937c639b60216938',
      from: '+31612345678',
      to: '+3197010203040',
      body: 'Hello STOP',
      channel: 'sms',
      occurredAt: Date.parse('2026-03-01T09:30:00Z'),
    });
    const flow = JSON.stringify({ originator: '31612345678', receiver: '3197010203040', payload: 'Hi there' });
    const [a] = carrier.parseWebhook(signed('POST', '', flow, 'application/json'));
    const [b] = carrier.parseWebhook(signed('POST', '', flow, 'application/json'));
    expect(a).toMatchObject({ kind: 'inbound', from: '+31612345678', to: '+3197010203040', body: 'Hi there' });
    expect(a?.eventKey).toBe(b?.eventKey);
  });

  it('refuses unsigned, re-signed-with-another-key and malformed requests', () => {
    const query = 'id=1&recipient=31612345678&status=delivered';
    expectAuthFailure(() => carrier.parseWebhook(dropHeaders(signed('GET', query), 'messagebird-signature-jwt')));
    const other = createMessageBirdCarrier(
      sender({ accessKey: 'k', signingKey: 'another-key' }),
      { webhookUrl: WEBHOOK_URL },
      clock,
    );
    expect(() => other.parseWebhook(signed('GET', query))).toThrow(AuthenticationError);
    expect(() => carrier.parseWebhook(signed('GET', 'foo=bar'))).toThrow(ValidationError);
    expect(() => carrier.parseWebhook(signed('POST', '', '{not json', 'application/json'))).toThrow(ValidationError);
    const late = signed('GET', query);
    clock.advance(10 * 60_000);
    expectAuthFailure(() => carrier.parseWebhook(late));
  });
});

describe('messagebird: configuration', () => {
  const ctx = { webhookUrl: WEBHOOK_URL };
  it.each([
    [{ signingKey: 's' }, 'config.accessKey'],
    [{ accessKey: 'k' }, 'config.signingKey'],
    [{ accessKey: 'k', signingKey: 's', signatureScheme: 'hmac' }, 'config.signatureScheme'],
    [{ accessKey: 'k', signingKey: 's', baseUrl: 'ftp://rest.messagebird.com' }, 'config.baseUrl'],
    [{ accessKey: 'k', signingKey: 's', datacoding: 'utf8' }, 'config.datacoding'],
    [{ accessKey: 'k', signingKey: 's', rateLimitPerSecond: 0 }, 'config.rateLimitPerSecond'],
    [{ accessKey: 'k', signingKey: 's', costPerMessage: -1 }, 'config.costPerMessage'],
    [{ accessKey: 'k', signingKey: 's', token: 'x' }, 'config.token'],
  ])('refuses %j naming %s', (config, field) => {
    let thrown: unknown;
    try {
      createMessageBirdCarrier(sender(config), ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    expect((thrown as ValidationError).field).toBe(field);
  });

  it('describes itself as a provider', async () => {
    expect(messageBirdProvider).toMatchObject({ id: 'messagebird', channels: ['sms'] });
    expect(messageBirdProvider.secretFields).toEqual(['accessKey', 'signingKey']);
    const schema = messageBirdProvider.configSchema as { additionalProperties: boolean; properties: object };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['accessKey', 'signingKey', 'baseUrl', 'rateLimitPerSecond', 'costPerMessage']),
    );
    const validate = new Ajv({ strict: false, validateFormats: false }).compile(messageBirdProvider.configSchema);
    expect(validate({ accessKey: 'k', signingKey: 's', signatureScheme: 'legacy', rateLimitPerSecond: 5 })).toBe(true);
    expect(validate({ accessKey: 'k' })).toBe(false);
    expect(validate({ accessKey: 'k', signingKey: 's', token: 'x' })).toBe(false);
    const carrier = messageBirdProvider.create(
      sender({ accessKey: 'k', signingKey: 's', rateLimitPerSecond: 10, costPerMessage: 0.07 }),
      ctx,
    );
    expect(carrier.provider).toBe('messagebird');
    expect(MESSAGEBIRD_DEFAULT_BASE_URL).toBe('https://rest.messagebird.com');
    await carrier.close?.();
  });
});

describe('messagebird: the request the adapter sends', () => {
  const receiver = new WebhookReceiver();
  let emulator: MessageBirdEmulator;

  beforeAll(async () => {
    await receiver.start();
    emulator = await MessageBirdEmulator.start({ webhookUrl: `${receiver.url}/webhooks/messagebird/snd_mb` });
  });
  afterAll(async () => {
    await emulator.close();
    await receiver.close();
  });

  it('the documented example request passes the emulator’s checks', () => {
    expect(validateSend(readJsonFixture('messagebird/sms-send.request.json'))).toEqual([]);
    expect(validateSend({ originator: 'FarTooLongSender', recipients: ['+316'], body: '' })).toHaveLength(3);
  });

  it('posts originator, recipients, body, reference and reportUrl as documented', async () => {
    const webhookUrl = `${receiver.url}/webhooks/messagebird/snd_mb`;
    const carrier = createMessageBirdCarrier(sender(emulator.senderConfig), { webhookUrl });
    try {
      const [result] = await carrier.send([
        {
          messageId: 'msg_exact_1',
          channel: 'sms',
          to: '+31612345678',
          from: null,
          body: 'Grüße, your code is 123456',
          subject: null,
          attempt: 1,
        },
      ]);
      expect(result).toMatchObject({ ok: true });
      const last = emulator.received[emulator.received.length - 1];
      expect(last?.headers.authorization).toBe(`AccessKey ${String(emulator.senderConfig.accessKey)}`);
      expect(last?.headers['content-type']).toBe('application/json');
      expect(last?.headers.accept).toBe('application/json');
      expect(last?.body).toEqual({
        originator: FROM,
        recipients: ['31612345678'],
        body: 'Grüße, your code is 123456',
        reference: 'msg_exact_1',
        reportUrl: webhookUrl,
        datacoding: 'auto',
      });
      const base = {
        messageId: 'm',
        channel: 'sms' as const,
        to: '+31612345678',
        from: null,
        body: 'x',
        subject: null,
        attempt: 1,
      };
      const wrongChannel = await carrier.send([
        { messageId: 'm2', channel: 'mms', to: '+31612345678', from: null, body: 'x', subject: null, attempt: 1 },
      ]);
      expect(wrongChannel[0]).toMatchObject({ ok: false, retryable: false, error: { code: 'unsupported_channel' } });
      const noBalance = await carrier.send([
        {
          messageId: 'm3',
          channel: 'sms',
          to: MESSAGEBIRD_NUMBERS.noBalance,
          from: null,
          body: 'x',
          subject: null,
          attempt: 1,
        },
      ]);
      expect(noBalance[0]).toMatchObject({ ok: false, retryable: false, error: { code: '25' } });
      const [throttled, unavailable] = await carrier.send([
        { ...base, messageId: 'm5', to: MESSAGEBIRD_NUMBERS.throttled },
        { ...base, messageId: 'm6', to: MESSAGEBIRD_NUMBERS.unavailable },
      ]);
      expect(throttled).toMatchObject({ ok: false, retryable: true, retryAfterMs: 2000 });
      expect(unavailable).toMatchObject({ ok: false, retryable: true, error: { code: '99', class: 'ResourceError' } });
      expect(emulator.violations).toEqual([]);
    } finally {
      await carrier.close?.();
    }
  });

  it('is answered 401 with code 2 for a wrong access key', async () => {
    const carrier = createMessageBirdCarrier(sender({ ...emulator.senderConfig, accessKey: 'live_wrong' }), {
      webhookUrl: WEBHOOK_URL,
    });
    try {
      const [result] = await carrier.send([
        { messageId: 'm4', channel: 'sms', to: '+31612345678', from: null, body: 'x', subject: null, attempt: 1 },
      ]);
      expect(result).toMatchObject({ ok: false, retryable: false, error: { code: '2', class: 'PermanentError' } });
    } finally {
      await carrier.close?.();
    }
  });
});
