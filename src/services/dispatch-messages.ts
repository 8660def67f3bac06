/**
 * The send worker's job: claim due send jobs, move their messages to `sending` (a conditional claim, so a
 * duplicate job is harmless), hand them to the sender's carrier in batches, and record what happened:
 * `sent`; a retryable failure backs off and tries again; a permanent failure, or the last attempt, fails the
 * message (and the exhausted job goes to the dead-letter list).
 */
import type { Channel } from '../domain/channels.ts';
import type { MessageError, MessageStatus } from '../domain/message-status.ts';
import { backoffDelay, hasAttemptsLeft, type RetryPolicy } from '../domain/retry-policy.ts';
import { isSegmentedChannel, segmentSms, smsCost } from '../domain/sms-encoding.ts';
import {
  type Carrier,
  PUSH_SUBSCRIPTION_GONE,
  type SenderRecord,
  type SendRequest,
  type SendResult,
} from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import type { Job, JobQueue, NewJob } from '../ports/queue.ts';
import type { RateLimiter } from '../ports/rate-limiter.ts';
import type { MessageRecord, MessageStore, SendOutcome, StoredSender } from '../ports/store.ts';
import { isSharedSendJob, SEND_JOB_MESSAGES, SEND_QUEUE, sendJob, sendJobMessageIds } from './accept-messages.ts';
import type { CarrierRegistry } from './carrier-registry.ts';
import { ALLOW_ALL, type SendPolicy } from './send-policy.ts';
import { RATE_LIMITED, type RateLimit, sendWithinLimit } from './send-within-limit.ts';
import type { SenderRouting } from './sender-routing.ts';

export interface DispatchOptions {
  batchSize: number;
  leaseMs: number;
  retry: RetryPolicy;
  random?: () => number;
  /** Enforces each sender's `config.rateLimitPerSecond` (shared by every worker when the limiter is). */
  limiter?: RateLimiter;
  /** Consent, quiet hours and frequency caps (default: everything allowed). */
  policy?: SendPolicy;
  /** Told of the statuses this worker set (sent, failed, suppressed), after they are stored (journeys wait on them). */
  onOutcomes?: (updates: { messageId: string; status: MessageStatus }[], at: number) => Promise<void>;
  /** Told of push subscriptions the push service said are gone, after the batch is done (contacts forget them). */
  onPushSubscriptionsGone?: (gone: { orgId: string; endpoint: string }[]) => Promise<void>;
}

