/** The Inteliquent SMS/MMS adapter against its emulator, plus Inteliquent-specific checks. */
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  createInteliquentCarrier,
  INTELIQUENT_DEFAULT_BASE_URL,
  inteliquentProvider,
  mapPublishAnswer,
} from '../../src/adapters/carriers/inteliquent/inteliquent-carrier.ts';
import {
  INTELIQUENT_ERROR_CODES,
  isRetryableInteliquentCode,
} from '../../src/adapters/carriers/inteliquent/inteliquent-errors.ts';
import {
  inteliquentVerificationToken,
  parseSmppReceipt,
  phoneFromInteliquent,
} from '../../src/adapters/carriers/inteliquent/inteliquent-webhook.ts';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type { SenderRecord, SendRequest, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  INTELIQUENT_NUMBERS,
  INTELIQUENT_SPEC,
  InteliquentEmulator,
  inteliquentValidator,
  inteliquentWebhookHeaders,
} from './emulators/inteliquent-emulator.ts';
import { readFixture, readJsonFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const FROM = INTELIQUENT_NUMBERS.account;
const WEBHOOK_URL = 'https://omni.example.com/webhooks/inteliquent/snd_iq';
const DESTINATIONS = {
  delivered: INTELIQUENT_NUMBERS.delivered,
  rejected: INTELIQUENT_NUMBERS.rejected,
  unavailable: INTELIQUENT_NUMBERS.unavailable,
  throttled: INTELIQUENT_NUMBERS.throttled,
  undeliverable: INTELIQUENT_NUMBERS.undeliverable,
};

function sender(config: Record<string, unknown>, from: string | null = FROM): SenderRecord {
  return {
    id: 'snd_iq',
    orgId: 'org_iq',
    provider: 'inteliquent',
    config,
    channels: ['sms', 'mms'],
    from,
    priority: 0,
  };
}

function withHeader(r: WebhookRequest, name: string, value: string | undefined): WebhookRequest {
  const headers = { ...r.headers };
  if (value === undefined) delete headers[name];
  else headers[name] = value;
  return { ...r, headers };
}

function flipLast(value: unknown): string {
  const s = String(value);
  return s.slice(0, -1) + (s.endsWith('a') ? 'b' : 'a');
}

// SMS, webhooks authenticated by the configureAuthorization apiKey (messageID + verificationToken).
carrierContract({
  provider: 'inteliquent',
  channel: 'sms',
  from: FROM,
  destinations: DESTINATIONS,
  startEmulator: (webhookUrl) => InteliquentEmulator.start({ webhookUrl, delayMs: 5 }),
  createCarrier: (s, ctx) => createInteliquentCarrier(s, ctx),
  // The token scheme covers the token, not the body: forging means presenting a wrong verificationToken.
  tamper: (r) => withHeader(r, 'verificationtoken', flipLast(r.headers.verificationtoken)),
  unsign: (r) => withHeader(withHeader(r, 'verificationtoken', undefined), 'messageid', undefined),
});

// MMS, webhooks authenticated by a custom header (configureAuthorization headerName/headerValue).
carrierContract({
  provider: 'inteliquent',
  channel: 'mms',
  from: FROM,
  destinations: DESTINATIONS,
  options: { mediaUrls: ['https://www.inteliquent.com/INQT/media/INQT/Theme/images/logo.svg'] },
  startEmulator: (webhookUrl) =>
    InteliquentEmulator.start({
      webhookUrl,
      delayMs: 5,
      webhookAuth: { header: { name: 'Authorization', value: 'Bearer 123456abc' } },
    }),
  createCarrier: (s, ctx) => createInteliquentCarrier(s, ctx),
  tamper: (r) => withHeader(r, 'authorization', 'Bearer 123456abd'),
  unsign: (r) => withHeader(r, 'authorization', undefined),
});

describe('inteliquent: error codes', () => {
  /** Every non-success response code the specification documents, plus the authentication failures it shows. */
  function documentedCodes(): string[] {
    const spec = parseYaml(readFixture(INTELIQUENT_SPEC)) as {
      info: { description: string };
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const codes = new Set<string>();
    for (const item of Object.values(spec.paths)) {
      for (const op of Object.values(item)) for (const code of Object.keys(op.responses)) codes.add(code);
    }
    codes.delete('200');
    for (const m of spec.info.description.matchAll(/"statusCode": "(\d+)"|<ams:code>(\d+)<\/ams:code>/g)) {
      codes.add((m[1] ?? m[2]) as string);
    }
    return [...codes].sort();
  }

  it('classifies every documented code', () => {
    const documented = documentedCodes();
    expect(documented).toEqual(expect.arrayContaining(['401001', '408', '431', '900901']));
    for (const code of documented) {
      expect(INTELIQUENT_ERROR_CODES[code], `code ${code}`).toBeDefined();
      expect(typeof INTELIQUENT_ERROR_CODES[code]?.retryable).toBe('boolean');
    }
    expect(Object.keys(INTELIQUENT_ERROR_CODES).sort()).toEqual(documented);
  });

  it('treats user errors and bad credentials as permanent, "try again" and database errors as retryable', () => {
    expect(isRetryableInteliquentCode('408', 408)).toBe(false);
    expect(isRetryableInteliquentCode('409', 409)).toBe(false);
    expect(isRetryableInteliquentCode('401001', 401)).toBe(false);
    expect(isRetryableInteliquentCode('900901', 401)).toBe(false);
    expect(isRetryableInteliquentCode('431', 431)).toBe(true);
    expect(isRetryableInteliquentCode('410', 410)).toBe(true);
    expect(isRetryableInteliquentCode('502', 502)).toBe(true);
    expect(isRetryableInteliquentCode('418', 418)).toBe(false);
  });

  it('maps publishMessages answers onto send results', () => {
    const ok = mapPublishAnswer(
      200,
      undefined,
      readFixture('inteliquent/publishMessages.response-200.json'),
      '19205551235',
      0,
    );
    expect(ok).toEqual({ ok: true, providerMessageId: 'd88231b5-13b3-4fb2-8528-bc7164309389', cost: null });
    const refusedRecipient = JSON.parse(readFixture('inteliquent/publishMessages.response-200.json'));
    refusedRecipient.result.resultResponses[0].status = 'FAILED';
    expect(mapPublishAnswer(200, undefined, JSON.stringify(refusedRecipient), '19205551235', 0)).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: 'FAILED' },
    });
    expect(
      mapPublishAnswer(200, undefined, '{"success":false,"reason":"FAILURE","detail":"from not enabled"}', '1', 0),
    ).toMatchObject({ ok: false, retryable: false, error: { code: 'carrier_request_rejected' } });
    expect(mapPublishAnswer(200, undefined, '{"statusCode":"431","status":"try again"}', '1', 0)).toMatchObject({
      ok: false,
      retryable: true,
      error: { code: '431' },
    });
    expect(mapPublishAnswer(408, undefined, '{"statusCode":"408","status":"Invalid number"}', '1', 0)).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: '408', class: 'PermanentError' },
    });
    expect(mapPublishAnswer(408, undefined, '', '1', 0)).toMatchObject({ ok: false, retryable: true });
    const fault =
      '<ams:fault xmlns:ams="http://wso2.org/apimanager/security"><ams:code>900901</ams:code>' +
      '<ams:message>Invalid Credentials</ams:message></ams:fault>';
    expect(mapPublishAnswer(401, undefined, fault, '1', 0)).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: '900901' },
    });
    expect(mapPublishAnswer(503, undefined, 'Service Unavailable', '1', 0)).toMatchObject({
      ok: false,
      retryable: true,
      error: { class: 'ResourceError' },
    });
    expect(mapPublishAnswer(429, '3', '', '1', 0)).toMatchObject({ ok: false, retryable: true, retryAfterMs: 3000 });
  });
});

