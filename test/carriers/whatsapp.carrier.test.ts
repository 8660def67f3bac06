/**
 * The WhatsApp Cloud API adapter: the shared carrier contract against the emulator, then what is specific to
 * Meta: the error-code table, webhook signatures, every documented webhook example, the GET verification
 * handshake, sender config, and the exact request sent for each kind of message (validated against Meta's spec).
 */
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { request as httpRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createWhatsAppCarrier,
  parseWhatsAppConfig,
  verifyWhatsAppSignature,
  WHATSAPP_DEFAULT_API_VERSION,
  WHATSAPP_DEFAULT_BASE_URL,
  whatsAppProvider,
  whatsAppSignature,
} from '../../src/adapters/carriers/whatsapp/whatsapp-carrier.ts';
import {
  classifyWhatsAppError,
  WHATSAPP_ERROR_CODES,
  whatsAppErrorInfo,
} from '../../src/adapters/carriers/whatsapp/whatsapp-errors.ts';
import { mediaKind } from '../../src/adapters/carriers/whatsapp/whatsapp-payloads.ts';
import { AuthenticationError, ForbiddenError, ValidationError } from '../../src/domain/errors.ts';
import type { Carrier, CarrierEvent, SenderRecord, SendRequest, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract } from './carrier-contract.ts';
import {
  metaJson,
  signWhatsAppWebhook,
  specValidator,
  startWhatsAppEmulator,
  WHATSAPP_EMULATOR_IDS,
  WHATSAPP_EMULATOR_NUMBERS,
  type WhatsAppEmulator,
} from './emulators/whatsapp-emulator.ts';
import { CARRIER_FIXTURES, readFixture, readJsonFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const N = WHATSAPP_EMULATOR_NUMBERS;

carrierContract({
  provider: 'whatsapp',
  channel: 'whatsapp',
  from: N.business,
  destinations: {
    delivered: N.delivered,
    rejected: N.rejected,
    unavailable: N.unavailable,
    throttled: N.throttled,
    undeliverable: N.undeliverable,
  },
  startEmulator: (webhookUrl) => startWhatsAppEmulator({ webhookUrl }),
  createCarrier: (sender, ctx) => createWhatsAppCarrier(sender, ctx),
  unsign: (r) => ({ ...r, headers: withoutSignature(r.headers) }),
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers

type Json = Record<string, any>;

const APP_SECRET = 'fixture-app-secret';

function sender(config: Record<string, unknown>, id = 'snd_wa'): SenderRecord {
  return {
    id,
    orgId: 'org_wa',
    provider: 'whatsapp',
    config,
    channels: ['whatsapp'],
    from: N.business,
    priority: 0,
  };
}

function baseConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    phoneNumberId: WHATSAPP_EMULATOR_IDS.phoneNumberId,
    accessToken: 'EAAGtoken',
    appSecret: APP_SECRET,
    verifyToken: 'meatyhamhock',
    ...over,
  };
}

function fixtureCarrier(over: Record<string, unknown> = {}): Carrier {
  return createWhatsAppCarrier(sender(baseConfig(over)), {
    webhookUrl: 'https://omni.example.com/webhooks/whatsapp/snd_wa',
  });
}

function signed(body: string | Buffer, secret = APP_SECRET): WebhookRequest {
  const raw = Buffer.from(body);
  return {
    method: 'POST',
    url: '/webhooks/whatsapp/snd_wa',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signWhatsAppWebhook(secret, raw) },
    rawBody: raw,
  };
}

