/**
 * The Lob letters adapter against the Lob emulator: the shared carrier contract, then Lob specifics — the
 * documented error codes, the exact letter request, the PDF, idempotent retries, webhook signatures and events,
 * and sender config validation.
 *
 * Sources are the lob/lob-openapi specification (https://docs.lob.com) and Lob's Help Center; see the header of
 * test/carriers/emulators/lob-emulator.ts. Lob publishes no webhook signature example with a known answer, so
 * signatures are tested as sign/verify round trips against the emulator's independent signer, plus tampering.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inflateSync } from 'node:zlib';
import { Ajv } from 'ajv';
import PDFDocument from 'pdfkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FIRST_PAGE_CONTENT_TOP,
  LETTER_PAGE,
  renderLetterPdf,
  winAnsi,
} from '../../src/adapters/carriers/lob/letter-pdf.ts';
import {
  createLobCarrier,
  encodeMultipart,
  LOB_DEFAULT_BASE_URL,
  lobProvider,
} from '../../src/adapters/carriers/lob/lob-carrier.ts';
import { isRetryableLobError, LOB_ERROR_CODES } from '../../src/adapters/carriers/lob/lob-errors.ts';
import { lobSignature, lobTimestampMs, parseLobEvent } from '../../src/adapters/carriers/lob/lob-webhook.ts';
import { AuthenticationError, ValidationError } from '../../src/domain/errors.ts';
import type {
  Carrier,
  CarrierEvent,
  PostalAddress,
  SenderRecord,
  SendRequest,
  WebhookRequest,
} from '../../src/ports/carrier.ts';
import { carrierContract, expectAuthFailure } from './carrier-contract.ts';
import {
  inspectPdf,
  LOB_EMULATOR_API_KEY,
  LOB_EMULATOR_RETURN_ADDRESS,
  LOB_EMULATOR_WEBHOOK_SECRET,
  LobEmulator,
  lobWebhookHeaders,
  signLobWebhook,
} from './emulators/lob-emulator.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

const ADA: PostalAddress = {
  name: 'Ada Lovelace',
  line1: '185 Berry St',
  line2: 'Ste 400',
  city: 'San Francisco',
  state: 'CA',
  postalCode: '94107',
  country: 'US',
};

/**
 * Where each contract recipient lives. The contract gives every request the same `options`, while a print
 * recipient's address travels in `options.print.to`; the subject resolves each recipient (`to`) to its address,
 * as the product's API does when it accepts a print message. The addresses follow the emulator's rules.
 */
const CONTRACT_RECIPIENTS: Record<string, PostalAddress> = {
  'Ada Lovelace': ADA,
  'Rex Rejected': { ...ADA, name: 'Rex Rejected', postalCode: '00000' },
  'Una Unavailable': { ...ADA, name: 'Una Unavailable', line1: '1 Service Unavailable Way' },
  'Theo Throttled': { ...ADA, name: 'Theo Throttled', line1: '1 Rate Limit Rd' },
  'Uri Undeliverable': { ...ADA, name: 'Uri Undeliverable', line1: '1 Undeliverable Ln' },
};

function withRecipientAddresses(carrier: Carrier): Carrier {
  return {
    provider: carrier.provider,
    send: (requests) =>
      carrier.send(
        requests.map((r) => {
          const to = CONTRACT_RECIPIENTS[r.to];
          return to ? { ...r, options: { ...r.options, print: { ...r.options?.print, to } } } : r;
        }),
      ),
    parseWebhook: (request) => carrier.parseWebhook(request),
    close: () => carrier.close?.() ?? Promise.resolve(),
  };
}

carrierContract({
  provider: 'lob',
  channel: 'print',
  from: null,
  destinations: {
    delivered: 'Ada Lovelace',
    rejected: 'Rex Rejected',
    unavailable: 'Una Unavailable',
    throttled: 'Theo Throttled',
    undeliverable: 'Uri Undeliverable',
  },
  startEmulator: (webhookUrl) => LobEmulator.start({ webhookUrl, delayMs: 5 }),
  createCarrier: (sender, ctx) => withRecipientAddresses(createLobCarrier(sender, ctx)),
  unsign(request) {
    const headers = { ...request.headers };
    delete headers['lob-signature'];
    return { ...request, headers };
  },
});

function sender(config: Record<string, unknown>, over: Partial<SenderRecord> = {}): SenderRecord {
  return {
    id: 'snd_lob',
    orgId: 'org_lob',
    provider: 'lob',
    config,
    channels: ['print'],
    from: null,
    priority: 0,
    ...over,
  };
}

let seq = 0;
function printRequest(over: Partial<SendRequest> = {}, to: PostalAddress = ADA): SendRequest {
  seq++;
  return {
    messageId: `msg_lob_${seq}_${Date.now()}`,
    channel: 'print',
    to: 'Ada Lovelace (customer 42)',
    from: null,
    subject: 'Your account statement',
    body: 'Dear Ada,\n\nYour statement for March is ready.\n\nKind regards,\nThe Team',
    attempt: 1,
    options: { print: { to } },
    ...over,
  };
}

