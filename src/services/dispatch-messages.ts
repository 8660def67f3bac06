/**
 * The send worker's job: claim due send jobs, move their messages to `sending` (a conditional claim, so a
 * duplicate job is harmless), hand them to the sender's carrier in batches, and record what happened:
 * `sent`; a retryable failure backs off and tries again; a permanent failure, or the last attempt, fails the
 * message (and the exhausted job goes to the dead-letter list).
 */
import type { Channel } from '../domain/channels.ts';
import type { MessageError } from '../domain/message-status.ts';
import { backoffDelay, hasAttemptsLeft, type RetryPolicy } from '../domain/retry-policy.ts';
import type { Carrier, SenderRecord, SendRequest, SendResult } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { PipelineMetrics } from '../ports/metrics.ts';
import type { Job, JobQueue } from '../ports/queue.ts';
import type { RateLimiter } from '../ports/rate-limiter.ts';
import type { MessageRecord, MessageStore, SendOutcome } from '../ports/store.ts';
import { SEND_QUEUE } from './accept-messages.ts';
import type { CarrierRegistry } from './carrier-registry.ts';

export interface DispatchOptions {
  batchSize: number;
  leaseMs: number;
  retry: RetryPolicy;
  random?: () => number;
  /** Enforces each sender's `config.rateLimitPerSecond` (shared by every worker when the limiter is). */
  limiter?: RateLimiter;
}

/** Extra wait after a full window, so that windows as the carrier measures them are never overfilled. */
const RATE_MARGIN_MS = 25;

