/**
 * Composition of the engagement features (contacts, consent and compliance, business events, segments, journeys)
 * and their seams into the message pipeline: contacts resolve `contactId` recipients, compliance is the workers'
 * send policy, inbound messages run keyword handling (STOP/START/HELP, with the reply sent from the number written
 * to) and reach journeys waiting for a reply, and status changes reach journeys waiting on a message.
 */
import type { FastifyInstance } from 'fastify';
import { HttpJourneyWebhookClient } from '../adapters/http/journey-webhook-client.ts';
import type { Channel } from '../domain/channels.ts';
import { ConflictError, NotFoundError } from '../domain/errors.ts';
import type { MessageStatus } from '../domain/message-status.ts';
import { contactRoutes } from '../http/routes/contacts.ts';
import { eventRoutes } from '../http/routes/events.ts';
import { journeyRoutes } from '../http/routes/journeys.ts';
import { segmentRoutes } from '../http/routes/segments.ts';
import type { CarrierEvent } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { ContactStore } from '../ports/contact-store.ts';
import type { JourneyContacts, JourneyMessaging } from '../ports/journey-deps.ts';
import type { JourneyStore } from '../ports/journey-store.ts';
import type { MessageRecord, MessageStore } from '../ports/store.ts';
import type { NewWebhookEvent } from '../ports/webhook-store.ts';
import type { AcceptMessages } from '../services/accept-messages.ts';
import { BusinessEvents } from '../services/business-events.ts';
import type { CarrierEventHooks } from '../services/carrier-events.ts';
import { Compliance } from '../services/compliance.ts';
import { ConsentService } from '../services/consent.ts';
import { Contacts, kindsForChannel } from '../services/contacts.ts';
import { JourneyContent } from '../services/journey-content.ts';
import { JourneyRunner } from '../services/journey-runner.ts';
import { JourneyRuns } from '../services/journey-runs.ts';
import { Journeys } from '../services/journeys.ts';
import type { MessageInput } from '../services/message-input.ts';
import { Segments } from '../services/segments.ts';
import type { SendPolicy } from '../services/send-policy.ts';
import { WorkerLoop } from '../workers/worker-loop.ts';

interface Stores {
  contacts: ContactStore;
  journeys: JourneyStore;
}

export interface EngagementOptions {
  stores: Stores;
  messages: MessageStore;
  clock: Clock;
  webhookAllowPrivate: boolean;
  leaseMs: number;
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  pollMs: number;
  onError: (name: string) => (err: unknown) => void;
  /** Publishes events to the organization's webhook endpoints (contact.opted_out / contact.opted_in). */
  publish?: (events: NewWebhookEvent[]) => Promise<unknown>;
}

/** The purpose of the product's own answers to a keyword, which consent never holds back (a STOP is confirmed). */
const COMPLIANCE_REPLY = 'compliance';

export class Engagement {
  readonly contacts: Contacts;
  readonly consent: ConsentService;
  readonly compliance: Compliance;
  readonly events: BusinessEvents;
  readonly segments: Segments;
  readonly journeys: Journeys;
  readonly journeyRuns: JourneyRuns;
  readonly runner: JourneyRunner;
  private readonly webhookClient: HttpJourneyWebhookClient;
  private accept: AcceptMessages | undefined;

  constructor(private readonly opts: EngagementOptions) {
    const { stores, clock } = opts;
    const contactChanged = async (orgId: string, id: string) => {
      const t = await this.segments.contactChanged(orgId, id);
      for (const segmentId of t.entered) await this.runner.onSegmentEntered(orgId, id, segmentId);
    };
    this.segments = new Segments(stores.contacts, clock);
    this.contacts = new Contacts(stores.contacts, clock, {
      onChanged: contactChanged,
      onErased: async (orgId, contactId, addresses) => {
        await opts.messages.redactRecipients(orgId, contactId, addresses, clock.now());
      },
    });
    this.consent = new ConsentService(stores.contacts, this.contacts, clock, { onChanged: contactChanged });
    this.compliance = new Compliance(stores.contacts, this.contacts, this.consent, clock);
    this.events = new BusinessEvents(stores.contacts, this.contacts, clock, {
      onEvent: async (e) => {
        await this.runner.onEvent(e.orgId, e.contactId, {
          id: e.id,
          name: e.name,
          properties: e.properties ?? {},
          occurredAt: e.occurredAt,
        });
      },
      onContactChanged: contactChanged,
    });
    const content = new JourneyContent();
    this.webhookClient = new HttpJourneyWebhookClient({ allowPrivate: opts.webhookAllowPrivate });
    this.runner = new JourneyRunner(
      stores.journeys,
      { messaging: this.messaging(), contacts: this.journeyContacts(), webhooks: this.webhookClient, content },
      clock,
      { leaseMs: opts.leaseMs, retry: opts.retry },
    );
    this.journeys = new Journeys(stores.journeys, content, clock);
    this.journeyRuns = new JourneyRuns(stores.journeys, clock, () => this.runner.notifyDue());
  }