/** The decompressed content stream of each page, in page order. */
function pageContents(pdf: Buffer): string[] {
  const text = pdf.toString('latin1');
  const objects = new Map<string, string>();
  for (const m of text.matchAll(/(\d+) (\d+) obj\b([\s\S]*?)\bendobj\b/g))
    objects.set(`${m[1]} ${m[2]}`, m[3] as string);
  const root = [...objects.values()].find((d) => /\/Type \/Pages\b/.test(d) && !/\/Parent\b/.test(d)) ?? '';
  const kids = [...(/\/Kids \[([^\]]*)\]/.exec(root)?.[1] ?? '').matchAll(/(\d+) (\d+) R/g)].map(
    (k) => `${k[1]} ${k[2]}`,
  );
  return kids.map((kid) => {
    const page = objects.get(kid) ?? '';
    const ref = /\/Contents (\d+) (\d+) R/.exec(page);
    const stream = objects.get(`${ref?.[1]} ${ref?.[2]}`) ?? '';
    const raw = /stream\r?\n([\s\S]*?)\r?\nendstream/.exec(stream)?.[1] ?? '';
    return inflateSync(Buffer.from(raw, 'latin1')).toString('latin1');
  });
}

/** Text shown on a page (WinAnsi bytes as latin1), with pdfkit's kerning adjustments joined up. */
function shownText(content: string): string {
  return [...content.matchAll(/\[([^\]]*)\] TJ/g)]
    .map((m) =>
      [...(m[1] as string).matchAll(/<([0-9a-f]*)>/g)]
        .map((h) => Buffer.from(h[1] as string, 'hex').toString('latin1'))
        .join(''),
    )
    .join('\n');
}

/** Baselines (PDF user space, origin bottom-left) of the text lines on a page. */
function textBaselines(content: string): number[] {
  return [...content.matchAll(/1 0 0 1 [\d.]+ ([\d.]+) Tm/g)].map((m) => Number(m[1]));
}

describe('lob: documented error codes', () => {
  // The three code enums of lob/lob-openapi shared/models/errors/{generic,authentication,advanced}.yml with the
  // HTTP statuses their descriptions give (API reference, section "Errors").
  const DOCUMENTED: Record<string, number[]> = {
    bad_request: [422],
    conflict: [409, 422],
    feature_limit_reached: [403],
    internal_server_error: [500],
    invalid: [422],
    not_deletable: [422],
    not_found: [404],
    request_timeout: [408],
    service_unavailable: [503],
    unrecognised_endpoint: [404],
    unsupported_lob_version: [422],
    email_required: [401],
    invalid_api_key: [401, 403],
    publishable_key_not_allowed: [403],
    rate_limit_exceeded: [429],
    unauthorized: [401],
    unauthorized_token: [401],
    address_length_exceeds_limit: [422],
    bank_account_already_verified: [422],
    bank_error: [422],
    custom_envelope_inventory_depleted: [422],
    deleted_bank_account: [404],
    failed_deliverability_strictness: [422],
    file_pages_below_min: [422],
    file_pages_exceed_max: [422],
    file_size_exceeds_limit: [422],
    foreign_return_address: [422],
    inconsistent_page_dimensions: [422],
    invalid_bank_account: [422],
    invalid_bank_account_verification: [422],
    invalid_check_international: [422],
    invalid_country_covid: [422],
    invalid_file: [422],
    invalid_file_dimensions: [422],
    invalid_file_download_time: [422],
    invalid_file_url: [422],
    invalid_image_dpi: [422],
    invalid_international_feature: [422],
    invalid_perforation_return_envelope: [422],
    invalid_template_html: [422],
    merge_variable_required: [422],
    merge_variable_whitespace: [422],
    payment_method_unverified: [401],
    pdf_encrypted: [422],
    special_characters_restricted: [422],
    unembedded_fonts: [422],
  };

  it('classifies every documented code with its documented statuses', () => {
    for (const [code, statuses] of Object.entries(DOCUMENTED)) {
      expect(LOB_ERROR_CODES[code], code).toBeDefined();
      expect(LOB_ERROR_CODES[code]?.statuses, code).toEqual(statuses);
      expect(typeof LOB_ERROR_CODES[code]?.retryable, code).toBe('boolean');
    }
  });

  it('retries only passing conditions', () => {
    const retryable = Object.entries(LOB_ERROR_CODES)
      .filter(([, v]) => v.retryable)
      .map(([k]) => k)
      .sort();
    expect(retryable).toEqual([
      'internal_server_error',
      'invalid_file_download_time',
      'rate_limit_exceeded',
      'request_timeout',
      'service_unavailable',
    ]);
    expect(isRetryableLobError('failed_deliverability_strictness', 422)).toBe(false);
    expect(isRetryableLobError('INTERNAL_SERVER_ERROR', 500)).toBe(true);
    expect(isRetryableLobError('rate_limit_exceeded', 429)).toBe(true);
    // Credentials and account refusals are final whatever code comes with them.
    expect(isRetryableLobError('internal_server_error', 401)).toBe(false);
    expect(isRetryableLobError('invalid_api_key', 403)).toBe(false);
    // Codes Lob adds later follow their status.
    expect(isRetryableLobError('some_new_code', 502)).toBe(true);
    expect(isRetryableLobError(undefined, 504)).toBe(true);
    expect(isRetryableLobError('some_new_code', 422)).toBe(false);
  });
});