function withoutSignature(headers: WebhookRequest['headers']): WebhookRequest['headers'] {
  const out: WebhookRequest['headers'] = {};
  for (const [k, v] of Object.entries(headers)) if (!k.toLowerCase().startsWith('x-hub-signature')) out[k] = v;
  return out;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

let seq = 0;
function sendRequest(to: string, over: Partial<SendRequest> = {}): SendRequest {
  seq++;
  return {
    messageId: `msg_wa_${seq}`,
    channel: 'whatsapp',
    to,
    from: N.business,
    body: `Hello ${seq}`,
    subject: null,
    attempt: 1,
    ...over,
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('WhatsApp error codes', () => {
  const table = readJsonFixture<{ codes: { code: number | string; handling: string; section: string }[] }>(
    'whatsapp/error-codes.json',
  );

  /** The fixture's handling column read as retryable or not; 131048 is spam throttling, retried after a pause. */
  function expectedRetryable(code: number | string, handling: string): boolean {
    if (code === 131048) return true;
    if (handling.startsWith('retry-later') || handling === 'check-status-then-retry') return true;
    return false;
  }

  it('classifies every documented code the way its handling says', () => {
    expect(table.codes.length).toBeGreaterThanOrEqual(60);
    for (const { code, handling } of table.codes) {
      if (typeof code === 'string') {
        const [lo, hi] = code.split('-').map(Number) as [number, number];
        for (let c = lo; c <= hi; c++) expect(whatsAppErrorInfo(c), `code ${c}`).toEqual(whatsAppErrorInfo(lo));
        expect(whatsAppErrorInfo(lo)?.retryable).toBe(expectedRetryable(code, handling));
        continue;
      }
      const info = whatsAppErrorInfo(code);
      expect(info, `code ${code} is classified`).toBeDefined();
      expect(info?.retryable, `code ${code} (${handling})`).toBe(expectedRetryable(code, handling));
    }
  });

  it('classifies no code the table does not document', () => {
    const documented = new Set(table.codes.map((c) => c.code).filter((c): c is number => typeof c === 'number'));
    for (const code of Object.keys(WHATSAPP_ERROR_CODES).map(Number))
      expect(documented.has(code), String(code)).toBe(true);
  });

  it('reads the codes by meaning', () => {
    expect(whatsAppErrorInfo(130429)).toEqual({ retryable: true, kind: 'throttling' });
    expect(whatsAppErrorInfo(131056)).toEqual({ retryable: true, kind: 'throttling' });
    expect(whatsAppErrorInfo(80007)).toEqual({ retryable: true, kind: 'throttling' });
    expect(whatsAppErrorInfo(131048)?.retryable).toBe(true);
    expect(whatsAppErrorInfo(190)).toEqual({ retryable: false, kind: 'credentials' });
    expect(whatsAppErrorInfo(250)).toEqual({ retryable: false, kind: 'credentials' });
    expect(whatsAppErrorInfo(131026)).toEqual({ retryable: false, kind: 'recipient' });
    expect(whatsAppErrorInfo(131049)?.retryable).toBe(false);
    expect(whatsAppErrorInfo(131047)).toEqual({ retryable: false, kind: 'request' });
    expect(whatsAppErrorInfo(132001)).toEqual({ retryable: false, kind: 'template' });
    expect(whatsAppErrorInfo(131016)).toEqual({ retryable: true, kind: 'service' });
    expect(whatsAppErrorInfo(999_999)).toBeUndefined();
  });

  it('falls back on the HTTP status for undocumented codes; 401 is always a credentials failure', () => {
    expect(classifyWhatsAppError(undefined, 503)).toEqual({ retryable: true, kind: 'service' });
    expect(classifyWhatsAppError(999_999, 502).retryable).toBe(true);
    expect(classifyWhatsAppError(999_999, 400).retryable).toBe(false);
    expect(classifyWhatsAppError(undefined, 429)).toEqual({ retryable: true, kind: 'throttling' });
    expect(classifyWhatsAppError(undefined, 403)).toEqual({ retryable: false, kind: 'credentials' });
    expect(classifyWhatsAppError(130429, 401)).toEqual({ retryable: false, kind: 'credentials' });
    // Meta: key on the code, not the HTTP status.
    expect(classifyWhatsAppError(131026, 500).retryable).toBe(false);
    expect(classifyWhatsAppError(130429, 400).retryable).toBe(true);
  });
});

describe('WhatsApp webhook signature', () => {
  // Meta documents the algorithm (Graph API "Webhooks: Getting started", Validating Payloads:
  // https://developers.facebook.com/docs/graph-api/webhooks/getting-started) but publishes no worked example with
  // a secret, a payload and its signature. The known answer below is RFC 4231 test case 2 for HMAC-SHA256
  // (https://www.rfc-editor.org/rfc/rfc4231#section-4.3) in Meta's `sha256=<hex>` form; the rest are round trips
  // and tampering.
  const RFC4231_KEY = 'Jefe';
  const RFC4231_DATA = 'what do ya want for nothing?';
  const RFC4231_MAC = 'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843';

  it('matches the RFC 4231 known answer, in the emulator and the adapter', () => {
    expect(signWhatsAppWebhook(RFC4231_KEY, RFC4231_DATA)).toBe(RFC4231_MAC);
    expect(whatsAppSignature(RFC4231_KEY, RFC4231_DATA)).toBe(RFC4231_MAC);
    expect(verifyWhatsAppSignature(RFC4231_KEY, Buffer.from(RFC4231_DATA), RFC4231_MAC)).toBe(true);
    expect(
      verifyWhatsAppSignature(
        RFC4231_KEY,
        Buffer.from(RFC4231_DATA),
        RFC4231_MAC.toUpperCase().replace('SHA256', 'sha256'),
      ),
    ).toBe(true);
  });

  it('refuses other formats and other keys', () => {
    const body = Buffer.from(RFC4231_DATA);
    expect(verifyWhatsAppSignature(RFC4231_KEY, body, RFC4231_MAC.slice(7))).toBe(false);
    expect(verifyWhatsAppSignature(RFC4231_KEY, body, `sha1=${RFC4231_MAC.slice(7)}`)).toBe(false);
    expect(verifyWhatsAppSignature(RFC4231_KEY, body, RFC4231_MAC.slice(0, -2))).toBe(false);
    expect(verifyWhatsAppSignature('jefe', body, RFC4231_MAC)).toBe(false);
    expect(verifyWhatsAppSignature(RFC4231_KEY, Buffer.from(`${RFC4231_DATA} `), RFC4231_MAC)).toBe(false);
  });

  it('refuses unsigned, tampered and foreign-signed webhooks with AuthenticationError', () => {
    const carrier = fixtureCarrier();
    const body = readFixture('whatsapp/webhook.inbound-text.json');
    const good = signed(body);
    expect(carrier.parseWebhook(good)).toHaveLength(1);
    const missing = thrown(() => carrier.parseWebhook({ ...good, headers: withoutSignature(good.headers) }));
    expect(missing).toBeInstanceOf(AuthenticationError);
    expect((missing as AuthenticationError).code).toBe('webhook_signature_missing');
    const tampered = thrown(() =>
      carrier.parseWebhook({ ...good, rawBody: Buffer.from(body.replace('another color', 'another colour')) }),
    );
    expect((tampered as AuthenticationError).code).toBe('webhook_signature_invalid');
    const foreign = thrown(() => carrier.parseWebhook(signed(body, 'some-other-app-secret')));
    expect(foreign).toBeInstanceOf(AuthenticationError);
    expect((foreign as AuthenticationError).code).toBe('webhook_signature_invalid');
  });

  it('verifies the \\u-escaped bytes Meta signs and reads the characters back', () => {
    const carrier = fixtureCarrier();
    const raw = metaJson(readJsonFixture('whatsapp/webhook.inbound-reaction.json'));
    expect(raw).toContain('\\ud83d\\udc4d');
    expect(raw).not.toContain('👍');
    const [event] = carrier.parseWebhook(signed(raw));
    expect(event).toMatchObject({ kind: 'inbound', body: '👍' });
  });
});

describe('WhatsApp documented webhooks', () => {
  const files = readdirSync(join(CARRIER_FIXTURES, 'whatsapp')).filter((f) => /^webhook\..*\.json$/.test(f));

  function parseFixture(file: string): CarrierEvent[] {
    const body = readFixture(`whatsapp/${file}`);
    const json = JSON.parse(body) as Json;
    const phoneNumberId = json.entry[0].changes[0].value.metadata.phone_number_id;
    return fixtureCarrier({ phoneNumberId }).parseWebhook(signed(body));
  }

  const inboundBase = { kind: 'inbound', channel: 'whatsapp', from: '+16505551234', to: '+15550783881' };
  const expectations: Record<string, (events: CarrierEvent[]) => void> = {
    'webhook.inbound-text.json': ([e, ...rest]) => {
      expect(rest).toEqual([]);
      expect(e).toMatchObject({
        ...inboundBase,
        body: 'Does it come in another color?',
        providerMessageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
        eventKey: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
        occurredAt: 1749416383000,
        detail: { type: 'text', contactName: 'Sheena Nelson' },
      });
    },
    'webhook.inbound-text-context.json': ([e]) => {
      expect(e).toMatchObject({ ...inboundBase, body: 'Is this still available?' });
      expect(e?.detail?.context).toMatchObject({ referred_product: { product_retailer_id: 'di9ozbzfi4' } });
    },
    'webhook.inbound-button-template-quick-reply.json': ([e]) => {
      expect(e).toMatchObject({
        ...inboundBase,
        body: 'Unsubscribe',
        detail: { type: 'button', payload: 'Unsubscribe' },
      });
      expect(e?.detail?.context).toMatchObject({ id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA' });
    },
    'webhook.inbound-interactive-button-reply.json': ([e]) => {
      expect(e).toMatchObject({
        ...inboundBase,
        body: 'Cancel',
        detail: { type: 'interactive', interactiveType: 'button_reply', id: 'cancel-button' },
      });
    },
    'webhook.inbound-interactive-list-reply.json': ([e]) => {
      expect(e).toMatchObject({
        ...inboundBase,
        body: 'Priority Mail Express',
        detail: {
          type: 'interactive',
          interactiveType: 'list_reply',
          id: 'priority_express',
          description: 'Next Day to 2 Days',
        },
      });
    },
    'webhook.inbound-image.json': ([e]) => {
      expect(e).toMatchObject({
        ...inboundBase,
        body: 'Taj Mahal',
        detail: { type: 'image', mediaId: '1003383421387256', media: { mime_type: 'image/jpeg' } },
      });
    },
    'webhook.inbound-location.json': ([e]) => {
      expect(e).toMatchObject({ ...inboundBase, body: '' });
      expect(e?.detail?.location).toMatchObject({ latitude: 37.44221496582, name: 'Philz Coffee' });
    },
    'webhook.inbound-reaction.json': ([e]) => {
      expect(e).toMatchObject({ ...inboundBase, body: '👍', detail: { type: 'reaction' } });
      expect(e?.detail?.reaction).toMatchObject({
        message_id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA',
      });
    },
    'webhook.inbound-unsupported.json': ([e]) => {
      expect(e).toMatchObject({ ...inboundBase, body: '', detail: { type: 'unsupported' } });
      expect(e?.detail?.errors).toMatchObject([{ code: 131051 }]);
    },
    // A user changed number: a system notice, not a message; dropped.
    'webhook.inbound-system.json': (events) => expect(events).toEqual([]),
    'webhook.status-sent.json': ([e, ...rest]) => {
      expect(rest).toEqual([]);
      expect(e).toEqual({
        kind: 'status',
        eventKey: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:sent:1750030073',
        providerMessageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=',
        reference: null,
        status: 'sent',
        occurredAt: 1750030073000,
        detail: {
          recipientId: '16505551234',
          conversation: {
            id: '72b14d6bd5407799e66f64d1b338e567',
            expiration_timestamp: '1750116480',
            origin: { type: 'marketing' },
          },
          pricing: { billable: true, pricing_model: 'PMP', type: 'regular', category: 'marketing' },
        },
      });
    },
    'webhook.status-sent-v24.json': ([e]) => {
      expect(e).toMatchObject({ kind: 'status', status: 'sent', occurredAt: 1750030073000 });
      expect(e?.eventKey).toBe('wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:sent:1750030073');
    },
    'webhook.status-sent-legacy-postman.json': ([e]) => {
      expect(e).toMatchObject({
        kind: 'status',
        status: 'sent',
        providerMessageId: 'wamid.gBGGFlCGg0cvAglAxydbAoy-gwNo',
        occurredAt: 1603086313000,
      });
    },
    'webhook.status-delivered-bsuid.json': ([e]) => {
      expect(e).toMatchObject({
        kind: 'status',
        status: 'delivered',
        eventKey: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:delivered:1750030073',
      });
    },
    'webhook.status-failed.json': ([e]) => {
      expect(e).toMatchObject({
        kind: 'status',
        status: 'failed',
        providerMessageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA',
        error: { code: '131049', class: 'PermanentError' },
      });
      expect(e?.kind === 'status' && e.error?.message).toContain('healthy ecosystem engagement');
    },
  };

  it('has an expectation for every documented webhook example', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
    expect(files.filter((f) => !(f in expectations))).toEqual([]);
  });

  for (const [file, check] of Object.entries(expectations)) {
    it(`parses ${file}`, () => check(parseFixture(file)));
  }

  it('gives the same event key to the same callback delivered twice, and different keys to different ones', () => {
    const keys = files.flatMap((f) => parseFixture(f).map((e) => e.eventKey));
    expect(parseFixture('webhook.status-failed.json').map((e) => e.eventKey)).toEqual(
      parseFixture('webhook.status-failed.json').map((e) => e.eventKey),
    );
    // Meta's examples reuse ids: the v23 and v24 forms of one `sent` status are the same event, and the text,
    // image and reaction examples share one wamid. Every other key is distinct.
    const repeated = [...new Set(keys.filter((k, i) => keys.indexOf(k) !== i))].sort();
    expect(repeated).toEqual([
      'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:sent:1750030073',
    ]);
  });

  it('ignores changes for other phone numbers, other business accounts and other fields', () => {
    const body = readJsonFixture<Json>('whatsapp/webhook.inbound-text.json');
    expect(fixtureCarrier({ phoneNumberId: '999' }).parseWebhook(signed(JSON.stringify(body)))).toEqual([]);
    expect(fixtureCarrier({ businessAccountId: '123' }).parseWebhook(signed(JSON.stringify(body)))).toEqual([]);
    expect(
      fixtureCarrier({ businessAccountId: '419561257915477' }).parseWebhook(signed(JSON.stringify(body))),
    ).toHaveLength(1);
    const template = structuredClone(body);
    template.entry[0].changes[0].field = 'message_template_status_update';
    expect(fixtureCarrier().parseWebhook(signed(JSON.stringify(template)))).toEqual([]);
    const page = { ...body, object: 'page' };
    expect(fixtureCarrier().parseWebhook(signed(JSON.stringify(page)))).toEqual([]);
    const deleted = readJsonFixture<Json>('whatsapp/webhook.status-sent-v24.json');
    deleted.entry[0].changes[0].value.statuses[0].status = 'deleted';
    expect(fixtureCarrier().parseWebhook(signed(JSON.stringify(deleted)))).toEqual([]);
  });

  it('refuses malformed payloads with ValidationError', () => {
    const carrier = fixtureCarrier();
    const bad = [
      '{not json',
      '[]',
      JSON.stringify({ object: 'whatsapp_business_account' }),
      JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '1' }] }),
      JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [{ id: '1', changes: [{ field: 'messages', value: { statuses: [] } }] }],
      }),
    ];
    const noTimestamp = readJsonFixture<Json>('whatsapp/webhook.status-sent-v24.json');
    delete noTimestamp.entry[0].changes[0].value.statuses[0].timestamp;
    bad.push(JSON.stringify(noTimestamp));
    const noText = readJsonFixture<Json>('whatsapp/webhook.inbound-text.json');
    delete noText.entry[0].changes[0].value.messages[0].text;
    bad.push(JSON.stringify(noText));
    for (const body of bad) {
      const err = thrown(() => carrier.parseWebhook(signed(body)));
      expect(err, body).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('invalid_webhook_payload');
    }
  });
});

