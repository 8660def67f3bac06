/**
 * Bandwidth Messaging v2: the shared carrier contract (SMS with the API user's Basic credentials, MMS with
 * OAuth2 client credentials) against the emulator, then Bandwidth specifics: the errorCode table, the exact
 * create-message requests, OAuth2 tokens, callback authentication and parsing of every documented callback.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  BANDWIDTH_MESSAGING_URL,
  BANDWIDTH_TOKEN_URL,
  bandwidthBasicAuthorization,
  bandwidthProvider,
  createBandwidthCarrier,
  parseBandwidthConfig,
} from '../../src/adapters/carriers/bandwidth/bandwidth-carrier.ts';
import {
  BANDWIDTH_ERROR_CODES,
  classifyBandwidthError,
} from '../../src/adapters/carriers/bandwidth/bandwidth-errors.ts';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type { Carrier, CarrierEvent, SenderRecord, SendRequest, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  BANDWIDTH_NUMBERS,
  BandwidthEmulator,
  type BandwidthEmulatorOptions,
  bandwidthCallbackAuthorization,
} from './emulators/bandwidth-emulator.ts';
import { CARRIER_FIXTURES, OpenApiValidator, readFixture, readJsonFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const OUR_NUMBER = '+19195550100';
const HANDSET = '+14155550123';

function withoutAuthorization(r: WebhookRequest): WebhookRequest {
  const headers = { ...r.headers };
  for (const k of Object.keys(headers)) if (k.toLowerCase() === 'authorization') delete headers[k];
  return { ...r, headers };
}

function withWrongPassword(r: WebhookRequest): WebhookRequest {
  const stripped = withoutAuthorization(r);
  const authorization = bandwidthCallbackAuthorization('bandwidth-callbacks', 'not-the-password');
  return { ...stripped, headers: { ...stripped.headers, authorization } };
}

carrierContract({
  provider: 'bandwidth',
  channel: 'sms',
  from: OUR_NUMBER,
  destinations: {
    delivered: HANDSET,
    rejected: BANDWIDTH_NUMBERS.rejected,
    unavailable: BANDWIDTH_NUMBERS.unavailable,
    throttled: BANDWIDTH_NUMBERS.throttledRetryAfter,
    undeliverable: BANDWIDTH_NUMBERS.undeliverable,
  },
  startEmulator: (webhookUrl) => BandwidthEmulator.start({ webhookUrl }),
  createCarrier: (sender, ctx) => createBandwidthCarrier(sender, ctx),
  // Basic credentials do not cover the body: a forged callback is one with the wrong credentials.
  tamper: withWrongPassword,
  unsign: withoutAuthorization,
});

carrierContract({
  provider: 'bandwidth',
  channel: 'mms',
  from: OUR_NUMBER,
  options: { mediaUrls: ['https://dev.bandwidth.com/images/bandwidth-logo.png'] },
  destinations: {
    delivered: HANDSET,
    rejected: BANDWIDTH_NUMBERS.rejected,
    unavailable: BANDWIDTH_NUMBERS.unavailable,
    throttled: BANDWIDTH_NUMBERS.throttled,
    undeliverable: BANDWIDTH_NUMBERS.receiptExpired,
  },
  startEmulator: (webhookUrl) => BandwidthEmulator.start({ webhookUrl, auth: 'oauth2' }),
  createCarrier: (sender, ctx) => createBandwidthCarrier(sender, ctx),
  tamper: withWrongPassword,
  unsign: withoutAuthorization,
});

// --- helpers ------------------------------------------------------------------------------------------------

const WEBHOOK_URL = 'https://omni.example.com/webhooks/bandwidth/snd_bw';
let seq = 0;

function senderWith(config: Record<string, unknown>, from: string | null = OUR_NUMBER): SenderRecord {
  return { id: 'snd_bw', orgId: 'org_bw', provider: 'bandwidth', config, channels: ['sms', 'mms'], from, priority: 0 };
}

function sms(over: Partial<SendRequest> = {}): SendRequest {
  seq++;
  return {
    messageId: `msg_bw_${seq}`,
    channel: 'sms',
    to: HANDSET,
    from: OUR_NUMBER,
    body: `Hello ${seq}`,
    subject: null,
    attempt: 1,
    ...over,
  };
}

function callbackRequest(body: string | Buffer, authorization?: string): WebhookRequest {
  return {
    method: 'POST',
    url: '/webhooks/bandwidth/snd_bw',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'BandwidthAPI/v2',
      ...(authorization === undefined ? {} : { authorization }),
    },
    rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body),
  };
}

const VALID_CONFIG = {
  accountId: '9900000',
  applicationId: '93de2206-9669-4e07-948d-329f4b722ee2',
  username: 'api-user',
  password: 'api-password',
  callbackUser: 'cb-user',
  callbackPassword: 'cb-password',
};

/** A carrier for parsing only (nothing is sent). */
function parser(config: Record<string, unknown> = VALID_CONFIG): Carrier {
  return createBandwidthCarrier(senderWith(config), { webhookUrl: WEBHOOK_URL });
}
const CB_AUTH = bandwidthCallbackAuthorization('cb-user', 'cb-password');

interface Running {
  receiver: WebhookReceiver;
  emulator: BandwidthEmulator;
}

