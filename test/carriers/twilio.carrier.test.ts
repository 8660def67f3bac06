/**
 * The Twilio adapter against the Twilio emulator: the shared carrier contract for SMS, WhatsApp and MMS, then
 * Twilio specifics — the error-code table, X-Twilio-Signature known answers, every callback/inbound fixture,
 * sender config validation and the exact requests sent for each kind of message.
 */
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTwilioCarrier,
  TWILIO_CONFIG_SCHEMA,
  TWILIO_REFERENCE_PARAM,
  twilioProvider,
} from '../../src/adapters/carriers/twilio/twilio-carrier.ts';
import {
  classifyTwilioError,
  TWILIO_ERROR_CLASSES,
  TWILIO_ERROR_GROUPS,
} from '../../src/adapters/carriers/twilio/twilio-errors.ts';
import {
  computeTwilioSignature,
  twilioBodySha256,
  verifyTwilioBodySignature,
  verifyTwilioSignature,
} from '../../src/adapters/carriers/twilio/twilio-signature.ts';
import { ValidationError } from '../../src/domain/errors.ts';
import type {
  Carrier,
  CarrierEvent,
  ChannelOptions,
  SenderRecord,
  SendRequest,
  WebhookRequest,
} from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  checkTwiml,
  signTwilioRequest,
  TWILIO_NUMBERS,
  TWILIO_TEST_ACCOUNT_SID,
  TWILIO_TEST_AUTH_TOKEN,
  TwilioEmulator,
} from './emulators/twilio-emulator.ts';
import { readFixture, readJsonFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const HANDSET = '+14155550123';
const WHATSAPP_SENDER = '+14155238886';

function withoutSignature(r: WebhookRequest): WebhookRequest {
  const headers = { ...r.headers };
  for (const k of Object.keys(headers)) if (k.toLowerCase() === 'x-twilio-signature') delete headers[k];
  return { ...r, headers };
}

const CONTRACTS: { channel: 'sms' | 'whatsapp' | 'mms'; from: string; options?: ChannelOptions }[] = [
  { channel: 'sms', from: TWILIO_NUMBERS.from },
  { channel: 'whatsapp', from: WHATSAPP_SENDER },
  { channel: 'mms', from: TWILIO_NUMBERS.from, options: { mediaUrls: ['https://demo.twilio.com/owl.png'] } },
];

for (const c of CONTRACTS) {
  carrierContract({
    provider: 'twilio',
    channel: c.channel,
    from: c.from,
    ...(c.options ? { options: c.options } : {}),
    destinations: {
      delivered: HANDSET,
      rejected: TWILIO_NUMBERS.invalid,
      unavailable: TWILIO_NUMBERS.unavailable,
      throttled: TWILIO_NUMBERS.throttled,
      undeliverable: TWILIO_NUMBERS.undelivered,
    },
    startEmulator: (webhookUrl) =>
      TwilioEmulator.start({ inboundUrl: webhookUrl, inboundChannel: c.channel === 'whatsapp' ? 'whatsapp' : 'sms' }),
    createCarrier: (sender, ctx) => createTwilioCarrier(sender, ctx),
    unsign: withoutSignature,
  });
}

// ---------------------------------------------------------------------------------------------------------------

describe('twilio error codes', () => {
  const fixture = readJsonFixture<{ count: number; codes: { code: number; message: string }[] }>(
    'twilio/error-codes.messaging.json',
  );

  it('classifies every documented code, each in exactly one group', () => {
    const seen = new Map<number, string>();
    for (const [cls, codes] of Object.entries(TWILIO_ERROR_GROUPS)) {
      for (const code of codes) {
        expect(seen.has(code), `${code} is in ${seen.get(code)} and ${cls}`).toBe(false);
        seen.set(code, cls);
      }
    }
    const missing = fixture.codes.filter((c) => !TWILIO_ERROR_CLASSES.has(c.code)).map((c) => c.code);
    expect(missing).toEqual([]);
    expect(fixture.codes).toHaveLength(fixture.count);
    // Nothing in the table that Twilio does not document.
    const documented = new Set(fixture.codes.map((c) => c.code));
    expect([...TWILIO_ERROR_CLASSES.keys()].filter((c) => !documented.has(c))).toEqual([]);
    for (const { code } of fixture.codes) expect(classifyTwilioError(code).known).toBe(true);
  });

  it('classifies codes by meaning', () => {
    const permanent = [21211, 21614, 21610, 21612, 21408, 30003, 30004, 30005, 30006, 30007, 30008, 63016, 63024];
    const retryable = [20429, 14107, 30001, 30017, 30022, 20500, 20503, 63017, 63018, 30410, 21611];
    for (const code of permanent) {
      expect(classifyTwilioError(code), String(code)).toMatchObject({ retryable: false, class: 'PermanentError' });
    }
    for (const code of retryable) {
      expect(classifyTwilioError(code), String(code)).toMatchObject({ retryable: true, class: 'ResourceError' });
    }
    expect(classifyTwilioError(20003)).toMatchObject({ retryable: false, class: 'AuthenticationError' });
    expect(classifyTwilioError('20003')).toMatchObject({ retryable: false, class: 'AuthenticationError' });
    expect(classifyTwilioError(20006)).toMatchObject({ retryable: false, class: 'ForbiddenError' });
    expect(classifyTwilioError(21602)).toMatchObject({ retryable: false, class: 'ValidationError' });
    expect(classifyTwilioError(21617)).toMatchObject({ retryable: false, class: 'ValidationError' });
  });

  it('falls back to the HTTP status for codes Twilio has not documented', () => {
    expect(classifyTwilioError(99999, 503)).toEqual({ class: 'ResourceError', retryable: true, known: false });
    expect(classifyTwilioError(99999, 429)).toMatchObject({ retryable: true });
    expect(classifyTwilioError(99999, 401)).toMatchObject({ class: 'AuthenticationError', retryable: false });
    expect(classifyTwilioError(99999, 403)).toMatchObject({ class: 'ForbiddenError', retryable: false });
    expect(classifyTwilioError(99999, 400)).toMatchObject({ class: 'PermanentError', retryable: false });
    expect(classifyTwilioError(99999)).toMatchObject({ class: 'PermanentError', retryable: false });
    expect(classifyTwilioError(undefined)).toMatchObject({ class: 'PermanentError', known: false });
  });
});

// ---------------------------------------------------------------------------------------------------------------

/**
 * Known answers for X-Twilio-Signature. The URL, parameters and auth token are the worked example of Twilio's
 * webhook-security documentation (https://www.twilio.com/docs/usage/webhooks/webhooks-security, formerly
 * https://www.twilio.com/docs/usage/security#validating-requests: "https://mycompany.com/myapp.php?foo=1&bar=2",
 * token 12345); the expected signatures are those pinned by Twilio's own helper library tests
 * (github.com/twilio/twilio-node, spec/validation.spec.js), including the JSON-body (`bodySHA256`) variant.
 */
describe('X-Twilio-Signature known answers', () => {
  const token = '12345';
  const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
  const params = {
    CallSid: 'CA1234567890ABCDE',
    Caller: '+14158675309',
    Digits: '1234',
    From: '+14158675309',
    To: '+18005551212',
  };
  const expected = 'RSOYDt4T1cUTdK1PDd93/VVr8B8=';
  const jsonBody = '{"property": "value", "boolean": true}';
  const jsonHash = '0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620';

  it('computes the documented signature over URL + sorted parameters', () => {
    expect(computeTwilioSignature(token, url, params)).toBe(expected);
    expect(signTwilioRequest(token, url, params)).toBe(expected);
    expect(verifyTwilioSignature(token, expected, url, params)).toBe(true);
  });

  it('refuses a wrong signature, token, URL or parameter', () => {
    expect(verifyTwilioSignature(token, 'WRONG_SIGNATURE', url, params)).toBe(false);
    expect(verifyTwilioSignature(token, '', url, params)).toBe(false);
    expect(verifyTwilioSignature('54321', expected, url, params)).toBe(false);
    expect(verifyTwilioSignature(token, expected, `${url}&somethingUnexpected=true`, params)).toBe(false);
    expect(verifyTwilioSignature(token, expected, url, { ...params, Digits: '9999' })).toBe(false);
  });

  it('accepts the URL with or without its port, as Twilio signs either', () => {
    expect(verifyTwilioSignature(token, expected, url.replace('.com', '.com:1234'), params)).toBe(true);
    // The signature Twilio computes over the URL with the default port 443 added.
    expect(verifyTwilioSignature(token, 'kvajT1Ptam85bY51eRf/AJRuM3w=', url, params)).toBe(true);
    expect(verifyTwilioSignature(token, '0ZXoZLH/DfblKGATFgpif+LLRf4=', url.replace('https', 'http'), params)).toBe(
      true,
    );
    expect(
      verifyTwilioSignature(
        token,
        'Zmvh+3yNM1Phv2jhDCwEM3q5ebU=',
        'http://mycompany.com:1234/myapp.php?foo=1&bar=2',
        params,
      ),
    ).toBe(true);
  });

  it('signs repeated parameters with their distinct values sorted', () => {
    expect(computeTwilioSignature(token, url, { 'MessagingBinding.Address': ['+1325xxxxxxx', '+1415xxxxxxx'] })).toBe(
      '83O6e2vORAoJHUNzJjDWN1jz+BA=',
    );
    expect(computeTwilioSignature(token, url, { 'MessagingBinding.Address': ['+1415xxxxxxx', '+1325xxxxxxx'] })).toBe(
      '83O6e2vORAoJHUNzJjDWN1jz+BA=',
    );
    expect(
      computeTwilioSignature(token, url, { Sid: 'CA123', SidAccount: 'AC123', Digits: ['5678', '1234', '1234'] }),
    ).toBe('IK+Dwps556ElfBT0I3Rgjkr1wJU=');
    expect(
      signTwilioRequest(token, url, [
        ['Digits', '5678'],
        ['Sid', 'CA123'],
        ['Digits', '1234'],
        ['SidAccount', 'AC123'],
        ['Digits', '1234'],
      ]),
    ).toBe('IK+Dwps556ElfBT0I3Rgjkr1wJU=');
  });

  it('signs the URL exactly as given (special characters in the query)', () => {
    expect(computeTwilioSignature(token, `${url}&Body=It's+amazing`, params)).toBe('dsq4Ehbj6cs+KdTkpF5sSSplOWw=');
  });

  it('verifies the JSON-body variant: bodySHA256 in the URL, signature over the URL alone', () => {
    expect(twilioBodySha256(jsonBody)).toBe(jsonHash);
    const signedUrl = `${url}&bodySHA256=${jsonHash}`;
    expect(computeTwilioSignature(token, signedUrl)).toBe('a9nBmqA0ju/hNViExpshrM61xv4=');
    expect(verifyTwilioBodySignature(token, 'a9nBmqA0ju/hNViExpshrM61xv4=', signedUrl, jsonBody)).toBe(true);
    expect(verifyTwilioBodySignature(token, 'a9nBmqA0ju/hNViExpshrM61xv4=', signedUrl, `${jsonBody} `)).toBe(false);
    expect(verifyTwilioBodySignature(token, 'a9nBmqA0ju/hNViExpshrM61xv4=', url, jsonBody)).toBe(false);
    const emptyHash = '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
    expect(twilioBodySha256('{}')).toBe(emptyHash);
    expect(
      verifyTwilioBodySignature(token, 'Ldidvp12m26NI7eqEvxnEpkd9Hc=', `${url}&bodySHA256=${emptyHash}`, '{}'),
    ).toBe(true);
  });

  it('the adapter accepts the documented request and refuses it altered', () => {
    const carrier = fixtureCarrier(url, token);
    const request: WebhookRequest = {
      method: 'POST',
      url: '/myapp.php?foo=1&bar=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': expected },
      rawBody: Buffer.from(new URLSearchParams(params).toString()),
    };
    // Authentic, but a Gather request is not a messaging webhook: refused as a payload, not as a forgery.
    expect(() => carrier.parseWebhook(request)).toThrow(ValidationError);
    expectAuthFailure(() => carrier.parseWebhook({ ...request, url: '/myapp.php?foo=1&bar=3' }));
    expectAuthFailure(() =>
      carrier.parseWebhook({
        ...request,
        rawBody: Buffer.from(new URLSearchParams({ ...params, Digits: '1' }).toString()),
      }),
    );
    expect(() => carrier.parseWebhook(withoutSignature(request))).toThrow(
      expect.objectContaining({ code: 'webhook_signature_missing' }),
    );

    const json: WebhookRequest = {
      method: 'POST',
      url: `/myapp.php?foo=1&bar=2&bodySHA256=${jsonHash}`,
      headers: { 'content-type': 'application/json', 'x-twilio-signature': 'a9nBmqA0ju/hNViExpshrM61xv4=' },
      rawBody: Buffer.from(jsonBody),
    };
    expect(() => carrier.parseWebhook(json)).toThrow(ValidationError);
    expectAuthFailure(() => carrier.parseWebhook({ ...json, rawBody: Buffer.from('{"property": "other"}') }));
  });
});