describe('WhatsApp verification handshake', () => {
  // "GET https://www.your-clever-domain-name.com/webhooks?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"
  const documented = new URL(
    readFixture('whatsapp/webhook-verification-request.txt')
      .trim()
      .replace(/^GET\s+/, ''),
  );
  const get = (url: string): WebhookRequest => ({ method: 'GET', url, headers: {}, rawBody: Buffer.alloc(0) });

  it('answers the documented request with its challenge as text/plain', () => {
    const carrier = fixtureCarrier({ verifyToken: 'meatyhamhock' });
    expect(carrier.verifyHandshake?.(get(documented.pathname + documented.search))).toEqual({
      status: 200,
      contentType: 'text/plain',
      body: '1158201444',
    });
  });

  it('refuses a wrong verify token or mode with ForbiddenError, and a missing challenge with ValidationError', () => {
    const carrier = fixtureCarrier({ verifyToken: 'another-token' });
    expect(thrown(() => carrier.verifyHandshake?.(get(documented.pathname + documented.search)))).toBeInstanceOf(
      ForbiddenError,
    );
    const mine = fixtureCarrier({ verifyToken: 'meatyhamhock' });
    const q = (s: string) => get(`/webhooks/whatsapp/snd_wa?${s}`);
    expect(
      thrown(() => mine.verifyHandshake?.(q('hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock'))),
    ).toBeInstanceOf(ForbiddenError);
    expect(thrown(() => mine.verifyHandshake?.(q('hub.mode=subscribe&hub.challenge=1')))).toBeInstanceOf(
      ForbiddenError,
    );
    expect(thrown(() => mine.verifyHandshake?.(q('hub.mode=subscribe&hub.verify_token=meatyhamhock')))).toBeInstanceOf(
      ValidationError,
    );
  });
});