async function startAll(opts: Partial<BandwidthEmulatorOptions> = {}): Promise<Running> {
  const receiver = await new WebhookReceiver().start();
  const emulator = await BandwidthEmulator.start({ webhookUrl: `${receiver.url}/webhooks/bandwidth/snd_bw`, ...opts });
  return { receiver, emulator };
}

async function stopAll(r: Running | undefined): Promise<void> {
  if (!r) return;
  await r.emulator.close();
  await r.receiver.close();
}

// --- error codes --------------------------------------------------------------------------------------------

interface FixtureCode {
  code: number;
  description: string;
  section: string;
}
const FIXTURE_CODES = readJsonFixture<{ codes: FixtureCode[] }>('bandwidth/error-codes.json').codes;

describe('Bandwidth errorCode table', () => {
  it('classifies every documented code, under its documented name', () => {
    expect(FIXTURE_CODES).toHaveLength(76);
    for (const c of FIXTURE_CODES) {
      expect(BANDWIDTH_ERROR_CODES[c.code], `code ${c.code}`).toBeDefined();
      expect(BANDWIDTH_ERROR_CODES[c.code]?.name).toBe(c.description);
    }
    expect(Object.keys(BANDWIDTH_ERROR_CODES).map(Number).sort()).toEqual(FIXTURE_CODES.map((c) => c.code).sort());
  });

  it('follows the documented meaning of each section', () => {
    const passing = new Set([4702, 4780, 4781, 4785]);
    for (const c of FIXTURE_CODES) {
      const got = classifyBandwidthError(c.code);
      const expected =
        c.section === 'Bandwidth Detected Client Errors'
          ? false
          : c.section === 'Carrier Reported Client Errors'
            ? passing.has(c.code)
            : true;
      expect(got.retryable, `${c.code} ${c.description} (${c.section})`).toBe(expected);
      expect(got.class).toBe(expected ? 'ResourceError' : 'PermanentError');
      const carrier = c.section.startsWith('Carrier');
      expect(got.status, `${c.code}`).toBe(carrier ? 'undelivered' : 'failed');
    }
  });

  it('spot-checks codes by meaning', () => {
    expect(classifyBandwidthError(4432)).toMatchObject({ retryable: false, status: 'failed' }); // forbidden country
    expect(classifyBandwidthError(4303)).toMatchObject({ retryable: false }); // malformed To
    expect(classifyBandwidthError(4470)).toMatchObject({ retryable: false }); // spam
    expect(classifyBandwidthError(4720)).toMatchObject({ retryable: false, status: 'undelivered' }); // invalid dest
    expect(classifyBandwidthError(4775)).toMatchObject({ retryable: false }); // user opted out
    expect(classifyBandwidthError(4702)).toMatchObject({ retryable: true }); // handset off / store & forward
    expect(classifyBandwidthError(4785)).toMatchObject({ retryable: true }); // volumetric, retry later
    expect(classifyBandwidthError(5211)).toMatchObject({ retryable: true, status: 'failed' }); // app busy
    expect(classifyBandwidthError(5600)).toMatchObject({ retryable: true, status: 'undelivered' }); // queue full
    expect(classifyBandwidthError(9902)).toMatchObject({ retryable: true, status: 'undelivered' }); // DLR timeout
  });

  it('falls back to the first digit of the scheme for undocumented codes', () => {
    expect(classifyBandwidthError(4499)).toMatchObject({ retryable: false, status: 'failed', name: undefined });
    expect(classifyBandwidthError(4799)).toMatchObject({ retryable: false, status: 'undelivered' });
    expect(classifyBandwidthError(5666)).toMatchObject({ retryable: true, status: 'undelivered' });
    expect(classifyBandwidthError(5150)).toMatchObject({ retryable: true, status: 'failed' });
    expect(classifyBandwidthError(9001)).toMatchObject({ retryable: true, status: 'undelivered' });
  });
});

// --- config -------------------------------------------------------------------------------------------------

