/**
 * Delivering webhooks: the fan-out (events → one delivery per endpoint that wants them) and the delivery worker.
 *
 * The worker keeps up to `concurrency` requests in flight, and about `perEndpoint` per endpoint: it claims only as
 * many deliveries as it has free slots, and leaves out endpoints at their cap, so a slow or failing endpoint holds a
 * few slots at most while every other endpoint keeps flowing; the message pipeline never waits for any of it. Each
 * request is signed per Standard Webhooks with the endpoint's secret (and the rotated-out one during its overlap).
 * Outcomes are written in batches; a delivery's slot is freed once its outcome is stored. A delivery whose outcome
 * never gets stored (a crash) comes back when its lease ends: at least once.
 */
import { standardWebhookHeaders, webhookBody, webhookEventId } from '../domain/standard-webhooks.ts';
import { classifyAttempt, nextAttemptAt, parseRetryAfter, type WebhookRetryPolicy } from '../domain/webhook-retry.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type { MessageRecord } from '../ports/store.ts';
import type {
  ClaimedDelivery,
  DeliveryOutcome,
  FanOutInput,
  FanOutPlan,
  NewWebhookEvent,
  WebhookEndpointRecord,
  WebhookStore,
  WebhookTransport,
} from '../ports/webhook-store.ts';
import { endpointWants } from './webhook-endpoints.ts';

export interface WebhookDeliveryOptions {
  /** Requests in flight in this process. */
  concurrency: number;
  /** Requests in flight to one endpoint (about: a claim may add up to this many to those in flight). */
  perEndpoint: number;
  /** How long a claimed delivery is this worker's before another may take it (longer than a request's time-out). */
  leaseMs: number;
  retry: WebhookRetryPolicy;
  /** An endpoint whose deliveries have all failed for this long is disabled. */
  disableAfterMs: number;
  /** Events per fan-out transaction. */
  fanOutBatch?: number;
  onError?: (err: unknown) => void;
  /** Told of every attempt (Prometheus: `omni_webhook_attempts_total`, `omni_webhook_attempt_duration_seconds`). */
  metrics?: PipelineMetrics;
}

const ERROR_TYPES = new Set(['message.failed', 'message.undelivered', 'message.suppressed', 'message.canceled']);

/** The `data` of a message event: the message as it is at fan-out, with the status the event reports. */
export function messageEventData(type: string, at: number, m: MessageRecord): Record<string, unknown> {
  const status = type === 'message.inbound' ? 'received' : type.slice('message.'.length);
  return {
    id: m.id,
    status,
    direction: m.direction,
    channel: m.channel,
    to: m.to,
    from: m.from,
    ...(m.direction === 'inbound' ? { body: m.body } : {}),
    error: ERROR_TYPES.has(type) ? m.error : null,
    providerMessageId: m.providerMessageId,
    metadata: m.metadata,
    contactId: m.contactId,
    at: new Date(at).toISOString(),
  };
}

/** Decides the deliveries of a batch of events (pure): payloads for message events, endpoints that want each. */
export function planFanOut({ events, endpoints }: FanOutInput): FanOutPlan {
  const byOrg = new Map<string, WebhookEndpointRecord[]>();
  for (const e of endpoints) {
    const list = byOrg.get(e.orgId) ?? [];
    list.push(e);
    byOrg.set(e.orgId, list);
  }
  const payloads = new Map<number, string>();
  const deliveries: FanOutPlan['deliveries'] = [];
  for (const ev of events) {
    let data: unknown;
    if (ev.payload !== null) {
      data = JSON.parse(ev.payload);
    } else {
      data = ev.message
        ? messageEventData(ev.type, ev.at, ev.message)
        : { id: ev.messageId, at: new Date(ev.at).toISOString() };
      payloads.set(ev.id, JSON.stringify(data));
    }
    for (const endpoint of byOrg.get(ev.orgId) ?? []) {
      if (endpointWants(endpoint, ev.type, data)) deliveries.push({ eventId: ev.id, endpointId: endpoint.id });
    }
  }
  return { payloads, deliveries };
}