  /** The message intake, once built (it needs `contacts` to resolve recipients, and journeys need it to send). */
  attach(accept: AcceptMessages): void {
    this.accept = accept;
  }

  /** The workers' send policy (the product's own keyword replies pass: see Compliance). */
  get policy(): SendPolicy {
    return this.compliance;
  }

  /** What carrier events do beyond statuses: keyword handling, replies to journeys, statuses to journeys. */
  readonly hooks: CarrierEventHooks = {
    afterApply: async (events, applied, now) => {
      if (applied.length > 0) await this.runner.onMessageStatuses(applied, now);
      for (const e of events) if (e.event.kind === 'inbound') await this.inbound(e.orgId, e.event);
    },
  };

  /** Sent, failed or suppressed at once by a worker: journeys waiting on these messages need not wait. */
  async outcomes(updates: { messageId: string; status: MessageStatus }[], at: number): Promise<void> {
    if (updates.length > 0) await this.runner.onMessageStatuses(updates, at);
  }

  /** Push subscriptions the push service said are gone: their contacts forget them. */
  async pushSubscriptionsGone(gone: readonly { orgId: string; endpoint: string }[]): Promise<void> {
    const seen = new Set<string>();
    for (const g of gone) {
      const key = `${g.orgId}\u0000${g.endpoint}`;
      if (seen.has(key)) continue;
      seen.add(key);
      await this.contacts.forgetPushSubscription(g.orgId, g.endpoint);
    }
  }

  private async inbound(orgId: string, e: Extract<CarrierEvent, { kind: 'inbound' }>): Promise<void> {
    const outcome = await this.compliance.handleInbound({
      orgId,
      channel: e.channel,
      from: e.from,
      to: e.to,
      body: e.body,
      at: e.occurredAt,
    });
    if (outcome.action !== 'none' && outcome.replyBody && this.accept) {
      // The same inbound event seen twice (a repeated job) answers once: the key is the carrier's event key.
      await this.accept.acceptOne(
        orgId,
        { channel: e.channel, to: e.from, from: e.to, body: outcome.replyBody } as MessageInput,
        `keyword-reply:${e.eventKey}`,
        { purpose: COMPLIANCE_REPLY },
      );
    }
    if ((outcome.action === 'opt_out' || outcome.action === 'opt_in') && outcome.replyBody && this.opts.publish) {
      // A keyword that changed consent is news for the tenant's systems (a repeated STOP is not).
      await this.opts.publish([
        {
          orgId,
          type: outcome.action === 'opt_out' ? 'contact.opted_out' : 'contact.opted_in',
          payload: JSON.stringify({
            contactId: outcome.contactId,
            channel: e.channel,
            sender: outcome.scope === 'all' ? null : e.to,
            scope: outcome.scope,
            keyword: outcome.keyword,
            at: new Date(e.occurredAt).toISOString(),
          }),
          at: e.occurredAt,
        },
      ]);
    }
    const contactId = 'contactId' in outcome ? outcome.contactId : await this.contactOf(orgId, e.channel, e.from);
    await this.runner.onInbound(orgId, contactId, e.channel, e.from, e.body, e.occurredAt);
  }