describe('lob: letters', () => {
  const receiver = new WebhookReceiver();
  let emulator: LobEmulator;
  let carrier: Carrier;

  beforeAll(async () => {
    await receiver.start();
    emulator = await LobEmulator.start({ webhookUrl: `${receiver.url}/webhooks/lob/snd_lob`, delayMs: 2 });
    carrier = createLobCarrier(sender(emulator.senderConfig), { webhookUrl: `${receiver.url}/webhooks/lob/snd_lob` });
  });

  afterAll(async () => {
    await carrier?.close?.();
    await emulator?.close();
    await receiver.close();
  });

  it('sends the letter request Lob documents', async () => {
    const req = printRequest();
    const before = emulator.requests.length;
    const [result] = await carrier.send([req]);
    expect(result).toMatchObject({ ok: true });
    expect(emulator.violations).toEqual([]);
    expect(emulator.requests).toHaveLength(before + 1);
    const sent = emulator.requests[before];
    if (!result?.ok || !sent) throw new Error('no letter');
    expect(result.providerMessageId).toMatch(/^ltr_[0-9a-f]{16}$/);
    expect(result.cost).toBeNull();
    expect(sent.method).toBe('POST');
    expect(sent.path).toBe('/v1/letters');
    expect(sent.headers.authorization).toBe(`Basic ${Buffer.from(`${LOB_EMULATOR_API_KEY}:`).toString('base64')}`);
    expect(sent.headers['idempotency-key']).toBe(req.messageId);
    expect(sent.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent.fields).toEqual({
      description: 'Ada Lovelace (customer 42)',
      'to[name]': 'Ada Lovelace',
      'to[address_line1]': '185 Berry St',
      'to[address_line2]': 'Ste 400',
      'to[address_city]': 'San Francisco',
      'to[address_state]': 'CA',
      'to[address_zip]': '94107',
      'to[address_country]': 'US',
      'from[name]': LOB_EMULATOR_RETURN_ADDRESS.name,
      'from[address_line1]': LOB_EMULATOR_RETURN_ADDRESS.line1,
      'from[address_line2]': LOB_EMULATOR_RETURN_ADDRESS.line2,
      'from[address_city]': LOB_EMULATOR_RETURN_ADDRESS.city,
      'from[address_state]': LOB_EMULATOR_RETURN_ADDRESS.state,
      'from[address_zip]': LOB_EMULATOR_RETURN_ADDRESS.postalCode,
      'from[address_country]': 'US',
      color: 'false',
      double_sided: 'true',
      address_placement: 'top_first_page',
      use_type: 'operational',
      'metadata[omni_message_id]': req.messageId,
    });
    expect(sent.file?.filename).toBe('letter.pdf');
    expect(sent.file?.contentType).toBe('application/pdf');
    const letter = emulator.letters.get(result.providerMessageId);
    expect(letter?.metadata).toEqual({ omni_message_id: req.messageId });
  });

  it('renders the message as a US Letter PDF with the text below the address block', async () => {
    const req = printRequest({ subject: 'Statement “March” — €12', body: 'Zażółć gęślą jaźń\n\nSecond paragraph.' });
    const before = emulator.requests.length;
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    const pdf = emulator.requests[before]?.file?.data as Buffer;
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(inspectPdf(pdf)).toEqual({ pages: 1, sizes: [{ width: 612, height: 792 }], encrypted: false });
    const [page] = pageContents(pdf);
    const text = shownText(page as string);
    // WinAnsi bytes: “ 0x93, ” 0x94, — 0x97, € 0x80; letters outside WinAnsi lose their accents.
    expect(text).toContain('Statement \x93March\x94 \x97 \x8012');
    expect(text).toContain('Zazólc gesla jazn');
    expect(text).toContain('Second paragraph.');
    const baselines = textBaselines(page as string);
    expect(baselines.length).toBeGreaterThan(0);
    // Nothing above 3.5" from the top of the first page: Lob prints the addresses there.
    for (const y of baselines) expect(y).toBeLessThanOrEqual(LETTER_PAGE.height - FIRST_PAGE_CONTENT_TOP);
  });

  it('uses the message print options and its own return address', async () => {
    const from: PostalAddress = {
      name: 'Billing Dept',
      company: 'Acme Corp',
      line1: '1 Market St',
      city: 'Denver',
      state: 'CO',
      postalCode: '80202-1234',
      country: 'us',
    };
    const abroad: PostalAddress = {
      name: 'Grace Hopper',
      line1: '10 Downing Street',
      city: 'London',
      postalCode: 'SW1A 2AA',
      country: 'GB',
    };
    const req = printRequest({ options: { print: { to: abroad, from, color: true, doubleSided: false } } });
    const before = emulator.requests.length;
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    expect(emulator.violations).toEqual([]);
    const fields = emulator.requests[before]?.fields ?? {};
    expect(fields).toMatchObject({
      'to[name]': 'Grace Hopper',
      'to[address_line1]': '10 Downing Street',
      'to[address_city]': 'London',
      'to[address_zip]': 'SW1A 2AA',
      'to[address_country]': 'GB',
      'from[name]': 'Billing Dept',
      'from[company]': 'Acme Corp',
      'from[address_zip]': '80202-1234',
      'from[address_country]': 'US',
      color: 'true',
      double_sided: 'false',
    });
    expect(fields['to[address_state]']).toBeUndefined();
  });

  it('sends a retried message with the same idempotency key and gets the same letter back', async () => {
    const first = printRequest();
    const accepted = emulator.acceptedCount();
    const [a] = await carrier.send([first]);
    const [b] = await carrier.send([{ ...first, attempt: 2 }]);
    expect(a?.ok && b?.ok).toBe(true);
    if (a?.ok && b?.ok) expect(b.providerMessageId).toBe(a.providerMessageId);
    expect(emulator.acceptedCount()).toBe(accepted + 1);
    const keys = emulator.requests.slice(-2).map((r) => r.headers['idempotency-key']);
    expect(keys).toEqual([first.messageId, first.messageId]);
  });

  it('refuses a print message without a recipient address, without calling Lob', async () => {
    const before = emulator.requests.length;
    const [missing] = await carrier.send([printRequest({ options: {} })]);
    expect(missing).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: 'print_address_missing', class: 'PermanentError' },
    });
    const [invalid] = await carrier.send([printRequest({}, { ...ADA, line1: ' ' })]);
    expect(invalid).toMatchObject({ ok: false, retryable: false, error: { code: 'print_address_invalid' } });
    const [other] = await carrier.send([printRequest({ channel: 'sms' })]);
    expect(other).toMatchObject({ ok: false, retryable: false, error: { code: 'channel_not_supported' } });
    const [empty] = await carrier.send([printRequest({ subject: null, body: '  ' })]);
    expect(empty).toMatchObject({ ok: false, retryable: false, error: { code: 'print_content_missing' } });
    expect(emulator.requests.length).toBe(before);
  });

  it('needs a return address from the message or the sender', async () => {
    const { returnAddress: _unused, ...config } = emulator.senderConfig;
    const bare = createLobCarrier(sender(config), { webhookUrl: receiver.url });
    try {
      const [result] = await bare.send([printRequest()]);
      expect(result).toMatchObject({ ok: false, retryable: false, error: { code: 'print_return_address_missing' } });
    } finally {
      await bare.close?.();
    }
  });

  it('maps Lob refusals to permanent failures carrying Lob codes', async () => {
    const [foreign] = await carrier.send([
      printRequest({
        options: { print: { to: ADA, from: { ...ADA, country: 'CA', state: 'ON', postalCode: 'M5V 2T6' } } },
      }),
    ]);
    expect(foreign).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: 'foreign_return_address', class: 'PermanentError' },
    });
    // Six pages single-sided is the limit abroad; this letter runs longer.
    const long = Array.from({ length: 120 }, (_, i) => `Paragraph ${i}: ${'lorem ipsum dolor sit amet '.repeat(12)}`);
    const abroad: PostalAddress = {
      name: 'Grace Hopper',
      line1: '1 High St',
      city: 'Oxford',
      postalCode: 'OX1',
      country: 'GB',
    };
    const [pages] = await carrier.send([
      printRequest({ body: long.join('\n\n'), options: { print: { to: abroad, doubleSided: false } } }),
    ]);
    expect(pages).toMatchObject({ ok: false, retryable: false, error: { code: 'file_pages_exceed_max' } });
    expect(emulator.violations).toEqual([]);
  });

  it('treats refused credentials as permanent', async () => {
    const wrong = createLobCarrier(sender({ ...emulator.senderConfig, apiKey: 'test_not_the_right_key' }), {
      webhookUrl: receiver.url,
    });
    try {
      const [result] = await wrong.send([printRequest()]);
      expect(result).toMatchObject({
        ok: false,
        retryable: false,
        error: { code: 'invalid_api_key', class: 'PermanentError' },
      });
    } finally {
      await wrong.close?.();
    }
  });

  it('waits as long as the rate-limit window says and retries server errors', async () => {
    const [throttled] = await carrier.send([printRequest({}, { ...ADA, line1: '9 Rate Limit Rd' })]);
    expect(throttled).toMatchObject({ ok: false, retryable: true, error: { code: 'rate_limit_exceeded' } });
    if (throttled && !throttled.ok) {
      expect(throttled.retryAfterMs).toBeGreaterThan(0);
      expect(throttled.retryAfterMs).toBeLessThanOrEqual(3000);
    }
    const [down] = await carrier.send([printRequest({}, { ...ADA, line1: '9 Server Error Ave' })]);
    expect(down).toMatchObject({
      ok: false,
      retryable: true,
      error: { code: 'internal_server_error', class: 'ResourceError' },
    });
  });

  it('reports the configured price of a letter as its cost', async () => {
    const priced = createLobCarrier(sender({ ...emulator.senderConfig, costPerMessage: 1.05 }), {
      webhookUrl: receiver.url,
    });
    try {
      const [result] = await priced.send([printRequest()]);
      expect(result).toMatchObject({ ok: true, cost: 1.05 });
    } finally {
      await priced.close?.();
    }
  });

  it('reports receipts in order with the message reference, and a returned letter', async () => {
    receiver.clear();
    const good = printRequest();
    const back = printRequest({}, { ...ADA, line1: '7 Undeliverable Ln' });
    const [a, b] = await carrier.send([good, back]);
    if (!a?.ok || !b?.ok) throw new Error('not accepted');
    const eventsOf = (ref: string) =>
      receiver.requests
        .flatMap((r) => carrier.parseWebhook(r))
        .filter((e) => e.kind === 'status' && e.reference === ref);
    await receiver.waitFor(() => eventsOf(good.messageId).some((e) => e.kind === 'status' && e.status === 'delivered'));
    await receiver.waitFor(() =>
      eventsOf(back.messageId).some((e) => e.kind === 'status' && e.status === 'undelivered'),
    );
    const delivered = eventsOf(good.messageId);
    expect(delivered.map((e) => (e.kind === 'status' ? e.detail?.lobEvent : null))).toEqual([
      'letter.mailed',
      'letter.in_transit',
      'letter.in_local_area',
      'letter.processed_for_delivery',
      'letter.delivered',
    ]);
    expect(delivered.map((e) => (e.kind === 'status' ? e.status : null))).toEqual([
      'sent',
      'sent',
      'sent',
      'sent',
      'delivered',
    ]);
    for (const e of delivered) expect(e).toMatchObject({ providerMessageId: a.providerMessageId });
    expect(new Set(delivered.map((e) => e.eventKey)).size).toBe(delivered.length);
    expect(delivered[1]).toMatchObject({ detail: { tracking: { name: 'In Transit', location: '94107' } } });
    const returned = eventsOf(back.messageId).find((e) => e.kind === 'status' && e.status === 'undelivered');
    expect(returned).toMatchObject({
      providerMessageId: b.providerMessageId,
      error: { code: 'returned_to_sender', class: 'PermanentError' },
    });
  });
});