describe('WhatsApp sender config', () => {
  it('reads a config and fills in the real Graph API defaults', () => {
    const config = parseWhatsAppConfig(baseConfig());
    expect(config.apiVersion).toBe(WHATSAPP_DEFAULT_API_VERSION);
    expect(config.baseUrl.href).toBe(`${WHATSAPP_DEFAULT_BASE_URL}/`);
    expect(WHATSAPP_DEFAULT_BASE_URL).toBe('https://graph.facebook.com');
    expect(WHATSAPP_DEFAULT_API_VERSION).toBe('v23.0');
  });

  it.each([
    ['phoneNumberId', { phoneNumberId: undefined }],
    ['phoneNumberId', { phoneNumberId: '12/../34' }],
    ['accessToken', { accessToken: '' }],
    ['accessToken', { accessToken: 'two words' }],
    ['appSecret', { appSecret: undefined }],
    ['verifyToken', { verifyToken: 42 }],
    ['businessAccountId', { businessAccountId: 102290129340398 }],
    ['apiVersion', { apiVersion: '23.0' }],
    ['baseUrl', { baseUrl: 'ftp://graph.facebook.com' }],
    ['rateLimitPerSecond', { rateLimitPerSecond: 1.5 }],
    ['costPerMessage', { costPerMessage: -1 }],
  ])('refuses a bad %s when the carrier is created', (field, over) => {
    const err = thrown(() => fixtureCarrier(over as Record<string, unknown>));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(`config.${field}`);
  });

  it('describes the config in a closed JSON Schema, secrets marked', () => {
    expect(whatsAppProvider).toMatchObject({ id: 'whatsapp', channels: ['whatsapp'] });
    expect([...whatsAppProvider.secretFields].sort()).toEqual(['accessToken', 'appSecret', 'verifyToken']);
    const schema = whatsAppProvider.configSchema as Json;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.rateLimitPerSecond.type).toBe('integer');
    expect(schema.properties.costPerMessage.type).toBe('number');
    for (const p of Object.values(schema.properties) as Json[]) expect(typeof p.description).toBe('string');
    const validate = new Ajv({ strict: false }).compile(schema);
    expect(validate(baseConfig({ baseUrl: 'http://127.0.0.1:1', apiVersion: 'v24.0', rateLimitPerSecond: 80 }))).toBe(
      true,
    );
    expect(validate(baseConfig({ surprise: true }))).toBe(false);
    expect(validate({ accessToken: 't', appSecret: 's', verifyToken: 'v' })).toBe(false);
  });

  it('picks the media type of a link by its extension', () => {
    expect(mediaKind('https://cdn.example.com/a/photo.JPG')).toBe('image');
    expect(mediaKind('https://cdn.example.com/clip.mp4?sig=1')).toBe('video');
    expect(mediaKind('https://cdn.example.com/invoice.pdf')).toBe('document');
    expect(mediaKind('https://cdn.example.com/render')).toBe('image');
  });
});

