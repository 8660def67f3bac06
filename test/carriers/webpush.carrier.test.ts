/**
 * The Web Push adapter against the push-service emulator: the shared carrier contract, the status table, the
 * exact request it sends (headers, VAPID token, decrypted payload), config validation, and known-answer tests
 * of the emulator's RFC 8291 decryption and RFC 8292 VAPID verification with the RFCs' own examples.
 */
import { Ajv } from 'ajv';
import { request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  classifyPushStatus,
  createWebPushCarrier,
  DEFAULT_TTL_SECONDS,
  MAX_PAYLOAD_BYTES,
  pushFailure,
  pushMessageIdFromLocation,
  WEBPUSH_STATUS_CODES,
  webPushProvider,
} from '../../src/adapters/carriers/webpush/webpush-carrier.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type { Carrier, SenderRecord, SendRequest, SendResult } from '../../src/ports/carrier.ts';
import { type ContractDestinations, carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  decryptAes128gcm,
  encryptAes128gcm,
  PushServiceEmulator,
  uaKeysFrom,
  verifyVapidAuthorization,
} from './emulators/push-service-emulator.ts';
import { readJsonFixture } from './support/openapi-validator.ts';

interface SubscriptionFixture {
  endpoint: string;
  expirationTime: null;
  keys: { p256dh: string; auth: string };
}
interface VapidFixture {
  publicKey: string;
  jwk: { kty: string; crv: string; x: string; y: string };
  subject: string;
  audience: string;
}

const subscriptionFixture = readJsonFixture<SubscriptionFixture>('webpush/subscription.rfc8291-keys.json');
const vapidFixture = readJsonFixture<VapidFixture>('webpush/vapid-keys.rfc8292-example.json');

/**
 * RFC 8291 §5 and Appendix A ("Intermediate Values for Encryption"),
 * https://www.rfc-editor.org/rfc/rfc8291#appendix-A: the user agent's private key (its public key and auth
 * secret are the fixture's), the application server's key pair and salt, and the resulting message body.
 */
const RFC8291 = {
  plaintext: 'When I grow up, I want to be a watermelon',
  uaPrivate: 'q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94',
  asPrivate: 'yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw',
  asPublic: 'BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8',
  salt: 'DGv6ra1nlYgDCS1FRnbzlw',
  body:
    'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_' +
    'yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
};

/**
 * RFC 8292 §2.4 (https://www.rfc-editor.org/rfc/rfc8292#section-2.4): the example token, signed by the key of
 * the fixture `vapid-keys.rfc8292-example.json` for the audience and subject given there.
 */
const RFC8292 = {
  jwt:
    'eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.' +
    'eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.' +
    'i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA',
  exp: 1453523768,
};

const rfcUa = uaKeysFrom(RFC8291.uaPrivate, subscriptionFixture.keys.auth);

// ---------------------------------------------------------------------------------------------------------------
// The shared contract. Destinations are endpoint URLs on the emulator, known once it listens.

const destinations: ContractDestinations = {
  delivered: 'pending',
  rejected: 'pending',
  unavailable: 'pending',
  throttled: 'pending',
};

carrierContract({
  provider: 'webpush',
  channel: 'push',
  from: null,
  destinations,
  options: { push: { keys: subscriptionFixture.keys, title: 'Contract' } },
  finalStatus: 'sent',
  callbacks: false,
  unreachable: { to: 'http://127.0.0.1:9/push/x' },
  async startEmulator() {
    const emulator = await PushServiceEmulator.start();
    // Every contract destination is a subscription with the RFC 8291 keys, so every body is decrypted.
    for (const id of ['contract', 'gone-contract', 'unavailable-contract', 'throttled-contract']) {
      emulator.registerSubscription(id, rfcUa);
    }
    destinations.delivered = emulator.endpoint('contract');
    destinations.rejected = emulator.endpoint('gone-contract');
    destinations.unavailable = emulator.endpoint('unavailable-contract');
    destinations.throttled = emulator.endpoint('throttled-contract');
    return emulator;
  },
  createCarrier: (sender, ctx) => createWebPushCarrier(sender, ctx),
});

// ---------------------------------------------------------------------------------------------------------------

function sender(config: Record<string, unknown>): SenderRecord {
  return {
    id: 'snd_push',
    orgId: 'org_push',
    provider: 'webpush',
    config,
    channels: ['push'],
    from: null,
    priority: 0,
  };
}