describe('lob: webhook events from every subscription', () => {
  const receiver = new WebhookReceiver();
  let emulator: LobEmulator;
  let carrier: Carrier;

  beforeAll(async () => {
    await receiver.start();
    emulator = await LobEmulator.start({ webhookUrl: receiver.url, delayMs: 2, subscribe: 'all' });
    carrier = createLobCarrier(sender(emulator.senderConfig), { webhookUrl: receiver.url });
  });

  afterAll(async () => {
    await carrier?.close?.();
    await emulator?.close();
    await receiver.close();
  });

  it('drops letter.created and letter.rendered_pdf and fails a letter Lob could not render', async () => {
    const req = printRequest({}, { ...ADA, line1: '3 Render Fail Blvd' });
    const [result] = await carrier.send([req]);
    expect(result?.ok).toBe(true);
    await emulator.settled();
    const types = emulator.events.map((e) => (e.event_type as { id: string }).id);
    expect(types).toEqual(['letter.created', 'letter.failed']);
    await receiver.waitFor((r) => r.length >= 2);
    const parsed = receiver.requests.map((r) => carrier.parseWebhook(r));
    expect(parsed[0]).toEqual([]);
    expect(parsed[1]).toMatchObject([
      { kind: 'status', status: 'failed', reference: req.messageId, error: { code: 'letter_failed' } },
    ]);
    const failed = parsed[1]?.[0];
    if (failed?.kind === 'status') expect(failed.error?.message).toContain('render_error');
  });
});