describe('WhatsApp on the wire (emulator)', () => {
  const receiver = new WebhookReceiver();
  let emulator: WhatsAppEmulator;
  let carrier: Carrier;
  const validator = specValidator();

  beforeAll(async () => {
    await receiver.start();
    emulator = await startWhatsAppEmulator({ webhookUrl: `${receiver.url}/webhooks/whatsapp/snd_wire` });
    carrier = createWhatsAppCarrier(sender(emulator.senderConfig, 'snd_wire'), {
      webhookUrl: `${receiver.url}/webhooks/whatsapp/snd_wire`,
    });
  });

  afterEach(() => {
    expect(emulator.violations, 'requests the specification does not allow').toEqual([]);
  });

  afterAll(async () => {
    await carrier?.close?.();
    await emulator?.close();
    await receiver.close();
  });

  /** Sends one request; returns the body the emulator received (it has been validated against the spec). */
  async function wire(req: SendRequest): Promise<Json> {
    const before = emulator.received.length;
    const [result] = await carrier.send([req]);
    expect(result).toMatchObject({ ok: true });
    if (result?.ok) expect(result.providerMessageId).toMatch(/^wamid\./);
    expect(emulator.received).toHaveLength(before + 1);
    const got = emulator.received[before];
    expect(got?.method).toBe('POST');
    expect(got?.path).toBe(`/v23.0/${WHATSAPP_EMULATOR_IDS.phoneNumberId}/messages`);
    expect(got?.headers.authorization).toBe(`Bearer ${emulator.accessToken}`);
    expect(got?.headers['content-type']).toBe('application/json');
    return got?.body as Json;
  }

  const fixture = (name: string) => readJsonFixture<Json>(`whatsapp/send-request.${name}.json`);
  const to = N.delivered;

  it('sends a text message as documented', async () => {
    const req = sendRequest(to, { body: 'text-message-content' });
    expect(await wire(req)).toEqual({ ...fixture('text'), to, biz_opaque_callback_data: req.messageId });
  });

  it('asks for a link preview when the text has a URL', async () => {
    const doc = fixture('text-preview-url');
    const req = sendRequest(to, { body: doc.text.body });
    // The documented example leaves out recipient_type and type, which the published schema requires.
    expect(await wire(req)).toEqual({
      ...doc,
      recipient_type: 'individual',
      type: 'text',
      to,
      biz_opaque_callback_data: req.messageId,
    });
  });

  it('replies to an earlier message through context.message_id', async () => {
    const doc = fixture('text-reply-context');
    const req = sendRequest(to, { body: doc.text.body, options: { whatsapp: { replyTo: doc.context.message_id } } });
    expect(await wire(req)).toEqual({ ...doc, to, biz_opaque_callback_data: req.messageId });
  });

  it('sends an image by link, the body as caption', async () => {
    const doc = fixture('image-url');
    const link = 'https://cdn.example.com/images/photo.jpg';
    const bare = sendRequest(to, { body: null, options: { mediaUrls: [link] } });
    expect(await wire(bare)).toEqual({ ...doc, to, image: { link }, biz_opaque_callback_data: bare.messageId });
    const captioned = sendRequest(to, { body: 'Our new shop', options: { mediaUrls: [link] } });
    expect((await wire(captioned)).image).toEqual({ link, caption: 'Our new shop' });
    const pdf = sendRequest(to, { body: null, options: { mediaUrls: ['https://cdn.example.com/invoice%2042.pdf'] } });
    const sent = await wire(pdf);
    expect(sent.type).toBe('document');
    expect(sent.document).toEqual({ link: 'https://cdn.example.com/invoice%2042.pdf', filename: 'invoice 42.pdf' });
  });

  for (const name of ['template-text', 'template-media-header', 'template-quick-reply-buttons']) {
    it(`sends a template with its components (${name})`, async () => {
      const doc = fixture(name);
      const req = sendRequest(to, {
        body: null,
        options: {
          whatsapp: {
            template: {
              name: doc.template.name,
              language: doc.template.language.code,
              components: doc.template.components,
            },
          },
        },
      });
      // `language.policy` ("deterministic", the only policy) is required by the published schema.
      expect(await wire(req)).toEqual({
        ...doc,
        to,
        template: { ...doc.template, language: { policy: 'deterministic', code: doc.template.language.code } },
        biz_opaque_callback_data: req.messageId,
      });
    });
  }

  for (const name of ['interactive-reply-buttons', 'interactive-list']) {
    it(`sends an interactive message (${name})`, async () => {
      const doc = fixture(name);
      const req = sendRequest(to, { body: null, options: { whatsapp: { interactive: doc.interactive } } });
      expect(await wire(req)).toEqual({ ...doc, to, biz_opaque_callback_data: req.messageId });
    });
  }

  it('gives reply buttons without a body the message text as body; a template wins over text and media', async () => {
    const { body: _drop, ...buttons } = fixture('interactive-reply-buttons').interactive as Json;
    const req = sendRequest(to, { body: 'Pick one', options: { whatsapp: { interactive: buttons } } });
    expect((await wire(req)).interactive.body).toEqual({ text: 'Pick one' });
    const both = sendRequest(to, {
      options: {
        mediaUrls: ['https://cdn.example.com/a.jpg'],
        whatsapp: { template: { name: 'hello_world', language: 'en_US' } },
      },
    });
    const sent = await wire(both);
    expect(sent.type).toBe('template');
    expect(sent.template).toEqual({ name: 'hello_world', language: { policy: 'deterministic', code: 'en_US' } });
  });

  it('reports the configured cost per message', async () => {
    const priced = createWhatsAppCarrier(sender({ ...emulator.senderConfig, costPerMessage: 0.0147 }), {
      webhookUrl: `${receiver.url}/webhooks/whatsapp/snd_wire`,
    });
    try {
      expect(await priced.send([sendRequest(to)])).toMatchObject([{ ok: true, cost: 0.0147 }]);
      expect(await carrier.send([sendRequest(to)])).toMatchObject([{ ok: true, cost: null }]);
    } finally {
      await priced.close?.();
    }
  });

  it('refuses what it cannot send without asking Meta', async () => {
    const before = emulator.received.length;
    const results = await carrier.send([
      sendRequest(to, { options: { mediaUrls: ['https://cdn.example.com/a.jpg', 'https://cdn.example.com/b.jpg'] } }),
      sendRequest(to, { body: null }),
      sendRequest(to, { body: null, options: { mediaUrls: ['ftp://cdn.example.com/a.jpg'] } }),
      sendRequest(to, { options: { whatsapp: { interactive: { type: 'button' } } } }),
    ]);
    expect(results.map((r) => !r.ok && !r.retryable && r.error.code)).toEqual([
      'whatsapp_unsupported_content',
      'whatsapp_empty_body',
      'whatsapp_unsupported_content',
      'whatsapp_unsupported_content',
    ]);
    expect(emulator.received.length).toBe(before);
  });

  it('maps Graph errors by code: credentials, wrong number, throttling with and without Retry-After', async () => {
    const wrongToken = createWhatsAppCarrier(sender({ ...emulator.senderConfig, accessToken: 'EAAGwrong' }), {
      webhookUrl: 'http://127.0.0.1:9/hook',
    });
    const wrongNumber = createWhatsAppCarrier(sender({ ...emulator.senderConfig, phoneNumberId: '1234567890' }), {
      webhookUrl: 'http://127.0.0.1:9/hook',
    });
    try {
      const [auth] = await wrongToken.send([sendRequest(to)]);
      expect(auth).toMatchObject({ ok: false, retryable: false, error: { code: '190', class: 'PermanentError' } });
      const [number] = await wrongNumber.send([sendRequest(to)]);
      expect(number).toMatchObject({ ok: false, retryable: false, error: { code: '100' } });
    } finally {
      await wrongToken.close?.();
      await wrongNumber.close?.();
    }
    const [throttled, pair, down, rejected] = await carrier.send([
      sendRequest(N.throttled),
      sendRequest(N.pairRateLimited),
      sendRequest(N.unavailable),
      sendRequest(N.rejected),
    ]);
    expect(throttled).toEqual({
      ok: false,
      retryable: true,
      retryAfterMs: 2000,
      error: { code: '130429', class: 'ResourceError', message: expect.stringContaining('Rate limit hit') },
    });
    expect(pair).toMatchObject({ ok: false, retryable: true, error: { code: '131056', class: 'ResourceError' } });
    expect(pair && !pair.ok && pair.retryAfterMs).toBeUndefined();
    expect(down).toMatchObject({ ok: false, retryable: true, error: { code: '131016', class: 'ResourceError' } });
    expect(rejected).toMatchObject({ ok: false, retryable: false, error: { code: '131009', class: 'PermanentError' } });
  });

  it('reports sent, delivered and read with our message id read back from biz_opaque_callback_data', async () => {
    receiver.clear();
    const req = sendRequest(to);
    const [result] = await carrier.send([req]);
    if (!result?.ok) throw new Error('send failed');
    const mine = () =>
      receiver.requests
        .flatMap((r) => carrier.parseWebhook(r))
        .filter((e) => e.kind === 'status' && e.providerMessageId === result.providerMessageId);
    await receiver.waitFor(() => mine().some((e) => e.kind === 'status' && e.status === 'read'));
    const events = mine();
    expect(events.map((e) => e.kind === 'status' && e.status)).toEqual(['sent', 'delivered', 'read']);
    for (const e of events) expect(e.kind === 'status' && e.reference).toBe(req.messageId);
    expect(new Set(events.map((e) => e.eventKey)).size).toBe(3);
    expect(events[0]?.kind === 'status' && events[0].detail?.pricing).toMatchObject({ category: 'marketing' });
    // What the emulator posted is what Meta's specification describes for status webhooks.
    for (const r of receiver.requests) {
      expect(r.headers['x-hub-signature-256']).toMatch(/^sha256=[0-9a-f]{64}$/);
      const problems = validator.validate({
        method: 'POST',
        path: '/whatsapp/webhooks',
        contentType: 'application/json',
        body: JSON.parse(r.rawBody.toString('utf8')),
      });
      expect(problems).toEqual([]);
    }
  });

  it('reports an undeliverable number as failed with error 131026', async () => {
    receiver.clear();
    const req = sendRequest(N.undeliverable);
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    const failed = () => receiver.requests.flatMap((r) => carrier.parseWebhook(r)).find((e) => e.kind === 'status');
    await receiver.waitFor(() => failed() !== undefined);
    expect(failed()).toMatchObject({
      kind: 'status',
      status: 'failed',
      reference: req.messageId,
      error: { code: '131026', class: 'PermanentError', message: expect.stringContaining('undeliverable') },
    });
  });

  it('delivers an inbound text as an inbound event', async () => {
    receiver.clear();
    await emulator.sendInbound({ from: N.delivered, to: N.business, body: 'Ça va? 👋' });
    const [event] = receiver.requests.flatMap((r) => carrier.parseWebhook(r));
    expect(event).toMatchObject({
      kind: 'inbound',
      channel: 'whatsapp',
      from: N.delivered,
      to: N.business,
      body: 'Ça va? 👋',
    });
    expect(event?.eventKey).toBe(event?.providerMessageId);
  });
});