describe('Bandwidth sender config', () => {
  const oauth = {
    accountId: '9900000',
    applicationId: 'app-1',
    clientId: 'client',
    clientSecret: 'secret',
    callbackUser: 'cb',
    callbackPassword: 'cbp',
  };
  const { username: _u, password: _p, ...noCredentials } = VALID_CONFIG;

  it.each([
    ['missing accountId', { ...VALID_CONFIG, accountId: undefined }, 'config.accountId'],
    ['accountId with a slash', { ...VALID_CONFIG, accountId: '99/00' }, 'config.accountId'],
    ['missing applicationId', { ...VALID_CONFIG, applicationId: '' }, 'config.applicationId'],
    ['no API credentials', noCredentials, 'config.username'],
    ['username without password', { ...noCredentials, username: 'u' }, 'config.password'],
    ['username with a colon', { ...VALID_CONFIG, username: 'a:b' }, 'config.username'],
    ['clientId without clientSecret', { ...noCredentials, clientId: 'c' }, 'config.clientSecret'],
    ['Basic and OAuth2 together', { ...VALID_CONFIG, clientId: 'c', clientSecret: 's' }, 'config.clientId'],
    ['baseUrl not http(s)', { ...VALID_CONFIG, baseUrl: 'ftp://messaging.example' }, 'config.baseUrl'],
    ['tokenUrl not a URL', { ...oauth, tokenUrl: 'token please' }, 'config.tokenUrl'],
    ['missing callbackUser', { ...VALID_CONFIG, callbackUser: undefined }, 'config.callbackUser'],
    ['missing callbackPassword', { ...VALID_CONFIG, callbackPassword: 7 }, 'config.callbackPassword'],
    ['half an inbound pair', { ...VALID_CONFIG, inboundCallbackUser: 'in' }, 'config.inboundCallbackPassword'],
    ['unknown priority', { ...VALID_CONFIG, priority: 'urgent' }, 'config.priority'],
    ['fractional rate limit', { ...VALID_CONFIG, rateLimitPerSecond: 1.5 }, 'config.rateLimitPerSecond'],
    ['negative cost', { ...VALID_CONFIG, costPerMessage: -0.01 }, 'config.costPerMessage'],
  ])('refuses %s when the carrier is created', (_name, config, field) => {
    let thrown: unknown;
    try {
      bandwidthProvider.create(senderWith(config as Record<string, unknown>), { webhookUrl: WEBHOOK_URL });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    expect((thrown as ValidationError).code).toBe('invalid_sender_config');
    expect((thrown as ValidationError).field).toBe(field);
  });

  it('defaults to the real Bandwidth URLs and reads both kinds of credentials', () => {
    const basic = parseBandwidthConfig(VALID_CONFIG);
    expect(basic.baseUrl.href).toBe(`${BANDWIDTH_MESSAGING_URL}`);
    expect(basic.auth).toEqual({ kind: 'basic', username: 'api-user', password: 'api-password' });
    const o = parseBandwidthConfig(oauth);
    expect(o.auth.kind).toBe('oauth2');
    expect(o.auth.kind === 'oauth2' && o.auth.tokenUrl.href).toBe(BANDWIDTH_TOKEN_URL);
    const both = parseBandwidthConfig({ ...VALID_CONFIG, inboundCallbackUser: 'in', inboundCallbackPassword: 'inp' });
    expect(both.callbackCredentials).toHaveLength(2);
  });

  it('describes the config with a closed JSON Schema that agrees with the factory', () => {
    expect(bandwidthProvider).toMatchObject({ id: 'bandwidth', displayName: 'Bandwidth', channels: ['sms', 'mms'] });
    const schema = bandwidthProvider.configSchema as {
      additionalProperties: boolean;
      properties: Record<string, unknown>;
    };
    expect(schema.additionalProperties).toBe(false);
    for (const f of ['baseUrl', 'tokenUrl', 'rateLimitPerSecond', 'costPerMessage', 'priority']) {
      expect(schema.properties[f], f).toBeDefined();
    }
    for (const f of bandwidthProvider.secretFields) expect(schema.properties[f], f).toBeDefined();
    expect([...bandwidthProvider.secretFields].sort()).toEqual(
      ['callbackPassword', 'clientSecret', 'inboundCallbackPassword', 'password'].sort(),
    );
    const ajv = new Ajv({ strict: false, validateFormats: false });
    const validate = ajv.compile(bandwidthProvider.configSchema);
    const full = {
      ...VALID_CONFIG,
      baseUrl: 'http://127.0.0.1:1/api/v2',
      priority: 'high',
      rateLimitPerSecond: 5,
      costPerMessage: 0.004,
    };
    expect(validate(full), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(oauth)).toBe(true);
    expect(validate({ ...VALID_CONFIG, extra: 1 })).toBe(false);
    expect(validate(noCredentials)).toBe(false);
    // Every field the schema names is one the factory accepts.
    const everything = { ...full, inboundCallbackUser: 'in', inboundCallbackPassword: 'inp' };
    expect(() => parseBandwidthConfig(everything)).not.toThrow();
    const named = new Set(Object.keys(schema.properties));
    for (const k of [...Object.keys(everything), 'clientId', 'clientSecret', 'tokenUrl'])
      expect(named.has(k), k).toBe(true);
  });
});

// --- the requests the adapter sends -------------------------------------------------------------------------

describe('Bandwidth create-message requests', () => {
  let run: Running;
  let carrier: Carrier;
  const spec = new OpenApiValidator('bandwidth/bandwidth.yml', { basePath: '/api/v2' });

  beforeAll(async () => {
    // The docs' example credentials: `Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=` is `username:password`
    // (https://dev.bandwidth.com/docs/messaging/createMessage, "The Request").
    run = await startAll({ username: 'username', password: 'password' });
    carrier = createBandwidthCarrier(senderWith(run.emulator.senderConfig), { webhookUrl: WEBHOOK_URL });
  });
  afterEach(() => expect(run.emulator.violations).toEqual([]));
  afterAll(async () => {
    await carrier?.close?.();
    await stopAll(run);
  });

  function last() {
    const r = run.emulator.messageRequests().at(-1);
    if (!r) throw new Error('no request');
    return r;
  }

  function expectValid(r: ReturnType<typeof last>): void {
    const problems = spec.validate({
      method: r.method,
      path: r.path,
      headers: r.headers,
      contentType: r.headers['content-type'],
      body: r.json,
    });
    expect(problems).toEqual([]);
  }

  it('sends an SMS as the documented request, with the documented Basic credentials', async () => {
    const req = sms({ body: 'Hey, check this out!' });
    const [result] = await carrier.send([req]);
    expect(result).toMatchObject({ ok: true, cost: null });
    const r = last();
    expect(r.path).toBe('/api/v2/users/9900000/messages');
    expect(r.headers.authorization).toBe('Basic dXNlcm5hbWU6cGFzc3dvcmQ=');
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.json).toEqual({
      applicationId: run.emulator.applicationId,
      to: [HANDSET],
      from: OUR_NUMBER,
      text: 'Hey, check this out!',
      tag: req.messageId,
    });
    expectValid(r);
    expect(result?.ok && result.providerMessageId).toMatch(/^\d{13}[a-z0-9]{16}$/);
  });

  it('sends an MMS with its media, and no text when there is none', async () => {
    const media = ['https://mySite.com/images/test_image.jpg', 'https://mySite.com/images/b.png'];
    const [a] = await carrier.send([sms({ channel: 'mms', body: 'Look', options: { mediaUrls: media } })]);
    expect(a?.ok).toBe(true);
    expect(last().json).toMatchObject({ text: 'Look', media });
    expectValid(last());
    const [b] = await carrier.send([sms({ channel: 'mms', body: null, options: { mediaUrls: media } })]);
    expect(b?.ok).toBe(true);
    expect(last().json).not.toHaveProperty('text');
    expect(last().json).toMatchObject({ media });
    expectValid(last());
  });

  it('leaves media out of an SMS and uses the sender number when the message has none', async () => {
    const fallback = createBandwidthCarrier(senderWith(run.emulator.senderConfig, '+19195550199'), {
      webhookUrl: WEBHOOK_URL,
    });
    try {
      const [r] = await fallback.send([sms({ from: null, options: { mediaUrls: ['https://example.com/x.png'] } })]);
      expect(r?.ok).toBe(true);
      expect(last().json).not.toHaveProperty('media');
      expect(last().json).toMatchObject({ from: '+19195550199' });
    } finally {
      await fallback.close?.();
    }
  });

  it('sends the configured priority and estimates the cost per segment', async () => {
    const c = createBandwidthCarrier(
      senderWith({ ...run.emulator.senderConfig, priority: 'high', costPerMessage: 0.004 }),
      {
        webhookUrl: WEBHOOK_URL,
      },
    );
    try {
      const [r] = await c.send([sms({ body: 'x'.repeat(200) })]);
      expect(last().json).toMatchObject({ priority: 'high' });
      expectValid(last());
      expect(r).toMatchObject({ ok: true });
      expect(r?.ok && r.cost).toBeCloseTo(0.008, 10); // 200 GSM characters = 2 segments
    } finally {
      await c.close?.();
    }
  });

  it('sends many messages concurrently and answers in order', async () => {
    const before = run.emulator.messageRequests().length;
    const reqs = Array.from({ length: 20 }, (_, i) => sms({ to: i % 5 === 4 ? BANDWIDTH_NUMBERS.rejected : HANDSET }));
    const results = await carrier.send(reqs);
    expect(results.map((r) => r.ok)).toEqual(reqs.map((r) => r.to === HANDSET));
    expect(run.emulator.messageRequests().length - before).toBe(20);
    const tags = run.emulator
      .messageRequests()
      .slice(before)
      .map((r) => (r.json as { tag: string }).tag);
    expect(new Set(tags)).toEqual(new Set(reqs.map((r) => r.messageId)));
  });

  it('does not call Bandwidth for what it cannot send', async () => {
    const before = run.emulator.requests.length;
    const noFrom = createBandwidthCarrier(senderWith(run.emulator.senderConfig, null), { webhookUrl: WEBHOOK_URL });
    try {
      const results = [
        ...(await carrier.send([sms({ channel: 'whatsapp' }), sms({ body: '' }), sms({ channel: 'mms', body: null })])),
        ...(await noFrom.send([sms({ from: null })])),
      ];
      expect(results.map((r) => !r.ok && r.error.code)).toEqual([
        'unsupported_channel',
        'empty_message',
        'empty_message',
        'missing_from',
      ]);
      for (const r of results) expect(r).toMatchObject({ ok: false, retryable: false });
      expect(run.emulator.requests.length).toBe(before);
    } finally {
      await noFrom.close?.();
    }
  });
});