describe('lob: webhook signatures', () => {
  const secret = LOB_EMULATOR_WEBHOOK_SECRET;
  const body = Buffer.from(JSON.stringify(letterEvent('letter.delivered')));
  let carrier: Carrier;

  beforeAll(() => {
    carrier = createLobCarrier(
      sender({ apiKey: LOB_EMULATOR_API_KEY, webhookSecret: secret, baseUrl: 'http://127.0.0.1:9' }),
      { webhookUrl: 'https://omni.example.com/webhooks/lob/snd_lob' },
    );
  });

  afterAll(async () => {
    await carrier.close?.();
  });

  function delivery(headers: Record<string, string>, raw = body): WebhookRequest {
    return { method: 'POST', url: '/webhooks/lob/snd_lob', headers, rawBody: raw };
  }

  it('accepts what the emulator signs, and signs the same way', () => {
    const headers = lobWebhookHeaders(secret, body);
    expect(carrier.parseWebhook(delivery(headers))).toHaveLength(1);
    const ts = headers['lob-signature-timestamp'] as string;
    expect(lobSignature(secret, ts, body)).toBe(signLobWebhook(secret, ts, body));
    expect(lobSignature(secret, ts, body)).toMatch(/^[0-9a-f]{64}$/);
    // Upper-case hex and a timestamp in seconds are read too.
    const upper = { ...headers, 'lob-signature': (headers['lob-signature'] as string).toUpperCase() };
    expect(carrier.parseWebhook(delivery(upper))).toHaveLength(1);
    const seconds = String(Math.floor(Date.now() / 1000));
    expect(
      carrier.parseWebhook(
        delivery({ 'lob-signature': signLobWebhook(secret, seconds, body), 'lob-signature-timestamp': seconds }),
      ),
    ).toHaveLength(1);
    expect(lobTimestampMs('1528749846')).toBe(1_528_749_846_000);
    expect(lobTimestampMs('1528749846123')).toBe(1_528_749_846_123);
    expect(lobTimestampMs('12a')).toBeUndefined();
  });

  it('refuses missing, tampered, foreign and stale signatures', () => {
    const headers = lobWebhookHeaders(secret, body);
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(AuthenticationError);
        return (err as AuthenticationError).code;
      }
      return undefined;
    };
    expect(codeOf(() => carrier.parseWebhook(delivery({})))).toBe('webhook_signature_missing');
    expect(codeOf(() => carrier.parseWebhook(delivery({ 'lob-signature': headers['lob-signature'] as string })))).toBe(
      'webhook_signature_missing',
    );
    const tampered = Buffer.from(body.toString().replace('letter.delivered', 'letter.returned_to_sender'));
    expect(codeOf(() => carrier.parseWebhook(delivery(headers, tampered)))).toBe('webhook_signature_invalid');
    const shifted = { ...headers, 'lob-signature-timestamp': String(Number(headers['lob-signature-timestamp']) + 1) };
    expect(codeOf(() => carrier.parseWebhook(delivery(shifted)))).toBe('webhook_signature_invalid');
    expect(codeOf(() => carrier.parseWebhook(delivery(lobWebhookHeaders('another-secret', body))))).toBe(
      'webhook_signature_invalid',
    );
    const stale = lobWebhookHeaders(secret, body, Date.now() - 6 * 60_000);
    expect(codeOf(() => carrier.parseWebhook(delivery(stale)))).toBe('webhook_signature_invalid');
    const future = lobWebhookHeaders(secret, body, Date.now() + 6 * 60_000);
    expect(codeOf(() => carrier.parseWebhook(delivery(future)))).toBe('webhook_signature_invalid');
    expect(codeOf(() => carrier.parseWebhook(delivery({ ...headers, 'lob-signature-timestamp': 'yesterday' })))).toBe(
      'webhook_signature_invalid',
    );
    expectAuthFailure(() => carrier.parseWebhook(delivery({ ...headers, 'lob-signature': 'abc' })));
  });
});

