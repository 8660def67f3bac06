/**
 * Twilio voice: text-to-speech calls through the Calls resource, through the shared carrier contract and the
 * voice specifics (the TwiML sent, call-progress callbacks and how call statuses map to message statuses).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTwilioCarrier,
  sayTwiml,
  TWILIO_REFERENCE_PARAM,
} from '../../src/adapters/carriers/twilio/twilio-carrier.ts';
import type { Carrier, CarrierEvent, SenderRecord, SendRequest, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract } from './carrier-contract.ts';
import {
  checkTwiml,
  signTwilioRequest,
  TWILIO_NUMBERS,
  TWILIO_TEST_ACCOUNT_SID,
  TWILIO_TEST_AUTH_TOKEN,
  TwilioEmulator,
} from './emulators/twilio-emulator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const HANDSET = '+14155550123';

carrierContract({
  provider: 'twilio',
  channel: 'voice',
  from: TWILIO_NUMBERS.from,
  destinations: {
    delivered: HANDSET,
    rejected: TWILIO_NUMBERS.invalid,
    unavailable: TWILIO_NUMBERS.unavailable,
    throttled: TWILIO_NUMBERS.throttled,
    undeliverable: TWILIO_NUMBERS.undelivered,
  },
  async startEmulator() {
    const emulator = await TwilioEmulator.start();
    // Calls have no inbound messages: the voice subject offers no sendInbound.
    return {
      get senderConfig() {
        return emulator.senderConfig;
      },
      violations: emulator.violations,
      acceptedCount: () => emulator.acceptedCount(),
      close: () => emulator.close(),
    };
  },
  createCarrier: (sender, ctx) => createTwilioCarrier(sender, ctx),
  unsign: (r) => {
    const headers = { ...r.headers };
    delete headers['x-twilio-signature'];
    return { ...r, headers };
  },
});

function sender(config: Record<string, unknown>, from: string | null = TWILIO_NUMBERS.from): SenderRecord {
  return { id: 'snd_voice', orgId: 'org_1', provider: 'twilio', config, channels: ['voice'], from, priority: 0 };
}

describe('twilio voice calls', () => {
  const receiver = new WebhookReceiver();
  let emulator: TwilioEmulator;
  let webhookUrl: string;
  const carriers: Carrier[] = [];
  let seq = 0;

  beforeAll(async () => {
    await receiver.start();
    webhookUrl = `${receiver.url}/webhooks/twilio/snd_voice`;
    emulator = await TwilioEmulator.start();
  });

  beforeEach(() => {
    emulator.requests.length = 0;
    receiver.clear();
  });

  afterAll(async () => {
    for (const c of carriers) await c.close?.();
    await emulator?.close();
    await receiver.close();
  });

  function carrier(over: Record<string, unknown> = {}): Carrier {
    const c = createTwilioCarrier(sender({ ...emulator.senderConfig, ...over }), { webhookUrl });
    carriers.push(c);
    return c;
  }

  function call(over: Partial<SendRequest> = {}): SendRequest {
    seq++;
    return {
      messageId: `msg_voice_${seq}`,
      channel: 'voice',
      to: HANDSET,
      from: null,
      body: `Your code is ${seq}`,
      subject: null,
      attempt: 1,
      ...over,
    };
  }

  it('creates a call with inline TwiML and call-progress callbacks', async () => {
    const r = call({ body: `Tom & Jerry <say> "hi" it's`, options: { voice: { voice: 'Polly.Joanna', loop: 2 } } });
    const [result] = await carrier({ ttsLanguage: 'en-GB', ttsVoice: 'alice' }).send([r]);
    expect(result).toMatchObject({ ok: true });
    expect(result?.ok && result.providerMessageId).toMatch(/^CA[0-9a-f]{32}$/);
    expect(emulator.violations).toEqual([]);
    const [sent] = emulator.requests;
    expect(sent?.path).toBe(`/2010-04-01/Accounts/${TWILIO_TEST_ACCOUNT_SID}/Calls.json`);
    const twiml =
      '<Response><Say voice="Polly.Joanna" language="en-GB" loop="2">Tom &amp; Jerry &lt;say&gt; &quot;hi&quot; it&apos;s</Say></Response>';
    expect(sent?.form).toEqual({
      To: HANDSET,
      From: TWILIO_NUMBERS.from,
      Twiml: twiml,
      StatusCallback: `${webhookUrl}?${TWILIO_REFERENCE_PARAM}=${r.messageId}`,
      StatusCallbackMethod: 'POST',
      StatusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
    });
    expect(checkTwiml(twiml)).toBeNull();
  });

  it('builds valid TwiML from any text', () => {
    expect(sayTwiml('Hello')).toBe('<Response><Say>Hello</Say></Response>');
    expect(sayTwiml('a\u0001b', { language: 'de-DE', loop: -1 })).toBe(
      '<Response><Say language="de-DE">a b</Say></Response>',
    );
    expect(sayTwiml('x', { voice: 'a"b' })).toBe('<Response><Say voice="a&quot;b">x</Say></Response>');
    for (const text of ['<&>"\'', ']]>', '&amp;', 'line\nbreak', '😀 ünïcödé']) {
      expect(checkTwiml(sayTwiml(text, { voice: 'alice', language: 'en-US', loop: 1 })), text).toBeNull();
    }
  });

  it('refuses text whose TwiML would exceed Twilio’s 4,000 characters, and calls without a from', async () => {
    const results = await carrier().send([call({ body: '&'.repeat(900) }), call({ body: '  ' })]);
    expect(results.map((x) => !x.ok && x.error.code)).toEqual(['twiml_too_long', 'body_empty']);
    const [noFrom] = await createTwilioCarrier(sender(emulator.senderConfig, null), { webhookUrl }).send([call()]);
    expect(noFrom).toMatchObject({ ok: false, retryable: false, error: { code: 'missing_from' } });
    expect(emulator.requests).toEqual([]);
  });

  it('maps the progress of answered, busy, failed and unanswered calls', async () => {
    const c = carrier();
    const reqs = [
      call(),
      call({ to: TWILIO_NUMBERS.undelivered }),
      call({ to: TWILIO_NUMBERS.failed }),
      call({ to: TWILIO_NUMBERS.noAnswer }),
    ];
    const results = await c.send(reqs);
    expect(results.every((x) => x.ok)).toBe(true);
    const events = () => receiver.requests.flatMap((r) => c.parseWebhook(r));
    const of = (i: number) =>
      events().filter(
        (e): e is Extract<CarrierEvent, { kind: 'status' }> =>
          e.kind === 'status' && e.reference === reqs[i]?.messageId,
      );
    const settled = (i: number) => of(i).some((e) => ['delivered', 'undelivered', 'failed'].includes(e.status));
    await receiver.waitFor(() => reqs.every((_, i) => settled(i)));
    expect(of(0).map((e) => [e.status, e.detail?.callStatus])).toEqual([
      ['sent', 'initiated'],
      ['sent', 'ringing'],
      ['sent', 'in-progress'],
      ['delivered', 'completed'],
    ]);
    expect(new Set(of(0).map((e) => e.eventKey)).size).toBe(4);
    expect(of(0).every((e) => e.providerMessageId === (results[0]?.ok && results[0].providerMessageId))).toBe(true);
    expect(of(1).at(-1)).toMatchObject({
      status: 'undelivered',
      error: { code: 'call_busy', class: 'PermanentError' },
    });
    expect(of(2).at(-1)).toMatchObject({ status: 'failed', error: { code: 'call_failed' } });
    expect(of(3).at(-1)).toMatchObject({ status: 'undelivered', error: { code: 'call_no_answer' } });
    expect(emulator.violations).toEqual([]);
  });

  it('maps every call status of the Call resource', () => {
    const c = createTwilioCarrier(sender({ accountSid: TWILIO_TEST_ACCOUNT_SID, authToken: TWILIO_TEST_AUTH_TOKEN }), {
      webhookUrl: 'https://omni.example.com/webhooks/twilio/snd_voice',
    });
    const post = (fields: Record<string, string>): CarrierEvent[] => {
      const request: WebhookRequest = {
        method: 'POST',
        url: '/webhooks/twilio/snd_voice?omniRef=msg_1',
        headers: {
          'x-twilio-signature': signTwilioRequest(
            TWILIO_TEST_AUTH_TOKEN,
            'https://omni.example.com/webhooks/twilio/snd_voice?omniRef=msg_1',
            fields,
          ),
        },
        rawBody: Buffer.from(new URLSearchParams(fields).toString()),
      };
      return c.parseWebhook(request);
    };
    const base = {
      AccountSid: TWILIO_TEST_ACCOUNT_SID,
      CallSid: `CA${'1'.repeat(32)}`,
      Direction: 'outbound-api',
      From: TWILIO_NUMBERS.from,
      To: HANDSET,
      Timestamp: 'Tue, 31 Aug 2010 20:36:44 +0000',
      SequenceNumber: '0',
    };
    const expected: Record<string, string | null> = {
      queued: null,
      initiated: 'sent',
      ringing: 'sent',
      'in-progress': 'sent',
      completed: 'delivered',
      busy: 'undelivered',
      'no-answer': 'undelivered',
      failed: 'failed',
      canceled: 'failed',
    };
    for (const [callStatus, status] of Object.entries(expected)) {
      const events = post({ ...base, CallStatus: callStatus });
      if (status === null) {
        expect(events, callStatus).toEqual([]);
        continue;
      }
      expect(events[0], callStatus).toMatchObject({
        kind: 'status',
        status,
        reference: 'msg_1',
        providerMessageId: base.CallSid,
        occurredAt: Date.parse('2010-08-31T20:36:44Z'),
      });
    }
    expect(post({ ...base, CallStatus: 'failed', ErrorCode: '21211' })[0]).toMatchObject({
      error: { code: '21211', class: 'PermanentError' },
    });
    // Calls made to our number are not messages we sent.
    expect(post({ ...base, Direction: 'inbound', CallStatus: 'ringing' })).toEqual([]);
  });
});
