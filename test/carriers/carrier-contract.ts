/**
 * The carrier contract: every adapter, run against its provider's emulator, must send, report receipts,
 * deliver inbound messages, refuse unauthentic webhooks, and classify each error class the same way.
 * A provider's test file calls `carrierContract(subject)`; provider-specific details (error tables,
 * signature known-answer tests, exact wire formats) are tested beside it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../../src/domain/channels.ts';
import { AuthenticationError, ForbiddenError } from '../../src/domain/errors.ts';
import type {
  Carrier,
  CarrierContext,
  CarrierEvent,
  ChannelOptions,
  SenderRecord,
  SendRequest,
  WebhookRequest,
} from '../../src/ports/carrier.ts';
import { WebhookReceiver } from './support/webhook-receiver.ts';

/** A running emulator of one provider. */
export interface CarrierEmulator {
  /** Sender config (base URL, credentials, identities) that points an adapter at this emulator. */
  senderConfig: Record<string, unknown>;
  /** Requests the emulator received that its provider's specification does not allow (must stay empty). */
  violations: string[];
  /** How many send requests it accepted. */
  acceptedCount(): number;
  /** Makes the emulator post an inbound message (from a handset to our identity) to the webhook URL. */
  sendInbound?(input: { from: string; to: string; body: string }): Promise<void>;
  close(): Promise<void>;
}

/** Destinations (per the emulator's documented rules) that make the provider behave a given way. */
export interface ContractDestinations {
  /** Accepted, then reported delivered (or the furthest status the provider reports, see `finalStatus`). */
  delivered: string;
  /** Refused at send time for good (bad number, unknown subscription...). */
  rejected: string;
  /** Refused at send time, retryable (provider 5xx / unavailable). */
  unavailable: string;
  /** Refused with the provider's throttling answer (429 with Retry-After where the provider sends one). */
  throttled?: string;
  /** Accepted, then a failed/undelivered receipt carrying the provider's error code. */
  undeliverable?: string;
}

export interface CarrierContractSubject {
  provider: string;
  channel: Channel;
  /** Our identity (number, address...) to send from. */
  from: string | null;
  destinations: ContractDestinations;
  /** Channel options every request carries (e.g. push keys). */
  options?: ChannelOptions;
  /** The status the `delivered` destination ends in ('delivered' for most; 'sent' when no receipts exist). */
  finalStatus?: 'sent' | 'delivered';
  /** False for providers without status callbacks (then receipts are not checked). */
  callbacks?: boolean;
  startEmulator(webhookUrl: string): Promise<CarrierEmulator>;
  createCarrier(sender: SenderRecord, ctx: CarrierContext): Carrier;
  /**
   * How to make the provider unreachable for the "cannot be reached" test: config overrides and/or a `to`
   * (default: every http(s) URL in the sender config points at a closed port).
   */
  unreachable?: { config?: Record<string, unknown>; to?: string };
  /** Turns a recorded, authentic webhook into one whose signature must fail (default: flip a body byte). */
  tamper?(request: WebhookRequest): WebhookRequest;
  /** Removes the signature from a recorded webhook (default: drops nothing and skips the check). */
  unsign?(request: WebhookRequest): WebhookRequest;
}

const WEBHOOK_PATH = '/webhooks/contract/snd_contract';