/**
 * A letter event as Lob documents it: the event envelope of `resources/events/responses/events.yml` around the
 * letter of `resources/letters/responses/letter.yml` (ids and values from those examples; the metadata is ours).
 */
function letterEvent(type: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'evt_d95ff8ffd2b5cfb4',
    body: {
      id: 'ltr_4868c3b754655f90',
      description: 'Demo Letter',
      metadata: { omni_message_id: 'msg_01HZY' },
      to: {
        id: 'adr_d3489cd64c791ab5',
        name: 'HARRY ZHANG',
        address_line1: '210 KING ST STE 6100',
        address_city: 'SAN FRANCISCO',
        address_state: 'CA',
        address_zip: '94107-1741',
        address_country: 'UNITED STATES',
        object: 'address',
      },
      color: true,
      double_sided: true,
      address_placement: 'top_first_page',
      mail_type: 'usps_first_class',
      carrier: 'USPS',
      tracking_events: [],
      expected_delivery_date: '2017-09-12',
      date_created: '2017-09-05T15:54:53.346Z',
      send_date: '2017-09-05T15:54:53.346Z',
      object: 'letter',
    },
    reference_id: 'ltr_4868c3b754655f90',
    event_type: { id: type, enabled_for_test: false, resource: 'letters', object: 'event_type' },
    date_created: '2017-09-08T22:50:08.180Z',
    object: 'event',
    ...over,
  };
}

describe('lob: event parsing', () => {
  const parse = (event: unknown): CarrierEvent[] => parseLobEvent(Buffer.from(JSON.stringify(event)));

  it('maps the letter events the product tracks', () => {
    const expectations: [string, string | null][] = [
      ['letter.created', null],
      ['letter.rendered_pdf', null],
      ['letter.rendered_thumbnails', null],
      ['letter.billed', null],
      ['letter.viewed', null],
      ['letter.deleted', null],
      ['letter.return_envelope.in_transit', null],
      ['letter.mailed', 'sent'],
      ['letter.in_transit', 'sent'],
      ['letter.in_local_area', 'sent'],
      ['letter.processed_for_delivery', 'sent'],
      ['letter.international_exit', 'sent'],
      ['letter.re-routed', 'sent'],
      ['letter.delivered', 'delivered'],
      ['letter.returned_to_sender', 'undelivered'],
      ['letter.failed', 'failed'],
      ['letter.certified.mailed', 'sent'],
      ['letter.certified.issue', 'sent'],
      ['letter.certified.delivered', 'delivered'],
      ['letter.certified.returned_to_sender', 'undelivered'],
    ];
    for (const [type, status] of expectations) {
      const events = parse(letterEvent(type));
      if (status === null) {
        expect(events, type).toEqual([]);
      } else {
        expect(events, type).toHaveLength(1);
        expect(events[0], type).toMatchObject({
          kind: 'status',
          status,
          eventKey: 'evt_d95ff8ffd2b5cfb4',
          providerMessageId: 'ltr_4868c3b754655f90',
          reference: 'msg_01HZY',
          occurredAt: Date.parse('2017-09-08T22:50:08.180Z'),
          detail: { lobEvent: type, expectedDeliveryDate: '2017-09-12' },
        });
      }
    }
  });

  it('carries the error of a returned or failed letter and the last tracking scan', () => {
    const scan = {
      id: 'evnt_9e84094c9368cfb',
      type: 'normal',
      name: 'Returned to Sender',
      details: null,
      location: '72231',
      time: '2017-09-08T20:11:00.000Z',
      object: 'tracking_event',
    };
    const body = (letterEvent('letter.returned_to_sender').body ?? {}) as Record<string, unknown>;
    const [returned] = parse(letterEvent('letter.returned_to_sender', { body: { ...body, tracking_events: [scan] } }));
    expect(returned).toMatchObject({
      status: 'undelivered',
      error: { code: 'returned_to_sender', class: 'PermanentError' },
      detail: { tracking: { name: 'Returned to Sender', location: '72231', id: 'evnt_9e84094c9368cfb' } },
    });
    const failure = { failure_reason: 'rendering_error', remediation: 'Fix the file' };
    const [failed] = parse(letterEvent('letter.failed', { body: { ...body, failure_reason: failure } }));
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'letter_failed', class: 'PermanentError' } });
    if (failed?.kind === 'status') expect(failed.error?.message).toContain('rendering_error. Fix the file');
  });

  it('drops other resources, such as the documented postcard event', () => {
    // resources/events/responses/events.yml example (abridged body).
    const postcard = {
      event_type: { resource: 'postcards', enabled_for_test: true, id: 'postcard.created', object: 'event_type' },
      reference_id: 'psc_d2d10a2e9cba991c',
      id: 'evt_d95ff8ffd2b5cfb4',
      date_created: '2016-12-04T22:50:08.180Z',
      body: { id: 'psc_d2d10a2e9cba991c', description: 'Test Postcard', metadata: {}, object: 'postcard' },
      object: 'event',
    };
    expect(parse(postcard)).toEqual([]);
  });

  it('finds the letter by reference_id and reports no reference without our metadata', () => {
    const [event] = parse(letterEvent('letter.mailed', { body: { object: 'letter' } }));
    expect(event).toMatchObject({ providerMessageId: 'ltr_4868c3b754655f90', reference: null });
  });

  it('refuses malformed bodies', () => {
    const invalid = (raw: string) => {
      try {
        parseLobEvent(Buffer.from(raw));
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).code;
      }
      return undefined;
    };
    expect(invalid('not json')).toBe('invalid_webhook_payload');
    expect(invalid('[]')).toBe('invalid_webhook_payload');
    expect(invalid(JSON.stringify({ event_type: { id: 'letter.mailed' } }))).toBe('invalid_webhook_payload');
    expect(invalid(JSON.stringify({ id: 'evt_1' }))).toBe('invalid_webhook_payload');
    const noLetter = letterEvent('letter.mailed', { body: {}, reference_id: undefined });
    expect(invalid(JSON.stringify(noLetter))).toBe('invalid_webhook_payload');
    expect(invalid(JSON.stringify(letterEvent('letter.mailed', { date_created: 'soon' })))).toBe(
      'invalid_webhook_payload',
    );
  });
});