// --- answers -------------------------------------------------------------------------------------------------

describe('Bandwidth answers', () => {
  let run: Running;
  let carrier: Carrier;

  beforeAll(async () => {
    run = await startAll();
    carrier = createBandwidthCarrier(senderWith(run.emulator.senderConfig), { webhookUrl: WEBHOOK_URL });
  });
  afterAll(async () => {
    await carrier?.close?.();
    await stopAll(run);
  });

  it('maps 400, 401, 429 and 500 into the taxonomy', async () => {
    const wrong = createBandwidthCarrier(senderWith({ ...run.emulator.senderConfig, password: 'wrong' }), {
      webhookUrl: WEBHOOK_URL,
    });
    try {
      const [rejected, throttled, throttledWait, unavailable] = await carrier.send([
        sms({ to: BANDWIDTH_NUMBERS.rejected }),
        sms({ to: BANDWIDTH_NUMBERS.throttled }),
        sms({ to: BANDWIDTH_NUMBERS.throttledRetryAfter }),
        sms({ to: BANDWIDTH_NUMBERS.unavailable }),
      ]);
      expect(rejected).toMatchObject({
        ok: false,
        retryable: false,
        error: { code: 'carrier_request_rejected', class: 'PermanentError' },
      });
      expect(!rejected?.ok && rejected?.error.message).toContain('request-validation');
      expect(!rejected?.ok && rejected?.error.message).toContain(`to: '${BANDWIDTH_NUMBERS.rejected}'`);
      expect(throttled).toMatchObject({
        ok: false,
        retryable: true,
        error: { code: 'carrier_rate_limited', class: 'ResourceError' },
      });
      expect(!throttled?.ok && throttled?.retryAfterMs).toBeUndefined();
      expect(!throttled?.ok && throttled?.error.message).toContain('max-message-queue-size-exceeded');
      expect(throttledWait).toMatchObject({ ok: false, retryable: true, retryAfterMs: 2000 });
      expect(unavailable).toMatchObject({ ok: false, retryable: true, error: { code: 'carrier_unavailable' } });
      const [denied] = await wrong.send([sms()]);
      expect(denied).toMatchObject({
        ok: false,
        retryable: false,
        error: { code: 'carrier_auth_failed', class: 'PermanentError' },
      });
      expect(!denied?.ok && denied?.error.message).toContain('Authentication Failed');
      expect(run.emulator.violations).toEqual([]);
    } finally {
      await wrong.close?.();
    }
  });

  it('treats a wrong path as permanent (and the emulator flags the request)', async () => {
    const c = createBandwidthCarrier(
      senderWith({ ...run.emulator.senderConfig, baseUrl: `${run.emulator.url}/api/v9` }),
      {
        webhookUrl: WEBHOOK_URL,
      },
    );
    try {
      const [r] = await c.send([sms()]);
      expect(r).toMatchObject({ ok: false, retryable: false, error: { code: 'carrier_request_rejected' } });
      expect(!r?.ok && r?.error.message).toContain('HTTP 404');
      expect(run.emulator.violations.some((v) => v.includes('no such operation'))).toBe(true);
    } finally {
      run.emulator.violations.length = 0;
      await c.close?.();
    }
  });
});

