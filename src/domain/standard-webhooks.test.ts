import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  formatWebhookSecret,
  parseWebhookEventId,
  secretKey,
  signWebhook,
  standardWebhookHeaders,
  webhookBody,
  webhookEventId,
} from './standard-webhooks.ts';

describe('Standard Webhooks signing', () => {
  it('matches the specification test vector', () => {
    expect(
      signWebhook(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        '{"test": 2432232314}',
      ),
    ).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('is accepted by the reference verifier for any body, id and secret', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 24, maxLength: 64 }), fc.string(), fc.nat(10_000), (key, text, n) => {
        const secret = formatWebhookSecret(key);
        const body = JSON.stringify({ text, n });
        const now = Date.now();
        const headers = standardWebhookHeaders([secret], webhookEventId(n + 1), now, body);
        expect(new Webhook(secret).verify(body, { ...headers })).toEqual({ text, n });
      }),
      { numRuns: 50 },
    );
  });

  it('signs with every secret during a rotation, and each verifies alone', () => {
    const current = formatWebhookSecret(randomBytes(32));
    const previous = formatWebhookSecret(randomBytes(32));
    const body = webhookBody('message.sent', Date.UTC(2026, 0, 2), '{"id":"msg_1"}');
    const headers = standardWebhookHeaders([current, previous], 'whe_7', Date.now(), body);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(current).verify(body, { ...headers })).toBeTruthy();
    expect(new Webhook(previous).verify(body, { ...headers })).toBeTruthy();
    const other = formatWebhookSecret(randomBytes(32));
    expect(() => new Webhook(other).verify(body, { ...headers })).toThrow(/No matching signature/);
  });

  it('rejects a tampered body', () => {
    const secret = formatWebhookSecret(randomBytes(32));
    const headers = standardWebhookHeaders([secret], 'whe_1', Date.now(), '{"a":1}');
    expect(() => new Webhook(secret).verify('{"a":2}', { ...headers })).toThrow();
  });

  it('puts the attempt time in whole seconds in webhook-timestamp', () => {
    const h = standardWebhookHeaders([formatWebhookSecret(randomBytes(32))], 'whe_1', 1_767_225_600_999, '{}');
    expect(h['webhook-timestamp']).toBe('1767225600');
    expect(h['webhook-id']).toBe('whe_1');
  });

  it('refuses malformed secrets and signing without one', () => {
    expect(() => secretKey('abc')).toThrow(/whsec_/);
    expect(() => secretKey('whsec_')).toThrow(/empty/);
    expect(() => standardWebhookHeaders([], 'whe_1', 0, '{}')).toThrow(/at least one/);
  });

  it('builds the body as type, timestamp and data', () => {
    expect(JSON.parse(webhookBody('message.delivered', Date.UTC(2026, 0, 1, 12), '{"id":"msg_1","n":[1]}'))).toEqual({
      type: 'message.delivered',
      timestamp: '2026-01-01T12:00:00.000Z',
      data: { id: 'msg_1', n: [1] },
    });
  });

  it('round-trips event ids and rejects anything else', () => {
    for (const n of [1, 42, 9_007_199_254_740]) expect(parseWebhookEventId(webhookEventId(n))).toBe(n);
    for (const bad of ['whe_', 'whe_0', 'whe_01', 'whe_-1', 'whe_1.5', 'evt_1', '1', 'whe_99999999999999999'])
      expect(parseWebhookEventId(bad)).toBeUndefined();
  });
});