describe('lob: the letter PDF', () => {
  it('paginates long letters with page numbers and keeps the first page clear of the addresses', async () => {
    const body = Array.from({ length: 40 }, (_, i) => `Paragraph ${i + 1}. ${'The quick brown fox. '.repeat(20)}`);
    const pdf = await renderLetterPdf({ subject: 'Terms', body: body.join('\n\n'), createdAt: new Date(0) });
    const info = inspectPdf(pdf);
    expect(info.pages).toBeGreaterThan(2);
    expect(new Set(info.sizes.map((s) => `${s.width}x${s.height}`))).toEqual(new Set(['612x792']));
    const pages = pageContents(pdf);
    expect(pages).toHaveLength(info.pages);
    expect(shownText(pages[0] as string)).toContain(`Page 1 of ${info.pages}`);
    expect(shownText(pages[info.pages - 1] as string)).toContain(`Page ${info.pages} of ${info.pages}`);
    const firstBody = textBaselines(pages[0] as string).filter((y) => y > 100);
    for (const y of firstBody) expect(y).toBeLessThanOrEqual(LETTER_PAGE.height - FIRST_PAGE_CONTENT_TOP);
    // Later pages start near the top margin.
    expect(Math.max(...textBaselines(pages[1] as string))).toBeGreaterThan(LETTER_PAGE.height - FIRST_PAGE_CONTENT_TOP);
  });

  it('prints only what the standard fonts can show', () => {
    expect(winAnsi('Łódź\tő “ok” – 😀 日本\r\nnext\u0007')).toBe('Lódz    o “ok” – ? ??\nnext');
    expect(winAnsi('café € ½')).toBe('café € ½');
  });
});