// --- OAuth2 ----------------------------------------------------------------------------------------------------

describe('Bandwidth OAuth2 client credentials', () => {
  let run: Running;
  const clock = new ManualClock(Date.now());

  beforeAll(async () => {
    run = await startAll({ auth: 'oauth2' });
  });
  afterEach(() => expect(run.emulator.violations).toEqual([]));
  afterAll(() => stopAll(run));

  it('fetches one token, shares it, renews it when due and after a refusal', async () => {
    const carrier = createBandwidthCarrier(senderWith(run.emulator.senderConfig), { webhookUrl: WEBHOOK_URL }, clock);
    try {
      const first = await carrier.send(Array.from({ length: 6 }, () => sms()));
      expect(first.every((r) => r.ok)).toBe(true);
      expect(run.emulator.tokenRequests).toBe(1);
      const tokenRequest = run.emulator.requests.find((r) => r.path === '/api/v1/oauth2/token');
      expect(tokenRequest?.headers.authorization).toBe(
        bandwidthBasicAuthorization('emulator-client-id', 'emulator-client-secret'),
      );
      expect(tokenRequest?.rawBody).toBe('grant_type=client_credentials');
      expect(run.emulator.messageRequests().at(-1)?.headers.authorization).toMatch(/^Bearer \S+$/);

      clock.advance(3600_000);
      expect((await carrier.send([sms()]))[0]?.ok).toBe(true);
      expect(run.emulator.tokenRequests).toBe(2);

      run.emulator.revokeTokens();
      expect((await carrier.send([sms()]))[0]?.ok).toBe(true);
      expect(run.emulator.tokenRequests).toBe(3);
    } finally {
      await carrier.close?.();
    }
  });

  it('fails permanently on refused client credentials, retryably when the token endpoint is down', async () => {
    const wrong = createBandwidthCarrier(senderWith({ ...run.emulator.senderConfig, clientSecret: 'nope' }), {
      webhookUrl: WEBHOOK_URL,
    });
    const down = createBandwidthCarrier(
      senderWith({ ...run.emulator.senderConfig, tokenUrl: 'http://127.0.0.1:9/api/v1/oauth2/token' }),
      { webhookUrl: WEBHOOK_URL },
    );
    try {
      const before = run.emulator.messageRequests().length;
      const [refused] = await wrong.send([sms()]);
      expect(refused).toMatchObject({ ok: false, retryable: false, error: { code: 'carrier_auth_failed' } });
      const [unreachable] = await down.send([sms()]);
      expect(unreachable).toMatchObject({ ok: false, retryable: true, error: { code: 'carrier_unavailable' } });
      expect(run.emulator.messageRequests().length).toBe(before);
    } finally {
      await wrong.close?.();
      await down.close?.();
    }
  });
});

// --- callbacks ---------------------------------------------------------------------------------------------

const SPEC = parseYaml(readFixture('bandwidth/bandwidth.yml'), { maxAliasCount: -1 }) as {
  components: { examples: Record<string, { value: unknown }> };
};
const specAjv = new Ajv({ strict: false, allErrors: true, validateFormats: false, discriminator: false });
specAjv.addSchema(SPEC, 'spec');
const validStatusCallback = specAjv.compile({ $ref: 'spec#/components/schemas/statusCallback' });
const validInboundCallback = specAjv.compile({ $ref: 'spec#/components/schemas/inboundCallback' });