// ---------------------------------------------------------------------------------------------------------------

const FIXTURE_WEBHOOK = 'https://omni.example.com/webhooks/twilio/snd_fixture';

function fixtureCarrier(webhookUrl = FIXTURE_WEBHOOK, authToken = TWILIO_TEST_AUTH_TOKEN): Carrier {
  return createTwilioCarrier(sender({ accountSid: TWILIO_TEST_ACCOUNT_SID, authToken }), { webhookUrl });
}

function sender(config: Record<string, unknown>, from: string | null = TWILIO_NUMBERS.from): SenderRecord {
  return { id: 'snd_twilio', orgId: 'org_1', provider: 'twilio', config, channels: ['sms'], from, priority: 0 };
}

/** A fixture body as Twilio would post it to FIXTURE_WEBHOOK (+ query), signed with the emulator's signer. */
function signedFixture(file: string, query = ''): WebhookRequest {
  const raw = readFixture(`twilio/${file}`).trim();
  const fields = [...new URLSearchParams(raw)];
  return {
    method: 'POST',
    url: `/webhooks/twilio/snd_fixture${query}`,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': signTwilioRequest(TWILIO_TEST_AUTH_TOKEN, FIXTURE_WEBHOOK + query, fields),
    },
    rawBody: Buffer.from(raw),
  };
}