let seq = 0;
function pushRequest(to: string, keys: { p256dh: string; auth: string } | undefined, over: Partial<SendRequest> = {}) {
  seq++;
  const req: SendRequest = {
    messageId: `msg_push_${seq}`,
    channel: 'push',
    to,
    from: null,
    body: `Your order ${seq} has shipped`,
    subject: `Order ${seq}`,
    attempt: 1,
    ...(keys ? { options: { push: { keys } } } : {}),
    ...over,
  };
  return req;
}

function failureOf(result: SendResult | undefined) {
  expect(result?.ok).toBe(false);
  if (!result || result.ok) throw new Error('expected a failure');
  return result;
}

describe('webpush adapter against the push-service emulator', () => {
  let emulator: PushServiceEmulator;
  let carrier: Carrier;
  let ok: { endpoint: string; keys: { p256dh: string; auth: string } };
  /** Subscriptions whose id triggers a destination rule (see the emulator), by id. */
  const rules: Record<string, { endpoint: string; keys: { p256dh: string; auth: string } }> = {};

  beforeAll(async () => {
    emulator = await PushServiceEmulator.start({ retryAfterSeconds: 7 });
    ok = emulator.createSubscription('device-1');
    for (const id of ['gone-1', 'notfound-1', 'throttled-1', 'unavailable-1', 'toolarge-1', 'nolocation-1']) {
      rules[id] = emulator.createSubscription(id);
    }
    carrier = createWebPushCarrier(sender(emulator.senderConfig), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/webhooks/webpush/snd_push',
    });
  });

  afterEach(() => {
    expect(emulator.violations).toEqual([]);
  });

  afterAll(async () => {
    await carrier?.close?.();
    await emulator?.close();
  });

  it('sends the documented request: VAPID, TTL, Urgency, Topic, aes128gcm payload {title, body, data, messageId}', async () => {
    const req = pushRequest(ok.endpoint, ok.keys, {
      options: {
        push: {
          keys: ok.keys,
          title: 'Shipped',
          data: { orderId: 42, url: '/orders/42' },
          ttlSeconds: 600,
          urgency: 'high',
          topic: 'order-42',
        },
      },
    });
    const [result] = await carrier.send([req]);
    expect(result).toMatchObject({ ok: true });
    const got = emulator.received.at(-1);
    expect(got?.subscriptionId).toBe('device-1');
    if (!result?.ok || !got) return;
    // RFC 8030 §5: the push message id is the one the Location names.
    expect(result.providerMessageId).toBe(got.pushMessageId);
    expect(got.ttl).toBe(600);
    expect(got.urgency).toBe('high');
    expect(got.topic).toBe('order-42');
    expect(got.contentType).toBe('application/octet-stream');
    expect(got.vapid.publicKey).toBe(emulator.senderConfig.vapidPublicKey);
    expect(got.vapid.claims.aud).toBe(emulator.origin);
    expect(got.vapid.claims.sub).toBe(emulator.senderConfig.subject);
    expect(got.json).toEqual({
      title: 'Shipped',
      body: req.body,
      data: { orderId: 42, url: '/orders/42' },
      messageId: req.messageId,
    });
  });

  it('defaults TTL to four weeks, Urgency to normal and the title to the subject', async () => {
    const req = pushRequest(ok.endpoint, ok.keys);
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    const got = emulator.received.at(-1);
    expect(got?.ttl).toBe(DEFAULT_TTL_SECONDS);
    expect(got?.urgency).toBe('normal');
    expect(got?.topic).toBeNull();
    expect(got?.json).toEqual({ title: req.subject, body: req.body, messageId: req.messageId });
  });

  it('uses the sender default TTL when the message sets none', async () => {
    const withTtl = createWebPushCarrier(sender({ ...emulator.senderConfig, defaultTtlSeconds: 3600 }), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    try {
      const [result] = await withTtl.send([pushRequest(ok.endpoint, ok.keys)]);
      expect(result?.ok).toBe(true);
      expect(emulator.received.at(-1)?.ttl).toBe(3600);
    } finally {
      await withTtl.close?.();
    }
  });

  it('reuses one VAPID token per push service and signs a new one after a 403', async () => {
    await carrier.send([pushRequest(ok.endpoint, ok.keys), pushRequest(ok.endpoint, ok.keys)]);
    const [a, b] = emulator.received.slice(-2);
    expect(a?.authorization).toBe(b?.authorization);
    const restricted = emulator.createSubscription('restricted-1', {
      applicationServerKey: 'BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs',
    });
    const forbidden = failureOf((await carrier.send([pushRequest(restricted.endpoint, restricted.keys)]))[0]);
    expect(forbidden).toMatchObject({
      retryable: false,
      error: { code: 'push_vapid_forbidden', class: 'PermanentError' },
    });
    await carrier.send([pushRequest(ok.endpoint, ok.keys)]);
    expect(emulator.received.at(-1)?.authorization).not.toBe(b?.authorization);
  });

  it('maps 410 and 404 to a permanent push_subscription_gone that says to revoke the subscription', async () => {
    for (const id of ['gone-1', 'notfound-1', 'never-subscribed']) {
      const keys = rules[id]?.keys ?? ok.keys;
      const failure = failureOf((await carrier.send([pushRequest(emulator.endpoint(id), keys)]))[0]);
      expect(failure.retryable).toBe(false);
      expect(failure.error.code).toBe('push_subscription_gone');
      expect(failure.error.class).toBe('PermanentError');
      expect(failure.error.message).toMatch(/revoked/);
    }
  });

  it('sends nothing to a loopback, private or link-local endpoint unless private addresses are allowed (SSRF)', async () => {
    const guarded = createWebPushCarrier(sender(emulator.senderConfig), { webhookUrl: 'https://omni.example/w' });
    try {
      const before = emulator.requests.length;
      const port = new URL(emulator.endpoint('device-1')).port;
      for (const to of [
        emulator.endpoint('device-1'),
        `http://localhost:${port}/push/device-1`,
        'http://169.254.169.254/latest/meta-data',
        'http://10.0.0.7/push/x',
      ]) {
        const failure = failureOf((await guarded.send([pushRequest(to, ok.keys)]))[0]);
        expect(failure, to).toMatchObject({ retryable: false, error: { code: 'push_endpoint_refused' } });
        expect(failure.error.message).toMatch(/OMNI_MESSAGE_URLS_ALLOW_PRIVATE/);
      }
      expect(emulator.requests.length).toBe(before);
    } finally {
      await guarded.close?.();
    }
  });

  it('maps 429 to a retryable failure with the Retry-After wait, and 503 to retryable', async () => {
    const throttled = failureOf(
      (await carrier.send([pushRequest(emulator.endpoint('throttled-1'), rules['throttled-1']?.keys)]))[0],
    );
    expect(throttled).toMatchObject({ retryable: true, retryAfterMs: 7000, error: { code: 'push_rate_limited' } });
    const down = failureOf(
      (await carrier.send([pushRequest(emulator.endpoint('unavailable-1'), rules['unavailable-1']?.keys)]))[0],
    );
    expect(down).toMatchObject({
      retryable: true,
      error: { code: 'push_service_unavailable', class: 'ResourceError' },
    });
  });

  it('maps 413 to a permanent payload-too-large failure', async () => {
    const failure = failureOf(
      (await carrier.send([pushRequest(emulator.endpoint('toolarge-1'), rules['toolarge-1']?.keys)]))[0],
    );
    expect(failure).toMatchObject({ retryable: false, error: { code: 'push_payload_too_large' } });
  });

  it('generates a message id when the push service answers 201 without Location', async () => {
    const sub = rules['nolocation-1'];
    const [result] = await carrier.send([pushRequest(emulator.endpoint('nolocation-1'), sub?.keys)]);
    expect(result?.ok).toBe(true);
    if (result?.ok) expect(result.providerMessageId).toMatch(/^wp_[A-Za-z0-9_-]{16}$/);
  });

  it('refuses a message without subscription keys before contacting the push service', async () => {
    const before = emulator.requests.length;
    const failure = failureOf((await carrier.send([pushRequest(ok.endpoint, undefined)]))[0]);
    expect(failure).toMatchObject({
      retryable: false,
      error: { code: 'push_subscription_invalid', class: 'ValidationError' },
    });
    const badKey = failureOf(
      (await carrier.send([pushRequest(ok.endpoint, { p256dh: 'BAAA', auth: ok.keys.auth })]))[0],
    );
    expect(badKey.error.code).toBe('push_subscription_invalid');
    const offCurve = failureOf(
      (
        await carrier.send([
          pushRequest(ok.endpoint, { p256dh: Buffer.alloc(65, 4).toString('base64url'), auth: ok.keys.auth }),
        ])
      )[0],
    );
    expect(offCurve.error.code).toBe('push_subscription_invalid');
    const shortAuth = failureOf(
      (await carrier.send([pushRequest(ok.endpoint, { p256dh: ok.keys.p256dh, auth: 'AAAA' })]))[0],
    );
    expect(shortAuth.error.code).toBe('push_subscription_invalid');
    expect(emulator.requests.length).toBe(before);
  });

  it('refuses bad endpoints, options and oversized payloads without contacting the push service', async () => {
    const before = emulator.requests.length;
    const strict = createWebPushCarrier(sender({ ...emulator.senderConfig, allowInsecureEndpoints: false }), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    try {
      const insecure = failureOf((await strict.send([pushRequest(ok.endpoint, ok.keys)]))[0]);
      expect(insecure.error).toMatchObject({ code: 'push_subscription_invalid', class: 'ValidationError' });
    } finally {
      await strict.close?.();
    }
    const notUrl = failureOf((await carrier.send([pushRequest('not a url', ok.keys)]))[0]);
    expect(notUrl.error.code).toBe('push_subscription_invalid');
    const withCreds = failureOf((await carrier.send([pushRequest(ok.endpoint.replace('//', '//u:p@'), ok.keys)]))[0]);
    expect(withCreds.error.code).toBe('push_subscription_invalid');
    const topic = failureOf(
      (
        await carrier.send([
          pushRequest(ok.endpoint, ok.keys, { options: { push: { keys: ok.keys, topic: 'no spaces allowed' } } }),
        ])
      )[0],
    );
    expect(topic.error.code).toBe('push_options_invalid');
    const ttl = failureOf(
      (
        await carrier.send([
          pushRequest(ok.endpoint, ok.keys, { options: { push: { keys: ok.keys, ttlSeconds: -1 } } }),
        ])
      )[0],
    );
    expect(ttl.error.code).toBe('push_options_invalid');
    const big = failureOf(
      (await carrier.send([pushRequest(ok.endpoint, ok.keys, { body: 'x'.repeat(MAX_PAYLOAD_BYTES) })]))[0],
    );
    expect(big).toMatchObject({ retryable: false, error: { code: 'push_payload_too_large' } });
    expect(emulator.requests.length).toBe(before);
  });

  it('sends the largest payload Web Push carries (3993 octets) and the push service decrypts it', async () => {
    const skeleton = JSON.stringify({ title: 'T', body: '', messageId: 'msg_big' });
    const body = 'y'.repeat(MAX_PAYLOAD_BYTES - Buffer.byteLength(skeleton));
    const [result] = await carrier.send([
      pushRequest(ok.endpoint, ok.keys, { messageId: 'msg_big', subject: 'T', body }),
    ]);
    expect(result?.ok).toBe(true);
    expect(emulator.received.at(-1)?.plaintext.length).toBe(MAX_PAYLOAD_BYTES);
  });

  it('sends a batch concurrently, one result per message in order', async () => {
    const before = emulator.received.length;
    const reqs = Array.from({ length: 40 }, (_, i) =>
      i % 10 === 9
        ? pushRequest(emulator.endpoint('gone-1'), rules['gone-1']?.keys)
        : pushRequest(ok.endpoint, ok.keys),
    );
    const results = await carrier.send(reqs);
    expect(results.map((r) => r.ok)).toEqual(reqs.map((_, i) => i % 10 !== 9));
    expect(emulator.received.length - before).toBe(36);
    const ids = results.filter((r) => r.ok).map((r) => (r.ok ? r.providerMessageId : ''));
    expect(new Set(ids).size).toBe(36);
    const echoed = emulator.received.slice(before).map((p) => (p.json as { messageId: string }).messageId);
    expect(new Set(echoed)).toEqual(new Set(reqs.filter((_, i) => i % 10 !== 9).map((r) => r.messageId)));
  });

  it('an expired VAPID token is refused by the push service (401) and mapped to a permanent failure', async () => {
    const skewed = createWebPushCarrier(
      sender(emulator.senderConfig),
      { allowPrivateUrls: true, webhookUrl: 'https://omni.example/w' },
      { now: () => Date.now() - 13 * 60 * 60 * 1000 },
    );
    try {
      const failure = failureOf((await skewed.send([pushRequest(ok.endpoint, ok.keys)]))[0]);
      expect(failure).toMatchObject({ retryable: false, error: { code: 'push_vapid_unauthorized' } });
      expect(emulator.violations).toEqual([expect.stringMatching(/expired/)]);
    } finally {
      emulator.violations.length = 0;
      await skewed.close?.();
    }
  });

  it('has no callbacks: any webhook request (POST or GET) is refused as unauthentic', () => {
    const post = { method: 'POST', url: '/webhooks/webpush/snd_push', headers: {}, rawBody: Buffer.from('{}') };
    expectAuthFailure(() => carrier.parseWebhook(post));
    expectAuthFailure(() =>
      carrier.parseWebhook({ ...post, method: 'GET', url: '/webhooks/webpush/snd_push?x=1', rawBody: Buffer.alloc(0) }),
    );
    expect(() => carrier.parseWebhook(post)).toThrow(AuthenticationError);
  });
});

describe('push-service emulator refuses what the specifications do not allow', () => {
  let emulator: PushServiceEmulator;
  let sub: ReturnType<PushServiceEmulator['createSubscription']>;
  let authorization: string;

  beforeAll(async () => {
    emulator = await PushServiceEmulator.start();
    sub = emulator.createSubscription('strict-1');
    const carrier = createWebPushCarrier(sender(emulator.senderConfig), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    await carrier.send([pushRequest(sub.endpoint, sub.keys)]);
    await carrier.close?.();
    authorization = emulator.received[0]?.authorization as string;
  });

  afterAll(async () => {
    await emulator?.close();
  });

  async function post(path: string, headers: Record<string, string>, body?: Buffer) {
    emulator.violations.length = 0;
    const res = await undiciRequest(`${emulator.origin}${path}`, {
      method: 'POST',
      headers,
      ...(body ? { body } : {}),
    });
    await res.body.dump();
    return { status: res.statusCode, violations: [...emulator.violations] };
  }

  function body(plaintext: string, to = sub.ua): Buffer {
    return encryptAes128gcm(Buffer.from(plaintext), to, { privateKey: Buffer.alloc(32, 7), salt: Buffer.alloc(16, 1) });
  }

  const base = () => ({ authorization, ttl: '60', 'content-encoding': 'aes128gcm' });

  it('accepts a well-formed request', async () => {
    const r = await post('/push/strict-1', base(), body('{"ok":true}'));
    expect(r).toEqual({ status: 201, violations: [] });
  });

  it('requires TTL (RFC 8030 §5.2)', async () => {
    const { ttl: _ttl, ...headers } = base();
    const r = await post('/push/strict-1', headers, body('x'));
    expect(r.status).toBe(400);
    expect(r.violations).toEqual([expect.stringMatching(/TTL header missing/)]);
  });

  it('requires a VAPID Authorization (RFC 8292 §3)', async () => {
    const { authorization: _a, ...headers } = base();
    expect((await post('/push/strict-1', headers, body('x'))).status).toBe(401);
    expect((await post('/push/strict-1', { ...headers, authorization: 'WebPush abc' }, body('x'))).status).toBe(401);
    const tampered = authorization.replace(/t=([^.]+)\.([^.]+)\./, (_m, h: string, c: string) => {
      const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>;
      return `t=${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'mailto:evil@example.com' })).toString('base64url')}.`;
    });
    const r = await post('/push/strict-1', { ...headers, authorization: tampered }, body('x'));
    expect(r.status).toBe(401);
    expect(r.violations).toEqual([expect.stringMatching(/signature/)]);
  });

  it('requires aes128gcm and a body that decrypts with the subscription keys (RFC 8291)', async () => {
    expect((await post('/push/strict-1', { ...base(), 'content-encoding': 'aesgcm' }, body('x'))).violations).toEqual([
      expect.stringMatching(/aes128gcm/),
    ]);
    const other = emulator.createSubscription('other-keys').ua;
    expect((await post('/push/strict-1', base(), body('x', other))).violations).toEqual([
      expect.stringMatching(/does not decrypt/),
    ]);
    expect((await post('/push/strict-1', base(), Buffer.from('not encrypted at all, clearly'))).status).toBe(400);
  });

  it('checks Urgency and Topic (RFC 8030 §5.3, §5.4) and the method and path (§5)', async () => {
    expect((await post('/push/strict-1', { ...base(), urgency: 'urgent' }, body('x'))).status).toBe(400);
    expect((await post('/push/strict-1', { ...base(), topic: 'x'.repeat(33) }, body('x'))).status).toBe(400);
    expect((await post('/messages', base(), body('x'))).status).toBe(404);
    emulator.violations.length = 0;
  });

  it('refuses bodies over 4096 octets with 413 (RFC 8291 §4)', async () => {
    const r = await post('/push/strict-1', base(), Buffer.alloc(4097, 1));
    expect(r).toEqual({ status: 413, violations: [] });
  });
});

describe('RFC 8291 known answer: the emulator decrypts the RFC example message', () => {
  it('derives the fixture p256dh from the RFC user-agent private key', () => {
    expect(rfcUa.publicKey.toString('base64url')).toBe(subscriptionFixture.keys.p256dh);
  });

  it('decrypts Appendix A to the plaintext, reading salt, record size and key id from the header', () => {
    const result = decryptAes128gcm(Buffer.from(RFC8291.body, 'base64url'), rfcUa);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.plaintext.toString('utf8')).toBe(RFC8291.plaintext);
    expect(result.salt.toString('base64url')).toBe(RFC8291.salt);
    expect(result.recordSize).toBe(4096);
    expect(result.keyId.toString('base64url')).toBe(RFC8291.asPublic);
  });

  it('the emulator-side encryption reproduces the RFC body byte for byte', () => {
    const body = encryptAes128gcm(Buffer.from(RFC8291.plaintext), rfcUa, {
      privateKey: Buffer.from(RFC8291.asPrivate, 'base64url'),
      salt: Buffer.from(RFC8291.salt, 'base64url'),
    });
    expect(body.toString('base64url')).toBe(RFC8291.body);
  });

  it('refuses a tampered body, a wrong auth secret and a wrong private key', () => {
    const body = Buffer.from(RFC8291.body, 'base64url');
    const flipped = Buffer.from(body);
    flipped[body.length - 20] = (flipped[body.length - 20] as number) ^ 1;
    expect(decryptAes128gcm(flipped, rfcUa).ok).toBe(false);
    expect(decryptAes128gcm(body, { ...rfcUa, authSecret: Buffer.alloc(16) }).ok).toBe(false);
    expect(decryptAes128gcm(body, uaKeysFrom(RFC8291.asPrivate, subscriptionFixture.keys.auth)).ok).toBe(false);
  });

  it("decrypts what the adapter (web-push) encrypts for the fixture subscription's keys", async () => {
    const emulator = await PushServiceEmulator.start();
    const sub = emulator.registerSubscription('rfc', rfcUa);
    expect(sub.keys).toEqual(subscriptionFixture.keys);
    const carrier = createWebPushCarrier(sender(emulator.senderConfig), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    try {
      const [result] = await carrier.send([
        pushRequest(sub.endpoint, subscriptionFixture.keys, { body: RFC8291.plaintext }),
      ]);
      expect(result?.ok).toBe(true);
      expect(emulator.received[0]?.json).toMatchObject({ body: RFC8291.plaintext });
      expect(emulator.violations).toEqual([]);
    } finally {
      await carrier.close?.();
      await emulator.close();
    }
  });
});

describe('RFC 8292 known answer: the emulator verifies the RFC example VAPID token', () => {
  const header = `vapid t=${RFC8292.jwt}, k=${vapidFixture.publicKey}`;
  const at = { audience: vapidFixture.audience, nowSeconds: RFC8292.exp - 3600 };

  it('the fixture key is the JWK of the example', () => {
    const raw = Buffer.from(vapidFixture.publicKey, 'base64url');
    expect(raw.subarray(1, 33).toString('base64url')).toBe(vapidFixture.jwk.x);
    expect(raw.subarray(33).toString('base64url')).toBe(vapidFixture.jwk.y);
  });

  it('verifies the example token, with the claims of the example', () => {
    const result = verifyVapidAuthorization(header, at);
    expect(result).toMatchObject({
      ok: true,
      publicKey: vapidFixture.publicKey,
      claims: { aud: vapidFixture.audience, exp: RFC8292.exp, sub: vapidFixture.subject },
    });
  });

  it('refuses it expired, too far ahead, for another audience, with another key, or altered', () => {
    expect(verifyVapidAuthorization(header, { ...at, nowSeconds: RFC8292.exp }).ok).toBe(false);
    expect(verifyVapidAuthorization(header, { ...at, nowSeconds: RFC8292.exp - 86_401 }).ok).toBe(false);
    expect(verifyVapidAuthorization(header, { ...at, audience: 'https://push.example.org' }).ok).toBe(false);
    expect(verifyVapidAuthorization(`vapid t=${RFC8292.jwt}, k=${RFC8291.asPublic}`, at).ok).toBe(false);
    const [h, c, s] = RFC8292.jwt.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'mailto:mallory@example.com' })).toString('base64url');
    expect(verifyVapidAuthorization(`vapid t=${h}.${forged}.${s}, k=${vapidFixture.publicKey}`, at).ok).toBe(false);
    expect(verifyVapidAuthorization(`WebPush ${RFC8292.jwt}`, at).ok).toBe(false);
    expect(verifyVapidAuthorization(undefined, at).ok).toBe(false);
  });

  it("the adapter's token verifies the same way", async () => {
    const emulator = await PushServiceEmulator.start();
    const sub = emulator.createSubscription('vapid-1');
    const carrier = createWebPushCarrier(sender(emulator.senderConfig), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    try {
      await carrier.send([pushRequest(sub.endpoint, sub.keys)]);
      const auth = emulator.received[0]?.authorization as string;
      expect(auth).toMatch(/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]{87}$/);
      const now = Math.floor(Date.now() / 1000);
      const check = verifyVapidAuthorization(auth, { audience: emulator.origin, nowSeconds: now });
      expect(check.ok).toBe(true);
      if (check.ok) expect(check.claims.exp - now).toBeGreaterThan(11 * 3600);
    } finally {
      await carrier.close?.();
      await emulator.close();
    }
  });
});