describe('WhatsApp emulator strictness', () => {
  let emulator: WhatsAppEmulator;
  beforeAll(async () => {
    emulator = await startWhatsAppEmulator({ webhookUrl: 'http://127.0.0.1:9/hook' });
  });
  afterAll(async () => emulator?.close());

  async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
    const res = await httpRequest(
      `${emulator.senderConfig.baseUrl}/v23.0/${WHATSAPP_EMULATOR_IDS.phoneNumberId}/messages`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${emulator.accessToken}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      },
    );
    return { status: res.statusCode, json: (await res.body.json()) as Json };
  }

  it('records and refuses requests its specification does not allow', async () => {
    const ok = {
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '14155550123',
      type: 'text',
      text: { body: 'hi' },
    };
    expect((await post(ok)).status).toBe(200);
    expect(emulator.violations).toEqual([]);

    const cases: [unknown, Record<string, string>?][] = [
      [{ ...ok, to: undefined }],
      [{ ...ok, messaging_product: 'sms' }],
      [{ ...ok, text: { body: 'hi', bold: true } }],
      [{ ...ok, biz_opaque_callback_data: 'x'.repeat(513) }],
      [
        {
          ...ok,
          type: 'template',
          text: undefined,
          template: {
            name: 't',
            language: { policy: 'deterministic', code: 'en' },
            components: [
              { type: 'button', sub_type: 'quick_reply', index: '10', parameters: [{ type: 'payload', payload: 'p' }] },
            ],
          },
        },
      ],
      [ok, { authorization: 'Token abc' }],
      [ok, { 'content-type': 'text/plain' }],
    ];
    for (const [body, headers] of cases) {
      const before = emulator.violations.length;
      const res = await post(body, headers);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.code).toBe(100);
      expect(emulator.violations.length, JSON.stringify(body)).toBeGreaterThan(before);
    }
    expect(emulator.acceptedCount()).toBe(1);
  });

  it('answers a wrong access token with error 190 without calling it a violation', async () => {
    const before = emulator.violations.length;
    const res = await post(
      {
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        to: '14155550123',
        type: 'text',
        text: { body: 'hi' },
      },
      { authorization: 'Bearer EAAGnotthetoken' },
    );
    expect(res.status).toBe(401);
    expect(res.json.error).toMatchObject({ code: 190, type: 'OAuthException' });
    expect(emulator.violations.length).toBe(before);
  });

  it('answers a throttled number with the documented 130429 body', async () => {
    const documented = readJsonFixture<Json>('whatsapp/error-response.130429.json');
    const res = await post({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: N.throttled,
      type: 'text',
      text: { body: 'hi' },
    });
    expect(res.status).toBe(429);
    expect({ ...res.json.error, fbtrace_id: documented.error.fbtrace_id }).toEqual(documented.error);
  });
});

