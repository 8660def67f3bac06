/**
 * Carrier callbacks: a webhook is verified and parsed by the sender's adapter, its events stored (deduplicated)
 * with a job, and answered at once; a worker then applies them. A status report for a message we cannot match
 * yet (the callback overtook our own record of the send) is retried, then dead-lettered. Events are marked settled
 * once applied (or dead-lettered): a job running again skips them, and the outbox sweeper finds the unsettled ones
 * whose job was lost.
 */
import { NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { MessageStatus } from '../domain/message-status.ts';
import type { Carrier, CarrierEvent, WebhookAnswer, WebhookRequest } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import type { JobQueue, NewJob } from '../ports/queue.ts';
import type { MessageStore, StoredCarrierEvent, StoredSender } from '../ports/store.ts';
import type { CarrierRegistry } from './carrier-registry.ts';

export const CARRIER_EVENTS_QUEUE = 'carrier-events';
/** Tries at matching a status report to its message; the last one dead-letters what still does not match. */
export const MAX_MATCH_ATTEMPTS = 8;

interface Payload {
  ids: number[];
  attempt: number;
}

/** The job applying stored events `ids` (one organization's), as try `attempt` at matching them. */
export function carrierEventsJob(orgId: string | null, ids: number[], attempt: number, runAt: number): NewJob {
  return {
    id: `events:${ids[0]}:${attempt}`,
    queue: CARRIER_EVENTS_QUEUE,
    payload: JSON.stringify({ ids, attempt } satisfies Payload),
    orgId,
    priority: 0,
    runAt,
  };
}

/**
 * What else happens when carrier events are applied (keyword handling, journeys): called with the inbound events of
 * a job and the status changes it made, before the job is acknowledged. Must be idempotent per event: a job that runs
 * again after a crash calls it again with the same events.
 */
export interface CarrierEventHooks {
  afterApply(
    events: readonly StoredCarrierEvent[],
    applied: readonly { messageId: string; status: MessageStatus }[],
    now: number,
  ): Promise<void>;
}

export class CarrierEvents {
  constructor(
    private readonly store: MessageStore,
    private readonly queue: JobQueue,
    private readonly registry: CarrierRegistry,
    private readonly clock: Clock,
    private readonly metrics: PipelineMetrics,
    private readonly hooks?: CarrierEventHooks,
  ) {}

  /**
   * Handles a webhook request: returns how many new events it stored, and the answer the provider expects when it
   * expects one. Throws on a bad signature or payload (nothing is stored then).
   */
  async receive(
    provider: string,
    senderId: string,
    request: WebhookRequest,
  ): Promise<{ stored: number; answer?: WebhookAnswer }> {
    const { sender, carrier } = await this.carrierOf(provider, senderId);
    const stored = await this.keep(sender, carrier.parseWebhook(request));
    return { stored, ...(carrier.webhookAnswer ? { answer: carrier.webhookAnswer } : {}) };
  }

  /**
   * A GET on the webhook URL: the provider's subscription handshake when its adapter has one (WhatsApp), otherwise
   * a callback delivered as a GET (status reports with a query string).
   */
  async receiveGet(
    provider: string,
    senderId: string,
    request: WebhookRequest,
  ): Promise<{ stored: number; answer?: WebhookAnswer }> {
    const { carrier } = await this.carrierOf(provider, senderId);
    if (carrier.verifyHandshake) return { stored: 0, answer: carrier.verifyHandshake(request) };
    return this.receive(provider, senderId, request);
  }

  private async carrierOf(provider: string, senderId: string): Promise<{ sender: StoredSender; carrier: Carrier }> {
    const sender = await this.registry.sender(senderId);
    if (!sender || sender.provider !== provider) {
      throw new NotFoundError('sender_not_found', `no ${provider} sender '${senderId}'`);
    }
    return { sender, carrier: this.registry.carrier(sender) };
  }

  /** Stores new events (deduplicated) with the job that applies them. */
  private async keep(sender: StoredSender, events: CarrierEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    this.metrics.carrierEventsReceived(sender.provider, events.length);
    const now = this.clock.now();
    const ids = await this.store.storeCarrierEvents(
      sender,
      events,
      (ids) => carrierEventsJob(sender.orgId, ids, 1, now),
      now,
    );
    return ids.length;
  }

  /** Applies the events of up to `limit` due jobs in one transaction; returns how many jobs it took. */
  async runOnce(limit = 50, leaseMs = 30_000): Promise<number> {
    const jobs = await this.queue.claim(CARRIER_EVENTS_QUEUE, limit, leaseMs);
    if (jobs.length === 0) return 0;
    const payloads = jobs.map((j) => JSON.parse(j.payload) as Payload);
    const events = await this.store.loadCarrierEvents(payloads.flatMap((p) => p.ids));
    const now = this.clock.now();
    const result = await this.store.applyCarrierEvents(events, now, () => newId('msg'));
    if (this.hooks) {
      const unmatched = new Set(result.unmatched);
      const inbound = events.filter((e) => e.event.kind === 'inbound' && !unmatched.has(e.id));
      await this.hooks.afterApply(inbound, result.applied, now);
    }
    const statusCounts = new Map<string, number>();
    for (const a of result.applied) statusCounts.set(a.status, (statusCounts.get(a.status) ?? 0) + 1);
    for (const [s, n] of statusCounts) this.metrics.statusChanged(s, n);
    if (result.inbound.length > 0) this.metrics.statusChanged('received', result.inbound.length);
    if (result.unmatched.length > 0) {
      const unmatched = new Set(result.unmatched);
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i];
        const p = payloads[i];
        if (!job || !p) continue;
        const left = p.ids.filter((id) => unmatched.has(id));
        if (left.length === 0) continue;
        if (p.attempt >= MAX_MATCH_ATTEMPTS) {
          await this.queue.deadLetter(
            { ...job, payload: JSON.stringify({ ids: left, attempt: p.attempt }) },
            'no message matches these carrier events',
          );
          // After the dead letter: a crash in between tries them once more rather than losing the record.
          await this.store.settleCarrierEvents(left, now);
        } else {
          const delay = Math.min(60_000, 500 * 2 ** (p.attempt - 1));
          await this.queue.enqueue([carrierEventsJob(job.orgId, left, p.attempt + 1, now + delay)]);
        }
      }
    }
    await this.queue.ack(jobs.map((j) => j.id));
    return jobs.length;
  }
}