describe('Bandwidth callbacks posted by the emulator', () => {
  let run: Running;
  let carrier: Carrier;

  beforeAll(async () => {
    run = await startAll();
    carrier = createBandwidthCarrier(senderWith(run.emulator.senderConfig), { webhookUrl: WEBHOOK_URL });
  });
  afterAll(async () => {
    await carrier?.close?.();
    await stopAll(run);
  });

  it('are documented events, sent as Bandwidth sends them, and parse to the right statuses', async () => {
    const reqs = [sms(), sms({ to: BANDWIDTH_NUMBERS.undeliverable }), sms({ to: BANDWIDTH_NUMBERS.receiptExpired })];
    const results = await carrier.send(reqs);
    expect(results.every((r) => r.ok)).toBe(true);
    await run.emulator.sendInbound({
      from: HANDSET,
      to: OUR_NUMBER,
      body: 'pic',
      media: ['https://example.com/a.jpg'],
    });
    await run.emulator.idle();
    await run.receiver.waitFor((r) => r.length >= 7);
    for (const cb of run.emulator.callbacks) {
      expect(cb.status).toBe(200);
      expect(cb.events).toHaveLength(1);
      const event = cb.events[0];
      const validate = event?.type === 'message-received' ? validInboundCallback : validStatusCallback;
      expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
    }
    for (const r of run.receiver.requests) {
      expect(r.headers['user-agent']).toBe('BandwidthAPI/v2');
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Array.isArray(JSON.parse(r.rawBody.toString('utf8')))).toBe(true);
    }
    const events = run.receiver.requests.flatMap((r) => carrier.parseWebhook(r));
    const byRef = (ref: string) => events.filter((e) => e.kind === 'status' && e.reference === ref);
    expect(byRef(reqs[0]?.messageId as string).map((e) => e.kind === 'status' && e.status)).toEqual([
      'sent',
      'delivered',
    ]);
    expect(byRef(reqs[1]?.messageId as string).at(-1)).toMatchObject({
      status: 'undelivered',
      error: { code: '4720', class: 'PermanentError' },
    });
    expect(byRef(reqs[2]?.messageId as string).at(-1)).toMatchObject({
      status: 'undelivered',
      error: { code: '9902', class: 'ResourceError' },
    });
    const inbound = events.find((e) => e.kind === 'inbound');
    expect(inbound).toMatchObject({
      channel: 'mms',
      from: HANDSET,
      to: OUR_NUMBER,
      body: 'pic',
      detail: { media: ['https://example.com/a.jpg'] },
    });
    expect(new Set(events.map((e) => e.eventKey)).size).toBe(events.length);
  });

  it('are retried until the receiver answers 2xx', async () => {
    run.receiver.answerStatus = 500;
    try {
      await run.emulator.sendInbound({ from: HANDSET, to: OUR_NUMBER, body: 'again' });
      expect(run.emulator.callbacks.at(-1)).toMatchObject({ attempts: 3, status: 500 });
    } finally {
      run.receiver.answerStatus = 200;
    }
  });
});

describe('Bandwidth callback authentication', () => {
  const body = readFixture('bandwidth/callbacks/message-delivered.sms.json');

  it('accepts the docs example credentials (Basic dXNlcm5hbWU6cGFzc3dvcmQ= is username:password)', () => {
    // SOURCES.md: Bandwidth's webhook docs show `Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=`.
    const c = parser({ ...VALID_CONFIG, callbackUser: 'username', callbackPassword: 'password' });
    expect(c.parseWebhook(callbackRequest(body, 'Basic dXNlcm5hbWU6cGFzc3dvcmQ='))).toHaveLength(1);
    expect(bandwidthCallbackAuthorization('username', 'password')).toBe('Basic dXNlcm5hbWU6cGFzc3dvcmQ=');
    expect(bandwidthBasicAuthorization('username', 'password')).toBe('Basic dXNlcm5hbWU6cGFzc3dvcmQ=');
  });

  it('refuses a callback without credentials or with the wrong ones', () => {
    const c = parser();
    const codeOf = (auth: string | undefined) => {
      try {
        c.parseWebhook(callbackRequest(body, auth));
      } catch (err) {
        expect(err).toBeInstanceOf(AuthenticationError);
        return (err as AuthenticationError).code;
      }
      return 'accepted';
    };
    expect(codeOf(undefined)).toBe('webhook_signature_missing');
    expect(codeOf('')).toBe('webhook_signature_missing');
    expect(codeOf(bandwidthCallbackAuthorization('cb-user', 'cb-passwore'))).toBe('webhook_signature_invalid');
    expect(codeOf(bandwidthCallbackAuthorization('cb-use', 'cb-password'))).toBe('webhook_signature_invalid');
    expect(codeOf(bandwidthCallbackAuthorization('cb-user', 'cb-password-and-more'))).toBe('webhook_signature_invalid');
    expect(codeOf('Bearer Y2ItdXNlcjpjYi1wYXNzd29yZA==')).toBe('webhook_signature_invalid');
    expect(codeOf('Basic !!!not-base64!!!')).toBe('webhook_signature_invalid');
    expect(codeOf(CB_AUTH)).toBe('accepted');
    expect(codeOf(CB_AUTH.replace('Basic', 'basic'))).toBe('accepted'); // RFC 7235: the scheme is case-insensitive
  });

  it('checks credentials before reading the body', () => {
    expectAuthFailure(() => parser().parseWebhook(callbackRequest('not json')));
  });

  it('accepts the inbound credentials when the application has separate ones', () => {
    const c = parser({ ...VALID_CONFIG, inboundCallbackUser: 'in-user', inboundCallbackPassword: 'in-pass' });
    const inbound = readFixture('bandwidth/callbacks/message-received.sms.json');
    expect(c.parseWebhook(callbackRequest(inbound, bandwidthCallbackAuthorization('in-user', 'in-pass')))).toHaveLength(
      1,
    );
    expect(c.parseWebhook(callbackRequest(inbound, CB_AUTH))).toHaveLength(1);
    expectAuthFailure(() =>
      c.parseWebhook(callbackRequest(inbound, bandwidthCallbackAuthorization('in-user', 'cb-password'))),
    );
  });
});