  private async contactOf(orgId: string, channel: Channel, from: string): Promise<string | null> {
    try {
      return (await this.contacts.resolveRecipient(orgId, channel, { to: from })).contactId ?? null;
    } catch (err) {
      if (err instanceof NotFoundError || (err as { isUser?: boolean }).isUser) return null;
      throw err;
    }
  }

  private messaging(): JourneyMessaging {
    return {
      send: async (r) => {
        const accept = this.accept;
        if (!accept) throw new Error('journeys: the message intake is not attached');
        const input = {
          contactId: r.contactId,
          channel: r.channel,
          purpose: r.purpose,
          metadata: r.metadata,
          ...(r.to ? { to: r.to } : {}),
          ...(r.body !== undefined ? { body: r.body } : {}),
          ...(r.subject !== undefined ? { subject: r.subject } : {}),
          ...(r.template ? { template: r.template } : {}),
        };
        try {
          return { messageId: (await accept.acceptOne(r.orgId, input as MessageInput, r.idempotencyKey)).id };
        } catch (err) {
          // A step run again after a crash, whose content changed since (the contact was edited), still gets the
          // message it created the first time.
          if (err instanceof ConflictError && err.code === 'idempotency_key_reused') {
            const prior = await this.opts.messages.findIdempotentResponse(r.orgId, r.idempotencyKey);
            if (prior) return { messageId: (JSON.parse(prior.response) as { id: string }).id };
          }
          throw err;
        }
      },
      statuses: async (orgId, ids) => {
        const out = new Map<string, MessageStatus>();
        for (const id of ids) {
          const m: MessageRecord | undefined = await this.opts.messages.getMessage(orgId, id);
          if (m) out.set(id, m.status);
        }
        return out;
      },
    };
  }

  private journeyContacts(): JourneyContacts {
    return {
      get: async (orgId, id) => {
        try {
          const c = await this.contacts.get(orgId, id);
          if (c.erasedAt !== null) return undefined;
          const identifiers: Partial<Record<Channel, string>> = {};
          for (const channel of ['sms', 'mms', 'whatsapp', 'voice', 'email', 'push', 'rcs'] as Channel[]) {
            const kinds = kindsForChannel(channel);
            const first = kinds.map((k) => c.identifiers.find((i) => i.kind === k)).find((i) => i !== undefined);
            if (first) identifiers[channel] = first.value;
          }
          return { id: c.id, attributes: c.attributes, tags: c.tags, identifiers, timeZone: c.timeZone };
        } catch (err) {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        }
      },
      update: async (orgId, id, p) => {
        try {
          await this.contacts.modify(orgId, id, {
            ...(p.set ? { attributes: p.set } : {}),
            ...(p.addTags ? { addTags: p.addTags } : {}),
            ...(p.removeTags ? { removeTags: p.removeTags } : {}),
          });
        } catch (err) {
          if (err instanceof ConflictError && err.code === 'contact_erased') {
            throw new NotFoundError('contact_not_found', `contact '${id}' was erased`);
          }
          throw err;
        }
      },
    };
  }

  /** Worker loops: due journey runs, cap-count pruning, events whose consumer failed. */
  loops(): WorkerLoop[] {
    const { pollMs, onError } = this.opts;
    const journeys = new WorkerLoop(() => this.runner.runOnce(), {
      name: 'journeys',
      concurrency: 1,
      pollMs,
      onError: onError('journeys'),
    });
    this.runner.onDue(() => journeys.wake());
    const housekeeping = new WorkerLoop(
      async () => {
        await this.events.redispatch(60_000);
        await this.compliance.pruneSends();
        return 0;
      },
      { name: 'engagement-housekeeping', concurrency: 1, pollMs: 10_000, onError: onError('engagement housekeeping') },
    );
    return [journeys, housekeeping];
  }

  routes(api: FastifyInstance): void {
    contactRoutes(api, { contacts: this.contacts, consent: this.consent, compliance: this.compliance });
    eventRoutes(api, { events: this.events });
    segmentRoutes(api, { segments: this.segments });
    journeyRoutes(api, { journeys: this.journeys, journeyRuns: this.journeyRuns, runner: this.runner });
  }

  async close(): Promise<void> {
    this.runner.close();
    await this.webhookClient.close();
  }
}
