/**
 * The WebhookStore contract: what every adapter (SQLite, PostgreSQL) must do. `make` returns a fresh, migrated
 * database's webhook store and the message store over the same database (message events come from its history).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.ts';
import type { CarrierEvent } from '../../src/ports/carrier.ts';
import { type NewJob, PRIORITY_VALUE } from '../../src/ports/queue.ts';
import type { MessageStore, NewMessage, StoredSender } from '../../src/ports/store.ts';
import type {
  DeliveryOutcome,
  FanOutInput,
  FanOutPlan,
  WebhookEndpointRecord,
  WebhookStore,
} from '../../src/ports/webhook-store.ts';

export interface WebhookStoreContext {
  webhooks: WebhookStore;
  messages: MessageStore;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const FAR = Number.MAX_SAFE_INTEGER;

export function webhookStoreContract(name: string, make: () => Promise<WebhookStoreContext>): void {
  describe(name, () => {
    let ctx: WebhookStoreContext;
    let webhooks: WebhookStore;
    let messages: MessageStore;
    let org: string;
    let otherOrg: string;
    let t0: number;

    beforeEach(async () => {
      ctx = await make();
      ({ webhooks, messages } = ctx);
      org = newId('org');
      otherOrg = newId('org');
      t0 = Date.now() - HOUR;
    });
    afterEach(async () => {
      await ctx.cleanup();
    });

    function endpoint(overrides: Partial<WebhookEndpointRecord> = {}): WebhookEndpointRecord {
      return {
        id: `whk_${newId('evt').slice(4)}`,
        orgId: org,
        url: 'https://hooks.example.com/omni',
        description: null,
        eventTypes: ['message.queued', 'message.sent', 'message.delivered'],
        filter: null,
        enabled: true,
        sealedSecret: 'sealed:current',
        sealedPreviousSecret: null,
        previousSecretExpiresAt: null,
        disabledReason: null,
        disabledAt: null,
        failingSince: null,
        createdAt: t0,
        updatedAt: t0,
        deletedAt: null,
        ...overrides,
      };
    }

    async function addEndpoint(overrides: Partial<WebhookEndpointRecord> = {}): Promise<WebhookEndpointRecord> {
      const e = endpoint(overrides);
      await webhooks.createEndpoint(e);
      return e;
    }

    function outbound(overrides: Partial<NewMessage> = {}): NewMessage {
      return {
        id: newId('msg'),
        orgId: org,
        channel: 'sms',
        to: '+12025550123',
        from: null,
        body: 'Your code is 492031',
        subject: null,
        templateId: null,
        metadata: { order: 7 },
        sendAt: null,
        priority: PRIORITY_VALUE.normal,
        createdAt: t0,
        ...overrides,
      };
    }

    const sendJob = (m: NewMessage): NewJob => ({
      id: `send:${m.id}`,
      queue: 'send',
      payload: m.id,
      orgId: m.orgId,
      priority: m.priority,
      runAt: m.createdAt,
    });

    async function accept(...ms: NewMessage[]): Promise<void> {
      await messages.acceptMessages(ms, (acc) => acc.map(sendJob));
    }

    async function sender(): Promise<StoredSender> {
      await messages.createOrganization({ id: org, name: 'Org', createdAt: t0 });
      const s: StoredSender = {
        id: newId('snd'),
        orgId: org,
        provider: 'sandbox',
        config: {},
        channels: ['sms'],
        from: '+12025550100',
        priority: 0,
        sealedSecrets: null,
        createdAt: t0,
        updatedAt: t0,
        deletedAt: null,
      };
      await messages.createSender(s);
      return s;
    }

    /** A planner that records what it saw and sends every event to every endpoint given. */
    function capture(): { seen: FanOutInput[]; plan: (input: FanOutInput) => FanOutPlan } {
      const seen: FanOutInput[] = [];
      return {
        seen,
        plan: (input) => {
          seen.push(input);
          const payloads = new Map<number, string>();
          for (const e of input.events)
            if (e.payload === null) payloads.set(e.id, JSON.stringify({ id: e.messageId, status: e.message?.status }));
          return {
            payloads,
            deliveries: input.events.flatMap((e) =>
              input.endpoints.filter((p) => p.orgId === e.orgId).map((p) => ({ eventId: e.id, endpointId: p.id })),
            ),
          };
        },
      };
    }

    async function dispatchAll(plan: (input: FanOutInput) => FanOutPlan, now = t0 + MINUTE): Promise<number> {
      let total = 0;
      for (;;) {
        const n = await webhooks.dispatchEvents(100, now, plan);
        if (n === 0) return total;
        total += n;
      }
    }

    async function eventTypes(): Promise<{ type: string; messageId: string | null }[]> {
      const { seen, plan } = capture();
      await dispatchAll(plan);
      return seen.flatMap((s) => s.events.map((e) => ({ type: e.type, messageId: e.messageId })));
    }

    const claimAll = (now: number, opts: Partial<Parameters<WebhookStore['claimDeliveries']>[0]> = {}) =>
      webhooks.claimDeliveries({
        limit: 100,
        perEndpoint: 100,
        now,
        leaseUntil: now + MINUTE,
        skipEndpoints: [],
        ...opts,
      });

    function outcome(
      deliveryId: number,
      endpointId: string,
      at: number,
      result: DeliveryOutcome['result'],
      statusCode: number | null = result.kind === 'delivered' ? 200 : 503,
    ): DeliveryOutcome {
      return {
        deliveryId,
        endpointId,
        attempt: {
          at,
          statusCode,
          latencyMs: 12,
          response: statusCode ? 'answer' : null,
          error: statusCode ? null : 'timed out',
        },
        result,
      };
    }

    const disableOpts = (now: number, disableFailingSince = 0) => ({
      now,
      disableFailingSince,
      disabledReason: 'every delivery failed for 5 days',
      disabledEvent: (e: WebhookEndpointRecord) => ({
        orgId: e.orgId,
        type: 'endpoint.disabled',
        payload: JSON.stringify({ endpointId: e.id }),
        at: now,
      }),
    });

    describe('endpoints', () => {
      it('creates, reads, lists per organization, updates and deletes', async () => {
        const a = await addEndpoint({ filter: { channels: ['sms'], metadata: { tier: 'gold', n: 1, b: true } } });
        const b = await addEndpoint({ description: 'second' });
        await addEndpoint({ orgId: otherOrg });
        expect(await webhooks.getEndpoint(org, a.id)).toEqual(a);
        expect(await webhooks.getEndpoint(otherOrg, a.id)).toBeUndefined();
        expect((await webhooks.listEndpoints(org)).map((e) => e.id)).toEqual([a.id, b.id].sort());
        const changed: WebhookEndpointRecord = {
          ...a,
          url: 'https://other.example.com/',
          eventTypes: ['message.read'],
          filter: null,
          enabled: false,
          sealedSecret: 'sealed:new',
          sealedPreviousSecret: 'sealed:current',
          previousSecretExpiresAt: t0 + HOUR,
          disabledReason: 'why',
          disabledAt: t0 + 5,
          failingSince: t0 + 1,
          updatedAt: t0 + 10,
        };
        await webhooks.updateEndpoint(changed);
        expect(await webhooks.getEndpoint(org, a.id)).toEqual(changed);
        expect(await webhooks.deleteEndpoint(org, a.id, t0 + 20)).toBe(true);
        expect(await webhooks.deleteEndpoint(org, a.id, t0 + 21)).toBe(false);
        expect(await webhooks.deleteEndpoint(otherOrg, b.id, t0 + 21)).toBe(false);
        expect(await webhooks.getEndpoint(org, a.id)).toBeUndefined();
        expect((await webhooks.listEndpoints(org)).map((e) => e.id)).toEqual([b.id]);
      });
    });

    describe('the event outbox', () => {
      it('records no event while the organization has no enabled endpoint', async () => {
        await addEndpoint({ orgId: otherOrg });
        await addEndpoint({ enabled: false });
        await addEndpoint({ deletedAt: t0 });
        await accept(outbound());
        expect(await eventTypes()).toEqual([]);
        expect(
          await webhooks.publishEvents([{ orgId: org, type: 'contact.opted_out', payload: '{}', at: t0 }]),
        ).toEqual([]);
      });

      it('records each applied status change of a message, in order, with the change itself', async () => {
        await addEndpoint();
        const s = await sender();
        const m = outbound();
        const retried = outbound();
        const canceled = outbound();
        await accept(m, retried, canceled);
        await messages.claimForSending([m.id, retried.id], t0 + 1, t0 + MINUTE);
        await messages.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: s.id,
            provider: 'sandbox',
            from: null,
            providerMessageId: 'SM1',
            cost: null,
            at: t0 + 2,
          },
          {
            messageId: retried.id,
            kind: 'retry',
            error: { code: 'carrier_timeout', class: 'ResourceError', message: 'slow' },
            at: t0 + 2,
            retryAt: t0 + 10,
          },
        ]);
        await messages.applyCommand(org, canceled.id, { kind: 'cancel' }, t0 + 3);
        const report = (status: 'delivered' | 'sent', key: string): CarrierEvent => ({
          kind: 'status',
          eventKey: key,
          providerMessageId: 'SM1',
          reference: m.id,
          status,
          occurredAt: t0 + 4,
        });
        const inbound: CarrierEvent = {
          kind: 'inbound',
          eventKey: 'in-1',
          providerMessageId: 'SMin',
          channel: 'sms',
          from: '+12025550123',
          to: '+12025550100',
          body: 'YES',
          occurredAt: t0 + 5,
        };
        const ids = await messages.storeCarrierEvents(
          s,
          [report('delivered', 'k1'), report('sent', 'k2'), inbound],
          (got) => ({ id: `ev:${got[0]}`, queue: 'carrier-events', payload: '', orgId: org, priority: 0, runAt: t0 }),
          t0 + 5,
        );
        const applied = await messages.applyCarrierEvents(await messages.loadCarrierEvents(ids), t0 + 6, () =>
          newId('msg'),
        );
        const inboundId = applied.inbound[0];

        const { seen, plan } = capture();
        await dispatchAll(plan);
        const events = seen.flatMap((x) => x.events);
        const of = (id: string) => events.filter((e) => e.messageId === id).map((e) => e.type);
        // Not `sending`, not the retry's re-queue, not the late `sent` that changed nothing.
        expect(of(m.id)).toEqual(['message.queued', 'message.sent', 'message.delivered']);
        expect(of(retried.id)).toEqual(['message.queued']);
        expect(of(canceled.id)).toEqual(['message.queued', 'message.canceled']);
        expect(of(inboundId as string)).toEqual(['message.inbound']);
        expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((a, b) => a - b));
        const delivered = events.find((e) => e.type === 'message.delivered');
        expect(delivered?.at).toBe(t0 + 4);
        expect(delivered?.orgId).toBe(org);
        // The planner sees the message as it is now, and the organization's enabled endpoints.
        expect(delivered?.message?.status).toBe('delivered');
        expect(delivered?.message?.metadata).toEqual({ order: 7 });
        expect(seen[0]?.endpoints.map((e) => e.orgId)).toEqual([org]);
      });

      it('publishes other events for organizations with an enabled endpoint only', async () => {
        await addEndpoint();
        const ids = await webhooks.publishEvents([
          { orgId: org, type: 'contact.opted_out', payload: '{"contactId":"c1"}', at: t0 },
          { orgId: otherOrg, type: 'contact.opted_out', payload: '{}', at: t0 },
          { orgId: org, type: 'contact.opted_in', messageId: null, payload: '{"contactId":"c1"}', at: t0 + 1 },
        ]);
        expect(ids).toHaveLength(2);
        const got = await webhooks.getEvent(org, ids[0] as number);
        expect(got).toEqual({
          id: ids[0],
          orgId: org,
          type: 'contact.opted_out',
          messageId: null,
          payload: '{"contactId":"c1"}',
          at: t0,
        });
        expect(await webhooks.getEvent(otherOrg, ids[0] as number)).toBeUndefined();
      });
    });

    describe('fan-out', () => {
      it('creates the planned deliveries, stores payloads and dispatches each event once', async () => {
        const a = await addEndpoint();
        const b = await addEndpoint();
        const m = outbound();
        await accept(m);
        const { seen, plan } = capture();
        expect(await dispatchAll(plan)).toBe(1);
        expect(seen[0]?.events[0]?.message?.id).toBe(m.id);
        expect(await webhooks.dispatchEvents(100, t0 + MINUTE, plan)).toBe(0);
        const claimed = await claimAll(t0 + MINUTE);
        expect(claimed.map((c) => c.endpointId).sort()).toEqual([a.id, b.id].sort());
        const c = claimed[0];
        expect(c?.event.type).toBe('message.queued');
        expect(JSON.parse(c?.event.payload ?? '')).toEqual({ id: m.id, status: 'queued' });
        expect(c?.messageId).toBe(m.id);
        expect(c?.attempts).toBe(0);
        expect(c?.endpoint.sealedSecret).toBe('sealed:current');
        const ev = await webhooks.getEvent(org, c?.eventId as number);
        expect(ev?.payload).toBe(c?.event.payload);
        expect(await webhooks.listEvents(org, { from: t0, to: t0 + 1, limit: 10 })).toEqual([ev]);
        expect(await webhooks.listEvents(org, { from: t0 + 1, to: FAR, limit: 10 })).toEqual([]);
      });
    });

    describe('claims', () => {
      async function deliveriesFor(n: number): Promise<{ e: WebhookEndpointRecord; ms: NewMessage[] }> {
        const e = await addEndpoint();
        const ms = Array.from({ length: n }, () => outbound());
        await accept(...ms);
        await dispatchAll(capture().plan);
        return { e, ms };
      }

      it('caps each endpoint per claim, skips endpoints asked to, and leases what it claims', async () => {
        const { e } = await deliveriesFor(5);
        const other = await addEndpoint({ orgId: otherOrg });
        const om = outbound({ orgId: otherOrg });
        await accept(om);
        await dispatchAll(capture().plan);
        const now = t0 + MINUTE;
        const first = await claimAll(now, { perEndpoint: 2 });
        expect(first.filter((c) => c.endpointId === e.id)).toHaveLength(2);
        expect(first.filter((c) => c.endpointId === other.id)).toHaveLength(1);
        expect((await claimAll(now, { skipEndpoints: [e.id] })).length).toBe(0);
        const rest = await claimAll(now);
        expect(rest.map((c) => c.id).sort()).not.toEqual(expect.arrayContaining(first.map((c) => c.id)));
        expect(rest).toHaveLength(3);
        // Nothing more until the leases end; then every unfinished delivery comes back (at least once).
        expect(await claimAll(now + MINUTE - 1)).toEqual([]);
        expect(await claimAll(now + MINUTE)).toHaveLength(6);
      });

      it('never hands out a delivery while an earlier one of its message to that endpoint is pending', async () => {
        const e = await addEndpoint();
        const s = await sender();
        const m = outbound();
        await accept(m);
        let now = t0 + MINUTE;
        await dispatchAll(capture().plan, now);
        const [queued] = await claimAll(now);
        expect(queued?.event.type).toBe('message.queued');
        // The next status change happens while the first delivery is in flight.
        await messages.claimForSending([m.id], now, now + MINUTE);
        await messages.recordSendOutcomes([
          {
            messageId: m.id,
            kind: 'sent',
            senderId: s.id,
            provider: 'sandbox',
            from: null,
            providerMessageId: 'SM1',
            cost: null,
            at: now,
          },
        ]);
        await dispatchAll(capture().plan, now);
        expect(await claimAll(now)).toEqual([]);
        // It waits for the delivery ahead of it (not for a time).
        const log = await webhooks.listDeliveries(org, e.id, { limit: 10 });
        expect(log.map((d) => [d.eventType, d.status, d.nextAttemptAt])).toEqual([
          ['message.sent', 'waiting', null],
          ['message.queued', 'pending', now],
        ]);
        // The one ahead fails for now: the other still waits, through the retry's back-off.
        await webhooks.recordDeliveryOutcomes(
          [outcome(queued?.id as number, e.id, now, { kind: 'retry', nextAttemptAt: now + 10 * MINUTE })],
          disableOpts(now),
        );
        now += 2 * MINUTE;
        expect(await claimAll(now)).toEqual([]);
        now += 9 * MINUTE;
        const [again] = await claimAll(now);
        expect(again?.id).toBe(queued?.id);
        expect(again?.attempts).toBe(1);
        await webhooks.recordDeliveryOutcomes(
          [outcome(again?.id as number, e.id, now, { kind: 'delivered' })],
          disableOpts(now),
        );
        const [sent] = await claimAll(now);
        expect(sent?.event.type).toBe('message.sent');
        await webhooks.recordDeliveryOutcomes(
          [outcome(sent?.id as number, e.id, now, { kind: 'retry', nextAttemptAt: now + HOUR }, null)],
          disableOpts(now),
        );
        // A redelivery of the message's first event waits behind it too.
        const [redeliveryId] = await webhooks.createDeliveries(e.id, [queued?.eventId as number], now);
        expect(await claimAll(now + MINUTE)).toEqual([]);
        const [late] = await claimAll(now + HOUR);
        expect(late?.id).toBe(sent?.id);
        // A final failure lets the next one go.
        await webhooks.recordDeliveryOutcomes(
          [outcome(late?.id as number, e.id, now + HOUR, { kind: 'failed' }, 410)],
          disableOpts(now + HOUR),
        );
        const [redelivery] = await claimAll(now + HOUR);
        expect(redelivery).toMatchObject({ id: redeliveryId, eventId: queued?.eventId });
      });

      it('leaves disabled and deleted endpoints alone, and cancels a deleted one’s pending deliveries', async () => {
        const { e } = await deliveriesFor(2);
        await webhooks.updateEndpoint({ ...e, enabled: false });
        expect(await claimAll(t0 + MINUTE)).toEqual([]);
        await webhooks.updateEndpoint({ ...e, enabled: true });
        expect(await claimAll(t0 + MINUTE, { limit: 1 })).toHaveLength(1);
        await webhooks.deleteEndpoint(org, e.id, t0 + 2 * MINUTE);
        expect(await claimAll(t0 + 3 * MINUTE)).toEqual([]);
        const log = await webhooks.listDeliveries(org, e.id, { limit: 10 });
        expect(log.map((d) => d.status)).toEqual(['canceled', 'canceled']);
      });
    });

    describe('outcomes and the delivery log', () => {
      it('logs every attempt, settles deliveries and pages the log newest first', async () => {
        const e = await addEndpoint();
        await accept(outbound(), outbound(), outbound());
        await dispatchAll(capture().plan);
        const now = t0 + MINUTE;
        const [d1, d2, d3] = await claimAll(now);
        await webhooks.recordDeliveryOutcomes(
          [
            outcome(d1?.id as number, e.id, now, { kind: 'retry', nextAttemptAt: now + 1000 }),
            outcome(d2?.id as number, e.id, now, { kind: 'failed' }, 400),
            outcome(d3?.id as number, e.id, now, { kind: 'delivered' }),
          ],
          disableOpts(now),
        );
        const [again] = await claimAll(now + 1000);
        await webhooks.recordDeliveryOutcomes(
          [outcome(again?.id as number, e.id, now + 1000, { kind: 'delivered' })],
          disableOpts(now + 1000),
        );
        const page1 = await webhooks.listDeliveries(org, e.id, { limit: 2 });
        expect(page1.map((d) => d.id)).toEqual([d3?.id, d2?.id]);
        expect(page1[0]).toMatchObject({
          status: 'delivered',
          attempts: 1,
          nextAttemptAt: null,
          eventType: 'message.queued',
        });
        expect(page1[1]?.attemptLog).toEqual([
          { at: now, statusCode: 400, latencyMs: 12, response: 'answer', error: null },
        ]);
        const page2 = await webhooks.listDeliveries(org, e.id, { limit: 2, before: page1[1]?.id as number });
        expect(page2.map((d) => d.id)).toEqual([d1?.id]);
        expect(page2[0]?.attempts).toBe(2);
        expect(page2[0]?.attemptLog.map((a) => a.statusCode)).toEqual([503, 200]);
        expect((await webhooks.listDeliveries(org, e.id, { limit: 10, status: 'failed' })).map((d) => d.id)).toEqual([
          d2?.id,
        ]);
        expect(await webhooks.listDeliveries(otherOrg, e.id, { limit: 10 })).toEqual([]);
      });

      it('tracks failure streaks and disables an endpoint failing past the threshold, telling the others', async () => {
        const failing = await addEndpoint({ eventTypes: ['message.queued'] });
        const watcher = await addEndpoint({ eventTypes: ['endpoint.disabled'] });
        await accept(outbound(), outbound());
        await dispatchAll(capture().plan);
        let now = t0 + MINUTE;
        const [a, b] = (await claimAll(now)).filter((c) => c.endpointId === failing.id);
        await webhooks.recordDeliveryOutcomes(
          [outcome(a?.id as number, failing.id, now, { kind: 'retry', nextAttemptAt: now + MINUTE })],
          disableOpts(now, now - HOUR),
        );
        expect((await webhooks.getEndpoint(org, failing.id))?.failingSince).toBe(now);
        // A success ends the streak.
        await webhooks.recordDeliveryOutcomes(
          [outcome(b?.id as number, failing.id, now + 1, { kind: 'delivered' })],
          disableOpts(now + 1, now - HOUR),
        );
        expect((await webhooks.getEndpoint(org, failing.id))?.failingSince).toBeNull();
        now += MINUTE;
        const [a2] = (await claimAll(now)).filter((c) => c.endpointId === failing.id);
        const streak = now;
        const disabled = await webhooks.recordDeliveryOutcomes(
          [outcome(a2?.id as number, failing.id, now, { kind: 'retry', nextAttemptAt: now + HOUR })],
          disableOpts(now, now - HOUR),
        );
        expect(disabled).toEqual([]);
        now += HOUR;
        const [a3] = (await claimAll(now)).filter((c) => c.endpointId === failing.id);
        expect(
          await webhooks.recordDeliveryOutcomes(
            [outcome(a3?.id as number, failing.id, now, { kind: 'retry', nextAttemptAt: now + HOUR })],
            disableOpts(now, now - HOUR),
          ),
        ).toEqual([failing.id]);
        const got = await webhooks.getEndpoint(org, failing.id);
        expect(got).toMatchObject({
          enabled: false,
          disabledAt: now,
          disabledReason: 'every delivery failed for 5 days',
          failingSince: streak,
        });
        const { seen, plan } = capture();
        await dispatchAll(plan, now);
        const notice = seen.flatMap((s) => s.events).find((e) => e.type === 'endpoint.disabled');
        expect(JSON.parse(notice?.payload ?? '')).toEqual({ endpointId: failing.id });
        expect(seen[0]?.endpoints.map((e) => e.id)).toEqual([watcher.id]);
      });
    });

    describe('redelivery and test sends', () => {
      it('creates new deliveries of existing events, and a directed event with its delivery', async () => {
        const e = await addEndpoint();
        await accept(outbound());
        await dispatchAll(capture().plan);
        const now = t0 + MINUTE;
        const [first] = await claimAll(now);
        await webhooks.recordDeliveryOutcomes(
          [outcome(first?.id as number, e.id, now, { kind: 'delivered' })],
          disableOpts(now),
        );
        const ids = await webhooks.createDeliveries(e.id, [first?.eventId as number, 999_999], now + 1);
        expect(ids).toHaveLength(1);
        const [again] = await claimAll(now + 1);
        expect(again).toMatchObject({ id: ids[0], eventId: first?.eventId, attempts: 0, messageId: first?.messageId });
        expect(again?.event).toEqual(first?.event);

        const directed = await webhooks.createDirectedEvent(e.id, {
          orgId: org,
          type: 'webhook.test',
          payload: '{"test":true}',
          at: now + 2,
        });
        const [test] = await claimAll(now + 2);
        expect(test).toMatchObject({ id: directed.deliveryId, eventId: directed.eventId, messageId: null });
        expect(test?.event).toEqual({ type: 'webhook.test', payload: '{"test":true}', at: now + 2 });
        // Already dispatched: the fan-out does not send it to anyone else.
        expect(await webhooks.dispatchEvents(100, now + 3, capture().plan)).toBe(0);
      });
    });
  });
}