describe('inteliquent: webhook authentication', () => {
  const KEY = 'BfRNyiOgcyjI5UPgC2ZR5grsj2XyW5DD';
  const TOKEN = '7d0b3a52-8a40-4c5e-9d0e-2f4b1c9a6e11';
  // Inteliquent publishes no example token: computed independently with
  // `printf '%s' "$TOKEN" | openssl dgst -sha256 -hmac "$KEY"` (hex) and `-binary | base64`.
  const HEX = '79bf0f610265aebbe16a8a5690857cbcc5488a4ce55af7b404adf2a083a7fd8b';
  const BASE64 = 'eb8PYQJlrrvhaopWkIV8vMVIikzlWve0BK3yoIOn/Ys=';
  const body = Buffer.from(JSON.stringify({ referenceId: 'r1', from: '13123752629', to: ['19205551234'], text: 'hi' }));
  const carrier = createInteliquentCarrier(sender({ apiKey: 'k', webhookApiKey: KEY }), { webhookUrl: WEBHOOK_URL });
  const request = (headers: Record<string, string>): WebhookRequest => ({
    method: 'POST',
    url: '/webhooks/inteliquent/snd_iq',
    headers: { 'content-type': 'application/json', ...headers },
    rawBody: body,
  });

  it('computes verificationToken as HMAC-SHA256 of the messageID token under the apiKey', () => {
    expect(inteliquentVerificationToken(KEY, TOKEN)).toBe(HEX);
  });

  it.each([
    ['lowercase hex', HEX],
    ['uppercase hex', HEX.toUpperCase()],
    ['base64', BASE64],
  ])('accepts the token as %s', (_name, token) => {
    const [event] = carrier.parseWebhook(request({ messageid: TOKEN, verificationtoken: token }));
    expect(event).toMatchObject({ kind: 'inbound', from: '+13123752629', to: '+19205551234', body: 'hi' });
  });

  it('refuses missing, wrong and replayed-under-another-token credentials', () => {
    expect(() => carrier.parseWebhook(request({}))).toThrow(AuthenticationError);
    expect(() => carrier.parseWebhook(request({ messageid: TOKEN }))).toThrow(AuthenticationError);
    expectAuthFailure(() => carrier.parseWebhook(request({ messageid: TOKEN, verificationtoken: flipLast(HEX) })));
    expectAuthFailure(() => carrier.parseWebhook(request({ messageid: `${TOKEN}0`, verificationtoken: HEX })));
    expectAuthFailure(() => carrier.parseWebhook(request({ messageid: TOKEN, verificationtoken: 'not-a-digest' })));
    const other = createInteliquentCarrier(sender({ apiKey: 'k', webhookApiKey: 'other' }), {
      webhookUrl: WEBHOOK_URL,
    });
    expectAuthFailure(() => other.parseWebhook(request({ messageid: TOKEN, verificationtoken: HEX })));
  });

  it('requires both the token and the custom header when both are configured', () => {
    const both = createInteliquentCarrier(
      sender({ apiKey: 'k', webhookApiKey: KEY, webhookHeaderName: 'X-Omni-Secret', webhookHeaderValue: 's3cret' }),
      { webhookUrl: WEBHOOK_URL },
    );
    const headers = inteliquentWebhookHeaders({ apiKey: KEY, header: { name: 'x-omni-secret', value: 's3cret' } });
    expect(both.parseWebhook(request(headers))).toHaveLength(1);
    expectAuthFailure(() => both.parseWebhook(request({ ...headers, 'x-omni-secret': 's3creT' })));
    const { verificationToken: _dropped, ...withoutToken } = headers;
    expectAuthFailure(() => both.parseWebhook(request(withoutToken)));
  });
});