describe('lob: sender config', () => {
  const valid = {
    apiKey: 'test_abc123',
    webhookSecret: 'whsec',
    returnAddress: { ...LOB_EMULATOR_RETURN_ADDRESS },
  };
  const fieldOf = (config: Record<string, unknown>): string | undefined => {
    try {
      createLobCarrier(sender(config), { webhookUrl: 'https://omni.example.com/webhooks/lob/snd_lob' });
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('invalid_sender_config');
      return (err as ValidationError).field;
    }
    return undefined;
  };

  it('refuses unusable settings, naming the field', () => {
    expect(fieldOf({ ...valid, apiKey: undefined })).toBe('config.apiKey');
    expect(fieldOf({ ...valid, apiKey: 'test_pub_abc' })).toBe('config.apiKey');
    expect(fieldOf({ ...valid, apiKey: 'live key' })).toBe('config.apiKey');
    expect(fieldOf({ ...valid, webhookSecret: '' })).toBe('config.webhookSecret');
    expect(fieldOf({ ...valid, baseUrl: 'ftp://api.lob.com' })).toBe('config.baseUrl');
    expect(fieldOf({ ...valid, returnAddress: { ...valid.returnAddress, country: 'USA' } })).toBe(
      'config.returnAddress',
    );
    expect(fieldOf({ ...valid, returnAddress: 'adr_123' })).toBe('config.returnAddress');
    expect(fieldOf({ ...valid, mailType: 'usps_priority' })).toBe('config.mailType');
    expect(fieldOf({ ...valid, useType: 'spam' })).toBe('config.useType');
    expect(fieldOf({ ...valid, color: 'yes' })).toBe('config.color');
    expect(fieldOf({ ...valid, rateLimitPerSecond: 2.5 })).toBe('config.rateLimitPerSecond');
    expect(fieldOf({ ...valid, costPerMessage: -1 })).toBe('config.costPerMessage');
    expect(fieldOf({ ...valid, token: 'x' })).toBe('config.token');
    expect(fieldOf(valid)).toBeUndefined();
    expect(fieldOf({ apiKey: 'live_abc', webhookSecret: 's' })).toBeUndefined();
  });

  it('describes the provider with a schema that agrees with the adapter', () => {
    expect(lobProvider).toMatchObject({ id: 'lob', channels: ['print'], secretFields: ['apiKey', 'webhookSecret'] });
    const schema = lobProvider.configSchema as Record<string, any>;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.baseUrl.default).toBe(LOB_DEFAULT_BASE_URL);
    expect(schema.properties.rateLimitPerSecond.type).toBe('integer');
    expect(schema.properties.costPerMessage.type).toBe('number');
    for (const [name, prop] of Object.entries(schema.properties as Record<string, { description?: string }>)) {
      expect(prop.description, name).toBeTruthy();
    }
    const validate = new Ajv({ strict: false, validateFormats: false }).compile(schema);
    expect(validate({ ...valid, mailType: 'usps_standard', rateLimitPerSecond: 5, costPerMessage: 0.9 })).toBe(true);
    expect(validate({ ...valid, extra: true })).toBe(false);
    expect(validate({ apiKey: 'test_x' })).toBe(false);
    const carrier = lobProvider.create(sender(valid), { webhookUrl: 'https://omni.example.com/webhooks/lob/snd_lob' });
    expect(carrier.provider).toBe('lob');
    return carrier.close?.();
  });

  it('fails a send cleanly when Lob cannot be reached', async () => {
    const server: Server = createServer((_req, res) =>
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const carrier = createLobCarrier(sender({ ...valid, baseUrl: `http://127.0.0.1:${port}` }), {
      webhookUrl: 'https://omni.example.com/webhooks/lob/snd_lob',
    });
    try {
      const [gateway] = await carrier.send([printRequest()]);
      expect(gateway).toMatchObject({
        ok: false,
        retryable: true,
        error: { code: 'lob_unavailable', class: 'ResourceError' },
      });
    } finally {
      await carrier.close?.();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('lob: the emulator holds requests to the documentation', () => {
  let emulator: LobEmulator;
  let url: string;
  const auth = `Basic ${Buffer.from(`${LOB_EMULATOR_API_KEY}:`).toString('base64')}`;

  beforeAll(async () => {
    emulator = await LobEmulator.start({ webhookUrl: 'http://127.0.0.1:9/unused', delayMs: 1, subscribe: [] });
    url = `${(emulator.senderConfig as { baseUrl: string }).baseUrl}/v1/letters`;
  });

  afterAll(async () => {
    await emulator?.close();
  });

  async function baseFields(): Promise<Record<string, string>> {
    return {
      'to[name]': 'Ada Lovelace',
      'to[address_line1]': '185 Berry St',
      'to[address_city]': 'San Francisco',
      'to[address_state]': 'CA',
      'to[address_zip]': '94107',
      'from[name]': 'Omnichannel Inc',
      'from[address_line1]': '210 King St',
      'from[address_city]': 'San Francisco',
      'from[address_state]': 'CA',
      'from[address_zip]': '94107',
      color: 'false',
      use_type: 'operational',
    };
  }

  async function post(
    fields: Record<string, string>,
    file: { data: Buffer; type?: string } | null,
    headers: Record<string, string> = {},
    query = '',
  ): Promise<{ status: number; code: string | undefined }> {
    const boundary = 'xYzBoundary42';
    const parts = Object.entries(fields).map(([name, value]) => ({ name, value }));
    const all = file
      ? [...parts, { name: 'file', filename: 'f.pdf', type: file.type ?? 'application/pdf', data: file.data }]
      : parts;
    const res = await fetch(`${url}${query}`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': `multipart/form-data; boundary=${boundary}`, ...headers },
      body: new Uint8Array(encodeMultipart(all, boundary)),
    });
    const body = (await res.json()) as { error?: { code?: string } };
    return { status: res.status, code: body.error?.code };
  }

  it('accepts a well-formed letter and records no violation', async () => {
    const pdf = await renderLetterPdf({ subject: 'Hi', body: 'Text' });
    const res = await post(await baseFields(), { data: pdf });
    expect(res.status).toBe(200);
    expect(emulator.violations).toEqual([]);
  });

  it('records and refuses what Lob does not allow', async () => {
    const pdf = await renderLetterPdf({ subject: 'Hi', body: 'Text' });
    const a4 = await new Promise<Buffer>((resolve) => {
      const doc = new PDFDocument({ size: 'A4' });
      const chunks: Buffer[] = [];
      doc.on('data', (c: Buffer) => chunks.push(c));
      doc.on('end', () => resolve(Buffer.concat(chunks)));
      doc.text('A4 page');
      doc.end();
    });
    const fields = await baseFields();
    const cases: [string, () => Promise<{ status: number; code: string | undefined }>, number, string][] = [
      ['no credentials', () => post(fields, { data: pdf }, { authorization: '' }), 401, 'unauthorized'],
      [
        'a password',
        () =>
          post(
            fields,
            { data: pdf },
            { authorization: `Basic ${Buffer.from(`${LOB_EMULATOR_API_KEY}:x`).toString('base64')}` },
          ),
        401,
        'unauthorized',
      ],
      ['an unknown field', () => post({ ...fields, colour: 'true' }, { data: pdf }), 422, 'invalid'],
      ['no use_type', () => post({ ...fields, use_type: '' }, { data: pdf }), 422, 'invalid'],
      ['a long state', () => post({ ...fields, 'to[address_state]': 'California' }, { data: pdf }), 422, 'invalid'],
      ['no name or company', () => post({ ...fields, 'to[name]': '' }, { data: pdf }), 422, 'invalid'],
      ['a non-boolean color', () => post({ ...fields, color: 'yes' }, { data: pdf }), 422, 'invalid'],
      ['no file', () => post(fields, null), 422, 'invalid'],
      ['a file that is not a PDF', () => post(fields, { data: Buffer.from('<html>hi</html>') }), 422, 'invalid_file'],
      ['a file not sent as PDF', () => post(fields, { data: pdf, type: 'text/plain' }), 422, 'invalid_file'],
      ['A4 pages', () => post(fields, { data: a4 }), 422, 'invalid_file_dimensions'],
      [
        'two idempotency keys',
        () => post(fields, { data: pdf }, { 'idempotency-key': 'k1' }, '?idempotency_key=k2'),
        422,
        'invalid',
      ],
    ];
    for (const [label, send, status, code] of cases) {
      const before = emulator.violations.length;
      expect(await send(), label).toEqual({ status, code });
      expect(emulator.violations.length, label).toBe(before + 1);
    }
    const form = await fetch(url, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'to=adr_1&from=adr_2&file=x&color=true',
    });
    expect(form.status).toBe(422);
    const missing = await fetch(`${url.replace('/letters', '/postcards')}`, {
      method: 'POST',
      headers: { authorization: auth },
    });
    expect(missing.status).toBe(404);
    expect(emulator.violations).toHaveLength(cases.length + 2);
  });
});