function only(events: CarrierEvent[]): CarrierEvent {
  expect(events).toHaveLength(1);
  return events[0] as CarrierEvent;
}

describe('twilio webhooks (fixtures)', () => {
  const carrier = fixtureCarrier();

  it('answers messaging webhooks with empty TwiML', () => {
    expect(carrier.webhookAnswer).toEqual({ status: 200, contentType: 'text/xml', body: '<Response/>' });
  });

  it('parses the SMS status callback (sent), with our reference from the callback URL', () => {
    const plain = only(carrier.parseWebhook(signedFixture('sms-status-callback.sent.form.txt')));
    expect(plain).toMatchObject({
      kind: 'status',
      status: 'sent',
      providerMessageId: 'SM1342fe1b2c904d1ab04f0fc7a58abca9',
      reference: null,
      eventKey: 'twilio:SM1342fe1b2c904d1ab04f0fc7a58abca9:sent',
    });
    const withRef = only(
      carrier.parseWebhook(signedFixture('sms-status-callback.sent.form.txt', `?${TWILIO_REFERENCE_PARAM}=msg_42`)),
    );
    expect(withRef).toMatchObject({ reference: 'msg_42', eventKey: plain.eventKey });
    // The reference is covered by the signature: another message's id does not verify.
    const forged = signedFixture('sms-status-callback.sent.form.txt', `?${TWILIO_REFERENCE_PARAM}=msg_42`);
    expectAuthFailure(() => carrier.parseWebhook({ ...forged, url: forged.url.replace('msg_42', 'msg_43') }));
  });

  it('parses an inbound SMS with its geographic detail', () => {
    const e = only(carrier.parseWebhook(signedFixture('sms-inbound.form.txt')));
    expect(e).toMatchObject({
      kind: 'inbound',
      channel: 'sms',
      providerMessageId: 'SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
      eventKey: 'twilio:inbound:SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
      from: '+14017122661',
      to: '+15558675310',
      body: "Ahoy! Let's build something amazing.",
      detail: {
        fromCity: 'SAN FRANCISCO',
        fromState: 'CA',
        toCity: 'SAUSALITO',
        messagingServiceSid: 'MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
        numSegments: '1',
      },
    });
  });

  it('parses an inbound MMS with its media', () => {
    const e = only(carrier.parseWebhook(signedFixture('mms-inbound.form.txt')));
    expect(e).toMatchObject({
      kind: 'inbound',
      channel: 'mms',
      providerMessageId: 'MMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
    });
    expect(e.detail?.media).toEqual([
      {
        url: 'https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/MMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Media/MEXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
        contentType: 'image/jpeg',
      },
    ]);
  });

  it('parses inbound WhatsApp text, image and location', () => {
    const text = only(carrier.parseWebhook(signedFixture('whatsapp-inbound-text.form.txt')));
    expect(text).toMatchObject({
      kind: 'inbound',
      channel: 'whatsapp',
      from: '+31612345678',
      to: '+14123456789',
      body: 'test',
      providerMessageId: 'SM892512e202b34d4109b10a3893fa9640',
    });
    const image = only(carrier.parseWebhook(signedFixture('whatsapp-inbound-image.form.txt')));
    expect(image).toMatchObject({ kind: 'inbound', channel: 'whatsapp', body: '' });
    expect(image.detail?.media).toEqual([
      {
        url: 'https://api.twilio.com/2010-04-01/Accounts/AC1a03647d811fab342c0ad608e382fab2/Messages/MM21151abfaadc1fb79b782f8460862a52/Media/ME5f0afa2336bd0f73ca553fb5a2e3150bc',
        contentType: 'image/jpeg',
      },
    ]);
    const location = only(carrier.parseWebhook(signedFixture('whatsapp-inbound-location.form.txt')));
    expect(location).toMatchObject({ kind: 'inbound', channel: 'whatsapp', from: '+31612345678' });
    expect(location.detail?.location).toEqual({
      latitude: 52.303897857666016,
      longitude: 4.750025749206543,
      address: 'Evert van de Beekstraat 354, Schiphol, North Holland 1118 CZ',
      label: 'Microsoft',
    });
  });

  it('parses WhatsApp status callbacks (sent, delivered)', () => {
    const sent = only(carrier.parseWebhook(signedFixture('whatsapp-status-callback.sent.form.txt')));
    expect(sent).toMatchObject({
      kind: 'status',
      status: 'sent',
      providerMessageId: 'SM0cec4ed334e74bcbb64eb8b6684e9654',
      detail: { channel: 'whatsapp' },
    });
    const delivered = only(carrier.parseWebhook(signedFixture('whatsapp-status-callback.delivered.form.txt')));
    expect(delivered).toMatchObject({
      kind: 'status',
      status: 'delivered',
      providerMessageId: 'SMdf55df64a2ff4920bb0748193cfbb640',
      detail: { channel: 'whatsapp', eventType: 'DELIVERED' },
    });
    expect(delivered.eventKey).not.toBe(sent.eventKey);
  });

  it('refuses every fixture signed with another token or for another URL', () => {
    for (const file of ['sms-inbound.form.txt', 'whatsapp-status-callback.sent.form.txt']) {
      const good = signedFixture(file);
      expectAuthFailure(() => fixtureCarrier(FIXTURE_WEBHOOK, 'another-token').parseWebhook(good));
      expectAuthFailure(() =>
        fixtureCarrier('https://other.example.com/webhooks/twilio/snd_fixture').parseWebhook(good),
      );
    }
  });

  it('maps failure callbacks with their error code, and drops statuses the product does not track', () => {
    const post = (fields: Record<string, string>): CarrierEvent[] =>
      carrier.parseWebhook({
        method: 'POST',
        url: '/webhooks/twilio/snd_fixture',
        headers: { 'x-twilio-signature': signTwilioRequest(TWILIO_TEST_AUTH_TOKEN, FIXTURE_WEBHOOK, fields) },
        rawBody: Buffer.from(new URLSearchParams(fields).toString()),
      });
    const base = {
      AccountSid: TWILIO_TEST_ACCOUNT_SID,
      MessageSid: 'SM1',
      SmsSid: 'SM1',
      To: HANDSET,
      From: TWILIO_NUMBERS.from,
    };
    expect(
      only(post({ ...base, MessageStatus: 'undelivered', SmsStatus: 'undelivered', ErrorCode: '30003' })),
    ).toMatchObject({
      status: 'undelivered',
      error: { code: '30003', class: 'PermanentError' },
    });
    expect(only(post({ ...base, MessageStatus: 'failed', ErrorCode: '30001' }))).toMatchObject({
      status: 'failed',
      error: { code: '30001', class: 'ResourceError' },
    });
    expect(only(post({ ...base, MessageStatus: 'failed' }))).toMatchObject({ error: { code: 'message_failed' } });
    expect(only(post({ ...base, MessageStatus: 'read' }))).toMatchObject({ status: 'read' });
    for (const status of ['queued', 'sending', 'accepted', 'scheduled', 'canceled', 'partially_delivered']) {
      expect(post({ ...base, MessageStatus: status }), status).toEqual([]);
    }
    // Other Twilio channels (e.g. Messenger) are not ours.
    expect(post({ MessageSid: 'SM2', From: 'messenger:123', To: 'messenger:456', Body: 'hi' })).toEqual([]);
    expect(() => post({ MessageStatus: 'sent' })).toThrow(expect.objectContaining({ code: 'invalid_webhook_payload' }));
    expect(() => post({ Body: 'no ids' })).toThrow(expect.objectContaining({ code: 'invalid_webhook_payload' }));
  });

  it('verifies GET webhooks over the full URL and JSON webhooks with bodySHA256', () => {
    const query = `?MessageSid=SM9&From=%2B14155550123&To=%2B15005550006&Body=Hi+there&NumMedia=0`;
    const get: WebhookRequest = {
      method: 'GET',
      url: `/webhooks/twilio/snd_fixture${query}`,
      headers: { 'x-twilio-signature': computeTwilioSignature(TWILIO_TEST_AUTH_TOKEN, FIXTURE_WEBHOOK + query) },
      rawBody: Buffer.alloc(0),
    };
    expect(only(carrier.parseWebhook(get))).toMatchObject({ kind: 'inbound', body: 'Hi there', from: HANDSET });
    expectAuthFailure(() => carrier.parseWebhook({ ...get, url: get.url.replace('Hi+there', 'Bye') }));

    const body = JSON.stringify({
      MessageSid: 'SM8',
      MessageStatus: 'delivered',
      To: HANDSET,
      From: TWILIO_NUMBERS.from,
    });
    const jsonQuery = `?${TWILIO_REFERENCE_PARAM}=msg_7&bodySHA256=${twilioBodySha256(body)}`;
    const json: WebhookRequest = {
      method: 'POST',
      url: `/webhooks/twilio/snd_fixture${jsonQuery}`,
      headers: {
        'content-type': 'application/json',
        'x-twilio-signature': computeTwilioSignature(TWILIO_TEST_AUTH_TOKEN, FIXTURE_WEBHOOK + jsonQuery),
      },
      rawBody: Buffer.from(body),
    };
    expect(only(carrier.parseWebhook(json))).toMatchObject({
      status: 'delivered',
      providerMessageId: 'SM8',
      reference: 'msg_7',
    });
    expectAuthFailure(() => carrier.parseWebhook({ ...json, rawBody: Buffer.from(body.replace('SM8', 'SM9')) }));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('twilio sender config', () => {
  const ok = { accountSid: TWILIO_TEST_ACCOUNT_SID, authToken: 'token' };
  const ctx = { webhookUrl: FIXTURE_WEBHOOK };

  function fieldOf(config: Record<string, unknown>): string | undefined {
    try {
      createTwilioCarrier(sender(config), ctx);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return (err as ValidationError).field;
    }
    return undefined;
  }

  it('refuses invalid settings, naming the field', () => {
    expect(fieldOf({ authToken: 'token' })).toBe('config.accountSid');
    expect(fieldOf({ ...ok, accountSid: 'AC123' })).toBe('config.accountSid');
    expect(fieldOf({ accountSid: TWILIO_TEST_ACCOUNT_SID })).toBe('config.authToken');
    expect(fieldOf({ ...ok, authToken: '' })).toBe('config.authToken');
    expect(fieldOf({ ...ok, apiKeySid: `SK${'1'.repeat(32)}` })).toBe('config.apiKeySecret');
    expect(fieldOf({ ...ok, apiKeySecret: 'secret' })).toBe('config.apiKeySid');
    expect(fieldOf({ ...ok, apiKeySid: 'SKnope', apiKeySecret: 'secret' })).toBe('config.apiKeySid');
    expect(fieldOf({ ...ok, messagingServiceSid: 'MG1' })).toBe('config.messagingServiceSid');
    expect(fieldOf({ ...ok, baseUrl: 'ftp://api.twilio.com' })).toBe('config.baseUrl');
    expect(fieldOf({ ...ok, rateLimitPerSecond: 1.5 })).toBe('config.rateLimitPerSecond');
    expect(fieldOf({ ...ok, costPerMessage: -1 })).toBe('config.costPerMessage');
    expect(fieldOf({ ...ok, ttsVoice: 7 })).toBe('config.ttsVoice');
    expect(fieldOf({ ...ok, token: 'typo' })).toBe('config.token');
    expect(fieldOf(ok)).toBeUndefined();
    expect(
      fieldOf({
        ...ok,
        apiKeySid: `SK${'a'.repeat(32)}`,
        apiKeySecret: 'secret',
        messagingServiceSid: `MG${'b'.repeat(32)}`,
        baseUrl: 'https://api.dublin.ie1.twilio.com',
        ttsVoice: 'Polly.Joanna',
        ttsLanguage: 'en-US',
        rateLimitPerSecond: 10,
        costPerMessage: 0.0079,
      }),
    ).toBeUndefined();
  });

  it('publishes a provider definition whose schema lists exactly the accepted settings', () => {
    expect(twilioProvider).toMatchObject({ id: 'twilio', displayName: 'Twilio' });
    expect([...twilioProvider.channels]).toEqual(['sms', 'mms', 'whatsapp', 'voice']);
    expect([...twilioProvider.secretFields]).toEqual(['authToken', 'apiKeySecret']);
    const schema = TWILIO_CONFIG_SCHEMA as {
      additionalProperties: boolean;
      required: string[];
      properties: Record<string, any>;
    };
    expect(twilioProvider.configSchema).toBe(TWILIO_CONFIG_SCHEMA);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['accountSid', 'authToken']);
    expect(schema.properties.rateLimitPerSecond.type).toBe('integer');
    expect(schema.properties.costPerMessage.type).toBe('number');
    expect(schema.properties.baseUrl.default).toBe('https://api.twilio.com');
    for (const [name, prop] of Object.entries(schema.properties)) expect(prop.description, name).toBeTruthy();
    const carrier = twilioProvider.create(sender(ok), ctx);
    expect(carrier.provider).toBe('twilio');
    return carrier.close?.();
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('twilio requests on the wire', () => {
  const receiver = new WebhookReceiver();
  const apiKey = { sid: `SK${'c'.repeat(32)}`, secret: 'api-key-secret' };
  const service = `MG${'d'.repeat(32)}`;
  let emulator: TwilioEmulator;
  let webhookUrl: string;
  const carriers: Carrier[] = [];
  let seq = 0;

  beforeAll(async () => {
    await receiver.start();
    webhookUrl = `${receiver.url}/webhooks/twilio/snd_wire`;
    emulator = await TwilioEmulator.start({ apiKey, inboundUrl: webhookUrl });
  });

  beforeEach(() => {
    emulator.requests.length = 0;
    emulator.violations.length = 0;
  });

  afterAll(async () => {
    for (const c of carriers) await c.close?.();
    await emulator?.close();
    await receiver.close();
  });

  function carrier(over: Record<string, unknown> = {}, from: string | null = TWILIO_NUMBERS.from): Carrier {
    const c = createTwilioCarrier(sender({ ...emulator.senderConfig, ...over }, from), { webhookUrl });
    carriers.push(c);
    return c;
  }

  function req(channel: SendRequest['channel'], over: Partial<SendRequest> = {}): SendRequest {
    seq++;
    return {
      messageId: `msg_wire_${seq}`,
      channel,
      to: HANDSET,
      from: null,
      body: `Wire message ${seq}`,
      subject: null,
      attempt: 1,
      ...over,
    };
  }

  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

  it('sends an SMS as the Messages resource documents it', async () => {
    const r = req('sms');
    const [result] = await carrier().send([r]);
    expect(result).toMatchObject({ ok: true });
    expect(result?.ok && result.providerMessageId).toMatch(/^SM[0-9a-f]{32}$/);
    expect(emulator.violations).toEqual([]);
    const [sent] = emulator.requests;
    expect(sent?.path).toBe(`/2010-04-01/Accounts/${TWILIO_TEST_ACCOUNT_SID}/Messages.json`);
    expect(sent?.authorization).toBe(basic(TWILIO_TEST_ACCOUNT_SID, TWILIO_TEST_AUTH_TOKEN));
    expect(sent?.contentType).toBe('application/x-www-form-urlencoded');
    expect(sent?.form).toEqual({
      To: HANDSET,
      From: TWILIO_NUMBERS.from,
      Body: r.body,
      StatusCallback: `${webhookUrl}?${TWILIO_REFERENCE_PARAM}=${r.messageId}`,
    });
  });

  it('sends MMS with one MediaUrl per medium, and media alone without a body', async () => {
    const media = ['https://demo.twilio.com/owl.png', 'https://demo.twilio.com/logo.png'];
    const results = await carrier().send([
      req('mms', { options: { mediaUrls: media } }),
      req('mms', { body: null, options: { mediaUrls: media.slice(0, 1) } }),
    ]);
    expect(results.map((x) => x.ok)).toEqual([true, true]);
    expect(results[0]?.ok && results[0].providerMessageId).toMatch(/^MM/);
    expect(emulator.violations).toEqual([]);
    const withBody = emulator.requests.find((x) => x.form.Body !== undefined);
    expect(withBody?.form.MediaUrl).toEqual(media);
    expect(withBody?.rawBody.match(/(^|&)MediaUrl=/g)).toHaveLength(2);
    expect(emulator.requests.find((x) => x.form.Body === undefined)?.form).toMatchObject({ MediaUrl: media[0] });
  });

  it('sends WhatsApp with whatsapp: addresses and a Content template', async () => {
    const c = carrier({}, WHATSAPP_SENDER);
    const text = req('whatsapp', { options: { mediaUrls: ['https://demo.twilio.com/owl.png'] } });
    const template = req('whatsapp', {
      options: {
        whatsapp: {
          template: {
            name: `HX${'e'.repeat(32)}`,
            language: 'en',
            components: [
              {
                type: 'body',
                parameters: [
                  { type: 'text', text: '12/1' },
                  { type: 'text', text: '3pm' },
                ],
              },
            ],
          },
        },
      },
    });
    const results = await c.send([text, template]);
    expect(results.map((x) => x.ok)).toEqual([true, true]);
    expect(emulator.violations).toEqual([]);
    const [a, b] = emulator.requests.map((x) => x.form).sort((x, y) => (x.ContentSid ? 1 : 0) - (y.ContentSid ? 1 : 0));
    expect(a).toMatchObject({
      To: `whatsapp:${HANDSET}`,
      From: `whatsapp:${WHATSAPP_SENDER}`,
      Body: text.body,
      MediaUrl: 'https://demo.twilio.com/owl.png',
    });
    expect(b).toEqual({
      To: `whatsapp:${HANDSET}`,
      From: `whatsapp:${WHATSAPP_SENDER}`,
      ContentSid: `HX${'e'.repeat(32)}`,
      ContentVariables: '{"1":"12/1","2":"3pm"}',
      StatusCallback: `${webhookUrl}?${TWILIO_REFERENCE_PARAM}=${template.messageId}`,
    });
  });

  it('sends through a Messaging Service, with an API key', async () => {
    const c = carrier({ messagingServiceSid: service, apiKeySid: apiKey.sid, apiKeySecret: apiKey.secret }, null);
    const [result] = await c.send([req('sms')]);
    expect(result).toMatchObject({ ok: true });
    expect(emulator.violations).toEqual([]);
    const [sent] = emulator.requests;
    expect(sent?.authorization).toBe(basic(apiKey.sid, apiKey.secret));
    expect(sent?.path).toContain(`/Accounts/${TWILIO_TEST_ACCOUNT_SID}/`);
    expect(sent?.form.MessagingServiceSid).toBe(service);
    expect(sent?.form.From).toBeUndefined();
  });

  it('reports the configured cost while Twilio has not priced the message', async () => {
    const [priced] = await carrier({ costPerMessage: 0.0079 }).send([req('sms')]);
    expect(priced).toMatchObject({ ok: true, cost: 0.0079 });
    const [unpriced] = await carrier().send([req('sms')]);
    expect(unpriced?.ok && 'cost' in unpriced).toBe(false);
  });

  it('maps Twilio refusals to the error taxonomy with Twilio codes', async () => {
    const c = carrier();
    const results = await c.send([
      req('sms', { to: TWILIO_NUMBERS.invalid }),
      req('sms', { to: TWILIO_NUMBERS.optedOut }),
      req('sms', { to: TWILIO_NUMBERS.notMobile }),
      req('sms', { to: TWILIO_NUMBERS.unroutable }),
      req('sms', { to: TWILIO_NUMBERS.throttled }),
      req('sms', { to: TWILIO_NUMBERS.unavailable }),
    ]);
    expect(results[0]).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: '21211', class: 'PermanentError' },
    });
    expect(results[0]?.ok === false && results[0].error.message).toContain('is not a valid phone number');
    expect(results[1]).toMatchObject({ ok: false, retryable: false, error: { code: '21610' } });
    expect(results[2]).toMatchObject({ ok: false, retryable: false, error: { code: '21614' } });
    expect(results[3]).toMatchObject({ ok: false, retryable: false, error: { code: '21612' } });
    expect(results[4]).toEqual({
      ok: false,
      retryable: true,
      retryAfterMs: 1000,
      error: { code: '20429', class: 'ResourceError', message: 'Too Many Requests' },
    });
    expect(results[5]).toMatchObject({ ok: false, retryable: true, error: { code: '20503', class: 'ResourceError' } });
    expect(emulator.violations).toEqual([]);
  });

  it('refuses wrong credentials as a permanent authentication failure', async () => {
    const [result] = await carrier({ authToken: 'wrong-token' }).send([req('sms')]);
    expect(result).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: '20003', class: 'AuthenticationError' },
    });
  });

  it('fails locally, without a request, what Twilio would refuse', async () => {
    const c = carrier({}, null);
    const results = await c.send([
      req('sms'),
      req('sms', { from: TWILIO_NUMBERS.from, body: null }),
      req('mms', {
        from: TWILIO_NUMBERS.from,
        options: { mediaUrls: Array.from({ length: 11 }, (_, i) => `https://x.test/${i}.png`) },
      }),
      req('whatsapp', { from: WHATSAPP_SENDER, options: { whatsapp: { interactive: { type: 'button' } } } }),
      req('whatsapp', {
        from: WHATSAPP_SENDER,
        options: { whatsapp: { template: { name: 'hello_world', language: 'en' } } },
      }),
      req('email', { from: 'a@b.test', to: 'c@d.test' }),
      req('voice'),
    ]);
    expect(results.map((x) => !x.ok && x.error.code)).toEqual([
      'missing_from',
      'body_empty',
      'too_many_media',
      'unsupported_content',
      'unsupported_template',
      'unsupported_channel',
      'missing_from',
    ]);
    expect(results.every((x) => !x.ok && !x.retryable)).toBe(true);
    expect(emulator.requests).toEqual([]);
  });

  it('reports receipts that name our message, and failures with the Twilio code', async () => {
    receiver.clear();
    const c = carrier();
    const delivered = req('sms');
    const undelivered = req('sms', { to: TWILIO_NUMBERS.undelivered });
    const failed = req('sms', { to: TWILIO_NUMBERS.failed });
    const results = await c.send([delivered, undelivered, failed]);
    expect(results.every((x) => x.ok)).toBe(true);
    const events = () => receiver.requests.flatMap((r) => c.parseWebhook(r));
    const byRef = (ref: string) => events().filter((e) => e.kind === 'status' && e.reference === ref);
    const settled = (ref: string) => byRef(ref).some((e) => e.kind === 'status' && e.status !== 'sent');
    await receiver.waitFor(() => [delivered, undelivered, failed].every((r) => settled(r.messageId)));
    expect(byRef(delivered.messageId).map((e) => e.kind === 'status' && e.status)).toEqual(['sent', 'delivered']);
    expect(byRef(undelivered.messageId).at(-1)).toMatchObject({
      status: 'undelivered',
      error: { code: '30003', class: 'PermanentError' },
    });
    expect(byRef(failed.messageId).at(-1)).toMatchObject({ status: 'failed', error: { code: '30008' } });
    for (const e of byRef(delivered.messageId)) {
      expect(e.kind === 'status' && e.providerMessageId).toBe(results[0]?.ok && results[0].providerMessageId);
    }
    expect(emulator.callbackFailures).toEqual([]);
  });

  it('parses an inbound MMS posted by the emulator', async () => {
    receiver.clear();
    const c = carrier();
    await emulator.sendInbound({
      from: HANDSET,
      to: TWILIO_NUMBERS.from,
      body: 'photo',
      mediaUrls: ['https://x.test/1.jpg'],
    });
    const [event] = receiver.requests.flatMap((r) => c.parseWebhook(r));
    expect(event).toMatchObject({
      kind: 'inbound',
      channel: 'mms',
      from: HANDSET,
      to: TWILIO_NUMBERS.from,
      body: 'photo',
    });
    expect(event?.detail?.media).toEqual([{ url: 'https://x.test/1.jpg', contentType: 'image/jpeg' }]);
  });

  it('the emulator records requests the specification does not allow', async () => {
    const post = async (headers: Record<string, string>, body: string) => {
      const before = emulator.violations.length;
      const res = await undiciRequest(`${emulator.url}/2010-04-01/Accounts/${TWILIO_TEST_ACCOUNT_SID}/Messages.json`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
      });
      const json = (await res.body.json()) as { code: number };
      return { status: res.statusCode, code: json.code, violations: emulator.violations.length - before };
    };
    const auth = { authorization: basic(TWILIO_TEST_ACCOUNT_SID, TWILIO_TEST_AUTH_TOKEN) };
    const refused = [
      [{}, 'To=%2B14155550123&From=%2B15005550006&Body=x', 401, 20003],
      [auth, 'From=%2B15005550006&Body=x', 400, 20422],
      [auth, 'To=%2B14155550123&Body=x', 400, 21603],
      [auth, 'To=%2B14155550123&From=%2B15005550006', 400, 21602],
      [auth, 'To=%2B14155550123&From=%2B15005550006&Body=x&Colour=red', 400, 20001],
      [auth, 'To=whatsapp%3A%2B14155550123&From=%2B15005550006&Body=x', 400, 21910],
      [auth, 'To=%2B14155550123&MessagingServiceSid=MG1&Body=x', 400, 20422],
      [auth, `To=%2B14155550123&From=%2B15005550006&Body=${'x'.repeat(1601)}`, 400, 21617],
      [auth, 'To=%2B14155550123&From=%2B15005550006&Body=x&StatusCallback=mailto%3Aa%40b.c', 400, 21609],
    ] as const;
    for (const [headers, body, status, code] of refused) {
      const answer = await post(headers, body);
      expect(answer, body).toMatchObject({ status, code });
      expect(answer.violations, body).toBeGreaterThan(0);
    }
    emulator.violations.length = 0;
    // A valid request with wrong credentials is refused, but is not a violation.
    expect(await post({ authorization: basic(TWILIO_TEST_ACCOUNT_SID, 'nope') }, 'To=%2B1&From=%2B1&Body=x')).toEqual({
      status: 401,
      code: 20003,
      violations: 0,
    });
  });

  it('the emulator checks TwiML', () => {
    expect(checkTwiml('<Response><Say voice="alice" loop="2">Hello &amp; bye</Say></Response>')).toBeNull();
    expect(checkTwiml('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say><Pause/></Response>')).toBeNull();
    expect(checkTwiml('<Response><Say>Tom & Jerry</Say></Response>')).toMatch(/&/);
    expect(checkTwiml('<Response><Say>a < b</Say></Response>')).not.toBeNull();
    expect(checkTwiml('<Response><Say rate="fast">Hi</Say></Response>')).toMatch(/attribute/);
    expect(checkTwiml('<Response><Say loop="x">Hi</Say></Response>')).toMatch(/loop/);
    expect(checkTwiml('<Say>Hi</Say>')).toMatch(/root/);
    expect(checkTwiml('<Response><Say>Hi</Response>')).not.toBeNull();
    expect(checkTwiml('<Response><Speak>Hi</Speak></Response>')).toMatch(/verb/);
  });
});