describe('Bandwidth callback parsing', () => {
  const c = parser();
  const parse = (json: unknown): CarrierEvent[] =>
    c.parseWebhook(callbackRequest(typeof json === 'string' ? json : JSON.stringify(json), CB_AUTH));

  const DOC_ID = '14762070468292kw2fuqty55yp2b2';
  const DOC_TIME = Date.parse('2016-09-14T18:20:16Z');
  const delivered = {
    kind: 'status',
    status: 'delivered',
    providerMessageId: DOC_ID,
    reference: null,
    occurredAt: DOC_TIME,
    detail: { recipient: '+12345678902' },
  };
  const received = {
    kind: 'inbound',
    channel: 'mms',
    providerMessageId: DOC_ID,
    from: '+12345678901',
    to: '+12345678902',
    body: 'Hey, check this out!',
    occurredAt: DOC_TIME,
    detail: {
      media: ['https://messaging.bandwidth.com/api/v2/users/{accountId}/media/14762070468292kw2fuqty55yp2b2/0/bw.png'],
    },
  };
  const EXPECTED: Record<string, Record<string, unknown>> = {
    'message-sending.json': {
      kind: 'status',
      status: 'sent',
      providerMessageId: '1593110555875xo7watq5px6rbe5d',
      reference: 'v2 lab',
      occurredAt: Date.parse('2020-06-25T18:42:36.979Z'),
      detail: { recipient: '+15554443333', description: 'Message is sending to carrier' },
    },
    'message-delivered.sms.json': delivered,
    'message-delivered.mms-to-carrier.json': delivered,
    'message-delivered.group-mms-to-carrier.json': delivered,
    'message-delivered.toll-free-handset.json': {
      kind: 'status',
      status: 'delivered',
      providerMessageId: '1585321273456iprz22vjeo4tvooc',
      reference: null,
      occurredAt: Date.parse('2020-03-27T15:01:22.646Z'),
    },
    'message-failed.json': {
      kind: 'status',
      status: 'failed',
      providerMessageId: DOC_ID,
      error: { code: '4432', class: 'PermanentError', message: 'forbidden to country' },
      detail: { recipient: '+52345678903', errorCode: 4432 },
    },
    'message-received.sms.json': received,
    'message-received.group-mms.json': {
      ...received,
      detail: { ...received.detail, recipients: ['+12345678902', '+12345678903'] },
    },
  };

  it('parses every documented callback fixture', () => {
    const files = readdirSync(join(CARRIER_FIXTURES, 'bandwidth', 'callbacks')).sort();
    expect(files).toEqual(Object.keys(EXPECTED).sort());
    for (const file of files) {
      const events = parse(readFixture(`bandwidth/callbacks/${file}`));
      expect(events, file).toHaveLength(1);
      expect(events[0], file).toMatchObject(EXPECTED[file] as Record<string, unknown>);
      expect(events[0]?.eventKey.length).toBeGreaterThan(0);
    }
  });

  it('parses the callback examples of the OpenAPI description', () => {
    const expected: Record<string, Record<string, unknown>> = {
      messageSendingCallbackExample: { kind: 'status', status: 'sent', reference: 'your tag here' },
      messageSentCallbackExample: { kind: 'status', status: 'sent', reference: 'v2 lab' },
      smsMessageDeliveredCallbackExample: { kind: 'status', status: 'delivered' },
      mmsMessageDeliveredCallbackExample: { kind: 'status', status: 'delivered' },
      groupMmsMessageDeliveredCallbackExample: { kind: 'status', status: 'delivered' },
      messageFailedCallbackExample: { kind: 'status', status: 'failed', error: { code: '4432' } },
      smsMessageReceivedCallbackExample: { kind: 'inbound', channel: 'sms', body: 'Hey, check out this SMS!' },
      mmsMessageReceivedCallbackExample: { kind: 'inbound', channel: 'mms', body: 'Hey, check out the MMS!' },
    };
    for (const [name, want] of Object.entries(expected)) {
      const example = SPEC.components.examples[name]?.value;
      expect(example, name).toBeDefined();
      const events = parse([example]);
      expect(events[0], name).toMatchObject(want);
      expect(Number.isFinite(events[0]?.occurredAt)).toBe(true);
    }
    expect(parse([SPEC.components.examples.messageSentCallbackExample?.value])[0]?.occurredAt).toBe(
      Date.parse('2024-06-25T18:42:36.979Z'),
    );
  });

  it('keys events by type, message and recipient', () => {
    const base = JSON.parse(readFixture('bandwidth/callbacks/message-delivered.group-mms-to-carrier.json')) as Record<
      string,
      unknown
    >[];
    const first = base[0] as Record<string, unknown>;
    const again = parse(base)[0]?.eventKey;
    expect(parse(JSON.parse(JSON.stringify(base)))[0]?.eventKey).toBe(again);
    expect(parse([{ ...first, to: '+12345678903' }])[0]?.eventKey).not.toBe(again);
    expect(parse([{ ...first, type: 'message-sending' }])[0]?.eventKey).not.toBe(again);
    expect(parse([{ ...first, message: { ...(first.message as object), id: 'other' } }])[0]?.eventKey).not.toBe(again);
  });

  it('reads every event of a batch and maps the other documented types', () => {
    const failed = JSON.parse(readFixture('bandwidth/callbacks/message-failed.json'))[0] as Record<string, unknown>;
    const events = parse([
      { ...failed, type: 'message-sent' },
      { ...failed, type: 'message-read', eventTime: '2024-12-02T20:15:58.278Z' },
      { ...failed, errorCode: 4702, description: 'Destination subscriber is unavailable.' },
      { ...failed, errorCode: undefined },
      { ...failed, type: 'suggestion-response' },
      { ...failed, type: 'requested-location-response' },
    ]);
    expect(events.map((e) => e.kind === 'status' && e.status)).toEqual(['sent', 'read', 'undelivered', 'failed']);
    expect(events[2]).toMatchObject({ error: { code: '4702', class: 'ResourceError' } });
    expect(events[3]).toMatchObject({
      error: { code: 'unknown', class: 'PermanentError', message: 'forbidden to country' },
    });
    // A single event object, not in a list, is read the same way.
    expect(parse(failed)).toHaveLength(1);
  });

  it('refuses malformed payloads as invalid', () => {
    const failed = JSON.parse(readFixture('bandwidth/callbacks/message-failed.json'))[0] as Record<string, unknown>;
    for (const bad of [
      'not json',
      '"a string"',
      '[1]',
      JSON.stringify([{ type: 'message-delivered', to: '+1', time: '2020-01-01T00:00:00Z' }]),
      JSON.stringify([{ ...failed, message: { ...(failed.message as object), id: '' } }]),
      JSON.stringify([{ ...failed, time: 'yesterday', message: { ...(failed.message as object), time: undefined } }]),
      JSON.stringify([{ ...failed, errorCode: '4432' }]),
      JSON.stringify([{ ...failed, type: undefined }]),
    ]) {
      let thrown: unknown;
      try {
        parse(bad);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, bad).toBeInstanceOf(ValidationError);
      expect((thrown as ValidationError).code).toBe('invalid_webhook_payload');
    }
  });
});