/** `5 days`, `2 hours`, `90 seconds`: the failure period in an endpoint's `disabledReason`. */
function duration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1_000, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms === size ? '' : 's'}`;
  }
  return `${ms} ms`;
}

export class WebhookDelivery {
  private readonly inFlight = new Map<number, string>();
  private readonly perEndpointCount = new Map<string, number>();
  private readonly opened = new Map<string, string>();
  private results: DeliveryOutcome[] = [];
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private idle: (() => void)[] = [];
  private waker: () => void = () => undefined;

  constructor(
    private readonly store: WebhookStore,
    private readonly transport: WebhookTransport,
    private readonly secrets: SecretBox,
    private readonly clock: Clock,
    private readonly opts: WebhookDeliveryOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** Called whenever deliveries may be ready to claim (the fan-out made some, or a slot was freed). */
  onReady(wake: () => void): void {
    this.waker = wake;
  }

  /** Runs one fan-out batch; returns how many events it handled. */
  async fanOut(): Promise<number> {
    const n = await this.store.dispatchEvents(this.opts.fanOutBatch ?? 500, this.clock.now(), planFanOut);
    if (n > 0) this.waker();
    return n;
  }

  /** Claims as many due deliveries as there are free slots and starts them; returns how many it started. */
  async deliver(): Promise<number> {
    const free = this.opts.concurrency - this.inFlight.size;
    if (free <= 0) return 0;
    const skip = [...this.perEndpointCount].filter(([, n]) => n >= this.opts.perEndpoint).map(([id]) => id);
    const now = this.clock.now();
    const claimed = await this.store.claimDeliveries({
      limit: free,
      perEndpoint: this.opts.perEndpoint,
      now,
      leaseUntil: now + this.opts.leaseMs,
      skipEndpoints: skip,
    });
    for (const d of claimed) {
      this.inFlight.set(d.id, d.endpointId);
      this.perEndpointCount.set(d.endpointId, (this.perEndpointCount.get(d.endpointId) ?? 0) + 1);
      void this.attempt(d);
    }
    return claimed.length;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Resolves once every request in flight has finished and its outcome is stored. */
  drain(): Promise<void> {
    if (this.inFlight.size === 0 && !this.flushing) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async attempt(d: ClaimedDelivery): Promise<void> {
    const start = this.clock.now();
    let outcome: DeliveryOutcome;
    try {
      const body = webhookBody(d.event.type, d.event.at, d.event.payload);
      const headers = standardWebhookHeaders(this.signingSecrets(d, start), webhookEventId(d.eventId), start, body);
      const res = await this.transport.post(d.endpoint.url, { ...headers }, body);
      const end = this.clock.now();
      const verdict = classifyAttempt(res.statusCode);
      const retryAt =
        verdict === 'retry'
          ? nextAttemptAt(
              this.opts.retry,
              {
                attempt: d.attempts + 1,
                createdAt: d.createdAt,
                now: end,
                retryAfterMs: parseRetryAfter(res.retryAfter, end),
              },
              this.random,
            )
          : null;
      outcome = {
        deliveryId: d.id,
        endpointId: d.endpointId,
        attempt: {
          at: start,
          statusCode: res.statusCode,
          latencyMs: res.latencyMs,
          response: res.body,
          error: res.error,
        },
        result:
          verdict === 'delivered'
            ? { kind: 'delivered' }
            : retryAt === null
              ? { kind: 'failed' }
              : { kind: 'retry', nextAttemptAt: retryAt },
      };
    } catch (err) {
      // Our side failed (a secret that no longer opens): log it on the delivery and retry like a network error.
      const at = this.clock.now();
      const retryAt = nextAttemptAt(this.opts.retry, { attempt: d.attempts + 1, createdAt: d.createdAt, now: at });
      outcome = {
        deliveryId: d.id,
        endpointId: d.endpointId,
        attempt: { at: start, statusCode: null, latencyMs: 0, response: null, error: (err as Error).message },
        result: retryAt === null ? { kind: 'failed' } : { kind: 'retry', nextAttemptAt: retryAt },
      };
    }
    this.opts.metrics?.webhookAttempt(outcome.result.kind, outcome.attempt.latencyMs);
    this.results.push(outcome);
    this.scheduleFlush();
  }

  /**
   * Answers that arrive in the same turn of the event loop are written in one transaction after it (a commit costs
   * more than the rows it writes), and the slots they free are refilled by one claim. Waiting longer to gather more
   * would cap every slot's turnover.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private signingSecrets(d: ClaimedDelivery, now: number): string[] {
    const e = d.endpoint;
    const out = [this.open(e.sealedSecret)];
    if (e.sealedPreviousSecret !== null && e.previousSecretExpiresAt !== null && e.previousSecretExpiresAt > now)
      out.push(this.open(e.sealedPreviousSecret));
    return out;
  }

  private open(sealed: string): string {
    let plain = this.opened.get(sealed);
    if (plain === undefined) {
      plain = this.secrets.open(sealed);
      if (this.opened.size > 10_000) this.opened.clear();
      this.opened.set(sealed, plain);
    }
    return plain;
  }

  /** Stores the outcomes gathered so far (one write at a time; what arrives meanwhile goes in the next one). */
  private flush(): void {
    if (this.flushing || this.results.length === 0) return;
    const batch = this.results;
    this.results = [];
    this.flushing = this.write(batch).finally(() => {
      this.flushing = undefined;
      for (const o of batch) this.release(o);
      if (this.results.length > 0) {
        this.flush();
      } else if (this.inFlight.size === 0) {
        const idle = this.idle;
        this.idle = [];
        for (const f of idle) f();
      }
      this.waker();
    });
  }

  private async write(batch: DeliveryOutcome[]): Promise<void> {
    if (batch.length === 0) return;
    const now = this.clock.now();
    try {
      await this.store.recordDeliveryOutcomes(batch, {
        now,
        disableFailingSince: now - this.opts.disableAfterMs,
        disabledReason: `every delivery failed for ${duration(this.opts.disableAfterMs)}`,
        disabledEvent: (e) => disabledEvent(e, now),
      });
    } catch (err) {
      // The deliveries stay leased and come back when the lease ends.
      this.opts.onError?.(err);
    }
  }

  private release(o: DeliveryOutcome): void {
    if (!this.inFlight.delete(o.deliveryId)) return;
    const n = (this.perEndpointCount.get(o.endpointId) ?? 1) - 1;
    if (n <= 0) this.perEndpointCount.delete(o.endpointId);
    else this.perEndpointCount.set(o.endpointId, n);
  }
}

function disabledEvent(e: WebhookEndpointRecord, now: number): NewWebhookEvent {
  return {
    orgId: e.orgId,
    type: 'endpoint.disabled',
    payload: JSON.stringify({
      endpointId: e.id,
      url: e.url,
      reason: e.disabledReason,
      failingSince: e.failingSince === null ? null : new Date(e.failingSince).toISOString(),
      disabledAt: new Date(e.disabledAt ?? now).toISOString(),
    }),
    at: now,
  };
}