describe('inteliquent: webhook payloads', () => {
  const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'));
  const KEY = 'webhook-key';

  function carrierFor(from: string | null) {
    return createInteliquentCarrier(
      sender({ apiKey: 'k', webhookApiKey: KEY }, from),
      { webhookUrl: WEBHOOK_URL },
      clock,
    );
  }
  function signed(payload: unknown): WebhookRequest {
    return {
      method: 'POST',
      url: '/webhooks/inteliquent/snd_iq',
      headers: { 'content-type': 'application/json', ...inteliquentWebhookHeaders({ apiKey: KEY }) },
      rawBody: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
    };
  }
  const fixture = readJsonFixture<Record<string, unknown>>('inteliquent/inbound-webhook.request.json');

  it('reads the documented webhook example as a group MMS when it is a message', () => {
    const [event, ...rest] = carrierFor('+14567890232').parseWebhook(signed({ ...fixture, deliveryReceipt: false }));
    expect(rest).toEqual([]);
    expect(event).toEqual({
      kind: 'inbound',
      eventKey: 'inteliquent:mo:AccO09773Fd7Gdec',
      providerMessageId: 'AccO09773Fd7Gdec',
      channel: 'mms',
      from: '+13123752629',
      to: '+14567890232',
      body: 'This message is fun',
      occurredAt: clock.now(),
      detail: {
        mediaUrls: ['http://cnn.com/attachment/file1.ext', 'http://cnn.com/attachment/file2.ext'],
        recipients: ['+12345678901', '+14567890232', '+18098767654'],
      },
    });
    const [again] = carrierFor('+14567890232').parseWebhook(signed({ ...fixture, deliveryReceipt: false }));
    expect(again?.eventKey).toBe(event?.eventKey);
  });

  it('treats the documented example as the receipt it says it is, and drops it: its text is no receipt', () => {
    expect(carrierFor(FROM).parseWebhook(signed(fixture))).toEqual([]);
  });

  it('reads delivery receipts with an SMPP receipt text', () => {
    const delivered = {
      ...fixture,
      text: 'id:d88231b5 sub:001 dlvrd:001 submit date:2603011000 done date:2603011000 stat:DELIVRD err:000 text:',
    };
    const [event] = carrierFor(FROM).parseWebhook(signed(delivered));
    expect(event).toMatchObject({
      kind: 'status',
      providerMessageId: 'AccO09773Fd7Gdec',
      reference: null,
      status: 'delivered',
      detail: { receiptId: 'd88231b5' },
    });
    expect(event).not.toHaveProperty('error');
    const [failed] = carrierFor(FROM).parseWebhook(signed({ ...delivered, text: 'id:x stat:UNDELIV err:001' }));
    expect(failed).toMatchObject({ status: 'undelivered', error: { code: '001', class: 'PermanentError' } });
    expect(failed?.eventKey).not.toBe(event?.eventKey);
    const [rejected] = carrierFor(FROM).parseWebhook(signed({ ...delivered, text: 'stat:REJECTD err:000' }));
    expect(rejected).toMatchObject({ status: 'failed', error: { code: 'REJECTD' } });
    expect(carrierFor(FROM).parseWebhook(signed({ ...delivered, text: 'stat:UNKNOWN' }))).toEqual([]);
    expect(parseSmppReceipt('id:1 stat:expired err:00b')).toEqual({ id: '1', stat: 'EXPIRED', err: '00b' });
  });

  it('reads string and numeric numbers, 10- and 11-digit, and SMS without media', () => {
    expect(phoneFromInteliquent(13123752629)).toBe('+13123752629');
    expect(phoneFromInteliquent('3123752629')).toBe('+13123752629');
    expect(phoneFromInteliquent('+447700900123')).toBe('+447700900123');
    expect(phoneFromInteliquent('22333')).toBe('22333');
    const [sms] = carrierFor(FROM).parseWebhook(
      signed({ referenceId: 'x1', from: 3123752629, to: 19205551234, text: 'yo' }),
    );
    expect(sms).toMatchObject({ channel: 'sms', from: '+13123752629', to: FROM, body: 'yo' });
    expect(sms).not.toHaveProperty('detail');
  });

  it('refuses malformed payloads', () => {
    const c = carrierFor(FROM);
    expect(() => c.parseWebhook(signed('{nope'))).toThrow(ValidationError);
    expect(() => c.parseWebhook(signed([fixture]))).toThrow(ValidationError);
    expect(() => c.parseWebhook(signed({ ...fixture, referenceId: undefined }))).toThrow(ValidationError);
    expect(() => c.parseWebhook(signed({ ...fixture, deliveryReceipt: false, mediaUrls: 'x' }))).toThrow(
      ValidationError,
    );
    expect(() => c.parseWebhook(signed({ referenceId: 'r', to: ['19205551234'], text: 'no sender' }))).toThrow(
      ValidationError,
    );
  });
});