describe('webpush status table', () => {
  it('classifies every status of the table, consistently with its rule', () => {
    for (const [status, rule] of Object.entries(WEBPUSH_STATUS_CODES)) {
      const result = pushFailure(Number(status), 1000, 'detail');
      expect(result.ok).toBe(false);
      if (result.ok) continue;
      expect(result.retryable).toBe(rule.retryable);
      expect(result.error.code).toBe(rule.code);
      expect(result.error.class).toBe(rule.retryable ? 'ResourceError' : 'PermanentError');
      expect(result.error.message).toContain('detail');
      expect(rule.source.length).toBeGreaterThan(0);
    }
  });

  it('covers the statuses the RFCs and push services document', () => {
    expect(Object.keys(WEBPUSH_STATUS_CODES).map(Number).sort()).toEqual([
      400, 401, 403, 404, 410, 413, 429, 500, 502, 503, 504,
    ]);
  });

  it('spot checks by meaning', () => {
    expect(classifyPushStatus(410)).toMatchObject({ code: 'push_subscription_gone', retryable: false });
    expect(classifyPushStatus(404)).toMatchObject({ code: 'push_subscription_gone', retryable: false });
    expect(classifyPushStatus(429)).toMatchObject({ retryable: true });
    expect(classifyPushStatus(401)).toMatchObject({ retryable: false });
    expect(classifyPushStatus(413)).toMatchObject({ code: 'push_payload_too_large', retryable: false });
    expect(classifyPushStatus(599)).toMatchObject({ code: 'push_service_error', retryable: true });
    expect(classifyPushStatus(418)).toMatchObject({ code: 'push_request_rejected', retryable: false });
    expect(classifyPushStatus(302)).toMatchObject({ retryable: false });
    expect(pushFailure(429, 3000, '')).toMatchObject({ retryable: true, retryAfterMs: 3000 });
  });

  it('reads the push message id from Location', () => {
    const endpoint = new URL('https://push.example.net/p/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV');
    // RFC 8030 §5's example Location.
    expect(pushMessageIdFromLocation('https://push.example.net/d/qDIYHNcfAIPP_5ITvURr-d6BGtYnTRnk', endpoint)).toBe(
      'qDIYHNcfAIPP_5ITvURr-d6BGtYnTRnk',
    );
    expect(pushMessageIdFromLocation('/d/abc/', endpoint)).toBe('abc');
    expect(pushMessageIdFromLocation(undefined, endpoint)).toBeNull();
    expect(pushMessageIdFromLocation('https://push.example.net/', endpoint)).toBeNull();
  });
});

