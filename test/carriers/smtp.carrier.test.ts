/**
 * The SMTP adapter against the SMTP emulator: the shared carrier contract (email has no delivery receipts, so
 * an accepted message ends at `sent` and the contract's callback checks are off), then SMTP specifics — the
 * reply-code / enhanced-status / nodemailer error tables, sender config validation, the exact message put on
 * the wire, the bounce (DSN) webhook end to end with its shared secret, both RFC 3464 example DSNs from the
 * fixtures, and replies as inbound messages.
 *
 * No signature known-answer test exists for this provider: the webhook is authenticated by a shared secret
 * (`Authorization: Bearer`), compared in constant time, which the tests exercise directly.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { Ajv } from 'ajv';
import { ERROR_CODES } from 'nodemailer/lib/errors';
import MailComposer from 'nodemailer/lib/mail-composer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDeliveryReport } from '../../src/adapters/carriers/smtp/dsn.ts';
import { decodeEncodedWords, parseContentType, parseMessage } from '../../src/adapters/carriers/smtp/mime.ts';
import {
  createSmtpCarrier,
  parseSmtpConfig,
  SMTP_CONFIG_SCHEMA,
  smtpMessageId,
  smtpProvider,
} from '../../src/adapters/carriers/smtp/smtp-carrier.ts';
import {
  classifyReply,
  classifySendError,
  describeEnhancedStatus,
  ENHANCED_STATUS_DETAILS,
  isEnhancedStatusRetryable,
  NODEMAILER_ERROR_CODES,
  SMTP_REPLY_CODES,
} from '../../src/adapters/carriers/smtp/smtp-errors.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type { Carrier, CarrierEvent, SenderRecord, SendRequest, WebhookRequest } from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  SMTP_EMULATOR_PASS,
  SMTP_EMULATOR_USER,
  SMTP_EMULATOR_WEBHOOK_SECRET,
  type SmtpEmulator,
  startSmtpEmulator,
} from './emulators/smtp-emulator.ts';
import { readFixture } from './support/openapi-validator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const FROM = 'support@acme.test';
const WEBHOOK_PATH = '/webhooks/smtp/snd_smtp';

carrierContract({
  provider: 'smtp',
  channel: 'email',
  from: FROM,
  destinations: {
    delivered: 'alice@deliver.test',
    rejected: 'nobody@reject.test',
    unavailable: 'someone@busy.test',
    throttled: 'someone@throttle.test',
    // Exercised below through the bounce webhook: the contract's receipt checks are off for SMTP.
    undeliverable: 'gone@bounce.test',
  },
  // SMTP reports nothing for a delivered message; only bounces come back (tested below).
  finalStatus: 'sent',
  callbacks: false,
  startEmulator: (webhookUrl) => startSmtpEmulator({ webhookUrl }),
  createCarrier: (sender, ctx) => createSmtpCarrier(sender, ctx),
});

function senderWith(config: Record<string, unknown>, from: string | null = FROM): SenderRecord {
  return { id: 'snd_smtp', orgId: 'org_smtp', provider: 'smtp', config, channels: ['email'], from, priority: 0 };
}

let seq = 0;
function message(to: string, over: Partial<SendRequest> = {}): SendRequest {
  seq++;
  return {
    messageId: `msg_smtp_${seq}_${Date.now()}`,
    channel: 'email',
    to,
    from: FROM,
    body: `Hello number ${seq}`,
    subject: `Subject ${seq}`,
    attempt: 1,
    ...over,
  };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('smtp error tables', () => {
  it('classifies every reply code of RFC 5321 §4.2.3, RFC 4954 and RFC 7504 by its class', () => {
    const codes = Object.keys(SMTP_REPLY_CODES).map(Number);
    expect(codes).toEqual(
      expect.arrayContaining([421, 450, 451, 452, 454, 455, 500, 501, 502, 503, 504, 521, 530, 535, 550, 551, 552]),
    );
    expect(codes).toEqual(expect.arrayContaining([553, 554, 555, 556, 432, 534, 538]));
    for (const code of codes) {
      const result = classifyReply({ replyCode: code, response: `${code} something` });
      expect(result.ok).toBe(false);
      if (result.ok) continue;
      // 4yz transient, 5yz permanent (RFC 5321 §4.2.1); 503 only says the session was out of step.
      expect(result.retryable, `reply ${code}`).toBe(code < 500 || code === 503);
      expect(result.error.code).toBe(`smtp_${code}`);
      expect(result.error.class).toBe(result.retryable ? 'ResourceError' : 'PermanentError');
    }
  });

  it('reads the meaning of replies by spot checks', () => {
    const unknownUser = classifyReply({
      replyCode: 550,
      response: '550 5.1.1 <x@y.test>: Recipient address rejected',
      command: 'RCPT TO',
    });
    expect(unknownUser).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: 'smtp_550_5.1.1', class: 'PermanentError' },
    });
    if (!unknownUser.ok) expect(unknownUser.error.message).toContain('RCPT TO: 550 5.1.1 <x@y.test>');
    const auth = classifyReply({ replyCode: 535, response: '535 5.7.8 Authentication credentials invalid' });
    expect(auth).toMatchObject({ ok: false, retryable: false, error: { code: 'smtp_535_5.7.8' } });
    if (!auth.ok) expect(auth.error.message).toMatch(/credentials/);
    expect(classifyReply({ replyCode: 421, response: '421 4.7.0 Try again later' })).toMatchObject({
      retryable: true,
      error: { code: 'smtp_421_4.7.0' },
    });
    expect(classifyReply({ replyCode: 452, response: '452 4.2.2 Mailbox full' })).toMatchObject({ retryable: true });
    expect(classifyReply({ replyCode: 552, response: '552 5.3.4 Message too big' })).toMatchObject({
      retryable: false,
    });
    expect(classifyReply({ replyCode: 554, response: '554 5.7.1 Relay access denied' })).toMatchObject({
      retryable: false,
      error: { code: 'smtp_554_5.7.1' },
    });
    // Codes no RFC lists follow their class digit.
    expect(classifyReply({ replyCode: 471, response: '471 later' })).toMatchObject({ retryable: true });
    expect(classifyReply({ replyCode: 571, response: '571 blocked' })).toMatchObject({ retryable: false });
  });

  it('gives every RFC 3463 enhanced status a meaning, retryable in class 4 only', () => {
    expect(Object.keys(ENHANCED_STATUS_DETAILS)).toHaveLength(54);
    for (const detail of Object.keys(ENHANCED_STATUS_DETAILS)) {
      expect(isEnhancedStatusRetryable(`4.${detail}`)).toBe(true);
      expect(isEnhancedStatusRetryable(`5.${detail}`)).toBe(false);
      expect(describeEnhancedStatus(`5.${detail}`)).toBe(ENHANCED_STATUS_DETAILS[detail]);
    }
    expect(describeEnhancedStatus('5.1.1')).toBe('Bad destination mailbox address');
    expect(describeEnhancedStatus('4.2.2')).toBe('Mailbox full');
    expect(describeEnhancedStatus('5.7.1')).toBe('Delivery not authorized, message refused');
    expect(describeEnhancedStatus('4.7.28')).toBe('Other or undefined security status');
    expect(describeEnhancedStatus('5.9.9')).toBe('Permanent failure');
  });

  it('classifies every nodemailer error code that carries no SMTP reply', () => {
    expect(Object.keys(NODEMAILER_ERROR_CODES).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, info] of Object.entries(NODEMAILER_ERROR_CODES)) {
      const result = classifySendError(Object.assign(new Error('boom'), { code }));
      expect(result).toMatchObject({ ok: false, retryable: info.retryable, error: { code: info.code } });
    }
    for (const code of ['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EABORT']) {
      expect(NODEMAILER_ERROR_CODES[code]?.retryable, code).toBe(true);
    }
    for (const code of ['EAUTH', 'ENOAUTH', 'EFILEACCESS', 'ECONFIG']) {
      expect(NODEMAILER_ERROR_CODES[code]?.retryable, code).toBe(false);
    }
    // An attachment URL refused for good is permanent; a server error there is not.
    expect(classifySendError({ code: 'EFETCH', message: 'Invalid status code 404' })).toMatchObject({
      retryable: false,
    });
    expect(classifySendError({ code: 'EFETCH', message: 'Invalid status code 503' })).toMatchObject({
      retryable: true,
    });
    // A reply wins over the local code; anything unknown is retryable.
    expect(
      classifySendError({ code: 'EENVELOPE', responseCode: 451, response: '451 4.3.0 Try later', command: 'RCPT TO' }),
    ).toMatchObject({ retryable: true, error: { code: 'smtp_451_4.3.0' } });
    expect(classifySendError(new Error('strange'))).toMatchObject({ retryable: true, error: { code: 'smtp_error' } });
  });
});

describe('smtp sender config', () => {
  const base = { host: 'smtp.example.com', webhookSecret: 'a-long-webhook-secret' };

  it('fills in defaults: submission port with STARTTLS required, 465 for implicit TLS', () => {
    expect(parseSmtpConfig(base)).toMatchObject({ port: 587, secure: false, requireTLS: true, ignoreTLS: false });
    expect(parseSmtpConfig({ ...base, secure: true })).toMatchObject({ port: 465, requireTLS: false });
    expect(parseSmtpConfig({ ...base, ignoreTLS: true, port: 25 })).toMatchObject({ port: 25, requireTLS: false });
    expect(parseSmtpConfig({ ...base, host: '[2001:db8::25]' }).host).toBe('2001:db8::25');
    expect(parseSmtpConfig({ ...base, host: '192.0.2.25' }).host).toBe('192.0.2.25');
  });

  it.each([
    [{ webhookSecret: base.webhookSecret }, 'config.host'],
    [{ ...base, host: 'smtp://smtp.example.com' }, 'config.host'],
    [{ ...base, host: 'smtp.example.com:587' }, 'config.host'],
    [{ ...base, host: 'abc:25' }, 'config.host'],
    [{ ...base, host: '-bad.example' }, 'config.host'],
    [{ ...base, port: 0 }, 'config.port'],
    [{ ...base, port: '587' }, 'config.port'],
    [{ ...base, secure: 'yes' }, 'config.secure'],
    [{ ...base, requireTLS: true, ignoreTLS: true }, 'config.requireTLS'],
    [{ ...base, user: 'me' }, 'config.pass'],
    [{ ...base, pass: 'secret' }, 'config.user'],
    [{ ...base, from: 'not an address' }, 'config.from'],
    [{ ...base, from: 'a@b.test, c@d.test' }, 'config.from'],
    [{ ...base, returnPath: 'bounces' }, 'config.returnPath'],
    [{ host: base.host }, 'config.webhookSecret'],
    [{ ...base, webhookSecret: 'short' }, 'config.webhookSecret'],
    [{ ...base, webhookSecret: 'has white space inside it' }, 'config.webhookSecret'],
    [{ ...base, connectionTimeoutMs: 5 }, 'config.connectionTimeoutMs'],
    [{ ...base, maxConnections: 500 }, 'config.maxConnections'],
    [{ ...base, costPerMessage: -1 }, 'config.costPerMessage'],
    [{ ...base, rateLimitPerSecond: 1.5 }, 'config.rateLimitPerSecond'],
    [{ ...base, baseUrl: 'https://smtp.example.com' }, 'config.baseUrl'],
  ])('refuses %j on %s', (config, field) => {
    const err = thrown(() => createSmtpCarrier(senderWith(config), { webhookUrl: 'https://omni.test/webhooks' }));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(field);
  });

  it('describes the config as a JSON Schema the emulator config and the defaults satisfy', async () => {
    expect(smtpProvider).toMatchObject({ id: 'smtp', channels: ['email'], secretFields: ['pass', 'webhookSecret'] });
    expect(SMTP_CONFIG_SCHEMA).toMatchObject({ additionalProperties: false, required: ['host', 'webhookSecret'] });
    const properties = SMTP_CONFIG_SCHEMA.properties as Record<string, { description?: string }>;
    for (const [name, p] of Object.entries(properties)) expect(p.description, name).toBeTruthy();
    expect(Object.keys(properties)).toEqual(expect.arrayContaining(['rateLimitPerSecond', 'costPerMessage']));
    const validate = new Ajv({ strict: false }).compile(SMTP_CONFIG_SCHEMA);
    const emulator = await startSmtpEmulator({ webhookUrl: 'http://127.0.0.1:9/unused' });
    try {
      expect(validate(emulator.senderConfig), JSON.stringify(validate.errors)).toBe(true);
      // Every field the schema allows is one the adapter takes.
      const all = {
        ...base,
        port: 2525,
        secure: false,
        requireTLS: false,
        ignoreTLS: true,
        user: 'u',
        pass: 'p',
        from: 'Acme <a@acme.test>',
        returnPath: 'bounces@acme.test',
        heloName: 'mta.acme.test',
        connectionTimeoutMs: 1000,
        greetingTimeoutMs: 1000,
        socketTimeoutMs: 1000,
        sendTimeoutMs: 1000,
        maxConnections: 2,
        rateLimitPerSecond: 10,
        costPerMessage: 0.0001,
      };
      expect(Object.keys(all).sort()).toEqual(Object.keys(properties).sort());
      expect(validate(all)).toBe(true);
      expect(() => parseSmtpConfig(all)).not.toThrow();
      expect(validate({ ...base, extra: 1 })).toBe(false);
    } finally {
      await emulator.close();
    }
  });

  it('builds Message-IDs from our id and the From domain', () => {
    expect(smtpMessageId('msg_01HZX', 'a@Acme.TEST')).toBe('<msg_01HZX@acme.test>');
    expect(smtpMessageId('has space', 'a@acme.test')).toBe(
      `<b64.${Buffer.from('has space').toString('base64url')}@acme.test>`,
    );
    expect(smtpMessageId('m1', 'a@bücher.example')).toBe('<m1@xn--bcher-kva.example>');
  });
});

describe('smtp carrier against the emulator', () => {
  const receiver = new WebhookReceiver();
  let emulator: SmtpEmulator;
  let carrier: Carrier;
  let media: Server;
  let mediaUrl = '';
  const logo = Buffer.from('89504e470d0a1a0a0000000d4948445200000001', 'hex');

  beforeAll(async () => {
    await receiver.start();
    emulator = await startSmtpEmulator({ webhookUrl: receiver.url + WEBHOOK_PATH });
    // The attachments come from a server on this machine: private addresses allowed (the guard has its own test).
    carrier = createSmtpCarrier(senderWith(emulator.senderConfig), {
      webhookUrl: receiver.url + WEBHOOK_PATH,
      allowPrivateUrls: true,
    });
    media = createServer((req, res) => {
      if (req.url === '/files/logo.png') res.writeHead(200, { 'content-type': 'image/png' }).end(logo);
      else res.writeHead(404).end('not found');
    });
    await new Promise<void>((resolve) => media.listen(0, '127.0.0.1', resolve));
    const address = media.address();
    mediaUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await carrier?.close?.();
    await emulator?.close();
    await receiver.close();
    await new Promise<void>((resolve) => media?.close(() => resolve()));
  });

  function lastMail() {
    const mail = emulator.messages[emulator.messages.length - 1];
    if (!mail) throw new Error('no message reached the emulator');
    return mail;
  }

  async function webhookFor(before: number): Promise<WebhookRequest> {
    await receiver.waitFor((r) => r.length > before);
    return receiver.requests[before] as WebhookRequest;
  }

  it('puts the exact message on the wire: headers, bodies, recipients, attachments, DSN parameters', async () => {
    const req = message('alice@deliver.test', {
      subject: 'Your order ✓ shipped',
      body: 'Plain text body',
      options: {
        email: {
          html: '<p>HTML <b>body</b></p>',
          replyTo: 'help@acme.test',
          cc: ['boss@deliver.test'],
          bcc: ['audit@deliver.test'],
        },
        mediaUrls: [`${mediaUrl}/files/logo.png`],
      },
    });
    const [result] = await carrier.send([req]);
    expect(result).toEqual({ ok: true, providerMessageId: `<${req.messageId}@acme.test>` });
    const mail = lastMail();
    expect(mail.user).toBe(SMTP_EMULATOR_USER);
    expect(mail.mailFrom).toBe(FROM);
    expect(mail.rcptTo).toEqual(['alice@deliver.test', 'boss@deliver.test', 'audit@deliver.test']);
    // RFC 3461: ENVID names our message, RET=HDRS, NOTIFY=FAILURE on every recipient.
    expect(mail.mailArgs).toMatchObject({ ENVID: req.messageId, RET: 'HDRS' });
    for (const args of mail.rcptArgs) expect(args).toMatchObject({ NOTIFY: 'FAILURE' });
    const p = mail.parsed;
    expect(p.messageId).toBe(`<${req.messageId}@acme.test>`);
    expect(p.headers.get('x-omni-message-id')).toBe(req.messageId);
    expect(p.from?.value).toEqual([{ address: FROM, name: '' }]);
    expect(p.subject).toBe('Your order ✓ shipped');
    expect(p.text?.trim()).toBe('Plain text body');
    expect(p.html).toBe('<p>HTML <b>body</b></p>');
    expect(p.replyTo?.value[0]?.address).toBe('help@acme.test');
    expect(p.headers.get('cc')).toBeTruthy();
    expect(mail.raw.toString('latin1')).not.toMatch(/^bcc:/im);
    expect(p.date).toBeInstanceOf(Date);
    expect(p.attachments).toHaveLength(1);
    expect(p.attachments[0]).toMatchObject({ filename: 'logo.png', contentType: 'image/png' });
    expect(Buffer.compare(p.attachments[0]?.content as Buffer, logo)).toBe(0);
  });

  it('uses the sender or config From when the message has none, and returnPath as the envelope sender', async () => {
    const other = createSmtpCarrier(
      senderWith(
        { ...emulator.senderConfig, from: 'Acme Support <help@acme.test>', returnPath: 'bounces@acme.test' },
        null,
      ),
      { webhookUrl: receiver.url + WEBHOOK_PATH },
    );
    try {
      const req = message('alice@deliver.test', { from: null });
      const [result] = await other.send([req]);
      expect(result).toEqual({ ok: true, providerMessageId: `<${req.messageId}@acme.test>` });
      expect(lastMail().mailFrom).toBe('bounces@acme.test');
      expect(lastMail().parsed.from?.value).toEqual([{ address: 'help@acme.test', name: 'Acme Support' }]);
    } finally {
      await other.close?.();
    }
    const [fromSender] = await carrier.send([message('alice@deliver.test', { from: null })]);
    expect(fromSender?.ok).toBe(true);
    expect(lastMail().parsed.from?.value[0]?.address).toBe(FROM);
  });

  it('refuses, without sending, what it cannot send: no From, local-file or bad attachments, other channels', async () => {
    const before = emulator.acceptedCount();
    const noFrom = createSmtpCarrier(senderWith(emulator.senderConfig, null), { webhookUrl: receiver.url });
    try {
      const [r] = await noFrom.send([message('alice@deliver.test', { from: null })]);
      expect(r).toMatchObject({ ok: false, retryable: false, error: { code: 'smtp_missing_from' } });
    } finally {
      await noFrom.close?.();
    }
    const results = await carrier.send([
      message('alice@deliver.test', { options: { mediaUrls: ['/etc/passwd'] } }),
      message('alice@deliver.test', { options: { mediaUrls: ['file:///etc/passwd'] } }),
      message('alice@deliver.test', { from: 'not an address' }),
      message('alice@deliver.test', { channel: 'sms' }),
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : `${r.retryable}:${r.error.code}`))).toEqual([
      'false:smtp_invalid_attachment',
      'false:smtp_invalid_attachment',
      'false:smtp_invalid_from',
      'false:smtp_unsupported_channel',
    ]);
    const [missing] = await carrier.send([
      message('alice@deliver.test', { options: { mediaUrls: [`${mediaUrl}/files/missing.png`] } }),
    ]);
    expect(missing).toMatchObject({ ok: false, retryable: false, error: { code: 'smtp_attachment_fetch_failed' } });
    // By default a worker fetches nothing from loopback or private networks (SSRF guard).
    const guarded = createSmtpCarrier(senderWith(emulator.senderConfig), { webhookUrl: receiver.url });
    try {
      const [refused] = await guarded.send([
        message('alice@deliver.test', { options: { mediaUrls: [`${mediaUrl}/files/logo.png`] } }),
      ]);
      expect(refused).toMatchObject({ ok: false, retryable: false, error: { code: 'smtp_attachment_refused' } });
    } finally {
      await guarded.close?.();
    }
    expect(emulator.acceptedCount()).toBe(before);
  });

  it('classifies each refusal of the emulator', async () => {
    const results = await carrier.send([
      message('a@reject.test'),
      message('b@busy.test'),
      message('c@throttle.test'),
      message('d@ratelimit.test'),
      message('e@full.test'),
      message('f@deliver.test'),
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : `${r.retryable}:${r.error.code}:${r.error.class}`))).toEqual([
      'false:smtp_550_5.1.1:PermanentError',
      'true:smtp_451_4.3.0:ResourceError',
      'true:smtp_421_4.4.2:ResourceError',
      'true:smtp_450_4.2.1:ResourceError',
      'true:smtp_452_4.2.2:ResourceError',
      'ok',
    ]);
  });

  it('fails permanently on wrong credentials (535) and on a message over the SIZE limit (552)', async () => {
    const wrong = createSmtpCarrier(senderWith({ ...emulator.senderConfig, pass: 'wrong-password' }), {
      webhookUrl: receiver.url,
    });
    try {
      const [r] = await wrong.send([message('alice@deliver.test')]);
      expect(r).toMatchObject({
        ok: false,
        retryable: false,
        error: { code: 'smtp_535_5.7.8', class: 'PermanentError' },
      });
    } finally {
      await wrong.close?.();
    }
    const small = await startSmtpEmulator({ webhookUrl: receiver.url, sizeLimit: 8_000 });
    const toSmall = createSmtpCarrier(senderWith(small.senderConfig), { webhookUrl: receiver.url });
    try {
      const [big] = await toSmall.send([message('alice@deliver.test', { body: 'x'.repeat(20_000) })]);
      expect(big).toMatchObject({ ok: false, retryable: false });
      if (big && !big.ok) expect(big.error.code).toMatch(/^smtp_552/);
      expect(small.acceptedCount()).toBe(0);
      expect(small.violations).toEqual([]);
    } finally {
      await toSmall.close?.();
      await small.close();
    }
  });

  it('fails retryably when the server never greets (timeout) or the port is closed', async () => {
    const silent: TcpServer = createTcpServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const mute = createSmtpCarrier(senderWith({ ...emulator.senderConfig, port, greetingTimeoutMs: 200 }), {
      webhookUrl: receiver.url,
    });
    const closed = createSmtpCarrier(senderWith({ ...emulator.senderConfig, port: 9 }), { webhookUrl: receiver.url });
    try {
      const [timedOut] = await mute.send([message('alice@deliver.test')]);
      expect(timedOut).toMatchObject({ ok: false, retryable: true, error: { code: 'smtp_timeout' } });
      const [refused] = await closed.send([message('alice@deliver.test')]);
      expect(refused).toMatchObject({ ok: false, retryable: true, error: { code: 'smtp_connection_failed' } });
    } finally {
      await mute.close?.();
      await closed.close?.();
      await new Promise<void>((resolve) => {
        silent.close(() => resolve());
        // the pending socket would keep the server open
        setTimeout(resolve, 50).unref();
      });
    }
  });

  it('turns a bounce into an undelivered event for the message, with the DSN status as error code', async () => {
    const before = receiver.requests.length;
    const req = message('gone@bounce.test');
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    if (!result?.ok) return;
    const webhook = await webhookFor(before);
    expect(webhook.headers['content-type']).toBe('message/rfc822');
    expect(webhook.headers.authorization).toBe(`Bearer ${SMTP_EMULATOR_WEBHOOK_SECRET}`);
    const events = carrier.parseWebhook(webhook);
    expect(events).toEqual([
      {
        kind: 'status',
        eventKey: expect.stringMatching(/^smtp:dsn:[0-9a-f]{32}:gone@bounce\.test:failed$/),
        providerMessageId: result.providerMessageId,
        reference: req.messageId,
        status: 'undelivered',
        error: {
          code: 'smtp_5.1.1',
          class: 'PermanentError',
          message: '550 5.1.1 <gone@bounce.test>: Recipient address rejected: User unknown in local recipient table',
        },
        occurredAt: expect.any(Number),
        detail: expect.objectContaining({ recipient: 'gone@bounce.test', action: 'failed', status: '5.1.1' }),
      },
    ]);
    // The same callback twice: the same key; another bounce: another key.
    const again = carrier.parseWebhook({ ...webhook, rawBody: Buffer.from(webhook.rawBody) });
    expect(again.map((e) => e.eventKey)).toEqual(events.map((e) => e.eventKey));
    const second = receiver.requests.length;
    await carrier.send([message('gone@bounce.test')]);
    const other = carrier.parseWebhook(await webhookFor(second));
    expect(other[0]?.eventKey).not.toBe(events[0]?.eventKey);
  });

  it('ignores a bounce for a Cc copy: the message is its To recipient', async () => {
    const before = receiver.requests.length;
    const [result] = await carrier.send([
      message('alice@deliver.test', { options: { email: { cc: ['gone@bounce.test'] } } }),
    ]);
    expect(result?.ok).toBe(true);
    const webhook = await webhookFor(before);
    expect(webhook.rawBody.toString()).toContain('Final-Recipient: rfc822; gone@bounce.test');
    expect(carrier.parseWebhook(webhook)).toEqual([]);
  });

  it('refuses a webhook without the shared secret, with a wrong one, and takes it by Basic auth', async () => {
    await receiver.waitFor((r) => r.length > 0);
    const authentic = receiver.requests[receiver.requests.length - 1] as WebhookRequest;
    const withAuth = (authorization?: string): WebhookRequest => {
      const headers = { ...authentic.headers };
      delete headers.authorization;
      return { ...authentic, headers: authorization === undefined ? headers : { ...headers, authorization } };
    };
    const missing = thrown(() => carrier.parseWebhook(withAuth()));
    expect(missing).toBeInstanceOf(AuthenticationError);
    expect((missing as AuthenticationError).code).toBe('webhook_signature_missing');
    for (const bad of [
      `Bearer ${SMTP_EMULATOR_WEBHOOK_SECRET}x`,
      'Bearer wrong',
      `Token ${SMTP_EMULATOR_WEBHOOK_SECRET}`,
      `Basic ${Buffer.from('user:wrong').toString('base64')}`,
    ]) {
      expectAuthFailure(() => carrier.parseWebhook(withAuth(bad)));
    }
    const invalid = thrown(() => carrier.parseWebhook(withAuth('Bearer nope')));
    expect((invalid as AuthenticationError).code).toBe('webhook_signature_invalid');
    const basic = `Basic ${Buffer.from(`mta:${SMTP_EMULATOR_WEBHOOK_SECRET}`).toString('base64')}`;
    expect(() => carrier.parseWebhook(withAuth(basic))).not.toThrow();
  });

  it('asks for failure DSNs only, and records nothing for a delayed-delivery DSN', async () => {
    const before = receiver.requests.length;
    const [result] = await carrier.send([message('slow@delay.test')]);
    expect(result?.ok).toBe(true);
    const mail = lastMail();
    expect(mail.rcptArgs[0]?.NOTIFY).toBe('FAILURE');
    await emulator.settle();
    // NOTIFY=FAILURE: the relay sends no delay notice (RFC 3461 §4.1)...
    expect(receiver.requests.length).toBe(before);
    // ...and one sent anyway (an MTA that ignores NOTIFY) changes nothing.
    const delayed = emulator.buildDsn(mail, 'slow@delay.test', 'delayed', {});
    expect(delayed.toString()).toContain('Action: delayed');
    expect(await emulator.postRaw(delayed)).toBe(200);
    expect(carrier.parseWebhook(await webhookFor(before))).toEqual([]);
  });

  it('refuses payloads that are not a raw message or not a readable report', () => {
    const auth = { authorization: `Bearer ${SMTP_EMULATOR_WEBHOOK_SECRET}` };
    const post = (body: string, contentType = 'message/rfc822'): WebhookRequest => ({
      method: 'POST',
      url: WEBHOOK_PATH,
      headers: { ...auth, 'content-type': contentType },
      rawBody: Buffer.from(body),
    });
    const cases: WebhookRequest[] = [
      post('{"from":"a@b.test"}', 'application/json'),
      post(''),
      post('just some words without a header'),
      post(
        'From: x@y.test\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n',
      ),
      post('To: us@acme.test\r\nSubject: no sender\r\n\r\nhello'),
    ];
    for (const c of cases) {
      const err = thrown(() => carrier.parseWebhook(c));
      expect(err, c.rawBody.toString()).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('invalid_webhook_payload');
    }
  });

  describe('the RFC 3464 example DSNs (fixtures smtp/dsn-rfc3464-example*.eml)', () => {
    const original = (crlf: boolean) =>
      ['Message-ID: <msg_fixture@acme.test>', 'X-Omni-Message-Id: msg_fixture', 'Subject: Original', ''].join(
        crlf ? '\r\n' : '\n',
      );
    const withOriginal = (raw: string, crlf: boolean) => raw.replace('[original message goes here]', original(crlf));

    async function postAndParse(raw: string): Promise<CarrierEvent[]> {
      const before = receiver.requests.length;
      expect(await emulator.postRaw(Buffer.from(raw, 'latin1'))).toBe(200);
      return carrier.parseWebhook(await webhookFor(before));
    }

    it('reads example 1 (a failed recipient after a 4.0.0 timeout)', async () => {
      const raw = readFixture('smtp/dsn-rfc3464-example1.eml');
      const dsn = readDeliveryReport(parseMessage(Buffer.from(raw, 'latin1')));
      expect(dsn).toMatchObject({
        messageId: '<199407072116.RAA14128@CS.UTK.EDU>',
        reportingMta: 'cs.utk.edu',
        original: null,
        recipients: [
          {
            originalRecipient: 'louisl@larry.slip.umd.edu',
            finalRecipient: 'louisl@larry.slip.umd.edu',
            action: 'failed',
            status: '4.0.0',
            diagnosticType: 'smtp',
            diagnosticCode: '426 connection timed out',
            lastAttemptDate: Date.parse('1994-07-07T17:15:49-04:00'),
          },
        ],
      });
      // Verbatim, nothing names the original message: no event could ever be matched, so none is made.
      expect(await postAndParse(raw)).toEqual([]);
      const events = await postAndParse(withOriginal(raw, true));
      expect(events).toEqual([
        expect.objectContaining({
          kind: 'status',
          providerMessageId: '<msg_fixture@acme.test>',
          reference: 'msg_fixture',
          status: 'undelivered',
          // The MTA gave up on a transient (class 4) condition.
          error: { code: 'smtp_4.0.0', class: 'ResourceError', message: '426 connection timed out' },
          occurredAt: Date.parse('1994-07-07T17:15:49-04:00'),
        }),
      ]);
    });

    it('reads example 2 (two failed recipients, one delayed)', async () => {
      const raw = readFixture('smtp/dsn-rfc3464-example2.eml');
      const dsn = readDeliveryReport(parseMessage(Buffer.from(raw, 'latin1')));
      expect(dsn?.recipients.map((r) => [r.finalRecipient, r.action, r.status, r.diagnosticCode])).toEqual([
        ['arathib@vnet.ibm.com', 'failed', '5.0.0', "550 'arathib@vnet.IBM.COM' is not a registered gateway user"],
        ['johnh@hpnjld.njd.hp.com', 'delayed', '4.0.0', null],
        ['wsnell@sdcc13.ucsd.edu', 'failed', '5.0.0', '550 user unknown'],
      ]);
      expect(dsn?.recipients[0]?.remoteMta).toBe('vnet.ibm.com');
      const events = await postAndParse(withOriginal(raw, false));
      expect(
        events.map((e) => (e.kind === 'status' ? [e.status, e.providerMessageId, e.error?.code, e.error?.message] : e)),
      ).toEqual([
        [
          'undelivered',
          '<msg_fixture@acme.test>',
          'smtp_5.0.0',
          "550 'arathib@vnet.IBM.COM' is not a registered gateway user",
        ],
        ['undelivered', '<msg_fixture@acme.test>', 'smtp_5.0.0', '550 user unknown'],
      ]);
      expect(new Set(events.map((e) => e.eventKey)).size).toBe(2);
      expect(events.every((e) => e.kind === 'status' && e.error?.class === 'PermanentError')).toBe(true);
    });

    it('reports delivered for delivered/relayed actions and falls back to Original-Envelope-Id', async () => {
      const raw = readFixture('smtp/dsn-rfc3464-example2.eml')
        .replace('Reporting-MTA: dns; cs.utk.edu', 'Reporting-MTA: dns; cs.utk.edu\nOriginal-Envelope-Id: msg_envid')
        .replace('Action: failed', 'Action: relayed')
        .replace(/Action: failed/g, 'Action: delivered')
        .replace('Status: 5.0.0 (permanent failure)', 'Status: 2.0.0');
      const events = await postAndParse(raw);
      expect(events.map((e) => (e.kind === 'status' ? [e.status, e.reference, e.providerMessageId] : e))).toEqual([
        ['delivered', 'msg_envid', null],
        ['delivered', 'msg_envid', null],
      ]);
    });
  });

  describe('replies', () => {
    async function inbound(input: Parameters<NonNullable<SmtpEmulator['sendInbound']>>[0]): Promise<CarrierEvent> {
      const before = receiver.requests.length;
      await emulator.sendInbound(input);
      const events = carrier.parseWebhook(await webhookFor(before));
      expect(events).toHaveLength(1);
      return events[0] as CarrierEvent;
    }

    it('becomes an inbound message with sender, recipient, text and subject', async () => {
      const event = await inbound({
        from: 'carol@customer.test',
        to: FROM,
        body: 'Thanks! STOP',
        subject: 'Re: Your order',
        inReplyTo: '<msg_1@acme.test>',
      });
      expect(event).toEqual({
        kind: 'inbound',
        eventKey: expect.stringMatching(/^smtp:in:<reply\.\d+\.\d+@customer\.test>$/),
        providerMessageId: expect.stringMatching(/^<reply\.\d+\.\d+@customer\.test>$/),
        channel: 'email',
        from: 'carol@customer.test',
        to: FROM,
        body: 'Thanks! STOP',
        occurredAt: expect.any(Number),
        detail: { subject: 'Re: Your order', inReplyTo: '<msg_1@acme.test>', references: ['<msg_1@acme.test>'] },
      });
    });

    it('decodes encoded words, quoted-printable and HTML-only bodies', async () => {
      const unicode = await inbound({
        from: 'dana@customer.test',
        to: FROM,
        body: 'Merci beaucoup — ça marche ✓',
        subject: 'Réponse: ça marche',
      });
      expect(unicode).toMatchObject({
        body: 'Merci beaucoup — ça marche ✓',
        detail: { subject: 'Réponse: ça marche' },
      });

      const htmlOnly = await new MailComposer({
        from: '"Ève Example" <eve@customer.test>',
        to: FROM,
        subject: 'html',
        html: '<html><body><p>Yes &amp; please</p><p>call me<br>tomorrow</p></body></html>',
        messageId: '<html-1@customer.test>',
      })
        .compile()
        .build();
      const before = receiver.requests.length;
      await emulator.postRaw(htmlOnly);
      const [event] = carrier.parseWebhook(await webhookFor(before));
      expect(event).toMatchObject({
        kind: 'inbound',
        from: 'eve@customer.test',
        body: 'Yes & please\ncall me\ntomorrow',
        detail: { fromName: 'Ève Example' },
      });
    });

    it('reads a base64 body in its declared charset and lists attachments', async () => {
      const raw = [
        'From: frank@customer.test',
        `To: ${FROM}`,
        'Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= =?ISO-8859-1?Q?_aus_K=F6ln?=',
        'Message-ID: <b64-1@customer.test>',
        'Date: Tue, 3 Mar 2026 10:00:00 +0100',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="outer"',
        '',
        '--outer',
        'Content-Type: text/plain; charset=iso-8859-1',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('Schöne Grüße', 'latin1').toString('base64'),
        '--outer',
        'Content-Type: application/pdf',
        "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('%PDF-1.4').toString('base64'),
        '--outer--',
        '',
      ].join('\r\n');
      const before = receiver.requests.length;
      await emulator.postRaw(Buffer.from(raw, 'latin1'));
      const [event] = carrier.parseWebhook(await webhookFor(before));
      expect(event).toMatchObject({
        kind: 'inbound',
        body: 'Schöne Grüße',
        occurredAt: Date.parse('2026-03-03T09:00:00Z'),
        detail: {
          subject: 'Grüße aus Köln',
          attachments: [{ filename: 'résumé.pdf', contentType: 'application/pdf', size: 8 }],
        },
      });
    });

    it('drops auto-replies (RFC 3834) and other reports, keeps the same key for the same reply', async () => {
      const auto = await new MailComposer({
        from: 'gina@customer.test',
        to: FROM,
        subject: 'Out of office',
        text: 'I am away',
        headers: { 'Auto-Submitted': 'auto-replied' },
      })
        .compile()
        .build();
      const before = receiver.requests.length;
      await emulator.postRaw(auto);
      expect(carrier.parseWebhook(await webhookFor(before))).toEqual([]);
      const mdn = [
        'From: hank@customer.test',
        `To: ${FROM}`,
        'Subject: Read: hello',
        'Content-Type: multipart/report; report-type=disposition-notification; boundary=m',
        '',
        '--m',
        'Content-Type: message/disposition-notification',
        '',
        'Disposition: manual-action/MDN-sent-manually; displayed',
        '--m--',
      ].join('\r\n');
      const second = receiver.requests.length;
      await emulator.postRaw(Buffer.from(mdn));
      const webhook = await webhookFor(second);
      expect(carrier.parseWebhook(webhook)).toEqual([]);

      const third = receiver.requests.length;
      await emulator.sendInbound({ from: 'ivy@customer.test', to: FROM, body: 'same' });
      const reply = await webhookFor(third);
      const a = carrier.parseWebhook(reply);
      const b = carrier.parseWebhook({ ...reply, rawBody: Buffer.from(reply.rawBody) });
      expect(a.map((e) => e.eventKey)).toEqual(b.map((e) => e.eventKey));
    });
  });

  it('has an emulator that refuses and records what the RFCs forbid', async () => {
    const strict = await startSmtpEmulator({ webhookUrl: receiver.url });
    const connect = async (auth: boolean) => {
      const conn = new SMTPConnection({ host: '127.0.0.1', port: strict.senderConfig.port as number, ignoreTLS: true });
      await new Promise<void>((resolve, reject) => conn.connect((err) => (err ? reject(err) : resolve())));
      if (auth) {
        await new Promise<void>((resolve, reject) =>
          conn.login({ user: SMTP_EMULATOR_USER, pass: SMTP_EMULATOR_PASS }, (err) => (err ? reject(err) : resolve())),
        );
      }
      return conn;
    };
    const send = (conn: SMTPConnection, raw: string) =>
      new Promise<{ responseCode?: number } | null>((resolve) =>
        conn.send({ from: FROM, to: ['bob@deliver.test'] }, raw, (err) => resolve(err)),
      );
    try {
      // No AUTH before MAIL (RFC 4954): smtp-server answers 530, recorded.
      const anonymous = await connect(false);
      expect(await send(anonymous, 'Subject: x\r\n\r\nbody')).toMatchObject({ responseCode: 530 });
      anonymous.close();
      expect(strict.violations.some((v) => v.includes('530'))).toBe(true);
      // No Date, no From, no Message-ID (RFC 5322 §3.6), a line over 998 characters (§2.1.1): refused, recorded.
      const authed = await connect(true);
      const raw = `To: bob@deliver.test\r\nSubject: x\r\n\r\n${'y'.repeat(1200)}\r\n`;
      expect(await send(authed, raw)).toMatchObject({ responseCode: 554 });
      authed.close();
      const found = strict.violations.join('\n');
      expect(found).toMatch(/0 date fields/);
      expect(found).toMatch(/0 from fields/);
      expect(found).toMatch(/no message-id field/);
      expect(found).toMatch(/998/);
      expect(strict.acceptedCount()).toBe(0);
    } finally {
      await strict.close();
    }
  });

  it('broke no SMTP rule in any of the above', () => {
    expect(emulator.violations).toEqual([]);
  });
});

describe('mime reading', () => {
  it('joins adjacent encoded words and resolves RFC 2231 parameters', () => {
    expect(decodeEncodedWords('=?UTF-8?B?SGVsbG8g?= =?UTF-8?Q?W=C3=B6rld?= and more')).toBe('Hello Wörld and more');
    expect(parseContentType('Text/Plain; charset="ISO-8859-1"; format=flowed')).toEqual({
      type: 'text/plain',
      params: { charset: 'ISO-8859-1', format: 'flowed' },
    });
    expect(parseContentType("application/x-stuff; title*0*=us-ascii'en'This%20is; title*1*=%20fun").params.title).toBe(
      'This is fun',
    );
    expect(parseContentType(undefined).type).toBe('text/plain');
  });
});