describe('inteliquent: configuration', () => {
  const ctx = { webhookUrl: WEBHOOK_URL };
  it.each([
    [{ webhookApiKey: 'w' }, 'config.apiKey'],
    [{ apiKey: 'k' }, 'config.webhookApiKey'],
    [{ apiKey: 'k', webhookHeaderName: 'X-Secret' }, 'config.webhookHeaderValue'],
    [{ apiKey: 'k', webhookHeaderValue: 'v' }, 'config.webhookHeaderName'],
    [{ apiKey: 'k', webhookHeaderName: 'Bad Header', webhookHeaderValue: 'v' }, 'config.webhookHeaderName'],
    [{ apiKey: 'k', webhookApiKey: 'w', baseUrl: 'messagebroker.inteliquent.com' }, 'config.baseUrl'],
    [{ apiKey: 'k', webhookApiKey: 'w', rateLimitPerSecond: 1.5 }, 'config.rateLimitPerSecond'],
    [{ apiKey: 'k', webhookApiKey: 'w', costPerMessage: 'free' }, 'config.costPerMessage'],
    [{ apiKey: 'k', webhookApiKey: 'w', privateKey: 'p' }, 'config.privateKey'],
  ])('refuses %j naming %s', (config, field) => {
    let thrown: unknown;
    try {
      createInteliquentCarrier(sender(config), ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    expect((thrown as ValidationError).field).toBe(field);
  });

  it('describes itself as a provider', async () => {
    expect(inteliquentProvider).toMatchObject({ id: 'inteliquent', channels: ['sms', 'mms'] });
    expect(inteliquentProvider.secretFields).toEqual(['apiKey', 'webhookApiKey', 'webhookHeaderValue']);
    const schema = inteliquentProvider.configSchema as { additionalProperties: boolean; properties: object };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['apiKey', 'baseUrl', 'webhookApiKey', 'rateLimitPerSecond', 'costPerMessage']),
    );
    const validate = new Ajv({ strict: false, validateFormats: false }).compile(inteliquentProvider.configSchema);
    expect(validate({ apiKey: 'k', webhookApiKey: 'w' })).toBe(true);
    expect(validate({ apiKey: 'k', webhookHeaderName: 'X-Secret', webhookHeaderValue: 'v' })).toBe(true);
    expect(validate({ apiKey: 'k' })).toBe(false);
    expect(validate({ apiKey: 'k', webhookApiKey: 'w', privateKey: 'p' })).toBe(false);
    const carrier = inteliquentProvider.create(
      sender({ apiKey: 'k', webhookHeaderName: 'X-Secret', webhookHeaderValue: 'v', rateLimitPerSecond: 5 }),
      ctx,
    );
    expect(carrier.provider).toBe('inteliquent');
    expect(INTELIQUENT_DEFAULT_BASE_URL).toBe('https://messagebroker.inteliquent.com/msgbroker/rest');
    await carrier.close?.();
  });
});