/** A sender's rate limit in messages per second, when it has one. */
export function rateLimitOf(sender: SenderRecord): number | undefined {
  const v = sender.config.rateLimitPerSecond;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

interface Work {
  job: Job;
  message: MessageRecord;
}

export class DispatchMessages {
  constructor(
    private readonly store: MessageStore,
    private readonly queue: JobQueue,
    private readonly registry: CarrierRegistry,
    private readonly clock: Clock,
    private readonly metrics: PipelineMetrics,
    private readonly opts: DispatchOptions,
  ) {}

  /** Processes one batch of due jobs; returns how many jobs it took. */
  async runOnce(): Promise<number> {
    const jobs = await this.queue.claim(SEND_QUEUE, this.opts.batchSize, this.opts.leaseMs);
    if (jobs.length === 0) return 0;
    const now = this.clock.now();
    // The message lease ends a little before the job's, so a job that comes back after a crash finds its
    // message claimable again.
    const claimed = await this.store.claimForSending(
      jobs.map((j) => j.payload),
      now,
      now + Math.max(1, this.opts.leaseMs - 1000),
    );
    const byId = new Map(claimed.map((m) => [m.id, m]));
    const done: string[] = [];
    const groups = new Map<string, { sender: SenderRecord; work: Work[] }>();
    const outcomes: SendOutcome[] = [];
    const deadLetters: { job: Job; error: MessageError }[] = [];
    for (const job of jobs) {
      const message = byId.get(job.payload);
      if (!message) {
        await this.releaseUnclaimed(job, done);
        continue;
      }
      const sender = await this.registry.senderFor(message.orgId, message.channel);
      if (!sender) {
        const error = {
          code: 'no_sender',
          class: 'PermanentError',
          message: `no sender is configured for channel '${message.channel}'`,
        };
        outcomes.push({ messageId: message.id, kind: 'fail', error, at: now });
        done.push(job.id);
        continue;
      }
      let g = groups.get(sender.id);
      if (!g) {
        g = { sender, work: [] };
        groups.set(sender.id, g);
      }
      g.work.push({ job, message });
    }
    const retries: { job: Job; runAt: number; error: string }[] = [];
    await Promise.all(
      [...groups.values()].map(async ({ sender, work }) => {
        const results = await this.sendWithinLimit(
          sender,
          work.map((w) => toRequest(w.message, sender)),
        );
        const at = this.clock.now();
        const counts = { sent: 0, retry: 0, fail: 0 };
        work.forEach((w, i) => {
          const r = results[i] ?? { ok: false, retryable: true, error: missingResult() };
          const id = w.message.id;
          if (r.ok) {
            outcomes.push({
              messageId: id,
              kind: 'sent',
              senderId: sender.id,
              provider: sender.provider,
              from: w.message.from ?? sender.from,
              providerMessageId: r.providerMessageId,
              cost: r.cost ?? null,
              at,
            });
            done.push(w.job.id);
            counts.sent++;
          } else if (r.retryable && hasAttemptsLeft(this.opts.retry, w.message.attempts)) {
            const retryAt = at + backoffDelay(this.opts.retry, w.message.attempts, this.opts.random, r.retryAfterMs);
            outcomes.push({ messageId: id, kind: 'retry', error: r.error, at, retryAt });
            retries.push({ job: w.job, runAt: retryAt, error: `${r.error.code}: ${r.error.message}` });
            counts.retry++;
          } else {
            const error = r.retryable
              ? { ...r.error, message: `${r.error.message} (gave up after ${w.message.attempts} attempts)` }
              : r.error;
            outcomes.push({ messageId: id, kind: 'fail', error, at, senderId: sender.id, provider: sender.provider });
            if (r.retryable) deadLetters.push({ job: w.job, error });
            else done.push(w.job.id);
            counts.fail++;
          }
        });
        for (const k of ['sent', 'retry', 'fail'] as const)
          if (counts[k] > 0) this.metrics.sendOutcome(sender.provider, k, counts[k]);
      }),
    );
    await this.store.recordSendOutcomes(outcomes);
    for (const r of retries) await this.queue.retry(r.job.id, r.runAt, r.error);
    for (const d of deadLetters) await this.queue.deadLetter(d.job, `${d.error.code}: ${d.error.message}`);
    await this.queue.ack(done);
    return jobs.length;
  }

  /** A job whose message was not claimable: done unless another attempt holds it (then look again later). */
  private async releaseUnclaimed(job: Job, done: string[]): Promise<void> {
    const m = job.orgId ? await this.store.getMessage(job.orgId, job.payload) : undefined;
    if (m && m.status === 'sending') {
      await this.queue.retry(job.id, this.clock.now() + this.opts.leaseMs, 'message busy in another attempt');
    } else {
      done.push(job.id);
    }
  }

  /**
   * Sends, honouring the sender's rate limit: in chunks of at most the limit, each after taking that many units
   * from the (possibly shared) limiter, waiting when the window is full. What cannot go out within half the
   * lease comes back as a retryable `rate_limited` result, so a lease never runs out while we wait.
   */
  private async sendWithinLimit(sender: SenderRecord, requests: SendRequest[]): Promise<SendResult[]> {
    const limit = rateLimitOf(sender);
    const limiter = this.opts.limiter;
    const carrier = this.registry.carrier(sender);
    if (!limit || !limiter) return this.sendSafely(carrier, requests);
    const results: SendResult[] = [];
    const deadline = this.clock.now() + this.opts.leaseMs / 2;
    let i = 0;
    while (i < requests.length && this.clock.now() < deadline) {
      const chunk = requests.slice(i, i + limit);
      const decision = await limiter.take(`sender:${sender.id}`, chunk.length, limit);
      if (!decision.allowed) {
        // The margin absorbs jitter in the time requests take to reach the carrier, which counts arrivals.
        await new Promise((r) => setTimeout(r, decision.retryAfterMs + RATE_MARGIN_MS));
        continue;
      }
      results.push(...(await this.sendSafely(carrier, chunk)));
      i += chunk.length;
    }
    const error = { code: 'rate_limited', class: 'ResourceError', message: `sender is limited to ${limit} messages/s` };
    for (; i < requests.length; i++) results.push({ ok: false, retryable: true, error, retryAfterMs: 1000 });
    return results;
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
  };
}

function missingResult(): MessageError {
  return {
    code: 'carrier_no_result',
    class: 'OperationalError',
    message: 'carrier returned no result for this message',
  };
}