// --- the emulator itself refuses what the specification does not allow ---------------------------------------

describe('Bandwidth emulator strictness', () => {
  let run: Running;
  beforeAll(async () => {
    run = await startAll();
  });
  afterAll(() => stopAll(run));

  async function post(body: string, headers: Record<string, string>): Promise<number> {
    const res = await request(`${run.emulator.url}/api/v2/users/${run.emulator.accountId}/messages`, {
      method: 'POST',
      headers,
      body,
    });
    await res.body.dump();
    return res.statusCode;
  }

  it('records and refuses requests outside the specification', async () => {
    const auth = bandwidthBasicAuthorization(run.emulator.username, run.emulator.password);
    const json = { 'content-type': 'application/json', authorization: auth };
    const good = { applicationId: run.emulator.applicationId, to: [HANDSET], from: OUR_NUMBER, text: 'hi' };
    const cases: [string, Record<string, string>, number, RegExp][] = [
      [JSON.stringify({ ...good, applicationId: undefined }), json, 400, /applicationId/],
      [JSON.stringify({ ...good, to: HANDSET }), json, 400, /body\/to must be array/],
      [JSON.stringify({ ...good, callbackUrl: 'https://x.example' }), json, 400, /'callbackUrl' is not a field/],
      [JSON.stringify({ ...good, to: ['4155550123'] }), json, 400, /not an E\.164 number/],
      [JSON.stringify({ ...good, priority: 'urgent' }), json, 400, /allowed values/],
      [JSON.stringify(good), { ...json, 'content-type': 'text/plain' }, 415, /Content-Type/],
      [JSON.stringify(good), { 'content-type': 'application/json' }, 401, /no Authorization header/],
    ];
    for (const [body, headers, status, violation] of cases) {
      run.emulator.violations.length = 0;
      expect(await post(body, headers), body).toBe(status);
      expect(
        run.emulator.violations.some((v) => violation.test(v)),
        `${body}: ${run.emulator.violations.join(' | ')}`,
      ).toBe(true);
    }
    run.emulator.violations.length = 0;
    expect(await post(JSON.stringify(good), json)).toBe(202);
    expect(run.emulator.violations).toEqual([]);
  });
});