/** A sender's rate limit in messages per second, when it has one. */
export function rateLimitOf(sender: SenderRecord): number | undefined {
  const v = sender.rateLimitPerSecond ?? sender.config.rateLimitPerSecond;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

interface Work {
  job: Job;
  message: MessageRecord;
  /** The organization has more than one sender for this message: remember which one served the recipient. */
  choice: boolean;
}

type Failure = Extract<SendResult, { ok: false }>;

export class DispatchMessages {
  constructor(
    private readonly store: MessageStore,
    private readonly queue: JobQueue,
    private readonly registry: CarrierRegistry,
    private readonly routing: SenderRouting,
    private readonly clock: Clock,
    private readonly metrics: PipelineMetrics,
    private readonly opts: DispatchOptions,
  ) {}

  /** Processes one batch of due jobs; returns how many jobs it took. */
  async runOnce(): Promise<number> {
    const jobs = await this.claimJobs();
    if (jobs.length === 0) return 0;
    const now = this.clock.now();
    const entries = messageEntries(jobs);
    // The message lease ends a little before the job's, so a job that comes back after a crash finds its
    // message claimable again.
    const claimed = await this.store.claimForSending(
      entries.map((e) => e.messageId),
      now,
      now + Math.max(1, this.opts.leaseMs - 1000),
    );
    const byId = new Map(claimed.map((m) => [m.id, m]));
    const batch: Batch = {
      done: new Set(),
      outcomes: [],
      retries: [],
      deadLetters: [],
      affinity: [],
      sentMessages: [],
      goneSubscriptions: [],
    };
    const work: Work[] = [];
    const policy = this.opts.policy ?? ALLOW_ALL;
    const decisions = await policy.decide(claimed, now);
    for (const { job, messageId } of entries) {
      const message = byId.get(messageId);
      if (!message) {
        await this.releaseUnclaimed(job, messageId, batch);
        continue;
      }
      const d = decisions.get(message.id);
      if (d?.kind === 'suppress') {
        batch.outcomes.push({ messageId: message.id, kind: 'suppress', at: now, reason: d.reason, code: d.code });
        batch.done.add(job.id);
      } else if (d?.kind === 'defer') {
        batch.outcomes.push({ messageId: message.id, kind: 'defer', at: now, until: d.until, reason: d.reason });
        batch.retries.push({ job, messageId: message.id, runAt: d.until, error: `deferred: ${d.reason}` });
      } else {
        work.push({ job, message, choice: false });
      }
    }
    const routes = await this.routing.route(work.map((w) => w.message));
    let pending: { w: Work; senders: StoredSender[] }[] = [];
    for (const w of work) {
      const route = routes.get(w.message.id) ?? { kind: 'none' };
      if (route.kind === 'none') {
        const error = {
          code: 'no_sender',
          class: 'PermanentError',
          message: `no sender is configured for channel '${w.message.channel}' and this recipient`,
        };
        batch.outcomes.push({ messageId: w.message.id, kind: 'fail', error, at: now });
        batch.done.add(w.job.id);
      } else if (route.kind === 'wait') {
        const error = {
          code: 'senders_unavailable',
          class: 'ResourceError',
          message: "every sender for this channel is failing (circuit open); waiting for the first one's probe",
        };
        this.retryLater(batch, w, { ok: false, retryable: true, error, retryAfterMs: route.retryAt - now }, null);
      } else {
        w.choice = route.senders.length > 1;
        pending.push({ w, senders: route.senders });
      }
    }
    // Each round sends every pending message on its first available sender; a carrier-side failure moves the
    // message on to its next sender in the same attempt (failover), until none is left.
    while (pending.length > 0) {
      const groups = new Map<string, { sender: StoredSender; items: { w: Work; rest: StoredSender[] }[] }>();
      for (const p of pending) {
        const i = p.senders.findIndex((s) => this.routing.allow(s.id));
        const sender = p.senders[i];
        if (!sender) {
          const error = {
            code: 'senders_unavailable',
            class: 'ResourceError',
            message: 'no sender for this channel can take the message now (circuits open)',
          };
          this.retryLater(batch, p.w, { ok: false, retryable: true, error }, null);
          continue;
        }
        let g = groups.get(sender.id);
        if (!g) {
          g = { sender, items: [] };
          groups.set(sender.id, g);
        }
        g.items.push({ w: p.w, rest: p.senders.slice(i + 1) });
      }
      const next: typeof pending = [];
      await Promise.all(
        [...groups.values()].map(async ({ sender, items }) => {
          const results = await this.sendWithinLimit(
            sender,
            items.map((it) => toRequest(it.w.message, sender)),
          );
          const at = this.clock.now();
          const counts = { sent: 0, retry: 0, fail: 0, failover: 0 };
          let carrierFailures = 0;
          items.forEach((it, i) => {
            const r = results[i] ?? { ok: false, retryable: true, error: missingResult() };
            const m = it.w.message;
            if (r.ok) {
              batch.outcomes.push(sentOutcome(m, sender, r.providerMessageId, r.cost, at));
              batch.sentMessages.push(m);
              batch.done.add(it.w.job.id);
              if (it.w.choice)
                batch.affinity.push({ orgId: m.orgId, channel: m.channel, recipient: m.to, senderId: sender.id });
              counts.sent++;
            } else if (r.retryable) {
              const ours = r.error.code === RATE_LIMITED;
              if (!ours) carrierFailures++;
              if (ours) {
                // Held back by our own limiter: nothing was attempted, so no attempt is spent.
                const until = at + (r.retryAfterMs ?? 0);
                batch.outcomes.push({ messageId: m.id, kind: 'defer', at, until, reason: RATE_LIMITED });
                batch.retries.push({
                  job: it.w.job,
                  messageId: m.id,
                  runAt: until,
                  error: `deferred: ${RATE_LIMITED}`,
                });
                counts.retry++;
              } else if (it.rest.length > 0) {
                next.push({ w: it.w, senders: it.rest });
                counts.failover++;
              } else {
                this.retryLater(batch, it.w, r, sender);
                counts.retry++;
              }
            } else {
              batch.outcomes.push({
                messageId: m.id,
                kind: 'fail',
                error: r.error,
                at,
                senderId: sender.id,
                provider: sender.provider,
              });
              batch.done.add(it.w.job.id);
              if (r.error.code === PUSH_SUBSCRIPTION_GONE && m.channel === 'push')
                batch.goneSubscriptions.push({ orgId: m.orgId, endpoint: m.to });
              counts.fail++;
            }
          });
          // The circuit counts batches: any success closes it; a batch the carrier failed entirely is one failure.
          if (counts.sent > 0 || counts.fail > 0) this.routing.succeeded(sender.id);
          else if (carrierFailures > 0) this.routing.failed(sender.id);
          for (const k of ['sent', 'retry', 'fail', 'failover'] as const)
            if (counts[k] > 0) this.metrics.sendOutcome(sender.provider, k, counts[k]);
        }),
      );
      pending = next;
    }
    await this.store.recordSendOutcomes(batch.outcomes);
    await this.routing.remember(batch.affinity);
    if (batch.sentMessages.length > 0) await policy.sent(batch.sentMessages, this.clock.now());
    if (this.opts.onOutcomes) {
      const updates: { messageId: string; status: MessageStatus }[] = [];
      for (const o of batch.outcomes) {
        if (o.kind === 'sent') updates.push({ messageId: o.messageId, status: 'sent' });
        else if (o.kind === 'fail') updates.push({ messageId: o.messageId, status: 'failed' });
        else if (o.kind === 'suppress') updates.push({ messageId: o.messageId, status: 'suppressed' });
      }
      if (updates.length > 0) await this.opts.onOutcomes(updates, this.clock.now());
    }
    // A job of one message is retried or dead-lettered itself; a message of a shared job goes on in a job of its
    // own (enqueued before the shared job is acknowledged, so a crash in between loses nothing).
    const ownJobs: NewJob[] = [];
    for (const r of batch.retries) {
      if (isSharedSendJob(r.job)) ownJobs.push(messageJob(r.job, r.messageId, r.runAt));
      else await this.queue.retry(r.job.id, r.runAt, r.error);
    }
    if (ownJobs.length > 0) await this.queue.enqueue(ownJobs);
    for (const d of batch.deadLetters) {
      const job = isSharedSendJob(d.job) ? { ...messageJob(d.job, d.messageId, now), attempts: d.job.attempts } : d.job;
      await this.queue.deadLetter(job, `${d.error.code}: ${d.error.message}`);
    }
    for (const job of jobs) if (isSharedSendJob(job)) batch.done.add(job.id);
    await this.queue.ack([...batch.done]);
    // Last and best effort: should this be lost, the next send to the subscription fails the same way.
    if (batch.goneSubscriptions.length > 0) await this.opts.onPushSubscriptionsGone?.(batch.goneSubscriptions);
    return jobs.length;
  }

  /**
   * Due send jobs for about `batchSize` messages: a job carries up to `SEND_JOB_MESSAGES` of them, so a first
   * claim takes as many jobs as would fill the batch if each were full, later claims size themselves by what
   * the jobs held so far (jobs of one message, such as retries, are claimed in bulk on the second round). Jobs
   * beyond the batch (larger than those before them) are handed back at once: an oversized batch would outlast
   * its messages' lease and have them sent twice.
   */
  private async claimJobs(): Promise<Job[]> {
    const { batchSize, leaseMs } = this.opts;
    const jobs: Job[] = [];
    const sizes: number[] = [];
    let messages = 0;
    let kept = 0;
    for (let round = 0; round < 3 && messages < batchSize; round++) {
      const perJob = jobs.length === 0 ? SEND_JOB_MESSAGES : Math.max(1, messages / jobs.length);
      const want = Math.max(1, Math.ceil((batchSize - messages) / perJob));
      const got = await this.queue.claim(SEND_QUEUE, want, leaseMs);
      for (const j of got) {
        const n = sendJobMessageIds(j).length;
        jobs.push(j);
        sizes.push(n);
        messages += n;
      }
      if (got.length < want) break;
    }
    for (let count = 0; kept < jobs.length && count < batchSize; kept++) count += sizes[kept] as number;
    const now = this.clock.now();
    for (const j of jobs.slice(kept)) await this.queue.retry(j.id, now, 'handed back: the batch was full');
    return jobs.slice(0, kept);
  }

  /** A retryable failure: back off and try again, or give up when the attempts are spent. */
  private retryLater(batch: Batch, w: Work, r: Failure, sender: StoredSender | null): void {
    const at = this.clock.now();
    const id = w.message.id;
    if (hasAttemptsLeft(this.opts.retry, w.message.attempts)) {
      const retryAt = at + backoffDelay(this.opts.retry, w.message.attempts, this.opts.random, r.retryAfterMs);
      batch.outcomes.push({ messageId: id, kind: 'retry', error: r.error, at, retryAt });
      batch.retries.push({ job: w.job, messageId: id, runAt: retryAt, error: `${r.error.code}: ${r.error.message}` });
      return;
    }
    const error = { ...r.error, message: `${r.error.message} (gave up after ${w.message.attempts} attempts)` };
    batch.outcomes.push({
      messageId: id,
      kind: 'fail',
      error,
      at,
      ...(sender ? { senderId: sender.id, provider: sender.provider } : {}),
    });
    batch.deadLetters.push({ job: w.job, messageId: id, error });
  }

  /**
   * A message that was not claimable: nothing to do unless another attempt holds it (then its job looks again
   * after that attempt's lease).
   */
  private async releaseUnclaimed(job: Job, messageId: string, batch: Batch): Promise<void> {
    const m = job.orgId ? await this.store.getMessage(job.orgId, messageId) : undefined;
    if (m && m.status === 'sending') {
      batch.retries.push({
        job,
        messageId,
        runAt: this.clock.now() + this.opts.leaseMs,
        error: 'message busy in another attempt',
      });
    } else {
      batch.done.add(job.id);
    }
  }

  /**
   * Sends, honouring the sender's rate limit and its provider account's (`sendWithinLimit`); what cannot go out
   * within half the lease comes back as `rate_limited`.
   */
  private async sendWithinLimit(sender: StoredSender, requests: SendRequest[]): Promise<SendResult[]> {
    const carrier = this.registry.carrier(sender);
    const limiter = this.opts.limiter;
    const limits: RateLimit[] = [];
    const own = rateLimitOf(sender);
    if (own) limits.push({ key: `sender:${sender.id}`, limit: own });
    const account = sender.accountRateLimitPerSecond;
    if (account && account > 0) limits.push({ key: `account:${this.registry.accountKey(sender)}`, limit: account });
    if (limits.length === 0 || !limiter) return this.sendSafely(carrier, requests);
    return sendWithinLimit(
      {
        limiter,
        limits,
        now: () => this.clock.now(),
        deadline: this.clock.now() + this.opts.leaseMs / 2,
        send: (chunk) => this.sendSafely(carrier, chunk),
      },
      requests,
    );
  }

  private async sendSafely(carrier: Carrier, requests: SendRequest[]): Promise<SendResult[]> {
    try {
      return await carrier.send(requests);
    } catch (err) {
      const error = {
        code: 'carrier_error',
        class: 'OperationalError',
        message: (err as Error).message ?? String(err),
      };
      return requests.map(() => ({ ok: false, retryable: true, error }));
    }
  }
}

function toRequest(m: MessageRecord, sender: SenderRecord): SendRequest {
  return {
    messageId: m.id,
    channel: m.channel as Channel,
    to: m.to,
    from: m.from ?? sender.from,
    body: m.body,
    subject: m.subject,
    attempt: m.attempts,
    ...(m.options ? { options: m.options } : {}),
  };
}

/** A `sent` outcome with the message's SMS segmentation, priced by the sender's rate when the carrier gave none. */
function sentOutcome(
  m: MessageRecord,
  sender: StoredSender,
  providerMessageId: string,
  cost: number | null | undefined,
  at: number,
): SendOutcome {
  const seg = isSegmentedChannel(m.channel) && m.body ? segmentSms(m.body) : undefined;
  const rate = sender.costPerMessage;
  const priced = cost ?? (rate == null ? null : seg ? smsCost(seg.segments, rate) : rate);
  return {
    messageId: m.id,
    kind: 'sent',
    senderId: sender.id,
    provider: sender.provider,
    from: m.from ?? sender.from,
    providerMessageId,
    cost: priced,
    segments: seg?.segments ?? null,
    encoding: seg?.encoding ?? null,
    at,
  };
}

/** What became of the jobs of one run: `done` jobs are acknowledged; a retried message goes on later. */
interface Batch {
  done: Set<string>;
  outcomes: SendOutcome[];
  retries: { job: Job; messageId: string; runAt: number; error: string }[];
  deadLetters: { job: Job; messageId: string; error: MessageError }[];
  affinity: { orgId: string; channel: Channel; recipient: string; senderId: string }[];
  sentMessages: MessageRecord[];
  goneSubscriptions: { orgId: string; endpoint: string }[];
}

/**
 * Each message of the jobs once, with the job that decides its fate: when a message is in its own job and in a
 * shared one (the sweeper re-enqueued it), its own job (a shared job is acknowledged whatever its messages do).
 */
function messageEntries(jobs: readonly Job[]): { job: Job; messageId: string }[] {
  const byMessage = new Map<string, Job>();
  for (const job of jobs) {
    for (const messageId of sendJobMessageIds(job)) {
      const held = byMessage.get(messageId);
      if (!held || isSharedSendJob(held)) byMessage.set(messageId, job);
    }
  }
  return [...byMessage].map(([messageId, job]) => ({ job, messageId }));
}

/** The own job of one message of a shared job, due at `runAt`. */
function messageJob(shared: Job, messageId: string, runAt: number): NewJob {
  return sendJob({ id: messageId, orgId: shared.orgId, priority: shared.priority, sendAt: runAt, createdAt: runAt });
}

function missingResult(): MessageError {
  return {
    code: 'carrier_no_result',
    class: 'OperationalError',
    message: 'carrier returned no result for this message',
  };
}