describe('webpush sender config', () => {
  const good = { publicKey: '', privateKey: '' };

  beforeAll(async () => {
    const emulator = await PushServiceEmulator.start();
    Object.assign(good, emulator.vapid);
    await emulator.close();
  });

  function configError(config: Record<string, unknown>): ValidationError {
    try {
      createWebPushCarrier(sender(config), { allowPrivateUrls: true, webhookUrl: 'https://omni.example/w' });
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return err as ValidationError;
    }
    throw new Error('expected a ValidationError');
  }

  const valid = () => ({
    vapidPublicKey: good.publicKey,
    vapidPrivateKey: good.privateKey,
    subject: 'mailto:ops@omni.example',
  });

  it('accepts a valid config', async () => {
    const carrier = createWebPushCarrier(sender({ ...valid(), subject: 'https://omni.example/contact' }), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    expect(carrier.provider).toBe('webpush');
    await carrier.close?.();
  });

  it('names the field of each invalid value', () => {
    expect(configError({ ...valid(), vapidPublicKey: undefined }).field).toBe('config.vapidPublicKey');
    expect(configError({ ...valid(), vapidPublicKey: 'BAAA' }).field).toBe('config.vapidPublicKey');
    expect(configError({ ...valid(), vapidPublicKey: vapidFixture.publicKey }).field).toBe('config.vapidPublicKey');
    expect(configError({ ...valid(), vapidPrivateKey: undefined }).field).toBe('config.vapidPrivateKey');
    expect(configError({ ...valid(), vapidPrivateKey: Buffer.alloc(32).toString('base64url') }).field).toBe(
      'config.vapidPrivateKey',
    );
    expect(configError({ ...valid(), subject: undefined }).field).toBe('config.subject');
    expect(configError({ ...valid(), subject: 'http://omni.example' }).field).toBe('config.subject');
    expect(configError({ ...valid(), subject: 'mailto:nobody' }).field).toBe('config.subject');
    expect(configError({ ...valid(), defaultTtlSeconds: -1 }).field).toBe('config.defaultTtlSeconds');
    expect(configError({ ...valid(), requestTimeoutMs: 10 }).field).toBe('config.requestTimeoutMs');
    expect(configError({ ...valid(), allowInsecureEndpoints: 'yes' }).field).toBe('config.allowInsecureEndpoints');
    expect(configError({ ...valid(), rateLimitPerSecond: 0.5 }).field).toBe('config.rateLimitPerSecond');
    expect(configError({ ...valid(), costPerMessage: -1 }).field).toBe('config.costPerMessage');
  });

  it('publishes a provider definition whose schema accepts valid configs and refuses unknown fields', () => {
    expect(webPushProvider).toMatchObject({ id: 'webpush', channels: ['push'], secretFields: ['vapidPrivateKey'] });
    const ajv = new Ajv({ strict: false });
    const validate = ajv.compile(webPushProvider.configSchema);
    expect(validate({ ...valid(), rateLimitPerSecond: 100, costPerMessage: 0, defaultTtlSeconds: 60 })).toBe(true);
    expect(validate({ ...valid(), allowInsecureEndpoints: true })).toBe(true);
    expect(validate({ ...valid(), baseUrl: 'https://x' })).toBe(false);
    expect(validate({ vapidPublicKey: good.publicKey })).toBe(false);
    const props = (webPushProvider.configSchema as { properties: Record<string, { description?: string }> }).properties;
    for (const [name, prop] of Object.entries(props)) expect(prop.description, name).toBeTruthy();
  });

  it('reports the configured cost on accepted messages', async () => {
    const emulator = await PushServiceEmulator.start();
    const sub = emulator.createSubscription('cost-1');
    const carrier = createWebPushCarrier(sender({ ...emulator.senderConfig, costPerMessage: 0.0001 }), {
      allowPrivateUrls: true,
      webhookUrl: 'https://omni.example/w',
    });
    try {
      const [result] = await carrier.send([pushRequest(sub.endpoint, sub.keys)]);
      expect(result).toMatchObject({ ok: true, cost: 0.0001 });
    } finally {
      await carrier.close?.();
      await emulator.close();
    }
  });
});