describe('WhatsApp adapter against malformed answers', () => {
  let server: Server;
  let baseUrl = '';
  let answer: { status: number; body: string } = { status: 200, body: '{}' };
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(answer.status, { 'content-type': 'text/html' }).end(answer.body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it.each([
    [
      { status: 200, body: '{}' },
      { retryable: true, error: { code: 'carrier_invalid_response' } },
    ],
    [
      { status: 502, body: '<html>Bad gateway</html>' },
      { retryable: true, error: { code: 'carrier_unavailable' } },
    ],
    [
      { status: 429, body: '' },
      { retryable: true, error: { code: 'carrier_rate_limited' } },
    ],
    [
      { status: 403, body: '' },
      { retryable: false, error: { code: 'carrier_auth_failed' } },
    ],
    [
      { status: 404, body: 'not found' },
      { retryable: false, error: { code: 'carrier_request_rejected' } },
    ],
    [
      {
        status: 401,
        body: JSON.stringify({
          error: { message: 'Error validating access token', type: 'OAuthException', code: 190 },
        }),
      },
      { retryable: false, error: { code: '190', class: 'PermanentError' } },
    ],
  ])('maps %j', async (given, expected) => {
    answer = given;
    const carrier = createWhatsAppCarrier(sender(baseConfig({ baseUrl })), { webhookUrl: 'http://127.0.0.1:9/hook' });
    try {
      expect(await carrier.send([sendRequest(N.delivered)])).toMatchObject([{ ok: false, ...expected }]);
    } finally {
      await carrier.close?.();
    }
  });
});
