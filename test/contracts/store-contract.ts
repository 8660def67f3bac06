/**
 * The MessageStore contract: the semantics every store adapter (SQLite today, PostgreSQL later) must have.
 * A runner per adapter calls `storeContract(name, make)`; `make` returns a fresh, empty, migrated store and the
 * job queue that reads the jobs the store writes (the embedded queue shares the store's database).
 *
 * Timestamps are real (around `Date.now()`) so adapters whose queue runs on the wall clock pass unchanged:
 * accepted messages are created a little in the past, so their send jobs are already due.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newId } from '../../src/domain/ids.ts';
import type { MessageError } from '../../src/domain/message-status.ts';
import type { CarrierEvent, SenderRecord } from '../../src/ports/carrier.ts';
import { type JobQueue, type NewJob, PRIORITY_VALUE } from '../../src/ports/queue.ts';
import type { MessageStore, NewMessage, SendOutcome, StoredCarrierEvent, StoredSender } from '../../src/ports/store.ts';

export interface StoreContractContext {
  store: MessageStore;
  queue: JobQueue;
  cleanup(): Promise<void>;
}

const SEND_QUEUE = 'send';
const EVENTS_QUEUE = 'carrier-events';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const TIMEOUT: MessageError = { code: 'carrier_timeout', class: 'ResourceError', message: 'carrier did not answer' };
const UNREACHABLE: MessageError = {
  code: 'unreachable_destination',
  class: 'PermanentError',
  message: 'handset unreachable',
};

export function storeContract(name: string, make: () => Promise<StoreContractContext>): void {
  describe(name, () => {
    let ctx: StoreContractContext;
    let store: MessageStore;
    let queue: JobQueue;
    let org: string;
    let otherOrg: string;
    /** A moment a little in the past: messages created then have due send jobs. */
    let t0: number;

    beforeEach(async () => {
      ctx = await make();
      store = ctx.store;
      queue = ctx.queue;
      org = newId('org');
      otherOrg = newId('org');
      t0 = Date.now() - HOUR;
    });

    afterEach(async () => {
      await ctx.cleanup();
    });

    function outbound(overrides: Partial<NewMessage> = {}): NewMessage {
      return {
        id: newId('msg'),
        orgId: org,
        channel: 'sms',
        to: '+12025550123',
        from: null,
        body: 'Your verification code is 492031',
        subject: null,
        templateId: null,
        metadata: null,
        sendAt: null,
        priority: PRIORITY_VALUE.normal,
        createdAt: t0,
        ...overrides,
      };
    }

    function sendJob(m: NewMessage): NewJob {
      return {
        id: `send:${m.id}`,
        queue: SEND_QUEUE,
        payload: m.id,
        orgId: m.orgId,
        priority: m.priority,
        runAt: m.sendAt ?? m.createdAt,
      };
    }

    async function accept(...messages: NewMessage[]) {
      return store.acceptMessages(messages, (acc) => acc.map(sendJob));
    }

    async function createSender(orgId = org, overrides: Partial<StoredSender> = {}): Promise<StoredSender> {
      const now = Date.now();
      const sender: StoredSender = {
        id: newId('snd'),
        orgId,
        provider: 'sandbox',
        config: { baseUrl: 'http://127.0.0.1:4010', accountSid: 'AC5ef8732a3c49700934481addd5ce1659' },
        channels: ['sms', 'mms'],
        from: '+12025550100',
        priority: 0,
        name: 'Main',
        rateLimitPerSecond: null,
        accountRateLimitPerSecond: null,
        costPerMessage: null,
        identities: [],
        countries: [],
        enabled: true,
        sealedSecrets: null,
        createdAt: now,
        updatedAt: now,
        deletedAt: null,
        ...overrides,
      };
      await store.createSender(sender);
      return sender;
    }

    async function createOrg(id: string, createdAt = t0): Promise<void> {
      await store.createOrganization({ id, name: `Org ${id.slice(-6)}`, createdAt });
    }

    function eventsJob(orgId: string) {
      return (ids: number[]): NewJob => ({
        id: `events:${ids[0]}:1`,
        queue: EVENTS_QUEUE,
        payload: JSON.stringify({ ids, attempt: 1 }),
        orgId,
        priority: PRIORITY_VALUE.high,
        runAt: Date.now(),
      });
    }

    /** Stores the events as a webhook would, then applies them as the events worker would. */
    async function deliverEvents(sender: SenderRecord, events: CarrierEvent[], now = Date.now()) {
      const ids = await store.storeCarrierEvents(sender, events, eventsJob(sender.orgId), Date.now());
      const stored = await store.loadCarrierEvents(ids);
      return { ids, result: await store.applyCarrierEvents(stored, now, () => newId('msg')) };
    }

    function statusEvent(
      status: 'sent' | 'delivered' | 'read' | 'undelivered' | 'failed',
      ref: { reference?: string | null; providerMessageId?: string | null },
      occurredAt: number,
      extra: Partial<Extract<CarrierEvent, { kind: 'status' }>> = {},
    ): CarrierEvent {
      const providerMessageId = ref.providerMessageId ?? null;
      return {
        kind: 'status',
        eventKey: `${providerMessageId ?? ref.reference}:${status}:${occurredAt}`,
        providerMessageId,
        reference: ref.reference ?? null,
        status,
        occurredAt,
        ...extra,
      };
    }

    /** Accepts, claims and records a successful send; returns the message id. */
    async function sentMessage(sender: SenderRecord, providerMessageId: string, at = t0 + MINUTE) {
      const m = outbound();
      await accept(m);
      await store.claimForSending([m.id], at, at + MINUTE);
      await store.recordSendOutcomes([
        {
          messageId: m.id,
          kind: 'sent',
          senderId: sender.id,
          provider: sender.provider,
          from: sender.from,
          providerMessageId,
          cost: 0.0079,
          at: at + 1000,
        },
      ]);
      return m.id;
    }

    describe('acceptMessages', () => {
      it('writes the message, its first history entry and its send job', async () => {
        const m = outbound({ metadata: { orderId: 'A-1001', tags: ['otp'] }, priority: PRIORITY_VALUE.high });
        expect(await accept(m)).toEqual([{ ok: true }]);

        expect(await store.getMessage(org, m.id)).toEqual({
          id: m.id,
          orgId: org,
          direction: 'outbound',
          channel: 'sms',
          to: '+12025550123',
          from: null,
          status: 'queued',
          body: 'Your verification code is 492031',
          subject: null,
          templateId: null,
          metadata: { orderId: 'A-1001', tags: ['otp'] },
          senderId: null,
          provider: null,
          providerMessageId: null,
          attempts: 0,
          sendAt: null,
          priority: PRIORITY_VALUE.high,
          error: null,
          cost: null,
          options: null,
          contactId: null,
          purpose: null,
          segments: null,
          encoding: null,
          createdAt: t0,
          updatedAt: t0,
        });
        expect(await store.getHistory(m.id)).toEqual([{ status: 'queued', at: t0, applied: true, detail: null }]);

        const jobs = await queue.claim(SEND_QUEUE, 10, MINUTE);
        expect(jobs).toHaveLength(1);
        expect(jobs[0]).toMatchObject({
          id: `send:${m.id}`,
          queue: SEND_QUEUE,
          payload: m.id,
          orgId: org,
          priority: PRIORITY_VALUE.high,
          attempts: 1,
        });
      });

      it('writes whatever jobs it is given, not only canonical send jobs', async () => {
        const a = outbound({});
        const b = outbound({ sendAt: Date.now() + 60 * MINUTE });
        const runAt = Date.now() - 1000;
        const custom: NewJob[] = [
          { id: 'custom-a', queue: 'other', payload: JSON.stringify({ m: a.id }), orgId: org, priority: 2, runAt },
          { id: 'custom-b', queue: 'other', payload: JSON.stringify({ m: b.id }), orgId: null, priority: 0, runAt },
        ];
        await store.acceptMessages([a, b], () => custom);
        expect(await queue.claim(SEND_QUEUE, 10, MINUTE)).toEqual([]);
        const claimed = await queue.claim('other', 10, MINUTE);
        expect(claimed.map((j) => [j.id, j.payload, j.orgId, j.priority])).toEqual([
          ['custom-b', JSON.stringify({ m: b.id }), null, 0],
          ['custom-a', JSON.stringify({ m: a.id }), org, 2],
        ]);
        expect((await store.getHistory(b.id))[0]?.status).toBe('scheduled');
      });

      it('keeps email subject, sender identity and template reference', async () => {
        const tpl = newId('tpl');
        const m = outbound({
          channel: 'email',
          to: 'ada@example.com',
          from: 'billing@acme.test',
          subject: 'Your invoice',
          body: '<p>Invoice #1001</p>',
          templateId: tpl,
        });
        await accept(m);
        expect(await store.getMessage(org, m.id)).toMatchObject({
          channel: 'email',
          to: 'ada@example.com',
          from: 'billing@acme.test',
          subject: 'Your invoice',
          body: '<p>Invoice #1001</p>',
          templateId: tpl,
        });
      });

      it("starts a message with a future sendAt as 'scheduled' whose job is not due yet", async () => {
        const sendAt = Date.now() + HOUR;
        const m = outbound({ createdAt: Date.now(), sendAt });
        expect(await accept(m)).toEqual([{ ok: true }]);

        const stored = await store.getMessage(org, m.id);
        expect(stored?.status).toBe('scheduled');
        expect(stored?.sendAt).toBe(sendAt);
        const history = await store.getHistory(m.id);
        expect(history).toHaveLength(1);
        expect(history[0]).toMatchObject({ status: 'scheduled', at: m.createdAt, applied: true });
        expect(history[0]?.detail).toEqual({ sendAt });

        expect(await queue.claim(SEND_QUEUE, 10, MINUTE)).toEqual([]);
        expect(await queue.nextDueAt(SEND_QUEUE)).toBe(sendAt);
        expect((await queue.depth())[SEND_QUEUE]).toBe(1);
      });

      it("starts a message whose sendAt is not after its creation as 'queued'", async () => {
        const m = outbound({ sendAt: t0 - MINUTE });
        await accept(m);
        expect((await store.getMessage(org, m.id))?.status).toBe('queued');
        expect((await store.getHistory(m.id))[0]?.status).toBe('queued');
      });

      it('accepts a batch, one outcome per message in order', async () => {
        const batch = [outbound(), outbound({ channel: 'email', to: 'bob@example.com' }), outbound()];
        expect(await accept(...batch)).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
        for (const m of batch) expect((await store.getMessage(org, m.id))?.id).toBe(m.id);
        const jobs = await queue.claim(SEND_QUEUE, 10, MINUTE);
        expect(jobs.map((j) => j.payload).sort()).toEqual(batch.map((m) => m.id).sort());
      });

      it('wakes onEnqueue listeners of the queue for the jobs it writes', async () => {
        const seen: string[] = [];
        const off = queue.onEnqueue((q) => seen.push(q));
        try {
          await accept(outbound());
          await vi.waitFor(() => expect(seen).toContain(SEND_QUEUE));
        } finally {
          off();
        }
      });
    });

    describe('idempotency keys', () => {
      const idem = (key: string, requestHash: string) => ({
        key,
        requestHash,
        response: JSON.stringify({ id: 'first', status: 'queued', hash: requestHash }),
      });

      it("rejects a taken key with 'idempotency_key_taken' and writes nothing for that message", async () => {
        const first = outbound({ idempotency: idem('order-1001-receipt', 'sha256:aaa') });
        const second = outbound({ idempotency: idem('order-1001-receipt', 'sha256:bbb') });
        expect(await accept(first)).toEqual([{ ok: true }]);
        expect(await accept(second)).toEqual([{ ok: false, reason: 'idempotency_key_taken' }]);

        expect(await store.getMessage(org, second.id)).toBeUndefined();
        expect(await store.getHistory(second.id)).toEqual([]);
        const jobs = await queue.claim(SEND_QUEUE, 10, MINUTE);
        expect(jobs.map((j) => j.payload)).toEqual([first.id]);
        // The stored response is still the first request's.
        expect(await store.findIdempotentResponse(org, 'order-1001-receipt')).toEqual({
          requestHash: 'sha256:aaa',
          response: first.idempotency?.response,
        });
      });

      it('rejects only the duplicate inside a batch', async () => {
        const a = outbound({ idempotency: idem('batch-key', 'h1') });
        const b = outbound();
        const c = outbound({ idempotency: idem('batch-key', 'h2') });
        expect(await accept(a, b, c)).toEqual([
          { ok: true },
          { ok: true },
          { ok: false, reason: 'idempotency_key_taken' },
        ]);
        expect(await store.getMessage(org, a.id)).toBeDefined();
        expect(await store.getMessage(org, b.id)).toBeDefined();
        expect(await store.getMessage(org, c.id)).toBeUndefined();
        const jobs = await queue.claim(SEND_QUEUE, 10, MINUTE);
        expect(jobs.map((j) => j.payload).sort()).toEqual([a.id, b.id].sort());
      });

      it('asks for the jobs of the accepted messages only, and writes no job when none was accepted', async () => {
        const a = outbound({ idempotency: idem('jobs-for-key', 'h1') });
        const b = outbound();
        const c = outbound({ idempotency: idem('jobs-for-key', 'h2') });
        const asked: string[][] = [];
        const shared = (acc: readonly NewMessage[]): NewJob[] => {
          asked.push(acc.map((m) => m.id));
          return [{ ...sendJob(acc[0] as NewMessage), id: 'shared', payload: acc.map((m) => m.id).join(' ') }];
        };
        await store.acceptMessages([a, b, c], shared);
        expect(asked).toEqual([[a.id, b.id]]);
        await store.acceptMessages([outbound({ idempotency: idem('jobs-for-key', 'h3') })], shared);
        expect(asked).toHaveLength(1);
        const jobs = await queue.claim(SEND_QUEUE, 10, MINUTE);
        expect(jobs.map((j) => [j.id, j.payload])).toEqual([['shared', `${a.id} ${b.id}`]]);
      });

      it('scopes keys to the organization', async () => {
        expect(await accept(outbound({ idempotency: idem('shared-key', 'h-org') }))).toEqual([{ ok: true }]);
        expect(await accept(outbound({ orgId: otherOrg, idempotency: idem('shared-key', 'h-other') }))).toEqual([
          { ok: true },
        ]);
        expect((await store.findIdempotentResponse(org, 'shared-key'))?.requestHash).toBe('h-org');
        expect((await store.findIdempotentResponse(otherOrg, 'shared-key'))?.requestHash).toBe('h-other');
      });

      it('finds nothing for an unknown key', async () => {
        expect(await store.findIdempotentResponse(org, 'never-used')).toBeUndefined();
      });
    });

    describe('getMessage / listMessages', () => {
      it('scopes getMessage to the organization', async () => {
        const m = outbound();
        await accept(m);
        expect((await store.getMessage(org, m.id))?.id).toBe(m.id);
        expect(await store.getMessage(otherOrg, m.id)).toBeUndefined();
        expect(await store.getMessage(org, newId('msg'))).toBeUndefined();
      });

      it('filters by status, channel, direction and created range, newest first', async () => {
        await createOrg(org);
        const sender = await createSender();
        const sms1 = outbound({ createdAt: t0 });
        const email = outbound({ channel: 'email', to: 'ada@example.com', createdAt: t0 + 1000 });
        const scheduled = outbound({ createdAt: t0 + 2000, sendAt: Date.now() + HOUR });
        const sms2 = outbound({ createdAt: t0 + 3000 });
        const foreign = outbound({ orgId: otherOrg, createdAt: t0 + 1500 });
        for (const m of [sms1, email, scheduled, sms2, foreign]) await accept(m);
        const { result } = await deliverEvents(sender, [
          {
            kind: 'inbound',
            eventKey: 'SM-in-1',
            providerMessageId: 'SM-in-1',
            channel: 'sms',
            from: '+12025550188',
            to: '+12025550100',
            body: 'STOP',
            occurredAt: t0 + 4000,
          },
        ]);
        const inboundId = result.inbound[0];
        expect(inboundId).toBeDefined();

        const ids = async (f: Parameters<MessageStore['listMessages']>[1]) =>
          (await store.listMessages(org, f)).map((m) => m.id);

        expect(await ids({ limit: 50 })).toEqual([inboundId, sms2.id, scheduled.id, email.id, sms1.id]);
        expect(await ids({ limit: 50, status: 'scheduled' })).toEqual([scheduled.id]);
        expect(await ids({ limit: 50, status: 'queued' })).toEqual([sms2.id, email.id, sms1.id]);
        expect(await ids({ limit: 50, channel: 'email' })).toEqual([email.id]);
        expect(await ids({ limit: 50, channel: 'sms', status: 'queued' })).toEqual([sms2.id, sms1.id]);
        expect(await ids({ limit: 50, direction: 'inbound' })).toEqual([inboundId]);
        expect(await ids({ limit: 50, direction: 'outbound' })).toEqual([sms2.id, scheduled.id, email.id, sms1.id]);
        // createdFrom is inclusive, createdTo exclusive.
        expect(await ids({ limit: 50, createdFrom: t0 + 1000, createdTo: t0 + 3000 })).toEqual([
          scheduled.id,
          email.id,
        ]);
        expect(await ids({ limit: 50, createdFrom: t0 + 3000 })).toEqual([inboundId, sms2.id]);
        expect(await ids({ limit: 50, createdTo: t0 + 1000 })).toEqual([sms1.id]);
        expect(await ids({ limit: 2 })).toEqual([inboundId, sms2.id]);
        expect(await store.listMessages(otherOrg, { limit: 50 })).toHaveLength(1);
      });

      it('pages with the `before` cursor without gaps or repeats', async () => {
        const all: string[] = [];
        for (let i = 0; i < 7; i++) {
          const m = outbound({ createdAt: t0 + i * 1000 });
          await accept(m);
          all.push(m.id);
        }
        const seen: string[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await store.listMessages(org, { limit: 3, ...(before ? { before } : {}) });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          seen.push(...page.map((m) => m.id));
          before = page[page.length - 1]?.id;
        }
        expect(seen).toEqual([...all].reverse());

        const third = all[2] as string;
        expect((await store.listMessages(org, { limit: 50, before: third })).map((m) => m.id)).toEqual([
          all[1],
          all[0],
        ]);
        expect(
          (await store.listMessages(org, { limit: 50, before: third, status: 'queued' })).map((m) => m.id),
        ).toEqual([all[1], all[0]]);
      });
    });

    describe('claimForSending', () => {
      it("moves a queued message to 'sending', counts the attempt and records it", async () => {
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        const claimed = await store.claimForSending([m.id], now, now + 30_000);
        expect(claimed).toHaveLength(1);
        expect(claimed[0]).toMatchObject({ id: m.id, status: 'sending', attempts: 1, body: m.body, to: m.to });

        const stored = await store.getMessage(org, m.id);
        expect(stored).toMatchObject({ status: 'sending', attempts: 1, updatedAt: now });
        const history = await store.getHistory(m.id);
        expect(history.map((h) => [h.status, h.applied])).toEqual([
          ['queued', true],
          ['sending', true],
        ]);
        expect(history[1]?.at).toBe(now);
      });

      it('claims a scheduled message once the worker takes its job', async () => {
        const m = outbound({ createdAt: Date.now(), sendAt: Date.now() + MINUTE });
        await accept(m);
        const now = (m.sendAt as number) + 1;
        expect((await store.claimForSending([m.id], now, now + 30_000)).map((r) => r.status)).toEqual(['sending']);
      });

      it('does not claim a message another claim holds, until its lease has expired', async () => {
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        const leaseUntil = now + 30_000;
        expect(await store.claimForSending([m.id], now, leaseUntil)).toHaveLength(1);
        expect(await store.claimForSending([m.id], now + 1, leaseUntil + 1)).toEqual([]);
        expect(await store.claimForSending([m.id], now + 29_000, leaseUntil + 29_000)).toEqual([]);
        expect((await store.getMessage(org, m.id))?.attempts).toBe(1);

        // The worker holding it crashed: once the lease has run out the message can be taken again.
        const later = leaseUntil + 1;
        const again = await store.claimForSending([m.id], later, later + 30_000);
        expect(again).toHaveLength(1);
        expect(again[0]).toMatchObject({ status: 'sending', attempts: 2 });
        expect((await store.getHistory(m.id)).filter((h) => h.status === 'sending')).toHaveLength(2);
      });

      it('skips messages that are not claimable and ids that do not exist', async () => {
        const queued = outbound();
        const canceled = outbound();
        const sent = outbound();
        await accept(queued, canceled, sent);
        await store.applyCommand(org, canceled.id, { kind: 'cancel' }, t0 + 1);
        const now = t0 + MINUTE;
        await store.claimForSending([sent.id], now, now + 30_000);
        await store.recordSendOutcomes([
          {
            messageId: sent.id,
            kind: 'sent',
            senderId: newId('snd'),
            provider: 'sandbox',
            from: '+12025550100',
            providerMessageId: 'SM-skip-1',
            cost: null,
            at: now + 10,
          },
        ]);

        const claimed = await store.claimForSending(
          [canceled.id, newId('msg'), sent.id, queued.id],
          now + HOUR,
          now + HOUR + 30_000,
        );
        expect(claimed.map((c) => c.id)).toEqual([queued.id]);
        expect((await store.getMessage(org, canceled.id))?.status).toBe('canceled');
        expect((await store.getMessage(org, sent.id))?.status).toBe('sent');
        expect((await store.getMessage(org, sent.id))?.attempts).toBe(1);
      });
    });

    describe('channel options and segmentation', () => {
      it("keeps a message's channel options and records its segments, encoding and cost when sent", async () => {
        const options = {
          mediaUrls: ['https://cdn.example.com/a.png'],
          whatsapp: { template: { name: 'order_update', language: 'en_US', components: [{ type: 'body' }] } },
          print: {
            to: { name: 'Ada', line1: '1 Main St', city: 'Springfield', postalCode: '12345', country: 'US' },
          },
        };
        const m = outbound({ options, contactId: 'ct_01H', purpose: 'marketing' });
        await accept(m);
        expect(await store.getMessage(org, m.id)).toMatchObject({ options, contactId: 'ct_01H', purpose: 'marketing' });
        await store.claimForSending([m.id], t0 + 1, t0 + 30_000);
        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: newId('snd'),
            provider: 'sandbox',
            from: '+12025550100',
            providerMessageId: 'SM-seg-1',
            cost: 0.0158,
            segments: 2,
            encoding: 'GSM-7',
            at: t0 + 10,
          },
        ]);
        expect(await store.getMessage(org, m.id)).toMatchObject({
          status: 'sent',
          segments: 2,
          encoding: 'GSM-7',
          cost: 0.0158,
          options,
        });
      });
    });

    describe('compliance outcomes', () => {
      it('defers a claimed message to a later time without counting the attempt, and suppresses another', async () => {
        const later = outbound();
        const blocked = outbound();
        await accept(later, blocked);
        await store.claimForSending([later.id, blocked.id], t0 + 1, t0 + 30_000);
        const until = t0 + 10 * HOUR;
        await store.recordSendOutcomes([
          { messageId: later.id, kind: 'defer', at: t0 + 2, until, reason: 'quiet_hours' },
          {
            messageId: blocked.id,
            kind: 'suppress',
            at: t0 + 2,
            reason: 'recipient opted out of sms',
            code: 'opted_out',
          },
        ]);
        expect(await store.getMessage(org, later.id)).toMatchObject({
          status: 'scheduled',
          sendAt: until,
          attempts: 0,
        });
        expect(await store.getMessage(org, blocked.id)).toMatchObject({
          status: 'suppressed',
          error: { code: 'opted_out', class: 'PermanentError', message: 'recipient opted out of sms' },
        });
        const history = await store.getHistory(later.id);
        expect(history.at(-1)).toMatchObject({ status: 'scheduled', applied: true, detail: { reason: 'quiet_hours' } });
        // The deferred message is claimable again once due.
        const again = await store.claimForSending([later.id, blocked.id], until, until + 30_000);
        expect(again.map((m) => m.id)).toEqual([later.id]);
        expect(again[0]?.attempts).toBe(1);
      });
    });

    describe('redactRecipients', () => {
      it("blanks an erased contact's addresses and content, keeping statuses and counts", async () => {
        const byContact = outbound({ contactId: 'ctc_erased', to: '+12025550111', metadata: { name: 'Ada' } });
        const byAddress = outbound({ to: '+12025550112', body: 'personal' });
        const other = outbound({ to: '+12025550113' });
        const foreign = outbound({ orgId: otherOrg, to: '+12025550112' });
        await accept(byContact, byAddress, other);
        await accept(foreign);
        const n = await store.redactRecipients(org, 'ctc_erased', ['+12025550112'], t0 + 5);
        expect(n).toBe(2);
        for (const m of [byContact, byAddress]) {
          expect(await store.getMessage(org, m.id)).toMatchObject({
            to: '[erased]',
            body: null,
            metadata: null,
            status: 'queued',
            channel: 'sms',
          });
        }
        expect((await store.getMessage(org, other.id))?.to).toBe('+12025550113');
        expect((await store.getMessage(otherOrg, foreign.id))?.to).toBe('+12025550112');
      });
    });

    describe('listStaleMessages', () => {
      it('finds due queued messages not updated lately, and sending ones whose lease ended', async () => {
        const queued = outbound();
        const future = outbound({ sendAt: t0 + 60 * MINUTE });
        const leased = outbound();
        for (const m of [queued, future, leased]) await accept(m);
        await store.claimForSending([leased.id], t0 + 1, t0 + MINUTE);

        const ids = async (updatedBefore: number, now: number) =>
          (await store.listStaleMessages(updatedBefore, now, 100)).map((m) => m.id);
        // Nothing is stale before the grace period has passed.
        expect(await ids(t0 - 1, t0 + 2)).toEqual([]);
        // The queued one is; the scheduled one is not due and the leased one still holds its lease.
        expect(await ids(t0 + 2, t0 + 2)).toEqual([queued.id]);
        // Once the lease has ended and the schedule is due, all three are.
        expect(new Set(await ids(t0 + 61 * MINUTE, t0 + 61 * MINUTE))).toEqual(
          new Set([queued.id, future.id, leased.id]),
        );
        const [first] = await store.listStaleMessages(t0 + 2, t0 + 2, 1);
        expect(first).toEqual({ id: queued.id, orgId: org, priority: queued.priority, sendAt: null });
      });
    });

    describe('recordSendOutcomes', () => {
      it("'retry' returns the message to queued, keeps the error and records when it will run", async () => {
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        await store.claimForSending([m.id], now, now + 30_000);
        const retryAt = now + 4_000;
        await store.recordSendOutcomes([{ messageId: m.id, kind: 'retry', error: TIMEOUT, at: now + 100, retryAt }]);

        expect(await store.getMessage(org, m.id)).toMatchObject({
          status: 'queued',
          error: TIMEOUT,
          attempts: 1,
          updatedAt: now + 100,
        });
        const last = (await store.getHistory(m.id)).at(-1);
        expect(last).toMatchObject({ status: 'queued', at: now + 100, applied: true });
        expect(last?.detail).toMatchObject({ retryAt, error: TIMEOUT });

        // ...and it can be claimed for the next attempt.
        const again = await store.claimForSending([m.id], retryAt, retryAt + 30_000);
        expect(again[0]).toMatchObject({ status: 'sending', attempts: 2, error: TIMEOUT });
      });

      it("'sent' stores the carrier, provider id and cost and clears an earlier error", async () => {
        const sender = { id: newId('snd'), provider: 'sandbox', from: '+12025550100' };
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        await store.claimForSending([m.id], now, now + 30_000);
        await store.recordSendOutcomes([
          { messageId: m.id, kind: 'retry', error: TIMEOUT, at: now + 1, retryAt: now + 2 },
        ]);
        await store.claimForSending([m.id], now + 2, now + 30_000);
        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: sender.id,
            provider: sender.provider,
            from: sender.from,
            providerMessageId: 'SM8f2c71b9e6a04d3c',
            cost: 0.0079,
            at: now + 500,
          },
        ]);

        expect(await store.getMessage(org, m.id)).toMatchObject({
          status: 'sent',
          senderId: sender.id,
          provider: 'sandbox',
          from: '+12025550100',
          providerMessageId: 'SM8f2c71b9e6a04d3c',
          cost: 0.0079,
          error: null,
          attempts: 2,
          updatedAt: now + 500,
        });
        const last = (await store.getHistory(m.id)).at(-1);
        expect(last).toMatchObject({ status: 'sent', at: now + 500, applied: true });
        expect(last?.detail).toMatchObject({ providerMessageId: 'SM8f2c71b9e6a04d3c' });
      });

      it("'sent' keeps a from address the message already had", async () => {
        const m = outbound({ from: '+12025550111' });
        await accept(m);
        await store.claimForSending([m.id], t0 + 1, t0 + MINUTE);
        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: newId('snd'),
            provider: 'sandbox',
            from: '+12025550100',
            providerMessageId: 'SM-from-1',
            cost: null,
            at: t0 + 2,
          },
        ]);
        expect((await store.getMessage(org, m.id))?.from).toBe('+12025550111');
      });

      it("'fail' fails the message with its error and the sender that refused it", async () => {
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        await store.claimForSending([m.id], now, now + 30_000);
        const senderId = newId('snd');
        await store.recordSendOutcomes([
          { messageId: m.id, kind: 'fail', error: UNREACHABLE, at: now + 10, senderId, provider: 'sandbox' },
        ]);
        expect(await store.getMessage(org, m.id)).toMatchObject({
          status: 'failed',
          error: UNREACHABLE,
          senderId,
          provider: 'sandbox',
          updatedAt: now + 10,
        });
        expect((await store.getHistory(m.id)).at(-1)).toMatchObject({ status: 'failed', applied: true, at: now + 10 });
        // A failed message is done: it cannot be claimed again.
        expect(await store.claimForSending([m.id], now + HOUR, now + HOUR + 1)).toEqual([]);
      });

      it('records several outcomes in one call and ignores unknown messages', async () => {
        const a = outbound();
        const b = outbound();
        const c = outbound();
        await accept(a, b, c);
        const now = t0 + MINUTE;
        await store.claimForSending([a.id, b.id, c.id], now, now + 30_000);
        await store.recordSendOutcomes([
          {
            messageId: a.id,
            kind: 'sent',
            senderId: newId('snd'),
            provider: 'sandbox',
            from: null,
            providerMessageId: 'SM-batch-a',
            cost: null,
            at: now + 1,
          },
          { messageId: newId('msg'), kind: 'fail', error: UNREACHABLE, at: now + 1 },
          { messageId: b.id, kind: 'retry', error: TIMEOUT, at: now + 1, retryAt: now + 1000 },
          { messageId: c.id, kind: 'fail', error: UNREACHABLE, at: now + 1 },
        ]);
        expect((await store.getMessage(org, a.id))?.status).toBe('sent');
        expect((await store.getMessage(org, b.id))?.status).toBe('queued');
        expect((await store.getMessage(org, c.id))?.status).toBe('failed');
      });

      it("records a late 'sent' after 'delivered' as not applied, without lowering the status", async () => {
        await createOrg(org);
        const sender = await createSender();
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        await store.claimForSending([m.id], now, now + 30_000);
        // The carrier's delivery callback (echoing our id) beats its synchronous answer.
        const { result } = await deliverEvents(sender, [statusEvent('delivered', { reference: m.id }, now + 200)]);
        expect(result.applied).toEqual([{ messageId: m.id, status: 'delivered' }]);

        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: sender.id,
            provider: sender.provider,
            from: sender.from,
            providerMessageId: 'SM-late-sent',
            cost: 0.0079,
            at: now + 300,
          },
        ]);
        const stored = await store.getMessage(org, m.id);
        expect(stored?.status).toBe('delivered');
        expect(stored?.providerMessageId).toBe('SM-late-sent');
        const history = await store.getHistory(m.id);
        expect(history.map((h) => [h.status, h.applied])).toEqual([
          ['queued', true],
          ['sending', true],
          ['delivered', true],
          ['sent', false],
        ]);
      });

      it("keeps a carrier's failure and its error when the 'sent' answer arrives late", async () => {
        await createOrg(org);
        const sender = await createSender();
        const m = outbound();
        await accept(m);
        const now = t0 + MINUTE;
        await store.claimForSending([m.id], now, now + 30_000);
        await deliverEvents(sender, [
          statusEvent('undelivered', { reference: m.id }, now + 200, { error: UNREACHABLE }),
        ]);
        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: sender.id,
            provider: sender.provider,
            from: sender.from,
            providerMessageId: 'SM-late-after-fail',
            cost: null,
            at: now + 300,
          },
        ]);
        expect(await store.getMessage(org, m.id)).toMatchObject({ status: 'undelivered', error: UNREACHABLE });
        expect((await store.getHistory(m.id)).at(-1)).toMatchObject({ status: 'sent', applied: false });
      });
    });

    describe('applyCommand', () => {
      it('cancels a queued message', async () => {
        const m = outbound();
        await accept(m);
        expect(await store.applyCommand(org, m.id, { kind: 'cancel' }, t0 + 500)).toEqual({
          applied: true,
          status: 'canceled',
        });
        expect(await store.getMessage(org, m.id)).toMatchObject({ status: 'canceled', updatedAt: t0 + 500 });
        expect((await store.getHistory(m.id)).at(-1)).toMatchObject({
          status: 'canceled',
          at: t0 + 500,
          applied: true,
        });
        expect(await store.claimForSending([m.id], t0 + 1000, t0 + MINUTE)).toEqual([]);
      });

      it('cancels a scheduled message', async () => {
        const m = outbound({ createdAt: Date.now(), sendAt: Date.now() + HOUR });
        await accept(m);
        expect(await store.applyCommand(org, m.id, { kind: 'cancel' }, Date.now())).toEqual({
          applied: true,
          status: 'canceled',
        });
      });

      it('does not cancel a message already handed to a carrier', async () => {
        const m = outbound();
        await accept(m);
        await store.claimForSending([m.id], t0 + 1, t0 + MINUTE);
        expect(await store.applyCommand(org, m.id, { kind: 'cancel' }, t0 + 2)).toEqual({
          applied: false,
          status: 'sending',
        });
        await store.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: newId('snd'),
            provider: 'sandbox',
            from: null,
            providerMessageId: 'SM-cancel-late',
            cost: null,
            at: t0 + 3,
          },
        ]);
        expect(await store.applyCommand(org, m.id, { kind: 'cancel' }, t0 + 4)).toEqual({
          applied: false,
          status: 'sent',
        });
        expect((await store.getMessage(org, m.id))?.status).toBe('sent');
        expect((await store.getHistory(m.id)).filter((h) => h.status === 'canceled' && h.applied)).toEqual([]);
      });

      it('suppresses with a reason and fails with an error', async () => {
        const s = outbound();
        const f = outbound();
        await accept(s, f);
        expect(
          await store.applyCommand(
            org,
            s.id,
            { kind: 'suppress', reason: 'unsubscribed', detail: { list: 'global' } },
            t0 + 1,
          ),
        ).toEqual({ applied: true, status: 'suppressed' });
        expect((await store.getHistory(s.id)).at(-1)?.detail).toMatchObject({ reason: 'unsubscribed', list: 'global' });

        expect(await store.applyCommand(org, f.id, { kind: 'fail', error: UNREACHABLE }, t0 + 1)).toEqual({
          applied: true,
          status: 'failed',
        });
        expect((await store.getMessage(org, f.id))?.error).toEqual(UNREACHABLE);
      });

      it("returns undefined for another organization's message", async () => {
        const m = outbound();
        await accept(m);
        expect(await store.applyCommand(otherOrg, m.id, { kind: 'cancel' }, t0 + 1)).toBeUndefined();
        expect(await store.applyCommand(org, newId('msg'), { kind: 'cancel' }, t0 + 1)).toBeUndefined();
        expect((await store.getMessage(org, m.id))?.status).toBe('queued');
      });
    });

    describe('carrier events', () => {
      let sender: SenderRecord;
      beforeEach(async () => {
        await createOrg(org);
        sender = await createSender();
      });

      it('stores events deduplicated per sender by event key, with one job per new batch', async () => {
        const jobCalls: number[][] = [];
        const job = (ids: number[]) => {
          jobCalls.push(ids);
          return eventsJob(org)(ids);
        };
        const e1 = statusEvent('delivered', { providerMessageId: 'SM-a' }, t0);
        const e2 = statusEvent('delivered', { providerMessageId: 'SM-b' }, t0);
        const e3 = statusEvent('read', { providerMessageId: 'SM-b' }, t0 + 1);

        const first = await store.storeCarrierEvents(sender, [e1, e2], job, Date.now());
        expect(first).toHaveLength(2);
        expect(jobCalls).toEqual([first]);
        let jobs = await queue.claim(EVENTS_QUEUE, 10, MINUTE);
        expect(jobs).toHaveLength(1);
        expect(JSON.parse(jobs[0]?.payload ?? '{}').ids).toEqual(first);
        expect(jobs[0]?.orgId).toBe(org);

        // A webhook delivered twice: only the new event is stored.
        const second = await store.storeCarrierEvents(sender, [e2, e3], job, Date.now());
        expect(second).toHaveLength(1);
        expect(first).not.toContain(second[0]);
        jobs = await queue.claim(EVENTS_QUEUE, 10, MINUTE);
        expect(jobs).toHaveLength(1);
        expect(JSON.parse(jobs[0]?.payload ?? '{}').ids).toEqual(second);

        // Nothing new: nothing stored, no job.
        expect(await store.storeCarrierEvents(sender, [e1, e3], job, Date.now())).toEqual([]);
        expect(jobCalls).toHaveLength(2);
        expect((await queue.depth())[EVENTS_QUEUE] ?? 0).toBe(2);

        // The same key from another sender is a different event.
        const sender2 = await createSender(org, { provider: 'sandbox', from: '+12025550101' });
        expect(await store.storeCarrierEvents(sender2, [e1], eventsJob(org), Date.now())).toHaveLength(1);
      });

      it('loads stored events as they were received', async () => {
        const e = statusEvent('undelivered', { providerMessageId: 'SM-load', reference: newId('msg') }, t0, {
          error: UNREACHABLE,
          detail: { carrierCode: '30003' },
        });
        const ids = await store.storeCarrierEvents(sender, [e], eventsJob(org), Date.now());
        const loaded = await store.loadCarrierEvents([...ids, 987654321]);
        expect(loaded).toEqual([
          { id: ids[0]!, senderId: sender.id, orgId: org, event: e } satisfies StoredCarrierEvent,
        ]);
      });

      it('applies a status by our reference and by the provider message id', async () => {
        const byRef = await sentMessage(sender, 'SM-ref');
        const byProvider = await sentMessage(sender, 'SM-provider');
        const now = t0 + 2 * MINUTE;
        const { result } = await deliverEvents(
          sender,
          [
            statusEvent('delivered', { reference: byRef, providerMessageId: 'SM-ref' }, t0 + 90_000),
            statusEvent('delivered', { providerMessageId: 'SM-provider' }, t0 + 91_000),
          ],
          now,
        );
        expect(result.unmatched).toEqual([]);
        expect(result.inbound).toEqual([]);
        expect(result.applied).toEqual([
          { messageId: byRef, status: 'delivered' },
          { messageId: byProvider, status: 'delivered' },
        ]);
        expect(await store.getMessage(org, byRef)).toMatchObject({ status: 'delivered', updatedAt: now });
        expect((await store.getMessage(org, byProvider))?.status).toBe('delivered');
        expect((await store.getHistory(byProvider)).at(-1)).toMatchObject({
          status: 'delivered',
          at: t0 + 91_000,
          applied: true,
        });
      });

      it('stores a carrier error with a failure report', async () => {
        const id = await sentMessage(sender, 'SM-undelivered');
        const { result } = await deliverEvents(sender, [
          statusEvent('undelivered', { providerMessageId: 'SM-undelivered' }, t0 + 90_000, { error: UNREACHABLE }),
        ]);
        expect(result.applied).toEqual([{ messageId: id, status: 'undelivered' }]);
        expect(await store.getMessage(org, id)).toMatchObject({ status: 'undelivered', error: UNREACHABLE });
      });

      it('reports events whose message cannot be found as unmatched', async () => {
        const known = await sentMessage(sender, 'SM-known');
        const { ids, result } = await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-not-yet-recorded' }, t0 + 90_000),
          statusEvent('delivered', { providerMessageId: 'SM-known' }, t0 + 90_000),
          statusEvent('delivered', { reference: newId('msg') }, t0 + 90_000),
        ]);
        expect(result.unmatched).toEqual([ids[0], ids[2]]);
        expect(result.applied).toEqual([{ messageId: known, status: 'delivered' }]);
      });

      it("does not match a reference to another organization's message", async () => {
        const foreign = outbound({ orgId: otherOrg });
        await accept(foreign);
        await store.claimForSending([foreign.id], t0 + 1, t0 + MINUTE);
        const { ids, result } = await deliverEvents(sender, [
          statusEvent('delivered', { reference: foreign.id }, t0 + 90_000),
        ]);
        expect(result.unmatched).toEqual(ids);
        expect((await store.getMessage(otherOrg, foreign.id))?.status).toBe('sending');
      });

      it('never lowers the status when reports arrive out of order', async () => {
        const id = await sentMessage(sender, 'SM-ooo');
        const delivered = await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-ooo' }, t0 + 90_000),
        ]);
        expect(delivered.result.applied).toEqual([{ messageId: id, status: 'delivered' }]);
        // The carrier's 'sent' callback, older, arrives after 'delivered'.
        const late = await deliverEvents(sender, [statusEvent('sent', { providerMessageId: 'SM-ooo' }, t0 + 80_000)]);
        expect(late.result.applied).toEqual([]);
        expect(late.result.unmatched).toEqual([]);
        expect((await store.getMessage(org, id))?.status).toBe('delivered');
        expect((await store.getHistory(id)).slice(-2)).toMatchObject([
          { status: 'delivered', applied: true, at: t0 + 90_000 },
          { status: 'sent', applied: false, at: t0 + 80_000 },
        ]);

        // Later progress still applies.
        const read = await deliverEvents(sender, [statusEvent('read', { providerMessageId: 'SM-ooo' }, t0 + 95_000)]);
        expect(read.result.applied).toEqual([{ messageId: id, status: 'read' }]);
        expect((await store.getMessage(org, id))?.status).toBe('read');
      });

      it('orders reports within one batch by rank, not arrival', async () => {
        const id = await sentMessage(sender, 'SM-batch-ooo');
        const { result } = await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-batch-ooo' }, t0 + 90_000),
          statusEvent('sent', { providerMessageId: 'SM-batch-ooo' }, t0 + 85_000),
        ]);
        expect(result.applied).toEqual([{ messageId: id, status: 'delivered' }]);
        expect((await store.getMessage(org, id))?.status).toBe('delivered');
      });

      it("records a repeated 'delivered' with applied=false", async () => {
        const id = await sentMessage(sender, 'SM-dup');
        await deliverEvents(sender, [statusEvent('delivered', { providerMessageId: 'SM-dup' }, t0 + 90_000)]);
        // A second, distinct callback (different key) saying the same thing.
        const again = await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-dup' }, t0 + 91_000),
        ]);
        expect(again.result.applied).toEqual([]);
        const delivered = (await store.getHistory(id)).filter((h) => h.status === 'delivered');
        expect(delivered.map((h) => h.applied)).toEqual([true, false]);
      });

      it("creates an inbound message with status 'received'", async () => {
        const occurredAt = t0 + 5_000;
        const now = t0 + 6_000;
        const { result } = await deliverEvents(
          sender,
          [
            {
              kind: 'inbound',
              eventKey: 'SM-inbound-77',
              providerMessageId: 'SM-inbound-77',
              channel: 'sms',
              from: '+12025550177',
              to: '+12025550100',
              body: 'YES, confirm my appointment',
              occurredAt,
            },
          ],
          now,
        );
        expect(result.inbound).toHaveLength(1);
        expect(result.unmatched).toEqual([]);
        const id = result.inbound[0] as string;
        expect(await store.getMessage(org, id)).toMatchObject({
          id,
          orgId: org,
          direction: 'inbound',
          channel: 'sms',
          from: '+12025550177',
          to: '+12025550100',
          body: 'YES, confirm my appointment',
          status: 'received',
          senderId: sender.id,
          provider: 'sandbox',
          providerMessageId: 'SM-inbound-77',
          createdAt: occurredAt,
        });
        expect(await store.getHistory(id)).toMatchObject([{ status: 'received', applied: true, at: occurredAt }]);
        expect(await store.getMessage(otherOrg, id)).toBeUndefined();
      });
    });

    describe('settling carrier events', () => {
      let sender: SenderRecord;
      beforeEach(async () => {
        await createOrg(org);
        sender = await createSender();
      });

      const inboundEvent = (key: string): CarrierEvent => ({
        kind: 'inbound',
        eventKey: key,
        providerMessageId: key,
        channel: 'sms',
        from: '+12025550177',
        to: '+12025550100',
        body: 'STOP',
        occurredAt: t0,
      });

      it('settles what it applies; unmatched events stay unsettled until settled on their own', async () => {
        const id = await sentMessage(sender, 'SM-settle');
        const receivedAt = t0 + 2 * MINUTE;
        const ids = await store.storeCarrierEvents(
          sender,
          [
            statusEvent('delivered', { providerMessageId: 'SM-settle' }, t0 + 90_000),
            statusEvent('delivered', { providerMessageId: 'SM-nobody' }, t0 + 90_000),
            inboundEvent('SM-in-settle'),
          ],
          eventsJob(org),
          receivedAt,
        );
        const [applied, unmatched, inbound] = ids as [number, number, number];
        const unsettled = (before: number, limit = 100) => store.listUnsettledCarrierEvents(before, limit);
        // Only events received before the given time count; oldest first, `limit` at most.
        expect(await unsettled(receivedAt)).toEqual([]);
        expect(await unsettled(receivedAt + 1)).toEqual(ids.map((eventId) => ({ id: eventId, orgId: org })));
        expect(await unsettled(receivedAt + 1, 2)).toEqual([
          { id: applied, orgId: org },
          { id: unmatched, orgId: org },
        ]);

        const result = await store.applyCarrierEvents(await store.loadCarrierEvents(ids), receivedAt + 10, () =>
          newId('msg'),
        );
        expect(result.applied).toEqual([{ messageId: id, status: 'delivered' }]);
        expect(result.unmatched).toEqual([unmatched]);
        expect(result.inbound).toHaveLength(1);
        expect(inbound).toBeGreaterThan(unmatched);
        expect(await unsettled(receivedAt + MINUTE)).toEqual([{ id: unmatched, orgId: org }]);

        // Given up on (dead-lettered): settled too; settling again, or unknown ids, changes nothing.
        await store.settleCarrierEvents([unmatched], receivedAt + 20);
        await store.settleCarrierEvents([unmatched, 987654321], receivedAt + 30);
        await store.settleCarrierEvents([], receivedAt + 30);
        expect(await unsettled(receivedAt + MINUTE)).toEqual([]);
      });

      it('skips events already settled, so a job that runs again applies nothing twice', async () => {
        const id = await sentMessage(sender, 'SM-twice');
        const { ids, result } = await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-twice' }, t0 + 90_000),
          inboundEvent('SM-in-twice'),
        ]);
        expect(result.applied).toHaveLength(1);
        expect(result.inbound).toHaveLength(1);
        const history = await store.getHistory(id);
        const counts = await store.countByStatus();

        const again = await store.applyCarrierEvents(await store.loadCarrierEvents(ids), Date.now(), () =>
          newId('msg'),
        );
        expect(again).toEqual({ applied: [], unmatched: [], inbound: [] });
        expect(await store.getHistory(id)).toEqual(history);
        expect(await store.countByStatus()).toEqual(counts);

        // A settled (dead-lettered) event is not reported as unmatched any more either.
        const [orphan] = await store.storeCarrierEvents(
          sender,
          [statusEvent('delivered', { providerMessageId: 'SM-orphan' }, t0 + 90_000)],
          eventsJob(org),
          Date.now(),
        );
        const loaded = await store.loadCarrierEvents([orphan as number]);
        expect((await store.applyCarrierEvents(loaded, Date.now(), () => newId('msg'))).unmatched).toEqual([orphan]);
        await store.settleCarrierEvents([orphan as number], Date.now());
        expect((await store.applyCarrierEvents(loaded, Date.now(), () => newId('msg'))).unmatched).toEqual([]);
      });

      it('applies events once when the same job runs twice at once', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) ids.push(await sentMessage(sender, `SM-race-${i}`));
        const eventIds = await store.storeCarrierEvents(
          sender,
          ids.map((_, i) => statusEvent('delivered', { providerMessageId: `SM-race-${i}` }, t0 + 90_000)),
          eventsJob(org),
          Date.now(),
        );
        const loaded = await store.loadCarrierEvents(eventIds);
        const results = await Promise.all(
          [0, 1, 2].map(() => store.applyCarrierEvents(loaded, Date.now(), () => newId('msg'))),
        );
        expect(results.flatMap((r) => r.applied)).toHaveLength(ids.length);
        expect(results.flatMap((r) => r.unmatched)).toEqual([]);
        for (const id of ids) {
          expect((await store.getHistory(id)).filter((h) => h.status === 'delivered')).toHaveLength(1);
        }
      });
    });

    describe('templates, API keys, organizations, senders', () => {
      it('round-trips templates, scoped to the organization', async () => {
        const tpl = {
          id: newId('tpl'),
          orgId: org,
          name: 'appointment-reminder',
          content: {
            sms: { body: 'Hi {{ name }}, see you at {{ time }}.' },
            email: { subject: 'Reminder: {{ time }}', body: '<p>Hi {{ name }}</p>' },
          },
          createdAt: t0,
        };
        await store.createTemplate(tpl);
        expect(await store.getTemplate(org, tpl.id)).toEqual(tpl);
        expect(await store.getTemplate(otherOrg, tpl.id)).toBeUndefined();
        expect(await store.getTemplate(org, newId('tpl'))).toBeUndefined();
      });

      it('finds API keys by hash', async () => {
        await createOrg(org);
        const key = {
          id: newId('key'),
          orgId: org,
          name: 'production',
          hash: 'sha256:9f86d081884c7d65',
          createdAt: t0,
        };
        await store.createApiKey(key);
        expect(await store.findApiKeyByHash(key.hash)).toEqual({ id: key.id, orgId: org, name: 'production' });
        expect(await store.findApiKeyByHash('sha256:0000000000000000')).toBeUndefined();
      });

      it('counts organizations and finds the first one', async () => {
        expect(await store.countOrganizations()).toBe(0);
        expect(await store.firstOrganizationId()).toBeUndefined();
        await createOrg(otherOrg, t0 + 1000);
        await createOrg(org, t0);
        expect(await store.countOrganizations()).toBe(2);
        expect(await store.firstOrganizationId()).toBe(org);
      });

      it('round-trips senders, listed per organization by priority', async () => {
        await createOrg(org);
        await createOrg(otherOrg);
        const backup = await createSender(org, { priority: 5, channels: ['sms'], from: null });
        const primary = await createSender(org, {
          priority: 1,
          config: { region: 'us-east-1', nested: { a: [1, 2] } },
        });
        const foreign = await createSender(otherOrg);
        expect(await store.listSenders(org)).toEqual([primary, backup]);
        expect(await store.listSenders(otherOrg)).toEqual([foreign]);
        expect(await store.getSender(backup.id)).toEqual(backup);
        expect(await store.getSender(newId('snd'))).toBeUndefined();
      });

      it('updates a sender, keeps a deleted one readable by id but out of the list', async () => {
        await createOrg(org);
        const s = await createSender(org, {
          rateLimitPerSecond: 50,
          accountRateLimitPerSecond: 200,
          costPerMessage: 0.0079,
          identities: ['+12025550100', '12345'],
          countries: ['US', 'CA'],
          sealedSecrets: 'v1.abcd1234.sealed',
        });
        expect(await store.getSender(s.id)).toEqual(s);
        const changed = {
          ...s,
          priority: 3,
          enabled: false,
          name: 'Backup',
          costPerMessage: 0.01,
          updatedAt: s.updatedAt + 5,
        };
        await store.updateSender(changed);
        expect(await store.getSender(s.id)).toEqual(changed);
        const deleted = { ...changed, deletedAt: changed.updatedAt + 1 };
        await store.updateSender(deleted);
        expect(await store.listSenders(org)).toEqual([]);
        expect(await store.getSender(s.id)).toEqual(deleted);
      });

      it('remembers the sender that served each recipient, per organization and channel', async () => {
        await store.setSenderAffinity(
          [
            { orgId: org, channel: 'sms', recipient: '+14155550101', senderId: 'snd_a' },
            { orgId: org, channel: 'sms', recipient: '+14155550102', senderId: 'snd_a' },
            { orgId: org, channel: 'whatsapp', recipient: '+14155550101', senderId: 'snd_w' },
          ],
          t0,
        );
        await store.setSenderAffinity(
          [
            { orgId: org, channel: 'sms', recipient: '+14155550102', senderId: 'snd_b' },
            { orgId: org, channel: 'sms', recipient: '+14155550102', senderId: 'snd_c' },
          ],
          t0 + 1,
        );
        const found = await store.getSenderAffinity(org, 'sms', ['+14155550101', '+14155550102', '+14155550103']);
        expect(Object.fromEntries(found)).toEqual({ '+14155550101': 'snd_a', '+14155550102': 'snd_c' });
        expect(Object.fromEntries(await store.getSenderAffinity(otherOrg, 'sms', ['+14155550101']))).toEqual({});
        expect(Object.fromEntries(await store.getSenderAffinity(org, 'whatsapp', ['+14155550101']))).toEqual({
          '+14155550101': 'snd_w',
        });
      });

      it('counts messages by status and answers ping', async () => {
        const a = outbound();
        const b = outbound();
        const c = outbound();
        await accept(a, b, c);
        await store.applyCommand(org, a.id, { kind: 'cancel' }, t0 + 1);
        expect(await store.countByStatus()).toMatchObject({ queued: 2, canceled: 1 });
        expect(await store.ping()).toBe(true);
      });

      it('keeps the counts by status right through accepts, claims, outcomes, carrier events and commands', async () => {
        await store.createOrganization({ id: org, name: 'Counts', createdAt: t0 });
        const sender = await createSender();
        const [a, b, c, d, e] = [outbound(), outbound(), outbound(), outbound(), outbound()] as const;
        const later = outbound({ sendAt: t0 + HOUR * 2 });
        await accept(a, b, c, d, e, later);
        expect(await store.countByStatus()).toEqual({ queued: 5, scheduled: 1 });
        await store.claimForSending([a.id, b.id, c.id, d.id], t0 + 1, t0 + MINUTE);
        expect(await store.countByStatus()).toEqual({ queued: 1, scheduled: 1, sending: 4 });
        const sent = (m: NewMessage, pmid: string): SendOutcome => ({
          messageId: m.id,
          kind: 'sent',
          senderId: sender.id,
          provider: sender.provider,
          from: sender.from,
          providerMessageId: pmid,
          cost: null,
          at: t0 + 2,
        });
        await store.recordSendOutcomes([
          sent(a, 'SM-count-a'),
          sent(b, 'SM-count-b'),
          { messageId: c.id, kind: 'fail', error: { code: 'x', class: 'PermanentError', message: 'x' }, at: t0 + 2 },
          { messageId: d.id, kind: 'suppress', reason: 'opted_out', code: 'opted_out', at: t0 + 2 },
        ]);
        expect(await store.countByStatus()).toEqual({ queued: 1, scheduled: 1, sent: 2, failed: 1, suppressed: 1 });
        await deliverEvents(sender, [
          statusEvent('delivered', { providerMessageId: 'SM-count-a' }, t0 + 3),
          statusEvent('undelivered', { providerMessageId: 'SM-count-b' }, t0 + 3),
          {
            kind: 'inbound',
            eventKey: 'SM-count-in',
            providerMessageId: 'SM-count-in',
            channel: 'sms',
            from: '+12025550177',
            to: '+12025550100',
            body: 'hi',
            occurredAt: t0 + 3,
          },
        ]);
        await store.applyCommand(org, e.id, { kind: 'cancel' }, t0 + 4);
        expect(await store.countByStatus()).toEqual({
          scheduled: 1,
          delivered: 1,
          undelivered: 1,
          failed: 1,
          suppressed: 1,
          canceled: 1,
          received: 1,
        });
      });
    });
  });
}