describe('inteliquent: the request the adapter sends', () => {
  const receiver = new WebhookReceiver();
  let emulator: InteliquentEmulator;
  const message = (over: Partial<SendRequest>): SendRequest => ({
    messageId: 'msg_iq',
    channel: 'sms',
    to: INTELIQUENT_NUMBERS.delivered,
    from: null,
    body: 'Hello',
    subject: null,
    attempt: 1,
    ...over,
  });

  beforeAll(async () => {
    await receiver.start();
    emulator = await InteliquentEmulator.start({ webhookUrl: `${receiver.url}/webhooks/inteliquent/snd_iq` });
  });
  afterAll(async () => {
    await emulator.close();
    await receiver.close();
  });

  it('follows the schema where the spec’s own example does not (mediaUrls is one string)', () => {
    const example = readJsonFixture('inteliquent/publishMessages.request.json');
    const problems = inteliquentValidator().validate({
      method: 'POST',
      path: '/msgbroker/rest/publishMessages',
      contentType: 'application/json',
      body: example,
    });
    expect(problems).toEqual([expect.stringContaining('body/mediaUrls must be string')]);
  });

  it('sends SMS and MMS exactly as publishMessages documents them', async () => {
    const carrier = createInteliquentCarrier(sender(emulator.senderConfig), { webhookUrl: `${receiver.url}/x` });
    try {
      const results = await carrier.send([
        message({ body: 'Hello' }),
        message({ channel: 'mms', body: 'A logo', options: { mediaUrls: ['https://example.com/logo.svg'] } }),
        message({ channel: 'mms', body: null, options: { mediaUrls: ['https://example.com/only.png'] } }),
      ]);
      expect(results.map((r) => r.ok)).toEqual([true, true, true]);
      const bodies = emulator.received.slice(-3);
      expect(bodies.map((r) => r.body)).toEqual([
        { from: '19205551234', to: ['19205551235'], text: 'Hello' },
        { from: '19205551234', to: ['19205551235'], text: 'A logo', mediaUrls: 'https://example.com/logo.svg' },
        { from: '19205551234', to: ['19205551235'], mediaUrls: 'https://example.com/only.png' },
      ]);
      for (const r of bodies) {
        expect(r.path).toBe('/msgbroker/rest/publishMessages');
        expect(r.headers.authorization).toBe(`Bearer ${String(emulator.senderConfig.apiKey)}`);
        expect(r.headers['content-type']).toBe('application/json');
        expect(
          inteliquentValidator().validate({
            method: 'POST',
            path: r.path,
            contentType: 'application/json',
            body: r.body,
          }),
        ).toEqual([]);
      }
      expect(emulator.violations).toEqual([]);
    } finally {
      await carrier.close?.();
    }
  });

  it('refuses what publishMessages cannot carry, and reports Inteliquent’s own refusals', async () => {
    const carrier = createInteliquentCarrier(sender(emulator.senderConfig), { webhookUrl: `${receiver.url}/x` });
    const otherFrom = createInteliquentCarrier(sender(emulator.senderConfig, '+19205550000'), {
      webhookUrl: `${receiver.url}/x`,
    });
    const wrongKey = createInteliquentCarrier(sender({ ...emulator.senderConfig, apiKey: 'wrong' }), {
      webhookUrl: `${receiver.url}/x`,
    });
    try {
      const before = emulator.received.length;
      const [twoMedia, email, empty] = await carrier.send([
        message({ channel: 'mms', options: { mediaUrls: ['https://e.com/a.png', 'https://e.com/b.png'] } }),
        message({ channel: 'email', to: 'a@example.com' }),
        message({ body: '' }),
      ]);
      expect(twoMedia).toMatchObject({ ok: false, retryable: false, error: { code: 'too_many_media' } });
      expect(email).toMatchObject({ ok: false, retryable: false, error: { code: 'unsupported_channel' } });
      expect(empty).toMatchObject({ ok: false, retryable: false, error: { code: 'body_empty' } });
      expect(emulator.received.length).toBe(before);
      const [notOurs] = await otherFrom.send([message({})]);
      expect(notOurs).toMatchObject({ ok: false, retryable: false, error: { code: '408' } });
      const [badKey] = await wrongKey.send([message({})]);
      expect(badKey).toMatchObject({ ok: false, retryable: false, error: { code: '401001' } });
      const [throttled] = await carrier.send([message({ to: INTELIQUENT_NUMBERS.throttled })]);
      expect(throttled).toMatchObject({ ok: false, retryable: true, retryAfterMs: 1000 });
      expect(emulator.violations).toEqual([]);
    } finally {
      await Promise.all([carrier.close?.(), otherFrom.close?.(), wrongKey.close?.()]);
    }
  });
});