export function carrierContract(subject: CarrierContractSubject): void {
  describe(`carrier contract: ${subject.provider} (${subject.channel})`, () => {
    const receiver = new WebhookReceiver();
    let emulator: CarrierEmulator;
    let carrier: Carrier;
    let webhookUrl: string;
    let seq = 0;
    const callbacks = subject.callbacks !== false;

    beforeAll(async () => {
      await receiver.start();
      webhookUrl = receiver.url + WEBHOOK_PATH;
      emulator = await subject.startEmulator(webhookUrl);
      const sender: SenderRecord = {
        id: 'snd_contract',
        orgId: 'org_contract',
        provider: subject.provider,
        config: emulator.senderConfig,
        channels: [subject.channel],
        from: subject.from,
        priority: 0,
      };
      // The emulators listen on this machine: private addresses allowed.
      carrier = subject.createCarrier(sender, { webhookUrl, allowPrivateUrls: true });
    });

    afterEach(() => {
      expect(emulator.violations, 'requests the specification does not allow').toEqual([]);
    });

    afterAll(async () => {
      await carrier?.close?.();
      await emulator?.close();
      await receiver.close();
    });

    function request(to: string, over: Partial<SendRequest> = {}): SendRequest {
      seq++;
      return {
        messageId: `msg_contract_${Date.now()}_${seq}`,
        channel: subject.channel,
        to,
        from: subject.from,
        body: `Contract message ${seq}`,
        subject: subject.channel === 'email' ? `Contract ${seq}` : null,
        attempt: 1,
        ...(subject.options ? { options: subject.options } : {}),
        ...over,
      };
    }

    function parseAll(): CarrierEvent[] {
      return receiver.requests.flatMap((r) => carrier.parseWebhook(r));
    }

    function statusesOf(providerMessageId: string, reference: string): CarrierEvent[] {
      return parseAll().filter(
        (e) => e.kind === 'status' && (e.providerMessageId === providerMessageId || e.reference === reference),
      );
    }

    it('sends to a deliverable destination and reports its receipts', async () => {
      const req = request(subject.destinations.delivered);
      const [result] = await carrier.send([req]);
      expect(result).toMatchObject({ ok: true });
      if (!result?.ok) return;
      expect(result.providerMessageId.length).toBeGreaterThan(0);
      expect(emulator.acceptedCount()).toBeGreaterThan(0);
      if (!callbacks) return;
      const final = subject.finalStatus ?? 'delivered';
      await receiver.waitFor(() =>
        statusesOf(result.providerMessageId, req.messageId).some((e) => e.kind === 'status' && e.status === final),
      );
      for (const e of statusesOf(result.providerMessageId, req.messageId)) {
        expect(e.eventKey.length).toBeGreaterThan(0);
        expect(Number.isFinite(e.occurredAt)).toBe(true);
      }
    });

    it('sends several messages in one call, one result each, in order', async () => {
      const reqs = [request(subject.destinations.delivered), request(subject.destinations.rejected)];
      const results = await carrier.send(reqs);
      expect(results).toHaveLength(2);
      expect(results[0]?.ok).toBe(true);
      expect(results[1]?.ok).toBe(false);
    });

    it('classifies a permanent refusal as not retryable', async () => {
      const [result] = await carrier.send([request(subject.destinations.rejected)]);
      expect(result).toMatchObject({ ok: false, retryable: false });
      if (result && !result.ok) {
        expect(result.error.code.length).toBeGreaterThan(0);
        expect(['PermanentError', 'DataError', 'ValidationError', 'AuthenticationError', 'ForbiddenError']).toContain(
          result.error.class,
        );
      }
    });

    it('classifies an unavailable provider as retryable', async () => {
      const [result] = await carrier.send([request(subject.destinations.unavailable)]);
      expect(result).toMatchObject({ ok: false, retryable: true });
      if (result && !result.ok) expect(['ResourceError', 'OperationalError']).toContain(result.error.class);
    });

    if (subject.destinations.throttled) {
      it('classifies throttling as retryable and passes on the wait the provider asks for', async () => {
        const [result] = await carrier.send([request(subject.destinations.throttled as string)]);
        expect(result).toMatchObject({ ok: false, retryable: true });
        if (result && !result.ok) expect(result.retryAfterMs ?? 0).toBeGreaterThanOrEqual(0);
      });
    }

    if (subject.destinations.undeliverable && callbacks) {
      it('reports an undeliverable message with the provider error', async () => {
        const req = request(subject.destinations.undeliverable as string);
        const [result] = await carrier.send([req]);
        expect(result).toMatchObject({ ok: true });
        if (!result?.ok) return;
        await receiver.waitFor(() =>
          statusesOf(result.providerMessageId, req.messageId).some(
            (e) => e.kind === 'status' && (e.status === 'failed' || e.status === 'undelivered'),
          ),
        );
        const failed = statusesOf(result.providerMessageId, req.messageId).find(
          (e) => e.kind === 'status' && (e.status === 'failed' || e.status === 'undelivered'),
        );
        expect(failed?.kind === 'status' && failed.error?.code).toBeTruthy();
      });
    }

    it('fails a send cleanly when the provider cannot be reached', async () => {
      const sender: SenderRecord = {
        id: 'snd_contract_down',
        orgId: 'org_contract',
        provider: subject.provider,
        config: { ...emulator.senderConfig, ...(subject.unreachable?.config ?? unreachable(emulator.senderConfig)) },
        channels: [subject.channel],
        from: subject.from,
        priority: 0,
      };
      const down = subject.createCarrier(sender, { webhookUrl, allowPrivateUrls: true });
      try {
        const [result] = await down.send([request(subject.unreachable?.to ?? subject.destinations.delivered)]);
        expect(result).toMatchObject({ ok: false, retryable: true });
      } finally {
        await down.close?.();
      }
    });

    if (callbacks) {
      it('gives a repeated callback the same event key', async () => {
        const before = receiver.requests.length;
        const [result] = await carrier.send([request(subject.destinations.delivered)]);
        expect(result?.ok).toBe(true);
        await receiver.waitFor((r) => r.length > before);
        const first = receiver.requests[before] as WebhookRequest;
        const a = carrier.parseWebhook(first);
        const b = carrier.parseWebhook({ ...first, rawBody: Buffer.from(first.rawBody) });
        expect(a.length).toBeGreaterThan(0);
        expect(b.map((e) => e.eventKey)).toEqual(a.map((e) => e.eventKey));
      });

      it('refuses a webhook whose signature does not match', async () => {
        await receiver.waitFor((r) => r.length > 0);
        const authentic = receiver.requests[receiver.requests.length - 1] as WebhookRequest;
        const forged = subject.tamper ? subject.tamper(authentic) : flipBodyByte(authentic);
        expectAuthFailure(() => carrier.parseWebhook(forged));
        if (subject.unsign)
          expectAuthFailure(() => carrier.parseWebhook(subject.unsign?.(authentic) as WebhookRequest));
      });
    }

    if (subject.destinations && subject.from) {
      it('parses an inbound message posted by the provider', async ({ skip }) => {
        if (!emulator.sendInbound) return skip();
        receiver.clear();
        const handset = subject.destinations.delivered;
        await emulator.sendInbound({ from: handset, to: subject.from as string, body: 'Hello there STOP' });
        await receiver.waitFor(() => parseAll().some((e) => e.kind === 'inbound'));
        const inbound = parseAll().find((e) => e.kind === 'inbound');
        expect(inbound).toMatchObject({ kind: 'inbound', body: 'Hello there STOP' });
        if (inbound?.kind === 'inbound') {
          expect(inbound.from).toContain(digitsOrSelf(handset));
          expect(inbound.providerMessageId.length).toBeGreaterThan(0);
        }
      });
    }
  });
}

/** The webhook must be refused as unauthentic: AuthenticationError (401) or ForbiddenError (403). */
export function expectAuthFailure(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown instanceof AuthenticationError || thrown instanceof ForbiddenError, String(thrown)).toBe(true);
}

function flipBodyByte(r: WebhookRequest): WebhookRequest {
  const body = Buffer.from(r.rawBody);
  if (body.length === 0) return { ...r, rawBody: Buffer.from('x') };
  const i = Math.floor(body.length / 2);
  body[i] = body[i] === 0x41 ? 0x42 : 0x41;
  return { ...r, rawBody: body };
}

/** Replaces every URL-looking value of a sender config with a port nothing listens on. */
function unreachable(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (typeof v === 'string' && /^https?:\/\//.test(v)) out[k] = v.replace(/\/\/[^/]+/, '//127.0.0.1:9');
    else if (typeof v === 'number' && /port/i.test(k)) out[k] = 9;
  }
  return out;
}

function digitsOrSelf(address: string): string {
  const digits = address.replace(/\D/g, '');
  return digits.length >= 7 ? digits.slice(-7) : address;
}
